#!/usr/bin/env bash
# Device call A (CUDA-graph execution): correctness check, training of the byte-level target
# (LayerSkip early-exit losses at layers 6 and 12) and two drafts on the corpus, the forward grid
# of those three models, then real-acceptance and LayerSkip end-to-end runs, all on one machine.
# Weights stay on the device host (/tmp/w) and are lost with it.
source "$(dirname "$0")/env.sh"
W=/tmp/w
{
timeout 60 $B check || echo "CHECK FAILED rc=$?"
timeout 170 $B train --model val-rt24-h1024 --corpus "$CORPUS" --secs 130 --max-steps 100000 --batch 32 --seq 256 --lr 1e-3 --warmup 100 --exits 6,12 --exit-weight 0.5 --save $W || echo "TRAIN-T rc=$?"
timeout 60 $B train --model val-rd2-h512 --corpus "$CORPUS" --secs 30 --max-steps 100000 --batch 32 --seq 256 --lr 2e-3 --warmup 100 --save $W --seed 2 || echo "TRAIN-D1 rc=$?"
timeout 60 $B train --model val-rd4-h768 --corpus "$CORPUS" --secs 35 --max-steps 100000 --batch 32 --seq 256 --lr 1.5e-3 --warmup 100 --save $W --seed 3 || echo "TRAIN-D2 rc=$?"
timeout 100 $B forward --models val-rt24-h1024,val-rd2-h512,val-rd4-h768 --batches 1,2,4,8,16,32 --new-tokens 1,2,3,5,7,9 --contexts 96,160,256 --warmup 1 --repeats 4 --pipeline 6 --set h200g-forward-real --out "$O" || echo "FORWARD rc=$?"
R="--weights $W --corpus $CORPUS --accept greedy --warmup 1 --repeats 3 --prompt 96 --new-tokens 128 --gammas 1,2,3,4,6,8 --batches 1,8,32"
timeout 80 $B e2e --target val-rt24-h1024 --drafts val-rd2-h512,val-rd4-h768 --set h200g-e2e-real --out "$O" $R || echo "E2E-REAL rc=$?"
timeout 80 $B e2e --target val-rt24-h1024 --drafts layerskip:E=6,layerskip:E=12 --set h200g-e2e-layerskip --out "$O" $R || echo "E2E-LS rc=$?"
echo "run4 done $(date -u +%FT%TZ)"
} 2>&1 | tee "$O/log-run4.txt"
