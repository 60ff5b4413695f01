/*
 * step.cu -- one-token SSD step (decoding), one kernel launch: one warp per
 * channel (b, h, p) holds its N states (lane l: n = l, l + 32, ...), updates the
 * fp32 state in place and reduces C . h with shuffles (recurrent_kernel of
 * ssd_common.cuh with L = 1).
 * v2: N a multiple of 4 (16-byte aligned state, B, C): lane l owns the states
 *     4 (l + 32 k) .. + 3, read and written as float4 (B, C as 8- or 16-byte
 *     vectors): a quarter of the load instructions; other N run v1.
 * v3: one block of 256 threads per head (b, h) for all its P x N states
 *     (N 16, 32, 64 or 128, 16-byte aligned; else v2): dt', softplus and the
 *     decay once per block, up to 8 float4 of state in flight per thread, B, C
 *     loaded once per thread, C . h reduced over the N / 4 lanes of a row by
 *     shuffles. v2's warp per channel runs 4 waves of small blocks, each warp
 *     waiting on its own scalar chain; v3 is one wave of 512 blocks at B 8, H 64.
 *     Fewer than kMinHeads heads in the batch run v2 (more, smaller blocks).
 * v4: v3's kernel held to 64 registers (4 blocks per SM instead of 3: one wave
 *     at batch 8 x 64 heads).
 * v5: one thread per 8 consecutive states of a row (N 8, 16, 32, 64, 128 or 256;
 *     16-byte aligned; else v4): the state, B and C as 16-byte loads (fp32: two),
 *     dt', softplus and the decay recomputed by every thread (no shared memory, no
 *     barrier), C . h reduced over the N / 8 lanes of a row by shuffles. The launch
 *     has the shape of a plain copy of the state: every load of a thread is issued
 *     before its first use, and nothing waits on another thread but the shuffles.
 * v6: v5 made lean, since at batch 8 v5 is bound by its instructions,
 *     not its bytes (bf16 state: 8.5 us in a CUDA graph where a bare read-modify-write
 *     of the same state takes 4.5): a 3-D grid (row groups, head, batch) leaves one
 *     integer division per thread (the group of the head), dt', the decay and the
 *     gate by the fast intrinsics, and an fp32 state read as two 16-byte vectors
 *     q and q + N / 8 of its row, so that each load instruction of a row's threads
 *     covers whole 32-byte sectors (v5's two halves of one 32-byte run each sent
 *     every sector twice).
 * v7, v8: v6 with 2 and 4 rows of a head per thread (B, C unpacked, dt' and the decay
 *     computed once for them all; fewer threads, each with more loads in flight).
 * v9, v10: v6, v7 as programmatic dependent launches (griddepcontrol.wait before any
 *     memory access): the next token's blocks are scheduled while this one's finish.
 *     H100, batch 8, bf16 state (tools/step_timing.cu, tools/h100_step_timing_v9v10.txt):
 *     v10 5.04 us in a CUDA graph, 5.37 from host launches (v7 5.68 / 6.45).
 * v11 (default): v10 with the next launch let go before the wait instead of after it.
 *     H100 sweep at fa13187, batch 8, bf16 state: v11 4.86 us launched, 4.60 from a graph
 *     (v10 4.96 / 4.73; fp32 state v11 7.81 / 7.47, v10 7.89 / 7.58).
 * State in bf16 (params->state_bf16): every version reads and writes the state
 * as bf16 and computes in fp32 (half the bytes of the fp32 state); v1's
 * recurrent kernel is fp32-only, so its bf16 state runs a warp per channel
 * (step_warp_kernel, any N); v2, v3 take 8-byte aligned bf16 state rows.
 */
#include "ssd.h"
#include "ssd_common.cuh"

using namespace mbssd;

template <typename T>
static mb_status step_typed(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state, void* y,
                            const mb_exec* ex) {
    SsdArgs<T> a = make_args<T>(p, in);
    a.L = 1;
    return launch_recurrent<T>(a, (const float*)state, (float*)state, y, mb_stream(ex));
}

namespace {

typedef __nv_bfloat16 bf16;

/* 4 consecutive elements of p from index i, as float */
template <typename I>
static __device__ __forceinline__ float4 load4(const float* p, I i) {
    return *reinterpret_cast<const float4*>(p + i);
}
template <typename I>
static __device__ __forceinline__ float4 load4(const bf16* p, I i) {
    const uint2 raw = *reinterpret_cast<const uint2*>(p + i);
    const bf16* e = reinterpret_cast<const bf16*>(&raw);
    return make_float4(__bfloat162float(e[0]), __bfloat162float(e[1]), __bfloat162float(e[2]),
                       __bfloat162float(e[3]));
}
/* v into p[i .. i + 3] (16 bytes of fp32 or 8 of bf16, rounded to nearest) */
template <typename I>
static __device__ __forceinline__ void store4(float* p, I i, float4 v) {
    *reinterpret_cast<float4*>(p + i) = v;
}
template <typename I>
static __device__ __forceinline__ void store4(bf16* p, I i, float4 v) {
    const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
    uint2 raw;
    raw.x = *reinterpret_cast<const uint32_t*>(&lo), raw.y = *reinterpret_cast<const uint32_t*>(&hi);
    *reinterpret_cast<uint2*>(p + i) = raw;
}

/* dt' = softplus(dt + dt_bias) (or dt + dt_bias) of head (b, h) = bh */
template <typename T>
static __device__ __forceinline__ float step_dt(const SsdArgs<T>& a, int64_t bh, int64_t h) {
    const float dtv = mb_to_float(a.dt[bh]) + (a.bias ? a.bias[h] : 0.f);
    return a.softplus ? softplusf(dtv) : dtv;
}

/* y of channel ix = (b, h, p) from its C . h sum: + D x, gated by silu(z) */
template <typename T>
static __device__ __forceinline__ void step_out(const SsdArgs<T>& a, T* y, int64_t ix, float Dh,
                                                float xv, float ch) {
    float out = fmaf(Dh, xv, ch);
    if (a.z) out *= siluf(mb_to_float(a.z[ix]));
    y[ix] = mb_from_float<T>(out);
}

/* What a warp per channel (b, h, p) needs of its channel. */
struct StepChannel {
    int64_t ch, h, row; /* channel (b, h, p); head; (b, g, :) row of B, C */
    float decay, xv, dx; /* exp(dt' A), x, dt' x */
};
/* warp (blockIdx.x * 4 + warp) of a 128-thread block; false past the last channel */
template <typename T>
static __device__ __forceinline__ bool step_channel(const SsdArgs<T>& a, StepChannel& c) {
    c.ch = (int64_t)blockIdx.x * 4 + (threadIdx.x >> 5);
    if (c.ch >= a.Bsz * a.H * a.P) return false;
    c.h = (c.ch / a.P) % a.H;
    const int64_t b = c.ch / (a.P * a.H);
    const float dtv = step_dt(a, b * a.H + c.h, c.h);
    c.decay = expf(dtv * a.A[c.h]);
    c.xv = mb_to_float(a.x[c.ch]), c.dx = dtv * c.xv;
    c.row = (b * a.G + c.h / a.hpg) * a.N;
    return true;
}

/* one warp per channel (b, h, p), any N: lane l owns the states l, l + 32, ..
 * (v1 with a bf16 state; v1's fp32 state runs the recurrent kernel) */
template <typename T, typename S>
__global__ void __launch_bounds__(128) step_warp_kernel(const SsdArgs<T> a, S* state,
                                                        T* __restrict__ y) {
    const int lane = threadIdx.x & 31;
    StepChannel c;
    if (!step_channel(a, c)) return;
    const int64_t ch = c.ch, h = c.h, row = c.row, N = a.N;
    const float decay = c.decay, xv = c.xv, dx = c.dx;
    float acc = 0.f;
    for (int64_t n = lane; n < N; n += 32) {
        // h = exp(dt' A) h + dt' x B
        const float v = fmaf(decay, mb_to_float(state[ch * N + n]), dx * mb_to_float(a.Bm[row + n]));
        acc = fmaf(v, mb_to_float(a.Cm[row + n]), acc);
        state[ch * N + n] = mb_from_float<S>(v);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) step_out(a, y, ch, a.Dv ? a.Dv[h] : 0.f, xv, acc);
}

/* one warp per channel (b, h, p); N % 4 == 0, N <= 256 (two float4 per lane) */
template <typename T, typename S>
__global__ void __launch_bounds__(128) step_vec4_kernel(const SsdArgs<T> a, S* state,
                                                        T* __restrict__ y) {
    const int lane = threadIdx.x & 31;
    StepChannel c;
    if (!step_channel(a, c)) return;
    const int64_t ch = c.ch, ix = c.ch, h = c.h, row = c.row, N = a.N;
    const float decay = c.decay, xv = c.xv, dx = c.dx;
    float4 hs[2], Bv[2], Cv[2];
#pragma unroll
    for (int k = 0; k < 2; k++) {
        const int64_t n = 4 * (lane + 32 * k);
        if (n < N) hs[k] = load4(state, ch * N + n), Bv[k] = load4(a.Bm, row + n), Cv[k] = load4(a.Cm, row + n);
    }
    float acc = 0.f;
#pragma unroll
    for (int k = 0; k < 2; k++) {
        const int64_t n = 4 * (lane + 32 * k);
        if (n >= N) continue;
        float4 v = hs[k];
        // h = exp(dt' A) h + dt' x B
        v.x = fmaf(decay, v.x, dx * Bv[k].x), v.y = fmaf(decay, v.y, dx * Bv[k].y);
        v.z = fmaf(decay, v.z, dx * Bv[k].z), v.w = fmaf(decay, v.w, dx * Bv[k].w);
        acc = fmaf(v.x, Cv[k].x, fmaf(v.y, Cv[k].y, fmaf(v.z, Cv[k].z, fmaf(v.w, Cv[k].w, acc))));
        store4(state, ch * N + n, v);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) step_out(a, y, ix, a.Dv ? a.Dv[h] : 0.f, xv, acc);
}

/* a kernel of warps per channel: 4 channels per block of 128 */
template <typename T, typename S, typename Kernel>
static mb_status launch_per_channel(Kernel kernel, const mb_ssd_params* p, const mb_ssd_inputs* in,
                                    void* state, void* y, const mb_exec* ex) {
    SsdArgs<T> a = make_args<T>(p, in);
    a.L = 1;
    const int64_t blocks = ceil_div(a.Bsz * a.H * a.P, 4);
    kernel<<<(unsigned)blocks, 128, 0, mb_stream(ex)>>>(a, (S*)state, (T*)y);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

template <typename T>
static mb_status step_vec4(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state, void* y,
                           const mb_exec* ex) {
    if (p->state_bf16)
        return launch_per_channel<T, bf16>(step_vec4_kernel<T, bf16>, p, in, state, y, ex);
    return launch_per_channel<T, float>(step_vec4_kernel<T, float>, p, in, state, y, ex);
}

constexpr int kHeadThreads = 256;
/* below this many heads in the batch v3 runs v2: one block per head leaves SMs idle
 * (H100, H 64: v2 4.6 us, v3 5.1 us at batch 1; v3 10.5 us, v2 15.5 us at batch 8) */
constexpr int64_t kMinHeads = 256;
constexpr int kHeadVec = 8; /* float4 of state a thread has in flight */

/* one block per head (b, h); kQ = N / 4 threads per state row (p) */
template <typename T, typename S, int kQ, int kMinBlocks>
__global__ void __launch_bounds__(kHeadThreads, kMinBlocks) step_head_kernel(const SsdArgs<T> a, S* state,
                                                                 T* __restrict__ y) {
    const int64_t bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int t = threadIdx.x;
    const float dtv = step_dt(a, bh, h);
    const float decay = expf(dtv * a.A[h]), Dh = a.Dv ? a.Dv[h] : 0.f;
    const int64_t n = 4 * (t % kQ); /* this thread's 4 states of every row */
    const int64_t grow = (b * a.G + h / a.hpg) * a.N;
    const float4 Bv = load4(a.Bm, grow + n), Cv = load4(a.Cm, grow + n);
    S* st = state + bh * a.P * a.N; /* (P, N) of (b, h): group e holds states 4e .. 4e + 3 */
    const int total = (int)(a.P * kQ);
    for (int e0 = 0; e0 < total; e0 += kHeadThreads * kHeadVec) {
        float4 hs[kHeadVec];
        float xv[kHeadVec];
#pragma unroll
        for (int k = 0; k < kHeadVec; k++) {
            const int e = e0 + k * kHeadThreads + t;
            if (e < total) hs[k] = load4(st, 4 * e), xv[k] = mb_to_float(a.x[bh * a.P + e / kQ]);
        }
#pragma unroll
        for (int k = 0; k < kHeadVec; k++) {
            const int e = e0 + k * kHeadThreads + t; /* warp-uniform: rows never straddle */
            if (e0 + k * kHeadThreads >= total) break;
            float acc = 0.f;
            if (e < total) {
                float4 v = hs[k];
                const float dx = dtv * xv[k];
                // h = exp(dt' A) h + dt' x B
                v.x = fmaf(decay, v.x, dx * Bv.x), v.y = fmaf(decay, v.y, dx * Bv.y);
                v.z = fmaf(decay, v.z, dx * Bv.z), v.w = fmaf(decay, v.w, dx * Bv.w);
                acc = fmaf(v.x, Cv.x, fmaf(v.y, Cv.y, fmaf(v.z, Cv.z, v.w * Cv.w)));
                store4(st, 4 * e, v);
            }
#pragma unroll
            for (int off = kQ / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
            if (e < total && t % kQ == 0) step_out(a, y, bh * a.P + e / kQ, Dh, xv[k], acc);
        }
    }
}

/* kMinBlocks: blocks of kHeadThreads per SM asked of the register allocator (v3 3, v4 4) */
template <typename T, int kQ, int kMinBlocks>
static mb_status step_head_q(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state, void* y,
                             const mb_exec* ex) {
    SsdArgs<T> a = make_args<T>(p, in);
    a.L = 1;
    const unsigned blocks = (unsigned)(a.Bsz * a.H);
    if (p->state_bf16)
        step_head_kernel<T, bf16, kQ, kMinBlocks><<<blocks, kHeadThreads, 0, mb_stream(ex)>>>(a, (bf16*)state, (T*)y);
    else
        step_head_kernel<T, float, kQ, kMinBlocks><<<blocks, kHeadThreads, 0, mb_stream(ex)>>>(a, (float*)state, (T*)y);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

template <typename T, int kMinBlocks>
static mb_status step_head(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state, void* y,
                           const mb_exec* ex) {
    switch (p->dstate) {
    case 16: return step_head_q<T, 4, kMinBlocks>(p, in, state, y, ex);
    case 32: return step_head_q<T, 8, kMinBlocks>(p, in, state, y, ex);
    case 64: return step_head_q<T, 16, kMinBlocks>(p, in, state, y, ex);
    default: return step_head_q<T, 32, kMinBlocks>(p, in, state, y, ex);
    }
}

/* 8 consecutive elements of p from index i (16-byte aligned), as float */
struct Float8 {
    float v[8];
};
template <typename I>
static __device__ __forceinline__ Float8 load8(const float* p, I i) {
    const float4 lo = load4(p, i), hi = load4(p, i + 4);
    return Float8{{lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w}};
}
template <typename I>
static __device__ __forceinline__ Float8 load8(const bf16* p, I i) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p + i);
    const __nv_bfloat162* e = reinterpret_cast<const __nv_bfloat162*>(&raw);
    Float8 f;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const float2 t = __bfloat1622float2(e[k]);
        f.v[2 * k] = t.x, f.v[2 * k + 1] = t.y;
    }
    return f;
}
/* f into p[i .. i + 7] (fp32: two 16-byte stores; bf16: one, rounded to nearest) */
template <typename I>
static __device__ __forceinline__ void store8(float* p, I i, const Float8& f) {
    store4(p, i, make_float4(f.v[0], f.v[1], f.v[2], f.v[3]));
    store4(p, i + 4, make_float4(f.v[4], f.v[5], f.v[6], f.v[7]));
}
template <typename I>
static __device__ __forceinline__ void store8(bf16* p, I i, const Float8& f) {
    uint4 raw;
    uint32_t* w = reinterpret_cast<uint32_t*>(&raw);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const __nv_bfloat162 t = __floats2bfloat162_rn(f.v[2 * k], f.v[2 * k + 1]);
        w[k] = *reinterpret_cast<const uint32_t*>(&t);
    }
    *reinterpret_cast<uint4*>(p + i) = raw;
}

constexpr int kThread8Block = 256;

/* one thread per 8 states: thread i owns states 8 (i % kQ) .. + 7 of channel
 * (b, h, p) = i / kQ, kQ = N / 8 (a power of two <= 32, so a row never straddles
 * a warp). total = B * H * P * kQ < 2^31 (checked by the launcher). */
template <typename T, typename S, int kQ>
__global__ void __launch_bounds__(kThread8Block) step_thread8_kernel(const SsdArgs<T> a, S* state,
                                                                     T* __restrict__ y, int total) {
    const int i = blockIdx.x * kThread8Block + threadIdx.x;
    const bool live = i < total; /* dead lanes still take part in the shuffles */
    const int ch = i / kQ, q = i % kQ;
    const int P = (int)a.P, H = (int)a.H;
    const int bh = ch / P, h = bh % H, b = bh / H;
    const int64_t n = 8 * q;
    const int64_t grow = ((int64_t)b * a.G + h / a.hpg) * a.N; /* (b, g, :) of B, C */
    const int64_t sidx = (int64_t)ch * a.N + n;                /* this thread's states */
    float acc = 0.f, xv = 0.f;
    if (live) {
        /* every load before the first use */
        Float8 hs = load8(state, sidx);
        const Float8 Bv = load8(a.Bm, grow + n), Cv = load8(a.Cm, grow + n);
        xv = mb_to_float(a.x[ch]);
        const float dtv = step_dt(a, (int64_t)bh, (int64_t)h);
        const float decay = expf(dtv * a.A[h]), dx = dtv * xv;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            // h = exp(dt' A) h + dt' x B
            hs.v[k] = fmaf(decay, hs.v[k], dx * Bv.v[k]);
            acc = fmaf(hs.v[k], Cv.v[k], acc);
        }
        store8(state, sidx, hs);
    }
#pragma unroll
    for (int off = kQ / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (live && q == 0) step_out(a, y, (int64_t)ch, a.Dv ? a.Dv[h] : 0.f, xv, acc);
}

template <typename T, typename S, int kQ>
static mb_status step_thread8_q(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                                void* y, const mb_exec* ex) {
    SsdArgs<T> a = make_args<T>(p, in);
    a.L = 1;
    const int64_t total = a.Bsz * a.H * a.P * kQ;
    const unsigned blocks = (unsigned)ceil_div(total, kThread8Block);
    step_thread8_kernel<T, S, kQ><<<blocks, kThread8Block, 0, mb_stream(ex)>>>(a, (S*)state, (T*)y,
                                                                              (int)total);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

template <typename T, typename S>
static mb_status step_thread8(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                              void* y, const mb_exec* ex) {
    switch (p->dstate) {
    case 8: return step_thread8_q<T, S, 1>(p, in, state, y, ex);
    case 16: return step_thread8_q<T, S, 2>(p, in, state, y, ex);
    case 32: return step_thread8_q<T, S, 4>(p, in, state, y, ex);
    case 64: return step_thread8_q<T, S, 8>(p, in, state, y, ex);
    case 128: return step_thread8_q<T, S, 16>(p, in, state, y, ex);
    default: return step_thread8_q<T, S, 32>(p, in, state, y, ex); /* 256 */
    }
}

/* kSV consecutive elements of p from index i (16-byte aligned runs of the state) */
template <int kSV, typename X>
static __device__ __forceinline__ void load_run_f(const X* p, int i, float* out) {
    if constexpr (kSV == 4) {
        const float4 f = load4(p, i);
        out[0] = f.x, out[1] = f.y, out[2] = f.z, out[3] = f.w;
    } else {
        const Float8 f = load8(p, i);
#pragma unroll
        for (int k = 0; k < 8; k++) out[k] = f.v[k];
    }
}
template <int kSV, typename S>
static __device__ __forceinline__ void store_run_f(S* p, int i, const float* v) {
    if constexpr (kSV == 4) {
        store4(p, i, make_float4(v[0], v[1], v[2], v[3]));
    } else {
        Float8 f;
#pragma unroll
        for (int k = 0; k < 8; k++) f.v[k] = v[k];
        store8(p, i, f);
    }
}

/* How the lean kernel is launched: plainly (v6 - v8), or as a programmatic dependent
 * launch that waits for the previous kernel and then lets the next be scheduled (v9, v10),
 * or lets the next be scheduled first and then waits (v11). */
enum { kPdlNone = 0, kPdlWaitFirst = 1, kPdlTriggerFirst = 2 };

/* grid (ceil(P kQ / (256 kG)), H, B): thread t of block x of head (b, h) owns 8
 * states of each of the kG rows p_j = e_j / kQ, e_j = 256 (kG x + j) + t, as kV runs of
 * kSV (16 bytes of state each) at runs q and q + kQ of the row, q = t % kQ (the same for
 * every j, so B and C are loaded and unpacked once); B * H * P * N < 2^31 (checked by the
 * launcher). */
template <typename T, typename S, int kQ, int kG, int kPDL>
__global__ void __launch_bounds__(kThread8Block) step_lean_kernel(const SsdArgs<T> a, S* state,
                                                                  T* __restrict__ y) {
    constexpr int kSV = 16 / (int)sizeof(S), kV = 8 / kSV;
    if constexpr (kPDL == kPdlWaitFirst) { /* launched with programmatic stream serialization (v9, v10) */
        /* wait until the kernel before this one in the stream has finished and its writes
         * (the state of the previous token) are visible: before any global access */
        mb_pdl_wait();
        /* then let the next one be scheduled: its blocks take the SM slots this grid frees */
        mb_pdl_launch_dependents();
    } else if constexpr (kPDL == kPdlTriggerFirst) { /* v11 */
        /* let the next one be scheduled at once (its blocks wait in turn before any access:
         * every grid before it is then resident, so none can starve), then wait as above */
        mb_pdl_launch_dependents();
        mb_pdl_wait();
    }
    const int t = threadIdx.x, q = t % kQ, e0 = blockIdx.x * kThread8Block * kG + t;
    const int h = blockIdx.y, b = blockIdx.z, H = gridDim.y, P = (int)a.P, N = 8 * kQ;
    const int bh = b * H + h;
    const int grow = (b * (int)a.G + h / (int)a.hpg) * N; /* (b, g, :) of B, C */
    float hs[kG][8], Bv[8], Cv[8], xv[kG], acc[kG];
    /* every load before the first use: B, C, the kG state runs, x */
#pragma unroll
    for (int j = 0; j < kV; j++) {
        load_run_f<kSV>(a.Bm, grow + kSV * (q + j * kQ), Bv + j * kSV);
        load_run_f<kSV>(a.Cm, grow + kSV * (q + j * kQ), Cv + j * kSV);
    }
#pragma unroll
    for (int g = 0; g < kG; g++) {
        const int p = (e0 + g * kThread8Block) / kQ, ch = bh * P + p;
        xv[g] = 0.f;
        if (p < P) {
#pragma unroll
            for (int j = 0; j < kV; j++) load_run_f<kSV>(state, ch * N + kSV * (q + j * kQ), hs[g] + j * kSV);
            xv[g] = mb_to_float(a.x[ch]);
        }
    }
    float dtv = mb_to_float(a.dt[bh]) + (a.bias ? a.bias[h] : 0.f);
    if (a.softplus) dtv = dtv > 20.f ? dtv : __logf(1.f + __expf(dtv));
    const float decay = __expf(dtv * a.A[h]), Dh = a.Dv ? a.Dv[h] : 0.f;
#pragma unroll
    for (int g = 0; g < kG; g++) {
        const int p = (e0 + g * kThread8Block) / kQ, ch = bh * P + p;
        acc[g] = 0.f;
        if (p < P) { /* rows past P: dead lanes, which still take part in the shuffles */
            const float dx = dtv * xv[g];
#pragma unroll
            for (int k = 0; k < 8; k++) {
                // h = exp(dt' A) h + dt' x B
                hs[g][k] = fmaf(decay, hs[g][k], dx * Bv[k]);
                acc[g] = fmaf(hs[g][k], Cv[k], acc[g]);
            }
#pragma unroll
            for (int j = 0; j < kV; j++) store_run_f<kSV>(state, ch * N + kSV * (q + j * kQ), hs[g] + j * kSV);
        }
    }
#pragma unroll
    for (int g = 0; g < kG; g++) {
#pragma unroll
        for (int off = kQ / 2; off > 0; off >>= 1) acc[g] += __shfl_xor_sync(0xffffffffu, acc[g], off);
        const int p = (e0 + g * kThread8Block) / kQ, ch = bh * P + p;
        if (p < P && q == 0) {
            float out = fmaf(Dh, xv[g], acc[g]);
            if (a.z) {
                /* z loaded here, by the row's first lane: loading it with x (every lane)
                 * measured no faster at batch 8 and cost 8 registers (H100, 2026-11-27) */
                const float zv = mb_to_float(a.z[ch]);
                out *= __fdividef(zv, 1.f + __expf(-zv));
            }
            y[ch] = mb_from_float<T>(out);
        }
    }
}

template <typename T, typename S, int kQ, int kG, int kPDL>
static mb_status step_lean_q(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                             void* y, const mb_exec* ex) {
    SsdArgs<T> a = make_args<T>(p, in);
    a.L = 1;
    const dim3 grid((unsigned)ceil_div(a.P * kQ, kThread8Block * kG), (unsigned)a.H, (unsigned)a.Bsz);
    if constexpr (kPDL) { /* programmatic dependent launch: overlaps this launch with the tail of the last kernel */
        MB_CUDA_CHECK(mb_launch_programmatic(step_lean_kernel<T, S, kQ, kG, kPDL>, grid, dim3(kThread8Block),
                                          mb_stream(ex), a, (S*)state, (T*)y));
    } else {
        step_lean_kernel<T, S, kQ, kG, kPDL><<<grid, kThread8Block, 0, mb_stream(ex)>>>(a, (S*)state, (T*)y);
    }
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

template <typename T, typename S, int kG, int kPDL>
static mb_status step_lean(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state, void* y,
                           const mb_exec* ex) {
    switch (p->dstate) {
    case 8: return step_lean_q<T, S, 1, kG, kPDL>(p, in, state, y, ex);
    case 16: return step_lean_q<T, S, 2, kG, kPDL>(p, in, state, y, ex);
    case 32: return step_lean_q<T, S, 4, kG, kPDL>(p, in, state, y, ex);
    case 64: return step_lean_q<T, S, 8, kG, kPDL>(p, in, state, y, ex);
    case 128: return step_lean_q<T, S, 16, kG, kPDL>(p, in, state, y, ex);
    default: return step_lean_q<T, S, 32, kG, kPDL>(p, in, state, y, ex); /* 256 */
    }
}

} // namespace

/* Is the state 16-byte (fp32) or 8-byte (bf16) aligned, as 4 states at a time need? */
static bool state_aligned(const mb_ssd_params* p, const void* state) {
    return ((uintptr_t)state & (p->state_bf16 ? 7u : 15u)) == 0;
}

/* v1: x, z (B, H, P); dt (B, H); B, C (B, G, N); state (B, H, P, N) fp32 (or bf16)
 * in/out; y (B, H, P) */
extern "C" mb_status mb_ssd_step_cuda_v1(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    const bool bf = p->dtype == MB_DTYPE_BF16;
    if (p->state_bf16) /* validation: bf16 activations */
        return launch_per_channel<bf16, bf16>(step_warp_kernel<bf16, bf16>, p, in, state, y, ex);
    if (bf) return step_typed<bf16>(p, in, state, y, ex);
    return step_typed<float>(p, in, state, y, ex);
}

/* v2: v1 with float4 state access when N % 4 == 0 (and the pointers allow it) */
extern "C" mb_status mb_ssd_step_cuda_v2(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    const bool vec = p->dstate % 4 == 0 && state_aligned(p, state) && aligned16(in->B) &&
                     aligned16(in->C);
    if (!vec) return mb_ssd_step_cuda_v1(p, in, state, y, ex);
    if (p->dtype == MB_DTYPE_BF16) return step_vec4<bf16>(p, in, state, y, ex);
    return step_vec4<float>(p, in, state, y, ex);
}

/* Does the head kernel take this call? (else v2) */
static bool head_kernel_fits(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* state) {
    const int64_t N = p->dstate;
    return (N == 16 || N == 32 || N == 64 || N == 128) && state_aligned(p, state) &&
           aligned16(in->B) && aligned16(in->C) && p->batch * p->nheads <= 0x7fffffff &&
           p->batch * p->nheads >= kMinHeads;
}

template <int kMinBlocks>
static mb_status step_per_head(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                               void* y, const mb_exec* ex) {
    if (!head_kernel_fits(p, in, state)) return mb_ssd_step_cuda_v2(p, in, state, y, ex);
    if (p->dtype == MB_DTYPE_BF16) return step_head<bf16, kMinBlocks>(p, in, state, y, ex);
    return step_head<float, kMinBlocks>(p, in, state, y, ex);
}

/* v3: one block per head, all its states (N 16, 32, 64, 128 and at least
 * kMinHeads heads in the batch; v2 otherwise); 3 blocks per SM (<= 80 registers,
 * the occupancy it was first measured with) */
extern "C" mb_status mb_ssd_step_cuda_v3(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    return step_per_head<3>(p, in, state, y, ex);
}

/* v4: v3's kernel held to 64 registers, 4 blocks per SM (8-24 bytes spilled):
 * 528 block slots on 132 SMs, so batch 8 x 64 heads runs in one wave (v3's 3
 * blocks per SM: two waves). H100 (kernels/ssd/tools/step_timing.cu,
 * H 64 P 64 N 128, 100 steps per event pair): batch 8 10.6 us vs v3 12.4 (fp32
 * state), 8.5 vs 11.4 (bf16 state). */
extern "C" mb_status mb_ssd_step_cuda_v4(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    return step_per_head<4>(p, in, state, y, ex);
}

/* Does the thread-per-8-states kernel of v5 / v6 take this call? (else v4) v6
 * indexes the state in 32 bits and puts heads and batch on grid y and z. */
static bool thread8_fits(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* state) {
    const int64_t N = p->dstate;
    const bool pow2 = N == 8 || N == 16 || N == 32 || N == 64 || N == 128 || N == 256;
    return pow2 && ((uintptr_t)state & 15u) == 0 && aligned16(in->B) && aligned16(in->C) &&
           p->batch * p->nheads * p->headdim * N <= 0x7fffffff && p->nheads <= 65535 &&
           p->batch <= 65535;
}

/* v5: one thread per 8 states, no shared memory or barrier (N 8 .. 256, powers of
 * two, 16-byte aligned state, B, C; else v4) */
extern "C" mb_status mb_ssd_step_cuda_v5(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    if (!thread8_fits(p, in, state)) return mb_ssd_step_cuda_v4(p, in, state, y, ex);
    const bool bf = p->dtype == MB_DTYPE_BF16;
    if (p->state_bf16) return step_thread8<bf16, bf16>(p, in, state, y, ex); /* bf16 activations */
    if (bf) return step_thread8<bf16, float>(p, in, state, y, ex);
    return step_thread8<float, float>(p, in, state, y, ex);
}

/* The lean kernel with kG rows per thread (v6 - v11), where it fits (else v4); kPDL:
 * launched as a programmatic dependent launch (v9, v10: wait first; v11: trigger first). */
template <int kG, int kPDL = kPdlNone>
static mb_status step_lean_rows(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                                void* y, const mb_exec* ex) {
    if (!thread8_fits(p, in, state)) return mb_ssd_step_cuda_v4(p, in, state, y, ex);
    const bool bf = p->dtype == MB_DTYPE_BF16;
    if (p->state_bf16) return step_lean<bf16, bf16, kG, kPDL>(p, in, state, y, ex); /* bf16 activations */
    if (bf) return step_lean<bf16, float, kG, kPDL>(p, in, state, y, ex);
    return step_lean<float, float, kG, kPDL>(p, in, state, y, ex);
}

/* v6: v5 lean: a 3-D grid without per-thread divisions but one, fast intrinsics for
 * dt', the decay and the gate, fp32 state runs that fill whole sectors (else v4) */
extern "C" mb_status mb_ssd_step_cuda_v6(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    return step_lean_rows<1>(p, in, state, y, ex);
}

/* v7: v6 with 2 rows per thread: B, C, dt' and the decay once for both */
extern "C" mb_status mb_ssd_step_cuda_v7(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    return step_lean_rows<2>(p, in, state, y, ex);
}

/* v8: v6 with 4 rows per thread */
extern "C" mb_status mb_ssd_step_cuda_v8(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    return step_lean_rows<4>(p, in, state, y, ex);
}

/* v9: v6 launched as a programmatic dependent launch (cudaLaunchKernelEx with
 * programmatic stream serialization): its blocks are scheduled while the kernel before it
 * in the stream finishes, and wait (griddepcontrol.wait) for it before touching memory, so
 * a loop of steps no longer pays the whole launch gap between tokens. Safe after any kernel:
 * nothing is read or written before the wait. */
extern "C" mb_status mb_ssd_step_cuda_v9(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    return step_lean_rows<1, kPdlWaitFirst>(p, in, state, y, ex);
}

/* v10: v7 (2 rows per thread) launched as v9 */
extern "C" mb_status mb_ssd_step_cuda_v10(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                          void* state, void* y, const mb_exec* ex) {
    return step_lean_rows<2, kPdlWaitFirst>(p, in, state, y, ex);
}

/* v11: v10 with the order of the two controls swapped: the next launch is let go before
 * the wait, so the next token's blocks are scheduled as soon as this grid is resident */
extern "C" mb_status mb_ssd_step_cuda_v11(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                          void* state, void* y, const mb_exec* ex) {
    return step_lean_rows<2, kPdlTriggerFirst>(p, in, state, y, ex);
}
