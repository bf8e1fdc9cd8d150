"""Genotypes: plain data (hashable, JSON round trip), refused with the reason when broken, and
every op of the registry built and counted exactly inside a small network."""

import json

import pytest

import cnnlab
from cnnlab.blocks.genotype import CellGenotype, Genotype, Node
from cnnlab.blocks.nas_cells import CellSpec, NasCell
from cnnlab.blocks.nas_ops import op_names
from cnnlab.counting.trace import traced_counts
from cnnlab.models.nasnet import NASNET_A

# every op of the registry at least once, a concat node, and a listed output
EVERY_OP = Genotype(
    "every-op",
    normal=CellGenotype(
        (
            Node((1, "dil_conv_3x3"), (0, "1x7_7x1")),
            Node((2, "dil_conv_5x5"), (1, "conv_1x1")),
            Node((3, "sep_conv_7x7"), (0, "identity"), "concat"),
        ),
        concat=(0, 2, 4),
    ),
    reduce=CellGenotype(
        (
            Node((0, "max_pool_3x3"), (1, "avg_pool_3x3")),
            Node((2, "sep_conv_3x3"), (1, "1x7_7x1")),
            Node((1, "sep_conv_5x5"), (3, "identity")),
        )
    ),
)


def test_a_genotype_is_plain_data_with_a_json_round_trip():
    for g in (NASNET_A, EVERY_OP):
        text = g.to_json()
        json.loads(text)  # valid JSON
        back = Genotype.from_json(text)
        assert back == g and hash(back) == hash(g)
        assert back is not g
    assert {NASNET_A: 1}[Genotype.from_json(NASNET_A.to_json())] == 1


def test_printed_form_names_states_and_the_output():
    text = str(EVERY_OP.normal)
    assert "node1 = dil_conv_5x5(node0) + conv_1x1(h_{i-1})" in text
    assert "node2 = sep_conv_7x7(node1) | identity(h_{i-2})" in text
    assert text.endswith("out = concat(h_{i-2}, node0, node2)")
    # unlisted output: the nodes no node reads (node0 is read by node1)
    assert EVERY_OP.reduce.outputs == (4,)


def test_from_tf_swaps_the_input_numbering():
    # TF-slim numbers h_{i-1} as 0 and h_{i-2} as 1; 'none' is the identity
    cell = CellGenotype.from_tf(["separable_3x3_2", "none"], [1, 0], [1, 0, 0])
    assert cell.nodes == (Node((0, "sep_conv_3x3"), (1, "identity")),)
    assert cell.concat == (0, 2)


def test_a_missing_node_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"node1 reads state 4, which does not exist.*\(2\.\.2\)"):
        CellGenotype(
            (Node((0, "identity"), (1, "identity")), Node((4, "identity"), (0, "identity")))
        )
    with pytest.raises(ValueError, match=r"concat \(0, 9\) names missing states \[9\]"):
        CellGenotype((Node((0, "identity"), (1, "identity")),), concat=(0, 9))


def test_an_unknown_op_is_refused_listing_the_valid_ops():
    with pytest.raises(ValueError) as err:
        CellGenotype((Node((0, "sep_conv_9x9"), (1, "identity")),))
    msg = str(err.value)
    assert msg.startswith("node0: unknown op 'sep_conv_9x9'; valid ops: ")
    assert all(op in msg for op in op_names())
    with pytest.raises(ValueError, match="not a genotype dict"):
        Genotype.from_dict({"name": "x", "normal": {"nodes": [[[0, "identity"]]]}})


def test_concat_nodes_and_input_outputs_of_reduction_cells_are_refused():
    with pytest.raises(ValueError, match="node1 reads node0, a concat node"):
        CellGenotype(
            (
                Node((0, "identity"), (1, "identity"), "concat"),
                Node((2, "identity"), (1, "identity")),
            )
        )
    cell = CellGenotype((Node((0, "identity"), (1, "identity")),), concat=(1, 2))
    with pytest.raises(ValueError, match="reduction cell cannot concatenate its input h_{i-1}"):
        NasCell(CellSpec("r", cell, (8, 8), 8, reduction=True))


def test_every_op_builds_and_is_counted_exactly_in_a_small_network():
    model = cnnlab.create_model(
        "nasnet_a_mobile", genotype=EVERY_OP, n=1, f=10, stem=8, num_classes=3
    )
    size = (3, 40, 40)  # 19 -> 10 -> 5 -> 3 -> 2: even and odd sizes at every stride 2
    analytic, traced = cnnlab.complexity(model, size), traced_counts(model, size)
    assert (analytic.params, analytic.macs, analytic.activations, analytic.memory_access) == (
        traced.params,
        traced.macs,
        traced.activations,
        traced.memory_access,
    )
    # normal cell output: h_{i-2} (F) + node0 (F) + the concat node (2F) = 4F
    assert model.num_features == 4 * 40
