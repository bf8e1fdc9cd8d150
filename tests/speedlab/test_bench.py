"""cnnlab bench on tiny inputs: rows, counts, files and errors (no timing assertions)."""

import csv
import json
from dataclasses import asdict, replace

import pytest

import cnnlab
from cnnlab.cli.main import main
from cnnlab.deployment.select import deploy_request
from cnnlab.speedlab.bench import SURVEY_LEVELS, bench_levels, run_bench, write_bench

MODELS = ["shufflenet_v2_x0_5", "mobilenet_v2_x0_35"]
QUICK = dict(rounds=3, min_seconds=0.0, side=32, threads=1)


def test_survey_levels_are_matched_in_macs():
    # within a level the models' MACs agree to within a factor of 1.6 (the paper's Table 8 groups)
    for level, entries in SURVEY_LEVELS.items():
        macs = []
        for name, side in entries:
            c, h, w = cnnlab.models.get_entry(name).input_size
            size = (c, side, side) if side else (c, h, w)
            macs.append(cnnlab.complexity(name, size).macs)
        assert max(macs) / min(macs) < 1.6, (level, macs)


def test_run_bench_rows_and_counts():
    rows = run_bench(MODELS, batch_sizes=(1, 2), backend="eager", **QUICK)
    assert [(r.model, r.batch_size) for r in rows] == [(m, b) for b in (1, 2) for m in MODELS]
    for r in rows:
        c = cnnlab.complexity(r.model, (3, 32, 32))
        assert (r.params, r.macs, r.memory_access) == (c.params, c.macs, c.memory_access)
        assert r.input_size == (3, 32, 32)
        assert r.deploy_speedup == pytest.approx(r.latency_ms / r.deployed_ms)
        assert r.throughput == pytest.approx(r.batch_size * 1000 / r.latency_ms)
        assert r.deploy_backend == "eager" and r.threads == 1


def test_run_bench_deploys_each_model_once_for_all_batch_sizes(monkeypatch):
    from cnnlab.speedlab import bench

    calls = []

    def counted(model, req, *args):
        calls.append(req.batch_sizes)
        return deploy_request(model, req, *args)

    monkeypatch.setattr(bench, "deploy_request", counted)
    rows = run_bench(MODELS, batch_sizes=(1, 2), backend="eager", **QUICK)
    assert calls == [(1, 2), (1, 2)] and len(rows) == 4


def test_one_bench_command_checks_once(monkeypatch, tmp_path, capsys):
    """bench -> deploy -> measure passes one request down: the device, each model's input (an
    analytic count) and the default backend are each checked once, not on every layer."""
    from cnnlab.counting.analytic import check_input_size
    from cnnlab.deployment import select
    from cnnlab.measure.request import check_device
    from tests.measure.counted import count_calls

    monkeypatch.setattr(select, "runtime_available", lambda name, dev: False)  # eager, quickly
    checks = (check_device, check_input_size, select.check_backend, select.default_backend)
    calls = count_calls(monkeypatch, *checks)
    args = ["bench", *MODELS, "--batch-sizes", "1,2", "--rounds", "3", "--input-size", "32"]
    code = main([*args, "--threads", "1", "--out", str(tmp_path), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and {r["deploy_backend"] for r in rows} == {"eager"} and len(rows) == 4
    assert calls == {
        "check_device": 1,
        "check_input_size": 2,  # once per model
        "check_backend": 1,
        "default_backend": 1,
    }


def test_write_bench_files(tmp_path):
    rows = run_bench(MODELS[:1], batch_sizes=(1,), backend="eager", **QUICK)
    paths = write_bench(rows, tmp_path)
    with open(paths["csv"]) as f:
        records = list(csv.DictReader(f))
    assert records[0]["model"] == "shufflenet_v2_x0_5"
    assert json.loads(paths["json"].read_text())[0]["macs"] == rows[0].macs
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("*.tmp*"))


def test_plot_takes_more_families_than_one_palette(tmp_path):
    # `cnnlab bench MODEL ...` may name any families; the first plot ran out of its 10 colours
    row = run_bench(MODELS[:1], batch_sizes=(1,), backend="eager", **QUICK)[0]
    one_per_family = {cnnlab.models.get_entry(n).family.name: n for n in cnnlab.list_models()}
    assert len(one_per_family) > 20
    rows = [
        replace(row, model=n, macs=row.macs * (i + 1))
        for i, n in enumerate(one_per_family.values())
    ]
    paths = write_bench(rows, tmp_path)
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_bench_levels_custom_and_side():
    assert bench_levels(["xception"], 96) == {"custom": [("xception", 96)]}
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        bench_levels(["nope"])


def test_cli_bench_json(tmp_path, capsys):
    args = ["bench", "shufflenet_v2_x0_5", "--batch-sizes", "1", "--rounds", "3"]
    code = main(
        args
        + [
            "--input-size",
            "32",
            "--backend",
            "eager",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert json.loads(out)[0]["model"] == "shufflenet_v2_x0_5"
    assert (tmp_path / "bench.png").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--batch-sizes", "0"], "--batch-sizes must be positive integers"),
        (["--batch-sizes", "1,8,1"], "batch sizes must differ from one another, got [1, 8, 1]"),
        (["--backend", "tvm"], "unknown backend 'tvm'; choose one of"),
        (["--threads", "0"], "threads must be >= 1"),
        (["--device", "cuda"], "cuda"),
        (["nope"], "unknown model 'nope'"),
    ],
)
def test_cli_bench_bad_input(capsys, args, message, tmp_path):
    code = main(["bench", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_interrupted_bench_keeps_the_steps_it_finished(tmp_path, capsys, monkeypatch):
    import cnnlab.speedlab.bench as bench_module

    finished = []
    real_group = bench_module._bench_group

    def group_then_interrupt(*args):
        if finished:  # Ctrl-C during the second (level, batch size) step
            raise KeyboardInterrupt
        finished.append(real_group(*args))
        return finished[-1]

    monkeypatch.setattr(bench_module, "_bench_group", group_then_interrupt)
    args = ["bench", *MODELS, "--batch-sizes", "1,2", "--rounds", "3", "--input-size", "32"]
    code = main([*args, "--backend", "eager", "--threads", "1", "--out", str(tmp_path)])
    assert code == 130 and "interrupted" in capsys.readouterr().err
    with open(tmp_path / "bench.csv") as f:
        records = list(csv.DictReader(f))
    assert [(r["model"], r["batch_size"]) for r in records] == [(m, "1") for m in MODELS]
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved == json.loads(json.dumps([asdict(r) for r in finished[0]]))
    assert not list(tmp_path.glob("*.tmp*"))


def test_labels_of_points_in_one_place_are_moved_apart():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnlab.speedlab.bench import _annotate_apart

    fig, ax = plt.subplots()
    ax.scatter([1, 1, 1, 5], [10, 10, 10.01, 1])
    _annotate_apart(ax, [(1, 10, "a"), (1, 10, "b"), (1, 10.01, "c"), (5, 1, "far")], fontsize=6)
    offsets = {t.get_text(): t.xyann for t in ax.texts}
    plt.close(fig)
    assert offsets["c"] == (3, 0.0) and offsets["far"] == (3, 0.0)  # the top one, and a loner
    got = sorted(offsets[k][1] for k in "ab")
    assert got == pytest.approx([-2 * 7.2, -7.2])  # one line (1.2 x 6 pt) each
