"""NASNet-A (Zoph et al., CVPR 2018) built from its genotype, as TF-slim's ``nasnet.py`` builds it.

ImageNet stem (3x3 s2 'VALID' conv + BN, two reduction cells at F/4 and F/2), then three stacks of
N normal cells with a reduction cell before the second and third (F doubles at each), ReLU,
global pool, FC. "N @ P" names N and the penultimate width P = 24F. The mobile model has its
reduction cells read the stack's last output as h_{i-2} of the next cell; the large one
(``skip_reduction_input``, TF-slim's ``skip_reduction_layer_input``) keeps the reduction cell's
own h_{i-2}, as timm's ``nasnetalarge`` port of the TF weights does. The auxiliary head and
drop-path are training aids and not built.

Figures (TF-slim README, the paper's Table 2/3): mobile (4 @ 1056) at 224: 564 M MACs, 5.3 M
params; large (6 @ 4032) at 331: 23.8 G, 88.9 M. This count gives 563.6 M / 5.29 M (5,289,978) and
23.78 G / 88.75 M (88,753,150 = timm's ``nasnetalarge``).
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

# TF-slim nasnet_utils: NasNetANormalCell / NasNetAReductionCell (operations, hiddenstate_indices,
# used_hiddenstates), in TF's state numbering (0 = h_{i-1}, 1 = h_{i-2}).
NASNET_A = Genotype(
    "NASNet-A",
    normal=CellGenotype.from_tf(
        ["separable_5x5_2", "separable_3x3_2", "separable_5x5_2", "separable_3x3_2",
         "avg_pool_3x3", "none", "avg_pool_3x3", "avg_pool_3x3", "separable_3x3_2", "none"],
        [0, 1, 1, 1, 0, 1, 1, 1, 0, 0],
        [1, 0, 0, 0, 0, 0, 0],
    ),
    reduce=CellGenotype.from_tf(
        ["separable_5x5_2", "separable_7x7_2", "max_pool_3x3", "separable_7x7_2",
         "avg_pool_3x3", "separable_5x5_2", "none", "avg_pool_3x3", "separable_3x3_2",
         "max_pool_3x3"],
        [0, 1, 0, 1, 0, 1, 3, 2, 2, 0],
        [1, 1, 1, 0, 0, 0, 0],
    ),
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class NasNetConfig(NetConfig):
    """NASNet-style network: N normal cells per stack, F filters, stem width, the genotype.

    ``genotype`` may be any :class:`Genotype` with a reduction cell (AmoebaNet-A uses this
    builder too); ``stem_cells`` stem reduction cells at F/4, F/2 (TF-slim's ImageNet stem).
    """

    n: int = 4
    f: int = 44
    stem: int = 32
    stem_cells: int = 2
    skip_reduction_input: bool = False
    genotype: Genotype = NASNET_A

    def check(self) -> None:
        super().check()
        if self.n < 1 or self.f < 4 or self.stem < 1:
            raise BadValue(
                f"need n >= 1 cells per stack, f >= 4 filters and stem >= 1, got n={self.n}, "
                f"f={self.f}, stem={self.stem}"
            )
        if self.stem_cells not in (0, 1, 2):
            raise BadValue(f"stem_cells must be 0, 1 or 2, got {self.stem_cells}")
        if not isinstance(self.genotype, Genotype) or self.genotype.reduce is None:
            raise BadValue("genotype must be a Genotype with a reduction cell")


def cell_rows(cfg: NasNetConfig) -> list[tuple[str, CellGenotype, int, bool, bool]]:
    """(name, genotype, F, reduction, keep_prev) of every cell, timm's names (TF-slim's order)."""
    g, f = cfg.genotype, cfg.f
    rows = [(f"cell_stem_{i}", g.reduce, f // 2 ** (cfg.stem_cells - i), True, False)
            for i in range(cfg.stem_cells)]  # fmt: skip
    scale = 1
    for i in range(3 * cfg.n):
        if i in (cfg.n, 2 * cfg.n):  # TF-slim calc_reduction_layers(3N, 2)
            scale *= 2
            name = f"reduction_cell_{i // cfg.n - 1}"
            rows.append((name, g.reduce, f * scale, True, cfg.skip_reduction_input))
        rows.append((f"cell_{i}", g.normal, f * scale, False, False))
    return rows


def plan(cfg: NasNetConfig) -> Plan:
    """Stem conv, the cells (one layer: each reads the two before it), ReLU (TF-slim)."""
    cells = chain_cells(cfg.stem, cell_rows(cfg), reduce_prev_first=False)
    layers = [
        Layer("conv0", StemConv, dict(c_in=cfg.in_chans, c_out=cfg.stem)),
        Layer("cells", CellStack, dict(cells=cells)),
    ]
    return Plan(layers, cells[-1].c_out)


FAMILY = Family("nasnet", NasNetConfig, plan)

register_model(
    "nasnet_a_mobile",
    FAMILY,
    NasNetConfig(),
    paper=PaperFigures(
        "Zoph et al. 2018, Table 3 (NASNet-A 4 @ 1056); TF-slim README",
        macs="564",
        params="5.3",
        top1_err="26.0",
    ),
)
register_model(
    "nasnet_a_large",
    FAMILY,
    NasNetConfig(n=6, f=168, stem=96, skip_reduction_input=True),
    input_size=(3, 331, 331),
    paper=PaperFigures(
        "Zoph et al. 2018, Table 2 (NASNet-A 6 @ 4032); TF-slim README; timm nasnetalarge",
        macs="23800",
        params="88.9",
        top1_err="17.3",
    ),
)


def _timm_config(m: nn.Module) -> NasNetConfig:
    """timm's NASNetALarge: 6 @ num_features with TF 'SAME' padding (``pad_type='same'``)."""
    dw = m.cell_stem_0.comb_iter_0_left.separable_1.depthwise_conv2d
    if type(dw).__name__ != "Conv2dSame":
        raise BadValue(
            "cannot port a NASNetALarge built without pad_type='same': cnnlab's NAS cells pad "
            "as TF 'SAME' (timm.create_model('nasnetalarge') does)"
        )
    fc = m.last_linear
    return dataclasses.replace(
        NasNetConfig(n=6, f=m.num_features // 24, stem=m.conv0.conv.out_channels),
        skip_reduction_input=True,
        num_classes=getattr(fc, "out_features", 0),
        in_chans=m.conv0.conv.in_channels,
    )


register_timm_port("NASNetALarge", FAMILY, _timm_config)
