/*
 * model.h -- a tiny language model for the synthetic tasks, forward and
 * hand-written backward on the CPU (the llm.c way):
 *
 *   token embedding (+ sinusoidal positions for MHA-Abs)
 *   -> n x [RMSNorm -> mixer block -> residual]
 *   -> RMSNorm -> LM head (tied to the embedding or not)
 *   -> cross-entropy on the marked positions only.
 *
 * Mixer blocks (every one through mambabench's public API for its mixer):
 *   mamba   the Mamba block: in_proj to 2*Di, causal depthwise conv1d (width 4),
 *           SiLU, x_proj to R + 2N, dt_proj, selective scan with softplus,
 *           y * SiLU(z), out_proj; A = -(1..N), dt log-uniform in [1e-3, 1e-1]
 *   lti     the same block with delta, B and C learned, input-independent
 *           parameters (S4D-real); only selectivity differs
 *   mamba2  the same block shape around SSD: in_proj to [x | B | C | z | dt],
 *           conv over x, B, C, scalar A per head, state N up to 256
 *   mha-abs, mha-rope  a Transformer layer: RMSNorm -> causal multi-head
 *           attention -> residual, RMSNorm -> MLP (4C, GELU) -> residual,
 *           with absolute sinusoidal positions or rotary embeddings
 *   mha-nope  the same layer with no position encoding (causal masking alone
 *           tells positions apart; the length-generalising baseline of copying)
 *   mha-hardalibi  the same layer with Hard-ALiBi heads ("Repeat After Me",
 *           arXiv 2402.01032): no position encoding; heads [0, H - H/2) attend to
 *           every earlier token, the H/2 local heads i = 0, 1, .. only to the last
 *           2^(i+1) tokens (windows 2, 4, 8, .., at most 64); on the GPU the local heads run
 *           layers_cuda.cu's lc_local_attention_*.
 *
 * Dimension legend: B = batch, T = time, C = model width, V = vocabulary,
 * nL = layers, Di = E*C inner width, N = state size, R = dt rank, K = conv
 * width, H = heads (attention or Mamba-2), P = Mamba-2 head dim, hd = C/H.
 * Parameters live in one fp32 buffer (param_tensors points into it), so do
 * their gradients and AdamW's moments; activations in a second buffer.
 * Backward functions accumulate (+=) into parameter gradients.
 */
#ifndef TASKS_MODEL_H
#define TASKS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    MIXER_MAMBA = 0, MIXER_LTI = 1, MIXER_MAMBA2 = 2, MIXER_MHA_ABS = 3, MIXER_MHA_ROPE = 4,
    MIXER_MHA_NOPE = 5, MIXER_MHA_HARD_ALIBI = 6, MIXER_COUNT = 7
} mixer_kind;

typedef struct {
    int32_t mixer;   /* mixer_kind */
    int32_t vocab;   /* V */
    int32_t dim;     /* C */
    int32_t layers;  /* nL */
    int32_t d_state; /* N */
    int32_t expand;  /* E */
    int32_t d_conv;  /* K */
    int32_t dt_rank; /* R */
    int32_t nheads;  /* H: attention heads, or Mamba-2 heads */
    int32_t tied;    /* LM head tied to the embedding */
} model_config;

/* Sizes derived from a config (the legend above): Win = in_proj rows, Cc =
 * conv channels, Dt = dt channels (Di, or H for mamba2), P = Mamba-2 head dim,
 * hd = attention head dim (0 where they do not apply). */
typedef struct {
    int V, C, nL, N, K, R, H, Di, Win, Cc, Dt, P, hd, mixer;
} model_dims;
model_dims model_dims_of(const model_config* c);
/* The widest (BT, W) backward scratch row any layer of these sizes needs. */
size_t model_scratch_width(const model_dims* d);
/* The chunk size of the SSD calls (CPU and CUDA paths alike). */
#define MODEL_SSD_CHUNK 64

int mixer_from_name(const char* name); /* -1 if unknown */
const char* mixer_name(int mixer);
int mixer_is_ssm(int mixer);           /* mamba, lti, mamba2 */
int mixer_is_attention(int mixer);     /* mha-abs, mha-rope, mha-nope, mha-hardalibi */
/* Hard-ALiBi: the window of attention head h of H (0: every earlier token) */
/* The widest local window of a Hard-ALiBi head (2 << 5). */
#define MODEL_MAX_LOCAL_WINDOW 64
int hard_alibi_window(int h, int H);
/* The defaults for a mixer at width C (N 16 or 64, E 2, K 4, R ceil(C/16), heads). */
model_config model_default_config(int mixer, int vocab, int dim, int layers);
/* 0 if usable, else a reason in msg and -1. */
int model_check_config(const model_config* cfg, char* msg, int msg_size);

#define NUM_PARAM_TENSORS 20
typedef struct {
    float* wte;        /* (V, C) */
    float* lm_head;    /* (V, C), empty when tied */
    float* normf;      /* (C) */
    float* norm1;      /* (nL, C) */
    float* in_proj;    /* (nL, Win, C)  Win = 2Di, or 2Di + 2N + H for mamba2 */
    float* conv_w;     /* (nL, Cc, K)   Cc = Di, or Di + 2N for mamba2 */
    float* conv_b;     /* (nL, Cc) */
    float* x_proj;     /* (nL, R + 2N, Di)  mamba */
    float* dt_proj;    /* (nL, Di, R)       mamba */
    float* dt_bias;    /* (nL, Di), (nL, H) mamba2 */
    float* B_lti;      /* (nL, Di, N)       lti */
    float* C_lti;      /* (nL, Di, N)       lti */
    float* A_log;      /* (nL, Di, N), (nL, H) mamba2;  A = -exp(A_log) */
    float* Dskip;      /* (nL, Di), (nL, H) mamba2 */
    float* out_proj;   /* (nL, C, Di) */
    float* qkv;        /* (nL, 3C, C)  attention */
    float* attn_proj;  /* (nL, C, C) */
    float* norm2;      /* (nL, C) */
    float* fc;         /* (nL, 4C, C) */
    float* fc_proj;    /* (nL, C, 4C) */
} param_tensors;

typedef struct model model;

/* NULL on a bad config or allocation failure (msg says why). */
model* model_create(const model_config* cfg, uint64_t seed, char* msg, int msg_size);
void model_free(model* m);
const model_config* model_cfg(const model* m);
size_t model_num_params(const model* m);
float* model_params(model* m);     /* (num_params) */
float* model_grads(model* m);      /* (num_params) */
float* model_adam_m(model* m);     /* (num_params) */
float* model_adam_v(model* m);     /* (num_params) */
param_tensors* model_param_tensors(model* m);
size_t model_param_size(const model* m, int tensor);   /* elements of tensor i */
const char* model_param_name(int tensor);
int model_param_decays(int tensor);   /* 1 where AdamW's weight decay applies (matrices) */
/* Point p's tensors into mem (num_params floats) laid out as the model's
 * parameter buffer (so a device copy uses the same offsets). */
void model_point_tensors(const model* m, float* mem, param_tensors* p);
/* The position formulas, shared with the CUDA path: the scaled sinusoid added
 * to channel i at position t (MHA-Abs), and RoPE's rotation of pair i. */
float model_abs_pos(int t, int i, int C);
void model_rope_angle(int t, int i, int hd, float* cs, float* sn);

/* Forward of a (B, T) batch: returns the mean cross-entropy over the marked
 * positions (targets != -1; targets may be NULL: logits only). *correct and
 * *marked count argmax hits (may be NULL). Activations are kept for backward.
 * Returns NAN on an allocation failure or a mixer error (msg set). */
float model_forward(model* m, const int32_t* tokens, const int32_t* targets, int B, int T,
                    int64_t* correct, int64_t* marked);
/* Logits (B, T, V) of the last forward. */
const float* model_logits(const model* m);
/* Zero the gradients, then backpropagate the last forward's loss into them.
 * 0 on success, -1 on a mixer error (see model_error). */
int model_backward(model* m);
const char* model_error(const model* m);

/* Global gradient norm; clip to max_norm when > 0; returns the norm before clipping. */
float model_clip_grads(model* m, float max_norm);
/* One AdamW step (beta1, beta2, eps, weight decay on matrices only). */
void model_adamw(model* m, float lr, float beta1, float beta2, float eps, float weight_decay, int64_t t);

/* Threads for the mixer calls (one sequence each), default 2. */
void model_set_threads(int n);

// ----------------------------------------------------------------------------
// recurrent mode (mamba, lti): constant memory in the sequence length

typedef struct model_state model_state;
model_state* model_state_create(const model* m, int B);
void model_state_free(model_state* s);
void model_state_reset(model_state* s);
/* One token per sequence: tokens (B) in, logits (B, V) out. 0, or -1 if the
 * mixer has no recurrent mode. */
int model_step(model* m, model_state* s, const int32_t* tokens, float* logits);

#ifdef __cplusplus
}
#endif

#endif
