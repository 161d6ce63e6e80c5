#!/usr/bin/env bash
# Device call 22 (issues 15 and 13, kind nvidia-h200-x2): the calibration host of the graph-timed
# collective curves, and a freeze host-pinning diagnostic.
# (1) gradcomp: codec-check; NCCL sweeps (all-reduce, all-gather, 1 KiB – 512 MiB) timed as
#     replayed CUDA graphs (device time, `--timing graph`: the new calibration of the collective
#     model) and, side by side on the same host, the host-issued loop of runs 11–18; the same for
#     one NCCL channel; then DDP steps behind emulated 2 and 5 GB/s links with their
#     no-communication twins (BERT b32 s128: none, fp16, PowerSGD r4, Top-k 1%, signSGD;
#     GPT-2 b8 s512: none, fp16, PowerSGD r4, Top-k 1%), where the exposed communication is
#     large enough to score (validation on the calibration host; the hold-out is the next call).
# (2) freeze diagnostic (GPU 0, one process at a time): bf16 batch 16 seq 128, the one
#     host-launch-bound shape whose iterations switched between two speeds in runs 10–16, with
#     the harness pinned to ONE host core (runs 15–16 pinned to four): its micro iteration rows
#     and fixed-k end-to-end runs, twice each, to see whether the two speeds persist.
# NVLink multicast off. Usage from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz \
#     traces/corpus-cpython-3.11.7-lib.py.txt /tmp/g/ && PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run22.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run22}
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
lscpu | grep -E "Model name|^CPU\(s\)|MHz" || true
echo "codec-check $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
  echo "nccl graph $(date -u +%FT%TZ)"
  timeout 60 $B nccl-sweep $SW --timing graph --set h200x2-nccl-graph-$RUN --out "$OUT" || echo "NCCL-GRAPH rc=$?"
  timeout 60 $B nccl-sweep $SW --timing host --set h200x2-nccl-host-$RUN --out "$OUT" || echo "NCCL-HOST rc=$?"
  NCCL_MAX_NCHANNELS=1 timeout 60 $B nccl-sweep $SW --timing graph --set h200x2-nccl-ch1-graph-$RUN --out "$OUT" || echo "NCCL-CH1-GRAPH rc=$?"
  for g in 2 5; do
    echo "link $g GB/s $(date -u +%FT%TZ)"
    timeout 80 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,fp16,powersgd:rank=4,topk:density=0.01,signsgd --bucket-bytes 26214400 --overlap 1 --nocomm 1 --link-gbps $g $R --set h200x2-gradcomp-exposed-$RUN --out "$OUT" || echo "DDP-BERT-LINK $g rc=$?"
    timeout 80 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method none,fp16,powersgd:rank=4,topk:density=0.01 --bucket-bytes 26214400 --overlap 1 --nocomm 1 --link-gbps $g $R --set h200x2-gradcomp-exposed-$RUN --out "$OUT" || echo "DDP-GPT2-LINK $g rc=$?"
  done
else
  echo "CODEC CHECK FAILED: no gradcomp timing"
fi
echo "freeze diagnostic $(date -u +%FT%TZ)"
mkdir -p "$OUT/freeze-diag"
M="--model val-bert-base --classes 32 --batches 16 --seqs 128 --dtypes bf16"
for i in 1 2; do
  CUDA_VISIBLE_DEVICES=0 timeout 40 taskset -c 3 $B freeze micro $M --warmup 2 --repeats 7 --set h200-freeze-diag-pin1-micro-$RUN --out "$OUT/freeze-diag" || echo "FREEZE-MICRO $i rc=$?"
  CUDA_VISIBLE_DEVICES=0 timeout 60 taskset -c 3 $B freeze e2e $M --corpus "$CORPUS" --ks 0,2,4,6,8,10,12 --tiers none --policies none --epochs 3 --iters-per-epoch 4 --seed 7 --set h200-freeze-diag-pin1-e2e-$RUN --out "$OUT/freeze-diag" || echo "FREEZE-E2E $i rc=$?"
done
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
ls -la "$OUT"
