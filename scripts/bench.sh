#!/usr/bin/env bash
# bench.sh BUILD_DIR [OUT_DIR] -- the sweep `make bench` runs: the GPU sweep
# (bench/run_gpu_sweep.sh) where a GPU is present and the library was built
# with CUDA, the CPU sweep of the references (bench/run_cpu_sweep.sh)
# otherwise. Results go to OUT_DIR, by default build/results/<machine>/ (a
# fresh folder: the committed results/ are never overwritten by a run;
# `make bench-promote` copies a run there on purpose).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build=${1:-build}
if [ ! -d "$build" ]; then echo "bench: no build dir $build (run make build)" >&2; exit 1; fi
if ! ls "$build"/bench_* >/dev/null 2>&1; then
  echo "bench: no benchmark binaries in $build: Google Benchmark was not found at configure" >&2
  echo "bench: install it (apt-get install libbenchmark-dev) and run make bench again" >&2
  exit 1
fi

machine=$("$root/scripts/machine_slug.sh")
out=${2:-$build/results/$machine}
if [ "$machine" != cpu ]; then
  if ! grep -q '^MB_HAVE_CUDA_BUILD:INTERNAL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
    echo "bench: a GPU is present but $build was configured without CUDA (no nvcc?);" \
         "running the CPU sweep" >&2
    machine=cpu
    out=${2:-$build/results/cpu}
  fi
fi
echo "bench: machine '$machine', results into $out" >&2
if [ "$machine" = cpu ]; then
  exec "$root/bench/run_cpu_sweep.sh" "$build" "$out"
fi
exec "$root/bench/run_gpu_sweep.sh" "$build" "$out"
