#!/usr/bin/env bash
# Slurm training on GPUs: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py args...]
# GPUS (total, default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 5), SRUN_ARGS.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG [train.py args...]" >&2
    exit 2
fi
exec "$(dirname "${BASH_SOURCE[0]}")/slurm_run.sh" train "$@"
