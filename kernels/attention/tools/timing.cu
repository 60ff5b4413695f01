/*
 * timing.cu -- quick timing of the attention CUDA versions of this folder (not
 * a test, not the benchmark harness). CUDA events, 3 warm-ups, the L2 flushed by
 * writing a 256 MB buffer before every timed run, median of 15.
 *   naive fwd and fwd+bwd   B 1, H 16, d 128, bf16, L = 1K, 2K, ... until the
 *                           workspace does not fit (MB_ERR_ALLOC); TFLOP/s with
 *                           the FlashAttention convention (fwd 2*B*H*L^2*d, bwd 2.5x)
 *   decode                  batch 8, H 16, H_kv 16, d 128, bf16, contexts 4K..128K;
 *                           GB/s of K/V read (2*B*H_kv*ctx*d*2 bytes) and the
 *                           ratio to torch SDPA (bench/anchors); batch 1 at 16K, 128K
 * Build (repository root; links the kernel sources directly):
 *   nvcc -std=c++17 -O3 -arch=sm_90 -I include -I src -I kernels -I reference \
 *     kernels/attention/tools/timing.cu kernels/attention/{naive,decode}.cu \
 *     kernels/common.cu src/common.c -lcublas -o attn_timing
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "attention/attention.h"
#include "tools/timing_tools.cuh"

/* n bf16 values uniform in [-2, 2) */
static void* bf(size_t n, unsigned s) { return bf(n, -2.f, 2.f, s); }

static void naive_sweep(const mb_exec* ex) {
    const long B = 1, H = 16, d = 128;
    const double anchor_f[] = {0.551, 1.91, 7.39, 30.6, 113}; /* SDPA math, L 1K..16K */
    printf("%-26s %10s %9s %10s %9s\n", "naive (B1 H16 d128 bf16)", "ms", "TFLOP/s", "peak MiB", "math/us");
    for (int li = 0; li < 6; li++) {
        const long L = 1024L << li;
        const size_t n = (size_t)B * H * L * d;
        void *q = bf(n, 1), *k = bf(n, 2), *v = bf(n, 3), *dout = bf(n, 4), *o, *lse, *dq, *dk, *dv;
        CK(cudaMalloc(&o, n * 2)); CK(cudaMalloc(&lse, B * H * L * 4));
        CK(cudaMalloc(&dq, n * 2)); CK(cudaMalloc(&dk, n * 2)); CK(cudaMalloc(&dv, n * 2));
        mb_attention_params p = {B, H, L, d, 0.0, MB_DTYPE_BF16, 0};
        mb_attention_inputs in = {q, k, v};
        mb_attention_grads g = {dq, dk, dv};
        const double flop = 2.0 * B * H * (double)L * L * d;
        mb_cuda_memory_reset_peak();
        double f = time_ms([&] { return mb_attention_fwd_cuda_naive(&p, &in, o, lse, ex); });
        double fmib = mb_cuda_memory_peak_bytes() / 1048576.0;
        mb_cuda_memory_reset_peak();
        double fb = f < 0 ? -1 : time_ms([&] {
            mb_status st = mb_attention_fwd_cuda_naive(&p, &in, o, lse, ex);
            return st != MB_OK ? st : mb_attention_bwd_cuda_naive(&p, &in, o, lse, dout, &g, ex);
        });
        double fbmib = mb_cuda_memory_peak_bytes() / 1048576.0;
        char name[64];
        snprintf(name, sizeof name, "fwd L=%ld", L);
        if (f < 0) printf("%-26s ALLOC (%s)\n", name, mb_last_error());
        else printf("%-26s %10.3f %9.1f %10.0f %9.2f\n", name, f, flop / f / 1e9, fmib, li < 5 ? anchor_f[li] / f : 0);
        snprintf(name, sizeof name, "fwd+bwd L=%ld", L);
        if (fb < 0) printf("%-26s ALLOC (%s)\n", name, mb_last_error());
        else printf("%-26s %10.3f %9.1f %10.0f\n", name, fb, 3.5 * flop / fb / 1e9, fbmib);
        void* ptrs[] = {q, k, v, dout, o, lse, dq, dk, dv};
        for (void* x : ptrs) cudaFree(x);
        CK(cudaDeviceSynchronize());
        cudaMemPool_t pool;
        CK(cudaDeviceGetDefaultMemPool(&pool, 0));
        CK(cudaMemPoolTrimTo(pool, 0));
        if (f < 0) break;
    }
}

/* one decode configuration: median ms and GB/s of K/V read */
static void decode_row(const char* what, mb_decode_tuning tune, long B, long ctx, void* q, void* k,
                       void* v, void* o, void* lse, long Lmax, const mb_exec* ex, double anchor_ms) {
    const long H = 16, d = 128;
    std::vector<int64_t> lens(B, ctx);
    mb_attention_decode_params p = {B, H, H, d, Lmax, 0.0, MB_DTYPE_BF16};
    mb_attention_decode_inputs in = {q, k, v, lens.data()};
    const double bytes = 2.0 * B * H * ctx * d * 2;
    double ms = time_ms([&] { return mb_attention_decode_cuda_tuned(&p, &in, o, lse, ex, &tune); }, 31);
    char name[64];
    snprintf(name, sizeof name, "%s B=%ld ctx=%ld", what, B, ctx);
    printf("%-34s %10.4f %9.0f", name, ms, bytes / ms / 1e6);
    if (anchor_ms > 0) printf(" %9.3f %6.2f", anchor_ms, anchor_ms / ms);
    printf("\n");
}

static void decode_sweep(const mb_exec* ex) {
    const long B = 8, H = 16, d = 128, Lmax = 131072;
    const size_t nkv = (size_t)B * H * Lmax * d;
    void *q = bf(B * H * d, 5), *k = bf(nkv, 6), *v = bf(nkv, 7), *o, *lse;
    CK(cudaMalloc(&o, B * H * d * 2)); CK(cudaMalloc(&lse, B * H * 4));
    printf("%-34s %10s %9s %9s %6s\n", "decode (H16 d128 bf16)", "ms", "GB/s", "SDPA ms", "ratio");
    const long ctxs[] = {512, 2048, 4096, 8192, 16384, 32768, 65536, 131072};
    const double anchor[] = {0.022, 0.060, 0, 0.191, 0, 0.709, 0, 2.78};
    /* v1, v2 (registered) and other split plans: {blocks per SM, min keys per split, PDL} */
    struct { const char* name; mb_decode_tuning t; } plans[] = {
        {"v1", {4, 256, 0}}, {"v2", {4, 128, 1}}, {"4/64/pdl", {4, 64, 1}}, {"8/64/pdl", {8, 64, 1}},
        {"2/128/pdl", {2, 128, 1}}, {"4/256/pdl", {4, 256, 1}}};
    for (int i = 0; i < 8; i++)
        for (auto& pl : plans) {
            if (i >= 3 && pl.name[0] != 'v') continue; /* plan variants: short caches only */
            decode_row(pl.name, pl.t, B, ctxs[i], q, k, v, o, lse, Lmax, ex, anchor[i]);
        }
    /* one sequence: the splits alone must fill the GPU */
    for (long ctx = 16384; ctx <= Lmax; ctx *= 8)
        for (int k2 = 0; k2 < 2; k2++) decode_row(plans[k2].name, plans[k2].t, 1, ctx, q, k, v, o, lse, Lmax, ex, 0);
    void* ptrs[] = {q, k, v, o, lse};
    for (void* x : ptrs) cudaFree(x);
}

int main(int argc, char** argv) {
    CK(cudaMalloc(&flushbuf, kFlush));
    mb_exec ex = {NULL};
    const bool decode_only = argc > 1 && argv[1][0] == 'd';
    decode_sweep(&ex);
    if (!decode_only) naive_sweep(&ex);
    return 0;
}
