#!/usr/bin/env bash
# The test command (README): install dependencies, configure the release preset (CUDA kernels are
# compiled when nvcc is present), build everything, run ctest. GPU tests report as skipped on a
# machine without a device.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-deps.sh
jobs=$(nproc)
cmake --preset release
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs" --timeout 900
