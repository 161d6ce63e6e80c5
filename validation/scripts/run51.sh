#!/usr/bin/env bash
# Device call 51 (issue 14, kind nvidia-h200): the CALIBRATION host of the codec costs with the
# stream-ordered pool kept across the micro protocol's synchronizations (codec-micro
# --keep-pool 1, harness dd0e431; runs 49-50 showed launch-bound calls 1.1-1.6x run 48's on
# other hosts while GPU-bound calls agreed within 2%).
# (1) codec-check; (2) codec-micro, run 48's grid and protocol with the pool kept (the codec
# calibration set h200-gradcomp-codec-run51); (3) the same with --keep-pool 0 (the protocol of
# runs <= 50) into aside-run51/ (an A/B on one host; not read by perfcast).
# Layer micro rows and DDP token steps are unchanged by this harness change (run 48's stand).
# Outcome: keeping the pool made calls under 20 µs 1.22x slower on this host, so both sets went
# to validation/results/gradcomp/aside-run51/ and the calibration stays run 48's (pool trimmed);
# run 51's trimmed set is one more fresh host measured after that calibration.
# Usage from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run51.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run51}
SET=${SET:-h200-gradcomp-codec-$RUN}
STEPS=${STEPS:-0}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT/aside-$RUN"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
M="none,fp16,bf16,powersgd:rank=4,topk:density=0.01,randomk:density=0.01,signsgd,qsgd:bits=8"
{
lscpu | grep -E "Model name|^CPU\(s\)" || true
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
  if [ "${HOLDOUT:-0}" = 1 ]; then
    # Hold-out: the set in the committed protocol (pool trimmed), then the kept-pool A/B aside.
    echo "codec-micro trim $(date -u +%FT%TZ)"
    CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp codec-micro --keep-pool 0 --warmup 2 --repeats 7 --iters 10 --seed 1 --set $SET --out "$OUT" | grep -E "host|codec-micro:" || echo "CODEC-MICRO rc=$?"
    echo "codec-micro keep $(date -u +%FT%TZ)"
    CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp codec-micro --keep-pool 1 --warmup 2 --repeats 7 --iters 10 --seed 1 --set ${SET/codec-holdout/codec-keep} --out "$OUT/aside-$RUN" | grep -E "host|codec-micro:" || echo "CODEC-MICRO-KEEP rc=$?"
  else
    echo "codec-micro keep $(date -u +%FT%TZ)"
    CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp codec-micro --keep-pool 1 --warmup 2 --repeats 7 --iters 10 --seed 1 --set $SET --out "$OUT" | grep -E "host|codec-micro:" || echo "CODEC-MICRO rc=$?"
    echo "codec-micro trim $(date -u +%FT%TZ)"
    CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp codec-micro --keep-pool 0 --warmup 2 --repeats 7 --iters 10 --seed 1 --set ${SET/codec/codec-trim} --out "$OUT/aside-$RUN" | grep -E "host|codec-micro:" || echo "CODEC-MICRO-TRIM rc=$?"
  fi
  if [ "$STEPS" = 1 ]; then
    echo "steps $(date -u +%FT%TZ)"
    for mb in "bert 128 32" "bert 128 16" "gpt2 512 8"; do
      set -- $mb
      CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp step --model $1 --seq $2 --batch $3 --method "$M" --bucket-bytes 26214400,5242880 --world 2 $R --set h200-gradcomp-holdout-$RUN --out "$OUT" | tail -1 || echo "STEP $mb rc=$?"
    done
  fi
else
  echo "CODEC CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
