#!/usr/bin/env bash
# Creates .venv/ when missing or stale, installs the pinned packages, and prepares the weights.
# Idempotent: a second run with nothing changed only checks the stamp and the weights' sha256.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
venv="$root/.venv"
stamp_want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
stamp_file="$venv/.annotator-stamp"

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_want" ]; then
    echo "[setup] installing pinned packages into .venv (first run takes several minutes)" >&2
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    # pydensecrf2 is built from source (no usable wheel); its build pins its own Cython.
    "$venv/bin/python" -m pip install -q --no-binary pydensecrf2 -r requirements.lock
    "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
    echo "$stamp_want" > "$stamp_file"
fi

"$venv/bin/python" -m annotator.io.setup_weights
"$venv/bin/python" -m annotator.io.openvino_ir
