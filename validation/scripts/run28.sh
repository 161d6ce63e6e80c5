#!/usr/bin/env bash
# Device call 28 (issue 15, kind nvidia-h200-x2, a fresh machine): PowerSGD with its inline
# rounds in order on the compute stream (a second NCCL communicator; run 27 showed the side-stream
# round trip cost ~140 µs per inline collective). The DDP model, codec fit (run 18) and collective
# calibration (run 22) are unchanged: a hold-out.
# (1) codec-check (correctness before timing).
# (2) DDP BERT b32 s128 and GPT-2 b8 s512, PowerSGD r4 and none, 25 MiB and 5 MiB buckets, at
#     NVLink speed and behind emulated 2, 5, 10, 20 GB/s links, every point with its
#     no-communication twin.
# Results go to $OUT/run28, packed into one archive at the end. NVLink multicast off. Usage:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run28.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run28}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
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
  for LINK in "" "--link-gbps 2" "--link-gbps 5" "--link-gbps 10" "--link-gbps 20"; do
    echo "powersgd link='$LINK' $(date -u +%FT%TZ)"
    timeout 100 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,powersgd:rank=4 --bucket-bytes 26214400,5242880 --overlap 1 --nocomm 1 $LINK $R --set h200x2-gradcomp-powersgd-$RUN --out "$OUT" || echo "DDP-BERT '$LINK' rc=$?"
    timeout 100 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method none,powersgd:rank=4 --bucket-bytes 26214400 --overlap 1 --nocomm 1 $LINK $R --set h200x2-gradcomp-powersgd-$RUN --out "$OUT" || echo "DDP-GPT2 '$LINK' rc=$?"
  done
else
  echo "CODEC CHECK FAILED: no gradcomp timing"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && ls -la "$OUT" && rm -rf "$OUT"
