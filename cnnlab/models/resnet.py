"""ResNet (He et al. 2016, Table 1), ResNeXt (Xie et al. 2017) and SE-ResNet/ResNeXt (Hu et al. 2018).

Stem 7x7/2 conv 64 + BN + ReLU + 3x3/2 max pool, four stages of basic or bottleneck blocks
(planes 64, 128, 256, 512; the first block of stages 3-5 has stride 2), global pool, FC.

Stride placement. ``resnet50`` etc. put the stride in the bottleneck's 3x3 conv as torchvision
does ("ResNet v1.5"): ResNet-50 is 4.089 G MACs, torchvision's ``_ops``. ``resnet50_caffe`` etc.
put it in the first 1x1 conv as the original Caffe release did: 3.858 G, the 3.86 G that SENet's
Table 2 prints for its re-implementation. SE-ResNets use the Caffe placement (SENet's release,
timm ``legacy_seresnet*``), SE-ResNeXt the 3x3 one, as SENet's released models do. Caffe-style
models also use Caffe's stem pool (no padding, ceil rounding); the count is the same at 224.

SENet's GFLOPs include the SE pooling and scaling; this count has conv and FC MACs only, so
SE-ResNet-50 is 3.860 G here against the printed 3.87 G (within 1%).

``root`` (Deep Roots, Ioannou et al. 2017): the bottleneck's 3x3 conv becomes a root of ``root``
filter groups at the full width ``planes`` (groups only in the 3x3, followed by the 1x1 conv).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cnnlab.blocks.resnet import EXPANSION, STRIDE_IN, BasicBlock, Bottleneck, bottleneck_width
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.models.torchvision_port import register_port
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.pool import MaxPool

PLANES = (64, 128, 256, 512)  # He et al. 2016, Table 1: conv2_x .. conv5_x
STRIDES = (1, 2, 2, 2)
# He et al. 2016, Table 1: block type and blocks per stage
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
BLOCKS = ("basic", "bottleneck")


@dataclass(frozen=True, kw_only=True)
class ResNetConfig(NetConfig):
    """ResNet: block type, blocks per stage, ResNeXt groups/base width, SE, stride placement.

    ``se``: SE reduction ratio r (0 = no SE). ``root``: Deep Roots groups in the 3x3 (0 = off).
    ``stem_pool_ceil``: Caffe's 3x3/2 max pool without padding, ceil rounding.
    ``zero_init_residual``: zero the last BN gamma of each block (a training recipe, off).
    """

    SMALL_INPUT = True

    block: str = "bottleneck"
    layers: tuple[int, ...] = (3, 4, 6, 3)
    groups: int = 1
    base_width: int = 64
    stride_in: str = "3x3"
    se: int = 0
    root: int = 0
    stem: int = 64
    stem_pool_ceil: bool = False
    zero_init_residual: bool = False

    def check(self) -> None:
        super().check()
        if self.block not in BLOCKS:
            raise BadValue(f"unknown block {self.block!r}; choose 'basic' or 'bottleneck'")
        if self.stride_in not in STRIDE_IN:
            raise BadValue(
                f"unknown stride_in={self.stride_in!r}; choose '3x3' (torchvision, v1.5) or "
                f"'1x1' (original Caffe ResNet, SENet)"
            )
        if len(self.layers) != 4 or min(self.layers) < 1:
            raise BadValue(f"layers must be 4 block counts >= 1, got {self.layers}")
        if min(self.groups, self.base_width, self.stem) < 1 or self.se < 0 or self.root < 0:
            raise BadValue(
                f"groups, base_width, stem must be >= 1 and se, root >= 0; got groups="
                f"{self.groups}, base_width={self.base_width}, stem={self.stem}, se={self.se}, "
                f"root={self.root}"
            )
        if self.block == "basic" and (self.groups, self.base_width, self.root) != (1, 64, 0):
            raise BadValue(
                "basic blocks support only groups=1, base_width=64, root=0 (as torchvision); "
                "use block='bottleneck' for ResNeXt or Deep Roots"
            )
        if self.root and self.groups != 1:
            raise BadValue(f"set root={self.root} or groups={self.groups}, not both")

    def block_args(self, planes: int) -> dict:
        """Arguments of one block of a stage with ``planes``, beyond c_in/planes/stride."""
        args = dict(se=self.se, zero_init=self.zero_init_residual)
        if self.block == "basic":
            return args
        if self.root:
            width, groups = planes, self.root
        else:
            width, groups = bottleneck_width(planes, self.groups, self.base_width), self.groups
        return dict(args, width=width, groups=groups, stride_in=self.stride_in)


def plan(cfg: ResNetConfig) -> Plan:
    """Stem conv 7x7/2 + max pool 3x3/2, then the four stages of Table 1."""
    block = BasicBlock if cfg.block == "basic" else Bottleneck
    expansion = 1 if cfg.block == "basic" else EXPANSION
    pool = dict(k=3, stride=2, padding=0, ceil_mode=True) if cfg.stem_pool_ceil else {}
    if cfg.small_input:  # CIFAR-style: one 3x3 conv at stride 1, no pool
        layers = [Layer("stem", ConvNormAct, dict(c_in=cfg.in_chans, c_out=cfg.stem, k=3))]
    else:
        layers = [
            Layer("stem", ConvNormAct, dict(c_in=cfg.in_chans, c_out=cfg.stem, k=7, stride=2)),
            Layer("pool", MaxPool, pool),
        ]
    c_in = cfg.stem
    for i, (planes, n, s) in enumerate(zip(PLANES, cfg.layers, STRIDES)):
        for j in range(n):
            args = dict(c_in=c_in, planes=planes, stride=s if j == 0 else 1)
            layers.append(Layer(f"stage{i + 2}_{j}", block, dict(args, **cfg.block_args(planes))))
            c_in = planes * expansion
    return Plan(layers, c_in)


FAMILY = Family("resnet", ResNetConfig, plan)


def _torchvision_config(tv: nn.Module) -> ResNetConfig:
    """Block type, blocks per stage, groups and width per group read off a torchvision ResNet."""
    block = type(tv.layer1[0]).__name__
    dilated = [
        n for n, m in tv.named_modules() if isinstance(m, nn.Conv2d) and m.dilation != (1, 1)
    ]
    if dilated:
        raise BadValue(
            f"cannot port a dilated ResNet (replace_stride_with_dilation): {dilated[0]} has "
            f"dilation; build it without dilation"
        )
    return ResNetConfig(
        num_classes=tv.fc.out_features,
        in_chans=tv.conv1.in_channels,
        block="basic" if block == "BasicBlock" else "bottleneck",
        layers=tuple(len(getattr(tv, f"layer{i}")) for i in (1, 2, 3, 4)),
        groups=tv.groups,
        base_width=tv.base_width,
        stem=tv.conv1.out_channels,
    )


register_port("ResNet", FAMILY, _torchvision_config)


def _cfg(depth: int, **kw) -> ResNetConfig:
    block, layers = DEPTHS[depth]
    return ResNetConfig(block=block, layers=layers, **kw)


_CAFFE = dict(stride_in="1x1", stem_pool_ceil=True)
_TV = "torchvision IMAGENET1K_V1 weights metadata (_ops, num_params, 100 - acc@1)"
_SENET = "Hu et al. 2018 (SENet), Table 2"
_SENET_REIMPL = "Hu et al. 2018 (SENet), Table 2, re-implementation column"
_NOTE_SE = (
    "SENet's GFLOPs also count the SE pooling and scaling; this count has conv and FC MACs only"
)

MODELS = {
    # torchvision stride placement (v1.5); figures: torchvision's _ops and num_params
    "resnet18": (_cfg(18), PaperFigures(_TV, "1814", "11.689512", "30.242")),
    "resnet34": (_cfg(34), PaperFigures(_TV, "3664", "21.797672", "26.686")),
    "resnet50": (_cfg(50), PaperFigures(_TV, "4089", "25.557032", "23.870")),
    "resnet101": (_cfg(101), PaperFigures(_TV, "7801", "44.549160", "22.626")),
    "resnet152": (_cfg(152), PaperFigures(_TV, "11514", "60.192808", "21.688")),
    "resnext50_32x4d": (
        _cfg(50, groups=32, base_width=4),
        PaperFigures(_TV, "4230", "25.028904", "22.382"),
    ),
    "resnext101_32x8d": (
        _cfg(101, groups=32, base_width=8),
        PaperFigures(_TV, "16414", "88.791336", "20.688"),
    ),
    # the original Caffe placement (stride in the first 1x1)
    "resnet50_caffe": (_cfg(50, **_CAFFE), PaperFigures(_SENET_REIMPL, "3860", None, "24.80")),
    "resnet101_caffe": (_cfg(101, **_CAFFE), PaperFigures(_SENET_REIMPL, "7580", None, "23.17")),
    "resnet152_caffe": (_cfg(152, **_CAFFE), PaperFigures(_SENET_REIMPL, "11300", None, "22.42")),
    # SENet's released models: SE-ResNet Caffe placement, SE-ResNeXt stride in the 3x3
    "se_resnet50": (
        _cfg(50, se=16, **_CAFFE),
        PaperFigures(_SENET, "3870", None, "23.29", note=_NOTE_SE),
    ),
    "se_resnet101": (
        _cfg(101, se=16, **_CAFFE),
        PaperFigures(_SENET, "7600", None, "22.38", note=_NOTE_SE),
    ),
    "se_resnext50_32x4d": (
        _cfg(50, se=16, groups=32, base_width=4, stem_pool_ceil=True),
        PaperFigures(_SENET, "4250", None, "21.10", note=_NOTE_SE),
    ),
    # Deep Roots (Ioannou et al. 2017): root of 16 groups in every 3x3; no verified figure
    "root_resnet50_g16": (_cfg(50, root=16), None),
}

for _name, (_c, _fig) in MODELS.items():
    register_model(_name, FAMILY, _c, paper=_fig)
