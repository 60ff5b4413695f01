#!/usr/bin/env bash
# run.sh OUT_DIR SECONDS -- build tests/fuzz/fuzz_api.c with clang, libFuzzer,
# ASan and UBSan into OUT_DIR (the library's C sources compiled in, no CUDA),
# then fuzz the public API for SECONDS from the committed seed corpus
# (tests/fuzz/corpus/); new inputs go to OUT_DIR/corpus, crashes to OUT_DIR/.
# Without clang it says so and exits 0 (`make fuzz`, .ci/run).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build-fuzz}
seconds=${2:-60}
CLANG=${CLANG:-clang}
if ! command -v "$CLANG" >/dev/null; then
  echo "fuzz: SKIP: clang not found (apt-get install clang libclang-rt-14-dev)"
  exit 0
fi
mkdir -p "$out/corpus"
flags=(-g -O1 -std=c11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -fno-omit-frame-pointer -Iinclude -Isrc -Ireference)
# the library without CUDA: src/*.c (cuda_absent.c included) and reference/*.c
if ! "$CLANG" "${flags[@]}" src/*.c reference/*.c tests/fuzz/fuzz_api.c -lm \
     -o "$out/fuzz_api" 2>"$out/build.log"; then
  if grep -q "libclang_rt.fuzzer\|fsanitize=fuzzer" "$out/build.log"; then
    echo "fuzz: SKIP: clang has no libFuzzer runtime (apt-get install libclang-rt-14-dev)"
    exit 0
  fi
  cat "$out/build.log" >&2
  exit 1
fi
echo "fuzz: running $out/fuzz_api for ${seconds}s (corpus: tests/fuzz/corpus, new inputs: $out/corpus)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$out/fuzz_api" -max_total_time="$seconds" -max_len=256 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" tests/fuzz/corpus 2>&1 |
  grep -v "^#[0-9].*\(NEW\|REDUCE\|pulse\)" || true
status=${PIPESTATUS[0]}
if ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* >/dev/null 2>&1; then
  echo "fuzz: FAILED: see $out/crash-* (add it to tests/fuzz/corpus/ as a regression input)" >&2
  exit 1
fi
exit "$status"
