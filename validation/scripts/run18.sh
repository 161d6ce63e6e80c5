#!/usr/bin/env bash
# Device call 18 (issues 14 and 15, kind nvidia-h200-x2): the gradcomp calibration and validation
# sets after run 17's fixes (QSGD check, radix-select Top-k, DDP overlap on one CUDA context with
# decodes after backward). Correctness checks run before anything is timed:
# (1) codec-check (every compressor at real sizes) then codec-micro (codec calibration rows);
# (2) per-unit layer and optimizer micro rows (BERT b16/b32 s128, GPT-2 b4/b8 s512; GPU 0);
# (3) NCCL sweep, all-reduce and all-gather, default transport and one channel (the collective
#     calibration of this machine);
# (4) single-GPU steps with the collective replaced by a local reduction: BERT b32/b16 and GPT-2
#     b8, every compressor, 25 MiB and 5 MiB buckets (GPU 0);
# (5) DDP over NCCL on both GPUs (every rank bit-identical to rank 0 after the uncompressed step,
#     checked before timing), with the no-communication twin of every point: BERT b32 and GPT-2 b8
#     with overlap, BERT b32 in order, and BERT b32 with one NCCL channel and without P2P
#     (emulated slower links). NVLink multicast off.
# Usage from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ \
#     && PERFCAST_COMMIT=<hash> bash /tmp/g/run18.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run18}
export OUT=/tmp/res-$RUN
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
M="none,fp16,bf16,powersgd:rank=4,topk:density=0.01,randomk:density=0.01,signsgd,qsgd:bits=8"
SW="nccl-sweep --ops allreduce,allgather --min-bytes 1024 --max-bytes 536870912 --step-factor 2 --warmup 5 --iters 20 --repeats 5"
{
nvidia-smi topo -m
echo "codec $(date -u +%FT%TZ)"
if CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
  CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-micro --warmup 2 --repeats 7 --iters 3 --seed 1 --set h200-gradcomp-codec-$RUN --out "$OUT" || echo "CODEC-MICRO rc=$?"
else
  echo "CODEC CHECK FAILED: codecs not timed"
fi
echo "layers $(date -u +%FT%TZ)"
for mb in "bert 128 32" "bert 128 16" "gpt2 512 8" "gpt2 512 4"; do
  set -- $mb
  CUDA_VISIBLE_DEVICES=0 timeout 40 $B gradcomp layers --model $1 --seq $2 --batch $3 $R --set h200-gradcomp-micro-$RUN --out "$OUT" || echo "LAYERS $mb rc=$?"
done
echo "nccl $(date -u +%FT%TZ)"
timeout 90 $B $SW --set h200x2-nccl-$RUN --out "$OUT" || echo "NCCL-SWEEP rc=$?"
NCCL_MAX_NCHANNELS=1 timeout 90 $B $SW --set h200x2-nccl-ch1-$RUN --out "$OUT" || echo "NCCL-SWEEP-CH1 rc=$?"
echo "steps $(date -u +%FT%TZ)"
for mb in "bert 128 32" "bert 128 16" "gpt2 512 8"; do
  set -- $mb
  CUDA_VISIBLE_DEVICES=0 timeout 100 $B gradcomp step --model $1 --seq $2 --batch $3 --method "$M" --bucket-bytes 26214400,5242880 --world 2 $R --set h200-gradcomp-e2e-$RUN --out "$OUT" || echo "STEP $mb rc=$?"
done
echo "ddp $(date -u +%FT%TZ)"
timeout 120 $B gradcomp ddp --model bert --seq 128 --batch 32 --method "$M" --bucket-bytes 26214400 --overlap 1 --nocomm 1 $R --set h200x2-gradcomp-ddp-$RUN --out "$OUT" || echo "DDP-BERT rc=$?"
timeout 60 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method none,fp16,powersgd:rank=4,topk:density=0.01 --bucket-bytes 26214400 --overlap 1 --nocomm 1 $R --set h200x2-gradcomp-ddp-$RUN --out "$OUT" || echo "DDP-GPT2 rc=$?"
timeout 40 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,fp16 --bucket-bytes 26214400 --overlap 0 $R --set h200x2-gradcomp-ddp-$RUN --out "$OUT" || echo "DDP-BERT-INORDER rc=$?"
NCCL_MAX_NCHANNELS=1 timeout 60 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,fp16,powersgd:rank=4,topk:density=0.01,signsgd --bucket-bytes 26214400 --overlap 1 --nocomm 1 $R --set h200x2-gradcomp-ddp-$RUN --out "$OUT" || echo "DDP-BERT-CH1 rc=$?"
NCCL_P2P_DISABLE=1 timeout 60 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,fp16,powersgd:rank=4 --bucket-bytes 26214400 --overlap 1 --nocomm 1 $R --set h200x2-gradcomp-ddp-$RUN --out "$OUT" || echo "DDP-BERT-NOP2P rc=$?"
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tar.gz" -C "$OUT" .
ls -la "$OUT"
