"""PNASNet-5 (Liu et al., ECCV 2018) built from its genotype, as TF-slim's ``pnasnet.py`` builds it.

One cell for everything: the two stem cells (F/4, F/2) and the two reduction cells are the normal
cell at stride 2. ImageNet stem conv (3x3 s2 'VALID' + BN), then 3N cells where cells N and 2N
reduce and double F, ReLU, global pool, FC. Mobile: N = 3, F = 54 at 224; large: N = 4, F = 216
at 331 (timm's ``pnasnet5large`` ports the TF weights). No auxiliary head or drop-path.

Figures: mobile 588 M MACs (ShuffleNet v2 Table 8); this count gives 587.7 M and 5.07 M params
(the PNAS paper's 5.1 M is quoted from memory in our references, not verified: not asserted).
Large: 86.1 M params (PNAS paper, third-party verified); this count gives 86.06 M
(86,057,668 = timm) and 24.94 G MACs (the paper's 25.0 G is quoted from memory: not asserted).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from cnnlab.blocks.genotype import CellGenotype, Genotype
from cnnlab.blocks.nas_cells import CellStack, StemConv, chain_cells
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.models.timm_port import register_timm_port

# TF-slim pnasnet.PNasNetNormalCell (TF state numbering: 0 = h_{i-1}, 1 = h_{i-2})
PNASNET_5 = Genotype(
    "PNASNet-5",
    normal=CellGenotype.from_tf(
        ["separable_5x5_2", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3",
         "separable_5x5_2", "separable_3x3_2", "separable_3x3_2", "max_pool_3x3",
         "separable_3x3_2", "none"],
        [1, 1, 0, 0, 0, 0, 4, 0, 1, 0],
        [1, 1, 0, 0, 0, 0, 0],
    ),
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class PNasNetConfig(NetConfig):
    """PNASNet: 3N cells (two of them reducing), F filters, stem width, the genotype."""

    n: int = 3
    f: int = 54
    stem: int = 32
    genotype: Genotype = PNASNET_5

    def check(self) -> None:
        super().check()
        if self.n < 1 or self.f < 4 or self.stem < 1:
            raise BadValue(
                f"need n >= 1, f >= 4 filters and stem >= 1, got n={self.n}, f={self.f}, "
                f"stem={self.stem}"
            )
        if not isinstance(self.genotype, Genotype):
            raise BadValue(f"genotype must be a Genotype, got {type(self.genotype).__name__}")


def cell_rows(cfg: PNasNetConfig) -> list[tuple[str, CellGenotype, int, bool, bool]]:
    """(name, genotype, F, reduction, keep_prev) of every cell, in timm's names."""
    g, f = cfg.genotype, cfg.f
    rows = [("cell_stem_0", g.cell(True), f // 4, True, False)]
    rows.append(("cell_stem_1", g.cell(True), f // 2, True, False))
    scale = 1
    for i in range(3 * cfg.n):
        reduction = i in (cfg.n, 2 * cfg.n)  # TF-slim calc_reduction_layers(3N, 2)
        scale *= 2 if reduction else 1
        rows.append((f"cell_{i}", g.cell(reduction), f * scale, reduction, False))
    return rows


def plan(cfg: PNasNetConfig) -> Plan:
    """Stem conv, the cells (one layer: each reads the two before it), ReLU (TF-slim)."""
    cells = chain_cells(cfg.stem, cell_rows(cfg), reduce_prev_first=True)
    layers = [
        Layer("conv_0", StemConv, dict(c_in=cfg.in_chans, c_out=cfg.stem)),
        Layer("cells", CellStack, dict(cells=cells)),
    ]
    return Plan(layers, cells[-1].c_out)


FAMILY = Family("pnasnet", PNasNetConfig, plan)

register_model(
    "pnasnet5_mobile",
    FAMILY,
    PNasNetConfig(),
    paper=PaperFigures(
        "ShuffleNet v2 Table 8 (PNASNet-5 MACs); TF-slim README (top-1)",
        macs="588",
        top1_err="25.8",
        note="params not asserted: the paper's 5.1 M is unverified here; this count gives 5.07 M",
    ),
)
register_model(
    "pnasnet5_large",
    FAMILY,
    PNasNetConfig(n=4, f=216, stem=96),
    input_size=(3, 331, 331),
    paper=PaperFigures(
        "Liu et al. 2018, Table 5 (PNASNet-5 N=4, F=216, params); TF-slim README (top-1)",
        params="86.1",
        top1_err="17.1",
        note="MACs not asserted: the paper's 25.0 G is unverified here; this count gives 24.94 G",
    ),
)


def _timm_config(m: nn.Module) -> PNasNetConfig:
    """timm's PNASNet5Large: one fixed architecture (N = 4, F = 216); 'SAME' padding required."""
    dw = m.cell_stem_0.comb_iter_0_left.separable_1.depthwise_conv2d
    if type(dw).__name__ != "Conv2dSame":
        raise BadValue(
            "cannot port a PNASNet5Large built without pad_type='same': cnnlab's NAS cells pad "
            "as TF 'SAME' (timm.create_model('pnasnet5large') does)"
        )
    return dataclasses.replace(
        PNasNetConfig(n=4, f=216, stem=m.conv_0.conv.out_channels),
        num_classes=getattr(m.last_linear, "out_features", 0),
        in_chans=m.conv_0.conv.in_channels,
    )


register_timm_port("PNASNet5Large", FAMILY, _timm_config)
