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
#include <stdint.h>

#include "common.cuh"
#include "mma_sm80.cuh"

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

/* The K/V pipeline of the forward and of the dQ kernel at key tile `it` of
 * `ntiles`: start loading tile it+1 into the other stage, then wait until
 * tile it (and what the prologue loaded) has landed for the whole block. */
template <int BN, int D, int NT>
static __device__ __forceinline__ void kv_stage_advance(__nv_bfloat16* Ks, /* [2] (BN, D) */
                                                        __nv_bfloat16* Vs, /* [2] (BN, D) */
                                                        const __nv_bfloat16* kh, /* (L, D) */
                                                        const __nv_bfloat16* vh, /* (L, D) */
                                                        int it, int ntiles, int64_t L) {
    const int cur = it & 1;
    if (it + 1 < ntiles) {
        load_tile<BN, D, NT>(Ks + (cur ^ 1) * BN * D, kh, (int64_t)(it + 1) * BN, L);
        load_tile<BN, D, NT>(Vs + (cur ^ 1) * BN * D, vh, (int64_t)(it + 1) * BN, L);
    }
    cp_async_commit();
    cp_async_wait<1>(); // tile it landed
    __syncthreads();
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

} // namespace mbflash

#endif /* MB_FLASH_COMMON_CUH */
