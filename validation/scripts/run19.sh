#!/usr/bin/env bash
# Device call 19 (issues 14 and 15, kind nvidia-h200-x2, a fresh machine). Measured after the
# gradcomp calibration (models/calibration/h200-gradcomp.toml, fitted from run 18's micro rows)
# and both step predictors were committed: (1) codec-check (correctness before timing);
# (2) the single-GPU hold-out: steps with the collective replaced by a local reduction, BERT
# b32/b16 and GPT-2 b8, every compressor, 25 MiB and 5 MiB buckets (GPU 0); (3) DDP over NCCL on
# both GPUs with cudarc's event tracking off and explicit stream ordering (ranks bit-identical
# after the uncompressed step, checked before timing), each point with its no-communication
# twin: BERT b32 and GPT-2 b8 with overlap, BERT b32 in order, BERT b32 with one NCCL channel and
# without P2P. NVLink multicast off.
# Usage from the repository root with gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ \
#     && PERFCAST_COMMIT=<hash> bash /tmp/g/run19.sh
set -u
FINAL_OUT=${OUT:?}
RUN=${RUN:-run19}
export OUT=/tmp/res-$RUN
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
R="--warmup 2 --repeats 5"
M="none,fp16,bf16,powersgd:rank=4,topk:density=0.01,randomk:density=0.01,signsgd,qsgd:bits=8"
{
nvidia-smi topo -m
echo "codec-check $(date -u +%FT%TZ)"
if ! CUDA_VISIBLE_DEVICES=0 timeout 90 $B gradcomp codec-check --seed 1; then
  echo "CODEC CHECK FAILED: nothing timed"
else
echo "steps $(date -u +%FT%TZ)"
for mb in "bert 128 32" "bert 128 16" "gpt2 512 8"; do
  set -- $mb
  CUDA_VISIBLE_DEVICES=0 timeout 100 $B gradcomp step --model $1 --seq $2 --batch $3 --method "$M" --bucket-bytes 26214400,5242880 --world 2 $R --set h200-gradcomp-holdout-$RUN --out "$OUT" || echo "STEP $mb rc=$?"
done
echo "ddp $(date -u +%FT%TZ)"
timeout 120 $B gradcomp ddp --model bert --seq 128 --batch 32 --method "$M" --bucket-bytes 26214400 --overlap 1 --nocomm 1 $R --set h200x2-gradcomp-ddp-$RUN --out "$OUT" || echo "DDP-BERT rc=$?"
timeout 60 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method none,fp16,powersgd:rank=4,topk:density=0.01 --bucket-bytes 26214400 --overlap 1 --nocomm 1 $R --set h200x2-gradcomp-ddp-$RUN --out "$OUT" || echo "DDP-GPT2 rc=$?"
timeout 40 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,fp16 --bucket-bytes 26214400 --overlap 0 --nocomm 1 $R --set h200x2-gradcomp-ddp-$RUN --out "$OUT" || echo "DDP-BERT-INORDER rc=$?"
NCCL_MAX_NCHANNELS=1 timeout 60 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,fp16,powersgd:rank=4,topk:density=0.01,signsgd --bucket-bytes 26214400 --overlap 1 --nocomm 1 $R --set h200x2-gradcomp-ddp-$RUN --out "$OUT" || echo "DDP-BERT-CH1 rc=$?"
NCCL_P2P_DISABLE=1 timeout 60 $B gradcomp ddp --model bert --seq 128 --batch 32 --method none,fp16,powersgd:rank=4 --bucket-bytes 26214400 --overlap 1 --nocomm 1 $R --set h200x2-gradcomp-ddp-$RUN --out "$OUT" || echo "DDP-BERT-NOP2P rc=$?"
fi
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-$RUN.txt"
tar czf "$FINAL_OUT/$RUN.tar.gz" -C "$OUT" .
ls -la "$OUT"
