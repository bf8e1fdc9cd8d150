"""Analytic cost of primitive layers, computed from arguments and shapes alone (no tensors).

Each ``*_cx`` function takes the cost state ``cx`` of the layer's input and returns the state of
its output: the new shape plus the cost added. Counting conventions (docs/conventions.md):

- ``macs``: multiply-accumulates of convolution and linear layers at batch 1 (the "FLOPs" of the
  ShuffleNet, MobileNet and NASNet papers). Biases, BN, activations, pooling and adds count zero.
- ``memory_access``: ShuffleNet v2's memory access cost, in elements: for every operator of the
  inference graph, inputs read + outputs written + parameters read. A batch norm that directly
  follows a convolution is folded into it and counts nothing; views (split, flatten) count
  nothing; a channel shuffle is one copy (read + write).
- ``activations``: output elements of convolution and linear layers (as pycls counts them).
- ``params``: every trainable parameter, BN's gamma and beta included.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from cnnlab.errors import BadValue
from cnnlab.ops.act import activation_cost


class Cx(NamedTuple):
    """A feature map shape (c, h, w) at batch 1 and the cost accumulated to produce it.

    A named tuple, not a dataclass: a model's count builds tens of thousands of these, and tuple
    construction is several times cheaper than a frozen dataclass's.
    """

    c: int
    h: int
    w: int
    params: int = 0
    macs: int = 0
    activations: int = 0
    memory_access: int = 0

    @property
    def numel(self) -> int:
        return self.c * self.h * self.w

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.c, self.h, self.w)

    def branch(self) -> Cx:
        """The same shape with zero cost: the start of a branch or of a layer's own count."""
        return Cx(self.c, self.h, self.w)

    def add(self, *, c=None, h=None, w=None, params=0, macs=0, activations=0, memory_access=0):
        """A new state: shape fields replaced where given, costs added."""
        return Cx(
            self.c if c is None else c,
            self.h if h is None else h,
            self.w if w is None else w,
            self.params + params,
            self.macs + macs,
            self.activations + activations,
            self.memory_access + memory_access,
        )

    def merge(self, branches: Iterable[Cx], c: int, h: int, w: int) -> Cx:
        """Add the costs of ``branches`` (each started with ``branch()``) and take shape (c, h, w)."""
        params, macs, acts, mem = self.params, self.macs, self.activations, self.memory_access
        for b in branches:
            params += b.params
            macs += b.macs
            acts += b.activations
            mem += b.memory_access
        return Cx(c, h, w, params, macs, acts, mem)


def pair(v: int | tuple[int, int]) -> tuple[int, int]:
    """A kernel size, stride, padding or dilation as (height, width)."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_out(size: int, k: int, stride: int, padding: int, dilation: int = 1, ceil: bool = False):
    """Output length of a convolution or pooling window along one axis (PyTorch's formula)."""
    span = size + 2 * padding - dilation * (k - 1) - 1
    out = -(-span // stride) + 1 if ceil else span // stride + 1
    if ceil and (out - 1) * stride >= size + padding:
        out -= 1  # PyTorch drops a last window that would start inside the right padding
    if out < 1:
        raise BadValue(
            f"input of size {size} is too small for a window of {k} with stride {stride} and "
            f"padding {padding}; use a larger input size"
        )
    return out


def check_groups(what: str, c_in: int, c_out: int, groups: int) -> None:
    """Refuse a grouped layer whose channel counts are not divisible by its groups."""
    if groups < 1 or c_in % groups or c_out % groups:
        raise BadValue(
            f"{what}: in_channels={c_in} and out_channels={c_out} must both be divisible by "
            f"groups={groups}; choose channel counts that are multiples of the groups"
        )


def conv2d_cx(
    cx: Cx,
    c_out: int,
    k: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | None = None,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    bias: bool = False,
) -> Cx:
    """Conv2d: weights c_out*(c_in/g)*kh*kw; MACs h_out*w_out*c_out*(c_in/g)*kh*kw."""
    check_groups("conv", cx.c, c_out, groups)
    (kh, kw), (sh, sw), (dh, dw) = pair(k), pair(stride), pair(dilation)
    ph, pw = pair(padding) if padding is not None else (dh * (kh - 1) // 2, dw * (kw - 1) // 2)
    h = conv_out(cx.h, kh, sh, ph, dh)
    w = conv_out(cx.w, kw, sw, pw, dw)
    weights = c_out * (cx.c // groups) * kh * kw
    params = weights + (c_out if bias else 0)
    out = c_out * h * w
    return cx.add(
        c=c_out,
        h=h,
        w=w,
        params=params,
        macs=weights * h * w,
        activations=out,
        memory_access=cx.numel + out + params,
    )


def norm_cx(cx: Cx, *, folded: bool = True) -> Cx:
    """BatchNorm2d: 2c parameters; free when folded into the preceding conv, else read + write."""
    return cx.add(params=2 * cx.c, memory_access=0 if folded else 2 * cx.numel + 2 * cx.c)


def elementwise_cx(cx: Cx, n_inputs: int = 1) -> Cx:
    """An element-wise operator (activation, add): reads its inputs, writes one output."""
    return cx.add(memory_access=(n_inputs + 1) * cx.numel)


def act_cx(cx: Cx, act: str | None) -> Cx:
    """An activation function by name, or nothing when ``act`` is None.

    Memory access is what its eager forward performs: one read + write for ReLU-like functions,
    more for composite ones (x * sigmoid(beta x): three ATen passes); see cnnlab.ops.act.
    """
    if act is None:
        return cx
    params, memory_access = activation_cost(act, cx.numel)
    return cx.add(params=params, memory_access=memory_access)


def norm_act_cx(cx: Cx, norm: bool, act: str | None) -> Cx:
    """A BatchNorm2d folded into the preceding conv (when ``norm``), then an activation (unless
    ``act`` is None): the tail of every conv-norm-act layer."""
    return act_cx(norm_cx(cx) if norm else cx, act)


def pool_cx(cx: Cx, k: int, stride: int, padding: int = 0, *, ceil_mode: bool = False) -> Cx:
    """Max or average pooling: reads the input, writes the output, no parameters."""
    h = conv_out(cx.h, k, stride, padding, ceil=ceil_mode)
    w = conv_out(cx.w, k, stride, padding, ceil=ceil_mode)
    return cx.add(h=h, w=w, memory_access=cx.numel + cx.c * h * w)


def global_pool_cx(cx: Cx) -> Cx:
    """Global average pooling to 1x1."""
    return cx.add(h=1, w=1, memory_access=cx.numel + cx.c)


def linear_cx(cx: Cx, c_out: int, *, bias: bool = True) -> Cx:
    """Fully connected layer on a flattened input of cx.numel features."""
    c_in = cx.numel
    params = c_in * c_out + (c_out if bias else 0)
    return cx.add(
        c=c_out,
        h=1,
        w=1,
        params=params,
        macs=c_in * c_out,
        activations=c_out,
        memory_access=c_in + c_out + params,
    )


def concat_cx(cx: Cx, branches: list[Cx]) -> Cx:
    """Concatenate branch outputs along channels: reads every input, writes the output."""
    h, w = branches[0].h, branches[0].w
    c = 0
    for b in branches:
        if b.h != h or b.w != w:
            shapes = [b.shape for b in branches]
            raise BadValue(f"concat: branch outputs differ in spatial size: {shapes}")
        c += b.c
    return cx.merge(branches, c, h, w).add(memory_access=2 * c * h * w)


def shuffle_cx(cx: Cx) -> Cx:
    """Channel shuffle (reshape, transpose, flatten): one copy of the feature map."""
    return cx.add(memory_access=2 * cx.numel)


def channel_scale_cx(cx: Cx) -> Cx:
    """Multiply each channel of the feature map by a gate value: reads x and the gate, writes."""
    return cx.add(memory_access=2 * cx.numel + cx.c)
