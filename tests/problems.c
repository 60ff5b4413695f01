/*
 * problems.c -- the shared test builders (see problems.h), compiled into every
 * test executable.
 */
#include "problems.h"

#include "tolerances.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// RNG

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

void rng_seed(uint64_t seed) { rng_state = seed ? seed : 0x9E3779B97F4A7C15ull; }

uint64_t rng_u64(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

double rng_uniform(double lo, double hi) {
    return lo + (hi - lo) * (double)(rng_u64() >> 11) * (1.0 / 9007199254740992.0);
}

double rng_normal(void) {
    double u1 = rng_uniform(1e-12, 1.0), u2 = rng_uniform(0.0, 1.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void* tb_malloc(size_t bytes) {
    void* p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

double* rand_uniform_f64(int64_t n, double lo, double hi) {
    double* p = tb_malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    for (int64_t i = 0; i < n; i++) p[i] = rng_uniform(lo, hi);
    return p;
}

double* rand_normal_f64(int64_t n, double stddev) {
    double* p = tb_malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    for (int64_t i = 0; i < n; i++) p[i] = stddev * rng_normal();
    return p;
}

double* zeros_f64(int64_t n) {
    double* p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

double* copy_f64(const double* src, int64_t n) {
    double* p = zeros_f64(n);
    if (n > 0) memcpy(p, src, (size_t)n * sizeof(double));
    return p;
}

// ----------------------------------------------------------------------------
// dtypes

double tb_round(double x, mb_dtype dtype) {
    if (dtype == MB_DTYPE_BF16) return mb_f32_from_bf16(mb_bf16_from_f32((float)x));
    if (dtype == MB_DTYPE_F32) return (double)(float)x;
    return x;
}

void tb_round_array(double* x, int64_t n, mb_dtype dtype) {
    for (int64_t i = 0; x && i < n; i++) x[i] = tb_round(x[i], dtype);
}

void tb_pack_into(void* dst, const double* x, int64_t n, mb_dtype dtype) {
    for (int64_t i = 0; i < n; i++) {
        if (dtype == MB_DTYPE_F32) ((float*)dst)[i] = (float)x[i];
        else if (dtype == MB_DTYPE_BF16) ((uint16_t*)dst)[i] = mb_bf16_from_f32((float)x[i]);
        else ((double*)dst)[i] = x[i];
    }
}

void* tb_pack(const double* x, int64_t n, mb_dtype dtype) {
    if (!x) return NULL;
    void* p = tb_malloc((size_t)(n > 0 ? n : 1) * mb_dtype_size(dtype));
    tb_pack_into(p, x, n, dtype);
    return p;
}

double* tb_unpack(const void* src, int64_t n, mb_dtype dtype) {
    double* p = zeros_f64(n);
    for (int64_t i = 0; i < n; i++) {
        if (dtype == MB_DTYPE_F32) p[i] = ((const float*)src)[i];
        else if (dtype == MB_DTYPE_BF16) p[i] = mb_f32_from_bf16(((const uint16_t*)src)[i]);
        else p[i] = ((const double*)src)[i];
    }
    return p;
}

// ----------------------------------------------------------------------------
// poisoned, guarded buffers

void* tb_guarded_alloc(size_t bytes) {
    unsigned char* p = tb_malloc(bytes + 2 * TB_GUARD_BYTES);
    memset(p, TB_POISON, bytes + 2 * TB_GUARD_BYTES);
    return p + TB_GUARD_BYTES;
}

void tb_guarded_free(void* payload) {
    if (payload) free((unsigned char*)payload - TB_GUARD_BYTES);
}

int tb_poisoned(const void* p, size_t from, size_t to) {
    const unsigned char* b = p;
    for (size_t i = from; i < to; i++)
        if (b[i] != TB_POISON) return 0;
    return 1;
}

int tb_guards_intact(const void* payload, size_t bytes) {
    const unsigned char* before = (const unsigned char*)payload - TB_GUARD_BYTES;
    return tb_poisoned(before, 0, TB_GUARD_BYTES) &&
           tb_poisoned((const unsigned char*)payload + bytes, 0, TB_GUARD_BYTES);
}

void tb_poison(void* p, size_t bytes) { memset(p, TB_POISON, bytes); }

// ----------------------------------------------------------------------------
// finite differences

void tb_fd_gradient(tb_loss_fn loss, void* ctx, double* x, int64_t n, double* out) {
    for (int64_t i = 0; i < n; i++) {
        const double orig = x[i];
        const double step = TOL_FD_STEP * fmax(1.0, fabs(orig));
        const double up = orig + step, down = orig - step;
        x[i] = up;
        const double loss_up = loss(ctx);
        x[i] = down;
        const double loss_down = loss(ctx);
        x[i] = orig;
        out[i] = (loss_up - loss_down) / (up - down);
    }
}

// ----------------------------------------------------------------------------
// tensors

size_t tb_tensor_bytes(const tb_tensor* t) { return (size_t)t->n * mb_dtype_size(t->dtype); }

/* host values (owned) rounded to dtype, and their guarded stored copy */
static tb_tensor tensor_of(double* host, int64_t n, mb_dtype dtype) {
    tb_tensor t = {n, dtype, host, NULL};
    tb_round_array(host, n, dtype);
    t.data = tb_guarded_alloc(tb_tensor_bytes(&t));
    tb_pack_into(t.data, host, n, dtype);
    return t;
}

tb_tensor tb_tensor_normal(int64_t n, mb_dtype dtype, double stddev) {
    return tensor_of(rand_normal_f64(n, stddev), n, dtype);
}

tb_tensor tb_tensor_uniform(int64_t n, mb_dtype dtype, double lo, double hi) {
    return tensor_of(rand_uniform_f64(n, lo, hi), n, dtype);
}

tb_tensor tb_tensor_output(int64_t n, mb_dtype dtype) {
    tb_tensor t = {n, dtype, zeros_f64(n), NULL};
    t.data = tb_guarded_alloc(tb_tensor_bytes(&t));
    return t;
}

double* tb_tensor_read(tb_tensor* t) {
    double* v = tb_unpack(t->data, t->n, t->dtype);
    memcpy(t->host, v, (size_t)t->n * sizeof(double));
    free(v);
    return t->host;
}

void tb_tensor_free(tb_tensor* t) {
    free(t->host);
    tb_guarded_free(t->data);
    t->host = NULL, t->data = NULL;
}

static const tb_tensor absent = {0, MB_DTYPE_F64, NULL, NULL};

// ----------------------------------------------------------------------------
// problems

tb_scan_problem tb_scan_make(mb_selective_scan_params p, int with) {
    const int64_t bdl = p.batch * p.dim * p.seqlen, bgnl = p.batch * p.ngroups * p.dstate * p.seqlen;
    mb_dtype act = p.dtype, par = mb_param_dtype(p.dtype);
    tb_scan_problem pr = {p, absent, absent, absent, absent, absent, absent, absent, absent};
    pr.u = tb_tensor_normal(bdl, act, 1.0);
    pr.delta = tb_tensor_uniform(bdl, act, -3.0, 1.0);
    pr.A = tb_tensor_uniform(p.dim * p.dstate, par, -2.0, -0.5);
    pr.B = tb_tensor_normal(bgnl, act, 1.0);
    pr.C = tb_tensor_normal(bgnl, act, 1.0);
    if (with & TB_WITH_D) pr.D = tb_tensor_normal(p.dim, par, 1.0);
    if (with & TB_WITH_Z) pr.z = tb_tensor_normal(bdl, act, 1.0);
    if (with & TB_WITH_BIAS) pr.delta_bias = tb_tensor_uniform(p.dim, par, -0.5, 0.5);
    return pr;
}

mb_selective_scan_inputs tb_scan_inputs(const tb_scan_problem* pr) {
    return (mb_selective_scan_inputs){pr->u.data, pr->delta.data, pr->A.data, pr->B.data,
                                      pr->C.data, pr->D.data, pr->z.data, pr->delta_bias.data};
}

mb_selective_scan_inputs tb_scan_inputs_f64(const tb_scan_problem* pr) {
    return (mb_selective_scan_inputs){pr->u.host, pr->delta.host, pr->A.host, pr->B.host,
                                      pr->C.host, pr->D.host, pr->z.host, pr->delta_bias.host};
}

void tb_scan_free(tb_scan_problem* pr) {
    tb_tensor* all[] = {&pr->u, &pr->delta, &pr->A, &pr->B, &pr->C, &pr->D, &pr->z, &pr->delta_bias};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tb_tensor_free(all[i]);
}

tb_ssd_problem tb_ssd_make(mb_ssd_params p, int with) {
    const int64_t blhp = p.batch * p.seqlen * p.nheads * p.headdim;
    const int64_t blgn = p.batch * p.seqlen * p.ngroups * p.dstate;
    mb_dtype act = p.dtype, par = mb_param_dtype(p.dtype);
    tb_ssd_problem pr = {p, absent, absent, absent, absent, absent,
                         absent, absent, absent, absent};
    pr.x = tb_tensor_normal(blhp, act, 1.0);
    pr.dt = tb_tensor_uniform(p.batch * p.seqlen * p.nheads, act, -3.0, 1.0);
    pr.A = tb_tensor_uniform(p.nheads, par, -2.0, -0.5);
    pr.B = tb_tensor_normal(blgn, act, 0.5);
    pr.C = tb_tensor_normal(blgn, act, 0.5);
    if (with & TB_WITH_D) pr.D = tb_tensor_normal(p.nheads, par, 1.0);
    if (with & TB_WITH_Z) pr.z = tb_tensor_normal(blhp, act, 1.0);
    if (with & TB_WITH_BIAS) pr.dt_bias = tb_tensor_uniform(p.nheads, par, -0.5, 0.5);
    if (with & TB_WITH_H0)
        pr.initial_state = tb_tensor_normal(p.batch * p.nheads * p.headdim * p.dstate, par, 0.5);
    return pr;
}

mb_ssd_inputs tb_ssd_inputs(const tb_ssd_problem* pr) {
    return (mb_ssd_inputs){pr->x.data, pr->dt.data, pr->A.data, pr->B.data, pr->C.data,
                           pr->D.data, pr->z.data, pr->dt_bias.data, pr->initial_state.data};
}

mb_ssd_inputs tb_ssd_inputs_f64(const tb_ssd_problem* pr) {
    return (mb_ssd_inputs){pr->x.host, pr->dt.host, pr->A.host, pr->B.host, pr->C.host,
                           pr->D.host, pr->z.host, pr->dt_bias.host, pr->initial_state.host};
}

void tb_ssd_free(tb_ssd_problem* pr) {
    tb_tensor* all[] = {&pr->x, &pr->dt, &pr->A, &pr->B, &pr->C,
                        &pr->D, &pr->z, &pr->dt_bias, &pr->initial_state};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tb_tensor_free(all[i]);
}

tb_attention_problem tb_attention_make(mb_attention_params p) {
    const int64_t hkv = p.nheads_kv ? p.nheads_kv : p.nheads;
    tb_attention_problem pr = {p, absent, absent, absent};
    pr.q = tb_tensor_normal(p.batch * p.nheads * p.seqlen * p.headdim, p.dtype, 1.0);
    pr.k = tb_tensor_normal(p.batch * hkv * p.seqlen * p.headdim, p.dtype, 1.0);
    pr.v = tb_tensor_normal(p.batch * hkv * p.seqlen * p.headdim, p.dtype, 1.0);
    return pr;
}

mb_attention_inputs tb_attention_inputs(const tb_attention_problem* pr) {
    return (mb_attention_inputs){pr->q.data, pr->k.data, pr->v.data};
}

mb_attention_inputs tb_attention_inputs_f64(const tb_attention_problem* pr) {
    return (mb_attention_inputs){pr->q.host, pr->k.host, pr->v.host};
}

void tb_attention_free(tb_attention_problem* pr) {
    tb_tensor_free(&pr->q);
    tb_tensor_free(&pr->k);
    tb_tensor_free(&pr->v);
}

// ----------------------------------------------------------------------------
// device tensors

#ifdef MB_HAVE_CUDA
#include <cuda_runtime_api.h>

void tb_cuda_ok(cudaError_t err, const char* what) {
    if (err != cudaSuccess) {
        fprintf(stderr, "FAIL: %s: %s\n", what, cudaGetErrorString(err));
        exit(1);
    }
}

void* tb_device_upload(const tb_tensor* t) {
    void* d = NULL;
    if (!t->data) return NULL;
    tb_cuda_ok(cudaMalloc(&d, tb_tensor_bytes(t) + 8), "cudaMalloc");
    tb_cuda_ok(cudaMemcpy(d, t->data, tb_tensor_bytes(t), cudaMemcpyHostToDevice), "H2D");
    return d;
}

void* tb_device_poisoned(const tb_tensor* t) {
    void* d = NULL;
    tb_cuda_ok(cudaMalloc(&d, tb_tensor_bytes(t) + 8), "cudaMalloc");
    tb_cuda_ok(cudaMemset(d, TB_POISON, tb_tensor_bytes(t) + 8), "cudaMemset");
    return d;
}

double* tb_device_download(tb_tensor* t, const void* device) {
    tb_cuda_ok(cudaMemcpy(t->data, device, tb_tensor_bytes(t), cudaMemcpyDeviceToHost), "D2H");
    return tb_tensor_read(t);
}

void tb_device_free(void* device) {
    if (device) cudaFree(device);
}
#endif
