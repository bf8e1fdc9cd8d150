"""The lut commands' jobs: model selection, the default table file of a setting (its backend
included), and build -> predict -> evaluate meeting at that file from the command line."""

import json
from pathlib import Path

import pytest

from cnnlab.cli.main import main
from cnnlab.speedlab.lut.jobs import (
    FULL,
    QUICK,
    build_sampling,
    default_path,
    select_models,
    synthetic_sample,
)

MODEL = "mobilenet_v1_x0_25"
SETTING = ("--input-size", "16", "--threads", "1")


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_select_models_expands_patterns_once_in_order():
    names = select_models("mobilenet_v1_x0_25, mobilenet_v1_*")
    assert names[0] == "mobilenet_v1_x0_25" and names.count("mobilenet_v1_x0_25") == 1
    assert set(names) == {f"mobilenet_v1_x{w}" for w in ("0_25", "0_5", "0_75", "1_0")}
    assert select_models(["mobilenet_v1_x0_5", "mobilenet_v1_x0_25"]) == [
        "mobilenet_v1_x0_5",
        "mobilenet_v1_x0_25",
    ]
    with pytest.raises(ValueError, match="no model matches 'resnet9000'"):
        select_models("mobilenet_v1_x0_25,resnet9000")


def test_default_path_names_the_setting_and_the_backend():
    assert default_path("cpu", 2, 8) == Path("cnnlab-out/lut/cpu-t2-b8.json")
    assert default_path("cuda:0", 1, 1, "eager") == Path("cnnlab-out/lut/cuda_0-t1-b1-eager.json")


def test_sampling_and_synthetic_sample():
    assert build_sampling() == FULL and build_sampling(quick=True) == QUICK
    assert build_sampling(True, min_seconds=0.5) == {**QUICK, "min_seconds": 0.5}
    assert synthetic_sample(0) is None and synthetic_sample(3).per_group == 3
    with pytest.raises(ValueError, match="synthetic must be >= 0"):
        synthetic_sample(-1)


@pytest.fixture(scope="module")
def eager_table(tmp_path_factory):
    """A tiny table built with --backend eager at its default path, under a fresh folder."""
    folder = tmp_path_factory.mktemp("backend")
    sampling = ("--min-samples", "2", "--min-seconds", "0.001", "--synthetic", "0")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        code = main(["lut", "build", "--models", MODEL, *SETTING, *sampling, "--backend", "eager"])
    assert code == 0
    assert (folder / "cnnlab-out/lut/cpu-t1-b1-eager.json").exists()
    return folder


def test_predict_and_evaluate_find_the_table_a_backend_build_wrote(
    eager_table, capsys, monkeypatch
):
    monkeypatch.chdir(eager_table)
    code, out, err = run(capsys, "lut", "predict", MODEL, *SETTING, "--backend", "eager", "--json")
    assert code == 0, err
    p = json.loads(out)
    assert p["lut"] == "cnnlab-out/lut/cpu-t1-b1-eager.json" and "backend eager" in p["setting"]
    assert p["coverage"] == 1.0 and p["missing"] == []
    fast = ("--min-samples", "3", "--min-seconds", "0.01")
    code, out, err = run(capsys, "lut", "evaluate", MODEL, *SETTING, *fast, "--backend", "eager",
                         "--json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["lut"] == p["lut"] and [r["model"] for r in data["rows"]] == [MODEL]


def test_predict_without_the_backend_looks_for_the_table_without_one(
    eager_table, capsys, monkeypatch
):
    monkeypatch.chdir(eager_table)
    code, _, err = run(capsys, "lut", "predict", MODEL, *SETTING)
    assert code == 2 and "no latency table at 'cnnlab-out/lut/cpu-t1-b1.json'" in err


def test_a_table_of_another_backend_is_refused_unless_forced(eager_table, capsys, monkeypatch):
    monkeypatch.chdir(eager_table)
    lut = ("--lut", "cnnlab-out/lut/cpu-t1-b1-eager.json")
    code, _, err = run(capsys, "lut", "predict", MODEL, *SETTING, *lut, "--backend", "compile")
    assert code == 2 and "backend 'eager' (table) != 'compile' (here)" in err
    code, out, err = run(capsys, "lut", "predict", MODEL, *SETTING, *lut, "--backend", "compile",
                         "--force")  # fmt: skip
    assert code == 0 and "warning: forced use" in err and "backend eager" in out
    # a build continuing the file under another backend is refused with the way out
    code, _, err = run(capsys, "lut", "build", "--models", MODEL, *SETTING, "--out", lut[1])
    assert code == 2 and "backend 'eager' (table) != 'as given' (here)" in err
    assert "pass --fresh" in err
