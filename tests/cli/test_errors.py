"""What reaches the user: a bug in cnnlab is a traceback under the bug line; bad input is one
line on stderr and exit status 2, never a traceback."""

import json
import subprocess
import sys

import pytest

from cnnlab.cli.main import BUG_LINE, main
from cnnlab.errors import BadType, BadValue
from cnnlab.speedlab.lut.table import LatencyTable, environment


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _raise(error: Exception):
    def call(*args, **kwargs):
        raise error

    return call


# a library function each command calls, and the command
CALLS = [
    ("cnnlab.cli.zoo.complexity", ["models", "shufflenet_v2_x0_5"]),
    ("cnnlab.cli.lut.open_table", ["lut", "predict", "shufflenet_v2_x0_5"]),
    ("cnnlab.cli.guidelines.lint", ["lint", "shufflenet_v2_x0_5"]),
    ("cnnlab.cli.train.Trainer", ["train", "--max-steps", "1"]),
]


@pytest.mark.parametrize("error", [RuntimeError, ValueError, KeyError, TypeError])
@pytest.mark.parametrize("where,args", CALLS, ids=[a[0] for _, a in CALLS])
def test_an_internal_error_is_a_bug_not_bad_input(
    capsys, monkeypatch, tmp_path, where, args, error
):
    # a builtin ValueError or TypeError from inside cnnlab is a bug too: only a UserError is
    # the user's mistake
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(where, _raise(error("boom inside")))
    with pytest.raises(error, match="boom inside"):
        main(args)
    err = capsys.readouterr().err
    assert err.splitlines() == [BUG_LINE]  # then Python prints the traceback
    assert "cnnlab: error:" not in err


def test_a_bug_reaches_the_user_as_a_traceback_with_the_bug_line(tmp_path):
    code = (
        "import sys, cnnlab.cli.zoo as zoo, cnnlab.cli.main as m\n"
        "def boom(*a, **k):\n"
        "    raise ValueError('boom inside')\n"
        "zoo.complexity = boom\n"
        "sys.exit(m.main(['models', 'shufflenet_v2_x0_5']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1  # Python's status for an uncaught exception: not 2, not quiet
    lines = r.stderr.splitlines()
    assert lines[0] == BUG_LINE and lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom inside"


@pytest.mark.parametrize("error", [BadValue("no good; use 3"), BadType("not a str; pass one")])
@pytest.mark.parametrize("where,args", CALLS, ids=[a[0] for _, a in CALLS])
def test_a_user_error_is_one_line_and_exit_2(capsys, monkeypatch, tmp_path, where, args, error):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(where, _raise(error))
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err == f"cnnlab: error: {error}\n"


def test_a_user_error_reaches_the_user_in_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "cnnlab", "lut", "build", "--synthetic", "-1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert r.stderr == "cnnlab: error: synthetic must be >= 0 operators per group, got -1\n"
    assert not (tmp_path / "cnnlab-out").exists()  # refused before the folder was made


@pytest.fixture
def tables(tmp_path):
    """A valid empty table for 1 thread, and tables whose optional fields are malformed."""
    good = LatencyTable("cpu", threads=1, batch_size=1, backend="as given", created="now",
                        malloc="retain", **environment("cpu")).to_dict()  # fmt: skip
    paths = {}
    for name, change in [
        ("good", {}),
        ("bad_samples", {"min_samples": "ten"}),
        ("bad_models", {"models": 3}),
        ("bad_entry", {"entries": {"conv2d in=3x8x8": {"median_ms": "fast"}}}),
    ]:
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps({**good, **change}))
    return paths


@pytest.mark.parametrize(
    "args,message",
    [
        (["lut", "build", "--models", "nothing*"], "no model matches 'nothing*'"),
        (["lut", "build", "--models", "mobilenet_v1_x0_25,"], "no model matches ''"),
        (["lut", "build", "--synthetic", "-2"], "synthetic must be >= 0"),
        (["lut", "predict", "shufflenet_v2_x0_5", "--lut", "{bad_samples}"], "is malformed"),
        (["lut", "predict", "shufflenet_v2_x0_5", "--lut", "{bad_models}"], "is malformed"),
        (["lut", "predict", "shufflenet_v2_x0_5", "--lut", "{bad_entry}"], "needs numbers"),
        (["lut", "predict", "shufflenet_v2_x0_5", "--lut", "{tmp}"], "cannot read latency table"),
        (["lut", "predict", "shufflenet_v2_x0_5", "--threads", "1", "--lut", "{good}",
          "--backend", "eager"], "backend 'as given' (table) != 'eager' (here)"),
        (["lut", "evaluate", "shufflenet_v2_x0_5", "--threads", "1", "--lut", "{good}",
          "--tolerance", "2"], "tolerance must be in (0, 1), got 2.0"),
        (["lut", "evaluate", "nothing*"], "no model matches 'nothing*'"),
        (["lint", "shufflenet_v2_x0_5", "--top", "0"], "--top must be >= 1, got 0"),
        (["guidelines", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["train", "--model-arg", "=1"], "a model override must be KEY=VALUE"),
        (["train", "--milestones", "30,sixty"], "milestones must be epochs like 30,60,80"),
        (["train", "--optimizer", "adam"], "unknown optimizer 'adam'"),
        (["eval", "{tmp}/none.safetensors"], "does not exist"),
    ],
)  # fmt: skip
def test_bad_input_to_each_command_is_exit_2(capsys, monkeypatch, tables, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    fill = {**{k: str(v) for k, v in tables.items()}, "tmp": str(tmp_path)}
    code, _, err = run(capsys, *(a.format(**fill) for a in args))
    assert code == 2, err
    assert err.startswith("cnnlab: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
