#!/usr/bin/env bash
# Fragment for the H200 run script (issue 14, gradient codecs): the on-device codec check, then the
# micro-measurement set `h200-gradcomp-codec` (CSV under $OUT). Expects $B (the perfcast-gpu binary
# built with --features cuda) and $OUT, as env.sh sets them; sources env.sh when $B is unset.
# Expected: check 20-40 s, micro 15-40 s on one H200 (estimates from op counts, plus about 20 s of
# first-use kernel JIT; not yet measured); the timeouts bound the fragment at 4 minutes.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${B:-}" ]; then source "$HERE/env.sh"; fi
O=${OUT:-/tmp/out}
mkdir -p "$O"
echo "codec start $(date -u +%FT%TZ)"
# 1. Correctness before timing (BERT-base sizes). A failure leaves a marker file and the timing
#    still runs (its rows must then not be used).
timeout 120 $B gradcomp codec-check --seed 1 2>&1 | tee "$O/log-codec-check.txt"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then echo "CODEC CHECK FAILED rc=$rc" | tee "$O/codec-check-FAILED"; fi
# 2. Per-stage timings, collective excluded: every method x BERT-base matrices and flat buckets.
timeout 120 $B gradcomp codec-micro --warmup 3 --repeats 10 --iters 5 --seed 1 \
  --set h200-gradcomp-codec --out "$O" 2>&1 | tee "$O/log-codec-micro.txt"
rc=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] || echo "CODEC-MICRO rc=$rc"
echo "codec end $(date -u +%FT%TZ)"
