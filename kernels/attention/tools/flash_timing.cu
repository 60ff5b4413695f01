/*
 * flash_timing.cu -- quick timing of the flash attention CUDA versions (not a
 * test, not the benchmark harness): B 1, H 16, d 128, bf16, causal, L = 1K ..
 * 16K. CUDA events around each call, 3 warm-ups, L2 flushed (256 MB memset)
 * before every timed call outside the events, median of 15.
 *   fwd       every flash forward version
 *   bwd       every flash backward version, with the time of each of its three
 *             kernels (preprocess, dK dV, dQ), and fwd+bwd (with the forward
 *             FLASH_TIMING_PAIR_FWD names, flash-v4 by default)
 * TFLOP/s with the FlashAttention convention: causal fwd 2*B*H*L^2*d, bwd 2.5x.
 * Build (repository root; links the kernel sources, calls the versions directly):
 *   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -DMB_HAVE_SM90A \
 *     -I include -I src -I kernels -I reference kernels/attention/tools/flash_timing.cu \
 *     kernels/attention/flash_{fwd,bwd,fwd_sm90,bwd_sm90}.cu kernels/common.cu src/common.c \
 *     -DMB_FLASH_PROFILE -o build/flash_timing
 * Run: ./build/flash_timing [maxL]   (FLASH_TIMING_ONLY="flash-v8,flash-v9": only those versions)
 * tools/torch_sdpa_timing.py times torch SDPA (flash backend) the same way.
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <vector>

#include "attention/flash.h"
#include "flash_tools.h"
#include "impl.h"


__global__ void fill_normalish(__nv_bfloat16* p, size_t n, unsigned seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
        p[i] = __float2bfloat16(((h & 0xFFFFFF) / 16777216.f - 0.5f) * 3.4f);
    }
}

static void* rand_bf16(size_t n, unsigned seed) {
    void* p;
    CK(cudaMalloc(&p, n * 2));
    fill_normalish<<<1024, 256>>>((__nv_bfloat16*)p, n, seed);
    return p;
}

static char* flush_buf;
static const size_t kFlush = 256u << 20;

template <typename F> static double median_ms(F&& f, int reps = 15) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < 3; i++) f();
    CK(cudaDeviceSynchronize());
    std::vector<float> v;
    for (int i = 0; i < reps; i++) {
        CK(cudaMemsetAsync(flush_buf, i & 0xFF, kFlush));
        CK(cudaEventRecord(a));
        f();
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        v.push_back(ms);
    }
    std::sort(v.begin(), v.end());
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return v[v.size() / 2];
}

extern "C" {
int mb_flash_profile = 0;
cudaEvent_t mb_flash_prof_ev[4];
}

struct FwdVersion {
    const char* name;
    mb_attention_fwd_fn fn;
};
struct BwdVersion {
    const char* name;
    mb_attention_bwd_fn fn;
};
static const FwdVersion kFwd[] = {
    {"flash-v1", mb_attention_fwd_cuda_flash_v1}, {"flash-v2", mb_attention_fwd_cuda_flash_v2},
    {"flash-v3", mb_attention_fwd_cuda_flash_v3}, {"flash-v4", mb_attention_fwd_cuda_flash_v4},
    {"flash-v5", mb_attention_fwd_cuda_flash_v5}, {"flash-v6", mb_attention_fwd_cuda_flash_v6},
    {"flash-v7", mb_attention_fwd_cuda_flash_v7}, {"flash-v8", mb_attention_fwd_cuda_flash_v8},
    {"flash-v9", mb_attention_fwd_cuda_flash_v9}, {"flash-v10", mb_attention_fwd_cuda_flash_v10},
    {"flash-v11", mb_attention_fwd_cuda_flash_v11},
};
/* flash-v13 with parts left out (wrong results, timing only): see DqExperiment in flash_bwd.cu */
extern "C" mb_status mb_flash_bwd_experiment(int bits, const mb_attention_params* p,
                                             const mb_attention_inputs* in, const void* o,
                                             const void* lse, const void* dout,
                                             const mb_attention_grads* g, const mb_exec* ex);
#define FLASH_EXPERIMENT(name, bits)                                                              \
    static mb_status name(const mb_attention_params* p, const mb_attention_inputs* in,            \
                          const void* o, const void* lse, const void* dout,                       \
                          const mb_attention_grads* g, const mb_exec* ex) {                       \
        return mb_flash_bwd_experiment(bits, p, in, o, lse, dout, g, ex);                         \
    }
FLASH_EXPERIMENT(exp_nowait, 1)
FLASH_EXPERIMENT(exp_norelease, 3)
FLASH_EXPERIMENT(exp_nofetch, 7)
FLASH_EXPERIMENT(exp_nostore, 15)

static const BwdVersion kBwd[] = {
    {"flash-v1", mb_attention_bwd_cuda_flash_v1}, {"flash-v2", mb_attention_bwd_cuda_flash_v2},
    {"flash-v3", mb_attention_bwd_cuda_flash_v3}, {"flash-v4", mb_attention_bwd_cuda_flash_v4},
    {"flash-v5", mb_attention_bwd_cuda_flash_v5}, {"flash-v6", mb_attention_bwd_cuda_flash_v6},
    {"flash-v7", mb_attention_bwd_cuda_flash_v7}, {"flash-v8", mb_attention_bwd_cuda_flash_v8},
    {"flash-v9", mb_attention_bwd_cuda_flash_v9}, {"flash-v10", mb_attention_bwd_cuda_flash_v10},
    {"flash-v13", mb_attention_bwd_cuda_flash_v13}, {"flash-v14", mb_attention_bwd_cuda_flash_v14},
    {"exp-nowait", exp_nowait},          {"exp-nowait-norelease", exp_norelease},
    {"exp-nosync-nofetch", exp_nofetch}, {"exp-dq-product-only", exp_nostore},
    {"flash-atomic", mb_attention_bwd_cuda_flash_atomic},
};

/* the three kernels of one backward call, ms each (one profiled run) */
static void bwd_split(const BwdVersion& ver, const mb_attention_params* p,
                      const mb_attention_inputs* in, void* o, void* lse, void* dout,
                      const mb_attention_grads* g, const mb_exec* ex, float split[3]) {
    mb_flash_profile = 1;
    CK(cudaMemsetAsync(flush_buf, 0, kFlush));
    MB(ver.fn(p, in, o, lse, dout, g, ex));
    CK(cudaDeviceSynchronize());
    mb_flash_profile = 0;
    for (int i = 0; i < 3; i++)
        CK(cudaEventElapsedTime(&split[i], mb_flash_prof_ev[i], mb_flash_prof_ev[i + 1]));
}

int main(int argc, char** argv) {
    const long maxL = argc > 1 ? atol(argv[1]) : 16384;
    // the forward of the fwd+bwd column: FLASH_TIMING_PAIR_FWD (a forward version's name), else flash-v4
    const char* pair_name = getenv("FLASH_TIMING_PAIR_FWD") ? getenv("FLASH_TIMING_PAIR_FWD") : "flash-v4";
    mb_attention_fwd_fn pair_fwd = NULL;
    for (const FwdVersion& ver : kFwd)
        if (strcmp(ver.name, pair_name) == 0) pair_fwd = ver.fn;
    if (!pair_fwd) {
        fprintf(stderr, "flash_timing: no forward version %s\n", pair_name);
        return 2;
    }
    const int64_t B = 1, H = 16, d = 128;
    CK(cudaMalloc(&flush_buf, kFlush));
    for (int i = 0; i < 4; i++) CK(cudaEventCreate(&mb_flash_prof_ev[i]));
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("%s, B %lld H %lld d %lld bf16 causal; median of 15, L2 flushed; fwd+bwd with fwd %s\n",
           prop.name, (long long)B, (long long)H, (long long)d, pair_name);
    for (int64_t L = 1024; L <= maxL; L *= 2) {
        const size_t n = (size_t)(B * H * L * d);
        void *q = rand_bf16(n, 1), *k = rand_bf16(n, 2), *v = rand_bf16(n, 3), *dout = rand_bf16(n, 4);
        void *o, *lse, *dq, *dk, *dv;
        CK(cudaMalloc(&o, n * 2));
        CK(cudaMalloc(&lse, B * H * L * 4));
        CK(cudaMalloc(&dq, n * 2));
        CK(cudaMalloc(&dk, n * 2));
        CK(cudaMalloc(&dv, n * 2));
        mb_attention_params p = {B, H, L, d, 0.0, MB_DTYPE_BF16, 0};
        mb_attention_inputs in = {q, k, v};
        mb_attention_grads g = {dq, dk, dv};
        const double flops = 2.0 * B * H * (double)L * L * d;
        const mb_exec ex = {NULL};
        for (const FwdVersion& ver : kFwd) {
            if (!env_list_selects("FLASH_TIMING_ONLY", ver.name)) continue;
            const double ms = median_ms([&] { ver.fn(&p, &in, o, lse, &ex); });
            printf("L %6lld  fwd      %-12s %9.4f ms  %6.1f TFLOP/s\n", (long long)L, ver.name, ms,
                   flops / ms * 1e-9);
        }
        MB(pair_fwd(&p, &in, o, lse, &ex)); // the backward's o, lse
        for (const BwdVersion& ver : kBwd) {
            if (!env_list_selects("FLASH_TIMING_ONLY", ver.name)) continue;
            const double bwd = median_ms([&] { ver.fn(&p, &in, o, lse, dout, &g, &ex); });
            const double both = median_ms([&] {
                pair_fwd(&p, &in, o, lse, &ex);
                ver.fn(&p, &in, o, lse, dout, &g, &ex);
            });
            float split[3];
            bwd_split(ver, &p, &in, o, lse, dout, &g, &ex, split);
            printf("L %6lld  bwd      %-12s %9.4f ms  %6.1f TFLOP/s  (pre %.3f dKdV %.3f dQ %.3f)"
                   "  fwd+bwd %9.4f ms  %6.1f TFLOP/s\n",
                   (long long)L, ver.name, bwd, 2.5 * flops / bwd * 1e-9, split[0], split[1],
                   split[2], both, 3.5 * flops / both * 1e-9);
        }
        CK(cudaGetLastError());
        for (void* ptr : {q, k, v, dout, o, lse, dq, dk, dv}) CK(cudaFree(ptr));
    }
    return 0;
}
