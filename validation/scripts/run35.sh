#!/usr/bin/env bash
# Device call 35 (issue 16, one H200): the zero-copy fetch path (issue 16 item 3a: "explicit copies
# and zero-copy"), measured in the micro grid of run 31 (`zero_copy_gather`: a kernel reading the
# rows straight from the page-locked host table; checked against the host gather before timing).
# The set goes aside (validation/results/embcache/, not scanned by validate): the committed
# calibration stays run 31's, which the hold-outs (runs 32, 33) were measured against. Usage:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ \
#     && PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run35.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run35}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
MODEL="--dim 128 --bottom 512,256 --top 1024,1024,512,256 --emb-opt sgd --seed 1"
{
lscpu | grep -E "Model name|^CPU\(s\)" || true
echo "micro $(date -u +%FT%TZ)"
timeout 200 $B embcache micro $MODEL --step-exec graphs --scale 0.03 \
  --rows 64,256,1024,2048,4096,6144,8192,12288,16384,65536,262144 \
  --table-rows 1048576 --batches 1024 --overlap-batches 1024 \
  --warmup 3 --repeats 10 --iters 5 --set h200-embcache-zerocopy-$RUN --out "$OUT" || echo "EMBCACHE-MICRO rc=$?"
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
