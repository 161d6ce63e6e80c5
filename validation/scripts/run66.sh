#!/usr/bin/env bash
# Device calls 66+ (issue 14, kind nvidia-h200, FRESH machines): codec timings over three shape
# grids. Run 65 found the codec fit of BERT-base's shapes 4.5% MAPE on a fresh host at those
# shapes but 8.7% (graph) / 10.5% (eager) at ResNet-50's, which no calibration set had timed:
# the shapes a what-if asks about must be among those calibrated.
# Each spec in SPECS is exec:grid:kind (kind cal -> set h200-gradcomp-codec[-graph]-<grid>-runNN,
# a calibration set; kind holdout -> h200-gradcomp-codec[-graph]-holdout[-<grid>]-runNN, only ever
# predicted); grid bert = run 48's grid (the default shapes), resnet = run 65's ResNet-50 shapes,
# other = shapes of VGG-16 and GPT-2 small that neither grid has.
# codec-check (23 checks) runs first; nothing is timed unless it passes. With STEPS=1 (run 70 on)
# the single-GPU training steps of runs 59-60 follow (BERT b32/b16 s128, GPT-2 b8 s512, every
# compressor, buckets 25 MB and 5 MB, local reduction of world 2): set h200-gradcomp-holdout-runNN.
# With DDP=1 (run 77 on, kind nvidia-h200-x2) DDP hold-out steps on both GPUs follow (run 49's
# protocol; PowerSGD rank 4 and the baseline, full link and 10 Gb/s): set h200x2-gradcomp-holdout-runNN.
# Usage: mkdir -p /tmp/g && cp validation/scripts/*.sh /tmp/g/ && \
#   xz -dc gpu-bin/perfcast-gpu.xz > /tmp/g/perfcast-gpu && chmod +x /tmp/g/perfcast-gpu && \
#   RUN=run66 SPECS="graph:bert:holdout eager:bert:holdout graph:resnet:cal eager:resnet:cal" \
#   PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run66.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:?}
SPECS=${SPECS:?}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
export NCCL_NVLS_ENABLE=0
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
RESNET=147x64,576x64,64x256,1152x128,128x512,2304x256,256x1024,4608x512,512x2048,2048x1000,1x65536,1x3000000
OTHER=27x64,576x128,1152x256,2304x512,4096x4096,4096x1000,768x2304,2304x768,50257x768,1x131072,1x2000000
{
lscpu | grep -E "Model name|^Model:|^CPU\(s\)" || true
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 150 $B gradcomp codec-check --seed 1; then
  for spec in $SPECS; do
    IFS=: read -r EXEC GRID KIND <<< "$spec"
    case $GRID in bert) SH="";; resnet) SH="--shapes $RESNET";; other) SH="--shapes $OTHER";; *) echo "bad grid $GRID"; continue;; esac
    if [ "$EXEC" = graph ]; then PRE=h200-gradcomp-codec-graph; ITERS=20; else PRE=h200-gradcomp-codec; ITERS=10; fi
    if [ "$KIND" = cal ]; then SET=$PRE-$GRID-$RUN; elif [ "$GRID" = bert ]; then SET=$PRE-holdout-$RUN; else SET=$PRE-holdout-$GRID-$RUN; fi
    echo "codec-micro $spec -> $SET $(date -u +%FT%TZ)"
    CUDA_VISIBLE_DEVICES=0 timeout 200 $B gradcomp codec-micro --codec-exec $EXEC $SH --keep-pool 0 --warmup 2 --repeats 7 --iters $ITERS --seed 1 --set $SET --out "$OUT" | grep -E "host|codec-micro:" || echo "CODEC-MICRO $spec rc=$?"
  done
  if [ "${STEPS:-0}" = 1 ]; then
    echo "steps $(date -u +%FT%TZ)"
    M="none,fp16,bf16,powersgd:rank=4,topk:density=0.01,randomk:density=0.01,signsgd,qsgd:bits=8"
    for mb in "bert 128 32" "bert 128 16" "gpt2 512 8"; do
      set -- $mb
      CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp step --model $1 --seq $2 --batch $3 --method "$M" --bucket-bytes 26214400,5242880 --world 2 --warmup 2 --repeats 5 --set h200-gradcomp-holdout-$RUN --out "$OUT" | tail -1 || echo "STEP $mb rc=$?"
    done
  fi
  if [ "${DDP:-0}" = 1 ]; then
    # Run 77 on (kind nvidia-h200-x2): DDP hold-out steps on both GPUs, run 49's protocol, for
    # PowerSGD (its fused kernels) and the uncompressed baseline, at the full link and 10 Gb/s.
    R="--warmup 2 --repeats 5"
    for LINK in "" "--link-gbps 10"; do
      for mb in "bert 128 32 60" "gpt2 512 8 90"; do
        set -- $mb
        for m in none powersgd:rank=4; do
          echo "ddp $1 $m link='$LINK' $(date -u +%FT%TZ)"
          timeout $4 $B gradcomp ddp --model $1 --seq $2 --batch $3 --method $m --bucket-bytes 26214400 --overlap 1 --nocomm 1 $LINK $R --set h200x2-gradcomp-holdout-$RUN --out "$OUT" 2>&1 | grep -v "^ *[0-9]*: *0x\|^ *at " | tail -3 || true
        done
      done
    done
  fi
else
  echo "CODEC CHECK FAILED: nothing timed"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
