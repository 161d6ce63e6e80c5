#!/usr/bin/env bash
# Device call 36 (issue 15, kind nvidia-h200-x2, a fresh machine): GPT-2 b8 s512 PowerSGD under the
# harness of run 28 (inline rounds on the compute stream), now that the DDP loop hands the memory
# pool's free bytes back between points (run 34: GPT-2 PowerSGD with its twin filled the device).
# The DDP model, codec fit (run 18) and collective calibration (run 22) are unchanged: a hold-out.
# (1) codec-check; (2) GPT-2 none and PowerSGD r4, 25 MiB buckets, NVLink and 2, 5, 10 GB/s, twins,
# device memory sampled. Results in $OUT/run36 (one archive). Usage:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run36.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run36}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
{
nvidia-smi --query-gpu=index,memory.used --format=csv,noheader -lms 200 > "$OUT/mem-$RUN.csv" &
MON=$!
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
  for LINK in "" "--link-gbps 2" "--link-gbps 5" "--link-gbps 10"; do
    echo "gpt2 link='$LINK' $(date -u +%FT%TZ)"
    timeout 100 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method none,powersgd:rank=4 --bucket-bytes 26214400 --overlap 1 --nocomm 1 $LINK $R --set h200x2-gradcomp-gpt2-$RUN --out "$OUT" 2>&1 | grep -v "^ *[0-9]*: *0x\|^ *at " || echo "DDP-GPT2 '$LINK' rc=$?"
  done
fi
kill $MON
echo "peak memory per GPU (MiB): $(sort -t, -k2 -n "$OUT/mem-$RUN.csv" | tail -1)"
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
