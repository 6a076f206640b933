#!/usr/bin/env bash
# Issue #9's GPU checks in one run on the lent device machine (about 8 minutes of its time, leaving
# room for a rerun), most important first, each phase with its own time limit so that one slow phase
# cannot starve the rest (the later phases get what is left):
#   0. tests/test_cuda_graph.py: the whole-step CUDA graph trains like eager and resumes where it stopped
#      (if they fail, the script stops: the rest would measure a fallback);
#   1. notebook 04 in full mode up to its digits-FID cell, from a cold start (time to the quality target);
#   2. benchmark 2 on the `digits` preset (notebook 04's full-mode network): our U-Net vs diffusers'
#      UNet2DModel, eager and with the whole step as one CUDA graph, fp32 and bf16 (bf16+compile was
#      measured on 2026-11-26 and costs a minute of compiling per network);
#   3. what limits a recorded step (torch.profiler with CUDA activity);
#   4. benchmark 2 on `bench-32` (9.0M parameters, 32x32), the size where a GPU stops being launch-bound;
#   5. benchmark 4: the training notebooks whole in full mode, in the order of GPU_CHECK_NOTEBOOKS
#      (default: 06-10, which have no GPU figure yet, then 04 and 05), as time allows.
# GPU_CHECK_ONLY="tests notebooks" runs only those phases (names: tests to_target throughput profile
# bench32 notebooks).
#
# Here, once (fetches diffusers and the notebook runner as wheels for the machine's Python 3.12):
#   .venv/bin/python tools/gpu_wheels.py
# Then one device call:  run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
# Results land in $OUT (one Markdown file per phase, env.txt); copy their rows into docs/BENCHMARKS.md.
# A dry run of this script on a CPU, in seconds: GPU_CHECK_DEVICE=cpu GPU_CHECK_MODE=fast GPU_CHECK_BATCH=8
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-500}))
DEVICE=${GPU_CHECK_DEVICE:-cuda} MODE=${GPU_CHECK_MODE:-full} BATCH=${GPU_CHECK_BATCH:-256}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${GPU_CHECK_WHEELS:-.whl}"/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 MPLBACKEND=agg
{ nvidia-smi || true; python3 -c "import torch, diffusers, nbclient, ipykernel; print('torch', torch.__version__, '| diffusers', diffusers.__version__, '| cuda', torch.cuda.is_available())"; } > "$OUT/env.txt" 2>&1 || { cat "$OUT/env.txt"; exit 1; }
tail -1 "$OUT/env.txt"

phase() {  # phase SECONDS FILE COMMAND...: run with at most SECONDS (and never past the deadline), output to $OUT/FILE
    local limit=$1 file=$2; shift 2
    local left=$((DEADLINE - SECONDS))
    (( left < limit )) && limit=$left
    if (( limit < 20 )); then echo "skipped (no time left): $*" | tee "$OUT/$file"; return; fi
    echo "== $* (at most $limit s)"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$file"
    echo "== exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$OUT/$file"
    pkill -9 -f ipykernel_launcher 2>/dev/null  # a notebook kernel runs in its own session: timeout spares it
    return 0
}

BENCH2=(python3 benchmarks/training_throughput.py --device "$DEVICE" --batch "$BATCH")
GRAPHS=(fp32+graph bf16+graph)
[ "$DEVICE" = cuda ] || GRAPHS=()  # the dry run on a CPU: no CUDA graphs
ONLY=" ${GPU_CHECK_ONLY:-tests to_target throughput profile bench32 notebooks} "  # a rerun may pick phases
on() { [[ "$ONLY" == *" $1 "* ]]; }
if on tests; then
    phase 90 cuda_graph_tests.md python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py
    grep -Eq "[0-9]+ (failed|error)" "$OUT/cuda_graph_tests.md" && { echo "stopped: the CUDA-graph tests failed"; exit 1; }
fi
on to_target && phase 220 to_target.md python3 benchmarks/full_mode.py --to-target --mode "$MODE"
on throughput && phase 100 throughput_digits.md "${BENCH2[@]}" --presets digits --steps 100 --settings fp32 bf16 "${GRAPHS[@]}"
on profile && [ "$DEVICE" = cuda ] && phase 60 profile_digits.md "${BENCH2[@]}" --presets digits --settings "${GRAPHS[@]}" --profile
on bench32 && phase 60 throughput_bench32.md "${BENCH2[@]}" --presets bench-32 --steps 60 --settings fp32 "${GRAPHS[@]}"
# Phase 5 prints each notebook's rows as it ends, so a phase cut short still reports those that finished.
on notebooks && phase 600 full_mode.md python3 benchmarks/full_mode.py --mode "$MODE" --only ${GPU_CHECK_NOTEBOOKS:-06 07 08 09 10 04 05}
exit 0
