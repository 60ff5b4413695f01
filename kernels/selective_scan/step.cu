/*
 * step.cu -- one-token selective-scan step (decoding), one kernel launch.
 * TPC threads per channel (b, d) split the N states (n = sub, sub+TPC, ...),
 * update h in place in fp32, and reduce C . h over the TPC lanes with shuffles.
 *
 * v1: TPC 4 for N <= 32, 32 above.
 * v2: N in {4, 8, ..., 128}: N/4 threads per channel, 4 consecutive states each, vector access.
 * v3: v2 as a programmatic dependent launch (the SSD's step v11 pattern): the next token's
 *     launch is let go at once and each grid waits (griddepcontrol.wait) for the one before
 *     it before any memory access, so a decode loop does not pay the whole launch gap between
 *     tokens. Other N as v1 (plain launches).
 */
#include "scan_common.cuh"
#include "selective_scan.h"

using namespace mbscan;

namespace {

template <typename T, int TPC>
__global__ void scan_step_kernel(const T* __restrict__ u, const T* __restrict__ delta,
                                 const float* __restrict__ A, const T* __restrict__ Bm,
                                 const T* __restrict__ Cm, const float* __restrict__ Dv,
                                 const T* __restrict__ z, const float* __restrict__ bias,
                                 float* __restrict__ state, T* __restrict__ y, int64_t Bsz,
                                 int64_t D, int64_t N, int64_t G, int64_t dpg, int use_softplus) {
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t ch = tid / TPC; /* (b, d) */
    const int sub = (int)(tid % TPC);
    const bool ok = ch < Bsz * D;
    float acc = 0.f, uu = 0.f;
    if (ok) {
        const int64_t d = ch % D, b = ch / D;
        const int64_t bcn = (b * G + d / dpg) * N;
        float dt = mb_to_float(delta[ch]) + (bias ? bias[d] : 0.f);
        if (use_softplus) dt = softplus(dt);
        uu = mb_to_float(u[ch]);
        const float du = dt * uu;
        for (int64_t n = sub; n < N; n += TPC) {
            const float a = fast_exp2(dt * A[d * N + n] * kLog2e);
            float h = state[ch * N + n];
            h = fmaf(a, h, du * mb_to_float(Bm[bcn + n]));
            state[ch * N + n] = h;
            acc = fmaf(mb_to_float(Cm[bcn + n]), h, acc);
        }
    }
#pragma unroll
    for (int off = TPC / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (ok && sub == 0) {
        const int64_t d = ch % D;
        float out = acc + (Dv ? Dv[d] : 0.f) * uu;
        if (z) {
            const float zz = mb_to_float(z[ch]);
            out *= zz * sigmoidf(zz);
        }
        y[ch] = mb_from_float<T>(out);
    }
}

template <typename T, int TPC>
mb_status launch_step(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                      void* state, void* y, const mb_exec* ex) {
    const int64_t threads = p->batch * p->dim * TPC;
    const int block = 256;
    scan_step_kernel<T, TPC><<<(unsigned)((threads + block - 1) / block), block, 0, mb_stream(ex)>>>(
        (const T*)in->u, (const T*)in->delta, (const float*)in->A, (const T*)in->B,
        (const T*)in->C, (const float*)in->D, (const T*)in->z, (const float*)in->delta_bias,
        (float*)state, (T*)y, p->batch, p->dim, p->dstate, p->ngroups, p->dim / p->ngroups,
        p->delta_softplus);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

template <typename T>
mb_status step_dispatch(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                        void* state, void* y, const mb_exec* ex) {
    if (p->dstate <= 32) return launch_step<T, 4>(p, in, state, y, ex);
    return launch_step<T, 32>(p, in, state, y, ex);
}


/* v2: N in {4, 8, ..., 128}: N/4 threads per channel, each owning 4 consecutive
 * states, so the state, A (fp32) and B, C are read and written as 16-byte
 * (fp32) or 8-byte (bf16) vectors; C . h reduced over the N/4 lanes.
 * kPdl (v3): launched with programmatic stream serialization; lets the next grid be
 * scheduled, then waits for the previous one's writes (the state) before any access. */
template <typename T, int TPC, bool kPdl>
__global__ void scan_step_vec4_kernel(const T* __restrict__ u, const T* __restrict__ delta,
                                      const float* __restrict__ A, const T* __restrict__ Bm,
                                      const T* __restrict__ Cm, const float* __restrict__ Dv,
                                      const T* __restrict__ z, const float* __restrict__ bias,
                                      float* __restrict__ state, T* __restrict__ y, int64_t Bsz,
                                      int64_t D, int64_t G, int64_t dpg, int use_softplus) {
    constexpr int64_t N = 4 * TPC;
    if constexpr (kPdl) {
        mb_pdl_launch_dependents();
        mb_pdl_wait();
    }
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t ch = tid / TPC; /* (b, d) */
    const int sub = (int)(tid % TPC);
    const bool ok = ch < Bsz * D;
    float acc = 0.f, uu = 0.f;
    if (ok) {
        const int64_t d = ch % D, b = ch / D;
        const int64_t bcn = (b * G + d / dpg) * N + 4 * sub;
        float dt = mb_to_float(delta[ch]) + (bias ? bias[d] : 0.f);
        if (use_softplus) dt = softplus(dt);
        uu = mb_to_float(u[ch]);
        const float du = dt * uu;
        const float4 a4 = *reinterpret_cast<const float4*>(A + d * N + 4 * sub);
        float4 h4 = *reinterpret_cast<const float4*>(state + ch * N + 4 * sub);
        float Bv[4], Cv[4];
        load_run<T, 4, true>(Bm, bcn, 4, Bv, 0.f);
        load_run<T, 4, true>(Cm, bcn, 4, Cv, 0.f);
        const float av[4] = {a4.x, a4.y, a4.z, a4.w};
        float hv[4] = {h4.x, h4.y, h4.z, h4.w};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            hv[k] = fmaf(fast_exp2(dt * av[k] * kLog2e), hv[k], du * Bv[k]);
            acc = fmaf(Cv[k], hv[k], acc);
        }
        *reinterpret_cast<float4*>(state + ch * N + 4 * sub) = make_float4(hv[0], hv[1], hv[2], hv[3]);
    }
#pragma unroll
    for (int off = TPC / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (ok && sub == 0) {
        const int64_t d = ch % D;
        float out = acc + (Dv ? Dv[d] : 0.f) * uu;
        if (z) {
            const float zz = mb_to_float(z[ch]);
            out *= zz * sigmoidf(zz);
        }
        y[ch] = mb_from_float<T>(out);
    }
}

template <typename T, int TPC, bool kPdl>
mb_status launch_step_vec4(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                           void* state, void* y, const mb_exec* ex) {
    const int64_t threads = p->batch * p->dim * TPC;
    const int block = 128;
    const dim3 grid((unsigned)((threads + block - 1) / block));
    const auto kernel = scan_step_vec4_kernel<T, TPC, kPdl>;
    const auto u = (const T*)in->u, delta = (const T*)in->delta, Bm = (const T*)in->B,
               Cm = (const T*)in->C, z = (const T*)in->z;
    const auto A = (const float*)in->A, Dv = (const float*)in->D, bias = (const float*)in->delta_bias;
    const int64_t G = p->ngroups, dpg = p->dim / p->ngroups;
    if constexpr (kPdl)
        MB_CUDA_CHECK(mb_launch_programmatic(kernel, grid, dim3(block), mb_stream(ex), u, delta, A,
                                             Bm, Cm, Dv, z, bias, (float*)state, (T*)y, p->batch,
                                             p->dim, G, dpg, p->delta_softplus));
    else
        kernel<<<grid, block, 0, mb_stream(ex)>>>(u, delta, A, Bm, Cm, Dv, z, bias, (float*)state,
                                                 (T*)y, p->batch, p->dim, G, dpg, p->delta_softplus);
    MB_CUDA_CHECK(cudaGetLastError());
    return MB_OK;
}

/* v2 (kPdl false) and v3 (true): the vector kernel where N allows, else v1's. */
template <typename T, bool kPdl>
mb_status step_dispatch_vec4(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                             void* state, void* y, const mb_exec* ex) {
    const bool aligned = aligned16(in->A) && aligned16(state) && aligned16(in->B) && aligned16(in->C);
    if (aligned) {
        switch (p->dstate) {
        case 4: return launch_step_vec4<T, 1, kPdl>(p, in, state, y, ex);
        case 8: return launch_step_vec4<T, 2, kPdl>(p, in, state, y, ex);
        case 16: return launch_step_vec4<T, 4, kPdl>(p, in, state, y, ex);
        case 32: return launch_step_vec4<T, 8, kPdl>(p, in, state, y, ex);
        case 64: return launch_step_vec4<T, 16, kPdl>(p, in, state, y, ex);
        case 128: return launch_step_vec4<T, 32, kPdl>(p, in, state, y, ex);
        default: break;
        }
    }
    return step_dispatch<T>(p, in, state, y, ex);
}

} // namespace

/* v1: TPC threads per channel, in-place fp32 state update, shuffle reduction of C . h. */
extern "C" mb_status mb_scan_step_cuda_v1(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* state,
                                          void* y, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return step_dispatch<__nv_bfloat16>(p, in, state, y, ex);
    return step_dispatch<float>(p, in, state, y, ex);
}

/* v2: over v1, N in {4, 8, ..., 128}: 4 consecutive states per thread, vector loads and stores (other N as v1). */
extern "C" mb_status mb_scan_step_cuda_v2(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* state,
                                          void* y, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return step_dispatch_vec4<__nv_bfloat16, false>(p, in, state, y, ex);
    return step_dispatch_vec4<float, false>(p, in, state, y, ex);
}

/* v3: v2 as a programmatic dependent launch (other N: v1, plain launches). */
extern "C" mb_status mb_scan_step_cuda_v3(const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, void* state,
                                          void* y, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return step_dispatch_vec4<__nv_bfloat16, true>(p, in, state, y, ex);
    return step_dispatch_vec4<float, true>(p, in, state, y, ex);
}
