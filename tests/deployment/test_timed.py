"""measure_deployed and compare_deployed: deploy first, then measure; every check made once."""

import inspect
import json

import pytest
import torch
from torch import nn

import cnnlab
import cnnlab.cli.main  # noqa: F401  (every command module loaded: their bindings get counted)
from cnnlab.cli.main import main
from cnnlab.counting.analytic import check_input_size
from cnnlab.deployment import select
from cnnlab.deployment.select import check_backend, default_backend
from cnnlab.deployment.timed import compare_deployed, measure_deployed
from cnnlab.measure.request import check_device
from tests.measure.counted import count_calls

SMALL = dict(input_size=(3, 32, 32), batch_size=2)
TINY = dict(min_samples=3, min_seconds=0)
CHECKS = (check_device, check_input_size, check_backend, default_backend)


def test_measuring_never_deploys():
    """The measurement layer times a module as given: a backend is the deployment layer's."""
    for f in (cnnlab.measure_latency, cnnlab.compare_latency):
        assert "backend" not in inspect.signature(f).parameters


def test_measure_deployed_takes_the_backend():
    pytest.importorskip("onnxruntime")
    lat = measure_deployed("shufflenet_v2_x0_5", backend="onnxruntime", **TINY, **SMALL)
    assert lat.settings.backend == "onnxruntime"
    as_given = measure_deployed("shufflenet_v2_x0_5", **TINY, **SMALL)
    assert as_given.settings.backend == "as given"


@pytest.mark.parametrize(
    "kwargs", [dict(mode="train"), dict(dtype=torch.float64), dict(channels_last=True)]
)
def test_a_backend_needs_an_fp32_inference_request(kwargs):
    with pytest.raises(ValueError, match="deploys an fp32 inference module"):
        measure_deployed("shufflenet_v2_x0_5", backend="eager", **SMALL, **kwargs)


def test_compare_deployed_labels_each_contender():
    models = {"a": nn.Conv2d(3, 4, 1), "b": nn.Conv2d(3, 8, 1)}
    res = compare_deployed(models, backend="eager", threads=1, rounds=3, min_seconds=0, **SMALL)
    assert [c.latency.settings.backend for c in res] == ["eager", "eager"]
    res = compare_deployed(models, backend="auto", threads=1, rounds=3, min_seconds=0, **SMALL)
    assert all(c.latency.settings.backend.startswith("auto -> ") for c in res)


def test_a_deployed_module_carries_its_input_size():
    out = cnnlab.deploy(nn.Conv2d(3, 4, 1), backend="eager", threads=1, input_size=(3, 20, 24))
    assert out.default_input_size == (3, 20, 24) == out.deploy_report.input_size
    assert cnnlab.measure_latency(out, **TINY).settings.input_size == (3, 20, 24)


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_one_deploy_command_checks_once(monkeypatch, capsys):
    calls = count_calls(monkeypatch, *CHECKS)
    args = ["--input-size", "32", "--threads", "1", "--candidates", "eager", "--json"]
    report = json.loads(run(capsys, "deploy", "shufflenet_v2_x0_5", *args))
    assert report["backend"] == "eager" and report["input_size"] == [3, 32, 32]
    assert calls == {"check_device": 1, "check_input_size": 1, "check_backend": 1}


def test_one_latency_command_checks_once(monkeypatch, capsys):
    calls = count_calls(monkeypatch, *CHECKS)
    args = ["--input-size", "32", "--threads", "1", "--backend", "eager", "--json"]
    data = json.loads(run(capsys, "latency", "shufflenet_v2_x0_5", *args))
    assert data["settings"]["backend"] == "eager"
    assert calls == {"check_device": 1, "check_input_size": 1, "check_backend": 1}
    calls.clear()
    models = ["shufflenet_v2_x0_5", "mobilenet_v2_x0_35"]
    rows = json.loads(run(capsys, "latency", *models, *args, "--rounds", "3"))
    assert [r["settings"]["backend"] for r in rows] == ["eager", "eager"]
    assert calls == {"check_device": 1, "check_input_size": 2, "check_backend": 1}  # per model


def test_the_backend_contradiction_is_the_librarys(monkeypatch, capsys):
    """--backend with --mode train is refused once, by the library, in one line."""
    calls = count_calls(monkeypatch, check_backend)
    code = main(["latency", "shufflenet_v2_x0_5", "--backend", "eager", "--mode", "train"])
    err = capsys.readouterr().err
    assert code == 2 and "deploys an fp32 inference module" in err
    assert len(err.strip().splitlines()) == 1 and calls == {"check_backend": 1}


def test_deploy_request_is_not_checked_again(monkeypatch):
    """Below the entry point nothing re-checks: deploy's own comparisons take its request."""
    calls = count_calls(monkeypatch, *CHECKS)
    select.deploy(nn.Conv2d(3, 4, 1), candidates=("eager",), threads=1, **SMALL)
    assert calls == {"check_device": 1, "check_input_size": 1, "check_backend": 1}
