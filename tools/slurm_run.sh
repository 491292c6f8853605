#!/usr/bin/env bash
# srun one of mmperc's tools on GPUs, one task per GPU: tools/slurm_run.sh TOOL PARTITION JOB_NAME [TOOL's args...]
# (TOOL: train or test; tools/slurm_train.sh and tools/slurm_test.sh call it).
# GPUS (total, default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 5), SRUN_ARGS, PYTHON.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 TOOL PARTITION JOB_NAME [TOOL's args...]" >&2
    exit 2
fi
TOOL=$1
PARTITION=$2
JOB_NAME=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# shellcheck disable=SC2086
srun -p "$PARTITION" --job-name="$JOB_NAME" --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u "$ROOT/tools/$TOOL.py" "${@:4}" --launcher slurm
