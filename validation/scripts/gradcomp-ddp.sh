#!/usr/bin/env bash
# Multi-GPU DDP steps over NCCL (issue 15, deliverable 2; kind nvidia-h200-x2 or larger): one
# rank (thread) per GPU, buckets formed by perfcast's bucketing, each bucket's codec round on a
# communication stream while backward continues (overlap=1) and, for comparison, in order on the
# compute stream (overlap=0); then with NCCL restricted to one channel (slow-link emulation,
# recorded in the rows). Before timing every point checks that all ranks end a step with
# bit-identical parameters (uncompressed) — the run stops otherwise. Set h200xN-gradcomp-ddp.
#
# Every point is timed twice (with NCCL, metric step_s, and with the collectives as no-ops,
# step_nocomm_s: the difference is the exposed communication).
#
# Budget (2 × (3 warm-up + 10 timed steps) per point plus the checked step and a host copy of
# every rank's parameters): BERT-base batch 32 seq 128 (~60–80 ms/step) and GPT-2 batch 8 seq 512
# (~100–150 ms/step), 2 caps with overlap, 1 cap in order, 1 cap with one NCCL channel: 8 points
# × ~3–6 s ≈ 1 minute, plus PTX JIT (~20 s for the first process on a fresh host).
#
# Usage on the GPU host (next to perfcast-gpu[.gz] and env.sh):
#   OUT=/tmp/out METHODS=none bash gradcomp-ddp.sh
set -u
source "$(dirname "$0")/env.sh"
B=${B:-/tmp/perfcast-gpu}
METHODS=${METHODS:-none}
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=${NCCL_DEBUG:-VERSION}
N=$(nvidia-smi -L | wc -l)
S="h200x$N-gradcomp-ddp"
R="--warmup 3 --repeats 10"
{
nvidia-smi topo -m
timeout 120 $B gradcomp ddp --model bert --seq 128 --batch 32 --method "$METHODS" --bucket-bytes 5242880,26214400 --overlap 1 $R --set "$S" --out "$O" || echo "DDP-BERT rc=$?"
timeout 150 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method "$METHODS" --bucket-bytes 5242880,26214400 --overlap 1 $R --set "$S" --out "$O" || echo "DDP-GPT2 rc=$?"
echo "in order (overlap 0) $(date -u +%FT%TZ)"
timeout 120 $B gradcomp ddp --model bert --seq 128 --batch 32 --method "$METHODS" --bucket-bytes 26214400 --overlap 0 $R --set "$S" --out "$O" || echo "DDP-BERT-SEQ rc=$?"
timeout 150 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method "$METHODS" --bucket-bytes 26214400 --overlap 0 $R --set "$S" --out "$O" || echo "DDP-GPT2-SEQ rc=$?"

echo "restricted (1 channel) $(date -u +%FT%TZ)"
NCCL_MAX_NCHANNELS=1 timeout 120 $B gradcomp ddp --model bert --seq 128 --batch 32 --method "$METHODS" --bucket-bytes 26214400 --overlap 1 $R --set "$S" --out "$O" || echo "DDP-BERT-CH1 rc=$?"
NCCL_MAX_NCHANNELS=1 timeout 150 $B gradcomp ddp --model gpt2 --seq 512 --batch 8 --method "$METHODS" --bucket-bytes 26214400 --overlap 1 $R --set "$S" --out "$O" || echo "DDP-GPT2-CH1 rc=$?"
echo "done $(date -u +%FT%TZ)"
} 2>&1 | tee "$O/log-gradcomp-ddp.txt"
