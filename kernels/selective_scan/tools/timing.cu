/*
 * timing.cu -- quick timing of the selective-scan CUDA versions (not a test,
 * not the benchmark harness): canonical shape D 4096, N 16, G 1, bf16,
 * softplus, D and delta_bias, batch 1. CUDA events, 3 warm-ups, the L2 flushed
 * by writing a 256 MB buffer before every timed run, median of 15.
 *   fwd (with z, as the anchors) L = 2K, 8K, 16K, 128K, every fwd version; N 256 at L 4K (no z)
 *   (SCAN_TIMING_FWD / SCAN_TIMING_BWD = "v7,v10": only those versions;
 *    SCAN_TIMING_L = 16384: only that L, and no N 256 or step part)
 *   fwd+bwd (with z) L = 2K, 8K, 16K, 128K, fwd v7 + every bwd version, and each bwd kernel's time
 *   step            batch 8, D 4096, N 16
 *   SCAN_TIMING_PAIR=1: instead, the training pair (fwd v20 saving its chunk states, bwd v8
 *                   reading them) at L 2K..32K with its backward's kernels (build with
 *                   -DMB_SCAN_BWD_OLD_SPLIT [-DMB_SCAN_BWD_WARPS_PER_SM=W] to measure the
 *                   gradient kernel's split of the channels by a warp count instead of waves)
 *   SCAN_TIMING_GRID=1: instead, fwd (with z) of v7, v12, v13, v14, v17 over N 16..256 x
 *                   L 512..32K (where the default's dispatch should switch between them)
 * Build (from the repository root; links the kernel sources directly, the
 * library exports only the public API):
 *   nvcc -std=c++17 -O3 -arch=sm_90 -I include -I src -I kernels -I reference \
 *     kernels/selective_scan/tools/timing.cu kernels/selective_scan/{fwd,fwd_seg,bwd,step}.cu \
 *     kernels/common.cu src/common.c -DMB_SCAN_PROFILE -o timing
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "impl.h"
#include "selective_scan/selective_scan.h"
#include "tools/timing_tools.cuh"

#ifndef MB_SCAN_BWD_WARPS_PER_SM
#define MB_SCAN_BWD_WARPS_PER_SM_PRINT 64
#else
#define MB_SCAN_BWD_WARPS_PER_SM_PRINT MB_SCAN_BWD_WARPS_PER_SM
#endif
extern "C" { int mb_scan_profile = 0; }
extern "C" { cudaEvent_t mb_scan_prof_ev[6]; }

/* The training pair (fwd v20 saving its chunk states, then bwd v8 reading them), with z,
 * D 4096, N 16, and each kernel of its backward (one profiled run) */
static void pair_timing(const mb_exec* ex0) {
    const long D = 4096, N = 16;
    const long Ls[] = {2048, 4096, 8192, 16384, 32768};
    const double anchor_fb[] = {0.939, 1.761, 3.855, 7.411, 14.30};
#ifdef MB_SCAN_BWD_OLD_SPLIT
    printf("pair (fwd v20 save + bwd v8 saved), with z, D 4096, N 16; channel split: %d warps per SM\n",
           MB_SCAN_BWD_WARPS_PER_SM_PRINT);
#else
    printf("pair (fwd v20 save + bwd v8 saved), with z, D 4096, N 16; channel split: full waves\n");
#endif
    for (int li = 0; li < 5; li++) {
        const long L = Ls[li];
        size_t BDL = (size_t)D * L, NL = (size_t)N * L, nch = (L + MB_SCAN_CHUNK - 1) / MB_SCAN_CHUNK;
        void *u = bf(BDL, -1, 1, 1), *dl = bf(BDL, -3, 0.5, 2), *z = bf(BDL, -2, 2, 3), *dy = bf(BDL, -1, 1, 4);
        void *Bm = bf(NL, -1, 1, 5), *Cm = bf(NL, -1, 1, 6), *A = ff(D * N, -2, -0.1, 7), *Dv = ff(D, -1, 1, 8), *bias = ff(D, -1, 0.5, 9);
        void *y, *fs, *st, *gu, *gd, *gz, *gA, *gB, *gC, *gD, *gb;
        CK(cudaMalloc(&y, BDL * 2)); CK(cudaMalloc(&fs, D * N * 4)); CK(cudaMalloc(&st, D * nch * N * 4));
        CK(cudaMalloc(&gu, BDL * 2)); CK(cudaMalloc(&gd, BDL * 2)); CK(cudaMalloc(&gz, BDL * 2));
        CK(cudaMalloc(&gA, D * N * 4)); CK(cudaMalloc(&gB, NL * 2)); CK(cudaMalloc(&gC, NL * 2));
        CK(cudaMalloc(&gD, D * 4)); CK(cudaMalloc(&gb, D * 4));
        mb_selective_scan_params p = {1, D, L, N, 1, MB_DTYPE_BF16, 1};
        mb_selective_scan_inputs in = {u, dl, A, Bm, Cm, Dv, z, bias};
        mb_selective_scan_grads g = {gu, gd, gA, gB, gC, gD, gz, gb};
        int written = 0;
        mb_exec ex = *ex0;
        ex.scan_states = (float*)st;
        ex.scan_states_written = &written;
        auto pair = [&] {
            written = 0;
            mb_scan_fwd_cuda_v20(&p, &in, y, fs, &ex);
            if (!written) mb_scan_chunk_states_cuda(&p, &in, &ex);
            mb_scan_bwd_cuda_v8(&p, &in, dy, &g, &ex);
        };
        const double ms = time_ms(pair);
        const double fwd = time_ms([&] { written = 0; mb_scan_fwd_cuda_v20(&p, &in, y, fs, &ex); });
        CK(cudaMemsetAsync(flushbuf, 1, kFlush));
        mb_scan_profile = 1;
        mb_scan_bwd_cuda_v8(&p, &in, dy, &g, &ex);
        mb_scan_profile = 0;
        CK(cudaDeviceSynchronize());
        float t[4];
        for (int k = 0; k < 4; k++) cudaEventElapsedTime(&t[k], mb_scan_prof_ev[k], mb_scan_prof_ev[k + 1]);
        printf("pair L=%-6ld %9.4f ms  anchor %.3f  ratio %.3f  (fwd_save %.4f; bwd: local %.4f combine %.4f grads %.4f reduce %.4f)\n",
               L, ms, anchor_fb[li], anchor_fb[li] / ms, fwd, t[0], t[1], t[2], t[3]);
        void* ptrs[] = {u, dl, z, dy, Bm, Cm, A, Dv, bias, y, fs, st, gu, gd, gz, gA, gB, gC, gD, gb};
        for (void* q : ptrs) cudaFree(q);
    }
}

/* fwd with z, D 4096, of the dispatch candidates over N x L: one line per (N, L) */
static void dispatch_grid(const mb_exec* ex) {
    const long D = 4096;
    struct { const char* name; mb_scan_fwd_fn f; } fwds[] = {{"v7", mb_scan_fwd_cuda_v7}, {"v12", mb_scan_fwd_cuda_v12}, {"v13", mb_scan_fwd_cuda_v13}, {"v14", mb_scan_fwd_cuda_v14}, {"v17", mb_scan_fwd_cuda_v17}};
    printf("grid: fwd with z, D 4096, ms (median of 15)\n%-6s %-7s", "N", "L");
    for (auto& fw : fwds) printf(" %9s", fw.name);
    printf("\n");
    for (long N : {16L, 32L, 64L, 128L, 256L})
        for (long L : {512L, 1024L, 2048L, 4096L, 8192L, 16384L, 32768L}) {
            size_t BDL = (size_t)D * L, NL = (size_t)N * L;
            void *u = bf(BDL, -1, 1, 1), *dl = bf(BDL, -3, 0.5, 2), *z = bf(BDL, -2, 2, 3);
            void *Bm = bf(NL, -1, 1, 5), *Cm = bf(NL, -1, 1, 6), *A = ff(D * N, -2, -0.1, 7);
            void *Dv = ff(D, -1, 1, 8), *bias = ff(D, -1, 0.5, 9), *y, *fs;
            CK(cudaMalloc(&y, BDL * 2)); CK(cudaMalloc(&fs, D * N * 4));
            mb_selective_scan_params p = {1, D, L, N, 1, MB_DTYPE_BF16, 1};
            mb_selective_scan_inputs in = {u, dl, A, Bm, Cm, Dv, z, bias};
            printf("%-6ld %-7ld", N, L);
            for (auto& fw : fwds) printf(" %9.4f", time_ms([&] { return fw.f(&p, &in, y, fs, ex); }));
            printf("\n");
            fflush(stdout);
            void* ptrs[] = {u, dl, z, Bm, Cm, A, Dv, bias, y, fs};
            for (void* q : ptrs) cudaFree(q);
        }
}

int main() {
    CK(cudaMalloc(&flushbuf, kFlush));
    for (int k = 0; k < 6; k++) CK(cudaEventCreate(&mb_scan_prof_ev[k]));
    mb_exec ex = {NULL};
    if (getenv("SCAN_TIMING_GRID")) {
        dispatch_grid(&ex);
        return 0;
    }
    if (getenv("SCAN_TIMING_PAIR")) {
        pair_timing(&ex);
        return 0;
    }
    const long D = 4096;
    struct { const char* name; mb_scan_fwd_fn f; } fwds[] = {{"v1", mb_scan_fwd_cuda_v1}, {"v2", mb_scan_fwd_cuda_v2}, {"v3", mb_scan_fwd_cuda_v3}, {"v4", mb_scan_fwd_cuda_v4}, {"v5", mb_scan_fwd_cuda_v5}, {"v6", mb_scan_fwd_cuda_v6}, {"v7", mb_scan_fwd_cuda_v7}, {"v8", mb_scan_fwd_cuda_v8}, {"v9", mb_scan_fwd_cuda_v9}, {"v10", mb_scan_fwd_cuda_v10}, {"v11", mb_scan_fwd_cuda_v11}, {"v12", mb_scan_fwd_cuda_v12}, {"v13", mb_scan_fwd_cuda_v13}, {"v14", mb_scan_fwd_cuda_v14}, {"v16", mb_scan_fwd_cuda_v16}, {"v17", mb_scan_fwd_cuda_v17}, {"v18", mb_scan_fwd_cuda_v18}, {"v19", mb_scan_fwd_cuda_v19}, {"v20", mb_scan_fwd_cuda_v20}};
    struct { const char* name; mb_scan_bwd_fn f; } bwds[] = {{"v1", mb_scan_bwd_cuda_v1}, {"v2", mb_scan_bwd_cuda_v2}, {"v3", mb_scan_bwd_cuda_v3}, {"v4", mb_scan_bwd_cuda_v4}, {"v5", mb_scan_bwd_cuda_v5}, {"v6", mb_scan_bwd_cuda_v6}, {"v7", mb_scan_bwd_cuda_v7}, {"v8", mb_scan_bwd_cuda_v8}, {"v9", mb_scan_bwd_cuda_v9}};
    const long Ls[] = {2048, 8192, 16384, 131072};
    const double anchor_f[] = {0.160, 0.771, 1.61, 11.7}, anchor_fb[] = {0.939, 3.86, 7.41, 58.0};
    printf("%-28s %10s %10s %8s\n", "what", "ms", "anchor", "ratio");
    const long onlyL = getenv("SCAN_TIMING_L") ? atol(getenv("SCAN_TIMING_L")) : 0; /* one L (profiling) */
    for (int li = 0; li < 4; li++) {
        if (onlyL && Ls[li] != onlyL) continue;
        long L = Ls[li], N = 16;
        size_t BDL = (size_t)D * L, NL = (size_t)N * L;
        void *u = bf(BDL, -1, 1, 1), *dl = bf(BDL, -3, 0.5, 2), *z = bf(BDL, -2, 2, 3), *dy = bf(BDL, -1, 1, 4);
        void *Bm = bf(NL, -1, 1, 5), *Cm = bf(NL, -1, 1, 6), *A = ff(D * N, -2, -0.1, 7), *Dv = ff(D, -1, 1, 8), *bias = ff(D, -1, 0.5, 9);
        void *y, *fs, *gu, *gd, *gz, *gA, *gB, *gC, *gD, *gb;
        CK(cudaMalloc(&y, BDL * 2)); CK(cudaMalloc(&fs, D * N * 4));
        CK(cudaMalloc(&gu, BDL * 2)); CK(cudaMalloc(&gd, BDL * 2)); CK(cudaMalloc(&gz, BDL * 2));
        CK(cudaMalloc(&gA, D * N * 4)); CK(cudaMalloc(&gB, NL * 2)); CK(cudaMalloc(&gC, NL * 2));
        CK(cudaMalloc(&gD, D * 4)); CK(cudaMalloc(&gb, D * 4));
        mb_selective_scan_params p = {1, D, L, N, 1, MB_DTYPE_BF16, 1};
        mb_selective_scan_inputs in_z = {u, dl, A, Bm, Cm, Dv, z, bias};
        mb_selective_scan_grads g = {gu, gd, gA, gB, gC, gD, gz, gb};
        char name[64];
        for (auto& fw : fwds) {
            if (!env_list_selects("SCAN_TIMING_FWD", fw.name)) continue;
            double ms = time_ms([&] { fw.f(&p, &in_z, y, fs, &ex); });
            snprintf(name, sizeof name, "fwd %s L=%ld", fw.name, L);
            printf("%-28s %10.4f %10.3f %8.2f\n", name, ms, anchor_f[li], anchor_f[li] / ms);
        }
        for (auto& bw : bwds) {
            if (!env_list_selects("SCAN_TIMING_BWD", bw.name)) continue;
            double ms = time_ms([&] { mb_scan_fwd_cuda_v7(&p, &in_z, y, fs, &ex); bw.f(&p, &in_z, dy, &g, &ex); });
            snprintf(name, sizeof name, "fwd+bwd %s L=%ld", bw.name, L);
            printf("%-28s %10.4f %10.3f %8.2f\n", name, ms, anchor_fb[li], anchor_fb[li] / ms);
        }
        /* the newest fwd versions with the newest bwd versions */
        struct { const char* name; mb_scan_fwd_fn f; } fwd2[] = {{"v8", mb_scan_fwd_cuda_v8}, {"v9", mb_scan_fwd_cuda_v9}, {"v10", mb_scan_fwd_cuda_v10}, {"v11", mb_scan_fwd_cuda_v11}, {"v12", mb_scan_fwd_cuda_v12}, {"v13", mb_scan_fwd_cuda_v13}, {"v14", mb_scan_fwd_cuda_v14}, {"v19", mb_scan_fwd_cuda_v19}, {"v20", mb_scan_fwd_cuda_v20}};
        struct { const char* name; mb_scan_bwd_fn f; } bwd2[] = {{"v5", mb_scan_bwd_cuda_v5}, {"v6", mb_scan_bwd_cuda_v6}, {"v7", mb_scan_bwd_cuda_v7}, {"v8", mb_scan_bwd_cuda_v8}, {"v9", mb_scan_bwd_cuda_v9}};
        for (auto& fw : fwd2)
            for (auto& bw : bwd2) {
                if (!env_list_selects("SCAN_TIMING_FWD", fw.name) || !env_list_selects("SCAN_TIMING_BWD", bw.name)) continue;
                double ms = time_ms([&] { fw.f(&p, &in_z, y, fs, &ex); bw.f(&p, &in_z, dy, &g, &ex); });
                snprintf(name, sizeof name, "fwd %s+bwd %s L=%ld", fw.name, bw.name, L);
                printf("%-28s %10.4f %10.3f %8.2f\n", name, ms, anchor_fb[li], anchor_fb[li] / ms);
            }
        for (auto& bw : bwds) { /* one profiled backward: time of each kernel */
            if (!env_list_selects("SCAN_TIMING_BWD", bw.name)) continue;
            CK(cudaMemsetAsync(flushbuf, 1, kFlush));
            mb_scan_profile = 1;
            bw.f(&p, &in_z, dy, &g, &ex);
            mb_scan_profile = 0;
            CK(cudaDeviceSynchronize());
            float t[4];
            for (int k = 0; k < 4; k++) cudaEventElapsedTime(&t[k], mb_scan_prof_ev[k], mb_scan_prof_ev[k + 1]);
            printf("  bwd %s L=%ld kernels: local %.3f combine %.3f grads %.3f reduce %.3f ms\n", bw.name, L, t[0], t[1], t[2], t[3]);
        }
        void* ptrs[] = {u, dl, z, dy, Bm, Cm, A, Dv, bias, y, fs, gu, gd, gz, gA, gB, gC, gD, gb};
        for (void* q : ptrs) cudaFree(q);
    }
    if (!onlyL) { /* N 256 at L 4096, fwd without z */
        long L = 4096, N = 256;
        size_t BDL = (size_t)D * L, NL = (size_t)N * L;
        void *u = bf(BDL, -1, 1, 1), *dl = bf(BDL, -3, 0.5, 2), *Bm = bf(NL, -1, 1, 5), *Cm = bf(NL, -1, 1, 6);
        void *A = ff(D * N, -2, -0.1, 7), *Dv = ff(D, -1, 1, 8), *bias = ff(D, -1, 0.5, 9), *y, *fs;
        CK(cudaMalloc(&y, BDL * 2)); CK(cudaMalloc(&fs, D * N * 4));
        mb_selective_scan_params p = {1, D, L, N, 1, MB_DTYPE_BF16, 1};
        mb_selective_scan_inputs in = {u, dl, A, Bm, Cm, Dv, NULL, bias};
        for (auto& fw : fwds) {
            if (!env_list_selects("SCAN_TIMING_FWD", fw.name)) continue;
            double ms = time_ms([&] { fw.f(&p, &in, y, fs, &ex); });
            printf("fwd %s N=256 L=4096        %10.4f %10.3f %8.2f\n", fw.name, ms, 4.00, 4.00 / ms);
        }
        void* ptrs[] = {u, dl, Bm, Cm, A, Dv, bias, y, fs};
        for (void* q : ptrs) cudaFree(q);
    }
    if (!onlyL) { /* step, batch 8 */
        long Bb = 8, N = 16;
        void *u = bf(Bb * D, -1, 1, 1), *dl = bf(Bb * D, -3, 0.5, 2), *z = bf(Bb * D, -2, 2, 3);
        void *Bm = bf(Bb * N, -1, 1, 5), *Cm = bf(Bb * N, -1, 1, 6), *A = ff(D * N, -2, -0.1, 7);
        void *Dv = ff(D, -1, 1, 8), *bias = ff(D, -1, 0.5, 9), *st = ff(Bb * D * N, -1, 1, 10), *y;
        CK(cudaMalloc(&y, Bb * D * 2));
        mb_selective_scan_params p = {Bb, D, 1, N, 1, MB_DTYPE_BF16, 1};
        mb_selective_scan_inputs in = {u, dl, A, Bm, Cm, Dv, z, bias};
        mb_scan_step_fn steps[3] = {mb_scan_step_cuda_v1, mb_scan_step_cuda_v2, mb_scan_step_cuda_v3};
        for (int k = 0; k < 3; k++) {
            double ms = time_ms([&] { steps[k](&p, &in, st, y, &ex); }, 51);
            printf("step v%d B=8 (event-timed)    %10.4f %10.3f %8.2f\n", k + 1, ms, 0.024, 0.024 / ms);
            /* back-to-back launches, no flush: per-step cost when decoding */
            cudaEvent_t a, b; cudaEventCreate(&a), cudaEventCreate(&b);
            cudaEventRecord(a);
            const auto h0 = std::chrono::steady_clock::now();
            for (int i = 0; i < 1000; i++) steps[k](&p, &in, st, y, &ex);
            const auto h1 = std::chrono::steady_clock::now();
            cudaEventRecord(b); CK(cudaEventSynchronize(b));
            float tot; cudaEventElapsedTime(&tot, a, b);
            /* the host's enqueue time per step: when it is near the event time, the loop is
             * bound by the launches, not the kernel */
            const double host_us = std::chrono::duration<double, std::micro>(h1 - h0).count() / 1000;
            printf("step v%d B=8 (1000 in a row)  %10.4f ms per step, host enqueue %.2f us per step\n",
                   k + 1, tot / 1000, host_us);
        }
    }
    return 0;
}
