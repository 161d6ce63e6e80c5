#!/usr/bin/env bash
# Peak RSS and whole-process accesses/s of `perfcast embcache` on generated Criteo-like traces
# (Zipf 1.05 over the criteo-kaggle tables, 33.8 M rows, generated on the fly, never stored), per
# policy and trace length: the streaming simulator keeps state per distinct row, not per access.
#
#   scripts/bench-trace-memory.sh                  # 1e7 1e8 1e9 accesses, LRU and Belady
#   SIZES="1e7" POLICIES="lru fifo" scripts/bench-trace-memory.sh
#   SIZES="1e7 1e8" POLICIES="static-topk mrc" scripts/bench-trace-memory.sh
#
# A policy is any `--policy` name (static-topk streams too: a counting pass, a profiling pass,
# then the simulation), or `mrc`: `perfcast embcache mrc` (one streaming stack-distance pass; its
# `misses` column is the LRU misses at CACHE rows).
#
# Env: PERFCAST (binary; default: build target/release/perfcast), SIZES, POLICIES, CACHE (rows,
# default 100000), BATCH (samples, default 1), SOURCE (generator flags; default
# "--zipf 1.05 --profile criteo-kaggle"; e.g. "--zipf 1.0 --rows 1000000": a table small enough
# that the distinct rows stop growing, so bounded memory shows as a flat RSS). Prints one line per run:
#   accesses policy cache peak_rss_mib wall_s accesses_per_s misses
# Needs GNU time at /usr/bin/time. Belady spools 4 bytes per access to the OS temp dir ($TMPDIR):
# 4 GB at 1e9 (an unnamed file, gone when the process ends).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"1e7 1e8 1e9"}
POLICIES=${POLICIES:-"lru belady"}
CACHE=${CACHE:-100000}
BATCH=${BATCH:-1}
SOURCE=${SOURCE:-"--zipf 1.05 --profile criteo-kaggle"}
if [ -z "${PERFCAST:-}" ]; then
  cargo build --release -q -p perfcast
  PERFCAST=${CARGO_TARGET_DIR:-target}/release/perfcast
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-12s %-8s %-8s %12s %10s %16s %12s\n' accesses policy cache peak_rss_mib wall_s accesses_per_s misses
for n in $SIZES; do
  m=$(python3 -c "print(int(float('$n')))")
  for p in $POLICIES; do
    if [ "$p" = mrc ]; then
      # shellcheck disable=SC2086 # SOURCE is a list of flags
      /usr/bin/time -f '%e %M' -o "$tmp/time" "$PERFCAST" --format json embcache mrc $SOURCE \
        --accesses "$m" --batch "$BATCH" --sizes "$CACHE" > "$tmp/out.json"
    else
      # shellcheck disable=SC2086
      /usr/bin/time -f '%e %M' -o "$tmp/time" "$PERFCAST" --format json embcache $SOURCE \
        --accesses "$m" --batch "$BATCH" --policy "$p" --cache "$CACHE" > "$tmp/out.json"
    fi
    read -r wall kib < "$tmp/time"
    misses=$(python3 -c "import json,sys; r=json.load(open('$tmp/out.json')); r=r[0] if isinstance(r,list) else r; print(r['misses'])")
    python3 -c "print('%-12d %-8s %-8s %12.0f %10.1f %16.3e %12s' % ($m, '$p', '$CACHE', $kib/1024, $wall, $m/max($wall,1e-9), '$misses'))"
  done
done
