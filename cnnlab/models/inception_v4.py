"""Inception-v4 (Szegedy et al. 2017, Fig. 9) at 299x299, in the layout of the released model.

Stem (Fig. 3), 4 x Inception-A, Reduction-A, 7 x Inception-B, Reduction-B, 3 x Inception-C,
average pool, dropout (keep 0.8, TF-slim's ``dropout_keep_prob``), FC. The modules follow the
released TF-slim model, which timm's ``inception_v4`` ports: ``cnnlab.from_timm`` copies its
weights by order. 42,679,816 parameters, as timm's model; 12.25 G MACs at 299 (the paper prints
neither). The paper's single-crop error (Table 2, 20.0 / 5.0 top-1 / top-5 in the reference
notes) could not be checked against the paper's text, so it is not registered.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cnnlab.blocks.inception import BasicConv
from cnnlab.blocks.inception_v4 import (
    InceptionA,
    InceptionB,
    InceptionC,
    ReductionA,
    ReductionB,
    StemA,
    StemB,
    StemC,
)
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.models.timm_port import register_timm_port

# Fig. 9: how many Inception-A, -B and -C modules run on the 35x35, 17x17 and 8x8 grids.
BLOCKS = (4, 7, 3)
# Table 1, the Reduction-A filter counts of Inception-v4.
REDUCTION_A = (192, 224, 256, 384)  # k, l, m, n
WIDTHS = (384, 1024, 1536)  # output widths of Inception-A, -B, -C: 4 x 96, 384+256+256+128, 6 x 256


@dataclass(frozen=True, kw_only=True)
class InceptionV4Config(NetConfig):
    """Inception-v4: the module counts of Fig. 9 and Reduction-A's (k, l, m, n) of Table 1."""

    blocks: tuple[int, int, int] = BLOCKS
    reduction_a: tuple[int, int, int, int] = REDUCTION_A
    drop_rate: float = 0.2  # Fig. 9 "Dropout (keep 0.8)", TF-slim's dropout_keep_prob=0.8

    def check(self) -> None:
        super().check()
        if len(self.blocks) != 3 or min(self.blocks) < 1:
            raise BadValue(
                f"Inception-v4: blocks must be three module counts >= 1 (A, B, C), got {self.blocks}"
            )
        if len(self.reduction_a) != 4 or min(self.reduction_a) < 1:
            raise BadValue(
                f"Inception-v4: reduction_a must be four widths >= 1 (k, l, m, n), "
                f"got {self.reduction_a}"
            )


def plan(cfg: InceptionV4Config) -> Plan:
    """Stem of Fig. 3, then the A/B/C module groups with the two reductions between (Fig. 9)."""
    n_a, n_b, n_c = cfg.blocks
    k, l, m, n = cfg.reduction_a  # noqa: E741 (Table 1's symbols)
    layers = [
        Layer("conv1a", BasicConv, dict(c_in=cfg.in_chans, c_out=32, k=3, stride=2)),
        Layer("conv2a", BasicConv, dict(c_in=32, c_out=32, k=3)),
        Layer("conv2b", BasicConv, dict(c_in=32, c_out=64, k=3, padding=1)),
        Layer("mixed3a", StemA, dict(c_in=64)),
        Layer("mixed4a", StemB, dict(c_in=64 + 96)),
        Layer("mixed5a", StemC, dict(c_in=96 + 96)),
    ]
    c_a, c_b, c_c = WIDTHS
    layers += _group("mixed5", InceptionA, n_a, c_in=192 + 192, c_out=c_a)
    layers.append(Layer("mixed6a", ReductionA, dict(c_in=c_a, k=k, l=l, m=m, n=n)))
    layers += _group("mixed6", InceptionB, n_b, c_in=n + m + c_a, c_out=c_b)
    layers.append(Layer("mixed7a", ReductionB, dict(c_in=c_b)))
    layers += _group("mixed7", InceptionC, n_c, c_in=192 + 320 + c_b, c_out=c_c)
    return Plan(layers, c_c)


def _group(prefix: str, block: type[nn.Module], count: int, c_in: int, c_out: int) -> list[Layer]:
    """``count`` modules named as TF-slim does: Mixed_5b, Mixed_5c, ... (the reduction is "a")."""
    return [
        Layer(f"{prefix}{_letters(i + 1)}", block, dict(c_in=c_in if i == 0 else c_out))
        for i in range(count)
    ]


def _letters(i: int) -> str:
    """a, b, ..., z, ba, bb, ... for i = 0, 1, ...: i in base 26 written with letters."""
    digit = "abcdefghijklmnopqrstuvwxyz"[i % 26]
    return digit if i < 26 else _letters(i // 26) + digit


FAMILY = Family("inception_v4", InceptionV4Config, plan)


def _timm_config(m: nn.Module) -> InceptionV4Config:
    """Read the module counts, Reduction-A widths and the ends off timm's InceptionV4."""
    kinds = [type(f).__name__ for f in m.features]
    first = m.features[0]
    if first.bn.eps != 1e-3 or type(first.bn.act).__name__ != "ReLU":
        raise BadValue(
            f"cannot port an InceptionV4 with norm eps {first.bn.eps} and activation "
            f"{type(first.bn.act).__name__}; supported: eps 1e-3 and ReLU (timm's defaults)"
        )
    if m.global_pool.pool_type != "avg":
        raise BadValue(
            f"cannot port an InceptionV4 with global_pool={m.global_pool.pool_type!r}; "
            f"supported: 'avg'"
        )
    red_a = m.features[kinds.index("ReductionA")]
    return InceptionV4Config(
        num_classes=m.num_classes,
        in_chans=first.conv.in_channels,
        drop_rate=m.head_drop.p,
        blocks=tuple(kinds.count(f"Inception{x}") for x in "ABC"),
        reduction_a=(
            red_a.branch1[0].conv.out_channels,
            red_a.branch1[1].conv.out_channels,
            red_a.branch1[2].conv.out_channels,
            red_a.branch0.conv.out_channels,
        ),
    )


register_timm_port("InceptionV4", FAMILY, _timm_config)

register_model(
    "inception_v4",
    FAMILY,
    InceptionV4Config(),
    input_size=(3, 299, 299),
    paper=PaperFigures(
        "timm inception_v4 (parameters of the built model; the paper prints none)",
        macs=None,
        params="42.679816",
        note=(
            "the paper prints no MACs or parameters; this count gives 12.25 G MACs at 299x299 "
            "and timm's 42,679,816 parameters. Table 2's single-crop error is not verified"
        ),
    ),
)
