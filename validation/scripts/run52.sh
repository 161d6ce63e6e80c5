#!/usr/bin/env bash
# Device calls 52 and 53 (issue 14, kind nvidia-h200, FRESH machines): hold-outs of the codec
# costs under run 48's committed calibration (f3b5e94), in its protocol (pool trimmed at each
# synchronization, --keep-pool 0), with the kept-pool A/B aside (aside-runNN/), and single-GPU
# hold-out steps. run51.sh in hold-out mode. Usage (RUN=run52 or run53):
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     RUN=run52 PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run52.sh
RUN=${RUN:-run52} SET=h200-gradcomp-codec-holdout-${RUN:-run52} STEPS=1 HOLDOUT=1 \
  bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/run51.sh"
