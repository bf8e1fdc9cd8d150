"""G1-G4 benchmark networks (Ma et al. 2018, §2): FLOPs held fixed, MAC per Eq. 1/2, measurement."""

import csv
import json
import math

import pytest
import scipy.stats

from cnnlab.cli.main import main
from cnnlab.counting.trace import traced_counts
from cnnlab.measure.allocator import malloc_mode
from cnnlab.ops.cost import Cx
from cnnlab.speedlab.guidelines.experiments import (
    PAPER_SPEED,
    guideline_networks,
    paper_speeds,
    run_guidelines,
    spearman,
    verdict,
)
from cnnlab.speedlab.guidelines.nets import (
    G2Layer,
    G3Block,
    TakeChannels,
    benchmark_specs,
    series_width,
)

HW = 56 * 56


def costs(table, platform, scale=1):
    return [s.cost() for s in benchmark_specs(table, platform, scale)]


@pytest.mark.parametrize("platform", ["gpu", "arm"])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_g1_flops_fixed_and_mac_grows_with_ratio(platform, scale):
    specs = benchmark_specs("G1", platform, scale)
    cx = [s.cost() for s in specs]
    for s, c in zip(specs, cx):  # 10 blocks of two 1x1 convs: B = 2 * 10 * h*w*c1*c2
        assert c.macs == 20 * HW * s.args["c1"] * s.args["c2"]
    macs = [c.macs for c in cx]
    # the paper's widths hold c1*c2 within 5.5% (ARM 1:2 is 22*44 = 968 against 32*32 = 1024)
    assert max(macs) / min(macs) < 1.06
    mem = [c.memory_access for c in cx]
    assert mem == sorted(mem) and len(set(mem)) == 4
    # 1:1 attains Eq. 1's bound, conv by conv: MAC = 2*sqrt(h*w*B) + B/(h*w)
    c = specs[0].args["c1"]
    b = HW * c * c
    assert cx[0].memory_access == pytest.approx(20 * (2 * math.sqrt(HW * b) + b / HW))
    for s, m in zip(specs[1:], mem[1:]):
        b = HW * s.args["c1"] * s.args["c2"]
        assert m > 20 * (2 * math.sqrt(HW * b) + b / HW)


@pytest.mark.parametrize("platform", ["gpu", "arm"])
def test_g2_flops_fixed_and_mac_grows_with_groups_per_eq2(platform):
    specs = benchmark_specs("G2", platform, 1)
    cx = [s.cost() for s in specs]
    ratio = [c.macs / cx[0].macs for c in cx]
    # ARM g=8 uses c=184 (180 is not divisible by 8): 3.3% over g=1; every other row within 2%
    assert all(abs(r - 1) < 0.02 for r in ratio[:3])
    assert abs(ratio[3] - 1) < (0.034 if platform == "arm" else 0.02)
    for s, c in zip(specs, cx):
        ch, g = s.args["c"], s.args["g"]
        b = HW * ch * ch // g
        assert c.macs == 10 * b
        assert c.memory_access == 10 * (HW * ch + b * g // ch + b // HW)  # Eq. 2
    mem = [c.memory_access for c in cx]
    assert mem == sorted(mem) and len(set(mem)) == 4


@pytest.mark.parametrize("platform", ["gpu", "arm"])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_g3_fragment_blocks_hold_the_flops(platform, scale):
    cx = {s.label: s.cost() for s in benchmark_specs("G3", platform, scale)}
    one = cx["1-fragment"].macs
    for label in ("4-fragment-series", "2-fragment-parallel", "4-fragment-parallel"):
        assert cx[label].macs == one
    # 2 x c' with c' = round(c / sqrt(2)): equal up to the rounding of c'
    assert cx["2-fragment-series"].macs == pytest.approx(one, rel=0.012)
    assert series_width(64, 2) == 45 and series_width(128, 4) == 64


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_g4_relu_and_shortcut_cost_exactly_their_element_wise_ops(scale):
    specs = benchmark_specs("G4", "arm", scale)
    both, relu_only, shortcut_only, neither = (s.cost() for s in specs)
    assert len({c.macs for c in (both, relu_only, shortcut_only, neither)}) == 1
    c = 32 * scale
    relu = 10 * 2 * HW * (c // 4 + c // 4 + c)  # 3 ReLUs per unit, read + write
    add = 10 * 3 * HW * c  # y + x: read two, write one
    assert both.memory_access - shortcut_only.memory_access == relu
    assert relu_only.memory_access - neither.memory_access == relu
    assert both.memory_access - relu_only.memory_access == add
    assert shortcut_only.memory_access - neither.memory_access == add


@pytest.mark.parametrize("table", ["G1", "G2", "G3", "G4"])
@pytest.mark.parametrize("platform,scale,hw", [("arm", 1, 56), ("gpu", 1, 16), ("gpu", 4, 4)])
def test_analytic_equals_traced(table, platform, scale, hw):
    specs = benchmark_specs(table, platform, scale)
    c_max = max(s.c_in for s in specs)
    for s in specs:
        net = s.build()
        traced = traced_counts(net, (c_max, hw, hw))
        cx = s.cost(hw)
        assert (cx.macs, cx.memory_access, cx.activations) == (
            traced.macs,
            traced.memory_access,
            traced.activations,
        ), s.label
        assert cx.params == traced.params == sum(p.numel() for p in net.parameters())


def test_take_channels_is_a_free_view_and_refuses_too_few():
    import torch

    x = torch.randn(2, 8, 3, 3)
    y = TakeChannels(5)(x)
    assert y.shape == (2, 5, 3, 3) and y.data_ptr() == x.data_ptr()
    assert TakeChannels.complexity(Cx(8, 3, 3), 5) == Cx(5, 3, 3)
    with pytest.raises(ValueError, match="fewer than"):
        TakeChannels(9)(x)


def test_impossible_widths_are_refused():
    with pytest.raises(ValueError, match="divisible by g=8"):
        G2Layer(180, 8)
    with pytest.raises(ValueError, match="multiple of 4"):
        G3Block(90, 4, "parallel")
    with pytest.raises(ValueError, match="unknown guideline table"):
        benchmark_specs("G5", "arm", 1)
    with pytest.raises(ValueError, match="unknown platform"):
        benchmark_specs("G1", "tpu", 1)
    with pytest.raises(ValueError, match="scale"):
        benchmark_specs("G1", "arm", 3)


def test_networks_and_paper_rows_line_up():
    for table, speeds in PAPER_SPEED.items():
        nets = guideline_networks(table, "arm", 1)
        assert len(nets) == len(speeds["gpu"]) == len(speeds["arm"])
    assert [label for label, _ in guideline_networks("G1", "gpu", 1)] == [
        "1:1",
        "1:2",
        "1:6",
        "1:12",
    ]
    assert paper_speeds("G3", "gpu", 2) == [1274, 909, 745, 803, 572]
    assert paper_speeds("G4", "arm", 4) == [5.0, 5.2, 5.1, 5.4]


@pytest.mark.parametrize(
    "x,y",
    [
        ([1, 2, 3, 4], [10, 20, 30, 40]),
        ([1, 2, 3, 4], [4, 3, 1, 2]),
        ([0.4, 0.9, 0.1, 0.7, 0.5], [40.2, 38.6, 38.4, 33.4, 35.0]),
        ([3, 1, 2, 2, 5], [10.1, 10.1, 10.1, 9.1, 8.4]),  # ties on both sides
    ],
)
def test_spearman_equals_scipy(x, y):
    assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic)


def test_spearman_undefined_and_verdicts():
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert verdict(float("nan")) == "n/a"
    assert verdict(0.8) == "agrees" and verdict(0.4) == "disagrees"


def test_run_guidelines_tiny():
    r = run_guidelines(quick=True, tables=("G1",), input_hw=16, rounds=3, threads=1)
    assert [row.label for row in r.rows] == ["1:1", "1:2", "1:6", "1:12"]
    assert [row.paper_arm for row in r.rows] == [76.2, 72.9, 69.1, 57.6]
    assert [row.macs for row in r.rows] == [
        s.cost(16).macs for s in benchmark_specs("G1", "arm", 1)
    ]
    assert r.rows[0].relative_speed == 1.0
    for row in r.rows:
        assert row.images_per_s == pytest.approx(1e3 / row.median_ms)
    (c,) = r.correlations
    assert (c.table, c.scale) == ("G1", 1)
    ours = [row.relative_speed for row in r.rows]
    assert c.rho_arm == pytest.approx(scipy.stats.spearmanr(ours, [76.2, 72.9, 69.1, 57.6])[0])
    assert r.settings["platform"] == "arm" and r.settings["input_size"] == [16, 16]
    assert r.settings["threads"] == 1 and r.settings["backend"]
    assert r.settings["malloc"] == malloc_mode()  # the footer printed "system" when it was not


def test_cli_quick_writes_csv_json_png(tmp_path, capsys):
    args = ["guidelines", "--quick", "--tables", "G4", "--input-hw", "16", "--rounds", "3"]
    code = main([*args, "--threads", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "G4 x1" in out and "relu=no shortcut=no" in out and "Spearman" in out
    assert "malloc retain" in out  # the command's default, as measured
    rows = list(csv.DictReader((tmp_path / "guidelines.csv").open()))
    assert [r["label"] for r in rows][0] == "relu=yes shortcut=yes" and len(rows) == 4
    data = json.loads((tmp_path / "guidelines.json").read_text())
    assert data["correlations"][0]["verdict_arm"] in ("agrees", "disagrees")
    assert (tmp_path / "guidelines.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json_and_bad_input(tmp_path, capsys):
    code = main(
        ["guidelines", "--quick", "--tables", "G2", "--input-hw", "8", "--rounds", "3"]
        + ["--json", "--out", str(tmp_path)]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and [r["label"] for r in data["rows"]] == ["g=1", "g=2", "g=4", "g=8"]
    for bad, message in (
        (["--tables", "G7"], "unknown guideline table"),
        (["--platform", "tpu"], "unknown platform"),
    ):
        code = main(["guidelines", "--quick", *bad, "--out", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_run_guidelines_on_a_deploy_backend():
    """backend= deploys each network first (the deployment layer), and the settings say so."""
    r = run_guidelines(quick=True, tables=("G4",), input_hw=8, rounds=3, threads=1, backend="eager")
    assert r.settings["backend"] == "eager" and len(r.rows) == 4
    with pytest.raises(ValueError, match="unknown backend 'tvm'"):
        run_guidelines(quick=True, tables=("G4",), backend="tvm")
