/*
 * registry.c -- every implementation of every op, one line each.
 *
 * To add a kernel version: write it (one file or function in kernels/<op>/,
 * with the signature of its type in src/impl.h), declare it in its op's
 * kernels/<op>/<op>.h, and add its line below. Exactly one entry per
 * (op, direction, backend) has is_default = 1: the fastest correct one.
 * Columns: op, direction, backend, name, version, default, dtypes,
 * max N (0 = MB_MAX_DSTATE), head dims (0 = any), what it is, function.
 */
#include "impl.h"
#include "reference.h"

#ifdef MB_HAVE_CUDA
/* one header per op folder under kernels/ declaring its versions */
#include "attention/attention.h"
#include "selective_scan/selective_scan.h"
#include "attention/flash.h"
#include "ssd/ssd.h"
#endif

#define SCAN MB_OP_SELECTIVE_SCAN
#define SSD MB_OP_SSD
#define ATTN MB_OP_ATTENTION
#define CPU MB_BACKEND_CPU
#define CUDA MB_BACKEND_CUDA
/* head dims 64 and 128 (bit i = head dim 8*(i+1)) */
#define FLASH_HD (MB_ATTN_HEADDIM(64) | MB_ATTN_HEADDIM(128))
/* head dims 8, 16, ..., 64 */
#define SIMT_HD (MB_ATTN_HEADDIM(64) * 2 - 1)

const mb_impl mb_registry[] = {
    // CPU references: exact fp64 math (reference/)
    {SCAN, MB_DIR_FWD, CPU, "reference", 0, 1, MB_DT_CPU, 0, 0, "exact fp64 recurrence", {.scan_fwd = mb_ref_selective_scan_fwd}},
    {SCAN, MB_DIR_BWD, CPU, "reference", 0, 1, MB_DT_CPU, 0, 0, "exact fp64 adjoint of the recurrence", {.scan_bwd = mb_ref_selective_scan_bwd}},
    {SCAN, MB_DIR_STEP, CPU, "reference", 0, 1, MB_DT_CPU, 0, 0, "exact fp64 one-token update", {.scan_step = mb_ref_selective_scan_step}},
    {SSD, MB_DIR_FWD, CPU, "reference", 0, 1, MB_DT_CPU, 0, 0, "exact fp64, the form of params.form", {.ssd_fwd = mb_ref_ssd_fwd}},
    {SSD, MB_DIR_BWD, CPU, "reference", 0, 1, MB_DT_CPU, 0, 0, "exact fp64 adjoint, checkpointed per chunk", {.ssd_bwd = mb_ref_ssd_bwd}},
    {SSD, MB_DIR_STEP, CPU, "reference", 0, 1, MB_DT_CPU, 0, 0, "exact fp64 one-token update", {.ssd_step = mb_ref_ssd_step}},
    {ATTN, MB_DIR_FWD, CPU, "reference", 0, 1, MB_DT_CPU, 0, 0, "exact fp64, materialised L x L scores", {.attention_fwd = mb_ref_attention_fwd}},
    {ATTN, MB_DIR_BWD, CPU, "reference", 0, 1, MB_DT_CPU, 0, 0, "exact fp64 through the materialised P", {.attention_bwd = mb_ref_attention_bwd}},
    {ATTN, MB_DIR_DECODE, CPU, "reference", 0, 1, MB_DT_CPU, 0, 0, "exact fp64 over the cache", {.attention_decode = mb_ref_attention_decode}},
#ifdef MB_HAVE_CUDA
    // CUDA kernels (kernels/<op>/)
    {SCAN, MB_DIR_FWD, CUDA, "v1", 1, 0, MB_DT_F32_BF16, 256, 0, "block per channel, 8 steps per thread, warp scans + shared-memory carry, exp2 on the SFU", {.scan_fwd = mb_scan_fwd_cuda_v1}},
    {SCAN, MB_DIR_FWD, CUDA, "v2", 2, 0, MB_DT_F32_BF16, 256, 0, "16 steps per thread: half the scans and barriers per step", {.scan_fwd = mb_scan_fwd_cuda_v2}},
    {SCAN, MB_DIR_FWD, CUDA, "v3", 3, 0, MB_DT_F32_BF16, 256, 0, "v1 + B, C of state n+1 prefetched into registers during state n", {.scan_fwd = mb_scan_fwd_cuda_v3}},
    {SCAN, MB_DIR_FWD, CUDA, "v4", 4, 0, MB_DT_F32_BF16, 256, 0, "v2 (16 steps per thread) + the same prefetch", {.scan_fwd = mb_scan_fwd_cuda_v4}},
    {SCAN, MB_DIR_FWD, CUDA, "v5", 5, 0, MB_DT_F32_BF16, 256, 0, "v1 + two states per iteration, packed prefetch of the next two states' B, C", {.scan_fwd = mb_scan_fwd_cuda_v5}},
    {SCAN, MB_DIR_FWD, CUDA, "v6", 6, 0, MB_DT_F32_BF16, 256, 0, "v5 held to 64 registers (8 blocks per SM)", {.scan_fwd = mb_scan_fwd_cuda_v6}},
    {SCAN, MB_DIR_FWD, CUDA, "v7", 7, 0, MB_DT_F32_BF16, 256, 0, "v5 held to 80 registers (6 blocks per SM)", {.scan_fwd = mb_scan_fwd_cuda_v7}},
    {SCAN, MB_DIR_FWD, CUDA, "v8", 8, 0, MB_DT_F32_BF16, 256, 0, "v7 with 2 channels per block: lockstep B, C loads share L1", {.scan_fwd = mb_scan_fwd_cuda_v8}},
    {SCAN, MB_DIR_FWD, CUDA, "v9", 9, 0, MB_DT_F32_BF16, 256, 0, "v7 with 4 channels per block", {.scan_fwd = mb_scan_fwd_cuda_v9}},
    {SCAN, MB_DIR_FWD, CUDA, "v10", 10, 0, MB_DT_F32_BF16, 256, 0, "the recurrence step by step in registers, 8 states per thread, time segments (end states from zero, a fold, the segments again): ~64K threads", {.scan_fwd = mb_scan_fwd_cuda_v10}},
    {SCAN, MB_DIR_FWD, CUDA, "v11", 11, 0, MB_DT_F32_BF16, 256, 0, "v10 with segments for ~32K threads (less walked twice)", {.scan_fwd = mb_scan_fwd_cuda_v11}},
    {SCAN, MB_DIR_FWD, CUDA, "v12", 12, 0, MB_DT_F32_BF16, 256, 0, "v10 with the block's inputs staged in shared memory by cp.async (B, C once per block, 3 stages of 32 steps ahead)", {.scan_fwd = mb_scan_fwd_cuda_v12}},
    {SCAN, MB_DIR_FWD, CUDA, "v13", 13, 0, MB_DT_F32_BF16, 256, 0, "v12 with segments for ~128K threads", {.scan_fwd = mb_scan_fwd_cuda_v13}},
    {SCAN, MB_DIR_FWD, CUDA, "v14", 14, 0, MB_DT_F32_BF16, 256, 0, "v12 with segments for ~256K threads", {.scan_fwd = mb_scan_fwd_cuda_v14}},
    {SCAN, MB_DIR_FWD, CUDA, "v15", 15, 0, MB_DT_F32_BF16, 256, 0, "v14 from L 8192 up at N <= 16, else v7", {.scan_fwd = mb_scan_fwd_cuda_v15}},
    {SCAN, MB_DIR_FWD, CUDA, "v16", 16, 0, MB_DT_F32_BF16, 256, 0, "from L 2048: v14 (N <= 16 from L 4096, N <= 32), v13 (N <= 64), v12 (N <= 128); else v7", {.scan_fwd = mb_scan_fwd_cuda_v16}},
    {SCAN, MB_DIR_FWD, CUDA, "v17", 17, 0, MB_DT_F32_BF16, 256, 0, "v14 with each stage's B, C rows converted once to fp32 in shared memory (bf16, N <= 64): no bf16 unpack per element and use", {.scan_fwd = mb_scan_fwd_cuda_v17}},
    {SCAN, MB_DIR_FWD, CUDA, "v18", 18, 0, MB_DT_F32_BF16, 256, 0, "v16 with v17 where v16 takes v14 at N <= 16 (from L 4096)", {.scan_fwd = mb_scan_fwd_cuda_v18}},
    {SCAN, MB_DIR_FWD, CUDA, "v19", 19, 0, MB_DT_F32_BF16, 256, 0, "v17 for bf16 at N <= 64 from L 2048 (first at every N 16-64 x L 2K-32K of the H100 grid), else v16", {.scan_fwd = mb_scan_fwd_cuda_v19}},
    {SCAN, MB_DIR_FWD, CUDA, "v20", 20, 1, MB_DT_F32_BF16, 256, 0, "for bf16 from L 512: v17 at N <= 64, v12 above (the H100 grid N 16-256 x L 512-32K), else v16", {.scan_fwd = mb_scan_fwd_cuda_v20}},
    {SCAN, MB_DIR_BWD, CUDA, "v1", 1, 0, MB_DT_F32_BF16, 256, 0, "deterministic: chunk aggregates, combine, warp-chunk grads (8-state tiles), fixed-order reductions", {.scan_bwd = mb_scan_bwd_cuda_v1}},
    {SCAN, MB_DIR_BWD, CUDA, "v2", 2, 0, MB_DT_F32_BF16, 256, 0, "16-state register tiles: N <= 16 in one pass over each channel", {.scan_bwd = mb_scan_bwd_cuda_v2}},
    {SCAN, MB_DIR_BWD, CUDA, "v3", 3, 0, MB_DT_F32_BF16, 256, 0, "v1 + the next state's B, C, A and chunk carries prefetched", {.scan_bwd = mb_scan_bwd_cuda_v3}},
    {SCAN, MB_DIR_BWD, CUDA, "v4", 4, 0, MB_DT_F32_BF16, 256, 0, "N <= 32: states split across the warps of a block, fixed-order shared-memory sums; batched combine", {.scan_bwd = mb_scan_bwd_cuda_v4}},
    {SCAN, MB_DIR_BWD, CUDA, "v5", 5, 0, MB_DT_F32_BF16, 256, 0, "v4 held to 128 registers for N <= 16", {.scan_bwd = mb_scan_bwd_cuda_v5}},
    {SCAN, MB_DIR_BWD, CUDA, "v6", 6, 0, MB_DT_F32_BF16, 256, 0, "v5 + each channel's inputs pipelined one channel ahead through shared memory by a loader warp", {.scan_bwd = mb_scan_bwd_cuda_v6}},
    {SCAN, MB_DIR_BWD, CUDA, "v7", 7, 0, MB_DT_F32_BF16, 256, 0, "v6 without the 128-register cap", {.scan_bwd = mb_scan_bwd_cuda_v7}},
    {SCAN, MB_DIR_BWD, CUDA, "v8", 8, 1, MB_DT_F32_BF16, 256, 0, "v6 with the block's chunk of B and C in shared memory as fp32, converted once; a warp's 4 dA sums of a channel in one 6-shuffle reduction", {.scan_bwd = mb_scan_bwd_cuda_v8}},
    {SCAN, MB_DIR_BWD, CUDA, "v9", 9, 0, MB_DT_F32_BF16, 256, 0, "v8 with each channel's finishing spread over the warps (one item of every lane each; dD, d delta_bias partials per item)", {.scan_bwd = mb_scan_bwd_cuda_v9}},
    {SCAN, MB_DIR_STEP, CUDA, "v1", 1, 0, MB_DT_F32_BF16, 256, 0, "one launch, 4 or 32 threads per channel, in-place fp32 state", {.scan_step = mb_scan_step_cuda_v1}},
    {SCAN, MB_DIR_STEP, CUDA, "v2", 2, 0, MB_DT_F32_BF16, 256, 0, "N in {4..128}: 4 consecutive states per thread, vector access", {.scan_step = mb_scan_step_cuda_v2}},
    {SCAN, MB_DIR_STEP, CUDA, "v3", 3, 1, MB_DT_F32_BF16, 256, 0, "v2 as a programmatic dependent launch: the next token's launch overlaps this one's end", {.scan_step = mb_scan_step_cuda_v3}},
    {ATTN, MB_DIR_FWD, CUDA, "naive", 0, 0, MB_DT_F32_BF16, 0, 0, "cuBLAS S = scale Q K^T into (B*H, L, L) fp32, causal row softmax in place, cuBLAS O = P V", {.attention_fwd = mb_attention_fwd_cuda_naive}},
    {ATTN, MB_DIR_BWD, CUDA, "naive", 0, 0, MB_DT_F32_BF16, 0, 0, "cuBLAS S and dP = dO V^T (2 x (B*H, L, L) fp32), row kernel P and dS in place, cuBLAS dV, dQ, dK", {.attention_bwd = mb_attention_bwd_cuda_naive}},
    {ATTN, MB_DIR_FWD, CUDA, "flash-simt", 0, 0, MB_DT_F32_BF16, 0, SIMT_HD, "exact O(L)-memory forward on the CUDA cores: a thread per query row, K/V tiles of 64 in shared memory, online softmax in fp32 (head dims 8..64)", {.attention_fwd = mb_attention_fwd_cuda_flash_simt}},
    {ATTN, MB_DIR_DECODE, CUDA, "v1", 1, 0, MB_DT_F32_BF16, 0, MB_ATTN_HEADDIM(32) | MB_ATTN_HEADDIM(64) | MB_ATTN_HEADDIM(128), "flash-decoding: cache split over blocks, K/V read once per group with 16-byte loads, lse combine", {.attention_decode = mb_attention_decode_cuda_v1}},
    {ATTN, MB_DIR_DECODE, CUDA, "v2", 2, 1, MB_DT_F32_BF16, 0, MB_ATTN_HEADDIM(32) | MB_ATTN_HEADDIM(64) | MB_ATTN_HEADDIM(128), "v1 + the combine as a programmatic dependent launch, >= 128 keys per split", {.attention_decode = mb_attention_decode_cuda_v2}},
    {ATTN, MB_DIR_FWD, CUDA, "flash-v1", 1, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash: 4 warps x 16 rows, key tiles 64, Q in registers, cp.async K/V double buffer, exp2 online softmax, causal tile skipping", {.attention_fwd = mb_attention_fwd_cuda_flash_v1}},
    {ATTN, MB_DIR_FWD, CUDA, "flash-v2", 2, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v1 with 8 warps (128 query rows per block)", {.attention_fwd = mb_attention_fwd_cuda_flash_v2}},
    {ATTN, MB_DIR_FWD, CUDA, "flash-v3", 3, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v1 with key tiles of 128", {.attention_fwd = mb_attention_fwd_cuda_flash_v3}},
    {ATTN, MB_DIR_FWD, CUDA, "flash-v4", 4, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v1 with 32 query rows per warp (BM 128): each K/V fragment feeds 2 MMAs, Q read from shared memory", {.attention_fwd = mb_attention_fwd_cuda_flash_v4}},
    {ATTN, MB_DIR_FWD, CUDA, "flash-v5", 5, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v4 with key tiles of 32 (fewer registers)", {.attention_fwd = mb_attention_fwd_cuda_flash_v5}},
    {ATTN, MB_DIR_FWD, CUDA, "flash-v6", 6, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v4 with 8 warps (BM 256)", {.attention_fwd = mb_attention_fwd_cuda_flash_v6}},
    {ATTN, MB_DIR_FWD, CUDA, "flash-v7", 7, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v4 with the k loop of Q K^T not unrolled (fewer register spills)", {.attention_fwd = mb_attention_fwd_cuda_flash_v7}},
    {ATTN, MB_DIR_FWD, CUDA, "flash-v8", 8, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v4's kernel from 512 blocks of 128 rows up, flash-v1's below (short sequences)", {.attention_fwd = mb_attention_fwd_cuda_flash_v8}},
    {ATTN, MB_DIR_FWD, CUDA, "flash-v9", 9, 1, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "the forward on Hopper's warpgroup tensor cores (wgmma, sm_90a): 2 warpgroups x 64 rows, key tiles of 128, P fed from registers; flash-v8 where sm_90a is absent", {.attention_fwd = mb_attention_fwd_cuda_flash_v9}},
    {ATTN, MB_DIR_FWD, CUDA, "flash-v10", 10, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v9 with key tiles of 64", {.attention_fwd = mb_attention_fwd_cuda_flash_v10}},
    {ATTN, MB_DIR_FWD, CUDA, "flash-v11", 11, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v10 with 3 warpgroups (192 rows per block)", {.attention_fwd = mb_attention_fwd_cuda_flash_v11}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-v1", 1, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash, deterministic: Dvec kernel, dK/dV per key block over query tiles, dQ per query block over key tiles, no atomics", {.attention_bwd = mb_attention_bwd_cuda_flash_v1}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-v2", 2, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v1 with 8 warps per block (128 keys / 128 query rows)", {.attention_bwd = mb_attention_bwd_cuda_flash_v2}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-v3", 3, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v2 with query tiles of 32 in the dK/dV kernel", {.attention_bwd = mb_attention_bwd_cuda_flash_v3}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-v4", 4, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v1 with query tiles of 32 in the dK/dV kernel", {.attention_bwd = mb_attention_bwd_cuda_flash_v4}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-v5", 5, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v1 with key tiles of 128 in the dQ kernel", {.attention_bwd = mb_attention_bwd_cuda_flash_v5}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-v6", 6, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v4 and flash-v5 together", {.attention_bwd = mb_attention_bwd_cuda_flash_v6}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-v7", 7, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v1 with P^T packed to bf16 before dP^T is formed in the dK/dV kernel (fewer registers), k loops of the S, dP products unrolled 2x", {.attention_bwd = mb_attention_bwd_cuda_flash_v7}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-v8", 8, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v7 with 8 warps (128 keys) in the dK/dV kernel", {.attention_bwd = mb_attention_bwd_cuda_flash_v8}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-v9", 9, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v7 with the k loops fully unrolled", {.attention_bwd = mb_attention_bwd_cuda_flash_v9}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-v10", 10, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v8 with the k loops fully unrolled", {.attention_bwd = mb_attention_bwd_cuda_flash_v10}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-v14", 14, 1, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "flash-v9's kernels on Hopper's warpgroup tensor cores (wgmma, sm_90a): 2 warpgroups x 64 rows per block, tiles of 64, P^T and dS^T fed from registers; flash-v9 where sm_90a is absent", {.attention_bwd = mb_attention_bwd_cuda_flash_v14}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-v13", 13, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "deterministic, 5 tile products, no dQ kernel: 128 keys x 8 warps per block add dQ += dS K to an fp32 accumulator in a fixed key-block order (per-warp turn counters, old sums by cp.async during the tile's products, turns passed on a tile later); slower than flash-v9 here", {.attention_bwd = mb_attention_bwd_cuda_flash_v13}},
    {ATTN, MB_DIR_BWD, CUDA, "flash-atomic", 0, 0, MB_DT(MB_DTYPE_BF16), 0, FLASH_HD, "NOT deterministic: dQ added with fp32 atomics from the dK/dV kernel (5 tile products, no dQ kernel)", {.attention_bwd = mb_attention_bwd_cuda_flash_atomic}},
    {SSD, MB_DIR_FWD, CUDA, "v1", 1, 0, MB_DT_F32_BF16, 256, 0, "sequential recurrence, one warp per channel, states in registers", {.ssd_fwd = mb_ssd_fwd_cuda_v1}},
    {SSD, MB_DIR_FWD, CUDA, "v2", 2, 0, MB_DT_F32_BF16, 256, 0, "chunked on tensor cores (WMMA bf16 / 3xTF32), 3 launches: chunk states, state pass, output", {.ssd_fwd = mb_ssd_fwd_cuda_v2}},
    {SSD, MB_DIR_FWD, CUDA, "v3", 3, 0, MB_DT_F32_BF16, 256, 0, "v2 + C B^T once per (chunk, group), read by every head of the group", {.ssd_fwd = mb_ssd_fwd_cuda_v3}},
    {SSD, MB_DIR_FWD, CUDA, "v4", 4, 1, MB_DT_F32_BF16, 256, 0, "v3 on mma.sync: cp.async tiles, ldmatrix, scores decayed in registers (bf16, P%64, N 16-256 powers of 2, chunk<=256; else v3)", {.ssd_fwd = mb_ssd_fwd_cuda_v4}},
    {SSD, MB_DIR_BWD, CUDA, "v1", 1, 0, MB_DT_F32_BF16, 256, 0, "chunked, deterministic: recomputed states, reverse adjoints, 4 masked chunk matmuls (WMMA), fixed-order sums", {.ssd_bwd = mb_ssd_bwd_cuda_v1}},
    {SSD, MB_DIR_BWD, CUDA, "v2", 2, 0, MB_DT_F32_BF16, 256, 0, "v1 with the states and y_pre on mma.sync, hi + lo bf16 operands (bf16, fwd v4's shapes; else v1)", {.ssd_bwd = mb_ssd_bwd_cuda_v2}},
    {SSD, MB_DIR_BWD, CUDA, "v3", 3, 1, MB_DT_F32_BF16, 256, 0, "every chunk matmul on mma.sync (dx, adjoints: hi + lo bf16 operands); dB, dC summed over the heads of a group in-kernel (bf16, fwd v4's shapes; else v1)", {.ssd_bwd = mb_ssd_bwd_cuda_v3}},
    {SSD, MB_DIR_STEP, CUDA, "v1", 1, 0, MB_DT_F32_BF16, 256, 0, "one launch, one warp per channel, in-place fp32 state", {.ssd_step = mb_ssd_step_cuda_v1}},
    {SSD, MB_DIR_STEP, CUDA, "v2", 2, 0, MB_DT_F32_BF16, 256, 0, "N % 4 == 0: 4 consecutive states per lane, float4 access", {.ssd_step = mb_ssd_step_cuda_v2}},
    {SSD, MB_DIR_STEP, CUDA, "v3", 3, 0, MB_DT_F32_BF16, 256, 0, "one block per head (N 16/32/64/128, >= 256 heads in the batch, else v2): decay once per head, 8 float4 of state in flight per thread", {.ssd_step = mb_ssd_step_cuda_v3}},
    {SSD, MB_DIR_STEP, CUDA, "v4", 4, 0, MB_DT_F32_BF16, 256, 0, "v3's kernel held to 64 registers (4 blocks of 256 per SM: 528 block slots, one wave at batch 8 x 64 heads)", {.ssd_step = mb_ssd_step_cuda_v4}},
    {SSD, MB_DIR_STEP, CUDA, "v5", 5, 0, MB_DT_F32_BF16, 256, 0, "one thread per 8 states (N 8-256, powers of two, else v4): 16-byte loads, the decay per thread, no shared memory or barrier", {.ssd_step = mb_ssd_step_cuda_v5}},
    {SSD, MB_DIR_STEP, CUDA, "v6", 6, 0, MB_DT_F32_BF16, 256, 0, "v5 lean: 3-D grid (no per-thread divisions but one), fast-intrinsic dt' / decay / gate, fp32 state runs filling whole sectors (else v4)", {.ssd_step = mb_ssd_step_cuda_v6}},
    {SSD, MB_DIR_STEP, CUDA, "v7", 7, 0, MB_DT_F32_BF16, 256, 0, "v6 with 2 rows of a head per thread (B, C, dt' and the decay once for both)", {.ssd_step = mb_ssd_step_cuda_v7}},
    {SSD, MB_DIR_STEP, CUDA, "v8", 8, 0, MB_DT_F32_BF16, 256, 0, "v6 with 4 rows of a head per thread", {.ssd_step = mb_ssd_step_cuda_v8}},
    {SSD, MB_DIR_STEP, CUDA, "v9", 9, 0, MB_DT_F32_BF16, 256, 0, "v6 as a programmatic dependent launch (scheduled while the previous kernel finishes; waits for it before any memory access)", {.ssd_step = mb_ssd_step_cuda_v9}},
    {SSD, MB_DIR_STEP, CUDA, "v10", 10, 0, MB_DT_F32_BF16, 256, 0, "v7 as a programmatic dependent launch", {.ssd_step = mb_ssd_step_cuda_v10}},
    {SSD, MB_DIR_STEP, CUDA, "v11", 11, 1, MB_DT_F32_BF16, 256, 0, "v10 letting the next launch go before its wait", {.ssd_step = mb_ssd_step_cuda_v11}},
#endif
};

const int mb_registry_count = (int)(sizeof mb_registry / sizeof mb_registry[0]);
