#!/usr/bin/env bash
# compute-sanitizer (memcheck, racecheck, initcheck, synccheck) over the small "[sanitize]"
# subset of the kernel tests. Prints one line per tool; exit status non-zero if any tool fails.
# Usage: ci/gpu-sanitize.sh [build-dir]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/gpu-kernels}
out=${OUT:-$build/gpu-out}
mkdir -p "$out"
exe=$build/kernels/tests/nsa_cuda_tests
cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
status=0
for tool in memcheck racecheck initcheck synccheck; do
  log=$out/sanitize-$tool.log
  extra=()
  [ "$tool" = memcheck ] && extra=(--leak-check full)
  "$cs" --tool "$tool" "${extra[@]}" --error-exitcode 3 "$exe" "[sanitize]" >"$log" 2>&1
  rc=$?
  summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test cases:|All tests passed" "$log" | tr '\n' ' ')
  printf 'sanitize %-10s rc=%d  %s\n' "$tool" "$rc" "$summary"
  [ $rc -eq 0 ] || status=1
done
exit $status
