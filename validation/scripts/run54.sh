#!/usr/bin/env bash
# Device calls 54-56 (issue 14, kind nvidia-h200, FRESH machines): a diagnostic of the
# host-to-host spread of launch-bound codec calls (runs 49-53: 1.1-1.6x between H200 hosts for
# calls of 13-90 us, within 1% for GPU-bound ones; the affine probe does not track it). Per host:
# the CPU and GPU description (lscpu, the first CPU's cache and flags, kernel, the GPU's PCIe link,
# clocks, persistence and virtualization mode), then codec-micro (protocol of run 48: trimmed pool,
# 10 calls per repeat) for fp16, Top-k 1% and Random-k 1% into aside-runNN/ (not read by
# perfcast: a diagnostic, not a hold-out). Binary dd0e431. Usage (RUN=run54, run55, run56):
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     RUN=run54 PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run54.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run54}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT/aside-$RUN"
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
{
lscpu
grep -m1 -E "^cache size" /proc/cpuinfo || true
grep -m1 -E "^flags" /proc/cpuinfo | tr ' ' '\n' | grep -cE "." | sed 's/^/cpu flags: /' || true
uname -r
nvidia-smi -q | grep -E "Persistence Mode|Virtualization Mode|Host VGPU Mode|PCIe Generation|Max  *: |Current  *: |Link Width|Graphics  *: |Memory  *: |Addressing Mode" | head -30 || true
echo "codec-micro $(date -u +%FT%TZ)"
CUDA_VISIBLE_DEVICES=0 timeout 120 $B gradcomp codec-micro --keep-pool 0 --methods fp16,topk:density=0.01,randomk:density=0.01 --warmup 2 --repeats 7 --iters 10 --seed 1 --set h200-gradcomp-codec-diag-$RUN --out "$OUT/aside-$RUN" | grep -E "host|codec-micro:" || echo "CODEC-MICRO rc=$?"
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
