"""Values the speed lab used to accept silently, or refuse with a traceback: each is refused in
one line (exit status 2) that says what, the value and the fix."""

import json

import pytest

from cnnlab.cli.main import main
from cnnlab.speedlab.bench import BenchRow
from cnnlab.speedlab.lut.table import FORMAT

HUGE = "3x100000x100000"
MODEL = "shufflenet_v2_x0_5"


def refused(capsys, *args) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("cnnlab: error: "), err
    return err.splitlines()[-1]


@pytest.mark.parametrize(
    "args",
    [
        ("latency", MODEL),
        ("deploy", MODEL),
        ("breakdown", MODEL),
        ("lint", MODEL),
        ("roofline", MODEL),
        ("bench", MODEL, "--out", "OUT"),
        ("lut", "build", "--models", MODEL, "--out", "OUT"),
    ],
)
def test_an_input_larger_than_the_memory_is_refused_naming_both_figures(capsys, tmp_path, args):
    args = [str(tmp_path / "o") if a == "OUT" else a for a in args]
    err = refused(capsys, *args, "--input-size", HUGE)
    assert "GiB of memory" in err and "RAM" in err and "--input-size" in err


def test_lut_predict_of_a_huge_input_is_refused(capsys, tmp_path):
    lut = _table(tmp_path, {})
    err = refused(
        capsys, "lut", "predict", MODEL, "--lut", str(lut), "--force", "--input-size", HUGE
    )
    assert "GiB of memory" in err


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("lut", "predict", MODEL, "--batch-size", "0"), "batch_size must be >= 1"),
        (("lut", "predict", MODEL, "--threads", "0"), "threads must be >= 1"),
        (("lut", "evaluate", MODEL, "--batch-size", "0"), "batch_size must be >= 1"),
        (("lut", "build", "--models", MODEL, "--min-samples", "0"), "min_samples must be >= 1"),
        (("lut", "build", "--models", MODEL, "--min-seconds", "-1"), "min_seconds must be >= 0"),
        (("lut", "build", "--models", MODEL, "--threads", "0"), "threads must be >= 1"),
        (("lut", "evaluate", MODEL, "--min-samples", "0", "--force"), "min_samples must be >= 1"),
    ],
)
def test_zero_and_negative_settings_are_refused_not_read_as_defaults(capsys, tmp_path, args, what):
    lut = ["--lut", str(_table(tmp_path, {}))] if args[1] == "evaluate" else []
    out = ["--out", str(tmp_path / "t.json")] if args[1] == "build" else []
    assert what in refused(capsys, *args, *lut, *out)


def test_lut_predict_top_below_zero_is_refused(capsys, tmp_path):
    err = refused(
        capsys, "lut", "predict", MODEL, "--lut", str(_table(tmp_path, {})), "--top", "-1"
    )
    assert "--top" in err and "-1" in err


def _table(tmp_path, entries, **fields) -> str:
    data = {
        "format": FORMAT, "device": "cpu", "device_name": "x", "threads": 1, "batch_size": 1,
        "backend": "as given", "torch": "0", "torchvision": "0", "cnnlab": "0", "created": "now",
        "entries": entries, **fields,
    }  # fmt: skip
    path = tmp_path / "table.json"
    path.write_text(json.dumps(data).replace('"NaN"', "NaN"))
    return str(path)


@pytest.mark.parametrize("median", ["NaN", -1.0])
def test_a_table_with_a_nan_or_negative_latency_is_refused_naming_file_and_operator(
    capsys, tmp_path, median
):
    path = _table(tmp_path, {"conv-op-key": {"median_ms": median, "iqr_ms": 0.1, "count": 5}})
    err = refused(capsys, "lut", "predict", MODEL, "--lut", path, "--force")
    assert "table.json" in err and "conv-op-key" in err and "finite" in err


def test_models_not_a_list_is_refused_naming_the_field(capsys, tmp_path):
    path = _table(tmp_path, {}, models=5)
    err = refused(capsys, "lut", "predict", MODEL, "--lut", path, "--force")
    assert "'models'" in err and "list of model names" in err and "not iterable" not in err


def test_a_binary_table_file_is_refused_naming_it(capsys, tmp_path):
    path = tmp_path / "table.bin"
    path.write_bytes(bytes(range(256)) * 4)
    err = refused(capsys, "lut", "predict", MODEL, "--lut", str(path))
    assert "table.bin" in err and "not a latency table" in err and "codec" not in err


def _row(latency: float, iqr: float) -> BenchRow:
    return BenchRow(
        "40M", MODEL, (3, 224, 224), 1, 1, 1, 1, latency, iqr, 1.0, 1.0, "eager", 1.0, 1
    )


def test_bench_marks_rows_whose_iqr_exceeds_the_median(capsys, tmp_path):
    from dataclasses import asdict

    from cnnlab.cli.bench import _print

    rows = [_row(2.0, 5.0), _row(2.0, 0.1)]
    assert [asdict(r)["unreliable"] for r in rows] == [True, False]
    _print(rows, {k: tmp_path / k for k in ("csv", "json", "png")})
    out = capsys.readouterr().out
    assert "5.00 *" in out and "* unreliable: IQR above the median" in out
