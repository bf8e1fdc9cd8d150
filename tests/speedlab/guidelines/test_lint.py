"""Design lint: G1-G4 findings against Eq. 1, Eq. 2 and hand counts; the ShuffleNets; the CLI."""

import json
import math

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.cli.main import main
from cnnlab.speedlab.guidelines.lint import block_shapes, eq1_excess, eq2_overhead, lint, record_ops


def found(report, guideline):
    return [f for f in report.findings if f.guideline == guideline]


def test_g1_unequal_pointwise_conv_costs_eq1_excess():
    # 1x1 conv 16 -> 64 at 8x8: MAC = 64*(16+64) + 16*64 = 6144, B = 64*16*64 = 65536,
    # Eq. 1 bound = 2*sqrt(64*65536) + 65536/64 = 4096 + 1024 = 5120: excess 1024
    report = lint(nn.Conv2d(16, 64, 1, bias=False), input_size=(16, 8, 8))
    (f,) = found(report, "G1")
    assert f.extra == pytest.approx(1024)
    assert f.op == "conv 1x1" and "16 -> 64" in f.detail
    assert report.memory_access == 6144
    assert eq1_excess(8, 8, 16, 64) == pytest.approx(64 * (math.sqrt(16) - math.sqrt(64)) ** 2)


def test_g1_equal_width_has_no_finding():
    report = lint(nn.Conv2d(32, 32, 1, bias=False), input_size=(32, 8, 8))
    assert found(report, "G1") == [] and found(report, "G2") == []
    assert eq1_excess(8, 8, 32, 32) == pytest.approx(0)


def test_g2_group_conv_costs_eq2_overhead():
    # g=4, 16 -> 16 at 8x8: MAC = 64*16 + 64*16 + 16*16/4 = 2112; the dense conv with the same
    # input and B is 16 -> 4: 64*16 + 64*4 + 16*4 = 1344; overhead 768 = B*(g-1)/c1
    report = lint(nn.Conv2d(16, 16, 1, groups=4, bias=False), input_size=(16, 8, 8))
    (f,) = found(report, "G2")
    assert f.extra == pytest.approx(768)
    assert report.memory_access == 2112
    assert eq2_overhead(8, 8, 16, 16, 4) == pytest.approx(2112 - 1344)
    assert found(report, "G1") == []  # equal widths


def test_depthwise_conv_is_not_g2_but_g4():
    report = lint(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), input_size=(8, 4, 4))
    assert found(report, "G2") == []
    (f,) = found(report, "G4")
    assert f.op == "dw conv 3x3" and f.extra == 128 + 128 + 72


def test_g4_share_by_hand():
    model = nn.Sequential(
        nn.Conv2d(4, 8, 1, bias=False),  # 64 in + 128 out + 32 weights = 224
        nn.BatchNorm2d(8),  # folded into the conv: 0
        nn.ReLU(),  # 128 + 128 = 256
        nn.BatchNorm2d(8),  # not after a conv: 2*128 + 2*8 = 272
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # depthwise: 128 + 128 + 72 = 328
    )
    report = lint(model, input_size=(4, 4, 4))
    assert report.memory_access == 224 + 256 + 272 + 328
    g4 = report.totals["G4"]
    assert g4.extra == 256 + 272 + 328
    assert g4.share == pytest.approx((256 + 272 + 328) / 1080)
    assert sorted(f.op for f in found(report, "G4")) == ["batch norm", "dw conv 3x3", "relu"]


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(8, 4, 1, bias=False)
        self.b = nn.Conv2d(8, 4, 1, bias=False)

    def forward(self, x):
        return torch.cat((self.a(x), self.b(x)), 1)


def test_g3_counts_parallel_branches_and_operators():
    model = nn.Sequential(TwoBranches(), nn.Conv2d(8, 8, 1, bias=False))
    (par, single) = block_shapes(record_ops(model, (8, 4, 4)))
    assert (par.block, par.operators, par.branches, par.small) == ("0", 2, 2, ())
    assert par.flagged and not single.flagged
    (f,) = found(lint(model, input_size=(8, 4, 4)), "G3")
    assert (f.block, f.count) == ("0", 2)


def test_shufflenet_v1_g3_group_convs_are_g2_findings():
    report = lint("shufflenet_v1_g3_x1_0")
    # every unit has two 1x1 group convs except the first Stage-2 one (dense first conv)
    assert len(found(report, "G2")) == 2 * (4 + 8 + 4) - 1
    assert all("g=3" in f.op for f in found(report, "G2"))
    c = cnnlab.complexity("shufflenet_v1_g3_x1_0")
    assert (report.macs, report.memory_access) == (c.macs, c.memory_access)


def test_shufflenet_v2_obeys_g1_in_stride1_units_and_has_no_g2():
    report = lint("shufflenet_v2_x1_0")
    assert found(report, "G2") == []
    g1 = found(report, "G1")
    # only the first Stage-2 unit (24 -> 58, 58 -> 92) and Conv5 (464 -> 1024) are unequal
    assert sorted(f.layer for f in g1) == [
        "features.conv5.conv",
        "features.stage2_0.main.0.conv",
        "features.stage2_0.main.2.conv",
    ]
    stride1 = [
        b for b in report.blocks if b.block.startswith("features.stage") and "_0" not in b.block
    ]
    assert len(stride1) == 3 + 7 + 3
    assert all(b.operators == 3 and b.branches == 1 for b in stride1)
    c = cnnlab.complexity("shufflenet_v2_x1_0")
    assert (report.macs, report.memory_access) == (c.macs, c.memory_access)


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_lint_table_and_json(capsys):
    code, out, _ = run(capsys, "lint", "shufflenet_v2_x0_5", "--input-size", "64", "--top", "2")
    assert code == 0
    assert "G1 equal channel width minimizes MAC" in out and "G2: no findings" in out
    assert "G4: top 2 of" in out and "fuse or remove element-wise ops" in out
    code, out, _ = run(capsys, "lint", "shufflenet_v2_x0_5", "--input-size", "64", "--json")
    data = json.loads(out)
    assert code == 0 and data["input_size"] == [3, 64, 64]
    assert set(data["totals"]) == {"G1", "G2", "G3", "G4"}
    assert data["totals"]["G2"]["count"] == 0
    assert (
        data["memory_access"] == cnnlab.complexity("shufflenet_v2_x0_5", (3, 64, 64)).memory_access
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["lint", "shufflenet_v9"], "unknown model"),
        (["lint", "shufflenet_v2_x0_5", "--top", "0"], "--top must be >= 1"),
        (["lint", "shufflenet_v2_x0_5", "--input-size", "3x2"], "--input-size"),
        (["lint", "shufflenet_v2_x0_5", "--input-size", "1x64x64"], "in_chans=3"),
    ],
)
def test_cli_lint_bad_input_exit_2(capsys, args, message):
    code, _, err = run(capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_name_and_the_model_built_from_it_lint_alike():
    """Both at the registered input size (32x32 here, not 224): the same findings and totals."""
    from dataclasses import replace

    name = "igcnet_plain38_l24m2_cifar"
    by_name = lint(name)
    assert by_name.input_size == (3, 32, 32)
    assert replace(lint(cnnlab.create_model(name)), model=name) == by_name
