#!/usr/bin/env bash
# Device call 12 (kind nvidia-h200-x2, a fresh machine): issue 15 deliverable 1, the full NCCL
# sweep: all-reduce, all-gather, reduce-scatter, broadcast (8 B – 1 GiB, each op checked against a
# closed-form host reference before it is timed) on both GPUs with the default transport, on one
# GPU (the one-rank floor), and on both GPUs with two restricted transports that emulate slower
# links (NCCL_MAX_NCHANNELS=1; NCCL_P2P_DISABLE=1, which sends through host shared memory); the
# knobs are recorded in every row's params. Usage from the repository root with
# gpu-bin/perfcast-gpu.gz carried:
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ \
#     && PERFCAST_COMMIT=<hash> bash /tmp/g/run12.sh
set -u
FINAL_OUT=${OUT:?}
export OUT=/tmp/res12
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=VERSION
export PERFCAST_COMMIT=${PERFCAST_COMMIT:-unknown}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/env.sh"
SW="nccl-sweep --ops allreduce,allgather,reducescatter,broadcast --min-bytes 8 --max-bytes 1073741824 --step-factor 2 --warmup 5 --iters 20 --repeats 5"
{
nvidia-smi topo -m
timeout 150 $B $SW --set h200x2-nccl-run12 --out "$OUT" || echo "NCCL-SWEEP rc=$?"
echo "default done $(date -u +%FT%TZ)"
CUDA_VISIBLE_DEVICES=0 timeout 60 $B nccl-sweep --ops allreduce,broadcast --min-bytes 8 --max-bytes 1073741824 --step-factor 4 --warmup 5 --iters 20 --repeats 5 --set h200x1-nccl-run12 --out "$OUT" || echo "NCCL-SWEEP-1GPU rc=$?"
echo "one-gpu done $(date -u +%FT%TZ)"
NCCL_MAX_NCHANNELS=1 timeout 120 $B $SW --set h200x2-nccl-ch1-run12 --out "$OUT" || echo "NCCL-SWEEP-CH1 rc=$?"
echo "ch1 done $(date -u +%FT%TZ)"
NCCL_P2P_DISABLE=1 timeout 150 $B $SW --set h200x2-nccl-nop2p-run12 --out "$OUT" || echo "NCCL-SWEEP-NOP2P rc=$?"
echo "nop2p done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log-nccl.txt"
tar czf "$FINAL_OUT/run12.tar.gz" -C "$OUT" .
ls -la "$OUT"
