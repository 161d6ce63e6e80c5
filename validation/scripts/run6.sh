#!/usr/bin/env bash
# Device call C (CUDA-graph execution, a fresh machine): check, then the first synthetic e2e
# command of run5.sh again (val-t8b + val-d4-h1024, prompt 512) and val-t1b + val-d2-h1024, as a
# hold-out set from a machine that contributed no forward measurement to the calibration.
source "$(dirname "$0")/env.sh"
{
timeout 60 $B check || echo "CHECK FAILED rc=$?"
S="--set h200g-e2e-synthetic-m2 --out $O --accept synthetic --warmup 1 --repeats 3"
timeout 70 $B e2e --target val-t8b --drafts val-d4-h1024 --gammas 1,2,3,4,6,8 --batches 1,4,16,32 --prompt 512 --new-tokens 64 $S || echo "E2E1 rc=$?"
timeout 30 $B e2e --target val-t1b --drafts val-d2-h1024 --gammas 1,3,6 --batches 1,16 --prompt 512 --new-tokens 64 --probs 0.95,0.9,0.8,0.6,0.5,0.4 $S || echo "E2E4 rc=$?"
echo "run6 done $(date -u +%FT%TZ)"
} 2>&1 | tee "$O/log-run6.txt"
