#!/usr/bin/env bash
# Issue #9's GPU checks in one run on the lent device machine (about 9 minutes of its time):
#   benchmark 2 on CUDA (our U-Net vs diffusers' UNet2DModel; fp32, bf16, bf16 + compile with CUDA
#   graphs; three sizes), then benchmark 4 on notebook 04 (full mode: its time to the quality target).
#
# Here, once (fetches diffusers and the notebook runner as wheels for the machine's Python 3.12):
#   .venv/bin/python tools/gpu_wheels.py
# Then one device call:  run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=590)
# Results land in $OUT (throughput.md, full_04.md, nvidia-smi.txt); copy their rows into docs/BENCHMARKS.md.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 MPLBACKEND=agg
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch, diffusers; print('torch', torch.__version__, '| diffusers', diffusers.__version__, '|', torch.cuda.get_device_name())" | tee "$OUT/versions.txt"

timeout 330 python3 benchmarks/training_throughput.py --device cuda --steps 60 --batch 256 2>&1 | tee "$OUT/throughput.md"
timeout 220 python3 benchmarks/full_mode.py --only 04 2>&1 | tee "$OUT/full_04.md"
