#!/bin/bash
# One device call for the flash attention kernels: build the library, the CUDA
# attention test and the tools; the timings alone on the GPU (ours, then torch
# SDPA flash unless notorch); then in parallel test_cuda_attention, flash_check
# and compute-sanitizer racecheck (and memcheck unless nosan) on the quick checks.
# Usage (repository root): kernels/attention/tools/flash_device_run.sh OUTDIR [nosan] [notorch]
# (FLASH_TIMING_MAXL: the longest timed L, 16384; FLASH_TIMING_ONLY: see flash_timing.cu)
OUT=${1:-/tmp/out}; mkdir -p $OUT
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader | tee $OUT/gpu.txt
cmake -S . -B build -DMB_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90a -DCMAKE_BUILD_TYPE=Release >$OUT/cmake.log 2>&1
mkdir -p build
nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -DMB_HAVE_SM90A -I include -I src -I kernels -I reference kernels/attention/tools/flash_timing.cu \
  kernels/attention/flash_{fwd,bwd,fwd_sm90,bwd_sm90}.cu kernels/common.cu src/common.c -DMB_FLASH_PROFILE -o build/flash_timing > $OUT/timing_build.log 2>&1 &
TP=$!
cmake --build build -j16 --target mambabench test_cuda_attention > $OUT/build.log 2>&1 || { grep -E "error" $OUT/build.log | head; exit 1; }
echo "build done $SECONDS s"
NV="nvcc -std=c++17 -O2 -arch=sm_90 -I include -I tests"
$NV kernels/attention/tools/flash_check.cu -Lbuild -lmambabench -o build/flash_check || exit 1
wait $TP || { tail $OUT/timing_build.log; exit 1; }
export LD_LIBRARY_PATH=$PWD/build:$LD_LIBRARY_PATH
timeout 200 ./build/flash_timing ${FLASH_TIMING_MAXL:-16384} > $OUT/timing.txt 2>&1; echo "timing rc=$? $SECONDS s"; cat $OUT/timing.txt
if [[ " $* " != *" notorch "* ]]; then
  timeout 60 python3 kernels/attention/tools/torch_sdpa_timing.py ${FLASH_TIMING_MAXL:-16384} > $OUT/torch.txt 2>&1; echo "torch rc=$?"; tail -6 $OUT/torch.txt
fi
ONLY=flash-v1,flash-v4,flash-v8,flash-v9,flash-v10,flash-v11,flash-v14,flash-atomic
(timeout 200 ./build/test_cuda_attention > $OUT/test_cuda_attention.log 2>&1; echo "test_cuda_attention rc=$?" > $OUT/t1.rc) &
(timeout 200 ./build/flash_check > $OUT/check.log 2>&1; echo "flash_check rc=$?" > $OUT/t2.rc) &
(FLASH_CHECK_ONLY=$ONLY timeout 200 compute-sanitizer --tool racecheck ./build/flash_check --quick > $OUT/racecheck.log 2>&1; echo "racecheck rc=$?" > $OUT/t3.rc) &
if [[ " $* " != *" nosan "* ]]; then
  (FLASH_CHECK_ONLY=$ONLY timeout 200 compute-sanitizer --tool memcheck ./build/flash_check --quick > $OUT/memcheck.log 2>&1; echo "memcheck rc=$?" > $OUT/t4.rc) &
fi
wait
cat $OUT/t*.rc
tail -1 $OUT/test_cuda_attention.log; grep -E "FAIL" $OUT/test_cuda_attention.log | head -20
grep -E "FAIL|PASSED|FAILED" $OUT/check.log | head -20
tail -2 $OUT/racecheck.log; [ -f $OUT/memcheck.log ] && tail -2 $OUT/memcheck.log
echo "total $SECONDS s"
