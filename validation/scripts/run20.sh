#!/usr/bin/env bash
# Device call 20 (issues 15 and 16, kind nvidia-h200-x2, a fresh machine). Measured after the
# DDP predictor with emulated links (src/gradcomp/calib/step.rs `with_link`) was committed.
# (1) codec-check (correctness before timing); (2) DDP BERT b32 on both GPUs behind emulated links
# of 2, 5, 10, 20 and 50 GB/s (`--link-gbps`: a delay kernel on the communication stream after each
# collective), none/fp16/PowerSGD r4/Top-k 1%/signSGD, overlap on: the measured break-even links;
# (3) the embcache set on GPU 0 (validation/scripts/embcache-gpu.sh: on-device check, micro,
# end-to-end rounds interleaved point by point). NVLink multicast off.
# Usage from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ \
#     && PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run20.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run20}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
{
nvidia-smi topo -m
echo "codec-check $(date -u +%FT%TZ)"
if ! CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
  echo "CODEC CHECK FAILED: no gradcomp timing"
else
for g in 2 5 10 20 50; do
  echo "link $g GB/s $(date -u +%FT%TZ)"
  timeout 70 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,fp16,powersgd:rank=4,topk:density=0.01,signsgd --bucket-bytes 26214400 --overlap 1 --nocomm 0 --link-gbps $g $R --set h200x2-gradcomp-link-$RUN --out "$OUT" || echo "DDP-LINK $g rc=$?"
done
fi
echo "embcache $(date -u +%FT%TZ)"
CUDA_VISIBLE_DEVICES=0 EMB_SUFFIX=-$RUN bash "$HERE/embcache-gpu.sh"
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
ls -la "$OUT"
