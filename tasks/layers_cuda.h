/*
 * layers_cuda.h -- the small CUDA kernels of the task model's GPU path
 * (model_cuda.cu): embedding, RMSNorm, the causal depthwise conv, SiLU, GELU,
 * RoPE, cross-entropy, layout changes for the mixer APIs, reductions and
 * AdamW. Each is the device twin of the function of the same name in
 * model.c, fp32, deterministic (no float atomics: sums run in a fixed order),
 * and queued on `s` with no host synchronisation, so a whole training step can
 * be captured in one CUDA graph.
 *
 * Dimension legend as model.h: B batch, T time, BT = B*T rows, C width,
 * V vocabulary, Cc conv channels, K conv width, H heads, hd head dim.
 * "(BT, ld)" is BT rows of which the first W (or a column window) are used.
 */
#ifndef TASKS_LAYERS_CUDA_H
#define TASKS_LAYERS_CUDA_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

/* What one step reports back; lives in device memory, copied to the host once. */
typedef struct {
    double loss_sum;   /* sum of -log p[target] over the marked positions */
    double grad_sumsq; /* sum of squared gradients (for clipping) */
    long long hits;    /* argmax == target at the marked positions */
    long long marked;  /* positions with a target */
} lc_stats;

/* AdamW's view of the parameter buffer: tensor k spans [end[k-1], end[k]). */
#define LC_MAX_TENSORS 20
typedef struct {
    size_t end[LC_MAX_TENSORS];
    int decay[LC_MAX_TENSORS];
    int count;
} lc_tensor_table;

/* AdamW's step inputs, uploaded before every step (they change each step). */
typedef struct {
    float lr;
    float step; /* 1-based, for the bias correction */
} lc_hyper;

// embedding: out (BT, C) = wte[tokens] (+ pe (T, C) when pe != NULL)
void lc_embed_forward(float* out, const int32_t* tokens, const float* wte, const float* pe, int BT,
                      int T, int C, cudaStream_t s);
/* dwte (V, C) += sum of dout rows by token. order (BT): the row indices sorted
 * by token (stably), offsets (V + 1): where each token's rows start in order.
 * partial: (V, LC_EMBED_SPLIT, C) scratch. */
#define LC_EMBED_SPLIT 8
void lc_embed_backward(float* dwte, float* partial, const float* dout, const int32_t* order,
                       const int32_t* offsets, int V, int C, cudaStream_t s);

// RMSNorm: out (BT, C) = x * rstd * w; rstd (BT)
void lc_rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int BT, int C,
                        cudaStream_t s);
/* dx (BT, C) += ...; dw_rows (BT, C) = dout * x * rstd (the caller sums its columns into dw). */
void lc_rmsnorm_backward(float* dx, float* dw_rows, const float* dout, const float* x,
                         const float* w, const float* rstd, int BT, int C, cudaStream_t s);

// causal depthwise conv over columns [0, Cc) of inp (BT, ld); w (Cc, K), bias (Cc)
void lc_conv_forward(float* out, const float* inp, int ld, const float* w, const float* bias, int B,
                     int T, int Cc, int K, cudaStream_t s);
/* dinp (BT, ld) columns [0, Cc) += ... */
void lc_conv_backward_input(float* dinp, int ld, const float* dout, const float* w, int B, int T,
                            int Cc, int K, cudaStream_t s);
/* rows (BT, Cc*K) = dout[r, c] * inp[r - K + 1 + k, c] (0 before the start): their column sums are dw */
void lc_conv_weight_rows(float* rows, const float* dout, const float* inp, int ld, int B, int T,
                         int Cc, int K, cudaStream_t s);

// pointwise, n elements
void lc_silu_forward(float* out, const float* x, size_t n, cudaStream_t s);
void lc_silu_backward(float* dx, const float* dout, const float* x, size_t n, cudaStream_t s);
void lc_gelu_forward(float* out, const float* x, size_t n, cudaStream_t s);
void lc_gelu_backward(float* dx, const float* dout, const float* x, size_t n, cudaStream_t s);
void lc_add(float* out, const float* a, const float* b, size_t n, cudaStream_t s);     /* out = a + b */
void lc_add_product(float* g, const float* a, const float* b, size_t n, cudaStream_t s); /* g += a * b */
void lc_neg_exp(float* out, const float* x, size_t n, cudaStream_t s);                 /* out = -exp(x) */

/* RoPE on the q and k columns of qkv (BT, 3C); table (T, hd/2) of (cos, sin); sign -1 undoes it. */
void lc_rope(float* qkv, const float2* table, int BT, int T, int C, int H, float sign, cudaStream_t s);

// cross-entropy on the marked positions (targets >= 0)
/* probs (BT, V) of the marked rows; row_loss (BT), row_hit (BT) (0 on unmarked rows). */
void lc_crossentropy_forward(float* probs, float* row_loss, int* row_hit, const float* logits,
                             const int32_t* targets, int BT, int V, cudaStream_t s);
/* stats->loss_sum, hits, marked = sums over the rows (grad_sumsq untouched). */
void lc_loss_reduce(lc_stats* stats, const float* row_loss, const int* row_hit,
                    const int32_t* targets, int BT, cudaStream_t s);
/* dlogits (BT, V) = (probs - onehot) / marked on marked rows, 0 elsewhere. */
void lc_crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets,
                              const lc_stats* stats, int BT, int V, cudaStream_t s);

// layout changes for the mixer APIs
/* dst (B, W, T) = src (BT, lds) columns [0, W) transposed */
void lc_to_channels_first(float* dst, const float* src, int lds, int B, int T, int W, cudaStream_t s);
/* dst (BT, ldd) columns [0, W) (+)= src (B, W, T) transposed */
void lc_from_channels_first(float* dst, int ldd, const float* src, int B, int T, int W, int add,
                            cudaStream_t s);
/* dst (rows, ldd) columns [0, W) = src (rows, lds) columns [0, W) */
void lc_copy_cols(float* dst, int ldd, const float* src, int lds, size_t rows, int W, cudaStream_t s);
/* (BT, ld) columns [0, H*hd) <-> (B, H, T, hd) */
/* Hard-ALiBi's local heads (model.c's local_head_forward / backward): heads Hg + j,
 * j < H - Hg, of every sequence of the (B, H, T, hd) buffers, head Hg + j attending to
 * its last w[j] <= LC_MAX_LOCAL_WINDOW tokens, scale 1/sqrt(hd), hd <= LC_MAX_LOCAL_HD;
 * lse (B, H, T) rows of those heads written. Backward: dq, dk, dv (B, H, T, hd) of those
 * heads overwritten (one thread per query row for dq, per key row for dk, dv: no atomics). */
#define LC_MAX_LOCAL_HEADS 32
#define LC_MAX_LOCAL_WINDOW 64
#define LC_MAX_LOCAL_HD 64
typedef struct {
    int w[LC_MAX_LOCAL_HEADS];
} lc_windows;
void lc_local_attention_forward(const float* q, const float* k, const float* v, float* out,
                                float* lse, int B, int H, int Hg, int T, int hd,
                                const lc_windows* win, cudaStream_t s);
void lc_local_attention_backward(const float* q, const float* k, const float* v,
                                 const float* out, const float* dout, const float* lse,
                                 float* dq, float* dk, float* dv, int B, int H, int Hg, int T,
                                 int hd, const lc_windows* win, cudaStream_t s);

void lc_heads_split(float* dst, const float* src, int ld, int B, int T, int H, int hd, cudaStream_t s);
void lc_heads_merge(float* dst, int ld, const float* src, int B, int T, int H, int hd, cudaStream_t s);
/* dst (B, M, T) = src (M) at every b and t */
void lc_broadcast_bt(float* dst, const float* src, int B, size_t M, int T, cudaStream_t s);
/* g (M) += sum over b and t of src (B, M, T) */
void lc_sum_bt(float* g, const float* src, int B, size_t M, int T, cudaStream_t s);

// optimisation
/* stats->grad_sumsq = sum of g^2 over n */
void lc_grad_sumsq(lc_stats* stats, const float* g, size_t n, cudaStream_t s);
/* Clip to max_norm (when > 0) by the norm in stats, then one AdamW step,
 * weight decay on the tensors the table marks. */
void lc_adamw(float* params, const float* grads, float* m, float* v, size_t n,
              const lc_tensor_table* table, const lc_hyper* hyper, const lc_stats* stats,
              float max_norm, float beta1, float beta2, float eps, float weight_decay, cudaStream_t s);

#endif
