#!/usr/bin/env bash
# Fragment for the H200 run script (issue 16, embcache): the on-device check, then the micro and
# e2e measurement sets `h200-embcache-micro` and `h200-embcache-e2e` (CSV under $OUT). Expects $B
# (the perfcast-gpu binary built with --features cuda) and $OUT, as env.sh sets them; sources
# env.sh when $B is unset. Whole fragment: about 3.5 minutes expected on one H200 (estimate from
# op counts, not yet measured); the timeouts bound it at 8.7 minutes. Rows are flushed as written.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${REPO:-$(cd "$HERE/../.." && pwd)}
if [ -z "${B:-}" ]; then source "$HERE/env.sh"; fi
O=${OUT:-/tmp/out}
mkdir -p "$O"
MODEL=${EMB_MODEL:-"--dim 128 --bottom 512,256 --top 1024,1024,512,256 --emb-opt sgd --seed 1"}
# Sizes (override all of them for a CPU smoke test of the chain: B="perfcast-gpu --cpu" plus tiny values).
CHECK=${EMB_CHECK:-"--scale 0.001 --n-batches 16 --batch 256"}
SCALE=${EMB_SCALE:-0.03}
NB=${EMB_NB:-32}
BATCHES=${EMB_BATCHES:-1024,4096}
ROWS=${EMB_ROWS:-64,256,1024,4096,16384,65536,262144}
TABLE_ROWS=${EMB_TABLE_ROWS:-1048576}
MBATCHES=${EMB_MBATCHES:-256,1024,4096,16384}
OBATCHES=${EMB_OBATCHES:-256,1024,4096}
MREP=${EMB_MREP:-"--warmup 3 --repeats 10 --iters 5"}
ML_BATCH=${EMB_ML_BATCH:-50}
echo "embcache start $(date -u +%FT%TZ)"
# 1. Correctness before timing: per-batch hits/misses = simulator, gathered rows and trained
#    table/dense weights = the uncached run's (every policy). A failure leaves a marker file and the
#    timing still runs (its rows must then not be used).
timeout 120 $B embcache check $MODEL $CHECK 2>&1 | tee "$O/log-embcache-check.txt"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then echo "EMBCACHE CHECK FAILED rc=$rc" | tee "$O/embcache-check-FAILED"; fi
# 2. Micro-measurements (calibration): gather/scatter rate, pinned/pageable copies, host side and
#    whole miss/write-back paths per row count, dense compute per batch size, device copy rate;
#    the overlap rows at $OBATCHES also give the synchronized step (the calibration's device tail).
timeout 100 $B embcache micro $MODEL --scale "$SCALE" --rows "$ROWS" \
  --table-rows "$TABLE_ROWS" --batches "$MBATCHES" --overlap-batches "$OBATCHES" $MREP \
  --set h200-embcache-micro${EMB_SUFFIX:-} --out "$O" 2>&1 | tee "$O/log-embcache-micro.txt"
rc=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] || echo "EMBCACHE-MICRO rc=$rc"
# 3. End to end: generated Criteo-Kaggle-like trace (profile x 0.03, Zipf 1.05, seed 1), cache
#    size x policy x window x batch; every pass starts from an empty cache. Passes run round by
#    round (every point once per round), 1 warm-up and 5 timed rounds.
timeout 240 $B embcache e2e $MODEL --scale "$SCALE" --zipf 1.05 --n-batches "$NB" --batches "$BATCHES" \
  --caches 0.1%,1%,5%,20%,wss,2wss --policies resident,lru,fifo,static-topk,belady,lookahead \
  --windows 1,4,16 --warmup 1 --repeats 5 --set h200-embcache-e2e${EMB_SUFFIX:-} --trace-name criteo-kaggle-like-zipf \
  --out "$O" 2>&1 | tee "$O/log-embcache-e2e.txt"
rc=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] || echo "EMBCACHE-E2E rc=$rc"
# 4. End to end on the committed MovieLens-format trace (2 tables: users, movies).
timeout 60 $B embcache e2e $MODEL --trace "$REPO/traces/movielens-like-ratings.csv" --n-batches 1000 \
  --batches "$ML_BATCH" --caches 1%,5%,20%,wss,2wss --policies resident,lru,fifo,static-topk,belady,lookahead \
  --windows 1,4 --warmup 1 --repeats 5 --set h200-embcache-e2e${EMB_SUFFIX:-} --trace-name movielens-like \
  --out "$O" 2>&1 | tee -a "$O/log-embcache-e2e.txt"
rc=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] || echo "EMBCACHE-E2E-ML rc=$rc"
echo "embcache done $(date -u +%FT%TZ)"
