#!/usr/bin/env bash
# The CUDA paths of the speed lab and of the training loop, on one GPU (not part of CI).
# From the repo root: OUT=folder bash benchmarks/cuda_checks.sh; the outputs are packed into
# $OUT/cuda_outputs.tgz and the log is $OUT/log.txt.
set -u
OUT=${OUT:-cnnlab-out/cuda-run}
WORK=$(mktemp -d)
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
step() {  # step SECONDS command...: run with a time limit, keep the tail of its output
    local limit=$1 t=$SECONDS
    shift
    echo "=== $*"
    timeout "$limit" "$@" 2>&1 | tail -n 80
    echo "--- rc=${PIPESTATUS[0]} in $((SECONDS - t)) s"
}
{
    step 30 nvidia-smi -L
    step 60 python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
    step 150 python3 -m cnnlab guidelines --device cuda --platform gpu --batch-size 8 \
        --out "$WORK/guidelines"
    step 45 python3 -m cnnlab breakdown --device cuda --batch-size 8 --out "$WORK/breakdown"
    step 45 python3 -m cnnlab roofline shufflenet_v2_x1_0 --device cuda --batch-size 8 \
        --peak-matmul 8192 --peak-copy-mb 1024 \
        --out "$WORK/roofline"
    step 120 python3 -m benchmarks.bench_deploy --device cuda --rounds 15 \
        --models shufflenet_v2_x1_0
    step 60 python3 -m cnnlab train --device cuda --amp bf16 --epochs 3 --no-progress \
        --out "$WORK/train_bf16"
    step 60 python3 -m cnnlab train --device cuda --amp fp16 --epochs 3 --no-progress \
        --out "$WORK/train_fp16"
    cp benchmarks/results/deploy_cuda.json "$WORK/" 2>/dev/null
} > "$OUT/log.txt" 2>&1
tar czf "$OUT/cuda_outputs.tgz" -C "$WORK" .
