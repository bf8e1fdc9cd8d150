import os

import pytest
import torch

from cnnlab.measure.allocator import retain_freed_memory

# the malloc mode is process-wide and one-way: the `cnnlab` command (called in-process by the CLI
# tests) turns it to "retain", and a latency table records the mode it was measured under. Set it
# once, before any test, so that no table built early in a worker mismatches a later check.
retain_freed_memory()

if "PYTEST_XDIST_WORKER" in os.environ:
    # one intra-op thread per xdist worker: workers x threads must not exceed the cores
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
