#!/usr/bin/env bash
# Gradient compression on one H200 (issue 14, deliverable 3): calibration micro-measurements
# (per-unit forward/backward and AdamW times, set h200-gradcomp-micro) and end-to-end DDP steps
# with the collective replaced by a local reduction of the same bytes (comm=local, set
# h200-gradcomp-e2e), for the BERT-base encoder (seq 128) and the GPT-2-small decoder (seq 512),
# f32. Everything under $OUT.
#
# Budget (plain-f32 cuBLAS; BERT-base ~60–120 ms/step at batch 16–64, GPT-2 ~80–300 ms at batch
# 4–16; 3 warm-up + 10 timed steps per point; ~20 s of PTX JIT on a fresh host): layers ~25 s,
# baseline steps 2 models × 3 batches × 4 caps × 2 worlds ~100 s, codecs (METHODS, default none
# only) 2 models × |METHODS| × 2 caps ~4 s each: about 3 minutes with the baseline only. Every
# command under `timeout`; rows are flushed as measured.
#
# Usage on the GPU host (next to perfcast-gpu[.gz] and env.sh):
#   OUT=/tmp/out METHODS=none,fp16,powersgd:rank=4 bash gradcomp-gpu.sh
# CPU rehearsal (tiny models): CPU=1 B=target/debug/perfcast-gpu OUT=/tmp/gc bash validation/scripts/gradcomp-gpu.sh
set -u
if [ "${CPU:-0}" = 1 ]; then
  O=${OUT:-/tmp/out}; mkdir -p "$O"; G="--cpu"
  BERT="--model val-bert-tiny --seq 16"; GPT="--model val-gpt2-tiny --seq 16"
  BB="2,4"; GB="2,4"; BMID=2; GMID=2; CAPS="4096,26214400"; FIRST="--first-bucket-bytes 2048"
  TM=${TM:-10}
else
  source "$(dirname "$0")/env.sh"
  G=""; BERT="--model bert --seq 128"; GPT="--model gpt2 --seq 512"
  BB="16,32,64"; GB="4,8,16"; BMID=32; GMID=8; CAPS="1048576,5242880,26214400,104857600"; FIRST=""
  TM=1
fi
B=${B:-/tmp/perfcast-gpu}
METHODS=${METHODS:-none}
R="--warmup 3 --repeats 10"
{
echo "layers $(date -u +%FT%TZ)"
timeout $((60*TM)) $B $G gradcomp layers $BERT --batch $BB $R --set h200-gradcomp-micro --out "$O" || echo "LAYERS-BERT rc=$?"
timeout $((60*TM)) $B $G gradcomp layers $GPT --batch $GB $R --set h200-gradcomp-micro --out "$O" || echo "LAYERS-GPT2 rc=$?"
echo "baseline steps $(date -u +%FT%TZ)"
timeout $((90*TM)) $B $G gradcomp step $BERT --batch $BB --method none --bucket-bytes $CAPS $FIRST --world 2,8 $R --set h200-gradcomp-e2e --out "$O" || echo "STEP-BERT rc=$?"
timeout $((120*TM)) $B $G gradcomp step $GPT --batch $GB --method none --bucket-bytes $CAPS $FIRST --world 2,8 $R --set h200-gradcomp-e2e --out "$O" || echo "STEP-GPT2 rc=$?"
if [ "$METHODS" != none ]; then
  echo "codec steps $(date -u +%FT%TZ)"
  timeout $((300*TM)) $B $G gradcomp step $BERT --batch $BMID --method "$METHODS" --bucket-bytes 5242880,26214400 $FIRST --world 8 $R --set h200-gradcomp-e2e --out "$O" || echo "CODEC-BERT rc=$?"
  timeout $((300*TM)) $B $G gradcomp step $GPT --batch $GMID --method "$METHODS" --bucket-bytes 5242880,26214400 $FIRST --world 8 $R --set h200-gradcomp-e2e --out "$O" || echo "CODEC-GPT2 rc=$?"
fi
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$O/log-gradcomp-gpu.txt"
