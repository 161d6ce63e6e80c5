#!/usr/bin/env bash
# Device call 49 (issue 14, kind nvidia-h200-x2, a FRESH machine): the HOLD-OUT measured after
# run 48's calibration was committed (models/calibration/h200-gradcomp.toml: codec fit of
# h200-gradcomp-codec-run48 with PowerSGD's one-launch orthogonalization and run 48's host
# launch cost; DDP coupling from run 48's token steps). The same binary as run 48.
# (1) codec-check; (2) codec hold-out: codec-micro on run 48's grid and protocol (set
# h200-gradcomp-codec-holdout-run49, with this host's launch rows); (3) single-GPU hold-out
# steps (BERT b32/b16, GPT-2 b8, every compressor, 25/5 MiB buckets; GPU 0); (4) DDP hold-out on
# both GPUs, every point with its no-communication twin (run 46's grid).
# Usage from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run49.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run49}
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
  for LINK in "" "--link-gbps 10" "--link-gbps 5"; do
    for m in none fp16 powersgd:rank=4 topk:density=0.01; do
      echo "ddp bert $m link='$LINK' $(date -u +%FT%TZ)"
      timeout 60 $B gradcomp ddp --model bert --seq 128 --batch 32 --method $m --bucket-bytes 26214400 --overlap 1 --nocomm 1 $LINK $R --set h200x2-gradcomp-holdout-$RUN --out "$OUT" 2>&1 | tail -3 || true
    done
    for m in none powersgd:rank=4 topk:density=0.01; do
      echo "ddp gpt2 $m link='$LINK' $(date -u +%FT%TZ)"
      timeout 90 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method $m --bucket-bytes 26214400 --overlap 1 --nocomm 1 $LINK $R --set h200x2-gradcomp-holdout-$RUN --out "$OUT" 2>&1 | grep -v "^ *[0-9]*: *0x\|^ *at " | tail -3 || true
    done
  done
else
  echo "CODEC CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
