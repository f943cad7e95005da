#!/usr/bin/env bash
# Installs the Debian (bookworm) packages the project builds and tests with. Idempotent: only
# missing packages are installed; `apt-get update` runs first whenever something is missing.
set -euo pipefail
packages=(
  build-essential cmake clang clang-format libclang-rt-14-dev
  libeigen3-dev libboost-dev libhdf5-dev librapidcheck-dev catch2 nlohmann-json3-dev
  python3 python3-numpy python3-h5py
  python3-dev python3-venv ninja-build  # the Python package (pip install ., ci/test.sh)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "ci/install-deps.sh: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "ci/install-deps.sh: all packages present"
fi
