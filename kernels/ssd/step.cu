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
