#!/usr/bin/env bash
# Device call 39 (issues 15, kind nvidia-h200-x2, a fresh machine): the communication stream's
# priority. Runs 23/27/28 under-predicted plain DDP's exposed communication by a near-constant
# ~5-6 ms per BERT step (NVLink 4.6-8.0 ms measured vs 0.4 predicted; 5 and 10 GB/s ~6 ms over):
# the hypothesis is that each bucket's collective (and its link-emulation delay kernel) on a
# normal-priority side stream waits for the running compute kernels to drain before its blocks
# are scheduled. `--comm-priority high` gives the communication stream the context's greatest
# priority (PyTorch's is_high_priority_stream). Side by side in one run, per link: normal
# (aside, the harness as runs 19-28 measured it) and high (set h200x2-gradcomp-prio-$RUN).
# Also GPT-2 b8 s512 none + PowerSGD r4 (high), now that the DDP loop hands the pool's free
# memory back between points (run 34: GPT-2 PowerSGD with its twin filled the device).
# The DDP model, codec fit (run 18), layer profile (run 18) and collective calibration (run 22)
# are unchanged: a hold-out. Usage:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run39.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run39}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT/aside"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
SET=h200x2-gradcomp-prio-$RUN
{
nvidia-smi topo -m
lscpu | grep -E "Model name|^CPU\(s\)" || true
nvidia-smi --query-gpu=index,memory.used --format=csv,noheader -lms 500 > "$OUT/mem-$RUN.csv" &
MON=$!
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
  for LINK in "" "--link-gbps 5" "--link-gbps 10"; do
    echo "bert none link='$LINK' normal $(date -u +%FT%TZ)"
    timeout 60 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none --bucket-bytes 26214400 --overlap 1 --nocomm 1 --comm-priority normal $LINK $R --set h200x2-gradcomp-prionormal-$RUN --out "$OUT/aside" || echo "DDP-BERT-NORMAL '$LINK' rc=$?"
    echo "bert none link='$LINK' high $(date -u +%FT%TZ)"
    timeout 60 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none --bucket-bytes 26214400,5242880 --overlap 1 --nocomm 1 --comm-priority high $LINK $R --set $SET --out "$OUT" || echo "DDP-BERT-HIGH '$LINK' rc=$?"
  done
  for LINK in "" "--link-gbps 5"; do
    echo "gpt2 link='$LINK' high $(date -u +%FT%TZ)"
    timeout 100 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method none,powersgd:rank=4 --bucket-bytes 26214400 --overlap 1 --nocomm 1 --comm-priority high $LINK $R --set $SET --out "$OUT" 2>&1 | grep -v "^ *[0-9]*: *0x\|^ *at " || echo "DDP-GPT2 '$LINK' rc=$?"
  done
else
  echo "CODEC CHECK FAILED: no gradcomp timing"
fi
kill $MON
echo "peak memory per GPU (MiB): $(sort -t, -k2 -n "$OUT/mem-$RUN.csv" | tail -1)"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && rm -rf "$OUT"
