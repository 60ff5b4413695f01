/*
 * scan_common.cuh -- device helpers shared by the selective-scan kernels:
 * loading a thread's run of consecutive time steps as fp32, fast exp2,
 * softplus, and the warp-level scans of the two affine recurrences.
 *
 * Forward map of one step:  h_t = a_t * h_{t-1} + b_t         pair (a, b)
 *   composing an earlier segment E with a later one F: (aE*aF, aF*bE + bF).
 * Reverse map of one step:  e_t = a_t * e_{t+1} + a_t * q_t   pair (a, beta)
 *   (e_t = a_t * lambda_t is the adjoint handed to step t-1), composing an
 *   earlier E with a later F: (aE*aF, aE*betaF + betaE).
 * All indices into tensors are int64_t.
 */
#ifndef MB_SCAN_COMMON_CUH
#define MB_SCAN_COMMON_CUH

#include "common.cuh"

#include <cstdint>

namespace mbscan {

/* 2^x on the special-function unit (flushes denormal results to zero). */
static __device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* Blocks of `kernel` (`threads` a block, `smem` dynamic bytes, already allowed where over
 * 48 KB) resident on the whole current device at once; 0 when the runtime cannot tell (the
 * error cleared: not sticky). */
template <typename Kernel>
static inline int64_t device_resident_blocks(Kernel kernel, int threads, size_t smem) {
    int dev = 0, sms = 0, per_sm = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return (int64_t)sms * per_sm;
}

/* softplus(x) = log(1 + e^x), exact for large x as PyTorch does (threshold 20). */
static __device__ __forceinline__ float softplus(float x) {
    return x <= 20.f ? log1pf(__expf(x)) : x;
}

static __device__ __forceinline__ float sigmoidf(float x) { return 1.f / (1.f + __expf(-x)); }

/* Load ITEMS consecutive elements p[idx .. idx+ITEMS) as float; elements at or
 * past `valid` (counted from idx) read as `fill`. kVec: the caller guarantees
 * that idx*sizeof(T) and p are 16-byte aligned (then full runs use 16-byte loads). */
template <typename T, int ITEMS, bool kVec>
static __device__ __forceinline__ void load_run(const T* __restrict__ p, int64_t idx,
                                                int64_t valid, float (&out)[ITEMS], float fill) {
    constexpr int kBytes = ITEMS * (int)sizeof(T);
    if (kVec && kBytes % 16 == 0 && valid >= ITEMS) {
        constexpr int kPer = 16 / (int)sizeof(T);
#pragma unroll
        for (int v = 0; v < ITEMS / kPer; v++) {
            uint4 raw = __ldg(reinterpret_cast<const uint4*>(p + idx) + v);
            const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
            for (int k = 0; k < kPer; k++) out[v * kPer + k] = mb_to_float(e[k]);
        }
    } else if (kVec && kBytes == 8 && valid >= ITEMS) {
        uint2 raw = __ldg(reinterpret_cast<const uint2*>(p + idx));
        const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int k = 0; k < ITEMS; k++) out[k] = mb_to_float(e[k]);
    } else {
#pragma unroll
        for (int i = 0; i < ITEMS; i++) out[i] = i < valid ? mb_to_float(p[idx + i]) : fill;
    }
}

/* Store ITEMS floats to p[idx ..), only the first `valid`. */
template <typename T, int ITEMS, bool kVec>
static __device__ __forceinline__ void store_run(T* __restrict__ p, int64_t idx, int64_t valid,
                                                 const float (&v)[ITEMS]) {
    constexpr int kBytes = ITEMS * (int)sizeof(T);
    if (kVec && kBytes % 16 == 0 && valid >= ITEMS) {
        constexpr int kPer = 16 / (int)sizeof(T);
#pragma unroll
        for (int w = 0; w < ITEMS / kPer; w++) {
            uint4 raw;
            T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
            for (int k = 0; k < kPer; k++) e[k] = mb_from_float<T>(v[w * kPer + k]);
            reinterpret_cast<uint4*>(p + idx)[w] = raw;
        }
    } else if (kVec && kBytes == 8 && valid >= ITEMS) {
        uint2 raw;
        T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
        for (int k = 0; k < ITEMS; k++) e[k] = mb_from_float<T>(v[k]);
        *reinterpret_cast<uint2*>(p + idx) = raw;
    } else {
#pragma unroll
        for (int i = 0; i < ITEMS; i++)
            if (i < valid) p[idx + i] = mb_from_float<T>(v[i]);
    }
}

/* ITEMS elements of T kept as raw words (bf16 pairs stay packed): a prefetch
 * buffer at half the registers of floats for bf16. */
template <typename T, int ITEMS>
struct RawRun {
    static_assert((ITEMS * sizeof(T)) % 4 == 0, "whole words");
    uint32_t w[ITEMS * sizeof(T) / 4];
};

template <typename T, int ITEMS, bool kVec>
static __device__ __forceinline__ void load_raw(const T* __restrict__ p, int64_t idx, int64_t valid,
                                                RawRun<T, ITEMS>& r) {
    constexpr int kBytes = ITEMS * (int)sizeof(T);
    if (kVec && kBytes % 16 == 0 && valid >= ITEMS) {
#pragma unroll
        for (int v = 0; v < kBytes / 16; v++) {
            uint4 q = __ldg(reinterpret_cast<const uint4*>(p + idx) + v);
            r.w[4 * v] = q.x, r.w[4 * v + 1] = q.y, r.w[4 * v + 2] = q.z, r.w[4 * v + 3] = q.w;
        }
    } else {
        T* e = reinterpret_cast<T*>(r.w);
#pragma unroll
        for (int i = 0; i < ITEMS; i++) e[i] = i < valid ? p[idx + i] : mb_from_float<T>(0.f);
    }
}

template <typename T, int ITEMS>
static __device__ __forceinline__ float raw_at(const RawRun<T, ITEMS>& r, int i) {
    return mb_to_float(reinterpret_cast<const T*>(r.w)[i]);
}

template <typename T, int ITEMS>
static __device__ __forceinline__ void raw_zero(RawRun<T, ITEMS>& r) {
#pragma unroll
    for (int k = 0; k < (int)(ITEMS * sizeof(T) / 4); k++) r.w[k] = 0u;
}

/* Two independent inclusive forward scans, interleaved for ILP. */
static __device__ __forceinline__ void warp_scan_fwd2(float& a0, float& b0, float& a1, float& b1,
                                                      int lane) {
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
        float ap0 = __shfl_up_sync(0xffffffffu, a0, off);
        float bp0 = __shfl_up_sync(0xffffffffu, b0, off);
        float ap1 = __shfl_up_sync(0xffffffffu, a1, off);
        float bp1 = __shfl_up_sync(0xffffffffu, b1, off);
        if (lane >= off) {
            b0 = fmaf(a0, bp0, b0);
            a0 = a0 * ap0;
            b1 = fmaf(a1, bp1, b1);
            a1 = a1 * ap1;
        }
    }
}

/* Inclusive warp scan of forward pairs (lane order = time order). */
static __device__ __forceinline__ void warp_scan_fwd(float& a, float& b, int lane) {
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
        float ap = __shfl_up_sync(0xffffffffu, a, off);
        float bp = __shfl_up_sync(0xffffffffu, b, off);
        if (lane >= off) {
            b = fmaf(a, bp, b);
            a = a * ap;
        }
    }
}

/* Inclusive warp scan of reverse pairs from the right (lane 31 is the latest). */
static __device__ __forceinline__ void warp_scan_rev(float& a, float& beta, int lane) {
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
        float an = __shfl_down_sync(0xffffffffu, a, off);
        float bn = __shfl_down_sync(0xffffffffu, beta, off);
        if (lane + off < 32) {
            beta = fmaf(a, bn, beta);
            a = a * an;
        }
    }
}

/* Sum over the warp, the same butterfly order in every lane and every run. */
static __device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
    return x;
}

/* The arguments of a forward kernel (fwd.cu; fwd_seg.cu extends them). */
template <typename T>
struct FwdArgs {
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
    int64_t D, L, N, G, dpg;
    int softplus;
};

/* The fields every scan kernel's argument struct shares (FwdArgs, BwdArgs): the
 * typed input pointers and the shape, from the call's params and inputs. */
template <typename T, typename Args>
static inline void fill_common_args(Args& a, const mb_selective_scan_params* prm,
                                    const mb_selective_scan_inputs* in) {
    a.u = (const T*)in->u;
    a.delta = (const T*)in->delta;
    a.A = (const float*)in->A;
    a.Bm = (const T*)in->B;
    a.Cm = (const T*)in->C;
    a.Dv = (const float*)in->D;
    a.z = (const T*)in->z;
    a.bias = (const float*)in->delta_bias;
    a.D = prm->dim;
    a.L = prm->seqlen;
    a.N = prm->dstate;
    a.G = prm->ngroups;
    a.dpg = prm->dim / prm->ngroups;
    a.softplus = prm->delta_softplus;
}

} // namespace mbscan

#endif /* MB_SCAN_COMMON_CUH */
