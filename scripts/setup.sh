#!/usr/bin/env bash
# setup.sh -- make sure what the build needs is present; install what is
# missing when we can (apt-get as root, pip for Python), else say how.
# Called by `make test` and `make bench`; MB_SKIP_SETUP=1 skips it.
set -euo pipefail
[ "${MB_SKIP_SETUP:-0}" = 1 ] && exit 0

missing_debs=()
command -v cmake >/dev/null || missing_debs+=(cmake)
command -v cc >/dev/null || missing_debs+=(build-essential)
command -v c++ >/dev/null || missing_debs+=(g++)
command -v python3 >/dev/null || missing_debs+=(python3 python3-pip)
has_gbench() {
  local prefix
  local extra="${CMAKE_PREFIX_PATH:-}"
  for prefix in /usr /usr/local ${extra//:/ }; do
    [ -f "$prefix/include/benchmark/benchmark.h" ] && return 0
  done
  return 1
}
has_gbench || missing_debs+=(libbenchmark-dev)
compgen -G "/usr/lib/*/libopenblas.so" >/dev/null || compgen -G "/usr/lib*/libopenblas.so" >/dev/null || missing_debs+=(libopenblas-dev) # tasks/

if [ ${#missing_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${missing_debs[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing_debs[@]}" >/dev/null
  else
    echo "setup: missing ${missing_debs[*]}; install with: sudo apt-get install ${missing_debs[*]}" >&2
    echo "setup: (continuing: the benchmarks are skipped without libbenchmark-dev)" >&2
  fi
fi

if command -v python3 >/dev/null && ! python3 -c "import matplotlib, numpy" 2>/dev/null; then
  echo "setup: installing matplotlib and numpy with pip"
  python3 -m pip install -q matplotlib numpy 2>/dev/null ||
    python3 -m pip install -q --user matplotlib numpy 2>/dev/null ||
    python3 -m pip install -q --break-system-packages matplotlib numpy ||
    echo "setup: could not install matplotlib; plots will be skipped (pip install matplotlib)" >&2
fi
exit 0
