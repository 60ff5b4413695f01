/*
 * model.c -- the tiny language model of model.h: parameters, activations,
 * forward and backward of every layer side by side, AdamW, recurrent mode.
 *
 * Dimension legend (as model.h): B batch, T time, BT = B*T rows, C width,
 * V vocabulary, nL layers, Di = E*C, N state, R dt rank, K conv width,
 * H heads, P = Di/H (Mamba-2), hd = C/H (attention).
 * Row-major activations: an "(BT, W)" tensor is B*T rows of W floats.
 * Projections are cblas_sgemm (OpenBLAS); the mixers are mambabench's fp64
 * CPU references fed fp32 tensors, one call per sequence, sequences spread
 * over a few pthreads (the library is thread-safe; threads that sleep, not
 * spin, as the machine is shared).
 */
#define _POSIX_C_SOURCE 200809L /* pthreads */
#include "model.h"
#include "data.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mambabench.h"

#include <pthread.h>
#include <stdatomic.h>

// ----------------------------------------------------------------------------
// configuration

static const char* const mixer_names[MIXER_COUNT] = {"mamba", "lti", "mamba2", "mha-abs", "mha-rope", "mha-nope",
                                                     "mha-hardalibi"};

int mixer_from_name(const char* name) {
    for (int k = 0; k < MIXER_COUNT; k++)
        if (name && strcmp(name, mixer_names[k]) == 0) return k;
    return -1;
}
const char* mixer_name(int mixer) { return (mixer >= 0 && mixer < MIXER_COUNT) ? mixer_names[mixer] : "?"; }
int mixer_is_ssm(int mixer) { return mixer == MIXER_MAMBA || mixer == MIXER_LTI || mixer == MIXER_MAMBA2; }
int mixer_is_attention(int mixer) {
    return mixer == MIXER_MHA_ABS || mixer == MIXER_MHA_ROPE || mixer == MIXER_MHA_NOPE ||
           mixer == MIXER_MHA_HARD_ALIBI;
}

enum { kMaxLocalWindow = MODEL_MAX_LOCAL_WINDOW }; /* the widest local head: 2 << 5 */

int hard_alibi_window(int h, int H) {
    const int global = H - H / 2; /* the first heads attend to everything */
    return h < global ? 0 : 2 << (h - global < 5 ? h - global : 5); /* 2 .. kMaxLocalWindow */
}

model_config model_default_config(int mixer, int vocab, int dim, int layers) {
    model_config c = {mixer, vocab, dim, layers, 16, 2, 4, (dim + 15) / 16, 1, 1};
    if (mixer == MIXER_MAMBA2) { c.d_state = 64; c.nheads = (2 * dim) / 16 > 0 ? (2 * dim) / 16 : 1; }
    if (mixer_is_attention(mixer)) c.nheads = dim / 16 > 0 ? dim / 16 : 1;
    return c;
}

int model_check_config(const model_config* c, char* msg, int n) {
    const char* why = NULL;
    if (c->mixer < 0 || c->mixer >= MIXER_COUNT) why = "unknown mixer";
    else if (c->vocab < 2 || c->dim < 1 || c->layers < 1) why = "vocabulary >= 2, width and layers >= 1 required";
    else if (c->vocab > (1 << 20) || c->dim > 65536 || c->layers > 1024 || c->expand > 64 ||
             c->d_conv > 64 || c->dt_rank > 65536 || c->nheads > 65536)
        why = "a size is out of range (vocab <= 2^20, dim <= 65536, layers <= 1024, expand <= 64)";
    else if (mixer_is_ssm(c->mixer) && (c->d_state < 1 || c->d_state > MB_MAX_DSTATE))
        why = "d_state must be in 1..256";
    else if (mixer_is_ssm(c->mixer) && (c->expand < 1 || c->d_conv < 1 || c->dt_rank < 1))
        why = "expand, conv width and dt rank must be positive";
    else if (c->mixer == MIXER_MAMBA2 && (c->nheads < 1 || (c->expand * c->dim) % c->nheads))
        why = "mamba2 heads must divide expand*dim";
    else if (mixer_is_attention(c->mixer) && (c->nheads < 1 || c->dim % c->nheads))
        why = "attention heads must divide dim";
    else if (c->mixer == MIXER_MHA_ROPE && (c->dim / c->nheads) % 2)
        why = "RoPE needs an even head dim";
    if (!why) return 0;
    snprintf(msg, (size_t)n, "model: %s", why);
    return -1;
}

typedef model_dims dims;

model_dims model_dims_of(const model_config* c) {
    dims d = {c->vocab, c->dim, c->layers, c->d_state, c->d_conv, c->dt_rank, c->nheads,
              c->expand * c->dim, 0, 0, 0, 0, 0, c->mixer};
    d.Win = c->mixer == MIXER_MAMBA2 ? 2 * d.Di + 2 * d.N + d.H : 2 * d.Di;
    d.Cc = c->mixer == MIXER_MAMBA2 ? d.Di + 2 * d.N : d.Di;
    d.Dt = c->mixer == MIXER_MAMBA2 ? d.H : d.Di;
    d.P = c->mixer == MIXER_MAMBA2 ? d.Di / d.H : 0;
    d.hd = mixer_is_attention(c->mixer) ? d.C / d.H : 0;
    return d;
}

// ----------------------------------------------------------------------------
// parameters: one buffer, a size table, a struct of pointers

static const char* const param_names[NUM_PARAM_TENSORS] = {
    "wte", "lm_head", "normf", "norm1", "in_proj", "conv_w", "conv_b", "x_proj", "dt_proj",
    "dt_bias", "B_lti", "C_lti", "A_log", "Dskip", "out_proj", "qkv", "attn_proj", "norm2",
    "fc", "fc_proj"};
/* AdamW's weight decay applies to these (the matrices), not to norms, biases, A, D. */
static const int param_decays[NUM_PARAM_TENSORS] = {
    1, 1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1};

const char* model_param_name(int i) { return (i >= 0 && i < NUM_PARAM_TENSORS) ? param_names[i] : "?"; }
int model_param_decays(int i) { return (i >= 0 && i < NUM_PARAM_TENSORS) ? param_decays[i] : 0; }

static void fill_param_sizes(const model_config* c, size_t* s) {
    dims d = model_dims_of(c);
    size_t L = (size_t)d.nL;
    int ssm = mixer_is_ssm(c->mixer), attn = mixer_is_attention(c->mixer), m1 = c->mixer == MIXER_MAMBA;
    int m2 = c->mixer == MIXER_MAMBA2, lti = c->mixer == MIXER_LTI;
    s[0] = (size_t)d.V * d.C;
    s[1] = c->tied ? 0 : (size_t)d.V * d.C;
    s[2] = (size_t)d.C;
    s[3] = L * d.C;
    s[4] = ssm ? L * d.Win * d.C : 0;
    s[5] = ssm ? L * d.Cc * d.K : 0;
    s[6] = ssm ? L * d.Cc : 0;
    s[7] = m1 ? L * (d.R + 2 * d.N) * d.Di : 0;
    s[8] = m1 ? L * d.Di * d.R : 0;
    s[9] = ssm ? L * d.Dt : 0;
    s[10] = lti ? L * d.Di * d.N : 0;
    s[11] = lti ? L * d.Di * d.N : 0;
    s[12] = m2 ? L * d.H : (ssm ? L * d.Di * d.N : 0);
    s[13] = ssm ? L * d.Dt : 0;
    s[14] = ssm ? L * d.C * d.Di : 0;
    s[15] = attn ? L * 3 * d.C * d.C : 0;
    s[16] = attn ? L * d.C * d.C : 0;
    s[17] = attn ? L * d.C : 0;
    s[18] = attn ? L * 4 * d.C * d.C : 0;
    s[19] = attn ? L * d.C * 4 * d.C : 0;
}

static void point_tensors(float* mem, const size_t* sizes, param_tensors* p) {
    float** ptrs[NUM_PARAM_TENSORS] = {
        &p->wte, &p->lm_head, &p->normf, &p->norm1, &p->in_proj, &p->conv_w, &p->conv_b,
        &p->x_proj, &p->dt_proj, &p->dt_bias, &p->B_lti, &p->C_lti, &p->A_log, &p->Dskip,
        &p->out_proj, &p->qkv, &p->attn_proj, &p->norm2, &p->fc, &p->fc_proj};
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        *ptrs[i] = sizes[i] ? mem : NULL;
        mem += sizes[i];
    }
}

// ----------------------------------------------------------------------------
// activations: one buffer sized for the largest (B, T) seen

#define NUM_ACT_TENSORS 25
typedef struct {
    float* res;    /* (nL+1, BT, C) residual stream entering layer l; [nL] leaves the last */
    float* ln1;    /* (nL, BT, C) */
    float* rstd1;  /* (nL, BT) */
    float* xz;     /* (nL, BT, Win) in_proj out */
    float* xc;     /* (nL, BT, Cc)  conv out, before SiLU */
    float* xs;     /* (nL, BT, Cc)  after SiLU */
    float* dbl;    /* (nL, BT, R + 2N)  x_proj out (mamba) */
    float* dtr;    /* (nL, BT, Di)  dt_proj out (mamba), before bias and softplus */
    float* y;      /* (nL, BT, Di)  gated SSM out, or attention out (BT, C) */
    float* qkv;    /* (nL, BT, 3C)  q and k after RoPE */
    float* lse;    /* (nL, B, H, T) attention log-sum-exp */
    float* res2;   /* (nL, BT, C)  residual after attention, entering the MLP */
    float* ln2;    /* (nL, BT, C) */
    float* rstd2;  /* (nL, BT) */
    float* fch;    /* (nL, BT, 4C) before GELU */
    float* fcg;    /* (nL, BT, 4C) after GELU */
    float* lnf;    /* (BT, C) */
    float* rstdf;  /* (BT) */
    float* logits; /* (BT, V) */
    float* probs;  /* (BT, V) */
    float* g1;     /* (BT, Wmax)  backward scratch */
    float* g2;     /* (BT, Wmax)  backward scratch */
    float* g3;     /* (BT, Wmax)  backward scratch */
    float* g4;     /* (BT, Wmax)  backward scratch */
    float* dres;   /* (BT, C)     gradient of the residual stream */
} act_tensors;

size_t model_scratch_width(const model_dims* d) {
    size_t w = (size_t)d->Win;
    size_t cand[] = {(size_t)4 * d->C, (size_t)3 * d->C, (size_t)d->V, (size_t)(d->R + 2 * d->N), (size_t)d->Cc};
    for (int i = 0; i < 5; i++) if (cand[i] > w) w = cand[i];
    return w;
}

static void fill_act_sizes(const dims* d, size_t B, size_t T, size_t* s) {
    size_t BT = B * T, L = (size_t)d->nL;
    int ssm = mixer_is_ssm(d->mixer), attn = mixer_is_attention(d->mixer), m1 = d->mixer == MIXER_MAMBA;
    s[0] = (L + 1) * BT * d->C;
    s[1] = L * BT * d->C;
    s[2] = L * BT;
    s[3] = ssm ? L * BT * d->Win : 0;
    s[4] = ssm ? L * BT * d->Cc : 0;
    s[5] = ssm ? L * BT * d->Cc : 0;
    s[6] = m1 ? L * BT * (d->R + 2 * d->N) : 0;
    s[7] = m1 ? L * BT * d->Di : 0;
    s[8] = L * BT * (ssm ? d->Di : d->C);
    s[9] = attn ? L * BT * 3 * d->C : 0;
    s[10] = attn ? L * BT * d->H : 0;
    s[11] = attn ? L * BT * d->C : 0;
    s[12] = attn ? L * BT * d->C : 0;
    s[13] = attn ? L * BT : 0;
    s[14] = attn ? L * BT * 4 * d->C : 0;
    s[15] = attn ? L * BT * 4 * d->C : 0;
    s[16] = BT * d->C;
    s[17] = BT;
    s[18] = BT * d->V;
    s[19] = BT * d->V;
    s[20] = BT * model_scratch_width(d);
    s[21] = BT * model_scratch_width(d);
    s[22] = BT * model_scratch_width(d);
    s[23] = BT * model_scratch_width(d);
    s[24] = BT * d->C;
}

static void point_acts(float* mem, const size_t* s, act_tensors* a) {
    float** ptrs[NUM_ACT_TENSORS] = {
        &a->res, &a->ln1, &a->rstd1, &a->xz, &a->xc, &a->xs, &a->dbl, &a->dtr, &a->y, &a->qkv,
        &a->lse, &a->res2, &a->ln2, &a->rstd2, &a->fch, &a->fcg, &a->lnf, &a->rstdf, &a->logits,
        &a->probs, &a->g1, &a->g2, &a->g3, &a->g4, &a->dres};
    for (int i = 0; i < NUM_ACT_TENSORS; i++) { *ptrs[i] = s[i] ? mem : NULL; mem += s[i]; }
}

struct model {
    model_config cfg;
    dims d;
    size_t param_sizes[NUM_PARAM_TENSORS], num_params;
    float *params_mem, *grads_mem, *m_mem, *v_mem;
    param_tensors p, g;
    size_t act_capacity; /* floats */
    float* acts_mem;
    act_tensors a;
    float* mix_mem;      /* mixer API scratch, (mix_capacity) floats */
    size_t mix_capacity;
    int B, T;            /* of the last forward */
    const int32_t* targets; /* of the last forward, (B, T) */
    int32_t* tokens;     /* copy of the last forward's tokens, (B, T) */
    size_t tok_capacity;
    char err[256];
};

const model_config* model_cfg(const model* m) { return &m->cfg; }
size_t model_num_params(const model* m) { return m->num_params; }
float* model_params(model* m) { return m->params_mem; }
float* model_grads(model* m) { return m->grads_mem; }
float* model_adam_m(model* m) { return m->m_mem; }
float* model_adam_v(model* m) { return m->v_mem; }
param_tensors* model_param_tensors(model* m) { return &m->p; }
size_t model_param_size(const model* m, int i) { return m->param_sizes[i]; }
const char* model_error(const model* m) { return m->err; }
void model_point_tensors(const model* m, float* mem, param_tensors* p) { point_tensors(mem, m->param_sizes, p); }

// ----------------------------------------------------------------------------
// initialisation (mamba_ssm's and PyTorch's defaults)

static void init_uniform(float* w, size_t n, float bound, task_rng* r) {
    for (size_t i = 0; i < n; i++) w[i] = bound * (2.0f * rng_uniform(r) - 1.0f);
}

/* dt = exp(U[log 1e-3, log 1e-1]) clamped at 1e-4, bias = softplus^-1(dt) = dt + log(-expm1(-dt)). */
static void init_dt_bias(float* b, size_t n, task_rng* r) {
    for (size_t i = 0; i < n; i++) {
        double dt = exp(rng_uniform(r) * (log(0.1) - log(0.001)) + log(0.001));
        if (dt < 1e-4) dt = 1e-4;
        b[i] = (float)(dt + log(-expm1(-dt)));
    }
}

static void init_params(model* m, uint64_t seed) {
    dims d = m->d;
    param_tensors* p = &m->p;
    task_rng r = rng_seeded(seed, 0x1417, 0);
    float out_scale = 1.0f / sqrtf((float)(mixer_is_attention(d.mixer) ? 2 * d.nL : d.nL));
    for (size_t i = 0; i < m->param_sizes[0]; i++) p->wte[i] = 0.02f * rng_normal(&r);
    if (p->lm_head) init_uniform(p->lm_head, m->param_sizes[1], 1.0f / sqrtf((float)d.C), &r);
    for (int i = 0; i < d.C; i++) p->normf[i] = 1.0f;
    for (size_t i = 0; i < m->param_sizes[3]; i++) p->norm1[i] = 1.0f;
    if (p->norm2) for (size_t i = 0; i < m->param_sizes[17]; i++) p->norm2[i] = 1.0f;
    if (p->in_proj) init_uniform(p->in_proj, m->param_sizes[4], 1.0f / sqrtf((float)d.C), &r);
    if (p->conv_w) init_uniform(p->conv_w, m->param_sizes[5], 1.0f / sqrtf((float)d.K), &r);
    if (p->conv_b) init_uniform(p->conv_b, m->param_sizes[6], 1.0f / sqrtf((float)d.K), &r);
    if (p->x_proj) init_uniform(p->x_proj, m->param_sizes[7], 1.0f / sqrtf((float)d.Di), &r);
    if (p->dt_proj) init_uniform(p->dt_proj, m->param_sizes[8], 1.0f / sqrtf((float)d.R), &r);
    if (p->dt_bias) init_dt_bias(p->dt_bias, m->param_sizes[9], &r);
    if (p->B_lti) for (size_t i = 0; i < m->param_sizes[10]; i++) p->B_lti[i] = 1.0f; /* S4D: B = 1 */
    if (p->C_lti) for (size_t i = 0; i < m->param_sizes[11]; i++) p->C_lti[i] = rng_normal(&r);
    if (p->A_log) {
        if (d.mixer == MIXER_MAMBA2) /* A ~ U[1, 16] per head */
            for (size_t i = 0; i < m->param_sizes[12]; i++) p->A_log[i] = logf(1.0f + 15.0f * rng_uniform(&r));
        else /* S4D-real: A_n = -(n + 1) */
            for (size_t i = 0; i < m->param_sizes[12]; i++) p->A_log[i] = logf((float)(i % d.N + 1));
    }
    if (p->Dskip) for (size_t i = 0; i < m->param_sizes[13]; i++) p->Dskip[i] = 1.0f;
    if (p->out_proj) init_uniform(p->out_proj, m->param_sizes[14], out_scale / sqrtf((float)d.Di), &r);
    if (p->qkv) init_uniform(p->qkv, m->param_sizes[15], 1.0f / sqrtf((float)d.C), &r);
    if (p->attn_proj) init_uniform(p->attn_proj, m->param_sizes[16], out_scale / sqrtf((float)d.C), &r);
    if (p->fc) init_uniform(p->fc, m->param_sizes[18], 1.0f / sqrtf((float)d.C), &r);
    if (p->fc_proj) init_uniform(p->fc_proj, m->param_sizes[19], out_scale / sqrtf(4.0f * d.C), &r);
}

model* model_create(const model_config* cfg, uint64_t seed, char* msg, int msg_size) {
    if (model_check_config(cfg, msg, msg_size)) return NULL;
    model* m = calloc(1, sizeof(model));
    if (!m) { snprintf(msg, (size_t)msg_size, "model: out of memory"); return NULL; }
    m->cfg = *cfg;
    m->d = model_dims_of(cfg);
    fill_param_sizes(cfg, m->param_sizes);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) m->num_params += m->param_sizes[i];
    m->params_mem = calloc(m->num_params, sizeof(float));
    m->grads_mem = calloc(m->num_params, sizeof(float));
    m->m_mem = calloc(m->num_params, sizeof(float));
    m->v_mem = calloc(m->num_params, sizeof(float));
    if (!m->params_mem || !m->grads_mem || !m->m_mem || !m->v_mem) {
        snprintf(msg, (size_t)msg_size, "model: out of memory for %zu parameters", m->num_params);
        model_free(m);
        return NULL;
    }
    point_tensors(m->params_mem, m->param_sizes, &m->p);
    point_tensors(m->grads_mem, m->param_sizes, &m->g);
    init_params(m, seed);
    return m;
}

void model_free(model* m) {
    if (!m) return;
    free(m->params_mem); free(m->grads_mem); free(m->m_mem); free(m->v_mem);
    free(m->acts_mem); free(m->mix_mem); free(m->tokens);
    free(m);
}

static int ensure_acts(model* m, int B, int T) {
    size_t s[NUM_ACT_TENSORS], total = 0;
    fill_act_sizes(&m->d, (size_t)B, (size_t)T, s);
    for (int i = 0; i < NUM_ACT_TENSORS; i++) total += s[i];
    if (total > m->act_capacity) {
        free(m->acts_mem);
        m->acts_mem = malloc(total * sizeof(float));
        m->act_capacity = m->acts_mem ? total : 0;
        if (!m->acts_mem) { snprintf(m->err, sizeof m->err, "out of memory for activations at B=%d T=%d", B, T); return -1; }
    }
    point_acts(m->acts_mem, s, &m->a);
    if ((size_t)B * T > m->tok_capacity) {
        free(m->tokens);
        m->tokens = malloc((size_t)B * T * sizeof(int32_t));
        m->tok_capacity = m->tokens ? (size_t)B * T : 0;
        if (!m->tokens) { snprintf(m->err, sizeof m->err, "out of memory"); return -1; }
    }
    return 0;
}

/* Scratch for the mixer API calls, grown on demand. */
static float* mix_scratch(model* m, size_t floats) {
    if (floats > m->mix_capacity) {
        free(m->mix_mem);
        m->mix_mem = malloc(floats * sizeof(float));
        m->mix_capacity = m->mix_mem ? floats : 0;
    }
    return m->mix_mem;
}

// ----------------------------------------------------------------------------
// matmul: out (BT, OC) = inp (BT, IC) @ w^T, w (OC, IC); row strides ldo, ldi

static void matmul_forward(float* out, int ldo, const float* inp, int ldi, const float* w,
                           int BT, int IC, int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BT, OC, IC, 1.0f, inp, ldi, w, IC,
                0.0f, out, ldo);
}

/* dinp (BT, IC) += dout @ w (when dinp); dw (OC, IC) += dout^T @ inp. */
static void matmul_backward(float* dinp, int lddi, float* dw, const float* dout, int ldo,
                            const float* inp, int ldi, const float* w, int BT, int IC, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BT, IC, OC, 1.0f, dout, ldo, w, IC,
                    1.0f, dinp, lddi);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, BT, 1.0f, dout, ldo, inp, ldi,
                1.0f, dw, IC);
}

// ----------------------------------------------------------------------------
// embedding (+ sinusoidal positions): out (BT, C) = wte[tokens] (+ pe(t))

/* The sinusoids have rms 1/sqrt(2); the token embeddings start at std 0.02
 * (mamba_ssm's init). Added at full size, position drowns the token (2% of
 * the normalised vector) and MHA-Abs stayed at chance on induction heads in
 * 2000 steps where MHA-RoPE solved it; scaled to the embeddings' rms, the
 * two start equal. */
#define ABS_POS_SCALE (0.02f * 1.41421356f)

float model_abs_pos(int t, int i, int C) {
    /* pe(t, 2i) = sin(t / 10000^(2i/C)), pe(t, 2i+1) = cos(...), scaled to the
     * token embeddings' initial rms (see ABS_POS_SCALE) */
    double freq = pow(10000.0, -(double)(i - i % 2) / C);
    return ABS_POS_SCALE * (float)(i % 2 ? cos(t * freq) : sin(t * freq));
}

void model_rope_angle(int t, int i, int hd, float* cs, float* sn) {
    double ang = t * pow(10000.0, -2.0 * i / hd);
    *cs = (float)cos(ang);
    *sn = (float)sin(ang);
}

static void embed_forward(float* out, const int32_t* tokens, const float* wte, int B, int T, int C,
                          int abs_pos) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float* o = out + ((size_t)b * T + t) * C;
            memcpy(o, wte + (size_t)tokens[b * T + t] * C, sizeof(float) * C);
            if (!abs_pos) continue;
            for (int i = 0; i < C; i++) o[i] += model_abs_pos(t, i, C);
        }
}

static void embed_backward(float* dwte, const float* dout, const int32_t* tokens, int BT, int C) {
    for (int r = 0; r < BT; r++) {
        float* dw = dwte + (size_t)tokens[r] * C;
        for (int i = 0; i < C; i++) dw[i] += dout[(size_t)r * C + i];
    }
}

// ----------------------------------------------------------------------------
// RMSNorm: out = x * rstd * w,  rstd = 1 / sqrt(mean(x^2) + eps)

#define RMS_EPS 1e-5f

static void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int BT, int C) {
    for (int r = 0; r < BT; r++) {
        const float* xr = x + (size_t)r * C;
        double ss = 0;
        for (int i = 0; i < C; i++) ss += (double)xr[i] * xr[i];
        float s = (float)(1.0 / sqrt(ss / C + RMS_EPS));
        rstd[r] = s;
        for (int i = 0; i < C; i++) out[(size_t)r * C + i] = xr[i] * s * w[i];
    }
}

/* dx += rstd * g - x * rstd^3 * mean(g . x),  g = w * dout;  dw += dout * x * rstd */
static void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                             const float* rstd, int BT, int C) {
    for (int r = 0; r < BT; r++) {
        const float *xr = x + (size_t)r * C, *dr = dout + (size_t)r * C;
        float s = rstd[r];
        double dot = 0;
        for (int i = 0; i < C; i++) dot += (double)w[i] * dr[i] * xr[i];
        float k = (float)(dot / C) * s * s * s;
        for (int i = 0; i < C; i++) {
            dx[(size_t)r * C + i] += s * w[i] * dr[i] - xr[i] * k;
            dw[i] += dr[i] * xr[i] * s;
        }
    }
}

// ----------------------------------------------------------------------------
// causal depthwise conv1d over channels [0, Cc) of inp (BT, ld):
//   out[b, t, c] = bias[c] + sum_k w[c, k] * inp[b, t - K + 1 + k, c]

static void conv_forward(float* out, const float* inp, int ld, const float* w, const float* bias,
                         int B, int T, int Cc, int K) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float* o = out + ((size_t)b * T + t) * Cc;
            for (int c = 0; c < Cc; c++) o[c] = bias[c];
            for (int k = 0; k < K; k++) {
                int ts = t - K + 1 + k;
                if (ts < 0) continue;
                const float* x = inp + ((size_t)b * T + ts) * ld;
                for (int c = 0; c < Cc; c++) o[c] += w[c * K + k] * x[c];
            }
        }
}

/* dinp (BT, ld) += ..., dw (Cc, K) += ..., dbias (Cc) += ... */
static void conv_backward(float* dinp, int ld, float* dw, float* dbias, const float* dout,
                          const float* inp, const float* w, int B, int T, int Cc, int K) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float* d = dout + ((size_t)b * T + t) * Cc;
            for (int c = 0; c < Cc; c++) dbias[c] += d[c];
            for (int k = 0; k < K; k++) {
                int ts = t - K + 1 + k;
                if (ts < 0) continue;
                const float* x = inp + ((size_t)b * T + ts) * ld;
                float* dx = dinp + ((size_t)b * T + ts) * ld;
                for (int c = 0; c < Cc; c++) {
                    dw[c * K + k] += d[c] * x[c];
                    dx[c] += w[c * K + k] * d[c];
                }
            }
        }
}

// ----------------------------------------------------------------------------
// pointwise: SiLU, GELU (tanh form), residual

static float silu(float x) { return x / (1.0f + expf(-x)); }
static float silu_grad(float x) {
    float s = 1.0f / (1.0f + expf(-x));
    return s * (1.0f + x * (1.0f - s));
}

static void silu_forward(float* out, const float* x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = silu(x[i]);
}
/* dx = dout * silu'(x) (overwrites) */
static void silu_backward(float* dx, const float* dout, const float* x, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = dout[i] * silu_grad(x[i]);
}

#define GELU_K 0.7978845608f /* sqrt(2/pi) */
static void gelu_forward(float* out, const float* x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float u = GELU_K * (x[i] + 0.044715f * x[i] * x[i] * x[i]);
        out[i] = 0.5f * x[i] * (1.0f + tanhf(u));
    }
}
/* dx = dout * gelu'(x) (overwrites) */
static void gelu_backward(float* dx, const float* dout, const float* x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float xi = x[i], u = GELU_K * (xi + 0.044715f * xi * xi * xi), th = tanhf(u);
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * xi * xi);
        dx[i] = dout[i] * (0.5f * (1.0f + th) + 0.5f * xi * (1.0f - th * th) * du);
    }
}

static void residual_forward(float* out, const float* a, const float* b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// ----------------------------------------------------------------------------
// RoPE on the q and k columns of qkv (BT, 3C), per head pairs (2i, 2i+1):
//   (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos),  angle = t * 10000^(-2i/hd)
// backward applies the inverse rotation (the transpose) to dq, dk.

static void rope_apply(float* qkv, int B, int T, int C, int H, float sign) {
    int hd = C / H;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float* row = qkv + ((size_t)b * T + t) * 3 * C;
            for (int part = 0; part < 2; part++)
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < hd / 2; i++) {
                        float cs, sn;
                        model_rope_angle(t, i, hd, &cs, &sn);
                        sn *= sign;
                        float* x = row + part * C + h * hd + 2 * i;
                        float x0 = x[0], x1 = x[1];
                        x[0] = x0 * cs - x1 * sn;
                        x[1] = x0 * sn + x1 * cs;
                    }
        }
}

// ----------------------------------------------------------------------------
// cross-entropy on the marked positions: loss = mean over marked of -log p[target]
// forward fills probs (BT, V); backward: dlogits = (probs - onehot) / n_marked

static float crossentropy_forward(float* probs, const float* logits, const int32_t* targets, int BT,
                                  int V, int64_t* correct, int64_t* marked) {
    double loss = 0;
    int64_t hit = 0, n = 0;
    for (int r = 0; r < BT; r++) {
        if (!targets || targets[r] < 0) continue;
        const float* l = logits + (size_t)r * V;
        float* p = probs + (size_t)r * V;
        int arg = 0;
        for (int v = 1; v < V; v++) if (l[v] > l[arg]) arg = v;
        double sum = 0;
        for (int v = 0; v < V; v++) { p[v] = expf(l[v] - l[arg]); sum += p[v]; }
        for (int v = 0; v < V; v++) p[v] = (float)(p[v] / sum);
        loss += log(sum) - (l[targets[r]] - l[arg]);
        hit += arg == targets[r];
        n++;
    }
    if (correct) *correct = hit;
    if (marked) *marked = n;
    return n ? (float)(loss / n) : 0.0f;
}

static void crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets, int BT, int V) {
    int64_t n = 0;
    for (int r = 0; r < BT; r++) n += targets[r] >= 0;
    for (int r = 0; r < BT; r++) {
        float* d = dlogits + (size_t)r * V;
        if (targets[r] < 0 || !n) { memset(d, 0, sizeof(float) * V); continue; }
        for (int v = 0; v < V; v++) d[v] = probs[(size_t)r * V + v] / (float)n;
        d[targets[r]] -= 1.0f / (float)n;
    }
}

// ----------------------------------------------------------------------------
// layout changes for the mixer APIs

/* dst (B, W, T) = src (B, T, ld) columns [0, W) transposed */
static void to_channels_first(float* dst, const float* src, int ld, int B, int T, int W) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float* s = src + ((size_t)b * T + t) * ld;
            for (int c = 0; c < W; c++) dst[((size_t)b * W + c) * T + t] = s[c];
        }
}
/* dst (B, T, ld) columns [0, W) (+)= src (B, W, T) transposed */
static void from_channels_first(float* dst, int ld, const float* src, int B, int T, int W, int add) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float* d = dst + ((size_t)b * T + t) * ld;
            for (int c = 0; c < W; c++) {
                float v = src[((size_t)b * W + c) * T + t];
                d[c] = add ? d[c] + v : v;
            }
        }
}
/* dst (BT, W) contiguous = src (BT, ld) columns [0, W) */
static void gather_cols(float* dst, const float* src, int ld, size_t BT, int W) {
    for (size_t r = 0; r < BT; r++) memcpy(dst + r * W, src + r * ld, sizeof(float) * W);
}

// ----------------------------------------------------------------------------
// parallel_for: fn(ctx, i) for i in [0, n) on up to model_threads threads;
// the first failure's message lands in m->err

static int model_threads = 2;
void model_set_threads(int n) { model_threads = n < 1 ? 1 : n; }

typedef mb_status (*pfor_fn)(model* m, void* ctx, int i);
typedef struct {
    model* m; void* ctx; pfor_fn fn; int n;
    atomic_int next, failed;
    pthread_mutex_t mu;
    const char* what;
} pfor_job;

static void* pfor_worker(void* arg) {
    pfor_job* j = arg;
    for (int i; (i = atomic_fetch_add(&j->next, 1)) < j->n;) {
        mb_status st = j->fn(j->m, j->ctx, i);
        if (st != MB_OK && !atomic_exchange(&j->failed, 1)) {
            pthread_mutex_lock(&j->mu);
            snprintf(j->m->err, sizeof j->m->err, "%s: %s (%s)", j->what, mb_status_string(st), mb_last_error());
            pthread_mutex_unlock(&j->mu);
        }
    }
    return NULL;
}

static int parallel_for(model* m, const char* what, int n, pfor_fn fn, void* ctx) {
    pfor_job j = {m, ctx, fn, n, 0, 0, PTHREAD_MUTEX_INITIALIZER, what};
    enum { MAXT = 64 };
    pthread_t th[MAXT];
    int nt = model_threads < n ? model_threads : n, started = 0;
    if (nt > MAXT) nt = MAXT;
    for (int t = 1; t < nt; t++) if (pthread_create(&th[started], NULL, pfor_worker, &j) == 0) started++;
    pfor_worker(&j); /* this thread works too; fewer threads if some did not start */
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    return atomic_load(&j.failed) ? -1 : 0;
}

// ----------------------------------------------------------------------------
// the selective scan (mamba, lti) through mb_selective_scan_{fwd,bwd}_cpu,
// one call per sequence. Inputs in the API's channels-first layout:
//   u = xs, delta = dtr (mamba) or 0 (lti), z = xz[:, Di:2Di]   (B, Di, T)
//   B, C = dbl[:, R:R+2N] (mamba, G = 1)  or  B_lti, C_lti broadcast (lti, G = Di)
//   A = -exp(A_log) (Di, N), D = Dskip, delta_bias = dt_bias, softplus on

typedef struct {
    int G;
    float *u, *delta, *z, *Bm, *Cm, *y; /* (B, Di, T); Bm, Cm (B, G, N, T) */
    float* A;                           /* (Di, N) */
    float *dy, *du, *ddelta, *dz, *dB, *dC; /* as the inputs */
    float *dA, *dD, *ddb;               /* (B, Di*N), (B, Di), (B, Di): one per sequence */
} scan_bufs;

static int scan_carve(model* m, int B, int T, int backward, scan_bufs* s) {
    dims d = m->d;
    s->G = d.mixer == MIXER_LTI ? d.Di : 1;
    size_t x = (size_t)B * d.Di * T, bc = (size_t)B * s->G * d.N * T, dn = (size_t)d.Di * d.N;
    size_t total = 4 * x + 2 * bc + dn + (backward ? 4 * x + 2 * bc + (size_t)B * (dn + 2 * d.Di) : 0);
    float* p = mix_scratch(m, total);
    if (!p) { snprintf(m->err, sizeof m->err, "out of memory for the scan at B=%d T=%d", B, T); return -1; }
    s->u = p; s->delta = p + x; s->z = p + 2 * x; s->y = p + 3 * x; p += 4 * x;
    s->Bm = p; s->Cm = p + bc; p += 2 * bc;
    s->A = p; p += dn;
    if (!backward) return 0;
    s->dy = p; s->du = p + x; s->ddelta = p + 2 * x; s->dz = p + 3 * x; p += 4 * x;
    s->dB = p; s->dC = p + bc; p += 2 * bc;
    s->dA = p; s->dD = p + (size_t)B * dn; s->ddb = s->dD + (size_t)B * d.Di;
    return 0;
}

static void scan_inputs(model* m, int l, int B, int T, scan_bufs* s) {
    dims d = m->d;
    size_t BT = (size_t)B * T;
    const float* xs = m->a.xs + l * BT * d.Cc;
    const float* xz = m->a.xz + l * BT * d.Win;
    to_channels_first(s->u, xs, d.Cc, B, T, d.Di);
    to_channels_first(s->z, xz + d.Di, d.Win, B, T, d.Di);
    if (d.mixer == MIXER_MAMBA) {
        const float* dbl = m->a.dbl + l * BT * (d.R + 2 * d.N);
        to_channels_first(s->delta, m->a.dtr + l * BT * d.Di, d.Di, B, T, d.Di);
        to_channels_first(s->Bm, dbl + d.R, d.R + 2 * d.N, B, T, d.N);
        to_channels_first(s->Cm, dbl + d.R + d.N, d.R + 2 * d.N, B, T, d.N);
    } else { /* lti: delta = 0 (+ dt_bias in the API), B and C the same at every t */
        memset(s->delta, 0, sizeof(float) * B * d.Di * T);
        const float* Bl = m->p.B_lti + (size_t)l * d.Di * d.N;
        const float* Cl = m->p.C_lti + (size_t)l * d.Di * d.N;
        for (int b = 0; b < B; b++)
            for (size_t cn = 0; cn < (size_t)d.Di * d.N; cn++)
                for (int t = 0; t < T; t++) {
                    s->Bm[((size_t)b * d.Di * d.N + cn) * T + t] = Bl[cn];
                    s->Cm[((size_t)b * d.Di * d.N + cn) * T + t] = Cl[cn];
                }
    }
    const float* A_log = m->p.A_log + (size_t)l * d.Di * d.N;
    for (size_t i = 0; i < (size_t)d.Di * d.N; i++) s->A[i] = -expf(A_log[i]);
}

/* Forward (dy == NULL) or backward of sequence b through the API. */
static mb_status scan_seq(model* m, int l, int b, int T, const scan_bufs* s, int backward) {
    dims d = m->d;
    mb_selective_scan_params prm = {1, d.Di, T, d.N, s->G, MB_DTYPE_F32, 1};
    size_t x = (size_t)b * d.Di * T, bc = (size_t)b * s->G * d.N * T;
    mb_selective_scan_inputs in = {s->u + x, s->delta + x, s->A, s->Bm + bc, s->Cm + bc,
                                   m->p.Dskip + (size_t)l * d.Di, s->z + x,
                                   m->p.dt_bias + (size_t)l * d.Di};
    if (!backward) return mb_selective_scan_fwd_cpu(&prm, &in, s->y + x, NULL);
    mb_selective_scan_grads g = {s->du + x, s->ddelta + x, s->dA + (size_t)b * d.Di * d.N,
                                 s->dB + bc, s->dC + bc, s->dD + (size_t)b * d.Di, s->dz + x,
                                 s->ddb + (size_t)b * d.Di};
    return mb_selective_scan_bwd_cpu(&prm, &in, s->dy + x, &g);
}

typedef struct { int l, T, backward; const scan_bufs* s; } scan_job;
static mb_status scan_job_run(model* m, void* ctx, int b) {
    scan_job* j = ctx;
    return scan_seq(m, j->l, b, j->T, j->s, j->backward);
}
/* Run scan_seq over the B sequences on the threads; -1 on any failure. */
static int scan_all(model* m, int l, int B, int T, const scan_bufs* s, int backward) {
    scan_job j = {l, T, backward, s};
    return parallel_for(m, "selective scan", B, scan_job_run, &j);
}

/* y (BT, Di) = the gated scan of layer l. */
static int scan_forward(model* m, int l, int B, int T) {
    scan_bufs s;
    if (scan_carve(m, B, T, 0, &s)) return -1;
    scan_inputs(m, l, B, T, &s);
    if (scan_all(m, l, B, T, &s, 0)) return -1;
    from_channels_first(m->a.y + (size_t)l * B * T * m->d.Di, m->d.Di, s.y, B, T, m->d.Di, 0);
    return 0;
}

/* dy (BT, Di) in; out: dxs (BT, Di) overwritten, dxz (BT, Win) z columns
 * overwritten, ddbl (BT, R+2N) B/C columns overwritten and ddtr (BT, Di)
 * overwritten (mamba); the parameter gradients accumulated. */
static int scan_backward(model* m, int l, int B, int T, const float* dy, float* dxs, float* dxz,
                         float* ddbl, float* ddtr) {
    dims d = m->d;
    scan_bufs s;
    if (scan_carve(m, B, T, 1, &s)) return -1;
    scan_inputs(m, l, B, T, &s);
    to_channels_first(s.dy, dy, d.Di, B, T, d.Di);
    if (scan_all(m, l, B, T, &s, 1)) return -1;
    from_channels_first(dxs, d.Di, s.du, B, T, d.Di, 0);
    from_channels_first(dxz + d.Di, d.Win, s.dz, B, T, d.Di, 0);
    size_t dn = (size_t)d.Di * d.N;
    float* gA = m->g.A_log + l * dn;
    for (int b = 0; b < B; b++) {
        for (size_t i = 0; i < dn; i++) gA[i] += s.dA[b * dn + i] * s.A[i]; /* dA_log = dA * A */
        for (int c = 0; c < d.Di; c++) {
            m->g.Dskip[(size_t)l * d.Di + c] += s.dD[(size_t)b * d.Di + c];
            m->g.dt_bias[(size_t)l * d.Di + c] += s.ddb[(size_t)b * d.Di + c];
        }
    }
    if (d.mixer == MIXER_MAMBA) {
        int W = d.R + 2 * d.N;
        from_channels_first(ddbl + d.R, W, s.dB, B, T, d.N, 0);
        from_channels_first(ddbl + d.R + d.N, W, s.dC, B, T, d.N, 0);
        from_channels_first(ddtr, d.Di, s.ddelta, B, T, d.Di, 0);
    } else { /* lti: B and C are shared by every (b, t): sum their gradients */
        float* gB = m->g.B_lti + l * dn;
        float* gC = m->g.C_lti + l * dn;
        for (int b = 0; b < B; b++)
            for (size_t cn = 0; cn < dn; cn++) {
                const float* pb = s.dB + ((size_t)b * dn + cn) * T;
                const float* pc = s.dC + ((size_t)b * dn + cn) * T;
                double sb = 0, sc = 0;
                for (int t = 0; t < T; t++) { sb += pb[t]; sc += pc[t]; }
                gB[cn] += (float)sb;
                gC[cn] += (float)sc;
            }
    }
    return 0;
}

// ----------------------------------------------------------------------------
// SSD (mamba2) through mb_ssd_{fwd,bwd}_cpu, one call per sequence.
// xz columns: [x (Di) | B (N) | C (N) | z (Di) | dt (H)]; the conv and SiLU
// cover the first Cc = Di + 2N, so xs = [x | B | C] after SiLU.
//   x (B, T, H, P), dt (B, T, H), B, C (B, T, 1, N), z (B, T, H, P)
//   A = -exp(A_log) (H), D = Dskip (H), dt_bias (H), softplus on


typedef struct {
    float *x, *dt, *Bm, *Cm, *z, *A;   /* API inputs */
    float *dx, *ddt, *dB, *dC, *dz;    /* API grads, as the inputs */
    float *dA, *dD, *ddtb;             /* (B, H) each: one per sequence */
} ssd_bufs;

static int ssd_carve(model* m, int B, int T, int backward, ssd_bufs* s) {
    dims d = m->d;
    size_t BT = (size_t)B * T, x = BT * d.Di, t = BT * d.H, n = BT * d.N;
    size_t total = 2 * x + t + 2 * n + d.H + (backward ? 2 * x + t + 2 * n + 3 * (size_t)B * d.H : 0);
    float* p = mix_scratch(m, total);
    if (!p) { snprintf(m->err, sizeof m->err, "out of memory for SSD at B=%d T=%d", B, T); return -1; }
    s->x = p; s->z = p + x; p += 2 * x;
    s->dt = p; p += t;
    s->Bm = p; s->Cm = p + n; p += 2 * n;
    s->A = p; p += d.H;
    if (!backward) return 0;
    s->dx = p; s->dz = p + x; p += 2 * x;
    s->ddt = p; p += t;
    s->dB = p; s->dC = p + n; p += 2 * n;
    s->dA = p; s->dD = p + (size_t)B * d.H; s->ddtb = s->dD + (size_t)B * d.H;
    return 0;
}

static void ssd_inputs(model* m, int l, int B, int T, ssd_bufs* s) {
    dims d = m->d;
    size_t BT = (size_t)B * T;
    const float* xs = m->a.xs + l * BT * d.Cc;
    const float* xz = m->a.xz + l * BT * d.Win;
    gather_cols(s->x, xs, d.Cc, BT, d.Di);
    gather_cols(s->Bm, xs + d.Di, d.Cc, BT, d.N);
    gather_cols(s->Cm, xs + d.Di + d.N, d.Cc, BT, d.N);
    gather_cols(s->z, xz + d.Cc, d.Win, BT, d.Di);
    gather_cols(s->dt, xz + d.Cc + d.Di, d.Win, BT, d.H);
    for (int h = 0; h < d.H; h++) s->A[h] = -expf(m->p.A_log[(size_t)l * d.H + h]);
}

static mb_status ssd_seq(model* m, int l, int b, int T, const ssd_bufs* s, const float* dy, float* y) {
    dims d = m->d;
    mb_ssd_params prm = {1, T, d.H, d.P, d.N, 1, MODEL_SSD_CHUNK, MB_DTYPE_F32, 1, MB_SSD_CHUNKED, 0};
    size_t x = (size_t)b * T * d.Di, t = (size_t)b * T * d.H, n = (size_t)b * T * d.N;
    mb_ssd_inputs in = {s->x + x, s->dt + t, s->A, s->Bm + n, s->Cm + n,
                        m->p.Dskip + (size_t)l * d.H, s->z + x, m->p.dt_bias + (size_t)l * d.H, NULL};
    if (!dy) return mb_ssd_fwd_cpu(&prm, &in, y + x, NULL);
    mb_ssd_grads g = {s->dx + x, s->ddt + t, s->dA + (size_t)b * d.H, s->dB + n, s->dC + n,
                      s->dD + (size_t)b * d.H, s->dz + x, s->ddtb + (size_t)b * d.H, NULL};
    return mb_ssd_bwd_cpu(&prm, &in, dy + x, NULL, &g);
}

typedef struct { int l, T; const ssd_bufs* s; const float* dy; float* y; } ssd_job;
static mb_status ssd_job_run(model* m, void* ctx, int b) {
    ssd_job* j = ctx;
    return ssd_seq(m, j->l, b, j->T, j->s, j->dy, j->y);
}
static int ssd_all(model* m, int l, int B, int T, const ssd_bufs* s, const float* dy, float* y) {
    ssd_job j = {l, T, s, dy, y};
    return parallel_for(m, "SSD", B, ssd_job_run, &j);
}

static int ssd_forward(model* m, int l, int B, int T) {
    ssd_bufs s;
    if (ssd_carve(m, B, T, 0, &s)) return -1;
    ssd_inputs(m, l, B, T, &s);
    return ssd_all(m, l, B, T, &s, NULL, m->a.y + (size_t)l * B * T * m->d.Di);
}

/* dy (BT, Di) in; dxs (BT, Cc) and dxz's z and dt columns overwritten;
 * A_log, Dskip, dt_bias gradients accumulated. */
static int ssd_backward(model* m, int l, int B, int T, const float* dy, float* dxs, float* dxz) {
    dims d = m->d;
    ssd_bufs s;
    if (ssd_carve(m, B, T, 1, &s)) return -1;
    ssd_inputs(m, l, B, T, &s);
    if (ssd_all(m, l, B, T, &s, dy, NULL)) return -1;
    size_t BT = (size_t)B * T;
    for (size_t r = 0; r < BT; r++) {
        memcpy(dxs + r * d.Cc, s.dx + r * d.Di, sizeof(float) * d.Di);
        memcpy(dxs + r * d.Cc + d.Di, s.dB + r * d.N, sizeof(float) * d.N);
        memcpy(dxs + r * d.Cc + d.Di + d.N, s.dC + r * d.N, sizeof(float) * d.N);
        memcpy(dxz + r * d.Win + d.Cc, s.dz + r * d.Di, sizeof(float) * d.Di);
        memcpy(dxz + r * d.Win + d.Cc + d.Di, s.ddt + r * d.H, sizeof(float) * d.H);
    }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < d.H; h++) {
            size_t i = (size_t)l * d.H + h, j = (size_t)b * d.H + h;
            m->g.A_log[i] += s.dA[j] * s.A[h];
            m->g.Dskip[i] += s.dD[j];
            m->g.dt_bias[i] += s.ddtb[j];
        }
    return 0;
}

// ----------------------------------------------------------------------------
// the SSM mixer blocks (mamba, lti, mamba2): ln (BT, C) -> out (BT, C)

static int ssm_block_forward(model* m, int l, int B, int T, float* out) {
    dims d = m->d;
    size_t BT = (size_t)B * T;
    act_tensors* a = &m->a;
    const float* ln = a->ln1 + l * BT * d.C;
    float *xz = a->xz + l * BT * d.Win, *xc = a->xc + l * BT * d.Cc, *xs = a->xs + l * BT * d.Cc;
    matmul_forward(xz, d.Win, ln, d.C, m->p.in_proj + (size_t)l * d.Win * d.C, (int)BT, d.C, d.Win);
    conv_forward(xc, xz, d.Win, m->p.conv_w + (size_t)l * d.Cc * d.K, m->p.conv_b + (size_t)l * d.Cc,
                 B, T, d.Cc, d.K);
    silu_forward(xs, xc, BT * d.Cc);
    int rc;
    if (d.mixer == MIXER_MAMBA2) rc = ssd_forward(m, l, B, T);
    else {
        if (d.mixer == MIXER_MAMBA) {
            int W = d.R + 2 * d.N;
            float* dbl = a->dbl + l * BT * W;
            matmul_forward(dbl, W, xs, d.Di, m->p.x_proj + (size_t)l * W * d.Di, (int)BT, d.Di, W);
            matmul_forward(a->dtr + l * BT * d.Di, d.Di, dbl, W, m->p.dt_proj + (size_t)l * d.Di * d.R,
                           (int)BT, d.R, d.Di);
        }
        rc = scan_forward(m, l, B, T);
    }
    if (rc) return rc;
    matmul_forward(out, d.C, a->y + l * BT * d.Di, d.Di, m->p.out_proj + (size_t)l * d.C * d.Di,
                   (int)BT, d.Di, d.C);
    return 0;
}

/* dout (BT, C) in; dln (BT, C) overwritten; parameter gradients accumulated. */
static int ssm_block_backward(model* m, int l, int B, int T, const float* dout, float* dln) {
    dims d = m->d;
    size_t BT = (size_t)B * T;
    act_tensors* a = &m->a;
    float *dy = a->g1, *dxz = a->g2, *dxs = a->g3, *ddbl = a->g4, *ddtr = a->g1;
    const float* ln = a->ln1 + l * BT * d.C;
    const float *xz = a->xz + l * BT * d.Win, *xc = a->xc + l * BT * d.Cc, *xs = a->xs + l * BT * d.Cc;
    memset(dy, 0, sizeof(float) * BT * d.Di);
    matmul_backward(dy, d.Di, m->g.out_proj + (size_t)l * d.C * d.Di, dout, d.C, a->y + l * BT * d.Di,
                    d.Di, m->p.out_proj + (size_t)l * d.C * d.Di, (int)BT, d.Di, d.C);
    memset(dxz, 0, sizeof(float) * BT * d.Win);
    if (d.mixer == MIXER_MAMBA2) {
        if (ssd_backward(m, l, B, T, dy, dxs, dxz)) return -1;
    } else {
        if (scan_backward(m, l, B, T, dy, dxs, dxz, ddbl, ddtr)) return -1; /* dy consumed first */
        if (d.mixer == MIXER_MAMBA) {
            int W = d.R + 2 * d.N;
            const float* dbl = a->dbl + l * BT * W;
            for (size_t r = 0; r < BT; r++) memset(ddbl + r * W, 0, sizeof(float) * d.R);
            matmul_backward(ddbl, W, m->g.dt_proj + (size_t)l * d.Di * d.R, ddtr, d.Di, dbl, W,
                            m->p.dt_proj + (size_t)l * d.Di * d.R, (int)BT, d.R, d.Di);
            matmul_backward(dxs, d.Di, m->g.x_proj + (size_t)l * W * d.Di, ddbl, W, xs, d.Di,
                            m->p.x_proj + (size_t)l * W * d.Di, (int)BT, d.Di, W);
        }
    }
    silu_backward(dxs, dxs, xc, BT * d.Cc);
    conv_backward(dxz, d.Win, m->g.conv_w + (size_t)l * d.Cc * d.K, m->g.conv_b + (size_t)l * d.Cc,
                  dxs, xz, m->p.conv_w + (size_t)l * d.Cc * d.K, B, T, d.Cc, d.K);
    memset(dln, 0, sizeof(float) * BT * d.C);
    matmul_backward(dln, d.C, m->g.in_proj + (size_t)l * d.Win * d.C, dxz, d.Win, ln, d.C,
                    m->p.in_proj + (size_t)l * d.Win * d.C, (int)BT, d.C, d.Win);
    return 0;
}

// ----------------------------------------------------------------------------
// attention through mb_attention_{fwd,bwd}_cpu, one call per sequence

typedef struct {
    float *q, *k, *v, *o;      /* (B, H, T, hd) */
    float *dout, *dq, *dk, *dv; /* (B, H, T, hd) */
} attn_bufs;

/* One attention head, its (T, hd) rows at offset o of the (B, H, T, hd) buffers,
 * restricted to the last w <= kMaxLocalWindow tokens (Hard-ALiBi's local heads), scale 1/sqrt(hd):
 * o_t = sum_s p_ts v_s over s in (t - w, t], lse_t = log sum_s exp(score_ts); fp64 sums. */
static void local_head_forward(const attn_bufs* s, size_t o, int T, int hd, int w, float* lse) {
    const float *q = s->q + o, *k = s->k + o, *v = s->v + o;
    float* out = s->o + o;
    const double scale = 1.0 / sqrt((double)hd);
    double pr[kMaxLocalWindow]; /* the window's scores, then its probabilities */
    for (int t = 0; t < T; t++) {
        const int s0 = t - w + 1 > 0 ? t - w + 1 : 0, n = t - s0 + 1;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < n; j++) {
            double dot = 0;
            for (int c = 0; c < hd; c++) dot += (double)q[(size_t)t * hd + c] * k[(size_t)(s0 + j) * hd + c];
            pr[j] = dot * scale;
            if (pr[j] > mx) mx = pr[j];
        }
        for (int j = 0; j < n; j++) sum += (pr[j] = exp(pr[j] - mx));
        for (int j = 0; j < n; j++) pr[j] /= sum;
        for (int c = 0; c < hd; c++) {
            double acc = 0;
            for (int j = 0; j < n; j++) acc += pr[j] * v[(size_t)(s0 + j) * hd + c];
            out[(size_t)t * hd + c] = (float)acc;
        }
        lse[t] = (float)(mx + log(sum));
    }
}

/* Its backward: dq, dk, dv of the head (overwritten) from dout, o and lse:
 * dS_ts = p_ts (dout_t . v_s - dout_t . o_t), dq_t = scale sum_s dS_ts k_s,
 * dk_s = scale sum_t dS_ts q_t, dv_s = sum_t p_ts dout_t. */
static void local_head_backward(const attn_bufs* s, size_t o, int T, int hd, int w, const float* lse) {
    const float *q = s->q + o, *k = s->k + o, *v = s->v + o, *out = s->o + o, *dout = s->dout + o;
    float *dq = s->dq + o, *dk = s->dk + o, *dv = s->dv + o;
    const double scale = 1.0 / sqrt((double)hd);
    memset(dq, 0, sizeof(float) * (size_t)T * hd);
    memset(dk, 0, sizeof(float) * (size_t)T * hd);
    memset(dv, 0, sizeof(float) * (size_t)T * hd);
    for (int t = 0; t < T; t++) {
        const int s0 = t - w + 1 > 0 ? t - w + 1 : 0;
        const float *qt = q + (size_t)t * hd, *dyt = dout + (size_t)t * hd;
        double Dt = 0;
        for (int c = 0; c < hd; c++) Dt += (double)dyt[c] * out[(size_t)t * hd + c];
        for (int u = s0; u <= t; u++) {
            const float *ku = k + (size_t)u * hd, *vu = v + (size_t)u * hd;
            double sc = 0, dp = 0;
            for (int c = 0; c < hd; c++) sc += (double)qt[c] * ku[c], dp += (double)dyt[c] * vu[c];
            const double p = exp(sc * scale - lse[t]), ds = p * (dp - Dt);
            for (int c = 0; c < hd; c++) {
                dq[(size_t)t * hd + c] += (float)(scale * ds * ku[c]);
                dk[(size_t)u * hd + c] += (float)(scale * ds * qt[c]);
                dv[(size_t)u * hd + c] += (float)(p * dyt[c]);
            }
        }
    }
}

/* The one place that calls the attention API. Sequence b of the (B, H, T, hd)
 * buffers; lse (H, T) of that sequence. Hard-ALiBi: the global heads (the first
 * H - H/2) through the API, the local ones above. */
static mb_status attention_api(const model* m, int T, const attn_bufs* s, int b, float* lse, int backward) {
    const int H = m->d.H, hd = m->d.hd;
    const int Hg = m->d.mixer == MIXER_MHA_HARD_ALIBI ? H - H / 2 : H;
    for (int h = Hg; h < H; h++) {
        const size_t o = ((size_t)b * H + h) * T * hd;
        const int w = hard_alibi_window(h, H);
        if (backward) local_head_backward(s, o, T, hd, w, lse + (size_t)h * T);
        else local_head_forward(s, o, T, hd, w, lse + (size_t)h * T);
    }
    mb_attention_params prm = {1, Hg, T, m->d.hd, 0.0, MB_DTYPE_F32, 0};
    size_t o = (size_t)b * m->d.H * T * m->d.hd;
    mb_attention_inputs in = {s->q + o, s->k + o, s->v + o};
    if (!backward) return mb_attention_fwd_cpu(&prm, &in, s->o + o, lse);
    mb_attention_grads g = {s->dq + o, s->dk + o, s->dv + o};
    return mb_attention_bwd_cpu(&prm, &in, s->o + o, lse, s->dout + o, &g);
}

/* (BT, ld) columns [0, C) <-> (B, H, T, hd) */
static void heads_split(float* dst, const float* src, int ld, int B, int T, int H, int hd) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                memcpy(dst + (((size_t)b * H + h) * T + t) * hd, src + ((size_t)b * T + t) * ld + h * hd,
                       sizeof(float) * hd);
}
static void heads_merge(float* dst, int ld, const float* src, int B, int T, int H, int hd) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                memcpy(dst + ((size_t)b * T + t) * ld + h * hd, src + (((size_t)b * H + h) * T + t) * hd,
                       sizeof(float) * hd);
}

static int attn_carve(model* m, int B, int T, int backward, attn_bufs* s) {
    size_t x = (size_t)B * T * m->d.C;
    float* p = mix_scratch(m, (backward ? 8 : 4) * x);
    if (!p) { snprintf(m->err, sizeof m->err, "out of memory for attention at B=%d T=%d", B, T); return -1; }
    s->q = p; s->k = p + x; s->v = p + 2 * x; s->o = p + 3 * x;
    s->dout = p + 4 * x; s->dq = p + 5 * x; s->dk = p + 6 * x; s->dv = p + 7 * x;
    return 0;
}

typedef struct { int T, backward; const attn_bufs* s; float* lse; } attn_job;
static mb_status attn_job_run(model* m, void* ctx, int b) {
    attn_job* j = ctx;
    return attention_api(m, j->T, j->s, b, j->lse + (size_t)b * m->d.H * j->T, j->backward);
}
static int attn_all(model* m, int l, int B, int T, const attn_bufs* s, int backward) {
    attn_job j = {T, backward, s, m->a.lse + (size_t)l * B * m->d.H * T};
    return parallel_for(m, "attention", B, attn_job_run, &j);
}

/* qkv (BT, 3C) of layer l -> y (BT, C), keeping lse. */
static int attn_forward(model* m, int l, int B, int T) {
    dims d = m->d;
    size_t BT = (size_t)B * T;
    const float* qkv = m->a.qkv + l * BT * 3 * d.C;
    attn_bufs s;
    if (attn_carve(m, B, T, 0, &s)) return -1;
    heads_split(s.q, qkv, 3 * d.C, B, T, d.H, d.hd);
    heads_split(s.k, qkv + d.C, 3 * d.C, B, T, d.H, d.hd);
    heads_split(s.v, qkv + 2 * d.C, 3 * d.C, B, T, d.H, d.hd);
    if (attn_all(m, l, B, T, &s, 0)) return -1;
    heads_merge(m->a.y + l * BT * d.C, d.C, s.o, B, T, d.H, d.hd);
    return 0;
}

/* dy (BT, C) in, dqkv (BT, 3C) overwritten. */
static int attn_backward(model* m, int l, int B, int T, const float* dy, float* dqkv) {
    dims d = m->d;
    size_t BT = (size_t)B * T;
    const float* qkv = m->a.qkv + l * BT * 3 * d.C;
    attn_bufs s;
    if (attn_carve(m, B, T, 1, &s)) return -1;
    heads_split(s.q, qkv, 3 * d.C, B, T, d.H, d.hd);
    heads_split(s.k, qkv + d.C, 3 * d.C, B, T, d.H, d.hd);
    heads_split(s.v, qkv + 2 * d.C, 3 * d.C, B, T, d.H, d.hd);
    heads_split(s.o, m->a.y + l * BT * d.C, d.C, B, T, d.H, d.hd);
    heads_split(s.dout, dy, d.C, B, T, d.H, d.hd);
    if (attn_all(m, l, B, T, &s, 1)) return -1;
    heads_merge(dqkv, 3 * d.C, s.dq, B, T, d.H, d.hd);
    heads_merge(dqkv + d.C, 3 * d.C, s.dk, B, T, d.H, d.hd);
    heads_merge(dqkv + 2 * d.C, 3 * d.C, s.dv, B, T, d.H, d.hd);
    return 0;
}

// ----------------------------------------------------------------------------
// the Transformer layer: res -> res + attn(norm(res)) -> + mlp(norm(.))

static int attn_layer_forward(model* m, int l, int B, int T) {
    dims d = m->d;
    size_t BT = (size_t)B * T, C = (size_t)d.C;
    act_tensors* a = &m->a;
    float *res = a->res + l * BT * C, *ln1 = a->ln1 + l * BT * C, *qkv = a->qkv + l * BT * 3 * C;
    float *res2 = a->res2 + l * BT * C, *ln2 = a->ln2 + l * BT * C;
    float *fch = a->fch + l * BT * 4 * C, *fcg = a->fcg + l * BT * 4 * C, *tmp = a->g1;
    rmsnorm_forward(ln1, a->rstd1 + l * BT, res, m->p.norm1 + l * C, (int)BT, d.C);
    matmul_forward(qkv, 3 * d.C, ln1, d.C, m->p.qkv + l * 3 * C * C, (int)BT, d.C, 3 * d.C);
    if (d.mixer == MIXER_MHA_ROPE) rope_apply(qkv, B, T, d.C, d.H, 1.0f);
    if (attn_forward(m, l, B, T)) return -1;
    matmul_forward(tmp, d.C, a->y + l * BT * C, d.C, m->p.attn_proj + l * C * C, (int)BT, d.C, d.C);
    residual_forward(res2, res, tmp, BT * C);
    rmsnorm_forward(ln2, a->rstd2 + l * BT, res2, m->p.norm2 + l * C, (int)BT, d.C);
    matmul_forward(fch, 4 * d.C, ln2, d.C, m->p.fc + l * 4 * C * C, (int)BT, d.C, 4 * d.C);
    gelu_forward(fcg, fch, BT * 4 * C);
    matmul_forward(tmp, d.C, fcg, 4 * d.C, m->p.fc_proj + l * 4 * C * C, (int)BT, 4 * d.C, d.C);
    residual_forward(a->res + (l + 1) * BT * C, res2, tmp, BT * C);
    return 0;
}

/* dres (BT, C): in, the gradient at res[l+1]; out, the gradient at res[l]. */
static int attn_layer_backward(model* m, int l, int B, int T) {
    dims d = m->d;
    size_t BT = (size_t)B * T, C = (size_t)d.C;
    act_tensors* a = &m->a;
    param_tensors *p = &m->p, *g = &m->g;
    float *dres = a->dres, *g1 = a->g1, *g2 = a->g2, *g3 = a->g3;
    memset(g1, 0, sizeof(float) * BT * 4 * C);
    matmul_backward(g1, 4 * d.C, g->fc_proj + l * 4 * C * C, dres, d.C, a->fcg + l * BT * 4 * C, 4 * d.C,
                    p->fc_proj + l * 4 * C * C, (int)BT, 4 * d.C, d.C);
    gelu_backward(g1, g1, a->fch + l * BT * 4 * C, BT * 4 * C);
    memset(g2, 0, sizeof(float) * BT * C);
    matmul_backward(g2, d.C, g->fc + l * 4 * C * C, g1, 4 * d.C, a->ln2 + l * BT * C, d.C,
                    p->fc + l * 4 * C * C, (int)BT, d.C, 4 * d.C);
    rmsnorm_backward(dres, g->norm2 + l * C, g2, a->res2 + l * BT * C, p->norm2 + l * C,
                     a->rstd2 + l * BT, (int)BT, d.C);
    memset(g1, 0, sizeof(float) * BT * C);
    matmul_backward(g1, d.C, g->attn_proj + l * C * C, dres, d.C, a->y + l * BT * C, d.C,
                    p->attn_proj + l * C * C, (int)BT, d.C, d.C);
    if (attn_backward(m, l, B, T, g1, g2)) return -1;
    if (d.mixer == MIXER_MHA_ROPE) rope_apply(g2, B, T, d.C, d.H, -1.0f);
    memset(g3, 0, sizeof(float) * BT * C);
    matmul_backward(g3, d.C, g->qkv + l * 3 * C * C, g2, 3 * d.C, a->ln1 + l * BT * C, d.C,
                    p->qkv + l * 3 * C * C, (int)BT, d.C, 3 * d.C);
    rmsnorm_backward(dres, g->norm1 + l * C, g3, a->res + l * BT * C, p->norm1 + l * C,
                     a->rstd1 + l * BT, (int)BT, d.C);
    return 0;
}

static int ssm_layer_forward(model* m, int l, int B, int T) {
    size_t BT = (size_t)B * T, C = (size_t)m->d.C;
    act_tensors* a = &m->a;
    rmsnorm_forward(a->ln1 + l * BT * C, a->rstd1 + l * BT, a->res + l * BT * C, m->p.norm1 + l * C,
                    (int)BT, m->d.C);
    float* out = a->res + (l + 1) * BT * C; /* the block's output, then the residual added */
    if (ssm_block_forward(m, l, B, T, out)) return -1;
    residual_forward(out, out, a->res + l * BT * C, BT * C);
    return 0;
}

static int ssm_layer_backward(model* m, int l, int B, int T) {
    size_t BT = (size_t)B * T, C = (size_t)m->d.C;
    act_tensors* a = &m->a;
    if (ssm_block_backward(m, l, B, T, a->dres, a->g1)) return -1;
    rmsnorm_backward(a->dres, m->g.norm1 + l * C, a->g1, a->res + l * BT * C, m->p.norm1 + l * C,
                     a->rstd1 + l * BT, (int)BT, m->d.C);
    return 0;
}

// ----------------------------------------------------------------------------
// the whole model

static const float* head_weight(const model* m) { return m->p.lm_head ? m->p.lm_head : m->p.wte; }

float model_forward(model* m, const int32_t* tokens, const int32_t* targets, int B, int T,
                    int64_t* correct, int64_t* marked) {
    dims d = m->d;
    if (B < 1 || T < 1) { snprintf(m->err, sizeof m->err, "forward: B and T must be positive"); return NAN; }
    if (ensure_acts(m, B, T)) return NAN;
    size_t BT = (size_t)B * T, C = (size_t)d.C;
    act_tensors* a = &m->a;
    memcpy(m->tokens, tokens, sizeof(int32_t) * BT);
    m->B = B; m->T = T; m->targets = targets;
    embed_forward(a->res, tokens, m->p.wte, B, T, d.C, d.mixer == MIXER_MHA_ABS);
    for (int l = 0; l < d.nL; l++) {
        int rc = mixer_is_attention(d.mixer) ? attn_layer_forward(m, l, B, T) : ssm_layer_forward(m, l, B, T);
        if (rc) return NAN;
    }
    rmsnorm_forward(a->lnf, a->rstdf, a->res + d.nL * BT * C, m->p.normf, (int)BT, d.C);
    matmul_forward(a->logits, d.V, a->lnf, d.C, head_weight(m), (int)BT, d.C, d.V);
    return crossentropy_forward(a->probs, a->logits, targets, (int)BT, d.V, correct, marked);
}

const float* model_logits(const model* m) { return m->a.logits; }

int model_backward(model* m) {
    dims d = m->d;
    int B = m->B, T = m->T;
    size_t BT = (size_t)B * T, C = (size_t)d.C;
    act_tensors* a = &m->a;
    if (!m->targets) { snprintf(m->err, sizeof m->err, "backward: the last forward had no targets"); return -1; }
    memset(m->grads_mem, 0, sizeof(float) * m->num_params);
    crossentropy_backward(a->g4, a->probs, m->targets, (int)BT, d.V);
    memset(a->g2, 0, sizeof(float) * BT * C);
    matmul_backward(a->g2, d.C, m->g.lm_head ? m->g.lm_head : m->g.wte, a->g4, d.V, a->lnf, d.C,
                    head_weight(m), (int)BT, d.C, d.V);
    memset(a->dres, 0, sizeof(float) * BT * C);
    rmsnorm_backward(a->dres, m->g.normf, a->g2, a->res + d.nL * BT * C, m->p.normf, a->rstdf, (int)BT, d.C);
    for (int l = d.nL - 1; l >= 0; l--) {
        int rc = mixer_is_attention(d.mixer) ? attn_layer_backward(m, l, B, T) : ssm_layer_backward(m, l, B, T);
        if (rc) return -1;
    }
    embed_backward(m->g.wte, a->dres, m->tokens, (int)BT, d.C);
    return 0;
}

// ----------------------------------------------------------------------------
// optimisation: global-norm clipping, AdamW

float model_clip_grads(model* m, float max_norm) {
    double ss = 0;
    for (size_t i = 0; i < m->num_params; i++) ss += (double)m->grads_mem[i] * m->grads_mem[i];
    float norm = (float)sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        float s = max_norm / (norm + 1e-6f);
        for (size_t i = 0; i < m->num_params; i++) m->grads_mem[i] *= s;
    }
    return norm;
}

/* t is the 1-based step count (bias correction). */
void model_adamw(model* m, float lr, float beta1, float beta2, float eps, float wd, int64_t t) {
    float c1 = 1.0f - powf(beta1, (float)t), c2 = 1.0f - powf(beta2, (float)t);
    size_t off = 0;
    for (int k = 0; k < NUM_PARAM_TENSORS; k++) {
        float decay = param_decays[k] ? wd : 0.0f;
        for (size_t i = off; i < off + m->param_sizes[k]; i++) {
            float g = m->grads_mem[i];
            m->m_mem[i] = beta1 * m->m_mem[i] + (1 - beta1) * g;
            m->v_mem[i] = beta2 * m->v_mem[i] + (1 - beta2) * g * g;
            float mh = m->m_mem[i] / c1, vh = m->v_mem[i] / c2;
            m->params_mem[i] -= lr * (mh / (sqrtf(vh) + eps) + decay * m->params_mem[i]);
        }
        off += m->param_sizes[k];
    }
}

// ----------------------------------------------------------------------------
// recurrent mode (mamba, lti, mamba2): one token at a time, state of
// constant size: the conv's last K-1 inputs and the SSM state per layer

struct model_state {
    int B;
    size_t nstate; /* floats of conv + h, zeroed by model_state_reset */
    float* conv; /* (nL, B, K-1, Cc) the last K-1 conv inputs, oldest first */
    float* h;    /* (nL, B, Di, N) selective scan state; (nL, B, H, P, N) for mamba2 */
    float *x, *ln, *rstd, *xz, *xc, *xs, *dbl, *dtr, *y, *out; /* one token's activations */
};

model_state* model_state_create(const model* m, int B) {
    if (!mixer_is_ssm(m->d.mixer) || B < 1) return NULL;
    dims d = m->d;
    model_state* s = calloc(1, sizeof(model_state));
    if (!s) return NULL;
    s->B = B;
    size_t nc = (size_t)d.nL * B * (d.K - 1) * d.Cc, nh = (size_t)d.nL * B * d.Di * d.N;
    size_t per = (size_t)B * (3 * d.C + 1 + d.Win + 2 * d.Cc + d.R + 2 * d.N + 2 * d.Di);
    float* p = calloc(nc + nh + per + 1, sizeof(float));
    if (!p) { free(s); return NULL; }
    s->nstate = nc + nh;
    s->conv = p; p += nc;
    s->h = p; p += nh;
    s->x = p; p += (size_t)B * d.C;
    s->ln = p; p += (size_t)B * d.C;
    s->out = p; p += (size_t)B * d.C;
    s->rstd = p; p += B;
    s->xz = p; p += (size_t)B * d.Win;
    s->xc = p; p += (size_t)B * d.Cc;
    s->xs = p; p += (size_t)B * d.Cc;
    s->dbl = p; p += (size_t)B * (d.R + 2 * d.N);
    s->dtr = p; p += (size_t)B * d.Di;
    s->y = p;
    return s;
}

void model_state_free(model_state* s) {
    if (s) free(s->conv);
    free(s);
}

void model_state_reset(model_state* s) { memset(s->conv, 0, sizeof(float) * s->nstate); }

/* One conv step: xc = bias + sum_{k<K-1} w[:, k] * conv[k] + w[:, K-1] * x; shift x in. */
static void conv_step(float* xc, float* state, const float* x, const float* w, const float* bias, int Cc, int K) {
    for (int c = 0; c < Cc; c++) {
        float acc = bias[c] + w[c * K + K - 1] * x[c];
        for (int k = 0; k < K - 1; k++) acc += w[c * K + k] * state[(size_t)k * Cc + c];
        xc[c] = acc;
    }
    if (K > 1) {
        memmove(state, state + Cc, sizeof(float) * (size_t)(K - 2) * Cc);
        memcpy(state + (size_t)(K - 2) * Cc, x, sizeof(float) * Cc);
    }
}

/* One selective-scan step of one sequence through mb_selective_scan_step_cpu
 * (the library's one-token entry point, mamba_ssm's selective_state_update):
 *   delta = softplus(dtr + dt_bias); h = exp(delta A) h + delta B u;
 *   y = C . h + D u; y *= silu(z),   A = -exp(A_log).
 * B, C are (G, N) with G = 1 (Mamba) or G = Di (the LTI block's per-channel
 * B, C); h (Di, N) is updated in place. Returns the library's status. */
static mb_status scan_step(float* y, float* h, const float* u, const float* dtr, const float* z,
                           const float* Bt, const float* Ct, int G_is_D, const float* A_log,
                           const float* Dskip, const float* dt_bias, int Di, int N) {
    float* A = malloc(sizeof(float) * (size_t)Di * N); /* (Di, N) */
    if (!A) return MB_ERR_ALLOC;
    for (size_t i = 0; i < (size_t)Di * N; i++) A[i] = -expf(A_log[i]);
    mb_selective_scan_params p = {.batch = 1, .dim = Di, .seqlen = 1, .dstate = N,
                                  .ngroups = G_is_D ? Di : 1, .dtype = MB_DTYPE_F32,
                                  .delta_softplus = 1};
    mb_selective_scan_inputs in = {.u = u, .delta = dtr, .A = A, .B = Bt, .C = Ct, .D = Dskip,
                                   .z = z, .delta_bias = dt_bias};
    mb_status st = mb_selective_scan_step_cpu(&p, &in, h, y);
    free(A);
    return st;
}

/* One SSD step of one sequence through mb_ssd_step_cpu (the library's one-token
 * entry point): per head, dt = softplus(dt + bias), h = exp(dt A) h + dt x B^T
 * (P, N), y = h C + D x, y *= silu(z), A = -exp(A_log). h (H, P, N) is
 * updated in place. Returns the library's status. */
static mb_status ssd_step(float* y, float* h, const float* x, const float* dt, const float* Bt,
                          const float* Ct, const float* z, const float* A_log, const float* Dskip,
                          const float* dt_bias, int H, int P, int N) {
    float* A = malloc(sizeof(float) * (size_t)H); /* (H) */
    if (!A) return MB_ERR_ALLOC;
    for (int hh = 0; hh < H; hh++) A[hh] = -expf(A_log[hh]);
    mb_ssd_params p = {.batch = 1, .seqlen = 1, .nheads = H, .headdim = P, .dstate = N,
                       .ngroups = 1, .chunk_size = 1, .dtype = MB_DTYPE_F32, .dt_softplus = 1,
                       .form = MB_SSD_RECURRENT};
    mb_ssd_inputs in = {.x = x, .dt = dt, .A = A, .B = Bt, .C = Ct, .D = Dskip, .z = z,
                        .dt_bias = dt_bias, .initial_state = NULL};
    mb_status st = mb_ssd_step_cpu(&p, &in, h, y);
    free(A);
    return st;
}

/* One token through SSM layer l; MB_OK or the step entry point's status. */
static mb_status ssm_block_step(model* m, model_state* s, int l) {
    dims d = m->d;
    int B = s->B, W = d.R + 2 * d.N;
    const param_tensors* p = &m->p;
    matmul_forward(s->xz, d.Win, s->ln, d.C, p->in_proj + (size_t)l * d.Win * d.C, B, d.C, d.Win);
    for (int b = 0; b < B; b++) {
        float* cs = s->conv + ((size_t)l * B + b) * (d.K - 1) * d.Cc;
        conv_step(s->xc + (size_t)b * d.Cc, cs, s->xz + (size_t)b * d.Win, p->conv_w + (size_t)l * d.Cc * d.K,
                  p->conv_b + (size_t)l * d.Cc, d.Cc, d.K);
    }
    silu_forward(s->xs, s->xc, (size_t)B * d.Cc);
    if (d.mixer == MIXER_MAMBA) {
        matmul_forward(s->dbl, W, s->xs, d.Di, p->x_proj + (size_t)l * W * d.Di, B, d.Di, W);
        matmul_forward(s->dtr, d.Di, s->dbl, W, p->dt_proj + (size_t)l * d.Di * d.R, B, d.R, d.Di);
    } else if (d.mixer == MIXER_LTI) {
        memset(s->dtr, 0, sizeof(float) * B * d.Di);
    }
    for (int b = 0; b < B; b++) {
        float* h = s->h + ((size_t)l * B + b) * d.Di * d.N;
        const float *xs = s->xs + (size_t)b * d.Cc, *xz = s->xz + (size_t)b * d.Win;
        float* y = s->y + (size_t)b * d.Di;
        if (d.mixer == MIXER_MAMBA2) {
            mb_status st = ssd_step(y, h, xs, xz + d.Cc + d.Di, xs + d.Di, xs + d.Di + d.N,
                                    xz + d.Cc, p->A_log + (size_t)l * d.H,
                                    p->Dskip + (size_t)l * d.H, p->dt_bias + (size_t)l * d.H,
                                    d.H, d.P, d.N);
            if (st != MB_OK) return st;
        } else {
            int lti = d.mixer == MIXER_LTI;
            const float* dbl = s->dbl + (size_t)b * W;
            size_t dn = (size_t)l * d.Di * d.N;
            mb_status st = scan_step(y, h, xs, s->dtr + (size_t)b * d.Di, xz + d.Di,
                                     lti ? p->B_lti + dn : dbl + d.R,
                                     lti ? p->C_lti + dn : dbl + d.R + d.N, lti, p->A_log + dn,
                                     p->Dskip + (size_t)l * d.Di, p->dt_bias + (size_t)l * d.Di,
                                     d.Di, d.N);
            if (st != MB_OK) return st;
        }
    }
    matmul_forward(s->out, d.C, s->y, d.Di, p->out_proj + (size_t)l * d.C * d.Di, B, d.Di, d.C);
    return MB_OK;
}

int model_step(model* m, model_state* s, const int32_t* tokens, float* logits) {
    dims d = m->d;
    if (!mixer_is_ssm(d.mixer) || !s) return -1;
    int B = s->B;
    embed_forward(s->x, tokens, m->p.wte, B, 1, d.C, 0);
    for (int l = 0; l < d.nL; l++) {
        rmsnorm_forward(s->ln, s->rstd, s->x, m->p.norm1 + (size_t)l * d.C, B, d.C);
        if (ssm_block_step(m, s, l) != MB_OK) return -1;
        residual_forward(s->x, s->x, s->out, (size_t)B * d.C);
    }
    rmsnorm_forward(s->ln, s->rstd, s->x, m->p.normf, B, d.C);
    matmul_forward(logits, d.V, s->ln, d.C, head_weight(m), B, d.C, d.V);
    return 0;
}
