/*
 * fwd_seg.cu -- selective-scan forward v10, v11: the recurrence walked step by
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
 *   1. every segment from the zero state: segment 0 writes y and its end
 *      state; the others write only their end state h_loc (B, D, S, N) and
 *      their sum of dt' (B, D, S) to the workspace;
 *   2. segments 1 .. S-1: the start state folded from launch 1's results,
 *      h = exp2(A log2e sum_dt'(s)) h + h_loc(s) for s = 1 .. segment - 1, then
 *      the segment again from it, writing y (the last one the final state).
 * Segments 1 .. S-1 are walked twice: S trades parallelism for exp2 work.
 * S is chosen so that about kTargetThreads threads run: v10 64K, v11 32K.
 * Segment lengths are whole 16-byte runs (8 bf16 or 4 fp32 steps).
 *
 * Shapes: u, delta, z, y (B, D, L); A (D, N) fp32; B, C (B, G, N, L);
 * D, delta_bias (D) fp32; final state (B, D, N) fp32.
 */
#include "scan_common.cuh"
#include "selective_scan.h"

using namespace mbscan;

namespace {

constexpr int kThreads = 128;
constexpr int kStates = 8; /* states per thread */

template <typename T>
struct SegArgs {
    const T* u;        /* (B, D, L) */
    const T* delta;    /* (B, D, L) */
    const float* A;    /* (D, N) */
    const T* Bm;       /* (B, G, N, L) */
    const T* Cm;       /* (B, G, N, L) */
    const float* Dv;   /* (D) or NULL */
    const T* z;        /* (B, D, L) or NULL */
    const float* bias; /* (D) or NULL */
    T* y;              /* (B, D, L) */
    float* fstate;     /* (B, D, N) or NULL */
    float* h_loc;      /* (B, D, S, N) workspace: segment end states from the zero state */
    float* sum_dt;     /* (B, D, S) workspace: sum of dt' over each segment */
    int64_t D, L, N, G, dpg;
    int64_t S, seg; /* segments, steps per segment (a multiple of the run) */
    int softplus;
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
    for (int m = 0; m < M; m++) {
        float pick = x[0];
#pragma unroll
        for (int i = 1; i < TI; i++)
            if (i == mine + m * P) pick = x[i];
        v[m] = softplus(pick);
    }
    const int base = (threadIdx.x & 31) - lic;
#pragma unroll
    for (int i = 0; i < TI; i++) {
        const float s = P == 1 ? v[i] : __shfl_sync(0xffffffffu, v[i / P], base + i % P);
        dt[i] = i < valid ? s : 0.f;
    }
}

/* Walk steps [t_begin, t_end) of a channel from the state h (in: start, out:
 * end); kY: also y. Returns the sum of dt' over the steps. */
template <typename T, int LPC, bool kVec, bool kY>
static __device__ __forceinline__ float walk_segment(const SegArgs<T>& p, const SegLane& w,
                                                     int64_t t_begin, int64_t t_end,
                                                     float (&h)[kStates]) {
    constexpr int TI = 16 / (int)sizeof(T);
    const int64_t N = p.N, L = p.L;
    const int64_t row = (w.b * p.D + w.d) * L;
    const int64_t bc = (w.b * p.G + w.d / p.dpg) * N * L;
    float A2[kStates];
#pragma unroll
    for (int k = 0; k < kStates; k++) {
        const int64_t n = (int64_t)w.j * kStates + k;
        A2[k] = n < N ? p.A[w.d * N + n] * kLog2e : 0.f;
    }
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
#pragma unroll
        for (int i = 0; i < TI; i++) y[i] = 0.f;
#pragma unroll
        for (int k = 0; k < kStates; k++) { // state by state: B, C of one state in registers
            const int64_t n = (int64_t)w.j * kStates + k;
            RawRun<T, TI> rb, rc;
            if (n < N) {
                load_raw<T, TI, kVec>(p.Bm, bc + n * L + t, valid, rb);
                if (kY) load_raw<T, TI, kVec>(p.Cm, bc + n * L + t, valid, rc);
            } else {
                raw_zero(rb);
                if (kY) raw_zero(rc);
            }
#pragma unroll
            for (int i = 0; i < TI; i++) {
                const float a = fast_exp2(dt[i] * A2[k]);
                h[k] = fmaf(a, h[k], du[i] * raw_at(rb, i));
                if (kY) y[i] = fmaf(raw_at(rc, i), h[k], y[i]);
            }
        }
        if (kY) {
#pragma unroll
            for (int off = 1; off < LPC; off <<= 1)
#pragma unroll
                for (int i = 0; i < TI; i++) y[i] += __shfl_xor_sync(0xffffffffu, y[i], off);
            if (p.z) {
                float zz[TI];
                load_run<T, TI, kVec>(p.z, row + t, valid, zz, 0.f);
#pragma unroll
                for (int i = 0; i < TI; i++) y[i] = fmaf(Dd, uu[i], y[i]) * (zz[i] * sigmoidf(zz[i]));
            } else {
#pragma unroll
                for (int i = 0; i < TI; i++) y[i] = fmaf(Dd, uu[i], y[i]);
            }
            if (w.live && w.lic == 0) store_run<T, TI, kVec>(p.y, row + t, valid, y);
        }
    }
    return sdt;
}

/* The states of (b, d) this thread owns, into dst (N floats of one state row). */
static __device__ __forceinline__ void put_states(float* dst, const float (&h)[kStates], int j,
                                                  int64_t N) {
#pragma unroll
    for (int k = 0; k < kStates; k++)
        if ((int64_t)j * kStates + k < N) dst[j * kStates + k] = h[k];
}

/* Launch 1: every segment (blockIdx.y) from the zero state. */
template <typename T, int LPC, bool kVec>
__global__ void __launch_bounds__(kThreads, 4) scan_seg_local_kernel(const SegArgs<T> p) {
    const SegLane w = seg_lane<LPC>(p.D);
    const int64_t s = blockIdx.y;
    const int64_t t0 = s * p.seg, t1 = t0 + p.seg < p.L ? t0 + p.seg : p.L;
    float h[kStates];
#pragma unroll
    for (int k = 0; k < kStates; k++) h[k] = 0.f;
    const int64_t bd = w.b * p.D + w.d;
    if (s == 0) {
        walk_segment<T, LPC, kVec, true>(p, w, t0, t1, h);
        if (!w.live) return;
        if (p.S == 1) {
            if (p.fstate) put_states(p.fstate + bd * p.N, h, w.j, p.N);
        } else {
            put_states(p.h_loc + bd * p.S * p.N, h, w.j, p.N);
        }
        return;
    }
    const float sdt = walk_segment<T, LPC, kVec, false>(p, w, t0, t1, h);
    if (!w.live) return;
    put_states(p.h_loc + (bd * p.S + s) * p.N, h, w.j, p.N);
    if (w.lic == 0) p.sum_dt[bd * p.S + s] = sdt;
}

/* Launch 2: segment blockIdx.y + 1 from its folded start state, writing y. */
template <typename T, int LPC, bool kVec>
__global__ void __launch_bounds__(kThreads, 4) scan_seg_replay_kernel(const SegArgs<T> p) {
    const SegLane w = seg_lane<LPC>(p.D);
    const int64_t s = (int64_t)blockIdx.y + 1;
    const int64_t t0 = s * p.seg, t1 = t0 + p.seg < p.L ? t0 + p.seg : p.L;
    const int64_t bd = w.b * p.D + w.d, N = p.N;
    float h[kStates], A2[kStates];
#pragma unroll
    for (int k = 0; k < kStates; k++) {
        const int64_t n = (int64_t)w.j * kStates + k;
        A2[k] = n < N ? p.A[w.d * N + n] * kLog2e : 0.f;
        h[k] = n < N ? p.h_loc[bd * p.S * N + n] : 0.f;
    }
    for (int64_t r = 1; r < s; r++) {
        const float sdt = p.sum_dt[bd * p.S + r];
#pragma unroll
        for (int k = 0; k < kStates; k++) {
            const int64_t n = (int64_t)w.j * kStates + k;
            const float loc = n < N ? p.h_loc[(bd * p.S + r) * N + n] : 0.f;
            h[k] = fmaf(fast_exp2(A2[k] * sdt), h[k], loc);
        }
    }
    walk_segment<T, LPC, kVec, true>(p, w, t0, t1, h);
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

template <typename T, int LPC, bool kVec>
static mb_status launch_seg_lpc(SegArgs<T> a, int64_t batch, cudaStream_t stream) {
    const dim3 block(kThreads);
    const unsigned groups = (unsigned)((a.D + kThreads / LPC - 1) / (kThreads / LPC));
    scan_seg_local_kernel<T, LPC, kVec><<<dim3(groups, (unsigned)a.S, (unsigned)batch), block, 0, stream>>>(a);
    MB_CUDA_CHECK(cudaGetLastError());
    if (a.S > 1) {
        scan_seg_replay_kernel<T, LPC, kVec>
            <<<dim3(groups, (unsigned)(a.S - 1), (unsigned)batch), block, 0, stream>>>(a);
        MB_CUDA_CHECK(cudaGetLastError());
    }
    return MB_OK;
}

template <typename T, bool kVec>
static mb_status launch_seg_vec(const SegArgs<T>& a, int64_t lpc, int64_t batch, cudaStream_t stream) {
    switch (lpc) {
    case 1: return launch_seg_lpc<T, 1, kVec>(a, batch, stream);
    case 2: return launch_seg_lpc<T, 2, kVec>(a, batch, stream);
    case 4: return launch_seg_lpc<T, 4, kVec>(a, batch, stream);
    case 8: return launch_seg_lpc<T, 8, kVec>(a, batch, stream);
    case 16: return launch_seg_lpc<T, 16, kVec>(a, batch, stream);
    default: return launch_seg_lpc<T, 32, kVec>(a, batch, stream);
    }
}

template <typename T>
static mb_status launch_seg(const mb_selective_scan_params* prm, const mb_selective_scan_inputs* in,
                            void* y, void* final_state, const mb_exec* ex, int64_t target_threads) {
    constexpr int TI = 16 / (int)sizeof(T);
    SegArgs<T> a;
    fill_common_args<T>(a, prm, in);
    a.y = (T*)y;
    a.fstate = (float*)final_state;
    int64_t lpc = 1;
    while (lpc * kStates < a.N) lpc *= 2; /* N <= 256: lpc <= 32 */
    choose_segments(prm->batch * a.D * lpc, a.L, target_threads, TI, &a.S, &a.seg);
    if (a.S > 65535 || prm->batch > 65535 || (a.D + kThreads - 1) / (kThreads / lpc) > 0x7fffffff)
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
    const mb_status st = vec ? launch_seg_vec<T, true>(a, lpc, prm->batch, mb_stream(ex))
                             : launch_seg_vec<T, false>(a, lpc, prm->batch, mb_stream(ex));
    if (ws) mb_device_free(ws, ws_floats * sizeof(float), ex->stream);
    return st;
}

template <int64_t kTargetThreads>
static mb_status seg_dispatch(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              void* y, void* final_state, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16)
        return launch_seg<__nv_bfloat16>(p, in, y, final_state, ex, kTargetThreads);
    return launch_seg<float>(p, in, y, final_state, ex, kTargetThreads);
}

} // namespace

/* v10: segments for about 64K threads. */
extern "C" mb_status mb_scan_fwd_cuda_v10(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    return seg_dispatch<65536>(p, in, y, final_state, ex);
}

/* v11: segments for about 32K threads (less of the sequence walked twice). */
extern "C" mb_status mb_scan_fwd_cuda_v11(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, const mb_exec* ex) {
    return seg_dispatch<32768>(p, in, y, final_state, ex);
}
