#!/usr/bin/env bash
# Device call 23 (issues 15 and 13, kind nvidia-h200-x2, a fresh machine).
# (1) gradcomp hold-out, measured after the graph-timed collective calibration (run 22's
#     h200x2-nccl-graph-run22 / -ch1-graph-run22) and the exposed-communication scoring were
#     committed: codec-check; NCCL sweeps timed as CUDA graphs (default transport and one
#     channel; sets named `holdout`, which calibrate never fits) and the host-issued loop side by
#     side; DDP BERT b32 s128 and GPT-2 b8 s512 behind emulated 2–50 GB/s links, with
#     no-communication twins at 2 and 5 GB/s (where exposed communication is large enough to
#     score).
# (2) freeze calibration: the micro-measurements of all eight shapes with the harness pinned to
#     ONE host core (run 22's diagnostic: with one core the host-bound bf16 b16 s128 shape ran
#     at one speed, micro iteration 64.6 / 63.4 ms against e2e 64.3 ms; with four cores, runs
#     10–16 switched between two speeds).
# Results go to $OUT/run23 and are packed into one archive at the end (a call returns at most
# 8 files; run 22 lost five). NVLink multicast off. Usage from the repository root:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz \
#     traces/corpus-cpython-3.11.7-lib.py.txt /tmp/g/ && PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run23.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run23}
export OUT=$FINAL_OUT/$RUN
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
SW="--ops allreduce,allgather --min-bytes 1024 --max-bytes 536870912 --step-factor 2 --warmup 5 --iters 20 --repeats 5"
{
nvidia-smi topo -m
lscpu | grep -E "Model name|^CPU\(s\)" || true
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
  echo "nccl $(date -u +%FT%TZ)"
  timeout 60 $B nccl-sweep $SW --timing graph --set h200x2-nccl-graph-holdout-$RUN --out "$OUT" || echo "NCCL-GRAPH rc=$?"
  NCCL_MAX_NCHANNELS=1 timeout 60 $B nccl-sweep $SW --timing graph --set h200x2-nccl-ch1-graph-holdout-$RUN --out "$OUT" || echo "NCCL-CH1-GRAPH rc=$?"
  timeout 60 $B nccl-sweep $SW --timing host --set h200x2-nccl-host-holdout-$RUN --out "$OUT" || echo "NCCL-HOST rc=$?"
  for g in 2 5 10 20 50; do
    echo "link $g GB/s $(date -u +%FT%TZ)"
    NC=0; if [ $g -le 5 ]; then NC=1; fi
    timeout 80 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,fp16,powersgd:rank=4,topk:density=0.01,signsgd --bucket-bytes 26214400 --overlap 1 --nocomm $NC --link-gbps $g $R --set h200x2-gradcomp-link-$RUN --out "$OUT" || echo "DDP-BERT-LINK $g rc=$?"
    timeout 80 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method none,fp16,powersgd:rank=4,topk:density=0.01 --bucket-bytes 26214400 --overlap 1 --nocomm $NC --link-gbps $g $R --set h200x2-gradcomp-link-$RUN --out "$OUT" || echo "DDP-GPT2-LINK $g rc=$?"
  done
else
  echo "CODEC CHECK FAILED: no gradcomp timing"
fi
echo "freeze micro $(date -u +%FT%TZ)"
CUDA_VISIBLE_DEVICES=0 timeout 45 taskset -c 3 $B freeze check || echo "FREEZE CHECK FAILED rc=$?"
CUDA_VISIBLE_DEVICES=0 timeout 120 taskset -c 3 $B freeze micro --model val-bert-base --classes 32 --batches 16,32 --seqs 128,256 --dtypes bf16,f32 --warmup 2 --repeats 7 --set h200-freeze-micro-$RUN --out "$OUT" || echo "FREEZE-MICRO rc=$?"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tgz" -C "$OUT" . && ls -la "$OUT" && rm -rf "$OUT"
