#!/usr/bin/env bash
# list_skipped.sh BUILD_DIR... -- what the last ctest run in each build dir
# skipped, and why: the "SKIP: ..." line each skipped test printed (tests
# exit 77 to skip; CMake sets SKIP_RETURN_CODE 77 so ctest counts them).
# Run by `make test` at the end; prints nothing when nothing was skipped.
set -uo pipefail
for dir in "$@"; do
  log="$dir/Testing/Temporary/LastTest.log"
  [ -f "$log" ] || continue
  awk -v dir="$dir" '
    /^[0-9]+\/[0-9]+ Test: / { name = $3; why = "" }
    /SKIP: / && name != "" { sub(/^.*SKIP: /, ""); why = $0 }
    /^Test Skipped|^Test Passed|^Test Failed|^Test Not Run/ {
      if (why != "" && $0 !~ /Failed/) { printf "  %s: %s: %s\n", dir, name, why; n++ }
      name = ""; why = ""
    }
    END { if (n) printf "(%d skipped in %s)\n", n, dir }
  ' "$log"
done
