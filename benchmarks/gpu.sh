#!/usr/bin/env bash
# The GPU benchmarks in one command, and the wheel folder they install from (docs/performance.md).
#
#   benchmarks/gpu.sh wheels [FOLDER] [ARGS…]  here, with the network: build FOLDER (build/gpu-wheels) for
#                                              the GPU machine image (scripts/gpu_wheels.py ARGS…)
#   benchmarks/gpu.sh [ARGS…]                  on the GPU machine: install from build/gpu-wheels if it is
#                                              there, run python -m benchmarks.gpu ARGS…, write $OUT/gpu.json
#                                              (build/gpu.json without OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=build/gpu-wheels

if [ "${1:-}" = wheels ]; then
    shift
    folder="${1:-$WHEELS}"
    [ $# -gt 0 ] && shift
    exec "${PYTHON:-.venv/bin/python}" scripts/gpu_wheels.py "$folder" --have benchmarks/gpu-image-packages.txt "$@"
fi

install=()
[ -d "$WHEELS" ] && install=(--wheels "$WHEELS")
out="${OUT:-build}"
mkdir -p "$out"
exec env PYTHONUNBUFFERED=1 "${PYTHON:-python3}" -m benchmarks.gpu "${install[@]}" --out "$out/gpu.json" "$@"
