/*
 * ssd_mma.cuh -- the chunk kernels of SSD forward v4 (fwd.cu) and of backward
 * v2's states and y_pre (bwd.cu): bf16 on tensor cores through mma.sync
 * m16n8k16 (mma_sm80.cuh) instead of WMMA. Operands stream into swizzled
 * shared memory by cp.async, ldmatrix feeds the MMAs, and the decayed scores
 * never leave registers: C B^T (cb_kernel's fp32 buffer) is read straight into
 * the accumulator layout, masked, decayed and repacked as the A operand of
 * scores . x. The blocks of one chunk (all heads) are adjacent in the grid, so
 * what the heads share (C B^T, B, C) is read from L2.
 *
 *   state_mma_kernel  per (b, chunk, h, 64 x 128 slice of (P, N)): dt', the
 *                     chunk-local cumsum cs, and the chunk's own state
 *                       S_c[p, n] = sum_j w_j x_j[p] B_j[n],  w_j = exp(cs_end - cs_j) dt'_j
 *                     w_j x_j is split into hi + lo bf16 (two products against
 *                     the exact B), so chunk states and the final state keep
 *                     ~16 bits, as in v2 / v3. x and B tiles in a 2-stage ring.
 *   scan_mma_kernel   per (b, chunk, h, 64 columns of P), 8 warps of 2 x 16 rows:
 *                       y_i = exp(cs_i) C_i . h_c[p, :] + sum_{j <= i} cb_ij exp(cs_i - cs_j) dt'_j x_j
 *                     then (+ D x) silu(z); h_c is the bf16 copy of the state
 *                     entering the chunk that state_pass_kernel writes. In the
 *                     y_pre role (kYpre, bwd v2) the scores and h_c are hi + lo
 *                     bf16 and the epilogue writes dz and the row partials.
 * Shapes (mma_fits below): bf16, P a multiple of 64, N 16, 32, 64, 128 or 256
 * (16 and 32 as 64 with zero-filled columns), chunk <= 256, at most 65535
 * chunks, x, B, C 16-byte aligned, z and the outputs 4-byte aligned (the
 * outputs checked by the callers); other calls run fwd v3 / bwd v1.
 * Dimension legend and workspace layouts: ssd_common.cuh.
 */
#ifndef MB_SSD_MMA_CUH
#define MB_SSD_MMA_CUH

#include "mma_sm80.cuh"
#include "ssd_chunk.cuh"

namespace mbssd {
namespace {

using namespace mbmma;
typedef __nv_bfloat16 bf16;

constexpr int kMmaMaxQ = 256;             /* chunk tokens one block holds at once */
constexpr int kMmaTiles = kMmaMaxQ / kTile;
constexpr int kSlice = kTile * kTile;     /* elements of one swizzled 64 x 64 tile */

/* rows r < rows_valid, columns < cols_valid (a multiple of 8) of a 64 x 64
 * slice (row r at src + r * stride) into a swizzled tile by cp.async; the
 * rest zero-filled (N 16 and 32 run as 64 with zero columns). kThreads
 * threads take part, tid = 0 .. kThreads - 1. */
static __device__ __forceinline__ void cp_slice(bf16* tile,      /* (64, 64) smem */
                                                const bf16* src, /* row r: src + r * stride */
                                                int64_t stride, int rows_valid, int tid,
                                                int cols_valid = kTile) {
#pragma unroll
    for (int it = 0; it < kSlice / 8 / kThreads; it++) {
        const int i = it * kThreads + tid, r = i >> 3, c = i & 7;
        const bool ok = r < rows_valid && 8 * c < cols_valid;
        cp_async16(smem_addr(tile + swz<kTile>(r, c)), ok ? src + r * stride + c * 8 : src, ok);
    }
}

/* 64 x 64 slices dealt round-robin to the groups of kThreads threads of a
 * block (slice q goes to group q % nparts), each group issuing its cp_slice */
template <int kBlockThreads>
struct SliceIssuer {
    static constexpr int kParts = kBlockThreads / kThreads;
    int q = 0; /* only the count is kept: a runtime divisor and cached ids cost registers (spills) */
    __device__ void operator()(bf16* dst, const bf16* src, int64_t stride, int rows, int cols = kTile) {
        if (q++ % kParts == (int)threadIdx.x / kThreads) cp_slice(dst, src, stride, rows, threadIdx.x % kThreads, cols);
    }
};

static __device__ __forceinline__ float2 unpack_bf16(uint32_t u) {
    return __bfloat1622float2(*reinterpret_cast<__nv_bfloat162*>(&u));
}

// ----------------------------------------------------------------------------
// chunk states

/* 64-column slices of N one state block covers: 2 (128 columns) above N 64 */
static int state_mma_slices(int64_t N) { return N <= 64 ? 1 : 2; }

constexpr int kStages = 2; /* 64-token tiles of x and B in flight in a state block */

template <int kNS, bool kRev>
static size_t state_mma_smem() {
    return 3 * kMmaMaxQ * sizeof(float) + ((kRev ? 2 : 1) + kNS) * kStages * kSlice * sizeof(bf16);
}

/* The A fragment (16 p x 16 j) of w_j x_j as hi + lo bf16: x is exact bf16,
 * the weights fp32; a0, a1 hold j = 2t, 2t+1 and a2, a3 j = 8 + 2t, 9 + 2t. */
static __device__ __forceinline__ void weigh_fragment(uint32_t hi[4], uint32_t lo[4],
                                                      const uint32_t x[4], const float* w16, int t,
                                                      const uint32_t* x_lo = nullptr) {
    const float w0 = w16[2 * t], w1 = w16[2 * t + 1], w8 = w16[8 + 2 * t], w9 = w16[9 + 2 * t];
#pragma unroll
    for (int q = 0; q < 4; q++) {
        float2 f = unpack_bf16(x[q]);
        if (x_lo) { /* x given as hi + lo (ds in the reverse states) */
            const float2 l = unpack_bf16(x_lo[q]);
            f.x += l.x, f.y += l.y;
        }
        f.x *= q < 2 ? w0 : w8;
        f.y *= q < 2 ? w1 : w9;
        hi[q] = pack_bf16(f.x, f.y);
        const float2 r = unpack_bf16(hi[q]);
        lo[q] = pack_bf16(f.x - r.x, f.y - r.y);
    }
}

/* grid (H * P/64 * N/(64 kNS), NC, B), kThreads threads (the blocks of one
 * chunk run together: its B rows stay in L2); warp w owns rows
 * p0 + 16 w .. + 15 and the 64 kNS columns n0.. of the chunk state (measured
 * on the H100: faster than 4 kNS warps of 64 columns, which reload and
 * re-weigh x per warp).
 * out: (B, NC, H, P, N) fp32 chunk states; the cumsum and dt' go to w.cs,
 * w.dtp (the block of slice 0 writes them).
 * kRev (bwd v3's adjoints): x is ds = ds_hi + ds_lo (B, L, H, P), B is C and
 * w_j = exp(cs_j), with cs read from w.cs: out = dS_c = sum_j exp(cs_j) ds_j C_j^T. */
template <int kNS, bool kRev>
__global__ void __launch_bounds__(kThreads, 4) state_mma_kernel(const SsdArgs<bf16> a, const ChunkWork w,
                                                             float* __restrict__ out,
                                                             const bf16* __restrict__ ds_hi,
                                                             const bf16* __restrict__ ds_lo) {
    constexpr int kNT = 8 * kNS; /* n8 tiles of a warp */
    extern __shared__ __align__(128) unsigned char smem[];
    float* css = (float*)smem;          /* [256] chunk-local cumsum of dt' A */
    float* dts = css + kMmaMaxQ;        /* [256] dt' */
    float* wj = dts + kMmaMaxQ;         /* [256] w_j, 0 past the chunk */
    bf16* Xs = (bf16*)(wj + kMmaMaxQ);  /* [2 stages] (64 j, 64 p) */
    bf16* Bs = Xs + kStages * kSlice;   /* [2 stages][kNS] (64 j, 64 n) */
    bf16* Xl = Bs + kStages * kNS * kSlice; /* kRev: [2 stages] (64 j, 64 p) ds_lo */
    const int64_t c = blockIdx.y, b = blockIdx.z;
    const int nps = (int)(a.P / kTile), nns = (int)ceil_div(a.N, kTile * kNS);
    const int64_t h = blockIdx.x / (nps * nns);
    const int rest = (int)(blockIdx.x % (nps * nns));
    const int64_t p0 = (int64_t)(rest / nns) * kTile, n0 = (int64_t)(rest % nns) * kTile * kNS;
    const int64_t t0 = c * a.Q;
    const int Qc = (int)min(a.Q, a.L - t0), ntiles = (Qc + kTile - 1) / kTile;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t = lane & 3, g = lane >> 2;
    const int64_t xstride = a.H * a.P, bstride = a.G * a.N;
    const int64_t xoff = (b * a.L + t0) * xstride + h * a.P + p0;
    const bf16* xsrc = (kRev ? ds_hi : a.x) + xoff;                                        /* (Qc, 64) */
    const bf16* bsrc = (kRev ? a.Cm : a.Bm) + (b * a.L + t0) * bstride + (h / a.hpg) * a.N + n0; /* (Qc, 64 kNS) */
    auto issue = [&](int tt) { /* tile tt into stage tt % 2, one commit group */
        if (tt < ntiles) {
            const int rows = min(kTile, Qc - tt * kTile), st = tt % kStages;
            cp_slice(Xs + st * kSlice, xsrc + tt * kTile * xstride, xstride, rows, threadIdx.x);
            if (kRev) cp_slice(Xl + st * kSlice, ds_lo + xoff + tt * kTile * xstride, xstride, rows, threadIdx.x);
            for (int s = 0; s < kNS; s++)
                cp_slice(Bs + (st * kNS + s) * kSlice, bsrc + tt * kTile * bstride + s * kTile, bstride,
                         rows, threadIdx.x, (int)min((int64_t)kTile, a.N - n0 - s * kTile));
        }
        cp_async_commit();
    };
    issue(0), issue(1);
    if (kRev) load_cumsum(a, w, b, h, t0, Qc, ntiles * kTile, css, dts);
    else if (warp == 0) chunk_cumsum(a, w, b, h, t0, Qc, css, dts, rest == 0);
    __syncthreads();
    const float cs_end = css[Qc - 1];
    for (int k = threadIdx.x; k < kMmaMaxQ; k += kThreads)
        wj[k] = k >= Qc ? 0.f : kRev ? expf(css[k]) : expf(cs_end - css[k]) * dts[k];

    float acc[kNT][4]; /* rows p 16 warp + (g, g+8), columns n 8 nt + 2t.. */
    zero_acc<kNT>(acc);
    for (int tt = 0; tt < ntiles; tt++) {
        cp_async_wait<kStages - 1>(); /* tile tt landed (tt + 1 may be in flight) */
        __syncthreads();
        const int st = tt % kStages;
#pragma unroll
        for (int ks = 0; ks < kTile / 16; ks++) {
            uint32_t ax[4], ahi[4], alo[4], axl[4];
            ldsm_a_km<kTile>(ax, Xs + st * kSlice, 16 * ks, 16 * warp, lane);
            if (kRev) ldsm_a_km<kTile>(axl, Xl + st * kSlice, 16 * ks, 16 * warp, lane);
            weigh_fragment(ahi, alo, ax, wj + tt * kTile + 16 * ks, t, kRev ? axl : nullptr);
#pragma unroll
            for (int np = 0; np < 4 * kNS; np++) {
                uint32_t bb[4];
                ldsm_b_kn<kTile>(bb, Bs + (st * kNS + np / 4) * kSlice, 16 * ks, np % 4, lane);
                mma16816(acc[2 * np], ahi, bb[0], bb[1]);
                mma16816(acc[2 * np], alo, bb[0], bb[1]);
                mma16816(acc[2 * np + 1], ahi, bb[2], bb[3]);
                mma16816(acc[2 * np + 1], alo, bb[2], bb[3]);
            }
        }
        __syncthreads(); /* every warp is done with stage st */
        issue(tt + kStages);
    }
    float* o = out + ((b * a.NC + c) * a.H + h) * a.P * a.N; /* (P, N) of (b, c, h) */
#pragma unroll
    for (int nt = 0; nt < kNT; nt++)
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int64_t p = p0 + 16 * warp + g + 8 * half, n = n0 + 8 * nt + 2 * t;
            if (n < a.N)
                *reinterpret_cast<float2*>(o + p * a.N + n) = make_float2(acc[nt][2 * half], acc[nt][2 * half + 1]);
        }
}

template <int kNS, bool kRev>
static mb_status launch_state_mma_slices(const SsdArgs<bf16>& a, const ChunkWork& w, float* out,
                                         const bf16* ds_hi, const bf16* ds_lo, cudaStream_t st) {
    const size_t smem = state_mma_smem<kNS, kRev>();
    MB_CUDA_CHECK(cudaFuncSetAttribute(state_mma_kernel<kNS, kRev>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((unsigned)(a.H * (a.P / kTile) * ceil_div(a.N, kTile * kNS)), (unsigned)a.NC, (unsigned)a.Bsz);
    state_mma_kernel<kNS, kRev><<<grid, kThreads, smem, st>>>(a, w, out, ds_hi, ds_lo);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

/* the chunk states (forward); with ds_hi, ds_lo (B, L, H, P) the reverse
 * chunk adjoints dS_c of bwd v3 instead */
static mb_status launch_state_mma(const SsdArgs<bf16>& a, const ChunkWork& w, float* out,
                                  cudaStream_t st, const bf16* ds_hi = nullptr,
                                  const bf16* ds_lo = nullptr) {
    const bool one = state_mma_slices(a.N) == 1;
    if (ds_hi)
        return one ? launch_state_mma_slices<1, true>(a, w, out, ds_hi, ds_lo, st)
                   : launch_state_mma_slices<2, true>(a, w, out, ds_hi, ds_lo, st);
    return one ? launch_state_mma_slices<1, false>(a, w, out, nullptr, nullptr, st)
               : launch_state_mma_slices<2, false>(a, w, out, nullptr, nullptr, st);
}

// ----------------------------------------------------------------------------
// the output of a chunk

constexpr int kScanWarps = 8; /* warps of scan_mma_kernel: two 16-row groups each */

constexpr int kCSlots = 2;    /* 64-row tiles of C a scan block holds at once */

/* where a scan_mma_kernel writes (and the state it reads) */
struct ScanMmaOut {
    const bf16* hst;    /* (B, NC, H, P, N) entering states, bf16 (hi with kYpre) */
    const bf16* hst_lo; /* kYpre: their rounding error (B, NC, H, P, N) */
    const float* cb;    /* (B, NC, G, Qa, Qa) C_i . B_j (tiles j <= i) */
    bf16* out;          /* (B, L, H, P): y; kYpre: dz (NULL without z) */
    float* part0;       /* kYpre: (P/64, B, H, L) ds . y_ssm */
    float* part1;       /* kYpre: (P/64, B, H, L) ds . x */
    bf16* ds_hi;        /* kYpre, or NULL: (B, L, H, P) ds = dy silu(z) as hi + lo bf16 (bwd v3) */
    bf16* ds_lo;
};

template <int kN, bool kYpre>
static size_t scan_mma_smem() {
    return 2 * kMmaMaxQ * sizeof(float) +
           ((kN / kTile) * (kCSlots + (kYpre ? 2 : 1)) + kMmaTiles) * kSlice * sizeof(bf16);
}

/* the A fragments of x (16 x 16, fp32 accumulator layout) as hi + lo bf16 */
static __device__ __forceinline__ void split_to_a(uint32_t hi[4], uint32_t lo[4], const float c0[4],
                                                  const float c1[4]) {
    acc_to_a(hi, c0, c1);
    float r0[4], r1[4];
#pragma unroll
    for (int e = 0; e < 4; e++) {
        r0[e] = c0[e] - __bfloat162float(__float2bfloat16(c0[e]));
        r1[e] = c1[e] - __bfloat162float(__float2bfloat16(c1[e]));
    }
    acc_to_a(lo, r0, r1);
}

/* acc (16 x 64) += a (16 x 16, k step ks) . B (16 x 64) from a swizzled
 * 64-column tile: kKN, B stored (k rows, n columns) as x; else B^T stored
 * (n rows, k columns) as the state (p rows, n columns). */
template <bool kKN>
static __device__ __forceinline__ void mma_16x64(float acc[8][4], const uint32_t a[4], const bf16* tile,
                                                 int ks, int lane) {
#pragma unroll
    for (int np = 0; np < 4; np++) {
        uint32_t bb[4];
        if (kKN) ldsm_b_kn<kTile>(bb, tile, 16 * ks, np, lane);
        else ldsm_b_nk<kTile>(bb, tile, 16 * np, ks, lane);
        mma16816(acc[2 * np], a, bb[0], bb[1]);
        mma16816(acc[2 * np + 1], a, bb[2], bb[3]);
    }
}

/* acc (16 rows x 64 p) = C_i . h^T over kN states; Cs: the kN / 64 slices
 * (64 i, 64 n) of the rows' tile, r0 the first row in it; Hs: (64 p, 64 n) */
template <int kN>
static __device__ __forceinline__ void state_term(float acc[8][4], const bf16* Cs, int cs_stride,
                                                  const bf16* Hs, int r0, int lane) {
#pragma unroll
    for (int s = 0; s < kN / kTile; s++)
#pragma unroll
        for (int ks = 0; ks < kTile / 16; ks++) {
            uint32_t ac[4];
            ldsm_a<kTile>(ac, Cs + s * cs_stride, r0, ks, lane);
            mma_16x64<false>(acc, ac, Hs + s * kSlice, ks, lane);
        }
}

/* The masked, decayed scores of rows ia, ib = ia + 8 (chunk-local) against
 * the 64 columns j0.. of tile jt, in the accumulator layout: s[nt] holds
 * (ia, j0 + 8 nt + 2t..) and (ib, ..), from those cb values (load_cb_rows);
 * css2 = cs log2(e).
 * (Factoring exp(cs_i - cs_j) through the tile's last token, to save the exp
 * of tiles wholly below the rows, measured no faster on the H100.) */
struct CbRows {
    float2 u[8], v[8]; /* rows ia, ia + 8 of cb, columns j0 + 8 nt + 2t.. */
};

static __device__ __forceinline__ void load_cb_rows(CbRows& r, const float* cbr, int Qa, int j0, int t) {
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        r.u[nt] = *reinterpret_cast<const float2*>(cbr + j0 + 8 * nt + 2 * t);
        r.v[nt] = *reinterpret_cast<const float2*>(cbr + 8 * Qa + j0 + 8 * nt + 2 * t);
    }
}

static __device__ __forceinline__ void decayed_scores(float s[8][4], const CbRows& r,
                                                      const float* css2, const float* dts, int ia,
                                                      int j0, int Qc, int t) {
    const float2* u = r.u;
    const float2* v = r.v;
    const int ib = ia + 8;
    const float ca = css2[ia], cb = css2[ib];
#pragma unroll
    for (int nt = 0; nt < 8; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int j = j0 + 8 * nt + 2 * t + e;
            const float su = e ? u[nt].y : u[nt].x, sv = e ? v[nt].y : v[nt].x;
            const float cj = css2[j], dj = dts[j];
            s[nt][e] = (j <= ia && j < Qc) ? su * fast_exp2(ca - cj) * dj : 0.f;
            s[nt][2 + e] = (j <= ib && j < Qc) ? sv * fast_exp2(cb - cj) * dj : 0.f;
        }
}

/* y of rows i = 16 r + (g, g + 8) (chunk-local): acc + D x, times silu(z); x
 * from the rows' tile in shared memory */
static __device__ __forceinline__ void scan_mma_epilogue(const SsdArgs<bf16>& a, const float acc[8][4],
                                                         const bf16* Xi, bf16* __restrict__ y,
                                                         int64_t b, int64_t h, int64_t t0, int r,
                                                         int64_t p0, int Qc, int lane) {
    const int g = lane >> 2, t = lane & 3;
    const float Dh = a.Dv ? a.Dv[h] : 0.f;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int i = 16 * r + g + 8 * half, ri = i % kTile;
        if (i >= Qc) continue;
        const int64_t base = ((b * a.L + t0 + i) * a.H + h) * a.P + p0; /* (b, t, h, p0) */
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            const int col = 8 * nt + 2 * t;
            const float2 xv = unpack_bf16(*reinterpret_cast<const uint32_t*>(Xi + swz<kTile>(ri, nt) + 2 * t));
            float y0 = fmaf(Dh, xv.x, acc[nt][2 * half]), y1 = fmaf(Dh, xv.y, acc[nt][2 * half + 1]);
            if (a.z) {
                const float2 zv = unpack_bf16(*reinterpret_cast<const uint32_t*>(a.z + base + col));
                y0 *= siluf(zv.x), y1 *= siluf(zv.y);
            }
            *reinterpret_cast<uint32_t*>(y + base + col) = pack_bf16(y0, y1);
        }
    }
}

/* The backward's y_pre rows i = 16 r + (g, g + 8) (chunk-local), columns
 * p0..: with v = acc (y_ssm) and ds = dy silu(z) (dy without z): dz = dy
 * (v + D x) silu'(z), and the row partials ds . v, ds . x over the 64 columns
 * (thread sums, then the 4 lanes of a row) into part0, part1 of slice os. */
static __device__ __forceinline__ void ypre_epilogue(const SsdArgs<bf16>& a, const float acc[8][4],
                                                     const bf16* Xi, const ScanMmaOut& o, int64_t b,
                                                     int64_t h, int64_t t0, int r, int64_t p0, int os,
                                                     int Qc, int lane) {
    const int g = lane >> 2, t = lane & 3;
    const float Dh = a.Dv ? a.Dv[h] : 0.f;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int i = 16 * r + g + 8 * half, ri = i % kTile;
        float s0 = 0.f, s1 = 0.f;
        if (i < Qc) {
            const int64_t base = ((b * a.L + t0 + i) * a.H + h) * a.P + p0; /* (b, t, h, p0) */
            uint32_t gr[8], zr[8]; /* dy, z of the row, loaded before any store */
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                gr[nt] = *reinterpret_cast<const uint32_t*>(a.dy + base + 8 * nt + 2 * t);
                zr[nt] = a.z ? *reinterpret_cast<const uint32_t*>(a.z + base + 8 * nt + 2 * t) : 0u;
            }
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                const int col = 8 * nt + 2 * t;
                const float2 xv = unpack_bf16(*reinterpret_cast<const uint32_t*>(Xi + swz<kTile>(ri, nt) + 2 * t));
                const float2 gv = unpack_bf16(gr[nt]);
                float2 zv = unpack_bf16(zr[nt]), dz = make_float2(0.f, 0.f), dsv;
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float v = acc[nt][2 * half + e], x = e ? xv.y : xv.x, gy = e ? gv.y : gv.x;
                    float ds = gy;
                    if (a.z) {
                        const float zz = e ? zv.y : zv.x, sg = sigmoidf_(zz);
                        ds = gy * zz * sg;
                        (e ? dz.y : dz.x) = gy * fmaf(Dh, x, v) * sg * (1.f + zz * (1.f - sg));
                    }
                    (e ? dsv.y : dsv.x) = ds;
                    s0 = fmaf(ds, v, s0);
                    s1 = fmaf(ds, x, s1);
                }
                if (a.z) *reinterpret_cast<uint32_t*>(o.out + base + col) = pack_bf16(dz.x, dz.y);
                if (o.ds_hi) {
                    const uint32_t hi = pack_bf16(dsv.x, dsv.y);
                    const float2 rr = unpack_bf16(hi);
                    *reinterpret_cast<uint32_t*>(o.ds_hi + base + col) = hi;
                    *reinterpret_cast<uint32_t*>(o.ds_lo + base + col) = pack_bf16(dsv.x - rr.x, dsv.y - rr.y);
                }
            }
        }
        s0 += __shfl_xor_sync(0xffffffffu, s0, 1), s1 += __shfl_xor_sync(0xffffffffu, s1, 1);
        s0 += __shfl_xor_sync(0xffffffffu, s0, 2), s1 += __shfl_xor_sync(0xffffffffu, s1, 2);
        if (i < Qc && t == 0) {
            const int64_t ip = ((os * a.Bsz + b) * a.H + h) * a.L + t0 + i;
            o.part0[ip] = s0, o.part1[ip] = s1;
        }
    }
}

/* One warp's 16 rows 16 r .. (chunk-local) of y (kYpre: of y_pre, with the
 * scores and the state as hi + lo bf16 against the exact x and C), all 64
 * columns p0.. */
template <int kN, bool kYpre>
static __device__ __forceinline__ void scan_rows(const SsdArgs<bf16>& a, const bf16* Cs, const bf16* Hs,
                                                 const bf16* Xs, const float* css2, const float* dts,
                                                 const float* cbc, int Qa, int Qc, int r,
                                                 const ScanMmaOut& o, int64_t b, int64_t h,
                                                 int64_t t0, int64_t p0, int os, int lane) {
    const int g = lane >> 2, t = lane & 3, rt = r / 4;
    float acc[8][4];
    zero_acc<8>(acc);
    state_term<kN>(acc, Cs + (rt % kCSlots) * kSlice, kCSlots * kSlice, Hs, 16 * (r % 4), lane);
    if (kYpre) /* the state's lo part, after the hi slices */
        state_term<kN>(acc, Cs + (rt % kCSlots) * kSlice, kCSlots * kSlice, Hs + (kN / kTile) * kSlice,
                       16 * (r % 4), lane);
    const int ia = 16 * r + g;
    const float ea = fast_exp2(css2[ia]), eb = fast_exp2(css2[ia + 8]);
#pragma unroll
    for (int nt = 0; nt < 8; nt++) acc[nt][0] *= ea, acc[nt][1] *= ea, acc[nt][2] *= eb, acc[nt][3] *= eb;
    CbRows cbv; /* the next tile's cb values, loaded one tile ahead */
    load_cb_rows(cbv, cbc + (int64_t)ia * Qa, Qa, 0, t);
    for (int jt = 0; jt <= rt; jt++) {
        float s[8][4];
        decayed_scores(s, cbv, css2, dts, ia, jt * kTile, Qc, t);
        if (jt < rt) load_cb_rows(cbv, cbc + (int64_t)ia * Qa, Qa, (jt + 1) * kTile, t);
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint32_t af[4], al[4];
            if (kYpre) split_to_a(af, al, s[2 * kk], s[2 * kk + 1]);
            else acc_to_a(af, s[2 * kk], s[2 * kk + 1]);
            mma_16x64<true>(acc, af, Xs + jt * kSlice, kk, lane);
            if (kYpre) mma_16x64<true>(acc, al, Xs + jt * kSlice, kk, lane);
        }
    }
    if (kYpre) ypre_epilogue(a, acc, Xs + rt * kSlice, o, b, h, t0, r, p0, os, Qc, lane);
    else scan_mma_epilogue(a, acc, Xs + rt * kSlice, o.out, b, h, t0, r, p0, Qc, lane);
}

/* grid (H * P/64, NC, B), kScanWarps warps: the whole chunk (up to 16 groups
 * of 16 rows) for one head and 64 columns p0.. of P; the blocks of one chunk
 * run together, so its C B^T and C rows are read from L2 by all heads. Warp w takes row groups
 * w and 15 - w (balanced: their causal work sums to 5 tiles): the first with
 * the C rows of tiles 0-1, the second with those of tiles 2-3 loaded into the
 * same two slots (two blocks fit an SM). hst: (B, NC, H, P, N)
 * bf16 entering states; cb: (B, NC, G, Qa, Qa) C_i . B_j (tiles j <= i);
 * y: (B, L, H, P). */
template <int kN, bool kYpre>
__global__ void __launch_bounds__(kScanWarps * 32, 2) scan_mma_kernel(const SsdArgs<bf16> a, const ChunkWork w,
                                                                   const ScanMmaOut o) {
    constexpr int kNS = kN / kTile, kNT = kScanWarps * 32, kHS = kYpre ? 2 : 1;
    extern __shared__ __align__(128) unsigned char smem[];
    const int nrt = (int)ceil_div(a.Q, kTile), Qa = nrt * kTile, nps = (int)(a.P / kTile);
    const int64_t c = blockIdx.y, h = blockIdx.x / nps, b = blockIdx.z;
    const int64_t t0 = c * a.Q, p0 = (int64_t)(blockIdx.x % nps) * kTile;
    const int Qc = (int)min(a.Q, a.L - t0), ntiles = (Qc + kTile - 1) / kTile;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* css2 = (float*)smem;                /* [256] cs log2(e) */
    float* dts = css2 + kMmaMaxQ;              /* [256] dt' */
    bf16* Hs = (bf16*)(dts + kMmaMaxQ);        /* [kHS][kNS] (64 p, 64 n): hi (, lo) */
    bf16* Cs = Hs + kHS * kNS * kSlice;        /* [kNS][2 slots] (64 i, 64 n) */
    bf16* Xs = Cs + kNS * kCSlots * kSlice;    /* [4] (64 j, 64 p) */

    const int64_t cstride = a.G * a.N, xstride = a.H * a.P;
    const bf16* csrc = a.Cm + (b * a.L + t0) * cstride + (h / a.hpg) * a.N;   /* (Qc, N) */
    const int64_t hoff = (((b * a.NC + c) * a.H + h) * a.P + p0) * a.N;     /* (64, N) of the states */
    const bf16* xsrc = a.x + (b * a.L + t0) * xstride + h * a.P + p0;         /* (Qc, 64) */
    /* one commit group per 64 rows (the state slices with rows 0..63) */
    SliceIssuer<kNT> issue;
    const int ncols = (int)min((int64_t)kTile, a.N); /* of each N slice: N < 64 zero-padded */
    auto issue_c = [&](int tt) { /* C rows of tile tt into slot tt % 2 */
        for (int ns = 0; tt < ntiles && ns < kNS; ns++)
            issue(Cs + (ns * kCSlots + tt % kCSlots) * kSlice, csrc + tt * kTile * cstride + ns * kTile,
                  cstride, min(kTile, Qc - tt * kTile), ncols);
    };
    for (int tt = 0; tt < kMmaTiles; tt++) {
        for (int ns = 0; tt == 0 && ns < kNS; ns++) {
            issue(Hs + ns * kSlice, o.hst + hoff + ns * kTile, a.N, kTile, ncols);
            if (kYpre) issue(Hs + (kNS + ns) * kSlice, o.hst_lo + hoff + ns * kTile, a.N, kTile, ncols);
        }
        if (tt < kCSlots) issue_c(tt);
        if (tt < ntiles) issue(Xs + tt * kSlice, xsrc + tt * kTile * xstride, xstride, min(kTile, Qc - tt * kTile));
        cp_async_commit();
    }
    load_cumsum(a, w, b, h, t0, Qc, Qa, css2, dts, kLog2e);
    const float* cbc = o.cb + ((b * a.NC + c) * a.G + h / a.hpg) * Qa * Qa; /* (Qa, Qa) */
    const int os = (int)(blockIdx.x % nps);
    cp_async_wait<kMmaTiles - 2>(); /* tiles 0 and 1 */
    __syncthreads();
    if (16 * warp < Qc)
        scan_rows<kN, kYpre>(a, Cs, Hs, Xs, css2, dts, cbc, Qa, Qc, warp, o, b, h, t0, p0, os, lane);
    if (ntiles > kCSlots) {
        __syncthreads(); /* every warp is done with the C rows of tiles 0-1 */
        issue_c(2), issue_c(3);
        cp_async_commit();
    }
    cp_async_wait<0>();
    __syncthreads();
    const int r2 = 2 * kScanWarps - 1 - warp;
    if (16 * r2 < Qc)
        scan_rows<kN, kYpre>(a, Cs, Hs, Xs, css2, dts, cbc, Qa, Qc, r2, o, b, h, t0, p0, os, lane);
}

template <int kN, bool kYpre = false>
static mb_status launch_scan_mma(const SsdArgs<bf16>& a, const ChunkWork& w, const ScanMmaOut& o,
                                 cudaStream_t st) {
    const size_t smem = scan_mma_smem<kN, kYpre>();
    MB_CUDA_CHECK(cudaFuncSetAttribute(scan_mma_kernel<kN, kYpre>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((unsigned)(a.H * (a.P / kTile)), (unsigned)a.NC, (unsigned)a.Bsz);
    scan_mma_kernel<kN, kYpre><<<grid, kScanWarps * 32, smem, st>>>(a, w, o);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

/* the shapes and layouts the mma.sync kernels take (fwd v4, bwd v2) */
static bool mma_fits(const mb_ssd_params* p, const mb_ssd_inputs* in) {
    const int64_t Q = p->chunk_size < p->seqlen ? p->chunk_size : p->seqlen;
    return p->dtype == MB_DTYPE_BF16 && p->headdim % kTile == 0 &&
           (p->dstate == 16 || p->dstate == 32 || p->dstate == 64 || p->dstate == 128 ||
            p->dstate == 256) && Q <= kMmaMaxQ &&
           ceil_div(p->seqlen, Q) <= 65535 && /* chunks: grid y */
           aligned16(in->x) && aligned16(in->B) && aligned16(in->C) &&
           (!in->z || ((uintptr_t)in->z & 3) == 0);
}

} // namespace
} // namespace mbssd

#endif /* MB_SSD_MMA_CUH */
