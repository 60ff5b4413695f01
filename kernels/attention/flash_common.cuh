/*
 * flash_common.cuh -- what the flash attention forward (flash_fwd.cu) and
 * backward (flash_bwd.cu) share beyond the generic tensor-core pieces of
 * mma_sm80.cuh (cp.async, swizzled tiles, ldmatrix, the bf16 m16n8k16 MMA;
 * fragment layouts described there): contiguous (L, D) tile loads, the K/V
 * double-buffered pipeline and the launch parameters.
 */
#ifndef MB_FLASH_COMMON_CUH
#define MB_FLASH_COMMON_CUH

#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "common.cuh"
#include "mma_sm80.cuh"

#ifdef MB_FLASH_PROFILE
/* tools/flash_timing.cu: events around each kernel of the backward */
extern "C" int mb_flash_profile;
extern "C" cudaEvent_t mb_flash_prof_ev[4];
#define FLASH_PROF(i, stream) \
    if (mb_flash_profile) (void)cudaEventRecord(mb_flash_prof_ev[i], stream)
#else
#define FLASH_PROF(i, stream)
#endif

namespace mbflash {

using namespace mbmma;

/* What every flash kernel gets: pointers and shape (one head of q is
 * (L, d) at offset (b*H + h)*L*d; of k, v at (b*H_kv + h/group)*L*d). */
struct AttnShape {
    int64_t L;         /* sequence length */
    int H, Hkv, group; /* heads, K/V heads, H / H_kv */
    float scale;       /* softmax scale (natural units) */
    float scale_log2;  /* scale * log2(e): scores in exp2 units */
};

/* Rows row0 .. row0+R-1 of a (L, D) matrix into a swizzled (R, D) tile;
 * rows >= L are zero-filled. All NT threads of the block take part. */
template <int R, int D, int NT>
static __device__ __forceinline__ void load_tile(__nv_bfloat16* tile,       /* (R, D) smem */
                                                 const __nv_bfloat16* src,  /* (L, D) */
                                                 int64_t row0, int64_t L) {
    constexpr int kChunks = D / 8;
    static_assert((R * kChunks) % NT == 0, "whole chunks per thread");
#pragma unroll
    for (int it = 0; it < R * kChunks / NT; it++) {
        const int i = it * NT + threadIdx.x;
        const int r = i / kChunks, c = i % kChunks;
        const bool valid = row0 + r < L;
        const __nv_bfloat16* g = valid ? src + (row0 + r) * D + c * 8 : src;
        cp_async16(smem_addr(tile + swz<D>(r, c)), g, valid);
    }
}

/* The mma.sync kernels' tile layout (mma_sm80.cuh's swizzle) for kv_stage_advance:
 * the tiles are read by ldmatrix, nothing to publish after cp.async. */
struct SwzTiles {
    template <int R, int D, int NT>
    static __device__ __forceinline__ void load(__nv_bfloat16* tile, const __nv_bfloat16* src,
                                                int64_t row0, int64_t L) {
        load_tile<R, D, NT>(tile, src, row0, L);
    }
    static __device__ __forceinline__ void publish() {}
};

/* The K/V pipeline of the forward and of the dQ kernel at key tile `it` of
 * `ntiles`: start loading tile it+1 into the other stage, then wait until
 * tile it (and what the prologue loaded) has landed for the whole block.
 * Tiles: the layout's loader and what makes cp.async data visible to its
 * readers (SwzTiles; Sw128Tiles of flash_sm90.cuh for wgmma). */
template <int BN, int D, int NT, typename Tiles = SwzTiles>
static __device__ __forceinline__ void kv_stage_advance(__nv_bfloat16* Ks, /* [2] (BN, D) */
                                                        __nv_bfloat16* Vs, /* [2] (BN, D) */
                                                        const __nv_bfloat16* kh, /* (L, D) */
                                                        const __nv_bfloat16* vh, /* (L, D) */
                                                        int it, int ntiles, int64_t L) {
    const int cur = it & 1;
    if (it + 1 < ntiles) {
        Tiles::template load<BN, D, NT>(Ks + (cur ^ 1) * BN * D, kh, (int64_t)(it + 1) * BN, L);
        Tiles::template load<BN, D, NT>(Vs + (cur ^ 1) * BN * D, vh, (int64_t)(it + 1) * BN, L);
    }
    cp_async_commit();
    cp_async_wait<1>(); // tile it landed
    Tiles::publish();
    __syncthreads();
}

/* The backward's first kernel, one warp per query row: Dvec = rowsum(dO o O),
 * lse2 = lse * log2(e) (so that P = exp2(S scale log2e - lse2)). */
template <int D>
__global__ void __launch_bounds__(256)
    bwd_preprocess_kernel(const __nv_bfloat16* __restrict__ o,    /* (B, H, L, D) */
                          const __nv_bfloat16* __restrict__ dout, /* (B, H, L, D) */
                          const float* __restrict__ lse, /* (B, H, L) */
                          float* __restrict__ dvec,      /* (B, H, L) out */
                          float* __restrict__ lse2,      /* (B, H, L) out */
                          int64_t rows) {
    const int64_t row = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    float acc = 0.f;
#pragma unroll
    for (int c = lane * 2; c < D; c += 64) {
        const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(o + row * D + c));
        const float2 d = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(dout + row * D + c));
        acc = fmaf(a.x, d.x, fmaf(a.y, d.y, acc));
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) {
        dvec[row] = acc;
        lse2[row] = lse[row] * kLog2e;
    }
}

/* The backward's first kernel on `stream`: Dvec and lse2 of all `rows` rows. */
template <int D>
static inline cudaError_t launch_bwd_preprocess(const void* o,    /* (B, H, L, D) bf16 */
                                                const void* dout, /* (B, H, L, D) bf16 */
                                                const void* lse,  /* (B, H, L) */
                                                float* dvec, float* lse2, /* (B, H, L) out */
                                                int64_t rows, cudaStream_t stream) {
    bwd_preprocess_kernel<D><<<(unsigned)((rows + 7) / 8), 256, 0, stream>>>(
        (const __nv_bfloat16*)o, (const __nv_bfloat16*)dout, (const float*)lse, dvec, lse2, rows);
    return cudaGetLastError();
}

/* Rows row0.. of the warp's accumulators, scaled, as bf16 into a (L, D) matrix. */
template <int D>
static __device__ __forceinline__ void store_rows(__nv_bfloat16* dst, /* (L, D) */
                                                  const float acc[D / 8][4], int64_t row0,
                                                  int64_t L, float mul, int lane) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const int64_t row = row0 + g + hf * 8;
        if (row >= L) continue;
#pragma unroll
        for (int j = 0; j < D / 8; j++)
            *reinterpret_cast<uint32_t*>(dst + row * D + j * 8 + 2 * t) =
                pack_bf16(acc[j][2 * hf] * mul, acc[j][2 * hf + 1] * mul);
    }
}

/* One warp's online-softmax update for one key tile: the scores s (16 x BN,
 * raw q.k) become probabilities relative to the new running max; m, l
 * (rows g and g+8 of the warp) and the O accumulators are rescaled. */
template <int D, int BN>
static __device__ __forceinline__ void softmax_update(float s[BN / 8][4], float o[D / 8][4],
                                                      float m[2], float l[2], float sl2) {
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        float mx = m[hf];
#pragma unroll
        for (int j = 0; j < BN / 8; j++) mx = fmaxf(mx, fmaxf(s[j][2 * hf], s[j][2 * hf + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        // the new max in exp2 units; a row with every key masked so far keeps 0
        const float ms = mx == -INFINITY ? 0.f : mx * sl2;
        const float alpha = fast_exp2(m[hf] * sl2 - ms); // 0 when m was -inf
        m[hf] = mx;
        l[hf] *= alpha;
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            o[j][2 * hf] *= alpha;
            o[j][2 * hf + 1] *= alpha;
        }
#pragma unroll
        for (int j = 0; j < BN / 8; j++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                // P = exp2(S * scale * log2e - m * scale * log2e); exp2(-inf) = 0
                const float pr = fast_exp2(fmaf(s[j][2 * hf + e], sl2, -ms));
                s[j][2 * hf + e] = pr;
                l[hf] += pr;
            }
        }
    }
}

/* A warp's 16 finished rows row0.. of the forward: O = acc / l as bf16 and
 * lse = m * scale + ln l (natural log; lse may be NULL); the 4 threads of a
 * row hold partial sums of l. */
template <int D>
static __device__ __forceinline__ void store_o_lse(__nv_bfloat16* o, /* (L, D) of the head */
                                                   float* lse,       /* (L) of the head, or NULL */
                                                   const float acc[D / 8][4], const float m[2],
                                                   const float lsum[2], int64_t row0, int64_t L,
                                                   float scale, int lane) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        float l = lsum[hf];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const float inv = 1.f / l;
        const int64_t row = row0 + g + hf * 8;
        if (row < L) {
            __nv_bfloat16* orow = o + row * D; /* (D) */
#pragma unroll
            for (int j = 0; j < D / 8; j++)
                *reinterpret_cast<uint32_t*>(orow + j * 8 + 2 * t) =
                    pack_bf16(acc[j][2 * hf] * inv, acc[j][2 * hf + 1] * inv);
            if (lse && t == 0) lse[row] = m[hf] * scale + logf(l);
        }
    }
}

/* The query tiles a dK/dV block walks, iteration i = 0 .. iters-1: for its
 * keys n0.., the tiles of BQ rows from the one holding query n0 (earlier
 * ones precede every key) to the last, for every head of the K/V group in
 * turn (the grouped-query sum in a fixed order). */
template <int BQ> struct QueryTileWalk {
    int64_t bh0;        /* b * H + the group's first head */
    int64_t first_tile; /* the first query tile */
    int64_t ntq;        /* query tiles per head */
    int64_t iters;      /* ntq * group */
    __device__ QueryTileWalk(int64_t bkv, int64_t n0, const AttnShape& s) {
        bh0 = bkv / s.Hkv * s.H + bkv % s.Hkv * s.group;
        first_tile = n0 / BQ;
        ntq = (s.L + BQ - 1) / BQ - first_tile;
        iters = ntq * s.group;
    }
    /* iteration i: head bh (b * H + h), query rows m0 .. */
    __device__ void tile(int64_t i, int64_t& bh, int64_t& m0) const {
        bh = bh0 + i / ntq;
        m0 = (first_tile + i % ntq) * BQ;
    }
};

/* lse2 and Dvec of query rows m0 .. m0+BQ-1 of head bh into shared memory
 * by cp.async (rows past L: 0). All NT threads take part. */
template <int BQ, int NT>
static __device__ __forceinline__ void load_row_stats(float* Ls,         /* (BQ) smem lse2 */
                                                      float* Ds,         /* (BQ) smem Dvec */
                                                      const float* lse2, /* (B, H, L) */
                                                      const float* dvec, /* (B, H, L) */
                                                      int64_t bh, int64_t m0, int64_t L) {
    for (int r = threadIdx.x; r < BQ; r += NT) {
        const bool valid = m0 + r < L;
        const int64_t at = valid ? bh * L + m0 + r : 0;
        cp_async4(smem_addr(Ls + r), lse2 + at, valid);
        cp_async4(smem_addr(Ds + r), dvec + at, valid);
    }
}

/* A warp's P^T = exp2(S^T scale log2e - lse2) in place (16 keys x 8*NJ
 * queries, the accumulator layout): 0 where the query precedes the key (key0:
 * this thread's first key relative to the tile's first query) or is past L
 * (queries_left), when need_mask. */
template <int NJ>
static __device__ __forceinline__ void probs_t(float (&sT)[NJ][4], const float* Lt, /* (8*NJ) lse2 */
                                               float scale_log2, bool need_mask, int key0,
                                               int queries_left, int t) {
#pragma unroll
    for (int j = 0; j < NJ; j++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int c = j * 8 + 2 * t + (e & 1);
            float pr = fast_exp2(fmaf(sT[j][e], scale_log2, -Lt[c]));
            if (need_mask && (c < key0 + (e >> 1) * 8 || c >= queries_left)) pr = 0.f;
            sT[j][e] = pr;
        }
    }
}

/* dS^T = P^T o (dP^T - Dvec) in place in dpT, with P^T as the bf16 values
 * packed in A fragments pa (NJ/2 of them). */
template <int NJ>
static __device__ __forceinline__ void dst_from_packed(float (&dpT)[NJ][4], const uint32_t (&pa)[NJ / 2][4],
                                                       const float* Dt, /* (8*NJ) Dvec */
                                                       int t) {
#pragma unroll
    for (int j = 0; j < NJ; j++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int c = j * 8 + 2 * t + (e & 1);
            const uint32_t w = pa[j >> 1][(j & 1) * 2 + (e >> 1)];
            const float pr = __uint_as_float((e & 1) ? (w & 0xffff0000u) : (w << 16));
            dpT[j][e] = pr * (dpT[j][e] - Dt[c]);
        }
    }
}

/* Shared memory above 48 KB must be asked for once per kernel. */
template <typename K>
static inline mb_status allow_smem(K kernel, int bytes) {
    MB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    return MB_OK;
}

/* Launch shape shared by the entry points. */
static inline AttnShape attn_shape(const mb_attention_params* p) {
    AttnShape s;
    s.L = p->seqlen;
    s.H = (int)p->nheads;
    s.Hkv = (int)(p->nheads_kv ? p->nheads_kv : p->nheads);
    s.group = s.H / s.Hkv;
    const double scale = mb_attention_scale(p->scale, p->headdim);
    s.scale = (float)scale;
    s.scale_log2 = (float)(scale * 1.4426950408889634);
    return s;
}

/* A forward kernel on a (B*H, query blocks of BM rows) grid, its shared memory
 * allowed first: the launch of every flash forward version. */
template <typename K>
static mb_status launch_fwd_grid(K kernel, int BM, int threads, int smem_bytes,
                                 const mb_attention_params* p, const mb_attention_inputs* in,
                                 void* o, void* lse, const mb_exec* ex) {
    const AttnShape s = attn_shape(p);
    const int64_t mblocks = (s.L + BM - 1) / BM;
    if (mblocks > 65535 || p->batch * s.H > 0x7fffffff)
        return mb_fail(MB_ERR_BAD_DIM, "flash attention fwd: L = %lld or B*H too large for the grid",
                       (long long)s.L);
    mb_status st = allow_smem(kernel, smem_bytes);
    if (st != MB_OK) return st;
    dim3 grid((unsigned)(p->batch * s.H), (unsigned)mblocks);
    kernel<<<grid, threads, smem_bytes, mb_stream(ex)>>>(
        (const __nv_bfloat16*)in->q, (const __nv_bfloat16*)in->k, (const __nv_bfloat16*)in->v,
        (__nv_bfloat16*)o, (float*)lse, s);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

} // namespace mbflash

#endif /* MB_FLASH_COMMON_CUH */
