#!/usr/bin/env bash
# Device call 29 (issue 16, one H200): the embcache harness with the DLRM step captured as a CUDA
# graph per batch size and replayed (`--step-exec graphs`): runs 20–26 ran it eagerly, one host
# launch per candle op, and at the MovieLens shape (2 tables, batch 50) that host work set the
# time and differed by 20–35% between hosts (run 26's hold-out: 16% MAPE, 29.5% max at batch 50).
# (1) the on-device check with graphs: graph-replayed vs eager steps (uncached) and, per policy,
#     hits/misses per batch equal to the simulator, gathered rows and trained weights equal to the
#     uncached run's; Criteo-like and MovieLens shapes;
# (2) calibration: the micro grid of run 25 with graphs, set h200-embcache-micro-run29;
# (3) the e2e grid of runs 21/26 with graphs on this (the calibration) machine, set
#     h200-embcache-e2e-run29 (validation of the calibration host; the hold-out is the next call);
# (4) aside (not scanned by validate): the MovieLens e2e grid eagerly on the same host, for the
#     side-by-side graph vs eager ratio.
# Usage from the repo root:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ \
#     && PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run29.sh
# Env: RUN (default run29), MICRO (1: run (2)), E2E_SET (default h200-embcache-e2e-$RUN),
# EAGER (1: run (4)).
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run29}
MICRO=${MICRO:-1}
EAGER=${EAGER:-1}
E2E_SET=${E2E_SET:-h200-embcache-e2e-$RUN}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT/aside"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${REPO:?}
source "$HERE/env.sh"
MODEL="--dim 128 --bottom 512,256 --top 1024,1024,512,256 --emb-opt sgd --seed 1"
G="--step-exec graphs"
ML="$REPO/traces/movielens-like-ratings.csv"
{
lscpu | grep -E "Model name|^CPU\(s\)" || true
echo "embcache check $(date -u +%FT%TZ)"
if timeout 150 $B embcache check $MODEL $G --scale 0.001 --n-batches 16 --batch 256 \
   && timeout 100 $B embcache check $MODEL $G --trace "$ML" --n-batches 60 --batch 50; then
  if [ "$MICRO" = 1 ]; then
    echo "micro $(date -u +%FT%TZ)"
    timeout 200 $B embcache micro $MODEL $G --scale 0.03 \
      --rows 64,256,1024,2048,4096,6144,8192,12288,16384,65536,262144 \
      --table-rows 1048576 --batches 256,1024,4096,16384 --overlap-batches 256,1024,4096 \
      --warmup 3 --repeats 10 --iters 5 --set h200-embcache-micro-$RUN --out "$OUT" || echo "EMBCACHE-MICRO rc=$?"
    timeout 70 $B embcache micro $MODEL $G --trace "$ML" --n-batches 1000 \
      --rows 1024 --table-rows 1048576 --batches 50 --overlap-batches 50 \
      --warmup 3 --repeats 10 --iters 5 --set h200-embcache-micro-$RUN --out "$OUT" || echo "EMBCACHE-MICRO-ML rc=$?"
  fi
  echo "e2e $(date -u +%FT%TZ)"
  timeout 240 $B embcache e2e $MODEL $G --scale 0.03 --zipf 1.05 --n-batches 32 --batches 1024,4096 \
    --caches 0.1%,1%,5%,20%,wss,2wss --policies resident,lru,fifo,static-topk,belady,lookahead \
    --windows 1,4,16 --warmup 1 --repeats 5 --set "$E2E_SET" --trace-name criteo-kaggle-like-zipf \
    --out "$OUT" || echo "EMBCACHE-E2E rc=$?"
  timeout 90 $B embcache e2e $MODEL $G --trace "$ML" --n-batches 1000 \
    --batches 50 --caches 1%,5%,20%,wss,2wss --policies resident,lru,fifo,static-topk,belady,lookahead \
    --windows 1,4 --warmup 1 --repeats 5 --set "$E2E_SET" --trace-name movielens-like \
    --out "$OUT" || echo "EMBCACHE-E2E-ML rc=$?"
  echo "eager aside $(date -u +%FT%TZ)"
  [ "$EAGER" = 1 ] && timeout 90 $B embcache e2e $MODEL --trace "$ML" --n-batches 1000 \
    --batches 50 --caches 1%,5%,20%,wss,2wss --policies resident,lru,fifo,static-topk,belady,lookahead \
    --windows 1,4 --warmup 1 --repeats 5 --set h200-embcache-eager-$RUN --trace-name movielens-like \
    --out "$OUT/aside" || echo "EMBCACHE-E2E-ML-EAGER rc=$?"
else
  echo "EMBCACHE CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && ls -laR "$OUT" && rm -rf "$OUT"
