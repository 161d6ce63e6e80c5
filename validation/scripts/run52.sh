#!/usr/bin/env bash
# Device calls 52 and 53 (issue 14, kind nvidia-h200, FRESH machines): hold-outs of the codec
# costs under run 51's committed calibration (pool kept), plus single-GPU hold-out steps, on
# hosts other than 51's. run51.sh with the hold-out set names, the --keep-pool 0 A/B into
# aside-runNN/, and the steps. Usage (RUN=run52 or run53):
#   mkdir -p /tmp/g && cp validation/scripts/*.sh gpu-bin/perfcast-gpu.gz /tmp/g/ && \
#     RUN=run52 PERFCAST_COMMIT=<hash> REPO=$PWD bash /tmp/g/run52.sh
RUN=${RUN:-run52} SET=h200-gradcomp-codec-holdout-${RUN:-run52} STEPS=1 \
  bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/run51.sh"
