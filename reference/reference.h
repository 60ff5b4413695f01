/*
 * reference.h -- the CPU references: the exact math of each op in fp64, with
 * no API prologue. Each has the signature of its op's implementation type
 * (src/impl.h) and is registered as the "reference" CPU entry of its op in
 * src/registry.c. Called through the public API (which validates, converts
 * the caller's dtype to fp64 and back, and hands over zeroed outputs), or
 * directly by code inside the library that already holds fp64 tensors.
 */
#ifndef MB_REFERENCE_H
#define MB_REFERENCE_H

#include "impl.h"

mb_status mb_ref_selective_scan_fwd(const mb_selective_scan_params* p,
                                    const mb_selective_scan_inputs* in, void* y,
                                    void* final_state, const mb_exec* ex);
mb_status mb_ref_selective_scan_bwd(const mb_selective_scan_params* p,
                                    const mb_selective_scan_inputs* in, const void* dy,
                                    const mb_selective_scan_grads* g, const mb_exec* ex);
mb_status mb_ref_selective_scan_step(const mb_selective_scan_params* p,
                                     const mb_selective_scan_inputs* in, void* state, void* y,
                                     const mb_exec* ex);

mb_status mb_ref_ssd_fwd(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                         void* final_state, const mb_exec* ex);
mb_status mb_ref_ssd_bwd(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* dy,
                         const void* dfinal_state, const mb_ssd_grads* g, const mb_exec* ex);
mb_status mb_ref_ssd_step(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                          void* y, const mb_exec* ex);

mb_status mb_ref_attention_fwd(const mb_attention_params* p, const mb_attention_inputs* in,
                               void* o, void* lse, const mb_exec* ex);
mb_status mb_ref_attention_bwd(const mb_attention_params* p, const mb_attention_inputs* in,
                               const void* o, const void* lse, const void* dout,
                               const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_ref_attention_decode(const mb_attention_decode_params* p,
                                  const mb_attention_decode_inputs* in, void* o, void* lse,
                                  const mb_exec* ex);

#endif /* MB_REFERENCE_H */
