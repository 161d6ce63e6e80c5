#!/usr/bin/env bash
# Device call 50 (issue 14, kind nvidia-h200, a second FRESH machine): a second hold-out of the
# codec costs and single-GPU steps under run 48's committed calibration (f3b5e94), on another
# host than runs 48 and 49. The same binary as runs 48-49 (harness a8a205e).
# (1) codec-check; (2) codec hold-out: codec-micro on run 48's grid and protocol (set
# h200-gradcomp-codec-holdout-run50, with this host's launch rows); (3) single-GPU hold-out
# steps (BERT b32/b16, GPT-2 b8, every compressor, 25/5 MiB buckets).
# Usage from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run50.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run50}
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
  CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp codec-micro --warmup 2 --repeats 7 --iters 10 --seed 1 --set h200-gradcomp-codec-holdout-$RUN --out "$OUT" | tail -3 || echo "CODEC-MICRO rc=$?"
  echo "steps $(date -u +%FT%TZ)"
  for mb in "bert 128 32" "bert 128 16" "gpt2 512 8"; do
    set -- $mb
    CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp step --model $1 --seq $2 --batch $3 --method "$M" --bucket-bytes 26214400,5242880 --world 2 $R --set h200-gradcomp-holdout-$RUN --out "$OUT" || echo "STEP $mb rc=$?"
  done
else
  echo "CODEC CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
