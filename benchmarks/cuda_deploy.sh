#!/usr/bin/env bash
# deploy on one GPU (not part of CI): the CUDA tests of deploy, then bench_deploy (deploy(auto)
# against torchvision eager and against torch.compile with CUDA graphs by hand).
# From the repo root: OUT=folder bash benchmarks/cuda_deploy.sh; logs and results land in $OUT.
set -u -o pipefail
OUT=${OUT:-cnnlab-out/cuda-deploy}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
timeout "${TEST_LIMIT:-150}" python3 -m pytest -q -p no:cacheprovider tests/test_deploy.py \
    -k "gpu or cuda_graph" 2>&1 | tee "$OUT/pytest_cuda.log"
timeout "${BENCH_LIMIT:-400}" python3 -m benchmarks.bench_deploy --device cuda \
    --rounds "${ROUNDS:-15}" 2>&1 | tee "$OUT/bench_deploy_cuda.log"
cp benchmarks/results/deploy_cuda.json "$OUT/" 2>/dev/null
