#!/usr/bin/env bash
# run_gpu_sweep.sh -- the GPU sweep: every CUDA implementation of every op
# (the bench binaries with --mb_gpu_only), the peers in the same run
# (bench/peers.py: torch SDPA, a PyTorch scan loop, mamba_ssm where
# importable), the SM clock sampled during the run, then plots and summary.
#
# Usage: bench/run_gpu_sweep.sh BUILD_DIR OUT_DIR
# Environment: MB_BENCH_QUICK=1 (3 repetitions, L up to 16384: for iterating),
# MB_BENCH_OPS (default "selective_scan ssd attention"; a subset runs those
# benches only), MB_BENCH_PEERS=0 (skip bench/peers.py), MB_BENCH_* of
# bench/bench_common.h, PYTHON (default python3). A sweep split over several
# calls into one OUT_DIR is plotted whole: every JSON in OUT_DIR is drawn.
# Defaults: 10 repetitions per point, median reported with its spread.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:?build dir}"
out="${2:?out dir}"
python="${PYTHON:-python3}"
mkdir -p "$out"
export MB_BENCH_GPU_ONLY=1
export MB_BENCH_REPETITIONS="${MB_BENCH_REPETITIONS:-10}"
# 5 ms of timed calls per repetition: every timed iteration also flushes the L2 (a
# 100 MB memset) and synchronises, so at 20 ms a row of a 10 us kernel ran ~20000 of
# them; 10 repetitions of >= 5 ms keep the median and spread (and under 8 minutes)
export MB_BENCH_MIN_TIME="${MB_BENCH_MIN_TIME:-0.005}"
# every version is compared up to 16K; the defaults and the peers go to the end
export MB_BENCH_VERSIONS_LMAX="${MB_BENCH_VERSIONS_LMAX:-16384}"
if [[ "${MB_BENCH_QUICK:-0}" == 1 ]]; then
  export MB_BENCH_REPETITIONS=3 MB_BENCH_LMAX="${MB_BENCH_LMAX:-16384}"
fi

# the SM and memory clocks, sampled every 500 ms while the sweep runs
clocks="$out/clocks.csv"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv,noheader,nounits -lms 500 >"$clocks" 2>/dev/null &
  sampler=$!
fi

start=$(date +%s)
failed=()
jsons=()
for op in ${MB_BENCH_OPS:-selective_scan ssd attention}; do
  bin="$build/bench_$op"
  [[ -x "$bin" ]] || { failed+=("bench_$op (missing)"); continue; }
  json="$out/$op.json"
  echo "== bench_$op (CUDA implementations) -> $json" >&2
  # the console shows the progress lines; the complete output goes to the log
  "$bin" --benchmark_out="$json" --benchmark_out_format=json 2>&1 | tee "$out/$op.log" |
    grep --line-buffered -E '^\[mb-bench|^bench:' >&2
  [[ ${PIPESTATUS[0]} == 0 ]] || failed+=("bench_$op (see $out/$op.log)")
  [[ -s "$json" ]] && jsons+=("$json")
done

if [[ "${MB_BENCH_PEERS:-1}" != 0 ]]; then
  echo "== bench/peers.py -> $out/peers.json" >&2
  quick_flag=()
  [[ "${MB_BENCH_QUICK:-0}" == 1 ]] && quick_flag=(--quick)
  if ! "$python" "$root/bench/peers.py" --out "$out/peers.json" "${quick_flag[@]}" \
      2>&1 | tee "$out/peers.log" | grep -E '^\[peers' >&2; then
    echo "run_gpu_sweep: peers.py did not finish cleanly (see $out/peers.log)" >&2
  fi
fi

[[ -n "${sampler:-}" ]] && kill "$sampler" 2>/dev/null
[[ -s "$out/peers.json" && "${MB_BENCH_PEERS:-1}" != 0 ]] && jsons+=("$out/peers.json")
(("${#jsons[@]}" > 0)) && { "$python" "$root/bench/add_clock_context.py" "$clocks" "${jsons[@]}" ||
  failed+=("clock context"); }
jsons=()  # the plots draw every JSON of the folder (an earlier part of a split sweep too)
for j in "$out"/*.json; do [[ -s "$j" ]] && jsons+=("$j"); done

if ((${#jsons[@]} > 0)); then
  "$python" "$root/plots/plot_scaling.py" --out "$out" "${jsons[@]}" >"$out/plots.log" 2>&1 ||
    failed+=("plot_scaling.py (see $out/plots.log)")
  "$python" "$root/plots/gpu_summary.py" "$out" >/dev/null || failed+=("gpu_summary.py")
  tail -n 40 "$out/plots.log" >&2
fi
echo "run_gpu_sweep: wall time $(($(date +%s) - start)) s; results in $out" >&2
if ((${#failed[@]} > 0)); then echo "run_gpu_sweep: FAILED: ${failed[*]}" >&2; exit 1; fi
