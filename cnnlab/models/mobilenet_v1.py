"""MobileNet v1 (Howard et al. 2017), declared as the paper's Table 1 with width multiplier alpha.

Every width, conv1 included, is ``int(c * alpha)`` (§4.2; TF-slim's ``depth_multiplier``), which
reproduces Table 6's 569 / 325 / 149 / 41 M MACs (568.74 / 325.40 / 149.50 / 41.03 computed).
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.ops.act import check_activation
from cnnlab.ops.conv import SEPARABLE_MIDS, ConvNormAct, SeparableConv

# Table 1: the 13 depthwise-separable layers after conv1 (3x3 s2, 32 channels).
#   c, s
TABLE = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),  # Table 1 prints s2 here, but the map stays 7x7: the paper's known typo
)


def scaled(c: int, width: float) -> int:
    """Channels under width multiplier alpha: int(c * alpha), as TF-slim computes them."""
    return int(c * width)


@dataclass(frozen=True, kw_only=True)
class MobileNetV1Config(NetConfig):
    """MobileNet v1: width multiplier, stem width, the (c, s) table and what sits mid-separable.

    ``mid`` is what runs between the depthwise and the pointwise conv: the paper's BN + ReLU
    ("bn_relu"), or "bn", "relu", "none" (Xception's choice) to study that question.
    ``act`` names every activation (its "relu" in ``mid`` too), from :mod:`cnnlab.ops.act`.
    ``drop_rate`` is 0.0 as in timm; TF-slim keeps 0.999 of the features (drop 0.001), which is
    no regularisation to speak of, and the paper says small models need little of it (§4).
    """

    SMALL_INPUT = True

    width: float = 1.0
    stem: int = 32
    table: tuple[tuple[int, int], ...] = TABLE
    mid: str = "bn_relu"
    act: str = "relu"

    def check(self) -> None:
        super().check()
        check_activation(self.act)
        if self.width <= 0:
            raise BadValue(f"width multiplier must be > 0, got width={self.width}")
        if self.mid not in SEPARABLE_MIDS:
            raise BadValue(f"unknown mid={self.mid!r}; choose one of {', '.join(SEPARABLE_MIDS)}")
        if not self.table or any(len(row) != 2 for row in self.table):
            raise BadValue(f"table must be rows of (c, s), got {self.table}")
        widths = [("conv1", self.stem)] + [(f"sep{i}", c) for i, (c, _) in enumerate(self.table, 1)]
        for name, c in widths:
            if scaled(c, self.width) < 1:
                raise BadValue(
                    f"layer {name!r}: width={self.width} leaves int({c} * {self.width}) = "
                    f"{scaled(c, self.width)} channels; use a larger width or more channels"
                )


def plan(cfg: MobileNetV1Config) -> Plan:
    """Conv 3x3 s2, then the depthwise-separable layers of Table 1, each BN + ReLU."""
    c_in = scaled(cfg.stem, cfg.width)
    stem = dict(c_in=cfg.in_chans, c_out=c_in, k=3, stride=cfg.stem_stride(2), act=cfg.act)
    layers = [Layer("conv1", ConvNormAct, stem)]
    for i, (c, s) in enumerate(cfg.table, start=1):
        c_out = scaled(c, cfg.width)
        args = dict(
            c_in=c_in, c_out=c_out, k=3, stride=s, mid=cfg.mid, act=cfg.act, mid_act=cfg.act
        )
        layers.append(Layer(f"sep{i}", SeparableConv, args))
        c_in = c_out
    return Plan(layers, c_in)


FAMILY = Family("mobilenet_v1", MobileNetV1Config, plan)

# The registered variants; figures: Table 6 of Howard et al. 2017 (also in ShuffleNet v2 Table 8).
#   name: (width multiplier, MACs M, params M, top-1 err %)
VARIANTS = {
    "mobilenet_v1_x0_25": (0.25, "41", "0.5", "49.4"),
    "mobilenet_v1_x0_5": (0.5, "149", "1.3", "36.3"),
    "mobilenet_v1_x0_75": (0.75, "325", "2.6", "31.6"),
    "mobilenet_v1_x1_0": (1.0, "569", "4.2", "29.4"),
}

for _name, (_w, _macs, _params, _err) in VARIANTS.items():
    register_model(
        _name,
        FAMILY,
        MobileNetV1Config(width=_w),
        paper=PaperFigures("Howard et al. 2017, Table 6", _macs, _params, _err),
    )
