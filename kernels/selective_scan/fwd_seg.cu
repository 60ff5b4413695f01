/*
 * fwd_seg.cu -- selective-scan forward v10-v15: the recurrence walked step by
 * step in registers, the sequence split into time segments.
 *
 * Each thread owns 8 states (n = 8j .. 8j+7) of one channel (b, d) over one
 * time segment; LPC (a power of two >= ceil(N / 8)) neighbouring lanes share a
 * channel. Per step and state: a = exp2(dt' A log2e), h = a h + dt' u B,
 * y += C h. No scans and no barriers: a thread has 8 independent recurrences in
 * flight, and each step costs about one exp2 per state (the special-function
 * unit's rate is the floor). The LPC lanes of a channel split softplus(delta +
 * bias) between them and sum their parts of y with shuffles (fixed order).
 *
 * Two launches when the sequence has S > 1 segments:
 *   1. segments 0 .. S-2 from the zero state: their end states h_loc (B, D, S, N)
 *      and their sums of dt' (B, D, S) to the workspace, no y; except that where
 *      launch 2 would need more than one wave of blocks, segment 0 is walked here
 *      once, with y (first_replay = 1);
 *   2. every other segment from its true start state, writing y (the last one the
 *      final state): segment 0 from zero, segment s from the fold
 *      h = exp2(A log2e sum_dt'(r)) h + h_loc(r) over r < s.
 * Segments 1 .. S-2 (and, in one wave, segment 0) are walked twice, once without y: S
 * trades parallelism for exp2 work. (Until 2026-11-27 launch 1 always walked segment 0
 * with y and also segment S-1, whose end state nothing reads: at L 2K, where each launch
 * is one wave, launch 1 took as long as a y walk.)
 * S is chosen so that about kTargetThreads threads run: v10 64K, v11 32K.
 * v12-v14 stage the block's inputs in shared memory (below) for 64K, 128K,
 * 256K threads; v15 is v14 from L 8192 at N <= 16, else v7; v16 picks v7, v12, v13
 * or v14 by N and L; v17 is v14 with B, C converted to fp32 once per stage; v18 is v16
 * with v17 for v14 at N <= 16; v19 takes v17 at every N <= 64 from L 2048; v20 (the
 * default) takes, for bf16 from L 512, v17 at N <= 64 and v12 above.
 * Segment lengths are whole 16-byte runs (8 bf16 or 4 fp32 steps).
 *
 * Shapes: u, delta, z, y (B, D, L); A (D, N) fp32; B, C (B, G, N, L);
 * D, delta_bias (D) fp32; final state (B, D, N) fp32.
 */
#include "mma_sm80.cuh" /* cp.async */
#include "scan_common.cuh"
#include "selective_scan.h"

using namespace mbscan;
using mbmma::cp_async16;
using mbmma::cp_async_commit;
using mbmma::cp_async_wait;
using mbmma::smem_addr;

namespace {

constexpr int kThreads = 128;
constexpr int kStates = 8; /* states per thread */

/* FwdArgs and the segment split with its workspace. */
template <typename T>
struct SegArgs : FwdArgs<T> {
    float* h_loc;   /* (B, D, S, N) workspace: segment end states from the zero state */
    float* sum_dt;  /* (B, D, S) workspace: sum of dt' over each segment */
    int64_t S, seg; /* segments, steps per segment (a multiple of the run) */
    float* cstates; /* (B, D, nch, N): the training pair's chunk start states, or NULL */
    int64_t nch;    /* ceil(L / MB_SCAN_CHUNK) */
    int64_t first_replay; /* 1: launch 1 walks segment 0 with y, launch 2 segments 1 ..; else 0 */
};
/* Where a thread is: channel (b, d), its state group j, its lane in the channel. */
struct SegLane {
    int64_t b, d;
    int j, lic;
    bool live; /* d < D (dead lanes compute on channel D-1 and store nothing) */
};

template <int LPC>
static __device__ __forceinline__ SegLane seg_lane(int64_t D) {
    SegLane w;
    const int64_t ch = (int64_t)blockIdx.x * (kThreads / LPC) + threadIdx.x / LPC;
    w.live = ch < D;
    w.d = w.live ? ch : D - 1;
    w.b = blockIdx.z;
    w.lic = threadIdx.x % LPC;
    w.j = w.lic;
    return w;
}

/* A log2(e) of the thread's 8 states (0 past N: those states stay 0). */
template <typename T>
static __device__ __forceinline__ void load_a2(const SegArgs<T>& p, const SegLane& w,
                                               float (&A2)[kStates]) {
#pragma unroll
    for (int k = 0; k < kStates; k++) {
        const int64_t n = (int64_t)w.j * kStates + k;
        A2[k] = n < p.N ? p.A[w.d * p.N + n] * kLog2e : 0.f;
    }
}

/* softplus(x) = ln(1 + e^x) on the special-function unit (PyTorch's threshold
 * 20): e = 2^(x log2 e); ln(1 + e) = lg2(1 + e) ln 2 where e >= 1/16 (1 + e is
 * then far from 1: relative error ~1e-6), the series e - e^2/2 + .. + e^7/7
 * below (truncation < 1e-9 relative). */
static __device__ __forceinline__ float softplus_sfu(float x) {
    const float e = fast_exp2(x * kLog2e);
    const float series =
        e * fmaf(e, fmaf(e, fmaf(e, fmaf(e, fmaf(e, fmaf(e, 1.f / 7, -1.f / 6), 0.2f), -0.25f),
                                   1.f / 3),
                         -0.5f),
                 1.f);
    float lg;
    asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(lg) : "f"(1.f + e));
    const float r = e < 0.0625f ? series : lg * 0.6931471805599453f;
    return x > 20.f ? x : r;
}

/* 1 / (1 + e^-x) by ex2.approx and rcp.approx (relative error a few ulp; 0 and 1 at the
 * ends): the exact division of sigmoidf took ~14 instructions a gate, ~1 per (step, state)
 * at N 16. */
static __device__ __forceinline__ float sigmoid_sfu(float x) {
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(1.f + fast_exp2(-x * kLog2e)));
    return r;
}

/* dt' = softplus(delta + bias) (or delta + bias) of a run of TI steps, 0 past
 * `valid`. With softplus, the LPC lanes of a channel each compute TI/P of the
 * TI values (P = min(LPC, TI)) and pass them round by shuffles. */
template <int TI, int LPC>
static __device__ __forceinline__ void run_dt(const float (&x)[TI], int64_t valid, bool sp,
                                              int lic, float (&dt)[TI]) {
    if (!sp) {
#pragma unroll
        for (int i = 0; i < TI; i++) dt[i] = i < valid ? x[i] : 0.f;
        return;
    }
    constexpr int P = LPC < TI ? LPC : TI, M = TI / P;
    const int mine = lic % P;
    float v[M];
#pragma unroll
    for (int m = 0; m < M; m++) { // x[m P + mine], picked by the bits of `mine` (P - 1 selects)
        float c[P];
#pragma unroll
        for (int q = 0; q < P; q++) c[q] = x[m * P + q];
#pragma unroll
        for (int half = P / 2; half >= 1; half /= 2)
#pragma unroll
            for (int q = 0; q < half; q++) c[q] = (mine & half) ? c[q + half] : c[q];
        v[m] = softplus_sfu(c[0]);
    }
    const int base = (threadIdx.x & 31) - lic;
    if (valid >= TI) {
#pragma unroll
        for (int i = 0; i < TI; i++)
            dt[i] = P == 1 ? v[i] : __shfl_sync(0xffffffffu, v[i / P], base + i % P);
    } else {
#pragma unroll
        for (int i = 0; i < TI; i++) {
            const float s = P == 1 ? v[i] : __shfl_sync(0xffffffffu, v[i / P], base + i % P);
            dt[i] = i < valid ? s : 0.f;
        }
    }
}

/* One run of TI steps for the thread's 8 states: h = a h + du B, and with kY
 * y_i = sum_k C h (this thread's part). loadB(k, run) / loadC(k, run) give
 * state k's B / C over the run. */
template <typename T, int TI, bool kY, typename LoadB, typename LoadC>
static __device__ __forceinline__ void advance_run(const float (&dt)[TI], const float (&du)[TI],
                                                   const float (&A2)[kStates], LoadB loadB,
                                                   LoadC loadC, float (&h)[kStates],
                                                   float (&y)[TI]) {
#pragma unroll
    for (int i = 0; i < TI; i++) y[i] = 0.f;
#pragma unroll
    for (int k = 0; k < kStates; k++) { // state by state: B, C of one state in registers
        RawRun<T, TI> rb, rc;
        loadB(k, rb);
        if (kY) loadC(k, rc);
#pragma unroll
        for (int i = 0; i < TI; i++) {
            const float a = fast_exp2(dt[i] * A2[k]);
            h[k] = fmaf(a, h[k], du[i] * raw_at(rb, i));
            if (kY) y[i] = fmaf(raw_at(rc, i), h[k], y[i]);
        }
    }
}

/* y of a run: the parts of the channel's LPC lanes summed in a fixed order,
 * + D u, gated by z silu(z) when z is given, stored. With LPC <= TI the sum is
 * a reduce-scatter (each round a lane keeps half of its items and adds its
 * partner's copy of them): lane lic ends with the TI/LPC steps from lic*TI/LPC,
 * gates and stores only those. u_at(i0, cnt, v) / z_at give the inputs of
 * steps i0 .. i0+cnt of the run; dst is the run's first output. */
template <typename T, int TI, int LPC, bool kVec, typename UAt, typename ZAt>
static __device__ __forceinline__ void finish_y(float (&y)[TI], UAt u_at, ZAt z_at, bool has_z,
                                                float Dd, T* dst, int64_t valid, const SegLane& w) {
    constexpr int K = LPC <= TI ? TI / LPC : TI; /* steps a lane finishes */
    if constexpr (LPC <= TI) {
#pragma unroll
        for (int off = LPC / 2, cnt = TI; off >= 1; off /= 2, cnt /= 2) {
            const bool upper = (w.lic & off) != 0;
#pragma unroll
            for (int q = 0; q < cnt / 2; q++) {
                const float keep = upper ? y[q + cnt / 2] : y[q];
                const float give = upper ? y[q] : y[q + cnt / 2];
                y[q] = keep + __shfl_xor_sync(0xffffffffu, give, off);
            }
        }
    } else {
#pragma unroll
        for (int off = 1; off < LPC; off <<= 1)
#pragma unroll
            for (int i = 0; i < TI; i++) y[i] += __shfl_xor_sync(0xffffffffu, y[i], off);
    }
    const int i0 = LPC <= TI ? w.lic * K : 0;
    if (!w.live || (LPC > TI && w.lic != 0)) return;
    float uu[K], zz[K], out[K];
    u_at(i0, uu);
    if (has_z) z_at(i0, zz);
#pragma unroll
    for (int q = 0; q < K; q++) {
        out[q] = fmaf(Dd, uu[q], y[q]);
        if (has_z) out[q] *= zz[q] * sigmoid_sfu(zz[q]);
    }
    store_run<T, K, kVec>(dst, i0, valid - i0, out);
}

/* The states of (b, d) this thread owns, into dst (N floats of one state row). */
static __device__ __forceinline__ void put_states(float* dst, const float (&h)[kStates], int j,
                                                  int64_t N) {
#pragma unroll
    for (int k = 0; k < kStates; k++)
        if ((int64_t)j * kStates + k < N) dst[j * kStates + k] = h[k];
}

/* The training pair: h, the state before step t_next, saved where t_next starts a chunk
 * (a run never straddles one: MB_SCAN_CHUNK is a multiple of every run length). */
template <typename T>
static __device__ __forceinline__ void save_chunk_state(const SegArgs<T>& p, const SegLane& w,
                                                        int64_t t_next, const float (&h)[kStates]) {
    static_assert(MB_SCAN_CHUNK % 8 == 0, "whole runs per chunk");
    if (!p.cstates || !w.live || t_next % MB_SCAN_CHUNK != 0 || t_next >= p.L) return;
    put_states(p.cstates + ((w.b * p.D + w.d) * p.nch + t_next / MB_SCAN_CHUNK) * p.N, h, w.j, p.N);
}

/* Walk steps [t_begin, t_end) of a channel from the state h (in: start, out:
 * end); kY: also y (and the chunk states of the training pair: the walks with kY
 * start from the true state). Returns the sum of dt' over the steps. */
template <typename T, int LPC, bool kVec, bool kY>
static __device__ __forceinline__ float walk_segment(const SegArgs<T>& p, const SegLane& w,
                                                     int64_t t_begin, int64_t t_end,
                                                     float (&h)[kStates]) {
    constexpr int TI = 16 / (int)sizeof(T);
    const int64_t N = p.N, L = p.L;
    const int64_t row = (w.b * p.D + w.d) * L;
    const int64_t bc = (w.b * p.G + w.d / p.dpg) * N * L;
    float A2[kStates];
    load_a2(p, w, A2);
    const float bias = p.bias ? p.bias[w.d] : 0.f;
    const float Dd = p.Dv ? p.Dv[w.d] : 0.f;
    float sdt = 0.f;
    for (int64_t t = t_begin; t < t_end; t += TI) {
        const int64_t valid = t_end - t;
        float x[TI], uu[TI], dt[TI], du[TI];
        load_run<T, TI, kVec>(p.delta, row + t, valid, x, 0.f);
        load_run<T, TI, kVec>(p.u, row + t, valid, uu, 0.f);
#pragma unroll
        for (int i = 0; i < TI; i++) x[i] += bias;
        run_dt<TI, LPC>(x, valid, p.softplus != 0, w.lic, dt);
#pragma unroll
        for (int i = 0; i < TI; i++) {
            du[i] = dt[i] * uu[i];
            sdt += dt[i];
        }
        float y[TI];
        advance_run<T, TI, kY>(
            dt, du, A2,
            [&](int k, RawRun<T, TI>& r) {
                const int64_t n = (int64_t)w.j * kStates + k;
                if (n < N) load_raw<T, TI, kVec>(p.Bm, bc + n * L + t, valid, r);
                else raw_zero(r);
            },
            [&](int k, RawRun<T, TI>& r) {
                const int64_t n = (int64_t)w.j * kStates + k;
                if (n < N) load_raw<T, TI, kVec>(p.Cm, bc + n * L + t, valid, r);
                else raw_zero(r);
            },
            h, y);
        if (kY) {
            save_chunk_state(p, w, t + TI, h);
            constexpr int K = LPC <= TI ? TI / LPC : TI;
            finish_y<T, TI, LPC, kVec>(
                y, [&](int i0, float (&v)[K]) { load_run<T, K, kVec>(p.u, row + t + i0, valid - i0, v, 0.f); },
                [&](int i0, float (&v)[K]) { load_run<T, K, kVec>(p.z, row + t + i0, valid - i0, v, 0.f); },
                p.z != NULL, Dd, p.y + row + t, valid, w);
        }
    }
    return sdt;
}

/* ---- v12: the block's inputs staged in shared memory ----
 * The channels of a block walk the same steps, so B and C (one group) are
 * loaded once per block, not once per warp, and every input arrives by
 * cp.async kNumStages - 1 stages of kStageSteps steps ahead of its use. */
constexpr int kNumStages = 3;
constexpr int kStageSteps = 32;

/* How a version reads its inputs: directly (v10, v11), staged in shared memory (v12-v14),
 * or staged with each stage's B and C rows converted once to fp32 in shared memory (v17:
 * bf16 at LPC <= 8, i.e. N <= 64; else staged). */
enum StageMode { kDirect = 0, kStagedBf = 1, kStagedF32BC = 2 };

/* One stage buffer: B rows (state n = 8j + k of lane j at row k*LPC + j, rows n >= N
 * zero), then the delta and u rows of the block's channels, then the C rows (as B) and
 * the z rows: TS steps a row (element offsets). The rows a walk without y reads (B, delta,
 * u) come first, so that its copies are a prefix. */
template <typename T, int LPC> struct StageLayout {
    /* 16 steps a stage from LPC 16 (N > 64): 3 stages of N 256's B and C rows in 48 KB */
    static constexpr int TS = LPC >= 16 ? kStageSteps / 2 : kStageSteps;
    static constexpr int CH = kThreads / LPC, NR = LPC * kStates;
    static constexpr int kChunks = TS * (int)sizeof(T) / 16; /* 16-byte pieces per row */
    static constexpr int kB = 0, kX = NR * TS, kU = kX + CH * TS, kC = kU + CH * TS, kZ = kC + NR * TS;
    static constexpr int kElems = kZ + CH * TS;
    static constexpr int kRows = 2 * NR + 3 * CH;
    static constexpr int kRowsNoY = NR + 2 * CH; /* B, delta, u */
    static_assert(kThreads % kChunks == 0, "a thread copies the same piece of each of its rows");
};

/* fp32 B, C rows: kStageSteps floats and 4 of padding, so that the rows the LPC lanes of
 * a channel read at once start 4 banks apart (unpadded, 128-byte rows put them all on the
 * same banks: an LPC-way conflict); C rows after the NR B rows */
constexpr int kF32Row = kStageSteps + 4;

/* The shared memory of a staged block: kNumStages stage buffers, with kF32 the fp32 B, C
 * rows, then the row table (each row's source at step 0). */
template <typename T, int LPC, bool kF32> struct StageSmem {
    static constexpr int kStagesBytes = kNumStages * StageLayout<T, LPC>::kElems * (int)sizeof(T);
    static constexpr int kF32Bytes = kF32 ? 2 * StageLayout<T, LPC>::NR * kF32Row * 4 : 0;
    static constexpr int kTableOffset = kStagesBytes + kF32Bytes;
    static constexpr int kBytes = kTableOffset + StageLayout<T, LPC>::kRows * (int)sizeof(void*);
    static_assert(kTableOffset % 16 == 0, "aligned row table");
};

/* The row table of a block: for each row the walk loads, its source at step 0, or NULL
 * where nothing is to be loaded (states n >= N, channels past D, z without z); those rows
 * are zeroed once in every stage buffer and never copied. Ends with a barrier. */
template <typename T, int LPC, bool kY>
static __device__ __forceinline__ void build_row_table(const T** tbl, T* stages, const SegArgs<T>& p,
                                                       int64_t b, int64_t d0, int64_t bc) {
    using S = StageLayout<T, LPC>;
    constexpr int kRows = kY ? S::kRows : S::kRowsNoY;
    const auto state_row = [&](const T* base, int r) -> const T* { // row r of B or C
        const int64_t n = (int64_t)(r % LPC) * kStates + r / LPC;
        return n < p.N ? base + bc + n * p.L : NULL;
    };
    const auto channel_row = [&](const T* base, int ch) -> const T* { // delta, u or z
        return base && d0 + ch < p.D ? base + (b * p.D + d0 + ch) * p.L : NULL;
    };
    for (int row = threadIdx.x; row < kRows; row += kThreads) {
        int r = row;
        const T* src;
        if (r < S::NR) src = state_row(p.Bm, r);
        else if ((r -= S::NR) < 2 * S::CH) src = channel_row(r < S::CH ? p.delta : p.u, r % S::CH);
        else if ((r -= 2 * S::CH) < S::NR) src = state_row(p.Cm, r);
        else src = channel_row(p.z, r - S::NR);
        tbl[row] = src;
    }
    __syncthreads();
    constexpr int kPer = 16 / (int)sizeof(T);
    for (int i = threadIdx.x; i < kNumStages * kRows * S::kChunks; i += kThreads) {
        const int q = i / (kRows * S::kChunks), piece = i % (kRows * S::kChunks);
        if (!tbl[piece / S::kChunks])
            *reinterpret_cast<uint4*>(stages + q * S::kElems + piece * kPer) = make_uint4(0, 0, 0, 0);
    }
    __syncthreads();
}

/* cp.async of steps [ts, ts + TS) of every row with a source into a stage buffer (steps
 * at or past t1 are not copied: no walk reads them). Rows are TS steps of kChunks 16-byte
 * pieces, so piece i of the buffer is row i / kChunks; thread x copies the pieces x, x +
 * kThreads, .., the same piece of each of its rows. */
template <typename T, int LPC, bool kY>
static __device__ __forceinline__ void issue_stage(T* buf, const T* const* tbl, int64_t ts, int64_t t1) {
    using S = StageLayout<T, LPC>;
    constexpr int kPer = 16 / (int)sizeof(T);
    constexpr int kPieces = (kY ? S::kRows : S::kRowsNoY) * S::kChunks;
    const int c = threadIdx.x % S::kChunks;
    const int64_t t = ts + (int64_t)c * kPer;
    if (t >= t1) return;
    const uint32_t dst = smem_addr(buf + threadIdx.x * kPer);
#pragma unroll
    for (int k = 0; k < (kPieces + kThreads - 1) / kThreads; k++) {
        const int i = threadIdx.x + k * kThreads;
        if (kPieces % kThreads != 0 && i >= kPieces) break;
        const T* src = tbl[i / S::kChunks];
        if (src) cp_async16(dst + k * kThreads * 16, src + t, true);
    }
}

/* A run of TI elements (16 bytes) from shared memory. */
template <typename T, int TI>
static __device__ __forceinline__ void smem_run(const T* at, RawRun<T, TI>& r) {
    const uint4 q = *reinterpret_cast<const uint4*>(at);
    r.w[0] = q.x, r.w[1] = q.y, r.w[2] = q.z, r.w[3] = q.w;
}

/* K consecutive elements from shared memory as floats (K * sizeof(T) of 2, 4, 8
 * or 16 bytes, aligned to that size). */
template <typename T, int K>
static __device__ __forceinline__ void smem_small_run(const T* at, float (&v)[K]) {
    constexpr int kBytes = K * (int)sizeof(T);
    uint32_t w[(kBytes + 3) / 4];
    if constexpr (kBytes == 16) {
        const uint4 q = *reinterpret_cast<const uint4*>(at);
        w[0] = q.x, w[1] = q.y, w[2] = q.z, w[3] = q.w;
    } else if constexpr (kBytes == 8) {
        const uint2 q = *reinterpret_cast<const uint2*>(at);
        w[0] = q.x, w[1] = q.y;
    } else if constexpr (kBytes == 4) {
        w[0] = *reinterpret_cast<const uint32_t*>(at);
    } else {
        w[0] = *reinterpret_cast<const uint16_t*>(at);
    }
    const T* e = reinterpret_cast<const T*>(w);
#pragma unroll
    for (int k = 0; k < K; k++) v[k] = mb_to_float(e[k]);
}

template <typename T, int TI>
static __device__ __forceinline__ void smem_floats(const T* at, float (&v)[TI]) {
    RawRun<T, TI> r;
    smem_run<T, TI>(at, r);
#pragma unroll
    for (int i = 0; i < TI; i++) v[i] = raw_at(r, i);
}

/* A run of TI fp32 elements (TI * 4 bytes, 16-byte aligned) from shared memory. */
template <int TI>
static __device__ __forceinline__ void smem_run_f32(const float* at, RawRun<float, TI>& r) {
#pragma unroll
    for (int v = 0; v < TI / 4; v++) {
        const uint4 q = reinterpret_cast<const uint4*>(at)[v];
        r.w[4 * v] = q.x, r.w[4 * v + 1] = q.y, r.w[4 * v + 2] = q.z, r.w[4 * v + 3] = q.w;
    }
}

/* The stage's B rows (and C rows with kY), bf16, into the fp32 rows at f: every thread
 * of the block converts a share once, instead of each thread unpacking the rows it reads
 * at every use (one instruction per element and use). */
template <typename T, int LPC, bool kY>
static __device__ __forceinline__ void stage_bc_to_f32(const T* buf, float* f) {
    using S = StageLayout<T, LPC>;
    static_assert(sizeof(T) == 2 && S::TS == kStageSteps, "bf16 B, C rows of kStageSteps steps");
    constexpr int kPerRow = S::TS / 8; /* pieces of 8 bf16 = 16 bytes per row */
    constexpr int kBPieces = S::NR * kPerRow, kPieces = (kY ? 2 : 1) * kBPieces;
    for (int i = threadIdx.x; i < kPieces; i += kThreads) {
        const int from = i < kBPieces ? S::kB + i * 8 : S::kC + (i - kBPieces) * 8;
        const uint4 q = *reinterpret_cast<const uint4*>(buf + from);
        const uint32_t w[4] = {q.x, q.y, q.z, q.w};
        float4 lo, hi;
        lo.x = __uint_as_float(w[0] << 16), lo.y = __uint_as_float(w[0] & 0xffff0000u);
        lo.z = __uint_as_float(w[1] << 16), lo.w = __uint_as_float(w[1] & 0xffff0000u);
        hi.x = __uint_as_float(w[2] << 16), hi.y = __uint_as_float(w[2] & 0xffff0000u);
        hi.z = __uint_as_float(w[3] << 16), hi.w = __uint_as_float(w[3] & 0xffff0000u);
        float* dst = f + (i / kPerRow) * kF32Row + (i % kPerRow) * 8;
        reinterpret_cast<float4*>(dst)[0] = lo;
        reinterpret_cast<float4*>(dst)[1] = hi;
    }
}

/* walk_segment with staged inputs (16-byte aligned rows, L a multiple of TI,
 * every channel of the block in one group). kF32: B, C read as fp32 rows converted
 * once per stage into the fp32 rows after the stage buffers. Segment bounds are whole
 * runs (t0, t1 and L multiples of TI), so every run is full. */
template <typename T, int LPC, bool kY, bool kF32>
static __device__ __forceinline__ float walk_segment_staged(const SegArgs<T>& p, const SegLane& w,
                                                            int64_t t0, int64_t t1,
                                                            float (&h)[kStates], unsigned char* smem_bytes) {
    using S = StageLayout<T, LPC>;
    using M = StageSmem<T, LPC, kF32>;
    T* const smem = reinterpret_cast<T*>(smem_bytes);
    float* const f32bc = reinterpret_cast<float*>(smem_bytes + M::kStagesBytes); /* kF32 */
    const T** const tbl = reinterpret_cast<const T**>(smem_bytes + M::kTableOffset);
    constexpr int TI = 16 / (int)sizeof(T);
    const int64_t d0 = (int64_t)blockIdx.x * S::CH;
    const int64_t bc = (w.b * p.G + d0 / p.dpg) * p.N * p.L;
    const int64_t row = (w.b * p.D + w.d) * p.L;
    const int ch = threadIdx.x / LPC;
    build_row_table<T, LPC, kY>(tbl, smem, p, w.b, d0, bc);
    float A2[kStates];
    load_a2(p, w, A2);
    const float bias = p.bias ? p.bias[w.d] : 0.f;
    const float Dd = p.Dv ? p.Dv[w.d] : 0.f;
    const int64_t nst = (t1 - t0 + S::TS - 1) / S::TS;
#pragma unroll
    for (int q = 0; q < kNumStages - 1; q++) {
        if (q < nst) issue_stage<T, LPC, kY>(smem + q * S::kElems, tbl, t0 + q * S::TS, t1);
        cp_async_commit();
    }
    float sdt = 0.f;
    int cur = 0, fill = kNumStages - 1; /* stage buffers read now and filled now */
    for (int64_t st = 0; st < nst; st++) {
        if (st + kNumStages - 1 < nst)
            issue_stage<T, LPC, kY>(smem + fill * S::kElems, tbl, t0 + (st + kNumStages - 1) * S::TS, t1);
        cp_async_commit();
        cp_async_wait<kNumStages - 1>();
        __syncthreads();
        const T* buf = smem + cur * S::kElems;
        cur = cur == kNumStages - 1 ? 0 : cur + 1;
        fill = fill == kNumStages - 1 ? 0 : fill + 1;
        if constexpr (kF32) {
            stage_bc_to_f32<T, LPC, kY>(buf, f32bc);
            __syncthreads();
        }
#pragma unroll
        for (int r = 0; r < S::TS / TI; r++) {
            const int64_t t = t0 + st * S::TS + r * TI;
            if (t >= t1) break;
            float x[TI], uu[TI], dt[TI], du[TI], y[TI];
            smem_floats<T, TI>(buf + S::kX + ch * S::TS + r * TI, x);
            smem_floats<T, TI>(buf + S::kU + ch * S::TS + r * TI, uu);
#pragma unroll
            for (int i = 0; i < TI; i++) x[i] += bias;
            run_dt<TI, LPC>(x, TI, p.softplus != 0, w.lic, dt);
#pragma unroll
            for (int i = 0; i < TI; i++) {
                du[i] = dt[i] * uu[i];
                sdt += dt[i];
            }
            if constexpr (kF32)
                advance_run<float, TI, kY>(
                    dt, du, A2,
                    [&](int k, RawRun<float, TI>& rr) { smem_run_f32<TI>(f32bc + (k * LPC + w.j) * kF32Row + r * TI, rr); },
                    [&](int k, RawRun<float, TI>& rr) { smem_run_f32<TI>(f32bc + (S::NR + k * LPC + w.j) * kF32Row + r * TI, rr); },
                    h, y);
            else
                advance_run<T, TI, kY>(
                    dt, du, A2,
                    [&](int k, RawRun<T, TI>& rr) { smem_run<T, TI>(buf + S::kB + (k * LPC + w.j) * S::TS + r * TI, rr); },
                    [&](int k, RawRun<T, TI>& rr) { smem_run<T, TI>(buf + S::kC + (k * LPC + w.j) * S::TS + r * TI, rr); },
                    h, y);
            if (kY) {
                save_chunk_state(p, w, t + TI, h);
                constexpr int K = LPC <= TI ? TI / LPC : TI;
                const T* urow = buf + S::kU + ch * S::TS + r * TI;
                const T* zrow = buf + S::kZ + ch * S::TS + r * TI;
                finish_y<T, TI, LPC, true>(
                    y, [&](int i0, float (&v)[K]) { smem_small_run<T, K>(urow + i0, v); },
                    [&](int i0, float (&v)[K]) { smem_small_run<T, K>(zrow + i0, v); },
                    p.z != NULL, Dd, p.y + row + t, TI, w);
            }
        }
        __syncthreads(); // the buffer is refilled kNumStages - 1 stages later
    }
    return sdt;
}

/* The walker of a version: direct loads (v10, v11) or staged (v12; kStage a StageMode). */
template <typename T, int LPC, bool kVec, bool kY, int kStage>
static __device__ __forceinline__ float walk(const SegArgs<T>& p, const SegLane& w, int64_t t0,
                                             int64_t t1, float (&h)[kStates]) {
    if constexpr (kStage != kDirect) {
        extern __shared__ __align__(16) unsigned char seg_smem[];
        return walk_segment_staged<T, LPC, kY, kStage == kStagedF32BC>(p, w, t0, t1, h, seg_smem);
    } else {
        return walk_segment<T, LPC, kVec, kY>(p, w, t0, t1, h);
    }
}

/* Launch 1 (S > 1): segments 0 .. S-2 (blockIdx.y) from the zero state, no y: their end
 * states h_loc and sums of dt'. (The last segment's are never needed.) */
template <typename T, int LPC, bool kVec, int kStage, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks) scan_seg_local_kernel(const SegArgs<T> p) {
    const SegLane w = seg_lane<LPC>(p.D);
    const int64_t s = blockIdx.y;
    const int64_t t0 = s * p.seg, t1 = t0 + p.seg < p.L ? t0 + p.seg : p.L;
    float h[kStates];
#pragma unroll
    for (int k = 0; k < kStates; k++) h[k] = 0.f;
    const int64_t bd = w.b * p.D + w.d;
    if (s == 0 && p.first_replay == 1) { /* segment 0 walked once, with y, here */
        if (p.cstates && w.live) put_states(p.cstates + bd * p.nch * p.N, h, w.j, p.N); /* h_{-1} = 0 */
        walk<T, LPC, kVec, true, kStage>(p, w, t0, t1, h);
        if (w.live) put_states(p.h_loc + bd * p.S * p.N, h, w.j, p.N);
        return;
    }
    const float sdt = walk<T, LPC, kVec, false, kStage>(p, w, t0, t1, h);
    if (!w.live) return;
    put_states(p.h_loc + (bd * p.S + s) * p.N, h, w.j, p.N);
    if (w.lic == 0) p.sum_dt[bd * p.S + s] = sdt;
}

/* The true state before segment s (>= 1) of channel bd: h_loc(0), then
 * h = exp2(A log2e sum_dt'(r)) h + h_loc(r) for r = 1 .. s-1. The loads of kBatch
 * segments are issued before their folds (they do not depend on h): a chain of s - 1
 * dependent global loads would cost the last segments s - 1 L2 round trips. */
template <typename T>
static __device__ __forceinline__ void fold_start_state(const SegArgs<T>& p, const SegLane& w,
                                                        int64_t bd, int64_t s,
                                                        const float (&A2)[kStates],
                                                        float (&h)[kStates]) {
    constexpr int kBatch = 2;
    const int64_t N = p.N;
    const float* hl = p.h_loc + bd * p.S * N; /* (S, N) of this channel */
    const float* sd = p.sum_dt + bd * p.S;    /* (S) */
#pragma unroll
    for (int k = 0; k < kStates; k++) {
        const int64_t n = (int64_t)w.j * kStates + k;
        h[k] = n < N ? hl[n] : 0.f;
    }
    for (int64_t r0 = 1; r0 < s; r0 += kBatch) {
        float sdt[kBatch], loc[kBatch][kStates];
#pragma unroll
        for (int q = 0; q < kBatch; q++) {
            const bool in = r0 + q < s;
            sdt[q] = in ? sd[r0 + q] : 0.f;
#pragma unroll
            for (int k = 0; k < kStates; k++) {
                const int64_t n = (int64_t)w.j * kStates + k;
                loc[q][k] = in && n < N ? hl[(r0 + q) * N + n] : 0.f;
            }
        }
#pragma unroll
        for (int q = 0; q < kBatch; q++)
            if (r0 + q < s)
#pragma unroll
                for (int k = 0; k < kStates; k++) h[k] = fmaf(fast_exp2(A2[k] * sdt[q]), h[k], loc[q][k]);
    }
}

/* Launch 2: every segment (blockIdx.y) from its true start state (segment 0 from zero),
 * writing y (the last one the final state). (As a programmatic dependent launch, its
 * segment 0 walking while launch 1 ran, it was 5% slower at L 2K on the H100: 0.156 vs
 * 0.148 ms, and no faster from 8K: dropped.) */
template <typename T, int LPC, bool kVec, int kStage, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks) scan_seg_replay_kernel(const SegArgs<T> p) {
    const SegLane w = seg_lane<LPC>(p.D);
    const int64_t s = blockIdx.y + p.first_replay;
    const int64_t t0 = s * p.seg, t1 = t0 + p.seg < p.L ? t0 + p.seg : p.L;
    const int64_t bd = w.b * p.D + w.d, N = p.N;
    float h[kStates];
    if (s == 0) {
#pragma unroll
        for (int k = 0; k < kStates; k++) h[k] = 0.f;
        if (p.cstates && w.live) put_states(p.cstates + bd * p.nch * N, h, w.j, N); /* h_{-1} = 0 */
    } else {
        float A2[kStates];
        load_a2(p, w, A2);
        fold_start_state(p, w, bd, s, A2, h);
    }
    walk<T, LPC, kVec, true, kStage>(p, w, t0, t1, h);
    if (w.live && s == p.S - 1 && p.fstate) put_states(p.fstate + bd * N, h, w.j, N);
}

/* The number of segments for about `target` threads, each segment at least
 * kMinSegment steps; the segment length rounded up to whole runs of TI. */
static void choose_segments(int64_t threads_per_segment, int64_t L, int64_t target, int TI,
                            int64_t* S, int64_t* seg) {
    const int64_t kMinSegment = 256;
    int64_t s = (target + threads_per_segment - 1) / threads_per_segment;
    const int64_t smax = L / kMinSegment > 1 ? L / kMinSegment : 1;
    if (s > smax) s = smax;
    if (s < 1) s = 1;
    int64_t len = (L + s - 1) / s;
    len = (len + TI - 1) / TI * TI;
    *seg = len;
    *S = (L + len - 1) / len;
}

/* Blocks of `kernel` (kThreads, smem bytes) resident on the whole device at once, asked
 * once per device and kernel (0 when the runtime cannot tell: then as if one wave were
 * never enough). */
template <typename Kernel>
static int64_t seg_resident_blocks(Kernel kernel, int smem) {
    static int64_t known[64]; /* per device; a benign race: every writer writes the same */
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) {
        (void)cudaGetLastError();
        return 0;
    }
    if (!known[dev]) known[dev] = device_resident_blocks(kernel, kThreads, (size_t)smem);
    return known[dev];
}

template <typename T, int LPC, bool kVec, int kStage, int kMinBlocks>
static mb_status launch_seg_lpc(SegArgs<T> a, int64_t batch, cudaStream_t stream) {
    const dim3 block(kThreads);
    const unsigned groups = (unsigned)((a.D + kThreads / LPC - 1) / (kThreads / LPC));
    const int smem = kStage == kDirect ? 0 : StageSmem<T, LPC, kStage == kStagedF32BC>::kBytes;
    auto local = scan_seg_local_kernel<T, LPC, kVec, kStage, kMinBlocks>;
    auto replay = scan_seg_replay_kernel<T, LPC, kVec, kStage, kMinBlocks>;
    if (smem > 48 * 1024) {
        MB_CUDA_CHECK(cudaFuncSetAttribute(local, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        MB_CUDA_CHECK(cudaFuncSetAttribute(replay, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    }
    /* Where segment 0 is walked. Launch 1 takes it, with y (walked once), when launch 2's S
     * segments would not fit in one wave of resident blocks; where they do (short L, few
     * segments), launch 1 is only the no-y walks, so that its time is theirs and not that of
     * a y walk (H100, v17 at D 4096: 0.146 vs 0.174 ms at L 2K, S 8, one wave; 0.549 vs
     * 0.553 ms at L 8K, S 32, four waves; v17 at N 256, S 2 x 1024 blocks: 2.92 vs 3.73). */
    const int64_t replay_blocks = (int64_t)groups * a.S * batch;
    a.first_replay = a.S > 1 && replay_blocks > seg_resident_blocks(replay, smem) ? 1 : 0;
    if (a.S > 1) {
        local<<<dim3(groups, (unsigned)(a.S - 1), (unsigned)batch), block, smem, stream>>>(a);
        MB_CUDA_CHECK(cudaGetLastError());
    }
    replay<<<dim3(groups, (unsigned)(a.S - a.first_replay), (unsigned)batch), block, smem, stream>>>(a);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

/* kStagedF32BC only where it is defined (bf16) and its fp32 rows are small: LPC <= 8
 * (N <= 64: 18 KB of fp32 rows beside 34 KB of stages, 4 blocks per SM still fit) */
template <typename T, int LPC, int kStage>
constexpr int stage_for() {
    return kStage == kStagedF32BC && (sizeof(T) != 2 || LPC > 8) ? kStagedBf : kStage;
}

template <typename T, bool kVec, int kStage, int kMinBlocks>
static mb_status launch_seg_vec(const SegArgs<T>& a, int64_t lpc, int64_t batch, cudaStream_t stream) {
    switch (lpc) {
    case 1: return launch_seg_lpc<T, 1, kVec, stage_for<T, 1, kStage>(), kMinBlocks>(a, batch, stream);
    case 2: return launch_seg_lpc<T, 2, kVec, stage_for<T, 2, kStage>(), kMinBlocks>(a, batch, stream);
    case 4: return launch_seg_lpc<T, 4, kVec, stage_for<T, 4, kStage>(), kMinBlocks>(a, batch, stream);
    case 8: return launch_seg_lpc<T, 8, kVec, stage_for<T, 8, kStage>(), kMinBlocks>(a, batch, stream);
    case 16: return launch_seg_lpc<T, 16, kVec, stage_for<T, 16, kStage>(), kMinBlocks>(a, batch, stream);
    default: return launch_seg_lpc<T, 32, kVec, stage_for<T, 32, kStage>(), kMinBlocks>(a, batch, stream);
    }
}

template <typename T, int kMinBlocks>
static mb_status launch_seg(const mb_selective_scan_params* prm, const mb_selective_scan_inputs* in,
                            void* y, void* final_state, const mb_exec* ex, int64_t target_threads,
                            int stage) {
    constexpr int TI = 16 / (int)sizeof(T);
    SegArgs<T> a;
    fill_common_args<T>(a, prm, in);
    a.y = (T*)y;
    a.fstate = (float*)final_state;
    a.cstates = ex->scan_states;
    a.nch = (a.L + MB_SCAN_CHUNK - 1) / MB_SCAN_CHUNK;
    int64_t lpc = 1;
    while (lpc * kStates < a.N) lpc *= 2; /* N <= 256: lpc <= 32 */
    choose_segments(prm->batch * a.D * lpc, a.L, target_threads, TI, &a.S, &a.seg);
    a.first_replay = 0; /* set by the launcher */
    if (a.S > 65535 || prm->batch > 65535 || (a.D + kThreads / lpc - 1) / (kThreads / lpc) > 0x7fffffff)
        return mb_fail(MB_ERR_BAD_DIM, "selective scan fwd v10/v11: grid too large (batch %lld)",
                       (long long)prm->batch);
    const bool vec = a.L % TI == 0 && aligned16(a.u) && aligned16(a.delta) && aligned16(a.Bm) &&
                     aligned16(a.Cm) && aligned16(a.y) && (!a.z || aligned16(a.z));
    const size_t ws_floats = a.S > 1 ? (size_t)(prm->batch * a.D * a.S * (a.N + 1)) : 0;
    void* ws = NULL;
    if (ws_floats) {
        mb_status st = mb_device_alloc(&ws, ws_floats * sizeof(float), ex->stream);
        if (st != MB_OK) return st;
    }
    a.h_loc = (float*)ws;                                          /* (B, D, S, N) */
    a.sum_dt = ws ? a.h_loc + prm->batch * a.D * a.S * a.N : NULL; /* (B, D, S) */
    /* staging needs 16-byte runs and every channel of a block in one group */
    const int64_t block_channels = kThreads / lpc;
    if (!(vec && (a.G == 1 || a.dpg % block_channels == 0))) stage = kDirect;
    const cudaStream_t stream = mb_stream(ex);
    const mb_status st =
        stage == kStagedF32BC ? launch_seg_vec<T, true, kStagedF32BC, kMinBlocks>(a, lpc, prm->batch, stream)
        : stage == kStagedBf  ? launch_seg_vec<T, true, kStagedBf, kMinBlocks>(a, lpc, prm->batch, stream)
        : vec                 ? launch_seg_vec<T, true, kDirect, kMinBlocks>(a, lpc, prm->batch, stream)
                              : launch_seg_vec<T, false, kDirect, kMinBlocks>(a, lpc, prm->batch, stream);
    if (ws) mb_device_free(ws, ws_floats * sizeof(float), ex->stream);
    if (st == MB_OK && a.cstates && ex->scan_states_written) *ex->scan_states_written = 1;
    return st;
}

template <int64_t kTargetThreads, int kStage, int kMinBlocks = 4>
static mb_status seg_dispatch(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              void* y, void* final_state, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16)
        return launch_seg<__nv_bfloat16, kMinBlocks>(p, in, y, final_state, ex, kTargetThreads, kStage);
    return launch_seg<float, kMinBlocks>(p, in, y, final_state, ex, kTargetThreads, kStage);
}

} // namespace

/* v10: segments for about 64K threads. */
extern "C" mb_status mb_scan_fwd_cuda_v10(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    return seg_dispatch<65536, kDirect>(p, in, y, final_state, ex);
}

/* v11: segments for about 32K threads (less of the sequence walked twice). */
extern "C" mb_status mb_scan_fwd_cuda_v11(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    return seg_dispatch<32768, kDirect>(p, in, y, final_state, ex);
}

/* v12: v10 with the block's inputs staged in shared memory (cp.async, 3 stages of
 * 32 steps; B, C loaded once per block); where the shapes do not allow it, v10. */
extern "C" mb_status mb_scan_fwd_cuda_v12(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    return seg_dispatch<65536, kStagedBf>(p, in, y, final_state, ex);
}

/* v13: v12 with segments for ~128K threads. */
extern "C" mb_status mb_scan_fwd_cuda_v13(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    return seg_dispatch<131072, kStagedBf>(p, in, y, final_state, ex);
}

/* v14: v12 with segments for ~256K threads. */
extern "C" mb_status mb_scan_fwd_cuda_v14(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    return seg_dispatch<262144, kStagedBf>(p, in, y, final_state, ex);
}

/* v17: v14 with each stage's B and C rows converted once to fp32 in shared memory (bf16,
 * N <= 64; else as v14): the walk then reads fp32 runs, no bf16 unpack per element and use. */
extern "C" mb_status mb_scan_fwd_cuda_v17(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    return seg_dispatch<262144, kStagedF32BC>(p, in, y, final_state, ex);
}

/* v15: v14 from L 8192 up at N <= 16, where it is the faster (H100: 8K, 16K,
 * 128K), else v7 (shorter sequences, where v7's one pass wins, and larger N). */
extern "C" mb_status mb_scan_fwd_cuda_v15(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    if (p->seqlen >= 8192 && p->dstate <= 16) return mb_scan_fwd_cuda_v14(p, in, y, final_state, ex);
    return mb_scan_fwd_cuda_v7(p, in, y, final_state, ex);
}

/* v16: v15's choice redrawn from a grid of N 16..256 x L 2K..32K (H100, bf16,
 * D 4096, with z; kernels/selective_scan/NOTES.md): from L 2048, N <= 16: v14 from L 4096
 * (v7 below); N <= 32: v14; N <= 64: v13; N <= 128: v12 (the fewest segments: most states
 * per thread); N > 128 and L < 2048: v7. */
extern "C" mb_status mb_scan_fwd_cuda_v16(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    const int64_t L = p->seqlen, N = p->dstate;
    if (L >= 2048) {
        if (N <= 16 && L >= 4096) return mb_scan_fwd_cuda_v14(p, in, y, final_state, ex);
        if (N > 16 && N <= 32) return mb_scan_fwd_cuda_v14(p, in, y, final_state, ex);
        if (N > 32 && N <= 64) return mb_scan_fwd_cuda_v13(p, in, y, final_state, ex);
        if (N > 64 && N <= 128) return mb_scan_fwd_cuda_v12(p, in, y, final_state, ex);
    }
    return mb_scan_fwd_cuda_v7(p, in, y, final_state, ex);
}

/* v18: v16 with v17 where v16 takes v14 at N <= 16 (from L 4096). H100 (sweep at
 * 5e55918, with z): 4K 0.289 ms, 16K 1.037, 128K 7.58 vs v16's 0.318, 1.147, 8.58. At N 32
 * and 64 v17 was 2x and 3.3x slower than v14 at 5e55918 (its unpadded fp32 rows: bank
 * conflicts), so those stay with v16's choice until v17 is measured there again. */
extern "C" mb_status mb_scan_fwd_cuda_v18(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    if (p->seqlen >= 4096 && p->dstate <= 16)
        return mb_scan_fwd_cuda_v17(p, in, y, final_state, ex);
    return mb_scan_fwd_cuda_v16(p, in, y, final_state, ex);
}

/* v19: v17 for bf16 at N <= 64 from L 2048, else v16. The grid of v7, v12, v13,
 * v14, v17 (H100, D 4096, with z, tools/h100_dispatch_grid_v17.txt) puts v17 first at every
 * N 16 / 32 / 64 x L 2K - 32K: at N 32 / 64 and 16K 1.69 / 3.09 ms vs 1.88 (v14) / 3.95
 * (v13), at N 16 and 2K 0.170 vs v7's 0.172. */
extern "C" mb_status mb_scan_fwd_cuda_v19(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    if (p->seqlen >= 2048 && p->dstate <= 64 && p->dtype == MB_DTYPE_BF16)
        return mb_scan_fwd_cuda_v17(p, in, y, final_state, ex);
    return mb_scan_fwd_cuda_v16(p, in, y, final_state, ex);
}

/* v20 (default): for bf16 from L 512, v17 at N <= 64 and v12 above (one segment per ~64K
 * threads, the most states per thread); else v16. The grid of v7, v12, v13, v14, v17 over
 * N 16..256 x L 512..32K (H100, D 4096, with z; kernels/selective_scan/NOTES.md), after the
 * launch 1 / launch 2 split of 2026-11-27 and the 16-step stages from LPC 16: v17 first at
 * every N <= 64 (N 16, L 1K: 0.092 vs v7's 0.093 ms), v12 first or within 0.5% at N 128
 * and 256 (N 256, L 4K: 3.48 vs v7's 4.29 ms). */
extern "C" mb_status mb_scan_fwd_cuda_v20(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16 && p->seqlen >= 512)
        return p->dstate <= 64 ? mb_scan_fwd_cuda_v17(p, in, y, final_state, ex)
                               : mb_scan_fwd_cuda_v12(p, in, y, final_state, ex);
    return mb_scan_fwd_cuda_v16(p, in, y, final_state, ex);
}
