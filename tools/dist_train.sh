#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]
# GPUs: one process per GPU on NCCL. No CUDA: gloo processes on the CPU (BN replaces SyncBN).
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) on every node, as with mmseg.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_PROCS [train.py args...]" >&2
    exit 2
fi
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$TOOLS/torchrun.sh" "$2" "$TOOLS/train.py" "$1" "${@:3}"
