"""EncNet's context encoding module and SE-loss (Zhang et al. 2018, CVPR).

Follows the authors' PyTorch-Encoding (``nn/encoding.py``, ``models/encnet.py``, ``nn/loss.py``):

- Encoding layer: residuals r_ik = x_i - d_k, weights a_ik = softmax_k(-s_k ||r_ik||^2),
  e_k = sum_i a_ik r_ik. The parameter ``scale`` is stored as the authors store it, the negated
  smoothing factor (scale_k = -s_k), initialised U(-1, 0); codewords U(-1/sqrt(KD), 1/sqrt(KD)).
- Context encoding module: conv1x1-BN-ReLU, Encoding, BN over the K codewords, ReLU, mean over K,
  FC + sigmoid gives gamma; output relu(x + x * gamma). The SE-loss head (FC -> classes) reads the
  same encoded vector.
- SE-loss: binary cross-entropy between sigmoid(se_logits) and the classes present in each
  image's label map (labels outside [0, num_classes), such as the ignore index 255, are no class,
  as the authors' ``torch.histc(target, nclass, 0, nclass - 1)``). EncNet adds it with weight 0.2.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import BadValue
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import Cx, act_cx, linear_cx, norm_cx

SE_WEIGHT = 0.2  # EncNet's weight of the SE-loss beside the segmentation loss (encnet.py)


class Encoding(nn.Module):
    """Encoding layer (Zhang et al. 2018): K codewords, soft-assigned residuals, K x D."""

    def __init__(self, D: int, K: int) -> None:
        super().__init__()
        if D < 1 or K < 1:
            raise BadValue(
                f"Encoding: needs D >= 1 features and K >= 1 codewords; got D={D}, K={K}"
            )
        self.D, self.K = D, K
        bound = 1.0 / math.sqrt(K * D)
        self.codewords = nn.Parameter(torch.empty(K, D).uniform_(-bound, bound))
        self.scale = nn.Parameter(torch.empty(K).uniform_(-1.0, 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) or (B, D, N) features -> (B, K, D) encoded residuals."""
        if x.shape[1] != self.D:
            raise BadValue(f"Encoding: expected D={self.D} channels, got input {tuple(x.shape)}")
        X = x.flatten(2)  # (B, D, N)
        B = X.shape[0]
        C = self.codewords
        # ||x_i - d_k||^2 = ||x_i||^2 + ||d_k||^2 - 2 d_k . x_i, as a (B, K, N) map
        norms = X.pow(2).sum(1).unsqueeze(1) + C.pow(2).sum(1).unsqueeze(1)
        dist = torch.baddbmm(norms, C.expand(B, -1, -1), X, alpha=-2.0)
        A = torch.softmax(dist * self.scale.unsqueeze(1), dim=1)  # over the K codewords
        # e_k = sum_i a_ik x_i - (sum_i a_ik) d_k
        E = torch.bmm(A, X.transpose(1, 2))
        return torch.addcmul(E, A.sum(2).unsqueeze(2), C, value=-1.0)

    @staticmethod
    def complexity(cx: Cx, D: int, K: int) -> Cx:
        """Cost of the forward above at batch 1: output state (c=K, h=D, w=1)."""
        n, kd = cx.h * cx.w, K * D
        mem = (
            (2 * D * n + D * n + n)  # pow, sum over D
            + (2 * kd + kd + K)  # codeword norms
            + (n + K + K * n)  # norms map
            + (K * n + kd + D * n + K * n)  # baddbmm
            + (K * n + K + K * n)
            + 2 * K * n  # * scale, softmax
            + (K * n + D * n + kd)  # bmm
            + (K * n + K)  # sum of weights
            + (kd + K + kd + kd)  # addcmul
        )
        return cx.add(c=K, h=D, w=1, params=kd + K, macs=2 * kd * n, memory_access=mem)


class ContextEncoding(nn.Module):
    """Context encoding module (Zhang et al. 2018, Fig. 2): encode, gamma = sigmoid(FC), relu(x + x*gamma)."""

    def __init__(self, c: int, K: int = 32, num_classes: int = 0) -> None:
        super().__init__()
        if num_classes < 0:
            raise BadValue(
                f"ContextEncoding: num_classes must be >= 0 (0: no SE head), got {num_classes}"
            )
        self.conv = ConvNormAct(c, c, 1)
        self.encoding = Encoding(c, K)
        self.bn = nn.BatchNorm1d(K)
        self.fc = nn.Linear(c, c)
        self.se_head = nn.Linear(c, num_classes) if num_classes > 0 else None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoded context vector (B, c): mean over K of relu(BN(Encoding(conv(x))))."""
        return F.relu(self.bn(self.encoding(self.conv(x))), inplace=True).mean(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._scale(x, self.encode(x))

    def forward_se(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(relu(x + x * gamma), SE-loss logits (B, num_classes)) for training with :func:`se_loss`."""
        if self.se_head is None:
            raise BadValue("ContextEncoding: built with num_classes=0, it has no SE-loss head")
        en = self.encode(x)
        return self._scale(x, en), self.se_head(en)

    def _scale(self, x: torch.Tensor, en: torch.Tensor) -> torch.Tensor:
        gamma = torch.sigmoid(self.fc(en))[:, :, None, None]
        return F.relu(torch.addcmul(x, x, gamma), inplace=True)  # x + x * gamma in one pass

    @staticmethod
    def complexity(cx: Cx, c: int, K: int = 32, num_classes: int = 0) -> Cx:
        """Cost of ``forward``; the SE head is a training-time head: its params only."""
        en = ConvNormAct.complexity(cx.branch(), c, c, 1)
        en = Encoding.complexity(en, c, K)  # (K, c, 1)
        en = act_cx(norm_cx(en, folded=False), "relu")  # BN over K, ReLU
        en = en.add(c=c, h=1, w=1, memory_access=en.numel + c)  # mean over K
        gamma = act_cx(linear_cx(en, c), "sigmoid")
        out = cx.merge([gamma], c, cx.h, cx.w).add(memory_access=3 * cx.numel + c)  # addcmul
        head = num_classes * c + num_classes if num_classes > 0 else 0
        return act_cx(out, "relu").add(params=head)


def class_presence(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, num_classes) float: 1 where class k occurs in image b's label map (B, H, W).

    Labels outside [0, num_classes), the ignore index 255 among them, count for no class.
    """
    if target.dim() < 2:
        raise BadValue(
            f"class_presence: target must be (B, ...) labels, got shape {tuple(target.shape)}"
        )
    flat = target.reshape(target.shape[0], -1).long()
    valid = (flat >= 0) & (flat < num_classes)
    presence = torch.zeros(flat.shape[0], num_classes, device=target.device)
    rows = torch.arange(flat.shape[0], device=target.device)[:, None].expand_as(flat)
    presence[rows[valid], flat[valid]] = 1.0
    return presence


def se_loss(se_logits: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """EncNet's semantic-encoding loss: BCE(sigmoid(se_logits), class presence of ``target``)."""
    if se_logits.shape != (target.shape[0], num_classes):
        raise BadValue(
            f"se_loss: se_logits must be (batch, num_classes) = ({target.shape[0]}, {num_classes}), "
            f"got {tuple(se_logits.shape)}"
        )
    presence = class_presence(target, num_classes).to(se_logits.dtype)
    return F.binary_cross_entropy_with_logits(se_logits, presence)
