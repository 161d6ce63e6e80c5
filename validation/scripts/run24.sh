#!/usr/bin/env bash
# Device call 24 (issue 13, one H200, a fresh machine; EMB=1 adds issue 16's part): hold-outs
# measured after the freeze calibration (run 23's micro rows, one host core) was committed.
# (1) freeze: the hold-out grid of freeze-holdout.sh (frozen prefixes 2/6/10, cached 3/7/11,
#     FreezeOut cubic/linear, AutoFreeze every 3 iterations, four shapes) pinned to ONE host core;
# (2) with EMB=1, embcache: the on-device check, then run 21's e2e grid (no micro rows), after
#     the embcache model was committed.
# Results go to $OUT/run24 and are packed into one archive at the end. Usage from the repository root:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz \
#     traces/corpus-cpython-3.11.7-lib.py.txt /tmp/g/ && PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run24.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run24}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${REPO:?}
source "$HERE/env.sh"
export B CORPUS O
MODEL="--dim 128 --bottom 512,256 --top 1024,1024,512,256 --emb-opt sgd --seed 1"
{
lscpu | grep -E "Model name|^CPU\(s\)" || true
[ "${FREEZE:-1}" = 1 ] && SET=h200-freeze-holdout-$RUN PIN="taskset -c 3" CUDA_VISIBLE_DEVICES=0 bash "$HERE/freeze-holdout.sh"
if [ "${FREEZE:-1}" != 1 ]; then echo "freeze skipped"; fi
if [ "${EMB:-0}" != 1 ]; then
  echo "embcache skipped"
else
echo "embcache check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 120 $B embcache check $MODEL --scale 0.001 --n-batches 16 --batch 256; then
  CUDA_VISIBLE_DEVICES=0 timeout 200 $B embcache e2e $MODEL --scale 0.03 --zipf 1.05 --n-batches 32 --batches 1024,4096 \
    --caches 0.1%,1%,5%,20%,wss,2wss --policies resident,lru,fifo,static-topk,belady,lookahead \
    --windows 1,4,16 --warmup 1 --repeats 5 --set h200-embcache-holdout-$RUN --trace-name criteo-kaggle-like-zipf \
    --out "$OUT" || echo "EMBCACHE-E2E rc=$?"
  CUDA_VISIBLE_DEVICES=0 timeout 60 $B embcache e2e $MODEL --trace "$REPO/traces/movielens-like-ratings.csv" --n-batches 1000 \
    --batches 50 --caches 1%,5%,20%,wss,2wss --policies resident,lru,fifo,static-topk,belady,lookahead \
    --windows 1,4 --warmup 1 --repeats 5 --set h200-embcache-holdout-$RUN --trace-name movielens-like \
    --out "$OUT" || echo "EMBCACHE-E2E-ML rc=$?"
else
  echo "EMBCACHE CHECK FAILED: nothing timed"
fi
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && ls -la "$OUT" && rm -rf "$OUT"
