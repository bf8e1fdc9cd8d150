"""The allocator: keeping freed memory stops eager inference page-faulting its buffers back."""

import mmap
import platform
import subprocess
import sys

import pytest
from torch import nn

from cnnlab.cli.main import main
from cnnlab.measure import allocator
from cnnlab.measure.latency import measure_latency

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# a model whose every call allocates and frees a 32 MiB activation (8 Mi floats = 8192 pages)
PROBE = """
import sys, torch
from torch import nn
from cnnlab.measure.allocator import malloc_mode, retain_freed_memory
from cnnlab.measure.latency import Runner
if sys.argv[1] == "retain":
    assert retain_freed_memory()
runner = Runner(nn.Upsample(scale_factor=32), torch.randn(1, 8, 32, 32), "inference", torch.device("cpu"))
runner.time(20)  # glibc settles within a few calls
runner.reset_counts()
runner.time(10)
print(malloc_mode(), runner.faults_per_call)
"""


def _probe(mode: str) -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], float(out[1])


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_retaining_freed_memory_removes_the_page_faults():
    system_mode, system_faults = _probe("system")
    retain_mode, retain_faults = _probe("retain")
    assert (system_mode, retain_mode) == ("system", "retain")
    # glibc maps a fresh 32 MiB block per call (above its largest adaptive threshold):
    # every page of it faults in again (8192 pages of 4 KiB; 16 where the kernel backs it with
    # 2 MiB transparent huge pages); kept memory faults in once, during the warm-up
    assert system_faults >= 16, system_faults
    assert retain_faults <= system_faults / 20, (system_faults, retain_faults)


def test_latency_reports_faults_and_the_malloc_mode():
    lat = measure_latency(nn.Conv2d(3, 4, 3), input_size=(3, 16, 16), min_samples=3, min_seconds=0)
    assert lat.page_faults >= 0
    assert lat.settings.malloc == allocator.malloc_mode()
    assert "page_faults" in lat.as_dict() and "malloc" in lat.settings.as_dict()


def test_minor_faults_counts_touched_pages():
    if allocator.resource is None:
        pytest.skip("no page-fault counter on this platform")
    pages = 4096
    with mmap.mmap(-1, pages * mmap.PAGESIZE) as fresh:  # fresh anonymous memory, untouched
        before = allocator.minor_faults()
        for page in range(pages):
            fresh[page * mmap.PAGESIZE] = 1
        assert allocator.minor_faults() - before >= pages


def test_cli_refuses_an_unknown_malloc_mode(capsys):
    assert main(["--malloc", "jemalloc", "models"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cnnlab: error: --malloc must be retain or system, got 'jemalloc'"]
