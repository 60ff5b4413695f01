#!/bin/bash
# One device call for the flash attention kernels: build the library and the
# tools, the checks, compute-sanitizer on the quick checks, the timings (ours
# and torch SDPA flash in the same run).
# Usage (repository root): kernels/attention/tools/flash_device_run.sh OUTDIR [nosan]
OUT=${1:-/tmp/out}; mkdir -p $OUT
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader | tee $OUT/gpu.txt
cmake -S . -B build -DMB_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release >$OUT/cmake.log 2>&1
mkdir -p build
nvcc -std=c++17 -O3 -arch=sm_90 -I include -I src -I kernels -I reference kernels/attention/tools/flash_timing.cu \
  kernels/attention/flash_{fwd,bwd}.cu kernels/common.cu src/common.c -DMB_FLASH_PROFILE -o build/flash_timing > $OUT/timing_build.log 2>&1 &
TP=$!
cmake --build build -j16 --target mambabench > $OUT/build.log 2>&1 || { grep -E "error" $OUT/build.log | head; exit 1; }
echo "build done $SECONDS s"
NV="nvcc -std=c++17 -O2 -arch=sm_90 -I include -I tests"
$NV kernels/attention/tools/flash_check.cu -Lbuild -lmambabench -o build/flash_check || exit 1
wait $TP || { tail $OUT/timing_build.log; exit 1; }
export LD_LIBRARY_PATH=$PWD/build:$LD_LIBRARY_PATH
timeout 150 ./build/flash_check > $OUT/check.log 2>&1; echo "check rc=$? $SECONDS s"
grep -E "FAIL|PASSED|FAILED" $OUT/check.log | head -40
timeout 60 ./build/flash_timing > $OUT/timing.txt 2>&1; echo "timing rc=$? $SECONDS s"; cat $OUT/timing.txt
timeout 40 python3 kernels/attention/tools/torch_sdpa_timing.py > $OUT/torch.txt 2>&1; echo "torch rc=$?"; cat $OUT/torch.txt | tail -6
if [ "$2" != nosan ]; then
  timeout 60 compute-sanitizer --tool memcheck ./build/flash_check --quick > $OUT/memcheck.log 2>&1; echo "memcheck rc=$?"; tail -2 $OUT/memcheck.log
  FLASH_CHECK_ONLY=flash-v1,flash-v4,flash-v8,flash-v9,flash-v10,flash-atomic timeout 90 compute-sanitizer --tool racecheck ./build/flash_check --quick > $OUT/racecheck.log 2>&1; echo "racecheck rc=$?"; tail -2 $OUT/racecheck.log
fi
echo "total $SECONDS s"
