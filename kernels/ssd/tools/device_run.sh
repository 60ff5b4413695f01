#!/bin/bash
# One device call: build, the CUDA tests of the SSD, a sanitizer pass on a small run, the timings.
# Usage (repository root): kernels/ssd/tools/device_run.sh OUTDIR [sanitize]
OUT=${1:-/tmp/out}; mkdir -p $OUT
set -o pipefail
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader | tee $OUT/gpu.txt
cmake -S . -B build -DMB_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90a >/dev/null && cmake --build build -j16 --target test_cuda_ssd test_cuda_backend 2>&1 | grep -E "error|Error" ; echo "build done $SECONDS s"
nvcc -std=c++17 -O3 -arch=sm_90 -I include -I src -I kernels -I reference kernels/ssd/tools/timing.cu kernels/ssd/{fwd,step}.cu kernels/common.cu src/common.c -o build/ssd_timing &
TP=$!
timeout 200 ./build/test_cuda_ssd > $OUT/test.log 2>&1; echo "test_cuda_ssd rc=$? $SECONDS s"
grep -E "FAIL|checks, |SKIP" $OUT/test.log | head -40
timeout 60 ./build/test_cuda_backend > $OUT/backend.log 2>&1; echo "test_cuda_backend rc=$?"; grep -E "FAIL|checks" $OUT/backend.log | head
wait $TP
timeout 120 ./build/ssd_timing 2>&1 | tee $OUT/timing.txt
if [ "$2" = sanitize ]; then
  timeout 90 compute-sanitizer --tool memcheck ./build/test_cuda_ssd --small > $OUT/memcheck.log 2>&1; echo "memcheck rc=$?"; tail -3 $OUT/memcheck.log
  timeout 60 compute-sanitizer --tool racecheck ./build/test_cuda_ssd --small > $OUT/racecheck.log 2>&1; echo "racecheck rc=$?"; tail -3 $OUT/racecheck.log
fi
echo "total $SECONDS s"
