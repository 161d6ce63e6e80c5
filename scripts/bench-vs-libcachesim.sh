#!/usr/bin/env bash
# Whole-process time of `perfcast embcache` against libCacheSim's Python binding (0.3.5) on the
# same 10 M-access oracleGeneral file (Zipf 1.0 over 1 M rows, written by `perfcast embcache
# trace-gen`), LRU and Belady with 100 000 rows; checks both report the same misses and prints
# perfcast's speedup (libCacheSim seconds / perfcast seconds), by wall clock and by CPU time
# (user + system: on a shared machine the wall clock measures the neighbours too).
#
#   python3 -m venv /tmp/lcs-venv && /tmp/lcs-venv/bin/pip install libcachesim==0.3.5
#   PERFCAST_PYTHON=/tmp/lcs-venv/bin/python scripts/bench-vs-libcachesim.sh
#
# Env: PERFCAST_PYTHON (a python with libcachesim; required), PERFCAST (binary; default: build
# target/release/perfcast), ACCESSES (default 10000000), CACHE (rows, default 100000),
# LCS_MODE (process_trace: the binding's C loop, default; loop: a Python loop of cache.get).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PERFCAST_PYTHON:?set PERFCAST_PYTHON to a python with libcachesim==0.3.5}
ACCESSES=${ACCESSES:-10000000}
CACHE=${CACHE:-100000}
LCS_MODE=${LCS_MODE:-process_trace}
if [ -z "${PERFCAST:-}" ]; then
  cargo build --release -q -p perfcast
  PERFCAST=${CARGO_TARGET_DIR:-target}/release/perfcast
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trace="$tmp/zipf.oracleGeneral"
"$PERFCAST" embcache trace-gen --zipf 1.0 --rows 1000000 --accesses "$ACCESSES" --seed 7 \
  --out "$trace" > /dev/null
cat > "$tmp/lcs.py" <<'PY'
import sys, time, libcachesim as lcs
path, name, cap, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
assert lcs.__version__ == "0.3.5", lcs.__version__
r = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
c = getattr(lcs, name)(cache_size=cap)
if mode == "loop":
    n = m = 0
    for req in r:
        n += 1
        m += not c.get(req)
else:
    ratio, _ = c.process_trace(r)
    n = r.get_num_of_req()
    m = round(ratio * n)
print(n, m)
PY
# Wall and CPU (user + system) seconds of each whole process, from GNU time.
timed() { /usr/bin/time -f '%e %U %S' -o "$tmp/time" "$@"; read -r w u s < "$tmp/time"; }
printf '%-8s %10s %10s %10s %10s %10s %12s %12s\n' policy misses perfcast_s lcs_s speedup \
  perf_cpu_s lcs_cpu_s cpu_speedup
for pol in lru belady; do
  case $pol in lru) lname=LRU ;; belady) lname=Belady ;; esac
  timed "$PERFCAST" --format json embcache --trace "$trace" --policy "$pol" --cache "$CACHE" > "$tmp/p.json"
  pw=$w; pc=$(python3 -c "print($u + $s)")
  timed "$PY" "$tmp/lcs.py" "$trace" "$lname" "$CACHE" "$LCS_MODE" > "$tmp/l.txt"
  lw=$w; lc=$(python3 -c "print($u + $s)")
  read -r n lm < "$tmp/l.txt"
  pm=$(python3 -c "import json; r=json.load(open('$tmp/p.json')); r=r[0] if isinstance(r,list) else r; print(r['misses'])")
  python3 -c "
print('%-8s %10s %10.2f %10.2f %9.1fx %10.2f %10.2f %11.1fx' % ('$pol', '$pm', $pw, $lw, $lw / $pw, $pc, $lc, $lc / $pc))"
  if [ "$pm" != "$lm" ]; then
    echo "misses differ for $pol: perfcast $pm, libCacheSim $lm" >&2
    exit 1
  fi
done
