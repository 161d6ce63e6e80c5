#!/usr/bin/env bash
# Peak RSS and wall time of `perfcast run` on an embcache scenario whose trace is generated
# (Zipf 1.05 over one table of ROWS rows, ACCESSES lookups, batch BATCH): the study streams the
# trace for every point (state per distinct row, lookahead's window), so its peak RSS should not
# grow with ACCESSES; a study that loads the trace keeps ≥ 4 bytes per access (8 more per batch).
# scripts/bench-results.md has the numbers before and after the study streamed.
#
#   scripts/bench-study-memory.sh                          # 1e7 accesses, the policies below
#   ACCESSES=1e6 POLICIES='"lru", "belady"' scripts/bench-study-memory.sh
#
# Env: PERFCAST (binary; default: build target/release/perfcast), ACCESSES (default 1e7), ROWS
# (default 1000000), BATCH (samples, default 1), WINDOW (lookahead, default 2), POLICIES (a TOML
# list body; default all six policies), CACHES (a TOML list body; default "1%", "10%" of the
# table). Prints: accesses, output rows (policies × caches), peak_rss_mib, wall_s. Needs GNU time
# at /usr/bin/time. The study spools the trace's dense rows to the OS temp dir ($TMPDIR), 4 bytes
# per access, and Belady and lookahead their next uses, 4 bytes per access per point in flight.
set -euo pipefail
cd "$(dirname "$0")/.."
ACCESSES=${ACCESSES:-1e7}
ROWS=${ROWS:-1000000}
BATCH=${BATCH:-1}
WINDOW=${WINDOW:-2}
POLICIES=${POLICIES:-'"lru", "fifo", "lfu", "static-topk", "belady", "lookahead"'}
CACHES=${CACHES:-'"1%", "10%"'}
if [ -z "${PERFCAST:-}" ]; then
  cargo build --release -q -p perfcast
  PERFCAST=${CARGO_TARGET_DIR:-target}/release/perfcast
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
m=$(python3 -c "print(int(float('$ACCESSES')))")
cat > "$tmp/s.toml" <<TOML
name = "bench-study-memory"
seed = 1
[[study]]
name = "ec"
technique = "embcache"
zipf = 1.05
rows = $ROWS
accesses = $m
batch = $BATCH
window = $WINDOW
policy = [$POLICIES]
[study.sweep]
cache = [$CACHES]
TOML
/usr/bin/time -f '%e %M' -o "$tmp/time" "$PERFCAST" run --quiet "$tmp/s.toml" --out "$tmp/out" > /dev/null
read -r wall kib < "$tmp/time"
out_rows=$(($(wc -l < "$tmp/out/ec.csv") - 1))
printf '%-12s %8s %14s %10s\n' accesses rows peak_rss_mib wall_s
python3 -c "print('%-12d %8d %14.0f %10.1f' % ($m, $out_rows, $kib/1024, $wall))"
