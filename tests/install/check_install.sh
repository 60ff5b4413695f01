#!/usr/bin/env bash
# check_install.sh BUILD_DIR -- install the built library into a temporary
# prefix, then build and run a consumer twice: through find_package(mambabench)
# and through pkg-config. Run by ctest (test_install).
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
for f in include/mambabench.h lib/cmake/mambabench/mambabenchConfig.cmake lib/pkgconfig/mambabench.pc; do
  alt=${f/lib\//lib64/}
  [ -f "$work/prefix/$f" ] || [ -f "$work/prefix/$alt" ] || { echo "missing $f in the install tree"; exit 1; }
done
libdir=$(dirname "$(find "$work/prefix" -name 'libmambabench.so' | head -n 1)")

# find_package
cmake -S "$here/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/consumer/consumer"

# pkg-config
if command -v pkg-config >/dev/null; then
  export PKG_CONFIG_PATH="$libdir/pkgconfig"
  cc -std=c11 "$here/consumer/consumer.c" $(pkg-config --cflags --libs mambabench) -o "$work/consumer_pc"
  LD_LIBRARY_PATH="$libdir" "$work/consumer_pc"
else
  echo "pkg-config not installed: checked the .pc file exists only (apt-get install pkg-config)"
fi
