#!/usr/bin/env bash
# Device call F (fresh machine, after the per-architecture refits were fixed): a hold-out for the
# byte-level family. Trains the target and drafts as run4 did (same commands), then
# real-acceptance and LayerSkip e2e runs at configurations run4 did not measure: prompt 200,
# 64 new tokens, γ 2/5/7, batches 2/4/16/24. Nothing here enters `perfcast calibrate`.
source "$(dirname "$0")/env.sh"
W=/tmp/w
{
timeout 60 $B check || echo "CHECK FAILED rc=$?"
timeout 170 $B train --model val-rt24-h1024 --corpus "$CORPUS" --secs 130 --max-steps 100000 --batch 32 --seq 256 --lr 1e-3 --warmup 100 --exits 6,12 --exit-weight 0.5 --save $W || echo "TRAIN-T rc=$?"
timeout 60 $B train --model val-rd2-h512 --corpus "$CORPUS" --secs 30 --max-steps 100000 --batch 32 --seq 256 --lr 2e-3 --warmup 100 --save $W --seed 2 || echo "TRAIN-D1 rc=$?"
timeout 60 $B train --model val-rd4-h768 --corpus "$CORPUS" --secs 35 --max-steps 100000 --batch 32 --seq 256 --lr 1.5e-3 --warmup 100 --save $W --seed 3 || echo "TRAIN-D2 rc=$?"
R="--weights $W --corpus $CORPUS --accept greedy --warmup 1 --repeats 3 --prompt 200 --new-tokens 64 --gammas 2,5,7 --batches 2,4,16,24"
timeout 90 $B e2e --target val-rt24-h1024 --drafts val-rd2-h512,val-rd4-h768 --set h200g-e2e-holdout-real --out "$O" $R || echo "E2E-REAL rc=$?"
timeout 90 $B e2e --target val-rt24-h1024 --drafts layerskip:E=6,layerskip:E=12 --set h200g-e2e-holdout-layerskip --out "$O" $R || echo "E2E-LS rc=$?"
echo "run9 done $(date -u +%FT%TZ)"
} 2>&1 | tee "$O/log-run9.txt"
