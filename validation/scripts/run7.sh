#!/usr/bin/env bash
# Device call D (CUDA-graph execution, a fresh machine): a hold-out of end-to-end configurations
# never measured before — new draft/target pairs, batches between the forward grid's (3, 6, 12,
# 24), new γ values and prompt lengths — to test the calibrated latency model away from the points
# its forward grid measured. Nothing here enters `perfcast calibrate` (e2e rows only).
source "$(dirname "$0")/env.sh"
{
timeout 60 $B check || echo "CHECK FAILED rc=$?"
S="--set h200g-e2e-holdout --out $O --accept synthetic --warmup 1 --repeats 3"
timeout 90 $B e2e --target val-t3b --drafts val-d8-h1536 --gammas 2,4,6 --batches 2,12,24 --prompt 1000 --new-tokens 64 --probs 0.85 $S || echo "E2E1 rc=$?"
timeout 90 $B e2e --target val-t1b --drafts val-d4-h1024 --gammas 1,3,5,7 --batches 1,6,24 --prompt 768 --new-tokens 64 $S || echo "E2E2 rc=$?"
timeout 60 $B e2e --target val-t8b --drafts val-d8-h1536 --gammas 3,5 --batches 3,12 --prompt 300 --new-tokens 64 --probs 0.9,0.8,0.7,0.6,0.5 $S || echo "E2E3 rc=$?"
echo "run7 done $(date -u +%FT%TZ)"
} 2>&1 | tee "$O/log-run7.txt"
