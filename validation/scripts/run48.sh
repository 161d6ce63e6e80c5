#!/usr/bin/env bash
# Device call 48 (issue 14, kind nvidia-h200-x2): the CALIBRATION host of the codec round with
# PowerSGD's orthogonalization in one kernel launch per bucket (`codec_orthogonalize`, one block
# per matrix; it replaced about 13 candle launches per rank column, which ran at the host CPU's
# dispatch rate) and the host launch micro (`host` rows: candle-affine under the codec protocol,
# before the first and after the last method).
# (1) codec-check (16 checks: every compressor at real sizes, and the orthogonalization kernel
#     against its CPU reference) before anything is timed; (2) codec-micro (run 44's grid, now
#     10 calls per timed repeat); (3) per-unit layer and optimizer micro rows; (4) single-GPU
#     steps on this host (validation only, not a hold-out); (5) DDP token steps (the coupling
#     micro: PowerSGD's inline coupling must be re-measured with the new kernel).
# Usage from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run48.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run48}
MICRO=${MICRO:-1}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
M="none,fp16,bf16,powersgd:rank=4,topk:density=0.01,randomk:density=0.01,signsgd,qsgd:bits=8"
{
nvidia-smi topo -m
lscpu | grep -E "Model name|^CPU\(s\)" || true
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
  echo "codec-micro $(date -u +%FT%TZ)"
  CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp codec-micro --warmup 2 --repeats 7 --iters 10 --seed 1 --set h200-gradcomp-codec-$RUN --out "$OUT" || echo "CODEC-MICRO rc=$?"
  if [ "$MICRO" = 1 ]; then
    echo "layers $(date -u +%FT%TZ)"
    for mb in "bert 128 32" "bert 128 16" "gpt2 512 8" "gpt2 512 4"; do
      set -- $mb
      CUDA_VISIBLE_DEVICES=0 timeout 40 $B gradcomp layers --model $1 --seq $2 --batch $3 $R --set h200-gradcomp-micro-$RUN --out "$OUT" || echo "LAYERS $mb rc=$?"
    done
  fi
  echo "steps $(date -u +%FT%TZ)"
  for mb in "bert 128 32" "bert 128 16" "gpt2 512 8"; do
    set -- $mb
    CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp step --model $1 --seq $2 --batch $3 --method "$M" --bucket-bytes 26214400,5242880 --world 2 $R --set h200-gradcomp-${STEPSET:-e2e}-$RUN --out "$OUT" || echo "STEP $mb rc=$?"
  done
  if [ "$MICRO" = 1 ]; then
    echo "token $(date -u +%FT%TZ)"
    for rep in 1 2; do
      timeout 90 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,fp16,topk:density=0.01,powersgd:rank=4 --bucket-bytes 26214400 --overlap 1 --nocomm 1 --token-only 1 $R --set h200x2-gradcomp-token-$RUN --out "$OUT" || echo "TOKEN-BERT $rep rc=$?"
    done
    timeout 120 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method none,powersgd:rank=4 --bucket-bytes 26214400 --overlap 1 --nocomm 1 --token-only 1 $R --set h200x2-gradcomp-token-$RUN --out "$OUT" 2>&1 | grep -v "^ *[0-9]*: *0x\|^ *at " || echo "TOKEN-GPT2 rc=$?"
  fi
else
  echo "CODEC CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
