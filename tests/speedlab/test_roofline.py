"""Roofline: intensity and bound against hand computations, the measured peak, and the command.
Times are never asserted; only counts, closed forms and what the command writes."""

import json

import pytest

import cnnlab
from cnnlab.cli.main import main
from cnnlab.ops.cost import Cx, conv2d_cx, pool_cx
from cnnlab.speedlab.roofline import (
    Peak,
    arithmetic_intensity,
    attainable_gflops,
    machine_peak,
    ridge_point,
    roofline_row,
)

TINY_PEAK = ["--peak-matmul", "64", "--peak-copy-mb", "1"]


def test_intensity_of_a_1x1_conv():
    """ShuffleNet v2 §2: B = h*w*c1*c2 MACs, MAC = h*w*(c1+c2) + c1*c2 elements."""
    h = w = 56
    c1 = c2 = 128
    cx = conv2d_cx(Cx(c1, h, w), c2, 1)
    assert cx.macs == h * w * c1 * c2 == 51_380_224
    assert cx.memory_access == h * w * (c1 + c2) + c1 * c2 == 819_200
    # 2 * 51,380,224 FLOPs / (4 * 819,200 bytes)
    assert arithmetic_intensity(cx.macs, cx.memory_access) == pytest.approx(31.36)


def test_intensity_without_macs_or_traffic_is_zero():
    pool = pool_cx(Cx(24, 112, 112), 3, 2, 1)
    assert arithmetic_intensity(pool.macs, pool.memory_access) == 0.0
    assert arithmetic_intensity(10, 0) == 0.0


def test_bound_is_the_lower_roof():
    assert attainable_gflops(100.0, 10.0, 31.36) == 100.0  # compute bound
    assert attainable_gflops(100.0, 2.0, 31.36) == pytest.approx(62.72)  # memory bound
    assert ridge_point(100.0, 8.0) == 12.5
    assert attainable_gflops(100.0, 8.0, 12.5) == pytest.approx(100.0)


def test_roofline_row_achieved_rate_and_fraction():
    peak = Peak(100.0, 2.0, {})
    row = roofline_row("conv", "Conv", 51_380_224, 819_200, 2.0, 4, peak)
    # 2 FLOPs/MAC * 51,380,224 MACs * 4 images / 2 ms = 205.520896 GFLOP/s
    assert row.achieved_gflops == pytest.approx(205.520896)
    assert row.bound_gflops == pytest.approx(62.72)
    assert row.fraction == pytest.approx(205.520896 / 62.72)
    pool = roofline_row("pool", "MaxPool", 0, 376_320, 1.0, 1, peak)
    assert pool.intensity == 0.0 and pool.fraction is None


def test_machine_peak_is_positive_with_tiny_sizes():
    p = machine_peak(threads=1, matmul_size=64, copy_mb=1, min_samples=3, min_seconds=0.01)
    assert p.gflops > 0 and p.gbps > 0
    assert p.settings["matmul_size"] == 64 and p.settings["copy_bytes"] == 2**20
    assert p.settings["threads"] == 1 and p.settings["device"] == "cpu"


@pytest.mark.parametrize(
    "kwargs,message",
    [({"matmul_size": 0}, "matmul_size must be >= 1"), ({"copy_mb": 0}, "copy_mb must hold")],
)
def test_machine_peak_refuses_empty_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        machine_peak(**kwargs)


def test_cli_places_every_layer_and_writes_png_and_json(tmp_path, capsys):
    out = tmp_path / "rl"
    args = ["roofline", "shufflenet_v2_x0_5", "--input-size", "32", "--threads", "1", *TINY_PEAK]
    code = main([*args, "--out", str(out), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (out / "roofline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "roofline.json").read_text())
    assert data == printed
    c = cnnlab.complexity("shufflenet_v2_x0_5", (3, 32, 32))
    assert [r["name"] for r in data["layers"]] == [r.name for r in c.rows]
    assert [r["macs"] for r in data["layers"]] == [r.cx.macs for r in c.rows]
    assert (data["total"]["macs"], data["total"]["memory_access"]) == (c.macs, c.memory_access)
    peak = data["peak"]
    for r in [*data["layers"], data["total"]]:
        assert r["intensity"] == pytest.approx(arithmetic_intensity(r["macs"], r["memory_access"]))
        bound = attainable_gflops(peak["gflops"], peak["gbps"], r["intensity"])
        assert r["bound_gflops"] == pytest.approx(bound)
    assert data["layers"][1]["name"] == "maxpool" and data["layers"][1]["fraction"] is None
    assert data["settings"]["input_size"] == [3, 32, 32] and data["settings"]["threads"] == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["roofline", "shufflenet_v2_x1_O"], "did you mean"),
        (["roofline", "shufflenet_v2_x0_5", "--input-size", "3x2"], "--input-size must be"),
        (["roofline", "shufflenet_v2_x0_5", "--input-size", "1x32x32"], "in_chans=3"),
        (["roofline", "shufflenet_v2_x0_5", "--batch-size", "0"], "batch_size must be >= 1"),
        (["roofline", "shufflenet_v2_x0_5", "--device", "bogus"], "unknown device"),
        (["roofline", "shufflenet_v2_x0_5", "--peak-matmul", "0"], "--peak-matmul"),
        (["roofline"], "Missing argument"),
    ],
)
def test_cli_bad_input_exits_2(capsys, tmp_path, args, message):
    code = main([*args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_the_input_size_comes_from_the_model():
    from torch import nn

    from cnnlab.speedlab.roofline import roofline

    model = nn.Sequential(nn.Conv2d(3, 4, 1))
    model.default_input_size = (3, 12, 10)  # as a built registered model carries its own
    r = roofline(model, threads=1, peak=Peak(100.0, 10.0, {}))
    assert r.settings.input_size == (3, 12, 10) and r.rows == ()
    assert r.total.macs == cnnlab.complexity(model, (3, 12, 10)).macs
