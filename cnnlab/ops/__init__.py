"""Layer 1: primitives and their costs: conv-norm-act, separable conv, channel shuffle, pooling,
normalization (BN variants, cross-process BN, GN/LN/WN), attention (SE, residual attention,
context encoding) and activations by name."""

from cnnlab.ops.act import activation_names, get_activation
from cnnlab.ops.conv import ConvNormAct, SeparableConv
from cnnlab.ops.cost import Cx
from cnnlab.ops.distributed_bn import DistributedBatchNorm2d, distributed_batch_norm
from cnnlab.ops.encoding import ContextEncoding, Encoding, se_loss
from cnnlab.ops.ghost_bn import GhostBatchNorm2d
from cnnlab.ops.norm import NORM_KINDS, apply_weight_norm, convert_norm, get_norm
from cnnlab.ops.pool import AvgPool, MaxPool
from cnnlab.ops.renorm import BatchRenorm2d
from cnnlab.ops.residual_attention import ResidualAttentionModule
from cnnlab.ops.se import SqueezeExcite
from cnnlab.ops.shuffle import ChannelShuffle, channel_shuffle

__all__ = [
    "NORM_KINDS",
    "AvgPool",
    "BatchRenorm2d",
    "ChannelShuffle",
    "ContextEncoding",
    "ConvNormAct",
    "Cx",
    "DistributedBatchNorm2d",
    "Encoding",
    "GhostBatchNorm2d",
    "MaxPool",
    "ResidualAttentionModule",
    "SeparableConv",
    "SqueezeExcite",
    "activation_names",
    "apply_weight_norm",
    "channel_shuffle",
    "convert_norm",
    "distributed_batch_norm",
    "get_activation",
    "get_norm",
    "se_loss",
]
