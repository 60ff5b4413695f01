/*
 * ssd_mma_bwd.cuh -- the chunk kernels of SSD backward v3 (bwd.cu) on mma.sync
 * m16n8k16, beside fwd v4's (ssd_mma.cuh), whose tile loaders, fragment
 * helpers and state_term they use. Per chunk c (local i, j; cs the chunk-local
 * cumsum of dt' A; ds = dy silu(z) as hi + lo bf16 from the y_pre kernel; E_c
 * the adjoint at chunk c's end as hi + lo bf16 from the reverse state pass):
 *
 *   dx_mma_kernel   per (b, chunk, h, 64 columns of P), 8 warps of 2 x 16 rows:
 *                     out_i = exp(cs_end - cs_i) B_i . E_c[p, :]
 *                           + sum_{j >= i} (C_j . B_i) exp(cs_j - cs_i) ds_j
 *                     dx_i = D ds_i + dt'_i out_i, and the row partial x_i . out_i
 *                     (the direct part of ddt'). The scores come from cb_kernel's
 *                     C B^T read transposed; scores and E hi + lo, ds hi + lo:
 *                     ~16-bit operands, as the decay gradient needs. Each block
 *                     also sums its 64 rows of K_c = <E_c, h_end(c)> (the chunk-end
 *                     term of the decay gradient) from the E tiles it holds and
 *                     h_end staged beside them, so no kernel re-reads E and h.
 *   dsx_kernel      per (b, chunk, group, 64 x 64 tile pair j <= i): the head sum
 *                     M_ij = sum_{h of g} exp(cs_i - cs_j) dt'_j (ds_i . x_j),
 *                     fp32 (B, NC, G, Qa, Qa) like C B^T (tiles j <= i).
 *   dbc_kernel      per (b, chunk, group, 64 rows, 64 kNS columns of N), role
 *                   dC or dB: a GEMM over the chunk's tokens and every head of
 *                   the group, so dB, dC come out summed over heads:
 *                     dC_i = sum_{j <= i} M_ij B_j + sum_h exp(cs_i) ds_i . h_c
 *                     dB_j = sum_{i >= j} M_ij C_i + sum_h dt'_j exp(cs_end - cs_j) x_j . E_c
 *                   (h_c the state entering the chunk, bf16). M as hi + lo,
 *                   the rest plain bf16 (dB, dC feed no other gradient).
 * Shapes: those of mma_fits (ssd_mma.cuh). Every sum has a fixed order.
 */
#ifndef MB_SSD_MMA_BWD_CUH
#define MB_SSD_MMA_BWD_CUH

#include "ssd_mma.cuh"

namespace mbssd {
namespace {

// ----------------------------------------------------------------------------
// dx

struct DxMmaArgs {
    const bf16* e_hi;  /* (B, NC, H, P, N) adjoints E_c, hi */
    const bf16* e_lo;  /* (B, NC, H, P, N) their rounding error */
    const bf16* ds_hi; /* (B, L, H, P) ds = dy silu(z), hi */
    const bf16* ds_lo; /* (B, L, H, P) its rounding error */
    const float* cb;   /* (B, NC, G, Qa, Qa) C_i . B_j, tiles j <= i */
    bf16* dx;          /* (B, L, H, P) */
    float* part;       /* (P/64, B, H, L) x . out */
    const bf16* h_hi;  /* (B, NC, H, P, N) entering states, hi */
    const bf16* h_lo;  /* (B, NC, H, P, N) their rounding error */
    const float* fs;   /* (B, H, P, N) the final state */
    float* kpart;      /* (B, H, NC, P/64) the block's part of K_c = <E_c, h_end(c)> */
};

/* hv[0..7] = the 8 values of hi + lo (16-byte words of bf16) */
static __device__ __forceinline__ void unpack8_hilo(float hv[8], const uint4& hi, const uint4& lo) {
    const uint32_t hw[4] = {hi.x, hi.y, hi.z, hi.w}, lw[4] = {lo.x, lo.y, lo.z, lo.w};
#pragma unroll
    for (int q = 0; q < 4; q++) {
        const float2 u = unpack_bf16(hw[q]), v = unpack_bf16(lw[q]);
        hv[2 * q] = u.x + v.x, hv[2 * q + 1] = u.y + v.y;
    }
}

/* s + (eh + el) . hv over 8 elements (eh, el: 16-byte words of bf16) */
static __device__ __forceinline__ float dot8_hilo(float s, const uint4& eh, const uint4& el, const float hv[8]) {
    float ev[8];
    unpack8_hilo(ev, eh, el);
#pragma unroll
    for (int q = 0; q < 4; q++) s = fmaf(ev[2 * q], hv[2 * q], fmaf(ev[2 * q + 1], hv[2 * q + 1], s));
    return s;
}

/* this thread's part of <E, h_end> over the 64 x N block of (P, N) at offset
 * ie of E (hi + lo) and ih of the entering states (hi + lo; ih < 0: fs, fp32,
 * at fo): 8 elements per 16-byte load */
static __device__ float k_part(const DxMmaArgs& o, int64_t ie, int64_t ih, int64_t fo, int64_t count,
                               int tid, int nthreads) {
    float s = 0.f;
    for (int64_t e = 8 * (int64_t)tid; e < count; e += 8 * (int64_t)nthreads) {
        const uint4 eh = *reinterpret_cast<const uint4*>(o.e_hi + ie + e);
        const uint4 el = *reinterpret_cast<const uint4*>(o.e_lo + ie + e);
        float hv[8];
        if (ih >= 0) {
            unpack8_hilo(hv, *reinterpret_cast<const uint4*>(o.h_hi + ih + e),
                         *reinterpret_cast<const uint4*>(o.h_lo + ih + e));
        } else {
            const float4 f0 = *reinterpret_cast<const float4*>(o.fs + fo + e);
            const float4 f1 = *reinterpret_cast<const float4*>(o.fs + fo + e + 4);
            hv[0] = f0.x, hv[1] = f0.y, hv[2] = f0.z, hv[3] = f0.w;
            hv[4] = f1.x, hv[5] = f1.y, hv[6] = f1.z, hv[7] = f1.w;
        }
        s = dot8_hilo(s, eh, el, hv);
    }
    return s;
}

/* N up to 128: h_end (hi + lo) staged in shared memory for K; N 256: read from global */
template <int kN> __host__ __device__ constexpr bool dx_k_staged() { return kN <= 128; }

template <int kN>
static size_t dx_mma_smem() {
    return 2 * kMmaMaxQ * sizeof(float) +
           ((kN / kTile) * (2 + kCSlots + (dx_k_staged<kN>() ? 2 : 0)) + 2 * kMmaTiles) * kSlice * sizeof(bf16);
}

/* this thread's part of <E, h_end> over a block's 64 x kN slices when both are
 * in shared memory as hi + lo (Hs: E hi slices then lo slices; Ks the same
 * for h_end), 8 elements per 16-byte read */
template <int kN>
static __device__ float k_part_smem(const bf16* Hs, const bf16* Ks, int tid, int nthreads) {
    constexpr int kNS = kN / kTile;
    float s = 0.f;
    for (int q = tid; q < kNS * kTile * 8; q += nthreads) { /* (slice, row, 16-byte chunk) */
        const int off = (q / (kTile * 8)) * kSlice + swz<kTile>((q / 8) % kTile, q % 8);
        float hv[8];
        unpack8_hilo(hv, *reinterpret_cast<const uint4*>(Ks + off), *reinterpret_cast<const uint4*>(Ks + kNS * kSlice + off));
        s = dot8_hilo(s, *reinterpret_cast<const uint4*>(Hs + off), *reinterpret_cast<const uint4*>(Hs + kNS * kSlice + off), hv);
    }
    return s;
}

/* C_j . B_i for rows ia, ia + 8 and the 64 columns j0.. of a tile (j0 >= the
 * rows' tile: cb holds them as row j, column i), in the accumulator layout */
struct CbCols {
    float u[8][2], v[8][2];
};

static __device__ __forceinline__ void load_cb_cols(CbCols& r, const float* cbc, int Qa, int ia,
                                                    int j0, int t) {
#pragma unroll
    for (int nt = 0; nt < 8; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const float* col = cbc + (int64_t)(j0 + 8 * nt + 2 * t + e) * Qa + ia;
            r.u[nt][e] = col[0];
            r.v[nt][e] = col[8];
        }
}

/* anticausal decayed scores: s(i, j) = C_j . B_i exp(cs_j - cs_i), j >= i, j < Qc */
static __device__ __forceinline__ void decayed_scores_t(float s[8][4], const CbCols& r,
                                                        const float* css2, int ia, int j0, int Qc,
                                                        int t) {
    const int ib = ia + 8;
    const float ca = css2[ia], cb = css2[ib];
#pragma unroll
    for (int nt = 0; nt < 8; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int j = j0 + 8 * nt + 2 * t + e;
            const float cj = css2[j];
            s[nt][e] = (j >= ia && j < Qc) ? r.u[nt][e] * fast_exp2(cj - ca) : 0.f;
            s[nt][2 + e] = (j >= ib && j < Qc) ? r.v[nt][e] * fast_exp2(cj - cb) : 0.f;
        }
}

/* dx of rows i = 16 r + (g, g + 8) and the row partial x . out; ds from the
 * rows' hi and lo tiles in shared memory, x from global */
static __device__ __forceinline__ void dx_epilogue(const SsdArgs<bf16>& a, const float acc[8][4],
                                                   const bf16* Wh, const bf16* Wl, const float* dts,
                                                   const DxMmaArgs& o, int64_t b, int64_t h,
                                                   int64_t t0, int r, int64_t p0, int os, int Qc,
                                                   int lane) {
    const int g = lane >> 2, t = lane & 3;
    const float Dh = a.Dv ? a.Dv[h] : 0.f;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int i = 16 * r + g + 8 * half, ri = i % kTile;
        float s0 = 0.f;
        if (i < Qc) {
            const int64_t base = ((b * a.L + t0 + i) * a.H + h) * a.P + p0; /* (b, t, h, p0) */
            const float dtv = dts[i];
            uint32_t xr[8]; /* x of the row, loaded before any store */
#pragma unroll
            for (int nt = 0; nt < 8; nt++) xr[nt] = *reinterpret_cast<const uint32_t*>(a.x + base + 8 * nt + 2 * t);
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                const int col = 8 * nt + 2 * t, at = swz<kTile>(ri, nt) + 2 * t;
                const float2 dh = unpack_bf16(*reinterpret_cast<const uint32_t*>(Wh + at));
                const float2 dl = unpack_bf16(*reinterpret_cast<const uint32_t*>(Wl + at));
                const float2 xv = unpack_bf16(xr[nt]);
                const float o0 = acc[nt][2 * half], o1 = acc[nt][2 * half + 1];
                *reinterpret_cast<uint32_t*>(o.dx + base + col) =
                    pack_bf16(fmaf(Dh, dh.x + dl.x, dtv * o0), fmaf(Dh, dh.y + dl.y, dtv * o1));
                s0 = fmaf(xv.x, o0, fmaf(xv.y, o1, s0));
            }
        }
        s0 += __shfl_xor_sync(0xffffffffu, s0, 1);
        s0 += __shfl_xor_sync(0xffffffffu, s0, 2);
        if (i < Qc && t == 0) o.part[((os * a.Bsz + b) * a.H + h) * a.L + t0 + i] = s0;
    }
}

/* one warp's 16 rows 16 r .. of out (see dx_mma_kernel), all 64 columns */
template <int kN>
static __device__ __forceinline__ void dx_rows(const SsdArgs<bf16>& a, const bf16* Bs, const bf16* Hs,
                                               const bf16* Wh, const bf16* Wl, const float* css2,
                                               const float* dts, const float* cbc, int Qa, int Qc,
                                               int ntiles, int r, const DxMmaArgs& o, int64_t b,
                                               int64_t h, int64_t t0, int64_t p0, int os, int lane) {
    const int g = lane >> 2, t = lane & 3, rt = r / 4;
    float acc[8][4];
    zero_acc<8>(acc);
    const bf16* Bi = Bs + (rt % kCSlots) * kSlice;
    state_term<kN>(acc, Bi, kCSlots * kSlice, Hs, 16 * (r % 4), lane);                      /* E hi */
    state_term<kN>(acc, Bi, kCSlots * kSlice, Hs + (kN / kTile) * kSlice, 16 * (r % 4), lane); /* E lo */
    const int ia = 16 * r + g;
    const float cend = css2[Qc - 1];
    const float ea = fast_exp2(cend - css2[ia]), eb = fast_exp2(cend - css2[ia + 8]);
#pragma unroll
    for (int nt = 0; nt < 8; nt++) acc[nt][0] *= ea, acc[nt][1] *= ea, acc[nt][2] *= eb, acc[nt][3] *= eb;
    CbCols cbv; /* the next tile's scores, loaded one tile ahead */
    load_cb_cols(cbv, cbc, Qa, ia, rt * kTile, t);
    for (int jt = rt; jt < ntiles; jt++) {
        float s[8][4];
        decayed_scores_t(s, cbv, css2, ia, jt * kTile, Qc, t);
        if (jt + 1 < ntiles) load_cb_cols(cbv, cbc, Qa, ia, (jt + 1) * kTile, t);
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint32_t af[4], al[4];
            split_to_a(af, al, s[2 * kk], s[2 * kk + 1]);
            mma_16x64<true>(acc, af, Wh + jt * kSlice, kk, lane);
            mma_16x64<true>(acc, al, Wh + jt * kSlice, kk, lane);
            mma_16x64<true>(acc, af, Wl + jt * kSlice, kk, lane);
        }
    }
    dx_epilogue(a, acc, Wh + rt * kSlice, Wl + rt * kSlice, dts, o, b, h, t0, r, p0, os, Qc, lane);
}

/* grid (H * P/64, NC, B), kScanWarps warps: the whole chunk for one head and
 * 64 columns p0.. of P, as scan_mma_kernel but anticausal: warp w takes row
 * groups w (tiles 0-1, with B rows of those tiles) and 15 - w (tiles 2-3:
 * their B rows are loaded into the same two slots); the ds tiles of the whole
 * chunk stay in shared memory. */
template <int kN>
__global__ void __launch_bounds__(kScanWarps * 32, 1) dx_mma_kernel(const SsdArgs<bf16> a, const ChunkWork w,
                                                                 const DxMmaArgs o) {
    constexpr int kNS = kN / kTile, kNT = kScanWarps * 32;
    extern __shared__ __align__(128) unsigned char smem[];
    const int nrt = (int)ceil_div(a.Q, kTile), Qa = nrt * kTile, nps = (int)(a.P / kTile);
    const int64_t c = blockIdx.y, h = blockIdx.x / nps, b = blockIdx.z;
    const int64_t t0 = c * a.Q, p0 = (int64_t)(blockIdx.x % nps) * kTile;
    const int Qc = (int)min(a.Q, a.L - t0), ntiles = (Qc + kTile - 1) / kTile;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, os = (int)(blockIdx.x % nps);
    float* css2 = (float*)smem;              /* [256] cs log2(e) */
    float* dts = css2 + kMmaMaxQ;            /* [256] dt' */
    bf16* Hs = (bf16*)(dts + kMmaMaxQ);      /* [2][kNS] (64 p, 64 n): E hi, lo */
    bf16* Bs = Hs + 2 * kNS * kSlice;        /* [kNS][2 slots] (64 i, 64 n) */
    bf16* Wh = Bs + kNS * kCSlots * kSlice;  /* [4] (64 j, 64 p) ds hi */
    bf16* Wl = Wh + kMmaTiles * kSlice;      /* [4] ds lo */
    bf16* Ks = Wl + kMmaTiles * kSlice;      /* [2][kNS] (64 p, 64 n): h_end hi, lo (dx_k_staged) */
    const bool k_staged = dx_k_staged<kN>() && c + 1 < a.NC; /* else K from global */

    const int64_t bstride = a.G * a.N, xstride = a.H * a.P;
    const bf16* bsrc = a.Bm + (b * a.L + t0) * bstride + (h / a.hpg) * a.N;  /* (Qc, N) */
    const int64_t hoff = (((b * a.NC + c) * a.H + h) * a.P + p0) * a.N;    /* (64, N) of E */
    const int64_t dsoff = (b * a.L + t0) * xstride + h * a.P + p0;          /* (Qc, 64) of ds */
    const int ncols = (int)min((int64_t)kTile, a.N);
    SliceIssuer<kNT> issue;
    auto issue_b = [&](int tt) { /* B rows of tile tt into slot tt % 2 */
        for (int ns = 0; tt < ntiles && ns < kNS; ns++)
            issue(Bs + (ns * kCSlots + tt % kCSlots) * kSlice, bsrc + tt * kTile * bstride + ns * kTile,
                  bstride, min(kTile, Qc - tt * kTile), ncols);
    };
    const int64_t hnext = hoff + a.H * a.P * a.N; /* the same slice entering chunk c + 1 */
    for (int ns = 0; ns < kNS; ns++) {
        issue(Hs + ns * kSlice, o.e_hi + hoff + ns * kTile, a.N, kTile, ncols);
        issue(Hs + (kNS + ns) * kSlice, o.e_lo + hoff + ns * kTile, a.N, kTile, ncols);
    }
    issue_b(0), issue_b(1);
    for (int tt = 0; tt < ntiles; tt++) {
        const int rows = min(kTile, Qc - tt * kTile);
        issue(Wh + tt * kSlice, o.ds_hi + dsoff + tt * kTile * xstride, xstride, rows);
        issue(Wl + tt * kSlice, o.ds_lo + dsoff + tt * kTile * xstride, xstride, rows);
    }
    cp_async_commit();
    for (int ns = 0; k_staged && ns < kNS; ns++) { /* h_end for K, needed last: its own group */
        issue(Ks + ns * kSlice, o.h_hi + hnext + ns * kTile, a.N, kTile, ncols);
        issue(Ks + (kNS + ns) * kSlice, o.h_lo + hnext + ns * kTile, a.N, kTile, ncols);
    }
    cp_async_commit();
    load_cumsum(a, w, b, h, t0, Qc, Qa, css2, dts, kLog2e);
    const float* cbc = o.cb + ((b * a.NC + c) * a.G + h / a.hpg) * Qa * Qa; /* (Qa, Qa) */
    cp_async_wait<1>(); /* all but h_end */
    __syncthreads();
    if (16 * warp < Qc)
        dx_rows<kN>(a, Bs, Hs, Wh, Wl, css2, dts, cbc, Qa, Qc, ntiles, warp, o, b, h, t0, p0, os, lane);
    if (ntiles > kCSlots) {
        __syncthreads(); /* every warp is done with the B rows of tiles 0-1 */
        issue_b(2), issue_b(3);
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();
    }
    const int r2 = 2 * kScanWarps - 1 - warp;
    if (16 * r2 < Qc)
        dx_rows<kN>(a, Bs, Hs, Wh, Wl, css2, dts, cbc, Qa, Qc, ntiles, r2, o, b, h, t0, p0, os, lane);
    /* K_c = <E_c, h_end(c)> over this block's 64 rows of P: by thread, warp, then thread 0 */
    __shared__ float ksum[kScanWarps];
    cp_async_wait<0>();
    __syncthreads();
    float kp = k_staged ? k_part_smem<kN>(Hs, Ks, threadIdx.x, kNT)
                        : k_part(o, hoff, c + 1 < a.NC ? hnext : -1, ((b * a.H + h) * a.P + p0) * a.N,
                                 kTile * a.N, threadIdx.x, kNT);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) kp += __shfl_xor_sync(0xffffffffu, kp, off);
    if (lane == 0) ksum[warp] = kp;
    __syncthreads();
    if (threadIdx.x == 0) {
        float k = 0.f;
        for (int q = 0; q < kScanWarps; q++) k += ksum[q];
        o.kpart[((b * a.H + h) * a.NC + c) * nps + os] = k;
    }
}

template <int kN>
static mb_status launch_dx_mma(const SsdArgs<bf16>& a, const ChunkWork& w, const DxMmaArgs& o,
                               cudaStream_t st) {
    const size_t smem = dx_mma_smem<kN>();
    MB_CUDA_CHECK(cudaFuncSetAttribute(dx_mma_kernel<kN>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)smem));
    dim3 grid((unsigned)(a.H * (a.P / kTile)), (unsigned)a.NC, (unsigned)a.Bsz);
    dx_mma_kernel<kN><<<grid, kScanWarps * 32, smem, st>>>(a, w, o);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

// ----------------------------------------------------------------------------
// M = the head sum of the decayed ds . x^T

constexpr int kPairStages = 2; /* heads in flight in a dsx block */

/* per stage: the ds rows and x rows of one head (P/64 slices each), then
 * cs of the rows, cs of the columns, dt' of the columns (64 floats each) */
static __host__ __device__ size_t dsx_stage_bytes(int64_t P) {
    return 2 * (size_t)(P / kTile) * kSlice * sizeof(bf16) + 3 * kTile * sizeof(float);
}

/* 64 chunk-local tokens t0 + k0.. of a (B, H, L) fp32 row into shared memory
 * (zero past Qc) by 4-byte cp.async; threads tid0 .. tid0 + 63 take part */
static __device__ __forceinline__ void cp_row64(float* dst, const float* row, int k0, int Qc, int tid) {
    if (tid >= 0 && tid < kTile) {
        const bool ok = k0 + tid < Qc;
        cp_async4(smem_addr(dst + tid), ok ? row + k0 + tid : row, ok);
    }
}

/* grid (NC * T(T+1)/2, G, B) with T = ceil(Q/64) tiles, kThreads threads;
 * tile pair (ti, tj), tj <= ti, decoded as in cb_kernel; warp w owns rows
 * ti 64 + 16 w .. + 15. ds_hi: (B, L, H, P); m: (B, NC, G, Qa, Qa). */
__global__ void __launch_bounds__(kThreads) dsx_kernel(const SsdArgs<bf16> a, const ChunkWork w,
                                                       const bf16* __restrict__ ds_hi,
                                                       float* __restrict__ m) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int nrt = (int)ceil_div(a.Q, kTile), Qa = nrt * kTile, nps = (int)(a.P / kTile);
    const int64_t c = blockIdx.x / (nrt * (nrt + 1) / 2), gr = blockIdx.y, b = blockIdx.z;
    int pair = blockIdx.x % (nrt * (nrt + 1) / 2), ti = 0;
    while (pair > ti) pair -= ++ti;
    const int tj = pair;
    const int64_t t0 = c * a.Q;
    const int Qc = (int)min(a.Q, a.L - t0);
    if (ti * kTile >= Qc) return; /* past a short last chunk: never read */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const size_t stage_bytes = dsx_stage_bytes(a.P);
    const int64_t xstride = a.H * a.P;
    const int rows_i = min(kTile, Qc - ti * kTile), rows_j = min(kTile, Qc - tj * kTile);
    auto stage = [&](int s) { return smem + s * stage_bytes; };
    auto issue = [&](int u) { /* head gr hpg + u into stage u % 2 */
        if (u < a.hpg) {
            const int64_t h = gr * a.hpg + u;
            bf16* Ds = (bf16*)stage(u % kPairStages);
            bf16* Xs = Ds + nps * kSlice;
            float* fl = (float*)(Xs + nps * kSlice);
            const int64_t ri = (b * a.L + t0 + ti * kTile) * xstride + h * a.P;
            const int64_t rj = (b * a.L + t0 + tj * kTile) * xstride + h * a.P;
            for (int ps = 0; ps < nps; ps++) {
                cp_slice(Ds + ps * kSlice, ds_hi + ri + ps * kTile, xstride, rows_i, threadIdx.x);
                cp_slice(Xs + ps * kSlice, a.x + rj + ps * kTile, xstride, rows_j, threadIdx.x);
            }
            const int64_t row = (b * a.H + h) * a.L + t0;
            cp_row64(fl, w.cs + row, ti * kTile, Qc, threadIdx.x);
            cp_row64(fl + kTile, w.cs + row, tj * kTile, Qc, threadIdx.x - kTile);
            cp_row64(fl + 2 * kTile, w.dtp + row, tj * kTile, Qc, threadIdx.x - 2 * kTile + kThreads);
        }
        cp_async_commit();
    };
    /* threads 0-63 load the rows' cs, 64-127 the columns' cs, then 0-63 again the dt' */
    issue(0), issue(1);
    float acc[8][4]; /* M rows 16 w + (g, g+8), columns tj 64 + 8 nt + 2t.. */
    zero_acc<8>(acc);
    const int ia = ti * kTile + 16 * warp + g; /* chunk-local rows ia, ia + 8 */
    for (int u = 0; u < a.hpg; u++) {
        cp_async_wait<kPairStages - 1>();
        __syncthreads();
        const bf16* Ds = (const bf16*)stage(u % kPairStages);
        const bf16* Xs = Ds + nps * kSlice;
        const float* fl = (const float*)(Xs + nps * kSlice);
        float s[8][4];
        zero_acc<8>(s);
        for (int ps = 0; ps < nps; ps++)
#pragma unroll
            for (int ks = 0; ks < kTile / 16; ks++) {
                uint32_t af[4];
                ldsm_a<kTile>(af, Ds + ps * kSlice, 16 * warp, ks, lane);
                mma_16x64<false>(s, af, Xs + ps * kSlice, ks, lane);
            }
        const float ca = fl[16 * warp + g] * kLog2e, cb = fl[16 * warp + g + 8] * kLog2e;
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int jl = 8 * nt + 2 * t + e, j = tj * kTile + jl;
                const float cj = fl[kTile + jl] * kLog2e, dj = fl[2 * kTile + jl];
                if (j <= ia && ia < Qc) acc[nt][e] = fmaf(s[nt][e], fast_exp2(ca - cj) * dj, acc[nt][e]);
                if (j <= ia + 8 && ia + 8 < Qc)
                    acc[nt][2 + e] = fmaf(s[nt][2 + e], fast_exp2(cb - cj) * dj, acc[nt][2 + e]);
            }
        __syncthreads(); /* every warp is done with this stage */
        issue(u + kPairStages);
    }
    float* out = m + ((b * a.NC + c) * a.G + gr) * Qa * Qa + (int64_t)ia * Qa + tj * kTile;
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        *reinterpret_cast<float2*>(out + 8 * nt + 2 * t) = make_float2(acc[nt][0], acc[nt][1]);
        *reinterpret_cast<float2*>(out + 8 * Qa + 8 * nt + 2 * t) = make_float2(acc[nt][2], acc[nt][3]);
    }
}

static mb_status launch_dsx(const SsdArgs<bf16>& a, const ChunkWork& w, const bf16* ds_hi, float* m,
                            cudaStream_t st) {
    const int nrt = (int)ceil_div(a.Q, kTile);
    const size_t smem = kPairStages * dsx_stage_bytes(a.P);
    MB_CUDA_CHECK(cudaFuncSetAttribute(dsx_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((unsigned)(a.NC * nrt * (nrt + 1) / 2), (unsigned)a.G, (unsigned)a.Bsz);
    dsx_kernel<<<grid, kThreads, smem, st>>>(a, w, ds_hi, m);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

// ----------------------------------------------------------------------------
// dB and dC of each group

constexpr int kDbcStages = 3;

struct DbcArgs {
    const float* m;     /* (B, NC, G, Qa, Qa) M of dsx_kernel */
    const bf16* ds_hi;  /* (B, L, H, P) */
    const bf16* h_hi;   /* (B, NC, H, P, N) entering states, bf16 */
    const bf16* e_hi;   /* (B, NC, H, P, N) adjoints E_c, bf16 */
    bf16* dB;           /* (B, L, G, N) */
    bf16* dC;           /* (B, L, G, N) */
};

/* per stage: kNS slices of the B operand (rows of B or C, or a state), one U
 * tile (ds or x rows of a head), the head's cs and dt' of the rows and cs_end */
template <int kNS>
static __host__ __device__ size_t dbc_stage_bytes() {
    return (kNS + 1) * kSlice * sizeof(bf16) + (2 * kTile + 4) * sizeof(float);
}

/* the A fragment (16 x 16) of rows r0.. and columns k0.. of M (kT false) or
 * M^T (kT) from global fp32, as hi + lo bf16 */
template <bool kT>
static __device__ __forceinline__ void m_fragment(uint32_t hi[4], uint32_t lo[4], const float* mc,
                                                  int Qa, int r0, int k0, int lane) {
    const int g = lane >> 2, t = lane & 3;
    float f[4][2]; /* a0 (g, 2t..), a1 (g+8, 2t..), a2 (g, 8+2t..), a3 (g+8, 8+2t..) */
#pragma unroll
    for (int q = 0; q < 4; q++) {
        const int r = r0 + g + 8 * (q & 1), k = k0 + 2 * t + 8 * (q >> 1);
        if (kT) {
            f[q][0] = mc[(int64_t)k * Qa + r];
            f[q][1] = mc[(int64_t)(k + 1) * Qa + r];
        } else {
            const float2 v = *reinterpret_cast<const float2*>(mc + (int64_t)r * Qa + k);
            f[q][0] = v.x, f[q][1] = v.y;
        }
    }
#pragma unroll
    for (int q = 0; q < 4; q++) {
        hi[q] = pack_bf16(f[q][0], f[q][1]);
        const float2 h = unpack_bf16(hi[q]);
        lo[q] = pack_bf16(f[q][0] - h.x, f[q][1] - h.y);
    }
}

/* grid (NC * T * N/(64 kNS), G, 2 B), kThreads threads; blockIdx.z = 2 b +
 * role (0: dC, 1: dB); warp w owns rows rt 64 + 16 w .. + 15 (chunk-local) and
 * the 64 kNS columns n0.. Units, streamed through a 3-stage ring: first the
 * M part, one 64-token tile of B rows (dC) or C rows (dB) each, then one
 * (head, 64 columns of P) each of the state part. */
template <int kNS>
__global__ void __launch_bounds__(kThreads) dbc_kernel(const SsdArgs<bf16> a, const ChunkWork w,
                                                       const DbcArgs o) {
    constexpr int kNT = 8 * kNS;
    extern __shared__ __align__(128) unsigned char smem[];
    const int nrt = (int)ceil_div(a.Q, kTile), Qa = nrt * kTile, nps = (int)(a.P / kTile);
    const int nnb = (int)ceil_div(a.N, kTile * kNS);
    const bool dB = blockIdx.z & 1;
    const int64_t b = blockIdx.z >> 1, gr = blockIdx.y;
    const int64_t c = blockIdx.x / (nnb * nrt), n0 = (int64_t)(blockIdx.x % nnb) * kTile * kNS;
    const int rt = (int)(blockIdx.x / nnb % nrt);
    const int64_t t0 = c * a.Q;
    const int Qc = (int)min(a.Q, a.L - t0), ntiles = (Qc + kTile - 1) / kTile;
    if (rt >= ntiles) return;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int kt0 = dB ? rt : 0, n1 = dB ? ntiles - rt : rt + 1; /* M part: tiles kt0 .. kt0 + n1 - 1 */
    const int units = n1 + a.hpg * nps;
    const int64_t vstride = a.G * a.N, xstride = a.H * a.P;
    const bf16* vsrc = (dB ? a.Cm : a.Bm) + (b * a.L + t0) * vstride + gr * a.N + n0; /* (Qc, N) */
    const bf16* usrc = dB ? a.x : o.ds_hi;                                          /* (B, L, H, P) */
    const bf16* hsrc = dB ? o.e_hi : o.h_hi;                                        /* (B, NC, H, P, N) */
    const size_t stage_bytes = dbc_stage_bytes<kNS>();
    const int rows_r = min(kTile, Qc - rt * kTile);
    auto stage = [&](int u) { return (bf16*)(smem + (u % kDbcStages) * stage_bytes); };
    auto cols = [&](int s) { return (int)max((int64_t)0, min((int64_t)kTile, a.N - n0 - s * kTile)); };
    auto issue = [&](int u) {
        bf16* Vs = stage(u);
        if (u < n1) {
            const int kt = kt0 + u;
            for (int s = 0; s < kNS; s++)
                cp_slice(Vs + s * kSlice, vsrc + kt * kTile * vstride + s * kTile, vstride,
                         min(kTile, Qc - kt * kTile), threadIdx.x, cols(s));
        } else if (u < units) {
            const int64_t h = gr * a.hpg + (u - n1) / nps, p0 = (int64_t)((u - n1) % nps) * kTile;
            const bf16* hs = hsrc + (((b * a.NC + c) * a.H + h) * a.P + p0) * a.N + n0;
            for (int s = 0; s < kNS; s++) cp_slice(Vs + s * kSlice, hs + s * kTile, a.N, kTile, threadIdx.x, cols(s));
            bf16* Us = Vs + kNS * kSlice;
            cp_slice(Us, usrc + (b * a.L + t0 + rt * kTile) * xstride + h * a.P + p0, xstride, rows_r,
                     threadIdx.x);
            float* fl = (float*)(Us + kSlice);
            const int64_t row = (b * a.H + h) * a.L + t0;
            cp_row64(fl, w.cs + row, rt * kTile, Qc, threadIdx.x);
            cp_row64(fl + kTile, w.dtp + row, rt * kTile, Qc, threadIdx.x - kTile);
            if (threadIdx.x == 0) cp_async4(smem_addr(fl + 2 * kTile), w.cs + row + Qc - 1, true);
        }
        cp_async_commit();
    };
    for (int u = 0; u < kDbcStages - 1; u++) issue(u);
    const float* mc = o.m + ((b * a.NC + c) * a.G + gr) * Qa * Qa; /* (Qa, Qa) */
    float acc[kNT][4];
    zero_acc<kNT>(acc);
    const int r0 = rt * kTile + 16 * warp; /* chunk-local first row of the warp */
    for (int u = 0; u < units; u++) {
        issue(u + kDbcStages - 1);
        cp_async_wait<kDbcStages - 1>();
        __syncthreads();
        const bf16* Vs = stage(u);
        if (u < n1) { /* M part: rows r0.. of M (dC) or M^T (dB) times the tile's V rows */
            const int k0 = (kt0 + u) * kTile;
#pragma unroll
            for (int ks = 0; ks < kTile / 16; ks++) {
                uint32_t hi[4], lo[4];
                if (dB) m_fragment<true>(hi, lo, mc, Qa, r0, k0 + 16 * ks, lane);
                else m_fragment<false>(hi, lo, mc, Qa, r0, k0 + 16 * ks, lane);
#pragma unroll
                for (int s = 0; s < kNS; s++) {
                    mma_16x64<true>(acc + 8 * s, hi, Vs + s * kSlice, ks, lane);
                    mma_16x64<true>(acc + 8 * s, lo, Vs + s * kSlice, ks, lane);
                }
            }
        } else { /* state part: weighted ds (dC) or x (dB) rows of a head times its state */
            const bf16* Us = Vs + kNS * kSlice;
            const float* fl = (const float*)(Us + kSlice);
            const int la = 16 * warp + g, lb = la + 8; /* tile-local rows */
            const float wa = dB ? fl[kTile + la] * expf(fl[2 * kTile] - fl[la]) : expf(fl[la]);
            const float wb = dB ? fl[kTile + lb] * expf(fl[2 * kTile] - fl[lb]) : expf(fl[lb]);
#pragma unroll
            for (int ks = 0; ks < kTile / 16; ks++) {
                uint32_t af[4];
                ldsm_a<kTile>(af, Us, 16 * warp, ks, lane);
#pragma unroll
                for (int q = 0; q < 4; q++) {
                    const float2 f = unpack_bf16(af[q]);
                    const float wq = (q & 1) ? wb : wa;
                    af[q] = pack_bf16(f.x * wq, f.y * wq);
                }
#pragma unroll
                for (int s = 0; s < kNS; s++) mma_16x64<true>(acc + 8 * s, af, Vs + s * kSlice, ks, lane);
            }
        }
        __syncthreads(); /* every warp is done with this stage */
    }
    bf16* out = dB ? o.dB : o.dC;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int i = r0 + g + 8 * half;
        if (i >= Qc) continue;
        bf16* row = out + ((b * a.L + t0 + i) * a.G + gr) * a.N + n0;
#pragma unroll
        for (int nt = 0; nt < kNT; nt++) {
            const int col = 8 * nt + 2 * t;
            if (n0 + col < a.N)
                *reinterpret_cast<uint32_t*>(row + col) = pack_bf16(acc[nt][2 * half], acc[nt][2 * half + 1]);
        }
    }
}

template <int kNS>
static mb_status launch_dbc_slices(const SsdArgs<bf16>& a, const ChunkWork& w, const DbcArgs& o,
                                   cudaStream_t st) {
    const size_t smem = kDbcStages * dbc_stage_bytes<kNS>();
    MB_CUDA_CHECK(cudaFuncSetAttribute(dbc_kernel<kNS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const int64_t nrt = ceil_div(a.Q, kTile);
    dim3 grid((unsigned)(a.NC * nrt * ceil_div(a.N, kTile * kNS)), (unsigned)a.G, (unsigned)(2 * a.Bsz));
    dbc_kernel<kNS><<<grid, kThreads, smem, st>>>(a, w, o);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

static mb_status launch_dbc(const SsdArgs<bf16>& a, const ChunkWork& w, const DbcArgs& o, cudaStream_t st) {
    return a.N >= 128 ? launch_dbc_slices<2>(a, w, o, st) : launch_dbc_slices<1>(a, w, o, st);
}

} // namespace
} // namespace mbssd

#endif /* MB_SSD_MMA_BWD_CUH */
