"""Operator signatures: every operator a model executes, keyed by its type, shapes and attributes.

The unit of a latency table (nn-Meter, Zhang et al. 2021: a model's latency predicted as the
sum of its kernels' latencies). Operators are recorded by running the model once in eval mode under
a ``TorchDispatchMode`` that sees every ATen operator with its real shapes, so functional operators
written inside ``forward`` (``torch.cat``, ``chunk``, ``x + y``, ``channel_shuffle``, ``mean``) are
recorded as faithfully as modules are. Conventions:

- A convolution, the batch norm that reads its output and the activation that reads the norm's (or
  the conv's) output form one fused operator, ``conv2d+bn+relu_``, as nn-Meter fuses conv-bn-relu
  into one kernel: the three run back to back on the same tensor and are measured together. A norm
  or activation that follows anything else is an operator of its own.
- Views (reshape, transpose, split/chunk, flatten) and allocations are free and not recorded. The
  copy that makes a transposed 5-d tensor contiguous is the channel shuffle
  (ShuffleNet, Zhang et al. 2018, §3.1) and is recorded as ``channel_shuffle``.
- Shapes drop the batch dimension (the table states its batch size once); a ``_`` suffix marks an
  in-place ATen variant (``relu_``), as PyTorch names them.
- An ATen operator without a rule here keeps its ATen name and full shapes (``aten.softmax.int``)
  and is measured by replaying it on random tensors of those shapes: it is never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from cnnlab.measure.request import check_settings
from cnnlab.ops.shuffle import channel_shuffle

aten = torch.ops.aten

# Views and allocations: no kernel worth timing.
_FREE = {
    aten.view, aten._unsafe_view, aten._reshape_alias, aten.reshape, aten.transpose,
    aten.permute, aten.split, aten.split_with_sizes, aten.chunk, aten.slice, aten.select, aten.t,
    aten.expand, aten.unsqueeze, aten.squeeze, aten.flatten, aten.alias, aten.detach,
    aten.unbind, aten.empty, aten.empty_like, aten.lift_fresh,
}  # fmt: skip
_NORMS = {aten.native_batch_norm, aten._native_batch_norm_legit_no_training}
_BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
_ACTS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "hardsigmoid": nn.Hardsigmoid,
    "hardswish": nn.Hardswish,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}


def _idempotent(part: str) -> bool:
    """Clamps (relu, relu6, hardtanh) may be repeated in place on one input: the others are
    timed out of place alone, so that thousands of repeats cannot drive values to denormals."""
    name = part.removesuffix("_")
    return name in ("relu", "relu6") or name.startswith("hardtanh(")


@dataclass(frozen=True)
class OpSig:
    """One operator occurrence: kind, input shapes (no batch dim) and attributes; ``key`` names it.

    Two occurrences with equal keys are the same operator on the same shapes and share one entry
    of a latency table.
    """

    kind: str
    inputs: tuple[tuple[int, ...], ...]
    attrs: tuple[tuple[str, Any], ...] = ()
    replay: Any = field(default=None, compare=False, repr=False)  # generic ATen ops only

    @property
    def key(self) -> str:
        shapes = ",".join(_fmt_shape(s) for s in self.inputs)
        rest = "".join(f" {k}={_fmt(v)}" for k, v in self.attrs)
        return f"{self.kind} in={shapes}{rest}"

    def attr(self, name: str) -> Any:
        return dict(self.attrs)[name]

    def build(self, batch_size: int) -> tuple[nn.Module, tuple[int, int, int], int]:
        """A module that runs this operator alone, its input size (C, H, W) and batch size."""
        if self.replay is not None:
            return self.replay.build()
        head = self.kind.split("+")[0]
        if head in _BUILDERS:
            return _BUILDERS[head](self, batch_size), _input_size(self.inputs[0]), batch_size
        return _act_module(self.kind, standalone=True), _input_size(self.inputs[0]), batch_size


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape) if shape else "scalar"


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (tuple, list)):
        return ",".join(_fmt(x) for x in v)
    return str(v).replace(" ", "")


def _input_size(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A recorded input shape as measure_latency's (C, H, W): (C,) becomes (C, 1, 1)."""
    return tuple(shape) + (1,) * (3 - len(shape))  # type: ignore[return-value]


def _pair(v, default: Any = 0) -> Any:
    """A 2-d conv/pool argument as one int when square (``3``), else the pair ``(3, 1)``."""
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    if not v:
        return default
    a, b = int(v[0]), int(v[-1])
    return a if a == b else (a, b)


# --- measurement modules, one per operator kind -------------------------------------------------


def _act_module(part: str, *, standalone: bool = False) -> nn.Module:
    """The nn module of an activation part such as ``relu6_`` or ``hardtanh(-1.0,1.0)``."""
    inplace = part.endswith("_") and (not standalone or _idempotent(part))
    name = part.removesuffix("_")
    if name == "relu6":
        return nn.ReLU6(inplace=inplace)
    if name.startswith("hardtanh("):
        lo, hi = (float(v) for v in name[len("hardtanh(") : -1].split(","))
        return nn.Hardtanh(lo, hi, inplace=inplace)
    cls = _ACTS[name]
    return cls(inplace=inplace) if inplace and cls not in (nn.Sigmoid, nn.GELU, nn.Tanh) else cls()


def _conv(sig: OpSig, batch_size: int) -> nn.Module:
    c = sig.inputs[0][0]
    a = dict(sig.attrs)
    parts = sig.kind.split("+")
    layers: list[nn.Module] = [
        nn.Conv2d(c, a["out"], a["k"], a["s"], a["p"], a["d"], groups=a["g"], bias=a["bias"])
    ]
    if "bn" in parts:
        layers.append(nn.BatchNorm2d(a["out"]))
    layers += [_act_module(p) for p in parts[1:] if p != "bn"]
    return nn.Sequential(*layers)


def _norm(sig: OpSig, batch_size: int) -> nn.Module:
    parts = sig.kind.split("+")
    return nn.Sequential(nn.BatchNorm2d(sig.inputs[0][0]), *(_act_module(p) for p in parts[1:]))


class _WithOthers(nn.Module):
    """Runs ``fn(x, *others)``; the other inputs are random buffers of the recorded shapes."""

    def __init__(self, fn, shapes: tuple[tuple[int, ...], ...], batch_size: int, **kw) -> None:
        super().__init__()
        self.fn, self.kw, self.n = fn, kw, len(shapes)
        for i, shape in enumerate(shapes):
            self.register_buffer(f"other{i}", torch.randn(batch_size, *shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, *(getattr(self, f"other{i}") for i in range(self.n)), **self.kw)


def _binary(sig: OpSig, batch_size: int) -> nn.Module:
    """``x (op) other``; an in-place variant is timed out of place (no drift over repeats)."""
    return _WithOthers(_BINARY[sig.kind.removesuffix("_")], sig.inputs[1:], batch_size)


def _cat(x: torch.Tensor, *others: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.cat((x, *others), dim=dim)


def _concat(sig: OpSig, batch_size: int) -> nn.Module:
    return _WithOthers(_cat, sig.inputs[1:], batch_size, dim=sig.attr("dim"))


class _Fn(nn.Module):
    """Runs ``fn(x, **kw)``: a functional operator timed as the model runs it."""

    def __init__(self, fn, **kw) -> None:
        super().__init__()
        self.fn, self.kw = fn, kw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, **self.kw)


def _mean(x: torch.Tensor, dims: tuple[int, ...], keepdim: bool) -> torch.Tensor:
    return x.mean(dims, keepdim=keepdim)


def _flat_linear(sig: OpSig, batch_size: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(1), nn.Linear(sig.inputs[0][0], sig.attr("out"), sig.attr("bias"))
    )


_BUILDERS = {
    "conv2d": _conv,
    "bn": _norm,
    **{name: _binary for b in _BINARY for name in (b, f"{b}_")},
    "cat": _concat,
    "channel_shuffle": lambda s, b: _Fn(channel_shuffle, groups=s.attr("g")),
    "mean": lambda s, b: _Fn(_mean, dims=s.attr("dims"), keepdim=s.attr("keepdim")),
    "linear": _flat_linear,
    "max_pool2d": lambda s, b: nn.MaxPool2d(
        s.attr("k"), s.attr("s"), s.attr("p"), s.attr("d"), ceil_mode=s.attr("ceil")
    ),
    "avg_pool2d": lambda s, b: nn.AvgPool2d(
        s.attr("k"), s.attr("s"), s.attr("p"), s.attr("ceil"), s.attr("pad_in_mean")
    ),
    "adaptive_avg_pool2d": lambda s, b: nn.AdaptiveAvgPool2d(s.attr("out")),
}


class _Replay:
    """A generic ATen operator replayed on random tensors of its recorded shapes (with batch)."""

    def __init__(self, func, args, kwargs) -> None:
        leaves, _ = tree_flatten((args, kwargs))
        self.func = func
        self.specs = [(tuple(t.shape), t.dtype) for t in leaves if isinstance(t, torch.Tensor)]
        counter = iter(range(len(self.specs)))
        self.template = tree_map(
            lambda v: _Slot(next(counter)) if isinstance(v, torch.Tensor) else v, (args, kwargs)
        )

    def build(self) -> tuple[nn.Module, tuple[int, int, int], int]:
        shape = self.specs[0][0] if self.specs else ()
        numel = max(1, int(torch.Size(shape).numel()))
        return _ReplayModule(self.func, self.template, self.specs), (1, 1, numel), 1


@dataclass(frozen=True)
class _Slot:
    index: int


class _ReplayModule(nn.Module):
    """Calls ``func`` with the recorded non-tensor arguments; input 0 is the timed input."""

    def __init__(self, func, template, specs) -> None:
        super().__init__()
        self.func, self.template = func, template
        self.shape0, self.dtype0 = specs[0] if specs else ((), torch.float32)
        self.n = len(specs)
        for i, (shape, dtype) in enumerate(specs[1:], start=1):
            t = torch.randn(shape) if dtype.is_floating_point else torch.zeros(shape)
            self.register_buffer(f"t{i}", t.to(dtype))

    def forward(self, x: torch.Tensor) -> Any:
        tensors = [x.reshape(self.shape0).to(self.dtype0)] + [
            getattr(self, f"t{i}") for i in range(1, self.n)
        ]
        args, kwargs = tree_map(
            lambda v: tensors[v.index] if isinstance(v, _Slot) else v, self.template
        )
        return self.func(*args, **kwargs)


# --- recording ----------------------------------------------------------------------------------


def _bind(func, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The arguments of an ATen call by schema name, defaults filled in."""
    out: dict[str, Any] = {}
    for i, a in enumerate(func._schema.arguments):
        if i < len(args):
            out[a.name] = args[i]
        elif a.name in kwargs:
            out[a.name] = kwargs[a.name]
        elif a.has_default_value():
            out[a.name] = a.default_value
    return out


def _same(a: Any, b: torch.Tensor | None) -> bool:
    """Is ``a`` the very tensor ``b`` (held alive by the recorder, so its storage is not reused)."""
    if not isinstance(a, torch.Tensor) or b is None:
        return False
    return a is b or (
        a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()
    )


def _act_part(func, a: dict[str, Any]) -> str | None:
    """The activation of an ATen call (``relu_``, ``relu6``, ``hardtanh(-1.0,1.0)``) or None."""
    name = func.overloadpacket.__name__
    base, suffix = name.removesuffix("_"), "_" if name.endswith("_") else ""
    if base == "hardtanh":
        lo, hi = float(a["min_val"]), float(a["max_val"])
        return ("relu6" if (lo, hi) == (0.0, 6.0) else f"hardtanh({lo},{hi})") + suffix
    if base == "gelu" and a.get("approximate", "none") != "none":
        return None
    return name if base in _ACTS else None


class _Recorder(TorchDispatchMode):
    """Records the operators of one forward pass as :class:`OpSig`, fusing conv-bn-act chains."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch = batch_size
        self.ops: list[OpSig] = []
        self._last: torch.Tensor | None = None  # output of the last recorded operator

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.overloadpacket in _FREE:
            return out
        a = _bind(func, args, kwargs)
        first = next((t for t in tree_flatten(args)[0] if isinstance(t, torch.Tensor)), None)
        part = "bn" if func.overloadpacket in _NORMS else _act_part(func, a)
        if part is not None and _same(first, self._last) and self._fuses(part):
            self.ops[-1] = replace(self.ops[-1], kind=f"{self.ops[-1].kind}+{part}")
        else:
            self.ops.append(self._signature(func, a, args, kwargs, part))
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        self._last = outs[0] if outs else None
        return out

    def _fuses(self, part: str) -> bool:
        """Can the last operator take ``part``: a bn right after a conv, one act after either."""
        if not self.ops:
            return False
        parts = self.ops[-1].kind.split("+")
        if part == "bn":
            return parts == ["conv2d"]
        return parts[0] in ("conv2d", "bn") and set(parts) <= {"conv2d", "bn"}

    def _batched(self, t: Any, dims: tuple[int, ...] = (4,)) -> bool:
        return isinstance(t, torch.Tensor) and t.dim() in dims and t.shape[0] == self.batch

    def _signature(self, func, a: dict, args: tuple, kwargs: dict, part: str | None) -> OpSig:
        sig = self._known(func, a, part)
        return sig if sig is not None else _generic(func, args, kwargs)

    def _known(self, func, a: dict, part: str | None) -> OpSig | None:
        p, name = func.overloadpacket, func.overloadpacket.__name__
        x = a.get("self", a.get("input"))
        if part is not None and self._batched(x, (2, 3, 4)):
            return OpSig(part, (tuple(x.shape[1:]),))
        if p in (aten.convolution, aten._convolution) and self._batched(x):
            return None if a["transposed"] else _conv_sig(x, a)
        if name.removesuffix("_") in _BINARY and func._overloadname == "Tensor":
            return self._binary_sig(name, x, a)
        if p is aten.cat:
            return self._cat_sig(a["tensors"], a["dim"])
        if p is aten.clone and self._batched(x, (5,)) and _is_shuffle(x):
            c = x.shape[1] * x.shape[2]
            return OpSig("channel_shuffle", ((c, *x.shape[3:]),), (("g", x.shape[2]),))
        if p is aten.mean and a.get("dim") and self._batched(x):
            dims = tuple(sorted(d % 4 for d in a["dim"]))
            if 0 not in dims and a.get("dtype") is None:
                return OpSig(
                    "mean", (tuple(x.shape[1:]),), (("dims", dims), ("keepdim", a["keepdim"]))
                )
        if p in (aten.addmm, aten.mm):
            return self._linear_sig(a)
        if self._batched(x):
            return _pool_sig(p, x, a)
        return None

    def _binary_sig(self, name: str, x: Any, a: dict) -> OpSig | None:
        other = a["other"]
        if a.get("alpha", 1) != 1 or not self._batched(x) or not self._batched(other):
            return None
        return OpSig(name, (tuple(x.shape[1:]), tuple(other.shape[1:])))

    def _cat_sig(self, tensors: list, dim: int) -> OpSig | None:
        if not all(self._batched(t) for t in tensors) or dim % 4 == 0:
            return None
        return OpSig("cat", tuple(tuple(t.shape[1:]) for t in tensors), (("dim", dim % 4),))

    def _linear_sig(self, a: dict) -> OpSig | None:
        x, w = a["mat1"] if "mat1" in a else a["self"], a["mat2"]
        bias = a["self"] if "mat1" in a else None
        if not self._batched(x, (2,)) or w.dim() != 2:
            return None
        if bias is not None and tuple(bias.shape) != (w.shape[1],):
            return None
        attrs = (("out", w.shape[1]), ("bias", bias is not None))
        return OpSig("linear", ((w.shape[0],),), attrs)


def _conv_sig(x: torch.Tensor, a: dict) -> OpSig:
    w = a["weight"]
    attrs = (
        ("out", w.shape[0]),
        ("k", _pair(tuple(w.shape[2:]))),
        ("s", _pair(a["stride"], 1)),
        ("p", _pair(a["padding"])),
        ("d", _pair(a["dilation"], 1)),
        ("g", a["groups"]),
        ("bias", a["bias"] is not None),
    )
    return OpSig("conv2d", (tuple(x.shape[1:]),), attrs)


def _is_shuffle(x: torch.Tensor) -> bool:
    """A (b, c/g, g, h, w) view of a contiguous (b, g, c/g, h, w) tensor: a shuffle's transpose."""
    return not x.is_contiguous() and x.transpose(1, 2).is_contiguous()


def _pool_sig(p, x: torch.Tensor, a: dict) -> OpSig | None:
    shape = (tuple(x.shape[1:]),)
    if p in (aten.max_pool2d, aten.max_pool2d_with_indices):
        k = _pair(a["kernel_size"])
        attrs = (("k", k), ("s", _pair(a["stride"], k)), ("p", _pair(a["padding"])))
        return OpSig(
            "max_pool2d", shape, (*attrs, ("d", _pair(a["dilation"], 1)), ("ceil", a["ceil_mode"]))
        )
    if p is aten.avg_pool2d and a.get("divisor_override") is None:
        k = _pair(a["kernel_size"])
        attrs = (("k", k), ("s", _pair(a["stride"], k)), ("p", _pair(a["padding"])))
        extra = (("ceil", a["ceil_mode"]), ("pad_in_mean", a["count_include_pad"]))
        return OpSig("avg_pool2d", shape, (*attrs, *extra))
    if p in (aten.adaptive_avg_pool2d, aten._adaptive_avg_pool2d):
        return OpSig("adaptive_avg_pool2d", shape, (("out", _pair(a["output_size"])),))
    return None


def _generic(func, args: tuple, kwargs: dict) -> OpSig:
    """An operator without a rule: its ATen name, full shapes and other arguments, replayed."""
    leaves = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
    rest = tree_map(lambda v: "T" if isinstance(v, torch.Tensor) else v, (args, kwargs))
    shapes = tuple(tuple(t.shape) for t in leaves)
    return OpSig(str(func), shapes, (("args", repr(rest)),), replay=_Replay(func, args, kwargs))


def extract_ops(
    model: nn.Module, input_size: tuple[int, int, int], batch_size: int = 1
) -> list[OpSig]:
    """Every operator ``model`` executes in eval mode on one batch, in execution order."""
    size = check_settings(input_size, batch_size, None, "inference")
    param = next(model.parameters(), None)
    x = torch.zeros(batch_size, *size, device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    recorder = _Recorder(batch_size)
    try:
        with torch.no_grad(), recorder:
            model(x)
    finally:
        model.train(was_training)
    return recorder.ops
