"""Batch norm folded into the convolution before it, exactly (Ioffe & Szegedy 2015, §3.1, Alg. 2).

In eval mode a BN is the affine map y = g (x - mu) / s + beta with s = sqrt(var + eps), so after a
conv it merges into the conv's weights and bias: one layer fewer to run, the same outputs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv computing conv then eval-mode BN: w' = w*g/s, b' = (b - mu)*g/s + beta, s = sqrt(var+eps)."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    fused = copy.deepcopy(conv)
    fused.weight = nn.Parameter(conv.weight.detach() * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias.detach())
    return fused


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    """A conv then a BN with running statistics: any BatchNorm2d subclass (batch renorm, ghost,
    cross-process) normalises with them in eval mode, exactly as BatchNorm2d does."""
    bn_ok = isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
    return isinstance(conv, nn.Conv2d) and bn_ok


def _fold_sequential(seq: nn.Sequential) -> int:
    """Fold, in place, every BN of ``seq`` that directly follows a conv; returns how many."""
    folded = 0
    names = list(seq._modules)
    for a, b in zip(names, names[1:]):
        conv, bn = seq._modules[a], seq._modules[b]
        if _foldable(conv, bn):
            seq._modules[a] = fold_conv_bn(conv, bn)
            seq._modules[b] = nn.Identity()
            folded += 1
    return folded


def fold_batch_norms(model: nn.Module) -> tuple[nn.Module, int, int]:
    """A copy of ``model`` (eval) with every BN that directly follows a conv in a Sequential folded.

    Returns (folded model, BNs folded, BNs left). A BN that does not directly follow a conv in
    an ``nn.Sequential`` stays (a torchvision ResNet's ``conv1``/``bn1`` attributes, say).
    """
    model = copy.deepcopy(model).eval()
    seqs = [m for m in model.modules() if isinstance(m, nn.Sequential)]
    folded = sum(_fold_sequential(seq) for seq in seqs)
    left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return model, folded, left
