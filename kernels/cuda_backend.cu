/*
 * cuda_backend.cu -- the CUDA entry points of the public API.
 *
 * Each validates its arguments with the same validator as the CPU reference,
 * then requires a GPU. The kernels themselves are the GPU issue's work: until
 * an op's kernel file lands, its entry point returns MB_ERR_NOT_IMPLEMENTED
 * (never a silent wrong number).
 */
#include "common.cuh"

extern "C" int mb_cuda_device_count(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
    return count;
}

/* validation, then the device, then the (missing) kernel */
static mb_status not_yet(const char* fn, mb_status validation) {
    if (validation != MB_OK) return validation;
    mb_status device = mb_require_device(fn);
    if (device != MB_OK) return device;
    return mb_fail(MB_ERR_NOT_IMPLEMENTED, "%s: the CUDA kernel is not written yet", fn);
}

extern "C" mb_status mb_selective_scan_fwd_cuda(const mb_selective_scan_params* params,
                                                const mb_selective_scan_inputs* in, void* y,
                                                void* final_state, void* stream) {
    (void)final_state, (void)stream;
    const char* fn = "mb_selective_scan_fwd_cuda";
    return not_yet(fn, mb_validate_selective_scan_fwd(fn, params, in, y));
}

extern "C" mb_status mb_selective_scan_bwd_cuda(const mb_selective_scan_params* params,
                                                const mb_selective_scan_inputs* in,
                                                const void* dy,
                                                const mb_selective_scan_grads* grads,
                                                void* stream) {
    (void)stream;
    const char* fn = "mb_selective_scan_bwd_cuda";
    return not_yet(fn, mb_validate_selective_scan_bwd(fn, params, in, dy, grads));
}

extern "C" mb_status mb_ssd_fwd_cuda(const mb_ssd_params* params, const mb_ssd_inputs* in,
                                     void* y, void* final_state, void* stream) {
    (void)final_state, (void)stream;
    const char* fn = "mb_ssd_fwd_cuda";
    return not_yet(fn, mb_validate_ssd_fwd(fn, params, in, y));
}

extern "C" mb_status mb_ssd_bwd_cuda(const mb_ssd_params* params, const mb_ssd_inputs* in,
                                     const void* dy, const void* dfinal_state,
                                     const mb_ssd_grads* grads, void* stream) {
    (void)dfinal_state, (void)stream;
    const char* fn = "mb_ssd_bwd_cuda";
    return not_yet(fn, mb_validate_ssd_bwd(fn, params, in, dy, grads));
}

extern "C" mb_status mb_attention_fwd_cuda(const mb_attention_params* params, const void* q,
                                           const void* k, const void* v, void* o, void* lse,
                                           void* stream) {
    (void)lse, (void)stream;
    const char* fn = "mb_attention_fwd_cuda";
    return not_yet(fn, mb_validate_attention_fwd(fn, params, q, k, v, o));
}

extern "C" mb_status mb_attention_bwd_cuda(const mb_attention_params* params, const void* q,
                                           const void* k, const void* v, const void* o,
                                           const void* lse, const void* dout, void* dq, void* dk,
                                           void* dv, void* stream) {
    (void)stream;
    const char* fn = "mb_attention_bwd_cuda";
    return not_yet(fn, mb_validate_attention_bwd(fn, params, q, k, v, o, lse, dout, dq, dk, dv));
}
