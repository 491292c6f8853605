#!/usr/bin/env bash
# GPU check at paper scale (one GPU, NCCL, SyncBN): PSPNet-R18 _perc vs its baseline, with and
# without --amp, 769x769 crops, batch 8, then the loss benchmark on CUDA. Prints one table.
# Needs a CUDA machine with mmperc's dependencies; generates its own data and teacher weights.
#   bash benchmarks/gpu_check.sh [ITERS]       (default 40; writes under work_dirs/gpu_check)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ITERS=${1:-40}
OUT=${GPU_CHECK_DIR:-work_dirs/gpu_check}
LOGS=${GPU_CHECK_LOGS:-$OUT}  # each run's log, written as it runs
PYTHON=${PYTHON:-python3}
export PYTHON PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT" "$LOGS"
"$PYTHON" benchmarks/gpu_prepare.py --out "$OUT" --iters "$ITERS"
PERC=configs/perc/pspnet_r18-d8_perc-r101_4xb2-40k_cityscapes-769x769.py
BASE=configs/pspnet/pspnet_r18-d8_4xb2-40k_cityscapes-769x769.py
for amp in "--amp" ""; do  # AMP first: the 15% target is set with AMP
    for cfg in "$BASE" "$PERC"; do
        name=$(basename "$cfg" .py)${amp:+_amp}
        echo "[gpu_check] $name ($(date +%T))"
        teacher=""
        [ "$cfg" = "$PERC" ] && teacher="model.teacher.checkpoint=$OUT/teacher_r101.pth"
        # shellcheck disable=SC2046
        bash tools/dist_train.sh "$cfg" 1 --work-dir "$OUT/$name" $amp --cfg-options $(cat "$OUT/options.txt") $teacher \
            > "$LOGS/$name.log" 2>&1 || { tail -50 "$LOGS/$name.log"; exit 1; }
    done
done
echo "[gpu_check] runs done ($(date +%T))"
"$PYTHON" benchmarks/gpu_prepare.py --out "$OUT" --iters "$ITERS" --summarize
[ -n "${GPU_CHECK_SKIP_BENCH:-}" ] || "$PYTHON" benchmarks/bench_loss.py --device cuda --batch 8 --full --step-size 769 2>&1 | tee "$OUT/bench_loss.txt"
