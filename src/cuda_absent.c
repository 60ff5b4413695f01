/*
 * cuda_absent.c -- what a build without CUDA (no nvcc, or MB_CUDA=OFF) has in
 * place of kernels/common.cu: no devices and no device memory. The CUDA entry
 * points themselves are the same API layer as in a CUDA build (src/api_ops.c),
 * which answers MB_ERR_NO_CUDA after validating.
 */
#include "internal.h"

int mb_cuda_device_count(void) { return 0; }

void mb_cuda_memory_reset_peak(void) {}

int64_t mb_cuda_memory_peak_bytes(void) { return 0; }

mb_status mb_cuda_memory_trim(void) { return MB_OK; }
