/*
 * flash_bwd_sm90.cu -- flash-v14: the deterministic flash attention backward
 * of flash_bwd.cu (preprocess, a dK/dV kernel, a dQ kernel; no atomics, every
 * sum in a fixed order) with its tile products on Hopper's warpgroup tensor
 * cores (wgmma, sm_90a; building blocks in wgmma_sm90.cuh) instead of
 * mma.sync. bf16 in and out, fp32 accumulation, head dim 64 or 128, grouped-
 * query K/V, any L. Without sm_90a code in the build or on another GPU it
 * runs flash-v9.
 *
 * dK, dV: a block of 2 warpgroups per (128 keys, b * H_kv + kv head); each
 * warpgroup owns 64 keys (wgmma's M). K and V stay in shared memory; query
 * tiles of 64 rows (every head of the K/V group in a fixed order) with their
 * lse2 and Dvec stream through two cp.async stages. Per tile and warpgroup:
 *   S^T  = K Q^T      (64 x 64, K and Q from shared memory, both K-major)
 *   dP^T = V dO^T     (64 x 64, issued right behind S^T)
 *   P^T  = exp2(S^T scale log2e - lse2), masked; packed to bf16 in registers
 *   dV  += P^T dO     (64 x d, P^T from registers, dO MN-major; runs while
 *                      the threads form dS^T)
 *   dS^T = P^T o (dP^T - Dvec); dK += dS^T Q  (registers x MN-major Q)
 * dQ: a block of 2 warpgroups per (128 query rows, b * H + h), each owning 64
 * rows; K, V tiles of 64 keys double-buffered, 0 .. the diagonal:
 *   S = Q K^T, dP = dO V^T (shared x shared), dS = P o (dP - Dvec),
 *   dQ += dS K (registers x MN-major K).
 * All tiles use the sw128 layout (wgmma_sm90.cuh); one tile is both the
 * K-major operand of one product and the MN-major B of another.
 *
 * Shapes: q, o, dout, dq (B, H, L, d); k, v, dk, dv (B, H_kv, L, d);
 * lse (B, H, L) fp32; workspace Dvec and lse2 (B, H, L) fp32 each.
 */
#include "flash.h"
#include "flash_sm90.cuh"

using namespace mbflash;

namespace {

typedef __nv_bfloat16 bf16;

constexpr int kWgRows = 64;  /* rows (keys or queries) a warpgroup owns: wgmma's M */
constexpr int kNumWg = 2;    /* warpgroups per block */
constexpr int kThreads = 128 * kNumWg;
constexpr int kTile = 64;    /* the streamed tile: query rows (dK/dV), keys (dQ) */
constexpr int kBlockRows = kWgRows * kNumWg;

template <int D> struct KvSm90 {
    /* K, V (kBlockRows, D); Q, dO 2 stages (kTile, D), sw128; lse2, Dvec 2 stages (kTile) */
    static constexpr int kSmemBytes = (2 * kBlockRows * D + 4 * kTile * D) * 2 + 4 * kTile * 4 + 1024;
};

template <int D>
__global__ void __launch_bounds__(kThreads, 1)
    flash_bwd_dkdv_sm90(const bf16* __restrict__ q,     /* (B, H, L, D) */
                        const bf16* __restrict__ k,     /* (B, Hkv, L, D) */
                        const bf16* __restrict__ v,     /* (B, Hkv, L, D) */
                        const bf16* __restrict__ dout,  /* (B, H, L, D) */
                        const float* __restrict__ lse2, /* (B, H, L) */
                        const float* __restrict__ dvec, /* (B, H, L) */
                        bf16* __restrict__ dk,          /* (B, Hkv, L, D) */
                        bf16* __restrict__ dv,          /* (B, Hkv, L, D) */
                        const AttnShape s) {
#ifdef MB_WGMMA_DEVICE
    extern __shared__ unsigned char smem_raw[];
    bf16* Ks = reinterpret_cast<bf16*>(smem_1024(smem_raw)); /* (kBlockRows, D) */
    bf16* Vs = Ks + kBlockRows * D;                           /* (kBlockRows, D) */
    bf16* Qs = Vs + kBlockRows * D;                           /* [2] (kTile, D) */
    bf16* dOs = Qs + 2 * kTile * D;                           /* [2] (kTile, D) */
    float* Ls = reinterpret_cast<float*>(dOs + 2 * kTile * D); /* [2] (kTile) lse2 */
    float* Ds = Ls + 2 * kTile;                                /* [2] (kTile) Dvec */

    const int lane = threadIdx.x & 31, wg = threadIdx.x >> 7, wwarp = (threadIdx.x >> 5) & 3;
    const int g = lane >> 2, t = lane & 3;
    const int64_t L = s.L;
    const int64_t bkv = blockIdx.x; /* b * Hkv + kv head */
    const int64_t n0 = (int64_t)blockIdx.y * kBlockRows; /* block 0 (most work) first */
    const int64_t wgkey0 = n0 + wg * kWgRows;
    const QueryTileWalk<kTile> walk(bkv, n0, s);
    auto load_q_tile = [&](int64_t i, int stage) {
        int64_t bh, m0;
        walk.tile(i, bh, m0);
        load_tile_sw128<kTile, D, kThreads>(Qs + stage * kTile * D, q + bh * L * D, m0, L);
        load_tile_sw128<kTile, D, kThreads>(dOs + stage * kTile * D, dout + bh * L * D, m0, L);
        load_row_stats<kTile, kThreads>(Ls + stage * kTile, Ds + stage * kTile, lse2, dvec, bh, m0, L);
    };

    load_tile_sw128<kBlockRows, D, kThreads>(Ks, k + bkv * L * D, n0, L);
    load_tile_sw128<kBlockRows, D, kThreads>(Vs, v + bkv * L * D, n0, L);
    load_q_tile(0, 0);
    cp_async_commit();

    float dkacc[D / 8][4], dvacc[D / 8][4];
    zero_acc<D / 8>(dkacc);
    zero_acc<D / 8>(dvacc);
    const uint32_t kt = smem_addr(Ks), vt = smem_addr(Vs);

    for (int64_t it = 0; it < walk.iters; it++) {
        const int cur = (int)(it & 1);
        if (it + 1 < walk.iters) load_q_tile(it + 1, cur ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
        fence_async_smem(); // this thread's cp.async data, visible to wgmma
        __syncthreads();
        int64_t bh, m0;
        walk.tile(it, bh, m0);
        if (m0 + kTile - 1 >= wgkey0) { // else every query of the tile precedes this warpgroup's keys
            const uint32_t qt = smem_addr(Qs + cur * kTile * D), dot = smem_addr(dOs + cur * kTile * D);
            const float* Lt = Ls + cur * kTile;
            const float* Dt = Ds + cur * kTile;
            float sT[8][4], dpT[8][4];
            wgmma_fence();
            wgmma_tile_x_tile_t<D, kTile, kBlockRows>(sT, kt, wg * kWgRows, qt); // S^T = K Q^T
            wgmma_commit();
            wgmma_tile_x_tile_t<D, kTile, kBlockRows>(dpT, vt, wg * kWgRows, dot); // dP^T = V dO^T
            wgmma_commit();
            wgmma_wait<1>();
            fence_acc(sT);
            // P^T = exp2(S^T scale log2e - lse2), 0 where the query precedes the key or is past L
            const bool need_mask = m0 < wgkey0 + kWgRows - 1 || m0 + kTile > L;
            const int key0 = (int)(wgkey0 - m0) + wwarp * 16 + g; /* this thread's key - m0 */
            const int queries_left = (int)(L - m0 < kTile ? L - m0 : kTile);
            probs_t<8>(sT, Lt, s.scale_log2, need_mask, key0, queries_left, t);
            uint32_t pa[kTile / 16][4];
#pragma unroll
            for (int kk = 0; kk < kTile / 16; kk++) acc_to_a(pa[kk], sT[2 * kk], sT[2 * kk + 1]);
            wgmma_fence();
            wgmma_regs_x_tile<D, kTile / 16, kTile>(dvacc, pa, dot); // dV += P^T dO
            wgmma_commit();
            wgmma_wait<1>(); // dP^T done (dV may still run)
            fence_acc(dpT);
            // dS^T = P^T o (dP^T - Dvec), with the bf16 P^T
            dst_from_packed<8>(dpT, pa, Dt, t);
            uint32_t da[kTile / 16][4];
#pragma unroll
            for (int kk = 0; kk < kTile / 16; kk++) acc_to_a(da[kk], dpT[2 * kk], dpT[2 * kk + 1]);
            wgmma_fence();
            wgmma_regs_x_tile<D, kTile / 16, kTile>(dkacc, da, qt); // dK += dS^T Q  (the factor scale at the end)
            wgmma_commit();
            wgmma_wait<0>();
            fence_acc(dvacc);
            fence_acc(dkacc);
            fence_regs(pa);
            fence_regs(da);
        }
        __syncthreads(); // the next iteration refills this stage
    }
    const int64_t row0 = wgkey0 + wwarp * 16;
    store_rows<D>(dk + bkv * L * D, dkacc, row0, L, s.scale, lane);
    store_rows<D>(dv + bkv * L * D, dvacc, row0, L, 1.f, lane);
#endif
}

template <int D> struct QSm90 {
    /* Q, dO (kBlockRows, D); K, V 2 stages (kTile, D); sw128 */
    static constexpr int kSmemBytes = (2 * kBlockRows * D + 4 * kTile * D) * 2 + 1024;
};

template <int D>
__global__ void __launch_bounds__(kThreads, 1)
    flash_bwd_dq_sm90(const bf16* __restrict__ q,     /* (B, H, L, D) */
                      const bf16* __restrict__ k,     /* (B, Hkv, L, D) */
                      const bf16* __restrict__ v,     /* (B, Hkv, L, D) */
                      const bf16* __restrict__ dout,  /* (B, H, L, D) */
                      const float* __restrict__ lse2, /* (B, H, L) */
                      const float* __restrict__ dvec, /* (B, H, L) */
                      bf16* __restrict__ dq,          /* (B, H, L, D) */
                      const AttnShape s) {
#ifdef MB_WGMMA_DEVICE
    extern __shared__ unsigned char smem_raw[];
    bf16* Qs = reinterpret_cast<bf16*>(smem_1024(smem_raw)); /* (kBlockRows, D) */
    bf16* dOs = Qs + kBlockRows * D;                          /* (kBlockRows, D) */
    bf16* Ks = dOs + kBlockRows * D;                          /* [2] (kTile, D) */
    bf16* Vs = Ks + 2 * kTile * D;                            /* [2] (kTile, D) */

    const int lane = threadIdx.x & 31, wg = threadIdx.x >> 7, wwarp = (threadIdx.x >> 5) & 3;
    const int g = lane >> 2, t = lane & 3;
    const int64_t L = s.L;
    const int64_t bh = blockIdx.x;
    const int64_t b = bh / s.H, h = bh % s.H;
    const int64_t m0 = (int64_t)(gridDim.y - 1 - blockIdx.y) * kBlockRows; /* heaviest first */
    const int64_t wgrow0 = m0 + wg * kWgRows;
    const int64_t kv_off = (b * s.Hkv + h / s.group) * L * D;
    const bf16* kh = k + kv_off;
    const bf16* vh = v + kv_off;
    const int64_t kend = m0 + kBlockRows < L ? m0 + kBlockRows : L;
    const int ntiles = (int)((kend + kTile - 1) / kTile);

    load_tile_sw128<kBlockRows, D, kThreads>(Qs, q + bh * L * D, m0, L);
    load_tile_sw128<kBlockRows, D, kThreads>(dOs, dout + bh * L * D, m0, L);
    load_tile_sw128<kTile, D, kThreads>(Ks, kh, 0, L);
    load_tile_sw128<kTile, D, kThreads>(Vs, vh, 0, L);
    cp_async_commit();

    // this thread's rows: lse2 and Dvec (rows past L: 0, never stored)
    const int64_t trow0 = wgrow0 + wwarp * 16 + g;
    float lrow[2], drow[2];
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const int64_t row = trow0 + hf * 8;
        lrow[hf] = row < L ? lse2[bh * L + row] : 0.f;
        drow[hf] = row < L ? dvec[bh * L + row] : 0.f;
    }
    float dqacc[D / 8][4];
    zero_acc<D / 8>(dqacc);
    const uint32_t qs = smem_addr(Qs), dos = smem_addr(dOs);

    for (int it = 0; it < ntiles; it++) {
        const int cur = it & 1;
        kv_stage_advance<kTile, D, kThreads, Sw128Tiles>(Ks, Vs, kh, vh, it, ntiles, L);
        const int64_t n0 = (int64_t)it * kTile;
        if (n0 <= wgrow0 + kWgRows - 1) { // else the tile is above this warpgroup's diagonal
            const uint32_t kt = smem_addr(Ks + cur * kTile * D), vt = smem_addr(Vs + cur * kTile * D);
            float sacc[8][4], dpacc[8][4];
            wgmma_fence();
            wgmma_tile_x_tile_t<D, kTile, kBlockRows>(sacc, qs, wg * kWgRows, kt); // S = Q K^T
            wgmma_commit();
            wgmma_tile_x_tile_t<D, kTile, kBlockRows>(dpacc, dos, wg * kWgRows, vt); // dP = dO V^T
            wgmma_commit();
            wgmma_wait<1>();
            fence_acc(sacc);
            const bool need_mask = n0 + kTile - 1 > wgrow0 || n0 + kTile > L;
            const int row_rel = (int)(trow0 - n0); /* this thread's row - n0 */
            const int keys_left = (int)(L - n0 < kTile ? L - n0 : kTile);
#pragma unroll
            for (int j = 0; j < 8; j++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int hf = e >> 1, col = j * 8 + 2 * t + (e & 1);
                    float pr = fast_exp2(fmaf(sacc[j][e], s.scale_log2, -lrow[hf]));
                    if (need_mask && (col > row_rel + hf * 8 || col >= keys_left)) pr = 0.f;
                    sacc[j][e] = pr;
                }
            }
            wgmma_wait<0>();
            fence_acc(dpacc);
#pragma unroll
            for (int j = 0; j < 8; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) sacc[j][e] *= dpacc[j][e] - drow[e >> 1]; // dS = P o (dP - Dvec)
            wgmma_acc_x_tile_wait<D, kTile / 16, kTile>(dqacc, sacc, kt); // dQ += dS K
        }
        __syncthreads(); // the next iteration refills this stage
    }
    store_rows<D>(dq + bh * L * D, dqacc, wgrow0 + wwarp * 16, L, s.scale, lane);
#endif
}

template <int D>
static mb_status launch_bwd_sm90(const mb_attention_params* p, const mb_attention_inputs* in,
                                 const void* o, const void* lse, const void* dout,
                                 const mb_attention_grads* gr, const mb_exec* ex) {
    const AttnShape s = attn_shape(p);
    const int64_t rows = p->batch * s.H * s.L;
    const int64_t blocks = (s.L + kBlockRows - 1) / kBlockRows;
    if (blocks > 65535 || p->batch * s.H > 0x7fffffff)
        return mb_fail(MB_ERR_BAD_DIM, "flash attention bwd: L = %lld or B*H too large for the grid",
                       (long long)s.L);
    auto kv_kernel = flash_bwd_dkdv_sm90<D>;
    auto q_kernel = flash_bwd_dq_sm90<D>;
    mb_status st = allow_smem(kv_kernel, KvSm90<D>::kSmemBytes);
    if (st == MB_OK) st = allow_smem(q_kernel, QSm90<D>::kSmemBytes);
    if (st != MB_OK) return st;

    const size_t ws_bytes = (size_t)2 * rows * sizeof(float);
    void* ws = NULL;
    st = mb_device_alloc(&ws, ws_bytes, ex->stream);
    if (st != MB_OK) return st;
    float* dvec = (float*)ws;  /* (B, H, L) */
    float* lse2 = dvec + rows; /* (B, H, L) */
    cudaStream_t stream = mb_stream(ex);
    const bf16* q = (const bf16*)in->q;
    const bf16* k = (const bf16*)in->k;
    const bf16* v = (const bf16*)in->v;
    const bf16* dO = (const bf16*)dout;

    FLASH_PROF(0, stream);
    cudaError_t err = launch_bwd_preprocess<D>(o, dO, lse, dvec, lse2, rows, stream);
    FLASH_PROF(1, stream);
    if (err == cudaSuccess) {
        dim3 grid((unsigned)(p->batch * s.Hkv), (unsigned)blocks);
        kv_kernel<<<grid, kThreads, KvSm90<D>::kSmemBytes, stream>>>(q, k, v, dO, lse2, dvec,
                                                                      (bf16*)gr->dk, (bf16*)gr->dv, s);
        err = cudaGetLastError();
    }
    FLASH_PROF(2, stream);
    if (err == cudaSuccess) {
        dim3 grid((unsigned)(p->batch * s.H), (unsigned)blocks);
        q_kernel<<<grid, kThreads, QSm90<D>::kSmemBytes, stream>>>(q, k, v, dO, lse2, dvec,
                                                                    (bf16*)gr->dq, s);
        err = cudaGetLastError();
    }
    FLASH_PROF(3, stream);
    mb_device_free(ws, ws_bytes, ex->stream);
    if (err != cudaSuccess)
        return mb_fail(MB_ERR_CUDA, "flash attention bwd: launch failed: %s", cudaGetErrorString(err));
    return MB_OK;
}

} // namespace

extern "C" mb_status mb_attention_bwd_cuda_flash_v14(const mb_attention_params* p,
                                                     const mb_attention_inputs* in, const void* o,
                                                     const void* lse, const void* dout,
                                                     const mb_attention_grads* g, const mb_exec* ex) {
    if (!wgmma_usable()) return mb_attention_bwd_cuda_flash_v9(p, in, o, lse, dout, g, ex);
    if (p->headdim == 64) return launch_bwd_sm90<64>(p, in, o, lse, dout, g, ex);
    if (p->headdim == 128) return launch_bwd_sm90<128>(p, in, o, lse, dout, g, ex);
    return mb_fail(MB_ERR_NOT_IMPLEMENTED, "flash attention bwd: head dim %lld (64, 128 only)",
                   (long long)p->headdim);
}
