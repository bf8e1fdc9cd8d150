"""Small functions: none in the package over 60 lines, and the median at most 10 (a function's
lines run from its ``def`` to its last line, docstring included)."""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cnnlab"
LIMIT, MEDIAN = 60, 10


def _functions() -> list[tuple[int, str]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"
                out.append((node.end_lineno - node.lineno + 1, where))
    return out


def test_no_function_is_over_the_limit():
    long = sorted((n, w) for n, w in _functions() if n > LIMIT)
    assert not long, f"functions over {LIMIT} lines: {long}"


def test_the_median_function_is_short():
    sizes = [n for n, _ in _functions()]
    assert len(sizes) > 500  # the walk found the package's functions
    assert statistics.median(sizes) <= MEDIAN
