#!/usr/bin/env bash
# Device call 47 (issue 19; CPU only, nothing on the GPU): the long libFuzzer runs of the two
# targets that did not reach 10 M executions on the 2-core dev machine (`trace`, `scenario`),
# here on the lent machine's cores after every GPU measurement of the session. The binaries are
# fuzz/fuzz.sh's builds of the merged tree (stable toolchain, SanitizerCoverage, overflow checks
# and debug assertions from the `fuzz` profile), carried gzipped in gpu-bin/fuzz/. libFuzzer's
# -jobs/-workers run one process per core from the committed seeds (fuzz/corpus/TARGET), each
# with -runs = ceil(10 M / cores); the sum of their stat::number_of_executed_units is the run's
# executions. Arguments as fuzz.sh passes them (-max_len 2048 for trace, 8192 otherwise;
# -timeout=10, -rss_limit_mb=2048). Crashes would land in artifacts/TARGET (listed in the log).
# Usage from the repository root with gpu-bin (fuzz/trace.gz, fuzz/scenario.gz) carried:
#   OUT=... REPO=$PWD bash validation/scripts/run47.sh   (TARGETS="scenario" SECS=300 RUN=run48: one target, a longer cap)
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run47}
REPO=${REPO:-$PWD}
OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
N=$(nproc)
SECS=${SECS:-230}
{
lscpu | grep -E "Model name|^CPU\(s\)" || true
echo "cores $N, seconds per target at most $SECS, $(date -u +%FT%TZ)"
for t in ${TARGETS:-trace scenario}; do
  W=/tmp/fz/$t
  mkdir -p "$W/new" "$W/artifacts" "$W/tmp"
  gunzip -c "$REPO/gpu-bin/fuzz/$t.gz" > "$W/bin" && chmod +x "$W/bin"
  per=$(( (10000000 + N - 1) / N ))
  maxlen=8192; [ "$t" = trace ] && maxlen=2048
  base=/tmp; [ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
  mkdir -p "$base/fz-$t"
  echo "== $t: $N jobs x $per runs, start $(date -u +%FT%TZ)"
  (cd "$W" && TMPDIR="$base/fz-$t" ./bin new "$REPO/fuzz/corpus/$t" -max_len=$maxlen -timeout=10 \
     -rss_limit_mb=2048 -artifact_prefix="$W/artifacts/" -print_final_stats=1 -runs=$per \
     -max_total_time=$SECS -jobs=$N -workers=$N > "$W/driver.log" 2>&1)
  echo "== $t: end $(date -u +%FT%TZ)"
  total=0
  for f in "$W"/fuzz-*.log; do
    x=$(grep -a "stat::number_of_executed_units" "$f" | awk '{print $2}' | tail -1)
    total=$((total + ${x:-0}))
  done
  echo "$t: executions (sum over $(ls "$W"/fuzz-*.log | wc -l) jobs) $total"
  echo "$t: crash/timeout/oom artifacts: $(ls "$W/artifacts" | wc -l)"
  ls "$W/artifacts" | head
  grep -a -h "stat::average_exec_per_sec" "$W"/fuzz-*.log | awk '{s+=$2} END {print "'$t': exec/s summed over jobs", s}'
  grep -a -l "ERROR\|panicked\|deadly signal" "$W"/fuzz-*.log | head -3
  cp "$W/fuzz-0.log" "$OUT/fuzz-$t-job0.log" 2>/dev/null
  mkdir -p "$OUT/artifacts-$t" && cp "$W"/artifacts/* "$OUT/artifacts-$t/" 2>/dev/null
done
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
