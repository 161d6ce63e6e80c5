#!/usr/bin/env bash
# Device call 17 (issues 14 and 15, kind nvidia-h200-x2, a fresh machine; the first run of the
# gradcomp harness on a GPU). Each step is capped; correctness checks run before anything is
# timed: (1) codec-check (every compressor's bound on real-size gradients) then codec-micro (the
# codec calibration rows); (2) per-unit layers and optimizer micro rows, BERT b32 s128 and GPT-2
# b8 s512 (GPU 0); (3) single-GPU steps with the collective replaced by a local reduction, BERT
# b32, every compressor, 25 MiB buckets, world 8 (GPU 0); (4) DDP over NCCL on both GPUs (ranks
# end every step bit-identical for the baseline, checked on the host before timing), BERT b32,
# overlap on, then one NCCL channel (an emulated slower link). NVLink multicast off.
# Usage from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ \
#     && PERFCAST_COMMIT=<hash> bash /tmp/g/run17.sh
set -u
FINAL_OUT=${OUT:?}
export OUT=/tmp/res17
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
M="none,fp16,bf16,powersgd:rank=4,topk:density=0.01,randomk:density=0.01,signsgd,qsgd:bits=8"
{
nvidia-smi topo -m
echo "codec $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 60 $B gradcomp codec-check --seed 1; then
  CUDA_VISIBLE_DEVICES=0 timeout 60 $B gradcomp codec-micro --warmup 2 --repeats 7 --iters 3 --seed 1 --set h200-gradcomp-codec --out "$OUT" || echo "CODEC-MICRO rc=$?"
else
  echo "CODEC CHECK FAILED: codecs not timed"
fi
echo "layers $(date -u +%FT%TZ)"
CUDA_VISIBLE_DEVICES=0 timeout 30 $B gradcomp layers --model bert --seq 128 --batch 32 $R --set h200-gradcomp-micro --out "$OUT" || echo "LAYERS-BERT rc=$?"
CUDA_VISIBLE_DEVICES=0 timeout 30 $B gradcomp layers --model gpt2 --seq 512 --batch 8 $R --set h200-gradcomp-micro --out "$OUT" || echo "LAYERS-GPT2 rc=$?"
echo "steps $(date -u +%FT%TZ)"
CUDA_VISIBLE_DEVICES=0 timeout 60 $B gradcomp step --model bert --seq 128 --batch 32 --method "$M" --bucket-bytes 26214400 --world 8 $R --set h200-gradcomp-e2e --out "$OUT" || echo "STEP-BERT rc=$?"
echo "ddp $(date -u +%FT%TZ)"
timeout 60 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,fp16,powersgd:rank=4,topk:density=0.01 --bucket-bytes 26214400 --overlap 1 $R --set h200x2-gradcomp-ddp --out "$OUT" || echo "DDP-BERT rc=$?"
NCCL_MAX_NCHANNELS=1 timeout 40 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,powersgd:rank=4 --bucket-bytes 26214400 --overlap 1 $R --set h200x2-gradcomp-ddp-ch1 --out "$OUT" || echo "DDP-BERT-CH1 rc=$?"
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-run17.txt"
tar czf "$FINAL_OUT/run17.tar.gz" -C "$OUT" .
ls -la "$OUT"
