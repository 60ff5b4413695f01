/*
 * bwd.cu -- selective-scan backward, deterministic (no floating-point atomics).
 *
 * The sequence of each channel is cut into warp chunks of TW = 32*ITEMS steps
 * (lane l owns steps l*ITEMS .. l*ITEMS+ITEMS-1 of its chunk). Four kernels,
 * then two reductions:
 *   1. local:   one warp per (b, d, chunk): the chunk's total delta' (S), its
 *               end state from a zero start (forward aggregate) and its
 *               adjoint handed to the previous chunk from a zero carry
 *               (reverse aggregate), per state n, from warp scans.
 *   2. combine: one thread per (b, d, n) walks the chunks forward then back,
 *               turning the aggregates into each chunk's start state h_in and
 *               incoming adjoint R (decay of a chunk = exp2(A log2e S)), in place.
 *   3. grads:   one warp per (b, group, chunk, channel split): for each channel
 *               of its split in order, and each n, recompute h inside the chunk
 *               from h_in (warp scan) and the adjoint from R (reverse warp scan),
 *               and form every gradient. du, ddelta, dz are written directly
 *               (the warp owns those steps of that channel); dB, dC summed over
 *               the split's channels in registers and written as one partial per
 *               split; dA, dD, ddelta_bias as one partial per (b, chunk, channel).
 *   4. reduce:  dB, dC summed over splits, dA, dD, ddelta_bias over (b, chunk),
 *               each in a fixed order: the gradients are bitwise reproducible.
 * Nothing of size (B, D, N, L) is stored. States are N-tiled by NTILE in
 * registers; for N > NTILE, du, d delta' and y_pre are carried between tiles
 * in an fp32 workspace (the warp owns those entries).
 *
 * v1: NTILE 8 (fewer registers, two tiles at N = 16). v2: NTILE 16 (one tile
 * at N = 16: channel inputs loaded once, no carry workspace, more registers).
 * v3: v1 + the next state's B, C, A and carries loaded one state ahead.
 * v4: N <= 32: the states split across the warps of a block (scan_bwd_grads_tw),
 *     and chunk aggregates from prefix sums of delta' instead of scans (scan_bwd_local_sum).
 * v5: v4 held to 128 registers for N <= 16.
 * v6: v5 + channel inputs pipelined through shared memory by a loader warp
 *     (scan_bwd_grads_pipe), and the chunk-aggregate warps of a block on
 *     neighbouring channels of one chunk (B, C rows shared in L1).
 *     v7: v6 without the register cap.
 * v8: v6 with the chunk's B and C staged in shared memory as fp32 once per block, and the
 *     dA sums of a warp's 4 states reduced together (6 shuffles instead of 20).
 * v9: v8 with each channel's finishing spread over the warps (one item of every lane each).
 * (The batched combine kernel, 8 chunks per memory round trip, serves every version.)
 */
#include "scan_common.cuh"
#include "selective_scan.h"

using namespace mbscan;

namespace {

constexpr int kItems = 4;          /* steps per lane */
constexpr int kTW = 32 * kItems;   /* steps per warp chunk */
constexpr int kWarpsPerBlock = 4;

template <typename T>
struct BwdArgs {
    const T* u;
    const T* delta;
    const float* A;
    const T* Bm;
    const T* Cm;
    const float* Dv;
    const T* z;
    const float* bias;
    const T* dy;
    T* du;
    T* ddelta;
    T* dz;
    int64_t Bsz, D, L, N, G, dpg, nch, S, cps;
    int softplus;
    /* workspace */
    float* Ssum;  /* (B, D, nch) */
    float* hin;   /* (B, D, nch, N) forward aggregate, then the chunk start state */
    float* rin;   /* (B, D, nch, N) reverse aggregate, then the incoming adjoint */
    float* dAp;   /* (B, nch, D, N) */
    float* dDp;   /* (B, nch, D) or NULL */
    float* dbp;   /* (B, nch, D) or NULL */
    float* dBp;   /* (S, B, G, N, L) */
    float* dCp;   /* (S, B, G, N, L) */
    float* carry; /* (3, B, D, L) fp32, only when N > kNTile */
};

/* dz of y = y_pre * silu(z): dy * y_pre * sigmoid(z) * (1 + z (1 - sigmoid(z))) */
static __device__ __forceinline__ float dz_of(float dy, float y_pre, float z) {
    const float sg = sigmoidf(z);
    return dy * y_pre * sg * (1.f + z * (1.f - sg));
}

/* Per lane: delta' (0 past L), softplus' (0 past L), u, and dy_pre = dy * silu(z).
 * kU / kDy: whether u / dy (and z) are loaded (0 otherwise: the halves of the chunk
 * aggregates need only one of them each). */
template <typename T, bool kVec, bool kU = true, bool kDy = true>
__device__ __forceinline__ void load_channel(const BwdArgs<T>& p, int64_t row, int64_t d,
                                             int64_t t0, int64_t valid, float (&uu)[kItems],
                                             float (&dt)[kItems], float (&dsoft)[kItems],
                                             float (&gg)[kItems], float (&dyv)[kItems],
                                             float (&zz)[kItems]) {
    const float bias = p.bias ? p.bias[d] : 0.f;
#pragma unroll
    for (int i = 0; i < kItems; i++) uu[i] = dyv[i] = zz[i] = 0.f;
    if (kU) load_run<T, kItems, kVec>(p.u, row + t0, valid, uu, 0.f);
    load_run<T, kItems, kVec>(p.delta, row + t0, valid, dt, 0.f);
    if (kDy) load_run<T, kItems, kVec>(p.dy, row + t0, valid, dyv, 0.f);
    if (kDy && p.z) load_run<T, kItems, kVec>(p.z, row + t0, valid, zz, 0.f);
#pragma unroll
    for (int i = 0; i < kItems; i++) {
        float x = dt[i] + bias, ds = 1.f;
        if (p.softplus) {
            ds = sigmoidf(x);
            x = softplus(x);
        }
        dt[i] = i < valid ? x : 0.f;
        dsoft[i] = i < valid ? ds : 0.f;
        gg[i] = p.z ? dyv[i] * zz[i] * sigmoidf(zz[i]) : dyv[i];
    }
}

/* 1. chunk-local aggregates: one warp per (b, d, chunk) */
template <typename T, bool kVec>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) scan_bwd_local(const BwdArgs<T> p) {
    const int lane = threadIdx.x & 31;
    const int64_t w = (int64_t)blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
    if (w >= p.Bsz * p.D * p.nch) return; /* whole warps exit together */
    const int64_t c = w % p.nch, bd = w / p.nch;
    const int64_t d = bd % p.D, b = bd / p.D;
    const int64_t N = p.N, L = p.L;
    const int64_t row = bd * L;
    const int64_t bc = (b * p.G + d / p.dpg) * N * L;
    const int64_t t0 = c * kTW + lane * kItems, valid = L - t0;
    float uu[kItems], dt[kItems], dsoft[kItems], gg[kItems], dyv[kItems], zz[kItems];
    load_channel<T, kVec>(p, row, d, t0, valid, uu, dt, dsoft, gg, dyv, zz);
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < kItems; i++) s += dt[i];
    s = warp_sum(s);
    if (lane == 0) p.Ssum[w] = s;
    for (int64_t n = 0; n < N; n++) {
        const float A2 = p.A[d * N + n] * kLog2e;
        float Bv[kItems], Cv[kItems], a[kItems];
        load_run<T, kItems, kVec>(p.Bm, bc + n * L + t0, valid, Bv, 0.f);
        load_run<T, kItems, kVec>(p.Cm, bc + n * L + t0, valid, Cv, 0.f);
        float pa = 1.f, pb = 0.f, rb = 0.f;
#pragma unroll
        for (int i = 0; i < kItems; i++) {
            a[i] = fast_exp2(dt[i] * A2);
            pb = fmaf(a[i], pb, dt[i] * uu[i] * Bv[i]);
            pa *= a[i];
        }
#pragma unroll
        for (int i = kItems - 1; i >= 0; i--) rb = a[i] * (rb + gg[i] * Cv[i]);
        float ra = pa;
        warp_scan_fwd(pa, pb, lane);
        warp_scan_rev(ra, rb, lane);
        if (lane == 31) p.hin[w * N + n] = pb;
        if (lane == 0) p.rin[w * N + n] = rb;
    }
}

/* 1'. chunk-local aggregates without scans (bwd v4, v5): with P_t the sum of
 * delta' over the chunk up to and including t, and S its total,
 *   end state from zero  = sum_t exp2(A log2e (S - P_t)) delta'_t B_t u_t
 *   adjoint to the left  = sum_t exp2(A log2e P_t) dy_pre_t C_t
 * so one scan of delta' per chunk serves every n, and each n costs two exp2
 * per step and two warp sums (butterfly, the same order in every run).
 * kHalves: which of the two (kFwdHalf: the end states alone, for the chunk states of a
 * forward that does not save them; kRevHalf: the adjoints alone, when the forward saved
 * the chunk states). */
constexpr int kFwdHalf = 1, kRevHalf = 2, kBothHalves = 3;
template <typename T, bool kVec, bool kChannelMajor, int kHalves = kBothHalves>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) scan_bwd_local_sum(const BwdArgs<T> p) {
    constexpr bool kF = (kHalves & kFwdHalf) != 0, kR = (kHalves & kRevHalf) != 0;
    const int lane = threadIdx.x & 31;
    const int64_t w = (int64_t)blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
    if (w >= p.Bsz * p.D * p.nch) return; /* whole warps exit together */
    /* kChannelMajor (bwd v6, v7): the warps of a block take neighbouring channels of
     * one chunk, so their loads of the same B, C rows meet in L1 */
    const int64_t BD = p.Bsz * p.D;
    const int64_t c = kChannelMajor ? w / BD : w % p.nch, bd = kChannelMajor ? w % BD : w / p.nch;
    const int64_t wo = bd * p.nch + c; /* output slot of (b, d, chunk) */
    const int64_t d = bd % p.D, b = bd / p.D;
    const int64_t N = p.N, L = p.L;
    const int64_t row = bd * L;
    const int64_t bc = (b * p.G + d / p.dpg) * N * L;
    const int64_t t0 = c * kTW + lane * kItems, valid = L - t0;
    float uu[kItems], dt[kItems], dsoft[kItems], gg[kItems], dyv[kItems], zz[kItems];
    load_channel<T, kVec, kF, kR>(p, row, d, t0, valid, uu, dt, dsoft, gg, dyv, zz);
    float ls = 0.f;
#pragma unroll
    for (int i = 0; i < kItems; i++) ls += dt[i];
    float incl = ls;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
        const float y = __shfl_up_sync(0xffffffffu, incl, off);
        if (lane >= off) incl += y;
    }
    const float S = __shfl_sync(0xffffffffu, incl, 31);
    float P[kItems], du[kItems];
    float run = incl - ls;
#pragma unroll
    for (int i = 0; i < kItems; i++) {
        run += dt[i];
        P[i] = run;
        du[i] = dt[i] * uu[i];
    }
    if (lane == 0) p.Ssum[wo] = S;
    for (int64_t n = 0; n < N; n++) {
        const float A2 = p.A[d * N + n] * kLog2e;
        float Bv[kItems], Cv[kItems];
        if (kF) load_run<T, kItems, kVec>(p.Bm, bc + n * L + t0, valid, Bv, 0.f);
        if (kR) load_run<T, kItems, kVec>(p.Cm, bc + n * L + t0, valid, Cv, 0.f);
        float fs = 0.f, rs = 0.f;
#pragma unroll
        for (int i = 0; i < kItems; i++) {
            if (kF) fs = fmaf(fast_exp2(A2 * (S - P[i])), du[i] * Bv[i], fs);
            if (kR) rs = fmaf(fast_exp2(A2 * P[i]), gg[i] * Cv[i], rs);
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) {
            if (kF) fs += __shfl_xor_sync(0xffffffffu, fs, off);
            if (kR) rs += __shfl_xor_sync(0xffffffffu, rs, off);
        }
        if (lane == 0) {
            if (kF) p.hin[wo * N + n] = fs;
            if (kR) p.rin[wo * N + n] = rs;
        }
    }
}

/* 2. combine the aggregates along the chunks: one thread per (b, d, n); the
 * chunks are taken 8 at a time, their loads issued together before the
 * dependent chain of fmas (one memory latency per 8 chunks, not per chunk).
 * halves: the forward walk (states, kFwdHalf) and / or the reverse one (adjoints). */
__global__ void scan_bwd_combine(const float* __restrict__ A, const float* __restrict__ Ssum,
                                 float* __restrict__ hin, float* __restrict__ rin, int64_t Bsz,
                                 int64_t D, int64_t N, int64_t nch, int halves) {
    constexpr int kB = 8;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= Bsz * D * N) return;
    const int64_t n = i % N, bd = i / N, d = bd % D;
    const float A2 = A[d * N + n] * kLog2e;
    const float* __restrict__ S = Ssum + bd * nch;
    float* __restrict__ H = hin + bd * nch * N + n;
    float* __restrict__ R = rin + bd * nch * N + n;
    float h = 0.f;
    for (int64_t c0 = 0; (halves & kFwdHalf) && c0 < nch; c0 += kB) {
        float loc[kB], dec[kB];
#pragma unroll
        for (int k = 0; k < kB; k++) {
            const bool ok = c0 + k < nch;
            loc[k] = ok ? H[(c0 + k) * N] : 0.f;
            dec[k] = ok ? fast_exp2(A2 * S[c0 + k]) : 1.f;
        }
#pragma unroll
        for (int k = 0; k < kB; k++) {
            if (c0 + k < nch) H[(c0 + k) * N] = h;
            h = fmaf(dec[k], h, loc[k]);
        }
    }
    float r = 0.f;
    for (int64_t c1 = nch; (halves & kRevHalf) && c1 > 0; c1 -= kB) { /* chunks c1-1 down to c1-kB */
        float loc[kB], dec[kB];
#pragma unroll
        for (int k = 0; k < kB; k++) {
            const int64_t c = c1 - 1 - k;
            loc[k] = c >= 0 ? R[c * N] : 0.f;
            dec[k] = c >= 0 ? fast_exp2(A2 * S[c]) : 1.f;
        }
#pragma unroll
        for (int k = 0; k < kB; k++) {
            const int64_t c = c1 - 1 - k;
            if (c >= 0) R[c * N] = r;
            r = fmaf(dec[k], r, loc[k]);
        }
    }
}

/* 3. gradients: one warp per (b, g, chunk, split), channels of the split in order */
template <typename T, bool kVec, int kNTile, bool kPrefetch>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) scan_bwd_grads(const BwdArgs<T> p) {
    const int lane = threadIdx.x & 31;
    const int64_t w = (int64_t)blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
    if (w >= p.Bsz * p.G * p.nch * p.S) return;
    const int64_t c = w % p.nch;
    const int64_t rest = w / p.nch;
    const int64_t s = rest % p.S, bg = rest / p.S;
    const int64_t g = bg % p.G, b = bg / p.G;
    const int64_t N = p.N, L = p.L, D = p.D;
    const int64_t d_begin = g * p.dpg + s * p.cps;
    const int64_t d_end = min(d_begin + p.cps, (g + 1) * p.dpg);
    const int64_t bc = bg * N * L;
    const int64_t t0 = c * kTW + lane * kItems, valid = L - t0;
    const int64_t BDL = p.Bsz * D * L;

    for (int64_t n0 = 0; n0 < N; n0 += kNTile) {
        const bool first_tile = n0 == 0, last_tile = n0 + kNTile >= N;
        float accB[kNTile][kItems], accC[kNTile][kItems];
#pragma unroll
        for (int j = 0; j < kNTile; j++)
#pragma unroll
            for (int i = 0; i < kItems; i++) accB[j][i] = accC[j][i] = 0.f;

        for (int64_t d = d_begin; d < d_end; d++) {
            const int64_t row = (b * D + d) * L;
            const int64_t cw = (b * D + d) * p.nch + c; /* (b, d, chunk) */
            float uu[kItems], dt[kItems], dsoft[kItems], gg[kItems], dyv[kItems], zz[kItems];
            load_channel<T, kVec>(p, row, d, t0, valid, uu, dt, dsoft, gg, dyv, zz);
            float du_a[kItems], ddt_a[kItems], yp_a[kItems];
            if (first_tile) {
#pragma unroll
                for (int i = 0; i < kItems; i++) du_a[i] = ddt_a[i] = yp_a[i] = 0.f;
            } else {
#pragma unroll
                for (int i = 0; i < kItems; i++) {
                    bool ok = i < valid;
                    du_a[i] = ok ? p.carry[row + t0 + i] : 0.f;
                    ddt_a[i] = ok ? p.carry[BDL + row + t0 + i] : 0.f;
                    yp_a[i] = ok ? p.carry[2 * BDL + row + t0 + i] : 0.f;
                }
            }
            float Bnx[kItems], Cnx[kItems], hnx = 0.f, rnx = 0.f, Anx = 0.f;
            if (kPrefetch) {
                load_run<T, kItems, kVec>(p.Bm, bc + n0 * L + t0, valid, Bnx, 0.f);
                load_run<T, kItems, kVec>(p.Cm, bc + n0 * L + t0, valid, Cnx, 0.f);
                hnx = p.hin[cw * N + n0], rnx = p.rin[cw * N + n0], Anx = p.A[d * N + n0];
            }
#pragma unroll
            for (int j = 0; j < kNTile; j++) {
                const int64_t n = n0 + j;
                if (n < N) { /* warp-uniform */
                    float Bv[kItems], Cv[kItems], a[kItems], bb[kItems], q[kItems], hp[kItems];
                    float An, hin_n, rin_n;
                    if (kPrefetch) { /* take state n, start loading state n+1 */
#pragma unroll
                        for (int i = 0; i < kItems; i++) Bv[i] = Bnx[i], Cv[i] = Cnx[i];
                        An = Anx, hin_n = hnx, rin_n = rnx;
                        if (j + 1 < kNTile && n + 1 < N) {
                            load_run<T, kItems, kVec>(p.Bm, bc + (n + 1) * L + t0, valid, Bnx, 0.f);
                            load_run<T, kItems, kVec>(p.Cm, bc + (n + 1) * L + t0, valid, Cnx, 0.f);
                            hnx = p.hin[cw * N + n + 1], rnx = p.rin[cw * N + n + 1];
                            Anx = p.A[d * N + n + 1];
                        }
                    } else {
                        An = p.A[d * N + n], hin_n = p.hin[cw * N + n], rin_n = p.rin[cw * N + n];
                        load_run<T, kItems, kVec>(p.Bm, bc + n * L + t0, valid, Bv, 0.f);
                        load_run<T, kItems, kVec>(p.Cm, bc + n * L + t0, valid, Cv, 0.f);
                    }
                    const float A2 = An * kLog2e;
                    float pa = 1.f, pb = 0.f, rb = 0.f;
#pragma unroll
                    for (int i = 0; i < kItems; i++) {
                        a[i] = fast_exp2(dt[i] * A2);
                        bb[i] = dt[i] * uu[i] * Bv[i];
                        q[i] = gg[i] * Cv[i];
                        pb = fmaf(a[i], pb, bb[i]);
                        pa *= a[i];
                    }
#pragma unroll
                    for (int i = kItems - 1; i >= 0; i--) rb = a[i] * (rb + q[i]);
                    float ra = pa;
                    warp_scan_fwd(pa, pb, lane);
                    warp_scan_rev(ra, rb, lane);
                    float ea = __shfl_up_sync(0xffffffffu, pa, 1);
                    float eb = __shfl_up_sync(0xffffffffu, pb, 1);
                    float xa = __shfl_down_sync(0xffffffffu, ra, 1);
                    float xb = __shfl_down_sync(0xffffffffu, rb, 1);
                    if (lane == 0) ea = 1.f, eb = 0.f;
                    if (lane == 31) xa = 1.f, xb = 0.f;
                    float h = fmaf(ea, hin_n, eb);
                    float e = fmaf(xa, rin_n, xb);
#pragma unroll
                    for (int i = 0; i < kItems; i++) {
                        hp[i] = h;
                        h = fmaf(a[i], h, bb[i]);
                        yp_a[i] = fmaf(Cv[i], h, yp_a[i]);
                        accC[j][i] = fmaf(gg[i], h, accC[j][i]);
                    }
                    float dA_l = 0.f;
#pragma unroll
                    for (int i = kItems - 1; i >= 0; i--) {
                        const float lam = q[i] + e;
                        e = a[i] * lam;
                        const float lh = lam * hp[i] * a[i];
                        accB[j][i] = fmaf(lam * dt[i], uu[i], accB[j][i]);
                        du_a[i] = fmaf(lam * dt[i], Bv[i], du_a[i]);
                        ddt_a[i] += fmaf(lh, An, lam * Bv[i] * uu[i]);
                        dA_l = fmaf(lh, dt[i], dA_l);
                    }
                    dA_l = warp_sum(dA_l);
                    if (lane == 0) p.dAp[((b * p.nch + c) * D + d) * N + n] = dA_l;
                }
            }
            if (last_tile) {
                const float Dd = p.Dv ? p.Dv[d] : 0.f;
                float ddl[kItems], dzv[kItems];
                float dD_l = 0.f, db_l = 0.f;
#pragma unroll
                for (int i = 0; i < kItems; i++) {
                    yp_a[i] = fmaf(Dd, uu[i], yp_a[i]);
                    du_a[i] = fmaf(Dd, gg[i], du_a[i]);
                    ddl[i] = ddt_a[i] * dsoft[i];
                    dD_l = fmaf(gg[i], uu[i], dD_l);
                    db_l += ddl[i];
                    if (p.z) dzv[i] = dz_of(dyv[i], yp_a[i], zz[i]);
                }
                store_run<T, kItems, kVec>(p.du, row + t0, valid, du_a);
                store_run<T, kItems, kVec>(p.ddelta, row + t0, valid, ddl);
                if (p.z) store_run<T, kItems, kVec>(p.dz, row + t0, valid, dzv);
                if (p.dDp) {
                    dD_l = warp_sum(dD_l);
                    if (lane == 0) p.dDp[(b * p.nch + c) * D + d] = dD_l;
                }
                if (p.dbp) {
                    db_l = warp_sum(db_l);
                    if (lane == 0) p.dbp[(b * p.nch + c) * D + d] = db_l;
                }
            } else {
#pragma unroll
                for (int i = 0; i < kItems; i++) {
                    if (i < valid) {
                        p.carry[row + t0 + i] = du_a[i];
                        p.carry[BDL + row + t0 + i] = ddt_a[i];
                        p.carry[2 * BDL + row + t0 + i] = yp_a[i];
                    }
                }
            }
        }
        /* this split's dB, dC partials for the tile */
        const int64_t BGNL = p.Bsz * p.G * N * L;
#pragma unroll
        for (int j = 0; j < kNTile; j++) {
            const int64_t n = n0 + j;
            if (n < N) {
                const int64_t o = s * BGNL + bc + n * L + t0;
#pragma unroll
                for (int i = 0; i < kItems; i++) {
                    if (i < valid) {
                        p.dBp[o + i] = accB[j][i];
                        p.dCp[o + i] = accC[j][i];
                    }
                }
            }
        }
    }
}

/* 3'. gradients, states split across the warps of a block (bwd v4, N <= 32):
 * one block of W = ceil(N/4) warps per (b, g, chunk, split); warp w takes the
 * states 4w .. 4w+3 of every channel of the split, so each warp keeps only 4
 * states of dB, dC partials in registers (more warps resident, 4 independent
 * state chains per warp). du, d delta' and y_pre of a channel are summed over
 * the warps through shared memory in warp order (double-buffered by channel
 * parity, one barrier per channel) and finished by warp 0. */
constexpr int kST = 4; /* states per warp */

template <typename T, bool kVec, bool kFull, bool kTight>
__global__ void __launch_bounds__(kTight ? 128 : 256, kTight ? 4 : 0) scan_bwd_grads_tw(const BwdArgs<T> p) {
    extern __shared__ float4 red4[]; /* [2][3][W][32] float4 = [2][3][W][kTW] float */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, W = blockDim.x >> 5;
    const int64_t blk = blockIdx.x;
    const int64_t c = blk % p.nch;
    const int64_t rest = blk / p.nch;
    const int64_t s = rest % p.S, bg = rest / p.S;
    const int64_t g = bg % p.G, b = bg / p.G;
    const int64_t N = p.N, L = p.L, D = p.D;
    const int64_t d_begin = g * p.dpg + s * p.cps;
    const int64_t d_end = min(d_begin + p.cps, (g + 1) * p.dpg);
    const int64_t bc = bg * N * L;
    const int64_t t0 = c * kTW + lane * kItems, valid = L - t0;
    const int64_t n0 = (int64_t)warp * kST;

    float accB[kST][kItems], accC[kST][kItems];
#pragma unroll
    for (int j = 0; j < kST; j++)
#pragma unroll
        for (int i = 0; i < kItems; i++) accB[j][i] = accC[j][i] = 0.f;

    int par = 0;
    for (int64_t d = d_begin; d < d_end; d++, par ^= 1) {
        const int64_t row = (b * D + d) * L;
        const int64_t cw = (b * D + d) * p.nch + c;
        float uu[kItems], dt[kItems], dsoft[kItems], gg[kItems], dyv[kItems], zz[kItems];
        load_channel<T, kVec>(p, row, d, t0, valid, uu, dt, dsoft, gg, dyv, zz);
        float du_a[kItems], ddt_a[kItems], yp_a[kItems];
#pragma unroll
        for (int i = 0; i < kItems; i++) du_a[i] = ddt_a[i] = yp_a[i] = 0.f;
#pragma unroll
        for (int j = 0; j < kST; j++) {
            const int64_t n = n0 + j;
            if (kFull || n < N) { /* warp-uniform */
                const float An = p.A[d * N + n], A2 = An * kLog2e;
                const float hin_n = p.hin[cw * N + n], rin_n = p.rin[cw * N + n];
                float Bv[kItems], Cv[kItems], a[kItems], bb[kItems], q[kItems], hp[kItems];
                load_run<T, kItems, kVec>(p.Bm, bc + n * L + t0, valid, Bv, 0.f);
                load_run<T, kItems, kVec>(p.Cm, bc + n * L + t0, valid, Cv, 0.f);
                float pa = 1.f, pb = 0.f, rb = 0.f;
#pragma unroll
                for (int i = 0; i < kItems; i++) {
                    a[i] = fast_exp2(dt[i] * A2);
                    bb[i] = dt[i] * uu[i] * Bv[i];
                    q[i] = gg[i] * Cv[i];
                    pb = fmaf(a[i], pb, bb[i]);
                    pa *= a[i];
                }
#pragma unroll
                for (int i = kItems - 1; i >= 0; i--) rb = a[i] * (rb + q[i]);
                float ra = pa;
                warp_scan_fwd(pa, pb, lane);
                warp_scan_rev(ra, rb, lane);
                float ea = __shfl_up_sync(0xffffffffu, pa, 1);
                float eb = __shfl_up_sync(0xffffffffu, pb, 1);
                float xa = __shfl_down_sync(0xffffffffu, ra, 1);
                float xb = __shfl_down_sync(0xffffffffu, rb, 1);
                if (lane == 0) ea = 1.f, eb = 0.f;
                if (lane == 31) xa = 1.f, xb = 0.f;
                float h = fmaf(ea, hin_n, eb);
                float e = fmaf(xa, rin_n, xb);
#pragma unroll
                for (int i = 0; i < kItems; i++) {
                    hp[i] = h;
                    h = fmaf(a[i], h, bb[i]);
                    yp_a[i] = fmaf(Cv[i], h, yp_a[i]);
                    accC[j][i] = fmaf(gg[i], h, accC[j][i]);
                }
                float dA_l = 0.f;
#pragma unroll
                for (int i = kItems - 1; i >= 0; i--) {
                    const float lam = q[i] + e;
                    e = a[i] * lam;
                    const float lh = lam * hp[i] * a[i];
                    accB[j][i] = fmaf(lam * dt[i], uu[i], accB[j][i]);
                    du_a[i] = fmaf(lam * dt[i], Bv[i], du_a[i]);
                    ddt_a[i] += fmaf(lh, An, lam * Bv[i] * uu[i]);
                    dA_l = fmaf(lh, dt[i], dA_l);
                }
                dA_l = warp_sum(dA_l);
                if (lane == 0) p.dAp[((b * p.nch + c) * D + d) * N + n] = dA_l;
            }
        }
        /* this warp's share of du, d delta', y_pre, then warp 0 sums them in warp order */
        float4* rbuf = red4 + (size_t)par * 3 * W * 32;
        rbuf[(0 * W + warp) * 32 + lane] = make_float4(du_a[0], du_a[1], du_a[2], du_a[3]);
        rbuf[(1 * W + warp) * 32 + lane] = make_float4(ddt_a[0], ddt_a[1], ddt_a[2], ddt_a[3]);
        rbuf[(2 * W + warp) * 32 + lane] = make_float4(yp_a[0], yp_a[1], yp_a[2], yp_a[3]);
        __syncthreads();
        if (warp == 0) {
            float su[kItems] = {0.f, 0.f, 0.f, 0.f}, sd[kItems] = {0.f, 0.f, 0.f, 0.f};
            float sy[kItems] = {0.f, 0.f, 0.f, 0.f};
            for (int w = 0; w < W; w++) {
                const float4 x = rbuf[(0 * W + w) * 32 + lane], y4 = rbuf[(1 * W + w) * 32 + lane];
                const float4 v = rbuf[(2 * W + w) * 32 + lane];
                su[0] += x.x, su[1] += x.y, su[2] += x.z, su[3] += x.w;
                sd[0] += y4.x, sd[1] += y4.y, sd[2] += y4.z, sd[3] += y4.w;
                sy[0] += v.x, sy[1] += v.y, sy[2] += v.z, sy[3] += v.w;
            }
            const float Dd = p.Dv ? p.Dv[d] : 0.f;
            float ddl[kItems], dzv[kItems];
            float dD_l = 0.f, db_l = 0.f;
#pragma unroll
            for (int i = 0; i < kItems; i++) {
                sy[i] = fmaf(Dd, uu[i], sy[i]);
                su[i] = fmaf(Dd, gg[i], su[i]);
                ddl[i] = sd[i] * dsoft[i];
                dD_l = fmaf(gg[i], uu[i], dD_l);
                db_l += ddl[i];
                if (p.z) dzv[i] = dz_of(dyv[i], sy[i], zz[i]);
            }
            store_run<T, kItems, kVec>(p.du, row + t0, valid, su);
            store_run<T, kItems, kVec>(p.ddelta, row + t0, valid, ddl);
            if (p.z) store_run<T, kItems, kVec>(p.dz, row + t0, valid, dzv);
            if (p.dDp) {
                dD_l = warp_sum(dD_l);
                if (lane == 0) p.dDp[(b * p.nch + c) * D + d] = dD_l;
            }
            if (p.dbp) {
                db_l = warp_sum(db_l);
                if (lane == 0) p.dbp[(b * p.nch + c) * D + d] = db_l;
            }
        }
    }
    const int64_t BGNL = p.Bsz * p.G * N * L;
#pragma unroll
    for (int j = 0; j < kST; j++) {
        const int64_t n = n0 + j;
        if (n < N) {
            const int64_t o = s * BGNL + bc + n * L + t0;
#pragma unroll
            for (int i = 0; i < kItems; i++) {
                if (i < valid) {
                    p.dBp[o + i] = accB[j][i];
                    p.dCp[o + i] = accC[j][i];
                }
            }
        }
    }
}

/* bwd v8, v9: the sums over the 32 lanes of 4 values at once (kST = 4 states): halves
 * exchanged at lane distance 16 (2 shuffles), then 8 (1), then one value summed at 4, 2, 1:
 * 6 shuffles instead of 4 x 5. Returns, on lanes 0, 8, 16, 24, the sum of state lane / 8
 * (other lanes: partial sums). The same order in every run. */
static_assert(kST == 4, "warp_sum_states sums 4 states");
static __device__ __forceinline__ float warp_sum_states(const float (&v)[kST], int lane) {
    const bool hi16 = lane & 16, hi8 = lane & 8;
    float a0 = hi16 ? v[2] : v[0], a1 = hi16 ? v[3] : v[1];
    const float s0 = hi16 ? v[0] : v[2], s1 = hi16 ? v[1] : v[3];
    a0 += __shfl_xor_sync(0xffffffffu, s0, 16);
    a1 += __shfl_xor_sync(0xffffffffu, s1, 16);
    float x = (hi8 ? a1 : a0) + __shfl_xor_sync(0xffffffffu, hi8 ? a0 : a1, 8);
    x += __shfl_xor_sync(0xffffffffu, x, 4);
    x += __shfl_xor_sync(0xffffffffu, x, 2);
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x;
}

/* bwd v9: the finishing of a channel spread over the warps of the block. Warp w
 * takes items w, w + W, ... of every lane (one item each when W = 4): it sums the
 * warps' du, d delta', y_pre of that item in warp order (red: [3][W][32] float4), adds
 * the D terms, stores du, d delta', dz, and writes the item's dD and d delta_bias
 * partials as their own slots, part (b, chunk, item), summed in that order later. */
template <typename T>
__device__ __forceinline__ void finish_items_spread(const BwdArgs<T>& p, const float* red, int W,
                                                    int warp, int lane, int64_t b, int64_t c,
                                                    int64_t d, int64_t row, int64_t t0,
                                                    const float (&uu)[kItems], const float (&dsoft)[kItems],
                                                    const float (&gg)[kItems], const float (&dyv)[kItems],
                                                    const float (&zz)[kItems]) {
    const float Dd = p.Dv ? p.Dv[d] : 0.f;
#pragma unroll
    for (int i = 0; i < kItems; i++) {
        if (i % W != warp) continue; /* warp-uniform */
        float su = 0.f, sd = 0.f, sy = 0.f;
        for (int w = 0; w < W; w++) {
            su += red[((0 * W + w) * 32 + lane) * kItems + i];
            sd += red[((1 * W + w) * 32 + lane) * kItems + i];
            sy += red[((2 * W + w) * 32 + lane) * kItems + i];
        }
        sy = fmaf(Dd, uu[i], sy);
        su = fmaf(Dd, gg[i], su);
        const float ddl = sd * dsoft[i]; /* 0 past L (dsoft is) */
        const int64_t t = t0 + i;
        if (t < p.L) {
            p.du[row + t] = mb_from_float<T>(su);
            p.ddelta[row + t] = mb_from_float<T>(ddl);
            if (p.z) p.dz[row + t] = mb_from_float<T>(dz_of(dyv[i], sy, zz[i]));
        }
        const int64_t slot = ((b * p.nch + c) * kItems + i) * p.D + d;
        if (p.dDp) {
            const float x = warp_sum(gg[i] * uu[i]);
            if (lane == 0) p.dDp[slot] = x;
        }
        if (p.dbp) {
            const float x = warp_sum(ddl);
            if (lane == 0) p.dbp[slot] = x;
        }
    }
}

/* 3''. bwd v6: scan_bwd_grads_tw with the channel inputs pipelined through
 * shared memory. The last warp of the block is the loader: at the start of
 * channel k it issues the loads of channel k+1 (u, delta, dy, z as packed
 * words, and the chunk carries h_in, R and A of every state, lane n for state
 * n), does its own states of channel k, then turns them into delta',
 * softplus', dy_pre, ... and stores them in the other half of a double buffer
 * before the channel's barrier. Every warp reads channel k's values from
 * shared memory, so the memory latency of a channel's inputs is hidden behind
 * the loader's work on the previous channel instead of stalling all warps. */
template <typename T, bool kVec, bool kFull, bool kTight, bool kSpread, bool kStageBC>
__global__ void __launch_bounds__(kTight ? 128 : 256, kTight ? 4 : 0) scan_bwd_grads_pipe(const BwdArgs<T> p) {
    extern __shared__ float4 sm4[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, W = blockDim.x >> 5;
    float4* red4 = sm4;                        /* [2][3][W][32] float4 */
    float4* chan4 = sm4 + 2 * 3 * W * 32;      /* [2][6][32] float4: u, dt, dsoft, g, dy, z */
    float* stat = (float*)(chan4 + 2 * 6 * 32); /* [2][3][32]: h_in, R, A of each state */
    float4* sB4 = (float4*)(stat + 2 * 3 * 32); /* kStageBC: [N][32] float4, B of the chunk in fp32 */
    float4* sC4 = sB4 + p.N * 32;               /* kStageBC: [N][32] float4, C */
    const int64_t blk = blockIdx.x;
    const int64_t c = blk % p.nch;
    const int64_t rest = blk / p.nch;
    const int64_t s = rest % p.S, bg = rest / p.S;
    const int64_t g = bg % p.G, b = bg / p.G;
    const int64_t N = p.N, L = p.L, D = p.D;
    const int64_t d_begin = g * p.dpg + s * p.cps;
    const int64_t d_end = min(d_begin + p.cps, (g + 1) * p.dpg);
    const int64_t bc = bg * N * L;
    const int64_t t0 = c * kTW + lane * kItems, valid = L - t0;
    const int64_t n0 = (int64_t)warp * kST;
    const bool loader = warp == W - 1;

    RawRun<T, kItems> ru, rd, ry, rz;
    float ph = 0.f, pr = 0.f, pA = 0.f;
    /* the loader's two halves: issue the loads of channel dn, then publish them into buffer q */
    auto issue = [&](int64_t dn) {
        const int64_t rown = (b * D + dn) * L;
        load_raw<T, kItems, kVec>(p.u, rown + t0, valid, ru);
        load_raw<T, kItems, kVec>(p.delta, rown + t0, valid, rd);
        load_raw<T, kItems, kVec>(p.dy, rown + t0, valid, ry);
        if (p.z) load_raw<T, kItems, kVec>(p.z, rown + t0, valid, rz);
        if (lane < N) {
            const int64_t cwn = (b * D + dn) * p.nch + c;
            ph = p.hin[cwn * N + lane];
            pr = p.rin[cwn * N + lane];
            pA = p.A[dn * N + lane];
        }
    };
    auto publish = [&](int64_t dn, int q) {
        const float bias = p.bias ? p.bias[dn] : 0.f;
        float v[6][kItems];
#pragma unroll
        for (int i = 0; i < kItems; i++) {
            const float uu = raw_at(ru, i), dl = raw_at(rd, i), dy = raw_at(ry, i);
            const float zz = p.z ? raw_at(rz, i) : 0.f;
            float x = dl + bias, ds = 1.f;
            if (p.softplus) {
                ds = sigmoidf(x);
                x = softplus(x);
            }
            const bool ok = i < valid;
            v[0][i] = uu;
            v[1][i] = ok ? x : 0.f;
            v[2][i] = ok ? ds : 0.f;
            v[3][i] = p.z ? dy * zz * sigmoidf(zz) : dy;
            v[4][i] = dy;
            v[5][i] = zz;
        }
#pragma unroll
        for (int a = 0; a < 6; a++)
            chan4[(q * 6 + a) * 32 + lane] = make_float4(v[a][0], v[a][1], v[a][2], v[a][3]);
        if (lane < N) {
            stat[(q * 3 + 0) * 32 + lane] = ph;
            stat[(q * 3 + 1) * 32 + lane] = pr;
            stat[(q * 3 + 2) * 32 + lane] = pA;
        }
    };
    if constexpr (kStageBC) { /* bwd v8, v9: the chunk's B and C rows, once per block, in fp32 */
        for (int e = threadIdx.x; e < (int)N * 32; e += blockDim.x) {
            const int64_t n = e / 32, tt = c * kTW + (e % 32) * kItems;
            float v[kItems];
            load_run<T, kItems, kVec>(p.Bm, bc + n * L + tt, L - tt, v, 0.f);
            sB4[e] = make_float4(v[0], v[1], v[2], v[3]);
            load_run<T, kItems, kVec>(p.Cm, bc + n * L + tt, L - tt, v, 0.f);
            sC4[e] = make_float4(v[0], v[1], v[2], v[3]);
        }
    }
    if (loader) {
        issue(d_begin);
        publish(d_begin, 0);
    }
    __syncthreads();

    float accB[kST][kItems], accC[kST][kItems];
#pragma unroll
    for (int j = 0; j < kST; j++)
#pragma unroll
        for (int i = 0; i < kItems; i++) accB[j][i] = accC[j][i] = 0.f;

    int par = 0;
    for (int64_t d = d_begin; d < d_end; d++, par ^= 1) {
        const int64_t row = (b * D + d) * L;
        const bool has_next = d + 1 < d_end;
        if (loader && has_next) issue(d + 1);
        float uu[kItems], dt[kItems], dsoft[kItems], gg[kItems], dyv[kItems], zz[kItems];
        {
            const float4 x0 = chan4[(par * 6 + 0) * 32 + lane], x1 = chan4[(par * 6 + 1) * 32 + lane];
            const float4 x2 = chan4[(par * 6 + 2) * 32 + lane], x3 = chan4[(par * 6 + 3) * 32 + lane];
            const float4 x4 = chan4[(par * 6 + 4) * 32 + lane], x5 = chan4[(par * 6 + 5) * 32 + lane];
            uu[0] = x0.x, uu[1] = x0.y, uu[2] = x0.z, uu[3] = x0.w;
            dt[0] = x1.x, dt[1] = x1.y, dt[2] = x1.z, dt[3] = x1.w;
            dsoft[0] = x2.x, dsoft[1] = x2.y, dsoft[2] = x2.z, dsoft[3] = x2.w;
            gg[0] = x3.x, gg[1] = x3.y, gg[2] = x3.z, gg[3] = x3.w;
            dyv[0] = x4.x, dyv[1] = x4.y, dyv[2] = x4.z, dyv[3] = x4.w;
            zz[0] = x5.x, zz[1] = x5.y, zz[2] = x5.z, zz[3] = x5.w;
        }
        float du_a[kItems], ddt_a[kItems], yp_a[kItems];
        float dA_st[kST] = {}; /* bwd v8, v9: this channel's dA partials of the warp's states */
#pragma unroll
        for (int i = 0; i < kItems; i++) du_a[i] = ddt_a[i] = yp_a[i] = 0.f;
#pragma unroll
        for (int j = 0; j < kST; j++) {
            const int64_t n = n0 + j;
            if (kFull || n < N) { /* warp-uniform */
                const float An = stat[(par * 3 + 2) * 32 + n], A2 = An * kLog2e;
                const float hin_n = stat[(par * 3 + 0) * 32 + n], rin_n = stat[(par * 3 + 1) * 32 + n];
                float Bv[kItems], Cv[kItems], a[kItems], bb[kItems], q[kItems], hp[kItems];
                if constexpr (kStageBC) {
                    const float4 b4 = sB4[n * 32 + lane], c4 = sC4[n * 32 + lane];
                    Bv[0] = b4.x, Bv[1] = b4.y, Bv[2] = b4.z, Bv[3] = b4.w;
                    Cv[0] = c4.x, Cv[1] = c4.y, Cv[2] = c4.z, Cv[3] = c4.w;
                } else {
                    load_run<T, kItems, kVec>(p.Bm, bc + n * L + t0, valid, Bv, 0.f);
                    load_run<T, kItems, kVec>(p.Cm, bc + n * L + t0, valid, Cv, 0.f);
                }
                float pa = 1.f, pb = 0.f, rb = 0.f;
#pragma unroll
                for (int i = 0; i < kItems; i++) {
                    a[i] = fast_exp2(dt[i] * A2);
                    bb[i] = dt[i] * uu[i] * Bv[i];
                    q[i] = gg[i] * Cv[i];
                    pb = fmaf(a[i], pb, bb[i]);
                    pa *= a[i];
                }
#pragma unroll
                for (int i = kItems - 1; i >= 0; i--) rb = a[i] * (rb + q[i]);
                float ra = pa;
                warp_scan_fwd(pa, pb, lane);
                warp_scan_rev(ra, rb, lane);
                float ea = __shfl_up_sync(0xffffffffu, pa, 1);
                float eb = __shfl_up_sync(0xffffffffu, pb, 1);
                float xa = __shfl_down_sync(0xffffffffu, ra, 1);
                float xb = __shfl_down_sync(0xffffffffu, rb, 1);
                if (lane == 0) ea = 1.f, eb = 0.f;
                if (lane == 31) xa = 1.f, xb = 0.f;
                float h = fmaf(ea, hin_n, eb);
                float e = fmaf(xa, rin_n, xb);
#pragma unroll
                for (int i = 0; i < kItems; i++) {
                    hp[i] = h;
                    h = fmaf(a[i], h, bb[i]);
                    yp_a[i] = fmaf(Cv[i], h, yp_a[i]);
                    accC[j][i] = fmaf(gg[i], h, accC[j][i]);
                }
                float dA_l = 0.f;
#pragma unroll
                for (int i = kItems - 1; i >= 0; i--) {
                    const float lam = q[i] + e;
                    e = a[i] * lam;
                    const float lh = lam * hp[i] * a[i];
                    accB[j][i] = fmaf(lam * dt[i], uu[i], accB[j][i]);
                    du_a[i] = fmaf(lam * dt[i], Bv[i], du_a[i]);
                    ddt_a[i] += fmaf(lh, An, lam * Bv[i] * uu[i]);
                    dA_l = fmaf(lh, dt[i], dA_l);
                }
                if constexpr (kStageBC) {
                    dA_st[j] = dA_l; /* summed over the lanes below, all states at once */
                } else {
                    dA_l = warp_sum(dA_l);
                    if (lane == 0) p.dAp[((b * p.nch + c) * D + d) * N + n] = dA_l;
                }
            }
        }
        if constexpr (kStageBC) {
            const float sum = warp_sum_states(dA_st, lane); /* state lane / 8 on lanes 0, 8, 16, 24 */
            const int64_t n = n0 + (lane >> 3);
            if ((lane & 7) == 0 && n < N) p.dAp[((b * p.nch + c) * D + d) * N + n] = sum;
        }
        float4* rbuf = red4 + (size_t)par * 3 * W * 32;
        rbuf[(0 * W + warp) * 32 + lane] = make_float4(du_a[0], du_a[1], du_a[2], du_a[3]);
        rbuf[(1 * W + warp) * 32 + lane] = make_float4(ddt_a[0], ddt_a[1], ddt_a[2], ddt_a[3]);
        rbuf[(2 * W + warp) * 32 + lane] = make_float4(yp_a[0], yp_a[1], yp_a[2], yp_a[3]);
        if (loader && has_next) publish(d + 1, par ^ 1);
        __syncthreads();
        if constexpr (kSpread) {
            finish_items_spread<T>(p, reinterpret_cast<const float*>(rbuf), W, warp, lane, b, c, d, row,
                                   t0, uu, dsoft, gg, dyv, zz);
        } else if (warp == 0) {
            float su[kItems] = {0.f, 0.f, 0.f, 0.f}, sd[kItems] = {0.f, 0.f, 0.f, 0.f};
            float sy[kItems] = {0.f, 0.f, 0.f, 0.f};
            for (int w = 0; w < W; w++) {
                const float4 x = rbuf[(0 * W + w) * 32 + lane], y4 = rbuf[(1 * W + w) * 32 + lane];
                const float4 v = rbuf[(2 * W + w) * 32 + lane];
                su[0] += x.x, su[1] += x.y, su[2] += x.z, su[3] += x.w;
                sd[0] += y4.x, sd[1] += y4.y, sd[2] += y4.z, sd[3] += y4.w;
                sy[0] += v.x, sy[1] += v.y, sy[2] += v.z, sy[3] += v.w;
            }
            const float Dd = p.Dv ? p.Dv[d] : 0.f;
            float ddl[kItems], dzv[kItems];
            float dD_l = 0.f, db_l = 0.f;
#pragma unroll
            for (int i = 0; i < kItems; i++) {
                sy[i] = fmaf(Dd, uu[i], sy[i]);
                su[i] = fmaf(Dd, gg[i], su[i]);
                ddl[i] = sd[i] * dsoft[i];
                dD_l = fmaf(gg[i], uu[i], dD_l);
                db_l += ddl[i];
                if (p.z) dzv[i] = dz_of(dyv[i], sy[i], zz[i]);
            }
            store_run<T, kItems, kVec>(p.du, row + t0, valid, su);
            store_run<T, kItems, kVec>(p.ddelta, row + t0, valid, ddl);
            if (p.z) store_run<T, kItems, kVec>(p.dz, row + t0, valid, dzv);
            if (p.dDp) {
                dD_l = warp_sum(dD_l);
                if (lane == 0) p.dDp[(b * p.nch + c) * D + d] = dD_l;
            }
            if (p.dbp) {
                db_l = warp_sum(db_l);
                if (lane == 0) p.dbp[(b * p.nch + c) * D + d] = db_l;
            }
        }
    }
    const int64_t BGNL = p.Bsz * p.G * N * L;
#pragma unroll
    for (int j = 0; j < kST; j++) {
        const int64_t n = n0 + j;
        if (n < N) {
            const int64_t o = s * BGNL + bc + n * L + t0;
#pragma unroll
            for (int i = 0; i < kItems; i++) {
                if (i < valid) {
                    p.dBp[o + i] = accB[j][i];
                    p.dCp[o + i] = accC[j][i];
                }
            }
        }
    }
}

/* 4a. dB, dC = sum of the split partials, split 0 first */
template <typename T>
__global__ void scan_bwd_reduce_bc(const float* __restrict__ dBp, const float* __restrict__ dCp,
                                   T* __restrict__ dB, T* __restrict__ dC, int64_t count,
                                   int64_t S) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x) {
        float sb = 0.f, sc = 0.f;
        for (int64_t s = 0; s < S; s++) {
            sb += dBp[s * count + i];
            sc += dCp[s * count + i];
        }
        dB[i] = mb_from_float<T>(sb);
        dC[i] = mb_from_float<T>(sc);
    }
}

/* 4b. dA (D, N), dD, ddelta_bias (D) = sums over (b, chunk) in order */
__global__ void scan_bwd_reduce_params(const float* __restrict__ dAp, const float* __restrict__ dDp,
                                       const float* __restrict__ dbp, float* __restrict__ dA,
                                       float* __restrict__ dD, float* __restrict__ db,
                                       int64_t parts, int64_t dparts, int64_t D, int64_t N) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t DN = D * N;
    if (i < DN) {
        float s = 0.f;
        for (int64_t k = 0; k < parts; k++) s += dAp[k * DN + i];
        dA[i] = s;
    } else if (i < DN + D) {
        const int64_t d = i - DN;
        if (dDp) {
            float s = 0.f;
            for (int64_t k = 0; k < dparts; k++) s += dDp[k * D + d];
            dD[d] = s;
        }
        if (dbp) {
            float s = 0.f;
            for (int64_t k = 0; k < dparts; k++) s += dbp[k * D + d];
            db[d] = s;
        }
    }
}

#ifdef MB_SCAN_PROFILE
/* timing tool only (kernels/selective_scan/tools/timing.cu): events between the kernels */
extern "C" int mb_scan_profile;
extern "C" cudaEvent_t mb_scan_prof_ev[6];
#define PROF_MARK(k) \
    if (mb_scan_profile) cudaEventRecord(mb_scan_prof_ev[k], st)
#else
#define PROF_MARK(k)
#endif

static size_t round_up(size_t x) { return (x + 255) & ~(size_t)255; }

/* The gradient kernels' split of a group's channels over S blocks per chunk.
 * bwd v1-v5: enough blocks for MB_SCAN_BWD_WARPS_PER_SM warps per SM (of 132).
 * bwd v6-v9 (the pipelined kernel, `grads_wave_split`): blocks run in waves of all the
 * blocks the GPU holds at once, and a block of cps channels costs about cps + 2 channels
 * (its B, C staging and the loader's first channel); S minimises waves x (cps + 2) with
 * cps <= 128. On the
 * H100 at L 16K (D 4096, N 16) the old rule (64 warps per SM) gave 2176 blocks: 4.12 waves
 * of 528 run as 5; this one gives 4224 = 8 full waves, the gradient kernel 5.34 -> ~4.6 ms.
 * tools/timing.cu builds -DMB_SCAN_BWD_OLD_SPLIT (and other MB_SCAN_BWD_WARPS_PER_SM) to
 * measure the choice. */
#ifndef MB_SCAN_BWD_WARPS_PER_SM
#define MB_SCAN_BWD_WARPS_PER_SM 64
#endif

static int64_t grads_wave_split(int64_t base, /* blocks per split: B * G * chunks */
                                int64_t dpg,  /* channels per group */
                                int64_t resident /* blocks the GPU holds at once */) {
    /* at most 128 channels a block (many short blocks balance the SMs: measured best at
     * 2K - 16K), and beyond ~4 waves' worth of splits only the per-block cost grows */
    const int64_t s_min = (dpg + 127) / 128;
    int64_t s_max = 4 * resident / (base > 0 ? base : 1) + 1;
    if (s_max < 2 * s_min) s_max = 2 * s_min;
    if (s_max > dpg) s_max = dpg;
    int64_t best_s = s_min, best_cost = INT64_MAX;
    for (int64_t s = s_min; s <= s_max; s++) {
        const int64_t cps = (dpg + s - 1) / s;
        if ((dpg + cps - 1) / cps != s) continue; /* the same split as a smaller s */
        const int64_t waves = (base * s + resident - 1) / resident;
        const int64_t cost = waves * (cps + 2);
        if (cost < best_cost) best_cost = cost, best_s = s;
    }
    return best_s;
}

/* Blocks of the pipelined gradient kernel the GPU holds at once (0 if unknown). */
template <typename T, bool kTightEff, bool kSp, bool kSt>
static int64_t grads_pipe_resident(int threads, size_t sm) {
    auto kernel = scan_bwd_grads_pipe<T, true, true, kTightEff, kSp, kSt>;
    if (sm > 48 * 1024 &&
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm) != cudaSuccess) {
        (void)cudaGetLastError(); /* not sticky: fall back to the warp-count rule */
        return 0;
    }
    return device_resident_blocks(kernel, threads, sm); /* 0: the warp-count rule */
}

/* the pipelined gradient kernel of one (vec, full, tight) case, with its shared memory allowed */
template <typename T, bool kVec, bool kFull, bool kTight, bool kSpread, bool kStageBC>
static cudaError_t launch_grads_pipe(const BwdArgs<T>& a, int64_t blocks, int W, size_t sm, cudaStream_t st) {
    auto kernel = scan_bwd_grads_pipe<T, kVec, kFull, kTight, kSpread, kStageBC>;
    if (sm > 48 * 1024) {
        const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm);
        if (e != cudaSuccess) return e;
    }
    kernel<<<(unsigned)blocks, 32 * W, sm, st>>>(a);
    return cudaGetLastError();
}

template <typename T, int kNTile, bool kPrefetch, bool kSplitStates = false, bool kTight = false, bool kPipe = false,
          bool kSpread = false, bool kStageBC = false>
mb_status launch_bwd(const mb_selective_scan_params* prm, const mb_selective_scan_inputs* in,
                     const void* dy, const mb_selective_scan_grads* gr, const mb_exec* ex) {
    cudaStream_t st = mb_stream(ex);
    BwdArgs<T> a;
    fill_common_args<T>(a, prm, in);
    a.dy = (const T*)dy;
    a.du = (T*)gr->du;
    a.ddelta = (T*)gr->ddelta;
    a.dz = (T*)gr->dz;
    a.Bsz = prm->batch;
    a.nch = (a.L + kTW - 1) / kTW;
    /* enough warps to fill the chip: about 64 per SM of 132 */
    const bool tw = kSplitStates && a.N <= 8 * kST; /* states split across the warps of a block */
    const int W = (int)((a.N + kST - 1) / kST);
    const int64_t warps = 132 * MB_SCAN_BWD_WARPS_PER_SM;
    const int64_t target = tw ? (warps + W - 1) / W : warps; /* blocks (tw) or warps */
    int64_t base = a.Bsz * a.G * a.nch;
    int64_t S = (target + base - 1) / base;
    /* the pipelined gradient kernel's shared memory (its launch below) */
    const size_t pipe_sm = ((size_t)2 * 3 * W * kTW + 2 * 6 * kTW + 2 * 3 * 32 +
                            (kStageBC ? (size_t)2 * a.N * kTW : 0)) * sizeof(float);
#ifndef MB_SCAN_BWD_OLD_SPLIT
    if (tw && kPipe) {
        const int64_t resident = (kTight && W <= 4)
                                     ? grads_pipe_resident<T, true, kSpread, kStageBC>(32 * W, pipe_sm)
                                     : grads_pipe_resident<T, false, kSpread, kStageBC>(32 * W, pipe_sm);
        if (resident > 0) S = grads_wave_split(base, a.dpg, resident);
    }
#endif
    if (S > a.dpg) S = a.dpg;
    if (S < 1) S = 1;
    a.cps = (a.dpg + S - 1) / S;
    a.S = (a.dpg + a.cps - 1) / a.cps; /* no empty split */

    const int64_t BDC = a.Bsz * a.D * a.nch;
    /* the chunk start states the forward saved (the training pair): the chunk aggregates
     * then need only their reverse half, and the combine only its reverse walk */
    const bool saved = kSplitStates && ex->scan_states != NULL;
    /* dD, d delta_bias partials per (b, chunk), or per (b, chunk, item) when the finishing is spread */
    const int64_t kParts = (kSpread && tw && kPipe) ? kItems : 1;
    const int64_t BGNL = a.Bsz * a.G * a.N * a.L;
    const int64_t BDL = a.Bsz * a.D * a.L;
    size_t off[9], total = 0;
    size_t sizes[9] = {
        (size_t)BDC * sizeof(float),                          /* Ssum */
        saved ? 0 : (size_t)BDC * a.N * sizeof(float),       /* hin */
        (size_t)BDC * a.N * sizeof(float),                    /* rin */
        (size_t)BDC * a.N * sizeof(float),                    /* dAp */
        in->D ? (size_t)BDC * kParts * sizeof(float) : 0,          /* dDp */
        in->delta_bias ? (size_t)BDC * kParts * sizeof(float) : 0, /* dbp */
        (size_t)(a.S * BGNL) * sizeof(float),                 /* dBp */
        (size_t)(a.S * BGNL) * sizeof(float),                 /* dCp */
        (a.N > kNTile && !tw) ? (size_t)3 * BDL * sizeof(float) : 0};  /* carry */
    for (int k = 0; k < 9; k++) {
        off[k] = total;
        total += round_up(sizes[k]);
    }
    char* ws = NULL;
    mb_status stt = mb_device_alloc((void**)&ws, total, ex->stream);
    if (stt != MB_OK) return stt;
    a.Ssum = (float*)(ws + off[0]);
    a.hin = saved ? ex->scan_states : (float*)(ws + off[1]); /* read only when saved */
    a.rin = (float*)(ws + off[2]);
    a.dAp = (float*)(ws + off[3]);
    a.dDp = in->D ? (float*)(ws + off[4]) : NULL;
    a.dbp = in->delta_bias ? (float*)(ws + off[5]) : NULL;
    a.dBp = (float*)(ws + off[6]);
    a.dCp = (float*)(ws + off[7]);
    a.carry = (a.N > kNTile && !tw) ? (float*)(ws + off[8]) : NULL;

    const bool vec = a.L % kItems == 0 && aligned16(a.u) && aligned16(a.delta) &&
                     aligned16(a.Bm) && aligned16(a.Cm) && aligned16(a.dy) &&
                     aligned16(a.du) && aligned16(a.ddelta) && (!a.z || aligned16(a.z)) &&
                     (!a.dz || aligned16(a.dz));
    cudaError_t err = cudaSuccess;
    const int threads = kWarpsPerBlock * 32;
    do {
        PROF_MARK(0);
        unsigned blocks = (unsigned)((BDC + kWarpsPerBlock - 1) / kWarpsPerBlock);
        if (kSplitStates && saved) {
            if (vec) scan_bwd_local_sum<T, true, kPipe, kRevHalf><<<blocks, threads, 0, st>>>(a);
            else scan_bwd_local_sum<T, false, kPipe, kRevHalf><<<blocks, threads, 0, st>>>(a);
        } else if (kSplitStates && kPipe) {
            if (vec) scan_bwd_local_sum<T, true, true><<<blocks, threads, 0, st>>>(a);
            else scan_bwd_local_sum<T, false, true><<<blocks, threads, 0, st>>>(a);
        } else if (kSplitStates) {
            if (vec) scan_bwd_local_sum<T, true, false><<<blocks, threads, 0, st>>>(a);
            else scan_bwd_local_sum<T, false, false><<<blocks, threads, 0, st>>>(a);
        } else {
            if (vec) scan_bwd_local<T, true><<<blocks, threads, 0, st>>>(a);
            else scan_bwd_local<T, false><<<blocks, threads, 0, st>>>(a);
        }
        if ((err = cudaGetLastError()) != cudaSuccess) break;
        PROF_MARK(1);
        int64_t nth = a.Bsz * a.D * a.N;
        scan_bwd_combine<<<(unsigned)((nth + 127) / 128), 128, 0, st>>>(
            a.A, a.Ssum, a.hin, a.rin, a.Bsz, a.D, a.N, a.nch, saved ? kRevHalf : kBothHalves);
        if ((err = cudaGetLastError()) != cudaSuccess) break;
        PROF_MARK(2);
        int64_t nw = a.Bsz * a.G * a.nch * a.S;
        if (tw && kPipe) {
            const size_t sm = pipe_sm;
            const bool full = a.N % kST == 0;
            constexpr bool kSp = kSpread, kSt = kStageBC;
            if (kTight && W <= 4) {
                if (vec && full) err = launch_grads_pipe<T, true, true, true, kSp, kSt>(a, nw, W, sm, st);
                else if (vec) err = launch_grads_pipe<T, true, false, true, kSp, kSt>(a, nw, W, sm, st);
                else err = launch_grads_pipe<T, false, false, true, kSp, kSt>(a, nw, W, sm, st);
            } else {
                if (vec && full) err = launch_grads_pipe<T, true, true, false, kSp, kSt>(a, nw, W, sm, st);
                else if (vec) err = launch_grads_pipe<T, true, false, false, kSp, kSt>(a, nw, W, sm, st);
                else err = launch_grads_pipe<T, false, false, false, kSp, kSt>(a, nw, W, sm, st);
            }
            if (err != cudaSuccess) break;
        } else if (tw) {
            const size_t sm = (size_t)2 * 3 * W * kTW * sizeof(float);
            const bool full = a.N % kST == 0;
            if (kTight && W <= 4) { /* at most 128 threads: held to 128 registers */
                if (vec && full) scan_bwd_grads_tw<T, true, true, true><<<(unsigned)nw, 32 * W, sm, st>>>(a);
                else if (vec) scan_bwd_grads_tw<T, true, false, true><<<(unsigned)nw, 32 * W, sm, st>>>(a);
                else scan_bwd_grads_tw<T, false, false, true><<<(unsigned)nw, 32 * W, sm, st>>>(a);
            } else {
                if (vec && full) scan_bwd_grads_tw<T, true, true, false><<<(unsigned)nw, 32 * W, sm, st>>>(a);
                else if (vec) scan_bwd_grads_tw<T, true, false, false><<<(unsigned)nw, 32 * W, sm, st>>>(a);
                else scan_bwd_grads_tw<T, false, false, false><<<(unsigned)nw, 32 * W, sm, st>>>(a);
            }
        } else {
            blocks = (unsigned)((nw + kWarpsPerBlock - 1) / kWarpsPerBlock);
            if (vec) scan_bwd_grads<T, true, kNTile, kPrefetch><<<blocks, threads, 0, st>>>(a);
            else scan_bwd_grads<T, false, kNTile, kPrefetch><<<blocks, threads, 0, st>>>(a);
        }
        if ((err = cudaGetLastError()) != cudaSuccess) break;
        PROF_MARK(3);
        int64_t rb = (BGNL + 255) / 256;
        if (rb > 132 * 16) rb = 132 * 16;
        scan_bwd_reduce_bc<T><<<(unsigned)rb, 256, 0, st>>>(a.dBp, a.dCp, (T*)gr->dB, (T*)gr->dC,
                                                             BGNL, a.S);
        if ((err = cudaGetLastError()) != cudaSuccess) break;
        int64_t np = a.D * a.N + a.D;
        scan_bwd_reduce_params<<<(unsigned)((np + 255) / 256), 256, 0, st>>>(
            a.dAp, a.dDp, a.dbp, (float*)gr->dA, (float*)gr->dD, (float*)gr->ddelta_bias,
            a.Bsz * a.nch, a.Bsz * a.nch * kParts, a.D, a.N);
        err = cudaGetLastError();
        PROF_MARK(4);
    } while (0);
    mb_device_free(ws, total, ex->stream);
    if (err != cudaSuccess)
        return mb_fail(MB_ERR_CUDA, "%s:%d: selective-scan backward launch failed: %s", __FILE__,
                       __LINE__, cudaGetErrorString(err));
    return MB_OK;
}

/* The chunk start states of the training pair (entry c: the state before step c * kTW), for
 * a forward version that does not write them: the forward halves of the chunk aggregates
 * and of the combine. Workspace: the chunks' sums of delta' (B, D, nch). */
template <typename T>
mb_status chunk_states(const mb_selective_scan_params* prm, const mb_selective_scan_inputs* in,
                       const mb_exec* ex) {
    static_assert(kTW == MB_SCAN_CHUNK, "the backward's chunks are the API's");
    cudaStream_t st = mb_stream(ex);
    BwdArgs<T> a = {};
    fill_common_args<T>(a, prm, in);
    a.Bsz = prm->batch;
    a.nch = (a.L + kTW - 1) / kTW;
    a.hin = ex->scan_states;
    const int64_t BDC = a.Bsz * a.D * a.nch;
    const size_t bytes = round_up((size_t)BDC * sizeof(float));
    mb_status stt = mb_device_alloc((void**)&a.Ssum, bytes, ex->stream);
    if (stt != MB_OK) return stt;
    const bool vec = a.L % kItems == 0 && aligned16(a.u) && aligned16(a.delta) && aligned16(a.Bm);
    const unsigned blocks = (unsigned)((BDC + kWarpsPerBlock - 1) / kWarpsPerBlock);
    const int threads = kWarpsPerBlock * 32;
    if (vec) scan_bwd_local_sum<T, true, true, kFwdHalf><<<blocks, threads, 0, st>>>(a);
    else scan_bwd_local_sum<T, false, true, kFwdHalf><<<blocks, threads, 0, st>>>(a);
    cudaError_t err = cudaGetLastError();
    if (err == cudaSuccess) {
        const int64_t nth = a.Bsz * a.D * a.N;
        scan_bwd_combine<<<(unsigned)((nth + 127) / 128), 128, 0, st>>>(
            a.A, a.Ssum, a.hin, NULL, a.Bsz, a.D, a.N, a.nch, kFwdHalf);
        err = cudaGetLastError();
    }
    mb_device_free(a.Ssum, bytes, ex->stream);
    if (err != cudaSuccess)
        return mb_fail(MB_ERR_CUDA, "%s:%d: selective-scan chunk states launch failed: %s",
                       __FILE__, __LINE__, cudaGetErrorString(err));
    return MB_OK;
}

} // namespace

/* The chunk states of the training pair where the forward version did not write them. */
extern "C" mb_status mb_scan_chunk_states_cuda(const mb_selective_scan_params* p,
                                               const mb_selective_scan_inputs* in,
                                               const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return chunk_states<__nv_bfloat16>(p, in, ex);
    return chunk_states<float>(p, in, ex);
}

/* v1: deterministic chunked backward (local aggregates, combine, warp-chunk grads in tiles of 8 states, fixed-order reductions). */
extern "C" mb_status mb_scan_bwd_cuda_v1(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, const void* dy,
                                         const mb_selective_scan_grads* g, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return launch_bwd<__nv_bfloat16, 8, false>(p, in, dy, g, ex);
    return launch_bwd<float, 8, false>(p, in, dy, g, ex);
}

/* v2: over v1, tiles of 16 states: N <= 16 in one pass over each channel's inputs. */
extern "C" mb_status mb_scan_bwd_cuda_v2(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, const void* dy,
                                         const mb_selective_scan_grads* g, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return launch_bwd<__nv_bfloat16, 16, false>(p, in, dy, g, ex);
    return launch_bwd<float, 16, false>(p, in, dy, g, ex);
}

/* v3: over v1 (8-state tiles), the gradient kernel loads B, C, A and the chunk carries of state n+1 while state n is processed. */
extern "C" mb_status mb_scan_bwd_cuda_v3(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, const void* dy,
                                         const mb_selective_scan_grads* g, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return launch_bwd<__nv_bfloat16, 8, true>(p, in, dy, g, ex);
    return launch_bwd<float, 8, true>(p, in, dy, g, ex);
}

/* v4: over v2, chunk aggregates from prefix sums of delta' (no per-state scans); for N <= 32 the states of a channel are split across the warps of a block (4 per warp; fewer registers, more warps), du / d delta' / y_pre summed over the warps in shared memory in a fixed order; the combine kernel loads 8 chunks at a time. N > 32 as v2. */
extern "C" mb_status mb_scan_bwd_cuda_v4(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, const void* dy,
                                         const mb_selective_scan_grads* g, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return launch_bwd<__nv_bfloat16, 16, false, true>(p, in, dy, g, ex);
    return launch_bwd<float, 16, false, true>(p, in, dy, g, ex);
}

/* v5: v4 with the split-state kernel held to 128 registers when N <= 16 (4 blocks of 128 threads per SM). */
extern "C" mb_status mb_scan_bwd_cuda_v5(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, const void* dy,
                                         const mb_selective_scan_grads* g, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return launch_bwd<__nv_bfloat16, 16, false, true, true>(p, in, dy, g, ex);
    return launch_bwd<float, 16, false, true, true>(p, in, dy, g, ex);
}

/* v6: over v5, the split-state gradient kernel gets each channel's inputs from a shared-memory double buffer filled one channel ahead by a loader warp. */
extern "C" mb_status mb_scan_bwd_cuda_v6(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, const void* dy,
                                         const mb_selective_scan_grads* g, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return launch_bwd<__nv_bfloat16, 16, false, true, true, true>(p, in, dy, g, ex);
    return launch_bwd<float, 16, false, true, true, true>(p, in, dy, g, ex);
}

/* v7: v6 without the 128-register cap. */
extern "C" mb_status mb_scan_bwd_cuda_v7(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, const void* dy,
                                         const mb_selective_scan_grads* g, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return launch_bwd<__nv_bfloat16, 16, false, true, false, true>(p, in, dy, g, ex);
    return launch_bwd<float, 16, false, true, false, true>(p, in, dy, g, ex);
}

/* v8: v6 with the block's chunk of B and C converted to fp32 in shared memory once and read
 * from there by every channel of the block (instead of bf16 loads and unpacking per channel
 * and state), and the warp's 4 dA sums of a channel reduced together (warp_sum_states). */
extern "C" mb_status mb_scan_bwd_cuda_v8(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, const void* dy,
                                         const mb_selective_scan_grads* g, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return launch_bwd<__nv_bfloat16, 16, false, true, true, true, false, true>(p, in, dy, g, ex);
    return launch_bwd<float, 16, false, true, true, true, false, true>(p, in, dy, g, ex);
}

/* v9: v8 with the finishing of each channel (sums over the warps, du, d delta', dz, the dD and
 * d delta_bias partials) spread over the warps, one item of every lane each, instead of warp 0
 * alone (ncu at 16K: 28% of v6's gradient-kernel stalls were at its per-channel barrier). */
extern "C" mb_status mb_scan_bwd_cuda_v9(const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, const void* dy,
                                         const mb_selective_scan_grads* g, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return launch_bwd<__nv_bfloat16, 16, false, true, true, true, true, true>(p, in, dy, g, ex);
    return launch_bwd<float, 16, false, true, true, true, true, true>(p, in, dy, g, ex);
}
