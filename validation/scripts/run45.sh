#!/usr/bin/env bash
# Device call 45 (issues 14 and 15, kind nvidia-h200-x2, a fresh machine; calibration host 2).
# Run 44's BERT token steps (none,fp16,topk,powersgd in ONE invocation) stopped with
# CUDA_ERROR_ILLEGAL_ADDRESS on rank 1 before any point was reported; GPT-2 (none,powersgd)
# and every single-GPU step (Top-k included) ran. (1) codec-check; (2) diagnostic, aside: the
# DDP Top-k step alone, real and token, under CUDA_LAUNCH_BLOCKING=1 (every custom kernel
# launch now names its kernel in a driver error); (3) the DDP coupling micro (token steps with
# their no-communication twins), one invocation per method so one failure cannot hide the rest.
# Usage from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run45.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run45}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT/aside"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
{
nvidia-smi topo -m
lscpu | grep -E "Model name|^CPU\(s\)" || true
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
  for TOK in 0 1; do
    echo "diag bert topk token=$TOK $(date -u +%FT%TZ)"
    CUDA_LAUNCH_BLOCKING=1 timeout 60 $B gradcomp ddp --model bert --seq 128 --batch 32 --method topk:density=0.01 --bucket-bytes 26214400 --overlap 1 --nocomm 0 --token-only $TOK --warmup 0 --repeats 1 --set h200x2-gradcomp-diag-$RUN --out "$OUT/aside" 2>&1 | tail -5
  done
  echo "diag gpt2 topk $(date -u +%FT%TZ)"
  CUDA_LAUNCH_BLOCKING=1 timeout 60 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method topk:density=0.01 --bucket-bytes 26214400 --overlap 1 --nocomm 0 --warmup 0 --repeats 1 --set h200x2-gradcomp-diag-$RUN --out "$OUT/aside" 2>&1 | grep -v "^ *[0-9]*: *0x\|^ *at " | tail -5
  echo "diag bert topk in order $(date -u +%FT%TZ)"
  CUDA_LAUNCH_BLOCKING=1 timeout 60 $B gradcomp ddp --model bert --seq 128 --batch 32 --method topk:density=0.01 --bucket-bytes 26214400 --overlap 0 --nocomm 0 --warmup 0 --repeats 1 --set h200x2-gradcomp-diag-$RUN --out "$OUT/aside" 2>&1 | tail -5
  echo "token $(date -u +%FT%TZ)"
  for m in none fp16 powersgd:rank=4 none topk:density=0.01; do
    echo "token bert $m $(date -u +%FT%TZ)"
    timeout 60 $B gradcomp ddp --model bert --seq 128 --batch 32 --method $m --bucket-bytes 26214400 --overlap 1 --nocomm 1 --token-only 1 $R --set h200x2-gradcomp-token-$RUN --out "$OUT" 2>&1 | tail -4 || true
  done
  for m in none powersgd:rank=4; do
    echo "token gpt2 $m $(date -u +%FT%TZ)"
    timeout 100 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method $m --bucket-bytes 26214400 --overlap 1 --nocomm 1 --token-only 1 $R --set h200x2-gradcomp-token-$RUN --out "$OUT" 2>&1 | grep -v "^ *[0-9]*: *0x\|^ *at " | tail -4 || true
  done
else
  echo "CODEC CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
