#!/usr/bin/env bash
# The GPU checks and figures in one go, for a machine with a CUDA GPU (the device tool's, where a task is lent
# one): the CUDA tests, the step matrix (precision x memory format x compile) and the bench on the GPU.
# Wheels in .whl/ (those the machine lacks) are installed to /tmp/site first. Writes logs and JSON to $OUT.
#   OUT=/tmp/out bash experiments/bench/gpu_check.sh
# For a GPU machine without internet and with Python 3.12 (the device tool's), fetch the wheels here first:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 -d .whl \
#     segmentation_models_pytorch==0.6.0 albumentations==2.0.8 albucore==0.0.24 hydra-core==1.3.8 omegaconf==2.3.1 \
#     pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 stringzilla==5.3.2 \
#     simsimd==6.5.16 pypng==0.20220715.0
#   pip wheel --no-deps antlr4-python3-runtime==4.9.3 -w .whl     # an sdist only: built here, pure Python
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export WANDB_MODE=offline PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc;
  python3 -c 'import torch, pytorch_lightning as L; print(torch.__version__, L.__version__, torch.cuda.get_device_name())'
} 2>&1 | tee "$OUT/machine.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -40 | tee "$OUT/test_cuda.log"
timeout 150 python3 experiments/bench/gpu_step.py --out "$OUT/gpu_step.json" 2>&1 | tail -30 | tee "$OUT/gpu_step.log"
timeout 240 python3 experiments/bench/run.py --quick --device cuda --out "$OUT/bench_quick_cuda.json" 2>&1 \
  | tail -40 | tee "$OUT/bench.log"
