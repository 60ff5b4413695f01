#!/usr/bin/env bash
# gpu_check.sh OUT_DIR [quick] -- everything a GPU machine checks in one go:
# configure and build with CUDA and the benchmarks, the tests (ctest: the GPU
# tests run for real), compute-sanitizer memcheck and racecheck on the small
# shape matrix of the CUDA tests, then the GPU sweep (`make bench`), with every
# log and result under OUT_DIR (results.tar.gz holds the run's results folder).
#
# Google Benchmark: found as installed, or from Debian packages unpacked from
# .deps/*.deb (scripts/setup.sh downloads them; GPU machines without a package
# registry get them carried with the tree).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: scripts/gpu_check.sh OUT_DIR [quick]}"
quick="${2:-}"
mkdir -p "$out"
cd "$root"
log() { echo "[gpu_check $SECONDS s] $*" >&2; }

prefix_args=()
if ls .deps/*.deb >/dev/null 2>&1 && ! ldconfig -p | grep -q libbenchmark.so; then
  mkdir -p /tmp/gb && for f in .deps/*.deb; do dpkg -x "$f" /tmp/gb; done
  prefix_args=(-DCMAKE_PREFIX_PATH=/tmp/gb/usr)
  export LD_LIBRARY_PATH=/tmp/gb/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi
nvidia-smi >"$out/nvidia-smi.txt" 2>&1
log "configure + build"
cmake -S . -B build -DMB_BENCH=ON -DCMAKE_CUDA_ARCHITECTURES=90a "${prefix_args[@]}" \
  >"$out/configure.log" 2>&1 && cmake --build build -j "$(nproc)" >"$out/build.log" 2>&1 ||
  { log "build FAILED"; tail -30 "$out/build.log" >&2; exit 1; }

log "ctest"
ctest --test-dir build --output-on-failure >"$out/ctest.log" 2>&1
test_rc=$?
grep -E "tests passed|Skipped|Failed|\*\*\*" "$out/ctest.log" >&2

log "compute-sanitizer on the small CUDA shapes"
for tool in memcheck racecheck; do
  for t in build/test_cuda_*; do
    [[ -x "$t" ]] || continue
    timeout 300 compute-sanitizer --tool "$tool" --error-exitcode 9 "$t" --small \
      >"$out/sanitizer-$tool-$(basename "$t").log" 2>&1
    echo "$tool $(basename "$t"): rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' \
      "$out/sanitizer-$tool-$(basename "$t").log" | tail -1)" | tee -a "$out/sanitizer.txt" >&2
  done
done

log "make bench"
MB_SKIP_SETUP=1 MB_BENCH_QUICK=$([[ $quick == quick ]] && echo 1 || echo 0) \
  CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=90a ${prefix_args[*]}" make bench >"$out/bench.log" 2>&1
bench_rc=$?
tail -n 60 "$out/bench.log" >&2
machine=$(scripts/machine_slug.sh)
tar -czf "$out/results.tar.gz" -C build/results "$machine" 2>/dev/null
log "done: ctest rc=$test_rc, bench rc=$bench_rc"
exit $((test_rc || bench_rc))
