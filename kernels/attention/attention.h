/*
 * attention.h -- the CUDA implementations of causal attention (naive forward
 * and backward through the materialised L x L matrix, flash-decoding over a KV
 * cache) that src/registry.c registers. Each is an mb_attention_*_fn of
 * src/impl.h: called after validation, it queues its work on mb_stream(ex) and
 * returns MB_OK (or MB_ERR_ALLOC / MB_ERR_CUDA with a message). The flash
 * kernels have their own header, flash.h.
 *
 * Dimension legend: B batch, H query heads, H_kv K/V heads (head h reads K/V
 * head h / (H / H_kv)), L sequence length, d head dim, L_max cache capacity.
 *
 * Versions:
 *   fwd naive   cuBLAS S = scale Q K^T into a (B*H, L, L) fp32 workspace (the
 *               G = H / H_kv heads of a K/V group stacked as G*L rows of one
 *               GEMM), a causal row softmax writing P in place (bf16 P for bf16)
 *               and lse, cuBLAS O = P V
 *   bwd naive   S and dP = dO V^T into two (B*H, L, L) fp32 workspaces, one row
 *               kernel making P and dS = P o (dP - rowsum(dO o O)) in place, then
 *               cuBLAS dV = P^T dO, dQ = scale dS K, dK = scale dS^T Q (the heads
 *               of a group summed inside the GEMM: deterministic)
 *   fwd flash-simt  exact O(L)-memory forward on the CUDA cores (flash_simt.cu):
 *               one thread per query row, K/V tiles of 64 in shared memory, online
 *               softmax; fp32 or bf16 in, fp32 math, head dims 8..64 (the fp32
 *               task models' small heads at lengths naive cannot hold)
 *   decode v1   flash-decoding: the cache split over (split, H_kv, B) blocks, each
 *               reading K/V once for the heads of its group with 16-byte loads
 *               and an online softmax; a combine kernel merges the splits by lse
 *   decode v2   v1 + the combine kernel as a programmatic dependent launch (its
 *               launch overlaps the split kernel's tail), >= 128 keys per split
 */
#ifndef MB_ATTENTION_H
#define MB_ATTENTION_H

#include "impl.h"

/* The registry's head-dim bit of head dim d (a multiple of 8, at most 256). */
#define MB_ATTN_HEADDIM(d) (1u << ((d) / 8 - 1))

#ifdef __cplusplus
extern "C" {
#endif

mb_status mb_attention_fwd_cuda_naive(const mb_attention_params* p,
                                      const mb_attention_inputs* in,
                                      void* o,   /* (B, H, L, d) */
                                      void* lse, /* (B, H, L) fp32 or NULL */
                                      const mb_exec* ex);
mb_status mb_attention_bwd_cuda_naive(const mb_attention_params* p,
                                      const mb_attention_inputs* in,
                                      const void* o,    /* (B, H, L, d) */
                                      const void* lse,  /* (B, H, L) fp32 */
                                      const void* dout, /* (B, H, L, d) */
                                      const mb_attention_grads* g, const mb_exec* ex);
mb_status mb_attention_fwd_cuda_flash_simt(const mb_attention_params* p,
                                           const mb_attention_inputs* in,
                                           void* o,   /* (B, H, L, d) */
                                           void* lse, /* (B, H, L) fp32 or NULL */
                                           const mb_exec* ex);
mb_status mb_attention_decode_cuda_v1(const mb_attention_decode_params* p,
                                      const mb_attention_decode_inputs* in,
                                      void* o,   /* (B, H, d) */
                                      void* lse, /* (B, H) fp32 or NULL */
                                      const mb_exec* ex);

mb_status mb_attention_decode_cuda_v2(const mb_attention_decode_params* p,
                                      const mb_attention_decode_inputs* in,
                                      void* o,   /* (B, H, d) */
                                      void* lse, /* (B, H) fp32 or NULL */
                                      const mb_exec* ex);

/* How decode splits the cache and launches its combine (v1, v2 are two such
 * choices; tools/timing.cu tries others through mb_attention_decode_cuda_tuned). */
typedef struct {
    int blocks_per_sm; /* aim for about this many split blocks per SM */
    int64_t min_chunk; /* at least this many keys per split */
    int pdl;           /* 1: the combine kernel as a programmatic dependent launch */
} mb_decode_tuning;

mb_status mb_attention_decode_cuda_tuned(const mb_attention_decode_params* p,
                                         const mb_attention_decode_inputs* in, void* o,
                                         void* lse, const mb_exec* ex,
                                         const mb_decode_tuning* tune);

#ifdef __cplusplus
}
#endif
#endif /* MB_ATTENTION_H */
