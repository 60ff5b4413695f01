/*
 * test_ssd.c -- the SSD (Mamba-2) CPU reference, mb_ssd_{fwd,bwd}_cpu:
 *   - the three forward forms (recurrent, chunked for many chunk sizes,
 *     quadratic) agree with each other and with a naive recurrence written
 *     here from the definition, y and final state, in fp64;
 *   - the initial state is honoured (splitting a sequence and carrying the
 *     state across the split gives the unsplit result);
 *   - the duality with Mamba-1: SSD equals the selective scan whose A is the
 *     head's scalar repeated over the state, forward and backward;
 *   - gradients of every input match central finite differences in fp64;
 *   - edge cases (L = 1, groups, vanishing and huge decays, N = 1 and
 *     N = MB_MAX_DSTATE, chunk 1 and chunk > L);
 *   - the fp32 and bf16 storage paths against fp64 on the same rounded inputs;
 *   - only the outputs are written, nothing on failure, bounded scratch.
 *
 * Dimension legend: B batch, L sequence length, H heads, P head dim,
 * N state size, G groups of B/C (head h reads group h / (H / G)).
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
// a test case: parameters and fresh fp64 data

enum { OPT_D = 1, OPT_Z = 2, OPT_BIAS = 4, OPT_H0 = 8, OPT_ALL = 15, OPT_NONE = 0 };

typedef struct {
    mb_ssd_params p;
    int opts;        /* which optional inputs are passed (OPT_*) */
    double* x;       /* (B, L, H, P) */
    double* dt;      /* (B, L, H) */
    double* A;       /* (H) */
    double* B;       /* (B, L, G, N) */
    double* C;       /* (B, L, G, N) */
    double* D;       /* (H) */
    double* z;       /* (B, L, H, P) */
    double* dt_bias; /* (H) */
    double* h0;      /* (B, H, P, N) */
} ssd_case;

static int64_t n_x(const mb_ssd_params* p) {
    return p->batch * p->seqlen * p->nheads * p->headdim;
}
static int64_t n_dt(const mb_ssd_params* p) { return p->batch * p->seqlen * p->nheads; }
static int64_t n_bc(const mb_ssd_params* p) {
    return p->batch * p->seqlen * p->ngroups * p->dstate;
}
static int64_t n_st(const mb_ssd_params* p) {
    return p->batch * p->nheads * p->headdim * p->dstate;
}

static mb_ssd_params make_params(int64_t B, int64_t L, int64_t H, int64_t P, int64_t N,
                                 int64_t G, int softplus) {
    mb_ssd_params p;
    memset(&p, 0, sizeof p);
    p.batch = B;
    p.seqlen = L;
    p.nheads = H;
    p.headdim = P;
    p.dstate = N;
    p.ngroups = G;
    p.chunk_size = 4;
    p.dtype = MB_DTYPE_F64;
    p.dt_softplus = softplus;
    p.form = MB_SSD_CHUNKED;
    return p;
}

/* Fresh random data for every tensor (optional ones too, so that cases with
 * the same seed share their data whatever the options). */
static ssd_case make_case(uint64_t seed, mb_ssd_params p, int opts) {
    ssd_case c;
    c.p = p;
    c.opts = opts;
    rng_seed(seed);
    c.x = rand_normal_f64(n_x(&p), 1.0);
    c.dt = p.dt_softplus ? rand_uniform_f64(n_dt(&p), -3.0, 1.0)
                         : rand_uniform_f64(n_dt(&p), 0.01, 0.5);
    // A = -uniform(0.5, 2)
    c.A = rand_uniform_f64(p.nheads, -2.0, -0.5);
    c.B = rand_normal_f64(n_bc(&p), 1.0);
    c.C = rand_normal_f64(n_bc(&p), 1.0);
    c.D = rand_normal_f64(p.nheads, 1.0);
    c.z = rand_normal_f64(n_x(&p), 1.0);
    c.dt_bias = p.dt_softplus ? rand_uniform_f64(p.nheads, -0.5, 0.5)
                              : rand_uniform_f64(p.nheads, 0.01, 0.1);
    c.h0 = rand_normal_f64(n_st(&p), 1.0);
    return c;
}

static void free_case(ssd_case* c) {
    free(c->x), free(c->dt), free(c->A), free(c->B), free(c->C);
    free(c->D), free(c->z), free(c->dt_bias), free(c->h0);
}

static mb_ssd_inputs inputs_of(const ssd_case* c) {
    mb_ssd_inputs in;
    in.x = c->x;
    in.dt = c->dt;
    in.A = c->A;
    in.B = c->B;
    in.C = c->C;
    in.D = (c->opts & OPT_D) ? c->D : NULL;
    in.z = (c->opts & OPT_Z) ? c->z : NULL;
    in.dt_bias = (c->opts & OPT_BIAS) ? c->dt_bias : NULL;
    in.initial_state = (c->opts & OPT_H0) ? c->h0 : NULL;
    return in;
}

/* The fp64 forward of a case with a given form and chunk size. */
static mb_status run_fwd(const ssd_case* c, mb_ssd_form form, int64_t chunk,
                         double* y,  /* (B, L, H, P) out */
                         double* fs  /* (B, H, P, N) out, or NULL */) {
    mb_ssd_params p = c->p;
    p.form = form;
    p.chunk_size = chunk;
    mb_ssd_inputs in = inputs_of(c);
    return mb_ssd_fwd_cpu(&p, &in, y, fs);
}

static const char* form_name(mb_ssd_form form) {
    switch (form) {
    case MB_SSD_CHUNKED: return "chunked";
    case MB_SSD_RECURRENT: return "recurrent";
    case MB_SSD_QUADRATIC: return "quadratic";
    }
    return "?";
}

// ----------------------------------------------------------------------------
// the test's own oracle: the recurrence, written straight from the definition

static void naive_ssd_fwd(const ssd_case* c,
                          double* y,  /* (B, L, H, P) out */
                          double* fs  /* (B, H, P, N) out */) {
    const mb_ssd_params* q = &c->p;
    int64_t L = q->seqlen, H = q->nheads, P = q->headdim, N = q->dstate, G = q->ngroups;
    for (int64_t b = 0; b < q->batch; b++) {
        for (int64_t h = 0; h < H; h++) {
            int64_t g = h / (H / G);
            double* st = fs + (b * H + h) * P * N; /* (P, N) */
            const double* h0 = c->h0 + (b * H + h) * P * N; /* (P, N) */
            for (int64_t k = 0; k < P * N; k++) st[k] = (c->opts & OPT_H0) ? h0[k] : 0.0;
            double bias = (c->opts & OPT_BIAS) ? c->dt_bias[h] : 0.0;
            for (int64_t t = 0; t < L; t++) {
                double v = c->dt[(b * L + t) * H + h] + bias;
                double dtv = q->dt_softplus ? log(1.0 + exp(v)) : v;
                double a = exp(dtv * c->A[h]);
                const double* Bt = c->B + ((b * L + t) * G + g) * N;
                const double* Ct = c->C + ((b * L + t) * G + g) * N;
                for (int64_t p = 0; p < P; p++) {
                    int64_t i = ((b * L + t) * H + h) * P + p;
                    double acc = 0.0;
                    for (int64_t n = 0; n < N; n++) {
                        st[p * N + n] = a * st[p * N + n] + dtv * c->x[i] * Bt[n];
                        acc += st[p * N + n] * Ct[n];
                    }
                    if (c->opts & OPT_D) acc += c->D[h] * c->x[i];
                    if (c->opts & OPT_Z) acc *= c->z[i] / (1.0 + exp(-c->z[i]));
                    y[i] = acc;
                }
            }
        }
    }
}

/* Run `form` (with `chunk`) and compare y and the final state with the oracle. */
static void check_form_against_naive(const char* label, const ssd_case* c, mb_ssd_form form,
                                     int64_t chunk, const double* y_ref, const double* fs_ref) {
    double* y = zeros_f64(n_x(&c->p));
    double* fs = zeros_f64(n_st(&c->p));
    char what[256];
    CHECK_OK(run_fwd(c, form, chunk, y, fs));
    snprintf(what, sizeof what, "%s %s chunk %lld: y", label, form_name(form), (long long)chunk);
    expect_close_f64(what, y, y_ref, n_x(&c->p), TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    snprintf(what, sizeof what, "%s %s chunk %lld: final_state", label, form_name(form),
             (long long)chunk);
    expect_close_f64(what, fs, fs_ref, n_st(&c->p), TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    free(y);
    free(fs);
}

/* Every form, and the chunked one for chunk sizes 1, 2, 3, 4, 16 and > L,
 * against the oracle. */
static void check_all_forms(const char* label, const ssd_case* c) {
    int64_t L = c->p.seqlen;
    double* y_ref = zeros_f64(n_x(&c->p));
    double* fs_ref = zeros_f64(n_st(&c->p));
    naive_ssd_fwd(c, y_ref, fs_ref);
    check_form_against_naive(label, c, MB_SSD_RECURRENT, 4, y_ref, fs_ref);
    check_form_against_naive(label, c, MB_SSD_QUADRATIC, 4, y_ref, fs_ref);
    const int64_t chunks[] = {1, 2, 3, 4, 16, L + 7};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++)
        check_form_against_naive(label, c, MB_SSD_CHUNKED, chunks[k], y_ref, fs_ref);
    free(y_ref);
    free(fs_ref);
}

// ----------------------------------------------------------------------------
// the three forms agree

static void test_forms_agree(void) {
    const int64_t lengths[] = {13, 29};
    const int options[] = {OPT_ALL, OPT_ALL & ~OPT_H0, OPT_H0, OPT_NONE};
    uint64_t seed = 100;
    for (int li = 0; li < 2; li++) {
        for (int softplus = 0; softplus <= 1; softplus++) {
            for (int oi = 0; oi < 4; oi++) {
                mb_ssd_params p = make_params(2, lengths[li], 4, 3, 5, 2, softplus);
                ssd_case c = make_case(seed++, p, options[oi]);
                char label[128];
                snprintf(label, sizeof label, "agree L=%lld softplus=%d opts=%d",
                         (long long)lengths[li], softplus, options[oi]);
                check_all_forms(label, &c);
                free_case(&c);
            }
        }
    }
}

// ----------------------------------------------------------------------------
// the initial state is honoured

/* Rows t0 .. t0+len-1 of a (B, L, K) tensor, as a new (B, len, K) tensor. */
static double* slice_time(const double* src, int64_t B, int64_t L, int64_t K, int64_t t0,
                          int64_t len) {
    double* out = zeros_f64(B * len * K);
    for (int64_t b = 0; b < B; b++)
        memcpy(out + b * len * K, src + (b * L + t0) * K, (size_t)(len * K) * sizeof(double));
    return out;
}

/* Tokens t0 .. t0+len-1 of a case, started from the state h0 (NULL = 0). */
static ssd_case sub_case(const ssd_case* c, int64_t t0, int64_t len, const double* h0) {
    const mb_ssd_params* p = &c->p;
    int64_t B = p->batch, L = p->seqlen, HP = p->nheads * p->headdim;
    int64_t GN = p->ngroups * p->dstate;
    ssd_case s = *c;
    s.p.seqlen = len;
    s.x = slice_time(c->x, B, L, HP, t0, len);
    s.z = slice_time(c->z, B, L, HP, t0, len);
    s.dt = slice_time(c->dt, B, L, p->nheads, t0, len);
    s.B = slice_time(c->B, B, L, GN, t0, len);
    s.C = slice_time(c->C, B, L, GN, t0, len);
    s.A = copy_f64(c->A, p->nheads);
    s.D = copy_f64(c->D, p->nheads);
    s.dt_bias = copy_f64(c->dt_bias, p->nheads);
    s.h0 = h0 ? copy_f64(h0, n_st(p)) : zeros_f64(n_st(p));
    s.opts = h0 ? (c->opts | OPT_H0) : (c->opts & ~OPT_H0);
    return s;
}

/* Run [0, L1) from the case's own initial state, then [L1, L) from the state
 * that left the first part: the pieces must equal the unsplit run. */
static void check_split(const ssd_case* c, mb_ssd_form form, int64_t L1) {
    const mb_ssd_params* p = &c->p;
    int64_t B = p->batch, L = p->seqlen, HP = p->nheads * p->headdim;
    double* y = zeros_f64(n_x(p));
    double* fs = zeros_f64(n_st(p));
    CHECK_OK(run_fwd(c, form, 4, y, fs));
    ssd_case first = sub_case(c, 0, L1, (c->opts & OPT_H0) ? c->h0 : NULL);
    double* y1 = zeros_f64(n_x(&first.p));
    double* fs1 = zeros_f64(n_st(&first.p));
    CHECK_OK(run_fwd(&first, form, 4, y1, fs1));
    ssd_case second = sub_case(c, L1, L - L1, fs1);
    double* y2 = zeros_f64(n_x(&second.p));
    double* fs2 = zeros_f64(n_st(&second.p));
    CHECK_OK(run_fwd(&second, form, 4, y2, fs2));

    double* want1 = slice_time(y, B, L, HP, 0, L1);
    double* want2 = slice_time(y, B, L, HP, L1, L - L1);
    char what[128];
    snprintf(what, sizeof what, "split %s: y before the split", form_name(form));
    expect_close_f64(what, y1, want1, n_x(&first.p), TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    snprintf(what, sizeof what, "split %s: y after the split", form_name(form));
    expect_close_f64(what, y2, want2, n_x(&second.p), TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    snprintf(what, sizeof what, "split %s: final_state", form_name(form));
    expect_close_f64(what, fs2, fs, n_st(p), TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    free(want1), free(want2), free(y1), free(fs1), free(y2), free(fs2), free(y), free(fs);
    free_case(&first);
    free_case(&second);
}

static void test_initial_state(void) {
    const mb_ssd_form forms[] = {MB_SSD_RECURRENT, MB_SSD_CHUNKED, MB_SSD_QUADRATIC};
    mb_ssd_params p = make_params(2, 13, 4, 3, 5, 2, 1);
    ssd_case with = make_case(200, p, OPT_ALL);
    ssd_case without = make_case(200, p, OPT_ALL & ~OPT_H0); /* the same data, h0 = 0 */
    for (int f = 0; f < 3; f++) {
        // h0 != 0 must change the output
        double* y_with = zeros_f64(n_x(&p));
        double* y_without = zeros_f64(n_x(&p));
        CHECK_OK(run_fwd(&with, forms[f], 4, y_with, NULL));
        CHECK_OK(run_fwd(&without, forms[f], 4, y_without, NULL));
        double diff = 0.0;
        for (int64_t i = 0; i < n_x(&p); i++) diff = fmax(diff, fabs(y_with[i] - y_without[i]));
        CHECK(diff > 1e-3, "%s: the initial state does not change y (max diff %g)",
              form_name(forms[f]), diff);
        free(y_with);
        free(y_without);
        // carrying the state across a split (at 5: mid-chunk) gives the unsplit run
        check_split(&with, forms[f], 5);
        check_split(&with, forms[f], 8);
        check_split(&without, forms[f], 7);
    }
    free_case(&with);
    free_case(&without);
}

// ----------------------------------------------------------------------------
// the duality with Mamba-1: SSD == selective scan with A repeated over the state

/* (B, L, X) -> (B, X, L): the time axis moved last. */
static double* move_time_last(const double* src, int64_t B, int64_t L, int64_t X) {
    double* out = zeros_f64(B * L * X);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < L; t++)
            for (int64_t k = 0; k < X; k++) out[(b * X + k) * L + t] = src[(b * L + t) * X + k];
    return out;
}

/* (B, L, H, P) -> scan channels (B, D, L) with d = h P + p. */
static double* blhp_to_bdl(const double* src, const mb_ssd_params* p) {
    return move_time_last(src, p->batch, p->seqlen, p->nheads * p->headdim);
}

/* (B, L, H) broadcast over p -> (B, D, L). */
static double* blh_to_bdl(const double* src, const mb_ssd_params* p) {
    int64_t L = p->seqlen, H = p->nheads, P = p->headdim;
    double* out = zeros_f64(n_x(p));
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t t = 0; t < L; t++)
            for (int64_t d = 0; d < H * P; d++)
                out[(b * H * P + d) * L + t] = src[(b * L + t) * H + d / P];
    return out;
}

/* (B, L, G, N) -> (B, G, N, L). */
static double* blgn_to_bgnl(const double* src, const mb_ssd_params* p) {
    return move_time_last(src, p->batch, p->seqlen, p->ngroups * p->dstate);
}

/* A per-head vector (H) repeated over p and `inner` elements: (H * P * inner). */
static double* repeat_heads(const double* src, int64_t H, int64_t P, int64_t inner) {
    double* out = zeros_f64(H * P * inner);
    for (int64_t k = 0; k < H * P * inner; k++) out[k] = src[k / (P * inner)];
    return out;
}

/* out[i] = sum over blocks of `block` consecutive elements of src */
static double* sum_blocks(const double* src, int64_t nout, int64_t block) {
    double* out = zeros_f64(nout);
    for (int64_t i = 0; i < nout; i++)
        for (int64_t k = 0; k < block; k++) out[i] += src[i * block + k];
    return out;
}

/* (B, D, L) ddelta summed over p -> (B, L, H). */
static double* bdl_sum_p_to_blh(const double* src, const mb_ssd_params* p) {
    int64_t L = p->seqlen, H = p->nheads, P = p->headdim;
    double* out = zeros_f64(n_dt(p));
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t d = 0; d < H * P; d++)
            for (int64_t t = 0; t < L; t++)
                out[(b * L + t) * H + d / P] += src[(b * H * P + d) * L + t];
    return out;
}

typedef struct {
    mb_selective_scan_params p;
    double *u, *delta, *A, *B, *C, *D, *z, *bias;
    mb_selective_scan_inputs in;
} scan_case;

static scan_case scan_of(const ssd_case* c) {
    const mb_ssd_params* q = &c->p;
    scan_case s;
    memset(&s.p, 0, sizeof s.p);
    s.p.batch = q->batch;
    s.p.dim = q->nheads * q->headdim;
    s.p.seqlen = q->seqlen;
    s.p.dstate = q->dstate;
    s.p.ngroups = q->ngroups;
    s.p.dtype = MB_DTYPE_F64;
    s.p.delta_softplus = q->dt_softplus;
    s.u = blhp_to_bdl(c->x, q);
    s.delta = blh_to_bdl(c->dt, q);
    s.A = repeat_heads(c->A, q->nheads, q->headdim, q->dstate);
    s.B = blgn_to_bgnl(c->B, q);
    s.C = blgn_to_bgnl(c->C, q);
    s.D = repeat_heads(c->D, q->nheads, q->headdim, 1);
    s.z = blhp_to_bdl(c->z, q);
    s.bias = repeat_heads(c->dt_bias, q->nheads, q->headdim, 1);
    s.in.u = s.u, s.in.delta = s.delta, s.in.A = s.A, s.in.B = s.B, s.in.C = s.C;
    s.in.D = (c->opts & OPT_D) ? s.D : NULL;
    s.in.z = (c->opts & OPT_Z) ? s.z : NULL;
    s.in.delta_bias = (c->opts & OPT_BIAS) ? s.bias : NULL;
    return s;
}

static void free_scan(scan_case* s) {
    free(s->u), free(s->delta), free(s->A), free(s->B), free(s->C);
    free(s->D), free(s->z), free(s->bias);
}

static int duality_skipped = 0;

/* The scan's y and final state against SSD's (every form). Returns 0 when the
 * selective scan reference is not implemented yet. */
static int check_duality_fwd(const char* label, const ssd_case* c, const scan_case* s) {
    double* y_scan = zeros_f64(n_x(&c->p));   /* (B, D, L) */
    double* fs_scan = zeros_f64(n_st(&c->p)); /* (B, D, N) == (B, H, P, N) */
    mb_status st = mb_selective_scan_fwd_cpu(&s->p, &s->in, y_scan, fs_scan);
    if (st == MB_ERR_NOT_IMPLEMENTED) {
        free(y_scan), free(fs_scan);
        return 0;
    }
    CHECK(st == MB_OK, "%s: mb_selective_scan_fwd_cpu returned %s: %s", label,
          mb_status_string(st), mb_last_error());
    const mb_ssd_form forms[] = {MB_SSD_RECURRENT, MB_SSD_CHUNKED, MB_SSD_QUADRATIC};
    for (int f = 0; f < 3; f++) {
        double* y = zeros_f64(n_x(&c->p));
        double* fs = zeros_f64(n_st(&c->p));
        CHECK_OK(run_fwd(c, forms[f], 3, y, fs));
        double* y_t = blhp_to_bdl(y, &c->p);
        char what[160];
        snprintf(what, sizeof what, "%s %s: y vs selective scan", label, form_name(forms[f]));
        expect_close_f64(what, y_t, y_scan, n_x(&c->p), TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
        snprintf(what, sizeof what, "%s %s: final_state vs selective scan", label,
                 form_name(forms[f]));
        expect_close_f64(what, fs, fs_scan, n_st(&c->p), TOL_F64_AGREE_RTOL,
                         TOL_F64_AGREE_ATOL);
        free(y), free(fs), free(y_t);
    }
    free(y_scan), free(fs_scan);
    return 1;
}

static void expect_agree(const char* label, const char* name, const double* got,
                         const double* want, int64_t n) {
    char what[160];
    snprintf(what, sizeof what, "%s: %s vs selective scan", label, name);
    expect_close_f64(what, got, want, n, TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
}

/* The scan's gradients, mapped back to SSD's layout, against SSD's backward. */
static void check_duality_bwd(const char* label, const ssd_case* c, const scan_case* s) {
    const mb_ssd_params* q = &c->p;
    int64_t H = q->nheads, P = q->headdim, N = q->dstate, HP = H * P;
    double* dy = rand_normal_f64(n_x(q), 1.0);
    double* dy_scan = blhp_to_bdl(dy, q);
    double *du = zeros_f64(n_x(q)), *ddelta = zeros_f64(n_x(q)), *dA = zeros_f64(HP * N);
    double *dBs = zeros_f64(n_bc(q)), *dCs = zeros_f64(n_bc(q)), *dDs = zeros_f64(HP);
    double *dzs = zeros_f64(n_x(q)), *dbias = zeros_f64(HP);
    mb_selective_scan_grads sg = {du, ddelta, dA, dBs, dCs, s->in.D ? dDs : NULL,
                                  s->in.z ? dzs : NULL, s->in.delta_bias ? dbias : NULL};
    mb_status st = mb_selective_scan_bwd_cpu(&s->p, &s->in, dy_scan, &sg);
    if (st == MB_ERR_NOT_IMPLEMENTED) {
        duality_skipped = 1;
    } else {
        CHECK(st == MB_OK, "%s: mb_selective_scan_bwd_cpu returned %s: %s", label,
              mb_status_string(st), mb_last_error());
        double *gx = zeros_f64(n_x(q)), *gdt = zeros_f64(n_dt(q)), *gA = zeros_f64(H);
        double *gB = zeros_f64(n_bc(q)), *gC = zeros_f64(n_bc(q)), *gD = zeros_f64(H);
        double *gz = zeros_f64(n_x(q)), *gbias = zeros_f64(H);
        mb_ssd_grads g = {gx, gdt, gA, gB, gC, s->in.D ? gD : NULL, s->in.z ? gz : NULL,
                          s->in.delta_bias ? gbias : NULL, NULL};
        mb_ssd_inputs in = inputs_of(c);
        CHECK_OK(mb_ssd_bwd_cpu(q, &in, dy, NULL, &g));
        double* gx_t = blhp_to_bdl(gx, q);
        double* ddt_want = bdl_sum_p_to_blh(ddelta, q);
        double* dA_want = sum_blocks(dA, H, P * N);
        double* dB_t = blgn_to_bgnl(gB, q);
        double* dC_t = blgn_to_bgnl(gC, q);
        expect_agree(label, "dx", gx_t, du, n_x(q));
        expect_agree(label, "ddt", gdt, ddt_want, n_dt(q));
        expect_agree(label, "dA", gA, dA_want, H);
        expect_agree(label, "dB", dB_t, dBs, n_bc(q));
        expect_agree(label, "dC", dC_t, dCs, n_bc(q));
        if (s->in.D) {
            double* dD_want = sum_blocks(dDs, H, P);
            expect_agree(label, "dD", gD, dD_want, H);
            free(dD_want);
        }
        if (s->in.z) {
            double* gz_t = blhp_to_bdl(gz, q);
            expect_agree(label, "dz", gz_t, dzs, n_x(q));
            free(gz_t);
        }
        if (s->in.delta_bias) {
            double* dbias_want = sum_blocks(dbias, H, P);
            expect_agree(label, "ddt_bias", gbias, dbias_want, H);
            free(dbias_want);
        }
        free(gx), free(gdt), free(gA), free(gB), free(gC), free(gD), free(gz), free(gbias);
        free(gx_t), free(ddt_want), free(dA_want), free(dB_t), free(dC_t);
    }
    free(dy), free(dy_scan), free(du), free(ddelta), free(dA), free(dBs), free(dCs);
    free(dDs), free(dzs), free(dbias);
}

static void test_duality_mamba1(void) {
    struct { int softplus, opts; int64_t G; } configs[] = {
        {1, OPT_D | OPT_Z | OPT_BIAS, 2}, {0, OPT_NONE, 2}, {1, OPT_Z, 1},
        {0, OPT_D | OPT_BIAS, 4}};
    for (int k = 0; k < 4; k++) {
        mb_ssd_params p = make_params(2, 11, 4, 3, 5, configs[k].G, configs[k].softplus);
        ssd_case c = make_case(300 + (uint64_t)k, p, configs[k].opts);
        scan_case s = scan_of(&c);
        char label[96];
        snprintf(label, sizeof label, "duality softplus=%d opts=%d G=%lld", configs[k].softplus,
                 configs[k].opts, (long long)configs[k].G);
        if (check_duality_fwd(label, &c, &s))
            check_duality_bwd(label, &c, &s);
        else
            duality_skipped = 1;
        free_scan(&s);
        free_case(&c);
    }
    if (duality_skipped)
        printf("test_ssd: NOTE: the selective scan reference returns MB_ERR_NOT_IMPLEMENTED; "
               "the SSD == Mamba-1 duality checks were skipped\n");
}

// ----------------------------------------------------------------------------
// gradients against central finite differences

/* loss = sum(dy * y) + sum(dfs * final_state), dfs may be NULL. */
static double loss_of(const ssd_case* c, const double* dy, const double* dfs,
                      double* y /* scratch */, double* fs /* scratch */) {
    mb_ssd_inputs in = inputs_of(c);
    if (mb_ssd_fwd_cpu(&c->p, &in, y, fs) != MB_OK) return NAN;
    double loss = 0.0;
    for (int64_t i = 0; i < n_x(&c->p); i++) loss += dy[i] * y[i];
    if (dfs)
        for (int64_t i = 0; i < n_st(&c->p); i++) loss += dfs[i] * fs[i];
    return loss;
}

/* what the loss of tb_fd_gradient reads (one tensor of c is perturbed) */
typedef struct {
    const ssd_case* c;
    const double *dy, *dfs;
    double *y, *fs; /* scratch */
} loss_ctx;

static double loss_at(void* ctx) {
    loss_ctx* l = ctx;
    return loss_of(l->c, l->dy, l->dfs, l->y, l->fs);
}

/* The analytic gradient of every input of c against finite differences. */
static void check_gradients(const char* label, ssd_case* c, int with_dfs) {
    const mb_ssd_params* p = &c->p;
    int64_t H = p->nheads;
    double* dy = rand_normal_f64(n_x(p), 1.0);
    double* dfs = with_dfs ? rand_normal_f64(n_st(p), 1.0) : NULL;
    double *gx = zeros_f64(n_x(p)), *gdt = zeros_f64(n_dt(p)), *gA = zeros_f64(H);
    double *gB = zeros_f64(n_bc(p)), *gC = zeros_f64(n_bc(p)), *gD = zeros_f64(H);
    double *gz = zeros_f64(n_x(p)), *gbias = zeros_f64(H), *gh0 = zeros_f64(n_st(p));
    mb_ssd_grads g = {gx, gdt, gA, gB, gC, (c->opts & OPT_D) ? gD : NULL,
                      (c->opts & OPT_Z) ? gz : NULL, (c->opts & OPT_BIAS) ? gbias : NULL,
                      (c->opts & OPT_H0) ? gh0 : NULL};
    mb_ssd_inputs in = inputs_of(c);
    CHECK_OK(mb_ssd_bwd_cpu(p, &in, dy, dfs, &g));
    struct { const char* name; double* v; int64_t n; const double* grad; int present; } t[] = {
        {"x", c->x, n_x(p), gx, 1},
        {"dt", c->dt, n_dt(p), gdt, 1},
        {"A", c->A, H, gA, 1},
        {"B", c->B, n_bc(p), gB, 1},
        {"C", c->C, n_bc(p), gC, 1},
        {"D", c->D, H, gD, c->opts & OPT_D},
        {"z", c->z, n_x(p), gz, c->opts & OPT_Z},
        {"dt_bias", c->dt_bias, H, gbias, c->opts & OPT_BIAS},
        {"initial_state", c->h0, n_st(p), gh0, c->opts & OPT_H0}};
    loss_ctx ctx = {c, dy, dfs, zeros_f64(n_x(p)), zeros_f64(n_st(p))};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        if (!t[k].present) continue;
        double* fd = zeros_f64(t[k].n);
        tb_fd_gradient(loss_at, &ctx, t[k].v, t[k].n, fd);
        char what[160];
        snprintf(what, sizeof what, "%s: d%s vs finite differences", label, t[k].name);
        expect_close_f64(what, t[k].grad, fd, t[k].n, TOL_FD_RTOL, TOL_FD_ATOL);
        free(fd);
    }
    free(dy), free(dfs), free(gx), free(gdt), free(gA), free(gB), free(gC), free(gD), free(gz);
    free(gbias), free(gh0), free(ctx.y), free(ctx.fs);
}

static void test_gradients(void) {
    struct {
        const char* label;
        int64_t L, G;
        int softplus, opts, with_dfs;
        mb_ssd_form form;
        double dt_shift; /* added to dt: 50 for the huge-dt case */
    } configs[] = {
        {"fd softplus all", 6, 2, 1, OPT_ALL, 1, MB_SSD_CHUNKED, 0.0},
        {"fd no-softplus all", 6, 2, 0, OPT_ALL, 1, MB_SSD_RECURRENT, 0.0},
        {"fd softplus none", 6, 2, 1, OPT_NONE, 1, MB_SSD_QUADRATIC, 0.0},
        {"fd no-softplus none", 6, 2, 0, OPT_NONE, 1, MB_SSD_CHUNKED, 0.0},
        {"fd dfinal_state NULL", 6, 2, 1, OPT_ALL, 0, MB_SSD_CHUNKED, 0.0},
        {"fd no-softplus dfinal_state NULL", 6, 2, 0, OPT_Z | OPT_H0, 0, MB_SSD_CHUNKED, 0.0},
        {"fd L=1", 1, 2, 1, OPT_ALL, 1, MB_SSD_CHUNKED, 0.0},
        {"fd G=1", 6, 1, 1, OPT_ALL, 1, MB_SSD_QUADRATIC, 0.0},
        {"fd G=H", 6, 4, 0, OPT_ALL, 1, MB_SSD_RECURRENT, 0.0},
        {"fd huge dt", 6, 2, 1, OPT_ALL, 1, MB_SSD_CHUNKED, 50.0}};
    for (size_t k = 0; k < sizeof configs / sizeof configs[0]; k++) {
        mb_ssd_params p = make_params(2, configs[k].L, 4, 2, 3, configs[k].G,
                                      configs[k].softplus);
        p.form = configs[k].form;
        ssd_case c = make_case(400 + k, p, configs[k].opts);
        for (int64_t i = 0; i < n_dt(&p); i++) c.dt[i] += configs[k].dt_shift;
        check_gradients(configs[k].label, &c, configs[k].with_dfs);
        free_case(&c);
    }
}

// ----------------------------------------------------------------------------
// edge cases

static int all_finite(const double* v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

/* The backward of c runs and every gradient is finite. */
static void check_backward_finite(const char* label, const ssd_case* c) {
    const mb_ssd_params* p = &c->p;
    int64_t H = p->nheads;
    double* dy = rand_normal_f64(n_x(p), 1.0);
    double* dfs = rand_normal_f64(n_st(p), 1.0);
    double *gx = zeros_f64(n_x(p)), *gdt = zeros_f64(n_dt(p)), *gA = zeros_f64(H);
    double *gB = zeros_f64(n_bc(p)), *gC = zeros_f64(n_bc(p)), *gD = zeros_f64(H);
    double *gz = zeros_f64(n_x(p)), *gbias = zeros_f64(H), *gh0 = zeros_f64(n_st(p));
    mb_ssd_grads g = {gx, gdt, gA, gB, gC, gD, gz, gbias, gh0};
    mb_ssd_inputs in = inputs_of(c);
    CHECK(c->opts == OPT_ALL, "%s: check_backward_finite needs every optional input", label);
    CHECK_OK(mb_ssd_bwd_cpu(p, &in, dy, dfs, &g));
    int ok = all_finite(gx, n_x(p)) && all_finite(gdt, n_dt(p)) && all_finite(gA, H) &&
             all_finite(gB, n_bc(p)) && all_finite(gC, n_bc(p)) && all_finite(gD, H) &&
             all_finite(gz, n_x(p)) && all_finite(gbias, H) && all_finite(gh0, n_st(p));
    CHECK(ok, "%s: a gradient is not finite", label);
    free(dy), free(dfs), free(gx), free(gdt), free(gA), free(gB), free(gC), free(gD), free(gz);
    free(gbias), free(gh0);
}

/* A * dt' so negative (< -745) that exp() underflows to 0: the state forgets
 * everything at each step, so y_t = (dt'_t x_t (B_t . C_t) + D x_t) silu(z_t)
 * and final_state = dt'_{L-1} x_{L-1} B_{L-1}^T, exactly, in every form. */
static void test_vanishing_decay(void) {
    mb_ssd_params p = make_params(2, 9, 4, 3, 5, 2, 1);
    ssd_case c = make_case(500, p, OPT_ALL);
    for (int64_t h = 0; h < p.nheads; h++) c.A[h] = -rng_uniform(500.0, 1000.0);
    for (int64_t i = 0; i < n_dt(&p); i++) c.dt[i] = rng_uniform(2.0, 4.0);
    int64_t L = p.seqlen, H = p.nheads, P = p.headdim, N = p.dstate, G = p.ngroups;
    double* y_want = zeros_f64(n_x(&p));
    double* fs_want = zeros_f64(n_st(&p));
    for (int64_t b = 0; b < p.batch; b++)
        for (int64_t t = 0; t < L; t++)
            for (int64_t h = 0; h < H; h++) {
                double v = c.dt[(b * L + t) * H + h] + c.dt_bias[h];
                double dtv = log1p(exp(v));
                const double* Bt = c.B + ((b * L + t) * G + h / (H / G)) * N;
                const double* Ct = c.C + ((b * L + t) * G + h / (H / G)) * N;
                double bc = 0.0;
                for (int64_t n = 0; n < N; n++) bc += Bt[n] * Ct[n];
                for (int64_t q = 0; q < P; q++) {
                    int64_t i = ((b * L + t) * H + h) * P + q;
                    double zv = c.z[i];
                    y_want[i] = (dtv * c.x[i] * bc + c.D[h] * c.x[i]) * zv / (1.0 + exp(-zv));
                    if (t == L - 1)
                        for (int64_t n = 0; n < N; n++)
                            fs_want[((b * H + h) * P + q) * N + n] = dtv * c.x[i] * Bt[n];
                }
            }
    const mb_ssd_form forms[] = {MB_SSD_RECURRENT, MB_SSD_CHUNKED, MB_SSD_QUADRATIC};
    for (int f = 0; f < 3; f++) {
        check_form_against_naive("vanishing decay", &c, forms[f], 4, y_want, fs_want);
        check_form_against_naive("vanishing decay", &c, forms[f], 1, y_want, fs_want);
    }
    check_all_forms("vanishing decay vs naive", &c);
    check_backward_finite("vanishing decay", &c);
    free(y_want);
    free(fs_want);
    free_case(&c);
}

static void test_edge_cases(void) {
    struct {
        const char* label;
        int64_t B, L, H, P, N, G;
        int softplus;
        double dt_shift; /* added to dt: 50 for the huge-dt case */
    } cases[] = {
        {"L=1", 2, 1, 4, 3, 5, 2, 1, 0.0},
        {"L=1 B=1", 1, 1, 2, 1, 3, 1, 0, 0.0},
        {"B=3", 3, 10, 4, 2, 4, 2, 1, 0.0},
        {"G=1", 2, 10, 4, 2, 4, 1, 1, 0.0},
        {"G=H", 2, 10, 4, 2, 4, 4, 0, 0.0},
        {"G=3 H=6", 1, 10, 6, 2, 3, 3, 1, 0.0},
        {"N=1", 2, 9, 2, 3, 1, 1, 1, 0.0},
        {"N=MB_MAX_DSTATE", 1, 7, 2, 2, MB_MAX_DSTATE, 1, 1, 0.0},
        {"P=1", 2, 9, 3, 1, 4, 3, 0, 0.0},
        {"huge dt (softplus of ~50)", 2, 11, 4, 2, 3, 2, 1, 50.0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        mb_ssd_params p = make_params(cases[k].B, cases[k].L, cases[k].H, cases[k].P, cases[k].N,
                                      cases[k].G, cases[k].softplus);
        ssd_case c = make_case(600 + k, p, OPT_ALL);
        for (int64_t i = 0; i < n_dt(&p); i++) c.dt[i] += cases[k].dt_shift;
        check_all_forms(cases[k].label, &c);
        check_backward_finite(cases[k].label, &c);
        free_case(&c);
    }
    test_vanishing_decay();
}

// ----------------------------------------------------------------------------
// fp32 and bf16 storage against fp64 on the same rounded inputs

enum { T_X, T_DT, T_A, T_B, T_C, T_D, T_Z, T_BIAS, T_H0, T_COUNT };

/* The nine tensors of an SSD call (inputs or gradients) in one table. */
typedef struct {
    const char* name[T_COUNT];
    int64_t n[T_COUNT];
    mb_dtype dtype[T_COUNT];
} tensor_table;

static tensor_table table_of(const mb_ssd_params* p, mb_dtype act) {
    mb_dtype par = mb_param_dtype(act);
    tensor_table t = {{"x", "dt", "A", "B", "C", "D", "z", "dt_bias", "initial_state"},
                      {n_x(p), n_dt(p), p->nheads, n_bc(p), n_bc(p), p->nheads, n_x(p),
                       p->nheads, n_st(p)},
                      {act, act, par, act, act, par, act, par, par}};
    return t;
}

static void check_dtype_path(mb_dtype dtype, double rtol, double atol) {
    mb_ssd_params p = make_params(2, 9, 4, 3, 5, 2, 1);
    ssd_case c = make_case(700 + (uint64_t)dtype, p, OPT_ALL);
    tensor_table tt = table_of(&p, dtype);
    double* vals[T_COUNT] = {c.x, c.dt, c.A, c.B, c.C, c.D, c.z, c.dt_bias, c.h0};
    void* packed[T_COUNT];
    for (int k = 0; k < T_COUNT; k++) {
        tb_round_array(vals[k], tt.n[k], tt.dtype[k]); /* the fp64 call sees the same inputs */
        packed[k] = tb_pack(vals[k], tt.n[k], tt.dtype[k]);
    }
    mb_ssd_params pt = p;
    pt.dtype = dtype;
    mb_ssd_inputs in_t = {packed[T_X], packed[T_DT], packed[T_A], packed[T_B], packed[T_C],
                          packed[T_D], packed[T_Z], packed[T_BIAS], packed[T_H0]};
    mb_ssd_inputs in64 = inputs_of(&c);
    char what[160];

    // forward, every form
    const mb_ssd_form forms[] = {MB_SSD_RECURRENT, MB_SSD_CHUNKED, MB_SSD_QUADRATIC};
    for (int f = 0; f < 3; f++) {
        pt.form = p.form = forms[f];
        void* y_t = malloc((size_t)n_x(&p) * mb_dtype_size(dtype));     /* (B, L, H, P) */
        void* fs_t = malloc((size_t)n_st(&p) * sizeof(float));         /* (B, H, P, N) */
        double* y64 = zeros_f64(n_x(&p));
        double* fs64 = zeros_f64(n_st(&p));
        CHECK_OK(mb_ssd_fwd_cpu(&pt, &in_t, y_t, fs_t));
        CHECK_OK(mb_ssd_fwd_cpu(&p, &in64, y64, fs64));
        double* y_got = tb_unpack(y_t, n_x(&p), dtype);
        double* fs_got = tb_unpack(fs_t, n_st(&p), MB_DTYPE_F32);
        snprintf(what, sizeof what, "%s %s: y vs f64", mb_dtype_name(dtype), form_name(forms[f]));
        expect_close_f64(what, y_got, y64, n_x(&p), rtol, atol);
        snprintf(what, sizeof what, "%s %s: final_state vs f64", mb_dtype_name(dtype),
                 form_name(forms[f]));
        expect_close_f64(what, fs_got, fs64, n_st(&p), rtol, atol);
        free(y_t), free(fs_t), free(y64), free(fs64), free(y_got), free(fs_got);
    }

    // backward
    double* dy = rand_normal_f64(n_x(&p), 1.0);
    double* dfs = rand_normal_f64(n_st(&p), 1.0);
    tb_round_array(dy, n_x(&p), dtype);
    tb_round_array(dfs, n_st(&p), MB_DTYPE_F32);
    void* dy_t = tb_pack(dy, n_x(&p), dtype);
    void* dfs_t = tb_pack(dfs, n_st(&p), MB_DTYPE_F32);
    void* g_t[T_COUNT];
    double* g64[T_COUNT];
    for (int k = 0; k < T_COUNT; k++) {
        g_t[k] = malloc((size_t)tt.n[k] * mb_dtype_size(tt.dtype[k]));
        g64[k] = zeros_f64(tt.n[k]);
    }
    mb_ssd_grads gt = {g_t[0], g_t[1], g_t[2], g_t[3], g_t[4], g_t[5], g_t[6], g_t[7], g_t[8]};
    mb_ssd_grads g = {g64[0], g64[1], g64[2], g64[3], g64[4], g64[5], g64[6], g64[7], g64[8]};
    CHECK_OK(mb_ssd_bwd_cpu(&pt, &in_t, dy_t, dfs_t, &gt));
    CHECK_OK(mb_ssd_bwd_cpu(&p, &in64, dy, dfs, &g));
    for (int k = 0; k < T_COUNT; k++) {
        double* got = tb_unpack(g_t[k], tt.n[k], tt.dtype[k]);
        snprintf(what, sizeof what, "%s backward: d%s vs f64", mb_dtype_name(dtype), tt.name[k]);
        expect_close_f64(what, got, g64[k], tt.n[k], rtol, atol);
        free(got), free(g_t[k]), free(g64[k]);
    }
    for (int k = 0; k < T_COUNT; k++) free(packed[k]);
    free(dy), free(dfs), free(dy_t), free(dfs_t);
    free_case(&c);
}

static void test_dtype_paths(void) {
    check_dtype_path(MB_DTYPE_F32, TOL_F32_STORAGE_RTOL, TOL_F32_STORAGE_ATOL);
    check_dtype_path(MB_DTYPE_BF16, TOL_BF16_STORAGE_RTOL, TOL_BF16_STORAGE_ATOL);
}

// ----------------------------------------------------------------------------
// only the outputs are written; nothing on failure; gradients overwrite

#define GUARD (TB_GUARD_BYTES / 8) /* doubles of the guard after each output */

/* memcmp of every input of c against a saved copy */
static int inputs_unchanged(const ssd_case* c, const ssd_case* saved) {
    const mb_ssd_params* p = &c->p;
    return !memcmp(c->x, saved->x, (size_t)n_x(p) * 8) &&
           !memcmp(c->dt, saved->dt, (size_t)n_dt(p) * 8) &&
           !memcmp(c->A, saved->A, (size_t)p->nheads * 8) &&
           !memcmp(c->B, saved->B, (size_t)n_bc(p) * 8) &&
           !memcmp(c->C, saved->C, (size_t)n_bc(p) * 8) &&
           !memcmp(c->D, saved->D, (size_t)p->nheads * 8) &&
           !memcmp(c->z, saved->z, (size_t)n_x(p) * 8) &&
           !memcmp(c->dt_bias, saved->dt_bias, (size_t)p->nheads * 8) &&
           !memcmp(c->h0, saved->h0, (size_t)n_st(p) * 8);
}

static void test_canary_fwd(void) {
    mb_ssd_params p = make_params(2, 7, 4, 3, 5, 2, 1);
    ssd_case c = make_case(800, p, OPT_ALL);
    ssd_case saved = make_case(800, p, OPT_ALL);
    int64_t nx = n_x(&p), ns = n_st(&p);
    const mb_ssd_form forms[] = {MB_SSD_RECURRENT, MB_SSD_CHUNKED, MB_SSD_QUADRATIC};
    for (int f = 0; f < 3; f++) {
        double *y = tb_guarded_alloc((size_t)(nx) * 8), *fs = tb_guarded_alloc((size_t)(ns) * 8), *y2 = tb_guarded_alloc((size_t)(nx) * 8);
        CHECK_OK(run_fwd(&c, forms[f], 3, y, fs));
        CHECK(tb_poisoned(y, (size_t)(nx) * 8, (size_t)(nx + GUARD) * 8) && tb_poisoned(fs, (size_t)(ns) * 8, (size_t)(ns + GUARD) * 8),
              "%s: wrote past y or final_state", form_name(forms[f]));
        CHECK(all_finite(y, nx) && all_finite(fs, ns), "%s: y or final_state not all written",
              form_name(forms[f]));
        CHECK(inputs_unchanged(&c, &saved), "%s: the forward modified an input",
              form_name(forms[f]));
        CHECK(mb_last_error()[0] == '\0', "a successful call left an error message");
        // final_state may be NULL; y is the same
        CHECK_OK(run_fwd(&c, forms[f], 3, y2, NULL));
        CHECK(!memcmp(y, y2, (size_t)nx * 8) && tb_poisoned(y2, (size_t)(nx) * 8, (size_t)(nx + GUARD) * 8),
              "%s: y differs when final_state is NULL", form_name(forms[f]));
        tb_guarded_free(y), tb_guarded_free(fs), tb_guarded_free(y2);
    }
    // refused calls write nothing
    double *y = tb_guarded_alloc((size_t)(nx) * 8), *fs = tb_guarded_alloc((size_t)(ns) * 8);
    CHECK(run_fwd(&c, MB_SSD_CHUNKED, 0, y, fs) == MB_ERR_BAD_DIM, "chunk_size 0 not refused");
    CHECK(run_fwd(&c, (mb_ssd_form)7, 4, y, fs) == MB_ERR_BAD_OPTION, "form 7 not refused");
    mb_ssd_params bad = p;
    bad.dtype = MB_DTYPE_F16;
    mb_ssd_inputs in = inputs_of(&c);
    CHECK(mb_ssd_fwd_cpu(&bad, &in, y, fs) == MB_ERR_DTYPE, "f16 not refused");
    CHECK(mb_last_error()[0] != '\0', "a refused call left no message");
    in.x = NULL;
    CHECK(mb_ssd_fwd_cpu(&p, &in, y, fs) == MB_ERR_NULL_POINTER, "NULL x not refused");
    CHECK(tb_poisoned(y, (size_t)(0) * 8, (size_t)(nx + GUARD) * 8) && tb_poisoned(fs, (size_t)(0) * 8, (size_t)(ns + GUARD) * 8),
          "a refused forward wrote its outputs");
    tb_guarded_free(y), tb_guarded_free(fs);
    // fp32 outputs: 4-byte elements, nothing written past the end
    mb_ssd_params p32 = p;
    p32.dtype = MB_DTYPE_F32;
    tensor_table tt = table_of(&p, MB_DTYPE_F32);
    double* vals[T_COUNT] = {c.x, c.dt, c.A, c.B, c.C, c.D, c.z, c.dt_bias, c.h0};
    void* pk[T_COUNT];
    for (int k = 0; k < T_COUNT; k++) pk[k] = tb_pack(vals[k], tt.n[k], tt.dtype[k]);
    mb_ssd_inputs in32 = {pk[0], pk[1], pk[2], pk[3], pk[4], pk[5], pk[6], pk[7], pk[8]};
    float* y32 = tb_guarded_alloc((size_t)nx * sizeof(float));
    float* fs32 = tb_guarded_alloc((size_t)ns * sizeof(float));
    CHECK_OK(mb_ssd_fwd_cpu(&p32, &in32, y32, fs32));
    CHECK(tb_guards_intact(y32, (size_t)nx * sizeof(float)) &&
              tb_guards_intact(fs32, (size_t)ns * sizeof(float)),
          "f32: wrote past y or final_state");
    for (int k = 0; k < T_COUNT; k++) free(pk[k]);
    tb_guarded_free(y32), tb_guarded_free(fs32);
    free_case(&c);
    free_case(&saved);
}

static void test_canary_bwd(void) {
    mb_ssd_params p = make_params(2, 7, 4, 3, 5, 2, 1);
    ssd_case c = make_case(900, p, OPT_ALL);
    ssd_case saved = make_case(900, p, OPT_ALL);
    tensor_table tt = table_of(&p, MB_DTYPE_F64);
    double* dy = rand_normal_f64(n_x(&p), 1.0);
    double* dfs = rand_normal_f64(n_st(&p), 1.0);
    double* dy_copy = copy_f64(dy, n_x(&p));
    double* dfs_copy = copy_f64(dfs, n_st(&p));
    double *g1[T_COUNT], *g2[T_COUNT];
    for (int k = 0; k < T_COUNT; k++) {
        g1[k] = tb_guarded_alloc((size_t)(tt.n[k]) * 8);
        g2[k] = tb_guarded_alloc((size_t)(tt.n[k]) * 8);
        for (int64_t i = 0; i < tt.n[k]; i++) g2[k][i] = 99.0 + (double)i; /* stale values */
    }
    mb_ssd_grads a = {g1[0], g1[1], g1[2], g1[3], g1[4], g1[5], g1[6], g1[7], g1[8]};
    mb_ssd_grads b = {g2[0], g2[1], g2[2], g2[3], g2[4], g2[5], g2[6], g2[7], g2[8]};
    mb_ssd_inputs in = inputs_of(&c);
    // refused: nothing written
    mb_ssd_grads unpaired = a;
    unpaired.dD = NULL;
    CHECK(mb_ssd_bwd_cpu(&p, &in, dy, dfs, &unpaired) == MB_ERR_NULL_POINTER,
          "D given without dD not refused");
    for (int k = 0; k < T_COUNT; k++)
        CHECK(tb_poisoned(g1[k], (size_t)(0) * 8, (size_t)(tt.n[k] + GUARD) * 8), "refused backward wrote d%s", tt.name[k]);
    // written, not accumulated; nothing past the ends; inputs untouched
    CHECK_OK(mb_ssd_bwd_cpu(&p, &in, dy, dfs, &a));
    CHECK_OK(mb_ssd_bwd_cpu(&p, &in, dy, dfs, &b));
    for (int k = 0; k < T_COUNT; k++) {
        CHECK(!memcmp(g1[k], g2[k], (size_t)tt.n[k] * 8),
              "d%s depends on the buffer's previous content", tt.name[k]);
        CHECK(tb_poisoned(g1[k], (size_t)(tt.n[k]) * 8, (size_t)(tt.n[k] + GUARD) * 8) &&
                  tb_poisoned(g2[k], (size_t)(tt.n[k]) * 8, (size_t)(tt.n[k] + GUARD) * 8),
              "wrote past d%s", tt.name[k]);
    }
    CHECK(inputs_unchanged(&c, &saved) && !memcmp(dy, dy_copy, (size_t)n_x(&p) * 8) &&
              !memcmp(dfs, dfs_copy, (size_t)n_st(&p) * 8),
          "the backward modified an input");
    for (int k = 0; k < T_COUNT; k++) tb_guarded_free(g1[k]), tb_guarded_free(g2[k]);
    free(dy), free(dfs), free(dy_copy), free(dfs_copy);
    free_case(&c);
    free_case(&saved);
}

// ----------------------------------------------------------------------------
// scratch memory: O(inputs + chunk^2) forward; backward O(inputs + checkpoints +
// one segment): (ceil(L/Q) + Q + 1) * P * N doubles for a segment length Q = chunk

static void test_memory_bound(void) {
    mb_ssd_params p = make_params(2, 64, 8, 16, 32, 1, 1);
    ssd_case c = make_case(1000, p, OPT_ALL);
    int64_t H = p.nheads, L = p.seqlen, N = p.dstate, P = p.headdim;
    int64_t Qb = p.chunk_size < L ? p.chunk_size : L; /* backward segment length */
    int64_t per_channel_states = p.batch * H * p.headdim * N * L; /* what must NOT be held */
    // fp64 copies of inputs, outputs/gradients and the upstream gradients
    int64_t tensors = 5 * n_x(&p) + 3 * n_dt(&p) + 4 * n_bc(&p) + 3 * n_st(&p) + 6 * H;
    int64_t budget_bwd = (int64_t)(1.5 * 8.0 * (double)(tensors + ((L + Qb - 1) / Qb + Qb + 1) * P * N)) + 4096;
    CHECK(budget_bwd < 8 * per_channel_states,
          "memory test shape cannot tell O(inputs) from O(B H P N L)");

    double* dy = rand_normal_f64(n_x(&p), 1.0);
    double* dfs = rand_normal_f64(n_st(&p), 1.0);
    tensor_table tt = table_of(&p, MB_DTYPE_F64);
    double* g[T_COUNT];
    for (int k = 0; k < T_COUNT; k++) g[k] = zeros_f64(tt.n[k]);
    mb_ssd_grads grads = {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8]};
    mb_ssd_inputs in = inputs_of(&c);
    mb_cpu_memory_reset_peak();
    CHECK_OK(mb_ssd_bwd_cpu(&p, &in, dy, dfs, &grads));
    int64_t peak = mb_cpu_memory_peak_bytes();
    CHECK(peak > 0 && peak <= budget_bwd, "backward scratch %lld bytes, budget %lld",
          (long long)peak, (long long)budget_bwd);

    double* y = zeros_f64(n_x(&p));
    double* fs = zeros_f64(n_st(&p));
    const mb_ssd_form forms[] = {MB_SSD_RECURRENT, MB_SSD_CHUNKED, MB_SSD_QUADRATIC};
    for (int f = 0; f < 3; f++) {
        int64_t Q = forms[f] == MB_SSD_QUADRATIC ? L : 16;
        int64_t budget = (int64_t)(1.5 * 8.0 * (double)(tensors + Q * Q + 2 * Q)) + 4096;
        mb_cpu_memory_reset_peak();
        CHECK_OK(run_fwd(&c, forms[f], 16, y, fs));
        peak = mb_cpu_memory_peak_bytes();
        CHECK(peak > 0 && peak <= budget, "%s forward scratch %lld bytes, budget %lld",
              form_name(forms[f]), (long long)peak, (long long)budget);
    }
    for (int k = 0; k < T_COUNT; k++) free(g[k]);
    free(dy), free(dfs), free(y), free(fs);
    free_case(&c);
}

// ----------------------------------------------------------------------------

int main(void) {
    test_forms_agree();
    test_initial_state();
    test_duality_mamba1();
    test_gradients();
    test_edge_cases();
    test_dtype_paths();
    test_canary_fwd();
    test_canary_bwd();
    test_memory_bound();
    return test_main_result("test_ssd");
}
