#!/usr/bin/env bash
# The GPU configuration fuzzer on the GPU machine (docs/fuzzing.md): `nsa fuzz --gpu` for
# NSA_FUZZ_MINUTES (default 10) minutes, then a shorter stretch under compute-sanitizer memcheck
# (NSA_FUZZ_SAN_MINUTES, default 2; with --max-rows 8 the H200 ran 1052 cases in 2.25 minutes). Logs and failing
# cases (config JSON, seeds, verdict, golden file) go under $OUT (default build/gpu-kernels/
# gpu-out/fuzz); a summary is printed last. Exit status 1 when anything failed.
#   ci/gpu-fuzz.sh [build-dir]        build-dir default build/gpu-kernels (nsa at golden/nsa)
# Seeds: NSA_FUZZ_SEED (default: today's date as YYYYMMDD, printed, so a run can be repeated).
# NSA_FUZZ_FIRST_CASE (default 0) continues a seed's stream where an earlier sitting stopped (the
# log's last line names the next case), so a long run can span several device calls;
# NSA_FUZZ_SAN_MINUTES=0 leaves out the memcheck stretch in such a continuation.
# NSA_FUZZ_JOBS=N with NSA_FUZZ_CASES=C: C cases from NSA_FUZZ_FIRST_CASE on, split into N
# processes over disjoint case ranges (each still stopped by NSA_FUZZ_MINUTES).
# NSA_FUZZ_ARGS: further `nsa fuzz` flags for every run, e.g. "--backward --max-rows 16".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${NSA_GPU_BUILD:-$root/build/gpu-kernels}}
out=${OUT:-$build/gpu-out}/fuzz
mkdir -p "$out"
# .gpulibs: what ci/collect-gpu-libs.sh carried; then the CUDA image's own libraries (cuBLAS).
export LD_LIBRARY_PATH="$root/.gpulibs:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nsa=$build/golden/nsa
if [ ! -x "$nsa" ]; then
  echo "ci/gpu-fuzz.sh: $nsa not found: build with CUDA first (ci/gpu-suite.sh says how)" >&2
  exit 2
fi
seed=${NSA_FUZZ_SEED:-$(date -u +%Y%m%d)}
minutes=${NSA_FUZZ_MINUTES:-10}
first=${NSA_FUZZ_FIRST_CASE:-0}
san_minutes=${NSA_FUZZ_SAN_MINUTES:-2}
summary=()
status=0
read -r -a extra <<<"${NSA_FUZZ_ARGS:-}"

jobs=${NSA_FUZZ_JOBS:-1}
if [ "$jobs" -gt 1 ]; then
  # NSA_FUZZ_CASES cases of one seed split into NSA_FUZZ_JOBS disjoint ranges, one process each:
  # the host's reference runs (seven fp32 baselines per case) bound the rate, not the GPU.
  cases=${NSA_FUZZ_CASES:?NSA_FUZZ_JOBS > 1 needs NSA_FUZZ_CASES}
  per=$(((cases + jobs - 1) / jobs))
  pids=()
  for ((j = 0; j < jobs; ++j)); do
    "$nsa" fuzz --gpu --seed "$seed" --iterations "$per" --minutes "$minutes" \
      --first-case $((first + j * per)) --save-dir "$out/cases" "${extra[@]}" >"$out/fuzz-$j.log" 2>&1 &
    pids+=($!)
  done
  for ((j = 0; j < jobs; ++j)); do
    wait "${pids[$j]}"
    rc=$?
    [ $rc -eq 0 ] || status=1
    summary+=("job $j: rc=$rc; $(grep -E 'nsa fuzz (summary|: ran)' "$out/fuzz-$j.log" | tail -n2 | tr '\n' ' ')")
  done
  cat "$out"/fuzz-*.log >"$out/fuzz.log"
  summary+=("nsa fuzz --gpu --seed $seed, $jobs jobs: $(awk '/^nsa fuzz summary/ {c += $8; r += $12; f += $15} END {print c " cases, " r " rows checked, " f " failures"}' "$out/fuzz.log")")
  grep -q "^nsa fuzz backward" "$out/fuzz.log" &&
    summary+=("  backward: $(awk '/^nsa fuzz backward/ {gsub(/\(/, "", $8); c += $4; k += $8; s += $11} END {print c " cases checked, " k " key tokens, " s " skipped"}' "$out/fuzz.log")")
else
  "$nsa" fuzz --gpu --seed "$seed" --minutes "$minutes" --first-case "$first" --save-dir "$out/cases" "${extra[@]}" >"$out/fuzz.log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || status=1
  summary+=("nsa fuzz --gpu --seed $seed --minutes $minutes --first-case $first: rc=$rc; $(grep -E 'nsa fuzz (summary|: ran)' "$out/fuzz.log" | tail -n2 | tr '\n' ' ')")
fi
grep -E "^  repro:" "$out/fuzz.log" | head -n 20 | sed 's/^  /  failure /' >"$out/repros.txt"
while IFS= read -r l; do summary+=("$l"); done <"$out/repros.txt"

# NSA_FUZZ_SAN_MINUTES=0 skips the memcheck stretch (a continuation call of a long run).
if [ "$san_minutes" != 0 ]; then
  cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  san_seed=$((seed + 1))
  "$cs" --tool memcheck --error-exitcode 3 "$nsa" fuzz --gpu --seed "$san_seed" \
    --minutes "$san_minutes" --max-rows 8 --save-dir "$out/cases-memcheck" "${extra[@]}" >"$out/memcheck.log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || status=1
  summary+=("memcheck nsa fuzz --gpu --seed $san_seed --minutes $san_minutes: rc=$rc; $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -n1); $(grep 'nsa fuzz summary' "$out/memcheck.log" | tail -n1)")
fi

echo "gpu-fuzz summary (logs in $out):"
printf '  %s\n' "${summary[@]}"
exit $status
