# mambabench: the two commands of the README, and a few more.
#
#   make test    set up, build (build/), run every test; then the same under
#                AddressSanitizer + UBSan (build-asan/)
#   make bench   set up, build, run the benchmark sweep: the GPU sweep where a
#                GPU is present, the CPU sweep otherwise; JSON + plots in results/
#   make plots   regenerate the plots and summaries from the committed JSON
#   make help    every target, one line each
#
# Variables: CMAKE_ARGS (extra configure flags), JOBS (parallel build jobs),
# MB_SKIP_SETUP=1 (do not try to install missing packages), FUZZ_SECONDS
# (how long `make fuzz` runs, default 60).

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
PYTHON ?= python3

.PHONY: all help setup build build-asan test test-fast test-asan fuzz bench bench-promote plots clean

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

plots:
	@$(PYTHON) -c "import matplotlib" 2>/dev/null || { \
	  echo "make plots: matplotlib is not installed; run \`make setup\` or \`pip install matplotlib\`" >&2; \
	  exit 1; }
	@for dir in results/*/; do \
	  if ls $$dir*.json >/dev/null 2>&1; then \
	    $(PYTHON) plots/plot_scaling.py --out $$dir $$dir*.json || exit 1; \
	  fi; \
	done

clean:
	rm -rf build build-asan build-fuzz
