/*
 * flash_bwd.cu -- fused causal flash attention backward (FlashAttention-2
 * algorithm), deterministic: no floating-point atomics, every sum in a fixed
 * order. bf16 in and out, fp32 accumulation; the (L, L) matrices are never
 * stored, P is recomputed from the forward's lse.
 *
 * Three kernels on the caller's stream:
 *   1. preprocess, one warp per query row:  Dvec_i = sum_c dO_ic O_ic,
 *      lse2_i = lse_i * log2(e)  (so P = exp2(S * scale * log2e - lse2))
 *   2. dK, dV: one block of NW warps per (key block of BN = 16*NW keys,
 *      b*H_kv + kv head); each warp owns 16 keys. K and V stay in shared
 *      memory; query tiles of BQ rows (of every head of the K/V group, the
 *      grouped-query sum in a fixed order) stream through two cp.async stages
 *      together with their lse2 and Dvec. Per tile, in registers:
 *        S^T = K Q^T, P^T = exp2(S^T * scale log2e - lse2), dP^T = V dO^T,
 *        dV += P^T dO, dS^T = P^T o (dP^T - Dvec), dK += dS^T Q;
 *      only the query tiles at or after the key block are walked (causal).
 *   3. dQ: one block of NW warps per (query block of 16*NW rows, b*H + h), the
 *      forward's loop over key tiles 0 .. diagonal with K, V double-buffered:
 *        S = Q K^T, dP = dO V^T, dS = P o (dP - Dvec), dQ += dS K.
 *      It recomputes S and dP (7 tile products instead of 5) so that dQ needs
 *      no atomics and no per-key-block partials.
 * dK and dQ take the factor `scale` once at the end. flash-atomic (registered,
 * never the default, NOT deterministic) skips kernel 3: the dK, dV kernel puts
 * dS^T in shared memory and adds dQ_tile += dS K into a zeroed fp32 (B, H, L, d)
 * accumulator with atomics; a last kernel scales it into dq.
 * flash-v13 (deterministic, 5 tile products, no dQ kernel; 128 keys x 8 warps
 * per block, query tiles of 64): as flash-atomic, but the key blocks add to a
 * query tile's fp32 dQ in a fixed order, from the tile's diagonal key block
 * down to key block 0. Each warp owns the same (16 rows, 64 columns) region of
 * every tile in every block and a turn counter per (tile, region) in global
 * memory: it waits for its turn (acquire), fetches the old sums by cp.async
 * while the tile's products run, adds its dS K part and stores, and passes the
 * turn on (release) during its next tile, once the stores have drained. The
 * diagonal block stores without reading; key block 0 writes dq as bf16. The
 * grid issues the key blocks last to first, so the block waited for was issued
 * earlier (no deadlock) and, walking the query tiles upward from its own
 * diagonal, is two tiles ahead: the turn is normally already there. Measured
 * slower than flash-v9 on the H100 (NOTES_flash.md: the fp32 dQ traffic and
 * the fifth product cost more than v9's recomputation). Masking as in the
 * forward: -inf scores become P = 0 above the diagonal and past L.
 *
 * Shapes: q, o, dout, dq (B, H, L, d); k, v, dk, dv (B, H_kv, L, d);
 * lse (B, H, L) fp32; workspace Dvec and lse2 (B, H, L) fp32 each (+ the dQ
 * accumulator (B, H, L, d) fp32 and turn counters for flash-atomic / v13).
 */
#include "flash.h"
#include "flash_common.cuh"

using namespace mbflash;

namespace {

typedef __nv_bfloat16 bf16;

/* c (16 x 8*NJ per warp) += A (rows r0 of a swizzled (., D) tile) x B^T, B
 * stored as (n rows, D columns): the Q K^T shape, reduction over D, its k loop
 * unrolled UNR times (16 = fully for D <= 256). */
template <int D, int NJ, int UNR>
static __device__ __forceinline__ void gemm_abt(float c[NJ][4], const bf16* A, int r0,
                                                const bf16* Bt, int lane) {
#pragma unroll UNR
    for (int ks = 0; ks < D / 16; ks++) {
        uint32_t a[4];
        ldsm_a<D>(a, A, r0, ks, lane);
#pragma unroll
        for (int np = 0; np < NJ / 2; np++) {
            uint32_t b[4];
            ldsm_b_nk<D>(b, Bt, np * 16, ks, lane);
            mma16816(c[2 * np], a, b[0], b[1]);
            mma16816(c[2 * np + 1], a, b[2], b[3]);
        }
    }
}

/* acc (16 x D per warp) += X (16 x 16*KK in accumulator registers, as bf16) x
 * B, B stored as (16*KK rows, D columns): the P V shape. */
template <int D, int KK>
static __device__ __forceinline__ void gemm_regs_b(float acc[D / 8][4], const float x[2 * KK][4],
                                                   const bf16* B, int lane) {
#pragma unroll
    for (int kk = 0; kk < KK; kk++) {
        uint32_t a[4];
        acc_to_a(a, x[2 * kk], x[2 * kk + 1]);
#pragma unroll
        for (int np = 0; np < D / 16; np++) {
            uint32_t b[4];
            ldsm_b_kn<D>(b, B, kk * 16, np, lane);
            mma16816(acc[2 * np], a, b[0], b[1]);
            mma16816(acc[2 * np + 1], a, b[2], b[3]);
        }
    }
}

/* acc (16 x D per warp) += X (16 x 16*KK, already packed as bf16 A fragments) x
 * B, B stored as (16*KK rows, D columns). */
template <int D, int KK>
static __device__ __forceinline__ void gemm_packed_b(float acc[D / 8][4], const uint32_t x[KK][4],
                                                     const bf16* B, int lane) {
#pragma unroll
    for (int kk = 0; kk < KK; kk++) {
#pragma unroll
        for (int np = 0; np < D / 16; np++) {
            uint32_t b[4];
            ldsm_b_kn<D>(b, B, kk * 16, np, lane);
            mma16816(acc[2 * np], x[kk], b[0], b[1]);
            mma16816(acc[2 * np + 1], x[kk], b[2], b[3]);
        }
    }
}

// ----------------------------------------------------------------------------
// 2. dK, dV

/* How the dK/dV kernel treats dQ: not at all (a dQ kernel follows), fp32
 * atomics (flash-atomic), or added in a fixed key-block order, pipelined per
 * warp (flash-v13). */
enum DqMode { kDqNone = 0, kDqAtomic = 1, kDqPipelined = 3 };
/* tools/flash_timing.cu only (wrong results, timing breakdown of the pipelined
 * mode): kDqPipelined | bits << 4, bits: 1 no waits, 2 no releases, 4 no old
 * sums fetched, 8 no dQ stores */
enum DqExperiment { kExpNoWait = 1, kExpNoRelease = 2, kExpNoFetch = 4, kExpNoStore = 8 };

/* The dQ tile (BQ rows x D) split over the NW warps: BQ/16 row groups x the
 * rest column groups of CW columns. */
template <int D, int NW, int BQ> struct DqSplit {
    static constexpr int RG = BQ / 16, CG = NW / RG, CW = D / CG;
    static constexpr __host__ __device__ bool valid() { return NW % RG == 0 && CW % 32 == 0; } /* asserted where used */
};

template <int D, int NW, int BQ, int kDqBits = kDqNone> struct KVTile {
    static constexpr int kDq = kDqBits & 15;
    static constexpr int BN = 16 * NW; /* keys per block */
    static constexpr int NT = 32 * NW;
    /* K, V (BN, D); Q, dO 2 stages (BQ, D) bf16; lse2, Dvec 2 stages (BQ) fp32;
     * with a dQ mode dS^T (BN, BQ) bf16; pipelined: the old dQ sums (BQ, D) fp32 */
    static constexpr int kSmemBytes = (2 * BN * D + 4 * BQ * D) * 2 + 4 * BQ * 4 +
                                      (kDq != kDqNone ? BN * BQ * 2 : 0) +
                                      (kDq == kDqPipelined ? BQ * D * 4 : 0);
};

/* The key block of the last (diagonal) contribution to query tile `tile`. */
template <int BN, int BQ>
static __host__ __device__ __forceinline__ int64_t last_key_block(int64_t tile, int64_t L) {
    const int64_t last_query = tile * BQ + BQ - 1 < L - 1 ? tile * BQ + BQ - 1 : L - 1;
    return last_query / BN;
}

/* A fragment (16 x 16: rows m0.., columns k0..) of a matrix stored
 * transposed, as a swizzled (K rows, W columns) tile [k][m] (dS^T for dS K). */
template <int W>
static __device__ __forceinline__ void ldsm_a_t(uint32_t a[4], const bf16* tile, int k0, int m0,
                                                int lane) {
    const int q = lane >> 3;
    const int r = k0 + (lane & 7) + (q >> 1) * 8;
    ldsm_x4_t(a, smem_addr(tile + swz<W>(r, (m0 >> 3) + (q & 1))));
}

/* The non-deterministic dQ path (flash-atomic): a warp's 16 query rows of
 * dQ_tile += dS K over the block's BN keys, added into the fp32 dQ
 * accumulator with atomics, D/32 column chunks at a time (16 registers). */
template <int D, int BN, int BQ>
static __device__ __forceinline__ void dq_partial_atomic(float* dq_acc, /* (L, D) of head bh */
                                                         const bf16* dSs, /* (BN, BQ) dS^T */
                                                         const bf16* Ks,  /* (BN, D) */
                                                         int64_t m0, int64_t L, int warp, int lane) {
    const int g = lane >> 2, t = lane & 3;
    uint32_t a[BN / 16][4];
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) ldsm_a_t<BQ>(a[kk], dSs, kk * 16, warp * 16, lane);
#pragma unroll
    for (int nc = 0; nc < D / 32; nc++) {
        float acc[4][4];
        zero_acc<4>(acc);
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
#pragma unroll
            for (int p2 = 0; p2 < 2; p2++) {
                uint32_t b[4];
                ldsm_b_kn<D>(b, Ks, kk * 16, nc * 2 + p2, lane);
                mma16816(acc[2 * p2], a[kk], b[0], b[1]);
                mma16816(acc[2 * p2 + 1], a[kk], b[2], b[3]);
            }
        }
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            const int64_t row = m0 + warp * 16 + g + hf * 8;
            if (row >= L) continue;
            float* dst = dq_acc + row * D + nc * 32 + 2 * t;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                atomicAdd(dst + j * 8, acc[j][2 * hf]);
                atomicAdd(dst + j * 8 + 1, acc[j][2 * hf + 1]);
            }
        }
    }
}

/* ---- flash-v13: the ordered dQ pipelined per warp ----
 * Each warp owns the same (16 rows, CW columns) region of every dQ tile in
 * every block, and a turn counter per (tile, region). Per query tile, between
 * its own products, a warp: passes on the turn of its previous tile (its
 * stores have drained by then), waits for this tile's turn (the block before
 * it in the order walks the tiles one step ahead: the turn is normally there),
 * starts cp.async of the region's old sums into its own shared memory; at the
 * end it adds its dS K part to them and stores (key block 0: dq as bf16). */
struct PendingTurn {
    int* counter; /* NULL: nothing to pass on */
    int next;
};

static __device__ __forceinline__ void warp_wait_turn(const int* counter, int turn, int lane) {
    if (lane == 0) {
        int seen;
        for (;;) {
            asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(seen) : "l"(counter) : "memory");
            if (seen >= turn) break;
            __nanosleep(32);
        }
    }
    __syncwarp();
}

static __device__ __forceinline__ void warp_pass_turn(PendingTurn& p, int lane) {
    __syncwarp();
    if (p.counter && lane == 0)
        asm volatile("st.release.gpu.global.b32 [%0], %1;\n" ::"l"(p.counter), "r"(p.next) : "memory");
    p.counter = NULL;
}

/* Element (r, c) of a warp's (16, CW) fp32 region in shared memory: 16-byte
 * chunks XOR-swizzled by the row (2-way bank conflicts on the fragment reads). */
template <int CW>
static __device__ __forceinline__ int old_at(int r, int c) {
    return r * CW + (((c >> 2) ^ (r & 7)) << 2) + (c & 3);
}

/* cp.async of this warp's region of the tile's old dQ sums (rows past L: 0). */
template <int D, int NW, int BQ>
static __device__ __forceinline__ void dq_old_issue(float* Ob,           /* (16, CW) smem */
                                                    const float* dq_acc, /* (L, D) of head bh */
                                                    int64_t m0, int64_t L, int warp, int lane) {
    using S = DqSplit<D, NW, BQ>;
    static_assert(S::valid(), "dQ tile split over the warps");
    constexpr int kChunksPerRow = S::CW / 4;
    const int rg = warp % S::RG, cg = warp / S::RG;
#pragma unroll
    for (int i = lane; i < 16 * kChunksPerRow; i += 32) {
        const int r = i / kChunksPerRow, c = (i % kChunksPerRow) * 4;
        const int64_t row = m0 + rg * 16 + r;
        const bool valid = row < L;
        const float* src = valid ? dq_acc + row * D + cg * S::CW + c : dq_acc;
        cp_async16(smem_addr(Ob + old_at<S::CW>(r, c)), src, valid);
    }
    cp_async_commit();
}

/* This warp's dS K part of the tile (over the block's BN keys), plus the old
 * sums (unless first), stored as the new sums or, when final, as dq. */
template <int D, int NW, int BN, int BQ, int kExp = 0>
static __device__ __forceinline__ void dq_region_add(float* dq_acc,    /* (L, D) of head bh */
                                                     bf16* dq,         /* (L, D) of head bh */
                                                     const float* Ob,  /* (16, CW) smem */
                                                     const bf16* dSs,  /* (BN, BQ) dS^T */
                                                     const bf16* Ks,   /* (BN, D) */
                                                     int64_t m0, int64_t L, bool first, bool final,
                                                     float scale, int warp, int lane) {
    using S = DqSplit<D, NW, BQ>;
    static_assert(S::valid(), "dQ tile split over the warps");
    const int g = lane >> 2, t = lane & 3;
    const int rg = warp % S::RG, cg = warp / S::RG;
    uint32_t a[BN / 16][4];
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) ldsm_a_t<BQ>(a[kk], dSs, kk * 16, rg * 16, lane);
    float acc[S::CW / 32][4][4];
#pragma unroll
    for (int c = 0; c < S::CW / 32; c++) {
        zero_acc<4>(acc[c]);
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
#pragma unroll
            for (int p2 = 0; p2 < 2; p2++) {
                uint32_t b[4];
                ldsm_b_kn<D>(b, Ks, kk * 16, (cg * S::CW + c * 32) / 16 + p2, lane);
                mma16816(acc[c][2 * p2], a[kk], b[0], b[1]);
                mma16816(acc[c][2 * p2 + 1], a[kk], b[2], b[3]);
            }
        }
    }
    if (kExp & kExpNoFetch) first = true;
    if (!first) {
        cp_async_wait<0>(); // this lane's old sums landed
        __syncwarp();       // and every lane's
    }
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const int r = g + hf * 8;
        const int64_t row = m0 + rg * 16 + r;
        if (row >= L) continue;
#pragma unroll
        for (int c = 0; c < S::CW / 32; c++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int col = c * 32 + j * 8 + 2 * t;
                float x = acc[c][j][2 * hf], y = acc[c][j][2 * hf + 1];
                if (!first) {
                    const float2 old = *reinterpret_cast<const float2*>(Ob + old_at<S::CW>(r, col));
                    x += old.x;
                    y += old.y;
                }
                const int64_t at = row * D + cg * S::CW + col;
                if (kExp & kExpNoStore) {
                    if (x == 12345.f) dq[at] = __float2bfloat16(y); // keeps the product alive
                } else if (final)
                    *reinterpret_cast<uint32_t*>(dq + at) = pack_bf16(x * scale, y * scale);
                else
                    __stcg(reinterpret_cast<float2*>(dq_acc + at), make_float2(x, y));
            }
    }
}

template <int D, int NW, int BQ, bool kPackP, int kDqBits, int UNR>
__global__ void __launch_bounds__(NW * 32)
    flash_bwd_dkdv_kernel(const bf16* __restrict__ q,    /* (B, H, L, D) */
                          const bf16* __restrict__ k,    /* (B, Hkv, L, D) */
                          const bf16* __restrict__ v,    /* (B, Hkv, L, D) */
                          const bf16* __restrict__ dout, /* (B, H, L, D) */
                          const float* __restrict__ lse2, /* (B, H, L) */
                          const float* __restrict__ dvec, /* (B, H, L) */
                          bf16* __restrict__ dk,         /* (B, Hkv, L, D) */
                          bf16* __restrict__ dv,         /* (B, Hkv, L, D) */
                          float* __restrict__ dq_acc,    /* (B, H, L, D) fp32: atomic zeroed, pipelined scratch */
                          bf16* __restrict__ dq,         /* (B, H, L, D) pipelined */
                          int* __restrict__ turns,       /* (B, H, ceil(L / BQ), NW) zeroed, pipelined */
                          const AttnShape s) {
    constexpr int kDq = kDqBits & 15, kExp = kDqBits >> 4;
    constexpr bool kAtomic = kDq == kDqAtomic, kPipe = kDq == kDqPipelined;
    static_assert(!kAtomic || (kPackP && BQ == 16 * NW && BQ == 64), "flash-atomic shape");
    static_assert(!kPipe || kPackP, "ordered dQ: packed P^T");
    static_assert(!kPipe || 16 * NW == 2 * BQ, "pipelined dQ: a key block spans two query tiles");
    using T = KVTile<D, NW, BQ, kDqBits>;
    constexpr int BN = T::BN, NT = T::NT;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bf16* Ks = reinterpret_cast<bf16*>(smem_raw); /* (BN, D) */
    bf16* Vs = Ks + BN * D;                        /* (BN, D) */
    bf16* Qs = Vs + BN * D;                        /* [2] (BQ, D) */
    bf16* dOs = Qs + 2 * BQ * D;                   /* [2] (BQ, D) */
    float* Ls = reinterpret_cast<float*>(dOs + 2 * BQ * D); /* [2] (BQ) lse2 */
    float* Ds = Ls + 2 * BQ;                                /* [2] (BQ) Dvec */
    bf16* dSs = reinterpret_cast<bf16*>(Ds + 2 * BQ);       /* (BN, BQ) dS^T, with a dQ mode */

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float* Ob = reinterpret_cast<float*>(dSs + BN * BQ) + /* (16, CW) this warp's old dQ sums (pipelined) */
                (kPipe ? warp * 16 * DqSplit<D, NW, BQ>::CW : 0);
    const int g = lane >> 2, t = lane & 3;
    const int64_t L = s.L;
    const int64_t bkv = blockIdx.x; /* b * Hkv + kv head */
    /* block 0 (most work) first; ordered dQ: the last block first (see the file comment) */
    const int64_t n0 = (int64_t)(kPipe ? gridDim.y - 1 - blockIdx.y : blockIdx.y) * BN;
    const int64_t wkey0 = n0 + warp * 16;
    const QueryTileWalk<BQ> walk(bkv, n0, s);
    auto load_q_tile = [&](int64_t i, int stage) {
        int64_t bh, m0;
        walk.tile(i, bh, m0);
        load_tile<BQ, D, NT>(Qs + stage * BQ * D, q + bh * L * D, m0, L);
        load_tile<BQ, D, NT>(dOs + stage * BQ * D, dout + bh * L * D, m0, L);
        load_row_stats<BQ, NT>(Ls + stage * BQ, Ds + stage * BQ, lse2, dvec, bh, m0, L);
    };

    load_tile<BN, D, NT>(Ks, k + bkv * L * D, n0, L);
    load_tile<BN, D, NT>(Vs, v + bkv * L * D, n0, L);
    load_q_tile(0, 0);
    cp_async_commit();

    float dkacc[D / 8][4], dvacc[D / 8][4];
    zero_acc<D / 8>(dkacc);
    zero_acc<D / 8>(dvacc);

    // pipelined dQ: this warp's turn on the previous tile, passed on during the next one
    PendingTurn pending = {NULL, 0};
    const int64_t tiles_per_head = (L + BQ - 1) / BQ;

    for (int64_t it = 0; it < walk.iters; it++) {
        const int cur = (int)(it & 1);
        if (it + 1 < walk.iters) load_q_tile(it + 1, cur ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        int64_t bh, m0;
        walk.tile(it, bh, m0);
        // pipelined dQ: this block's place in the tile's order (0: first), the warp's counter
        const int turn = (int)(last_key_block<BN, BQ>(m0 / BQ, L) - n0 / BN);
        int* const counter = turns + (bh * tiles_per_head + m0 / BQ) * NW + warp;
        auto dq_stage = [&]() { // pass on the last turn, wait for this one, fetch the old sums
            if constexpr (kPipe) {
                if (!(kExp & kExpNoRelease)) warp_pass_turn(pending, lane);
                if (turn > 0) {
                    if (!(kExp & kExpNoWait)) warp_wait_turn(counter, turn, lane);
                    if (!(kExp & kExpNoFetch)) dq_old_issue<D, NW, BQ>(Ob, dq_acc + bh * L * D, m0, L, warp, lane);
                }
                pending.counter = counter;
                pending.next = turn + 1;
            }
        };
        if (m0 + BQ - 1 >= wkey0) { // else every query of the tile precedes this warp's keys
            const bf16* Qt = Qs + cur * BQ * D;
            const bf16* dOt = dOs + cur * BQ * D;
            const float* Lt = Ls + cur * BQ;
            const float* Dt = Ds + cur * BQ;
            const bool need_mask = m0 < wkey0 + 15 || m0 + BQ > L;
            // tile-relative (small) indices: this thread's key - m0, the queries left before L
            const int key0 = (int)(wkey0 - m0) + g;
            const int queries_left = (int)(L - m0 < BQ ? L - m0 : BQ);
            // S^T = K Q^T   (16 keys x BQ queries per warp)
            float sT[BQ / 8][4];
            zero_acc<BQ / 8>(sT);
            gemm_abt<D, BQ / 8, UNR>(sT, Ks, warp * 16, Qt, lane);
            if constexpr (kPipe) dq_stage();
            // P^T = exp2(S^T scale log2e - lse2), 0 where the query precedes the key or is past L
            probs_t<BQ / 8>(sT, Lt, s.scale_log2, need_mask, key0, queries_left, t);
            if (kPackP) {
                // P^T packed to bf16 at once (the fp32 scores die before dP^T is formed)
                uint32_t pa[BQ / 16][4];
#pragma unroll
                for (int kk = 0; kk < BQ / 16; kk++) acc_to_a(pa[kk], sT[2 * kk], sT[2 * kk + 1]);
                gemm_packed_b<D, BQ / 16>(dvacc, pa, dOt, lane); // dV += P^T dO
                float dpT[BQ / 8][4];                            // dP^T = V dO^T
                zero_acc<BQ / 8>(dpT);
                gemm_abt<D, BQ / 8, UNR>(dpT, Vs, warp * 16, dOt, lane);
                // dS^T = P^T o (dP^T - Dvec), with the bf16 P^T
                dst_from_packed<BQ / 8>(dpT, pa, Dt, t);
                gemm_regs_b<D, BQ / 16>(dkacc, dpT, Qt, lane); // dK += dS^T Q
                if (kDq != kDqNone) { // this warp's 16 rows of dS^T for the dQ update
#pragma unroll
                    for (int j = 0; j < BQ / 8; j++)
#pragma unroll
                        for (int hf = 0; hf < 2; hf++)
                            *reinterpret_cast<uint32_t*>(dSs + swz<BQ>(warp * 16 + g + hf * 8, j) + 2 * t) =
                                pack_bf16(dpT[j][2 * hf], dpT[j][2 * hf + 1]);
                }
            } else {
                float dpT[BQ / 8][4]; // dP^T = V dO^T
                zero_acc<BQ / 8>(dpT);
                gemm_abt<D, BQ / 8, UNR>(dpT, Vs, warp * 16, dOt, lane);
                // dV += P^T dO
                gemm_regs_b<D, BQ / 16>(dvacc, sT, dOt, lane);
                // dS^T = P^T o (dP^T - Dvec)
#pragma unroll
                for (int j = 0; j < BQ / 8; j++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int c = j * 8 + 2 * t + (e & 1);
                        dpT[j][e] = sT[j][e] * (dpT[j][e] - Dt[c]);
                    }
                }
                // dK += dS^T Q   (the factor scale at the end)
                gemm_regs_b<D, BQ / 16>(dkacc, dpT, Qt, lane);
            }
        } else if (kDq != kDqNone) { // no work: dS^T rows of this warp are 0
            if constexpr (kPipe) dq_stage();
#pragma unroll
            for (int j = 0; j < BQ / 8; j++)
#pragma unroll
                for (int hf = 0; hf < 2; hf++)
                    *reinterpret_cast<uint32_t*>(dSs + swz<BQ>(warp * 16 + g + hf * 8, j) + 2 * t) = 0u;
        }
        if (kAtomic) {
            __syncthreads(); // dS^T complete
            dq_partial_atomic<D, BN, BQ>(dq_acc + bh * L * D, dSs, Ks, m0, L, warp, lane);
        }
        if constexpr (kPipe) {
            __syncthreads(); // dS^T complete
            dq_region_add<D, NW, BN, BQ, kExp>(dq_acc + bh * L * D, dq + bh * L * D, Ob, dSs, Ks, m0,
                                               L, turn == 0, n0 == 0, s.scale, warp, lane);
        }
        __syncthreads(); // the next iteration refills this stage
    }

    if constexpr (kPipe && !(kExp & kExpNoRelease)) warp_pass_turn(pending, lane);
    store_rows<D>(dk + bkv * L * D, dkacc, wkey0, L, s.scale, lane);
    store_rows<D>(dv + bkv * L * D, dvacc, wkey0, L, 1.f, lane);
}

// ----------------------------------------------------------------------------
// 3. dQ

template <int D, int NW, int BN> struct QTile {
    static constexpr int BM = 16 * NW; /* query rows per block */
    static constexpr int NT = 32 * NW;
    /* Q, dO (BM, D); K, V 2 stages (BN, D), bf16 */
    static constexpr int kSmemBytes = (2 * BM * D + 4 * BN * D) * 2;
};

template <int D, int NW, int BN, int UNR>
__global__ void __launch_bounds__(NW * 32)
    flash_bwd_dq_kernel(const bf16* __restrict__ q,     /* (B, H, L, D) */
                        const bf16* __restrict__ k,     /* (B, Hkv, L, D) */
                        const bf16* __restrict__ v,     /* (B, Hkv, L, D) */
                        const bf16* __restrict__ dout,  /* (B, H, L, D) */
                        const float* __restrict__ lse2, /* (B, H, L) */
                        const float* __restrict__ dvec, /* (B, H, L) */
                        bf16* __restrict__ dq,          /* (B, H, L, D) */
                        const AttnShape s) {
    using T = QTile<D, NW, BN>;
    constexpr int BM = T::BM, NT = T::NT;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bf16* Qs = reinterpret_cast<bf16*>(smem_raw); /* (BM, D) */
    bf16* dOs = Qs + BM * D;                       /* (BM, D) */
    bf16* Ks = dOs + BM * D;                       /* [2] (BN, D) */
    bf16* Vs = Ks + 2 * BN * D;                    /* [2] (BN, D) */

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int64_t L = s.L;
    const int64_t bh = blockIdx.x;
    const int64_t b = bh / s.H, h = bh % s.H;
    const int64_t m0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * BM; /* heaviest first */
    const int64_t kv_off = (b * s.Hkv + h / s.group) * L * D;
    const bf16* kh = k + kv_off;
    const bf16* vh = v + kv_off;
    const int64_t kend = m0 + BM < L ? m0 + BM : L;
    const int ntiles = (int)((kend + BN - 1) / BN);
    const int nfull = (int)((m0 + 1) / BN);
    const int64_t wrow0 = m0 + warp * 16;

    load_tile<BM, D, NT>(Qs, q + bh * L * D, m0, L);
    load_tile<BM, D, NT>(dOs, dout + bh * L * D, m0, L);
    load_tile<BN, D, NT>(Ks, kh, 0, L);
    load_tile<BN, D, NT>(Vs, vh, 0, L);
    cp_async_commit();

    // this thread's rows wrow0 + g and + 8: lse2 and Dvec (rows past L: 0, never stored)
    float lrow[2], drow[2];
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const int64_t row = wrow0 + g + hf * 8;
        lrow[hf] = row < L ? lse2[bh * L + row] : 0.f;
        drow[hf] = row < L ? dvec[bh * L + row] : 0.f;
    }

    float dqacc[D / 8][4];
    zero_acc<D / 8>(dqacc);

    for (int it = 0; it < ntiles; it++) {
        const int cur = it & 1;
        kv_stage_advance<BN, D, NT>(Ks, Vs, kh, vh, it, ntiles, L);
        const int64_t n0 = (int64_t)it * BN;
        if (n0 <= wrow0 + 15) {
            const bf16* Kt = Ks + cur * BN * D;
            const bf16* Vt = Vs + cur * BN * D;
            float sacc[BN / 8][4], dpacc[BN / 8][4];
            zero_acc<BN / 8>(sacc);
            zero_acc<BN / 8>(dpacc);
            gemm_abt<D, BN / 8, UNR>(sacc, Qs, warp * 16, Kt, lane);  // S = Q K^T
            gemm_abt<D, BN / 8, UNR>(dpacc, dOs, warp * 16, Vt, lane); // dP = dO V^T
            const bool need_mask = it >= nfull;
            // tile-relative (small) indices: this thread's row - n0, the keys left before L
            const int row0 = (int)(wrow0 - n0) + g;
            const int keys_left = (int)(L - n0 < BN ? L - n0 : BN);
            // dS = P o (dP - Dvec),  P = exp2(S scale log2e - lse2), 0 above the diagonal / past L
#pragma unroll
            for (int j = 0; j < BN / 8; j++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int hf = e >> 1, col = j * 8 + 2 * t + (e & 1);
                    float pr = fast_exp2(fmaf(sacc[j][e], s.scale_log2, -lrow[hf]));
                    if (need_mask && (col > row0 + hf * 8 || col >= keys_left)) pr = 0.f;
                    sacc[j][e] = pr * (dpacc[j][e] - drow[hf]);
                }
            }
            gemm_regs_b<D, BN / 16>(dqacc, sacc, Kt, lane); // dQ += dS K
        }
        __syncthreads();
    }
    store_rows<D>(dq + bh * L * D, dqacc, wrow0, L, s.scale, lane);
}

// ----------------------------------------------------------------------------
// launch

/* dq = scale * dq_acc, as bf16 (flash-atomic) */
__global__ void dq_convert_kernel(const float* __restrict__ acc, /* (B, H, L, D) */
                                  bf16* __restrict__ dq,         /* (B, H, L, D) */
                                  int64_t n, float scale) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n / 2;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float2 a = reinterpret_cast<const float2*>(acc)[i];
        reinterpret_cast<uint32_t*>(dq)[i] = pack_bf16(a.x * scale, a.y * scale);
    }
}

template <int D, int KV_NW, int KV_BQ, int Q_NW, int Q_BN, bool KV_PACK, int DQ, int UNR>
static mb_status launch_bwd(const mb_attention_params* p, const mb_attention_inputs* in,
                            const void* o, const void* lse, const void* dout,
                            const mb_attention_grads* gr, const mb_exec* ex) {
    using TK = KVTile<D, KV_NW, KV_BQ, DQ>;
    using TQ = QTile<D, Q_NW, Q_BN>;
    const AttnShape s = attn_shape(p);
    const int64_t rows = p->batch * s.H * s.L;
    const int64_t kblocks = (s.L + TK::BN - 1) / TK::BN, qblocks = (s.L + TQ::BM - 1) / TQ::BM;
    if (kblocks > 65535 || qblocks > 65535 || p->batch * s.H > 0x7fffffff)
        return mb_fail(MB_ERR_BAD_DIM, "flash attention bwd: L = %lld or B*H too large for the grid",
                       (long long)s.L);
    auto kv_kernel = flash_bwd_dkdv_kernel<D, KV_NW, KV_BQ, KV_PACK, DQ, UNR>;
    constexpr int kMode = DQ & 15;
    auto q_kernel = flash_bwd_dq_kernel<D, Q_NW, Q_BN, UNR>;
    mb_status st = allow_smem(kv_kernel, TK::kSmemBytes);
    if (st == MB_OK && kMode == kDqNone) st = allow_smem(q_kernel, TQ::kSmemBytes);
    if (st != MB_OK) return st;

    /* Dvec, lse2 (B, H, L) fp32; with a dQ mode the dQ accumulator (B, H, L, D)
     * fp32; pipelined: the turn counters (B, H, ceil(L / KV_BQ), KV_NW) int32 */
    const int64_t turn_count =
        (kMode == kDqPipelined ? KV_NW : 0) * p->batch * s.H * ((s.L + KV_BQ - 1) / KV_BQ);
    const int64_t dq_at = (2 * rows + 3) / 4 * 4; /* floats before dq_acc: 16-byte aligned (cp.async) */
    const size_t ws_bytes = ((size_t)dq_at + (kMode != kDqNone ? rows * D : 0)) * sizeof(float) +
                            (size_t)turn_count * sizeof(int);
    void* ws = NULL;
    st = mb_device_alloc(&ws, ws_bytes, ex->stream);
    if (st != MB_OK) return st;
    float* dvec = (float*)ws;  /* (B, H, L) */
    float* lse2 = dvec + rows; /* (B, H, L) */
    float* dq_acc = kMode != kDqNone ? dvec + dq_at : NULL; /* (B, H, L, D) */
    int* turns = turn_count ? (int*)(dq_acc + rows * D) : NULL; /* (B, H, ceil(L / KV_BQ), KV_NW) */
    cudaStream_t stream = mb_stream(ex);
    const bf16* q = (const bf16*)in->q;
    const bf16* k = (const bf16*)in->k;
    const bf16* v = (const bf16*)in->v;
    const bf16* dO = (const bf16*)dout;

    FLASH_PROF(0, stream);
    cudaError_t err = cudaSuccess;
    if (kMode == kDqAtomic) err = cudaMemsetAsync(dq_acc, 0, (size_t)rows * D * sizeof(float), stream);
    if (turn_count) err = cudaMemsetAsync(turns, 0, (size_t)turn_count * sizeof(int), stream);
    if (err == cudaSuccess) {
        err = launch_bwd_preprocess<D>(o, dO, lse, dvec, lse2, rows, stream);
    }
    FLASH_PROF(1, stream);
    if (err == cudaSuccess) {
        /* key blocks along y (ordered dQ: last to first, each block waits only on blocks issued before it) */
        dim3 grid((unsigned)(p->batch * s.Hkv), (unsigned)kblocks);
        kv_kernel<<<grid, TK::NT, TK::kSmemBytes, stream>>>(q, k, v, dO, lse2, dvec, (bf16*)gr->dk,
                                                            (bf16*)gr->dv, dq_acc, (bf16*)gr->dq,
                                                            turns, s);
        err = cudaGetLastError();
    }
    FLASH_PROF(2, stream);
    if (err == cudaSuccess && kMode == kDqAtomic) {
        dq_convert_kernel<<<1024, 256, 0, stream>>>(dq_acc, (bf16*)gr->dq, rows * D, s.scale);
        err = cudaGetLastError();
    } else if (err == cudaSuccess && kMode == kDqNone) {
        dim3 grid((unsigned)(p->batch * s.H), (unsigned)qblocks);
        q_kernel<<<grid, TQ::NT, TQ::kSmemBytes, stream>>>(q, k, v, dO, lse2, dvec, (bf16*)gr->dq, s);
        err = cudaGetLastError();
    }
    FLASH_PROF(3, stream);
    mb_device_free(ws, ws_bytes, ex->stream);
    if (err != cudaSuccess)
        return mb_fail(MB_ERR_CUDA, "flash attention bwd: launch failed: %s", cudaGetErrorString(err));
    return MB_OK;
}

template <int KV_NW, int KV_BQ, int Q_NW, int Q_BN, bool KV_PACK = false, int DQ = kDqNone,
          int UNR = 16>
static mb_status bwd_dispatch(const mb_attention_params* p, const mb_attention_inputs* in,
                              const void* o, const void* lse, const void* dout,
                              const mb_attention_grads* g, const mb_exec* ex) {
    if (p->headdim == 64) return launch_bwd<64, KV_NW, KV_BQ, Q_NW, Q_BN, KV_PACK, DQ, UNR>(p, in, o, lse, dout, g, ex);
    if (p->headdim == 128) return launch_bwd<128, KV_NW, KV_BQ, Q_NW, Q_BN, KV_PACK, DQ, UNR>(p, in, o, lse, dout, g, ex);
    return mb_fail(MB_ERR_NOT_IMPLEMENTED, "flash attention bwd: head dim %lld (64, 128 only)",
                   (long long)p->headdim);
}

} // namespace

extern "C" mb_status mb_attention_bwd_cuda_flash_v1(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, const void* o,
                                                    const void* lse, const void* dout,
                                                    const mb_attention_grads* g, const mb_exec* ex) {
    return bwd_dispatch<4, 64, 4, 64>(p, in, o, lse, dout, g, ex);
}

extern "C" mb_status mb_attention_bwd_cuda_flash_v2(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, const void* o,
                                                    const void* lse, const void* dout,
                                                    const mb_attention_grads* g, const mb_exec* ex) {
    return bwd_dispatch<8, 64, 8, 64>(p, in, o, lse, dout, g, ex);
}

extern "C" mb_status mb_attention_bwd_cuda_flash_v3(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, const void* o,
                                                    const void* lse, const void* dout,
                                                    const mb_attention_grads* g, const mb_exec* ex) {
    return bwd_dispatch<8, 32, 8, 64>(p, in, o, lse, dout, g, ex);
}

extern "C" mb_status mb_attention_bwd_cuda_flash_v4(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, const void* o,
                                                    const void* lse, const void* dout,
                                                    const mb_attention_grads* g, const mb_exec* ex) {
    return bwd_dispatch<4, 32, 4, 64>(p, in, o, lse, dout, g, ex);
}

extern "C" mb_status mb_attention_bwd_cuda_flash_v5(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, const void* o,
                                                    const void* lse, const void* dout,
                                                    const mb_attention_grads* g, const mb_exec* ex) {
    return bwd_dispatch<4, 64, 4, 128>(p, in, o, lse, dout, g, ex);
}

extern "C" mb_status mb_attention_bwd_cuda_flash_v6(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, const void* o,
                                                    const void* lse, const void* dout,
                                                    const mb_attention_grads* g, const mb_exec* ex) {
    return bwd_dispatch<4, 32, 4, 128>(p, in, o, lse, dout, g, ex);
}

extern "C" mb_status mb_attention_bwd_cuda_flash_v7(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, const void* o,
                                                    const void* lse, const void* dout,
                                                    const mb_attention_grads* g, const mb_exec* ex) {
    return bwd_dispatch<4, 64, 4, 64, true, kDqNone, 2>(p, in, o, lse, dout, g, ex);
}

extern "C" mb_status mb_attention_bwd_cuda_flash_v8(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, const void* o,
                                                    const void* lse, const void* dout,
                                                    const mb_attention_grads* g, const mb_exec* ex) {
    return bwd_dispatch<8, 64, 4, 64, true, kDqNone, 2>(p, in, o, lse, dout, g, ex);
}

/* Not deterministic (float atomics into dQ): 5 tile products instead of 7. */
extern "C" mb_status mb_attention_bwd_cuda_flash_atomic(const mb_attention_params* p,
                                                       const mb_attention_inputs* in, const void* o,
                                                       const void* lse, const void* dout,
                                                       const mb_attention_grads* g, const mb_exec* ex) {
    return bwd_dispatch<4, 64, 4, 64, true, kDqAtomic>(p, in, o, lse, dout, g, ex);
}

extern "C" mb_status mb_attention_bwd_cuda_flash_v9(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, const void* o,
                                                    const void* lse, const void* dout,
                                                    const mb_attention_grads* g, const mb_exec* ex) {
    return bwd_dispatch<4, 64, 4, 64, true>(p, in, o, lse, dout, g, ex);
}

extern "C" mb_status mb_attention_bwd_cuda_flash_v10(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, const void* o,
                                                    const void* lse, const void* dout,
                                                    const mb_attention_grads* g, const mb_exec* ex) {
    return bwd_dispatch<8, 64, 4, 64, true>(p, in, o, lse, dout, g, ex);
}

/* Deterministic, 5 tile products, the ordered dQ pipelined per warp (old sums
 * fetched by cp.async during the tile's products, turns passed on a tile
 * later): 128 keys, 8 warps, query tiles of 64. */
extern "C" mb_status mb_attention_bwd_cuda_flash_v13(const mb_attention_params* p,
                                                    const mb_attention_inputs* in, const void* o,
                                                    const void* lse, const void* dout,
                                                    const mb_attention_grads* g, const mb_exec* ex) {
    return bwd_dispatch<8, 64, 4, 64, true, kDqPipelined>(p, in, o, lse, dout, g, ex);
}

#ifdef MB_FLASH_PROFILE
/* tools/flash_timing.cu: flash-v13 with parts left out (DqExperiment; wrong results) */
extern "C" mb_status mb_flash_bwd_experiment(int bits, const mb_attention_params* p,
                                             const mb_attention_inputs* in, const void* o,
                                             const void* lse, const void* dout,
                                             const mb_attention_grads* g, const mb_exec* ex) {
    switch (bits) {
    case 1: return bwd_dispatch<8, 64, 4, 64, true, kDqPipelined | 1 << 4>(p, in, o, lse, dout, g, ex);
    case 3: return bwd_dispatch<8, 64, 4, 64, true, kDqPipelined | 3 << 4>(p, in, o, lse, dout, g, ex);
    case 7: return bwd_dispatch<8, 64, 4, 64, true, kDqPipelined | 7 << 4>(p, in, o, lse, dout, g, ex);
    case 15: return bwd_dispatch<8, 64, 4, 64, true, kDqPipelined | 15 << 4>(p, in, o, lse, dout, g, ex);
    default: return MB_ERR_BAD_OPTION;
    }
}
#endif
