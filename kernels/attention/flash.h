/*
 * flash.h -- the fused causal flash attention kernels (FlashAttention-2
 * design, mma.sync bf16 tensor cores) that src/registry.c registers. Each is
 * an mb_attention_{fwd,bwd}_fn of src/impl.h: bf16 only, head dim 64 or 128
 * (others: MB_ERR_NOT_IMPLEMENTED), grouped-query K/V supported, any L.
 *
 * Versions (each line: what it changes; designs and H100 timings: NOTES_flash.md):
 *   fwd flash-v1  4 warps x 16 query rows (BM 64), key tiles of 64, Q in
 *                 registers, K/V double-buffered by cp.async, online softmax
 *                 in fp32 with exp2, P kept in registers for P V
 *   fwd flash-v2  8 warps (BM 128): each K/V tile serves twice the rows
 *   fwd flash-v3  v1 with key tiles of 128
 *   fwd flash-v4  32 rows per warp (BM 128): each K/V fragment feeds 2 MMAs, Q
 *                 fragments re-read from shared memory per k step
 *   fwd flash-v5  v4 with key tiles of 32; v6: v4 with 8 warps (BM 256)
 *   fwd flash-v7  v4 with the k loop of Q K^T not unrolled
 *   fwd flash-v8  v4's kernel from 512 blocks of 128 rows up, v1's below
 *   fwd flash-v9  the forward on wgmma (sm_90a, flash_fwd_sm90.cu): 2 warpgroups
 *                 x 64 rows, key tiles of 128; v10: key tiles of 64; v11: 3
 *                 warpgroups, key tiles of 64; flash-v8 where no sm_90a code or GPU.
 *                 flash-v9 is the default forward
 *   bwd flash-v1  deterministic, no atomics: Dvec = rowsum(dO o O); dK, dV by a
 *                 kernel per key block (4 warps x 16 keys) walking query tiles of
 *                 64; dQ by a kernel per query block (4 warps x 16 rows) walking
 *                 key tiles of 64 (P and dP recomputed from lse)
 *   bwd flash-v2  8 warps per block in both kernels
 *   bwd flash-v3  v2 with query tiles of 32 in the dK, dV kernel; v4: v1 with those
 *   bwd flash-v5  v1 with key tiles of 128 in the dQ kernel; v6: v4 + v5
 *   bwd flash-v7  P^T packed to bf16 before dP^T is formed (fewer registers), the
 *                 k loops of the S / dP products unrolled 2x; v8: v7 with 8 warps
 *                 in the dK, dV kernel
 *   bwd flash-v9  v7 with the k loops fully unrolled; v10: v8 likewise
 *   bwd flash-v14 flash-v9's three kernels with the tile products on wgmma
 *                 (sm_90a, flash_bwd_sm90.cu): 2 warpgroups x 64 keys / query
 *                 rows per block; flash-v9 where no sm_90a code or GPU. The
 *                 default backward
 *   bwd flash-atomic  NOT deterministic: dQ += dS K from the dK, dV kernel with
 *                 fp32 atomics (5 tile products); registered, never the default
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

mb_status mb_attention_fwd_cuda_flash_v9(const mb_attention_params* p,
                                         const mb_attention_inputs* in, void* o, void* lse,
                                         const mb_exec* ex);
mb_status mb_attention_fwd_cuda_flash_v10(const mb_attention_params* p,
                                          const mb_attention_inputs* in, void* o, void* lse,
                                          const mb_exec* ex);
mb_status mb_attention_fwd_cuda_flash_v11(const mb_attention_params* p,
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
mb_status mb_attention_bwd_cuda_flash_v13(const mb_attention_params* p,
                                         const mb_attention_inputs* in, const void* o,
                                         const void* lse, const void* dout,
                                         const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_attention_bwd_cuda_flash_v14(const mb_attention_params* p,
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
