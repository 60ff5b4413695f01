/*
 * timing_tools.cuh -- what the quick timing programs of kernels/<op>/tools/
 * share (not the benchmark harness, not a test): a CUDA check that exits,
 * device buffers of hashed uniform values, the L2 flush buffer and the median
 * time of a call by CUDA events.
 */
#ifndef MB_KERNELS_TIMING_TOOLS_CUH
#define MB_KERNELS_TIMING_TOOLS_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <vector>

#include "mambabench.h"
#include "env_list.h"

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

/* element i of a buffer: uniform in [lo, hi) from a hash of (i, seed) */
__device__ inline float hashed_uniform(size_t i, float lo, float hi, unsigned seed) {
    unsigned h = (unsigned)i * 2654435761u ^ seed;
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
    return lo + (hi - lo) * (h & 0xFFFFFF) / 16777216.f;
}
template <typename T>
__global__ void fill_uniform(T* p, size_t n, float lo, float hi, unsigned seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = (T)hashed_uniform(i, lo, hi, seed);
}
/* n bf16 (bf) or fp32 (ff) values uniform in [lo, hi), 16 spare bytes after them */
static inline void* bf(size_t n, float lo, float hi, unsigned s) { void* p; CK(cudaMalloc(&p, n * 2 + 16)); fill_uniform<<<1024, 256>>>((__nv_bfloat16*)p, n, lo, hi, s); return p; }
static inline void* ff(size_t n, float lo, float hi, unsigned s) { void* p; CK(cudaMalloc(&p, n * 4 + 16)); fill_uniform<<<1024, 256>>>((float*)p, n, lo, hi, s); return p; }

/* written before every timed run, so the run reads from HBM (main allocates it) */
static char* flushbuf;
static const size_t kFlush = 256u << 20;

/* The median ms of f() over reps runs, after 3 warm-ups and an L2 flush before
 * each run; when f returns an mb_status, -1 if a warm-up call failed. */
template <typename F>
static double time_ms(F&& f, int reps = 15) {
    cudaEvent_t a, b;
    cudaEventCreate(&a), cudaEventCreate(&b);
    for (int i = 0; i < 3; i++) {
        if constexpr (std::is_same_v<decltype(f()), mb_status>) {
            if (f() != MB_OK) return -1;
        } else {
            f();
        }
    }
    CK(cudaDeviceSynchronize());
    std::vector<float> v;
    for (int i = 0; i < reps; i++) {
        CK(cudaMemsetAsync(flushbuf, i & 0xFF, kFlush));
        cudaEventRecord(a);
        f();
        cudaEventRecord(b);
        CK(cudaEventSynchronize(b));
        float ms;
        cudaEventElapsedTime(&ms, a, b);
        v.push_back(ms);
    }
    CK(cudaGetLastError());
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

#endif /* MB_KERNELS_TIMING_TOOLS_CUH */
