#!/usr/bin/env bash
# Device calls 10a/10b (issues 13 and 16, one H200): freeze (10a) or embcache (10b): the
# on-device correctness check, then the calibration micro-measurements and the end-to-end
# validation set. Usage on the GPU host, from the repository root, with the stripped cuda
# binary gzipped in gpu-bin/ (carried):
#   mkdir -p /tmp/g && cp validation/scripts/*.sh validation/scripts/*.py gpu-bin/perfcast-gpu.gz \
#     traces/corpus-cpython-3.11.7-lib.py.txt /tmp/g/ && REPO=$PWD bash /tmp/g/run10.sh freeze|embcache
# Results go to /tmp/res and come back as one tarball in $OUT (the device returns at most 8 files).
set -u
WHAT=${1:?freeze, embcache or freeze-holdout}
FINAL_OUT=${OUT:?}
export OUT=/tmp/res-$WHAT
mkdir -p "$OUT"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
export B
case "$WHAT" in
  freeze) timeout 540 bash "$HERE/freeze-gpu.sh" ;;
  embcache) timeout 540 bash "$HERE/embcache-gpu.sh" ;;
  freeze-holdout) timeout 400 bash "$HERE/freeze-holdout.sh" 2>&1 | tee "$OUT/log-freeze-holdout.txt" ;;
  *) echo "unknown: $WHAT"; exit 2 ;;
esac
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv >> "$OUT/log-nvidia-smi.txt"
tar czf "$FINAL_OUT/run10-$WHAT.tar.gz" -C "$OUT" .
ls -la "$OUT"
