#!/usr/bin/env bash
# Device call 34 (issue 15, kind nvidia-h200-x2): why GPT-2 b8 s512 ran out of device memory with
# two NCCL communicators per rank in run 28 (BERT b32 s128 did not). Diagnostic only (no set is
# validated): device memory sampled every 200 ms (nvidia-smi) while GPT-2 PowerSGD runs with
# --overlap 1 (second communicator) and --overlap 0 (one), and BERT PowerSGD --overlap 1 for
# comparison; NCCL_DEBUG=WARN. Results in $OUT/run34 (one archive). Usage from the repo root:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run34.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run34}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=WARN
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 1 --repeats 2"
one() {
  local name=$1; shift
  nvidia-smi --query-gpu=timestamp,index,memory.used,memory.total --format=csv,noheader -lms 200 > "$OUT/mem-$name.csv" &
  local mon=$!
  echo "== $name $(date -u +%FT%TZ): $*"
  timeout 100 $B gradcomp ddp "$@" $R --set diag-$RUN --out "$OUT/rows" ; echo "rc=$?"
  kill $mon; wait $mon 2>/dev/null
  sort -t, -k3 -n "$OUT/mem-$name.csv" | awk -F, '{print $2, $3}' | sort -k2 -n | tail -2
}
{
one gpt2-psgd-ov1 --model gpt2 --seq 512 --batch 8 --method powersgd:rank=4 --bucket-bytes 26214400 --overlap 1 --nocomm 0
one gpt2-psgd-ov0 --model gpt2 --seq 512 --batch 8 --method powersgd:rank=4 --bucket-bytes 26214400 --overlap 0 --nocomm 0
one gpt2-none-ov1 --model gpt2 --seq 512 --batch 8 --method none --bucket-bytes 26214400 --overlap 1 --nocomm 0
one bert-psgd-ov1 --model bert --seq 128 --batch 32 --method powersgd:rank=4 --bucket-bytes 26214400 --overlap 1 --nocomm 0
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
