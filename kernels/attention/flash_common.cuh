/*
 * flash_common.cuh -- the tensor-core pieces shared by the flash attention
 * forward (flash_fwd.cu) and backward (flash_bwd.cu), sm_80+ (H100 via
 * mma.sync): cp.async tile loads into XOR-swizzled shared memory, ldmatrix
 * fragment loads, the bf16 m16n8k16 MMA, and the launch parameters.
 *
 * Fragment layouts of mma.m16n8k16 (g = lane / 4, t = lane % 4):
 *   A (16 x 16, row-major)  a0 (g, 2t..2t+1)  a1 (g+8, 2t..)  a2 (g, 8+2t..)  a3 (g+8, 8+2t..)
 *   B (16 x 8,  k x n)      b0 (k 2t..2t+1, n g)   b1 (k 8+2t.., n g)
 *   C (16 x 8, fp32)        c0,c1 (g, 2t..2t+1)    c2,c3 (g+8, 2t..2t+1)
 * A tile of R rows x D bf16 (D = 64 or 128) lives in shared memory row-major
 * with its 16-byte chunks XOR-swizzled: chunk c of row r sits at chunk
 * c ^ (r % 8), so the 8 row addresses of one ldmatrix hit 8 distinct bank
 * groups (no conflicts), and cp.async writes whole 16-byte chunks.
 */
#ifndef MB_FLASH_COMMON_CUH
#define MB_FLASH_COMMON_CUH

#include <cuda_bf16.h>
#include <stdint.h>

#include "common.cuh"

namespace mbflash {

constexpr float kLog2e = 1.4426950408889634f;

/* What every flash kernel gets: pointers and shape (one head of q is
 * (L, d) at offset (b*H + h)*L*d; of k, v at (b*H_kv + h/group)*L*d). */
struct AttnShape {
    int64_t L;         /* sequence length */
    int H, Hkv, group; /* heads, K/V heads, H / H_kv */
    float scale;       /* softmax scale (natural units) */
    float scale_log2;  /* scale * log2(e): scores in exp2 units */
};

static __device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16 bytes global -> shared, zero-filled when !valid (then src is not read). */
static __device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(valid ? 16 : 0));
}
static __device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N> static __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* Element offset of chunk `chunk` (8 bf16) of row r in a swizzled (R, D) tile. */
template <int D> static __device__ __forceinline__ int swz(int r, int chunk) {
    return r * D + ((chunk ^ (r & 7)) << 3);
}

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

static __device__ __forceinline__ void ldsm_x4(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
static __device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* c += a * b, bf16 inputs, fp32 accumulators. */
static __device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0,
                                                uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
        "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats as one bf16x2 word (lo in the low half: the lower column). */
static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

static __device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* A fragment (16 x 16, rows r0.., columns 16*ks..) of a swizzled (R, D) tile. */
template <int D>
static __device__ __forceinline__ void ldsm_a(uint32_t a[4], const __nv_bfloat16* tile, int r0,
                                              int ks, int lane) {
    const int r = r0 + (lane & 7) + ((lane >> 3) & 1) * 8;
    ldsm_x4(a, smem_addr(tile + swz<D>(r, ks * 2 + (lane >> 4))));
}

/* B fragments of two n8 tiles when B^T is stored (n rows, k columns), as K in
 * Q K^T: rows n0..n0+15, columns 16*ks..: {b[0], b[1]} n0.., {b[2], b[3]} n0+8.. */
template <int D>
static __device__ __forceinline__ void ldsm_b_nk(uint32_t b[4], const __nv_bfloat16* tile,
                                                 int n0, int ks, int lane) {
    const int r = n0 + (lane & 7) + (lane >> 4) * 8;
    ldsm_x4(b, smem_addr(tile + swz<D>(r, ks * 2 + ((lane >> 3) & 1))));
}

/* B fragments of two n8 tiles when B is stored (k rows, n columns), as V in
 * P V: rows k0..k0+15, columns 16*np..: {b[0], b[1]} n 16np.., {b[2], b[3]} 16np+8.. */
template <int D>
static __device__ __forceinline__ void ldsm_b_kn(uint32_t b[4], const __nv_bfloat16* tile,
                                                 int k0, int np, int lane) {
    const int r = k0 + (lane & 7) + ((lane >> 3) & 1) * 8;
    ldsm_x4_t(b, smem_addr(tile + swz<D>(r, np * 2 + (lane >> 4))));
}

/* The fp32 accumulators of a 16 x 16k slice (n8 tiles 2k, 2k+1) as the A
 * fragment of the next MMA (P in P V, dS in dS K). */
static __device__ __forceinline__ void acc_to_a(uint32_t a[4], const float c0[4],
                                                const float c1[4]) {
    a[0] = pack_bf16(c0[0], c0[1]);
    a[1] = pack_bf16(c0[2], c0[3]);
    a[2] = pack_bf16(c1[0], c1[1]);
    a[3] = pack_bf16(c1[2], c1[3]);
}

template <int N>
static __device__ __forceinline__ void zero_acc(float a[N][4]) {
#pragma unroll
    for (int j = 0; j < N; j++) a[j][0] = a[j][1] = a[j][2] = a[j][3] = 0.f;
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
    const double scale = p->scale == 0.0 ? 1.0 / sqrt((double)p->headdim) : p->scale;
    s.scale = (float)scale;
    s.scale_log2 = (float)(scale * 1.4426950408889634);
    return s;
}

} // namespace mbflash

#endif /* MB_FLASH_COMMON_CUH */
