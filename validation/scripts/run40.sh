#!/usr/bin/env bash
# Device calls 40 and 41 (issue 13, one H200 each, fresh machines): the freeze micro grid of run 23
# (all eight shapes, harness pinned to one host core) on two more machines. The freeze fit now
# takes, per shape, the median of the newest three machines' micro sets (run 23, 40, 41): the
# host-launch-bound shape (bf16 b16 s128) runs at its host CPU's speed, and run 23's host issued
# kernels ~15% slower than runs 22 and 24's. `freeze check` must pass before anything is timed.
# The hold-out after the calibration is fixed: `RUN=run42 FREEZE=1 EMB=0 bash run24.sh` (its grid,
# freeze-holdout.sh). Usage (RUN=run40, then RUN=run41 on another fresh machine):
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     PERFCAST_COMMIT=<hash> REPO=$PWD RUN=run40 bash /tmp/g/run40.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run40}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
{
lscpu | grep -E "Model name|^CPU\(s\)|MHz" || true
echo "freeze micro $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 60 taskset -c 3 $B freeze check; then
  CUDA_VISIBLE_DEVICES=0 timeout 150 taskset -c 3 $B freeze micro --model val-bert-base --classes 32 --batches 16,32 --seqs 128,256 --dtypes bf16,f32 --warmup 2 --repeats 7 --set h200-freeze-micro-$RUN --out "$OUT" || echo "FREEZE-MICRO rc=$?"
else
  echo "FREEZE CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
