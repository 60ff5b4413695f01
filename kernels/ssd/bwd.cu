/*
 * bwd.cu -- SSD backward, deterministic (no atomics; every sum in a fixed order).
 *
 * v1, per chunk c of Qc tokens (local i, j, s), with the forward's dt', cs and
 * the state h_c entering the chunk recomputed (chunk_state + state_pass), and
 * ds_s = dy_s silu(z_s) (dy without z):
 *   1. reverse chunk adjoints  dS_c = sum_s exp(cs_s) ds_s C_s^T  and the reverse
 *      state pass: E_c = dL/dh at chunk c's end from later chunks (E_last =
 *      dfinal_state), E_{c-1} = exp(cs_end(c)) E_c + dS_c; dinitial_state = E_{-1}
 *   2. four masked chunk matmuls (chunk_scan_kernel, ssd_chunk.cuh):
 *      y_pre (dz; row partials ds.y_ssm and ds.x), dx with the row partial
 *      x.(dh_i B_i) = ddt' direct, dC and dB of each head
 *   3. per chunk: dcs_i = ds_i.y_ssm_i - dt'_i (x_i.dh_i B_i) + [i = end] <E_c, h_end>,
 *      the gradient of dt'_r A through the decays is g_r = sum_{i >= r} dcs_i,
 *      ddt'_r = x_r.(dh_r B_r) + A g_r,  dA += dt'_r g_r; ddt through softplus
 *   4. fixed-order sums: dA, dD, ddt_bias over (b, chunk); dB, dC over the heads
 *      of each group.
 * Workspace: dt', cs (B, H, L); states, adjoints (B, NC, H, P, N); per-head
 * dB, dC (B, L, H, N) fp32; row partials; never (B, L, H, P, N).
 *
 * v2 (bf16, the shapes of ssd_mma.cuh's mma_fits; else v1): v1 with the forward
 * states recomputed by fwd v4's state_mma_kernel (w_j x_j as hi + lo bf16) and
 * y_pre by its scan_mma_kernel in the y_pre role: decayed scores and entering
 * states as hi + lo bf16 (two MMAs each against the exact x and C, ~16-bit
 * operands where v1 runs 3xTF32 WMMA); dx, dC, dB and the reductions as v1.
 *
 * v3 (bf16, mma_fits; else v1): every chunk matmul on mma.sync (ssd_mma_bwd.cuh):
 * y_pre as v2, also writing ds as hi + lo bf16; the reverse chunk adjoints by
 * state_mma_kernel (ds hi + lo against C); dx by dx_mma_kernel (C B^T read
 * transposed, scores, E and ds hi + lo); dB and dC summed over the heads of a
 * group inside dbc_kernel, from M = sum_h decay (ds . x^T) (dsx_kernel): no
 * per-head (B, L, H, N) partials and no group reduction. The state passes
 * write only the bf16 hi + lo copies (no fp32 states or adjoints), and K_c of
 * step 3 comes as partial sums from the dx kernel.
 */
#include "ssd.h"
#include "ssd_chunk.cuh"
#include "ssd_mma.cuh"
#include "ssd_mma_bwd.cuh"

namespace mbssd {
namespace {

/* the sum of red[0 .. 255] in a fixed order, for every thread (red: 256 floats) */
__device__ float block_sum256(float v, float* red) {
    __syncthreads(); /* red free */
    red[threadIdx.x] = v;
    __syncthreads();
    for (int stride = 128; stride > 0; stride >>= 1) {
        if ((int)threadIdx.x < stride) red[threadIdx.x] += red[threadIdx.x + stride];
        __syncthreads();
    }
    return red[0];
}

/* grid (NC, H, B), 256 threads: ddt of the chunk's tokens and the chunk's
 * partial sums of dA, ddt_bias, dD (see step 3 above). The tokens go 256 at a
 * time from the chunk's end, one per thread; g (the suffix sums of dcs) by a
 * block-wide reverse scan: within warps, then over the warps' totals. */
template <typename T>
__global__ void __launch_bounds__(256) finalize_chunk_kernel(
    const SsdArgs<T> a, const ChunkWork w,
    const float* __restrict__ adj,      /* (B, NC, H, P, N) E_c */
    const float* __restrict__ fs,       /* (B, H, P, N) h at the end of the sequence */
    const float* __restrict__ part_dcs, /* (nos, B, H, L) ds . y_ssm */
    const float* __restrict__ part_ddt, /* (nos, B, H, L) x . dh B */
    const float* __restrict__ part_dD,  /* (nos, B, H, L) ds . x */
    const float* __restrict__ kpart,    /* bwd v3: (B, H, NC, nos) partial sums of K; else NULL */
    int nos, T* __restrict__ ddt,       /* (B, L, H) */
    float* __restrict__ cdA, float* __restrict__ cdbias, float* __restrict__ cdD /* (B, H, NC) */) {
    __shared__ float red[256];
    __shared__ float wtot[8];
    const int64_t c = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int64_t t0 = c * a.Q, PN = a.P * a.N, BHL = a.Bsz * a.H * a.L;
    const int Qc = (int)min(a.Q, a.L - t0), warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    // K = <E_c, h_end(c)>: h_end is the state entering chunk c + 1, or the final state
    float K = 0.f;
    if (kpart) { /* the dx kernel's partial sums over its slices of P */
        for (int os = 0; os < nos; os++) K += kpart[((b * a.H + h) * a.NC + c) * nos + os];
    } else {
        const float* E = adj + ((b * a.NC + c) * a.H + h) * PN;
        const float* he = c + 1 < a.NC ? w.states + ((b * a.NC + c + 1) * a.H + h) * PN
                                       : fs + (b * a.H + h) * PN;
        float s = 0.f;
        for (int64_t e = threadIdx.x; e < PN; e += blockDim.x) s = fmaf(E[e], he[e], s);
        K = block_sum256(s, red);
    }
    const float Ah = a.A[h], bias = a.bias ? a.bias[h] : 0.f;
    float carry = 0.f, sA = 0.f, sb = 0.f, sD = 0.f;
    for (int kb = (Qc - 1) / 256 * 256; kb >= 0; kb -= 256) {
        const int k = kb + (int)threadIdx.x;
        const bool valid = k < Qc;
        const int64_t t = t0 + k, il = (b * a.H + h) * a.L + t;
        float direct = 0.f, dcs = 0.f, dDp = 0.f, dtv = 0.f;
        if (valid) {
            for (int os = 0; os < nos; os++) {
                direct += part_ddt[os * BHL + il];
                dcs += part_dcs[os * BHL + il];
                dDp += part_dD[os * BHL + il];
            }
            dtv = w.dtp[il];
            dcs -= dtv * direct;
            if (k == Qc - 1) dcs += K;
        }
        // g_k = sum_{k' >= k} dcs_k': reverse scan in the warp, then the later warps and rounds
        float v = dcs;
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
            const float n = __shfl_down_sync(0xffffffffu, v, off);
            if (lane + off < 32) v += n;
        }
        __syncthreads(); /* wtot of the previous round read */
        if (lane == 0) wtot[warp] = v;
        __syncthreads();
        float later = carry, round = carry;
        for (int q = 7; q >= 0; q--) {
            if (q > warp) later += wtot[q];
            round += wtot[q];
        }
        const float g = v + later;
        carry = round;
        if (valid) {
            const float ddtp = fmaf(Ah, g, direct);
            const float raw = mb_to_float(a.dt[(b * a.L + t) * a.H + h]) + bias;
            const float dd = a.softplus ? ddtp * sigmoidf_(raw) : ddtp;
            ddt[(b * a.L + t) * a.H + h] = mb_from_float<T>(dd);
            sA = fmaf(dtv, g, sA);
            sb += dd;
            sD += dDp;
        }
    }
    sA = block_sum256(sA, red);
    sb = block_sum256(sb, red);
    sD = block_sum256(sD, red);
    if (threadIdx.x == 0) {
        const int64_t ic = (b * a.H + h) * a.NC + c;
        cdA[ic] = sA, cdbias[ic] = sb, cdD[ic] = sD;
    }
}

/* sum over (b, c) of x[(b, h, c)] in a fixed order; all 256 threads get it */
__device__ float sum_over_chunks(const float* x, int64_t Bsz, int64_t H, int64_t NC, int64_t h,
                                 float* red) {
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < Bsz * NC; i += blockDim.x) s += x[((i / NC) * H + h) * NC + i % NC];
    return block_sum256(s, red);
}

/* grid (H), 256 threads: dA, dD, ddt_bias of head h from the chunk partials */
__global__ void __launch_bounds__(256) head_reduce_kernel(const float* cdA, const float* cdbias,
                                                          const float* cdD, int64_t Bsz, int64_t H,
                                                          int64_t NC, int has_D, float* dA,
                                                          float* dD, float* dbias) {
    __shared__ float red[256];
    const int64_t h = blockIdx.x;
    const float sA = sum_over_chunks(cdA, Bsz, H, NC, h, red);
    const float sb = sum_over_chunks(cdbias, Bsz, H, NC, h, red);
    const float sD = sum_over_chunks(cdD, Bsz, H, NC, h, red);
    if (threadIdx.x == 0) {
        dA[h] = sA;
        if (dbias) dbias[h] = sb;
        if (dD) dD[h] = has_D ? sD : 0.f;
    }
}

/* dB[b, t, g, n] = sum over the heads h of group g of dBh[b, t, h, n] (same for C) */
template <typename T>
__global__ void group_reduce_kernel(const float* __restrict__ dBh, const float* __restrict__ dCh,
                                    T* __restrict__ dB, T* __restrict__ dC, int64_t BL, int64_t H,
                                    int64_t G, int64_t N) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= BL * G * N) return;
    const int64_t n = idx % N, g = (idx / N) % G, bt = idx / (N * G), hpg = H / G;
    float sB = 0.f, sC = 0.f;
    for (int64_t h = g * hpg; h < (g + 1) * hpg; h++) {
        sB += dBh[(bt * H + h) * N + n];
        sC += dCh[(bt * H + h) * N + n];
    }
    dB[idx] = mb_from_float<T>(sB);
    dC[idx] = mb_from_float<T>(sC);
}

/* the workspace of the backward, carved from one allocation */
struct BwdWork {
    ChunkWork w;
    float *adj, *fs, *dBh, *dCh, *part_dcs, *part_ddt, *part_dD, *cdA, *cdbias, *cdD, *cb;
};

/* per_head_dbc: the (B, L, H, N) per-head dB, dC (v1, v2; v3 has none) */
template <typename T>
static size_t bwd_layout(const SsdArgs<T>& a, char* base, BwdWork* k, bool per_head_dbc = true) {
    const int64_t BHL = a.Bsz * a.H * a.L, PN = a.P * a.N, nos = ceil_div(a.P, kTile);
    const int64_t BLHN = per_head_dbc ? a.Bsz * a.L * a.H * a.N : 0;
    const int64_t sizes[14] = {BHL, BHL, a.Bsz * a.NC * a.H * PN, a.Bsz * a.NC * a.H * PN,
                               a.Bsz * a.H * PN, BLHN, BLHN,
                               nos * BHL, nos * BHL, nos * BHL, a.Bsz * a.H * a.NC,
                               a.Bsz * a.H * a.NC, a.Bsz * a.H * a.NC, cb_floats(a)};
    float** dst[14] = {&k->w.dtp, &k->w.cs, &k->w.states, &k->adj, &k->fs, &k->dBh, &k->dCh,
                       &k->part_dcs, &k->part_ddt, &k->part_dD, &k->cdA, &k->cdbias, &k->cdD,
                       &k->cb};
    size_t off = 0;
    for (int i = 0; i < 14; i++) {
        if (base) *dst[i] = (float*)(base + off);
        off += floats_bytes(sizes[i]);
    }
    return off;
}

/* dx (with the row partial x . dh B), dC and dB of each head */
template <typename T>
static mb_status bwd_dx_dc_db(const SsdArgs<T>& a, const BwdWork& k, const mb_ssd_grads* g,
                              cudaStream_t st) {
    mb_status s = MB_OK;
    {
        ScanOut<T> o = {k.adj, (T*)g->dx, k.part_ddt, nullptr, nullptr, k.cb};
        s = launch_chunk_scan<T, float, ROLE_DX, true>(a, k.w, o, st);
    }
    if (s == MB_OK) {
        ScanOut<T> o = {k.w.states, nullptr, nullptr, nullptr, k.dCh, nullptr};
        s = launch_chunk_scan<T, T, ROLE_DC, false>(a, k.w, o, st);
    }
    if (s == MB_OK) {
        ScanOut<T> o = {k.adj, nullptr, nullptr, nullptr, k.dBh, nullptr};
        s = launch_chunk_scan<T, T, ROLE_DB, false>(a, k.w, o, st);
    }
    return s;
}

/* the reverse chunk adjoints E_c and dinitial_state */
template <typename T>
static mb_status bwd_adjoints(const SsdArgs<T>& a, const BwdWork& k, const void* dfinal_state,
                              const mb_ssd_grads* g, cudaStream_t st) {
    mb_status s = launch_chunk_state<T, float, true>(a, k.w, k.adj, st);
    if (s == MB_OK)
        s = launch_state_pass<true>(k.w, k.adj, (const float*)dfinal_state,
                                    (float*)g->dinitial_state, a.Bsz, a.L, a.Q, a.NC, a.H,
                                    a.P * a.N, st);
    return s;
}

/* states, adjoints, C B^T; then the four chunk matmuls: y_pre and dx (which
 * feed the decay gradient) with fp32 operands, dC and dB with T operands */
template <typename T>
static mb_status bwd_matmuls(const SsdArgs<T>& a, const BwdWork& k, const void* dfinal_state,
                             const mb_ssd_grads* g, cudaStream_t st) {
    const int64_t PN = a.P * a.N;
    mb_status s = launch_cb<T>(a, k.cb, st);
    if (s == MB_OK) s = launch_chunk_state<T, float, false>(a, k.w, k.w.states, st);
    if (s == MB_OK)
        s = launch_state_pass<false>(k.w, k.w.states, a.h0, k.fs, a.Bsz, a.L, a.Q, a.NC, a.H, PN, st);
    if (s == MB_OK) s = bwd_adjoints(a, k, dfinal_state, g, st);
    if (s == MB_OK) {
        ScanOut<T> o = {k.w.states, (T*)g->dz, k.part_dcs, k.part_dD, nullptr, k.cb};
        s = launch_chunk_scan<T, float, ROLE_YPRE, true>(a, k.w, o, st);
    }
    if (s == MB_OK) s = bwd_dx_dc_db(a, k, g, st);
    return s;
}

/* v2's: states by state_mma, y_pre by scan_mma (hi + lo operands); hi, lo:
 * (B, NC, H, P, N) bf16 copies of the entering states */
template <int kN>
static mb_status bwd_matmuls_mma(const SsdArgs<__nv_bfloat16>& a, const BwdWork& k,
                                 __nv_bfloat16* hi, __nv_bfloat16* lo, const void* dfinal_state,
                                 const mb_ssd_grads* g, cudaStream_t st) {
    const int64_t PN = a.P * a.N;
    mb_status s = launch_cb<__nv_bfloat16>(a, k.cb, st);
    if (s == MB_OK) s = launch_state_mma(a, k.w, k.w.states, st);
    if (s == MB_OK)
        s = launch_state_pass<false>(k.w, k.w.states, a.h0, k.fs, a.Bsz, a.L, a.Q, a.NC, a.H, PN, st,
                                     PassOut{hi, lo, true});
    if (s == MB_OK) s = bwd_adjoints(a, k, dfinal_state, g, st);
    if (s == MB_OK) {
        const ScanMmaOut o = {hi, lo, k.cb, (__nv_bfloat16*)g->dz, k.part_dcs, k.part_dD};
        s = launch_scan_mma<kN, true>(a, k.w, o, st);
    }
    if (s == MB_OK) s = bwd_dx_dc_db(a, k, g, st);
    return s;
}

/* the gradients of dt, A, D, dt_bias (and B, C from the per-head partials
 * when per_head_dbc) from the matmuls' outputs; kpart: bwd v3's partial sums
 * of K (B, H, NC, ceil(P/64)), else NULL (K from the fp32 adj and states) */
template <typename T>
static mb_status bwd_reductions(const SsdArgs<T>& a, const BwdWork& k, const mb_ssd_grads* g,
                                cudaStream_t st, bool per_head_dbc = true,
                                const float* kpart = nullptr) {
    const int nos = (int)ceil_div(a.P, kTile);
    finalize_chunk_kernel<T><<<dim3((unsigned)a.NC, (unsigned)a.H, (unsigned)a.Bsz), 256, 0, st>>>(
        a, k.w, k.adj, k.fs, k.part_dcs, k.part_ddt, k.part_dD, kpart, nos, (T*)g->ddt, k.cdA,
        k.cdbias, k.cdD);
    MB_CUDA_CHECK(cudaGetLastError());
    head_reduce_kernel<<<(unsigned)a.H, 256, 0, st>>>(k.cdA, k.cdbias, k.cdD, a.Bsz, a.H, a.NC,
                                                      a.Dv != nullptr, (float*)g->dA, (float*)g->dD,
                                                      (float*)g->ddt_bias);
    MB_CUDA_CHECK(cudaGetLastError());
    if (!per_head_dbc) return MB_OK;
    const int64_t count = a.Bsz * a.L * a.G * a.N;
    group_reduce_kernel<T><<<(unsigned)ceil_div(count, 256), 256, 0, st>>>(
        k.dBh, k.dCh, (T*)g->dB, (T*)g->dC, a.Bsz * a.L, a.H, a.G, a.N);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

/* kMma: v2 (bf16 only), else v1 */
template <typename T, bool kMma>
static mb_status bwd_chunked(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* dy,
                             const void* dfinal_state, const mb_ssd_grads* g, const mb_exec* ex) {
    SsdArgs<T> a = make_args<T>(p, in);
    a.dy = (const T*)dy;
    BwdWork k;
    const size_t main_bytes = bwd_layout(a, nullptr, &k);
    /* v2: hi and lo bf16 copies of the entering states (B, NC, H, P, N) */
    const size_t copy_bytes = ((size_t)(a.Bsz * a.NC * a.H * a.P * a.N) * 2 + 255) / 256 * 256;
    const size_t bytes = main_bytes + (kMma ? 2 * copy_bytes : 0);
    void* base = nullptr;
    mb_status s = mb_device_alloc(&base, bytes, ex->stream);
    if (s != MB_OK) return s;
    bwd_layout(a, (char*)base, &k);
    cudaStream_t st = mb_stream(ex);
    if constexpr (kMma) {
        __nv_bfloat16* hi = (__nv_bfloat16*)((char*)base + main_bytes);
        __nv_bfloat16* lo = (__nv_bfloat16*)((char*)base + main_bytes + copy_bytes);
        if (a.N <= 64) s = bwd_matmuls_mma<64>(a, k, hi, lo, dfinal_state, g, st);
        else if (a.N == 128) s = bwd_matmuls_mma<128>(a, k, hi, lo, dfinal_state, g, st);
        else s = bwd_matmuls_mma<256>(a, k, hi, lo, dfinal_state, g, st);
    } else {
        s = bwd_matmuls(a, k, dfinal_state, g, st);
    }
    if (s == MB_OK) s = bwd_reductions(a, k, g, st);
    mb_device_free(base, bytes, ex->stream);
    return s;
}

/* v3's workspace beyond BwdWork: bf16 hi + lo copies of the entering states
 * and of the adjoints E (B, NC, H, P, N), ds hi + lo (B, L, H, P), M
 * (B, NC, G, Qa, Qa) fp32 and the K partials (B, H, NC, P/64) fp32 */
struct BwdV3Work {
    bf16 *hi, *lo, *e_hi, *e_lo, *ds_hi, *ds_lo;
    float *m, *kpart;
};

static size_t bwd_v3_layout(const SsdArgs<bf16>& a, char* base, BwdV3Work* v) {
    const int64_t SN = a.Bsz * a.NC * a.H * a.P * a.N, X = a.Bsz * a.L * a.H * a.P;
    const int64_t halves[6] = {SN, SN, SN, SN, X, X};
    bf16** dst[6] = {&v->hi, &v->lo, &v->e_hi, &v->e_lo, &v->ds_hi, &v->ds_lo};
    size_t off = 0;
    for (int i = 0; i < 6; i++) {
        if (base) *dst[i] = (bf16*)(base + off);
        off += ((size_t)halves[i] * sizeof(bf16) + 255) / 256 * 256;
    }
    if (base) v->m = (float*)(base + off);
    off += floats_bytes(cb_floats(a));
    if (base) v->kpart = (float*)(base + off);
    return off + floats_bytes(a.Bsz * a.H * a.NC * (a.P / kTile));
}

/* v3's chunk kernels, in dependency order (see the top of the file) */
template <int kN>
static mb_status bwd_v3_matmuls(const SsdArgs<bf16>& a, const BwdWork& k, const BwdV3Work& v,
                                const void* dfinal_state, const mb_ssd_grads* g, cudaStream_t st) {
    const int64_t PN = a.P * a.N;
    mb_status s = launch_cb<bf16>(a, k.cb, st);
    if (s == MB_OK) s = launch_state_mma(a, k.w, k.w.states, st);
    if (s == MB_OK)
        s = launch_state_pass<false>(k.w, k.w.states, a.h0, k.fs, a.Bsz, a.L, a.Q, a.NC, a.H, PN, st,
                                     PassOut{v.hi, v.lo, false}); /* fp32 copies: nobody reads them */
    if (s == MB_OK) {
        const ScanMmaOut o = {v.hi, v.lo, k.cb, (bf16*)g->dz, k.part_dcs, k.part_dD, v.ds_hi, v.ds_lo};
        s = launch_scan_mma<kN, true>(a, k.w, o, st);
    }
    if (s == MB_OK) s = launch_state_mma(a, k.w, k.adj, st, v.ds_hi, v.ds_lo);
    if (s == MB_OK)
        s = launch_state_pass<true>(k.w, k.adj, (const float*)dfinal_state, (float*)g->dinitial_state,
                                    a.Bsz, a.L, a.Q, a.NC, a.H, PN, st,
                                    PassOut{v.e_hi, v.e_lo, false}); /* dx reads E from the copies */
    if (s == MB_OK) {
        const DxMmaArgs o = {v.e_hi, v.e_lo, v.ds_hi, v.ds_lo, k.cb, (bf16*)g->dx, k.part_ddt,
                             v.hi, v.lo, k.fs, v.kpart};
        s = launch_dx_mma<kN>(a, k.w, o, st);
    }
    if (s == MB_OK) s = launch_dsx(a, k.w, v.ds_hi, v.m, st);
    if (s == MB_OK) {
        const DbcArgs o = {v.m, v.ds_hi, v.hi, v.e_hi, (bf16*)g->dB, (bf16*)g->dC};
        s = launch_dbc(a, k.w, o, st);
    }
    return s;
}

static mb_status bwd_v3(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* dy,
                        const void* dfinal_state, const mb_ssd_grads* g, const mb_exec* ex) {
    SsdArgs<bf16> a = make_args<bf16>(p, in);
    a.dy = (const bf16*)dy;
    BwdWork k;
    BwdV3Work v;
    const size_t main_bytes = bwd_layout(a, nullptr, &k, false);
    const size_t bytes = main_bytes + bwd_v3_layout(a, nullptr, &v);
    void* base = nullptr;
    mb_status s = mb_device_alloc(&base, bytes, ex->stream);
    if (s != MB_OK) return s;
    bwd_layout(a, (char*)base, &k, false);
    bwd_v3_layout(a, (char*)base + main_bytes, &v);
    cudaStream_t st = mb_stream(ex);
    if (a.N <= 64) s = bwd_v3_matmuls<64>(a, k, v, dfinal_state, g, st);
    else if (a.N == 128) s = bwd_v3_matmuls<128>(a, k, v, dfinal_state, g, st);
    else s = bwd_v3_matmuls<256>(a, k, v, dfinal_state, g, st);
    if (s == MB_OK) s = bwd_reductions(a, k, g, st, false, v.kpart);
    mb_device_free(base, bytes, ex->stream);
    return s;
}

} // namespace
} // namespace mbssd

using namespace mbssd;

/* v1: dy (B, L, H, P), dfinal_state (B, H, P, N) or NULL; every gradient of g overwritten */
extern "C" mb_status mb_ssd_bwd_cuda_v1(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                        const void* dy, const void* dfinal_state,
                                        const mb_ssd_grads* g, const mb_exec* ex) {
    if (p->headdim > 256 || p->chunk_size > kMaxChunk)
        return mb_fail(MB_ERR_NOT_IMPLEMENTED,
                       "mb_ssd_bwd_cuda v1: head dim %lld or chunk %lld beyond 256 / %d",
                       (long long)p->headdim, (long long)p->chunk_size, kMaxChunk);
    if (p->dtype == MB_DTYPE_BF16)
        return bwd_chunked<__nv_bfloat16, false>(p, in, dy, dfinal_state, g, ex);
    return bwd_chunked<float, false>(p, in, dy, dfinal_state, g, ex);
}

/* the layouts v2 and v3 take besides mma_fits: dy, dz (v3 also dx, dB, dC)
 * read and written as bf16 pairs */
static bool bwd_mma_fits(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* dy,
                         const mb_ssd_grads* g, bool v3) {
    auto pairs = [](const void* q) { return ((uintptr_t)q & 3) == 0; };
    return mma_fits(p, in) && pairs(dy) && pairs(g->dz) &&
           (!v3 || (pairs(g->dx) && pairs(g->dB) && pairs(g->dC)));
}

/* v2: v1 with the states and y_pre on mma.sync (bf16, mma_fits; else v1) */
extern "C" mb_status mb_ssd_bwd_cuda_v2(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                        const void* dy, const void* dfinal_state,
                                        const mb_ssd_grads* g, const mb_exec* ex) {
    if (!bwd_mma_fits(p, in, dy, g, false))
        return mb_ssd_bwd_cuda_v1(p, in, dy, dfinal_state, g, ex);
    return bwd_chunked<__nv_bfloat16, true>(p, in, dy, dfinal_state, g, ex);
}

/* v3: every chunk matmul on mma.sync, dB and dC summed over heads in-kernel
 * (bf16, mma_fits; else v1) */
extern "C" mb_status mb_ssd_bwd_cuda_v3(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                        const void* dy, const void* dfinal_state,
                                        const mb_ssd_grads* g, const mb_exec* ex) {
    if (!bwd_mma_fits(p, in, dy, g, true)) return mb_ssd_bwd_cuda_v1(p, in, dy, dfinal_state, g, ex);
    return bwd_v3(p, in, dy, dfinal_state, g, ex);
}
