"""Shared by the benchmark scripts: paired ratios from interleaved samples, a model's operators
and JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections import Counter
from pathlib import Path

import torch

import cnnlab
from cnnlab.measure.allocator import malloc_mode, retain_freed_memory
from cnnlab.measure.latency import median_ci
from cnnlab.speedlab.lut.opsig import OpSig, extract_ops

RESULTS = Path(__file__).resolve().parent / "results"


def malloc_option(parser) -> None:
    """--malloc retain|system, as the cnnlab command has it (retain: the default)."""
    parser.add_argument("--malloc", choices=("retain", "system"), default="retain")


def apply_malloc(mode: str) -> str:
    """Keep freed memory in the process when asked; returns the mode in force."""
    if mode == "retain":
        retain_freed_memory()
    return malloc_mode()


def paired_ratio(a, b) -> tuple[float, float, float]:
    """Median and 95% CI of the per-round ratios a/b of two contenders of one comparison."""
    ratios = [x / y for x, y in zip(a.latency.times_ms, b.latency.times_ms)]
    low, high = median_ci(ratios)
    return statistics.median(ratios), low, high


def operator_counts(model: torch.nn.Module, size) -> tuple[Counter, dict[str, OpSig]]:
    """How often each operator of ``model`` runs on one input of ``size``, and its signature."""
    ops = extract_ops(model, size, 1)
    return Counter(op.key for op in ops), {op.key: op for op in ops}


def save(name: str, payload: dict) -> Path:
    """Write results/<name>.json (atomically) with the machine and library versions."""
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "cnnlab": cnnlab.__version__,
        "malloc": malloc_mode(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)
    return path
