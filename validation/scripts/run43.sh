#!/usr/bin/env bash
# Device call 43 (issue 15, kind nvidia-h200-x2; a diagnostic, nothing validated): where do the
# ~4-6 ms of exposed communication per step that the DDP model lacks come from (runs 23-39, at
# every link speed, also for PowerSGD in order on the compute stream)? `--token-only 1` times the
# same steps with every collective moving ONE element (the ranks still meet at every collective,
# in the same order and streams) and the local tensors as results. If the token step exposes the
# same ~5 ms, the cost is the ranks' coupling (or the collectives' launches), not data movement.
# Side by side per point: the real step, its no-communication twin, the token step (with twin).
# Usage:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run43.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run43}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
{
lscpu | grep -E "Model name|^CPU\(s\)" || true
for LINK in "" "--link-gbps 5"; do
  for TOK in 0 1 0 1; do
    echo "bert none link='$LINK' token=$TOK $(date -u +%FT%TZ)"
    timeout 60 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none --bucket-bytes 26214400 --overlap 1 --nocomm 1 --token-only $TOK $LINK $R --set h200x2-gradcomp-token-$RUN --out "$OUT" || echo "DDP-BERT '$LINK' $TOK rc=$?"
  done
done
for TOK in 0 1; do
  echo "gpt2 powersgd token=$TOK $(date -u +%FT%TZ)"
  timeout 100 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method powersgd:rank=4 --bucket-bytes 26214400 --overlap 1 --nocomm 1 --token-only $TOK $R --set h200x2-gradcomp-token-$RUN --out "$OUT" 2>&1 | grep -v "^ *[0-9]*: *0x\|^ *at " || echo "DDP-GPT2 $TOK rc=$?"
done
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
