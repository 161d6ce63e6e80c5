#!/usr/bin/env bash
# Device call 25 (issue 16, one H200): the embcache calibration set re-measured as
# HARNESS-CHANGE.md asks (branch embfit's model prices each row path by interpolating its micro
# medians, and keys the dense step by table count): the on-device check, then the micro
# (2a) at denser row counts over 1k–16k rows and (2b) the dense step at the MovieLens e2e shape
# (2 tables, batch 50), both into set h200-embcache-micro-run25. No e2e rows: the hold-out is the
# next call, on a fresh machine, after the calibration is committed. Usage from the repo root:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ \
#     && PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run25.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run25}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${REPO:?}
source "$HERE/env.sh"
MODEL="--dim 128 --bottom 512,256 --top 1024,1024,512,256 --emb-opt sgd --seed 1"
{
lscpu | grep -E "Model name|^CPU\(s\)" || true
echo "embcache check $(date -u +%FT%TZ)"
if timeout 120 $B embcache check $MODEL --scale 0.001 --n-batches 16 --batch 256; then
  timeout 170 $B embcache micro $MODEL --scale 0.03 \
    --rows 64,256,1024,2048,4096,6144,8192,12288,16384,65536,262144 \
    --table-rows 1048576 --batches 256,1024,4096,16384 --overlap-batches 256,1024,4096 \
    --warmup 3 --repeats 10 --iters 5 --set h200-embcache-micro-$RUN --out "$OUT" || echo "EMBCACHE-MICRO rc=$?"
  timeout 70 $B embcache micro $MODEL --trace "$REPO/traces/movielens-like-ratings.csv" --n-batches 1000 \
    --rows 1024 --table-rows 1048576 --batches 50 --overlap-batches 50 \
    --warmup 3 --repeats 10 --iters 5 --set h200-embcache-micro-$RUN --out "$OUT" || echo "EMBCACHE-MICRO-ML rc=$?"
else
  echo "EMBCACHE CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && ls -la "$OUT" && rm -rf "$OUT"
