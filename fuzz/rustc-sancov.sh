#!/usr/bin/env bash
# RUSTC_WRAPPER of fuzz.sh: adds libFuzzer's coverage instrumentation (SanitizerCoverage, stable
# codegen flags, as cargo-fuzz passes them) to perfcast's own crates only, when compiled for the
# target (not build scripts). Dependencies (csv, toml, ...) stay uninstrumented: instrumenting
# them made the targets 5x slower (csv_core's DFA build dominated) for coverage of code that is
# not ours.
rustc="$1"
shift
case "${CARGO_PKG_NAME:-}" in
  perfcast | perfcast-measure | perfcast-fuzz)
    if [[ " $* " == *" --target "* ]]; then
      exec "$rustc" "$@" -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
        -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares
    fi
    ;;
esac
exec "$rustc" "$@"
