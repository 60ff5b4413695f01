/*
 * selective_scan.h -- the CUDA implementations of the Mamba-1 selective scan
 * (forward, backward, one-token step) that src/registry.c registers. Each is
 * an mb_scan_*_fn of src/impl.h: called after validation, it queues its work
 * on mb_stream(ex) and returns MB_OK (or MB_ERR_CUDA / MB_ERR_ALLOC).
 *
 * Versions (each line: what it changes over the previous one):
 *   fwd v1  one block of 128 threads per channel (b, d), 8 time steps per
 *           thread, chunks of 1024 steps; per state n a warp scan of (a, b)
 *           pairs plus a cross-warp carry in shared memory; exp2 on the SFU
 *   fwd v2  16 time steps per thread (chunks of 2048): half the scans per step
 *   fwd v3  v1 + B, C of state n+1 prefetched into registers during state n
 *   fwd v4  v2 + the same prefetch
 *   fwd v6  v5 held to 64 registers (8 blocks per SM); v7: to 80 (6 blocks)
 *   fwd v8  v7 with 2 channels per block: their lockstep B, C loads share L1 (half
 *           the L2 traffic of B, C); v9: 4 channels per block
 *   fwd v5  v1 + two states per iteration (two scans in flight, one barrier per two
 *           states), next two states' B, C prefetched as packed words
 *   fwd v10 the recurrence walked step by step in registers (8 states per thread,
 *           no scans, no barriers), the sequence split into time segments: their
 *           end states from zero, a fold, then the segments again (fwd_seg.cu);
 *           segments for ~64K threads. v11: for ~32K threads
 *   fwd v12 v10 with the block's inputs staged in shared memory by cp.async (B, C
 *           once per block, 3 stages of 32 steps ahead). v13: for ~128K threads,
 *           v14: ~256K
 *   fwd v15 v14 from L 8192 up at N <= 16, else v7
 *   fwd v16 from L 2048: v14 (N <= 16 from L 4096; N <= 32), v13 (N <= 64),
 *           v12 (N <= 128); else v7
 *   fwd v17 v14 with each stage's B, C rows converted once to fp32 in shared memory
 *           (bf16, N <= 64): no bf16 unpack per element and use
 *   fwd v18 v16 with v17 where v16 takes v14 at N <= 16
 *   fwd v19 v17 for bf16 at N <= 64 from L 2048, else v16
 *   fwd v20 (default) for bf16 from L 512: v17 at N <= 64, v12 above; else v16
 *   bwd v1  deterministic: chunk-local aggregates, a sequential combine of the
 *           chunk boundary states / adjoints, per-warp chunk gradients with
 *           cross-channel partials, and fixed-order reduction kernels
 *   bwd v2  register tiles of 16 states instead of 8 (N = 16 in one pass)
 *   bwd v3  v1 + the next state's B, C, A and chunk carries prefetched
 *   bwd v4  N <= 32: the states of a channel split across the warps of a block
 *           (4 per warp), du / d delta' / y_pre summed over warps in shared memory;
 *           chunk aggregates from prefix sums of delta' (two exp2, no scan per state)
 *   bwd v5  v4 held to 128 registers for N <= 16
 *   bwd v6  v5 + each channel's inputs pipelined one channel ahead through shared
 *           memory by a loader warp; v7: v6 without the register cap
 *   step v1 one kernel, 4 (N <= 32) or 32 threads per channel
 *   step v2 N in {4, ..., 128}: N/4 threads per channel, 4 states each, vector access
 *   step v3 (default) v2 as a programmatic dependent launch (griddepcontrol: the next token's launch
 *           overlaps this one's end)
 */
#ifndef MB_SELECTIVE_SCAN_H
#define MB_SELECTIVE_SCAN_H

#include "impl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The training pair's chunk states (ex->scan_states, (B, D, ceil(L / MB_SCAN_CHUNK), N)
 * fp32: the state before each chunk's first step) computed on their own, for a forward
 * version that does not write them as it goes (bwd.cu). */
mb_status mb_scan_chunk_states_cuda(const mb_selective_scan_params* p,
                                    const mb_selective_scan_inputs* in, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v1(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v2(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v3(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v4(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v5(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v6(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v7(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v8(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v10(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                               void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v11(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                               void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v12(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                               void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v13(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                               void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v14(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                               void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v15(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                               void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v16(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                               void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v17(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                               void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v18(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                               void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v19(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                               void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v20(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                               void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_fwd_cuda_v9(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              void* y, void* final_state, const mb_exec* ex);
mb_status mb_scan_bwd_cuda_v1(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              const void* dy, const mb_selective_scan_grads* g, const mb_exec* ex);
mb_status mb_scan_bwd_cuda_v2(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              const void* dy, const mb_selective_scan_grads* g, const mb_exec* ex);
mb_status mb_scan_bwd_cuda_v3(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              const void* dy, const mb_selective_scan_grads* g, const mb_exec* ex);
mb_status mb_scan_bwd_cuda_v4(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              const void* dy, const mb_selective_scan_grads* g, const mb_exec* ex);
mb_status mb_scan_bwd_cuda_v5(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              const void* dy, const mb_selective_scan_grads* g, const mb_exec* ex);
mb_status mb_scan_bwd_cuda_v6(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              const void* dy, const mb_selective_scan_grads* g, const mb_exec* ex);
mb_status mb_scan_bwd_cuda_v7(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              const void* dy, const mb_selective_scan_grads* g, const mb_exec* ex);
mb_status mb_scan_bwd_cuda_v8(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              const void* dy, const mb_selective_scan_grads* g, const mb_exec* ex);
mb_status mb_scan_bwd_cuda_v9(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                              const void* dy, const mb_selective_scan_grads* g, const mb_exec* ex);
mb_status mb_scan_step_cuda_v1(const mb_selective_scan_params* p,
                               const mb_selective_scan_inputs* in, void* state, void* y,
                               const mb_exec* ex);
mb_status mb_scan_step_cuda_v2(const mb_selective_scan_params* p,
                               const mb_selective_scan_inputs* in, void* state, void* y,
                               const mb_exec* ex);
mb_status mb_scan_step_cuda_v3(const mb_selective_scan_params* p,
                               const mb_selective_scan_inputs* in, void* state, void* y,
                               const mb_exec* ex);

#ifdef __cplusplus
}
#endif
#endif /* MB_SELECTIVE_SCAN_H */
