#!/usr/bin/env bash
# Builds and runs perfcast's libFuzzer targets on the STABLE toolchain (no cargo-fuzz, no nightly):
# the fuzz crate is built by plain cargo with the coverage instrumentation cargo-fuzz would add
# (SanitizerCoverage through `-Cpasses=sancov-module`, stable codegen options; on perfcast's own
# crates, see rustc-sancov.sh) and without a sanitizer; overflow checks and debug assertions come
# from the `fuzz` profile in Cargo.toml.
#
#   fuzz/fuzz.sh build                      # build every target
#   fuzz/fuzz.sh run TARGET SECONDS [ARGS]  # fuzz one target from its committed seed corpus
#   fuzz/fuzz.sh ci SECONDS                 # build, then fuzz every target SECONDS each (CI)
#
# New inputs are kept in fuzz/corpus-new/TARGET (git-ignored), crashes in fuzz/artifacts/TARGET.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
targets=(scenario trace catalog measure_csv)
triple="$(rustc -vV | sed -n 's/^host: //p')"
# The repository's target/ unless CARGO_TARGET_DIR says otherwise (the fuzz profile and the
# explicit --target keep these artifacts apart from the ordinary builds).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/../target}"
target_dir="$CARGO_TARGET_DIR"
bin_dir="$target_dir/$triple/fuzz"
# Coverage instrumentation for perfcast's crates only (rustc-sancov.sh); `--cfg fuzzing` for all.
export RUSTFLAGS="${RUSTFLAGS:-} --cfg fuzzing"
export RUSTC_WRAPPER="$here/rustc-sancov.sh"

build() {
  # clippy-driver compiles the fuzz crate itself (cargo clippy's own mechanism), so the targets
  # are linted (`#![deny(warnings)]` in each) by the build that makes them, at no extra cost.
  local clippy
  clippy="$(command -v clippy-driver || true)"
  if [[ -n "$clippy" ]]; then
    export RUSTC_WORKSPACE_WRAPPER="$clippy"
  fi
  # --target keeps RUSTFLAGS off build scripts and proc macros (as cargo-fuzz does).
  cargo build --locked --profile fuzz --target "$triple" --bins
}

run() {
  local t="$1" secs="$2"
  shift 2
  mkdir -p "corpus-new/$t" "artifacts/$t"
  # The targets' scratch files (the trace files they hand the readers) go to /dev/shm when it is
  # writable (a file write per input: a quarter of the trace target's time on a disk), else under
  # target/.
  local base="$target_dir/fuzz-tmp"
  if [[ -d /dev/shm && -w /dev/shm ]]; then base=/dev/shm/perfcast-fuzz; fi
  local tmp="$base/$t.$$"
  mkdir -p "$tmp"
  # Input size bound: 8 KiB, but 2 KiB for trace (up to ~1000 accesses: past every cache size
  # it checks, ≤ 64 rows and all rows; the invariant checker costs O(capacity) per access, so an
  # 8 KiB trace ran at 2,100 exec/s, a 2 KiB one at 3,500). A later -max_len in ARGS wins.
  local max_len=8192
  if [[ "$t" == trace ]]; then max_len=2048; fi
  # Seeds are read from corpus/T; what libFuzzer finds goes to the first directory, corpus-new/T.
  TMPDIR="$tmp" "$bin_dir/$t" "corpus-new/$t" "corpus/$t" -max_total_time="$secs" -max_len="$max_len" \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="artifacts/$t/" -print_final_stats=1 "$@"
  rm -rf "$tmp"
}

case "${1:-}" in
  build) build ;;
  run) [[ $# -ge 3 ]] || { echo "usage: fuzz.sh run TARGET SECONDS [libFuzzer args]" >&2; exit 2; }
       shift; run "$@" ;;
  ci) [[ $# -eq 2 ]] || { echo "usage: fuzz.sh ci SECONDS" >&2; exit 2; }
      build
      for t in "${targets[@]}"; do run "$t" "$2"; done ;;
  *) echo "usage: fuzz.sh build | run TARGET SECONDS [ARGS] | ci SECONDS" >&2; exit 2 ;;
esac
