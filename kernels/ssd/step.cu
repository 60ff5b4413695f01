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

/* 4 consecutive elements of p from index i, as float */
static __device__ __forceinline__ float4 load4(const float* p, int64_t i) {
    return *reinterpret_cast<const float4*>(p + i);
}
static __device__ __forceinline__ float4 load4(const __nv_bfloat16* p, int64_t i) {
    const uint2 raw = *reinterpret_cast<const uint2*>(p + i);
    const __nv_bfloat16* e = reinterpret_cast<const __nv_bfloat16*>(&raw);
    return make_float4(__bfloat162float(e[0]), __bfloat162float(e[1]), __bfloat162float(e[2]),
                       __bfloat162float(e[3]));
}

/* one warp per channel (b, h, p); N % 4 == 0, N <= 256 (two float4 per lane) */
template <typename T>
__global__ void __launch_bounds__(128) step_vec4_kernel(const SsdArgs<T> a, float* state,
                                                        T* __restrict__ y) {
    const int lane = threadIdx.x & 31;
    const int64_t ch = (int64_t)blockIdx.x * 4 + (threadIdx.x >> 5); /* (b, h, p) */
    if (ch >= a.Bsz * a.H * a.P) return;
    const int64_t p = ch % a.P, h = (ch / a.P) % a.H, b = ch / (a.P * a.H), N = a.N;
    float dtv = mb_to_float(a.dt[b * a.H + h]) + (a.bias ? a.bias[h] : 0.f);
    if (a.softplus) dtv = softplusf(dtv);
    const float decay = expf(dtv * a.A[h]);
    const int64_t ix = (b * a.H + h) * a.P + p;
    const float xv = mb_to_float(a.x[ix]), dx = dtv * xv;
    const int64_t row = (b * a.G + h / a.hpg) * N; /* (b, g, :) */
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
        *reinterpret_cast<float4*>(state + ch * N + n) = v;
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) {
        float out = fmaf(a.Dv ? a.Dv[h] : 0.f, xv, acc);
        if (a.z) out *= siluf(mb_to_float(a.z[ix]));
        y[ix] = mb_from_float<T>(out);
    }
}

template <typename T>
static mb_status step_vec4(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state, void* y,
                           const mb_exec* ex) {
    SsdArgs<T> a = make_args<T>(p, in);
    a.L = 1;
    const int64_t blocks = ceil_div(a.Bsz * a.H * a.P, 4);
    step_vec4_kernel<T><<<(unsigned)blocks, 128, 0, mb_stream(ex)>>>(a, (float*)state, (T*)y);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

constexpr int kHeadThreads = 256;
/* below this many heads in the batch v3 runs v2: one block per head leaves SMs idle
 * (H100, H 64: v2 4.6 us, v3 5.1 us at batch 1; v3 10.5 us, v2 15.5 us at batch 8) */
constexpr int64_t kMinHeads = 256;
constexpr int kHeadVec = 8; /* float4 of state a thread has in flight */

/* one block per head (b, h); kQ = N / 4 threads per state row (p) */
template <typename T, int kQ>
__global__ void __launch_bounds__(kHeadThreads) step_head_kernel(const SsdArgs<T> a, float* state,
                                                                 T* __restrict__ y) {
    const int64_t bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int t = threadIdx.x;
    float dtv = mb_to_float(a.dt[bh]) + (a.bias ? a.bias[h] : 0.f);
    if (a.softplus) dtv = softplusf(dtv);
    const float decay = expf(dtv * a.A[h]), Dh = a.Dv ? a.Dv[h] : 0.f;
    const int64_t n = 4 * (t % kQ); /* this thread's 4 states of every row */
    const int64_t grow = (b * a.G + h / a.hpg) * a.N;
    const float4 Bv = load4(a.Bm, grow + n), Cv = load4(a.Cm, grow + n);
    float4* st = reinterpret_cast<float4*>(state + bh * a.P * a.N); /* (P, N / 4) of (b, h) */
    const int total = (int)(a.P * kQ);
    for (int e0 = 0; e0 < total; e0 += kHeadThreads * kHeadVec) {
        float4 hs[kHeadVec];
        float xv[kHeadVec];
#pragma unroll
        for (int k = 0; k < kHeadVec; k++) {
            const int e = e0 + k * kHeadThreads + t;
            if (e < total) hs[k] = st[e], xv[k] = mb_to_float(a.x[bh * a.P + e / kQ]);
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
                st[e] = v;
            }
#pragma unroll
            for (int off = kQ / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
            if (e < total && t % kQ == 0) {
                const int64_t ix = bh * a.P + e / kQ;
                float out = fmaf(Dh, xv[k], acc);
                if (a.z) out *= siluf(mb_to_float(a.z[ix]));
                y[ix] = mb_from_float<T>(out);
            }
        }
    }
}

template <typename T, int kQ>
static mb_status step_head_q(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state, void* y,
                             const mb_exec* ex) {
    SsdArgs<T> a = make_args<T>(p, in);
    a.L = 1;
    step_head_kernel<T, kQ><<<(unsigned)(a.Bsz * a.H), kHeadThreads, 0, mb_stream(ex)>>>(a, (float*)state, (T*)y);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

template <typename T>
static mb_status step_head(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state, void* y,
                           const mb_exec* ex) {
    switch (p->dstate) {
    case 16: return step_head_q<T, 4>(p, in, state, y, ex);
    case 32: return step_head_q<T, 8>(p, in, state, y, ex);
    case 64: return step_head_q<T, 16>(p, in, state, y, ex);
    default: return step_head_q<T, 32>(p, in, state, y, ex);
    }
}

} // namespace

/* v1: x, z (B, H, P); dt (B, H); B, C (B, G, N); state (B, H, P, N) fp32 in/out; y (B, H, P) */
extern "C" mb_status mb_ssd_step_cuda_v1(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return step_typed<__nv_bfloat16>(p, in, state, y, ex);
    return step_typed<float>(p, in, state, y, ex);
}

/* v2: v1 with float4 state access when N % 4 == 0 (and the pointers allow it) */
extern "C" mb_status mb_ssd_step_cuda_v2(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    const bool vec = p->dstate % 4 == 0 && aligned16(state) && aligned16(in->B) && aligned16(in->C);
    if (!vec) return mb_ssd_step_cuda_v1(p, in, state, y, ex);
    if (p->dtype == MB_DTYPE_BF16) return step_vec4<__nv_bfloat16>(p, in, state, y, ex);
    return step_vec4<float>(p, in, state, y, ex);
}

/* v3: one block per head, all its states (N 16, 32, 64, 128 and at least
 * kMinHeads heads in the batch; v2 otherwise) */
extern "C" mb_status mb_ssd_step_cuda_v3(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    const int64_t N = p->dstate;
    const bool fits = (N == 16 || N == 32 || N == 64 || N == 128) && aligned16(state) &&
                      aligned16(in->B) && aligned16(in->C) && p->batch * p->nheads <= 0x7fffffff &&
                      p->batch * p->nheads >= kMinHeads;
    if (!fits) return mb_ssd_step_cuda_v2(p, in, state, y, ex);
    if (p->dtype == MB_DTYPE_BF16) return step_head<__nv_bfloat16>(p, in, state, y, ex);
    return step_head<float>(p, in, state, y, ex);
}
