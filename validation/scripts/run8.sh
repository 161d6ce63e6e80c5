#!/usr/bin/env bash
# Device call E: `check` (now with the speculative-sampling self-draft checks under eager and
# CUDA-graph execution), then speculative sampling vs greedy verification at the same
# configurations (random-weight val-t1b + val-d2-h1024, and LayerSkip on val-t1b), to measure what
# sampling costs. Written under smoke/: the latency model does not include the host-side sampling,
# so these runs are not a validation set.
source "$(dirname "$0")/env.sh"
mkdir -p "$O/smoke"
{
timeout 60 $B check || echo "CHECK FAILED rc=$?"
for a in greedy sample; do
  timeout 60 $B e2e --target val-t1b --drafts val-d2-h1024,layerskip:E=8 --gammas 2,4 --batches 1,8 --prompt 512 --new-tokens 64 --accept $a --set h200g-smoke-accept-$a --out "$O/smoke" --warmup 1 --repeats 3 || echo "E2E $a rc=$?"
done
echo "run8 done $(date -u +%FT%TZ)"
} 2>&1 | tee "$O/log-run8.txt"
