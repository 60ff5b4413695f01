#!/bin/bash
# One device call: build, the CUDA tests, the sanitizers on a small run, the timings.
# Usage (repository root): kernels/selective_scan/tools/device_run.sh OUTDIR [sanitize]
OUT=${1:-/tmp/out}; mkdir -p $OUT
set -o pipefail
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader | tee $OUT/gpu.txt
cmake -S . -B build -DMB_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90a >/dev/null && cmake --build build -j16 2>&1 | grep -E "error|Error" ; echo "build done $SECONDS s"
nvcc -std=c++17 -O3 -arch=sm_90 -I include -I src -I kernels -I reference kernels/selective_scan/tools/timing.cu kernels/selective_scan/{fwd,fwd_seg,bwd,step}.cu kernels/common.cu src/common.c -DMB_SCAN_PROFILE -o build/scan_timing &
TP=$!
timeout 150 ctest --test-dir build -R cuda -V > $OUT/test.log 2>&1; echo "ctest rc=$? $SECONDS s"
grep -E "FAIL|checks, |SKIP|Passed|Failed|tests passed" $OUT/test.log | head -30
wait $TP
timeout 120 ./build/scan_timing 2>&1 | tee $OUT/timing.txt
if [ "$2" = sanitize ]; then
  timeout 70 compute-sanitizer --tool memcheck ./build/test_cuda_selective_scan --small > $OUT/memcheck.log 2>&1; echo "memcheck rc=$?"; tail -3 $OUT/memcheck.log
  timeout 60 compute-sanitizer --tool racecheck ./build/test_cuda_selective_scan --small > $OUT/racecheck.log 2>&1; echo "racecheck rc=$?"; tail -3 $OUT/racecheck.log
fi
echo "total $SECONDS s"
