/*
 * model_cuda.cu -- the task model on the GPU (model_cuda.h): the forward and
 * backward of model.c layer for layer, with device buffers, cuBLAS for the
 * projections, mambabench's CUDA entry points for the mixers (one call per
 * layer for the whole batch, fp32) and layers_cuda.h for the rest.
 *
 * Dimension legend as model.h: B batch, T time, BT = B*T rows, C width,
 * V vocabulary, nL layers, Di inner width, N state, R dt rank, K conv width,
 * Win in_proj rows, Cc conv channels, H heads, P Mamba-2 head dim, hd
 * attention head dim. "(BT, W)" is BT rows of W floats, row-major.
 *
 * Determinism: no float atomics anywhere (the mixers' backwards are
 * deterministic, the embedding gradient is summed per token in a fixed order
 * from the host's sort of the tokens, column sums are cuBLAS gemv), so the
 * same step gives the same bytes every run.
 */
#include "layers_cuda.h"
#include "model_cuda.h"

#include "mambabench.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


// ----------------------------------------------------------------------------
// device activations: one cudaMalloc, carved by a bump allocator that also
// measures (base NULL: count only)

typedef struct {
    float* base;
    size_t off; /* floats */
} carver;

static float* take(carver* c, size_t n) {
    float* p = c->base ? c->base + c->off : NULL;
    c->off += (n + 63) & ~(size_t)63; /* 256-byte aligned pieces */
    return p;
}

typedef struct {
    float* res;   /* (nL+1, BT, C) residual stream entering layer l */
    float* ln1;   /* (nL, BT, C) */
    float* rstd1; /* (nL, BT) */
    float* xz;    /* (nL, BT, Win) */
    float* xc;    /* (nL, BT, Cc) conv out, before SiLU */
    float* xs;    /* (nL, BT, Cc) after SiLU */
    float* dbl;   /* (nL, BT, R + 2N) mamba */
    float* dtr;   /* (nL, BT, Di) mamba */
    float* y;     /* (nL, BT, Di) SSM out, or (nL, BT, C) attention out */
    float* qkv;   /* (nL, BT, 3C) */
    float* lse;   /* (nL, B, H, T) */
    float *res2, *ln2, *rstd2, *fch, *fcg; /* attention MLP: (nL, BT, C), (nL, BT, C), (nL, BT), (nL, BT, 4C) x2 */
    float *lnf, *rstdf, *logits, *probs;   /* (BT, C), (BT), (BT, V), (BT, V) */
    float *g1, *g2, *g3, *g4;              /* (BT, Wmax) backward scratch */
    float* dres;                           /* (BT, C) */
    float* rows;     /* (BT, max(C, Cc*K)) per-row gradient terms before a column sum */
    float* ones;     /* (BT) of 1.0 for the column sums */
    float* row_loss; /* (BT) */
    int* row_hit;    /* (BT) */
    float* mix;      /* the mixer APIs' inputs and gradients, see mixer_floats */
} gpu_acts;

struct gpu_model {
    model_config cfg;
    model_dims d;
    size_t num_params, sizes[NUM_PARAM_TENSORS];
    float *params, *grads, *adam_m, *adam_v; /* device, (num_params) each */
    param_tensors p, g;                      /* device pointers into params, grads */
    float* embed_partial;                    /* (V, LC_EMBED_SPLIT, C) */
    lc_tensor_table table;

    float* act_mem;
    size_t act_capacity; /* floats */
    gpu_acts a;
    int B, T, cap_B, cap_T; /* last forward's shape; the shape acts are carved for */

    /* inputs: pinned host staging and their device copies */
    int32_t *h_tokens, *h_targets, *h_order, *h_offsets; /* (BT), (BT), (BT), (V + 1) */
    int32_t *d_tokens, *d_targets, *d_order, *d_offsets;
    size_t tok_capacity;
    int has_targets;
    lc_hyper *h_hyper, *d_hyper;
    lc_stats *h_stats, *d_stats;
    float* pos_table; /* (T, C) abs positions, or (T, hd/2) float2 RoPE */
    int pos_T;

    cudaStream_t stream;
    cublasHandle_t blas;
    cudaGraphExec_t graph;
    int graph_B, graph_T, graph_ok, use_graphs, graphed;
    gpu_train_opts graph_opts;
    int64_t step_count; /* eager steps of the current shape before capture */
    char device[256];
    char err[512];
    int out_of_memory; /* the last failure was a device allocation */
};

static int fail(gpu_model* g, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
    return -1;
}

#define CUDA_OK(g, call)                                                                          \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) {                                                                  \
            g->out_of_memory = e_ == cudaErrorMemoryAllocation;                                   \
            return fail(g, "%s: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__);  \
        }                                                                                         \
    } while (0)
#define BLAS_OK(g, call)                                                                          \
    do {                                                                                          \
        cublasStatus_t s_ = (call);                                                               \
        if (s_ != CUBLAS_STATUS_SUCCESS) return fail(g, "%s: cuBLAS status %d", #call, (int)s_); \
    } while (0)
#define MB_OK_OR_FAIL(g, what, call)                                                              \
    do {                                                                                          \
        mb_status st_ = (call);                                                                   \
        if (st_ != MB_OK) {                                                                       \
            g->out_of_memory = st_ == MB_ERR_ALLOC;                                               \
            return fail(g, "%s: %s (%s)", what, mb_status_string(st_), mb_last_error());          \
        }                                                                                         \
    } while (0)
/* kernels queue without a status: check the launches of a stage together */
#define LAUNCHES_OK(g) CUDA_OK(g, cudaGetLastError())

const char* gpu_model_error(const gpu_model* g) { return g ? g->err : "no model"; }
const char* gpu_model_device_name(const gpu_model* g) { return g ? g->device : ""; }
int gpu_model_out_of_memory(const gpu_model* g) { return g ? g->out_of_memory : 0; }
int gpu_model_graphed(const gpu_model* g) { return g->graphed; }
void gpu_model_use_graphs(gpu_model* g, int on) { g->use_graphs = on; }

// ----------------------------------------------------------------------------
// sizes

/* Floats of the mixer scratch at (B, T): the API tensors of the forward and
 * the backward of the layer's mixer (reused by every layer). */
static size_t mixer_floats(const model_dims* d, size_t B, size_t T) {
    size_t BT = B * T;
    if (d->mixer == MIXER_MAMBA || d->mixer == MIXER_LTI) {
        size_t G = d->mixer == MIXER_LTI ? (size_t)d->Di : 1;
        size_t x = BT * d->Di, bc = BT * G * d->N, dn = (size_t)d->Di * d->N;
        return 8 * x + 4 * bc + 2 * dn + 2 * (size_t)d->Di + 24 * 64; /* + each piece's alignment */
    }
    if (d->mixer == MIXER_MAMBA2) {
        size_t x = BT * d->Di, t = BT * d->H, n = BT * d->N;
        return 4 * x + 2 * t + 4 * n + 4 * (size_t)d->H + 16 * 64;
    }
    return 8 * BT * d->C + 8 * 64;
}

static void carve_acts(const model_dims* d, size_t B, size_t T, carver* c, gpu_acts* a) {
    size_t BT = B * T, L = (size_t)d->nL, C = (size_t)d->C, W = model_scratch_width(d);
    int ssm = mixer_is_ssm(d->mixer), attn = mixer_is_attention(d->mixer), m1 = d->mixer == MIXER_MAMBA;
    size_t convw = (size_t)d->Cc * d->K;
    a->res = take(c, (L + 1) * BT * C);
    a->ln1 = take(c, L * BT * C);
    a->rstd1 = take(c, L * BT);
    a->xz = ssm ? take(c, L * BT * d->Win) : NULL;
    a->xc = ssm ? take(c, L * BT * d->Cc) : NULL;
    a->xs = ssm ? take(c, L * BT * d->Cc) : NULL;
    a->dbl = m1 ? take(c, L * BT * (d->R + 2 * d->N)) : NULL;
    a->dtr = m1 ? take(c, L * BT * d->Di) : NULL;
    a->y = take(c, L * BT * (ssm ? d->Di : d->C));
    a->qkv = attn ? take(c, L * BT * 3 * C) : NULL;
    a->lse = attn ? take(c, L * BT * d->H) : NULL;
    a->res2 = attn ? take(c, L * BT * C) : NULL;
    a->ln2 = attn ? take(c, L * BT * C) : NULL;
    a->rstd2 = attn ? take(c, L * BT) : NULL;
    a->fch = attn ? take(c, L * BT * 4 * C) : NULL;
    a->fcg = attn ? take(c, L * BT * 4 * C) : NULL;
    a->lnf = take(c, BT * C);
    a->rstdf = take(c, BT);
    a->logits = take(c, BT * d->V);
    a->probs = take(c, BT * d->V);
    a->g1 = take(c, BT * W);
    a->g2 = take(c, BT * W);
    a->g3 = take(c, BT * W);
    a->g4 = take(c, BT * W);
    a->dres = take(c, BT * C);
    a->rows = take(c, BT * (convw > C ? convw : C));
    a->ones = take(c, BT);
    a->row_loss = take(c, BT);
    a->row_hit = (int*)take(c, BT);
    a->mix = take(c, mixer_floats(d, B, T));
}

__global__ static void fill_kernel(float* x, float v, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) x[i] = v;
}

static void drop_graph(gpu_model* g) {
    if (g->graph) cudaGraphExecDestroy(g->graph);
    g->graph = NULL;
    g->graph_ok = 0;
    g->step_count = 0;
}

/* Activations for (B, T); a bigger shape reallocates (and drops the graph). */
static int ensure_acts(gpu_model* g, int B, int T) {
    carver c = {NULL, 0};
    gpu_acts a;
    carve_acts(&g->d, (size_t)B, (size_t)T, &c, &a);
    if (c.off > g->act_capacity) {
        drop_graph(g);
        CUDA_OK(g, cudaStreamSynchronize(g->stream));
        cudaFree(g->act_mem);
        g->act_mem = NULL;
        g->act_capacity = 0;
        g->cap_B = g->cap_T = 0; /* the old carve pointed into the freed buffer */
        if (cudaMalloc(&g->act_mem, c.off * sizeof(float)) != cudaSuccess) {
            (void)cudaGetLastError();
            g->out_of_memory = 1;
            return fail(g, "out of device memory for the activations at B=%d T=%d (%.2f GB)", B, T,
                        c.off * 4e-9);
        }
        g->act_capacity = c.off;
    }
    if (B != g->cap_B || T != g->cap_T) {
        carver used = {g->act_mem, 0};
        carve_acts(&g->d, (size_t)B, (size_t)T, &used, &g->a);
        size_t BT = (size_t)B * T;
        fill_kernel<<<(unsigned)((BT + 255) / 256), 256, 0, g->stream>>>(g->a.ones, 1.0f, BT);
        LAUNCHES_OK(g);
        g->cap_B = B;
        g->cap_T = T;
    }
    return 0;
}

/* Pinned and device token buffers for BT rows. */
static int ensure_tokens(gpu_model* g, size_t BT) {
    if (BT <= g->tok_capacity) return 0;
    drop_graph(g);
    CUDA_OK(g, cudaStreamSynchronize(g->stream));
    cudaFreeHost(g->h_tokens);
    cudaFree(g->d_tokens);
    g->h_tokens = NULL; g->d_tokens = NULL; g->tok_capacity = 0;
    size_t n = 3 * BT + (size_t)g->d.V + 1;
    CUDA_OK(g, cudaMallocHost(&g->h_tokens, n * sizeof(int32_t)));
    CUDA_OK(g, cudaMalloc(&g->d_tokens, n * sizeof(int32_t)));
    g->h_targets = g->h_tokens + BT; g->h_order = g->h_tokens + 2 * BT; g->h_offsets = g->h_tokens + 3 * BT;
    g->d_targets = g->d_tokens + BT; g->d_order = g->d_tokens + 2 * BT; g->d_offsets = g->d_tokens + 3 * BT;
    g->tok_capacity = BT;
    return 0;
}

/* The position tables for lengths up to T, from model.c's formulas (row t
 * does not depend on T, so the table only grows and its address stays put
 * for a captured graph). */
static int ensure_positions(gpu_model* g, int T) {
    int mixer = g->d.mixer;
    if (!mixer_is_attention(mixer) || mixer == MIXER_MHA_NOPE || T <= g->pos_T) return 0;
    int C = g->d.C, half = g->d.hd / 2;
    size_t n = mixer == MIXER_MHA_ABS ? (size_t)T * C : (size_t)T * half * 2;
    float* host = (float*)malloc(n * sizeof(float));
    if (!host) return fail(g, "out of host memory for the position table");
    for (int t = 0; t < T; t++) {
        if (mixer == MIXER_MHA_ABS)
            for (int i = 0; i < C; i++) host[(size_t)t * C + i] = model_abs_pos(t, i, C);
        else
            for (int i = 0; i < half; i++)
                model_rope_angle(t, i, g->d.hd, &host[((size_t)t * half + i) * 2], &host[((size_t)t * half + i) * 2 + 1]);
    }
    drop_graph(g);
    cudaError_t e = cudaStreamSynchronize(g->stream);
    if (e == cudaSuccess) { cudaFree(g->pos_table); g->pos_table = NULL; e = cudaMalloc(&g->pos_table, n * sizeof(float)); }
    if (e == cudaSuccess) e = cudaMemcpy(g->pos_table, host, n * sizeof(float), cudaMemcpyHostToDevice);
    free(host);
    if (e != cudaSuccess) { g->pos_T = 0; return fail(g, "position table: %s", cudaGetErrorString(e)); }
    g->pos_T = T;
    return 0;
}

/* Stage a batch in the pinned buffers: tokens, targets (-1 where NULL), and
 * the rows sorted by token for the embedding gradient (a stable counting sort). */
static void stage_batch(gpu_model* g, const int32_t* tokens, const int32_t* targets, size_t BT) {
    int V = g->d.V;
    memcpy(g->h_tokens, tokens, BT * sizeof(int32_t));
    if (targets) memcpy(g->h_targets, targets, BT * sizeof(int32_t));
    else for (size_t i = 0; i < BT; i++) g->h_targets[i] = -1;
    g->has_targets = targets != NULL;
    int32_t* off = g->h_offsets;
    memset(off, 0, (size_t)(V + 1) * sizeof(int32_t));
    for (size_t i = 0; i < BT; i++) off[tokens[i] + 1]++;
    for (int v = 0; v < V; v++) off[v + 1] += off[v];
    for (size_t i = 0; i < BT; i++) g->h_order[off[tokens[i]]++] = (int32_t)i;
    for (int v = V; v > 0; v--) off[v] = off[v - 1]; /* the fill moved each start to the next's */
    off[0] = 0;
}

static int upload_batch(gpu_model* g, size_t BT) {
    CUDA_OK(g, cudaMemcpyAsync(g->d_tokens, g->h_tokens, BT * sizeof(int32_t), cudaMemcpyHostToDevice, g->stream));
    CUDA_OK(g, cudaMemcpyAsync(g->d_targets, g->h_targets, BT * sizeof(int32_t), cudaMemcpyHostToDevice, g->stream));
    CUDA_OK(g, cudaMemcpyAsync(g->d_order, g->h_order, BT * sizeof(int32_t), cudaMemcpyHostToDevice, g->stream));
    CUDA_OK(g, cudaMemcpyAsync(g->d_offsets, g->h_offsets, (size_t)(g->d.V + 1) * sizeof(int32_t),
                               cudaMemcpyHostToDevice, g->stream));
    CUDA_OK(g, cudaMemcpyAsync(g->d_hyper, g->h_hyper, sizeof(lc_hyper), cudaMemcpyHostToDevice, g->stream));
    return 0;
}

// ----------------------------------------------------------------------------
// cuBLAS: row-major out (BT, OC) = inp (BT, IC) @ w^T with w (OC, IC), as model.c

static int matmul_forward(gpu_model* g, float* out, int ldo, const float* inp, int ldi, const float* w,
                          int BT, int IC, int OC) {
    const float one = 1.0f, zero = 0.0f;
    BLAS_OK(g, cublasSgemm(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, BT, IC, &one, w, IC, inp, ldi, &zero, out, ldo));
    return 0;
}

/* dinp (BT, IC) += dout @ w (when dinp); dw (OC, IC) += dout^T @ inp. */
static int matmul_backward(gpu_model* g, float* dinp, int lddi, float* dw, const float* dout, int ldo,
                           const float* inp, int ldi, const float* w, int BT, int IC, int OC) {
    const float one = 1.0f;
    if (dinp)
        BLAS_OK(g, cublasSgemm(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, IC, BT, OC, &one, w, IC, dout, ldo, &one, dinp, lddi));
    BLAS_OK(g, cublasSgemm(g->blas, CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, BT, &one, inp, ldi, dout, ldo, &one, dw, IC));
    return 0;
}

/* out (W) += the column sums of rows (BT, W) */
static int column_sums(gpu_model* g, float* out, const float* rows, int BT, int W) {
    const float one = 1.0f;
    BLAS_OK(g, cublasSgemv(g->blas, CUBLAS_OP_N, W, BT, &one, rows, W, g->a.ones, 1, &one, out, 1));
    return 0;
}

static int zero(gpu_model* g, float* x, size_t floats) {
    CUDA_OK(g, cudaMemsetAsync(x, 0, floats * sizeof(float), g->stream));
    return 0;
}

static int rmsnorm_backward(gpu_model* g, float* dx, float* dw, const float* dout, const float* x,
                            const float* w, const float* rstd, int BT, int C) {
    lc_rmsnorm_backward(dx, g->a.rows, dout, x, w, rstd, BT, C, g->stream);
    LAUNCHES_OK(g);
    return column_sums(g, dw, g->a.rows, BT, C);
}

// ----------------------------------------------------------------------------
// the selective scan (mamba, lti): whole batch, channels-first API layout
//   u = xs, delta = dtr (mamba) or 0 (lti), z = xz[:, Di:2Di]   (B, Di, T)
//   B, C = dbl[:, R:R+2N] (G = 1) or B_lti, C_lti broadcast (G = Di)

typedef struct {
    int G;
    float *u, *delta, *z, *Bm, *Cm, *y, *A;          /* (B, Di, T) x4 ... (B, G, N, T) x2, (Di, N) */
    float *dy, *du, *ddelta, *dz, *dB, *dC, *dA, *dD, *ddb; /* as the inputs; dA (Di, N), dD, ddb (Di) */
} scan_bufs;

static void scan_carve(const gpu_model* g, int B, int T, scan_bufs* s) {
    const model_dims* d = &g->d;
    s->G = d->mixer == MIXER_LTI ? d->Di : 1;
    size_t x = (size_t)B * d->Di * T, bc = (size_t)B * s->G * d->N * T, dn = (size_t)d->Di * d->N;
    carver c = {g->a.mix, 0};
    s->u = take(&c, x); s->delta = take(&c, x); s->z = take(&c, x); s->y = take(&c, x);
    s->Bm = take(&c, bc); s->Cm = take(&c, bc); s->A = take(&c, dn);
    s->dy = take(&c, x); s->du = take(&c, x); s->ddelta = take(&c, x); s->dz = take(&c, x);
    s->dB = take(&c, bc); s->dC = take(&c, bc); s->dA = take(&c, dn);
    s->dD = take(&c, (size_t)d->Di); s->ddb = take(&c, (size_t)d->Di);
}

static int scan_inputs(gpu_model* g, int l, int B, int T, const scan_bufs* s) {
    const model_dims* d = &g->d;
    size_t BT = (size_t)B * T, dn = (size_t)d->Di * d->N;
    cudaStream_t st = g->stream;
    lc_to_channels_first(s->u, g->a.xs + l * BT * d->Cc, d->Cc, B, T, d->Di, st);
    lc_to_channels_first(s->z, g->a.xz + l * BT * d->Win + d->Di, d->Win, B, T, d->Di, st);
    if (d->mixer == MIXER_MAMBA) {
        int W = d->R + 2 * d->N;
        const float* dbl = g->a.dbl + l * BT * W;
        lc_to_channels_first(s->delta, g->a.dtr + l * BT * d->Di, d->Di, B, T, d->Di, st);
        lc_to_channels_first(s->Bm, dbl + d->R, W, B, T, d->N, st);
        lc_to_channels_first(s->Cm, dbl + d->R + d->N, W, B, T, d->N, st);
    } else { /* lti: delta = 0 (+ dt_bias in the API), B and C the same at every t */
        if (zero(g, s->delta, (size_t)B * d->Di * T)) return -1;
        lc_broadcast_bt(s->Bm, g->p.B_lti + l * dn, B, dn, T, st);
        lc_broadcast_bt(s->Cm, g->p.C_lti + l * dn, B, dn, T, st);
    }
    lc_neg_exp(s->A, g->p.A_log + l * dn, dn, st);
    LAUNCHES_OK(g);
    return 0;
}

static mb_selective_scan_params scan_params(const gpu_model* g, int B, int T, int G) {
    mb_selective_scan_params prm = {B, g->d.Di, T, g->d.N, G, MB_DTYPE_F32, 1};
    return prm;
}

static mb_selective_scan_inputs scan_api_inputs(const gpu_model* g, int l, const scan_bufs* s) {
    mb_selective_scan_inputs in = {s->u, s->delta, s->A, s->Bm, s->Cm, g->p.Dskip + (size_t)l * g->d.Di,
                                   s->z, g->p.dt_bias + (size_t)l * g->d.Di};
    return in;
}

/* y (BT, Di) of layer l = the gated scan. */
static int scan_forward(gpu_model* g, int l, int B, int T) {
    scan_bufs s;
    scan_carve(g, B, T, &s);
    if (scan_inputs(g, l, B, T, &s)) return -1;
    mb_selective_scan_params prm = scan_params(g, B, T, s.G);
    mb_selective_scan_inputs in = scan_api_inputs(g, l, &s);
    MB_OK_OR_FAIL(g, "selective scan forward", mb_selective_scan_fwd_cuda(&prm, &in, s.y, NULL, g->stream));
    lc_from_channels_first(g->a.y + (size_t)l * B * T * g->d.Di, g->d.Di, s.y, B, T, g->d.Di, 0, g->stream);
    LAUNCHES_OK(g);
    return 0;
}

/* As model.c's scan_backward: dxs (BT, Di), the z columns of dxz, the B/C
 * columns of ddbl and ddtr (BT, Di) overwritten (mamba); A_log, Dskip,
 * dt_bias (and B_lti, C_lti) gradients accumulated. */
static int scan_backward(gpu_model* g, int l, int B, int T, const float* dy, float* dxs, float* dxz,
                         float* ddbl, float* ddtr) {
    const model_dims* d = &g->d;
    cudaStream_t st = g->stream;
    scan_bufs s;
    scan_carve(g, B, T, &s);
    if (scan_inputs(g, l, B, T, &s)) return -1;
    lc_to_channels_first(s.dy, dy, d->Di, B, T, d->Di, st);
    mb_selective_scan_params prm = scan_params(g, B, T, s.G);
    mb_selective_scan_inputs in = scan_api_inputs(g, l, &s);
    mb_selective_scan_grads gr = {s.du, s.ddelta, s.dA, s.dB, s.dC, s.dD, s.dz, s.ddb};
    MB_OK_OR_FAIL(g, "selective scan backward", mb_selective_scan_bwd_cuda(&prm, &in, s.dy, &gr, st));
    lc_from_channels_first(dxs, d->Di, s.du, B, T, d->Di, 0, st);
    lc_from_channels_first(dxz + d->Di, d->Win, s.dz, B, T, d->Di, 0, st);
    size_t dn = (size_t)d->Di * d->N;
    lc_add_product(g->g.A_log + l * dn, s.dA, s.A, dn, st); /* dA_log = dA * A */
    lc_add(g->g.Dskip + (size_t)l * d->Di, g->g.Dskip + (size_t)l * d->Di, s.dD, (size_t)d->Di, st);
    lc_add(g->g.dt_bias + (size_t)l * d->Di, g->g.dt_bias + (size_t)l * d->Di, s.ddb, (size_t)d->Di, st);
    if (d->mixer == MIXER_MAMBA) {
        int W = d->R + 2 * d->N;
        lc_from_channels_first(ddbl + d->R, W, s.dB, B, T, d->N, 0, st);
        lc_from_channels_first(ddbl + d->R + d->N, W, s.dC, B, T, d->N, 0, st);
        lc_from_channels_first(ddtr, d->Di, s.ddelta, B, T, d->Di, 0, st);
    } else { /* lti: B and C are shared by every (b, t): sum their gradients */
        lc_sum_bt(g->g.B_lti + l * dn, s.dB, B, dn, T, st);
        lc_sum_bt(g->g.C_lti + l * dn, s.dC, B, dn, T, st);
    }
    LAUNCHES_OK(g);
    return 0;
}

// ----------------------------------------------------------------------------
// SSD (mamba2): xz columns [x (Di) | B (N) | C (N) | z (Di) | dt (H)], xs = [x | B | C]
//   x (B, T, H, P), dt (B, T, H), B, C (B, T, 1, N), z (B, T, H, P)

typedef struct {
    float *x, *dt, *Bm, *Cm, *z, *A;          /* (BT, Di), (BT, H), (BT, N) x2, (BT, Di), (H) */
    float *dx, *ddt, *dB, *dC, *dz, *dA, *dD, *ddtb;
} ssd_bufs;

static void ssd_carve(const gpu_model* g, int B, int T, ssd_bufs* s) {
    const model_dims* d = &g->d;
    size_t BT = (size_t)B * T, x = BT * d->Di, t = BT * d->H, n = BT * d->N;
    carver c = {g->a.mix, 0};
    s->x = take(&c, x); s->z = take(&c, x); s->dt = take(&c, t); s->Bm = take(&c, n); s->Cm = take(&c, n);
    s->A = take(&c, (size_t)d->H);
    s->dx = take(&c, x); s->dz = take(&c, x); s->ddt = take(&c, t); s->dB = take(&c, n); s->dC = take(&c, n);
    s->dA = take(&c, (size_t)d->H); s->dD = take(&c, (size_t)d->H); s->ddtb = take(&c, (size_t)d->H);
}

static int ssd_inputs(gpu_model* g, int l, int B, int T, const ssd_bufs* s) {
    const model_dims* d = &g->d;
    size_t BT = (size_t)B * T;
    const float* xs = g->a.xs + l * BT * d->Cc;
    const float* xz = g->a.xz + l * BT * d->Win;
    cudaStream_t st = g->stream;
    lc_copy_cols(s->x, d->Di, xs, d->Cc, BT, d->Di, st);
    lc_copy_cols(s->Bm, d->N, xs + d->Di, d->Cc, BT, d->N, st);
    lc_copy_cols(s->Cm, d->N, xs + d->Di + d->N, d->Cc, BT, d->N, st);
    lc_copy_cols(s->z, d->Di, xz + d->Cc, d->Win, BT, d->Di, st);
    lc_copy_cols(s->dt, d->H, xz + d->Cc + d->Di, d->Win, BT, d->H, st);
    lc_neg_exp(s->A, g->p.A_log + (size_t)l * d->H, (size_t)d->H, st);
    LAUNCHES_OK(g);
    return 0;
}

static mb_ssd_params ssd_params(const gpu_model* g, int B, int T) {
    mb_ssd_params prm = {B, T, g->d.H, g->d.P, g->d.N, 1, MODEL_SSD_CHUNK, MB_DTYPE_F32, 1, MB_SSD_CHUNKED, 0};
    return prm;
}

static mb_ssd_inputs ssd_api_inputs(const gpu_model* g, int l, const ssd_bufs* s) {
    size_t h = (size_t)l * g->d.H;
    mb_ssd_inputs in = {s->x, s->dt, s->A, s->Bm, s->Cm, g->p.Dskip + h, s->z, g->p.dt_bias + h, NULL};
    return in;
}

static int ssd_forward(gpu_model* g, int l, int B, int T) {
    ssd_bufs s;
    ssd_carve(g, B, T, &s);
    if (ssd_inputs(g, l, B, T, &s)) return -1;
    mb_ssd_params prm = ssd_params(g, B, T);
    mb_ssd_inputs in = ssd_api_inputs(g, l, &s);
    MB_OK_OR_FAIL(g, "SSD forward", mb_ssd_fwd_cuda(&prm, &in, g->a.y + (size_t)l * B * T * g->d.Di, NULL, g->stream));
    return 0;
}

/* dy (BT, Di) in; dxs (BT, Cc) and dxz's z and dt columns overwritten; A_log,
 * Dskip, dt_bias gradients accumulated. */
static int ssd_backward(gpu_model* g, int l, int B, int T, const float* dy, float* dxs, float* dxz) {
    const model_dims* d = &g->d;
    cudaStream_t st = g->stream;
    ssd_bufs s;
    ssd_carve(g, B, T, &s);
    if (ssd_inputs(g, l, B, T, &s)) return -1;
    mb_ssd_params prm = ssd_params(g, B, T);
    mb_ssd_inputs in = ssd_api_inputs(g, l, &s);
    mb_ssd_grads gr = {s.dx, s.ddt, s.dA, s.dB, s.dC, s.dD, s.dz, s.ddtb, NULL};
    MB_OK_OR_FAIL(g, "SSD backward", mb_ssd_bwd_cuda(&prm, &in, dy, NULL, &gr, st));
    size_t BT = (size_t)B * T, h = (size_t)l * d->H;
    lc_copy_cols(dxs, d->Cc, s.dx, d->Di, BT, d->Di, st);
    lc_copy_cols(dxs + d->Di, d->Cc, s.dB, d->N, BT, d->N, st);
    lc_copy_cols(dxs + d->Di + d->N, d->Cc, s.dC, d->N, BT, d->N, st);
    lc_copy_cols(dxz + d->Cc, d->Win, s.dz, d->Di, BT, d->Di, st);
    lc_copy_cols(dxz + d->Cc + d->Di, d->Win, s.ddt, d->H, BT, d->H, st);
    lc_add_product(g->g.A_log + h, s.dA, s.A, (size_t)d->H, st);
    lc_add(g->g.Dskip + h, g->g.Dskip + h, s.dD, (size_t)d->H, st);
    lc_add(g->g.dt_bias + h, g->g.dt_bias + h, s.ddtb, (size_t)d->H, st);
    LAUNCHES_OK(g);
    return 0;
}

// ----------------------------------------------------------------------------
// the SSM blocks: ln (BT, C) -> out (BT, C)

static int ssm_block_forward(gpu_model* g, int l, int B, int T, float* out) {
    const model_dims* d = &g->d;
    size_t BT = (size_t)B * T;
    gpu_acts* a = &g->a;
    const float* ln = a->ln1 + l * BT * d->C;
    float *xz = a->xz + l * BT * d->Win, *xc = a->xc + l * BT * d->Cc, *xs = a->xs + l * BT * d->Cc;
    if (matmul_forward(g, xz, d->Win, ln, d->C, g->p.in_proj + (size_t)l * d->Win * d->C, (int)BT, d->C, d->Win)) return -1;
    lc_conv_forward(xc, xz, d->Win, g->p.conv_w + (size_t)l * d->Cc * d->K, g->p.conv_b + (size_t)l * d->Cc,
                    B, T, d->Cc, d->K, g->stream);
    lc_silu_forward(xs, xc, BT * d->Cc, g->stream);
    LAUNCHES_OK(g);
    int rc;
    if (d->mixer == MIXER_MAMBA2) rc = ssd_forward(g, l, B, T);
    else {
        if (d->mixer == MIXER_MAMBA) {
            int W = d->R + 2 * d->N;
            float* dbl = a->dbl + l * BT * W;
            if (matmul_forward(g, dbl, W, xs, d->Cc, g->p.x_proj + (size_t)l * W * d->Di, (int)BT, d->Di, W) ||
                matmul_forward(g, a->dtr + l * BT * d->Di, d->Di, dbl, W, g->p.dt_proj + (size_t)l * d->Di * d->R,
                               (int)BT, d->R, d->Di))
                return -1;
        }
        rc = scan_forward(g, l, B, T);
    }
    if (rc) return rc;
    return matmul_forward(g, out, d->C, a->y + l * BT * d->Di, d->Di, g->p.out_proj + (size_t)l * d->C * d->Di,
                          (int)BT, d->Di, d->C);
}

/* dout (BT, C) in; dln (BT, C) overwritten; parameter gradients accumulated. */
static int ssm_block_backward(gpu_model* g, int l, int B, int T, const float* dout, float* dln) {
    const model_dims* d = &g->d;
    size_t BT = (size_t)B * T;
    gpu_acts* a = &g->a;
    cudaStream_t st = g->stream;
    float *dy = a->g1, *dxz = a->g2, *dxs = a->g3, *ddbl = a->g4, *ddtr = a->g1;
    const float* ln = a->ln1 + l * BT * d->C;
    const float *xz = a->xz + l * BT * d->Win, *xc = a->xc + l * BT * d->Cc, *xs = a->xs + l * BT * d->Cc;
    if (zero(g, dy, BT * d->Di) ||
        matmul_backward(g, dy, d->Di, g->g.out_proj + (size_t)l * d->C * d->Di, dout, d->C, a->y + l * BT * d->Di,
                        d->Di, g->p.out_proj + (size_t)l * d->C * d->Di, (int)BT, d->Di, d->C) ||
        zero(g, dxz, BT * d->Win))
        return -1;
    if (d->mixer == MIXER_MAMBA2) {
        if (ssd_backward(g, l, B, T, dy, dxs, dxz)) return -1;
    } else {
        /* xs has Cc = Di columns here, so dxs (BT, Di) is laid out as xs */
        if (scan_backward(g, l, B, T, dy, dxs, dxz, ddbl, ddtr)) return -1; /* dy consumed first */
        if (d->mixer == MIXER_MAMBA) {
            int W = d->R + 2 * d->N;
            const float* dbl = a->dbl + l * BT * W;
            CUDA_OK(g, cudaMemset2DAsync(ddbl, (size_t)W * sizeof(float), 0, (size_t)d->R * sizeof(float), BT, st));
            if (matmul_backward(g, ddbl, W, g->g.dt_proj + (size_t)l * d->Di * d->R, ddtr, d->Di, dbl, W,
                                g->p.dt_proj + (size_t)l * d->Di * d->R, (int)BT, d->R, d->Di) ||
                matmul_backward(g, dxs, d->Di, g->g.x_proj + (size_t)l * W * d->Di, ddbl, W, xs, d->Di,
                                g->p.x_proj + (size_t)l * W * d->Di, (int)BT, d->Di, W))
                return -1;
        }
    }
    lc_silu_backward(dxs, dxs, xc, BT * d->Cc, st);
    lc_conv_backward_input(dxz, d->Win, dxs, g->p.conv_w + (size_t)l * d->Cc * d->K, B, T, d->Cc, d->K, st);
    lc_conv_weight_rows(a->rows, dxs, xz, d->Win, B, T, d->Cc, d->K, st);
    LAUNCHES_OK(g);
    if (column_sums(g, g->g.conv_w + (size_t)l * d->Cc * d->K, a->rows, (int)BT, d->Cc * d->K) ||
        column_sums(g, g->g.conv_b + (size_t)l * d->Cc, dxs, (int)BT, d->Cc) ||
        zero(g, dln, BT * d->C))
        return -1;
    return matmul_backward(g, dln, d->C, g->g.in_proj + (size_t)l * d->Win * d->C, dxz, d->Win, ln, d->C,
                           g->p.in_proj + (size_t)l * d->Win * d->C, (int)BT, d->C, d->Win);
}

// ----------------------------------------------------------------------------
// attention through mb_attention_{fwd,bwd}_cuda (fp32: the cuBLAS version in training,
// flash-simt in gpu_model_forward)

typedef struct {
    float *q, *k, *v, *o, *dout, *dq, *dk, *dv; /* (B, H, T, hd) each */
} attn_bufs;

static void attn_carve(const gpu_model* g, int B, int T, attn_bufs* s) {
    size_t x = (size_t)B * T * g->d.C;
    carver c = {g->a.mix, 0};
    s->q = take(&c, x); s->k = take(&c, x); s->v = take(&c, x); s->o = take(&c, x);
    s->dout = take(&c, x); s->dq = take(&c, x); s->dk = take(&c, x); s->dv = take(&c, x);
}

static void attn_split_qkv(gpu_model* g, int l, int B, int T, const attn_bufs* s) {
    const model_dims* d = &g->d;
    const float* qkv = g->a.qkv + (size_t)l * B * T * 3 * d->C;
    lc_heads_split(s->q, qkv, 3 * d->C, B, T, d->H, d->hd, g->stream);
    lc_heads_split(s->k, qkv + d->C, 3 * d->C, B, T, d->H, d->hd, g->stream);
    lc_heads_split(s->v, qkv + 2 * d->C, 3 * d->C, B, T, d->H, d->hd, g->stream);
}

/* Hard-ALiBi (model.c's attention_api): the local heads (the last H/2 of each sequence)
 * by lc_local_attention_*, the global ones (the first Hg = H - H/2, a contiguous (Hg, T,
 * hd) block of each sequence) through the API, one call per sequence. lse (B, H, T). */
static int hard_alibi_attention(gpu_model* g, int B, int T, const attn_bufs* s, float* lse, int backward) {
    const model_dims* d = &g->d;
    const int H = d->H, hd = d->hd, Hg = H - H / 2;
    lc_windows win;
    for (int h = Hg; h < H; h++) win.w[h - Hg] = hard_alibi_window(h, H); /* gpu_model_create checked the sizes */
    if (backward)
        lc_local_attention_backward(s->q, s->k, s->v, s->o, s->dout, lse, s->dq, s->dk, s->dv, B, H, Hg, T, hd,
                                    &win, g->stream);
    else
        lc_local_attention_forward(s->q, s->k, s->v, s->o, lse, B, H, Hg, T, hd, &win, g->stream);
    LAUNCHES_OK(g);
    for (int b = 0; b < B; b++) {
        const size_t o = (size_t)b * H * T * hd;
        mb_attention_params prm = {1, Hg, T, hd, 0.0, MB_DTYPE_F32, 0};
        mb_attention_inputs in = {s->q + o, s->k + o, s->v + o};
        float* lse_b = lse + (size_t)b * H * T;
        if (!backward) {
            MB_OK_OR_FAIL(g, "attention forward", mb_attention_fwd_cuda(&prm, &in, s->o + o, lse_b, g->stream));
        } else {
            mb_attention_grads gr = {s->dq + o, s->dk + o, s->dv + o};
            MB_OK_OR_FAIL(g, "attention backward",
                          mb_attention_bwd_cuda(&prm, &in, s->o + o, lse_b, s->dout + o, &gr, g->stream));
        }
    }
    return 0;
}

static int attn_forward(gpu_model* g, int l, int B, int T) {
    const model_dims* d = &g->d;
    attn_bufs s;
    attn_carve(g, B, T, &s);
    attn_split_qkv(g, l, B, T, &s);
    LAUNCHES_OK(g);
    float* lse = g->a.lse + (size_t)l * B * d->H * T;
    mb_attention_params prm = {B, d->H, T, d->hd, 0.0, MB_DTYPE_F32, 0};
    mb_attention_inputs in = {s.q, s.k, s.v};
    if (d->mixer == MIXER_MHA_HARD_ALIBI) {
        if (hard_alibi_attention(g, B, T, &s, lse, 0)) return -1;
    } else {
        MB_OK_OR_FAIL(g, "attention forward", mb_attention_fwd_cuda(&prm, &in, s.o, lse, g->stream));
    }
    lc_heads_merge(g->a.y + (size_t)l * B * T * d->C, d->C, s.o, B, T, d->H, d->hd, g->stream);
    LAUNCHES_OK(g);
    return 0;
}

/* dy (BT, C) in, dqkv (BT, 3C) overwritten. */
static int attn_backward(gpu_model* g, int l, int B, int T, const float* dy, float* dqkv) {
    const model_dims* d = &g->d;
    cudaStream_t st = g->stream;
    attn_bufs s;
    attn_carve(g, B, T, &s);
    attn_split_qkv(g, l, B, T, &s);
    lc_heads_split(s.o, g->a.y + (size_t)l * B * T * d->C, d->C, B, T, d->H, d->hd, st);
    lc_heads_split(s.dout, dy, d->C, B, T, d->H, d->hd, st);
    LAUNCHES_OK(g);
    float* lse = g->a.lse + (size_t)l * B * d->H * T;
    mb_attention_params prm = {B, d->H, T, d->hd, 0.0, MB_DTYPE_F32, 0};
    mb_attention_inputs in = {s.q, s.k, s.v};
    mb_attention_grads gr = {s.dq, s.dk, s.dv};
    if (d->mixer == MIXER_MHA_HARD_ALIBI) {
        if (hard_alibi_attention(g, B, T, &s, lse, 1)) return -1;
    } else {
        MB_OK_OR_FAIL(g, "attention backward", mb_attention_bwd_cuda(&prm, &in, s.o, lse, s.dout, &gr, st));
    }
    lc_heads_merge(dqkv, 3 * d->C, s.dq, B, T, d->H, d->hd, st);
    lc_heads_merge(dqkv + d->C, 3 * d->C, s.dk, B, T, d->H, d->hd, st);
    lc_heads_merge(dqkv + 2 * d->C, 3 * d->C, s.dv, B, T, d->H, d->hd, st);
    LAUNCHES_OK(g);
    return 0;
}

static int attn_layer_forward(gpu_model* g, int l, int B, int T) {
    const model_dims* d = &g->d;
    size_t BT = (size_t)B * T, C = (size_t)d->C;
    gpu_acts* a = &g->a;
    cudaStream_t st = g->stream;
    float *res = a->res + l * BT * C, *ln1 = a->ln1 + l * BT * C, *qkv = a->qkv + l * BT * 3 * C;
    float *res2 = a->res2 + l * BT * C, *ln2 = a->ln2 + l * BT * C;
    float *fch = a->fch + l * BT * 4 * C, *fcg = a->fcg + l * BT * 4 * C, *tmp = a->g1;
    lc_rmsnorm_forward(ln1, a->rstd1 + l * BT, res, g->p.norm1 + l * C, (int)BT, d->C, st);
    LAUNCHES_OK(g);
    if (matmul_forward(g, qkv, 3 * d->C, ln1, d->C, g->p.qkv + l * 3 * C * C, (int)BT, d->C, 3 * d->C)) return -1;
    if (d->mixer == MIXER_MHA_ROPE) lc_rope(qkv, (const float2*)g->pos_table, (int)BT, T, d->C, d->H, 1.0f, st);
    if (attn_forward(g, l, B, T) ||
        matmul_forward(g, tmp, d->C, a->y + l * BT * C, d->C, g->p.attn_proj + l * C * C, (int)BT, d->C, d->C))
        return -1;
    lc_add(res2, res, tmp, BT * C, st);
    lc_rmsnorm_forward(ln2, a->rstd2 + l * BT, res2, g->p.norm2 + l * C, (int)BT, d->C, st);
    LAUNCHES_OK(g);
    if (matmul_forward(g, fch, 4 * d->C, ln2, d->C, g->p.fc + l * 4 * C * C, (int)BT, d->C, 4 * d->C)) return -1;
    lc_gelu_forward(fcg, fch, BT * 4 * C, st);
    LAUNCHES_OK(g);
    if (matmul_forward(g, tmp, d->C, fcg, 4 * d->C, g->p.fc_proj + l * 4 * C * C, (int)BT, 4 * d->C, d->C)) return -1;
    lc_add(a->res + (l + 1) * BT * C, res2, tmp, BT * C, st);
    LAUNCHES_OK(g);
    return 0;
}

/* dres (BT, C): in, the gradient at res[l+1]; out, the gradient at res[l]. */
static int attn_layer_backward(gpu_model* g, int l, int B, int T) {
    const model_dims* d = &g->d;
    size_t BT = (size_t)B * T, C = (size_t)d->C;
    gpu_acts* a = &g->a;
    param_tensors *p = &g->p, *gr = &g->g;
    float *dres = a->dres, *g1 = a->g1, *g2 = a->g2, *g3 = a->g3;
    if (zero(g, g1, BT * 4 * C) ||
        matmul_backward(g, g1, 4 * d->C, gr->fc_proj + l * 4 * C * C, dres, d->C, a->fcg + l * BT * 4 * C,
                        4 * d->C, p->fc_proj + l * 4 * C * C, (int)BT, 4 * d->C, d->C))
        return -1;
    lc_gelu_backward(g1, g1, a->fch + l * BT * 4 * C, BT * 4 * C, g->stream);
    LAUNCHES_OK(g);
    if (zero(g, g2, BT * C) ||
        matmul_backward(g, g2, d->C, gr->fc + l * 4 * C * C, g1, 4 * d->C, a->ln2 + l * BT * C, d->C,
                        p->fc + l * 4 * C * C, (int)BT, d->C, 4 * d->C) ||
        rmsnorm_backward(g, dres, gr->norm2 + l * C, g2, a->res2 + l * BT * C, p->norm2 + l * C,
                         a->rstd2 + l * BT, (int)BT, d->C) ||
        zero(g, g1, BT * C) ||
        matmul_backward(g, g1, d->C, gr->attn_proj + l * C * C, dres, d->C, a->y + l * BT * C, d->C,
                        p->attn_proj + l * C * C, (int)BT, d->C, d->C) ||
        attn_backward(g, l, B, T, g1, g2))
        return -1;
    if (d->mixer == MIXER_MHA_ROPE) lc_rope(g2, (const float2*)g->pos_table, (int)BT, T, d->C, d->H, -1.0f, g->stream);
    LAUNCHES_OK(g);
    if (zero(g, g3, BT * C) ||
        matmul_backward(g, g3, d->C, gr->qkv + l * 3 * C * C, g2, 3 * d->C, a->ln1 + l * BT * C, d->C,
                        p->qkv + l * 3 * C * C, (int)BT, d->C, 3 * d->C))
        return -1;
    return rmsnorm_backward(g, dres, gr->norm1 + l * C, g3, a->res + l * BT * C, p->norm1 + l * C,
                            a->rstd1 + l * BT, (int)BT, d->C);
}

static int ssm_layer_forward(gpu_model* g, int l, int B, int T) {
    size_t BT = (size_t)B * T, C = (size_t)g->d.C;
    gpu_acts* a = &g->a;
    lc_rmsnorm_forward(a->ln1 + l * BT * C, a->rstd1 + l * BT, a->res + l * BT * C, g->p.norm1 + l * C,
                       (int)BT, g->d.C, g->stream);
    LAUNCHES_OK(g);
    float* out = a->res + (l + 1) * BT * C; /* the block's output, then the residual added */
    if (ssm_block_forward(g, l, B, T, out)) return -1;
    lc_add(out, out, a->res + l * BT * C, BT * C, g->stream);
    LAUNCHES_OK(g);
    return 0;
}

static int ssm_layer_backward(gpu_model* g, int l, int B, int T) {
    size_t BT = (size_t)B * T, C = (size_t)g->d.C;
    gpu_acts* a = &g->a;
    if (ssm_block_backward(g, l, B, T, a->dres, a->g1)) return -1;
    return rmsnorm_backward(g, a->dres, g->g.norm1 + l * C, a->g1, a->res + l * BT * C, g->p.norm1 + l * C,
                            a->rstd1 + l * BT, (int)BT, g->d.C);
}

// ----------------------------------------------------------------------------
// the whole model on the staged batch (device tokens and targets)

static const float* head_weight(const gpu_model* g) { return g->p.lm_head ? g->p.lm_head : g->p.wte; }

static int forward_all(gpu_model* g, int B, int T) {
    const model_dims* d = &g->d;
    size_t BT = (size_t)B * T, C = (size_t)d->C;
    gpu_acts* a = &g->a;
    cudaStream_t st = g->stream;
    lc_embed_forward(a->res, g->d_tokens, g->p.wte, d->mixer == MIXER_MHA_ABS ? g->pos_table : NULL, (int)BT, T,
                     d->C, st);
    LAUNCHES_OK(g);
    for (int l = 0; l < d->nL; l++) {
        int rc = mixer_is_attention(d->mixer) ? attn_layer_forward(g, l, B, T) : ssm_layer_forward(g, l, B, T);
        if (rc) return rc;
    }
    lc_rmsnorm_forward(a->lnf, a->rstdf, a->res + d->nL * BT * C, g->p.normf, (int)BT, d->C, st);
    LAUNCHES_OK(g);
    if (matmul_forward(g, a->logits, d->V, a->lnf, d->C, head_weight(g), (int)BT, d->C, d->V)) return -1;
    lc_crossentropy_forward(a->probs, a->row_loss, a->row_hit, a->logits, g->d_targets, (int)BT, d->V, st);
    lc_loss_reduce(g->d_stats, a->row_loss, a->row_hit, g->d_targets, (int)BT, st);
    LAUNCHES_OK(g);
    return 0;
}

static int backward_all(gpu_model* g, int B, int T) {
    const model_dims* d = &g->d;
    size_t BT = (size_t)B * T, C = (size_t)d->C;
    gpu_acts* a = &g->a;
    cudaStream_t st = g->stream;
    if (zero(g, g->grads, g->num_params)) return -1;
    lc_crossentropy_backward(a->g4, a->probs, g->d_targets, g->d_stats, (int)BT, d->V, st);
    LAUNCHES_OK(g);
    if (zero(g, a->g2, BT * C) ||
        matmul_backward(g, a->g2, d->C, g->g.lm_head ? g->g.lm_head : g->g.wte, a->g4, d->V, a->lnf, d->C,
                        head_weight(g), (int)BT, d->C, d->V) ||
        zero(g, a->dres, BT * C) ||
        rmsnorm_backward(g, a->dres, g->g.normf, a->g2, a->res + d->nL * BT * C, g->p.normf, a->rstdf, (int)BT, d->C))
        return -1;
    for (int l = d->nL - 1; l >= 0; l--) {
        int rc = mixer_is_attention(d->mixer) ? attn_layer_backward(g, l, B, T) : ssm_layer_backward(g, l, B, T);
        if (rc) return rc;
    }
    lc_embed_backward(g->g.wte, g->embed_partial, a->dres, g->d_order, g->d_offsets, d->V, d->C, st);
    LAUNCHES_OK(g);
    return 0;
}

static int optimise(gpu_model* g, const gpu_train_opts* o) {
    lc_grad_sumsq(g->d_stats, g->grads, g->num_params, g->stream);
    lc_adamw(g->params, g->grads, g->adam_m, g->adam_v, g->num_params, &g->table, g->d_hyper, g->d_stats,
             o->clip, o->beta1, o->beta2, o->eps, o->weight_decay, g->stream);
    LAUNCHES_OK(g);
    return 0;
}

static int read_stats_async(gpu_model* g) {
    CUDA_OK(g, cudaMemcpyAsync(g->h_stats, g->d_stats, sizeof(lc_stats), cudaMemcpyDeviceToHost, g->stream));
    return 0;
}

/* uploads, forward, backward, AdamW, the stats read back: the graph's body */
static int step_body(gpu_model* g, int B, int T, const gpu_train_opts* o) {
    size_t BT = (size_t)B * T;
    if (upload_batch(g, BT) || forward_all(g, B, T) || backward_all(g, B, T) || optimise(g, o)) return -1;
    return read_stats_async(g);
}

// ----------------------------------------------------------------------------
// public API

static int prepare(gpu_model* g, const int32_t* tokens, const int32_t* targets, int B, int T) {
    g->out_of_memory = 0;
    if (B < 1 || T < 1) return fail(g, "B and T must be positive (got %d, %d)", B, T);
    size_t BT = (size_t)B * T;
    for (size_t i = 0; i < BT; i++)
        if (tokens[i] < 0 || tokens[i] >= g->d.V)
            return fail(g, "token %d at row %zu is outside the vocabulary of %d", tokens[i], i, g->d.V);
    if (targets)
        for (size_t i = 0; i < BT; i++)
            if (targets[i] >= g->d.V) return fail(g, "target %d at row %zu is outside the vocabulary", targets[i], i);
    if (ensure_tokens(g, BT) || ensure_acts(g, B, T) || ensure_positions(g, T)) return -1;
    CUDA_OK(g, cudaStreamSynchronize(g->stream)); /* the staging buffers are free */
    stage_batch(g, tokens, targets, BT);
    g->B = B;
    g->T = T;
    return 0;
}

static float stats_loss(const gpu_model* g, int64_t* correct, int64_t* marked) {
    const lc_stats* s = g->h_stats;
    if (correct) *correct = s->hits;
    if (marked) *marked = s->marked;
    return s->marked ? (float)(s->loss_sum / s->marked) : 0.0f;
}

/* This thread's attention forward for a forward outside training: flash-simt
 * (O(L) memory, head dims up to 64), so that evaluation reaches lengths whose
 * (B*H, L, L) scores naive cannot hold; training steps keep the default (naive
 * for fp32: the model never selects another). 1 when selected (then the caller
 * selects the default back: selecting the default's name instead would refuse
 * fp32, an explicit selection being held to its own dtypes). */
static int select_eval_attention(const gpu_model* g) {
    if (!mixer_is_attention(g->d.mixer) || g->d.hd % 8 || g->d.hd > 64) return 0;
    return mb_impl_select(MB_OP_ATTENTION, MB_DIR_FWD, MB_BACKEND_CUDA, "flash-simt") == MB_OK;
}

float gpu_model_forward(gpu_model* g, const int32_t* tokens, const int32_t* targets, int B, int T,
                        int64_t* correct, int64_t* marked) {
    const int selected = select_eval_attention(g);
    int rc = prepare(g, tokens, targets, B, T) || upload_batch(g, (size_t)B * T) || forward_all(g, B, T) ||
             read_stats_async(g);
    if (selected) mb_impl_select(MB_OP_ATTENTION, MB_DIR_FWD, MB_BACKEND_CUDA, NULL);
    if (rc) return NAN;
    cudaError_t e = cudaStreamSynchronize(g->stream);
    if (e != cudaSuccess) { fail(g, "forward: %s", cudaGetErrorString(e)); return NAN; }
    return stats_loss(g, correct, marked);
}

int gpu_model_logits(gpu_model* g, float* logits) {
    CUDA_OK(g, cudaMemcpy(logits, g->a.logits, (size_t)g->B * g->T * g->d.V * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

int gpu_model_backward(gpu_model* g) {
    if (!g->has_targets) return fail(g, "backward: the last forward had no targets");
    if (backward_all(g, g->B, g->T)) return -1;
    CUDA_OK(g, cudaStreamSynchronize(g->stream));
    return 0;
}

int gpu_model_grads(gpu_model* g, float* grads) {
    CUDA_OK(g, cudaMemcpy(grads, g->grads, g->num_params * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

static int same_opts(const gpu_train_opts* a, const gpu_train_opts* b) {
    return a->clip == b->clip && a->beta1 == b->beta1 && a->beta2 == b->beta2 && a->eps == b->eps &&
           a->weight_decay == b->weight_decay;
}

/* Capture step_body as a graph; on refusal, say why and stay eager. */
static void capture_graph(gpu_model* g, int B, int T, const gpu_train_opts* o) {
    cudaGraph_t graph = NULL;
    g->graph_ok = 0;
    if (cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) goto refused;
    {
        int rc = step_body(g, B, T, o);
        cudaError_t e = cudaStreamEndCapture(g->stream, &graph);
        if (rc || e != cudaSuccess) goto refused;
    }
    if (cudaGraphInstantiate(&g->graph, graph, 0) != cudaSuccess) goto refused;
    cudaGraphDestroy(graph);
    g->graph_ok = 1;
    g->graph_B = B;
    g->graph_T = T;
    g->graph_opts = *o;
    return;
refused:
    snprintf(g->err, sizeof g->err, "CUDA graph capture refused (%s); steps run eagerly",
             cudaGetErrorString(cudaGetLastError()));
    if (graph) cudaGraphDestroy(graph);
    g->graph = NULL;
    g->use_graphs = 0;
}

int gpu_model_step_launch(gpu_model* g, const int32_t* tokens, const int32_t* targets, int B, int T,
                          float lr, int64_t step, const gpu_train_opts* o) {
    if (!targets) return fail(g, "a training step needs targets");
    if (prepare(g, tokens, targets, B, T)) return -1;
    g->h_hyper->lr = lr;
    g->h_hyper->step = (float)step;
    if (g->graph_ok && (g->graph_B != B || g->graph_T != T || !same_opts(&g->graph_opts, o))) drop_graph(g);
    /* the first step of a shape runs eagerly (it warms up cuBLAS and the
     * mixers' workspaces), the second is captured, the rest replay it */
    if (g->use_graphs && !g->graph_ok && g->step_count >= 1) capture_graph(g, B, T, o);
    g->graphed = g->graph_ok;
    if (g->graph_ok) CUDA_OK(g, cudaGraphLaunch(g->graph, g->stream));
    else if (step_body(g, B, T, o)) return -1;
    g->step_count++;
    return 0;
}

int gpu_model_step_wait(gpu_model* g, float* loss, int64_t* correct, int64_t* marked) {
    CUDA_OK(g, cudaStreamSynchronize(g->stream));
    *loss = stats_loss(g, correct, marked);
    return 0;
}

static int copy_state(gpu_model* g, model* host, cudaMemcpyKind kind) {
    float* h[3] = {model_params(host), model_adam_m(host), model_adam_v(host)};
    float* d[3] = {g->params, g->adam_m, g->adam_v};
    size_t bytes = g->num_params * sizeof(float);
    CUDA_OK(g, cudaStreamSynchronize(g->stream));
    for (int i = 0; i < 3; i++)
        CUDA_OK(g, kind == cudaMemcpyHostToDevice ? cudaMemcpy(d[i], h[i], bytes, kind) : cudaMemcpy(h[i], d[i], bytes, kind));
    return 0;
}

int gpu_model_download(gpu_model* g, model* host) { return copy_state(g, host, cudaMemcpyDeviceToHost); }
int gpu_model_upload(gpu_model* g, const model* host) { return copy_state(g, (model*)host, cudaMemcpyHostToDevice); }

static int create_device_state(gpu_model* g, const model* host) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count < 1) {
        (void)cudaGetLastError();
        return fail(g, "no CUDA device (--device cuda needs a GPU)");
    }
    cudaDeviceProp prop;
    CUDA_OK(g, cudaGetDeviceProperties(&prop, 0));
    snprintf(g->device, sizeof g->device, "%s", prop.name);
    CUDA_OK(g, cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking));
    BLAS_OK(g, cublasCreate(&g->blas));
    BLAS_OK(g, cublasSetStream(g->blas, g->stream));
    size_t bytes = g->num_params * sizeof(float);
    CUDA_OK(g, cudaMalloc(&g->params, 4 * bytes));
    g->grads = g->params + g->num_params;
    g->adam_m = g->grads + g->num_params;
    g->adam_v = g->adam_m + g->num_params;
    model_point_tensors(host, g->params, &g->p);
    model_point_tensors(host, g->grads, &g->g);
    CUDA_OK(g, cudaMalloc(&g->embed_partial, (size_t)g->d.V * LC_EMBED_SPLIT * g->d.C * sizeof(float)));
    CUDA_OK(g, cudaMallocHost(&g->h_hyper, sizeof(lc_hyper)));
    CUDA_OK(g, cudaMalloc(&g->d_hyper, sizeof(lc_hyper)));
    CUDA_OK(g, cudaMallocHost(&g->h_stats, sizeof(lc_stats)));
    CUDA_OK(g, cudaMalloc(&g->d_stats, sizeof(lc_stats)));
    return copy_state(g, (model*)host, cudaMemcpyHostToDevice);
}

gpu_model* gpu_model_create(const model* host, char* msg, int msg_size) {
    if (model_cfg(host)->mixer == MIXER_MHA_HARD_ALIBI) { /* the local-head kernels' limits */
        const model_dims d = model_dims_of(model_cfg(host));
        if (d.H / 2 > LC_MAX_LOCAL_HEADS || d.hd > LC_MAX_LOCAL_HD || MODEL_MAX_LOCAL_WINDOW > LC_MAX_LOCAL_WINDOW) {
            snprintf(msg, (size_t)msg_size, "cuda: mha-hardalibi takes at most %d local heads of dim <= %d "
                     "(this model: %d of dim %d)", LC_MAX_LOCAL_HEADS, LC_MAX_LOCAL_HD, d.H / 2, d.hd);
            return NULL;
        }
    }
    gpu_model* g = (gpu_model*)calloc(1, sizeof(gpu_model));
    if (!g) { snprintf(msg, (size_t)msg_size, "out of memory"); return NULL; }
    g->cfg = *model_cfg(host);
    g->d = model_dims_of(&g->cfg);
    g->num_params = model_num_params(host);
    size_t end = 0;
    for (int k = 0; k < NUM_PARAM_TENSORS; k++) {
        end += model_param_size(host, k);
        g->table.end[k] = end;
        g->table.decay[k] = model_param_decays(k);
    }
    g->table.count = NUM_PARAM_TENSORS;
    g->use_graphs = 1;
    if (create_device_state(g, host)) {
        snprintf(msg, (size_t)msg_size, "cuda: %s", g->err);
        gpu_model_free(g);
        return NULL;
    }
    return g;
}

void gpu_model_free(gpu_model* g) {
    if (!g) return;
    if (g->stream) cudaStreamSynchronize(g->stream);
    drop_graph(g);
    cudaFree(g->params);
    cudaFree(g->embed_partial);
    cudaFree(g->act_mem);
    cudaFree(g->d_tokens);
    cudaFreeHost(g->h_tokens);
    cudaFree(g->pos_table);
    cudaFreeHost(g->h_hyper);
    cudaFree(g->d_hyper);
    cudaFreeHost(g->h_stats);
    cudaFree(g->d_stats);
    if (g->blas) cublasDestroy(g->blas);
    if (g->stream) cudaStreamDestroy(g->stream);
    free(g);
}
