#!/bin/sh
# Compiler launcher of the wgmma kernel (kernels/CMakeLists.txt; docs/kernels.md, "Build output"):
# runs the compile command given as its arguments and passes on everything it prints except
# ptxas's advisory C7519 ("warpgroup.arrive is injected in around line N by compiler to allow use
# of registers in GMMA in function '...'"), printed once per instantiation of the kernel, which
# ptxas has no option to silence. Every other line, warnings and errors included, and the exit
# status are the compiler's own.
err=$(mktemp "${TMPDIR:-/tmp}/nsa-ptxas.XXXXXX") || exit 1
trap 'rm -f "$err"' EXIT
trap 'exit 130' INT TERM
"$@" 2>"$err"
status=$?
sed -e '/^ptxas info *: (C7519) warpgroup\.arrive is injected in around line [0-9]* by compiler/d' \
  "$err" >&2
exit $status
