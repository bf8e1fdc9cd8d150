"""MobileNet v2 (Sandler et al. 2018), declared as the paper's Table 2 with torchvision's rounding.

Channels are ``make_divisible(c * width, 8)`` as in torchvision and TF-slim. At width 1.4 this
gives 582.2 M MACs where the paper prints 585 M (TF-slim's own table also gives 582 M); without
rounding the count is 571.7 M, so the paper's figure is not reproduced by either rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.blocks.inverted_residual import InvertedResidual
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.ops.conv import ConvNormAct

# Sandler et al. 2018, Table 2: expansion t, output channels c, repeats n, first stride s.
#        t,   c, n, s
TABLE = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never more than 10% below ``v`` (TF-slim rule)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


@dataclass(frozen=True, kw_only=True)
class MobileNetV2Config(NetConfig):
    """MobileNet v2: width multiplier, the [t, c, n, s] table, stem and last-layer widths."""

    SMALL_INPUT = True

    width: float = 1.0
    table: tuple[tuple[int, int, int, int], ...] = TABLE
    stem: int = 32
    last: int = 1280
    round_to: int = 8
    act: str = "relu6"
    drop_rate: float = 0.2

    def check(self) -> None:
        super().check()
        if self.width <= 0:
            raise BadValue(f"width multiplier must be > 0, got {self.width}")
        if self.round_to < 1:
            raise BadValue(f"round_to must be >= 1, got {self.round_to}")
        for row in self.table:
            if len(row) != 4 or min(row) < 1:
                raise BadValue(f"table rows are (t, c, n, s) with all values >= 1; got {row}")

    def channels(self, c: float) -> int:
        return make_divisible(c * self.width, self.round_to)


def plan(cfg: MobileNetV2Config) -> Plan:
    """Conv 3x3 s2, the inverted-residual stages of the table, conv 1x1 to the last width."""
    c_in = cfg.channels(cfg.stem)
    layers = [
        Layer(
            "stem",
            ConvNormAct,
            dict(c_in=cfg.in_chans, c_out=c_in, stride=cfg.stem_stride(2), act=cfg.act),
        )
    ]
    for i, (t, c, n, s) in enumerate(cfg.table):
        c_out = cfg.channels(c)
        for j in range(n):
            args = dict(c_in=c_in, c_out=c_out, stride=s if j == 0 else 1, t=t, act=cfg.act)
            layers.append(Layer(f"stage{i + 1}_{j}", InvertedResidual, args))
            c_in = c_out
    # the last layer is widened with the multiplier but never narrowed (Sandler et al. §5.1)
    last = make_divisible(cfg.last * max(1.0, cfg.width), cfg.round_to)
    layers.append(Layer("conv_last", ConvNormAct, dict(c_in=c_in, c_out=last, k=1, act=cfg.act)))
    return Plan(layers, last)


FAMILY = Family("mobilenet_v2", MobileNetV2Config, plan)

_PAPER_SRC = "Sandler et al. 2018, Table 4; ShuffleNet v2 Table 8"
_SLIM_SRC = "TF-slim MobileNet v2 README (the authors' release); it lists params without BN"
_NOTE_14 = (
    "the paper prints 585 M; rounding channels to multiples of 8 (torchvision, TF-slim) gives "
    "582.2 M and no rounding gives 571.7 M"
)
_NOTE_PARAMS = (
    "the paper prints 3.4 M params; TF-slim lists 3.47 M, which leaves out BN's 34,112 gamma and "
    "beta; with them the count is 3,504,872, equal to torchvision's num_params"
)
# The registered variants.  name: (width multiplier, paper figures)
VARIANTS = {
    "mobilenet_v2_x0_35": (0.35, PaperFigures(_SLIM_SRC, "59", None, "39.7")),
    "mobilenet_v2_x0_5": (0.5, PaperFigures(_SLIM_SRC, "97", None, "34.6")),
    "mobilenet_v2_x0_75": (0.75, PaperFigures(_SLIM_SRC, "209", None, "30.2")),
    "mobilenet_v2_x1_0": (
        1.0,
        PaperFigures(_PAPER_SRC, "300", "3.4", "28.0", computed_params="3.50", note=_NOTE_PARAMS),
    ),
    "mobilenet_v2_x1_4": (
        1.4,
        PaperFigures(_PAPER_SRC, "585", None, "25.3", computed_macs="582.2", note=_NOTE_14),
    ),
}

for _name, (_w, _fig) in VARIANTS.items():
    register_model(_name, FAMILY, MobileNetV2Config(width=_w), paper=_fig)
