#!/usr/bin/env bash
# Copies the non-system shared libraries that the GPU test and bench binaries need (ldd) into
# .gpulibs/ at the repo root (gitignored), to be carried to the GPU machine, whose image may
# lack them (HDF5, libsz/libaec, libquadmath, libcurl and its dependencies, ...).
# Usage: ci/collect-gpu-libs.sh [build-dir]   (default build/gpu-kernels)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/gpu-kernels}
dest=$root/.gpulibs
mkdir -p "$dest"
bins=$(find "$build" -maxdepth 3 -type f -perm -u+x \( -name 'nsa' -o -name 'nsa_*tests' -o -name 'nsa_props_gpu' \) 2>/dev/null)
if [ -z "$bins" ]; then echo "collect-gpu-libs: no binaries under $build" >&2; exit 1; fi
# Keep the C runtime, the dynamic loader, the CUDA driver and cuBLAS (part of the GPU machine's
# CUDA image, ~600 MB) on the target machine's side.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libgcc_s|libcuda\.so|libcublas)'
count=0
for b in $bins; do
  while read -r name _ path _; do
    [ -n "${path:-}" ] && [ -f "$path" ] || continue
    if [[ $name =~ $skip ]]; then continue; fi
    if [ ! -f "$dest/$name" ]; then cp -L "$path" "$dest/$name"; count=$((count + 1)); fi
  done < <(ldd "$b" | grep '=>')
done
echo "collect-gpu-libs: $count new libraries in $dest ($(du -sh "$dest" | cut -f1))"
