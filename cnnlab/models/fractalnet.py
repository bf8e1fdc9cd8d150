"""FractalNet for CIFAR (Larsson et al. ICLR 2017, §4): B fractal blocks, each then a 2x2 max pool.

The CIFAR network has B = 5 blocks of widths 64, 128, 256, 512, 512 (the FILTERS of the authors'
generator, gustavla/fractalnet ``generation/fractalnet.py``), 3x3 conv-BN-ReLU layers, and five
2x2 max pools that take 32x32 to 1x1 before the classifier; its depth is B * 2^(C-1) convolutions:
20 for C = 3 (Table 1's "20 layers"), 40 for C = 4 (Fig. 1).

Drop-path is off by default (as timm's ``drop_path_rate``); train with the paper's regime by
``create_model(name, **PAPER_DROP_PATH)``: local drop-path p = 0.15 (§4) and half of the batches
with global drop-path (the default of the third-party port khanrc/pt.fractalnet; the paper's
exact share was not verified here).

Two documented simplifications: the join is applied before the pool (the paper's Fig. 1; the
authors' generator pools each column before the block's last join, an implementation swap), and
the paper's per-block dropout (0, 0.1, 0.2, 0.3, 0.4 in some runs) is left out.

Params: Table 1 prints 38.6 M for the 20-layer network (quoted by khanrc/pt.fractalnet's notes;
the paper text itself was not readable here). The widths above give 33.7 M with a CIFAR-100
classifier, the same figure khanrc/pt.fractalnet reports for the authors' configuration, so
``fractalnet_c3_cifar`` carries a documented exception. The 40-layer network's params could not be
verified: ``fractalnet_c4_cifar`` has no paper figure (computed: 76.2 M with 100 classes,
76.6 M with 1000).
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.blocks.fractal import DropPath, DropPathSampler, FractalBlock, check_columns
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.ops.pool import MaxPool


@dataclass(frozen=True, kw_only=True)
class FractalNetConfig(NetConfig):
    """FractalNet: C columns per block, one block per width, drop-path probabilities."""

    columns: int = 4  # C: the deepest column of a block has 2^(C-1) convs
    widths: tuple[int, ...] = (64, 128, 256, 512, 512)  # B = len(widths) blocks
    p_local: float = 0.0  # local drop-path rate; off by default, as timm's drop_path_rate
    global_ratio: float = 0.0  # share of batches with global drop-path; off by default

    def check(self) -> None:
        super().check()
        check_columns(self.columns)
        if not self.widths or min(self.widths) < 1:
            raise BadValue(f"FractalNet: widths must be channel counts >= 1, got {self.widths}")
        DropPath(self.p_local, self.global_ratio)


def plan(cfg: FractalNetConfig) -> Plan:
    """Drop-path sampler, then per width a fractal block and a 2x2 max pool."""
    drop = DropPath(cfg.p_local, cfg.global_ratio)
    layers = [Layer("drop_path", DropPathSampler, dict(drop=drop, columns=cfg.columns))]
    c = cfg.in_chans
    for i, w in enumerate(cfg.widths):
        args = dict(c_in=c, c_out=w, columns=cfg.columns, drop=drop)
        layers.append(Layer(f"block{i + 1}", FractalBlock, args))
        layers.append(Layer(f"pool{i + 1}", MaxPool, dict(k=2, stride=2, padding=0)))
        c = w
    return Plan(layers, c)


FAMILY = Family("fractalnet", FractalNetConfig, plan)

PAPER_DROP_PATH = dict(p_local=0.15, global_ratio=0.5)  # §4; the 0.5 share: khanrc/pt.fractalnet

_NOTE = (
    "Table 1 prints 38.6 M params for the 20-layer CIFAR FractalNet; its widths 64-128-256-512-512 "
    "(the authors' generator) give 33.7 M with a 100-class classifier (34.2 M with the 1000-class "
    "one counted here), as khanrc/pt.fractalnet also found"
)
register_model(
    "fractalnet_c3_cifar",
    FAMILY,
    FractalNetConfig(columns=3),
    input_size=(3, 32, 32),
    paper=PaperFigures(
        "FractalNet Table 1, as quoted by khanrc/pt.fractalnet [V-3rd]",
        params="38.6",
        computed_params="34.2",
        note=_NOTE,
    ),
)
register_model("fractalnet_c4_cifar", FAMILY, FractalNetConfig(columns=4), input_size=(3, 32, 32))
