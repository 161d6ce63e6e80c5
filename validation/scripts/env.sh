# Sourced by the run scripts on the GPU host: library path, provenance variables, binary.
set -u
export LD_LIBRARY_PATH=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib:${LD_LIBRARY_PATH:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -f "$HERE/perfcast-gpu.gz" ]; then
  gunzip -c "$HERE/perfcast-gpu.gz" > /tmp/perfcast-gpu && chmod +x /tmp/perfcast-gpu
  B=/tmp/perfcast-gpu
else
  B="$HERE/perfcast-gpu"
fi
CORPUS="$HERE/corpus-cpython-3.11.7-lib.py.txt"
export PERFCAST_GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
export PERFCAST_DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
export PERFCAST_CUDA=$(nvidia-smi | grep -o 'CUDA Version: [0-9.]*' | awk '{print $3}')
O=${OUT:-/tmp/out}
mkdir -p "$O"
echo "date $(date -u +%FT%TZ) gpu '$PERFCAST_GPU' driver $PERFCAST_DRIVER cuda $PERFCAST_CUDA"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,memory.total,temperature.gpu,power.draw --format=csv
