"""NAS cell genotypes as plain data: NASNet-A, PNASNet-5, AmoebaNet-A and what a search finds.

A cell (Zoph et al. 2018, §3, Fig. 3) reads two states, ``0`` = h_{i-2} (the output of the cell
before the previous one) and ``1`` = h_{i-1} (the previous cell's output). Node ``j`` of the cell
is state ``j + 2``: it applies one op to each of two earlier states and combines the results
(``add``; ``concat`` for a node that only feeds the output). The cell's output concatenates the
states listed in ``concat``, or, when ``concat`` is None, the nodes no other node reads (NASNet's
"unused hidden states"). Ops are named from :data:`cnnlab.blocks.nas_ops.OPS`.

A genotype is frozen tuples and strings: hashable, printable, and JSON round-trippable with
:meth:`Genotype.to_json` / :meth:`Genotype.from_json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cnnlab.blocks.nas_ops import op_names
from cnnlab.errors import BadValue

COMBINERS = ("add", "concat")
INPUT_NAMES = ("h_{i-2}", "h_{i-1}")


def state_name(i: int) -> str:
    return INPUT_NAMES[i] if i < 2 else f"node{i - 2}"


@dataclass(frozen=True)
class Node:
    """One node: ``a[1](state a[0])`` combined with ``b[1](state b[0])``."""

    a: tuple[int, str]
    b: tuple[int, str]
    combiner: str = "add"

    def __str__(self) -> str:
        sign = " + " if self.combiner == "add" else " | "
        return sign.join(f"{op}({state_name(i)})" for i, op in (self.a, self.b))


@dataclass(frozen=True)
class CellGenotype:
    """The nodes of a cell and the states its output concatenates (None: the unread nodes)."""

    nodes: tuple[Node, ...]
    concat: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _check_cell(self)

    @property
    def outputs(self) -> tuple[int, ...]:
        """The states the cell output concatenates, in order."""
        if self.concat is not None:
            return self.concat
        read = {i for n in self.nodes for i, _ in (n.a, n.b)}
        return tuple(i for i in range(2, len(self.nodes) + 2) if i not in read)

    def __str__(self) -> str:
        lines = [f"node{j} = {n}" for j, n in enumerate(self.nodes)]
        lines.append("out = concat(" + ", ".join(state_name(i) for i in self.outputs) + ")")
        return "\n".join(lines)

    @staticmethod
    def from_tf(operations, hiddenstate_indices, used_hiddenstates) -> CellGenotype:
        """A cell from TF-slim's (and the TPU AmoebaNet's) three lists.

        TF numbers the states 0 = h_{i-1}, 1 = h_{i-2}, 2.. = nodes, names a separable conv
        'separable_kxk_2' and the identity 'none', and concatenates the states marked unused,
        in state order.
        """
        swap = {0: 1, 1: 0}
        names = {"none": "identity", "1x1": "conv_1x1"}
        ops = [names.get(o, o) for o in operations]
        ops = [f"sep_conv_{o.split('_')[1]}" if o.startswith("separable_") else o for o in ops]
        idx = [swap.get(i, i) for i in hiddenstate_indices]
        nodes = tuple(
            Node((idx[2 * j], ops[2 * j]), (idx[2 * j + 1], ops[2 * j + 1]))
            for j in range(len(ops) // 2)
        )
        concat = tuple(swap.get(i, i) for i, used in enumerate(used_hiddenstates) if not used)
        return CellGenotype(nodes, concat)


@dataclass(frozen=True)
class Genotype:
    """A named pair of cells; ``reduce`` None means reduction cells are the normal cell at stride
    2 (PNASNet)."""

    name: str
    normal: CellGenotype
    reduce: CellGenotype | None = None

    def cell(self, reduction: bool) -> CellGenotype:
        return self.reduce if reduction and self.reduce is not None else self.normal

    def __str__(self) -> str:
        parts = [f"{self.name} normal cell:\n{self.normal}"]
        if self.reduce is not None:
            parts.append(f"{self.name} reduction cell:\n{self.reduce}")
        return "\n".join(parts)

    def to_dict(self) -> dict:
        return {"name": self.name, "normal": _cell_dict(self.normal),
                "reduce": None if self.reduce is None else _cell_dict(self.reduce)}  # fmt: skip

    @staticmethod
    def from_dict(data: dict) -> Genotype:
        try:
            name, normal, reduce = str(data["name"]), data["normal"], data.get("reduce")
            normal = _cell_fields(normal)
            reduce = None if reduce is None else _cell_fields(reduce)
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as e:
            raise BadValue(
                f"not a genotype dict ({type(e).__name__}: {e}); expected "
                '{"name": ..., "normal": {"nodes": [[[i, op], [j, op], "add"], ...], '
                '"concat": [...] or null}, "reduce": ... or null}'
            ) from None
        return Genotype(
            name, CellGenotype(*normal), None if reduce is None else CellGenotype(*reduce)
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @staticmethod
    def from_json(text: str) -> Genotype:
        return Genotype.from_dict(json.loads(text))


def _cell_dict(cell: CellGenotype) -> dict:
    nodes = [[list(n.a), list(n.b), n.combiner] for n in cell.nodes]
    return {"nodes": nodes, "concat": None if cell.concat is None else list(cell.concat)}


def _cell_fields(data: dict) -> tuple[tuple[Node, ...], tuple[int, ...] | None]:
    """The (nodes, concat) of a cell dict, as tuples (checked by CellGenotype afterwards)."""
    nodes = tuple(
        Node((int(a[0]), str(a[1])), (int(b[0]), str(b[1])), str(comb))
        for a, b, comb in data["nodes"]
    )
    concat = data.get("concat")
    return nodes, None if concat is None else tuple(int(i) for i in concat)


def _check_cell(cell: CellGenotype) -> None:
    """Refuse a node that reads a missing state or names an unknown op, and a bad output list."""
    if not cell.nodes:
        raise BadValue("a cell genotype needs at least one node")
    valid = op_names()
    concat_nodes = {j + 2 for j, n in enumerate(cell.nodes) if n.combiner == "concat"}
    for j, node in enumerate(cell.nodes):
        if node.combiner not in COMBINERS:
            raise BadValue(
                f"node{j}: unknown combiner {node.combiner!r}; choose one of {', '.join(COMBINERS)}"
            )
        for i, op in (node.a, node.b):
            if not isinstance(i, int) or not 0 <= i < j + 2:
                raise BadValue(
                    f"node{j} reads state {i!r}, which does not exist: node{j} may read 0 "
                    f"(h_{{i-2}}), 1 (h_{{i-1}}) or an earlier node (2..{j + 1})"
                )
            if i in concat_nodes:
                raise BadValue(
                    f"node{j} reads {state_name(i)}, a concat node: a concat node (2x the "
                    "channels) may only feed the cell output"
                )
            if op not in valid:
                raise BadValue(f"node{j}: unknown op {op!r}; valid ops: {', '.join(valid)}")
    if cell.concat is not None:
        last = len(cell.nodes) + 1
        bad = [i for i in cell.concat if not isinstance(i, int) or not 0 <= i <= last]
        if bad or not cell.concat:
            raise BadValue(
                f"cell output concat {cell.concat} names missing states {bad}: "
                f"list states 0..{last} (0 = h_{{i-2}}, 1 = h_{{i-1}}, 2.. = nodes)"
            )
