"""The cnnlab command: tables, JSON, and one-line errors with exit status 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cnnlab
from cnnlab.cli.main import main, parse_input_size
from cnnlab.counting.report import models_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_json_equals_library(capsys):
    code, out, _ = run(capsys, "models", "shufflenet_v2_x1_0", "--json")
    assert code == 0
    (row,) = json.loads(out)
    c = cnnlab.complexity("shufflenet_v2_x1_0")
    assert row["name"] == "shufflenet_v2_x1_0"
    assert (row["params"], row["macs"], row["memory_access"]) == (c.params, c.macs, c.memory_access)
    assert row["input_size"] == [3, 224, 224]


def test_models_table_lists_every_match(capsys):
    code, out, _ = run(capsys, "models", "mobilenet_v2*")
    assert code == 0
    for name in cnnlab.list_models("mobilenet_v2*"):
        assert name in out
    assert "300.77" in out  # mobilenet_v2_x1_0 MACs (M)


def test_info_json_layers_sum_to_totals(capsys):
    code, out, _ = run(capsys, "info", "mobilenet_v2_x1_0", "--input-size", "3x160x160", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["input_size"] == [3, 160, 160]
    assert sum(layer["macs"] for layer in data["layers"]) == data["macs"]
    assert sum(layer["params"] for layer in data["layers"]) == data["params"] == 3504872
    assert data["layers"][0]["output_shape"] == [32, 80, 80]
    assert data["layers"][-1]["output_shape"] == [1000, 1, 1]


def test_info_table(capsys):
    code, out, _ = run(capsys, "info", "shufflenet_v2_x1_0")
    assert code == 0
    assert "stage2_0" in out and "145,814,296" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["info", "shufflenet_v2_x1_O"], "did you mean"),
        (["models", "nothing*"], "no model matches"),
        (["info", "shufflenet_v2_x1_0", "--input-size", "3x2"], "--input-size must be CxHxW"),
        (["info", "shufflenet_v2_x1_0", "--input-size", "1x224x224"], "in_chans=3"),
        (["models", "--bogus"], "No such option"),
        (["info"], "Missing argument"),
        (["latency", "shufflenet_v2_x0_5", "--mode", "eval"], "--mode must be one of"),
        (["latency", "shufflenet_v2_x0_5", "--dtype", "fp8"], "--dtype must be one of"),
        (["latency", "shufflenet_v2_x0_5", "--backend", "eager", "--mode", "train"], "an fp32"),
        (["latency", "shufflenet_v2_x0_5", "shufflenet_v2_x0_5"], "name each model once"),
        (["latency", "shufflenet_v2_x0_5", "--threads", "0"], "threads must be >= 1, got 0"),
        (["latency", "shufflenet_v2_x0_5", "--device", "cuda"], "CUDA is not available"),
        (
            ["deploy", "shufflenet_v2_x0_5", "--backend", "trt"],
            "unknown backend 'trt'; choose one of",
        ),
        (
            ["deploy", "shufflenet_v2_x0_5", "--candidates", "openvino"],
            "candidates must include 'eager'",
        ),
        (["deploy", "shufflenet_v2_x0_5", "--batch-size", "0"], "batch_size must be >= 1"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_console_script_exit_status():
    r = subprocess.run(
        [sys.executable, "-m", "cnnlab", "info", "no_such_model"], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert r.stderr.startswith("cnnlab: error: unknown model 'no_such_model'")


def test_parse_input_size():
    assert parse_input_size("224") == (3, 224, 224)
    assert parse_input_size("1x28x28") == (1, 28, 28)
    assert parse_input_size(None) is None


def test_docs_model_table_is_generated_from_the_code():
    assert DOCS.read_text() == models_markdown(), (
        "regenerate: cnnlab models --markdown > docs/models.md"
    )


# each command that writes files, and the call that does its (minutes of) work
WRITERS = [
    (["bench", "shufflenet_v2_x0_5", "--input-size", "32"], "cnnlab.cli.bench.run_bench"),
    (["guidelines", "--quick"], "cnnlab.cli.guidelines.run_guidelines"),
    (["breakdown", "shufflenet_v2_x0_5"], "cnnlab.speedlab.breakdown.runtime_breakdown"),
    (["roofline", "shufflenet_v2_x0_5"], "cnnlab.speedlab.roofline.machine_peak"),
    (["train", "--max-steps", "1"], "cnnlab.cli.train.Trainer"),
]


def _must_not_run(*args, **kwargs):
    raise AssertionError("the work started before the output folder was checked")


@pytest.mark.parametrize("args,work", WRITERS, ids=[a[0] for a, _ in WRITERS])
def test_unwritable_out_fails_before_the_work(capsys, monkeypatch, tmp_path, args, work):
    monkeypatch.setattr(work, _must_not_run)
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    code, _, err = run(capsys, *args, "--out", str(a_file))
    assert code == 2 and f"--out {a_file} is a file" in err
    code, _, err = run(capsys, *args, "--out", str(a_file / "sub"))
    assert code == 2 and "cannot write there (Not a directory)" in err
    assert len(err.strip().splitlines()) == 1


def test_lut_build_out_must_be_a_writable_file(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("cnnlab.cli.lut.build_file", _must_not_run)
    code, _, err = run(
        capsys, "lut", "build", "--models", "mobilenet_v2_x0_35", "--out", str(tmp_path)
    )
    assert code == 2 and "is a folder; give a file name" in err
    (tmp_path / "a_file").write_text("")
    target = tmp_path / "a_file" / "t.json"
    code, _, err = run(
        capsys, "lut", "build", "--models", "mobilenet_v2_x0_35", "--out", str(target)
    )
    assert code == 2 and f"cannot write there ({target.parent} is a file)" in err


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "inception_v3", "--out", "{tmp}"],
        ["breakdown", "inception_v3", "--out", "{tmp}"],
        ["roofline", "inception_v3", "--out", "{tmp}"],
        ["lut", "build", "--models", "inception_v3", "--out", "{tmp}/t.json"],
        ["lint", "inception_v3"],
        ["latency", "inception_v3"],
        ["deploy", "inception_v3"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_input_the_model_cannot_take_is_one_line(capsys, tmp_path, args):
    # Inception v3 needs at least 75x75; at 32x32 its mixed6a reduction has a 1x1 input
    args = [a.format(tmp=tmp_path) for a in args]
    code, _, err = run(capsys, *args, "--input-size", "32")
    assert code == 2, err
    assert "layer 'mixed6a': input of size 1 is too small for a window of 3" in err
    assert len(err.strip().splitlines()) == 1


def test_library_refuses_an_input_the_model_cannot_take():
    too_small = "inception_v3 cannot take a 3x32x32 input: layer 'mixed6a'"
    with pytest.raises(ValueError, match=too_small):
        cnnlab.measure_latency("inception_v3", input_size=(3, 32, 32))
    with pytest.raises(ValueError, match="this model cannot take a 3x32x32 input"):
        cnnlab.deploy(cnnlab.create_model("inception_v3"), input_size=(3, 32, 32), backend="eager")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--tables", "G5"], "unknown guideline table 'G5'"),
        (["--tables", ","], "tables must name at least one of G1, G2, G3, G4"),
        (["--platform", "tpu"], "unknown platform 'tpu'"),
    ],
)
def test_guidelines_refuses_bad_choices_before_making_the_out_folder(
    capsys, monkeypatch, tmp_path, args, message
):
    monkeypatch.setattr("cnnlab.cli.guidelines.run_guidelines", _must_not_run)
    out = tmp_path / "never"
    code, _, err = run(capsys, "guidelines", "--quick", *args, "--out", str(out))
    assert code == 2 and message in err
    assert not out.exists()


def test_the_command_line_does_not_import_torchvision_or_scipy_up_front():
    # they cost seconds (torchvision pulls in torch._dynamo, the flop counter triton) on every
    # command that never uses them
    heavy = "{'torchvision', 'scipy', 'torch.utils.flop_counter'}"
    code = f"import sys, cnnlab.cli.main; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_latency_of_one_model_json(capsys):
    code, out, _ = run(capsys, "latency", "shufflenet_v2_x0_5", "--input-size", "32",
                       "--threads", "1", "--mode", "train", "--batch-size", "2", "--json")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["model"] == "shufflenet_v2_x0_5" and data["samples"] >= 30
    assert data["settings"]["input_size"] == [3, 32, 32] and data["settings"]["mode"] == "train"
    assert data["q1_ms"] <= data["median_ms"] <= data["q3_ms"]
    assert data["throughput"] == pytest.approx(2 * 1000 / data["median_ms"])


def test_latency_of_several_models_is_a_comparison(capsys):
    models = ["shufflenet_v2_x0_5", "mobilenet_v2_x0_35"]
    args = ["--input-size", "32", "--threads", "1", "--rounds", "3"]
    code, out, _ = run(capsys, "latency", *models, *args, "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["model"] for r in rows] == models
    assert rows[0]["ratio"] == rows[0]["ratio_low"] == rows[0]["ratio_high"] == 1.0
    assert rows[1]["ratio_low"] <= rows[1]["ratio"] <= rows[1]["ratio_high"]
    code, out, _ = run(capsys, "latency", *models, *args)
    assert code == 0 and "ratio to shufflenet_v2_x0_5" in out and "mobilenet_v2_x0_35" in out


def test_deploy_reports_its_choice(capsys):
    args = ["--input-size", "32", "--threads", "1", "--candidates", "eager"]
    code, out, _ = run(capsys, "deploy", "shufflenet_v2_x0_5", *args, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["backend"] == "eager" and set(report["candidates"]) == {"eager"}
    assert report["shuffles_folded"] == 16 and report["bn_left"] == 0
    assert report["max_abs_diff"] <= 1e-4
    code, out, _ = run(capsys, "deploy", "shufflenet_v2_x0_5", *args)
    assert code == 0 and "deployed with eager (fastest measured at batch 1" in out
