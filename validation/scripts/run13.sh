#!/usr/bin/env bash
# Device calls 13, 14 and 15 (issue 13, one H200; run 14: the page-locked ram tier; run 15: freed
# device memory kept in the pool, cli::keep_freed_memory): freeze re-measured after the micro `iter_s` rows moved
# onto the training loop itself (bench.rs): on-device check, the calibration micro-measurements
# (set h200-freeze-micro-run13) and the end-to-end validation set (h200-freeze-e2e-run13, all
# eight shapes: f32 too, which run 10 cut), the harness pinned to four host cores. Usage on the
# GPU host from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz \
#     traces/corpus-cpython-3.11.7-lib.py.txt /tmp/g/ && PERFCAST_COMMIT=<hash> bash /tmp/g/run13.sh
set -u
FINAL_OUT=${OUT:?}
export OUT=/tmp/res-${RUN:-run13}
mkdir -p "$OUT"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
export B CORPUS O
SKIP_TRACE=1 SKIP_REF=1 E2E_CAP=330 SET_MICRO=h200-freeze-micro-${RUN:-run13} SET_E2E=h200-freeze-e2e-${RUN:-run13} \
  PIN="taskset -c 2-5" timeout 560 bash "$HERE/freeze-gpu.sh"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv >> "$OUT/log-nvidia-smi.txt"
tar czf "$FINAL_OUT/${RUN:-run13}.tar.gz" -C "$OUT" .
ls -la "$OUT"
