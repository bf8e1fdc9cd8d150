"""One device check and one memory check for every command: the speed lab's and training's.

This module imports nothing of cnnlab but its errors, so every layer can use it.
"""

from __future__ import annotations

import os

import torch

from cnnlab.errors import BadValue

DEVICE_TYPES = ("cpu", "cuda")
MAX_THREADS = 1024  # far beyond any machine's cores, and within what torch.set_num_threads takes
FLOAT_BYTES = 4


def check_device(device: str | torch.device, *, auto: bool = False) -> torch.device:
    """A usable torch device, or a BadValue that says why not; ``auto`` (when allowed) picks
    CUDA when present, else the CPU."""
    hint = "use 'auto', 'cpu' or 'cuda'" if auto else "use 'cpu' or 'cuda'"
    if auto and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise BadValue(f"unknown device {device!r} ({e}); {hint}") from None
    if dev.type not in DEVICE_TYPES:
        raise BadValue(f"device {device!r} is not supported; {hint}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BadValue(f"device {device!r} requested but CUDA is not available here; use 'cpu'")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise BadValue(
                f"device {device!r} does not exist: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}"
            )
    return dev


def check_threads(threads: int | None) -> None:
    """An intra-op thread count: None (torch's own count) or 1 to MAX_THREADS."""
    if threads is None:
        return
    hint = f"leave --threads out for torch's count ({torch.get_num_threads()} here)"
    if isinstance(threads, bool) or threads < 1:
        raise BadValue(f"threads must be >= 1, got {threads}; {hint}")
    if threads > MAX_THREADS:
        raise BadValue(f"threads must be <= {MAX_THREADS}, got {threads}; {hint}")


def total_memory(device: torch.device) -> int | None:
    """Bytes of memory ``device`` has: the GPU's on CUDA, else the machine's RAM (None when
    it cannot be read)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device.index or 0).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_memory(needed: int, device: torch.device, what: str, fix: str) -> None:
    """Refuse a request whose estimated memory ``needed`` (bytes) exceeds what ``device`` has,
    naming both figures, before anything is allocated."""
    have = total_memory(device)
    if have is not None and needed > have:
        where = "GPU memory" if device.type == "cuda" else "RAM"
        raise BadValue(
            f"{what} needs about {_gib(needed)} of memory, more than this machine's {where} "
            f"({_gib(have)}); {fix}"
        )
