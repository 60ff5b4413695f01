/*
 * test_selective_scan.c -- the CPU reference of the Mamba-1 selective scan
 * (mb_selective_scan_{fwd,bwd}_cpu) against:
 *   - a brute-force forward written here from the closed form
 *       h_t = sum_{s<=t} exp(A * sum_{r=s+1..t} delta'_r) * delta'_s * B_s * u_s
 *     (no recurrence), at fp64, over many shapes and options;
 *   - central finite differences of loss = sum(dy * y) for every input;
 *   - edge cases (L = 1, G in {1, >1, D}, N in {1, MB_MAX_DSTATE}, no optional
 *     inputs, total decay, huge delta);
 *   - its own fp64 path for fp32 and bf16 storage;
 *   - what it may write (outputs only, nothing on failure) and how much
 *     scratch memory it takes.
 *
 * Dimension legend: B batch, D channels, L length, N state, G groups of B/C.
 * Layouts: u, delta, z, y (B, D, L); A (D, N); B, C (B, G, N, L);
 * D, delta_bias (D); final_state (B, D, N).
 */
#include "mambabench.h"
#include "testing.h"
#include "tolerances.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// a random problem, all in fp64

typedef struct {
    const char* name;
    int64_t B, D, L, N, G;
    int softplus, has_D, has_z, has_bias;
} config;

typedef struct {
    mb_selective_scan_params p;
    double* u;     /* (B, D, L) */
    double* delta; /* (B, D, L) */
    double* A;     /* (D, N) */
    double* Bm;    /* (B, G, N, L) */
    double* Cm;    /* (B, G, N, L) */
    double* Dv;    /* (D) or NULL */
    double* z;     /* (B, D, L) or NULL */
    double* bias;  /* (D) or NULL */
} problem;

static int64_t n_bdl(const problem* pr) { return pr->p.batch * pr->p.dim * pr->p.seqlen; }
static int64_t n_bgnl(const problem* pr) {
    return pr->p.batch * pr->p.ngroups * pr->p.dstate * pr->p.seqlen;
}
static int64_t n_dn(const problem* pr) { return pr->p.dim * pr->p.dstate; }
static int64_t n_bdn(const problem* pr) { return pr->p.batch * pr->p.dim * pr->p.dstate; }

/* Fresh random inputs from the current rng state: u, B, C, z, D normal,
 * delta uniform(0.01, 0.5) (pre-softplus uniform(-3, 1)), A = -uniform(0.5, 2). */
static problem make_problem(const config* c) {
    problem pr;
    memset(&pr, 0, sizeof pr);
    pr.p.batch = c->B;
    pr.p.dim = c->D;
    pr.p.seqlen = c->L;
    pr.p.dstate = c->N;
    pr.p.ngroups = c->G;
    pr.p.dtype = MB_DTYPE_F64;
    pr.p.delta_softplus = c->softplus;
    pr.u = rand_normal_f64(n_bdl(&pr), 1.0);
    pr.delta = c->softplus ? rand_uniform_f64(n_bdl(&pr), -3.0, 1.0)
                           : rand_uniform_f64(n_bdl(&pr), 0.01, 0.5);
    pr.A = rand_uniform_f64(n_dn(&pr), -2.0, -0.5);
    pr.Bm = rand_normal_f64(n_bgnl(&pr), 1.0);
    pr.Cm = rand_normal_f64(n_bgnl(&pr), 1.0);
    pr.Dv = c->has_D ? rand_normal_f64(c->D, 1.0) : NULL;
    pr.z = c->has_z ? rand_normal_f64(n_bdl(&pr), 1.0) : NULL;
    pr.bias = c->has_bias ? rand_uniform_f64(c->D, 0.05, 0.3) : NULL;
    return pr;
}

static void free_problem(problem* pr) {
    free(pr->u);
    free(pr->delta);
    free(pr->A);
    free(pr->Bm);
    free(pr->Cm);
    free(pr->Dv);
    free(pr->z);
    free(pr->bias);
}

static mb_selective_scan_inputs inputs_of(const problem* pr) {
    mb_selective_scan_inputs in = {pr->u, pr->delta, pr->A, pr->Bm, pr->Cm, pr->Dv, pr->z,
                                   pr->bias};
    return in;
}

static int all_finite(const double* x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

// ----------------------------------------------------------------------------
// brute-force forward: closed form of h_t, one (b, d) at a time, no recurrence

/* softplus written as max(x, 0) + log1p(exp(-|x|)) */
static double brute_softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

static double brute_delta(const problem* pr, int64_t b, int64_t d, int64_t t) {
    double x = pr->delta[(b * pr->p.dim + d) * pr->p.seqlen + t] + (pr->bias ? pr->bias[d] : 0.0);
    return pr->p.delta_softplus ? brute_softplus(x) : x;
}

/* h_t[n] = sum_{s<=t} exp(A[d,n] * sum_{r=s+1..t} delta'_r) delta'_s B_s[n] u_s */
static double brute_state(const problem* pr, int64_t b, int64_t d, int64_t n, int64_t t) {
    const int64_t L = pr->p.seqlen, N = pr->p.dstate;
    const int64_t g = d / (pr->p.dim / pr->p.ngroups);
    double h = 0.0;
    for (int64_t s = 0; s <= t; s++) {
        double decay = 0.0;
        for (int64_t r = s + 1; r <= t; r++) decay += brute_delta(pr, b, d, r);
        double bs = pr->Bm[((b * pr->p.ngroups + g) * N + n) * L + s];
        double us = pr->u[(b * pr->p.dim + d) * L + s];
        h += exp(pr->A[d * N + n] * decay) * brute_delta(pr, b, d, s) * bs * us;
    }
    return h;
}

/* y (B, D, L) and final_state (B, D, N) by brute force. */
static void brute_forward(const problem* pr, double* y, double* fs) {
    const int64_t Bt = pr->p.batch, D = pr->p.dim, L = pr->p.seqlen, N = pr->p.dstate;
    const int64_t G = pr->p.ngroups;
    for (int64_t b = 0; b < Bt; b++)
        for (int64_t d = 0; d < D; d++) {
            int64_t g = d / (D / G);
            for (int64_t t = 0; t < L; t++) {
                int64_t i = (b * D + d) * L + t;
                double acc = pr->Dv ? pr->Dv[d] * pr->u[i] : 0.0;
                for (int64_t n = 0; n < N; n++)
                    acc += pr->Cm[((b * G + g) * N + n) * L + t] * brute_state(pr, b, d, n, t);
                if (pr->z) acc *= pr->z[i] / (1.0 + exp(-pr->z[i]));
                y[i] = acc;
            }
            for (int64_t n = 0; n < N; n++)
                fs[(b * D + d) * N + n] = brute_state(pr, b, d, n, L - 1);
        }
}

/* API forward at fp64 vs the brute force, y and final_state. */
static void check_forward_vs_brute(const config* c, uint64_t seed) {
    rng_seed(seed);
    problem pr = make_problem(c);
    mb_selective_scan_inputs in = inputs_of(&pr);
    double* y = zeros_f64(n_bdl(&pr));
    double* fs = zeros_f64(n_bdn(&pr));
    double* y_ref = zeros_f64(n_bdl(&pr));
    double* fs_ref = zeros_f64(n_bdn(&pr));
    CHECK_OK(mb_selective_scan_fwd_cpu(&pr.p, &in, y, fs));
    brute_forward(&pr, y_ref, fs_ref);
    char what[160];
    snprintf(what, sizeof what, "%s: y vs brute force", c->name);
    expect_close_f64(what, y, y_ref, n_bdl(&pr), TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    snprintf(what, sizeof what, "%s: final_state vs brute force", c->name);
    expect_close_f64(what, fs, fs_ref, n_bdn(&pr), TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    free(y);
    free(fs);
    free(y_ref);
    free(fs_ref);
    free_problem(&pr);
}

static void test_forward_brute_force(void) {
    static const config configs[] = {
        /* name                       B  D  L   N    G  sp D  z  bias */
        {"base G>1 all options", 2, 4, 7, 3, 2, 1, 1, 1, 1},
        {"softplus off", 2, 4, 7, 3, 2, 0, 1, 1, 1},
        {"no D, z, bias", 2, 4, 7, 3, 2, 1, 0, 0, 0},
        {"no optionals, softplus off", 2, 4, 7, 3, 2, 0, 0, 0, 0},
        {"only D", 1, 3, 6, 2, 3, 1, 1, 0, 0},
        {"only z", 1, 3, 6, 2, 1, 0, 0, 1, 0},
        {"only bias", 1, 3, 6, 2, 1, 1, 0, 0, 1},
        {"L = 1", 2, 4, 1, 3, 2, 1, 1, 1, 1},
        {"L = 1, B = 1, D = 1", 1, 1, 1, 1, 1, 0, 1, 1, 1},
        {"B = 3", 3, 2, 5, 4, 1, 1, 1, 1, 1},
        {"G = 1", 2, 6, 8, 3, 1, 1, 1, 1, 1},
        {"G = D", 2, 6, 8, 3, 6, 1, 1, 1, 1},
        {"G = 3 of D = 6", 2, 6, 8, 3, 3, 1, 1, 1, 1},
        {"N = 1", 2, 4, 9, 1, 2, 1, 1, 1, 1},
        {"N = MB_MAX_DSTATE", 1, 2, 5, MB_MAX_DSTATE, 1, 1, 1, 1, 1},
        {"longer L", 1, 2, 40, 4, 2, 1, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        check_forward_vs_brute(&configs[i], 1000 + i);
}

// ----------------------------------------------------------------------------
// gradients vs central finite differences of loss = sum(dy * y)

static double loss_of(const problem* pr, const double* dy, double* y_scratch) {
    mb_selective_scan_inputs in = inputs_of(pr);
    mb_status st = mb_selective_scan_fwd_cpu(&pr->p, &in, y_scratch, NULL);
    if (st != MB_OK) CHECK(0, "forward in loss_of: %s", mb_last_error());
    double loss = 0.0;
    for (int64_t i = 0; i < n_bdl(pr); i++) loss += dy[i] * y_scratch[i];
    return loss;
}

/* what the loss of tb_fd_gradient reads: the problem (one of whose arrays is
 * perturbed), dy, and a y scratch */
typedef struct {
    const problem* pr;
    const double* dy;
    double* y;
} loss_ctx;

static double loss_at(void* ctx) {
    loss_ctx* c = ctx;
    return loss_of(c->pr, c->dy, c->y);
}

static void expect_grad(const config* c, const char* input, const problem* pr,
                        const double* dy, double* x, const double* grad, int64_t n) {
    double* fd = zeros_f64(n);
    loss_ctx ctx = {pr, dy, zeros_f64(n_bdl(pr))};
    tb_fd_gradient(loss_at, &ctx, x, n, fd);
    free(ctx.y);
    char what[160];
    snprintf(what, sizeof what, "%s: d%s vs finite differences", c->name, input);
    expect_close_f64(what, grad, fd, n, TOL_FD_RTOL, TOL_FD_ATOL);
    free(fd);
}

/* Gradient buffers, prefilled with garbage so that accumulation would show. */
typedef struct {
    double *du, *ddelta, *dA, *dB, *dC, *dD, *dz, *dbias;
} grads64;

static double* garbage_f64(int64_t n) {
    double* p = zeros_f64(n);
    for (int64_t i = 0; i < n; i++) p[i] = 7.0;
    return p;
}

static grads64 alloc_grads(const problem* pr) {
    grads64 g;
    g.du = garbage_f64(n_bdl(pr));
    g.ddelta = garbage_f64(n_bdl(pr));
    g.dA = garbage_f64(n_dn(pr));
    g.dB = garbage_f64(n_bgnl(pr));
    g.dC = garbage_f64(n_bgnl(pr));
    g.dD = pr->Dv ? garbage_f64(pr->p.dim) : NULL;
    g.dz = pr->z ? garbage_f64(n_bdl(pr)) : NULL;
    g.dbias = pr->bias ? garbage_f64(pr->p.dim) : NULL;
    return g;
}

static mb_selective_scan_grads grads_of(const grads64* g) {
    mb_selective_scan_grads out = {g->du, g->ddelta, g->dA, g->dB, g->dC, g->dD, g->dz, g->dbias};
    return out;
}

static void free_grads(grads64* g) {
    free(g->du);
    free(g->ddelta);
    free(g->dA);
    free(g->dB);
    free(g->dC);
    free(g->dD);
    free(g->dz);
    free(g->dbias);
}

static void check_gradients(const config* c, uint64_t seed) {
    rng_seed(seed);
    problem pr = make_problem(c);
    double* dy = rand_normal_f64(n_bdl(&pr), 1.0);
    grads64 g = alloc_grads(&pr);
    mb_selective_scan_inputs in = inputs_of(&pr);
    mb_selective_scan_grads out = grads_of(&g);
    CHECK_OK(mb_selective_scan_bwd_cpu(&pr.p, &in, dy, &out));
    expect_grad(c, "u", &pr, dy, pr.u, g.du, n_bdl(&pr));
    expect_grad(c, "delta", &pr, dy, pr.delta, g.ddelta, n_bdl(&pr));
    expect_grad(c, "A", &pr, dy, pr.A, g.dA, n_dn(&pr));
    expect_grad(c, "B", &pr, dy, pr.Bm, g.dB, n_bgnl(&pr));
    expect_grad(c, "C", &pr, dy, pr.Cm, g.dC, n_bgnl(&pr));
    if (pr.Dv) expect_grad(c, "D", &pr, dy, pr.Dv, g.dD, pr.p.dim);
    if (pr.z) expect_grad(c, "z", &pr, dy, pr.z, g.dz, n_bdl(&pr));
    if (pr.bias) expect_grad(c, "delta_bias", &pr, dy, pr.bias, g.dbias, pr.p.dim);
    free_grads(&g);
    free(dy);
    free_problem(&pr);
}

static void test_gradients_finite_differences(void) {
    static const config configs[] = {
        /* name                             B  D  L  N  G  sp D  z  bias */
        {"fd all options, softplus", 2, 4, 7, 3, 2, 1, 1, 1, 1},
        {"fd all options, no softplus", 2, 4, 7, 3, 2, 0, 1, 1, 1},
        {"fd no optionals, no softplus", 2, 4, 7, 3, 2, 0, 0, 0, 0},
        {"fd no optionals, softplus", 2, 4, 7, 3, 2, 1, 0, 0, 0},
        {"fd G = 1", 1, 4, 5, 2, 1, 1, 1, 1, 1},
        {"fd G = D", 1, 4, 5, 2, 4, 1, 1, 1, 1},
        {"fd L = 1", 2, 2, 1, 3, 1, 1, 1, 1, 1},
        {"fd N = 1", 2, 2, 6, 1, 2, 1, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        check_gradients(&configs[i], 2000 + i);
}

// ----------------------------------------------------------------------------
// extreme values

/* A = -50, delta ~ 5, no softplus: the history decays by exp(-250) per step,
 * so h_t = delta_t B_t u_t (to fp64 precision) and
 * y_t = (C_t . B_t delta_t u_t + D u_t) * silu(z_t). */
static void test_total_decay(void) {
    const config c = {"total decay", 2, 3, 6, 4, 1, 0, 1, 1, 0};
    rng_seed(3001);
    problem pr = make_problem(&c);
    const int64_t D = c.D, L = c.L, N = c.N;
    for (int64_t i = 0; i < n_dn(&pr); i++) pr.A[i] = -50.0;
    for (int64_t i = 0; i < n_bdl(&pr); i++) pr.delta[i] = rng_uniform(4.5, 5.5);
    double* y = zeros_f64(n_bdl(&pr));
    double* fs = zeros_f64(n_bdn(&pr));
    double* y_want = zeros_f64(n_bdl(&pr));
    double* fs_want = zeros_f64(n_bdn(&pr));
    mb_selective_scan_inputs in = inputs_of(&pr);
    CHECK_OK(mb_selective_scan_fwd_cpu(&pr.p, &in, y, fs));
    for (int64_t b = 0; b < c.B; b++)
        for (int64_t d = 0; d < D; d++)
            for (int64_t t = 0; t < L; t++) {
                int64_t i = (b * D + d) * L + t;
                double acc = pr.Dv[d] * pr.u[i];
                for (int64_t n = 0; n < N; n++) {
                    double h = pr.delta[i] * pr.Bm[(b * N + n) * L + t] * pr.u[i];
                    acc += pr.Cm[(b * N + n) * L + t] * h;
                    if (t == L - 1) fs_want[(b * D + d) * N + n] = h;
                }
                y_want[i] = acc * pr.z[i] / (1.0 + exp(-pr.z[i]));
            }
    expect_close_f64("total decay: y == (C.B delta u + D u) silu(z)", y, y_want, n_bdl(&pr),
                     TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    expect_close_f64("total decay: final_state == delta B u", fs, fs_want, n_bdn(&pr),
                     TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    free(y);
    free(fs);
    free(y_want);
    free(fs_want);
    free_problem(&pr);
}

/* Forward vs brute force and a finite backward for pre-activations far out
 * on either side of softplus (no overflow, no NaN). */
static void check_extreme_delta(const char* name, double lo, double hi, uint64_t seed) {
    const config c = {name, 2, 4, 6, 3, 2, 1, 1, 1, 1};
    rng_seed(seed);
    problem pr = make_problem(&c);
    for (int64_t i = 0; i < n_bdl(&pr); i++) pr.delta[i] = rng_uniform(lo, hi);
    double* y = zeros_f64(n_bdl(&pr));
    double* fs = zeros_f64(n_bdn(&pr));
    double* y_ref = zeros_f64(n_bdl(&pr));
    double* fs_ref = zeros_f64(n_bdn(&pr));
    mb_selective_scan_inputs in = inputs_of(&pr);
    CHECK_OK(mb_selective_scan_fwd_cpu(&pr.p, &in, y, fs));
    brute_forward(&pr, y_ref, fs_ref);
    CHECK(all_finite(y, n_bdl(&pr)) && all_finite(fs, n_bdn(&pr)), "%s: non-finite forward",
          name);
    expect_close_f64(name, y, y_ref, n_bdl(&pr), TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    expect_close_f64(name, fs, fs_ref, n_bdn(&pr), TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    double* dy = rand_normal_f64(n_bdl(&pr), 1.0);
    grads64 g = alloc_grads(&pr);
    mb_selective_scan_grads out = grads_of(&g);
    CHECK_OK(mb_selective_scan_bwd_cpu(&pr.p, &in, dy, &out));
    int finite = all_finite(g.du, n_bdl(&pr)) && all_finite(g.ddelta, n_bdl(&pr)) &&
                 all_finite(g.dA, n_dn(&pr)) && all_finite(g.dB, n_bgnl(&pr)) &&
                 all_finite(g.dC, n_bgnl(&pr)) && all_finite(g.dD, c.D) &&
                 all_finite(g.dz, n_bdl(&pr)) && all_finite(g.dbias, c.D);
    CHECK(finite, "%s: non-finite gradient", name);
    free_grads(&g);
    free(dy);
    free(y);
    free(fs);
    free(y_ref);
    free(fs_ref);
    free_problem(&pr);
}

static void test_extreme_delta(void) {
    check_extreme_delta("large delta (~50, softplus)", 49.0, 51.0, 3101);
    check_extreme_delta("huge delta (~800, softplus)", 790.0, 810.0, 3102);
    check_extreme_delta("very negative delta (~-40, softplus)", -41.0, -39.0, 3103);
}

// ----------------------------------------------------------------------------
// fp32 and bf16 storage vs the fp64 path on the same rounded inputs

/* Compare a stored output of `dtype` against the fp64 one. */
static void expect_stored(const char* what, const void* got, mb_dtype dtype, const double* want,
                          int64_t n, double rtol, double atol) {
    double* g = tb_unpack(got, n, dtype);
    expect_close_f64(what, g, want, n, rtol, atol);
    free(g);
}

static void check_dtype_forward(const problem* pr, mb_dtype act, double rtol, double atol) {
    mb_dtype par = mb_param_dtype(act);
    double* y64 = zeros_f64(n_bdl(pr));
    double* fs64 = zeros_f64(n_bdn(pr));
    mb_selective_scan_inputs in64 = inputs_of(pr);
    CHECK_OK(mb_selective_scan_fwd_cpu(&pr->p, &in64, y64, fs64));
    mb_selective_scan_params p = pr->p;
    p.dtype = act;
    void* bufs[8] = {tb_pack(pr->u, n_bdl(pr), act), tb_pack(pr->delta, n_bdl(pr), act),
                     tb_pack(pr->A, n_dn(pr), par), tb_pack(pr->Bm, n_bgnl(pr), act),
                     tb_pack(pr->Cm, n_bgnl(pr), act), tb_pack(pr->Dv, p.dim, par),
                     tb_pack(pr->z, n_bdl(pr), act), tb_pack(pr->bias, p.dim, par)};
    mb_selective_scan_inputs in = {bufs[0], bufs[1], bufs[2], bufs[3],
                                   bufs[4], bufs[5], bufs[6], bufs[7]};
    void* y = tb_guarded_alloc((size_t)n_bdl(pr) * mb_dtype_size(act));
    void* fs = tb_guarded_alloc((size_t)n_bdn(pr) * mb_dtype_size(par));
    CHECK_OK(mb_selective_scan_fwd_cpu(&p, &in, y, fs));
    char what[96];
    snprintf(what, sizeof what, "%s storage: y vs f64", mb_dtype_name(act));
    expect_stored(what, y, act, y64, n_bdl(pr), rtol, atol);
    snprintf(what, sizeof what, "%s storage: final_state vs f64", mb_dtype_name(act));
    expect_stored(what, fs, par, fs64, n_bdn(pr), rtol, atol);
    for (int i = 0; i < 8; i++) free(bufs[i]);
    tb_guarded_free(y);
    tb_guarded_free(fs);
    free(y64);
    free(fs64);
}

static void check_dtype_backward(const problem* pr, const double* dy, mb_dtype act, double rtol,
                                 double atol) {
    mb_dtype par = mb_param_dtype(act);
    grads64 g64 = alloc_grads(pr);
    mb_selective_scan_inputs in64 = inputs_of(pr);
    mb_selective_scan_grads out64 = grads_of(&g64);
    CHECK_OK(mb_selective_scan_bwd_cpu(&pr->p, &in64, dy, &out64));
    mb_selective_scan_params p = pr->p;
    p.dtype = act;
    void* bufs[9] = {tb_pack(pr->u, n_bdl(pr), act), tb_pack(pr->delta, n_bdl(pr), act),
                     tb_pack(pr->A, n_dn(pr), par), tb_pack(pr->Bm, n_bgnl(pr), act),
                     tb_pack(pr->Cm, n_bgnl(pr), act), tb_pack(pr->Dv, p.dim, par),
                     tb_pack(pr->z, n_bdl(pr), act), tb_pack(pr->bias, p.dim, par),
                     tb_pack(dy, n_bdl(pr), act)};
    mb_selective_scan_inputs in = {bufs[0], bufs[1], bufs[2], bufs[3],
                                   bufs[4], bufs[5], bufs[6], bufs[7]};
    struct { const char* name; const double* want; int64_t n; mb_dtype dt; void* got; } gs[8] = {
        {"du", g64.du, n_bdl(pr), act, NULL},    {"ddelta", g64.ddelta, n_bdl(pr), act, NULL},
        {"dA", g64.dA, n_dn(pr), par, NULL},     {"dB", g64.dB, n_bgnl(pr), act, NULL},
        {"dC", g64.dC, n_bgnl(pr), act, NULL},   {"dD", g64.dD, p.dim, par, NULL},
        {"dz", g64.dz, n_bdl(pr), act, NULL},    {"ddelta_bias", g64.dbias, p.dim, par, NULL}};
    for (int i = 0; i < 8; i++)
        if (gs[i].want) gs[i].got = tb_guarded_alloc((size_t)gs[i].n * mb_dtype_size(gs[i].dt));
    mb_selective_scan_grads out = {gs[0].got, gs[1].got, gs[2].got, gs[3].got,
                                   gs[4].got, gs[5].got, gs[6].got, gs[7].got};
    CHECK_OK(mb_selective_scan_bwd_cpu(&p, &in, bufs[8], &out));
    for (int i = 0; i < 8; i++) {
        if (!gs[i].want) continue;
        char what[96];
        snprintf(what, sizeof what, "%s storage: %s vs f64", mb_dtype_name(act), gs[i].name);
        expect_stored(what, gs[i].got, gs[i].dt, gs[i].want, gs[i].n, rtol, atol);
        tb_guarded_free(gs[i].got);
    }
    for (int i = 0; i < 9; i++) free(bufs[i]);
    free_grads(&g64);
}

/* Round the fp64 inputs to what `act` storage holds (A, D, bias to fp32, the
 * parameter dtype), then compare the `act` call against the fp64 call. */
static void check_dtype_path(mb_dtype act, double rtol, double atol, uint64_t seed) {
    const config c = {"dtype", 2, 4, 16, 8, 2, 1, 1, 1, 1};
    rng_seed(seed);
    problem pr = make_problem(&c);
    mb_dtype par = mb_param_dtype(act);
    tb_round_array(pr.u, n_bdl(&pr), act);
    tb_round_array(pr.delta, n_bdl(&pr), act);
    tb_round_array(pr.Bm, n_bgnl(&pr), act);
    tb_round_array(pr.Cm, n_bgnl(&pr), act);
    tb_round_array(pr.z, n_bdl(&pr), act);
    tb_round_array(pr.A, n_dn(&pr), par);
    tb_round_array(pr.Dv, c.D, par);
    tb_round_array(pr.bias, c.D, par);
    double* dy = rand_normal_f64(n_bdl(&pr), 1.0);
    tb_round_array(dy, n_bdl(&pr), act);
    check_dtype_forward(&pr, act, rtol, atol);
    check_dtype_backward(&pr, dy, act, rtol, atol);
    free(dy);
    free_problem(&pr);
}

static void test_dtype_paths(void) {
    check_dtype_path(MB_DTYPE_F32, TOL_F32_STORAGE_RTOL, TOL_F32_STORAGE_ATOL, 4001);
    check_dtype_path(MB_DTYPE_BF16, TOL_BF16_STORAGE_RTOL, TOL_BF16_STORAGE_ATOL, 4002);
}

// ----------------------------------------------------------------------------
// what the reference writes: outputs only, within bounds, nothing on failure

/* Forward at `act` storage: tails of y and final_state untouched, inputs
 * untouched, final_state = NULL gives the same y. */
static void check_forward_writes(mb_dtype act, uint64_t seed) {
    const config c = {"writes", 2, 4, 5, 3, 2, 1, 1, 1, 1};
    rng_seed(seed);
    problem pr = make_problem(&c);
    mb_dtype par = mb_param_dtype(act);
    mb_selective_scan_params p = pr.p;
    p.dtype = act;
    void* bufs[8] = {tb_pack(pr.u, n_bdl(&pr), act), tb_pack(pr.delta, n_bdl(&pr), act),
                     tb_pack(pr.A, n_dn(&pr), par), tb_pack(pr.Bm, n_bgnl(&pr), act),
                     tb_pack(pr.Cm, n_bgnl(&pr), act), tb_pack(pr.Dv, c.D, par),
                     tb_pack(pr.z, n_bdl(&pr), act), tb_pack(pr.bias, c.D, par)};
    int64_t sizes[8] = {n_bdl(&pr), n_bdl(&pr), n_dn(&pr), n_bgnl(&pr),
                        n_bgnl(&pr), c.D, n_bdl(&pr), c.D};
    mb_dtype types[8] = {act, act, par, act, act, par, act, par};
    unsigned char* copies[8];
    for (int i = 0; i < 8; i++) {
        size_t bytes = (size_t)sizes[i] * mb_dtype_size(types[i]);
        copies[i] = malloc(bytes);
        if (!copies[i]) { fprintf(stderr, "out of memory\n"); exit(2); }
        memcpy(copies[i], bufs[i], bytes);
    }
    mb_selective_scan_inputs in = {bufs[0], bufs[1], bufs[2], bufs[3],
                                   bufs[4], bufs[5], bufs[6], bufs[7]};
    int64_t y_bytes = n_bdl(&pr) * (int64_t)mb_dtype_size(act);
    int64_t fs_bytes = n_bdn(&pr) * (int64_t)mb_dtype_size(par);
    unsigned char* y = tb_guarded_alloc((size_t)y_bytes);
    unsigned char* y2 = tb_guarded_alloc((size_t)y_bytes);
    unsigned char* fs = tb_guarded_alloc((size_t)fs_bytes);
    CHECK_OK(mb_selective_scan_fwd_cpu(&p, &in, y, fs));
    CHECK(mb_last_error()[0] == '\0', "last error not cleared: %s", mb_last_error());
    CHECK(tb_poisoned(y, (size_t)(y_bytes), (size_t)(y_bytes) + TB_GUARD_BYTES), "%s: wrote past y",
          mb_dtype_name(act));
    CHECK(tb_poisoned(fs, (size_t)(fs_bytes), (size_t)(fs_bytes) + TB_GUARD_BYTES), "%s: wrote past final_state",
          mb_dtype_name(act));
    for (int i = 0; i < 8; i++)
        CHECK(memcmp(copies[i], bufs[i], (size_t)sizes[i] * mb_dtype_size(types[i])) == 0,
              "%s: forward modified input %d", mb_dtype_name(act), i);
    CHECK_OK(mb_selective_scan_fwd_cpu(&p, &in, y2, NULL));
    CHECK(memcmp(y, y2, (size_t)y_bytes) == 0, "%s: y differs with final_state = NULL",
          mb_dtype_name(act));
    CHECK(tb_poisoned(y2, (size_t)(y_bytes), (size_t)(y_bytes) + TB_GUARD_BYTES), "%s: wrote past y (no state)",
          mb_dtype_name(act));
    for (int i = 0; i < 8; i++) {
        free(bufs[i]);
        free(copies[i]);
    }
    tb_guarded_free(y);
    tb_guarded_free(y2);
    tb_guarded_free(fs);
    free_problem(&pr);
}

/* Backward at fp64: every gradient's tail untouched, inputs and dy untouched. */
static void check_backward_writes(uint64_t seed) {
    const config c = {"writes bwd", 2, 4, 5, 3, 2, 1, 1, 1, 1};
    rng_seed(seed);
    problem pr = make_problem(&c);
    problem copy = make_problem(&c); /* same shapes; overwritten below */
    memcpy(copy.u, pr.u, (size_t)n_bdl(&pr) * 8);
    memcpy(copy.delta, pr.delta, (size_t)n_bdl(&pr) * 8);
    memcpy(copy.Bm, pr.Bm, (size_t)n_bgnl(&pr) * 8);
    memcpy(copy.Cm, pr.Cm, (size_t)n_bgnl(&pr) * 8);
    double* dy = rand_normal_f64(n_bdl(&pr), 1.0);
    double* dy_copy = copy_f64(dy, n_bdl(&pr));
    int64_t sizes[8] = {n_bdl(&pr), n_bdl(&pr), n_dn(&pr), n_bgnl(&pr),
                        n_bgnl(&pr), c.D, n_bdl(&pr), c.D};
    unsigned char* g[8];
    for (int i = 0; i < 8; i++) g[i] = tb_guarded_alloc((size_t)sizes[i] * 8);
    mb_selective_scan_inputs in = inputs_of(&pr);
    mb_selective_scan_grads out = {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]};
    CHECK_OK(mb_selective_scan_bwd_cpu(&pr.p, &in, dy, &out));
    for (int i = 0; i < 8; i++)
        CHECK(tb_poisoned(g[i], (size_t)(sizes[i] * 8), (size_t)(sizes[i] * 8) + TB_GUARD_BYTES),
              "backward wrote past gradient %d", i);
    CHECK(memcmp(dy, dy_copy, (size_t)n_bdl(&pr) * 8) == 0, "backward modified dy");
    CHECK(memcmp(pr.u, copy.u, (size_t)n_bdl(&pr) * 8) == 0 &&
              memcmp(pr.delta, copy.delta, (size_t)n_bdl(&pr) * 8) == 0 &&
              memcmp(pr.Bm, copy.Bm, (size_t)n_bgnl(&pr) * 8) == 0 &&
              memcmp(pr.Cm, copy.Cm, (size_t)n_bgnl(&pr) * 8) == 0,
          "backward modified an input");
    for (int i = 0; i < 8; i++) tb_guarded_free(g[i]);
    free(dy);
    free(dy_copy);
    free_problem(&copy);
    free_problem(&pr);
}

/* Refused calls leave every output untouched. */
static void check_failure_writes_nothing(uint64_t seed) {
    const config c = {"failure", 1, 2, 3, 2, 1, 1, 1, 1, 1};
    rng_seed(seed);
    problem pr = make_problem(&c);
    mb_selective_scan_inputs in = inputs_of(&pr);
    int64_t y_bytes = n_bdl(&pr) * 8;
    unsigned char* y = tb_guarded_alloc((size_t)y_bytes);
    unsigned char* fs = tb_guarded_alloc((size_t)n_bdn(&pr) * 8);
    mb_selective_scan_params bad = pr.p;
    bad.dstate = MB_MAX_DSTATE + 1;
    CHECK(mb_selective_scan_fwd_cpu(&bad, &in, y, fs) == MB_ERR_DSTATE_TOO_LARGE,
          "dstate too large not refused");
    bad = pr.p;
    bad.dtype = MB_DTYPE_F16;
    CHECK(mb_selective_scan_fwd_cpu(&bad, &in, y, fs) == MB_ERR_DTYPE, "f16 not refused");
    CHECK(mb_last_error()[0] != '\0', "no error message after a refused call");
    CHECK(tb_poisoned(y, (size_t)(0), (size_t)(y_bytes) + TB_GUARD_BYTES), "refused forward wrote y");
    CHECK(tb_poisoned(fs, 0, (size_t)n_bdn(&pr) * 8 + TB_GUARD_BYTES), "refused forward wrote state");
    /* backward: z given but dz missing */
    unsigned char* du = tb_guarded_alloc((size_t)y_bytes);
    double* dy = rand_normal_f64(n_bdl(&pr), 1.0);
    grads64 g = alloc_grads(&pr);
    mb_selective_scan_grads out = grads_of(&g);
    out.du = du;
    out.dz = NULL;
    CHECK(mb_selective_scan_bwd_cpu(&pr.p, &in, dy, &out) == MB_ERR_NULL_POINTER,
          "missing dz not refused");
    CHECK(tb_poisoned(du, (size_t)(0), (size_t)(y_bytes) + TB_GUARD_BYTES), "refused backward wrote du");
    free_grads(&g);
    free(dy);
    tb_guarded_free(du);
    tb_guarded_free(y);
    tb_guarded_free(fs);
    free_problem(&pr);
}

static void test_writes(void) {
    check_forward_writes(MB_DTYPE_F64, 5001);
    check_forward_writes(MB_DTYPE_F32, 5002);
    check_forward_writes(MB_DTYPE_BF16, 5003);
    check_backward_writes(5004);
    check_failure_writes_nothing(5005);
}

// ----------------------------------------------------------------------------
// scratch memory of the backward: O(inputs + L*N), not O(B*D*L*N)

static void test_backward_memory(void) {
    const config c = {"memory", 2, 32, 64, 64, 2, 1, 1, 1, 1};
    rng_seed(6001);
    problem pr = make_problem(&c);
    double* dy = rand_normal_f64(n_bdl(&pr), 1.0);
    grads64 g = alloc_grads(&pr);
    mb_selective_scan_inputs in = inputs_of(&pr);
    mb_selective_scan_grads out = grads_of(&g);
    mb_cpu_memory_reset_peak();
    int64_t before = mb_cpu_memory_peak_bytes();
    CHECK_OK(mb_selective_scan_bwd_cpu(&pr.p, &in, dy, &out));
    int64_t used = mb_cpu_memory_peak_bytes() - before;
    /* fp64 copies of u, delta, z, dy, A, B, C, D, bias and of their gradients,
     * plus one channel's L*N states and O(L + N) */
    int64_t io = 7 * n_bdl(&pr) + 2 * n_dn(&pr) + 4 * n_bgnl(&pr) + 4 * c.D;
    int64_t bound = 8 * (io + c.L * c.N + 8 * (c.L + c.N));
    int64_t full_states = 8 * c.B * c.D * c.L * c.N;
    CHECK(used > 0 && used <= bound, "backward scratch %lld bytes, bound %lld", (long long)used,
          (long long)bound);
    CHECK(bound < full_states, "test shape does not separate O(B*D*L*N) (%lld >= %lld)",
          (long long)bound, (long long)full_states);
    free_grads(&g);
    free(dy);
    free_problem(&pr);
}

// ----------------------------------------------------------------------------

int main(void) {
    test_forward_brute_force();
    test_gradients_finite_differences();
    test_total_decay();
    test_extreme_delta();
    test_dtype_paths();
    test_writes();
    test_backward_memory();
    return test_main_result("test_selective_scan");
}
