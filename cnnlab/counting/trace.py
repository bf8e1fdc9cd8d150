"""Complexity counted by running the model: the independent check of the analytic cost models.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (conv and matmul FLOPs, halved).
Memory access and activations come from a dispatch mode that applies the conventions of
:mod:`cnnlab.ops.cost` to every ATen operator executed at batch 1 in eval mode. Unknown operators
raise instead of counting zero, so a new op can never be silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Operators that only create views or metadata: no memory traffic.
_VIEWS = {
    aten.view,
    aten._unsafe_view,
    aten._reshape_alias,
    aten.reshape,
    aten.transpose,
    aten.permute,
    aten.split,
    aten.split_with_sizes,
    aten.chunk,
    aten.slice,
    aten.select,
    aten.t,
    aten.expand,
    aten.unsqueeze,
    aten.squeeze,
    aten.flatten,
    aten.alias,
    aten.detach,
    aten.unbind,
    aten.empty,
}
# Operators that read their tensor inputs and write their first output.
_STREAMING = {
    aten.relu,
    aten.relu_,
    aten.hardtanh,
    aten.hardtanh_,
    aten.sigmoid,
    aten.sigmoid_,
    aten.hardsigmoid,
    aten.hardsigmoid_,
    aten.hardswish,
    aten.hardswish_,
    aten.silu,
    aten.silu_,
    aten.leaky_relu,
    aten.leaky_relu_,
    # the composite activations of cnnlab.ops.act (activation search, trainable Swish)
    aten.tanh,
    aten.sin,
    aten.cos,
    aten.atan,
    aten.asinh,
    aten.sinc,
    aten.pow,
    aten.maximum,
    aten.minimum,
    aten.sub,
    aten.div,
    # attention modules: (1 + M) * T and x + x * gamma in one pass, bilinear upsampling, softmax
    aten.addcmul,
    aten.upsample_bilinear2d,
    aten._softmax,
    aten.sum,
    aten.bmm,
    aten.baddbmm,
    aten.add,
    aten.add_,
    aten.mul,
    aten.mul_,
    aten.cat,
    # CondenseNet's index layer: reads the input and the index, writes the selected channels
    aten.index_select,
    # TF 'SAME' padding done explicitly (NAS cells: stride 2 on an even size): one copy
    aten.constant_pad_nd,
    aten.clone,
    aten.contiguous,
    aten.max_pool2d,
    aten.max_pool2d_with_indices,
    aten.avg_pool2d,
    aten.adaptive_avg_pool2d,
    aten._adaptive_avg_pool2d,
    aten.mean,
    aten.addmm,
    aten.mm,
    aten.native_group_norm,
    aten.native_layer_norm,
    aten.convolution,
    aten._convolution,
    aten.mkldnn_convolution,
}
_CONVS = {aten.convolution, aten._convolution, aten.mkldnn_convolution}
_MATMULS = {aten.addmm, aten.mm}
_BATCH_NORMS = {aten._native_batch_norm_legit_no_training, aten.native_batch_norm}


def tensors_in(obj) -> list[torch.Tensor]:
    """The tensors of an ATen call's arguments or outputs (nested lists and tuples flattened)."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in tensors_in(o)]
    return []


class _MemoryCounter(TorchDispatchMode):
    """Counts memory access (elements) and conv/linear output elements of executed ATen ops."""

    def __init__(self) -> None:
        super().__init__()
        self.memory_access = 0
        self.activations = 0
        # Outputs of convolutions by id, held alive so that an id cannot be reused meanwhile.
        self._conv_outputs: dict[int, torch.Tensor] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        first = tensors_in(out)[0] if tensors_in(out) else None
        if packet in _VIEWS:
            return out
        if packet in _BATCH_NORMS:
            x, weight = args[0], args[1]
            if id(x) not in self._conv_outputs:  # not foldable: a real element-wise pass
                self.memory_access += 2 * x.numel() + 2 * weight.numel()
            else:
                self._conv_outputs[id(first)] = first
            return out
        if packet not in _STREAMING:
            raise NotImplementedError(
                f"trace: no memory-access rule for ATen operator {func}; add one to cnnlab.counting.trace"
            )
        reads = sum(t.numel() for t in tensors_in(args) + tensors_in(list(kwargs.values())))
        self.memory_access += reads + first.numel()
        # an in-place op (relu_) changes a conv output: a BN after it can no longer be folded
        self._conv_outputs.pop(id(first), None)
        if packet in _CONVS:
            self._conv_outputs[id(first)] = first
        if packet in _CONVS or packet in _MATMULS:
            self.activations += first.numel()
        return out


@dataclass(frozen=True)
class TracedCounts:
    """Counts obtained by executing a model once at batch 1."""

    params: int
    macs: int
    activations: int
    memory_access: int


def traced_counts(model: nn.Module, input_size: tuple[int, int, int]) -> TracedCounts:
    """Run ``model`` in eval mode on one zero input and count what actually executed."""
    from torch.utils.flop_counter import FlopCounterMode  # imports triton: only when tracing

    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_size)
    flops = FlopCounterMode(display=False)
    mem = _MemoryCounter()
    try:
        with torch.no_grad(), flops, mem:
            model(x)
    finally:
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return TracedCounts(params, flops.get_total_flops() // 2, mem.activations, mem.memory_access)
