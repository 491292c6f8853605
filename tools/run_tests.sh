#!/usr/bin/env bash
# Run the test suite in the project's venv; "no tests collected" (pytest exit 5) is a failure.
# Without arguments, the loss tests then run again with MMPERC_KERNELS=0: PyTorch's ops alone,
# the path CUDA and installs without the C++ build take. With arguments: pytest tests "$@" only.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${MMPERC_VENV:-$ROOT/.venv}/bin/python"
cd "$ROOT"

run() {
    "$@"
    local rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "[tests] FAILED: pytest collected no tests" >&2
        return 1
    fi
    return "$rc"
}

run "$PY" -m pytest tests "$@"
rc=$?
if [ "$#" -eq 0 ]; then
    echo "[tests] the loss tests again with MMPERC_KERNELS=0 (PyTorch's ops alone, as on CUDA)"
    MMPERC_KERNELS=0 run "$PY" -m pytest tests/test_models/test_losses -q
    second=$?
    [ "$rc" -ne 0 ] || rc=$second
fi
exit "$rc"
