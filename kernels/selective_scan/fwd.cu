/*
 * fwd.cu -- selective-scan forward, hardware-aware: every input is read from
 * HBM once, discretisation, scan and gate stay in registers and shared
 * memory, and only y and the final state are written.
 *
 * One block of NW warps per channel (b, d); the sequence is walked in chunks
 * of NW*32*ITEMS steps, each thread owning ITEMS consecutive steps. For each
 * state n of a chunk: every thread composes its steps' (a, b) pairs, the warp
 * scans them with shuffles, lane 31 of each warp posts its warp's total to
 * shared memory, and after one barrier each thread folds the block carry and
 * the totals of the warps before it into its own start state, then replays
 * its steps, accumulating C_t . h_t into registers. Shared memory holds the
 * carried state h (N floats, double-buffered by chunk parity), A*log2(e) (N
 * floats) and the warp totals (double-buffered by iteration parity), so one
 * barrier per (chunk, n) is enough.
 *
 * v1: ITEMS 8 (chunk 1024). v2: ITEMS 16 (chunk 2048), half the scans per step.
 * v3: v1 + B, C of state n+1 loaded during state n. v4: v2 + the same prefetch.
 * v5: v1 + two states per iteration, raw prefetch of the next two (see the kernel).
 * v6, v7: v5 held to 64, 80 registers. v8, v9: v7 with 2, 4 channels per block,
 * whose lockstep loads of the same B, C rows share L1 (each block of one channel
 * otherwise pulls all of B and C through L2: 4.3 GB at L 16K, D 4096, N 16).
 */
#include "scan_common.cuh"
#include "selective_scan.h"

using namespace mbscan;

namespace {

template <typename T, int ITEMS, int NW, bool kVec, bool kPrefetch>
__global__ void __launch_bounds__(NW * 32, kPrefetch ? 4 : 0) scan_fwd_kernel(const FwdArgs<T> p) {
    constexpr int kThreads = NW * 32;
    constexpr int kChunk = kThreads * ITEMS;
    extern __shared__ float smem[];
    float* hcarry = smem;       /* [2][N] */
    float* A2s = smem + 2 * p.N; /* [N] */
    __shared__ float wA[2][NW], wB[2][NW];

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t d = blockIdx.x, b = blockIdx.y;
    const int64_t N = p.N, L = p.L;
    const int64_t row = (b * p.D + d) * L;
    const int64_t bc = (b * p.G + d / p.dpg) * N * L;
    const float Dd = p.Dv ? p.Dv[d] : 0.f;
    const float bias = p.bias ? p.bias[d] : 0.f;

    for (int64_t n = threadIdx.x; n < N; n += kThreads) {
        hcarry[n] = 0.f;
        A2s[n] = p.A[d * N + n] * kLog2e;
    }
    __syncthreads();

    int par = 0;
    int64_t ci = 0;
    for (int64_t c0 = 0; c0 < L; c0 += kChunk, ci++) {
        const int cp = (int)(ci & 1);
        const int64_t t0 = c0 + (int64_t)threadIdx.x * ITEMS;
        const int64_t valid = L - t0;
        const bool last_chunk = c0 + kChunk >= L;
        float uu[ITEMS], dt[ITEMS], du[ITEMS], out[ITEMS];
        load_run<T, ITEMS, kVec>(p.u, row + t0, valid, uu, 0.f);
        load_run<T, ITEMS, kVec>(p.delta, row + t0, valid, dt, 0.f);
#pragma unroll
        for (int i = 0; i < ITEMS; i++) {
            float x = dt[i] + bias;
            if (p.softplus) x = softplus(x);
            dt[i] = i < valid ? x : 0.f; /* past L: a = 1, b = 0, the identity step */
            du[i] = dt[i] * uu[i];
            out[i] = Dd * uu[i];
        }
        float Bnx[ITEMS], Cnx[ITEMS]; /* kPrefetch: B, C of the next state, loaded one iteration ahead */
        if (kPrefetch) {
            load_run<T, ITEMS, kVec>(p.Bm, bc + t0, valid, Bnx, 0.f);
            load_run<T, ITEMS, kVec>(p.Cm, bc + t0, valid, Cnx, 0.f);
        }
        for (int64_t n = 0; n < N; n++) {
            const float A2 = A2s[n];
            float Bv[ITEMS], Cv[ITEMS], a[ITEMS], bb[ITEMS];
            if (kPrefetch) {
#pragma unroll
                for (int i = 0; i < ITEMS; i++) Bv[i] = Bnx[i], Cv[i] = Cnx[i];
                if (n + 1 < N) {
                    load_run<T, ITEMS, kVec>(p.Bm, bc + (n + 1) * L + t0, valid, Bnx, 0.f);
                    load_run<T, ITEMS, kVec>(p.Cm, bc + (n + 1) * L + t0, valid, Cnx, 0.f);
                }
            } else {
                load_run<T, ITEMS, kVec>(p.Bm, bc + n * L + t0, valid, Bv, 0.f);
                load_run<T, ITEMS, kVec>(p.Cm, bc + n * L + t0, valid, Cv, 0.f);
            }
            float pa = 1.f, pb = 0.f;
#pragma unroll
            for (int i = 0; i < ITEMS; i++) {
                a[i] = fast_exp2(dt[i] * A2);
                bb[i] = du[i] * Bv[i];
                pb = fmaf(a[i], pb, bb[i]);
                pa *= a[i];
            }
            warp_scan_fwd(pa, pb, lane);
            if (lane == 31) {
                wA[par][warp] = pa;
                wB[par][warp] = pb;
            }
            float ea = __shfl_up_sync(0xffffffffu, pa, 1);
            float eb = __shfl_up_sync(0xffffffffu, pb, 1);
            if (lane == 0) ea = 1.f, eb = 0.f;
            __syncthreads();
            float h = hcarry[cp * N + n];
#pragma unroll
            for (int w = 0; w < NW - 1; w++)
                if (w < warp) h = fmaf(wA[par][w], h, wB[par][w]);
            h = fmaf(ea, h, eb);
#pragma unroll
            for (int i = 0; i < ITEMS; i++) {
                h = fmaf(a[i], h, bb[i]);
                out[i] = fmaf(Cv[i], h, out[i]);
            }
            if (threadIdx.x == kThreads - 1) { /* steps past L are identities: h is the chunk's end state */
                hcarry[(cp ^ 1) * N + n] = h;
                if (last_chunk && p.fstate) p.fstate[(b * p.D + d) * N + n] = h;
            }
            par ^= 1;
        }
        if (p.z) {
            float zz[ITEMS];
            load_run<T, ITEMS, kVec>(p.z, row + t0, valid, zz, 0.f);
#pragma unroll
            for (int i = 0; i < ITEMS; i++) out[i] *= zz[i] * sigmoidf(zz[i]);
        }
        store_run<T, ITEMS, kVec>(p.y, row + t0, valid, out);
    }
}

template <typename T>
FwdArgs<T> make_args(const mb_selective_scan_params* prm, const mb_selective_scan_inputs* in,
                     void* y, void* final_state) {
    FwdArgs<T> a;
    fill_common_args<T>(a, prm, in);
    a.y = (T*)y;
    a.fstate = (float*)final_state;
    return a;
}

template <typename T, int ITEMS, int NW, bool kPrefetch>
mb_status launch_fwd(const mb_selective_scan_params* prm, const mb_selective_scan_inputs* in,
                     void* y, void* final_state, const mb_exec* ex) {
    FwdArgs<T> a = make_args<T>(prm, in, y, final_state);
    const bool vec = prm->seqlen % ITEMS == 0 && aligned16(a.u) && aligned16(a.delta) &&
                     aligned16(a.Bm) && aligned16(a.Cm) && aligned16(a.y) &&
                     (!a.z || aligned16(a.z));
    dim3 grid((unsigned)prm->dim, (unsigned)prm->batch);
    size_t shmem = (size_t)3 * prm->dstate * sizeof(float);
    if (vec)
        scan_fwd_kernel<T, ITEMS, NW, true, kPrefetch><<<grid, NW * 32, shmem, mb_stream(ex)>>>(a);
    else
        scan_fwd_kernel<T, ITEMS, NW, false, kPrefetch><<<grid, NW * 32, shmem, mb_stream(ex)>>>(a);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

/* v5: two states per iteration (two independent scans in flight, one barrier
 * per two states), B and C of the next two states prefetched as raw words, C
 * kept packed until the replay, and each thread's decay product taken as
 * exp2(A log2e * sum of its delta') instead of a running product. */
template <typename T, int ITEMS, int NW, bool kVec, int kMinBlocks>
__global__ void __launch_bounds__(NW * 32, kMinBlocks) scan_fwd_pair_kernel(const FwdArgs<T> p) {
    constexpr int kThreads = NW * 32;
    constexpr int kChunk = kThreads * ITEMS;
    extern __shared__ float smem[];
    const int64_t Np = p.N + (p.N & 1); /* N rounded up to even: state n+1 of the last pair is in bounds */
    float* hcarry = smem;        /* [2][Np] */
    float* A2s = smem + 2 * Np;  /* [Np] */
    __shared__ float wA[2][2][NW], wB[2][2][NW];

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t d = blockIdx.x, b = blockIdx.y;
    const int64_t N = p.N, L = p.L;
    const int64_t row = (b * p.D + d) * L;
    const int64_t bc = (b * p.G + d / p.dpg) * N * L;
    const float Dd = p.Dv ? p.Dv[d] : 0.f;
    const float bias = p.bias ? p.bias[d] : 0.f;

    for (int64_t n = threadIdx.x; n < Np; n += kThreads) {
        hcarry[n] = hcarry[Np + n] = 0.f;
        A2s[n] = n < N ? p.A[d * N + n] * kLog2e : 0.f;
    }
    __syncthreads();

    int par = 0;
    int64_t ci = 0;
    for (int64_t c0 = 0; c0 < L; c0 += kChunk, ci++) {
        const int cp = (int)(ci & 1);
        const int64_t t0 = c0 + (int64_t)threadIdx.x * ITEMS;
        const int64_t valid = L - t0;
        const bool last_chunk = c0 + kChunk >= L;
        float dt[ITEMS], du[ITEMS], out[ITEMS];
        RawRun<T, ITEMS> nB0, nC0, nB1, nC1; /* B, C of the next two states */
        load_raw<T, ITEMS, kVec>(p.Bm, bc + t0, valid, nB0);
        load_raw<T, ITEMS, kVec>(p.Cm, bc + t0, valid, nC0);
        if (N > 1) {
            load_raw<T, ITEMS, kVec>(p.Bm, bc + L + t0, valid, nB1);
            load_raw<T, ITEMS, kVec>(p.Cm, bc + L + t0, valid, nC1);
        } else {
            raw_zero(nB1), raw_zero(nC1);
        }
        float sdt = 0.f;
        {
            float uu[ITEMS];
            load_run<T, ITEMS, kVec>(p.u, row + t0, valid, uu, 0.f);
            load_run<T, ITEMS, kVec>(p.delta, row + t0, valid, dt, 0.f);
#pragma unroll
            for (int i = 0; i < ITEMS; i++) {
                float x = dt[i] + bias;
                if (p.softplus) x = softplus(x);
                dt[i] = i < valid ? x : 0.f;
                du[i] = dt[i] * uu[i];
                out[i] = Dd * uu[i];
                sdt += dt[i];
            }
        }
        for (int64_t n = 0; n < N; n += 2) {
            const bool has1 = n + 1 < N; /* block-uniform */
            const RawRun<T, ITEMS> C0 = nC0, C1 = nC1;
            float a0[ITEMS], a1[ITEMS], b0[ITEMS], b1[ITEMS];
            const float A20 = A2s[n], A21 = A2s[n + 1]; /* 0 when n + 1 == N (padding) */
            float pb0 = 0.f, pb1 = 0.f;
#pragma unroll
            for (int i = 0; i < ITEMS; i++) {
                a0[i] = fast_exp2(dt[i] * A20);
                a1[i] = fast_exp2(dt[i] * A21);
                b0[i] = du[i] * raw_at(nB0, i);
                b1[i] = du[i] * raw_at(nB1, i);
                pb0 = fmaf(a0[i], pb0, b0[i]);
                pb1 = fmaf(a1[i], pb1, b1[i]);
            }
            if (n + 2 < N) {
                load_raw<T, ITEMS, kVec>(p.Bm, bc + (n + 2) * L + t0, valid, nB0);
                load_raw<T, ITEMS, kVec>(p.Cm, bc + (n + 2) * L + t0, valid, nC0);
            }
            if (n + 3 < N) {
                load_raw<T, ITEMS, kVec>(p.Bm, bc + (n + 3) * L + t0, valid, nB1);
                load_raw<T, ITEMS, kVec>(p.Cm, bc + (n + 3) * L + t0, valid, nC1);
            } else {
                raw_zero(nB1), raw_zero(nC1);
            }
            float pa0 = fast_exp2(A20 * sdt), pa1 = fast_exp2(A21 * sdt);
            warp_scan_fwd2(pa0, pb0, pa1, pb1, lane);
            if (lane == 31) {
                wA[par][0][warp] = pa0, wB[par][0][warp] = pb0;
                wA[par][1][warp] = pa1, wB[par][1][warp] = pb1;
            }
            float ea0 = __shfl_up_sync(0xffffffffu, pa0, 1);
            float eb0 = __shfl_up_sync(0xffffffffu, pb0, 1);
            float ea1 = __shfl_up_sync(0xffffffffu, pa1, 1);
            float eb1 = __shfl_up_sync(0xffffffffu, pb1, 1);
            if (lane == 0) ea0 = ea1 = 1.f, eb0 = eb1 = 0.f;
            __syncthreads();
            float h0 = hcarry[cp * Np + n], h1 = has1 ? hcarry[cp * Np + n + 1] : 0.f;
#pragma unroll
            for (int w = 0; w < NW - 1; w++)
                if (w < warp) {
                    h0 = fmaf(wA[par][0][w], h0, wB[par][0][w]);
                    h1 = fmaf(wA[par][1][w], h1, wB[par][1][w]);
                }
            h0 = fmaf(ea0, h0, eb0);
            h1 = fmaf(ea1, h1, eb1);
#pragma unroll
            for (int i = 0; i < ITEMS; i++) {
                h0 = fmaf(a0[i], h0, b0[i]);
                h1 = fmaf(a1[i], h1, b1[i]);
                out[i] = fmaf(raw_at(C0, i), h0, out[i]);
                out[i] = fmaf(raw_at(C1, i), h1, out[i]);
            }
            if (threadIdx.x == kThreads - 1) {
                hcarry[(cp ^ 1) * Np + n] = h0;
                if (has1) hcarry[(cp ^ 1) * Np + n + 1] = h1;
                if (last_chunk && p.fstate) {
                    p.fstate[(b * p.D + d) * N + n] = h0;
                    if (has1) p.fstate[(b * p.D + d) * N + n + 1] = h1;
                }
            }
            par ^= 1;
        }
        if (p.z) {
            float zz[ITEMS];
            load_run<T, ITEMS, kVec>(p.z, row + t0, valid, zz, 0.f);
#pragma unroll
            for (int i = 0; i < ITEMS; i++) out[i] *= zz[i] * sigmoidf(zz[i]);
        }
        store_run<T, ITEMS, kVec>(p.y, row + t0, valid, out);
    }
}

template <typename T, int ITEMS, int NW, int kMinBlocks>
mb_status launch_fwd_pair(const mb_selective_scan_params* prm, const mb_selective_scan_inputs* in,
                          void* y, void* final_state, const mb_exec* ex) {
    FwdArgs<T> a = make_args<T>(prm, in, y, final_state);
    const bool vec = prm->seqlen % ITEMS == 0 && aligned16(a.u) && aligned16(a.delta) &&
                     aligned16(a.Bm) && aligned16(a.Cm) && aligned16(a.y) &&
                     (!a.z || aligned16(a.z));
    dim3 grid((unsigned)prm->dim, (unsigned)prm->batch);
    size_t shmem = (size_t)3 * (prm->dstate + (prm->dstate & 1)) * sizeof(float);
    if (vec)
        scan_fwd_pair_kernel<T, ITEMS, NW, true, kMinBlocks><<<grid, NW * 32, shmem, mb_stream(ex)>>>(a);
    else
        scan_fwd_pair_kernel<T, ITEMS, NW, false, kMinBlocks><<<grid, NW * 32, shmem, mb_stream(ex)>>>(a);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

/* v8, v9: the v5 kernel with CPB channels per block (a separate copy, so that
 * v5 to v7 keep the code they were measured with). */
template <typename T, int ITEMS, int NW, bool kVec, int kMinBlocks, int CPB>
__global__ void __launch_bounds__(NW * 32 * CPB, kMinBlocks) scan_fwd_pair_cpb_kernel(const FwdArgs<T> p) {
    constexpr int kThreads = NW * 32;
    constexpr int kChunk = kThreads * ITEMS;
    extern __shared__ float smem[];
    /* CPB channels per block, NW warps each: the groups run in lockstep (one
     * barrier per iteration), so their loads of the same B, C rows meet in L1. */
    const int grp = (int)(threadIdx.x / kThreads), tig = (int)(threadIdx.x % kThreads);
    const int64_t Np = p.N + (p.N & 1); /* N rounded up to even: state n+1 of the last pair is in bounds */
    float* hcarry = smem + grp * 3 * Np; /* [2][Np] */
    float* A2s = hcarry + 2 * Np;        /* [Np] */
    __shared__ float wA[2][2][CPB][NW], wB[2][2][CPB][NW];

    const int lane = tig & 31, warp = tig >> 5;
    const int64_t d = (int64_t)blockIdx.x * CPB + grp, b = blockIdx.y;
    const int64_t N = p.N, L = p.L;
    const int64_t row = (b * p.D + d) * L;
    const int64_t bc = (b * p.G + d / p.dpg) * N * L;
    const float Dd = p.Dv ? p.Dv[d] : 0.f;
    const float bias = p.bias ? p.bias[d] : 0.f;

    for (int64_t n = tig; n < Np; n += kThreads) {
        hcarry[n] = hcarry[Np + n] = 0.f;
        A2s[n] = n < N ? p.A[d * N + n] * kLog2e : 0.f;
    }
    __syncthreads();

    int par = 0;
    int64_t ci = 0;
    for (int64_t c0 = 0; c0 < L; c0 += kChunk, ci++) {
        const int cp = (int)(ci & 1);
        const int64_t t0 = c0 + (int64_t)tig * ITEMS;
        const int64_t valid = L - t0;
        const bool last_chunk = c0 + kChunk >= L;
        float dt[ITEMS], du[ITEMS], out[ITEMS];
        RawRun<T, ITEMS> nB0, nC0, nB1, nC1; /* B, C of the next two states */
        load_raw<T, ITEMS, kVec>(p.Bm, bc + t0, valid, nB0);
        load_raw<T, ITEMS, kVec>(p.Cm, bc + t0, valid, nC0);
        if (N > 1) {
            load_raw<T, ITEMS, kVec>(p.Bm, bc + L + t0, valid, nB1);
            load_raw<T, ITEMS, kVec>(p.Cm, bc + L + t0, valid, nC1);
        } else {
            raw_zero(nB1), raw_zero(nC1);
        }
        float sdt = 0.f;
        {
            float uu[ITEMS];
            load_run<T, ITEMS, kVec>(p.u, row + t0, valid, uu, 0.f);
            load_run<T, ITEMS, kVec>(p.delta, row + t0, valid, dt, 0.f);
#pragma unroll
            for (int i = 0; i < ITEMS; i++) {
                float x = dt[i] + bias;
                if (p.softplus) x = softplus(x);
                dt[i] = i < valid ? x : 0.f;
                du[i] = dt[i] * uu[i];
                out[i] = Dd * uu[i];
                sdt += dt[i];
            }
        }
        for (int64_t n = 0; n < N; n += 2) {
            const bool has1 = n + 1 < N; /* block-uniform */
            const RawRun<T, ITEMS> C0 = nC0, C1 = nC1;
            float a0[ITEMS], a1[ITEMS], b0[ITEMS], b1[ITEMS];
            const float A20 = A2s[n], A21 = A2s[n + 1]; /* 0 when n + 1 == N (padding) */
            float pb0 = 0.f, pb1 = 0.f;
#pragma unroll
            for (int i = 0; i < ITEMS; i++) {
                a0[i] = fast_exp2(dt[i] * A20);
                a1[i] = fast_exp2(dt[i] * A21);
                b0[i] = du[i] * raw_at(nB0, i);
                b1[i] = du[i] * raw_at(nB1, i);
                pb0 = fmaf(a0[i], pb0, b0[i]);
                pb1 = fmaf(a1[i], pb1, b1[i]);
            }
            if (n + 2 < N) {
                load_raw<T, ITEMS, kVec>(p.Bm, bc + (n + 2) * L + t0, valid, nB0);
                load_raw<T, ITEMS, kVec>(p.Cm, bc + (n + 2) * L + t0, valid, nC0);
            }
            if (n + 3 < N) {
                load_raw<T, ITEMS, kVec>(p.Bm, bc + (n + 3) * L + t0, valid, nB1);
                load_raw<T, ITEMS, kVec>(p.Cm, bc + (n + 3) * L + t0, valid, nC1);
            } else {
                raw_zero(nB1), raw_zero(nC1);
            }
            float pa0 = fast_exp2(A20 * sdt), pa1 = fast_exp2(A21 * sdt);
            warp_scan_fwd2(pa0, pb0, pa1, pb1, lane);
            if (lane == 31) {
                wA[par][0][grp][warp] = pa0, wB[par][0][grp][warp] = pb0;
                wA[par][1][grp][warp] = pa1, wB[par][1][grp][warp] = pb1;
            }
            float ea0 = __shfl_up_sync(0xffffffffu, pa0, 1);
            float eb0 = __shfl_up_sync(0xffffffffu, pb0, 1);
            float ea1 = __shfl_up_sync(0xffffffffu, pa1, 1);
            float eb1 = __shfl_up_sync(0xffffffffu, pb1, 1);
            if (lane == 0) ea0 = ea1 = 1.f, eb0 = eb1 = 0.f;
            __syncthreads();
            float h0 = hcarry[cp * Np + n], h1 = has1 ? hcarry[cp * Np + n + 1] : 0.f;
#pragma unroll
            for (int w = 0; w < NW - 1; w++)
                if (w < warp) {
                    h0 = fmaf(wA[par][0][grp][w], h0, wB[par][0][grp][w]);
                    h1 = fmaf(wA[par][1][grp][w], h1, wB[par][1][grp][w]);
                }
            h0 = fmaf(ea0, h0, eb0);
            h1 = fmaf(ea1, h1, eb1);
#pragma unroll
            for (int i = 0; i < ITEMS; i++) {
                h0 = fmaf(a0[i], h0, b0[i]);
                h1 = fmaf(a1[i], h1, b1[i]);
                out[i] = fmaf(raw_at(C0, i), h0, out[i]);
                out[i] = fmaf(raw_at(C1, i), h1, out[i]);
            }
            if (tig == kThreads - 1) {
                hcarry[(cp ^ 1) * Np + n] = h0;
                if (has1) hcarry[(cp ^ 1) * Np + n + 1] = h1;
                if (last_chunk && p.fstate) {
                    p.fstate[(b * p.D + d) * N + n] = h0;
                    if (has1) p.fstate[(b * p.D + d) * N + n + 1] = h1;
                }
            }
            par ^= 1;
        }
        if (p.z) {
            float zz[ITEMS];
            load_run<T, ITEMS, kVec>(p.z, row + t0, valid, zz, 0.f);
#pragma unroll
            for (int i = 0; i < ITEMS; i++) out[i] *= zz[i] * sigmoidf(zz[i]);
        }
        store_run<T, ITEMS, kVec>(p.y, row + t0, valid, out);
    }
}

template <typename T, int ITEMS, int NW, int kMinBlocks, int CPB = 1>
mb_status launch_fwd_pair_cpb(const mb_selective_scan_params* prm, const mb_selective_scan_inputs* in,
                          void* y, void* final_state, const mb_exec* ex) {
    FwdArgs<T> a = make_args<T>(prm, in, y, final_state);
    const bool vec = prm->seqlen % ITEMS == 0 && aligned16(a.u) && aligned16(a.delta) &&
                     aligned16(a.Bm) && aligned16(a.Cm) && aligned16(a.y) &&
                     (!a.z || aligned16(a.z));
    if (CPB > 1 && prm->dim % CPB != 0) /* channel groups must tile D */
        return launch_fwd_pair_cpb<T, ITEMS, NW, kMinBlocks, 1>(prm, in, y, final_state, ex);
    dim3 grid((unsigned)(prm->dim / CPB), (unsigned)prm->batch);
    size_t shmem = (size_t)CPB * 3 * (prm->dstate + (prm->dstate & 1)) * sizeof(float);
    if (vec)
        scan_fwd_pair_cpb_kernel<T, ITEMS, NW, true, kMinBlocks, CPB><<<grid, NW * 32 * CPB, shmem, mb_stream(ex)>>>(a);
    else
        scan_fwd_pair_cpb_kernel<T, ITEMS, NW, false, kMinBlocks, CPB><<<grid, NW * 32 * CPB, shmem, mb_stream(ex)>>>(a);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

template <int ITEMS, int NW, bool kPrefetch>
mb_status fwd_dispatch(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                       void* y, void* final_state, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16)
        return launch_fwd<__nv_bfloat16, ITEMS, NW, kPrefetch>(p, in, y, final_state, ex);
    return launch_fwd<float, ITEMS, NW, kPrefetch>(p, in, y, final_state, ex);
}

} // namespace

/* v1: 128 threads per channel, 8 steps per thread. */
extern "C" mb_status mb_scan_fwd_cuda_v1(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, void* y,
                                         void* final_state, const mb_exec* ex) {
    return fwd_dispatch<8, 4, false>(p, in, y, final_state, ex);
}

/* v2: over v1, 16 steps per thread: one warp scan and barrier per 2048 steps and state. */
extern "C" mb_status mb_scan_fwd_cuda_v2(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, void* y,
                                         void* final_state, const mb_exec* ex) {
    return fwd_dispatch<16, 4, false>(p, in, y, final_state, ex);
}

/* v3: over v1 (8 steps per thread), B and C of state n+1 are loaded while state n is scanned. */
extern "C" mb_status mb_scan_fwd_cuda_v3(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, void* y,
                                         void* final_state, const mb_exec* ex) {
    return fwd_dispatch<8, 4, true>(p, in, y, final_state, ex);
}

/* v4: v3 with 16 steps per thread (v2's chunks) and the same prefetch. */
extern "C" mb_status mb_scan_fwd_cuda_v4(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, void* y,
                                         void* final_state, const mb_exec* ex) {
    return fwd_dispatch<16, 4, true>(p, in, y, final_state, ex);
}

/* v5: over v1, two states per iteration, raw-word prefetch of the next two states' B, C, decay product from the summed delta'. */
extern "C" mb_status mb_scan_fwd_cuda_v5(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, void* y,
                                         void* final_state, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16)
        return launch_fwd_pair<__nv_bfloat16, 8, 4, 0>(p, in, y, final_state, ex);
    return launch_fwd_pair<float, 8, 4, 0>(p, in, y, final_state, ex);
}

/* v6: v5 held to 64 registers (8 blocks of 128 threads per SM): more warps to hide latency. */
extern "C" mb_status mb_scan_fwd_cuda_v6(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, void* y,
                                         void* final_state, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16)
        return launch_fwd_pair<__nv_bfloat16, 8, 4, 8>(p, in, y, final_state, ex);
    return launch_fwd_pair<float, 8, 4, 8>(p, in, y, final_state, ex);
}

/* v7: v5 held to 80 registers (6 blocks of 128 threads per SM). */
extern "C" mb_status mb_scan_fwd_cuda_v7(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, void* y,
                                         void* final_state, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16)
        return launch_fwd_pair<__nv_bfloat16, 8, 4, 6>(p, in, y, final_state, ex);
    return launch_fwd_pair<float, 8, 4, 6>(p, in, y, final_state, ex);
}

/* v8: v7 with two channels per block (8 warps): the two channels' loads of the same B, C rows meet in L1, halving the L2 traffic of B and C. */
extern "C" mb_status mb_scan_fwd_cuda_v8(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, void* y,
                                         void* final_state, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16)
        return launch_fwd_pair_cpb<__nv_bfloat16, 8, 4, 2, 2>(p, in, y, final_state, ex);
    return launch_fwd_pair_cpb<float, 8, 4, 2, 2>(p, in, y, final_state, ex);
}

/* v9: four channels per block (16 warps), a quarter of the L2 traffic of B and C. */
extern "C" mb_status mb_scan_fwd_cuda_v9(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, void* y,
                                         void* final_state, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16)
        return launch_fwd_pair_cpb<__nv_bfloat16, 8, 4, 1, 4>(p, in, y, final_state, ex);
    return launch_fwd_pair_cpb<float, 8, 4, 1, 4>(p, in, y, final_state, ex);
}
