#!/usr/bin/env bash
# Device calls 61-63 (issue 14, kind nvidia-h200, FRESH machines): codec calls captured as CUDA
# graphs. Runs 49-60 put eager launch-bound calls (< 100 us) at 0.98-1.33x run 48's on other
# hosts of the same CPU and GPU model (the host's issue rate), GPU-bound calls within 2%.
# A call captured once and replayed costs the host one cuGraphLaunch: the device-side cost.
# (1) codec-check (17 checks + 6 graph replays against the eager round);
# (2) codec-micro --codec-exec graph, run 48's grid, 20 calls per repeat: set
#     h200-gradcomp-codec-graph-runNN (HOLDOUT=0: run 61, the graph calibration host) or
#     h200-gradcomp-codec-graph-holdout-runNN (HOLDOUT=1: runs 62-63, measured after the graph
#     fit was committed);
# (3) codec-micro --codec-exec eager, run 48's protocol (pool trimmed, 10 calls per repeat): set
#     h200-gradcomp-codec-holdout-runNN, an eager hold-out (every run here is after the pooled
#     eager calibration 4d17424), timed on the same host as (2).
# Usage: mkdir -p /tmp/g && cp validation/scripts/*.sh /tmp/g/ && \
#   xz -dc gpu-bin/perfcast-gpu.xz > /tmp/g/perfcast-gpu && chmod +x /tmp/g/perfcast-gpu && \
#   RUN=run61 HOLDOUT=0 PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run61.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run61}
HOLDOUT=${HOLDOUT:-0}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
if [ "$HOLDOUT" = 1 ]; then GSET=h200-gradcomp-codec-graph-holdout-$RUN; else GSET=h200-gradcomp-codec-graph-$RUN; fi
{
lscpu | grep -E "Model name|^Model:|^CPU\(s\)" || true
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 150 $B gradcomp codec-check --seed 1; then
  echo "codec-micro graph $(date -u +%FT%TZ)"
  CUDA_VISIBLE_DEVICES=0 timeout 240 $B gradcomp codec-micro --codec-exec graph --keep-pool 0 --warmup 2 --repeats 7 --iters 20 --seed 1 --set $GSET --out "$OUT" | grep -E "host|codec-micro:|fp16|topk:density=0.01" || echo "CODEC-MICRO GRAPH rc=$?"
  echo "codec-micro eager $(date -u +%FT%TZ)"
  CUDA_VISIBLE_DEVICES=0 timeout 150 $B gradcomp codec-micro --codec-exec eager --keep-pool 0 --warmup 2 --repeats 7 --iters 10 --seed 1 --set h200-gradcomp-codec-holdout-$RUN --out "$OUT" | grep -E "host|codec-micro:" || echo "CODEC-MICRO EAGER rc=$?"
else
  echo "CODEC CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
