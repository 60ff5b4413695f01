#!/usr/bin/env bash
# bench_check.sh [BUILD_DIR] -- `make bench-check`: run this machine's benchmarks
# (the CUDA families with --mb_gpu_only where a GPU is present and the build has
# CUDA, the CPU references otherwise) with BENCH_REPS repetitions, then compare
# them with results/baselines/<machine>.json (bench/regress.py check).
#
# Environment:
#   BENCH_FILTER=REGEX    benchmarks to run and compare (--benchmark_filter); default:
#                         the families of the baseline's default implementations
#   BENCH_THRESHOLD=0.10  slower by more than this (a fraction, or "10%") and p < 0.05 fails
#   BENCH_REPS=10         repetitions per benchmark (at least 9: the U test needs them)
#   BENCH_BASELINE=FILE   default results/baselines/<machine>.json
#   BENCH_CHECK_OUT=DIR   the run's JSON, logs and check.json (default BUILD_DIR/bench-check/<machine>)
#   BENCH_STRICT=1        exit 3 when nothing could be compared (unknown machine, throttled)
#   MB_BENCH_LMAX, MB_BENCH_MIN_TIME, ... (bench/bench_common.h) pass through.
# Exit: 0 no regression (or nothing to compare), 1 a regression, 2 a benchmark failed.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build=${1:-build}
python=${PYTHON:-python3}
machine=${BENCH_MACHINE:-$("$root/scripts/machine_slug.sh")}
if [[ -z "${BENCH_MACHINE:-}" && "$machine" != cpu ]] && ! grep -q '^MB_HAVE_CUDA_BUILD:INTERNAL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "bench-check: a GPU is present but $build has no CUDA: checking the CPU benchmarks" >&2
  machine=cpu
fi
baseline=${BENCH_BASELINE:-$root/results/baselines/$machine.json}
out=${BENCH_CHECK_OUT:-$build/bench-check/$machine}
mkdir -p "$out"
rm -f "$out"/*.json
check=("$python" "$root/bench/regress.py" check --baseline "$baseline" --json "$out/check.json"
       --threshold "${BENCH_THRESHOLD:-0.10}" ${BENCH_STRICT:+--strict})
if [[ ! -f "$baseline" ]]; then
  "${check[@]}"  # reports the unknown machine
  exit $?
fi
reps=${BENCH_REPS:-10}
if ((reps < 9)); then echo "bench-check: BENCH_REPS=$reps; at least 9 are needed" >&2; exit 2; fi
filter=${BENCH_FILTER:-$("$python" "$root/bench/regress.py" default-filter --baseline "$baseline")}
[[ -n "${BENCH_FILTER:-}" ]] && check+=(--filter "$BENCH_FILTER")
[[ -n "${MB_BENCH_LMAX:-}" ]] && check+=(--lmax "$MB_BENCH_LMAX")
echo "bench-check: machine '$machine', baseline $baseline, filter '$filter', $reps repetitions" >&2

if [[ "$machine" != cpu ]]; then
  export MB_BENCH_GPU_ONLY=1 MB_BENCH_MIN_TIME="${MB_BENCH_MIN_TIME:-0.02}"
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv,noheader,nounits -lms 500 >"$out/clocks.csv" 2>/dev/null &
  sampler=$!
fi
failed=0
jsons=()
for op in selective_scan ssd attention; do
  bin="$build/bench_$op"
  [[ -x "$bin" ]] || { echo "bench-check: $bin not built" >&2; failed=1; continue; }
  "$bin" --mb_reps="$reps" --mb_quiet --benchmark_filter="$filter" \
    --benchmark_out="$out/$op.json" --benchmark_out_format=json >"$out/$op.log" 2>&1
  rc=$?
  if grep -q "Failed to match any benchmarks" "$out/$op.log"; then
    rm -f "$out/$op.json"; continue  # nothing of this op in the filter
  fi
  ((rc == 0)) || { echo "bench-check: bench_$op failed (see $out/$op.log)" >&2; failed=1; }
  [[ -s "$out/$op.json" ]] && jsons+=("$out/$op.json")
done
if [[ -n "${sampler:-}" ]]; then
  kill "$sampler" 2>/dev/null
  ((${#jsons[@]})) && "$python" "$root/bench/add_clock_context.py" "$out/clocks.csv" "${jsons[@]}"
fi
if ((${#jsons[@]} == 0)); then
  echo "bench-check: no benchmark ran (filter '$filter')" >&2
  exit 2
fi
"${check[@]}" "${jsons[@]}" | tee "$out/check.txt"
rc=${PIPESTATUS[0]}
echo "bench-check: table in $out/check.txt, JSON in $out/check.json" >&2
((failed)) && ((rc == 0)) && rc=2
exit "$rc"
