#!/usr/bin/env bash
# Run the test suite in the project's venv; "no tests collected" (pytest exit 5) is a failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${MMPERC_VENV:-$ROOT/.venv}/bin/python"
cd "$ROOT"
"$PY" -m pytest tests "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "[tests] FAILED: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
