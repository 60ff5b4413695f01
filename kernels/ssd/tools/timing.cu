/*
 * timing.cu -- quick timing of the SSD CUDA versions (not a test, not the
 * benchmark harness): the canonical shape B 1, H 64, P 64, N 128, G 1,
 * chunk 256, bf16, softplus, D, dt_bias, z. CUDA events, 3 warm-ups, the L2
 * flushed by writing a 256 MB buffer before every timed run, median of 15.
 *   fwd (no z)        L = 512, 2K, 4K, 8K, 16K, 128K: fwd v2, v3, v4 (v1 at 512, 2K),
 *                     each launch of v3 and v4 alone
 *   fwd+bwd (with z)  L = 2K, 16K, 128K: fwd v4 + bwd v1, v2, v3; each launch
 *                     of bwd v1 and v3 alone
 *   step              batch 8
 * Build (from the repository root; links the kernel sources directly, the
 * library exports only the public API):
 *   nvcc -std=c++17 -O3 -arch=sm_90 -I include -I src -I kernels -I reference \
 *     kernels/ssd/tools/timing.cu kernels/ssd/{fwd,step}.cu \
 *     kernels/common.cu src/common.c -o ssd_timing
 * (bwd.cu is included, so its kernels can be timed one by one.)
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "impl.h"
#include "ssd/ssd.h"
#include "ssd/ssd_chunk.cuh"
#include "ssd/ssd_mma.cuh"
#include "ssd/bwd.cu" /* its internals too: the tool links fwd.cu and step.cu, not bwd.cu */
#include "tools/timing_tools.cuh"

static void check(mb_status s, const char* what) {
    if (s != MB_OK) { printf("%s failed: %d\n", what, (int)s); exit(1); }
}

/* each launch of fwd v3 timed alone (after the same earlier launches) */
static void profile_fwd_v3(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y, void* fs) {
    using namespace mbssd;
    const SsdArgs<__nv_bfloat16> a = make_args<__nv_bfloat16>(p, in);
    const int64_t BHL = a.Bsz * a.H * a.L, PN = a.P * a.N;
    ChunkWork w;
    float* cb;
    CK(cudaMalloc(&w.dtp, BHL * 4)); CK(cudaMalloc(&w.cs, BHL * 4));
    CK(cudaMalloc(&w.states, a.Bsz * a.NC * a.H * PN * 4)); CK(cudaMalloc(&cb, cb_floats(a) * 4));
    ScanOut<__nv_bfloat16> o = {w.states, (__nv_bfloat16*)y, nullptr, nullptr, nullptr, cb};
    const char* names[4] = {"cb", "chunk_state", "state_pass", "chunk_scan"};
    double t[4];
    t[0] = time_ms([&] { launch_cb(a, cb, 0); });
    t[1] = time_ms([&] { launch_chunk_state<__nv_bfloat16, __nv_bfloat16, false>(a, w, w.states, 0); });
    t[2] = time_ms([&] { launch_state_pass<false>(w, w.states, a.h0, (float*)fs, a.Bsz, a.L, a.Q, a.NC, a.H, PN, 0); });
    t[3] = time_ms([&] { launch_chunk_scan<__nv_bfloat16, __nv_bfloat16, ROLE_Y, true>(a, w, o, 0); });
    printf("  fwd v3 L=%ld kernels:", (long)a.L);
    for (int k = 0; k < 4; k++) printf(" %s %.4f", names[k], t[k]);
    printf(" ms\n");
    /* the backward's fp32-operand kernels at the same shape */
    double s1 = time_ms([&] { launch_chunk_state<__nv_bfloat16, float, false>(a, w, w.states, 0); });
    ScanOut<__nv_bfloat16> o2 = {w.states, (__nv_bfloat16*)y, nullptr, nullptr, nullptr, nullptr};
    double s2 = time_ms([&] { launch_chunk_scan<__nv_bfloat16, __nv_bfloat16, ROLE_Y, false>(a, w, o2, 0); });
    printf("  chunk_state fp32 operands %.4f, chunk_scan without cb %.4f ms\n", s1, s2);
    cudaFree(w.dtp), cudaFree(w.cs), cudaFree(w.states), cudaFree(cb);
}

/* each launch of fwd v4 timed alone */
static void profile_fwd_v4(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y, void* fs) {
    using namespace mbssd;
    typedef __nv_bfloat16 bf;
    const SsdArgs<bf> a = make_args<bf>(p, in);
    const int64_t BHL = a.Bsz * a.H * a.L, PN = a.P * a.N, SN = a.Bsz * a.NC * a.H * PN;
    ChunkWork w;
    float* cb;
    bf* copy;
    CK(cudaMalloc(&w.dtp, BHL * 4)); CK(cudaMalloc(&w.cs, BHL * 4)); CK(cudaMalloc(&w.states, SN * 4));
    CK(cudaMalloc(&copy, SN * 2)); CK(cudaMalloc(&cb, cb_floats(a) * 4));
    double t[4];
    t[0] = time_ms([&] { launch_cb(a, cb, 0); });
    t[1] = time_ms([&] { launch_state_mma(a, w, w.states, 0); });
    t[2] = time_ms([&] { launch_state_pass<false>(w, w.states, a.h0, (float*)fs, a.Bsz, a.L, a.Q, a.NC, a.H, PN, 0, PassOut{copy, nullptr, false}); });
    const ScanMmaOut o = {copy, nullptr, cb, (bf*)y, nullptr, nullptr};
    t[3] = time_ms([&] { launch_scan_mma<128>(a, w, o, 0); });
    printf("  fwd v4 L=%ld kernels: cb %.4f state_mma %.4f state_pass %.4f scan_mma %.4f ms\n", (long)a.L,
           t[0], t[1], t[2], t[3]);
    cudaFree(w.dtp), cudaFree(w.cs), cudaFree(w.states), cudaFree(copy), cudaFree(cb);
}

/* the chunk kernels of bwd v1 timed alone (the reductions after them not) */
static void profile_bwd(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* dy, void* dx, void* dz) {
    using namespace mbssd;
    typedef __nv_bfloat16 bf;
    SsdArgs<bf> a = make_args<bf>(p, in);
    a.dy = (const bf*)dy;
    const int64_t BHL = a.Bsz * a.H * a.L, PN = a.P * a.N, SN = a.Bsz * a.NC * a.H * PN;
    ChunkWork w;
    float *cb, *adj, *fs, *dBh, *dCh, *p0, *p1, *p2;
    CK(cudaMalloc(&w.dtp, BHL * 4)); CK(cudaMalloc(&w.cs, BHL * 4)); CK(cudaMalloc(&w.states, SN * 4));
    CK(cudaMalloc(&adj, SN * 4)); CK(cudaMalloc(&fs, a.Bsz * a.H * PN * 4)); CK(cudaMalloc(&cb, cb_floats(a) * 4));
    CK(cudaMalloc(&dBh, a.Bsz * a.L * a.H * a.N * 4)); CK(cudaMalloc(&dCh, a.Bsz * a.L * a.H * a.N * 4));
    CK(cudaMalloc(&p0, 2 * BHL * 4)); CK(cudaMalloc(&p1, 2 * BHL * 4)); CK(cudaMalloc(&p2, 2 * BHL * 4));
    double t[8];
    t[0] = time_ms([&] { launch_cb(a, cb, 0); });
    t[1] = time_ms([&] { launch_chunk_state<bf, float, false>(a, w, w.states, 0);
                         launch_state_pass<false>(w, w.states, a.h0, fs, a.Bsz, a.L, a.Q, a.NC, a.H, PN, 0); });
    t[2] = time_ms([&] { launch_chunk_state<bf, float, true>(a, w, adj, 0);
                         launch_state_pass<true>(w, adj, nullptr, nullptr, a.Bsz, a.L, a.Q, a.NC, a.H, PN, 0); });
    ScanOut<bf> oy = {w.states, (bf*)dz, p0, p1, nullptr, cb}, ox = {adj, (bf*)dx, p2, nullptr, nullptr, cb};
    ScanOut<bf> oc = {w.states, nullptr, nullptr, nullptr, dCh, nullptr}, ob = {adj, nullptr, nullptr, nullptr, dBh, nullptr};
    t[3] = time_ms([&] { launch_chunk_scan<bf, float, ROLE_YPRE, true>(a, w, oy, 0); });
    t[4] = time_ms([&] { launch_chunk_scan<bf, float, ROLE_DX, true>(a, w, ox, 0); });
    t[5] = time_ms([&] { launch_chunk_scan<bf, bf, ROLE_DC, false>(a, w, oc, 0); });
    t[6] = time_ms([&] { launch_chunk_scan<bf, bf, ROLE_DB, false>(a, w, ob, 0); });
    printf("  bwd v1 L=%ld kernels: cb %.3f states %.3f adjoints %.3f y_pre %.3f dx %.3f dC %.3f dB %.3f ms\n",
           (long)a.L, t[0], t[1], t[2], t[3], t[4], t[5], t[6]);
    void* ptrs[] = {w.dtp, w.cs, w.states, adj, fs, cb, dBh, dCh, p0, p1, p2};
    for (void* q : ptrs) cudaFree(q);
}

/* the kernels of bwd v3 timed alone, in order, on bwd.cu's workspace layout */
static void profile_bwd_v3(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* dy,
                           const mb_ssd_grads* g) {
    using namespace mbssd;
    typedef __nv_bfloat16 bf;
    SsdArgs<bf> a = make_args<bf>(p, in);
    a.dy = (const bf*)dy;
    const int64_t PN = a.P * a.N;
    BwdWork k;
    BwdV3Work v;
    const size_t main_bytes = bwd_layout(a, nullptr, &k, false);
    char* base;
    CK(cudaMalloc(&base, main_bytes + bwd_v3_layout(a, nullptr, &v)));
    bwd_layout(a, base, &k, false);
    bwd_v3_layout(a, base + main_bytes, &v);
    double t[9];
    t[0] = time_ms([&] { launch_cb(a, k.cb, 0); });
    t[1] = time_ms([&] { launch_state_mma(a, k.w, k.w.states, 0); });
    t[2] = time_ms([&] { launch_state_pass<false>(k.w, k.w.states, a.h0, k.fs, a.Bsz, a.L, a.Q, a.NC, a.H, PN, 0, PassOut{v.hi, v.lo, false}); });
    const ScanMmaOut oy = {v.hi, v.lo, k.cb, (bf*)g->dz, k.part_dcs, k.part_dD, v.ds_hi, v.ds_lo};
    t[3] = time_ms([&] { launch_scan_mma<128, true>(a, k.w, oy, 0); });
    t[4] = time_ms([&] { launch_state_mma(a, k.w, k.adj, 0, v.ds_hi, v.ds_lo); });
    t[5] = time_ms([&] { launch_state_pass<true>(k.w, k.adj, nullptr, nullptr, a.Bsz, a.L, a.Q, a.NC, a.H, PN, 0,
                                                 PassOut{v.e_hi, v.e_lo, false}); });
    const DxMmaArgs ox = {v.e_hi, v.e_lo, v.ds_hi, v.ds_lo, k.cb, (bf*)g->dx, k.part_ddt, v.hi, v.lo, k.fs, v.kpart};
    t[6] = time_ms([&] { launch_dx_mma<128>(a, k.w, ox, 0); });
    t[7] = time_ms([&] { launch_dsx(a, k.w, v.ds_hi, v.m, 0);
                         const DbcArgs ob = {v.m, v.ds_hi, v.hi, v.e_hi, (bf*)g->dB, (bf*)g->dC};
                         launch_dbc(a, k.w, ob, 0); });
    t[8] = time_ms([&] { bwd_reductions(a, k, g, 0, false, v.kpart); });
    printf("  bwd v3 L=%ld kernels: cb %.3f states %.3f pass %.3f y_pre %.3f adjoints %.3f pass %.3f dx %.3f "
           "dsx+dbc %.3f reductions %.3f ms\n", (long)a.L, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8]);
    cudaFree(base);
}

/* the canonical shape at length L (B 1, H 64, P 64, N 128, G 1, chunk 256, bf16,
 * softplus): hashed-uniform inputs, dy, and buffers for y, the final state and
 * every gradient; in_noz without z, in_z with it */
struct Canon {
    void *x, *dt, *z, *dy, *Bm, *Cm, *A, *Dv, *bias, *y, *fs, *gx, *gdt, *gz, *gA, *gB, *gC, *gD, *gb;
    mb_ssd_params p;
    mb_ssd_inputs in_noz, in_z;
    mb_ssd_grads g;
};
static const long kH = 64, kP = 64, kN = 128, kQ = 256;

static Canon make_canon(long L) {
    Canon c;
    const size_t BLHP = (size_t)L * kH * kP, BLN = (size_t)L * kN;
    c.x = bf(BLHP, -1, 1, 1), c.dt = bf((size_t)L * kH, -3, 0.5, 2), c.z = bf(BLHP, -2, 2, 3), c.dy = bf(BLHP, -1, 1, 4);
    c.Bm = bf(BLN, -0.7, 0.7, 5), c.Cm = bf(BLN, -0.7, 0.7, 6), c.A = ff(kH, -2, -0.1, 7);
    c.Dv = ff(kH, -1, 1, 8), c.bias = ff(kH, -1, 0.5, 9);
    CK(cudaMalloc(&c.y, BLHP * 2)); CK(cudaMalloc(&c.fs, kH * kP * kN * 4));
    CK(cudaMalloc(&c.gx, BLHP * 2)); CK(cudaMalloc(&c.gdt, L * kH * 2)); CK(cudaMalloc(&c.gz, BLHP * 2));
    CK(cudaMalloc(&c.gA, kH * 4)); CK(cudaMalloc(&c.gB, BLN * 2)); CK(cudaMalloc(&c.gC, BLN * 2));
    CK(cudaMalloc(&c.gD, kH * 4)); CK(cudaMalloc(&c.gb, kH * 4));
    c.p = {1, L, kH, kP, kN, 1, kQ, MB_DTYPE_BF16, 1, MB_SSD_CHUNKED, 0};
    c.in_noz = {c.x, c.dt, c.A, c.Bm, c.Cm, c.Dv, NULL, c.bias, NULL};
    c.in_z = {c.x, c.dt, c.A, c.Bm, c.Cm, c.Dv, c.z, c.bias, NULL};
    c.g = {c.gx, c.gdt, c.gA, c.gB, c.gC, c.gD, c.gz, c.gb, NULL};
    return c;
}

static void free_canon(Canon& c) {
    void* ptrs[] = {c.x, c.dt, c.z, c.dy, c.Bm, c.Cm, c.A, c.Dv, c.bias, c.y, c.fs,
                    c.gx, c.gdt, c.gz, c.gA, c.gB, c.gC, c.gD, c.gb};
    for (void* q : ptrs) cudaFree(q);
}

/* `ssd_timing once L`: one fwd v4 call at the canonical shape, no z (for ncu);
 * `ssd_timing once_bwd L`: one fwd v4 + bwd v3 call with z */
static int run_once(long L, bool bwd) {
    Canon c = make_canon(L);
    mb_exec ex = {NULL};
    check(mb_ssd_fwd_cuda_v4(&c.p, bwd ? &c.in_z : &c.in_noz, c.y, c.fs, &ex), "fwd v4");
    if (bwd) check(mb_ssd_bwd_cuda_v3(&c.p, &c.in_z, c.dy, NULL, &c.g, &ex), "bwd v3");
    CK(cudaDeviceSynchronize());
    free_canon(c);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 3 && !strcmp(argv[1], "once")) return run_once(atol(argv[2]), false);
    if (argc == 3 && !strcmp(argv[1], "once_bwd")) return run_once(atol(argv[2]), true);
    CK(cudaMalloc(&flushbuf, kFlush));
    mb_exec ex = {NULL};
    const long H = kH, P = kP, N = kN, Q = kQ;
    const long Ls[] = {512, 2048, 4096, 8192, 16384, 131072};
    const double anchor_f[] = {0.866, 0.529, 0.489, 0.438, 0.641, 5.87};
    const double anchor_fb[] = {3.37, 3.06, 3.0, 3.6, 3.61, 24.7};
    printf("%-28s %10s %10s %8s %10s\n", "what", "ms", "anchor", "speedup", "TFLOP/s");
    for (int li = 0; li < 6; li++) {
        long L = Ls[li];
        Canon cn = make_canon(L);
        const mb_ssd_params& p = cn.p;
        const mb_ssd_inputs &in_noz = cn.in_noz, &in_z = cn.in_z;
        const mb_ssd_grads& g = cn.g;
        void *y = cn.y, *fs = cn.fs, *dy = cn.dy, *gx = cn.gx, *gz = cn.gz;
        /* matmul flops of the chunked forward: C B^T (Q^2 N / 2 per chunk and head),
         * (.) x (Q^2 P / 2), chunk states and C state (2 Q P N) */
        double flops = 2.0 * H * (L / (double)Q) * (0.5 * Q * Q * (N + P) + 2.0 * Q * P * N);
        char name[64];
        if (L <= 2048) {
            double ms = time_ms([&] { check(mb_ssd_fwd_cuda_v1(&p, &in_noz, y, fs, &ex), "fwd v1"); });
            snprintf(name, sizeof name, "fwd v1 L=%ld", L);
            printf("%-28s %10.4f %10.3f %8.2f\n", name, ms, anchor_f[li], anchor_f[li] / ms);
        }
        double ms = time_ms([&] { check(mb_ssd_fwd_cuda_v2(&p, &in_noz, y, fs, &ex), "fwd v2"); });
        snprintf(name, sizeof name, "fwd v2 L=%ld", L);
        printf("%-28s %10.4f %10.3f %8.2f %10.1f\n", name, ms, anchor_f[li], anchor_f[li] / ms, flops / ms * 1e-9);
        ms = time_ms([&] { check(mb_ssd_fwd_cuda_v3(&p, &in_noz, y, fs, &ex), "fwd v3"); });
        snprintf(name, sizeof name, "fwd v3 L=%ld", L);
        printf("%-28s %10.4f %10.3f %8.2f %10.1f\n", name, ms, anchor_f[li], anchor_f[li] / ms, flops / ms * 1e-9);
        if (L == 2048 || L == 16384 || L == 131072) profile_fwd_v3(&p, &in_noz, y, fs);
        ms = time_ms([&] { check(mb_ssd_fwd_cuda_v4(&p, &in_noz, y, fs, &ex), "fwd v4"); });
        snprintf(name, sizeof name, "fwd v4 L=%ld", L);
        printf("%-28s %10.4f %10.3f %8.2f %10.1f\n", name, ms, anchor_f[li], anchor_f[li] / ms, flops / ms * 1e-9);
        profile_fwd_v4(&p, &in_noz, y, fs);
        if (L == 2048 || L == 16384 || L == 131072) {
            ms = time_ms([&] { check(mb_ssd_fwd_cuda_v4(&p, &in_z, y, fs, &ex), "fwd v4");
                               check(mb_ssd_bwd_cuda_v1(&p, &in_z, dy, NULL, &g, &ex), "bwd v1"); });
            snprintf(name, sizeof name, "fwd v4+bwd v1 L=%ld", L);
            printf("%-28s %10.4f %10.3f %8.2f\n", name, ms, anchor_fb[li], anchor_fb[li] / ms);
            ms = time_ms([&] { check(mb_ssd_fwd_cuda_v4(&p, &in_z, y, fs, &ex), "fwd v4");
                               check(mb_ssd_bwd_cuda_v2(&p, &in_z, dy, NULL, &g, &ex), "bwd v2"); });
            snprintf(name, sizeof name, "fwd v4+bwd v2 L=%ld", L);
            printf("%-28s %10.4f %10.3f %8.2f\n", name, ms, anchor_fb[li], anchor_fb[li] / ms);
            ms = time_ms([&] { check(mb_ssd_fwd_cuda_v4(&p, &in_z, y, fs, &ex), "fwd v4");
                               check(mb_ssd_bwd_cuda_v3(&p, &in_z, dy, NULL, &g, &ex), "bwd v3"); });
            snprintf(name, sizeof name, "fwd v4+bwd v3 L=%ld", L);
            printf("%-28s %10.4f %10.3f %8.2f\n", name, ms, anchor_fb[li], anchor_fb[li] / ms);
            profile_bwd_v3(&p, &in_z, dy, &g);
            if (L < 131072) profile_bwd(&p, &in_z, dy, gx, gz);
        }
        free_canon(cn);
    }
    { /* step, batch 8 */
        long Bb = 8;
        void *x = bf(Bb * H * P, -1, 1, 1), *dt = bf(Bb * H, -3, 0.5, 2), *z = bf(Bb * H * P, -2, 2, 3);
        void *Bm = bf(Bb * N, -1, 1, 5), *Cm = bf(Bb * N, -1, 1, 6), *A = ff(H, -2, -0.1, 7);
        void *Dv = ff(H, -1, 1, 8), *bias = ff(H, -1, 0.5, 9), *st = ff(Bb * H * P * N, -1, 1, 10), *y;
        CK(cudaMalloc(&y, Bb * H * P * 2));
        mb_ssd_params p = {Bb, 1, H, P, N, 1, Q, MB_DTYPE_BF16, 1, MB_SSD_CHUNKED, 0};
        mb_ssd_inputs in = {x, dt, A, Bm, Cm, Dv, z, bias, NULL};
        mb_ssd_step_fn steps[3] = {mb_ssd_step_cuda_v1, mb_ssd_step_cuda_v2, mb_ssd_step_cuda_v3};
        for (int k = 0; k < 3; k++) {
            double ms = time_ms([&] { check(steps[k](&p, &in, st, y, &ex), "step"); }, 51);
            printf("step v%d B=8 (event-timed)    %10.4f %10.3f %8.2f\n", k + 1, ms, 0.017, 0.017 / ms);
            cudaEvent_t a, b; cudaEventCreate(&a), cudaEventCreate(&b);
            cudaEventRecord(a);
            for (int i = 0; i < 1000; i++) steps[k](&p, &in, st, y, &ex);
            cudaEventRecord(b); CK(cudaEventSynchronize(b));
            float tot; cudaEventElapsedTime(&tot, a, b);
            printf("step v%d B=8 (1000 in a row)  %10.4f per step\n", k + 1, tot / 1000);
        }
    }
    return 0;
}
