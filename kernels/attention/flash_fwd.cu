/*
 * flash_fwd.cu -- fused causal flash attention forward (FlashAttention-2
 * design) on tensor cores, bf16 in and out, fp32 accumulation.
 *
 * One block of NW warps per (query block of BM = 16*NW rows, b*H + h); each
 * warp owns 16 query rows. Q is loaded once (cp.async -> shared -> ldmatrix)
 * and kept in registers as the A operand of S = Q K^T. K and V tiles of BN
 * keys stream through two shared-memory stages (cp.async double buffering:
 * tile t+1 loads while tile t is computed). Per tile each warp computes its
 * 16 x BN scores with mma.sync m16n8k16, updates the running row max and
 * row sum in fp32 (exp2 with the softmax scale folded into scale*log2(e)),
 * rescales its O accumulators, and multiplies P -- converted to bf16 straight
 * from the score accumulators, never through memory -- by the V tile.
 *
 * Causal block skipping: a block walks only the key tiles 0 .. ceil(min(m0 +
 * BM, L) / BN) - 1; tiles wholly at or below the diagonal of every row are
 * not masked, the (one or two) diagonal tiles get -inf above the diagonal and
 * past L, and a warp whose 16 rows all precede a tile skips it. Rows and keys
 * past L (the ragged last tile) are zero-filled on load and never written.
 * Blocks are issued heaviest first (last query block first).
 *
 * Shapes: q, o (B, H, L, d); k, v (B, H_kv, L, d), head h reads K/V head
 * h / (H / H_kv); lse (B, H, L) fp32, natural log, may be NULL.
 *
 * Versions (flash.h): template <D, NW warps, BN keys per tile, MT m16 tiles per
 * warp, KS_UNROLL>: v1 <4, 64, 1>, v2 <8, 64, 1>, v3 <4, 128, 1>, v4 <4, 64, 2>,
 * v5 <4, 32, 2>, v6 <8, 64, 2>, v7 v4 with KS_UNROLL 1; v8 (default) v4 or v1 by
 * the number of blocks (NOTES_flash.md has the H100 timings).
 */
#include "flash.h"
#include "flash_common.cuh"

#include <math.h>

using namespace mbflash;

namespace {

typedef __nv_bfloat16 bf16;

/* KS_UNROLL: how far the k loop of S = Q K^T is unrolled; D_ALL = fully (D/16) */
constexpr int D_ALL = 16;

template <int D, int NW, int BN, int MT> struct FwdTile {
    static constexpr int WM = 16 * MT;  /* query rows per warp */
    static constexpr int BM = WM * NW;  /* query rows per block */
    static constexpr int NT = 32 * NW;  /* threads */
    /* Q (BM, D), K and V 2 stages of (BN, D) each, bf16 */
    static constexpr int kSmemBytes = (BM * D + 4 * BN * D) * 2;
};

/* S (MT m16 tiles x BN) = Q K^T for one warp: Q fragments from registers
 * (MT = 1, loaded once) or from shared memory per k step (MT > 1: the
 * registers go to the second m tile, which halves the K fragment loads per MMA). */
template <int D, int BN, int MT, int KS_UNROLL>
static __device__ __forceinline__ void scores(float sacc[MT][BN / 8][4], const uint32_t qf[D / 16][4],
                                              const bf16* Qs, int wr, const bf16* Kt, int lane) {
#pragma unroll
    for (int mt = 0; mt < MT; mt++) zero_acc<BN / 8>(sacc[mt]);
#pragma unroll KS_UNROLL
    for (int ks = 0; ks < D / 16; ks++) {
        uint32_t qa[MT][4];
        if (MT == 1) {
#pragma unroll
            for (int r = 0; r < 4; r++) qa[0][r] = qf[ks][r];
        } else {
#pragma unroll
            for (int mt = 0; mt < MT; mt++) ldsm_a<D>(qa[mt], Qs, wr + 16 * mt, ks, lane);
        }
#pragma unroll
        for (int np = 0; np < BN / 16; np++) {
            uint32_t bk[4];
            ldsm_b_nk<D>(bk, Kt, np * 16, ks, lane);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma16816(sacc[mt][2 * np], qa[mt], bk[0], bk[1]);
                mma16816(sacc[mt][2 * np + 1], qa[mt], bk[2], bk[3]);
            }
        }
    }
}

template <int D, int NW, int BN, int MT, int KS_UNROLL>
__global__ void __launch_bounds__(NW * 32)
    flash_fwd_kernel(const bf16* __restrict__ q, /* (B, H, L, D) */
                     const bf16* __restrict__ k, /* (B, Hkv, L, D) */
                     const bf16* __restrict__ v, /* (B, Hkv, L, D) */
                     bf16* __restrict__ o,       /* (B, H, L, D) */
                     float* __restrict__ lse,    /* (B, H, L) or NULL */
                     const AttnShape s) {
    using T = FwdTile<D, NW, BN, MT>;
    constexpr int BM = T::BM, NT = T::NT, WM = T::WM;
    constexpr int QF = MT == 1 ? D / 16 : 1; /* Q fragments kept in registers */
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bf16* Qs = reinterpret_cast<bf16*>(smem_raw); /* (BM, D) */
    bf16* Ks = Qs + BM * D;                        /* [2] (BN, D) */
    bf16* Vs = Ks + 2 * BN * D;                    /* [2] (BN, D) */

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int64_t L = s.L;
    const int64_t bh = blockIdx.x; /* b * H + h */
    const int64_t b = bh / s.H, h = bh % s.H;
    const int64_t m0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * BM; /* heaviest first */
    const bf16* qh = q + bh * L * D;
    const int64_t kv_off = (b * s.Hkv + h / s.group) * L * D;
    const bf16* kh = k + kv_off;
    const bf16* vh = v + kv_off;

    const int64_t kend = m0 + BM < L ? m0 + BM : L; /* keys 0 .. kend-1 are needed */
    const int ntiles = (int)((kend + BN - 1) / BN);
    const int nfull = (int)((m0 + 1) / BN); /* tiles below the diagonal of every row */
    const int64_t wrow0 = m0 + warp * WM;   /* this warp's first query row */

    load_tile<BM, D, NT>(Qs, qh, m0, L);
    load_tile<BN, D, NT>(Ks, kh, 0, L);
    load_tile<BN, D, NT>(Vs, vh, 0, L);
    cp_async_commit();

    float oacc[MT][D / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) zero_acc<D / 8>(oacc[mt]);
    float mrow[MT][2], lrow[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) mrow[mt][0] = mrow[mt][1] = -INFINITY, lrow[mt][0] = lrow[mt][1] = 0.f;
    uint32_t qf[QF][4];

    for (int it = 0; it < ntiles; it++) {
        const int cur = it & 1;
        kv_stage_advance<BN, D, NT>(Ks, Vs, kh, vh, it, ntiles, L); // tile it (and Q) landed
        if (MT == 1 && it == 0) {
#pragma unroll
            for (int ks = 0; ks < QF; ks++) ldsm_a<D>(qf[ks], Qs, warp * WM, ks, lane);
        }
        const int64_t n0 = (int64_t)it * BN;
        if (n0 <= wrow0 + WM - 1) { // else every key of the tile follows every row of this warp
            const bf16* Kt = Ks + cur * BN * D;
            const bf16* Vt = Vs + cur * BN * D;
            float sacc[MT][BN / 8][4];
            scores<D, BN, MT, KS_UNROLL>(sacc, qf, Qs, warp * WM, Kt, lane);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                // the diagonal tile(s): -inf above the diagonal and past L
                if (it >= nfull) {
                    // tile-relative (small) indices: row - n0 and the keys left before L
                    const int row0 = (int)(wrow0 - n0) + 16 * mt + g;
                    const int keys_left = (int)(L - n0 < BN ? L - n0 : BN);
#pragma unroll
                    for (int j = 0; j < BN / 8; j++) {
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int col = j * 8 + 2 * t + (e & 1);
                            if (col > row0 + (e >> 1) * 8 || col >= keys_left) sacc[mt][j][e] = -INFINITY;
                        }
                    }
                }
                softmax_update<D, BN>(sacc[mt], oacc[mt], mrow[mt], lrow[mt], s.scale_log2);
            }
            // O += P V, P straight from the score registers, packed to bf16 first
            // (half the registers of the fp32 scores)
            uint32_t pa[MT][BN / 16][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int kk = 0; kk < BN / 16; kk++)
                    acc_to_a(pa[mt][kk], sacc[mt][2 * kk], sacc[mt][2 * kk + 1]);
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
#pragma unroll
                for (int np = 0; np < D / 16; np++) {
                    uint32_t bv[4];
                    ldsm_b_kn<D>(bv, Vt, kk * 16, np, lane);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        mma16816(oacc[mt][2 * np], pa[mt][kk], bv[0], bv[1]);
                        mma16816(oacc[mt][2 * np + 1], pa[mt][kk], bv[2], bv[3]);
                    }
                }
            }
        }
        __syncthreads(); // the next iteration refills this stage
    }

    // O = acc / l, lse = m * scale + ln l  (the 4 threads of a row hold partial sums)
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        store_o_lse<D>(o + bh * L * D, lse ? lse + bh * L : NULL, oacc[mt], mrow[mt], lrow[mt],
                       wrow0 + 16 * mt, L, s.scale, lane);
}

template <int D, int NW, int BN, int MT, int KS_UNROLL>
static mb_status launch_fwd(const mb_attention_params* p, const mb_attention_inputs* in, void* o,
                            void* lse, const mb_exec* ex) {
    using T = FwdTile<D, NW, BN, MT>;
    return launch_fwd_grid(flash_fwd_kernel<D, NW, BN, MT, KS_UNROLL>, T::BM, T::NT, T::kSmemBytes,
                           p, in, o, lse, ex);
}

/* Head dim 64 or 128 (the registry's mask); anything else is refused. */
template <int NW, int BN, int MT, int KS_UNROLL = D_ALL>
static mb_status fwd_dispatch(const mb_attention_params* p, const mb_attention_inputs* in,
                              void* o, void* lse, const mb_exec* ex) {
    if (p->headdim == 64) return launch_fwd<64, NW, BN, MT, KS_UNROLL>(p, in, o, lse, ex);
    if (p->headdim == 128) return launch_fwd<128, NW, BN, MT, KS_UNROLL>(p, in, o, lse, ex);
    return mb_fail(MB_ERR_NOT_IMPLEMENTED, "flash attention fwd: head dim %lld (64, 128 only)",
                   (long long)p->headdim);
}

} // namespace

extern "C" mb_status mb_attention_fwd_cuda_flash_v1(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, void* o,
                                                    void* lse, const mb_exec* ex) {
    return fwd_dispatch<4, 64, 1>(p, in, o, lse, ex);
}

extern "C" mb_status mb_attention_fwd_cuda_flash_v2(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, void* o,
                                                    void* lse, const mb_exec* ex) {
    return fwd_dispatch<8, 64, 1>(p, in, o, lse, ex);
}

extern "C" mb_status mb_attention_fwd_cuda_flash_v3(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, void* o,
                                                    void* lse, const mb_exec* ex) {
    return fwd_dispatch<4, 128, 1>(p, in, o, lse, ex);
}

extern "C" mb_status mb_attention_fwd_cuda_flash_v4(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, void* o,
                                                    void* lse, const mb_exec* ex) {
    return fwd_dispatch<4, 64, 2>(p, in, o, lse, ex);
}

extern "C" mb_status mb_attention_fwd_cuda_flash_v5(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, void* o,
                                                    void* lse, const mb_exec* ex) {
    return fwd_dispatch<4, 32, 2>(p, in, o, lse, ex);
}

extern "C" mb_status mb_attention_fwd_cuda_flash_v6(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, void* o,
                                                    void* lse, const mb_exec* ex) {
    return fwd_dispatch<8, 64, 2>(p, in, o, lse, ex);
}

extern "C" mb_status mb_attention_fwd_cuda_flash_v7(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, void* o,
                                                    void* lse, const mb_exec* ex) {
    return fwd_dispatch<4, 64, 2, 1>(p, in, o, lse, ex);
}

/* v8: flash-v4's kernel where it fills the GPU (>= 512 blocks of 128 rows, ~4 per SM),
 * else flash-v1's (blocks of 64 rows: twice the blocks for short sequences). */
extern "C" mb_status mb_attention_fwd_cuda_flash_v8(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, void* o,
                                                    void* lse, const mb_exec* ex) {
    const int64_t blocks128 = p->batch * p->nheads * ((p->seqlen + 127) / 128);
    if (blocks128 >= 512) return fwd_dispatch<4, 64, 2>(p, in, o, lse, ex);
    return fwd_dispatch<4, 64, 1>(p, in, o, lse, ex);
}
