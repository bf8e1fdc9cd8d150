"""Every command, every option, a table of bad values: each is refused before any work.

For each case the command must exit 2 with exactly one line on stderr, ``cnnlab: error: ...``,
and leave nothing behind in the working folder (no ``--out`` folder made). A tripwire stands
where the work starts: a forward pass, a timing, a measured operator. A bad value that reaches
it was accepted, and the case fails fast instead of timing or training for minutes.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

import cnnlab.measure.latency
from cnnlab.cli.main import main
from cnnlab.speedlab.lut.table import LatencyTable, environment

MODEL = "shufflenet_v2_x0_5"

# classes of bad values; each option below names the ones it must refuse
POSITIVE_INT = ["0", "-1", "abc", "2.5"]
HUGE = ["1000000000000"]
NONNEGATIVE_INT = ["-1", "abc"]
POSITIVE_FLOAT = ["0", "-1", "nan", "inf", "abc"]
NONNEGATIVE_FLOAT = ["-1", "nan", "inf", "abc"]
FRACTION = ["-0.1", "1.5", "nan", "inf", "abc"]  # in [0, 1)
SIZE = ["0", "-3", "3x0x224", "3x224", "abc", "3x224x224x1"]
OUT_FOLDER = ["{file}", "{file}/sub"]  # a file where a folder goes; a folder under a file
OUT_FILE = ["{folder}", "{file}/sub/table.json"]
BACKEND = ["nope"]
DEVICE = ["tpu"]

LATENCY = {"--batch-size": POSITIVE_INT + HUGE, "--threads": POSITIVE_INT + HUGE}

# command (its valid arguments) -> {option: bad values}; None as the option: the arguments
# themselves replaced by the bad value
COMMANDS: dict[tuple[str, ...], dict[str | None, list[str]]] = {
    ("models",): {None: ["nothing*"], "--input-size": SIZE},
    ("info", MODEL): {None: ["no_such_model"], "--input-size": SIZE},
    ("latency", MODEL): {
        None: ["no_such_model"],
        **LATENCY,
        "--rounds": POSITIVE_INT,
        "--mode": ["sideways"],
        "--dtype": ["float3"],
        "--backend": BACKEND,
        "--device": DEVICE,
        "--input-size": SIZE,
    },
    ("deploy", MODEL): {
        None: ["no_such_model"],
        **LATENCY,
        "--backend": BACKEND,
        "--candidates": ["nope", ""],
        "--device": DEVICE,
        "--input-size": SIZE,
    },
    ("bench",): {
        None: ["no_such_model"],
        "--batch-sizes": ["0", "-1", "a,b", "1,,8", ""],
        "--threads": POSITIVE_INT + HUGE,
        "--rounds": POSITIVE_INT,
        "--backend": BACKEND,
        "--out": OUT_FOLDER,
    },
    ("breakdown", MODEL): {
        None: ["no_such_model"],
        **LATENCY,
        "--iterations": POSITIVE_INT,
        "--backend": BACKEND,
        "--out": OUT_FOLDER,
    },
    ("roofline", MODEL): {
        None: ["no_such_model"],
        **LATENCY,
        "--peak-matmul": POSITIVE_INT,
        "--peak-copy-mb": POSITIVE_FLOAT,
        "--backend": BACKEND,
        "--out": OUT_FOLDER,
    },
    ("guidelines", "--quick"): {
        "--batch-size": POSITIVE_INT + HUGE,
        "--threads": POSITIVE_INT,
        "--platform": ["x86-64"],
        "--tables": ["G5", ""],
        "--input-hw": POSITIVE_INT,
        "--rounds": POSITIVE_INT,
        "--backend": BACKEND,
        "--out": OUT_FOLDER,
    },
    ("lint", MODEL): {None: ["no_such_model"], "--top": NONNEGATIVE_INT},
    ("lut", "build", "--quick"): {
        "--models": ["nothing*", ""],
        **LATENCY,
        "--min-samples": POSITIVE_INT,
        "--min-seconds": NONNEGATIVE_FLOAT,
        "--synthetic": NONNEGATIVE_INT,
        "--device": DEVICE,
        "--backend": BACKEND,
        "--input-size": SIZE,
        "--out": OUT_FILE,
    },
    ("lut", "predict", MODEL, "--threads", "1", "--lut", "{table}"): {
        None: ["no_such_model"],
        "--lut": ["{missing}", "{file}", "{folder}"],
        "--batch-size": POSITIVE_INT,
        "--top": NONNEGATIVE_INT,
        "--backend": BACKEND,
    },
    ("lut", "evaluate", MODEL, "--threads", "1", "--lut", "{table}"): {
        None: ["no_such_model"],
        "--lut": ["{missing}", "{file}", "{folder}"],
        "--batch-size": POSITIVE_INT,
        "--min-samples": POSITIVE_INT,
        "--min-seconds": NONNEGATIVE_FLOAT,
        "--tolerance": FRACTION,
        "--backend": BACKEND,
    },
    ("train", "--no-progress"): {
        "--model": ["no_such_model"],
        "--data": ["nope", "cifar10:{missing}", "mnist:{file}", "folder:{folder}"],
        "--out": OUT_FOLDER,
        "--epochs": POSITIVE_INT,
        "--batch-size": POSITIVE_INT + HUGE,
        "--image-size": POSITIVE_INT + HUGE,
        "--drop-rate": FRACTION,
        "--lr": POSITIVE_FLOAT,
        "--reference-batch": POSITIVE_INT,
        "--warmup": ["sometimes"],
        "--warmup-epochs": NONNEGATIVE_FLOAT,
        "--warmup-start": ["-1", "nan", "inf"],
        "--schedule": ["zigzag"],
        "--milestones": ["a,b", "-5", "60,30"],
        "--gamma": ["0", "-1", "nan", "inf"],
        "--power": ["-1", "nan", "inf"],
        "--max-batch": POSITIVE_INT,
        "--optimizer": ["adam9"],
        "--momentum": ["-0.1", "nan", "inf"],
        "--weight-decay": ["-1", "nan", "inf"],
        "--trust-coefficient": ["-1", "nan", "inf"],
        "--label-smoothing": FRACTION,
        "--accum-steps": POSITIVE_INT,
        "--amp": ["fp8"],
        "--ema-decay": ["-0.1", "1.5", "nan"],
        "--bn": ["weird"],
        "--ghost-batch": POSITIVE_INT,
        "--seed": ["abc"],
        "--workers": NONNEGATIVE_INT,
        "--device": DEVICE,
        "--threads": POSITIVE_INT,
        "--checkpoint-every": ["-1", "abc"],
        "--max-steps": ["0", "-1"],
        "--model-arg": ["nokey", "no_such_field=1"],
    },
    ("eval", "{missing}"): {
        None: ["{missing}", "{file}", "{folder}"],
        "--batch-size": ["abc"],
        "--device": DEVICE,
    },
}

# case id -> what the command did instead of refusing the value (fixed cases leave this list)
XFAIL: dict[str, str] = {}


def _cases():
    for base, options in COMMANDS.items():
        words = list(
            itertools.takewhile(lambda w: not w.startswith(("-", "{")) and w != MODEL, base)
        )
        positional = [w for w in base[len(words) :] if not w.startswith("-")][:1]
        rest = list(base[len(words) + len(positional) :])
        name = " ".join(words)
        for option, values in options.items():
            for value in values:
                if option is None:  # the command's argument itself
                    argv, case = [*words, value, *rest], f"{name} {value!r}"
                else:
                    argv, case = [*base, option, value], f"{name} {option} {value!r}"
                marks = (
                    [pytest.mark.xfail(strict=True, reason=XFAIL[case])] if case in XFAIL else []
                )
                yield pytest.param(argv, id=case, marks=marks)


class Tripwire(BaseException):
    """Work started: a BaseException, so no ``except Exception`` on the way swallows it."""


def _trip(*args, **kwargs):
    raise Tripwire("the work started: a forward pass or a timing ran before the value was refused")


class _NoClock:
    def __getattr__(self, name):
        return _trip


@pytest.fixture
def place(tmp_path, monkeypatch):
    return set_up(tmp_path, monkeypatch)


def set_up(tmp_path: Path, monkeypatch) -> Path:
    """A working folder with a file, a folder, a valid empty latency table for 1 thread, and
    the tripwires set."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain.txt").write_text("not what any command reads\n")
    (tmp_path / "a-folder").mkdir()
    table = LatencyTable("cpu", threads=1, batch_size=1, backend="eager", created="now",
                         malloc="retain", **environment("cpu"))  # fmt: skip
    (tmp_path / "table.json").write_text(json.dumps(table.to_dict()))
    monkeypatch.setattr(cnnlab.measure.latency, "time", _NoClock())
    return tmp_path


def _no_forward(monkeypatch) -> None:
    """A forward pass trips too: every command but ``lut``, which traces its models by running
    them on a small input to find their operators (not timed, so not the work)."""
    monkeypatch.setattr(torch.nn.Module, "__call__", _trip)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("argv", list(_cases()))
def test_a_bad_value_is_refused_in_one_line_before_any_work(place, capsys, monkeypatch, argv):
    if argv[0] != "lut":
        _no_forward(monkeypatch)
    names = {
        "file": "plain.txt",
        "folder": "a-folder",
        "missing": "no-such-file.bin",
        "table": "table.json",
    }
    argv = [w.format(**names) for w in argv]
    before = _tree(place)
    try:
        code = main(argv)
    except Tripwire as e:
        pytest.fail(f"accepted: {e}")
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnlab: error: "), err
    assert _tree(place) == before  # nothing made: no --out folder, no table, no log
