"""deploy(auto) against torchvision eager and against the fastest path by hand (ratios, one run).

Targets (issue: the speed lab): deploy / torchvision eager <= 0.5 for shufflenet_v2_x1_0 and
mobilenet_v2_x1_0 at batch 1 and 32, fp32; deploy / fastest by-hand path <= 1.05.
"""

from __future__ import annotations

import argparse
import io
import warnings

import torch
import torchvision
from rich.console import Console
from rich.table import Table

import cnnlab
from benchmarks._common import apply_malloc, malloc_option, paired_ratio, save
from cnnlab.deployment.select import ChannelsLast
from cnnlab.measure.latency import num_threads


def by_hand_compile(tv, x, threads: int):
    """What a user would do by hand: torch.compile with frozen weights on channels_last (on a
    GPU with CUDA graphs, mode="reduce-overhead"), compiled with the threads it is timed with."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    mode = "reduce-overhead" if x.device.type == "cuda" else None
    compiled = torch.compile(ChannelsLast(tv), dynamic=False, mode=mode)
    with num_threads(threads), torch.inference_mode():
        for _ in range(3):
            compiled(x)
    return compiled


class ByHandOrt(torch.nn.Module):
    """What a user would do by hand with ONNX Runtime: export the torch model (opset 17, fixed
    batch), open a session with only the thread count set (every other option its default, its
    worker threads spin-waiting included), call run."""

    def __init__(self, tv, x, threads: int, spinning: bool = True) -> None:
        super().__init__()
        import onnxruntime as ort

        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(tv, (x,), buf, opset_version=17, dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        if not spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            buf.getvalue(), opts, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name

    def forward(self, x):
        return torch.from_numpy(self.session.run(None, {self.input: x.numpy()})[0])


class ByHandOpenVino(torch.nn.Module):
    """What a user would do by hand with OpenVINO: convert the torch model, compile it for the
    CPU with its default settings on the timed threads, call infer."""

    def __init__(self, tv, x, threads: int) -> None:
        super().__init__()
        import openvino as ov

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convert_model traces with torch.jit
            graph = ov.convert_model(tv, example_input=x)
        compiled = ov.Core().compile_model(graph, "CPU", {"INFERENCE_NUM_THREADS": threads})
        self.request = compiled.create_infer_request()

    def forward(self, x):
        return torch.from_numpy(self.request.infer([x.numpy()])[0])


def run(model: str, batch: int, threads: int, rounds: int, device: str = "cpu") -> dict:
    """One model and batch: torchvision eager, deploy(auto), and the by-hand paths (on a GPU:
    torch.compile only: ONNX Runtime and OpenVINO run on the CPU here)."""
    tv = torchvision.models.get_model(model.replace("_x1_0", "") if "mobilenet" in model else model)
    tv = tv.eval()
    x = torch.randn(batch, 3, 224, 224)
    gpu = device != "cpu"
    ours = cnnlab.deploy(
        cnnlab.from_torchvision(tv), batch_size=batch, threads=threads, device=device
    )
    report = ours.deploy_report
    print(f"{model} batch {batch}: deploy chose {report.backend}: {report.reason}", flush=True)
    tv, x = tv.to(device), x.to(device)
    with num_threads(threads) as n:
        contenders = {
            "torchvision eager": tv,
            "cnnlab deploy (auto)": ours,
            "torchvision + torch.compile": by_hand_compile(tv, x, threads),
        }
        if not gpu:
            contenders["torchvision + onnxruntime"] = ByHandOrt(tv, x, n)
            contenders["torchvision + openvino"] = ByHandOpenVino(tv, x, n)
    res = cnnlab.compare_latency(
        contenders, batch_size=batch, threads=threads, rounds=rounds, device=device
    )
    by = {c.name: c for c in res}
    hand = min(list(contenders)[2:], key=lambda k: by[k].latency.median_ms)
    vs_eager = paired_ratio(by["cnnlab deploy (auto)"], by["torchvision eager"])
    vs_hand = paired_ratio(by["cnnlab deploy (auto)"], by[hand])
    return {
        "model": model,
        "batch": batch,
        "threads": threads,
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "chosen": ours.deploy_report.backend,
        "deploy_candidates_ms": ours.deploy_report.candidates,
        "medians_ms": {k: c.latency.median_ms for k, c in by.items()},
        "vs_eager": vs_eager,
        "fastest_by_hand": hand,
        "vs_by_hand": vs_hand,
        "pass": vs_eager[0] <= 0.5 and vs_hand[0] <= 1.05,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--batches", default="1,32")
    p.add_argument("--models", default="shufflenet_v2_x1_0,mobilenet_v2_x1_0")
    malloc_option(p)
    args = p.parse_args()
    apply_malloc(args.malloc)
    rows = [
        run(m, int(b), args.threads, args.rounds, args.device)
        for m in args.models.split(",")
        for b in args.batches.split(",")
    ]
    where = rows[0]["device"]
    table = Table(
        title=f"deploy vs torchvision, {args.threads} threads, fp32, {where}, malloc {args.malloc}"
    )
    for col in (
        "model",
        "batch",
        "tv eager ms",
        "deploy ms",
        "chosen",
        "deploy/eager (95% CI)",
        "best by hand",
        "deploy/by-hand (95% CI)",
        "target",
    ):
        table.add_column(col)
    for r in rows:
        m = r["medians_ms"]
        e, h = r["vs_eager"], r["vs_by_hand"]
        table.add_row(
            r["model"],
            str(r["batch"]),
            f"{m['torchvision eager']:.2f}",
            f"{m['cnnlab deploy (auto)']:.2f}",
            r["chosen"],
            f"{e[0]:.3f} ({e[1]:.3f}-{e[2]:.3f})",
            r["fastest_by_hand"].removeprefix("torchvision + "),
            f"{h[0]:.3f} ({h[1]:.3f}-{h[2]:.3f})",
            "met" if r["pass"] else "MISSED",
        )
    Console(width=200).print(table)
    print("wrote", save("deploy" if args.device == "cpu" else "deploy_cuda", {"rows": rows}))


if __name__ == "__main__":
    main()
