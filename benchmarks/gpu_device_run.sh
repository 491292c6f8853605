#!/usr/bin/env bash
# Install mmperc's dependencies on a bare CUDA machine without network (wheels carried in .whl/,
# mmcv's sdist in .mmcv_src/), build mmcv's ops, then run benchmarks/gpu_check.sh.
# Writes everything under ${OUT:-work_dirs/gpu_check}.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT=${OUT:-$ROOT/work_dirs/gpu_check}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$ROOT"/.whl/*.whl
export PYTHONPATH=/tmp/site
start=$(date +%s)
rm -rf /tmp/mmcv-2.1.0 && tar xzf "$ROOT"/.mmcv_src/mmcv-2.1.0.tar.gz -C /tmp
(cd /tmp/mmcv-2.1.0 && CUDA_VISIBLE_DEVICES= MMCV_WITH_OPS=1 MAX_JOBS=16 python3 setup.py build_ext --inplace \
    > "$OUT/mmcv_build.log" 2>&1) || { tail -40 "$OUT/mmcv_build.log"; exit 1; }
echo "[device] mmcv built in $(( $(date +%s) - start )) s"
export PYTHONPATH=/tmp/mmcv-2.1.0:/tmp/site:$ROOT
python3 -c "import mmcv.ops, mmseg.models, mmdet.models, mmperc, torch; print('[device] imports ok', torch.__version__, torch.cuda.get_device_name(0))"
RUN=/tmp/gpu_check  # data and work dirs stay on the machine; logs and tables are copied to $OUT
status=0
GPU_CHECK_DIR=$RUN PYTHON=python3 bash "$ROOT/benchmarks/gpu_check.sh" "${1:-40}" > "$OUT/gpu_check.txt" 2>&1 || status=$?
cat "$OUT/gpu_check.txt"
cp "$RUN"/*.log "$OUT"/ 2>/dev/null || true
exit $status
