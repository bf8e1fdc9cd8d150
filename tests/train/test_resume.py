"""Resume: from a checkpoint taken at the last step of an epoch (before its validation), the
settings a bitwise resume needs (threads, processes), seeded RNG states, stale temporaries."""

import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from cnnlab.cli.main import main
from cnnlab.errors import BadValue
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.config import TrainConfig
from cnnlab.train.loop import Trainer, train
from cnnlab.train.runstate import check_compatible

# MobileNet v1 0.25 on the 8x8 digits: 7 updates per epoch, the last one of 93 images
ARGS = [
    "train", "--model", "mobilenet_v1_x0_25", "--batch-size", "224", "--lr", "0.4",
    "--epochs", "2", "--threads", "1", "--no-progress",
]  # fmt: skip
TINY = dict(
    model="mobilenet_v1_x0_25", data="digits", batch_size=224, lr=0.4, epochs=2,
    progress=False, threads=1,
)  # fmt: skip

# a CLI run that SIGKILLs itself as soon as a validation starts
KILLED_AT_VALIDATION = (
    "import os, signal, sys\n"
    "import cnnlab.train.loop as loop\n"
    "loop.evaluate = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
    "from cnnlab.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _all_tensors(out) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "checkpoint.safetensors")[0]


def _assert_identical(a_out, b_out) -> None:
    (a, a_meta), (b, b_meta) = (
        load_checkpoint(o / "checkpoint.safetensors") for o in (a_out, b_out)
    )
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, differ
    assert a_meta["rng"] == b_meta["rng"] and a_meta["state"]["step"] == b_meta["state"]["step"]


def test_killed_during_the_end_of_epoch_validation_resumes_bitwise(tmp_path):
    """The checkpoint of an epoch's last step (taken before its validation) holds the data
    position at the shard's end: 7 x 224 = 1568 > 1437 images was refused on resume."""
    cut, full = tmp_path / "cut", tmp_path / "full"
    args = [*ARGS, "--checkpoint-every", "7"]
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_AT_VALIDATION, *args, "--out", str(cut)], timeout=120
    )
    assert proc.returncode == -9  # killed at the first validation
    _, meta = load_checkpoint(cut / "checkpoint.safetensors")
    assert (meta["state"]["step"], meta["state"]["epoch"], meta["state"]["epoch_step"]) == (7, 0, 7)
    assert not (cut / "log.jsonl").exists()  # epoch 1 was never logged
    assert main([*args, "--out", str(cut), "--resume"]) == 0
    assert main([*args, "--out", str(full)]) == 0
    _assert_identical(full, cut)
    assert (full / "log.jsonl").read_text().count("\n") == (cut / "log.jsonl").read_text().count(
        "\n"
    ) == 2  # fmt: skip


def test_two_identical_fresh_runs_save_identical_rng_states(tmp_path):
    """numpy's and Python's RNGs (saved in each checkpoint) start from the run's seed, not from
    the process's random start."""
    for i, name in enumerate(("a", "b")):
        np.random.seed(100 + i)  # as two fresh processes would start
        random.seed(200 + i)
        train(TrainConfig(out=str(tmp_path / name), max_steps=1, **TINY))
    _assert_identical(tmp_path / "a", tmp_path / "b")


def test_resume_refuses_another_thread_count(tmp_path):
    """Threads change the reduction order: 2 -> 1 thread changed 453 of 510 tensors."""
    threads = torch.get_num_threads()
    try:
        out = tmp_path / "run"
        train(TrainConfig(out=str(out), max_steps=1, **{**TINY, "threads": 2}))
        _, meta = load_checkpoint(out / "checkpoint.safetensors")
        assert meta["threads"] == 2 and meta["device"] == "cpu"
        before = (out / "checkpoint.safetensors").read_bytes()
        with pytest.raises(BadValue, match=r"threads: 2 -> 1 \(--threads 2\)"):
            train(TrainConfig(out=str(out), **TINY), resume=True)
        assert (out / "checkpoint.safetensors").read_bytes() == before
        train(TrainConfig(out=str(out), max_steps=2, **{**TINY, "threads": 2}), resume=True)
    finally:
        torch.set_num_threads(threads)


def test_a_changed_process_count_is_named_processes_not_workers(tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(TrainConfig(out=str(out), max_steps=1, **TINY))
    trainer.run()
    _, meta = load_checkpoint(out / "checkpoint.safetensors")
    meta["world_size"] = 2
    with pytest.raises(BadValue) as e:
        check_compatible(meta, trainer.cfg, trainer.env, out)
    assert "processes (world size): 2 -> 1 (torchrun --nproc-per-node 2)" in str(e.value)
    assert "workers" not in str(e.value)  # --workers is the data loader's


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("resume", [False, True])
def test_stale_temporaries_are_removed_on_start(tmp_path, resume):
    out = tmp_path / "run"
    if resume:
        train(TrainConfig(out=str(out), max_steps=1, **TINY))
    out.mkdir(exist_ok=True)
    dead = _dead_pid()
    stale = [f".checkpoint.safetensors.{dead}.0123abcd.tmp", f".log.jsonl.{dead}.ffffffff.tmp"]
    kept = [
        f".checkpoint.safetensors.{dead}.0123ABCD.tmp",  # not atomic_write's (upper-case hex)
        f".notes.{dead}.tmp",
        "notes.tmp",
        f"checkpoint.safetensors.{dead}.0123abcd.tmp",  # no leading dot
        f".config.json.{__import__('os').getppid()}.0123abcd.tmp",  # a running process's
    ]
    for name in stale + kept:
        (out / name).write_text("half")
    assert train(TrainConfig(out=str(out), max_steps=2, **TINY), resume=resume).stopped
    names = {p.name for p in out.iterdir()}
    assert not names & set(stale) and set(kept) <= names
