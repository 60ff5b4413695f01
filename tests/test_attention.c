/*
 * test_attention.c -- the causal attention CPU reference (reference/attention.c).
 *
 *   agreement:    fp64 forward vs a brute-force per-query loop written here
 *   gradients:    fp64 backward vs central finite differences, every element of q, k, v
 *   safety:       logits ~1e4, row 0 attends only to key 0, lse may be NULL
 *   dtypes:       f32 and bf16 storage vs fp64 on the same rounded inputs
 *   memory:       the peak scratch is quadratic in L (the (L, L) score matrix)
 *   canaries:     nothing before or after an output is written; refused calls
 *                 write nothing at all
 *
 * Dimension legend: B = batch, H = heads, L = sequence length, d = head dim;
 * q, k, v, o and the gradients are (B, H, L, d), lse is (B, H, L).
 */
#include "testing.h"
#include "tolerances.h"

typedef struct {
    int64_t B, H, L, d;
    double scale; /* 0 = default 1/sqrt(d) */
} shape;

static int64_t numel(shape s) { return s.B * s.H * s.L * s.d; }
static int64_t nrows(shape s) { return s.B * s.H * s.L; }

static double scale_of(shape s) { return s.scale > 0.0 ? s.scale : 1.0 / sqrt((double)s.d); }

static mb_attention_params params_of(shape s, mb_dtype dtype) {
    mb_attention_params p = {.batch = s.B, .nheads = s.H, .seqlen = s.L, .headdim = s.d,
                             .scale = s.scale, .dtype = dtype};
    return p;
}

static void fwd_f64(shape s, const double* q, const double* k, const double* v, double* o,
                    double* lse) {
    mb_attention_params p = params_of(s, MB_DTYPE_F64);
    CHECK_OK(attn_fwd_cpu(&p, q, k, v, o, lse));
}

static void bwd_f64(shape s, const double* q, const double* k, const double* v,
                    const double* o, const double* lse, const double* dout, double* dq,
                    double* dk, double* dv) {
    mb_attention_params p = params_of(s, MB_DTYPE_F64);
    CHECK_OK(attn_bwd_cpu(&p, q, k, v, o, lse, dout, dq, dk, dv));
}

// ----------------------------------------------------------------------------
// brute force: one query at a time, no score matrix, no -inf

/* scale * a . b over d elements */
static double scaled_dot(const double* a, const double* b, int64_t d, double scale) {
    double acc = 0.0;
    for (int64_t c = 0; c < d; c++) acc += a[c] * b[c];
    return scale * acc;
}

/* For every query i: the max over keys 0..i (pass 1), then the unnormalised
 * weighted sum of values and the normaliser (pass 2), then one division. */
static void brute_force(shape s, const double* q, const double* k, const double* v,
                        double* o, double* lse) {
    const int64_t L = s.L, d = s.d;
    const double scale = scale_of(s);
    for (int64_t bh = 0; bh < s.B * s.H; bh++) {
        const double* qh = q + bh * L * d; /* (L, d) */
        const double* kh = k + bh * L * d; /* (L, d) */
        const double* vh = v + bh * L * d; /* (L, d) */
        for (int64_t i = 0; i < L; i++) {
            double* oi = o + (bh * L + i) * d; /* (d) */
            double m = scaled_dot(qh + i * d, kh, d, scale);
            for (int64_t j = 1; j <= i; j++) {
                double sij = scaled_dot(qh + i * d, kh + j * d, d, scale);
                if (sij > m) m = sij;
            }
            double z = 0.0;
            for (int64_t c = 0; c < d; c++) oi[c] = 0.0;
            for (int64_t j = 0; j <= i; j++) {
                double w = exp(scaled_dot(qh + i * d, kh + j * d, d, scale) - m);
                z += w;
                for (int64_t c = 0; c < d; c++) oi[c] += w * vh[j * d + c];
            }
            for (int64_t c = 0; c < d; c++) oi[c] /= z;
            lse[bh * L + i] = m + log(z);
        }
    }
}

/* The reference forward in fp64 against the brute force, for o and lse. */
static void check_against_brute_force(const char* what, shape s, const double* q,
                                      const double* k, const double* v) {
    const int64_t n = numel(s), r = nrows(s);
    double *o = zeros_f64(n), *lse = zeros_f64(r);
    double *o_bf = zeros_f64(n), *lse_bf = zeros_f64(r);
    fwd_f64(s, q, k, v, o, lse);
    brute_force(s, q, k, v, o_bf, lse_bf);
    char name[160];
    snprintf(name, sizeof name, "%s o (B=%lld H=%lld L=%lld d=%lld scale=%g)", what,
             (long long)s.B, (long long)s.H, (long long)s.L, (long long)s.d, s.scale);
    expect_close_f64(name, o, o_bf, n, TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    snprintf(name, sizeof name, "%s lse (B=%lld H=%lld L=%lld d=%lld scale=%g)", what,
             (long long)s.B, (long long)s.H, (long long)s.L, (long long)s.d, s.scale);
    expect_close_f64(name, lse, lse_bf, r, TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    free(o), free(lse), free(o_bf), free(lse_bf);
}

static void test_brute_force_agreement(void) {
    const shape shapes[] = {
        {1, 1, 1, 1, 0.0},  {2, 3, 1, 4, 0.0},   {1, 1, 8, 1, 0.0},   {2, 3, 7, 5, 0.0},
        {3, 2, 33, 8, 0.0}, {1, 2, 50, 16, 0.0}, {2, 2, 13, 6, 0.37}, {1, 4, 64, 4, 1.5},
    };
    rng_seed(101);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        shape s = shapes[t];
        const int64_t n = numel(s);
        double *q = rand_normal_f64(n, 1.0), *k = rand_normal_f64(n, 1.0),
               *v = rand_normal_f64(n, 1.0);
        check_against_brute_force("agreement", s, q, k, v);
        free(q), free(k), free(v);
    }
}

// ----------------------------------------------------------------------------
// gradients by central finite differences

/* loss = sum(dO * O) */
static double loss_of(shape s, const double* q, const double* k, const double* v,
                      const double* dout, double* o_scratch) {
    fwd_f64(s, q, k, v, o_scratch, NULL);
    double loss = 0.0;
    for (int64_t i = 0; i < numel(s); i++) loss += dout[i] * o_scratch[i];
    return loss;
}

/* what the loss of tb_fd_gradient reads (one of q, k, v is perturbed) */
typedef struct {
    shape s;
    const double *q, *k, *v, *dout;
    double* o_scratch;
} loss_ctx;

static double loss_at(void* ctx) {
    loss_ctx* c = ctx;
    return loss_of(c->s, c->q, c->k, c->v, c->dout, c->o_scratch);
}

static void check_gradients_fd(shape s, uint64_t seed) {
    const int64_t n = numel(s), r = nrows(s);
    rng_seed(seed);
    double *q = rand_normal_f64(n, 1.0), *k = rand_normal_f64(n, 1.0),
           *v = rand_normal_f64(n, 1.0), *dout = rand_normal_f64(n, 1.0);
    double *o = zeros_f64(n), *lse = zeros_f64(r);
    // prefilled with garbage: the backward must overwrite, not accumulate
    double *dq = rand_normal_f64(n, 1e3), *dk = rand_normal_f64(n, 1e3),
           *dv = rand_normal_f64(n, 1e3);
    fwd_f64(s, q, k, v, o, lse);
    bwd_f64(s, q, k, v, o, lse, dout, dq, dk, dv);

    double* inputs[3] = {q, k, v};
    const double* grads[3] = {dq, dk, dv};
    const char* names[3] = {"dq", "dk", "dv"};
    double *fd = zeros_f64(n), *o_scratch = zeros_f64(n);
    loss_ctx ctx = {s, q, k, v, dout, o_scratch};
    for (int t = 0; t < 3; t++) {
        tb_fd_gradient(loss_at, &ctx, inputs[t], n, fd);
        char name[160];
        snprintf(name, sizeof name, "%s vs finite differences (B=%lld H=%lld L=%lld d=%lld "
                 "scale=%g)", names[t], (long long)s.B, (long long)s.H, (long long)s.L,
                 (long long)s.d, s.scale);
        expect_close_f64(name, grads[t], fd, n, TOL_FD_RTOL, TOL_FD_ATOL);
    }
    free(q), free(k), free(v), free(dout), free(o), free(lse);
    free(dq), free(dk), free(dv), free(fd), free(o_scratch);
}

static void test_gradients(void) {
    check_gradients_fd((shape){2, 2, 5, 3, 0.0}, 201);
    check_gradients_fd((shape){1, 3, 6, 2, 0.8}, 202);
    check_gradients_fd((shape){2, 1, 1, 4, 0.0}, 203); /* L = 1: dq = dk = 0 */
    check_gradients_fd((shape){1, 1, 7, 1, 0.0}, 204); /* d = 1 */
}

// ----------------------------------------------------------------------------
// numerical safety

/* q, k scaled by 100: scores ~1e4, far past exp's range without the max shift. */
static void test_large_logits(void) {
    const shape s = {2, 2, 17, 4, 0.0};
    const int64_t n = numel(s), r = nrows(s);
    rng_seed(301);
    double *q = rand_normal_f64(n, 100.0), *k = rand_normal_f64(n, 100.0),
           *v = rand_normal_f64(n, 1.0), *dout = rand_normal_f64(n, 1.0);
    check_against_brute_force("large logits", s, q, k, v);

    double *o = zeros_f64(n), *lse = zeros_f64(r);
    double *dq = zeros_f64(n), *dk = zeros_f64(n), *dv = zeros_f64(n);
    fwd_f64(s, q, k, v, o, lse);
    CHECK(max_abs_f64(lse, r) > 1e3, "large logits: max |lse| = %g, expected scores ~1e4",
          max_abs_f64(lse, r));
    bwd_f64(s, q, k, v, o, lse, dout, dq, dk, dv);
    int finite = 1;
    for (int64_t i = 0; i < n; i++)
        finite = finite && isfinite(dq[i]) && isfinite(dk[i]) && isfinite(dv[i]);
    CHECK(finite, "large logits: the backward produced a non-finite gradient");
    free(q), free(k), free(v), free(dout), free(o), free(lse), free(dq), free(dk), free(dv);
}

/* Query 0 sees key 0 only: P_00 = 1 exactly, so o_0 == v_0 bit for bit and
 * lse_0 == S_00. Also: the forward accepts lse = NULL and gives the same o. */
static void test_first_row_and_null_lse(void) {
    const shape shapes[] = {{2, 3, 9, 5, 0.0}, {1, 2, 4, 3, 2.5}};
    rng_seed(302);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        shape s = shapes[t];
        const int64_t n = numel(s), r = nrows(s), L = s.L, d = s.d;
        double *q = rand_normal_f64(n, 3.0), *k = rand_normal_f64(n, 3.0),
               *v = rand_normal_f64(n, 1.0);
        double *o = zeros_f64(n), *lse = zeros_f64(r), *o_nolse = zeros_f64(n);
        fwd_f64(s, q, k, v, o, lse);
        int exact = 1;
        for (int64_t bh = 0; bh < s.B * s.H; bh++) {
            for (int64_t c = 0; c < d; c++) exact = exact && o[bh * L * d + c] == v[bh * L * d + c];
            double s00 = scaled_dot(q + bh * L * d, k + bh * L * d, d, scale_of(s));
            CHECK(fabs(lse[bh * L] - s00) <= TOL_F64_AGREE_ATOL + TOL_F64_AGREE_RTOL * fabs(s00),
                  "lse of row 0 (head %lld) = %.17g, want S_00 = %.17g", (long long)bh,
                  lse[bh * L], s00);
        }
        CHECK(exact, "row 0 of o is not exactly v_0 (shape %zu)", t);

        fwd_f64(s, q, k, v, o_nolse, NULL);
        CHECK(memcmp(o, o_nolse, (size_t)n * sizeof(double)) == 0,
              "forward with lse = NULL gives a different o (shape %zu)", t);
        free(q), free(k), free(v), free(o), free(lse), free(o_nolse);
    }
}

// ----------------------------------------------------------------------------
// dtype paths (and canaries around every output)

/* `got` (stored as dtype) against `want` (fp64) */
static void compare_stored(const char* what, mb_dtype dtype, const void* got,
                           const double* want, int64_t n, double rtol, double atol) {
    double* got64 = tb_unpack(got, n, dtype);
    char name[96];
    snprintf(name, sizeof name, "%s: %s vs f64", mb_dtype_name(dtype), what);
    expect_close_f64(name, got64, want, n, rtol, atol);
    free(got64);
}

static void check_dtype_path(mb_dtype dtype, shape s, uint64_t seed, double rtol,
                             double atol) {
    const int64_t n = numel(s), r = nrows(s);
    const mb_dtype pdtype = mb_param_dtype(dtype);
    const size_t act = (size_t)n * mb_dtype_size(dtype), par = (size_t)r * mb_dtype_size(pdtype);
    rng_seed(seed);
    double *x[4]; /* q, k, v, dout in fp64 */
    for (int t = 0; t < 4; t++) x[t] = rand_normal_f64(n, 1.0);
    // the inputs in `dtype`, and the fp64 reference's copies of the same rounded values
    void* in[4];
    double* rounded[4];
    for (int t = 0; t < 4; t++) {
        in[t] = tb_guarded_alloc((size_t)n * mb_dtype_size(dtype));
        tb_pack_into(in[t], x[t], n, dtype);
        rounded[t] = tb_unpack(in[t], n, dtype);
    }

    // fp64 reference on the rounded inputs
    double *o64 = zeros_f64(n), *lse64 = zeros_f64(r);
    double *dq64 = zeros_f64(n), *dk64 = zeros_f64(n), *dv64 = zeros_f64(n);
    fwd_f64(s, rounded[0], rounded[1], rounded[2], o64, lse64);
    bwd_f64(s, rounded[0], rounded[1], rounded[2], o64, lse64, rounded[3], dq64, dk64, dv64);

    // the `dtype` path, every output between canaries
    void *o = tb_guarded_alloc(act), *lse = tb_guarded_alloc(par);
    void *dq = tb_guarded_alloc(act), *dk = tb_guarded_alloc(act), *dv = tb_guarded_alloc(act);
    mb_attention_params p = params_of(s, dtype);
    CHECK_OK(attn_fwd_cpu(&p, in[0], in[1], in[2], o, lse));
    CHECK_OK(attn_bwd_cpu(&p, in[0], in[1], in[2], o, lse, in[3], dq, dk, dv));

    compare_stored("o", dtype, o, o64, n, rtol, atol);
    compare_stored("lse", pdtype, lse, lse64, r, rtol, atol);
    compare_stored("dq", dtype, dq, dq64, n, rtol, atol);
    compare_stored("dk", dtype, dk, dk64, n, rtol, atol);
    compare_stored("dv", dtype, dv, dv64, n, rtol, atol);
    CHECK(tb_guards_intact(o, act) && tb_guards_intact(lse, par),
          "%s: the forward wrote outside o or lse", mb_dtype_name(dtype));
    CHECK(tb_guards_intact(dq, act) && tb_guards_intact(dk, act) && tb_guards_intact(dv, act),
          "%s: the backward wrote outside dq, dk or dv", mb_dtype_name(dtype));

    for (int t = 0; t < 4; t++) free(x[t]), tb_guarded_free(in[t]), free(rounded[t]);
    free(o64), free(lse64), free(dq64), free(dk64), free(dv64);
    tb_guarded_free(o), tb_guarded_free(lse), tb_guarded_free(dq), tb_guarded_free(dk), tb_guarded_free(dv);
}

static void test_dtypes(void) {
    const shape s = {2, 2, 24, 8, 0.0};
    check_dtype_path(MB_DTYPE_F32, s, 401, TOL_F32_STORAGE_RTOL, TOL_F32_STORAGE_ATOL);
    check_dtype_path(MB_DTYPE_BF16, s, 402, TOL_BF16_STORAGE_RTOL, TOL_BF16_STORAGE_ATOL);
    // fp64 against itself: exact, but its outputs get the canary check too
    check_dtype_path(MB_DTYPE_F64, s, 403, TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
    check_dtype_path(MB_DTYPE_F32, (shape){1, 3, 1, 3, 0.9}, 404, TOL_F32_STORAGE_RTOL,
                     TOL_F32_STORAGE_ATOL);
}

// ----------------------------------------------------------------------------
// refused calls write nothing

static void test_refused_calls(void) {
    const shape s = {1, 2, 6, 3, 0.0};
    const int64_t n = numel(s), r = nrows(s);
    rng_seed(501);
    double *q = rand_normal_f64(n, 1.0), *k = rand_normal_f64(n, 1.0),
           *v = rand_normal_f64(n, 1.0), *dout = rand_normal_f64(n, 1.0);
    double *o = rand_normal_f64(n, 1.0), *lse = rand_normal_f64(r, 1.0);
    double *dq = rand_normal_f64(n, 1.0), *dk = rand_normal_f64(n, 1.0),
           *dv = rand_normal_f64(n, 1.0);
    double *o0 = copy_f64(o, n), *lse0 = copy_f64(lse, r), *dq0 = copy_f64(dq, n);
    double *dk0 = copy_f64(dk, n), *dv0 = copy_f64(dv, n);

    mb_attention_params bad_scale = params_of(s, MB_DTYPE_F64);
    bad_scale.scale = -1.0;
    mb_attention_params f16 = params_of(s, MB_DTYPE_F16);
    mb_attention_params zero_len = params_of(s, MB_DTYPE_F64);
    zero_len.seqlen = 0;
    mb_attention_params ok = params_of(s, MB_DTYPE_F64);

    CHECK(attn_fwd_cpu(&bad_scale, q, k, v, o, lse) == MB_ERR_BAD_OPTION,
          "negative scale not refused");
    CHECK(mb_last_error()[0] != '\0', "refused call left no error message");
    CHECK(attn_fwd_cpu(&f16, q, k, v, o, lse) == MB_ERR_DTYPE, "f16 not refused");
    CHECK(attn_fwd_cpu(&zero_len, q, k, v, o, lse) == MB_ERR_BAD_DIM,
          "seqlen 0 not refused");
    CHECK(attn_fwd_cpu(&ok, q, NULL, v, o, lse) == MB_ERR_NULL_POINTER,
          "k = NULL not refused");
    CHECK(attn_bwd_cpu(&ok, q, k, v, o, NULL, dout, dq, dk, dv) == MB_ERR_NULL_POINTER,
          "backward with lse = NULL not refused");
    CHECK(attn_bwd_cpu(&bad_scale, q, k, v, o, lse, dout, dq, dk, dv) ==
              MB_ERR_BAD_OPTION, "backward: negative scale not refused");
    CHECK(attn_bwd_cpu(&f16, q, k, v, o, lse, dout, dq, dk, dv) == MB_ERR_DTYPE,
          "backward: f16 not refused");

    int untouched = memcmp(o, o0, (size_t)n * 8) == 0 && memcmp(lse, lse0, (size_t)r * 8) == 0 &&
                    memcmp(dq, dq0, (size_t)n * 8) == 0 && memcmp(dk, dk0, (size_t)n * 8) == 0 &&
                    memcmp(dv, dv0, (size_t)n * 8) == 0;
    CHECK(untouched, "a refused call wrote into an output");

    CHECK_OK(attn_fwd_cpu(&ok, q, k, v, o, lse));
    CHECK(mb_last_error()[0] == '\0', "a successful call left the error message set: %s",
          mb_last_error());
    free(q), free(k), free(v), free(dout), free(o), free(lse), free(dq), free(dk), free(dv);
    free(o0), free(lse0), free(dq0), free(dk0), free(dv0);
}

// ----------------------------------------------------------------------------
// memory: the (L, L) score matrix dominates

/* Peak scratch bytes of one fp64 forward (or backward) at B = H = 1, d = 4. */
static int64_t peak_bytes(int64_t L, int backward) {
    const shape s = {1, 1, L, 4, 0.0};
    const int64_t n = numel(s), r = nrows(s);
    double *q = rand_normal_f64(n, 1.0), *k = rand_normal_f64(n, 1.0),
           *v = rand_normal_f64(n, 1.0), *dout = rand_normal_f64(n, 1.0);
    double *o = zeros_f64(n), *lse = zeros_f64(r);
    double *dq = zeros_f64(n), *dk = zeros_f64(n), *dv = zeros_f64(n);
    if (backward) fwd_f64(s, q, k, v, o, lse);
    mb_cpu_memory_reset_peak();
    if (backward)
        bwd_f64(s, q, k, v, o, lse, dout, dq, dk, dv);
    else
        fwd_f64(s, q, k, v, o, lse);
    int64_t peak = mb_cpu_memory_peak_bytes();
    free(q), free(k), free(v), free(dout), free(o), free(lse), free(dq), free(dk), free(dv);
    return peak;
}

static void test_memory(void) {
    rng_seed(601);
    const int64_t f64 = peak_bytes(64, 0), f128 = peak_bytes(128, 0);
    const int64_t b64 = peak_bytes(64, 1), b128 = peak_bytes(128, 1);
    printf("peak scratch: fwd L=64 %lld B, L=128 %lld B; bwd L=64 %lld B, L=128 %lld B\n",
           (long long)f64, (long long)f128, (long long)b64, (long long)b128);
    CHECK(f64 >= 64 * 64 * 8, "fwd L=64: peak %lld < L*L*8", (long long)f64);
    CHECK(f128 >= 128 * 128 * 8, "fwd L=128: peak %lld < L*L*8", (long long)f128);
    CHECK(f128 >= 3 * f64, "fwd peak grows %lld -> %lld, less than 3x when L doubles",
          (long long)f64, (long long)f128);
    CHECK(b128 >= 128 * 128 * 8, "bwd L=128: peak %lld < L*L*8", (long long)b128);
    CHECK(b128 >= 3 * b64, "bwd peak grows %lld -> %lld, less than 3x when L doubles",
          (long long)b64, (long long)b128);
    // everything was freed: nothing stays live after the calls
    mb_cpu_memory_reset_peak();
    CHECK(mb_cpu_memory_peak_bytes() == 0, "scratch still live after the calls: %lld bytes",
          (long long)mb_cpu_memory_peak_bytes());
}

// ----------------------------------------------------------------------------

int main(void) {
    test_brute_force_agreement();
    test_gradients();
    test_large_logits();
    test_first_row_and_null_lse();
    test_dtypes();
    test_refused_calls();
    test_memory();
    return test_main_result("test_attention");
}
