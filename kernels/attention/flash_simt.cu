/*
 * flash_simt.cu -- exact causal attention forward in O(L) memory on the CUDA
 * cores (no tensor cores): the flash algorithm (key tiles in shared memory, an
 * online softmax) for fp32 and bf16 inputs with fp32 math, at small head dims
 * (8..64). It is what fp32 models with small heads (the synthetic tasks' MHA,
 * head dim 16) evaluate with at lengths where naive's (B*H, L, L) workspace no
 * longer fits; the tensor-core flash kernels are bf16 at head dims 64 and 128.
 *
 * Dimension legend: B batch, H heads, H_kv K/V heads, G = H / H_kv, L sequence
 * length, D head dim.
 *
 * One thread per query row, 128 rows per block; the blocks of the longest rows
 * (the last query tiles) are issued first. Per tile of 64 keys (K and V staged
 * in shared memory, read as broadcasts), the row's scores go 16 keys at a time
 * through the online softmax in base 2 (q pre-scaled by scale * log2 e):
 *   m' = max(m, s_j), acc = acc 2^(m - m') + sum_j 2^(s_j - m') v_j,
 *   l = l 2^(m - m') + sum_j 2^(s_j - m')
 * and o = acc / l, lse = (m + log2 l) ln 2 at the end.
 */
#include "attention/attention.h"
#include "attention/flash_common.cuh"

namespace {

constexpr int kRows = 128; /* query rows (threads) per block */
constexpr int kKeys = 64;  /* keys per shared-memory tile */
constexpr int kChunk = 16; /* keys per online-softmax update */

struct SimtArgs {
    const void* q; /* (B, H, L, D) */
    const void* k; /* (B, H_kv, L, D) */
    const void* v; /* (B, H_kv, L, D) */
    void* o;       /* (B, H, L, D) */
    float* lse;    /* (B, H, L) or null */
    int64_t H, G, L, BH, nqb;
    float qscale; /* softmax scale * log2(e) */
};

/* Stage keys [k0, k0 + kKeys) of one K/V head into shared memory (rows past L as 0). */
template <typename T, int D>
__device__ void stage_tile(float* __restrict__ dst,       /* (kKeys, D) shared */
                           const T* __restrict__ src, /* (L, D) */
                           int64_t k0, int64_t L) {
    const int64_t avail = (L - k0) * D;
    for (int e = threadIdx.x; e < kKeys * D; e += kRows)
        dst[e] = e < avail ? mb_to_float(src[k0 * D + e]) : 0.f;
}

/* Scores of keys [c, c + kChunk) of the staged tile against q (keys from n on masked). */
template <int D>
__device__ __forceinline__ void chunk_scores(float (&s)[kChunk], const float (&q)[D],
                                             const float* __restrict__ ks, /* (kKeys, D) */
                                             int c, int n) {
#pragma unroll
    for (int j = 0; j < kChunk; j++) {
        const float4* kr = reinterpret_cast<const float4*>(ks + (c + j) * D);
        float acc = 0.f;
#pragma unroll
        for (int e = 0; e < D / 4; e++) {
            const float4 kv = kr[e];
            acc = fmaf(q[4 * e], kv.x, acc);
            acc = fmaf(q[4 * e + 1], kv.y, acc);
            acc = fmaf(q[4 * e + 2], kv.z, acc);
            acc = fmaf(q[4 * e + 3], kv.w, acc);
        }
        s[j] = c + j < n ? acc : -INFINITY;
    }
}

/* Fold keys [c, c + kChunk) into the row's (m, l, acc); key c is unmasked. */
template <int D>
__device__ __forceinline__ void chunk_update(float& m, float& l, float (&acc)[D],
                                             const float (&s)[kChunk],
                                             const float* __restrict__ vs, /* (kKeys, D) */
                                             int c) {
    float mx = m;
#pragma unroll
    for (int j = 0; j < kChunk; j++) mx = fmaxf(mx, s[j]);
    const float alpha = exp2f(m - mx); /* 0 on the first chunk (m = -inf) */
    l *= alpha;
#pragma unroll
    for (int e = 0; e < D; e++) acc[e] *= alpha;
#pragma unroll
    for (int j = 0; j < kChunk; j++) {
        const float p = exp2f(s[j] - mx); /* 0 for masked keys */
        l += p;
        const float4* vr = reinterpret_cast<const float4*>(vs + (c + j) * D);
#pragma unroll
        for (int e = 0; e < D / 4; e++) {
            const float4 vv = vr[e];
            acc[4 * e] = fmaf(p, vv.x, acc[4 * e]);
            acc[4 * e + 1] = fmaf(p, vv.y, acc[4 * e + 1]);
            acc[4 * e + 2] = fmaf(p, vv.z, acc[4 * e + 2]);
            acc[4 * e + 3] = fmaf(p, vv.w, acc[4 * e + 3]);
        }
    }
    m = mx;
}

template <typename T, int D>
__global__ void __launch_bounds__(kRows) flash_simt_fwd(SimtArgs a) {
    __shared__ __align__(16) float ks[kKeys * D];
    __shared__ __align__(16) float vs[kKeys * D];
    const int64_t bh = blockIdx.x % a.BH, qb = a.nqb - 1 - blockIdx.x / a.BH;
    const int64_t b = bh / a.H, h = bh % a.H, kvh = b * (a.H / a.G) + h / a.G;
    const int64_t i = qb * kRows + threadIdx.x;
    const bool live = i < a.L;
    const T* k = static_cast<const T*>(a.k) + kvh * a.L * D;
    const T* v = static_cast<const T*>(a.v) + kvh * a.L * D;
    float q[D], acc[D];
    const T* qrow = static_cast<const T*>(a.q) + (bh * a.L + (live ? i : 0)) * D;
#pragma unroll
    for (int e = 0; e < D; e++) q[e] = mb_to_float(qrow[e]) * a.qscale, acc[e] = 0.f;
    float m = -INFINITY, l = 0.f;
    const int64_t kend = min(a.L, (qb + 1) * kRows); /* keys of the block's last row */
    for (int64_t k0 = 0; k0 < kend; k0 += kKeys) {
        __syncthreads(); /* the previous tile is consumed */
        stage_tile<T, D>(ks, k, k0, a.L);
        stage_tile<T, D>(vs, v, k0, a.L);
        __syncthreads();
        const int64_t left = live ? i + 1 - k0 : 0; /* this row's keys in the tile */
        const int n = (int)(left < kKeys ? (left > 0 ? left : 0) : kKeys);
        for (int c = 0; c < n; c += kChunk) {
            float s[kChunk];
            chunk_scores<D>(s, q, ks, c, n);
            chunk_update<D>(m, l, acc, s, vs, c);
        }
    }
    if (!live) return;
    const float inv = 1.f / l;
    T* orow = static_cast<T*>(a.o) + (bh * a.L + i) * D;
#pragma unroll
    for (int e = 0; e < D; e++) orow[e] = mb_from_float<T>(acc[e] * inv);
    if (a.lse) a.lse[bh * a.L + i] = (m + log2f(l)) * 0.6931471805599453f;
}

template <typename T, int D>
mb_status launch(const SimtArgs& a, cudaStream_t stream) {
    flash_simt_fwd<T, D><<<(unsigned)(a.nqb * a.BH), kRows, 0, stream>>>(a);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

template <typename T>
mb_status launch_for_headdim(int64_t d, const SimtArgs& a, cudaStream_t stream) {
    switch (d) {
    case 8: return launch<T, 8>(a, stream);
    case 16: return launch<T, 16>(a, stream);
    case 24: return launch<T, 24>(a, stream);
    case 32: return launch<T, 32>(a, stream);
    case 40: return launch<T, 40>(a, stream);
    case 48: return launch<T, 48>(a, stream);
    case 56: return launch<T, 56>(a, stream);
    case 64: return launch<T, 64>(a, stream);
    default:
        return mb_fail(MB_ERR_NOT_IMPLEMENTED,
                       "attention fwd flash-simt: head dim %lld (multiples of 8 up to 64)",
                       (long long)d);
    }
}

} // namespace

extern "C" mb_status mb_attention_fwd_cuda_flash_simt(const mb_attention_params* p,
                                                      const mb_attention_inputs* in, void* o,
                                                      void* lse, const mb_exec* ex) {
    const mbflash::AttnShape s = mbflash::attn_shape(p);
    SimtArgs a;
    a.q = in->q, a.k = in->k, a.v = in->v, a.o = o, a.lse = (float*)lse;
    a.H = s.H, a.G = s.group, a.L = s.L, a.BH = p->batch * p->nheads;
    a.nqb = (s.L + kRows - 1) / kRows;
    a.qscale = s.scale_log2;
    if (a.nqb * a.BH > 0x7fffffff)
        return mb_fail(MB_ERR_BAD_OPTION,
                       "attention fwd flash-simt: B*H*ceil(L/128) = %lld blocks exceed 2^31 - 1",
                       (long long)(a.nqb * a.BH));
    if (p->dtype == MB_DTYPE_BF16) return launch_for_headdim<__nv_bfloat16>(p->headdim, a, mb_stream(ex));
    return launch_for_headdim<float>(p->headdim, a, mb_stream(ex));
}
