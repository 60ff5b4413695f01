/*
 * cuda_absent.c -- the CUDA entry points of a build without nvcc (or with
 * MB_CUDA=OFF): each validates its arguments exactly as the CUDA build would,
 * then returns MB_ERR_NO_CUDA. mb_cuda_device_count() is 0.
 */
#include "internal.h"

int mb_cuda_device_count(void) { return 0; }

static mb_status no_cuda(const char* fn, mb_status validation) {
    if (validation != MB_OK) return validation;
    return mb_fail(MB_ERR_NO_CUDA, "%s: mambabench was built without CUDA "
                   "(no nvcc at configure time, or MB_CUDA=OFF)", fn);
}

mb_status mb_selective_scan_fwd_cuda(const mb_selective_scan_params* params,
                                     const mb_selective_scan_inputs* in, void* y,
                                     void* final_state, void* stream) {
    (void)final_state, (void)stream;
    const char* fn = "mb_selective_scan_fwd_cuda";
    return no_cuda(fn, mb_validate_selective_scan_fwd(fn, params, in, y));
}

mb_status mb_selective_scan_bwd_cuda(const mb_selective_scan_params* params,
                                     const mb_selective_scan_inputs* in, const void* dy,
                                     const mb_selective_scan_grads* grads, void* stream) {
    (void)stream;
    const char* fn = "mb_selective_scan_bwd_cuda";
    return no_cuda(fn, mb_validate_selective_scan_bwd(fn, params, in, dy, grads));
}

mb_status mb_ssd_fwd_cuda(const mb_ssd_params* params, const mb_ssd_inputs* in, void* y,
                          void* final_state, void* stream) {
    (void)final_state, (void)stream;
    const char* fn = "mb_ssd_fwd_cuda";
    return no_cuda(fn, mb_validate_ssd_fwd(fn, params, in, y));
}

mb_status mb_ssd_bwd_cuda(const mb_ssd_params* params, const mb_ssd_inputs* in, const void* dy,
                          const void* dfinal_state, const mb_ssd_grads* grads, void* stream) {
    (void)dfinal_state, (void)stream;
    const char* fn = "mb_ssd_bwd_cuda";
    return no_cuda(fn, mb_validate_ssd_bwd(fn, params, in, dy, grads));
}

mb_status mb_attention_fwd_cuda(const mb_attention_params* params, const void* q, const void* k,
                                const void* v, void* o, void* lse, void* stream) {
    (void)lse, (void)stream;
    const char* fn = "mb_attention_fwd_cuda";
    return no_cuda(fn, mb_validate_attention_fwd(fn, params, q, k, v, o));
}

mb_status mb_attention_bwd_cuda(const mb_attention_params* params, const void* q, const void* k,
                                const void* v, const void* o, const void* lse, const void* dout,
                                void* dq, void* dk, void* dv, void* stream) {
    (void)stream;
    const char* fn = "mb_attention_bwd_cuda";
    return no_cuda(fn, mb_validate_attention_bwd(fn, params, q, k, v, o, lse, dout, dq, dk, dv));
}
