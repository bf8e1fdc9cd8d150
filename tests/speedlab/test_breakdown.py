"""Runtime breakdown (ShuffleNet v2 Fig. 2): op classification, attribution without double
counting, and the command. No test asserts a time, only which categories are (non-)zero and sums."""

import json

import pytest
import torch
from torch import nn
from torch.profiler import profile

from cnnlab.cli.main import main
from cnnlab.ops.shuffle import channel_shuffle
from cnnlab.speedlab import breakdown as bd
from cnnlab.speedlab.breakdown import (
    CATEGORIES,
    DATA,
    DENSE,
    DEPTHWISE,
    ELEMENTWISE,
    FC,
    GROUP,
    OTHER,
    OVERHEAD,
    POOL,
    classify_op,
    conv_groups,
    runtime_breakdown,
)

QUICK = dict(iterations=3, threads=1, warmup_max_seconds=2.0)


class EveryCategory(nn.Module):
    """Dense, group and depthwise conv, ReLU, concat, channel shuffle, max pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Conv2d(3, 12, 3, padding=1)
        self.group = nn.Conv2d(12, 12, 1, groups=3)
        self.depthwise = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(24 * 8 * 8, 5)

    def forward(self, x):
        a = torch.relu(self.dense(x))
        b = self.group(a)
        c = self.depthwise(b)
        y = channel_shuffle(torch.cat([b, c], 1), 2)
        return self.fc(torch.flatten(self.pool(y), 1))


@pytest.mark.parametrize(
    "op,groups,in_channels,category",
    [
        ("aten::conv2d", 1, 3, DENSE),
        ("aten::conv2d", 1, 1, DENSE),  # groups = in_channels = 1 is an ordinary conv
        ("aten::conv2d", 3, 12, GROUP),
        ("aten::convolution", 12, 12, DEPTHWISE),
        ("aten::mkldnn_convolution", 24, 24, DEPTHWISE),
        ("aten::relu_", None, None, ELEMENTWISE),
        ("aten::hardtanh_", None, None, ELEMENTWISE),
        ("aten::add", None, None, ELEMENTWISE),
        ("aten::batch_norm", None, None, ELEMENTWISE),
        ("aten::cat", None, None, DATA),
        ("aten::contiguous", None, None, DATA),
        ("aten::copy_", None, None, DATA),
        ("aten::transpose", None, None, DATA),
        ("aten::max_pool2d", None, None, POOL),
        ("aten::mean", None, None, POOL),
        ("aten::addmm", None, None, FC),
        ("aten::linear", None, None, FC),
        ("aten::empty", None, None, OTHER),
    ],
)
def test_classify_op(op, groups, in_channels, category):
    assert classify_op(op, groups, in_channels) == category


def test_classify_conv_needs_groups_that_divide_channels():
    with pytest.raises(ValueError, match="groups and in_channels"):
        classify_op("aten::conv2d")
    with pytest.raises(ValueError, match="groups=5, in_channels=12"):
        classify_op("aten::conv2d", 5, 12)


def test_conv_groups_from_recorded_shapes():
    assert conv_groups([[1, 12, 16, 16], [12, 4, 1, 1], [12]]) == (3, 12)
    assert conv_groups([[12, 16, 16], [24, 1, 3, 3]]) == (12, 12)  # unbatched depthwise
    with pytest.raises(ValueError, match="weight shape"):
        conv_groups([[1, 12, 16, 16], []])


def test_conv_groups_agree_with_the_profiler_concrete_inputs():
    conv = nn.Conv2d(12, 24, 1, groups=3).eval()
    with torch.inference_mode(), profile(record_shapes=True) as prof:
        conv(torch.randn(1, 12, 8, 8))
    (evt,) = [e for e in prof.events() if e.name == "aten::conv2d"]
    assert conv_groups(evt.input_shapes) == (3, 12)
    concrete = getattr(evt, "concrete_inputs", None)
    if concrete:  # torch >= 2.x records scalar arguments; conv2d's last one is groups
        assert concrete[-1] == 3


def test_every_category_of_the_hand_built_model_is_seen():
    b = runtime_breakdown(EveryCategory(), input_size=(3, 16, 16), **QUICK)
    assert set(b.ms) == set(CATEGORIES)
    assert {c for c, ms in b.ms.items() if ms > 0} == set(CATEGORIES) - {OTHER}
    assert b.ms[OTHER] == 0.0
    assert sum(b.ms.values()) == pytest.approx(b.total_ms, rel=1e-9)
    assert sum(b.percent(c) for c in CATEGORIES) == pytest.approx(100.0)
    assert b.iterations == 3 and b.settings.threads == 1 and b.settings.input_size == (3, 16, 16)


def test_a_linear_model_is_all_fully_connected():
    b = runtime_breakdown(nn.Linear(16, 4), input_size=(1, 1, 16), **QUICK)
    assert {c for c, ms in b.ms.items() if ms > 0} == {FC, OVERHEAD}


def test_top_level_attribution_equals_the_self_time_of_every_operator():
    """Charging top-level operators their total time counts each operator's self time once."""
    model, x = EveryCategory().eval(), torch.randn(1, 3, 16, 16)
    with torch.inference_mode():
        events = bd.profile_iterations(lambda: model(x), 3, torch.device("cpu"))
    us, total, n = bd.attribute(events)
    assert n == 3
    self_us = sum(e.self_cpu_time_total for e in events if bd.is_op(e.name))
    assert sum(v for c, v in us.items() if c != OVERHEAD) == pytest.approx(self_us, rel=1e-9)
    roots = sum(e.cpu_time_total for e in events if e.name == bd.ITERATION)
    assert total == pytest.approx(roots) and us[OVERHEAD] > 0


def test_the_group_conv_runs_children_that_count_as_group_conv():
    """PyTorch's slow path runs a group conv as narrow + per-group conv + cat: one category."""
    model, x = nn.Conv2d(12, 12, 1, groups=3).eval(), torch.randn(1, 12, 8, 8)
    with torch.inference_mode():
        events = bd.profile_iterations(lambda: model(x), 2, torch.device("cpu"))
    us, _, _ = bd.attribute(events)
    assert us[GROUP] > 0 and us[DATA] == 0.0 and us[DENSE] == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        runtime_breakdown(nn.Linear(4, 4), input_size=(1, 1, 4), iterations=0)
    for runtime in ("onnxruntime", "openvino"):
        with pytest.raises(ValueError, match=f"no operators inside {runtime}"):
            runtime_breakdown(nn.Linear(4, 4), input_size=(1, 1, 4), backend=runtime)


def test_cli_writes_png_and_json(tmp_path, capsys):
    out = tmp_path / "bd"
    args = ["breakdown", "shufflenet_v2_x0_5", "--input-size", "32", "--iterations", "2"]
    code = main([*args, "--threads", "1", "--out", str(out), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (out / "breakdown.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "breakdown.json").read_text())
    assert data == printed
    b = data["models"]["shufflenet_v2_x0_5"]
    assert set(b["ms"]) == set(CATEGORIES)
    assert sum(b["ms"].values()) == pytest.approx(b["total_ms"])
    assert b["ms"][GROUP] == 0.0 and b["ms"][DEPTHWISE] > 0 and b["ms"][DATA] > 0
    assert b["settings"]["input_size"] == [3, 32, 32] and b["settings"]["backend"] == "as given"
    assert not list(out.glob(".*.tmp"))  # the temporary files were renamed into place


@pytest.mark.parametrize(
    "args,message",
    [
        (["breakdown", "shufflenet_v2_x1_O"], "did you mean"),
        (["breakdown", "shufflenet_v2_x0_5", "--input-size", "3x2"], "--input-size must be"),
        (["breakdown", "shufflenet_v2_x0_5", "--iterations", "0"], "iterations must be >= 1"),
    ],
)
def test_cli_bad_input_exits_2(capsys, tmp_path, args, message):
    code = main([*args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_the_input_size_comes_from_the_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten())
    model.default_input_size = (3, 12, 10)  # as a built registered model carries its own
    assert runtime_breakdown(model, **QUICK).settings.input_size == (3, 12, 10)
