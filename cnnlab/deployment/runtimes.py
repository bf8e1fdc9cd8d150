"""Ahead-of-time runtimes for ``deploy``: ONNX Runtime and OpenVINO, each called like a module.

Both take the model through one ONNX export (``export_onnx``, batch size left open) and run it
on the CPU with the thread count they are timed with, the batch size fixed when the runtime is
built; one export can serve several batch sizes. They are optional extras (``cnnlab[onnx]``,
``cnnlab[openvino]``); ``runtime_available`` says whether one can run here.
"""

from __future__ import annotations

import importlib.util
import io
import warnings

import numpy as np
import torch
from torch import nn

from cnnlab.errors import BadValue

BATCH = "batch"  # the name of the exported graph's open batch dimension


def export_onnx(model: nn.Module, example: torch.Tensor) -> bytes:
    """The model as an ONNX graph (input "x", output "y") for inputs shaped like ``example`` in
    every dimension but the batch, which stays open (named ``BATCH``): the runtimes fix it when
    they load the graph, so their kernels see static shapes, as with a fixed-batch export."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buf,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: BATCH}, "y": {0: BATCH}},
            dynamo=False,
        )
    return buf.getvalue()


class _Exported(nn.Module):
    """A runtime's module: fixed input shape, CPU numpy in and out.

    Built from ``model`` and an ``example`` input of the shape it will run, or from ``graph``, an
    ``export_onnx`` of the same model (any batch size), to skip exporting it again.
    """

    runtime = ""  # its name in messages
    backend = ""  # its deploy backend name
    package = ""  # the Python package it needs
    extra = ""  # the cnnlab extra that installs it

    def __init__(self, example: torch.Tensor) -> None:
        super().__init__()
        self.shape = tuple(example.shape)

    @classmethod
    def _import(cls):
        try:
            return importlib.import_module(cls.package)
        except ImportError:
            raise BadValue(
                f"backend {cls.backend!r} needs {cls.package}: pip install 'cnnlab[{cls.extra}]'"
            ) from None

    def _array(self, x: torch.Tensor):
        if tuple(x.shape) != self.shape:
            raise BadValue(
                f"this {self.runtime} module was exported for input shape {self.shape}, got "
                f"{tuple(x.shape)}; deploy again with that batch_size and input_size"
            )
        return x.detach().contiguous().cpu().numpy()


class OnnxRuntimeModule(_Exported):
    """A model exported to ONNX and executed by ONNX Runtime, called like a torch module."""

    runtime, backend, package, extra = "ONNX Runtime", "onnxruntime", "onnxruntime", "onnx"

    def __init__(
        self, model: nn.Module, example: torch.Tensor, threads: int, graph: bytes | None = None
    ) -> None:
        super().__init__(example)
        ort = self._import()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_free_dimension_override_by_name(BATCH, self.shape[0])
        # Worker threads spin-wait between parallel sections, ONNX Runtime's default: turned off,
        # they sleep between the operators of one run, and ShuffleNet v2 1x at batch 1 took
        # 1.3x as long (2 threads, 2 vCPUs; benchmarks/bench_deploy_by_hand.py). A by-hand
        # session spins, so "auto" must measure this one spinning to never lose to it.
        graph = export_onnx(model, example) if graph is None else graph
        self.session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (y,) = self.session.run(["y"], {"x": self._array(x)})
        return torch.from_numpy(y)


class OpenVinoModule(_Exported):
    """A model exported to ONNX and compiled by OpenVINO for this CPU, called like a module.

    fp32 is forced (OpenVINO would pick bf16 on CPUs that have it). A batch that divides among
    the threads runs as that many inference streams of one thread each, each on its share of the
    batch (OpenVINO's throughput mode: no synchronisation between threads inside a layer); a
    batch of 1 runs on all threads, OpenVINO's latency mode.
    """

    runtime, backend, package, extra = "OpenVINO", "openvino", "openvino", "openvino"

    def __init__(
        self, model: nn.Module, example: torch.Tensor, threads: int, graph: bytes | None = None
    ) -> None:
        super().__init__(example)
        ov = self._import()
        batch = example.shape[0]
        self.streams = max(s for s in range(1, threads + 1) if batch % s == 0)
        config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
        if self.streams == 1:
            config["PERFORMANCE_HINT"] = "LATENCY"
        else:
            config |= {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": self.streams}
        core = ov.Core()
        network = core.read_model(export_onnx(model, example) if graph is None else graph)
        network.reshape([batch // self.streams, *self.shape[1:]])  # each stream's share
        compiled = core.compile_model(network, "CPU", config)
        self.requests = [compiled.create_infer_request() for _ in range(self.streams)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.streams == 1:  # in the calling thread: no hand-off to a stream's thread
            return torch.from_numpy(self.requests[0].infer([self._array(x)], share_inputs=True)[0])
        chunks = np.split(self._array(x), self.streams)
        for request, chunk in zip(self.requests, chunks):
            request.start_async([chunk], share_inputs=True)
        for request in self.requests:
            request.wait()
        return torch.from_numpy(
            np.concatenate([r.get_output_tensor(0).data for r in self.requests])
        )


AHEAD_OF_TIME = {m.backend: m for m in (OnnxRuntimeModule, OpenVinoModule)}


def runtime_available(name: str, dev: torch.device) -> bool:
    """Whether ahead-of-time runtime ``name`` can run here: on the CPU, when it is installed."""
    return dev.type == "cpu" and importlib.util.find_spec(AHEAD_OF_TIME[name].package) is not None
