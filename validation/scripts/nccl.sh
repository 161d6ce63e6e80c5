#!/usr/bin/env bash
# Device call (kind nvidia-h200-x2): nccl-tests-style all-reduce / all-gather busbw sweep over every
# GPU of the host with perfcast-gpu nccl-sweep (branch nccl, commit aca8e53). NVLink multicast off.
set -u
export NCCL_NVLS_ENABLE=0
export NCCL_DEBUG=VERSION
export LD_LIBRARY_PATH=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib:${LD_LIBRARY_PATH:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gunzip -c "$HERE/perfcast-gpu-nccl.gz" > /tmp/perfcast-gpu-nccl && chmod +x /tmp/perfcast-gpu-nccl
B=/tmp/perfcast-gpu-nccl
export PERFCAST_GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
export PERFCAST_DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
export PERFCAST_CUDA=$(nvidia-smi | grep -o 'CUDA Version: [0-9.]*' | awk '{print $3}')
export PERFCAST_COMMIT=aca8e53
O=${OUT:-/tmp/out}
mkdir -p "$O" /tmp/ncclout
{
echo "date $(date -u +%FT%TZ) gpu '$PERFCAST_GPU' driver $PERFCAST_DRIVER cuda $PERFCAST_CUDA NCCL_NVLS_ENABLE=$NCCL_NVLS_ENABLE"
nvidia-smi
nvidia-smi topo -m
nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,memory.total,temperature.gpu,power.draw --format=csv
ldd $B | grep -E 'nccl|cuda|cublas'
ls -la /usr/lib/x86_64-linux-gnu/libnccl* 2>&1
timeout 300 $B nccl-sweep --ops allreduce,allgather --min-bytes 8 --max-bytes 1073741824 --step-factor 2 --warmup 5 --iters 20 --repeats 5 --set h200x2-nccl --out /tmp/ncclout || echo "NCCL-SWEEP rc=$?"
echo "nccl done $(date -u +%FT%TZ)"
} 2>&1 | tee "$O/log-nccl.txt"
cp /tmp/ncclout/*.csv "$O"/ 2>/dev/null
ls -la "$O"
