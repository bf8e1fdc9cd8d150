"""Latency tables: operator signatures, build, exact prediction sums, refusals, and the CLI."""

import json
import math

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.cli.main import main
from cnnlab.measure.allocator import malloc_mode
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.shuffle import channel_shuffle
from cnnlab.speedlab.lut.opsig import extract_ops
from cnnlab.speedlab.lut.table import (
    LatencyTable,
    LutEntry,
    build_lut,
    device_name,
    environment,
    load_lut,
    predict_latency,
)

SIZE = (3, 16, 16)
TINY_SAMPLING = {"min_samples": 2, "min_seconds": 0.001, "max_seconds": 0.5}


class Tiny(nn.Module):
    """Stem, two identical depthwise convs, concat, shuffle, bn-relu, add-relu, pool, head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvNormAct(3, 8, 3, 2)
        self.a = ConvNormAct(8, 8, 3, 1, groups=8, act=None)
        self.b = ConvNormAct(8, 8, 3, 1, groups=8, act=None)
        self.norm = nn.BatchNorm2d(16)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.cat((self.a(x), self.b(x)), dim=1)
        x = self.act(self.norm(channel_shuffle(x, 2)))
        x = torch.relu(x + x)
        return self.fc(self.pool(x).mean((2, 3)))


STEM = "conv2d+bn+relu_ in=3x16x16 out=8 k=3 s=2 p=1 d=1 g=1 bias=0"
DW = "conv2d+bn in=8x8x8 out=8 k=3 s=1 p=1 d=1 g=8 bias=0"
CAT = "cat in=8x8x8,8x8x8 dim=1"
SHUFFLE = "channel_shuffle in=16x8x8 g=2"
BN_RELU = "bn+relu_ in=16x8x8"
ADD = "add in=16x8x8,16x8x8"
RELU = "relu in=16x8x8"
POOL = "max_pool2d in=16x8x8 k=3 s=2 p=1 d=1 ceil=0"
MEAN = "mean in=16x4x4 dims=2,3 keepdim=0"
LINEAR = "linear in=16 out=10 bias=1"
TINY_KEYS = [STEM, DW, DW, CAT, SHUFFLE, BN_RELU, ADD, RELU, POOL, MEAN, LINEAR]
# Binary fractions, so that every sum below is exact in floating point.
TINY_MS = {
    STEM: 1.0,
    DW: 0.25,
    CAT: 0.125,
    SHUFFLE: 0.0625,
    BN_RELU: 0.5,
    ADD: 0.03125,
    RELU: 0.015625,
    POOL: 2.0,
    MEAN: 0.0078125,
    LINEAR: 4.0,
}


def table(entries: dict[str, float], threads: int | None = None) -> LatencyTable:
    """A table of this machine and software, with hand-written latencies."""
    return LatencyTable(
        "cpu",
        threads=threads or torch.get_num_threads(),
        batch_size=1,
        backend="as given",
        created="2024-01-01T00:00:00+00:00",
        entries={k: LutEntry(ms, 0.0, 1) for k, ms in entries.items()},
        **environment("cpu"),
    )


def test_signatures_of_a_tiny_model():
    ops = extract_ops(Tiny(), SIZE)
    assert [op.key for op in ops] == TINY_KEYS
    stem, dw = ops[0], ops[1]
    assert (stem.attr("s"), stem.attr("g"), stem.attr("out")) == (2, 1, 8)
    assert (dw.attr("s"), dw.attr("g"), dw.inputs) == (1, 8, ((8, 8, 8),))
    assert ops[1] == ops[2]  # two identical convs on one shape: one signature


def test_signatures_keep_the_batch_out_and_unknown_ops_in():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Softmax(dim=1))
    (conv, softmax) = extract_ops(model, (3, 5, 5), batch_size=2)
    assert conv.key == "conv2d in=3x5x5 out=4 k=1 s=1 p=0 d=1 g=1 bias=1"
    assert softmax.kind == "aten._softmax.default"
    assert softmax.inputs == ((2, 4, 5, 5),)  # no rule: full shapes, replayed as recorded
    module, size, batch = softmax.build(batch_size=2)
    assert module(torch.randn(batch, *size)).shape == (2, 4, 5, 5)


def test_prediction_is_the_exact_sum_of_entries():
    p = predict_latency(Tiny(), table(TINY_MS), SIZE)
    assert p.total_ms == 8.2421875  # by hand: 1 + 2 * 0.25 + 0.125 + ... + 4
    assert p.coverage == 1.0 and p.missing == () and p.ops == 11
    (dw,) = [r for r in p.rows if r.key == DW]
    assert (dw.count, dw.total_ms) == (2, 0.5)


def test_missing_signatures_are_reported_never_zero():
    partial = {k: v for k, v in TINY_MS.items() if k not in (POOL, LINEAR)}
    p = predict_latency(Tiny(), table(partial), SIZE)
    assert set(p.missing) == {POOL, LINEAR}
    assert p.coverage == 9 / 11
    assert p.total_ms == 8.2421875 - 6.0
    assert [r.total_ms for r in p.rows if r.key in (POOL, LINEAR)] == [None, None]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    lut = build_lut(Tiny(), input_size=SIZE, threads=1, **TINY_SAMPLING)
    path = lut.save(tmp_path_factory.mktemp("lut") / "tiny.json")
    return lut, path


def test_build_writes_the_table_with_its_setting(built):
    lut, path = built
    data = json.loads(path.read_text())
    assert data["device"] == "cpu" and data["device_name"] == device_name("cpu")
    assert (data["threads"], data["batch_size"], data["backend"]) == (1, 1, "as given")
    assert (data["torch"], data["torchvision"]) == (torch.__version__, environment()["torchvision"])
    assert data["cnnlab"] == environment()["cnnlab"] and data["created"]
    assert data["models"] == ["Tiny"]
    assert sorted(data["entries"]) == sorted(set(TINY_KEYS))
    for e in data["entries"].values():
        assert e["median_ms"] > 0 and e["iqr_ms"] >= 0 and e["count"] >= 2
    assert not list(path.parent.glob(".*.tmp"))  # written atomically, no temporary left
    p = predict_latency(Tiny(), load_lut(path, threads=1), SIZE)
    assert p.total_ms == math.fsum(data["entries"][k]["median_ms"] for k in TINY_KEYS)


def test_build_continues_a_table_and_measures_only_new_operators(built):
    lut, _ = built
    before = dict(lut.entries)
    grown = build_lut(
        nn.Sequential(nn.ReLU()), input_size=SIZE, threads=1, table=lut, **TINY_SAMPLING
    )
    assert set(grown.entries) == set(before) | {"relu in=3x16x16"}
    assert all(grown.entries[k] == e for k, e in before.items())


@pytest.mark.parametrize(
    "field,value,named",
    [
        ("torch", "1.0.0", "torch '1.0.0' (table)"),
        ("device_name", "Some Other CPU", "device_name 'Some Other CPU' (table)"),
        ("device", "mps", "device 'mps' is not usable here"),
        ("threads", 97, "threads 97 (table)"),
        ("malloc", "elsewhere", "malloc 'elsewhere' (table)"),
    ],
)
def test_a_table_from_elsewhere_is_refused_unless_forced(tmp_path, field, value, named):
    data = table(TINY_MS).to_dict()
    data[field] = value
    path = tmp_path / "other.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="measured under another setting") as e:
        load_lut(path)
    assert named in str(e.value)
    assert getattr(load_lut(path, force=True), field) == value


def test_bad_files_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no latency table at .*cnnlab lut build"):
        load_lut(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text('{"device": "cpu", "entries": ')
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_lut(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text('{"device": "cpu"}')
    with pytest.raises(ValueError, match="field 'device_name' is missing"):
        load_lut(tmp_path / "partial.json")


# --- the command line ----------------------------------------------------------------------------


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


CLI_MODEL = "mobilenet_v1_x0_25"
CLI_SETTING = ("--input-size", "16", "--threads", "1")


@pytest.fixture(scope="module")
def cli_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "t.json"
    sampling = ("--min-samples", "2", "--min-seconds", "0.001", "--synthetic", "1")
    code = main(
        ["lut", "build", "--models", CLI_MODEL, *CLI_SETTING, *sampling, "--out", str(path)]
    )
    assert code == 0
    return path


def test_cli_build_then_predict_sums_the_file(cli_table, capsys):
    entries = json.loads(cli_table.read_text())["entries"]
    code, out, _ = run(
        capsys, "lut", "predict", CLI_MODEL, "--lut", str(cli_table), *CLI_SETTING, "--json"
    )
    assert code == 0
    p = json.loads(out)
    keys = [op.key for op in extract_ops(cnnlab.create_model(CLI_MODEL), (3, 16, 16))]
    # predict sums count x latency per distinct operator; summing each occurrence instead can
    # differ in the last bit when an operator occurs 3 or more times (a rounded product)
    assert p["total_ms"] == pytest.approx(
        math.fsum(entries[k]["median_ms"] for k in keys), rel=1e-12
    )
    assert p["coverage"] == 1.0 and p["missing"] == []
    code, out, _ = run(capsys, "lut", "predict", CLI_MODEL, "--lut", str(cli_table), *CLI_SETTING)
    assert code == 0 and "coverage 100.0%" in out and "backend as given" in out


def test_cli_build_again_keeps_every_entry(cli_table, capsys):
    before = json.loads(cli_table.read_text())["entries"]
    code, out, _ = run(
        capsys,
        "lut",
        "build",
        "--models",
        CLI_MODEL,
        *CLI_SETTING,
        "--out",
        str(cli_table),
        "--synthetic",
        "1",
        "--json",
    )
    assert code == 0
    summary = json.loads(out)
    assert (summary["new"], summary["kept"]) == (0, len(before))


def test_cli_predict_reports_missing_operators(cli_table, capsys):
    args = ("lut", "predict", "shufflenet_v2_x0_5", "--lut", str(cli_table), *CLI_SETTING)
    code, out, _ = run(capsys, *args, "--no-regressors")
    assert code == 0
    assert "missing" in out and "lower bound" in out and "coverage 100.0%" not in out
    code, out, _ = run(capsys, *args, "--json")
    p = json.loads(out)
    assert code == 0 and p["missing"] == [] and p["sources"]["missing"] == 0
    assert p["sources"]["table"] + p["sources"]["regressor"] == p["ops"]
    assert p["sources"]["regressor"] > 0 and p["coverage"] < 1


def test_cli_default_path_and_refusals(cli_table, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "lut", "predict", CLI_MODEL, *CLI_SETTING)
    assert code == 2 and "no latency table at 'cnnlab-out/lut/cpu-t1-b1.json'" in err
    (tmp_path / "cnnlab-out" / "lut").mkdir(parents=True)
    (tmp_path / "cnnlab-out/lut/cpu-t1-b1.json").write_text(cli_table.read_text())
    code, out, _ = run(capsys, "lut", "predict", CLI_MODEL, *CLI_SETTING)
    assert code == 0 and "predicted" in out
    code, _, err = run(
        capsys,
        "lut",
        "predict",
        CLI_MODEL,
        "--lut",
        str(cli_table),
        "--input-size",
        "16",
        "--threads",
        "2",
    )
    assert code == 2 and "threads 1 (table) != 2 (here)" in err
    code, _, err = run(
        capsys,
        "lut",
        "predict",
        CLI_MODEL,
        "--lut",
        str(cli_table),
        "--input-size",
        "16",
        "--threads",
        "2",
        "--force",
    )
    assert code == 0 and "warning: forced use" in err


def test_cli_bad_input(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    for args, message in [
        (("predict", CLI_MODEL, "--lut", str(bad)), "is not valid JSON"),
        (("predict", "no_such_net", "--lut", str(bad)), "no model matches 'no_such_net'"),
        (("build", "--models", "nothing*", "--out", str(bad)), "no model matches 'nothing*'"),
        (("build", "--models", CLI_MODEL, "--out", str(bad)), "pass --fresh"),
    ]:
        code, _, err = run(capsys, "lut", *args)
        assert code == 2 and message in err and "Traceback" not in err


def test_cli_evaluate(cli_table, capsys):
    args = ("--lut", str(cli_table), *CLI_SETTING, "--min-samples", "3", "--min-seconds", "0.01")
    code, out, _ = run(capsys, "lut", "evaluate", CLI_MODEL, *args, "--json")
    assert code == 0
    (row,) = json.loads(out)["rows"]
    assert row["model"] == CLI_MODEL and row["held_out"] is False and row["coverage"] == 1.0
    assert row["error"] == (row["predicted_ms"] - row["measured_ms"]) / row["measured_ms"]


def test_missing_signatures_measured_on_demand_are_counted():
    lut = table({k: v for k, v in TINY_MS.items() if k not in (POOL, LINEAR)}, threads=1)
    p = predict_latency(Tiny(), lut, SIZE, measure_missing=True, min_samples=2, min_seconds=0.001)
    assert set(p.measured_now) == {POOL, LINEAR} and p.missing == ()
    assert p.coverage == 9 / 11  # of the table as it was
    assert p.sources == {"table": 9, "regressor": 0, "measured now": 2, "missing": 0}
    # the sum over operators, in another order: equal up to floating-point rounding only
    expected = 8.2421875 - 6.0 + lut.entries[POOL].median_ms + lut.entries[LINEAR].median_ms
    assert p.total_ms == pytest.approx(expected, rel=1e-12, abs=0)


def test_cli_measure_missing_grows_the_table(cli_table, capsys, tmp_path):
    path = tmp_path / "grow.json"
    path.write_text(cli_table.read_text())
    args = ("lut", "predict", "shufflenet_v2_x0_5", "--lut", str(path), *CLI_SETTING)
    code, out, _ = run(capsys, *args, "--measure-missing")
    assert code == 0 and "measured now and added to" in out
    code, out, _ = run(capsys, *args, "--json")
    assert code == 0 and json.loads(out)["coverage"] == 1.0


def test_a_table_from_before_the_malloc_field_was_measured_under_glibcs_own(tmp_path):
    data = table(TINY_MS).to_dict()
    assert data.pop("malloc") == malloc_mode()  # a new table records the mode in force
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    assert load_lut(path, force=True).malloc == "system"


def test_a_built_model_is_resolved_at_its_own_input_size():
    """As by name: a built registered model carries its registered input size (299 here)."""
    from cnnlab.speedlab.lut.table import _resolve

    by_name = _resolve("inception_v3", None)[2]
    built = _resolve(cnnlab.create_model("inception_v3"), None)[2]
    assert by_name == built == (3, 299, 299)
