#!/usr/bin/env bash
# Device calls 37 and 38 (issue 16, one H200): embcache on a REAL public trace, libCacheSim's
# sample `data/cloudPhysicsIO.oracleGeneral.bin` (a CloudPhysics VM block trace, 113 872 requests
# over 48 974 blocks, GPL-3.0 as libCacheSim distributes it: traces/README.md), next to the
# generated Criteo-like and MovieLens-like traces of runs 29–33. One table: a sample is one lookup.
# (1) the on-device check on all three traces (graph vs eager steps bit-identical; per policy,
#     hits/misses per batch equal to the simulator; gathered rows and trained weights equal to the
#     uncached run's); nothing is timed unless it passes;
# (2) MICRO=1 (call 37, the calibration machine): run 31's micro grid plus the one-table shape of
#     the real trace (batches 256 and 1024), one set h200-embcache-micro-$RUN;
# (3) the e2e grid on the three traces, set $E2E_SET (call 37: h200-embcache-e2e-run37, the
#     calibration host; call 38, a fresh machine after the calibration was fixed:
#     RUN=run38 MICRO=0 E2E_SET=h200-embcache-holdout-run38).
# Usage from the repo root:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ \
#     && PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run37.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run37}
MICRO=${MICRO:-1}
E2E_SET=${E2E_SET:-h200-embcache-e2e-$RUN}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${REPO:?}
source "$HERE/env.sh"
MODEL="--dim 128 --bottom 512,256 --top 1024,1024,512,256 --emb-opt sgd --seed 1"
G="--step-exec graphs"
ML="$REPO/traces/movielens-like-ratings.csv"
CP="$REPO/traces/cloudPhysicsIO.oracleGeneral.bin"
POL="--policies resident,lru,fifo,static-topk,belady,lookahead"
{
lscpu | grep -E "Model name|^CPU\(s\)" || true
sha256sum "$CP"
echo "embcache check $(date -u +%FT%TZ)"
if timeout 150 $B embcache check $MODEL $G --scale 0.001 --n-batches 16 --batch 256 \
   && timeout 100 $B embcache check $MODEL $G --trace "$ML" --n-batches 60 --batch 50 \
   && timeout 100 $B embcache check $MODEL $G --trace "$CP" --n-batches 40 --batch 256; then
  if [ "$MICRO" = 1 ]; then
    echo "micro $(date -u +%FT%TZ)"
    timeout 200 $B embcache micro $MODEL $G --scale 0.03 \
      --rows 64,256,1024,2048,4096,6144,8192,12288,16384,65536,262144 \
      --table-rows 1048576 --batches 256,1024,4096,16384 --overlap-batches 256,1024,4096 \
      --warmup 3 --repeats 10 --iters 5 --set h200-embcache-micro-$RUN --out "$OUT" || echo "EMBCACHE-MICRO rc=$?"
    timeout 70 $B embcache micro $MODEL $G --trace "$ML" --n-batches 1000 \
      --rows 1024 --table-rows 1048576 --batches 50 --overlap-batches 50 \
      --warmup 3 --repeats 10 --iters 5 --set h200-embcache-micro-$RUN --out "$OUT" || echo "EMBCACHE-MICRO-ML rc=$?"
    timeout 70 $B embcache micro $MODEL $G --trace "$CP" --n-batches 100 \
      --rows 1024 --table-rows 1048576 --batches 256,1024 --overlap-batches 256,1024 \
      --warmup 3 --repeats 10 --iters 5 --set h200-embcache-micro-$RUN --out "$OUT" || echo "EMBCACHE-MICRO-CP rc=$?"
  fi
  echo "e2e $(date -u +%FT%TZ)"
  timeout 240 $B embcache e2e $MODEL $G --scale 0.03 --zipf 1.05 --n-batches 32 --batches 1024,4096 \
    --caches 0.1%,1%,5%,20%,wss,2wss $POL \
    --windows 1,4,16 --warmup 1 --repeats 5 --set "$E2E_SET" --trace-name criteo-kaggle-like-zipf \
    --out "$OUT" || echo "EMBCACHE-E2E rc=$?"
  timeout 90 $B embcache e2e $MODEL $G --trace "$ML" --n-batches 1000 \
    --batches 50 --caches 1%,5%,20%,wss,2wss $POL \
    --windows 1,4 --warmup 1 --repeats 5 --set "$E2E_SET" --trace-name movielens-like \
    --out "$OUT" || echo "EMBCACHE-E2E-ML rc=$?"
  echo "e2e real trace $(date -u +%FT%TZ)"
  timeout 200 $B embcache e2e $MODEL $G --trace "$CP" --n-batches 100 \
    --batches 256,1024 --caches 0.1%,1%,5%,20%,wss,2wss $POL \
    --windows 1,4 --warmup 1 --repeats 5 --set "$E2E_SET" --trace-name cloudphysics-io \
    --out "$OUT" || echo "EMBCACHE-E2E-CP rc=$?"
else
  echo "EMBCACHE CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && ls -laR "$OUT" && rm -rf "$OUT"
