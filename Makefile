# mambabench: the two commands of the README, and a few more.
#
#   make test    set up, build (build/), run every test; then the same under
#                AddressSanitizer + UBSan (build-asan/)
#   make bench   set up, build, run the benchmark sweep: the GPU sweep where a
#                GPU is present, the CPU sweep otherwise; JSON + plots in results/
#   make plots   regenerate the plots and summaries from the committed JSON
#
# Variables: CMAKE_ARGS (extra configure flags), JOBS (parallel build jobs),
# MB_SKIP_SETUP=1 (do not try to install missing packages).

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
PYTHON ?= python3

.PHONY: all setup build build-asan test test-fast test-asan bench bench-promote plots clean

all: build

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

# OUT=DIR: where the run's JSON, plots and summary go (default build/results/<machine>)
bench: build
	@scripts/bench.sh build $(OUT)

# copy a run into the committed results/<machine>/ (an explicit step: `make bench` never does)
bench-promote:
	@src=$${OUT:-build/results/$$(scripts/machine_slug.sh)}; dst=results/$$(basename $$src); \
	  test -s $$src/summary.md || { echo "bench-promote: no finished run in $$src"; exit 1; }; \
	  mkdir -p $$dst && cp $$src/*.json $$src/*.png $$src/*.md $$dst/ && \
	  cp $$src/*.log $$src/*.csv $$dst/ 2>/dev/null; echo "bench-promote: $$src -> $$dst"

plots:
	@for dir in results/*/; do \
	  if ls $$dir*.json >/dev/null 2>&1; then \
	    $(PYTHON) plots/plot_scaling.py --out $$dir $$dir*.json || exit 1; \
	  fi; \
	done

clean:
	rm -rf build build-asan
