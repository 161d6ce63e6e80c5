#!/usr/bin/env bash
# Device call 2: train a byte-level target (with LayerSkip early-exit losses at layers 6 and 12)
# and two drafts on the corpus, then real-acceptance and LayerSkip end-to-end runs. Weights stay
# on the device host (/tmp/w) and are lost with it.
source "$(dirname "$0")/env.sh"
W=/tmp/w
{
timeout 40 $B check || echo "CHECK FAILED rc=$?"
timeout 200 $B train --model val-rt24-h1024 --corpus "$CORPUS" --secs 150 --max-steps 100000 --batch 32 --seq 256 --lr 1e-3 --warmup 100 --exits 6,12 --exit-weight 0.5 --save $W || echo "TRAIN-T rc=$?"
timeout 60 $B train --model val-rd2-h512 --corpus "$CORPUS" --secs 35 --max-steps 100000 --batch 32 --seq 256 --lr 2e-3 --warmup 100 --save $W --seed 2 || echo "TRAIN-D1 rc=$?"
timeout 60 $B train --model val-rd4-h768 --corpus "$CORPUS" --secs 40 --max-steps 100000 --batch 32 --seq 256 --lr 1.5e-3 --warmup 100 --save $W --seed 3 || echo "TRAIN-D2 rc=$?"
R="--weights $W --corpus $CORPUS --accept greedy --warmup 1 --repeats 3 --prompt 96 --new-tokens 128 --gammas 1,2,3,4,6,8 --batches 1,8,32"
timeout 110 $B e2e --target val-rt24-h1024 --drafts val-rd2-h512,val-rd4-h768 --set h200-e2e-real --out "$O" $R || echo "E2E-REAL rc=$?"
timeout 100 $B e2e --target val-rt24-h1024 --drafts layerskip:E=6,layerskip:E=12 --set h200-e2e-layerskip --out "$O" $R || echo "E2E-LS rc=$?"
echo "run2 done $(date -u +%FT%TZ)"
} 2>&1 | tee "$O/log-run2.txt"
