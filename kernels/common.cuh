/*
 * common.cuh -- what every CUDA file of mambabench shares: the checking
 * macro that turns a failed CUDA call into MB_ERR_CUDA with file, line and
 * CUDA's message (never an abort), and the device gate.
 */
#ifndef MB_KERNELS_COMMON_CUH
#define MB_KERNELS_COMMON_CUH

#include <cuda_runtime.h>

extern "C" {
#include "internal.h"
}

/* Evaluate a CUDA call; on error record the message and return MB_ERR_CUDA. */
#define MB_CUDA_CHECK(call)                                                              \
    do {                                                                                 \
        cudaError_t err_ = (call);                                                       \
        if (err_ != cudaSuccess)                                                         \
            return mb_fail(MB_ERR_CUDA, "%s:%d: %s failed: %s", __FILE__, __LINE__,      \
                           #call, cudaGetErrorString(err_));                             \
    } while (0)

/* MB_OK when a usable GPU is present, else MB_ERR_NO_DEVICE with CUDA's reason. */
static inline mb_status mb_require_device(const char* fn) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0)
        return mb_fail(MB_ERR_NO_DEVICE, "%s: no usable CUDA device (%s)", fn,
                       err != cudaSuccess ? cudaGetErrorString(err) : "device count is 0");
    return MB_OK;
}

#endif /* MB_KERNELS_COMMON_CUH */
