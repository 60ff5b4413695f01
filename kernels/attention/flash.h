/*
 * flash.h -- the fused causal flash attention kernels (FlashAttention-2
 * design, mma.sync bf16 tensor cores) that src/registry.c registers. Each is
 * an mb_attention_{fwd,bwd}_fn of src/impl.h: bf16 only, head dim 64 or 128
 * (others: MB_ERR_NOT_IMPLEMENTED), grouped-query K/V supported, any L.
 *
 * Versions (each line: what it changes over the previous one):
 *   fwd flash-v1  4 warps x 16 query rows (BM 64), key tiles of 64, Q in
 *                 registers, K/V double-buffered by cp.async, online softmax
 *                 in fp32 with exp2, P kept in registers for P V
 *   fwd flash-v2  8 warps (BM 128): each K/V tile serves twice the rows
 *   fwd flash-v3  v1 with key tiles of 128
 *   bwd flash-v1  deterministic, no atomics: Dvec = rowsum(dO o O); dK, dV by a
 *                 kernel per key block (4 warps x 16 keys) walking query tiles of
 *                 64; dQ by a kernel per query block (4 warps x 16 rows) walking
 *                 key tiles of 64 (P and dP recomputed from lse)
 *   bwd flash-v2  8 warps per block in both kernels (key blocks of 128 for dK, dV;
 *                 query blocks of 128 for dQ)
 *   bwd flash-v3  v2 with query tiles of 32 in the dK, dV kernel (fewer registers)
 */
#ifndef MB_FLASH_H
#define MB_FLASH_H

#include "impl.h"

#ifdef __cplusplus
extern "C" {
#endif

mb_status mb_attention_fwd_cuda_flash_v1(const mb_attention_params* p,
                                         const mb_attention_inputs* in, void* o, void* lse,
                                         const mb_exec* ex);
mb_status mb_attention_fwd_cuda_flash_v2(const mb_attention_params* p,
                                         const mb_attention_inputs* in, void* o, void* lse,
                                         const mb_exec* ex);
mb_status mb_attention_fwd_cuda_flash_v3(const mb_attention_params* p,
                                         const mb_attention_inputs* in, void* o, void* lse,
                                         const mb_exec* ex);
mb_status mb_attention_fwd_cuda_flash_v4(const mb_attention_params* p,
                                         const mb_attention_inputs* in, void* o, void* lse,
                                         const mb_exec* ex);
mb_status mb_attention_fwd_cuda_flash_v5(const mb_attention_params* p,
                                         const mb_attention_inputs* in, void* o, void* lse,
                                         const mb_exec* ex);
mb_status mb_attention_fwd_cuda_flash_v6(const mb_attention_params* p,
                                         const mb_attention_inputs* in, void* o, void* lse,
                                         const mb_exec* ex);
mb_status mb_attention_fwd_cuda_flash_v7(const mb_attention_params* p,
                                         const mb_attention_inputs* in, void* o, void* lse,
                                         const mb_exec* ex);
mb_status mb_attention_fwd_cuda_flash_v8(const mb_attention_params* p,
                                         const mb_attention_inputs* in, void* o, void* lse,
                                         const mb_exec* ex);

mb_status mb_attention_bwd_cuda_flash_v1(const mb_attention_params* p,
                                         const mb_attention_inputs* in, const void* o,
                                         const void* lse, const void* dout,
                                         const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_attention_bwd_cuda_flash_v2(const mb_attention_params* p,
                                         const mb_attention_inputs* in, const void* o,
                                         const void* lse, const void* dout,
                                         const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_attention_bwd_cuda_flash_v3(const mb_attention_params* p,
                                         const mb_attention_inputs* in, const void* o,
                                         const void* lse, const void* dout,
                                         const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_attention_bwd_cuda_flash_v4(const mb_attention_params* p,
                                         const mb_attention_inputs* in, const void* o,
                                         const void* lse, const void* dout,
                                         const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_attention_bwd_cuda_flash_v5(const mb_attention_params* p,
                                         const mb_attention_inputs* in, const void* o,
                                         const void* lse, const void* dout,
                                         const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_attention_bwd_cuda_flash_v6(const mb_attention_params* p,
                                         const mb_attention_inputs* in, const void* o,
                                         const void* lse, const void* dout,
                                         const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_attention_bwd_cuda_flash_v7(const mb_attention_params* p,
                                         const mb_attention_inputs* in, const void* o,
                                         const void* lse, const void* dout,
                                         const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_attention_bwd_cuda_flash_v8(const mb_attention_params* p,
                                         const mb_attention_inputs* in, const void* o,
                                         const void* lse, const void* dout,
                                         const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_attention_bwd_cuda_flash_v9(const mb_attention_params* p,
                                         const mb_attention_inputs* in, const void* o,
                                         const void* lse, const void* dout,
                                         const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_attention_bwd_cuda_flash_v10(const mb_attention_params* p,
                                         const mb_attention_inputs* in, const void* o,
                                         const void* lse, const void* dout,
                                         const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_attention_bwd_cuda_flash_atomic(const mb_attention_params* p,
                                         const mb_attention_inputs* in, const void* o,
                                         const void* lse, const void* dout,
                                         const mb_attention_grads* g, const mb_exec* ex);

#ifdef __cplusplus
}
#endif
#endif /* MB_FLASH_H */
