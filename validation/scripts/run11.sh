#!/usr/bin/env bash
# Device call 11 (kind nvidia-h200-x2, a fresh machine): (1) the NCCL sweep over both GPUs
# (all-reduce and all-gather, 8 B – 1 GiB, each size checked against a host reduction before it is
# timed; issue 15 deliverable 1), then (2) the freeze hold-out on GPU 0 (freeze-holdout.sh: e2e
# configurations never measured, after the freeze model and calibration were fixed). Usage from
# the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz \
#     traces/corpus-cpython-3.11.7-lib.py.txt /tmp/g/ && bash /tmp/g/run11.sh
set -u
FINAL_OUT=${OUT:?}
export OUT=/tmp/res11
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
{
nvidia-smi topo -m
timeout 240 $B nccl-sweep --ops allreduce,allgather --min-bytes 8 --max-bytes 1073741824 --step-factor 2 --warmup 5 --iters 20 --repeats 5 --set h200x2-nccl --out "$OUT" || echo "NCCL-SWEEP rc=$?"
echo "nccl done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-nccl.txt"
CUDA_VISIBLE_DEVICES=0 timeout 330 bash "$HERE/freeze-holdout.sh" 2>&1 | tee "$OUT/log-freeze-holdout.txt"
tar czf "$FINAL_OUT/run11.tar.gz" -C "$OUT" .
ls -la "$OUT"
