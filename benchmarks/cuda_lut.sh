#!/usr/bin/env bash
# Latency tables and training-mode timing on one GPU (not part of CI): a quick table of two
# models' operators, a prediction for a held-out model against its measured latency, and
# measure_latency / compare_latency with mode="train" and channels_last on CUDA.
# From the repo root: OUT=folder bash benchmarks/cuda_lut.sh; the log and the table land in $OUT.
set -u -o pipefail
OUT=${OUT:-cnnlab-out/cuda-lut}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{
    timeout 70 python3 -m cnnlab lut build --device cuda --models shufflenet_v2_x0_5,mobilenet_v2_x0_5 \
        --quick --synthetic 4 --out "$OUT/lut_cuda.json"
    echo "--- lut build rc=$?"
    timeout 40 python3 -m cnnlab lut predict shufflenet_v2_x1_0 --device cuda \
        --lut "$OUT/lut_cuda.json" --measure --top 5
    echo "--- lut predict rc=$?"
    timeout 40 python3 - <<'PY'
import cnnlab

m = cnnlab.create_model("shufflenet_v2_x0_5")
for cl in (False, True):
    r = cnnlab.measure_latency(m, device="cuda", batch_size=8, mode="train", channels_last=cl)
    print("train, channels_last", cl, f"{r.median_ms:.2f} ms", r.samples, r.settings)
for c in cnnlab.compare_latency(
    {"v2 0.5x": "shufflenet_v2_x0_5", "mnv2 0.5x": "mobilenet_v2_x0_5"},
    device="cuda", batch_size=8, mode="train", rounds=5, warmup_seconds=3,
):
    print(c.name, f"{c.latency.median_ms:.2f} ms, ratio {c.ratio:.3f} ({c.ratio_low:.3f}-{c.ratio_high:.3f})")
PY
    echo "--- train timing rc=$?"
} 2>&1 | tee "$OUT/log.txt"
