"""Layer 1: primitives (conv-norm-act, separable conv, channel shuffle, SE, pooling) and their costs."""

from cnnlab.ops.act import activation_names, get_activation
from cnnlab.ops.conv import ConvNormAct, SeparableConv
from cnnlab.ops.cost import Cx
from cnnlab.ops.pool import AvgPool, MaxPool
from cnnlab.ops.se import SqueezeExcite
from cnnlab.ops.shuffle import ChannelShuffle, channel_shuffle

__all__ = [
    "AvgPool",
    "ChannelShuffle",
    "ConvNormAct",
    "Cx",
    "MaxPool",
    "SeparableConv",
    "SqueezeExcite",
    "activation_names",
    "channel_shuffle",
    "get_activation",
]
