#!/usr/bin/env bash
# The main job (README): install dependencies, build the `nsa` program, run `nsa verify` on its
# built-in default suite. Extra arguments go to `nsa verify`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target nsa
exec ./build/release/golden/nsa verify "$@"
