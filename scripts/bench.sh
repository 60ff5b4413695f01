#!/usr/bin/env bash
# bench.sh BUILD_DIR -- the sweep `make bench` runs: the CPU sweep of the
# references (bench/run_cpu_sweep.sh). The GPU sweep, for machines with a GPU,
# arrives with the CUDA kernels; on such a machine this says so.
set -euo pipefail
build=${1:-build}
if [ ! -d "$build" ]; then echo "bench: no build dir $build (run make build)" >&2; exit 1; fi
if ! ls "$build"/bench_* >/dev/null 2>&1; then
  echo "bench: no benchmark binaries in $build: Google Benchmark was not found at configure" >&2
  echo "bench: install it (apt-get install libbenchmark-dev) and run make bench again" >&2
  exit 1
fi

gpu_present=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  gpu_present=1
fi

# The GPU sweep comes with the CUDA kernels; until then every machine runs the CPU one.
if [ "$gpu_present" = 1 ]; then
  echo "bench: a GPU is present, but no CUDA kernels are implemented yet;"
  echo "bench: running the CPU sweep of the references instead"
fi
exec bench/run_cpu_sweep.sh "$build"
