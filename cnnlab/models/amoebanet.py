"""AmoebaNet-A (Real et al., AAAI 2019) in the mobile setting, built from its genotype.

The genotype is the TPU reference's ``amoeba_net_a`` (tensorflow/tpu models/official/amoeba_net
``model_specs.py``); the network is built as its ``model_builder.py`` builds it, which is the
NASNet builder of :mod:`cnnlab.models.nasnet`: ImageNet stem (3x3 s2 'VALID' conv + BN, two
reduction cells at F/4 and F/2), three stacks of N normal cells with a reduction cell before the
second and third, the cell after a reduction reading the reduction's input as h_{i-2}. The normal
cell's output concatenates four states (4F), the reduction cell's five (5F).

The mobile model is N = 4, F = 50 (penultimate 16F = 800) with a 32-filter stem. F/2 = 25 is odd
at the second stem cell: its factorized reduction gives 2 x 12 channels (TF-slim's
``int(output_filters / 2)``; the TPU code asserts an even count and cannot build F = 50), and the
ops reading that state project 24 -> 25 channels as TF does for any width mismatch.

Figures: this count gives 555.5 M MACs and 5.09 M params at 224. The paper's mobile row
(555 M, 5.1 M, 74.5 / 92.0) is quoted from memory in our references and was not found in a
source we could read, so it is not asserted as a paper figure.
"""

from __future__ import annotations

from cnnlab.blocks.genotype import CellGenotype, Genotype
from cnnlab.models.nasnet import NasNetConfig, plan
from cnnlab.models.registry import Family, PaperFigures, register_model

# tensorflow/tpu amoeba_net model_specs 'amoeba_net_a' (TF numbering: 0 = h_{i-1}, 1 = h_{i-2})
AMOEBANET_A = Genotype(
    "AmoebaNet-A",
    normal=CellGenotype.from_tf(
        ["avg_pool_3x3", "max_pool_3x3", "separable_3x3_2", "none", "none", "avg_pool_3x3",
         "separable_3x3_2", "separable_5x5_2", "avg_pool_3x3", "separable_3x3_2"],
        [0, 0, 1, 1, 0, 1, 0, 2, 5, 0],
        [1, 0, 1, 0, 0, 1, 0],
    ),
    reduce=CellGenotype.from_tf(
        ["separable_3x3_2", "avg_pool_3x3", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3",
         "max_pool_3x3", "separable_3x3_2", "1x7_7x1", "avg_pool_3x3", "separable_7x7_2"],
        [1, 0, 0, 2, 1, 0, 4, 0, 1, 0],
        [1, 1, 0, 0, 0, 0, 0],
    ),
)  # fmt: skip

FAMILY = Family("amoebanet", NasNetConfig, plan)

register_model(
    "amoebanet_a_mobile",
    FAMILY,
    NasNetConfig(n=4, f=50, stem=32, genotype=AMOEBANET_A),
    paper=PaperFigures(
        "Real et al. 2019, mobile AmoebaNet-A (N=4, F=50); genotype: tensorflow/tpu amoeba_net",
        note=(
            "paper figures unverified (555 M MACs, 5.1 M params from memory): not asserted; "
            "this count gives 555.5 M MACs, 5.09 M params"
        ),
    ),
)
