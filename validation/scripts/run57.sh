#!/usr/bin/env bash
# Device calls 57 and 58 (issue 14, kind nvidia-h200, FRESH machines): two more CALIBRATION hosts
# of the codec costs. Runs 49-56 put launch-bound calls (< 100 us) at 1.00-1.34x run 48's
# (median 1.08x) on other hosts of the same CPU and GPU model while GPU-bound calls agreed
# within 2%: one calibration host sits wherever it sits in that spread. The calibration now pools
# every non-hold-out codec set of the current harness and protocol (runs 48, 57, 58), fitted
# before the next hold-outs (runs 59-60) are measured.
# (1) codec-check; (2) codec-micro, run 48's grid and protocol (pool trimmed, 10 calls per
# repeat): set h200-gradcomp-codec-runNN. Binary dd0e431. Usage (RUN=run57 or run58):
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     RUN=run57 PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run57.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run57}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
{
lscpu | grep -E "Model name|^Model:|^CPU\(s\)" || true
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
  echo "codec-micro $(date -u +%FT%TZ)"
  CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp codec-micro --keep-pool 0 --warmup 2 --repeats 7 --iters 10 --seed 1 --set h200-gradcomp-codec-$RUN --out "$OUT" | grep -E "host|codec-micro:" || echo "CODEC-MICRO rc=$?"
else
  echo "CODEC CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
