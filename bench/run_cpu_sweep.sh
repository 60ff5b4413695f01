#!/usr/bin/env bash
# run_cpu_sweep.sh -- the CPU scaling sweep of the three references: runs each
# bench binary of a build directory with JSON output, then plots the results.
#
# Usage: bench/run_cpu_sweep.sh [BUILD_DIR [OUT_DIR]]
#   BUILD_DIR  CMake build directory holding bench_selective_scan, bench_ssd and
#              bench_attention (default: <repo>/build)
#   OUT_DIR    where <op>.json, <op>.log, time_vs_L.png, memory_vs_L.png and
#              summary.md go (default: <repo>/results/cpu)
# Environment: the MB_BENCH_* variables of bench/bench_common.h (e.g.
# MB_BENCH_LMAX=4096 for a quick run), MB_BENCH_ARGS (extra flags for every
# binary, e.g. --benchmark_filter=fwd), PYTHON (default python3).
# Takes about 2 minutes on a 2-core EPYC (119 s measured, 5 repetitions per
# L). Exits non-zero when a binary is missing, a benchmark fails or plotting
# fails; the other benches still run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
out="${2:-$root/results/cpu}"
python="${PYTHON:-python3}"
ops=(selective_scan ssd attention)

for op in "${ops[@]}"; do
  if [[ ! -x "$build/bench_$op" ]]; then
    echo "run_cpu_sweep: $build/bench_$op not found. Build the benchmarks first:" >&2
    echo "  cmake -S $root -B $build && cmake --build $build -j" >&2
    echo "(they need Google Benchmark: apt-get install libbenchmark-dev)" >&2
    exit 1
  fi
done
mkdir -p "$out"

start=$(date +%s)
failed=()
jsons=()
for op in "${ops[@]}"; do
  json="$out/$op.json"
  rm -f "$json"
  echo "== bench_$op -> $json" >&2
  # the console shows the progress lines; the complete output goes to the log
  # shellcheck disable=SC2086  # MB_BENCH_ARGS is a list of flags
  if "$build/bench_$op" --benchmark_out="$json" --benchmark_out_format=json \
      ${MB_BENCH_ARGS:-} 2>&1 | tee "$out/$op.log" | grep --line-buffered '^\[mb-bench' >&2 ||
      [[ ${PIPESTATUS[0]} == 0 ]]; then
    :
  else
    echo "run_cpu_sweep: bench_$op failed (see $out/$op.log)" >&2
    failed+=("bench_$op")
  fi
  [[ -s "$json" ]] && jsons+=("$json")
done

if grep -qs "Library was built as DEBUG" "$out"/*.log; then
  echo "note: Google Benchmark warns 'Library was built as DEBUG': that is Debian's build of" \
       "the benchmark library itself; mambabench's code is built $(grep -m1 -o 'mb_build_type.*' \
       "${jsons[0]:-/dev/null}" 2>/dev/null | tr -d '",' || echo Release)" >&2
fi
if ((${#jsons[@]} > 0)); then
  echo "== plots/plot_scaling.py -> $out" >&2
  if ! "$python" "$root/plots/plot_scaling.py" --out "$out" "${jsons[@]}"; then
    failed+=("plot_scaling.py")
  fi
else
  failed+=("plot_scaling.py (no JSON to plot)")
fi

echo "run_cpu_sweep: wall time $(($(date +%s) - start)) s; results in $out" >&2
if ((${#failed[@]} > 0)); then
  echo "run_cpu_sweep: FAILED: ${failed[*]}" >&2
  exit 1
fi
