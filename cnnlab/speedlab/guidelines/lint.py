"""Design lint: what ShuffleNet v2's four guidelines (Ma et al. 2018, §2) flag in a model.

One forward pass at batch 1 (eval mode) records every executed operator with its shapes, the
module that ran it and its memory access (the conventions of :mod:`cnnlab.ops.cost`: inputs read +
output written + parameters read, BN after a conv folded, views free). Then:

- G1 "equal channel width minimizes MAC": every 1x1 conv with c_in != c_out. Cost: its MAC above
  Eq. 1's bound at the same FLOPs B, MAC - (2*sqrt(h*w*B) + B/(h*w)) = h*w*(sqrt(c1)-sqrt(c2))^2.
  A 1x1 group conv (g groups) has the same excess against the equal-width conv with g groups.
- G2 "excessive group convolution increases MAC": every group conv with 1 < g < c_in. Cost: per
  Eq. 2, MAC(g) - MAC(1) for the fixed input shape c1 x h x w and fixed B, i.e. against the dense
  conv c1 -> c2/g: B*(g-1)/c1 = h*w*c2*(1 - 1/g) (for a kxk conv the weight terms cancel too).
- G3 "network fragmentation reduces degree of parallelism": per block (the model's top-level
  modules; containers are opened), its operators (conv, linear, pooling), the largest number of
  them that are independent at one depth of its data flow (parallel branches), and the small ones
  (under ``SMALL_SHARE`` of the block's MACs). A block is flagged when it has parallel branches or
  small fragments. Cost: the operator count.
- G4 "element-wise operations are non-negligible": every element-wise operator (activations, add,
  mul, a BN that cannot be folded, concat and shuffle copies, and depthwise convolution, which the
  paper counts as element-wise for its high MAC/FLOPs ratio). Cost: its memory access; in total,
  the share of the model's memory access.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from cnnlab.counting.trace import tensors_in
from cnnlab.errors import BadType

GUIDELINES = ("G1", "G2", "G3", "G4")
RULES = {
    "G1": "equal channel width minimizes MAC",
    "G2": "excessive group convolution increases MAC",
    "G3": "network fragmentation reduces degree of parallelism",
    "G4": "element-wise operations are non-negligible",
}
FIXES = {
    "G1": "use equal input/output widths",
    "G2": "choose the group count for the target platform; fewer groups",
    "G3": "fewer, larger operators",
    "G4": "fuse or remove element-wise ops",
}
SMALL_SHARE = 0.1  # an operator under this share of its block's MACs is a small fragment

aten = torch.ops.aten
_CONVS = {aten.convolution, aten._convolution, aten.mkldnn_convolution}
_LINEARS = {aten.addmm, aten.mm, aten.bmm}
_POOLS = {
    aten.max_pool2d,
    aten.max_pool2d_with_indices,
    aten.avg_pool2d,
    aten.adaptive_avg_pool2d,
    aten._adaptive_avg_pool2d,
    aten.adaptive_max_pool2d,
    aten.mean,
}
_COPIES = {aten.cat, aten.stack, aten.clone, aten.contiguous, aten.copy_, aten._to_copy}
_BATCH_NORMS = {aten._native_batch_norm_legit_no_training, aten.native_batch_norm}
_ELEMENTWISE_NAMES = (
    "relu relu_ hardtanh hardtanh_ sigmoid sigmoid_ hardsigmoid hardsigmoid_ hardswish "
    "hardswish_ silu silu_ gelu gelu_ tanh tanh_ leaky_relu leaky_relu_ elu elu_ add add_ "
    "mul mul_ sub sub_ div div_ clamp clamp_ clamp_min clamp_min_ neg"
)
_ELEMENTWISE = {getattr(aten, n) for n in _ELEMENTWISE_NAMES.split()}
_NO_TRAFFIC = {aten.view, aten._unsafe_view, aten.reshape, aten.flatten, aten.empty}
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@dataclass(frozen=True)
class OpRecord:
    """One executed operator: where it ran, what it is, its shapes and its cost at batch 1."""

    block: str
    layer: str  # path of the innermost module that ran it
    op: str  # ATen operator name
    kind: str  # conv, linear, pool, elementwise, copy, bn, other
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    groups: int
    kernel: tuple[int, ...]
    macs: int
    memory_access: int
    level: int  # depth in the block's data flow, counted in operators (conv, linear, pool)

    @property
    def is_depthwise(self) -> bool:
        return self.kind == "conv" and self.groups > 1 and self.groups == self.in_shape[1]

    @property
    def is_compute(self) -> bool:
        return self.kind in ("conv", "linear", "pool")


def _kind(packet) -> str:
    for kind, ops in (
        ("conv", _CONVS),
        ("linear", _LINEARS),
        ("pool", _POOLS),
        ("copy", _COPIES),
        ("bn", _BATCH_NORMS),
        ("elementwise", _ELEMENTWISE),
    ):
        if packet in ops:
            return kind
    return "other"


class _Recorder(TorchDispatchMode):
    """Records every operator executed at batch 1 with its module, block and data-flow depth."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[OpRecord] = []
        self.block = ""
        self.stack: list[str] = [""]
        self._levels: dict[int, int] = {}
        self._alive: list[torch.Tensor] = []  # keeps ids unique while they are looked up
        self._conv_outputs: set[int] = set()

    def start_block(self, name: str) -> None:
        self.block, self._levels = name, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if func.is_view or packet in _NO_TRAFFIC:
            self._propagate(args, out, 0)
            return out
        ins = tensors_in(args) + tensors_in(list(kwargs.values()))
        outs = tensors_in(out)
        self._record(packet, args, ins, outs[0] if outs else None, out)
        return out

    def _propagate(self, args, out, step: int) -> int:
        level = max((self._levels.get(id(t), 0) for t in tensors_in(args)), default=0) + step
        for t in tensors_in(out):
            self._levels[id(t)] = level
            self._alive.append(t)
        return level

    def _record(self, packet, args, ins, first, out) -> None:
        kind = _kind(packet)
        x = ins[-2] if kind == "linear" else (ins[0] if ins else first)
        groups, kernel, macs = 1, (), 0
        mem = sum(t.numel() for t in ins) + (first.numel() if first is not None else 0)
        if kind == "conv":
            w = args[1]
            groups, kernel = x.shape[1] // w.shape[1], tuple(w.shape[2:])
            macs = first.numel() * math.prod(w.shape[1:])
            self._conv_outputs.add(id(first))
        elif kind == "linear":
            macs = first.numel() * ins[-1].shape[-2]  # (m x k) @ (k x n): m*n outputs, k each
        elif kind == "bn":
            weight = args[1]
            folded = id(x) in self._conv_outputs
            mem = 0 if folded else 2 * x.numel() + 2 * weight.numel()
            if folded:
                self._conv_outputs.add(id(first))
        level = self._propagate(args, out, 1 if kind in ("conv", "linear", "pool") else 0)
        self._alive.append(first)
        self.ops.append(
            OpRecord(
                self.block,
                self.stack[-1],
                str(packet).split(".")[-1],
                kind,
                tuple(x.shape),
                tuple(first.shape) if first is not None else (),
                groups,
                kernel,
                macs,
                mem,
                level if kind in ("conv", "linear", "pool") else 0,
            )
        )


def model_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Top-level blocks: the model's children, with plain containers opened (Sequential, lists)."""
    out: list[tuple[str, nn.Module]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            path = f"{prefix}.{name}" if prefix else name
            if type(child) in _CONTAINERS:
                visit(path, child)
            else:
                out.append((path, child))

    visit("", model)
    return out or [("model", model)]


def record_ops(model: nn.Module, input_size: tuple[int, int, int]) -> list[OpRecord]:
    """Run ``model`` once at batch 1 in eval mode and record every operator it executes."""
    rec = _Recorder()
    handles = []
    root = type(model).__name__
    for name, m in model.named_modules():

        def push(_m, _a, name=name or root):
            rec.stack.append(name)

        def pop(_m, _a, _o):
            rec.stack.pop()

        handles += [m.register_forward_pre_hook(push), m.register_forward_hook(pop)]
    for name, m in model_blocks(model):

        def enter(_m, _a, name=name):
            rec.start_block(name)

        def leave(_m, _a, _o):
            rec.start_block("")

        handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_size)
    try:
        with torch.no_grad(), rec:
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rec.ops


# ---- the four rules ----------------------------------------------------------------------------


def eq1_excess(h: int, w: int, c1: int, c2: int, g: int = 1) -> float:
    """MAC of a 1x1 conv above Eq. 1's bound at its FLOPs B (Ma et al. 2018, §2, G1).

    MAC = h*w*(c1 + c2) + c1*c2/g; bound = 2*sqrt(h*w*B*g) + B/(h*w) with B = h*w*c1*c2/g
    (g = 1: Eq. 1 as printed). Equals h*w*(sqrt(c1) - sqrt(c2))^2, zero when c1 == c2.
    """
    hw, b = h * w, h * w * c1 * c2 / g
    return hw * (c1 + c2) + c1 * c2 / g - (2 * math.sqrt(hw * b * g) + b / hw)


def eq2_overhead(h: int, w: int, c1: int, c2: int, g: int) -> float:
    """MAC of a group conv above the dense conv with the same input and FLOPs (Eq. 2, G2).

    Eq. 2: MAC = h*w*c1 + B*g/c1 + B/(h*w) with B = h*w*c1*c2/g; MAC(g) - MAC(1) = B*(g-1)/c1.
    """
    b = h * w * c1 * c2 / g
    return b * (g - 1) / c1


@dataclass(frozen=True)
class LintFinding:
    """One thing a guideline flags: where, what, and its cost."""

    guideline: str
    block: str
    layer: str
    op: str
    detail: str
    extra: float  # extra memory access in elements (G1, G2), or memory access (G4); G3: 0
    count: int = 0  # G3: operators in the block

    @property
    def cost_text(self) -> str:
        return f"{self.count} operators" if self.guideline == "G3" else f"{self.extra:,.0f}"


_OP_NAMES = {
    "clone": "copy",
    "contiguous": "copy",
    "cat": "concat",
    "_native_batch_norm_legit_no_training": "batch norm",
    "native_batch_norm": "batch norm",
    "mean": "global avg pool",
    "addmm": "linear",
    "mm": "linear",
}
_G4_WHAT = {
    "elementwise": "element-wise",
    "copy": "data copy (concat, shuffle)",
    "bn": "BN that cannot be folded",
    "dw": "depthwise: element-wise per G4",
}


def op_name(r: OpRecord) -> str:
    """A reader's name for an operator: "conv 1x1 g=3", "dw conv 3x3", "relu", "concat"."""
    if r.kind == "conv":
        k = "x".join(map(str, r.kernel))
        if r.is_depthwise:
            return f"dw conv {k}"
        return f"conv {k}" + (f" g={r.groups}" if r.groups > 1 else "")
    if r.op == "clone" and len(r.out_shape) == 5:
        return "shuffle copy"  # channel shuffle: (1, g, c/g, h, w) transposed, made contiguous
    return _OP_NAMES.get(r.op, r.op.rstrip("_"))


def _shape(s: tuple[int, ...]) -> str:
    """c x h x w of a batch-1 feature map (a shuffle's (1, g, c/g, h, w) view as c x h x w)."""
    if len(s) < 4:
        return "x".join(map(str, s[1:]))
    return f"{math.prod(s[1:-2])}x{s[-2]}x{s[-1]}"


def _g1(ops: list[OpRecord]) -> list[LintFinding]:
    out = []
    for r in ops:
        if r.kind != "conv" or r.kernel != (1, 1) or r.in_shape[1] == r.out_shape[1]:
            continue
        c1, c2 = r.in_shape[1], r.out_shape[1]
        h, w = r.out_shape[2:]
        extra = eq1_excess(h, w, c1, c2, r.groups)
        detail = f"{c1} -> {c2} at {h}x{w}; equal width at these MACs: c = {math.sqrt(c1 * c2):.0f}"
        out.append(LintFinding("G1", r.block, r.layer, op_name(r), detail, extra))
    return out


def _g2(ops: list[OpRecord]) -> list[LintFinding]:
    out = []
    for r in ops:
        if r.kind != "conv" or not 1 < r.groups < r.in_shape[1]:
            continue
        c1, c2, (h, w) = r.in_shape[1], r.out_shape[1], r.out_shape[2:]
        extra = eq2_overhead(h, w, c1, c2, r.groups)
        detail = f"{c1} -> {c2}, g={r.groups} at {h}x{w}; vs dense {c1} -> {c2 // r.groups}"
        out.append(LintFinding("G2", r.block, r.layer, op_name(r), detail, extra))
    return out


@dataclass(frozen=True)
class BlockShape:
    """A block's fragmentation: its operators, parallel branches and small fragments (G3)."""

    block: str
    operators: int
    branches: int
    small: tuple[str, ...]  # names of the operators under SMALL_SHARE of the block's MACs
    macs: int

    @property
    def flagged(self) -> bool:
        return self.operators > 1 and (self.branches > 1 or len(self.small) > 0)


def block_shapes(ops: list[OpRecord]) -> list[BlockShape]:
    """Fragmentation of every block, in execution order."""
    out = []
    for block in dict.fromkeys(r.block for r in ops):
        compute = [r for r in ops if r.block == block and r.is_compute]
        if not compute:
            continue
        macs = sum(r.macs for r in compute)
        per_level: dict[int, int] = {}
        for r in compute:
            per_level[r.level] = per_level.get(r.level, 0) + 1
        small = tuple(op_name(r) for r in compute if r.macs < SMALL_SHARE * macs)
        out.append(BlockShape(block, len(compute), max(per_level.values()), small, macs))
    return out


def _g3(ops: list[OpRecord]) -> list[LintFinding]:
    out = []
    for b in block_shapes(ops):
        if b.flagged:
            paths = "1 path" if b.branches == 1 else f"{b.branches} parallel branches"
            small = (
                f"; small (<{SMALL_SHARE:.0%} of its MACs): {', '.join(b.small)}" if b.small else ""
            )
            detail = f"{b.operators} operators, {paths}{small}"
            out.append(LintFinding("G3", b.block, b.block, "block", detail, 0.0, b.operators))
    return out


def is_elementwise(r: OpRecord) -> bool:
    """G4's element-wise operators, depthwise convolution included (Ma et al. 2018, G4)."""
    if r.kind == "bn":
        return r.memory_access > 0  # a BN folded into its conv costs nothing
    return r.kind in ("elementwise", "copy") or r.is_depthwise


def _g4(ops: list[OpRecord]) -> list[LintFinding]:
    out = []
    for r in ops:
        if is_elementwise(r):
            what = _G4_WHAT["dw" if r.kind == "conv" else r.kind]
            detail = f"{_shape(r.out_shape)}, {what}"
            out.append(
                LintFinding("G4", r.block, r.layer, op_name(r), detail, float(r.memory_access))
            )
    return out


@dataclass(frozen=True)
class GuidelineTotal:
    """What one guideline flags in the whole model."""

    rule: str
    fix: str
    count: int  # findings
    extra: float  # elements of memory access (G3: operators in flagged blocks)
    share: float | None  # of the model's memory access (None for G3)
    cost: str  # the total in words


@dataclass(frozen=True)
class LintReport:
    """Findings of G1-G4 for one model at one input size, with totals per guideline."""

    model: str
    input_size: tuple[int, int, int]
    macs: int
    memory_access: int
    findings: tuple[LintFinding, ...]
    totals: dict[str, GuidelineTotal]
    blocks: tuple[BlockShape, ...]

    def ranked(self, guideline: str) -> list[LintFinding]:
        """Findings of one guideline, largest cost first."""
        found = [f for f in self.findings if f.guideline == guideline]
        return sorted(found, key=lambda f: (-f.extra, -f.count))

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "macs": self.macs,
            "memory_access": self.memory_access,
            "totals": {g: asdict(t) for g, t in self.totals.items()},
            "findings": [asdict(f) | {"fix": FIXES[f.guideline]} for f in self.findings],
            "blocks": [asdict(b) | {"flagged": b.flagged} for b in self.blocks],
        }


def _totals(findings: list[LintFinding], blocks, memory_access: int) -> dict[str, GuidelineTotal]:
    totals = {}
    for g in GUIDELINES:
        found = [f for f in findings if f.guideline == g]
        if g == "G3":
            ops = sum(f.count for f in found)
            cost = f"{ops} ops in {len(found)}/{len(blocks)} blocks"
            totals[g] = GuidelineTotal(RULES[g], FIXES[g], len(found), float(ops), None, cost)
            continue
        extra = sum(f.extra for f in found)
        share = extra / memory_access if memory_access else 0.0
        cost = f"{extra / 1e6:,.3f} M {'elements' if g == 'G4' else 'extra elements'}"
        totals[g] = GuidelineTotal(RULES[g], FIXES[g], len(found), extra, share, cost)
    return totals


def _resolve(model_or_name, input_size) -> tuple[str, nn.Module, tuple[int, int, int]]:
    """(name, module, input size) of what ``lint`` checks; an input the model cannot take is
    refused in words before anything runs (``check_input_size``)."""
    from cnnlab.measure.request import check_request
    from cnnlab.models import create_model

    if not isinstance(model_or_name, (str, nn.Module)):
        raise BadType(f"lint() takes a model name or an nn.Module, got {type(model_or_name)}")
    size = check_request(model_or_name, input_size=input_size).input_size  # fits memory too
    if isinstance(model_or_name, str):
        return model_or_name, create_model(model_or_name), size
    return type(model_or_name).__name__, model_or_name, size


def lint(
    model_or_name: nn.Module | str, input_size: tuple[int, int, int] | None = None
) -> LintReport:
    """What G1-G4 flag in a model (or registered model name), per layer and in total.

    ``input_size`` defaults to the model's own (``cnnlab.models.registry.input_size_of``), so a
    name and the model ``create_model`` built from it are linted alike.
    """
    name, model, size = _resolve(model_or_name, input_size)
    ops = record_ops(model, size)
    memory_access = sum(r.memory_access for r in ops)
    blocks = block_shapes(ops)
    findings = _g1(ops) + _g2(ops) + _g3(ops) + _g4(ops)
    return LintReport(
        name,
        size,
        sum(r.macs for r in ops),
        memory_access,
        tuple(findings),
        _totals(findings, blocks, memory_access),
        tuple(blocks),
    )
