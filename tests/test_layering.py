"""The package's layering, read from its source: every import (lazy ones inside functions too)
runs down the layers of docs/architecture.md, never up or sideways, and no module imports itself
back through others."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cnnlab"

# Each group's rank and the groups it may import (besides itself and the root helpers).
BELOW = {
    "ops": set(),
    "blocks": {"ops"},
    "models": {"ops", "blocks"},
    "counting": {"ops", "blocks", "models"},
    "measure": {"ops", "blocks", "models", "counting"},
    "deployment": {"ops", "blocks", "models", "counting", "measure"},
    "speedlab": {"ops", "blocks", "models", "counting", "measure", "deployment"},
    "train": {"ops", "blocks", "models"},
    "search": {"ops", "blocks", "models", "counting", "measure", "deployment", "speedlab", "train"},
}
BELOW["cli"] = set(BELOW)
HELPERS = {"cnnlab._io", "cnnlab._version", "cnnlab.errors", "cnnlab._device"}  # import no layer


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str) -> set[str]:
    """Every cnnlab module ``name`` imports, anywhere in its body (a package import counts as
    its ``__init__``; ``from pkg import mod`` of a submodule as ``pkg.mod`` alone)."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & set(MODULES)
            if len(submodules) < len(node.names):  # names defined by the module itself
                found.add(node.module)
            found.update(submodules)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imported(name) for name in MODULES}


def group(name: str) -> str:
    parts = name.split(".")
    if name in HELPERS:
        return "__helper__"
    return "__root__" if len(parts) == 1 or parts[1] == "__main__" else parts[1]


def test_the_layers_are_those_of_the_architecture():
    groups = {group(n) for n in MODULES} - {"__helper__", "__root__"}
    assert groups <= set(BELOW), f"packages without a layer: {sorted(groups - set(BELOW))}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_run_down_the_layers(name):
    own = group(name)
    if own == "__root__":
        return  # the package root re-exports the public names of every layer
    allowed = {"__helper__"} if own == "__helper__" else BELOW[own] | {own, "__helper__"}
    wrong = sorted(m for m in GRAPH[name] if group(m) not in allowed)
    assert not wrong, f"{name} ({own}) imports {wrong} from above or beside its layer"


def test_no_import_circle():
    """Depth-first search for a back edge anywhere in the module graph."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(GRAPH[n]):
            if state.get(m) == 1:
                return path[path.index(m) :] + [m]
            if m not in state and (circle := visit(m)):
                return circle
        state[n] = 2
        path.pop()
        return None

    for n in sorted(GRAPH):
        if n not in state and (circle := visit(n)):
            pytest.fail(" -> ".join(circle))


def test_the_walk_sees_lazy_imports():
    """The check would be empty if imports inside functions were missed: one is known."""
    assert "cnnlab.models" in GRAPH["cnnlab.speedlab.guidelines.lint"]
