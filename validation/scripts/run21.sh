#!/usr/bin/env bash
# Device call 21 (issues 15 and 16, kind nvidia-h200-x2, a fresh machine), measured after the
# embcache calibration (models/calibration/h200-embcache.toml, from run 20's micro rows) and the
# DDP link model were committed: hold-outs. (1) embcache: the on-device check, then the same e2e
# grid as run 20 (no micro rows: validate uses the committed calibration) on GPU 0;
# (2) gradcomp: codec-check, then DDP GPT-2 b8 s512 behind emulated links of 2, 5, 10, 20, 50 GB/s
# (none, fp16, PowerSGD r4, Top-k 1%): a second model's break-even links. NVLink multicast off.
# Usage from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ \
#     && PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run21.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run21}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${REPO:?}
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
MODEL="--dim 128 --bottom 512,256 --top 1024,1024,512,256 --emb-opt sgd --seed 1"
{
echo "embcache check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 120 $B embcache check $MODEL --scale 0.001 --n-batches 16 --batch 256; then
  CUDA_VISIBLE_DEVICES=0 timeout 240 $B embcache e2e $MODEL --scale 0.03 --zipf 1.05 --n-batches 32 --batches 1024,4096 \
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
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
for g in 2 5 10 20 50; do
  echo "link $g GB/s $(date -u +%FT%TZ)"
  timeout 70 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method none,fp16,powersgd:rank=4,topk:density=0.01 --bucket-bytes 26214400 --overlap 1 --nocomm 0 --link-gbps $g $R --set h200x2-gradcomp-link-$RUN --out "$OUT" || echo "DDP-LINK $g rc=$?"
done
else
  echo "CODEC CHECK FAILED: no gradcomp timing"
fi
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
ls -la "$OUT"
