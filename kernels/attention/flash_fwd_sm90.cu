/*
 * flash_fwd_sm90.cu -- fwd flash-v9, v10, v11: the causal flash attention
 * forward of flash_fwd.cu (same online softmax, masking, block order and
 * outputs) with its two tile products on Hopper's warpgroup tensor cores
 * (wgmma, sm_90a; building blocks in wgmma_sm90.cuh). bf16 in and out, fp32
 * accumulation, head dim 64 or 128, grouped-query K/V, any L. Without sm_90a
 * code in the build or on another GPU they run flash-v8.
 *
 * One block of NWG warpgroups per (query block of 64*NWG rows, b*H + h); each
 * warpgroup owns 64 rows (wgmma's M). Q stays in shared memory; K and V tiles
 * of BN keys stream through two cp.async stages. Per tile and warpgroup:
 *   S = Q K^T         (64 x BN, Q and K from shared memory, both K-major)
 *   online softmax    (fp32, exp2, the running max / sum of the 2 rows each
 *                      thread holds; -inf above the diagonal and past L)
 *   O += P V          (64 x d, P packed to bf16 in registers, V MN-major)
 * The warpgroups of a block run independently between the block barriers,
 * so one's softmax overlaps the other's products.
 *   v9  <NWG 2, BN 128>   v10 <NWG 2, BN 64>   v11 <NWG 3, BN 64>
 *
 * Shapes: q, o (B, H, L, d); k, v (B, H_kv, L, d), head h reads K/V head
 * h / (H / H_kv); lse (B, H, L) fp32, natural log, may be NULL.
 */
#include "flash.h"
#include "flash_sm90.cuh"

using namespace mbflash;

namespace {

typedef __nv_bfloat16 bf16;

template <int D, int NWG, int BN> struct FwdSm90 {
    static constexpr int BM = 64 * NWG;  /* query rows per block */
    static constexpr int NT = 128 * NWG; /* threads */
    /* Q (BM, D), K and V 2 stages of (BN, D), sw128 */
    static constexpr int kSmemBytes = (BM * D + 4 * BN * D) * 2 + 1024;
};

template <int D, int NWG, int BN>
__global__ void __launch_bounds__(128 * NWG, 1)
    flash_fwd_sm90(const bf16* __restrict__ q, /* (B, H, L, D) */
                   const bf16* __restrict__ k, /* (B, Hkv, L, D) */
                   const bf16* __restrict__ v, /* (B, Hkv, L, D) */
                   bf16* __restrict__ o,       /* (B, H, L, D) */
                   float* __restrict__ lse,    /* (B, H, L) or NULL */
                   const AttnShape s) {
#ifdef MB_WGMMA_DEVICE
    using T = FwdSm90<D, NWG, BN>;
    constexpr int BM = T::BM, NT = T::NT;
    extern __shared__ unsigned char smem_raw[];
    bf16* Qs = reinterpret_cast<bf16*>(smem_1024(smem_raw)); /* (BM, D) */
    bf16* Ks = Qs + BM * D;                                   /* [2] (BN, D) */
    bf16* Vs = Ks + 2 * BN * D;                               /* [2] (BN, D) */

    const int lane = threadIdx.x & 31, wg = threadIdx.x >> 7, wwarp = (threadIdx.x >> 5) & 3;
    const int g = lane >> 2, t = lane & 3;
    const int64_t L = s.L;
    const int64_t bh = blockIdx.x; /* b * H + h */
    const int64_t b = bh / s.H, h = bh % s.H;
    const int64_t m0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * BM; /* heaviest first */
    const int64_t wgrow0 = m0 + wg * 64;
    const int64_t kv_off = (b * s.Hkv + h / s.group) * L * D;
    const bf16* kh = k + kv_off;
    const bf16* vh = v + kv_off;
    const int64_t kend = m0 + BM < L ? m0 + BM : L; /* keys 0 .. kend-1 are needed */
    const int ntiles = (int)((kend + BN - 1) / BN);

    load_tile_sw128<BM, D, NT>(Qs, q + bh * L * D, m0, L);
    load_tile_sw128<BN, D, NT>(Ks, kh, 0, L);
    load_tile_sw128<BN, D, NT>(Vs, vh, 0, L);
    cp_async_commit();

    float oacc[D / 8][4];
    zero_acc<D / 8>(oacc);
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
    const uint32_t qs = smem_addr(Qs);
    const int64_t trow0 = wgrow0 + wwarp * 16 + g; /* this thread's first row */

    for (int it = 0; it < ntiles; it++) {
        const int cur = it & 1;
        kv_stage_advance<BN, D, NT, Sw128Tiles>(Ks, Vs, kh, vh, it, ntiles, L); // tile it (and Q) landed
        const int64_t n0 = (int64_t)it * BN;
        if (n0 <= wgrow0 + 63) { // else every key of the tile follows every row of this warpgroup
            const uint32_t kt = smem_addr(Ks + cur * BN * D), vt = smem_addr(Vs + cur * BN * D);
            float sacc[BN / 8][4];
            wgmma_fence();
            wgmma_tile_x_tile_t<D, BN, BM>(sacc, qs, wg * 64, kt); // S = Q K^T
            wgmma_commit();
            wgmma_wait<0>();
            fence_acc(sacc);
            if (n0 + BN - 1 > wgrow0 || n0 + BN > L) { // the diagonal or the ragged last tile
                const int row_rel = (int)(trow0 - n0); /* this thread's row - n0 */
                const int keys_left = (int)(L - n0 < BN ? L - n0 : BN);
#pragma unroll
                for (int j = 0; j < BN / 8; j++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int col = j * 8 + 2 * t + (e & 1);
                        if (col > row_rel + (e >> 1) * 8 || col >= keys_left) sacc[j][e] = -INFINITY;
                    }
                }
            }
            softmax_update<D, BN>(sacc, oacc, mrow, lrow, s.scale_log2);
            // O += P V, P as bf16 A fragments straight from the score registers
            wgmma_acc_x_tile_wait<D, BN / 16, BN>(oacc, sacc, vt);
        }
        __syncthreads(); // the next iteration refills this stage
    }
    store_o_lse<D>(o + bh * L * D, lse ? lse + bh * L : NULL, oacc, mrow, lrow,
                   wgrow0 + wwarp * 16, L, s.scale, lane);
#endif
}

template <int D, int NWG, int BN>
static mb_status launch_fwd_sm90(const mb_attention_params* p, const mb_attention_inputs* in,
                                 void* o, void* lse, const mb_exec* ex) {
    using T = FwdSm90<D, NWG, BN>;
    return launch_fwd_grid(flash_fwd_sm90<D, NWG, BN>, T::BM, T::NT, T::kSmemBytes, p, in, o, lse, ex);
}

template <int NWG, int BN>
static mb_status fwd_sm90_dispatch(const mb_attention_params* p, const mb_attention_inputs* in,
                                   void* o, void* lse, const mb_exec* ex) {
    if (!wgmma_usable()) return mb_attention_fwd_cuda_flash_v8(p, in, o, lse, ex);
    if (p->headdim == 64) return launch_fwd_sm90<64, NWG, BN>(p, in, o, lse, ex);
    if (p->headdim == 128) return launch_fwd_sm90<128, NWG, BN>(p, in, o, lse, ex);
    return mb_fail(MB_ERR_NOT_IMPLEMENTED, "flash attention fwd: head dim %lld (64, 128 only)",
                   (long long)p->headdim);
}

} // namespace

extern "C" mb_status mb_attention_fwd_cuda_flash_v9(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, void* o,
                                                    void* lse, const mb_exec* ex) {
    return fwd_sm90_dispatch<2, 128>(p, in, o, lse, ex);
}

extern "C" mb_status mb_attention_fwd_cuda_flash_v10(const mb_attention_params* p,
                                                     const mb_attention_inputs* in, void* o,
                                                     void* lse, const mb_exec* ex) {
    return fwd_sm90_dispatch<2, 64>(p, in, o, lse, ex);
}

extern "C" mb_status mb_attention_fwd_cuda_flash_v11(const mb_attention_params* p,
                                                     const mb_attention_inputs* in, void* o,
                                                     void* lse, const mb_exec* ex) {
    return fwd_sm90_dispatch<3, 64>(p, in, o, lse, ex);
}
