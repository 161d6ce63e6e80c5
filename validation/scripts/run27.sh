#!/usr/bin/env bash
# Device call 27 (issue 15, kind nvidia-h200-x2, a fresh machine), measured with the DDP model,
# the codec fit (run 18) and the graph-timed collective calibration (run 22) as committed at
# 4be18df: every set here is a hold-out of that model.
# (1) codec-check (correctness before timing).
# (2) Bucket size (issue 15 item 3; runs 18-23 used 25 MiB only): DDP BERT b32 s128 (none, fp16,
#     PowerSGD r4, Top-k 1%, signSGD) and GPT-2 b8 s512 (none, fp16, PowerSGD r4, Top-k 1%) with
#     5 MiB and 100 MiB buckets, at NVLink speed and behind an emulated 5 GB/s link, each with its
#     no-communication twin.
# (3) Where the unexplained exposed time comes from: BERT none and PowerSGD with the collectives
#     on the compute stream (--overlap 0) against the side stream (--overlap 1), 25 MiB buckets at
#     NVLink speed; and none / PowerSGD / Top-k with one NCCL channel (one SM per collective
#     instead of ~16-32) behind the 5 GB/s link, twins included.
# Results go to $OUT/run27, packed into one archive at the end (a call returns at most 8 files).
# NVLink multicast off. Usage from the repository root:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run27.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run27}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
BERT="--model bert --seq 128 --batch 32 --method none,fp16,powersgd:rank=4,topk:density=0.01,signsgd"
GPT="--model gpt2 --seq 512 --batch 8 --method none,fp16,powersgd:rank=4,topk:density=0.01"
{
nvidia-smi topo -m
lscpu | grep -E "Model name|^CPU\(s\)" || true
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
  for LINK in "" "--link-gbps 5"; do
    echo "buckets link='$LINK' $(date -u +%FT%TZ)"
    timeout 120 $B gradcomp ddp $BERT --bucket-bytes 5242880,104857600 --overlap 1 --nocomm 1 $LINK $R --set h200x2-gradcomp-bucket-$RUN --out "$OUT" || echo "DDP-BERT-BUCKET '$LINK' rc=$?"
    timeout 120 $B gradcomp ddp $GPT --bucket-bytes 5242880,104857600 --overlap 1 --nocomm 1 $LINK $R --set h200x2-gradcomp-bucket-$RUN --out "$OUT" || echo "DDP-GPT2-BUCKET '$LINK' rc=$?"
  done
  echo "overlap diagnostic $(date -u +%FT%TZ)"
  for OV in 0 1; do
    timeout 80 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,powersgd:rank=4 --bucket-bytes 26214400 --overlap $OV --nocomm 1 $R --set h200x2-gradcomp-overlap-$RUN --out "$OUT" || echo "DDP-OVERLAP $OV rc=$?"
  done
  NCCL_MAX_NCHANNELS=1 timeout 80 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,powersgd:rank=4,topk:density=0.01 --bucket-bytes 26214400 --overlap 1 --nocomm 1 --link-gbps 5 $R --set h200x2-gradcomp-overlap-$RUN --out "$OUT" || echo "DDP-CH1 rc=$?"
else
  echo "CODEC CHECK FAILED: no gradcomp timing"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && ls -la "$OUT" && rm -rf "$OUT"
