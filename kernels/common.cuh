/*
 * common.cuh -- what every CUDA file of mambabench shares: the checking
 * macros that turn a failed CUDA call or launch into MB_ERR_CUDA with file,
 * line and CUDA's message (never an abort), the implementation interface,
 * stream-ordered workspace, and small device helpers (dtype conversion).
 */
#ifndef MB_KERNELS_COMMON_CUH
#define MB_KERNELS_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "impl.h"
#include "internal.h"

/* Evaluate a CUDA call; on error record the message and return MB_ERR_CUDA. */
#define MB_CUDA_CHECK(call)                                                              \
    do {                                                                                 \
        cudaError_t err_ = (call);                                                       \
        if (err_ != cudaSuccess)                                                         \
            return mb_fail(MB_ERR_CUDA, "%s:%d: %s failed: %s", __FILE__, __LINE__,      \
                           #call, cudaGetErrorString(err_));                             \
    } while (0)

/* The cudaStream_t of an mb_exec. */
static inline cudaStream_t mb_stream(const mb_exec* ex) { return (cudaStream_t)ex->stream; }

/* kernel<<<grid, block, 0, stream>>>(args...) as a programmatic dependent launch
 * (programmatic stream serialization): it may be scheduled while the kernel before it in
 * the stream finishes, so it must wait (griddepcontrol.wait) before touching memory. */
template <typename... KArgs, typename... Args>
static cudaError_t mb_launch_programmatic(void (*kernel)(KArgs...), dim3 grid, dim3 block,
                                          cudaStream_t stream, Args... args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.stream = stream;
    cfg.attrs = attr, cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, kernel, args...);
}

/* Inside a kernel launched by mb_launch_programmatic: wait until the grids before it in the
 * stream have finished and their writes are visible (before any global memory access). */
static __device__ __forceinline__ void mb_pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
/* ... and let the next programmatic launch in the stream be scheduled. */
static __device__ __forceinline__ void mb_pdl_launch_dependents() {
    asm volatile("griddepcontrol.launch_dependents;");
}

/* log2(e): exp(x) = exp2(x log2(e)) on the special-function unit. */
constexpr float kLog2e = 1.4426950408889634f;

/* The softmax scale of attention: the caller's, or 1/sqrt(head dim) where it is 0. */
static inline double mb_attention_scale(double scale, int64_t headdim) {
    return scale == 0.0 ? 1.0 / sqrt((double)headdim) : scale;
}

/* A pointer 16-byte aligned (for 16-byte vector and cp.async access). */
static inline bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

/* ------------------------------------------------------------------------ */
/* dtype helpers: load any activation type as float, store float as it */

static __device__ __forceinline__ float mb_to_float(float x) { return x; }
static __device__ __forceinline__ float mb_to_float(__nv_bfloat16 x) {
    return __bfloat162float(x);
}
template <typename T> static __device__ __forceinline__ T mb_from_float(float x);
template <> __device__ __forceinline__ float mb_from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 mb_from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

#endif /* MB_KERNELS_COMMON_CUH */
