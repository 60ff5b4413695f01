# mambabench: the two commands of the README, and a few more.
#
#   make test    set up, build (build/), run every test; then the same under
#                AddressSanitizer + UBSan (build-asan/)
#   make bench   set up, build, run the benchmark sweep: the GPU sweep where a
#                GPU is present, the CPU sweep otherwise; JSON + plots in
#                build/results/<machine>/ (make bench-promote copies them to results/)
#   make plots   regenerate the plots and summaries from the committed JSON
#   make help    every target, one line each
#
# Variables: CMAKE_ARGS (extra configure flags), JOBS (parallel build jobs),
# MB_SKIP_SETUP=1 (do not try to install missing packages), FUZZ_SECONDS
# (how long `make fuzz` runs, default 60).

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
PYTHON ?= python3

.PHONY: all help setup build build-asan test test-fast test-asan fuzz bench bench-promote plots clean \
	bench-baseline bench-check bench-check-cpu bench-check-cpu-update bench-check-slopes

all: build

help:
	@echo "make build       set up (scripts/setup.sh) and build into build/"
	@echo "make build-asan  build with AddressSanitizer + UBSan into build-asan/"
	@echo "make test        build, run every test, then again under ASan + UBSan; list the skipped"
	@echo "make test-fast   build and run the tests once (build/), no sanitizers"
	@echo "make test-asan   build and run the tests under ASan + UBSan (build-asan/)"
	@echo "make fuzz        libFuzzer + ASan + UBSan on the public API for FUZZ_SECONDS (60) (build-fuzz/)"
	@echo "make bench       build and run the benchmark sweep (JSON + plots; BENCH_OUT=DIR, default build/results/<machine>)"
	@echo "make bench-promote  copy a finished run (BENCH_OUT=DIR) into the committed results/<machine>/"
	@echo "make bench-baseline  merge a finished run (BENCH_OUT=DIR) into results/baselines/<machine>.json"
	@echo "make bench-check  rerun this machine's benchmarks (BENCH_FILTER, BENCH_REPS>=9) and fail when >BENCH_THRESHOLD (10%) slower, p<0.05"
	@echo "make bench-check-cpu  callgrind instruction counts of the CPU references vs results/baselines/cpu_instructions.json (3%), and their slopes in L"
	@echo "make bench-check-cpu-update  measure the instruction counts, print them and write them as the new baseline"
	@echo "make bench-check-slopes  log-log slopes of the committed timing results (results/*/): linear mixers ~1, attention ~2"
	@echo "make plots       redraw the plots and summaries from the JSON in results/"
	@echo "make setup       install what the build needs (apt-get as root, pip), or say how"
	@echo "make clean       remove build/, build-asan/ and build-fuzz/"

setup:
	@scripts/setup.sh

build: setup
	cmake -S . -B build -DMB_BENCH=ON -DMB_SANITIZE=OFF $(CMAKE_ARGS)
	cmake --build build -j $(JOBS)

build-asan: setup
	cmake -S . -B build-asan -DMB_SANITIZE=ON -DMB_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug $(CMAKE_ARGS)
	cmake --build build-asan -j $(JOBS)

test-fast: build
	ctest --test-dir build --output-on-failure

test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir build-asan --output-on-failure

test: test-fast test-asan
	@echo "== skipped tests (and why):"
	@tests/list_skipped.sh build build-asan

FUZZ_SECONDS ?= 60
fuzz:
	@tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

# BENCH_OUT=DIR: where the run's JSON, plots and summary go (default build/results/<machine>)
bench: build
	@scripts/bench.sh build $(BENCH_OUT)

# copy a run into the committed results/<machine>/ (an explicit step: `make bench` never does)
bench-promote:
	@src=$${BENCH_OUT:-build/results/$$(scripts/machine_slug.sh)}; dst=results/$$(basename $$src); \
	  test -s $$src/summary.md || { echo "bench-promote: no finished run in $$src"; exit 1; }; \
	  mkdir -p $$dst && cp $$src/*.json $$src/*.png $$src/*.md $$dst/ && \
	  cp $$src/*.log $$src/*.csv $$dst/ 2>/dev/null; echo "bench-promote: $$src -> $$dst"

# a finished `make bench` run (BENCH_OUT=DIR, default build/results/<machine>) merged
# into the committed baseline of its machine: never edited by hand
bench-baseline:
	@src=$${BENCH_OUT:-build/results/$$(scripts/machine_slug.sh)}; src=$${src%/}; \
	  $(PYTHON) bench/regress.py baseline --out results/baselines/$$(basename $$src).json $$src

# BENCH_FILTER=REGEX BENCH_THRESHOLD=0.10 BENCH_REPS=10 BENCH_STRICT=1: see scripts/bench_check.sh
bench-check: build
	@scripts/bench_check.sh build

# deterministic, no GPU (CI): valgrind's instruction counts, then the timing slopes
bench-check-cpu: build
	@command -v valgrind >/dev/null || { echo "bench-check-cpu: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
	$(PYTHON) bench/regress.py cpu --build build --baseline results/baselines/cpu_instructions.json
	$(PYTHON) bench/regress.py slopes results

bench-check-cpu-update: build
	$(PYTHON) bench/regress.py cpu --build build --baseline results/baselines/cpu_instructions.json --update

bench-check-slopes:
	$(PYTHON) bench/regress.py slopes results

plots:
	@$(PYTHON) -c "import matplotlib" 2>/dev/null || { \
	  echo "make plots: matplotlib is not installed; run \`make setup\` or \`pip install matplotlib\`" >&2; \
	  exit 1; }
	@for dir in results/*/; do \
	  case $$dir in results/baselines/) continue;; esac; \
	  if ls $$dir*.json >/dev/null 2>&1; then \
	    $(PYTHON) plots/plot_scaling.py --out $$dir $$dir*.json || exit 1; \
	    if grep -qs '"gpu_name"' $$dir*.json; then $(PYTHON) plots/gpu_summary.py $$dir >/dev/null || exit 1; fi; \
	  fi; \
	done

clean:
	rm -rf build build-asan build-fuzz
