/*
 * ssd_chunk.cuh -- the three kernels of the chunked SSD algorithm (described
 * in ssd_common.cuh) and their launchers, shared by the forward (fwd.cu) and
 * the backward (bwd.cu). Tensor cores through WMMA (see Mma in ssd_common.cuh);
 * every reduction has a fixed order, so results are bitwise reproducible.
 */
#ifndef MB_SSD_CHUNK_CUH
#define MB_SSD_CHUNK_CUH

#include "ssd_common.cuh"

namespace mbssd {
namespace {

// ----------------------------------------------------------------------------
// chunk-local cumsum of dt' A (one warp)

/* css[k] = sum_{r<=k} dt'_{t0+r} A_h, dts[k] = dt'_{t0+r}, k < Qc; also to
 * global when `store` (one block per (b, chunk, h) does it). */
template <typename T>
__device__ void chunk_cumsum(const SsdArgs<T>& a, const ChunkWork& w, int64_t b, int64_t h,
                             int64_t t0, int Qc, float* css, float* dts, bool store) {
    const int lane = threadIdx.x & 31;
    const float Ah = a.A[h], bias = a.bias ? a.bias[h] : 0.f;
    float carry = 0.f;
    for (int k00 = 0; k00 < Qc; k00 += 32 * kBatch) {
        float raw[kBatch]; /* dt of the next kBatch rounds, loaded together */
#pragma unroll
        for (int q = 0; q < kBatch; q++) {
            const int k = k00 + 32 * q + lane;
            raw[q] = k < Qc ? mb_to_float(a.dt[(b * a.L + t0 + k) * a.H + h]) : 0.f;
        }
#pragma unroll
        for (int q = 0; q < kBatch; q++) {
            if (k00 + 32 * q >= Qc) break; /* warp-uniform */
            const int k = k00 + 32 * q + lane;
            float dtv = 0.f;
            if (k < Qc) {
                dtv = raw[q] + bias;
                if (a.softplus) dtv = softplusf(dtv);
            }
            float v = dtv * Ah;
#pragma unroll
            for (int off = 1; off < 32; off <<= 1) {
                const float u = __shfl_up_sync(0xffffffffu, v, off);
                if (lane >= off) v += u;
            }
            v += carry;
            carry = __shfl_sync(0xffffffffu, v, 31);
            if (k < Qc) {
                css[k] = v, dts[k] = dtv;
                if (store) {
                    const int64_t g = (b * a.H + h) * a.L + t0 + k;
                    w.cs[g] = v, w.dtp[g] = dtv;
                }
            }
        }
    }
}

/* the chunk's cs (times scale: log2(e) for exp2) and dt' from the workspace */
template <typename T>
__device__ void load_cumsum(const SsdArgs<T>& a, const ChunkWork& w, int64_t b, int64_t h,
                            int64_t t0, int Qc, int Qa, float* css, float* dts, float scale = 1.f) {
    for (int k = threadIdx.x; k < Qa; k += blockDim.x) {
        const int64_t g = (b * a.H + h) * a.L + t0 + k;
        css[k] = k < Qc ? w.cs[g] * scale : 0.f;
        dts[k] = k < Qc ? w.dtp[g] : 0.f;
    }
}

// ----------------------------------------------------------------------------
// chunk states: S[p, n] = sum_j w_j U_j[p] V_j[n]  (64 x 64 slice per block)

template <typename S>
static size_t chunk_state_smem(int64_t Q) {
    const int64_t Qa = ceil_div(Q, kTile) * kTile;
    return 2 * carve_bytes<float>(Qa) + carve_bytes<float>(kTile) +
           3 * carve_bytes<S>(kTile * (kTile + kPad)) + carve_bytes<float>(kWarps * 256);
}

/* grid (NC, H * ceil(P/64) * ceil(N/64), B). kRev = false: U = x, V = B,
 * w_j = exp(cs_end - cs_j) dt'_j, cumsum computed here; kRev: U = ds, V = C,
 * w_j = exp(cs_j), cumsum read from w. out: (B, NC, H, P, N). S: the operand
 * type of the products (bf16: w_j U_j as hi + lo, two products against the
 * exact bf16 V, ~16 bits; float: 3xTF32). */
template <typename T, typename S, bool kRev>
__global__ void __launch_bounds__(kThreads) chunk_state_kernel(const SsdArgs<T> a, const ChunkWork w,
                                                               float* __restrict__ out) {
    constexpr bool kSplit = std::is_same<S, __nv_bfloat16>::value;
    extern __shared__ __align__(128) unsigned char smem[];
    constexpr int ld = kTile + kPad;
    const int64_t c = blockIdx.x, b = blockIdx.z;
    const int nns = (int)ceil_div(a.N, kTile), nps = (int)ceil_div(a.P, kTile);
    const int64_t h = blockIdx.y / (nps * nns);
    const int rest = (int)(blockIdx.y % (nps * nns));
    const int64_t p0 = (int64_t)(rest / nns) * kTile, n0 = (int64_t)(rest % nns) * kTile;
    const int64_t t0 = c * a.Q;
    const int Qc = (int)min(a.Q, a.L - t0), Qa = (int)ceil_div(a.Q, kTile) * kTile;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    unsigned char* sp = smem;
    float* css = (float*)sp; sp += carve_bytes<float>(Qa);
    float* dts = (float*)sp; sp += carve_bytes<float>(Qa);
    float* wj = (float*)sp; sp += carve_bytes<float>(kTile);
    S* Us = (S*)sp; sp += carve_bytes<S>(kTile * ld); /* [j][p] = w_j U_j[p0 + p] */
    S* Ul = (S*)sp; sp += carve_bytes<S>(kTile * ld); /* its rounding error (kSplit) */
    S* Vs = (S*)sp; sp += carve_bytes<S>(kTile * ld); /* [j][n] = V_j[n0 + n] */
    float* stage = (float*)sp + warp * 256;          /* [16][16] per warp */

    if (kRev) load_cumsum(a, w, b, h, t0, Qc, Qa, css, dts);
    else if (warp == 0) chunk_cumsum(a, w, b, h, t0, Qc, css, dts, rest == 0);
    __syncthreads();
    const float cs_end = css[Qc - 1];

    typename Mma<S>::Acc acc[4];
#pragma unroll
    for (int nt = 0; nt < 4; nt++) wmma::fill_fragment(acc[nt], 0.f);
    for (int j0 = 0; j0 < Qc; j0 += kTile) {
        const int rows = min(kTile, Qc - j0);
        __syncthreads();
        if (threadIdx.x < kTile) {
            const int j = j0 + threadIdx.x;
            wj[threadIdx.x] = threadIdx.x >= rows ? 0.f
                              : kRev ? expf(css[j]) : expf(cs_end - css[j]) * dts[j];
        }
        __syncthreads();
        load_rows(Us, ld, kTile, kTile, a, kRev ? SRC_DS : SRC_X, b, h, t0 + j0, rows, p0, wj,
                  kSplit ? Ul : (S*)nullptr);
        load_rows(Vs, ld, kTile, kTile, a, kRev ? SRC_C : SRC_B, b, h, t0 + j0, rows, n0,
                  (const float*)nullptr);
        __syncthreads();
        // acc[p strip of this warp][n tile] += U^T (p x j) V (j x n)
#pragma unroll
        for (int k = 0; k < kTile; k += 16)
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                Mma<S>::template step<wmma::col_major, wmma::row_major>(
                    acc[nt], Us + k * ld + 16 * warp, ld, Vs + k * ld + 16 * nt, ld);
                if (kSplit)
                    Mma<S>::template step<wmma::col_major, wmma::row_major>(
                        acc[nt], Ul + k * ld + 16 * warp, ld, Vs + k * ld + 16 * nt, ld);
            }
    }
    const int64_t base = ((b * a.NC + c) * a.H + h) * a.P * a.N;
#pragma unroll
    for (int nt = 0; nt < 4; nt++) {
        wmma::store_matrix_sync(stage, acc[nt], 16, wmma::mem_row_major);
        __syncwarp();
        for (int e = lane; e < 256; e += 32) {
            const int64_t p = p0 + 16 * warp + e / 16, n = n0 + 16 * nt + e % 16;
            if (p < a.P && n < a.N) out[base + p * a.N + n] = stage[e];
        }
        __syncwarp();
    }
}

template <typename T, typename S, bool kRev>
static mb_status launch_chunk_state(const SsdArgs<T>& a, const ChunkWork& w, float* out,
                                    cudaStream_t st) {
    const size_t smem = chunk_state_smem<S>(a.Q);
    MB_CUDA_CHECK(cudaFuncSetAttribute(chunk_state_kernel<T, S, kRev>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((unsigned)a.NC, (unsigned)(a.H * ceil_div(a.P, kTile) * ceil_div(a.N, kTile)),
              (unsigned)a.Bsz);
    chunk_state_kernel<T, S, kRev><<<grid, kThreads, smem, st>>>(a, w, out);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

// ----------------------------------------------------------------------------
// state passing across chunks

/* what a state pass writes besides buf and last (all NULL / true: buf only) */
struct PassOut {
    __nv_bfloat16* copy;    /* NULL, or (B, NC, H, P, N) bf16 copies of the new values */
    __nv_bfloat16* copy_lo; /* with copy: their rounding errors (hi + lo, ~16 bits) */
    bool keep_fp32;         /* with copy_lo: buf gets the fp32 values too */
};

/* grid (ceil(P N / 256), H, B). Forward (kRev false): s = init or 0; for c up:
 * buf[c] <- s, s = exp(cs_end(c)) s + (old buf[c]); last <- s. Reverse: the
 * same for c down. buf: (B, NC, H, P, N); init, last: (B, H, P, N) or NULL.
 * With o.copy the new values go to the copy instead of buf (whose chunk
 * states are then only read), with o.copy_lo as hi + lo, and to buf as well
 * when o.keep_fp32. The loads of kAhead chunks are issued together (the chain
 * is latency-bound). */
template <bool kRev>
__global__ void __launch_bounds__(256) state_pass_kernel(const float* __restrict__ cs, float* buf,
                                                         const float* __restrict__ init,
                                                         float* __restrict__ last, const PassOut o,
                                                         int64_t L, int64_t Q, int64_t NC, int64_t H,
                                                         int64_t PN) {
    constexpr int kAhead = 8;
    const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= PN) return;
    const int64_t h = blockIdx.y, b = blockIdx.z;
    const float* csh = cs + (b * H + h) * L; /* (L) */
    auto at = [&](int64_t c) { return ((b * NC + c) * H + h) * PN + e; };
    float s = init ? init[(b * H + h) * PN + e] : 0.f;
    for (int64_t k0 = 0; k0 < NC; k0 += kAhead) {
        float cur[kAhead], decay[kAhead];
#pragma unroll
        for (int u = 0; u < kAhead; u++) {
            const int64_t k = k0 + u, c = kRev ? NC - 1 - k : k;
            cur[u] = decay[u] = 0.f;
            if (k < NC) cur[u] = buf[at(c)], decay[u] = csh[min(c * Q + Q, L) - 1];
        }
#pragma unroll
        for (int u = 0; u < kAhead; u++) {
            const int64_t k = k0 + u, c = kRev ? NC - 1 - k : k;
            if (k >= NC) break;
            if (o.copy) {
                const __nv_bfloat16 hi = __float2bfloat16(s);
                o.copy[at(c)] = hi;
                if (o.copy_lo) o.copy_lo[at(c)] = __float2bfloat16(s - __bfloat162float(hi));
            }
            if (!o.copy || (o.copy_lo && o.keep_fp32)) buf[at(c)] = s;
            s = fmaf(expf(decay[u]), s, cur[u]);
        }
    }
    if (last) last[(b * H + h) * PN + e] = s;
}

template <bool kRev>
static mb_status launch_state_pass(const ChunkWork& w, float* buf, const float* init, float* last,
                                   int64_t Bsz, int64_t L, int64_t Q, int64_t NC, int64_t H,
                                   int64_t PN, cudaStream_t st, const PassOut& o = PassOut{nullptr, nullptr, true}) {
    dim3 grid((unsigned)ceil_div(PN, 256), (unsigned)H, (unsigned)Bsz);
    state_pass_kernel<kRev><<<grid, 256, 0, st>>>(w.cs, buf, init, last, o, L, Q, NC, H, PN);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

// ----------------------------------------------------------------------------
// one warp's scores: acc (16 x 64) = U (16 rows, ld) . V (64 rows, ld)^T over Kp

template <typename S>
__device__ __forceinline__ void row_scores(typename Mma<S>::Acc (&acc)[4], const S* U, const S* V,
                                           int ld, int Kp) {
#pragma unroll
    for (int nt = 0; nt < 4; nt++) wmma::fill_fragment(acc[nt], 0.f);
    for (int k = 0; k < Kp; k += 16)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
            Mma<S>::template step<wmma::row_major, wmma::col_major>(acc[nt], U + k, ld,
                                                                     V + 16 * nt * ld + k, ld);
}

// ----------------------------------------------------------------------------
// chunk scan: the quadratic intra-chunk part plus the state term

/* What a chunk_scan_kernel computes (U rows i, V and W rows j, S the state):
 *   ROLE_Y     forward y:  U C, V B, W x,  causal f = exp(cs_i - cs_j) dt'_j,
 *              S = state entering the chunk, scale exp(cs_i); y = (out + D x) silu(z)
 *   ROLE_YPRE  backward: the same out; dz, and per-row partials ds.out, ds.x
 *   ROLE_DX    U B, V C, W ds, anticausal f = exp(cs_j - cs_i), S = E (adjoint at
 *              the chunk's end), scale exp(cs_end - cs_i): out = dh_i[p, :] . B_i;
 *              dx = D ds + dt'_i out, per-row partial x.out
 *   ROLE_DC    U ds, V x, W B, causal, S = state^T: out = dC_i of this head
 *   ROLE_DB    U x, V ds, W C, anticausal, S = E^T: dB_i of this head = dt'_i out */
enum Role { ROLE_Y, ROLE_YPRE, ROLE_DX, ROLE_DC, ROLE_DB };

template <int R> struct RoleOf;
template <> struct RoleOf<ROLE_Y> { static constexpr Src U = SRC_C, V = SRC_B, W = SRC_X; static constexpr bool causal = true; };
template <> struct RoleOf<ROLE_YPRE> { static constexpr Src U = SRC_C, V = SRC_B, W = SRC_X; static constexpr bool causal = true; };
template <> struct RoleOf<ROLE_DX> { static constexpr Src U = SRC_B, V = SRC_C, W = SRC_DS; static constexpr bool causal = false; };
template <> struct RoleOf<ROLE_DC> { static constexpr Src U = SRC_DS, V = SRC_X, W = SRC_B; static constexpr bool causal = true; };
template <> struct RoleOf<ROLE_DB> { static constexpr Src U = SRC_X, V = SRC_DS, W = SRC_C; static constexpr bool causal = false; };

/* where a chunk scan writes */
template <typename T>
struct ScanOut {
    const float* state; /* (B, NC, H, P, N): entering states (causal) or adjoints E (anticausal) */
    T* out;             /* ROLE_Y: y; ROLE_YPRE: dz (or NULL); ROLE_DX: dx.  (B, L, H, P) */
    float* part0;       /* (ceil(P/64), B, H, L) YPRE: ds.out; DX: x.out */
    float* part1;       /* (ceil(P/64), B, H, L) YPRE: ds.x */
    float* grp;         /* (B, L, H, N) DC, DB: per-head dC, dB */
    const float* cb;    /* (B, NC, G, Qa, Qa) C_i . B_j (tiles j <= i), or NULL: computed here */
};

template <typename S>
static size_t chunk_scan_smem(int64_t Q, int K) {
    const int64_t Qa = ceil_div(Q, kTile) * kTile;
    const int ldk = round16(K) + kPad;
    return 2 * carve_bytes<float>(Qa) + 2 * carve_bytes<S>(kTile * ldk) +
           carve_bytes<S>(kTile * (kTile + kPad)) +
           kWarps * (carve_bytes<float>(16 * (kTile + 4)) + carve_bytes<S>(16 * (kTile + kPad)));
}

/* The epilogue of a warp's 16 rows: F (16 x ldf) = out, columns o0 .. o0 + 63;
 * row r is token t_first + r, valid for r < rows_valid; dtw[r] its dt'. Lane
 * element q (of 16 per half) is row 8 half + q / 2, column lane + 32 (q % 2);
 * each half issues its global loads before any use. */
template <typename T, int R>
__device__ void scan_epilogue(const SsdArgs<T>& a, const ScanOut<T>& o, const float* F, int ldf,
                              int64_t b, int64_t h, int64_t t_first, int rows_valid, int64_t o0,
                              int os, const float* dtw) {
    constexpr bool kRows = R == ROLE_YPRE || R == ROLE_DX; /* per-row partial sums */
    constexpr bool kX = R == ROLE_Y || kRows, kG = kRows;
    const int lane = threadIdx.x & 31;
    const int64_t O = src_len(RoleOf<R>::W, a.P, a.N);
    const float Dh = a.Dv ? a.Dv[h] : 0.f;
    for (int half = 0; half < 2; half++) {
        float xv[16], gv[16], zv[16];
#pragma unroll
        for (int q = 0; q < 16; q++) {
            const int r = 8 * half + q / 2;
            const int64_t oc = o0 + lane + 32 * (q & 1);
            const bool ok = r < rows_valid && oc < O;
            const int64_t ix = ((b * a.L + t_first + r) * a.H + h) * a.P + oc; /* (b, t, h, p) */
            xv[q] = (kX && ok) ? mb_to_float(a.x[ix]) : 0.f;
            gv[q] = (kG && ok) ? mb_to_float(a.dy[ix]) : 0.f;
            zv[q] = (kX && ok && a.z) ? mb_to_float(a.z[ix]) : 0.f;
        }
        float part0[8], part1[8];
#pragma unroll
        for (int q = 0; q < 16; q++) {
            const int rr = q / 2, r = 8 * half + rr;
            const int64_t oc = o0 + lane + 32 * (q & 1);
            if (q % 2 == 0) part0[rr] = part1[rr] = 0.f;
            if (r >= rows_valid || oc >= O) continue;
            const float v = F[r * ldf + lane + 32 * (q & 1)];
            const int64_t t = t_first + r;
            const int64_t ix = ((b * a.L + t) * a.H + h) * a.P + oc;
            if (R == ROLE_Y) {
                float y = fmaf(Dh, xv[q], v);
                if (a.z) y *= siluf(zv[q]);
                o.out[ix] = mb_from_float<T>(y);
            } else if (kRows) {
                float ds = gv[q], sg = 0.f;
                if (a.z) sg = sigmoidf_(zv[q]), ds = gv[q] * zv[q] * sg;
                if (R == ROLE_YPRE) {
                    // dz = dy y_pre silu'(z),  silu' = sig (1 + z (1 - sig))
                    if (a.z)
                        o.out[ix] = mb_from_float<T>(gv[q] * fmaf(Dh, xv[q], v) * sg *
                                                     (1.f + zv[q] * (1.f - sg)));
                    part0[rr] = fmaf(ds, v, part0[rr]);
                    part1[rr] = fmaf(ds, xv[q], part1[rr]);
                } else {
                    o.out[ix] = mb_from_float<T>(fmaf(Dh, ds, dtw[r] * v));
                    part0[rr] = fmaf(xv[q], v, part0[rr]);
                }
            } else {
                o.grp[((b * a.L + t) * a.H + h) * a.N + oc] = R == ROLE_DB ? dtw[r] * v : v;
            }
        }
        if (kRows) {
#pragma unroll
            for (int rr = 0; rr < 8; rr++) {
                float p0 = part0[rr], p1 = part1[rr];
#pragma unroll
                for (int off = 16; off > 0; off >>= 1) {
                    p0 += __shfl_xor_sync(0xffffffffu, p0, off);
                    p1 += __shfl_xor_sync(0xffffffffu, p1, off);
                }
                const int r = 8 * half + rr;
                if (lane == 0 && r < rows_valid) {
                    const int64_t ip = ((os * a.Bsz + b) * a.H + h) * a.L + t_first + r;
                    o.part0[ip] = p0;
                    if (R == ROLE_YPRE) o.part1[ip] = p1;
                }
            }
        }
    }
}

/* grid (NC * ceil(Q/64), H * ceil(O/64), B); warp w owns rows i0 + 16 w .. +15.
 * S: operand type of the products (bf16, or float = 3xTF32). kCB: the scores
 * U_i . V_j are C_i . B_j (ROLE_Y, YPRE) or C_j . B_i (ROLE_DX), read from o.cb. */
template <typename T, typename S, int R, bool kCB>
__global__ void __launch_bounds__(kThreads) chunk_scan_kernel(const SsdArgs<T> a, const ChunkWork w,
                                                              const ScanOut<T> o) {
    using Ro = RoleOf<R>;
    extern __shared__ __align__(128) unsigned char smem[];
    constexpr int ldw = kTile + kPad, ldf = kTile + 4;
    const int64_t K = src_len(Ro::U, a.P, a.N), O = src_len(Ro::W, a.P, a.N);
    const int Kp = round16(K), ldk = Kp + kPad;
    const int nrt = (int)ceil_div(a.Q, kTile), nos = (int)ceil_div(O, kTile);
    const int64_t c = blockIdx.x / nrt, h = blockIdx.y / nos, b = blockIdx.z;
    const int rt = blockIdx.x % nrt, os = blockIdx.y % nos;
    const int64_t t0 = c * a.Q, o0 = (int64_t)os * kTile;
    const int Qc = (int)min(a.Q, a.L - t0), Qa = nrt * kTile, i0 = rt * kTile;
    if (i0 >= Qc) return;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    unsigned char* sp = smem;
    float* css = (float*)sp; sp += carve_bytes<float>(Qa);
    float* dts = (float*)sp; sp += carve_bytes<float>(Qa);
    S* Us = (S*)sp; sp += carve_bytes<S>(kTile * ldk); /* [i][k] rows i0.. */
    S* Vs = (S*)sp; sp += carve_bytes<S>(kTile * ldk); /* [j][k], later the state [o][k] */
    S* Ws = (S*)sp; sp += carve_bytes<S>(kTile * ldw); /* [j][o] */
    sp += warp * (carve_bytes<float>(16 * ldf) + carve_bytes<S>(16 * ldw));
    float* F = (float*)sp; sp += carve_bytes<float>(16 * ldf); /* [16][ldf] scores, then out */
    S* Sb = (S*)sp;                                            /* [16][ldw] masked scores */
    const float* cbc = kCB ? o.cb + ((b * a.NC + c) * a.G + h / a.hpg) * Qa * Qa : nullptr;
    float* scratch = (float*)Sb;                               /* [16][16] state term */

    load_cumsum(a, w, b, h, t0, Qc, Qa, css, dts);
    load_rows(Us, ldk, kTile, Kp, a, Ro::U, b, h, t0 + i0, min(kTile, Qc - i0), 0,
              (const float*)nullptr);

    typename Mma<S>::Acc yacc[4], sacc[4];
#pragma unroll
    for (int ot = 0; ot < 4; ot++) wmma::fill_fragment(yacc[ot], 0.f);
    const int jt_first = Ro::causal ? 0 : rt, jt_last = Ro::causal ? rt : (Qc - 1) / kTile;
    for (int jt = jt_first; jt <= jt_last; jt++) {
        const int j0 = jt * kTile;
        __syncthreads();
        if (!kCB)
            load_rows(Vs, ldk, kTile, Kp, a, Ro::V, b, h, t0 + j0, min(kTile, Qc - j0), 0,
                      (const float*)nullptr);
        load_rows(Ws, ldw, kTile, kTile, a, Ro::W, b, h, t0 + j0, min(kTile, Qc - j0), o0,
                  (const float*)nullptr);
        __syncthreads();
        if (!kCB) { // scores (16 x 64) = U_i . V_j
            row_scores<S>(sacc, Us + 16 * warp * ldk, Vs, ldk, Kp);
#pragma unroll
            for (int nt = 0; nt < 4; nt++)
                wmma::store_matrix_sync(F + 16 * nt, sacc[nt], ldf, wmma::mem_row_major);
            __syncwarp();
        }
        // masked, decayed scores; lane element q: row q / 2, column lane + 32 (q % 2)
        for (int half = 0; half < 2; half++) {
            float sc[16];
#pragma unroll
            for (int q = 0; q < 16; q++) {
                const int r = 8 * half + q / 2, cc = lane + 32 * (q & 1);
                const int i = i0 + 16 * warp + r, j = j0 + cc;
                const bool ok = i < Qc && j < Qc && (Ro::causal ? j <= i : j >= i);
                sc[q] = !ok ? 0.f
                        : !kCB ? F[r * ldf + cc]
                        : Ro::causal ? cbc[(int64_t)i * Qa + j] : cbc[(int64_t)j * Qa + i];
            }
#pragma unroll
            for (int q = 0; q < 16; q++) {
                const int r = 8 * half + q / 2, cc = lane + 32 * (q & 1);
                const int i = i0 + 16 * warp + r, j = j0 + cc;
                const bool ok = i < Qc && j < Qc && (Ro::causal ? j <= i : j >= i);
                const float v = !ok ? 0.f
                                : sc[q] * (Ro::causal ? expf(css[i] - css[j]) * dts[j]
                                                      : expf(css[j] - css[i]));
                Sb[r * ldw + cc] = mb_from_float<S>(v);
            }
        }
        __syncwarp();
        // out (16 x 64) += scores (16 x 64) W_j (64 x 64)
#pragma unroll
        for (int k = 0; k < kTile; k += 16)
#pragma unroll
            for (int ot = 0; ot < 4; ot++)
                Mma<S>::template step<wmma::row_major, wmma::row_major>(yacc[ot], Sb + k, ldw,
                                                                         Ws + k * ldw + 16 * ot, ldw);
        __syncwarp();
    }
#pragma unroll
    for (int ot = 0; ot < 4; ot++) wmma::store_matrix_sync(F + 16 * ot, yacc[ot], ldf, wmma::mem_row_major);

    // the state term: out[i, o] += scale(i) U_i . S[o, :]
    __syncthreads();
    {
        const bool transposed = R == ROLE_DC || R == ROLE_DB; /* S[o][k] = state[k][o] */
        const float* st = o.state + ((b * a.NC + c) * a.H + h) * a.P * a.N;
        const bool vec4 = !transposed && a.N % 4 == 0;
        for (int e0 = threadIdx.x; vec4 && e0 < kTile * Kp / 4; e0 += blockDim.x * kBatch) {
            float4 v[kBatch]; /* 4 consecutive k of row oo */
#pragma unroll
            for (int u = 0; u < kBatch; u++) {
                const int e = e0 + u * blockDim.x, oo = e / (Kp / 4), k = (e % (Kp / 4)) * 4;
                v[u] = make_float4(0.f, 0.f, 0.f, 0.f);
                if (e < kTile * Kp / 4 && o0 + oo < O && k < K)
                    v[u] = *reinterpret_cast<const float4*>(st + (o0 + oo) * a.N + k);
            }
#pragma unroll
            for (int u = 0; u < kBatch; u++) {
                const int e = e0 + u * blockDim.x, oo = e / (Kp / 4), k = (e % (Kp / 4)) * 4;
                if (e >= kTile * Kp / 4) continue;
                S* d = Vs + oo * ldk + k;
                d[0] = mb_from_float<S>(v[u].x), d[1] = mb_from_float<S>(v[u].y);
                d[2] = mb_from_float<S>(v[u].z), d[3] = mb_from_float<S>(v[u].w);
            }
        }
        for (int e0 = threadIdx.x; !vec4 && e0 < kTile * Kp; e0 += blockDim.x * kBatch) {
            float v[kBatch];
#pragma unroll
            for (int u = 0; u < kBatch; u++) {
                const int e = e0 + u * blockDim.x;
                const int oo = transposed ? e % kTile : e / Kp, k = transposed ? e / kTile : e % Kp;
                v[u] = 0.f;
                if (e < kTile * Kp && o0 + oo < O && k < K)
                    v[u] = transposed ? st[k * a.N + o0 + oo] : st[(o0 + oo) * a.N + k];
            }
#pragma unroll
            for (int u = 0; u < kBatch; u++) {
                const int e = e0 + u * blockDim.x;
                const int oo = transposed ? e % kTile : e / Kp, k = transposed ? e / kTile : e % Kp;
                if (e < kTile * Kp) Vs[oo * ldk + k] = mb_from_float<S>(v[u]);
            }
        }
    }
    __syncthreads();
#pragma unroll
    for (int ot = 0; ot < 4; ot++) {
        wmma::fill_fragment(sacc[0], 0.f);
        for (int k = 0; k < Kp; k += 16)
            Mma<S>::template step<wmma::row_major, wmma::col_major>(
                sacc[0], Us + 16 * warp * ldk + k, ldk, Vs + 16 * ot * ldk + k, ldk);
        wmma::store_matrix_sync(scratch, sacc[0], 16, wmma::mem_row_major);
        __syncwarp();
        for (int e = lane; e < 256; e += 32) {
            const int r = e / 16, i = i0 + 16 * warp + r;
            if (i >= Qc) continue;
            const float sc = Ro::causal ? expf(css[i]) : expf(css[Qc - 1] - css[i]);
            F[r * ldf + 16 * ot + e % 16] += sc * scratch[e];
        }
        __syncwarp();
    }
    scan_epilogue<T, R>(a, o, F, ldf, b, h, t0 + i0 + 16 * warp, min(16, Qc - i0 - 16 * warp), o0,
                        os, dts + i0 + 16 * warp);
}

template <typename T, typename S, int R, bool kCB>
static mb_status launch_chunk_scan(const SsdArgs<T>& a, const ChunkWork& w, const ScanOut<T>& o,
                                   cudaStream_t st) {
    const int64_t K = src_len(RoleOf<R>::U, a.P, a.N), O = src_len(RoleOf<R>::W, a.P, a.N);
    const size_t smem = chunk_scan_smem<S>(a.Q, (int)K);
    MB_CUDA_CHECK(cudaFuncSetAttribute(chunk_scan_kernel<T, S, R, kCB>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((unsigned)(a.NC * ceil_div(a.Q, kTile)), (unsigned)(a.H * ceil_div(O, kTile)),
              (unsigned)a.Bsz);
    chunk_scan_kernel<T, S, R, kCB><<<grid, kThreads, smem, st>>>(a, w, o);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

// ----------------------------------------------------------------------------
// C B^T of each chunk and group, once for all the heads of the group

/* grid (NC * T(T+1)/2, G, B) with T = ceil(Q/64) tiles: one block per tile pair
 * (ti, tj), tj <= ti: cb[i][j] = C_i . B_j (chunk-local i, j; rows past the
 * chunk are 0). cb: (B, NC, G, Qa, Qa) fp32, Qa = 64 T. bf16 operands are exact
 * and the sums fp32; fp32 operands use 3xTF32. */
template <typename T>
__global__ void __launch_bounds__(kThreads) cb_kernel(const SsdArgs<T> a, float* __restrict__ cb) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int nrt = (int)ceil_div(a.Q, kTile), Qa = nrt * kTile;
    const int Kp = round16(a.N), ldk = Kp + kPad;
    const int64_t c = blockIdx.x / (nrt * (nrt + 1) / 2), g = blockIdx.y, b = blockIdx.z;
    int pair = blockIdx.x % (nrt * (nrt + 1) / 2), ti = 0;
    while (pair > ti) pair -= ++ti; /* pair = ti (ti + 1) / 2 + tj */
    const int tj = pair;
    const int64_t t0 = c * a.Q;
    const int Qc = (int)min(a.Q, a.L - t0), warp = threadIdx.x >> 5;
    T* Cs = (T*)smem;
    T* Bs = (T*)(smem + carve_bytes<T>(kTile * ldk));
    const int64_t h = g * a.hpg; /* any head of the group: B, C are per group */
    float* out = cb + ((b * a.NC + c) * a.G + g) * Qa * Qa + (int64_t)(ti * kTile + 16 * warp) * Qa + tj * kTile;
    if (ti * kTile >= Qc) { /* a tile past a short last chunk: zeros */
        for (int e = threadIdx.x & 31; e < 16 * kTile; e += 32) out[(e / kTile) * (int64_t)Qa + e % kTile] = 0.f;
        return;
    }
    load_rows(Cs, ldk, kTile, Kp, a, SRC_C, b, h, t0 + ti * kTile, min(kTile, Qc - ti * kTile), 0,
              (const float*)nullptr);
    load_rows(Bs, ldk, kTile, Kp, a, SRC_B, b, h, t0 + tj * kTile, min(kTile, Qc - tj * kTile), 0,
              (const float*)nullptr);
    __syncthreads();
    typename Mma<T>::Acc acc[4];
    row_scores<T>(acc, Cs + 16 * warp * ldk, Bs, ldk, Kp);
#pragma unroll
    for (int nt = 0; nt < 4; nt++)
        wmma::store_matrix_sync(out + 16 * nt, acc[nt], Qa, wmma::mem_row_major);
}

template <typename T>
static mb_status launch_cb(const SsdArgs<T>& a, float* cb, cudaStream_t st) {
    const int nrt = (int)ceil_div(a.Q, kTile);
    const size_t smem = 2 * carve_bytes<T>(kTile * (round16(a.N) + kPad));
    MB_CUDA_CHECK(cudaFuncSetAttribute(cb_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)smem));
    dim3 grid((unsigned)(a.NC * nrt * (nrt + 1) / 2), (unsigned)a.G, (unsigned)a.Bsz);
    cb_kernel<T><<<grid, kThreads, smem, st>>>(a, cb);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

/* floats of the cb buffer */
template <typename T>
static int64_t cb_floats(const SsdArgs<T>& a) {
    const int64_t Qa = ceil_div(a.Q, kTile) * kTile;
    return a.Bsz * a.NC * a.G * Qa * Qa;
}

// ----------------------------------------------------------------------------
// workspace

static size_t floats_bytes(int64_t n) { return ((size_t)n * sizeof(float) + 255) / 256 * 256; }

} // namespace
} // namespace mbssd

#endif /* MB_SSD_CHUNK_CUH */
