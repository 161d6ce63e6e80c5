#!/usr/bin/env bash
# Device call 65 (issue 14, kind nvidia-h200, FRESH machine), after the codec model gained
# per-stage cache knees (a3cf603; fits from run 61 and runs 48/57/58, committed before this call):
# (1) codec-check (23 checks: 17 + 6 graph replays against the eager round);
# (2) codec-micro --codec-exec graph on run 48's BERT-base grid: set
#     h200-gradcomp-codec-graph-holdout-runNN (same protocol as runs 61-64);
# (3) codec-micro --codec-exec eager, same grid: set h200-gradcomp-codec-holdout-runNN;
# (4) the same two at ResNet-50's shapes, which no calibration set timed (ten conv/fc weights as
#     perfcast reshapes them, cin*k^2 x cout, and two flat buckets): sets
#     h200-gradcomp-codec-graph-holdout-resnet-runNN and h200-gradcomp-codec-holdout-resnet-runNN,
#     the codec model's extrapolation to another network's shapes.
# run66.sh generalizes this script (SPECS); kept as the record of what run 65 ran.
# Usage: mkdir -p /tmp/g && cp validation/scripts/*.sh /tmp/g/ && \
#   xz -dc gpu-bin/perfcast-gpu.xz > /tmp/g/perfcast-gpu && chmod +x /tmp/g/perfcast-gpu && \
#   RUN=run65 PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run65.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run65}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
export NCCL_NVLS_ENABLE=0
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
RESNET=147x64,576x64,64x256,1152x128,128x512,2304x256,256x1024,4608x512,512x2048,2048x1000,1x65536,1x3000000
{
lscpu | grep -E "Model name|^Model:|^CPU\(s\)" || true
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 150 $B gradcomp codec-check --seed 1; then
  echo "codec-micro graph $(date -u +%FT%TZ)"
  CUDA_VISIBLE_DEVICES=0 timeout 200 $B gradcomp codec-micro --codec-exec graph --keep-pool 0 --warmup 2 --repeats 7 --iters 20 --seed 1 --set h200-gradcomp-codec-graph-holdout-$RUN --out "$OUT" | grep -E "host|codec-micro:" || echo "CODEC-MICRO GRAPH rc=$?"
  echo "codec-micro eager $(date -u +%FT%TZ)"
  CUDA_VISIBLE_DEVICES=0 timeout 150 $B gradcomp codec-micro --codec-exec eager --keep-pool 0 --warmup 2 --repeats 7 --iters 10 --seed 1 --set h200-gradcomp-codec-holdout-$RUN --out "$OUT" | grep -E "host|codec-micro:" || echo "CODEC-MICRO EAGER rc=$?"
  echo "codec-micro graph resnet $(date -u +%FT%TZ)"
  CUDA_VISIBLE_DEVICES=0 timeout 150 $B gradcomp codec-micro --codec-exec graph --shapes $RESNET --keep-pool 0 --warmup 2 --repeats 7 --iters 20 --seed 1 --set h200-gradcomp-codec-graph-holdout-resnet-$RUN --out "$OUT" | grep -E "host|codec-micro:" || echo "CODEC-MICRO GRAPH RESNET rc=$?"
  echo "codec-micro eager resnet $(date -u +%FT%TZ)"
  CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp codec-micro --codec-exec eager --shapes $RESNET --keep-pool 0 --warmup 2 --repeats 7 --iters 10 --seed 1 --set h200-gradcomp-codec-holdout-resnet-$RUN --out "$OUT" | grep -E "host|codec-micro:" || echo "CODEC-MICRO EAGER RESNET rc=$?"
else
  echo "CODEC CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
