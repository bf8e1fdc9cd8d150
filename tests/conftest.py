import os

import pytest
import torch

if "PYTEST_XDIST_WORKER" in os.environ:
    # one intra-op thread per xdist worker: workers x threads must not exceed the cores
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
