/*
 * ssd.h -- the CUDA implementations of Mamba-2's SSD (forward, backward,
 * one-token step) that src/registry.c registers. Each is an mb_ssd_*_fn of
 * src/impl.h: called after validation, it queues its work on mb_stream(ex)
 * and returns MB_OK (or MB_ERR_CUDA / MB_ERR_ALLOC / MB_ERR_NOT_IMPLEMENTED).
 * Activations bf16 or fp32, everything accumulated in fp32.
 *
 * Versions (each line: what it changes over the previous one):
 *   fwd v1   the sequential recurrence: one warp per channel (b, h, p), the N
 *            states in registers, one launch (slow for long L: L serial steps)
 *   fwd v2   the chunked algorithm on tensor cores (WMMA; bf16 operands, or
 *            3xTF32 for fp32), three launches: chunk states + cumsum, state
 *            passing over chunks, output (intra-chunk C B^T mask x + C state)
 *   fwd v3   v2 + C B^T once per (chunk, group) into an fp32 buffer, read by
 *            every head of the group (4 launches; no B load, no C B^T per head)
 *   fwd v4   v3 on mma.sync (bf16; P % 64 == 0, N 16-256 (powers of 2), chunk <= 256,
 *            else v3): cp.async tiles, ldmatrix, scores decayed in registers
 *            and repacked as the next MMA's operand, the entering states
 *            copied to bf16 by the state pass
 *   bwd v1   chunked, deterministic: forward states recomputed, reverse chunk
 *            adjoints, four masked chunk matmuls (y_pre, dx, dC, dB) on tensor
 *            cores, per-chunk dt'/A gradients from the cumsum identity, and
 *            fixed-order reductions over heads of a group and over chunks; the
 *            states and the products feeding the decay gradient (y_pre, dx) in
 *            fp32 (3xTF32) even for bf16, whose rounding the dA sum amplifies
 *   bwd v2   v1 with the recomputed states (fwd v4's state kernel) and y_pre
 *            on mma.sync: hi + lo bf16 scores and states against the exact x
 *            and C (bf16 and fwd v4's shapes; else v1)
 *   bwd v3   every chunk matmul on mma.sync: v2 + the reverse adjoints and dx
 *            with hi + lo bf16 operands, dB and dC as GEMMs over the chunk's
 *            tokens and the heads of a group (summed in-kernel, no per-head
 *            partials) from M = sum_h decay (ds . x^T) (bf16, v4's shapes; else v1)
 *   step v1  one launch, one warp per channel, the fp32 state updated in place
 *   step v2  N % 4 == 0: each lane owns 4 consecutive states, float4 access
 *   step v3  one block per head (N 16..128, powers of two): the decay once per
 *            head, 8 float4 of state in flight per thread
 *   step v4  v3 held to 64 registers (4 blocks per SM, v3 3): one wave at batch 8 x 64 heads
 *   every step: the state in fp32 or, with state_bf16, in bf16
 */
#ifndef MB_SSD_H
#define MB_SSD_H

#include "impl.h"

#ifdef __cplusplus
extern "C" {
#endif

mb_status mb_ssd_fwd_cuda_v1(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                             void* final_state, const mb_exec* ex);
mb_status mb_ssd_fwd_cuda_v2(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                             void* final_state, const mb_exec* ex);
mb_status mb_ssd_fwd_cuda_v3(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                             void* final_state, const mb_exec* ex);
mb_status mb_ssd_fwd_cuda_v4(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                             void* final_state, const mb_exec* ex);
mb_status mb_ssd_bwd_cuda_v1(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* dy,
                             const void* dfinal_state, const mb_ssd_grads* g, const mb_exec* ex);
mb_status mb_ssd_bwd_cuda_v2(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* dy,
                             const void* dfinal_state, const mb_ssd_grads* g, const mb_exec* ex);
mb_status mb_ssd_bwd_cuda_v3(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* dy,
                             const void* dfinal_state, const mb_ssd_grads* g, const mb_exec* ex);
mb_status mb_ssd_step_cuda_v1(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                              void* y, const mb_exec* ex);
mb_status mb_ssd_step_cuda_v2(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                              void* y, const mb_exec* ex);
mb_status mb_ssd_step_cuda_v3(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                              void* y, const mb_exec* ex);
mb_status mb_ssd_step_cuda_v4(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                              void* y, const mb_exec* ex);
mb_status mb_ssd_step_cuda_v5(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                              void* y, const mb_exec* ex);
mb_status mb_ssd_step_cuda_v6(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                              void* y, const mb_exec* ex);
mb_status mb_ssd_step_cuda_v7(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                              void* y, const mb_exec* ex);
mb_status mb_ssd_step_cuda_v8(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                              void* y, const mb_exec* ex);
mb_status mb_ssd_step_cuda_v9(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                              void* y, const mb_exec* ex);
mb_status mb_ssd_step_cuda_v10(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                               void* y, const mb_exec* ex);
mb_status mb_ssd_step_cuda_v11(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                               void* y, const mb_exec* ex);

#ifdef __cplusplus
}
#endif
#endif /* MB_SSD_H */
