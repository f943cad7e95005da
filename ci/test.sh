#!/usr/bin/env bash
# The test command (README): install dependencies, build and install the Python package into a
# virtual environment, configure the release preset (CUDA kernels are compiled when nvcc is
# present; the Python extension too), build everything, run ctest (the Python package's tests
# included, against the build tree), then the same Python tests against the installed package.
# GPU tests report as skipped on a machine without a device.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-deps.sh
jobs=$(nproc)

# The venv: Debian's python3 (numpy and h5py from ci/install-deps.sh, seen through
# --system-site-packages) unless PYTHON names another interpreter; one without numpy gets it
# from PyPI with the package.
python=${PYTHON:-/usr/bin/python3}
[[ -x $python ]] || python=$(command -v python3)
venv=$PWD/build/venv
mkdir -p build
"$python" -m venv --clear --system-site-packages "$venv"
py=$venv/bin/python
# nanobind for the build tree's extension; pytest for the tests (PyPI, pinned from below only).
"$py" -m pip install -q --disable-pip-version-check "nanobind>=2.4" "pytest>=7"

# The README's command. Where nvcc is present the release build below compiles the extension
# with the kernels; the package built here skips them, so that the kernels are compiled once.
echo "ci/test.sh: pip install . (into $venv)"
CMAKE_BUILD_PARALLEL_LEVEL=$jobs "$py" -m pip install -q --no-cache-dir \
  --config-settings=cmake.define.NSA_ENABLE_CUDA=OFF .
"$py" -m nsa_verify

cmake --preset release -DNSA_PYTHON=ON -DPython_EXECUTABLE="$py"
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs" --timeout 900

# The installed package's tests, run from outside the source tree so that they import it (and
# `nsa golden check` cross-checks the candidate files they write).
echo "ci/test.sh: the installed nsa_verify's tests"
repo=$PWD
(cd build && NSA_CLI=$repo/build/release/golden/nsa "$py" -m pytest -q -rs -p no:cacheprovider \
  "$repo/python/tests")
