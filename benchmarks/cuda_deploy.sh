#!/usr/bin/env bash
# deploy and bench on one GPU (not part of CI): the CUDA tests of deploy, `cnnlab bench --device
# cuda` (CUDA graphs as the deployed column), then bench_deploy (deploy(auto) against torchvision
# eager and against torch.compile with CUDA graphs by hand).
# From the repo root: OUT=folder bash benchmarks/cuda_deploy.sh; logs and results land in $OUT.
# MODELS and BATCHES pick bench_deploy's configurations (default: all four); BENCH_MODELS
# (space-separated) picks cnnlab bench's models (default: ShuffleNet v2's Table 8); BENCH=0 skips
# cnnlab bench, DEPLOY=0 bench_deploy. On an H100 the CUDA tests took about 45 s, cnnlab bench about 6.4 s per row
# (46 rows: over 5 minutes) and bench_deploy about 2 minutes per model: with every default this
# runs past one 10-minute device call, so split it (BENCH=0, then MODELS=...).
set -u -o pipefail
OUT=${OUT:-cnnlab-out/cuda-deploy}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
t=$SECONDS
timeout "${TEST_LIMIT:-150}" python3 -m pytest -q -p no:cacheprovider tests/test_deploy.py \
    -k "gpu or cuda_graph" 2>&1 | tee "$OUT/pytest_cuda.log"
echo "--- pytest in $((SECONDS - t)) s"; t=$SECONDS
if [ "${BENCH:-1}" != 0 ]; then
    timeout "${BENCH_LIMIT:-420}" python3 -m cnnlab bench ${BENCH_MODELS:-} --device cuda --out "$OUT/bench" 2>&1 \
        | tee "$OUT/bench_cuda.log"
    echo "--- cnnlab bench in $((SECONDS - t)) s"; t=$SECONDS
fi
if [ "${DEPLOY:-1}" != 0 ]; then
    timeout "${DEPLOY_LIMIT:-400}" python3 -m benchmarks.bench_deploy --device cuda \
        --rounds "${ROUNDS:-15}" --models "${MODELS:-shufflenet_v2_x1_0,mobilenet_v2_x1_0}" \
        --batches "${BATCHES:-1,32}" 2>&1 | tee "$OUT/bench_deploy_cuda.log"
    echo "--- bench_deploy in $((SECONDS - t)) s"
    cp benchmarks/results/deploy_cuda.json "$OUT/" 2>/dev/null
fi
