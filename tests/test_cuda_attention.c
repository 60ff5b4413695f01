/*
 * test_cuda_attention.c -- every registered CUDA version of causal attention
 * (fwd, bwd, decode) against the fp64 CPU reference on fresh random inputs.
 *
 * Inputs are drawn in fp64 (N(0, 1)), rounded to the device dtype, and the same
 * rounded values go to the CPU reference in fp64. Every device output is
 * poisoned with 0xFF bytes (NaN) before each run. A version is skipped for a
 * dtype or head dim its registry line does not list.
 *   fwd     o and lse; L from 1 to 8K (primes, non-multiples of 64/128), B, H > 1,
 *           grouped-query K/V, d 64 and 128, default and custom scale, fp32 and bf16;
 *           L > 4K checked on sampled rows (the reference of one row i is the CPU
 *           decode of q_i over a cache of keys 0..i); lse = NULL accepted
 *   bwd     dq, dk, dv from the reference's o and lse, run twice: identical bytes
 *           (except versions named "*atomic*", registered as not deterministic)
 *   decode  against the CPU reference (ragged cache lengths, L_max > length, GQA,
 *           more than 128 sequences) and against the forward: the last row of the
 *           causal forward over L tokens == decode of that query over those L keys
 *   big     tensors of more than 2^31 elements: a forward (B*H*L*d = 2.2e9) and a
 *           decode (cache of 2.15e9 elements), checked on sampled heads/sequences
 *   naive   a workspace that cannot fit returns MB_ERR_ALLOC with a message
 * Usage: test_cuda_attention [--small]   (--small: a few small cases, for
 * compute-sanitizer). MB_SKIP_BIG=1 skips the big cases. Skips (exit TB_SKIP,
 * 77) without CUDA in the build or without a GPU.
 */
#include "testing.h"
#include "tolerances.h"

#ifndef MB_HAVE_CUDA
int main(void) {
    printf("test_cuda_attention: SKIP: mambabench was built without CUDA\n");
    return TB_SKIP;
}
#else

#include <cuda_runtime_api.h>

// ----------------------------------------------------------------------------
// device buffers of fp64 host values

static size_t nbytes(int64_t n, mb_dtype dt) { return (size_t)(n > 0 ? n : 1) * mb_dtype_size(dt); }

/* x (n) stored as dt on the device */
static void* upload(const double* x, int64_t n, mb_dtype dt) {
    void* st = tb_pack(x, n, dt);
    void* d = NULL;
    tb_cuda_ok(cudaMalloc(&d, nbytes(n, dt)), "cudaMalloc");
    tb_cuda_ok(cudaMemcpy(d, st, (size_t)n * mb_dtype_size(dt), cudaMemcpyHostToDevice), "H2D");
    free(st);
    return d;
}

/* a device buffer of n dt elements, every byte 0xFF (NaN in fp32 and bf16) */
static void* nan_buffer(int64_t n, mb_dtype dt) {
    void* d = NULL;
    tb_cuda_ok(cudaMalloc(&d, nbytes(n, dt)), "cudaMalloc");
    tb_cuda_ok(cudaMemset(d, 0xFF, nbytes(n, dt)), "poison");
    return d;
}
static void poison(void* d, int64_t n, mb_dtype dt) {
    tb_cuda_ok(cudaMemset(d, 0xFF, nbytes(n, dt)), "poison");
}

/* n elements of dt at element offset `at` of a device tensor, as fp64 */
static double* download(const void* d, int64_t at, int64_t n, mb_dtype dt) {
    void* h = tb_malloc(nbytes(n, dt));
    tb_cuda_ok(cudaDeviceSynchronize(), "sync");
    tb_cuda_ok(cudaMemcpy(h, (const char*)d + (size_t)at * mb_dtype_size(dt),
                          (size_t)n * mb_dtype_size(dt), cudaMemcpyDeviceToHost),
               "D2H");
    double* v = tb_unpack(h, n, dt);
    free(h);
    return v;
}

/* raw bytes of a device buffer (determinism checks) */
static void* download_bytes(const void* d, size_t bytes) {
    void* h = tb_malloc(bytes);
    tb_cuda_ok(cudaDeviceSynchronize(), "sync");
    tb_cuda_ok(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost), "D2H");
    return h;
}

// ----------------------------------------------------------------------------
// tolerances and comparison

typedef struct {
    double rtol, atol;
} tol;

static tol tol_out(mb_dtype dt) {
    return dt == MB_DTYPE_BF16 ? (tol){TOL_ATTN_BF16_RTOL, TOL_ATTN_BF16_ATOL}
                               : (tol){TOL_ATTN_F32_RTOL, TOL_ATTN_F32_ATOL};
}
static tol tol_lse(mb_dtype dt) {
    return dt == MB_DTYPE_BF16 ? (tol){TOL_ATTN_LSE_BF16_RTOL, TOL_ATTN_LSE_BF16_ATOL}
                               : (tol){TOL_ATTN_F32_RTOL, TOL_ATTN_F32_ATOL};
}
static tol tol_grad(mb_dtype dt) {
    return dt == MB_DTYPE_BF16 ? (tol){TOL_ATTN_GRAD_BF16_RTOL, TOL_ATTN_GRAD_BF16_ATOL}
                               : (tol){TOL_ATTN_F32_RTOL, TOL_ATTN_F32_ATOL};
}
static tol doubled(tol t) { return (tol){2 * t.rtol, 2 * t.atol}; }

/* |got - want| <= atol * s + rtol * |want| with s = max(1, max |want|), the
 * tensor's scale (tests/tolerances.h says why); NaN fails. Prints the worst. */
static void compare(const char* what, const double* got, const double* want, int64_t n, tol t) {
    double s = 1.0;
    for (int64_t i = 0; i < n; i++) s = fmax(s, fabs(want[i]));
    int64_t bad = 0, worst = 0;
    double worst_ratio = 0.0, max_err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]), lim = t.atol * s + t.rtol * fabs(want[i]);
        if (!(err <= lim)) bad++;
        double r = isnan(err) ? INFINITY : err / lim;
        if (r > worst_ratio || isnan(err)) worst_ratio = r, worst = i;
        if (err > max_err || isnan(err)) max_err = err;
    }
    CHECK(bad == 0, "%s: %lld of %lld outside tolerance; worst [%lld] got %g want %g", what,
          (long long)bad, (long long)n, (long long)worst, n ? got[worst] : 0.0,
          n ? want[worst] : 0.0);
    printf("      %-22s max|err| %.3g  worst err/tol %.3f\n", what, max_err, worst_ratio);
}

/* download n elements at offset `at` and compare them */
static void compare_dev(const char* what, const void* d, int64_t at, int64_t n, mb_dtype dt,
                        const double* want, tol t) {
    double* got = download(d, at, n, dt);
    compare(what, got, want, n, t);
    free(got);
}

// ----------------------------------------------------------------------------
// the registered versions

/* Select CUDA version k of attention `dir` for this thread: its name, or NULL
 * when its registry line does not take dtype dt or head dim d. */
static const char* select_version(mb_direction dir, int k, mb_dtype dt, int64_t d) {
    mb_impl_info info;
    mb_status st = mb_impl_get(MB_OP_ATTENTION, dir, MB_BACKEND_CUDA, k, &info);
    CHECK(st == MB_OK, "mb_impl_get(%s, %d): %s", mb_direction_name(dir), k, mb_last_error());
    if (st != MB_OK || !(info.dtypes & (1u << dt))) return NULL;
    if (info.headdims && (d % 8 != 0 || d > 256 || !(info.headdims & (1u << (d / 8 - 1)))))
        return NULL;
    CHECK_OK(mb_impl_select(MB_OP_ATTENTION, dir, MB_BACKEND_CUDA, info.name));
    return info.name;
}

static int version_count(mb_direction dir) {
    return mb_impl_count(MB_OP_ATTENTION, dir, MB_BACKEND_CUDA);
}

static void select_default(mb_direction dir) {
    CHECK_OK(mb_impl_select(MB_OP_ATTENTION, dir, MB_BACKEND_CUDA, NULL));
}

// ----------------------------------------------------------------------------
// references

/* o (d) and lse of query row i of head (b, h) (one row of the causal forward),
 * from the CPU decode of q_i over the cache of keys 0..i of its K/V head. */
static void reference_row(const mb_attention_params* p, const double* q, /* (B, H, L, d) */
                          const double* k, const double* v,              /* (B, H_kv, L, d) */
                          int64_t b, int64_t h, int64_t i, double* o, double* lse) {
    const int64_t L = p->seqlen, d = p->headdim, H = p->nheads;
    const int64_t Hkv = p->nheads_kv ? p->nheads_kv : H;
    const int64_t kv = (b * Hkv + h / (H / Hkv)) * L * d;
    mb_attention_decode_params dp = {1, 1, 1, d, L, p->scale, MB_DTYPE_F64};
    const int64_t len = i + 1;
    mb_attention_decode_inputs in = {q + ((b * H + h) * L + i) * d, k + kv, v + kv, &len};
    CHECK_OK(mb_attention_decode_cpu(&dp, &in, o, lse));
}

// ----------------------------------------------------------------------------
// forward and backward cases

typedef struct {
    int64_t B, H, Hkv, L, d;
    double scale; /* 0: 1/sqrt(d) */
    int sampled;  /* fwd on sampled rows only, no bwd (L too large for the O(L^2) reference) */
} acase;

/* the device tensors of one case */
typedef struct {
    mb_attention_params p;
    tb_attention_problem pr; /* q, k, v: fp64 host values and their stored copies */
    void *q, *k, *v, *o, *lse; /* device */
    int64_t nq, nkv, nlse;
} fwd_setup;

static fwd_setup fwd_make(const acase* c, mb_dtype dt) {
    fwd_setup s;
    mb_attention_params p = {c->B, c->H, c->L, c->d, c->scale, dt, c->Hkv};
    s.p = p;
    s.pr = tb_attention_make(p);
    s.nq = c->B * c->H * c->L * c->d, s.nkv = c->B * c->Hkv * c->L * c->d;
    s.nlse = c->B * c->H * c->L;
    s.q = tb_device_upload(&s.pr.q), s.k = tb_device_upload(&s.pr.k), s.v = tb_device_upload(&s.pr.v);
    s.o = nan_buffer(s.nq, dt), s.lse = nan_buffer(s.nlse, MB_DTYPE_F32);
    return s;
}

static void fwd_free(fwd_setup* s) {
    void* d[] = {s->q, s->k, s->v, s->o, s->lse};
    for (int i = 0; i < 5; i++) tb_device_free(d[i]);
    tb_attention_free(&s->pr);
}

/* Run the selected forward into s->o, s->lse (poisoned first). */
static void run_fwd(fwd_setup* s, int with_lse) {
    poison(s->o, s->nq, s->p.dtype), poison(s->lse, s->nlse, MB_DTYPE_F32);
    mb_attention_inputs in = {s->q, s->k, s->v};
    CHECK_OK(mb_attention_fwd_cuda(&s->p, &in, s->o, with_lse ? s->lse : NULL, NULL));
}

/* Sampled rows: heads (0, 0) and (B-1, H-1), rows 0, 1, L/2, L-2, L-1 and 3 random. */
static void check_fwd_sampled(fwd_setup* s, const char* name) {
    const mb_attention_params* p = &s->p;
    const int64_t L = p->seqlen, d = p->headdim, H = p->nheads;
    const int64_t heads[2][2] = {{0, 0}, {p->batch - 1, H - 1}};
    int64_t rows[8] = {0, 1 % L, L / 2, L > 1 ? L - 2 : 0, L - 1};
    for (int r = 5; r < 8; r++) rows[r] = (int64_t)(rng_u64() % (uint64_t)L);
    double* want_o = zeros_f64(16 * d);
    double* want_l = zeros_f64(16);
    double* got_o = zeros_f64(16 * d);
    double* got_l = zeros_f64(16);
    int n = 0;
    for (int hh = 0; hh < 2; hh++)
        for (int r = 0; r < 8; r++, n++) {
            const int64_t b = heads[hh][0], h = heads[hh][1], i = rows[r], row = (b * H + h) * L + i;
            reference_row(p, s->pr.q.host, s->pr.k.host, s->pr.v.host, b, h, i, want_o + n * d,
                          want_l + n);
            double* go = download(s->o, row * d, d, p->dtype);
            double* gl = download(s->lse, row, 1, MB_DTYPE_F32);
            memcpy(got_o + n * d, go, (size_t)d * sizeof(double));
            got_l[n] = gl[0];
            free(go), free(gl);
        }
    char what[64];
    snprintf(what, sizeof what, "%s o (16 rows)", name);
    compare(what, got_o, want_o, 16 * d, tol_out(p->dtype));
    snprintf(what, sizeof what, "%s lse (16 rows)", name);
    compare(what, got_l, want_l, 16, tol_lse(p->dtype));
    free(want_o), free(want_l), free(got_o), free(got_l);
}

/* Decode of the last query row over a cache of the L keys of the forward
 * problem (L_max = L): must match the forward's last row (o_fwd, lse_fwd: the
 * GPU forward, (B, H, L, d) and (B, H, L)) and the reference's. */
static void check_decode_vs_fwd(fwd_setup* s, const double* o_fwd, const double* lse_fwd,
                                const double* o_ref, const double* lse_ref) {
    const mb_attention_params* p = &s->p;
    const int64_t B = p->batch, H = p->nheads, L = p->seqlen, d = p->headdim;
    double* q_last = zeros_f64(B * H * d);
    double *want_o = zeros_f64(B * H * d), *want_l = zeros_f64(B * H);
    double *ref_o = zeros_f64(B * H * d), *ref_l = zeros_f64(B * H);
    for (int64_t bh = 0; bh < B * H; bh++) {
        const int64_t row = bh * L + L - 1;
        memcpy(q_last + bh * d, s->pr.q.host + row * d, (size_t)d * sizeof(double));
        memcpy(want_o + bh * d, o_fwd + row * d, (size_t)d * sizeof(double));
        memcpy(ref_o + bh * d, o_ref + row * d, (size_t)d * sizeof(double));
        want_l[bh] = lse_fwd[row], ref_l[bh] = lse_ref[row];
    }
    int64_t* lens = tb_malloc((size_t)B * sizeof(int64_t));
    for (int64_t b = 0; b < B; b++) lens[b] = L;
    void* q = upload(q_last, B * H * d, p->dtype);
    void* o = nan_buffer(B * H * d, p->dtype);
    void* lse = nan_buffer(B * H, MB_DTYPE_F32);
    mb_attention_decode_params dp = {B, H, p->nheads_kv, d, L, p->scale, p->dtype};
    mb_attention_decode_inputs in = {q, s->k, s->v, lens};
    for (int k = 0; k < version_count(MB_DIR_DECODE); k++) {
        const char* name = select_version(MB_DIR_DECODE, k, p->dtype, d);
        if (!name) continue;
        printf("    decode %s of the last row vs the forward's\n", name);
        poison(o, B * H * d, p->dtype), poison(lse, B * H, MB_DTYPE_F32);
        CHECK_OK(mb_attention_decode_cuda(&dp, &in, o, lse, NULL));
        compare_dev("o vs fwd", o, 0, B * H * d, p->dtype, want_o, doubled(tol_out(p->dtype)));
        compare_dev("lse vs fwd", lse, 0, B * H, MB_DTYPE_F32, want_l, doubled(tol_lse(p->dtype)));
        compare_dev("o vs reference", o, 0, B * H * d, p->dtype, ref_o, tol_out(p->dtype));
    }
    select_default(MB_DIR_DECODE);
    free(q_last), free(want_o), free(want_l), free(ref_o), free(ref_l), free(lens);
    tb_device_free(q), tb_device_free(o), tb_device_free(lse);
}

/* Every backward version from the reference's o and lse (rounded to what the
 * device holds), run twice: identical bytes, and dq, dk, dv vs the reference. */
static void check_bwd(fwd_setup* s, const double* o_ref, const double* lse_ref) {
    const mb_attention_params* p = &s->p;
    const mb_dtype dt = p->dtype;
    double* o_in = copy_f64(o_ref, s->nq);
    double* lse_in = copy_f64(lse_ref, s->nlse);
    tb_round_array(o_in, s->nq, dt);
    tb_round_array(lse_in, s->nlse, MB_DTYPE_F32);
    tb_tensor dout = tb_tensor_normal(s->nq, dt, 1.0);
    double *dq_ref = zeros_f64(s->nq), *dk_ref = zeros_f64(s->nkv), *dv_ref = zeros_f64(s->nkv);
    mb_attention_params p64 = *p;
    p64.dtype = MB_DTYPE_F64;
    CHECK_OK(attn_bwd_cpu(&p64, s->pr.q.host, s->pr.k.host, s->pr.v.host, o_in, lse_in, dout.host,
                          dq_ref, dk_ref, dv_ref));
    void* o = upload(o_in, s->nq, dt);
    void* lse = upload(lse_in, s->nlse, MB_DTYPE_F32);
    void* g_dout = tb_device_upload(&dout);
    void* g[3] = {nan_buffer(s->nq, dt), nan_buffer(s->nkv, dt), nan_buffer(s->nkv, dt)};
    const int64_t n[3] = {s->nq, s->nkv, s->nkv};
    const double* want[3] = {dq_ref, dk_ref, dv_ref};
    const char* names[3] = {"dq", "dk", "dv"};
    for (int k = 0; k < version_count(MB_DIR_BWD); k++) {
        const char* name = select_version(MB_DIR_BWD, k, dt, p->headdim);
        if (!name) continue;
        printf("    bwd %s\n", name);
        void* first[3];
        for (int rep = 0; rep < 2; rep++) {
            for (int i = 0; i < 3; i++) poison(g[i], n[i], dt);
            CHECK_OK(attn_bwd_cuda(p, s->q, s->k, s->v, o, lse, g_dout, g[0], g[1], g[2]));
            for (int i = 0; i < 3; i++) {
                void* bytes = download_bytes(g[i], nbytes(n[i], dt));
                if (rep == 0) {
                    first[i] = bytes;
                    continue;
                }
                /* flash-atomic is registered as not deterministic (fp32 atomics into dQ) */
                CHECK(strstr(name, "atomic") || memcmp(first[i], bytes, nbytes(n[i], dt)) == 0,
                      "bwd %s %s: two runs differ (not deterministic)", name, names[i]);
                free(first[i]), free(bytes);
                compare_dev(names[i], g[i], 0, n[i], dt, want[i], tol_grad(dt));
            }
        }
    }
    select_default(MB_DIR_BWD);
    for (int i = 0; i < 3; i++) tb_device_free(g[i]);
    tb_device_free(o), tb_device_free(lse), tb_device_free(g_dout);
    tb_tensor_free(&dout);
    free(o_in), free(lse_in), free(dq_ref), free(dk_ref), free(dv_ref);
}

static void run_case(const acase* c, mb_dtype dt) {
    printf("  case B%lld H%lld H_kv%lld L%lld d%lld scale %g %s%s\n", (long long)c->B,
           (long long)c->H, (long long)c->Hkv, (long long)c->L, (long long)c->d, c->scale,
           mb_dtype_name(dt), c->sampled ? " (sampled rows)" : "");
    fwd_setup s = fwd_make(c, dt);
    double *o_ref = NULL, *lse_ref = NULL, *o_first = NULL, *lse_first = NULL;
    if (!c->sampled) {
        mb_attention_params p64 = s.p;
        p64.dtype = MB_DTYPE_F64;
        o_ref = zeros_f64(s.nq), lse_ref = zeros_f64(s.nlse);
        CHECK_OK(attn_fwd_cpu(&p64, s.pr.q.host, s.pr.k.host, s.pr.v.host, o_ref, lse_ref));
    }
    for (int k = 0; k < version_count(MB_DIR_FWD); k++) {
        const char* name = select_version(MB_DIR_FWD, k, dt, c->d);
        if (!name) continue;
        printf("    fwd %s\n", name);
        run_fwd(&s, 1);
        if (c->sampled) {
            check_fwd_sampled(&s, name);
            continue;
        }
        double* o = download(s.o, 0, s.nq, dt);
        double* lse = download(s.lse, 0, s.nlse, MB_DTYPE_F32);
        compare("o", o, o_ref, s.nq, tol_out(dt));
        compare("lse", lse, lse_ref, s.nlse, tol_lse(dt));
        run_fwd(&s, 0); /* lse may be NULL */
        compare_dev("o (lse NULL)", s.o, 0, s.nq, dt, o_ref, tol_out(dt));
        if (!o_first) o_first = o, lse_first = lse;
        else free(o), free(lse);
    }
    select_default(MB_DIR_FWD);
    if (!c->sampled) {
        if (o_first) check_decode_vs_fwd(&s, o_first, lse_first, o_ref, lse_ref);
        check_bwd(&s, o_ref, lse_ref);
    }
    free(o_ref), free(lse_ref), free(o_first), free(lse_first);
    fwd_free(&s);
}

// ----------------------------------------------------------------------------
// decode cases

typedef struct {
    int64_t B, H, Hkv, d, Lmax;
    double scale;
    int64_t lens[4]; /* lengths of the first sequences; the rest random in 1..L_max */
} dcase;

static void run_decode_case(const dcase* c, mb_dtype dt) {
    printf("  decode B%lld H%lld H_kv%lld d%lld L_max %lld scale %g %s\n", (long long)c->B,
           (long long)c->H, (long long)c->Hkv, (long long)c->d, (long long)c->Lmax, c->scale,
           mb_dtype_name(dt));
    const int64_t nq = c->B * c->H * c->d, nkv = c->B * c->Hkv * c->Lmax * c->d, nl = c->B * c->H;
    int64_t* lens = tb_malloc((size_t)c->B * sizeof(int64_t));
    for (int64_t b = 0; b < c->B; b++)
        lens[b] = b < 4 && c->lens[b] ? c->lens[b] : 1 + (int64_t)(rng_u64() % (uint64_t)c->Lmax);
    tb_tensor q = tb_tensor_normal(nq, dt, 1.0), k = tb_tensor_normal(nkv, dt, 1.0);
    tb_tensor v = tb_tensor_normal(nkv, dt, 1.0);
    double *o_ref = zeros_f64(nq), *lse_ref = zeros_f64(nl);
    mb_attention_decode_params p = {c->B, c->H, c->Hkv, c->d, c->Lmax, c->scale, dt};
    mb_attention_decode_params p64 = p;
    p64.dtype = MB_DTYPE_F64;
    mb_attention_decode_inputs in64 = {q.host, k.host, v.host, lens};
    CHECK_OK(mb_attention_decode_cpu(&p64, &in64, o_ref, lse_ref));
    void *dq = tb_device_upload(&q), *dk = tb_device_upload(&k), *dv = tb_device_upload(&v);
    void *o = nan_buffer(nq, dt), *lse = nan_buffer(nl, MB_DTYPE_F32);
    mb_attention_decode_inputs in = {dq, dk, dv, lens};
    for (int kv = 0; kv < version_count(MB_DIR_DECODE); kv++) {
        const char* name = select_version(MB_DIR_DECODE, kv, dt, c->d);
        if (!name) continue;
        printf("    decode %s\n", name);
        poison(o, nq, dt), poison(lse, nl, MB_DTYPE_F32);
        CHECK_OK(mb_attention_decode_cuda(&p, &in, o, lse, NULL));
        compare_dev("o", o, 0, nq, dt, o_ref, tol_out(dt));
        compare_dev("lse", lse, 0, nl, MB_DTYPE_F32, lse_ref, tol_lse(dt));
        poison(o, nq, dt);
        CHECK_OK(mb_attention_decode_cuda(&p, &in, o, NULL, NULL)); /* lse may be NULL */
        compare_dev("o (lse NULL)", o, 0, nq, dt, o_ref, tol_out(dt));
    }
    select_default(MB_DIR_DECODE);
    tb_device_free(dq), tb_device_free(dk), tb_device_free(dv), tb_device_free(o), tb_device_free(lse);
    tb_tensor_free(&q), tb_tensor_free(&k), tb_tensor_free(&v);
    free(o_ref), free(lse_ref), free(lens);
}

// ----------------------------------------------------------------------------
// big tensors (> 2^31 elements): periodic random contents, sampled checks

/* Element e of every big tensor is pattern[e % kPeriod]: kPeriod random bf16
 * values (a period that is no multiple of d, so rows differ), copied over the
 * device tensor block by block; the host gathers any slice from the pattern. */
enum { kPeriod = (1 << 22) + 3 };

typedef struct {
    double* host;  /* (kPeriod) */
    void* dev;     /* (kPeriod) bf16 */
} pattern;

static pattern pattern_make(void) {
    pattern pt;
    pt.host = rand_normal_f64(kPeriod, 1.0);
    tb_round_array(pt.host, kPeriod, MB_DTYPE_BF16);
    pt.dev = upload(pt.host, kPeriod, MB_DTYPE_BF16);
    return pt;
}

/* a device bf16 tensor of n elements filled with the pattern, or NULL when it does not fit */
static void* pattern_tensor(const pattern* pt, int64_t n) {
    void* d = NULL;
    if (cudaMalloc(&d, (size_t)n * 2) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    for (int64_t off = 0; off < n; off += kPeriod) {
        int64_t len = n - off < kPeriod ? n - off : kPeriod;
        tb_cuda_ok(cudaMemcpy((char*)d + off * 2, pt->dev, (size_t)len * 2,
                              cudaMemcpyDeviceToDevice), "fill");
    }
    return d;
}

/* elements [at, at + n) of a pattern tensor, fp64 */
static double* pattern_slice(const pattern* pt, int64_t at, int64_t n) {
    double* x = tb_malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) x[i] = pt->host[(at + i) % kPeriod];
    return x;
}

/* Give the memory the pools keep back to the driver before and after a big case. */
static void trim_pool(void) {
    cudaMemPool_t pool;
    int dev = 0;
    tb_cuda_ok(cudaDeviceSynchronize(), "sync");
    tb_cuda_ok(cudaGetDevice(&dev), "cudaGetDevice");
    tb_cuda_ok(cudaDeviceGetDefaultMemPool(&pool, dev), "default pool");
    tb_cuda_ok(cudaMemPoolTrimTo(pool, 0), "trim pool");
}

/* Forward, B 8200, H 16, L 131, d 128, bf16: q, k, v, o have 2.2e9 elements;
 * heads (0, 0), (B/2, 7) and (B-1, H-1) (offsets past 2^31) vs the reference. */
static void run_big_fwd(const pattern* pt) {
    const int64_t B = 8200, H = 16, L = 131, d = 128, n = B * H * L * d, hd = L * d;
    printf("  big fwd B%lld H%lld L%lld d%lld bf16: %lld elements per tensor\n", (long long)B,
           (long long)H, (long long)L, (long long)d, (long long)n);
    trim_pool();
    void *q = pattern_tensor(pt, n), *k = pattern_tensor(pt, n), *v = pattern_tensor(pt, n);
    void *o = NULL, *lse = NULL;
    if (q && k && v && cudaMalloc(&o, (size_t)n * 2) == cudaSuccess &&
        cudaMalloc(&lse, (size_t)(B * H * L) * 4) == cudaSuccess) {
        mb_attention_params p = {B, H, L, d, 0.0, MB_DTYPE_BF16, 0};
        const int64_t heads[3][2] = {{0, 0}, {B / 2, 7}, {B - 1, H - 1}};
        for (int kf = 0; kf < version_count(MB_DIR_FWD); kf++) {
            const char* name = select_version(MB_DIR_FWD, kf, MB_DTYPE_BF16, d);
            if (!name) continue;
            printf("    fwd %s\n", name);
            poison(o, n, MB_DTYPE_BF16), poison(lse, B * H * L, MB_DTYPE_F32);
            CHECK_OK(attn_fwd_cuda(&p, q, k, v, o, lse));
            for (int i = 0; i < 3; i++) {
                const int64_t bh = heads[i][0] * H + heads[i][1];
                double *hq = pattern_slice(pt, bh * hd, hd), *hk = pattern_slice(pt, bh * hd, hd);
                double *hv = pattern_slice(pt, bh * hd, hd);
                double *wo = zeros_f64(hd), *wl = zeros_f64(L);
                mb_attention_params p1 = {1, 1, L, d, 0.0, MB_DTYPE_F64, 0};
                CHECK_OK(attn_fwd_cpu(&p1, hq, hk, hv, wo, wl));
                compare_dev("o (one head)", o, bh * hd, hd, MB_DTYPE_BF16, wo, tol_out(MB_DTYPE_BF16));
                compare_dev("lse (one head)", lse, bh * L, L, MB_DTYPE_F32, wl, tol_lse(MB_DTYPE_BF16));
                free(hq), free(hk), free(hv), free(wo), free(wl);
            }
        }
        select_default(MB_DIR_FWD);
    } else {
        (void)cudaGetLastError();
        printf("    SKIP big fwd: not enough device memory\n");
    }
    void* all[] = {q, k, v, o, lse};
    for (int i = 0; i < 5; i++) tb_device_free(all[i]);
    trim_pool();
}

/* Decode, B 64, H 32, H_kv 8, d 128, L_max 32800, bf16: k and v have 2.15e9
 * elements; sequences 0 and 63 (offsets past 2^31) vs the reference. */
static void run_big_decode(const pattern* pt) {
    const int64_t B = 64, H = 32, Hkv = 8, d = 128, Lmax = 32800, n = B * Hkv * Lmax * d;
    printf("  big decode B%lld H%lld H_kv%lld d%lld L_max %lld bf16: %lld cache elements\n",
           (long long)B, (long long)H, (long long)Hkv, (long long)d, (long long)Lmax, (long long)n);
    trim_pool();
    int64_t lens[64];
    for (int64_t b = 0; b < B; b++) lens[b] = 1 + (int64_t)(rng_u64() % (uint64_t)Lmax);
    lens[0] = Lmax - 5, lens[B - 1] = Lmax;
    double* hq = rand_normal_f64(B * H * d, 1.0);
    tb_round_array(hq, B * H * d, MB_DTYPE_BF16);
    void *q = upload(hq, B * H * d, MB_DTYPE_BF16), *k = pattern_tensor(pt, n), *v = NULL;
    void *o = nan_buffer(B * H * d, MB_DTYPE_BF16), *lse = nan_buffer(B * H, MB_DTYPE_F32);
    if (k && cudaMalloc(&v, (size_t)n * 2) == cudaSuccess) {
        /* v: the pattern shifted by one period's worth of offset (differs from k) */
        tb_cuda_ok(cudaMemcpy(v, (char*)k + 2 * 1000, (size_t)(n - 1000) * 2,
                              cudaMemcpyDeviceToDevice), "v");
        tb_cuda_ok(cudaMemcpy((char*)v + (size_t)(n - 1000) * 2, k, 2 * 1000,
                              cudaMemcpyDeviceToDevice), "v");
        mb_attention_decode_params p = {B, H, Hkv, d, Lmax, 0.0, MB_DTYPE_BF16};
        mb_attention_decode_inputs in = {q, k, v, lens};
        for (int kd = 0; kd < version_count(MB_DIR_DECODE); kd++) {
            const char* name = select_version(MB_DIR_DECODE, kd, MB_DTYPE_BF16, d);
            if (!name) continue;
            printf("    decode %s\n", name);
            poison(o, B * H * d, MB_DTYPE_BF16), poison(lse, B * H, MB_DTYPE_F32);
            CHECK_OK(mb_attention_decode_cuda(&p, &in, o, lse, NULL));
            const int64_t seqs[2] = {0, B - 1}, per = Hkv * Lmax * d;
            for (int i = 0; i < 2; i++) {
                const int64_t b = seqs[i];
                double* sk = pattern_slice(pt, b * per, per);
                double* sv = zeros_f64(per);
                for (int64_t e = 0; e < per; e++) sv[e] = pt->host[(b * per + e + 1000) % n % kPeriod];
                double *wo = zeros_f64(H * d), *wl = zeros_f64(H);
                mb_attention_decode_params p1 = {1, H, Hkv, d, Lmax, 0.0, MB_DTYPE_F64};
                mb_attention_decode_inputs i1 = {hq + b * H * d, sk, sv, &lens[b]};
                CHECK_OK(mb_attention_decode_cpu(&p1, &i1, wo, wl));
                compare_dev("o (one sequence)", o, b * H * d, H * d, MB_DTYPE_BF16, wo, tol_out(MB_DTYPE_BF16));
                compare_dev("lse (one sequence)", lse, b * H, H, MB_DTYPE_F32, wl, tol_lse(MB_DTYPE_BF16));
                free(sk), free(sv), free(wo), free(wl);
            }
        }
        select_default(MB_DIR_DECODE);
    } else {
        (void)cudaGetLastError();
        printf("    SKIP big decode: not enough device memory\n");
    }
    void* all[] = {q, k, v, o, lse};
    for (int i = 0; i < 5; i++) tb_device_free(all[i]);
    free(hq);
    trim_pool();
}

// ----------------------------------------------------------------------------
// the naive version's workspace that cannot fit

static void check_naive_alloc_failure(void) {
    if (mb_impl_select(MB_OP_ATTENTION, MB_DIR_FWD, MB_BACKEND_CUDA, "naive") != MB_OK ||
        mb_impl_select(MB_OP_ATTENTION, MB_DIR_BWD, MB_BACKEND_CUDA, "naive") != MB_OK) {
        select_default(MB_DIR_FWD), select_default(MB_DIR_BWD);
        return;
    }
    printf("  naive: B 64 H 64 L 2^17 needs 2.8e14 bytes of scores: MB_ERR_ALLOC\n");
    /* nothing is launched before the workspace is allocated, so small buffers do */
    void* buf = nan_buffer(1 << 16, MB_DTYPE_F32);
    mb_attention_params p = {64, 64, 1 << 17, 64, 0.0, MB_DTYPE_BF16, 0};
    mb_status st = attn_fwd_cuda(&p, buf, buf, buf, buf, buf);
    CHECK(st == MB_ERR_ALLOC && strlen(mb_last_error()) > 0, "naive fwd: got %s (%s)",
          mb_status_string(st), mb_last_error());
    printf("    fwd: %s: %s\n", mb_status_string(st), mb_last_error());
    st = attn_bwd_cuda(&p, buf, buf, buf, buf, buf, buf, buf, buf, buf);
    CHECK(st == MB_ERR_ALLOC && strlen(mb_last_error()) > 0, "naive bwd: got %s (%s)",
          mb_status_string(st), mb_last_error());
    cudaError_t err = cudaDeviceSynchronize();
    CHECK(err == cudaSuccess && cudaGetLastError() == cudaSuccess,
          "the failed allocation left a CUDA error: %s", cudaGetErrorString(err));
    tb_device_free(buf);
    select_default(MB_DIR_FWD), select_default(MB_DIR_BWD);
}

int main(int argc, char** argv) {
    if (mb_cuda_device_count() == 0) {
        printf("test_cuda_attention: SKIP: no CUDA device on this machine\n");
        return TB_SKIP;
    }
    int small = argc > 1 && strcmp(argv[1], "--small") == 0; /* for compute-sanitizer */
    rng_seed(20261126);
    acase cases[] = {
        {1, 1, 1, 1, 64, 0.0, 0},
        {2, 3, 3, 7, 64, 0.0, 0},
        {2, 4, 2, 63, 128, 0.3, 0},
        {1, 4, 1, 129, 64, 0.0, 0},
        {3, 2, 2, 257, 128, 0.0, 0},
        {1, 4, 2, 1000, 64, 0.05, 0},
        {2, 2, 1, 1031, 128, 0.0, 0},
        {1, 2, 2, 2053, 64, 0.0, 0},
        {1, 1, 1, 4099, 64, 0.0, 0},
        {2, 4, 2, 300, 16, 0.0, 0}, /* the small heads flash-simt is for (naive, flash-simt) */
        {1, 2, 1, 700, 40, 0.2, 0},
        {1, 2, 1, 8191, 128, 0.0, 1},
        {2, 4, 4, 8192, 64, 0.1, 1},
    };
    dcase dcases[] = {
        {1, 1, 1, 64, 1, 0.0, {1}},
        {3, 8, 2, 128, 5000, 0.2, {1, 777, 4999}},
        {2, 6, 2, 32, 300, 0.0, {300, 5}},
        {4, 4, 4, 64, 20000, 0.0, {20000, 19999, 13, 8191}},
        {2, 16, 1, 128, 300, 0.0, {300, 257}},
        {200, 2, 1, 64, 64, 0.0, {64, 1}},
        {8, 16, 16, 128, 16389, 0.0, {16389}},
        {1, 2, 2, 256, 100, 0.0, {100}},
    };
    int nc = small ? 3 : (int)(sizeof cases / sizeof cases[0]);
    int nd = small ? 3 : (int)(sizeof dcases / sizeof dcases[0]);
    mb_dtype dts[] = {MB_DTYPE_F32, MB_DTYPE_BF16};
    for (int c = 0; c < nc; c++)
        for (int k = 0; k < 2; k++) run_case(&cases[c], dts[k]);
    for (int c = 0; c < nd; c++)
        for (int k = 0; k < 2; k++) run_decode_case(&dcases[c], dts[k]);
    if (!small) check_naive_alloc_failure();
    if (!small && !getenv("MB_SKIP_BIG")) {
        pattern pt = pattern_make();
        run_big_fwd(&pt);
        run_big_decode(&pt);
        free(pt.host), tb_device_free(pt.dev);
    }
    return test_main_result("test_cuda_attention");
}
#endif /* MB_HAVE_CUDA */
