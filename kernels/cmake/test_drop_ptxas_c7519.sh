#!/bin/sh
# ctest kernels:drop_ptxas_c7519: the launcher drops the C7519 advisory and nothing else. A stand-in
# compiler prints the advisory, another ptxas info line, a ptxas warning, an error and a line on
# stdout, then fails with status 3; every line but the advisory and the status must come through.
here=$(dirname "$0")
fake=$(mktemp "${TMPDIR:-/tmp}/nsa-fake-nvcc.XXXXXX") || exit 1
trap 'rm -f "$fake"' EXIT
cat >"$fake" <<'FAKE'
echo "object written"
echo "ptxas info    : (C7519) warpgroup.arrive is injected in around line 144110 by compiler to allow use of registers in GMMA in function '_Z6kernelv'" >&2
echo "ptxas info    : Used 168 registers, used 1 barriers" >&2
echo "ptxas warning : Registers are spilled to local memory in function '_Z6kernelv', 8 bytes spill stores" >&2
echo "kernel.cu(3): error: identifier \"x\" is undefined" >&2
exit 3
FAKE
out=$(sh "$here/drop_ptxas_c7519.sh" sh "$fake" 2>&1)
status=$?
echo "$out"
fail() { echo "FAIL: $1"; exit 1; }
test $status -eq 3 || fail "exit status $status, want the compiler's 3"
echo "$out" | grep -q C7519 && fail "the C7519 advisory came through"
for want in "object written" "Used 168 registers" "ptxas warning : Registers are spilled" \
  "error: identifier"; do
  echo "$out" | grep -q "$want" || fail "'$want' was dropped"
done
echo "ok"
