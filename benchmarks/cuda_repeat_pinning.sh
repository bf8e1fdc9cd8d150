#!/usr/bin/env bash
# Why ShuffleNet v2's eager CUDA medians climbed within a run (5.70 -> 6.52 ms and 3.72 ->
# 4.99 ms on a lent H200, 2026-11-26) while MobileNet v2's held within 3.5%: at batch 1 eager
# CUDA time is the host CPU launching kernels, so the suspects are the host's CPU (unpinned
# there) and the GPU's clocks. This runs bench_repeatability --device cuda alternately unpinned
# and pinned to 2 cores (taskset), sampling the GPU's SM clock and power state every second.
# From the repo root, on a GPU machine: OUT=folder bash benchmarks/cuda_repeat_pinning.sh
set -u
OUT=${OUT:-cnnlab-out/cuda-repeat-pinning}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{
    lscpu | grep -E "Model name|^CPU\(s\)|MHz" ; nvidia-smi -L
    nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,pstate,utilization.gpu \
        --format=csv -l 1 > "$OUT/gpu_clocks.csv" 2>&1 &
    SMI=$!
    for run in unpinned_1 pinned_1 unpinned_2 pinned_2; do
        PIN=""
        [[ $run == pinned* ]] && PIN="taskset -c 2,3"
        echo "=== $run ($(date +%T)) ${PIN:-unpinned}"
        timeout 150 $PIN python3 -m benchmarks.bench_repeatability --device cuda 2>&1 | tail -4
        cp benchmarks/results/repeatability_cuda.json "$OUT/repeatability_cuda_$run.json"
    done
    kill $SMI
} 2>&1 | tee "$OUT/log.txt"
