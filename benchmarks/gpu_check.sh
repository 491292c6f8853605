#!/usr/bin/env bash
# GPU check at paper scale (one GPU, NCCL, SyncBN): PSPNet-R18 _perc vs its baseline, with and
# without --amp, 769x769 crops, batch 8; prints one table; then tests the last _perc run's
# checkpoint (tools/dist_test.sh) and resumes that run for 5 more iterations (--resume), each
# checked for its result; last the loss benchmark on CUDA (unless GPU_CHECK_SKIP_BENCH is set).
# Needs a CUDA machine with mmperc's dependencies; generates its own data and teacher weights.
#   bash benchmarks/gpu_check.sh [ITERS]       (default 40; writes under work_dirs/gpu_check)
# GPU_CHECK_AMP=both (default), only (the --amp pair alone) or none (the float32 pair alone: a CPU can
# check the script).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ITERS=${1:-40}
OUT=${GPU_CHECK_DIR:-work_dirs/gpu_check}
LOGS=${GPU_CHECK_LOGS:-$OUT}  # each run's log, written as it runs
PYTHON=${PYTHON:-python3}
export PYTHON PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT" "$LOGS"
case "${GPU_CHECK_AMP:-both}" in  # AMP first: the 15% target is set with AMP
    both) amps=("--amp" "") ;;
    only) amps=("--amp") ;;
    none) amps=("") ;;
    *) echo "GPU_CHECK_AMP must be both, only or none, not '$GPU_CHECK_AMP'" >&2; exit 2 ;;
esac
"$PYTHON" benchmarks/gpu_prepare.py --out "$OUT" --iters "$ITERS"
PERC=configs/perc/pspnet_r18-d8_perc-r101_4xb2-40k_cityscapes-769x769.py
BASE=configs/pspnet/pspnet_r18-d8_4xb2-40k_cityscapes-769x769.py
for amp in "${amps[@]}"; do
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
"$PYTHON" benchmarks/gpu_prepare.py --out "$OUT" --iters "$ITERS" --summarize --pairs "${GPU_CHECK_AMP:-both}"
# the tools around training on the same GPU, with the last run ($name, the _perc config): test its
# checkpoint, then resume it to ITERS + 5 (after the summary, which reads each run's newest log)
ckpt="$OUT/$name/iter_$ITERS.pth"
echo "[gpu_check] dist_test.sh $ckpt ($(date +%T))"
# shellcheck disable=SC2046
bash tools/dist_test.sh "$PERC" "$ckpt" 1 --work-dir "$OUT/${name}_test" --cfg-options $(cat "$OUT/options.txt") \
    > "$LOGS/${name}_test.log" 2>&1 || { tail -50 "$LOGS/${name}_test.log"; exit 1; }
grep -q "mIoU" "$LOGS/${name}_test.log" || { echo "[gpu_check] no mIoU in the test's log"; exit 1; }
grep "mIoU:" "$LOGS/${name}_test.log" | tail -1
echo "[gpu_check] --resume to $((ITERS + 5)) iterations ($(date +%T))"
# shellcheck disable=SC2046
bash tools/dist_train.sh "$PERC" 1 --work-dir "$OUT/$name" --resume $amp --cfg-options $(cat "$OUT/options.txt") \
    "$teacher" "train_cfg.max_iters=$((ITERS + 5))" > "$LOGS/${name}_resume.log" 2>&1 \
    || { tail -50 "$LOGS/${name}_resume.log"; exit 1; }
grep -q "resumed epoch: 0, iter: $ITERS" "$LOGS/${name}_resume.log" && [ -f "$OUT/$name/iter_$((ITERS + 5)).pth" ] \
    || { echo "[gpu_check] the run did not resume from iteration $ITERS"; tail -30 "$LOGS/${name}_resume.log"; exit 1; }
echo "[gpu_check] resumed from iteration $ITERS and saved iteration $((ITERS + 5)) ($(date +%T))"
[ -n "${GPU_CHECK_SKIP_BENCH:-}" ] || "$PYTHON" benchmarks/bench_loss.py --device cuda --batch 8 --full --step-size 769 2>&1 | tee "$OUT/bench_loss.txt"
