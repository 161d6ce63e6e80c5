#!/usr/bin/env bash
# Device call B (CUDA-graph execution): check, forward grid of the random-weight targets and
# drafts, then the synthetic-acceptance end-to-end runs, all on one machine.
source "$(dirname "$0")/env.sh"
{
timeout 60 $B check || echo "CHECK FAILED rc=$?"
timeout 260 $B forward --models val-t8b,val-t3b,val-t1b,val-d2-h1024,val-d4-h1024,val-d8-h1536 --batches 1,2,4,8,16,32 --new-tokens 1,2,3,5,7,9 --contexts 256,512,1024,1600 --warmup 1 --repeats 4 --pipeline 6 --set h200g-forward-synthetic --out "$O" || echo "FORWARD rc=$?"
S="--set h200g-e2e-synthetic --out $O --accept synthetic --warmup 1 --repeats 3"
timeout 70 $B e2e --target val-t8b --drafts val-d4-h1024 --gammas 1,2,3,4,6,8 --batches 1,4,16,32 --prompt 512 --new-tokens 64 $S || echo "E2E1 rc=$?"
timeout 35 $B e2e --target val-t8b --drafts val-d2-h1024 --gammas 2,4,8 --batches 1,8,32 --prompt 1536 --new-tokens 64 $S || echo "E2E2a rc=$?"
timeout 35 $B e2e --target val-t8b --drafts val-d8-h1536 --gammas 2,4,8 --batches 1,8,32 --prompt 1536 --new-tokens 64 $S || echo "E2E2b rc=$?"
timeout 35 $B e2e --target val-t3b --drafts val-d4-h1024 --gammas 1,2,4,8 --batches 1,8,32 --prompt 256 --new-tokens 64 --probs 0.7 $S || echo "E2E3 rc=$?"
timeout 30 $B e2e --target val-t1b --drafts val-d2-h1024 --gammas 1,3,6 --batches 1,16 --prompt 512 --new-tokens 64 --probs 0.95,0.9,0.8,0.6,0.5,0.4 $S || echo "E2E4 rc=$?"
echo "run5 done $(date -u +%FT%TZ)"
} 2>&1 | tee "$O/log-run5.txt"
