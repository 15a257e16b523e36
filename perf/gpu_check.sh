#!/usr/bin/env bash
# The GPU readiness check (perf/gpu_check.py) as one command on a fresh GPU machine; `make gpu-check` runs it.
#
#   perf/gpu_check.sh [gpu_check.py options]   set up, then run the check (8 minutes on a GPU); the record goes
#                                              to $OUT/gpu_check.json when $OUT is set, else perf/results/
#   perf/gpu_check.sh --dry-run [options]      set up, print the Python found and the command, run nothing
#   perf/gpu_check.sh --fetch-wheels [NAME..]  where PyPI is reachable: download into .whl/ the wheels of NAME..
#                                              at requirements/lock-cuda.txt's versions (default: what the check
#                                              needs beyond a CUDA PyTorch image), to carry to a machine without PyPI
#
# Python: $PYTHON, else the project's .venv when it imports torch, else python3. Modules the check imports that
# this Python lacks are installed from .whl/*.whl (no index, no dependencies resolved) into a folder put on
# PYTHONPATH ($GPU_CHECK_SITE); the interpreter's own packages are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=${GPU_CHECK_WHEELS:-.whl}
SITE=${GPU_CHECK_SITE:-${TMPDIR:-/tmp}/gpu-check-site}
NEEDS=${GPU_CHECK_NEEDS:-torch open_clip ftfy yaml PIL skimage timm psutil tqdm}  # imported by the check
DEFAULT_WHEELS="open-clip-torch ftfy wcwidth"  # the first two are missing from a CUDA PyTorch image, and ftfy's need
LIMIT_S=${GPU_CHECK_TIMEOUT_S:-570}  # hard stop: the check's own budget is 480 s

pick_python() {
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
    elif [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then echo .venv/bin/python
    else echo python3; fi
}

missing_modules() {  # the modules of $NEEDS that "$1" cannot import
    "$1" -c 'import importlib.util, sys; print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))' $NEEDS
}

fetch_wheels() {
    local py names name pin
    py=$(pick_python)
    names=("$@")
    [ ${#names[@]} -gt 0 ] || read -r -a names <<< "$DEFAULT_WHEELS"
    mkdir -p "$WHEELS"
    for name in "${names[@]}"; do
        pin=$(grep -iE "^${name//[-_.]/[-_.]}==" requirements/lock-cuda.txt | head -n 1 || true)
        [ -n "$pin" ] || { echo "$name: not pinned in requirements/lock-cuda.txt" >&2; exit 2; }
        "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "${GPU_CHECK_PY_VERSION:-3.12}" \
            --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 -d "$WHEELS" "$pin"
    done
    ls -1 "$WHEELS"
}

if [ "${1:-}" = "--fetch-wheels" ]; then
    shift
    fetch_wheels "$@"
    exit 0
fi
dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi

PY=$(pick_python)
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DVC_NO_ANALYTICS=1 \
    PYTHONUNBUFFERED=1
missing=$(missing_modules "$PY")
if [ -n "$missing" ]; then
    shopt -s nullglob
    wheels=("$WHEELS"/*.whl)
    if [ ${#wheels[@]} -eq 0 ]; then
        echo "$PY lacks: $missing; no wheels in $WHEELS/ (run perf/gpu_check.sh --fetch-wheels where PyPI is" \
             "reachable, and bring $WHEELS/ along)" >&2
        exit 3
    fi
    echo "installing ${#wheels[@]} wheels from $WHEELS/ into $SITE (missing: $missing)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}"
    missing=$(missing_modules "$PY")
    [ -z "$missing" ] || { echo "$PY still lacks: $missing (add their wheels to $WHEELS/)" >&2; exit 3; }
fi

args=("$@")
if ! printf '%s\n' "${args[@]}" | grep -q -- '^--device'; then
    if ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
        echo "no CUDA device visible to $PY; for a run on the CPU pass --device cpu --tiny" >&2
        exit 4
    fi
fi
[ -z "${OUT:-}" ] || args=(--out "$OUT" "${args[@]}")
cmd=(timeout --kill-after=10 "$LIMIT_S" "$PY" perf/gpu_check.py "${args[@]}")
echo "python: $PY ($("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'))"
echo "command: ${cmd[*]}"
[ "$dry_run" = 0 ] || exit 0
exec "${cmd[@]}"
