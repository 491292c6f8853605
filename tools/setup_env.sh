#!/usr/bin/env bash
# Idempotent CPU set-up of mmperc's virtual environment (torch 2.13 CPU, mmcv 2.1.0 built from source).
#
# Usage: bash tools/setup_env.sh        (creates ./.venv unless MMPERC_VENV points elsewhere)
# GPU users: install their CUDA torch and mmcv themselves, see README.md ("Installing on a GPU machine").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMPERC_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3}"
JOBS="${MAX_JOBS:-$(nproc 2>/dev/null || echo 2)}"

TORCH_SPEC="torch==2.13.0"
MMCV_SPEC="mmcv==2.1.0"
OPENMMLAB_SPECS=("mmengine==0.10.7" "mmsegmentation==1.2.2" "mmdet==3.3.0")
EXTRA_SPECS=("ftfy" "regex" "pytest" "matplotlib" "tifffile" "scipy")

say() { printf '[setup] %s\n' "$*"; }
fail() {
    printf '[setup] FAILED: %s\n' "$1" >&2
    [ $# -gt 1 ] && printf '[setup] fix: %s\n' "$2" >&2
    exit 1
}

# The stamp holds a hash of this script, setup.py and the C++ sources: editing one re-runs the install steps.
stamp_hash() { cat "$ROOT/tools/setup_env.sh" "$ROOT/setup.py" "$ROOT"/mmperc/models/losses/csrc/* 2>/dev/null | sha256sum | cut -c1-16; }
STAMP="$VENV/.mmperc-setup-$(stamp_hash)"
if [ -f "$STAMP" ] && "$VENV/bin/python" -c "import mmcv.ops, mmseg, mmdet, mmperc" 2>/dev/null; then
    say "environment up to date: $VENV"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV"
    "$PYTHON_BIN" -m venv "$VENV" || fail "could not create $VENV" "install python3-venv (apt-get install python3-venv)"
fi
PIP=("$VENV/bin/python" -m pip)

say "step 1/5: torch (CPU wheel), numpy, wheel, ninja"
"${PIP[@]}" install "$TORCH_SPEC" numpy wheel ninja \
    || fail "torch install failed" "pip must find the local torch 2.13.0 CPU wheel (pip config find-links); never let pip resolve a CUDA torch"

# mmcv's setup.py imports pkg_resources, which setuptools>=70 no longer provides. torch 2.13 declares
# setuptools>=77, so pip prints a conflict warning here: it is harmless (torch does not use it at run time).
say "step 2/5: setuptools<70 (needed by mmcv's setup.py)"
"${PIP[@]}" install "setuptools<70" || fail "setuptools<70 install failed"

if "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
    say "step 3/5: mmcv 2.1.0 with ops already installed"
else
    say "step 3/5: building $MMCV_SPEC with its C++ ops from source (10-20 min on 2 cores; cached by pip afterwards)"
    MAX_JOBS="$JOBS" MMCV_WITH_OPS=1 "${PIP[@]}" install --no-build-isolation "$MMCV_SPEC" \
        || fail "mmcv build failed" "needs gcc/g++ and the Python headers; see the compiler error above"
    "$VENV/bin/python" -c "import mmcv.ops" || fail "mmcv installed without its ops (mmcv._ext)" "rm -rf ~/.cache/pip/wheels and re-run"
fi

say "step 4/5: OpenMMLab packages and test tools"
"${PIP[@]}" install "${OPENMMLAB_SPECS[@]}" "${EXTRA_SPECS[@]}" "setuptools<70" \
    || fail "OpenMMLab install failed"
# The demo's real image (tools/demo.py): stardist's wheel ships a nuclei image and its masks;
# --no-deps because only those two files are read (stardist itself, and TensorFlow, never run).
"${PIP[@]}" install --no-deps "stardist==0.9.2" || fail "stardist (the demo's real image) failed to install"

say "step 5/5: mmperc in editable mode"
"${PIP[@]}" install --no-build-isolation --no-deps -e "$ROOT" || fail "pip install -e . failed"
"$VENV/bin/python" -c "import pkg_resources, mmcv.ops, mmseg.models, mmdet.models, mmperc" \
    || fail "import check failed" "see the traceback above"
# setup.py skips a failed build of the C++ kernels (Winograd transforms, pooling; mmperc works without
# them, slower): here, where mmcv was just compiled, a missing build is an error, not a silent slow path
MMPERC_KERNELS=1 "$VENV/bin/python" -c "from mmperc.models.losses import max_pool_relu, winograd_f4
assert winograd_f4.available() and max_pool_relu.available()" \
    || fail "mmperc's C++ kernels did not build" \
        "needs g++ with OpenMP; see the compiler error: $VENV/bin/pip install --no-build-isolation --no-deps -v -e $ROOT"

rm -f "$VENV"/.mmperc-setup-*
touch "$STAMP"
say "done: $VENV"
