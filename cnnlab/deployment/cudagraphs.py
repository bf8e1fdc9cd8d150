"""``CudaGraphModule``: a module recorded once as a CUDA graph and replayed on every call.

A small CNN at batch 1 launches a few hundred kernels of a few microseconds each, so on a GPU
its time goes to launching them from Python (cnnlab breakdown measured 83% of MobileNet v2's
time at batch 8 on an H100 as GPU idle between kernels). A CUDA graph records the whole launch
sequence once and replays it with one call (NVIDIA, "CUDA Graphs", CUDA C++ Programming
Guide). Each graph owns its memory pool, so graphs of several models interleave freely.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import BadType, BadValue
from cnnlab.measure.latency import timing_settings


class CudaGraphModule(nn.Module):
    """``model`` on inputs shaped like ``example``: copy the input in, replay, copy the output out.

    Warm-up calls run first (cuDNN's autotuner on, so the fastest kernels are the ones
    recorded; compiled code compiles there), on the very stream the graph is then recorded on:
    whatever a library caches per stream (a cuBLAS workspace, say) is then allocated outside the
    graph's pool. Warmed up on another stream, the graphs of deploy's "auto" crashed an H200
    ("unspecified launch failure") at batch 32 once the candidates not chosen were freed. The
    output is copied out of the graph's pool, so a later call never overwrites what an earlier
    one returned.
    """

    def __init__(self, model: nn.Module, example: torch.Tensor, warmup: int = 3) -> None:
        super().__init__()
        if example.device.type != "cuda":
            raise BadValue(
                f"CUDA graphs run on a CUDA device, got an input on {example.device}; "
                "use device='cuda' or another backend"
            )
        self.model = model
        self.shape = tuple(example.shape)
        self.static_x = example.detach().clone()
        self.graph = torch.cuda.CUDAGraph()
        with timing_settings(None), torch.inference_mode():  # cuDNN's autotuner on, restored
            stream = torch.cuda.Stream(example.device)
            stream.wait_stream(torch.cuda.current_stream(example.device))
            with torch.cuda.stream(stream):
                for _ in range(warmup):
                    model(self.static_x)
            with torch.cuda.graph(self.graph, stream=stream):
                self.static_y = model(self.static_x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape) != self.shape:
            raise BadValue(
                f"this CUDA graph was recorded for input shape {self.shape}, got "
                f"{tuple(x.shape)}; deploy again with that batch_size and input_size"
            )
        self.static_x.copy_(x)
        self.graph.replay()
        return self.static_y.clone()

    def __deepcopy__(self, memo):
        raise BadType("a recorded CUDA graph cannot be copied; deploy the model again")
