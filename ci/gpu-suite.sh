#!/usr/bin/env bash
# The one command for the GPU machine: runs the prebuilt GPU test suite (ctest -L gpu), the
# sanitizer subset, `nsa verify` over the golden suites' configs (cuda included), `nsa bench`;
# writes logs under $OUT (or build/gpu-out) and prints a short table last.
# Build first on a CUDA development machine:
#   cmake -S . -B build/gpu-kernels -DCMAKE_BUILD_TYPE=Release -DNSA_CUDA_ARCH=90
#   cmake --build build/gpu-kernels -j && ci/collect-gpu-libs.sh
# Parts: NSA_SUITE_PARTS (default "tests,sanitize,golden,bench"); bench arguments: NSA_BENCH_ARGS.
# Exits 1 when a part that ran failed (it used to return the status of its last test command).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${NSA_GPU_BUILD:-$root/build/gpu-kernels}
out=${OUT:-$build/gpu-out}
parts=${NSA_SUITE_PARTS:-tests,sanitize,golden,bench}
mkdir -p "$out"
# .gpulibs: what ci/collect-gpu-libs.sh carried; then the CUDA image's own libraries (cuBLAS).
export LD_LIBRARY_PATH="$root/.gpulibs:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
summary=()
status=0  # exit status: 1 when any part that ran failed
has() { [[ ",$parts," == *",$1,"* ]]; }

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv \
  >"$out/gpu.txt" 2>&1
summary+=("gpu: $(tail -n1 "$out/gpu.txt")")

if has tests; then
  start=$(date +%s)
  # NSA_CTEST_DIR narrows the run to a subtree (e.g. build/gpu-kernels/kernels/tests when only
  # that part was carried); NSA_CTEST_EXCLUDE is a ctest -E regex.
  ctest --test-dir "${NSA_CTEST_DIR:-$build}" -L gpu -j "${NSA_CTEST_JOBS:-8}" --output-on-failure \
    --timeout 600 ${NSA_CTEST_EXCLUDE:+-E "$NSA_CTEST_EXCLUDE"} >"$out/ctest.log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || status=1
  line=$(grep -E "tests passed|tests failed" "$out/ctest.log" | tail -n1)
  summary+=("ctest -L gpu: rc=$rc $line ($(($(date +%s) - start)) s)")
  grep -E "^\s+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess)" "$out/ctest.log" | head -n 20 \
    >"$out/ctest-failed.txt"
fi

if has sanitize; then
  OUT=$out bash "$root/ci/gpu-sanitize.sh" "$build" >"$out/sanitize.txt" 2>&1 || status=1
  while IFS= read -r l; do summary+=("$l"); done <"$out/sanitize.txt"
fi

nsa=$build/golden/nsa
if has golden; then
  # `nsa verify` runs every available implementation (the reference and, here, "cuda") on the
  # configs of a golden suite and checks them against the f128 truth.
  if [ -x "$nsa" ]; then
    for suite in ${NSA_VERIFY_SUITES:-smoke canonical fla nsa_triton}; do
      timeout "${NSA_VERIFY_TIMEOUT:-300}" "$nsa" verify --suite "$suite" >"$out/verify-$suite.log" 2>&1
      rc=$?
      [ $rc -eq 0 ] || status=1
      summary+=("nsa verify --suite $suite: rc=$rc $(tail -n1 "$out/verify-$suite.log")")
    done
  else
    summary+=("nsa verify: no nsa binary at $nsa")
    status=1
  fi
fi

if has bench; then
  if [ -x "$nsa" ]; then
    # shellcheck disable=SC2086
    "$nsa" bench ${NSA_BENCH_ARGS:-} >"$out/bench.txt" 2>&1
    rc=$?
    [ $rc -eq 0 ] || status=1
    summary+=("bench rc=$rc")
  else
    summary+=("bench: no nsa binary at $nsa")
    status=1
  fi
fi

echo "==================== GPU suite summary ===================="
[ -s "$out/ctest-failed.txt" ] && { echo "failed tests:"; cat "$out/ctest-failed.txt"; }
for l in "${summary[@]}"; do echo "$l"; done
[ -f "$out/bench.txt" ] && cat "$out/bench.txt"
exit $status
