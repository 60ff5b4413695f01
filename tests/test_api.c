/*
 * test_api.c -- what the API layer added on top of the forward/backward:
 *
 *   registry     count/get of every (op, direction, backend), one default each,
 *                select by name and by number, reset, unknown names, thread-local
 *   steps        mb_selective_scan_step_cpu / mb_ssd_step_cpu token by token from
 *                a zero state == the full forward (y and the final state)
 *   GQA          attention with nheads_kv < nheads == MHA with K/V heads repeated,
 *                forward and backward (dk, dv summed over each group)
 *   decode       mb_attention_decode_cpu == the last row of the causal forward over
 *                the first seqlens[b] tokens, ragged lengths, GQA
 *
 * All comparisons in fp64 with TOL_F64_AGREE_* (two fp64 formulations).
 */
#include "testing.h"
#include "tolerances.h"

#include <pthread.h>

#define AGREE(what, got, want, n) \
    expect_close_f64(what, got, want, n, TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL)

// ----------------------------------------------------------------------------
// registry

static void test_registry_tables(void) {
    for (int op = 0; op < MB_OP_COUNT; op++)
        for (int dir = 0; dir < MB_DIR_COUNT; dir++)
            for (int be = 0; be < MB_BACKEND_COUNT; be++) {
                int n = mb_impl_count((mb_op)op, (mb_direction)dir, (mb_backend)be);
                int defaults = 0;
                for (int i = 0; i < n; i++) {
                    mb_impl_info info;
                    memset(&info, 0, sizeof info);
                    CHECK_OK(mb_impl_get((mb_op)op, (mb_direction)dir, (mb_backend)be, i, &info));
                    CHECK(info.name && info.name[0], "%s %s %s #%d: no name", mb_op_name(op),
                          mb_direction_name(dir), mb_backend_name(be), i);
                    CHECK(info.about && info.about[0], "%s: no about line", info.name);
                    CHECK(info.dtypes != 0, "%s: no dtype", info.name);
                    CHECK(info.max_dstate >= 1 && info.max_dstate <= MB_MAX_DSTATE,
                          "%s: max_dstate %d", info.name, info.max_dstate);
                    defaults += info.is_default != 0;
                }
                CHECK(n == 0 || defaults == 1, "%s %s %s: %d defaults among %d",
                      mb_op_name(op), mb_direction_name(dir), mb_backend_name(be), defaults, n);
                mb_impl_info info;
                CHECK(mb_impl_get((mb_op)op, (mb_direction)dir, (mb_backend)be, n, &info) ==
                          MB_ERR_BAD_OPTION && mb_last_error()[0],
                      "index past the end not refused");
                CHECK(mb_impl_get((mb_op)op, (mb_direction)dir, (mb_backend)be, -1, &info) ==
                          MB_ERR_BAD_OPTION, "index -1 not refused");
            }
    /* the CPU references: every op has fwd; scan/SSD bwd+step; attention bwd+decode */
    const struct { mb_op op; mb_direction dir; } cpu[] = {
        {MB_OP_SELECTIVE_SCAN, MB_DIR_FWD}, {MB_OP_SELECTIVE_SCAN, MB_DIR_BWD},
        {MB_OP_SELECTIVE_SCAN, MB_DIR_STEP}, {MB_OP_SSD, MB_DIR_FWD}, {MB_OP_SSD, MB_DIR_BWD},
        {MB_OP_SSD, MB_DIR_STEP}, {MB_OP_ATTENTION, MB_DIR_FWD}, {MB_OP_ATTENTION, MB_DIR_BWD},
        {MB_OP_ATTENTION, MB_DIR_DECODE}};
    for (size_t i = 0; i < sizeof cpu / sizeof cpu[0]; i++)
        CHECK(mb_impl_count(cpu[i].op, cpu[i].dir, MB_BACKEND_CPU) >= 1, "%s %s: no CPU entry",
              mb_op_name(cpu[i].op), mb_direction_name(cpu[i].dir));
    if (mb_cuda_device_count() == 0 && mb_impl_count(MB_OP_SSD, MB_DIR_FWD, MB_BACKEND_CUDA) == 0)
        printf("  (no CUDA implementations registered in this build)\n");
    CHECK(mb_impl_count((mb_op)7, MB_DIR_FWD, MB_BACKEND_CPU) == 0, "op 7 counted");
    CHECK(mb_impl_count(MB_OP_SSD, (mb_direction)-1, MB_BACKEND_CPU) == 0, "dir -1 counted");
    CHECK(mb_impl_get(MB_OP_SSD, MB_DIR_FWD, MB_BACKEND_CPU, 0, NULL) == MB_ERR_NULL_POINTER,
          "NULL info not refused");
    CHECK(strcmp(mb_op_name((mb_op)9), "?") == 0 && strcmp(mb_op_name(MB_OP_SSD), "ssd") == 0,
          "op names");
    CHECK(strcmp(mb_direction_name(MB_DIR_DECODE), "decode") == 0 &&
              strcmp(mb_backend_name(MB_BACKEND_CUDA), "cuda") == 0, "direction/backend names");
}

static const char* default_name(mb_op op, mb_direction dir, mb_backend be) {
    for (int i = 0; i < mb_impl_count(op, dir, be); i++) {
        mb_impl_info info;
        if (mb_impl_get(op, dir, be, i, &info) == MB_OK && info.is_default) return info.name;
    }
    return NULL;
}

static void test_registry_select(void) {
    for (int op = 0; op < MB_OP_COUNT; op++)
        for (int dir = 0; dir < MB_DIR_COUNT; dir++)
            for (int be = 0; be < MB_BACKEND_COUNT; be++) {
                mb_op o = (mb_op)op;
                mb_direction d = (mb_direction)dir;
                mb_backend b = (mb_backend)be;
                const char* def = default_name(o, d, b);
                CHECK((def == NULL) == (mb_impl_selected(o, d, b) == NULL) &&
                          (!def || strcmp(def, mb_impl_selected(o, d, b)) == 0),
                      "%s %s %s: the selection is not the default", mb_op_name(o),
                      mb_direction_name(d), mb_backend_name(b));
                for (int i = 0; i < mb_impl_count(o, d, b); i++) {
                    mb_impl_info info;
                    CHECK_OK(mb_impl_get(o, d, b, i, &info));
                    CHECK_OK(mb_impl_select(o, d, b, info.name));
                    CHECK(strcmp(mb_impl_selected(o, d, b), info.name) == 0, "select %s",
                          info.name);
                    if (info.version > 0) {
                        char number[16];
                        snprintf(number, sizeof number, "%d", info.version);
                        CHECK_OK(mb_impl_select(o, d, b, "default"));
                        CHECK_OK(mb_impl_select(o, d, b, number));
                        CHECK(strcmp(mb_impl_selected(o, d, b), info.name) == 0,
                              "select by number %s", number);
                    }
                    CHECK_OK(mb_impl_select(o, d, b, NULL));
                    CHECK(!def || strcmp(mb_impl_selected(o, d, b), def) == 0, "NULL resets");
                }
                /* an unknown name: refused, known names listed, selection kept */
                const char* before = mb_impl_selected(o, d, b);
                CHECK(mb_impl_select(o, d, b, "no-such-kernel") == MB_ERR_BAD_OPTION,
                      "unknown name not refused");
                const char* msg = mb_last_error();
                CHECK(strstr(msg, "no-such-kernel") != NULL, "message lacks the name: %s", msg);
                CHECK(strstr(msg, def ? def : "none") != NULL, "message lacks the known: %s", msg);
                CHECK(mb_impl_selected(o, d, b) == before, "unknown name changed the selection");
                CHECK(mb_impl_select(o, d, b, "0") == MB_ERR_BAD_OPTION &&
                          mb_impl_select(o, d, b, "999") == MB_ERR_BAD_OPTION,
                      "version 0 or 999 selected something");
                CHECK_OK(mb_impl_select(o, d, b, "default"));
            }
    CHECK(mb_impl_select((mb_op)5, MB_DIR_FWD, MB_BACKEND_CPU, NULL) == MB_ERR_BAD_OPTION &&
              mb_last_error()[0], "op out of range not refused");
    CHECK(mb_impl_selected((mb_op)5, MB_DIR_FWD, MB_BACKEND_CPU) == NULL, "op 5 selected");
}

/* A second thread sees the default while this one has selected something else. */
static const char* other_thread_saw = NULL;
static mb_status other_thread_status = MB_OK;

static void* other_thread(void* arg) {
    (void)arg;
    other_thread_saw = mb_impl_selected(MB_OP_SSD, MB_DIR_FWD, MB_BACKEND_CPU);
    other_thread_status = mb_impl_select(MB_OP_SSD, MB_DIR_FWD, MB_BACKEND_CPU, "nope");
    return NULL;
}

static void test_registry_thread_local(void) {
    const mb_op op = MB_OP_SSD;
    const mb_direction dir = MB_DIR_FWD;
    const mb_backend be = MB_BACKEND_CPU;
    const char* def = default_name(op, dir, be);
    CHECK_OK(mb_impl_select(op, dir, be, "reference"));
    /* the error message is thread-local too: the other thread's failure is not ours */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
    CHECK(other_thread_saw && def && strcmp(other_thread_saw, def) == 0,
          "a second thread saw %s, not the default %s", other_thread_saw ? other_thread_saw : "NULL",
          def ? def : "NULL");
    CHECK(other_thread_status == MB_ERR_BAD_OPTION, "the other thread's unknown name");
    CHECK(mb_last_error()[0] == '\0', "another thread's error leaked here: %s", mb_last_error());
    CHECK(strcmp(mb_impl_selected(op, dir, be), "reference") == 0, "our selection was lost");
    CHECK_OK(mb_impl_select(op, dir, be, NULL));
}

// ----------------------------------------------------------------------------
// steps: token by token == the full forward

/* column t of (rows, L) into (rows) */
static void take_time(double* dst, const double* src, int64_t rows, int64_t L, int64_t t) {
    for (int64_t r = 0; r < rows; r++) dst[r] = src[r * L + t];
}

static void check_scan_steps(mb_selective_scan_params p, int with, uint64_t seed) {
    rng_seed(seed);
    p.dtype = MB_DTYPE_F64;
    const int64_t B = p.batch, D = p.dim, L = p.seqlen, G = p.ngroups, N = p.dstate;
    tb_scan_problem pr = tb_scan_make(p, with);
    mb_selective_scan_inputs in = tb_scan_inputs_f64(&pr);
    double *y = zeros_f64(B * D * L), *fs = zeros_f64(B * D * N);
    CHECK_OK(mb_selective_scan_fwd_cpu(&p, &in, y, fs));

    mb_selective_scan_params p1 = p;
    p1.seqlen = 1;
    double *state = zeros_f64(B * D * N), *ys = zeros_f64(B * D * L);
    double *u = zeros_f64(B * D), *dl = zeros_f64(B * D), *z = zeros_f64(B * D);
    double *Bt = zeros_f64(B * G * N), *Ct = zeros_f64(B * G * N), *yt = zeros_f64(B * D);
    for (int64_t t = 0; t < L; t++) {
        take_time(u, pr.u.host, B * D, L, t);
        take_time(dl, pr.delta.host, B * D, L, t);
        if (pr.z.host) take_time(z, pr.z.host, B * D, L, t);
        take_time(Bt, pr.B.host, B * G * N, L, t);
        take_time(Ct, pr.C.host, B * G * N, L, t);
        mb_selective_scan_inputs step = {u, dl, in.A, Bt, Ct, in.D, pr.z.host ? z : NULL,
                                         in.delta_bias};
        CHECK_OK(mb_selective_scan_step_cpu(&p1, &step, state, yt));
        for (int64_t r = 0; r < B * D; r++) ys[r * L + t] = yt[r];
    }
    char what[128];
    snprintf(what, sizeof what, "scan steps y (B=%lld D=%lld L=%lld, with %d)", (long long)B,
             (long long)D, (long long)L, with);
    AGREE(what, ys, y, B * D * L);
    snprintf(what, sizeof what, "scan steps final state (with %d)", with);
    AGREE(what, state, fs, B * D * N);
    free(y), free(fs), free(state), free(ys), free(u), free(dl), free(z), free(Bt), free(Ct);
    free(yt);
    tb_scan_free(&pr);
}

/* (B, L, K) at time t into (B, K) */
static void take_token(double* dst, const double* src, int64_t B, int64_t L, int64_t K, int64_t t) {
    for (int64_t b = 0; b < B; b++) memcpy(dst + b * K, src + (b * L + t) * K, (size_t)K * 8);
}

static void check_ssd_steps(mb_ssd_params p, int with, uint64_t seed) {
    rng_seed(seed);
    p.dtype = MB_DTYPE_F64;
    const int64_t B = p.batch, L = p.seqlen, H = p.nheads, P = p.headdim, G = p.ngroups,
                  N = p.dstate;
    tb_ssd_problem pr = tb_ssd_make(p, with & ~TB_WITH_H0);
    mb_ssd_inputs in = tb_ssd_inputs_f64(&pr);
    double *y = zeros_f64(B * L * H * P), *fs = zeros_f64(B * H * P * N);
    CHECK_OK(mb_ssd_fwd_cpu(&p, &in, y, fs));

    mb_ssd_params p1 = p;
    p1.seqlen = 1;
    double *state = zeros_f64(B * H * P * N), *ys = zeros_f64(B * L * H * P);
    double *x = zeros_f64(B * H * P), *dt = zeros_f64(B * H), *z = zeros_f64(B * H * P);
    double *Bt = zeros_f64(B * G * N), *Ct = zeros_f64(B * G * N), *yt = zeros_f64(B * H * P);
    for (int64_t t = 0; t < L; t++) {
        take_token(x, pr.x.host, B, L, H * P, t);
        take_token(dt, pr.dt.host, B, L, H, t);
        if (pr.z.host) take_token(z, pr.z.host, B, L, H * P, t);
        take_token(Bt, pr.B.host, B, L, G * N, t);
        take_token(Ct, pr.C.host, B, L, G * N, t);
        mb_ssd_inputs step = {x, dt, in.A, Bt, Ct, in.D, pr.z.host ? z : NULL, in.dt_bias, NULL};
        CHECK_OK(mb_ssd_step_cpu(&p1, &step, state, yt));
        for (int64_t b = 0; b < B; b++)
            memcpy(ys + (b * L + t) * H * P, yt + b * H * P, (size_t)(H * P) * 8);
    }
    char what[128];
    snprintf(what, sizeof what, "ssd steps y (B=%lld L=%lld H=%lld, with %d)", (long long)B,
             (long long)L, (long long)H, with);
    AGREE(what, ys, y, B * L * H * P);
    snprintf(what, sizeof what, "ssd steps final state (with %d)", with);
    AGREE(what, state, fs, B * H * P * N);
    free(y), free(fs), free(state), free(ys), free(x), free(dt), free(z), free(Bt), free(Ct);
    free(yt);
    tb_ssd_free(&pr);
}

/* n uniform values in [lo, hi) rounded to bf16: *packed the bf16 copy, returns fp64 */
static double* bf16_values(int64_t n, double lo, double hi, void** packed) {
    double* v = rand_uniform_f64(n, lo, hi);
    *packed = tb_pack(v, n, MB_DTYPE_BF16);
    double* exact = tb_unpack(*packed, n, MB_DTYPE_BF16);
    free(v);
    return exact;
}

/* state_bf16: the step reads the bf16 state, computes in fp64 and rounds the new
 * state to bf16, so y and the state equal the fp64 step from the same values
 * within bf16's rounding (half an ulp: 2^-9 relative; 2^-8 allowed). */
static void check_ssd_step_bf16_state(void) {
    rng_seed(44);
    const int64_t B = 2, H = 4, P = 3, N = 5, G = 2, HP = B * H * P, ST = HP * N, GN = B * G * N;
    void *x16, *dt16, *B16, *C16, *z16, *s16;
    double *x = bf16_values(HP, -1, 1, &x16), *dt = bf16_values(B * H, -2, 0.5, &dt16);
    double *Bm = bf16_values(GN, -1, 1, &B16), *Cm = bf16_values(GN, -1, 1, &C16);
    double *z = bf16_values(HP, -2, 2, &z16), *s = bf16_values(ST, -1, 1, &s16);
    float A[4] = {-0.5f, -1.0f, -2.0f, -0.25f}, D[4] = {0.5f, -1.0f, 0.25f, 1.0f};
    float bias[4] = {0.1f, -0.2f, 0.3f, 0.0f};
    double A64[4], D64[4], bias64[4], y64[HP];
    for (int h = 0; h < 4; h++) A64[h] = A[h], D64[h] = D[h], bias64[h] = bias[h];
    uint16_t y16[HP];
    mb_ssd_params p = {B, 1, H, P, N, G, 4, MB_DTYPE_BF16, 1, MB_SSD_RECURRENT, 1};
    mb_ssd_inputs in = {x16, dt16, A, B16, C16, D, z16, bias, NULL};
    CHECK_OK(mb_ssd_step_cpu(&p, &in, s16, y16));
    mb_ssd_params p64 = p;
    p64.dtype = MB_DTYPE_F64, p64.state_bf16 = 0;
    mb_ssd_inputs in64 = {x, dt, A64, Bm, Cm, D64, z, bias64, NULL};
    CHECK_OK(mb_ssd_step_cpu(&p64, &in64, s, y64));
    double* ygot = tb_unpack(y16, HP, MB_DTYPE_BF16);
    double* sgot = tb_unpack(s16, ST, MB_DTYPE_BF16);
    int bad = 0;
    for (int64_t i = 0; i < HP; i++) bad += !(fabs(ygot[i] - y64[i]) <= fabs(y64[i]) / 256);
    for (int64_t i = 0; i < ST; i++) bad += !(fabs(sgot[i] - s[i]) <= fabs(s[i]) / 256);
    CHECK(bad == 0, "ssd step with a bf16 state: %d values beyond bf16 rounding of the fp64 step",
          bad);
    printf("  ssd step, bf16 state: y and state within bf16 rounding of the fp64 step\n");
    free(x), free(dt), free(Bm), free(Cm), free(z), free(s), free(ygot), free(sgot);
    free(x16), free(dt16), free(B16), free(C16), free(z16), free(s16);
}

static void test_steps(void) {
    /*                          B  D  L   N  G  dtype         softplus */
    check_scan_steps((mb_selective_scan_params){2, 4, 9, 3, 2, MB_DTYPE_F64, 1}, TB_WITH_ALL, 31);
    check_scan_steps((mb_selective_scan_params){1, 3, 5, 2, 1, MB_DTYPE_F64, 0}, 0, 32);
    check_scan_steps((mb_selective_scan_params){2, 6, 1, 4, 3, MB_DTYPE_F64, 1}, TB_WITH_Z, 33);
    /*                  B  L   H  P  N  G  chunk dtype        softplus form */
    check_ssd_steps((mb_ssd_params){2, 11, 4, 3, 5, 2, 4, MB_DTYPE_F64, 1, MB_SSD_CHUNKED, 0},
                    TB_WITH_ALL, 41);
    check_ssd_steps((mb_ssd_params){1, 6, 2, 2, 3, 1, 8, MB_DTYPE_F64, 0, MB_SSD_RECURRENT, 0}, 0,
                    42);
    check_ssd_steps((mb_ssd_params){3, 1, 6, 2, 2, 3, 1, MB_DTYPE_F64, 1, MB_SSD_QUADRATIC, 0},
                    TB_WITH_D | TB_WITH_Z, 43);
    check_ssd_step_bf16_state();
}

// ----------------------------------------------------------------------------
// grouped-query attention == MHA with K/V heads repeated

/* (B, Hkv, L, d) -> (B, H, L, d), head h reading kv head h / (H / Hkv) */
static double* repeat_kv(const double* kv, int64_t B, int64_t H, int64_t Hkv, int64_t Ld) {
    double* out = zeros_f64(B * H * Ld);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            memcpy(out + (b * H + h) * Ld, kv + (b * Hkv + h / (H / Hkv)) * Ld, (size_t)Ld * 8);
    return out;
}

/* the transpose of repeat_kv: sum each group of heads */
static double* sum_groups(const double* g, int64_t B, int64_t H, int64_t Hkv, int64_t Ld) {
    double* out = zeros_f64(B * Hkv * Ld);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Ld; i++)
                out[(b * Hkv + h / (H / Hkv)) * Ld + i] += g[(b * H + h) * Ld + i];
    return out;
}

static void check_gqa(int64_t B, int64_t H, int64_t Hkv, int64_t L, int64_t d, double scale,
                      uint64_t seed) {
    rng_seed(seed);
    mb_attention_params p = {B, H, L, d, scale, MB_DTYPE_F64, Hkv};
    tb_attention_problem pr = tb_attention_make(p);
    const int64_t nq = B * H * L * d, nkv = B * Hkv * L * d, Ld = L * d;
    double *o = zeros_f64(nq), *lse = zeros_f64(B * H * L), *dout = rand_normal_f64(nq, 1.0);
    double *dq = zeros_f64(nq), *dk = zeros_f64(nkv), *dv = zeros_f64(nkv);
    mb_attention_inputs in = tb_attention_inputs_f64(&pr);
    mb_attention_grads g = {dq, dk, dv};
    CHECK_OK(mb_attention_fwd_cpu(&p, &in, o, lse));
    CHECK_OK(mb_attention_bwd_cpu(&p, &in, o, lse, dout, &g));

    mb_attention_params mha = p;
    mha.nheads_kv = 0;
    double *k = repeat_kv(pr.k.host, B, H, Hkv, Ld), *v = repeat_kv(pr.v.host, B, H, Hkv, Ld);
    double *o2 = zeros_f64(nq), *lse2 = zeros_f64(B * H * L);
    double *dq2 = zeros_f64(nq), *dk2 = zeros_f64(nq), *dv2 = zeros_f64(nq);
    mb_attention_inputs in2 = {pr.q.host, k, v};
    mb_attention_grads g2 = {dq2, dk2, dv2};
    CHECK_OK(mb_attention_fwd_cpu(&mha, &in2, o2, lse2));
    CHECK_OK(mb_attention_bwd_cpu(&mha, &in2, o2, lse2, dout, &g2));
    double *dk_sum = sum_groups(dk2, B, H, Hkv, Ld), *dv_sum = sum_groups(dv2, B, H, Hkv, Ld);

    char what[128];
    const char* names[5] = {"o", "lse", "dq", "dk", "dv"};
    const double* got[5] = {o, lse, dq, dk, dv};
    const double* want[5] = {o2, lse2, dq2, dk_sum, dv_sum};
    const int64_t n[5] = {nq, B * H * L, nq, nkv, nkv};
    for (int i = 0; i < 5; i++) {
        snprintf(what, sizeof what, "GQA H=%lld H_kv=%lld L=%lld: %s vs MHA repeated",
                 (long long)H, (long long)Hkv, (long long)L, names[i]);
        AGREE(what, got[i], want[i], n[i]);
    }
    free(o), free(lse), free(dout), free(dq), free(dk), free(dv), free(k), free(v);
    free(o2), free(lse2), free(dq2), free(dk2), free(dv2), free(dk_sum), free(dv_sum);
    tb_attention_free(&pr);
}

static void test_gqa(void) {
    check_gqa(2, 4, 2, 7, 5, 0.0, 51);
    check_gqa(1, 6, 1, 9, 4, 0.4, 52);  /* multi-query */
    check_gqa(2, 3, 3, 5, 3, 0.0, 53);  /* H_kv = H given explicitly */
}

// ----------------------------------------------------------------------------
// decode == the last row of the causal forward over the first seqlens[b] tokens

static void check_decode(int64_t B, int64_t H, int64_t Hkv, int64_t Lmax, int64_t d,
                         const int64_t* seqlens, double scale, uint64_t seed) {
    rng_seed(seed);
    const int64_t hkv = Hkv ? Hkv : H;
    double* q = rand_normal_f64(B * H * d, 1.0);
    double* k = rand_normal_f64(B * hkv * Lmax * d, 1.0);
    double* v = rand_normal_f64(B * hkv * Lmax * d, 1.0);
    double *o = zeros_f64(B * H * d), *lse = zeros_f64(B * H);
    mb_attention_decode_params p = {B, H, Hkv, d, Lmax, scale, MB_DTYPE_F64};
    mb_attention_decode_inputs in = {q, k, v, seqlens};
    CHECK_OK(mb_attention_decode_cpu(&p, &in, o, lse));

    for (int64_t b = 0; b < B; b++) {
        const int64_t L = seqlens[b];
        /* one sequence: q at position L-1 (the other rows are random), K/V its first L rows */
        double* qf = rand_normal_f64(H * L * d, 1.0);
        double *kf = zeros_f64(hkv * L * d), *vf = zeros_f64(hkv * L * d);
        for (int64_t h = 0; h < H; h++)
            memcpy(qf + (h * L + L - 1) * d, q + (b * H + h) * d, (size_t)d * 8);
        for (int64_t h = 0; h < hkv; h++) {
            memcpy(kf + h * L * d, k + (b * hkv + h) * Lmax * d, (size_t)(L * d) * 8);
            memcpy(vf + h * L * d, v + (b * hkv + h) * Lmax * d, (size_t)(L * d) * 8);
        }
        mb_attention_params fp = {1, H, L, d, scale, MB_DTYPE_F64, Hkv};
        double *of = zeros_f64(H * L * d), *lf = zeros_f64(H * L);
        mb_attention_inputs fin = {qf, kf, vf};
        CHECK_OK(mb_attention_fwd_cpu(&fp, &fin, of, lf));
        double *o_last = zeros_f64(H * d), *l_last = zeros_f64(H);
        for (int64_t h = 0; h < H; h++) {
            memcpy(o_last + h * d, of + (h * L + L - 1) * d, (size_t)d * 8);
            l_last[h] = lf[h * L + L - 1];
        }
        char what[128];
        snprintf(what, sizeof what, "decode b=%lld (L=%lld of %lld, H=%lld H_kv=%lld): o",
                 (long long)b, (long long)L, (long long)Lmax, (long long)H, (long long)hkv);
        AGREE(what, o + b * H * d, o_last, H * d);
        snprintf(what, sizeof what, "decode b=%lld: lse", (long long)b);
        AGREE(what, lse + b * H, l_last, H);
        free(qf), free(kf), free(vf), free(of), free(lf), free(o_last), free(l_last);
    }
    /* lse may be NULL: same o */
    double* o2 = zeros_f64(B * H * d);
    CHECK_OK(mb_attention_decode_cpu(&p, &in, o2, NULL));
    CHECK(memcmp(o, o2, (size_t)(B * H * d) * 8) == 0, "decode o differs with lse = NULL");
    free(q), free(k), free(v), free(o), free(lse), free(o2);
}

static void test_decode(void) {
    const int64_t ragged[4] = {1, 7, 4, 9};
    check_decode(4, 4, 2, 9, 5, ragged, 0.0, 61);  /* GQA, ragged, one full cache */
    const int64_t two[2] = {3, 3};
    check_decode(2, 3, 0, 6, 4, two, 0.7, 62);     /* MHA (H_kv = 0 means H) */
    const int64_t one[3] = {2, 5, 1};
    check_decode(3, 6, 1, 5, 8, one, 0.0, 63);     /* multi-query */
}

int main(void) {
    test_registry_tables();
    test_registry_select();
    test_registry_thread_local();
    test_steps();
    test_gqa();
    test_decode();
    return test_main_result("test_api");
}
