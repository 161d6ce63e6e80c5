#!/usr/bin/env bash
# Layer freezing on the H200 (issue 13): correctness check, micro-measurements (calibration set
# h200-freeze-micro), end-to-end runs (validation set h200-freeze-e2e), and a real fine-tuning
# run's gradient-norm trace and freeze timeline (h200-freeze-trace). Everything under $OUT.
#
# Budget (estimated from BERT-base at ~50–65 ms per full bf16/f32 iteration, frozen runs
# faster): check ~10 s, micro 8 shapes ~30 s, trace 3 epochs × 140 iterations ~25 s, e2e
# 8 shapes × 26 runs × 12 iterations ~130 s, PyTorch eager reference (freeze-torch-ref.py,
# un-frozen step at 3 shapes × 2 dtypes) ~20 s: about 4 minutes, each step capped by `timeout`
# (caps sum to 320 s; rows are flushed as they are measured, so a step cut short keeps its
# finished points: e2e runs bf16 before f32, seq 128 before 256).
# QUICK=1 runs the main shape only (bf16, batch 32, seq 128) in about a minute.
# Run 13 settings: SET_MICRO / SET_E2E name the sets, SKIP_TRACE=1 and SKIP_REF=1 skip the trace
# and the PyTorch reference (both committed from run 10), E2E_CAP raises the e2e time cap (s),
# PIN="taskset -c 2-5" pins the harness to four host cores (the small shapes are host-launch
# bound, and run 10's bf16 batch 16 seq 128 iterations switched between two speeds).
#
# Usage on the GPU host (next to perfcast-gpu[.gz], env.sh and the corpus):
#   OUT=/tmp/out bash freeze-gpu.sh            # or QUICK=1 OUT=... bash freeze-gpu.sh
# The CPU rehearsal of the same chain (tiny model): CPU=1 B=target/debug/perfcast-gpu \
#   CORPUS=traces/corpus-cpython-3.11.7-lib.py.txt OUT=/tmp/fz bash validation/scripts/freeze-gpu.sh
set -u
if [ "${CPU:-0}" = 1 ]; then
  # Rehearsal: tiny model, tiny shapes, on the CPU.
  O=${OUT:-/tmp/out}; mkdir -p "$O"
  G="--cpu"; M="--model val-bert-tiny --classes 8"
  SHAPES_MAIN="--batches 4 --seqs 16 --dtypes f32"
  SHAPES_ALL="--batches 4 --seqs 16,24 --dtypes f32,bf16"
  KS="0,1,2,3"; CKS="1,3"
  TRAIN="--batch 16 --seq 32 --dtype f32 --epochs 2 --max-samples 480 --lr 3e-3 --warmup 5 --policy autofreeze:interval=6"
  TM=${TM:-10}  # a debug build on a busy CPU is slow: stretch the caps
else
  source "$(dirname "$0")/env.sh"
  G=""; M="--model val-bert-base --classes 32"
  SHAPES_MAIN="--batches 32 --seqs 128 --dtypes bf16"
  SHAPES_ALL="--batches 16,32 --seqs 128,256 --dtypes bf16,f32"
  KS="0,1,2,3,4,5,6,7,8,9,10,11,12,13"; CKS="4,8,13"
  TRAIN="--batch 32 --seq 128 --dtype bf16 --epochs 3 --lr 1e-4 --warmup 20 --policy autofreeze:interval=35"
fi
TM=${TM:-1}
B=${B:-/tmp/perfcast-gpu}
CORPUS=${CORPUS:?corpus path}
if [ "${QUICK:-0}" = 1 ]; then SHAPES_ALL=$SHAPES_MAIN; fi
E2E="--corpus $CORPUS --ks $KS --cache-ks $CKS --tiers gpu,ram --epochs 3 --iters-per-epoch 4"
{
echo "freeze-gpu start $(date -u +%FT%TZ)"
timeout $((30 * TM)) $B $G freeze check || echo "FREEZE CHECK FAILED rc=$?"
SET_MICRO=${SET_MICRO:-h200-freeze-micro}; SET_E2E=${SET_E2E:-h200-freeze-e2e}; PIN=${PIN:-}
timeout $((90 * TM)) $PIN $B $G freeze micro $M $SHAPES_ALL --warmup 2 --repeats 7 --set $SET_MICRO --out "$O" || echo "FREEZE-MICRO rc=$?"
[ "${SKIP_TRACE:-0}" = 1 ] || timeout $((60 * TM)) $B $G freeze train $M --corpus "$CORPUS" $TRAIN --set h200-freeze-trace --out "$O" || echo "FREEZE-TRACE rc=$?"
if [ "${CPU:-0}" != 1 ] && [ "${SKIP_REF:-0}" != 1 ] && [ -x /opt/torch/.venv/bin/python ]; then
  timeout 40 /opt/torch/.venv/bin/python "$HERE/freeze-torch-ref.py" "$O" || echo "FREEZE-TORCH-REF rc=$?"
fi
timeout $((${E2E_CAP:-130} * TM)) $PIN $B $G freeze e2e $M $SHAPES_ALL $E2E --set $SET_E2E --out "$O" || echo "FREEZE-E2E rc=$?"
echo "freeze-gpu done $(date -u +%FT%TZ)"
} 2>&1 | tee "$O/log-freeze.txt"
