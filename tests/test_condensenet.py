"""CondenseNet: learned group convolution, condensation, conversion, paper figures, bad input."""

import torch
from torch import nn

from cnnlab.analysis.trace import traced_counts


def test_trace_counts_index_select_as_read_input_and_index_write_output():
    class Index(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("index", torch.tensor([3, 0, 0, 5, 1]))

        def forward(self, x):
            return torch.index_select(x, 1, self.index)

    t = traced_counts(Index(), (6, 4, 4))
    assert t.memory_access == 6 * 16 + 5 + 5 * 16
    assert (t.macs, t.activations) == (0, 0)
