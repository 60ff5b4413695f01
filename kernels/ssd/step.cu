/*
 * step.cu -- one-token SSD step (decoding), one kernel launch: one warp per
 * channel (b, h, p) holds its N states (lane l: n = l, l + 32, ...), updates the
 * fp32 state in place and reduces C . h with shuffles (recurrent_kernel of
 * ssd_common.cuh with L = 1).
 * v2: N a multiple of 4 (16-byte aligned state, B, C): lane l owns the states
 *     4 (l + 32 k) .. + 3, read and written as float4 (B, C as 8- or 16-byte
 *     vectors): a quarter of the load instructions; other N run v1.
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

static bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

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
