#!/usr/bin/env bash
# Device call 16 (issue 13, one H200, a fresh machine): the freeze hold-out (freeze-holdout.sh, set
# h200-freeze-holdout-run16: configurations the validation set did not measure), after the model
# and its calibration (h200-freeze-micro-run15) were fixed and committed (f8534a4), pinned to host
# cores as run 15. Usage from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz \
#     traces/corpus-cpython-3.11.7-lib.py.txt /tmp/g/ && PERFCAST_COMMIT=<hash> bash /tmp/g/run16.sh
set -u
FINAL_OUT=${OUT:?}
export OUT=/tmp/res16
mkdir -p "$OUT"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
export B CORPUS O
SET=h200-freeze-holdout-run16 PIN="taskset -c 2-5" timeout 400 bash "$HERE/freeze-holdout.sh" 2>&1 | tee "$OUT/log-freeze-holdout.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv >> "$OUT/log-freeze-holdout.txt"
tar czf "$FINAL_OUT/run16.tar.gz" -C "$OUT" .
ls -la "$OUT"
