/*
 * ssd_common.cuh -- what the SSD kernels (fwd.cu, bwd.cu, step.cu) share: the
 * typed arguments of a call, scalar helpers (softplus, silu), the tensor-core
 * step (WMMA: bf16 m16n16k16, or for fp32 three tf32 m16n16k8 products of the
 * split hi + lo operands, the "3xTF32" scheme that keeps fp32 accuracy), and
 * the chunked building blocks used by both directions:
 *
 *   chunk_state_kernel   per (b, chunk, h): S[p, n] = sum_j w_j U_j[p] V_j[n]
 *                        forward: U = x, V = B, w_j = exp(cs_end - cs_j) dt'_j
 *                                 (and it computes dt' and the chunk-local
 *                                 inclusive cumsum cs of dt' A)
 *                        reverse: U = ds, V = C, w_j = exp(cs_j)
 *   state_pass_kernel    sequential over chunks, parallel over (b, h, p, n):
 *                        buf[c] <- the state entering chunk c (forward) or the
 *                        adjoint arriving at chunk c's end (reverse)
 *   chunk_scan_kernel    per (b, chunk, 64-row tile, h, 64-column slice):
 *                        out[i, o] = sum_{j in mask(i)} f(i, j) (U_i . V_j) W_j[o]
 *                                    + scale(i) (U_i . S[o, :])
 *                        with five roles (forward y, and the backward's y_pre,
 *                        dx, dC, dB), see Role below.
 *
 * Dimension legend: B batch, L sequence, H heads, P head dim, N state, G groups,
 * Q chunk size, NC = ceil(L / Q) chunks, Qc = tokens of one chunk (last short).
 * Workspace layouts (fp32):
 *   dtp, cs:     (B, H, L)            dt' and the chunk-local inclusive cumsum of dt' A
 *   states:      (B, NC, H, P, N)     chunk states, then the state entering each chunk
 *   adjoints:    (B, NC, H, P, N)     (backward) chunk adjoints, then E_c
 * Decays are exp of differences of chunk-local cumsums (|cs| stays small inside
 * one chunk; a pair j > i is masked out before any exp is taken).
 */
#ifndef MB_SSD_COMMON_CUH
#define MB_SSD_COMMON_CUH

#include "common.cuh"

#include <mma.h>

#include <cstdint>
#include <type_traits>

namespace mbssd {

using namespace nvcuda;

constexpr int kTile = 64;     /* rows (tokens) and columns of one tile */
constexpr int kWarps = 4;     /* warps of the chunk kernels; warp w owns 16 rows */
constexpr int kThreads = kWarps * 32;
constexpr int kPad = 8;       /* elements of padding per shared-memory row */
constexpr int kMaxChunk = 2048;

/* softplus(x) = log(1 + e^x), exact above 20 as PyTorch */
static __device__ __forceinline__ float softplusf(float x) { return x > 20.f ? x : log1pf(expf(x)); }
static __device__ __forceinline__ float sigmoidf_(float x) { return 1.f / (1.f + expf(-x)); }
static __device__ __forceinline__ float siluf(float x) { return x * sigmoidf_(x); }

static __host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static __host__ __device__ __forceinline__ int round16(int64_t x) { return (int)((x + 15) / 16 * 16); }

// ----------------------------------------------------------------------------
// the call, typed

template <typename T>
struct SsdArgs {
    const T* x;         /* (B, L, H, P) */
    const T* dt;        /* (B, L, H) */
    const float* A;     /* (H) */
    const T* Bm;        /* (B, L, G, N) */
    const T* Cm;        /* (B, L, G, N) */
    const float* Dv;    /* (H) or NULL */
    const T* z;         /* (B, L, H, P) or NULL */
    const float* bias;  /* (H) or NULL */
    const float* h0;    /* (B, H, P, N) or NULL */
    const T* dy;        /* (B, L, H, P) backward only */
    int64_t Bsz, L, H, P, N, G, hpg, Q, NC;
    int softplus;
};

template <typename T>
static inline SsdArgs<T> make_args(const mb_ssd_params* p, const mb_ssd_inputs* in) {
    SsdArgs<T> a;
    a.x = (const T*)in->x;
    a.dt = (const T*)in->dt;
    a.A = (const float*)in->A;
    a.Bm = (const T*)in->B;
    a.Cm = (const T*)in->C;
    a.Dv = (const float*)in->D;
    a.z = (const T*)in->z;
    a.bias = (const float*)in->dt_bias;
    a.h0 = (const float*)in->initial_state;
    a.dy = nullptr;
    a.Bsz = p->batch, a.L = p->seqlen, a.H = p->nheads, a.P = p->headdim, a.N = p->dstate;
    a.G = p->ngroups, a.hpg = p->nheads / p->ngroups;
    a.Q = p->chunk_size < p->seqlen ? p->chunk_size : p->seqlen;
    a.NC = ceil_div(p->seqlen, a.Q);
    a.softplus = p->dt_softplus;
    return a;
}

/* Workspace of the chunked algorithm shared by both directions. */
struct ChunkWork {
    float* dtp;    /* (B, H, L) */
    float* cs;     /* (B, H, L) */
    float* states; /* (B, NC, H, P, N) */
};

// ----------------------------------------------------------------------------
// operand sources of the chunk kernels: rows of one token

enum Src { SRC_X, SRC_B, SRC_C, SRC_DS };

static __host__ __device__ __forceinline__ int64_t src_len(Src s, int64_t P, int64_t N) {
    return (s == SRC_B || s == SRC_C) ? N : P;
}

/* The rows of one source for batch b, head h: element k of token t is
 * p[t * stride + k] (ds: dy times silu of z at the same place). */
template <typename T>
struct Rows {
    const T* p;
    const T* z; /* SRC_DS: the gate, or NULL */
    int64_t stride, len;
};

template <typename T>
static __device__ __forceinline__ Rows<T> rows_of(const SsdArgs<T>& a, Src s, int64_t b, int64_t h) {
    Rows<T> r;
    if (s == SRC_B || s == SRC_C) {
        r.p = (s == SRC_B ? a.Bm : a.Cm) + (b * a.L * a.G + h / a.hpg) * a.N;
        r.z = nullptr, r.stride = a.G * a.N, r.len = a.N;
    } else {
        const int64_t off = (b * a.L * a.H + h) * a.P;
        r.p = (s == SRC_X ? a.x : a.dy) + off;
        r.z = (s == SRC_DS && a.z) ? a.z + off : nullptr;
        r.stride = a.H * a.P, r.len = a.P;
    }
    return r;
}

constexpr int kBatch = 8; /* loads a thread issues before it uses the first */

/* dst[r][k] (ld) = scale_r * src(token t0 + r)[k0 + k] for r < rows, k < cols;
 * zero where r >= rows_valid or k0 + k >= len. scale: per row (NULL = 1).
 * lo (optional): the rounding error, lo = S(v - dst), so dst + lo carries
 * about twice the bits of S (two bf16 products instead of one). Each thread
 * issues kBatch independent loads before storing any (latency, not bandwidth,
 * bounds these small tiles). */
template <typename T, typename S>
static __device__ void load_rows(S* dst, int ld, int rows, int cols, const SsdArgs<T>& a, Src s,
                                 int64_t b, int64_t h, int64_t t0, int rows_valid, int64_t k0,
                                 const float* scale, S* lo = nullptr) {
    const Rows<T> src = rows_of(a, s, b, h);
    constexpr int kVec = 16 / sizeof(T); /* elements of one 16-byte load */
    const bool vec = cols % kVec == 0 && ld % kVec == 0 && src.stride % kVec == 0 &&
                     k0 % kVec == 0 && ((uintptr_t)src.p & 15) == 0 &&
                     (!src.z || ((uintptr_t)src.z & 15) == 0);
    const int step = blockDim.x;
    if (vec) { /* 16-byte loads of whole runs (scalar at the ragged edge), then per element */
        const bool raw_copy = sizeof(S) == sizeof(T) && !scale && !lo && !src.z;
        const int cv = cols / kVec, total = rows * cv;
        for (int e0 = threadIdx.x; e0 < total; e0 += step * kBatch) {
            uint4 raw[kBatch], zraw[kBatch];
#pragma unroll
            for (int u = 0; u < kBatch; u++) {
                const int e = e0 + u * step, r = e / cv, k = (e - r * cv) * kVec;
                raw[u] = zraw[u] = make_uint4(0u, 0u, 0u, 0u);
                if (e >= total || r >= rows_valid) continue;
                const int64_t i = (t0 + r) * src.stride + k0 + k;
                if (k0 + k + kVec <= src.len) {
                    raw[u] = __ldg(reinterpret_cast<const uint4*>(src.p + i));
                    if (src.z) zraw[u] = __ldg(reinterpret_cast<const uint4*>(src.z + i));
                } else {
                    T* el = reinterpret_cast<T*>(&raw[u]);
                    T* zl = reinterpret_cast<T*>(&zraw[u]);
                    for (int q = 0; q < kVec; q++) {
                        const bool in = k0 + k + q < src.len;
                        el[q] = in ? src.p[i + q] : mb_from_float<T>(0.f);
                        if (src.z) zl[q] = in ? src.z[i + q] : mb_from_float<T>(0.f);
                    }
                }
            }
#pragma unroll
            for (int u = 0; u < kBatch; u++) {
                const int e = e0 + u * step, r = e / cv, k = (e - r * cv) * kVec;
                if (e >= total) continue;
                if (raw_copy) {
                    *reinterpret_cast<uint4*>(dst + r * ld + k) = raw[u];
                    continue;
                }
                const T* el = reinterpret_cast<const T*>(&raw[u]);
                const T* zl = reinterpret_cast<const T*>(&zraw[u]);
                const float sc = scale ? scale[r] : 1.f;
#pragma unroll
                for (int q = 0; q < kVec; q++) {
                    float x = mb_to_float(el[q]);
                    if (src.z) x *= siluf(mb_to_float(zl[q]));
                    x *= sc;
                    const S hi = mb_from_float<S>(x);
                    dst[r * ld + k + q] = hi;
                    if (lo) lo[r * ld + k + q] = mb_from_float<S>(x - mb_to_float(hi));
                }
            }
        }
        return;
    }
    const int total = rows * cols;
    for (int e0 = threadIdx.x; e0 < total; e0 += step * kBatch) {
        float v[kBatch];
#pragma unroll
        for (int u = 0; u < kBatch; u++) {
            const int e = e0 + u * step, r = e / cols, k = e - r * cols;
            v[u] = 0.f;
            if (e < total && r < rows_valid && k0 + k < src.len) {
                const int64_t i = (t0 + r) * src.stride + k0 + k;
                v[u] = mb_to_float(src.p[i]);
                if (src.z) v[u] *= siluf(mb_to_float(src.z[i]));
            }
        }
#pragma unroll
        for (int u = 0; u < kBatch; u++) {
            const int e = e0 + u * step, r = e / cols, k = e - r * cols;
            if (e >= total) continue;
            const float x = scale ? v[u] * scale[r] : v[u];
            const S hi = mb_from_float<S>(x);
            dst[r * ld + k] = hi;
            if (lo) lo[r * ld + k] = mb_from_float<S>(x - mb_to_float(hi));
        }
    }
}

// ----------------------------------------------------------------------------
// one tensor-core step: acc (16 x 16) += a (16 x 16) b (16 x 16)

template <typename T>
struct Mma;

template <>
struct Mma<__nv_bfloat16> {
    using Acc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
    template <typename LA, typename LB>
    static __device__ __forceinline__ void step(Acc& c, const __nv_bfloat16* a, int lda,
                                                const __nv_bfloat16* b, int ldb) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, LA> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, LB> fb;
        wmma::load_matrix_sync(fa, a, lda);
        wmma::load_matrix_sync(fb, b, ldb);
        wmma::mma_sync(c, fa, fb, c);
    }
};

/* fp32: x = hi + lo with hi, lo tf32; a b ~ a_hi b_hi + a_hi b_lo + a_lo b_hi */
template <>
struct Mma<float> {
    using Acc = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;
    template <typename Frag>
    static __device__ __forceinline__ void split(Frag& hi, Frag& lo) {
#pragma unroll
        for (int i = 0; i < hi.num_elements; i++) {
            const float v = hi.x[i];
            hi.x[i] = wmma::__float_to_tf32(v);
            lo.x[i] = wmma::__float_to_tf32(v - hi.x[i]);
        }
    }
    template <typename LA, typename LB>
    static __device__ __forceinline__ void step(Acc& c, const float* a, int lda, const float* b,
                                                int ldb) {
        constexpr bool a_row = std::is_same<LA, wmma::row_major>::value;
        constexpr bool b_row = std::is_same<LB, wmma::row_major>::value;
#pragma unroll
        for (int kk = 0; kk < 16; kk += 8) {
            wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, LA> ah, al;
            wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, LB> bh, bl;
            wmma::load_matrix_sync(ah, a + (a_row ? kk : kk * lda), lda);
            wmma::load_matrix_sync(bh, b + (b_row ? kk * ldb : kk), ldb);
            split(ah, al);
            split(bh, bl);
            wmma::mma_sync(c, al, bh, c);
            wmma::mma_sync(c, ah, bl, c);
            wmma::mma_sync(c, ah, bh, c);
        }
    }
};

/* Bytes of the next carve of `count` elements of S, 128-byte aligned. */
template <typename S>
static __host__ __device__ __forceinline__ size_t carve_bytes(size_t count) {
    return (count * sizeof(S) + 127) / 128 * 128;
}

// ----------------------------------------------------------------------------
// the sequential recurrence: one warp per channel (b, h, p), lane l holding the
// states n = l, l + 32, ... (N <= 256: 8 per lane) in registers

/* for t < L: h = exp(dt' A) h + dt' x B_t;  y_t = (h . C_t + D x) silu(z).
 * h starts as h_in (or 0) and ends in h_out (if given); h_in == h_out is the
 * in-place one-token step. grid: ceil(B H P / 4) blocks of 128. */
template <typename T>
__global__ void __launch_bounds__(128) recurrent_kernel(const SsdArgs<T> a, const float* h_in,
                                                         float* h_out, T* __restrict__ y) {
    const int lane = threadIdx.x & 31;
    const int64_t ch = (int64_t)blockIdx.x * 4 + (threadIdx.x >> 5); /* (b, h, p) */
    if (ch >= a.Bsz * a.H * a.P) return;
    const int64_t p = ch % a.P, h = (ch / a.P) % a.H, b = ch / (a.P * a.H);
    const int64_t g = h / a.hpg, N = a.N;
    const float Ah = a.A[h], bias = a.bias ? a.bias[h] : 0.f, Dh = a.Dv ? a.Dv[h] : 0.f;
    float hs[8];
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const int64_t n = lane + 32 * k;
        hs[k] = (h_in && n < N) ? h_in[ch * N + n] : 0.f;
    }
    for (int64_t t = 0; t < a.L; t++) {
        float dtv = mb_to_float(a.dt[(b * a.L + t) * a.H + h]) + bias;
        if (a.softplus) dtv = softplusf(dtv);
        const float decay = expf(dtv * Ah);
        const int64_t ix = ((b * a.L + t) * a.H + h) * a.P + p;
        const float xv = mb_to_float(a.x[ix]), dx = dtv * xv;
        const int64_t row = ((b * a.L + t) * a.G + g) * N; /* (b, t, g, :) */
        float acc = 0.f;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const int64_t n = lane + 32 * k;
            if (n < N) {
                hs[k] = fmaf(decay, hs[k], dx * mb_to_float(a.Bm[row + n]));
                acc = fmaf(hs[k], mb_to_float(a.Cm[row + n]), acc);
            }
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
        if (lane == 0) {
            float out = fmaf(Dh, xv, acc);
            if (a.z) out *= siluf(mb_to_float(a.z[ix]));
            y[ix] = mb_from_float<T>(out);
        }
    }
    if (h_out) {
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const int64_t n = lane + 32 * k;
            if (n < N) h_out[ch * N + n] = hs[k];
        }
    }
}

template <typename T>
static inline mb_status launch_recurrent(const SsdArgs<T>& a, const float* h_in, float* h_out, void* y,
                                         cudaStream_t st) {
    const int64_t blocks = ceil_div(a.Bsz * a.H * a.P, 4);
    recurrent_kernel<T><<<(unsigned)blocks, 128, 0, st>>>(a, h_in, h_out, (T*)y);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

} // namespace mbssd

#endif /* MB_SSD_COMMON_CUH */
