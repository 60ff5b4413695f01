/*
 * test_cuda_ssd.c -- every registered CUDA version of Mamba-2's SSD (fwd, bwd,
 * step) against the fp64 CPU reference on fresh random inputs.
 *
 * Inputs are drawn in fp64, rounded to the device dtype (tests/problems.h's
 * tb_tensor), and the same rounded values go to the CPU reference in fp64.
 * Every device output is poisoned with 0xFF bytes (NaN) before each run. The
 * backward runs twice and must give identical bytes. The step, token by token
 * from the initial state, must equal the full forward on the GPU; with the state
 * kept in bf16 (state_bf16) it must equal the CPU step with that option; steps replayed
 * from a CUDA graph must give the bytes of the same steps launched one by one. Duality: the
 * SSD forward equals the CUDA selective-scan forward with A repeated over the
 * state (the P channels of a head as scan channels). A forward with tensors of more
 * than 2^31 elements is checked on sampled heads (run_big; MB_SKIP_BIG=1 skips it).
 * `--small` runs the first cases only (for compute-sanitizer). Skips (exit TB_SKIP, 77) without CUDA in
 * the build or without a GPU.
 */
#include "testing.h"
#include "tolerances.h"

#ifndef MB_HAVE_CUDA
int main(void) {
    printf("test_cuda_ssd: SKIP: mambabench was built without CUDA\n");
    return TB_SKIP;
}
#else

#include <cuda_runtime_api.h>

/* a tensor with a device copy: host (rounded fp64), data (stored), dev */
typedef struct {
    tb_tensor t;
    void* dev;
} dtens;

static const dtens absent_dtens = {{0, MB_DTYPE_F64, NULL, NULL}, NULL};

static dtens d_input(int64_t n, mb_dtype dt, double lo, double hi) {
    dtens d = {tb_tensor_uniform(n, dt, lo, hi), NULL};
    d.dev = tb_device_upload(&d.t);
    return d;
}
static dtens d_output(int64_t n, mb_dtype dt) {
    dtens d = {tb_tensor_output(n, dt), NULL};
    d.dev = tb_device_poisoned(&d.t);
    return d;
}
static void d_poison(dtens* d) {
    tb_cuda_ok(cudaMemset(d->dev, 0xFF, tb_tensor_bytes(&d->t)), "poison");
}
static void d_free(dtens* d) {
    if (d->t.host || d->t.data) tb_tensor_free(&d->t);
    tb_device_free(d->dev);
    d->dev = NULL;
}
/* the device bytes, in a new host buffer */
static void* d_bytes(const dtens* d) {
    void* h = tb_malloc(tb_tensor_bytes(&d->t) + 1);
    tb_cuda_ok(cudaDeviceSynchronize(), "sync");
    tb_cuda_ok(cudaMemcpy(h, d->dev, tb_tensor_bytes(&d->t), cudaMemcpyDeviceToHost), "D2H");
    return h;
}

/* |got - want| <= atol + rtol |want| everywhere (NaN fails); prints the worst */
static void compare(const char* what, dtens* d, const double* want, double rtol, double atol) {
    tb_cuda_ok(cudaDeviceSynchronize(), "sync");
    const double* got = tb_device_download(&d->t, d->dev);
    int64_t bad = 0, worst = 0;
    double worst_ratio = 0.0, max_err = 0.0;
    for (int64_t i = 0; i < d->t.n; i++) {
        double err = fabs(got[i] - want[i]), lim = atol + rtol * fabs(want[i]);
        if (!(err <= lim)) bad++;
        double r = isnan(err) ? INFINITY : err / lim;
        if (r > worst_ratio || isnan(got[i])) worst_ratio = r, worst = i;
        if (err > max_err || isnan(err)) max_err = err;
    }
    CHECK(bad == 0, "%s: %lld of %lld outside tolerance; worst [%lld] got %g want %g", what,
          (long long)bad, (long long)d->t.n, (long long)worst, got[worst], want[worst]);
    printf("    %-15s max|err| %.3g  worst err/tol %.3f\n", what, max_err, worst_ratio);
}

typedef struct {
    int64_t B, L, H, P, N, G, Q;
    int use_D, use_z, use_bias, use_h0, softplus, use_dfs;
    int bf16_only;
} scase;

/* Select CUDA version k of the SSD's `dir` for this thread: its name, or NULL
 * when it does not take state size N (or cannot be listed: a failed check). */
static const char* select_version(mb_direction dir, int k, int64_t N) {
    mb_impl_info info;
    mb_status st = mb_impl_get(MB_OP_SSD, dir, MB_BACKEND_CUDA, k, &info);
    CHECK(st == MB_OK, "mb_impl_get(%s, %d): %s", mb_direction_name(dir), k, mb_last_error());
    if (st != MB_OK || N > info.max_dstate) return NULL;
    CHECK_OK(mb_impl_select(MB_OP_SSD, dir, MB_BACKEND_CUDA, info.name));
    return info.name;
}

static double rtol_of(mb_dtype dt) { return dt == MB_DTYPE_BF16 ? TOL_GPU_BF16_RTOL : TOL_GPU_F32_RTOL; }
static double atol_of(mb_dtype dt) { return dt == MB_DTYPE_BF16 ? TOL_GPU_BF16_ATOL : TOL_GPU_F32_ATOL; }

/* the inputs of one case, on the host (fp64) and the device */
typedef struct {
    dtens x, dt, A, Bm, Cm, D, z, bias, h0, dy, dfs;
} ssd_data;

static ssd_data make_data(const scase* c, mb_dtype dt) {
    const int64_t BLHP = c->B * c->L * c->H * c->P, BLGN = c->B * c->L * c->G * c->N;
    const int64_t BHPN = c->B * c->H * c->P * c->N;
    const mb_dtype pd = MB_DTYPE_F32;
    ssd_data d = {absent_dtens, absent_dtens, absent_dtens, absent_dtens, absent_dtens,
                  absent_dtens, absent_dtens, absent_dtens, absent_dtens, absent_dtens, absent_dtens};
    d.x = d_input(BLHP, dt, -1, 1);
    /* without softplus dt' = dt + bias must stay positive (else the state grows) */
    d.dt = c->softplus ? d_input(c->B * c->L * c->H, dt, -3, 0.5) : d_input(c->B * c->L * c->H, dt, 0.01, 0.6);
    d.A = d_input(c->H, pd, -2.0, -0.1);
    d.Bm = d_input(BLGN, dt, -0.7, 0.7);
    d.Cm = d_input(BLGN, dt, -0.7, 0.7);
    if (c->use_D) d.D = d_input(c->H, pd, -1, 1);
    if (c->use_z) d.z = d_input(BLHP, dt, -2, 2);
    if (c->use_bias) d.bias = c->softplus ? d_input(c->H, pd, -1, 0.5) : d_input(c->H, pd, 0.0, 0.3);
    if (c->use_h0) d.h0 = d_input(BHPN, pd, -1, 1);
    d.dy = d_input(BLHP, dt, -1, 1);
    if (c->use_dfs) d.dfs = d_input(BHPN, pd, -1, 1);
    return d;
}

static void free_data(ssd_data* d) {
    dtens* all[] = {&d->x, &d->dt, &d->A, &d->Bm, &d->Cm, &d->D, &d->z, &d->bias, &d->h0, &d->dy, &d->dfs};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) d_free(all[k]);
}

static mb_ssd_params params_of(const scase* c, mb_dtype dt) {
    mb_ssd_params p = {c->B, c->L, c->H, c->P, c->N, c->G, c->Q, dt, c->softplus, MB_SSD_RECURRENT, 0};
    return p;
}

static mb_ssd_inputs dev_inputs(const ssd_data* d) {
    return (mb_ssd_inputs){d->x.dev, d->dt.dev, d->A.dev, d->Bm.dev, d->Cm.dev,
                           d->D.dev, d->z.dev, d->bias.dev, d->h0.dev};
}
static mb_ssd_inputs host_inputs(const ssd_data* d) {
    return (mb_ssd_inputs){d->x.t.host, d->dt.t.host, d->A.t.host, d->Bm.t.host, d->Cm.t.host,
                           d->D.t.host, d->z.t.host, d->bias.t.host, d->h0.t.host};
}

// ----------------------------------------------------------------------------
// forward

/* every fwd version vs the fp64 forward; leaves the default's y in y_gpu */
static void check_fwd(const scase* c, mb_dtype dt, const ssd_data* d, const double* y_ref,
                      const double* fs_ref, dtens* y, dtens* fs) {
    mb_ssd_params p = params_of(c, dt);
    mb_ssd_inputs in = dev_inputs(d);
    int nf = mb_impl_count(MB_OP_SSD, MB_DIR_FWD, MB_BACKEND_CUDA);
    CHECK(nf > 0, "no CUDA SSD forward registered");
    for (int k = 0; k < nf; k++) {
        const char* name = select_version(MB_DIR_FWD, k, c->N);
        if (!name) continue;
        printf("   fwd %s\n", name);
        d_poison(y), d_poison(fs);
        CHECK_OK(mb_ssd_fwd_cuda(&p, &in, y->dev, fs->dev, NULL));
        compare("y", y, y_ref, rtol_of(dt), atol_of(dt));
        compare("final_state", fs, fs_ref, rtol_of(dt), atol_of(dt));
    }
    CHECK_OK(mb_impl_select(MB_OP_SSD, MB_DIR_FWD, MB_BACKEND_CUDA, NULL));
    d_poison(y);
    CHECK_OK(mb_ssd_fwd_cuda(&p, &in, y->dev, NULL, NULL)); /* the default, no final state */
    compare("y (no fs)", y, y_ref, rtol_of(dt), atol_of(dt));
}

// ----------------------------------------------------------------------------
// backward

enum { G_DX, G_DDT, G_DA, G_DB, G_DC, G_DD, G_DZ, G_DBIAS, G_DH0, G_COUNT };

static void check_bwd(const scase* c, mb_dtype dt, const ssd_data* d) {
    const int64_t BLHP = c->B * c->L * c->H * c->P, BLGN = c->B * c->L * c->G * c->N;
    const int64_t BHPN = c->B * c->H * c->P * c->N, BLH = c->B * c->L * c->H;
    const mb_dtype pd = MB_DTYPE_F32;
    struct { const char* name; int64_t n; mb_dtype t; int on; double rx, ax; } gs[G_COUNT] = {
        {"dx", BLHP, dt, 1, TOL_SSD_GRAD_RTOL_X, TOL_SSD_GRAD_ATOL_X},
        {"ddt", BLH, dt, 1, TOL_SSD_DDT_RTOL_X, TOL_SSD_DDT_ATOL_X},
        {"dA", c->H, pd, 1, TOL_SSD_DA_RTOL_X, TOL_SSD_DA_ATOL_X},
        {"dB", BLGN, dt, 1, TOL_SSD_GRAD_RTOL_X, TOL_SSD_GRAD_ATOL_X},
        {"dC", BLGN, dt, 1, TOL_SSD_GRAD_RTOL_X, TOL_SSD_GRAD_ATOL_X},
        {"dD", c->H, pd, c->use_D, TOL_SSD_GRAD_RTOL_X, TOL_SSD_GRAD_ATOL_X},
        {"dz", BLHP, dt, c->use_z, TOL_SSD_GRAD_RTOL_X, TOL_SSD_GRAD_ATOL_X},
        {"ddt_bias", c->H, pd, c->use_bias, TOL_SSD_DDT_RTOL_X, TOL_SSD_DDT_ATOL_X},
        {"dinitial_state", BHPN, pd, c->use_h0, TOL_SSD_GRAD_RTOL_X, TOL_SSD_GRAD_ATOL_X}};
    dtens gt[G_COUNT];
    double* gref[G_COUNT];
    void* gdev[G_COUNT];
    for (int i = 0; i < G_COUNT; i++) {
        gt[i] = gs[i].on ? d_output(gs[i].n, gs[i].t) : absent_dtens;
        gref[i] = gs[i].on ? zeros_f64(gs[i].n) : NULL;
        gdev[i] = gt[i].dev;
    }
    mb_ssd_grads g = {gdev[0], gdev[1], gdev[2], gdev[3], gdev[4], gdev[5], gdev[6], gdev[7], gdev[8]};
    mb_ssd_grads g64 = {gref[0], gref[1], gref[2], gref[3], gref[4], gref[5], gref[6], gref[7], gref[8]};
    mb_ssd_params p = params_of(c, dt), p64 = params_of(c, MB_DTYPE_F64);
    mb_ssd_inputs in = dev_inputs(d), in64 = host_inputs(d);
    CHECK_OK(mb_ssd_bwd_cpu(&p64, &in64, d->dy.t.host, d->dfs.t.host, &g64));
    double rt = rtol_of(dt), at = atol_of(dt);
    int nb = mb_impl_count(MB_OP_SSD, MB_DIR_BWD, MB_BACKEND_CUDA);
    CHECK(nb > 0, "no CUDA SSD backward registered");
    for (int k = 0; k < nb; k++) {
        const char* name = select_version(MB_DIR_BWD, k, c->N);
        if (!name) continue;
        printf("   bwd %s (dfinal_state %s)\n", name, c->use_dfs ? "given" : "NULL");
        void* first[G_COUNT] = {0};
        for (int rep = 0; rep < 2; rep++) {
            for (int i = 0; i < G_COUNT; i++) if (gs[i].on) d_poison(&gt[i]);
            CHECK_OK(mb_ssd_bwd_cuda(&p, &in, d->dy.dev, d->dfs.dev, &g, NULL));
            for (int i = 0; i < G_COUNT; i++) {
                if (!gs[i].on) continue;
                if (rep == 0) {
                    first[i] = d_bytes(&gt[i]);
                    continue;
                }
                void* second = d_bytes(&gt[i]);
                CHECK(memcmp(first[i], second, tb_tensor_bytes(&gt[i].t)) == 0,
                      "bwd %s %s: two runs differ (not deterministic)", name, gs[i].name);
                free(second), free(first[i]);
                compare(gs[i].name, &gt[i], gref[i], rt * gs[i].rx, at * gs[i].ax);
            }
        }
    }
    CHECK_OK(mb_impl_select(MB_OP_SSD, MB_DIR_BWD, MB_BACKEND_CUDA, NULL));
    for (int i = 0; i < G_COUNT; i++) {
        if (gs[i].on) d_free(&gt[i]);
        free(gref[i]);
    }
}

// ----------------------------------------------------------------------------
// step: token by token on the GPU vs the full GPU forward (and the fp64 one)

/* dst (B, rows) <- src[:, t, :] of a (B, L, rows) device tensor, elements of es bytes */
static void gather_token(void* dst, const void* src, int64_t B, int64_t L, int64_t rows, int64_t t,
                         size_t es) {
    tb_cuda_ok(cudaMemcpy2D(dst, (size_t)rows * es, (const char*)src + (size_t)(t * rows) * es,
                            (size_t)(L * rows) * es, (size_t)rows * es, (size_t)B,
                            cudaMemcpyDeviceToDevice),
               "gather");
}

/* one token's inputs and output on the device: x, z (B, H, P); dt (B, H); B, C (B, G, N); y */
typedef struct {
    dtens x, z, dt, B, C, y;
} token_bufs;

static token_bufs token_bufs_new(const scase* c, mb_dtype dt) {
    const int64_t HP = c->H * c->P, GN = c->G * c->N;
    return (token_bufs){d_output(c->B * HP, dt), d_output(c->B * HP, dt),
                        d_output(c->B * c->H, dt), d_output(c->B * GN, dt),
                        d_output(c->B * GN, dt), d_output(c->B * HP, dt)};
}
static void token_bufs_free(token_bufs* t) {
    dtens* all[] = {&t->x, &t->z, &t->dt, &t->B, &t->C, &t->y};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) d_free(all[k]);
}

/* x, dt, B, C, z of token t of d gathered into tok; the step's inputs */
static mb_ssd_inputs token_inputs(const scase* c, const ssd_data* d, token_bufs* tok, int64_t t,
                                  size_t es) {
    const int64_t HP = c->H * c->P, GN = c->G * c->N;
    gather_token(tok->x.dev, d->x.dev, c->B, c->L, HP, t, es);
    gather_token(tok->dt.dev, d->dt.dev, c->B, c->L, c->H, t, es);
    gather_token(tok->B.dev, d->Bm.dev, c->B, c->L, GN, t, es);
    gather_token(tok->C.dev, d->Cm.dev, c->B, c->L, GN, t, es);
    if (c->use_z) gather_token(tok->z.dev, d->z.dev, c->B, c->L, HP, t, es);
    return (mb_ssd_inputs){tok->x.dev, tok->dt.dev, d->A.dev, tok->B.dev, tok->C.dev, d->D.dev,
                           c->use_z ? tok->z.dev : NULL, d->bias.dev, NULL};
}

/* the case's start state (h0, or zeros) into s */
static void start_state(const scase* c, const ssd_data* d, dtens* s) {
    if (c->use_h0)
        tb_cuda_ok(cudaMemcpy(s->dev, d->h0.dev, tb_tensor_bytes(&s->t), cudaMemcpyDeviceToDevice), "h0");
    else
        tb_cuda_ok(cudaMemset(s->dev, 0, tb_tensor_bytes(&s->t)), "zero state");
}

/* The selected CUDA step on every token of d in turn from `state` (in place),
 * ystep (B, L, H, P) poisoned first and filled token by token; 0 if a call failed. */
static int gpu_steps(const scase* c, const mb_ssd_params* ps, const ssd_data* d, token_bufs* tok,
                     void* state, dtens* ystep) {
    const int64_t HP = c->H * c->P;
    const size_t es = mb_dtype_size(ps->dtype);
    d_poison(ystep);
    int ok = 1;
    for (int64_t t = 0; t < c->L; t++) {
        const mb_ssd_inputs id = token_inputs(c, d, tok, t, es);
        d_poison(&tok->y);
        if (mb_ssd_step_cuda(ps, &id, state, tok->y.dev, NULL) != MB_OK) ok = 0;
        /* scatter y_t (B, H, P) into ystep (B, L, H, P) */
        tb_cuda_ok(cudaMemcpy2D((char*)ystep->dev + (size_t)(t * HP) * es,
                                (size_t)(c->L * HP) * es, tok->y.dev, (size_t)HP * es,
                                (size_t)HP * es, (size_t)c->B, cudaMemcpyDeviceToDevice),
                   "scatter");
    }
    return ok;
}

static void check_step(const scase* c, mb_dtype dt, const ssd_data* d, const dtens* y_fwd,
                       const double* y_ref, const double* fs_ref) {
    const int64_t HP = c->H * c->P, BHPN = c->B * c->H * c->P * c->N;
    mb_ssd_params ps = params_of(c, dt);
    ps.seqlen = 1;
    token_bufs tok = token_bufs_new(c, dt);
    dtens state = d_output(BHPN, MB_DTYPE_F32), ystep = d_output(c->B * c->L * HP, dt);
    /* the fwd's y, as the GPU wrote it, in fp64 */
    tb_cuda_ok(cudaDeviceSynchronize(), "sync");
    double* y_gpu = copy_f64(tb_device_download((tb_tensor*)&y_fwd->t, y_fwd->dev), y_fwd->t.n);
    int ns = mb_impl_count(MB_OP_SSD, MB_DIR_STEP, MB_BACKEND_CUDA);
    CHECK(ns > 0, "no CUDA SSD step registered");
    for (int k = 0; k < ns; k++) {
        const char* name = select_version(MB_DIR_STEP, k, c->N);
        if (!name) continue;
        start_state(c, d, &state);
        CHECK(gpu_steps(c, &ps, d, &tok, state.dev, &ystep), "step %s calls failed: %s", name,
              mb_last_error());
        printf("   step %s token by token vs the GPU forward and the fp64 forward\n", name);
        compare("step y vs gpu", &ystep, y_gpu, rtol_of(dt), atol_of(dt));
        compare("step y vs ref", &ystep, y_ref, rtol_of(dt), atol_of(dt));
        compare("step state", &state, fs_ref, rtol_of(dt), atol_of(dt));
    }
    CHECK_OK(mb_impl_select(MB_OP_SSD, MB_DIR_STEP, MB_BACKEND_CUDA, NULL));
    free(y_gpu);
    token_bufs_free(&tok);
    d_free(&state), d_free(&ystep);
}

/* Steps replayed from a CUDA graph (what the bench's step_graph rows time, and where v9 /
 * v10's programmatic dependent launches become graph edges) against the same steps launched
 * one by one on the same stream: kSteps steps of token 0's inputs from the case's start
 * state, every version; the state and the last y must be the same bytes. */
static void check_step_graph(const scase* c, mb_dtype dt, const ssd_data* d) {
    enum { kSteps = 6 };
    const int64_t HP = c->H * c->P, BHPN = c->B * HP * c->N;
    mb_ssd_params ps = params_of(c, dt);
    ps.seqlen = 1;
    token_bufs tok = token_bufs_new(c, dt);
    const mb_ssd_inputs id = token_inputs(c, d, &tok, 0, mb_dtype_size(dt));
    dtens s_one = d_output(BHPN, MB_DTYPE_F32), s_graph = d_output(BHPN, MB_DTYPE_F32);
    dtens y_one = d_output(c->B * HP, dt);
    cudaStream_t st;
    tb_cuda_ok(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "stream");
    const int ns = mb_impl_count(MB_OP_SSD, MB_DIR_STEP, MB_BACKEND_CUDA);
    for (int k = 0; k < ns; k++) {
        const char* name = select_version(MB_DIR_STEP, k, c->N);
        if (!name) continue;
        start_state(c, d, &s_one), start_state(c, d, &s_graph);
        d_poison(&y_one), d_poison(&tok.y);
        /* those copies and memsets run on the legacy stream, which the non-blocking `st` does
         * not wait for: without this, the steps could start before them (seen under MPS, with
         * other processes on the GPU: 77 mismatches over every version, 2026-11-27) */
        tb_cuda_ok(cudaDeviceSynchronize(), "start states and poisoned outputs in place");
        int ok = 1;
        for (int i = 0; i < kSteps; i++) ok &= mb_ssd_step_cuda(&ps, &id, s_one.dev, y_one.dev, st) == MB_OK;
        tb_cuda_ok(cudaStreamSynchronize(st), "steps one by one");
        cudaGraph_t graph = NULL;
        cudaGraphExec_t exec = NULL;
        tb_cuda_ok(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal), "begin capture");
        for (int i = 0; i < kSteps; i++) ok &= mb_ssd_step_cuda(&ps, &id, s_graph.dev, tok.y.dev, st) == MB_OK;
        tb_cuda_ok(cudaStreamEndCapture(st, &graph), "end capture");
        tb_cuda_ok(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
        tb_cuda_ok(cudaGraphLaunch(exec, st), "graph launch");
        tb_cuda_ok(cudaStreamSynchronize(st), "graph");
        CHECK(ok, "step %s: a call failed: %s", name, mb_last_error());
        void *a = d_bytes(&s_one), *b = d_bytes(&s_graph), *ya = d_bytes(&y_one), *yb = d_bytes(&tok.y);
        CHECK(!memcmp(a, b, tb_tensor_bytes(&s_one.t)) && !memcmp(ya, yb, tb_tensor_bytes(&y_one.t)),
              "step %s: %d steps from a CUDA graph differ from the same steps launched one by one", name,
              (int)kSteps);
        printf("   step %s: %d steps from a CUDA graph == launched one by one\n", name, (int)kSteps);
        free(a), free(b), free(ya), free(yb);
        tb_cuda_ok(cudaGraphExecDestroy(exec), "destroy graph exec");
        tb_cuda_ok(cudaGraphDestroy(graph), "destroy graph");
    }
    CHECK_OK(mb_impl_select(MB_OP_SSD, MB_DIR_STEP, MB_BACKEND_CUDA, NULL));
    tb_cuda_ok(cudaStreamDestroy(st), "stream");
    token_bufs_free(&tok);
    d_free(&s_one), d_free(&s_graph), d_free(&y_one);
}

/* dst (B, rows) <- src[:, t, :] of a (B, L, rows) host tensor of es-byte elements */
static void gather_host(void* dst, const void* src, int64_t B, int64_t L, int64_t rows, int64_t t,
                        size_t es) {
    for (int64_t b = 0; b < B; b++)
        memcpy((char*)dst + (size_t)(b * rows) * es,
               (const char*)src + (size_t)((b * L + t) * rows) * es, (size_t)rows * es);
}

/* The state kept in bf16 (params.state_bf16, bf16 activations): every step
 * version, token by token from the initial state rounded to bf16, vs the CPU
 * step with the same option (fp64 math, the state rounded to bf16 after every
 * token): y of every token and the last state. */
static void check_step_bf16_state(const scase* c, const ssd_data* d) {
    const mb_dtype dt = MB_DTYPE_BF16;
    const int64_t HP = c->H * c->P, GN = c->G * c->N, BHPN = c->B * c->H * c->P * c->N;
    const int64_t BL = c->B * c->L;
    const size_t es = 2;
    mb_ssd_params ps = params_of(c, dt);
    ps.seqlen = 1, ps.state_bf16 = 1;
    /* the CPU run: bf16 slices of every token's inputs, the state in bf16 */
    double* h0 = zeros_f64(BHPN);
    if (c->use_h0) memcpy(h0, d->h0.t.host, (size_t)BHPN * sizeof(double));
    void* st_cpu = tb_pack(h0, BHPN, dt);
    void *xh = tb_malloc(c->B * HP * es), *zh = tb_malloc(c->B * HP * es);
    void *dth = tb_malloc(c->B * c->H * es), *bh = tb_malloc(c->B * GN * es);
    void *chh = tb_malloc(c->B * GN * es), *yh = tb_malloc(c->B * HP * es);
    double* y_cpu = zeros_f64(BL * HP); /* (B, L, H, P) */
    for (int64_t t = 0; t < c->L; t++) {
        gather_host(xh, d->x.t.data, c->B, c->L, HP, t, es);
        gather_host(dth, d->dt.t.data, c->B, c->L, c->H, t, es);
        gather_host(bh, d->Bm.t.data, c->B, c->L, GN, t, es);
        gather_host(chh, d->Cm.t.data, c->B, c->L, GN, t, es);
        if (c->use_z) gather_host(zh, d->z.t.data, c->B, c->L, HP, t, es);
        mb_ssd_inputs ih = {xh, dth, d->A.t.data, bh, chh, d->D.t.data,
                            c->use_z ? zh : NULL, d->bias.t.data, NULL};
        CHECK_OK(mb_ssd_step_cpu(&ps, &ih, st_cpu, yh));
        double* yt = tb_unpack(yh, c->B * HP, dt);
        for (int64_t b = 0; b < c->B; b++)
            memcpy(y_cpu + (b * c->L + t) * HP, yt + b * HP, (size_t)HP * sizeof(double));
        free(yt);
    }
    double* st_ref = tb_unpack(st_cpu, BHPN, dt);
    /* every GPU version, the same tokens */
    token_bufs tok = token_bufs_new(c, dt);
    dtens state = d_output(BHPN, dt), ystep = d_output(BL * HP, dt);
    void* st0 = tb_pack(h0, BHPN, dt);
    int ns = mb_impl_count(MB_OP_SSD, MB_DIR_STEP, MB_BACKEND_CUDA);
    for (int k = 0; k < ns; k++) {
        const char* name = select_version(MB_DIR_STEP, k, c->N);
        if (!name) continue;
        tb_cuda_ok(cudaMemcpy(state.dev, st0, (size_t)BHPN * es, cudaMemcpyHostToDevice), "h0");
        CHECK(gpu_steps(c, &ps, d, &tok, state.dev, &ystep), "step %s (bf16 state) calls "
              "failed: %s", name, mb_last_error());
        printf("   step %s, state in bf16, token by token vs the CPU step with a bf16 state\n", name);
        compare("bf16-state y", &ystep, y_cpu, TOL_GPU_BF16_RTOL, TOL_GPU_BF16_ATOL);
        compare("bf16 state", &state, st_ref, TOL_GPU_BF16_RTOL, TOL_GPU_BF16_ATOL);
    }
    CHECK_OK(mb_impl_select(MB_OP_SSD, MB_DIR_STEP, MB_BACKEND_CUDA, NULL));
    token_bufs_free(&tok);
    d_free(&state), d_free(&ystep);
    free(h0), free(st_cpu), free(st0), free(st_ref), free(y_cpu);
    free(xh), free(zh), free(dth), free(bh), free(chh), free(yh);
}

// ----------------------------------------------------------------------------
// duality: SSD == selective scan with A_h repeated over the state

/* (B, L, H, P) -> (B, H*P, L); (B, L, H) -> (B, H*P, L) repeated over p */
static double* to_scan_channels(const double* v, int64_t B, int64_t L, int64_t H, int64_t P,
                                int per_head) {
    double* out = zeros_f64(B * H * P * L);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < L; t++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t p = 0; p < P; p++)
                    out[((b * H + h) * P + p) * L + t] =
                        per_head ? v[(b * L + t) * H + h] : v[((b * L + t) * H + h) * P + p];
    return out;
}

/* (B, L, G, N) -> (B, G, N, L) */
static double* to_scan_bc(const double* v, int64_t B, int64_t L, int64_t G, int64_t N) {
    double* out = zeros_f64(B * G * N * L);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < L; t++)
            for (int64_t k = 0; k < G * N; k++) out[(b * G * N + k) * L + t] = v[(b * L + t) * G * N + k];
    return out;
}

static void* upload(const double* v, int64_t n, mb_dtype dt) {
    if (!v) return NULL;
    void* packed = tb_pack(v, n, dt);
    void* dev = NULL;
    tb_cuda_ok(cudaMalloc(&dev, (size_t)n * mb_dtype_size(dt) + 1), "cudaMalloc");
    tb_cuda_ok(cudaMemcpy(dev, packed, (size_t)n * mb_dtype_size(dt), cudaMemcpyHostToDevice),
               "H2D");
    free(packed);
    return dev;
}

static void check_duality(const scase* c, mb_dtype dt, const ssd_data* d, dtens* y_ssd) {
    const int64_t B = c->B, L = c->L, H = c->H, P = c->P, N = c->N, G = c->G, DC = H * P;
    double* u = to_scan_channels(d->x.t.host, B, L, H, P, 0);
    double* delta = to_scan_channels(d->dt.t.host, B, L, H, P, 1);
    double* z = d->z.t.host ? to_scan_channels(d->z.t.host, B, L, H, P, 0) : NULL;
    double* Bs = to_scan_bc(d->Bm.t.host, B, L, G, N);
    double* Cs = to_scan_bc(d->Cm.t.host, B, L, G, N);
    double* A = zeros_f64(DC * N);
    double* Dv = d->D.t.host ? zeros_f64(DC) : NULL;
    double* bias = d->bias.t.host ? zeros_f64(DC) : NULL;
    for (int64_t ch = 0; ch < DC; ch++) {
        for (int64_t n = 0; n < N; n++) A[ch * N + n] = d->A.t.host[ch / P];
        if (Dv) Dv[ch] = d->D.t.host[ch / P];
        if (bias) bias[ch] = d->bias.t.host[ch / P];
    }
    const mb_dtype pd = MB_DTYPE_F32;
    mb_selective_scan_params sp = {B, DC, L, N, G, dt, c->softplus};
    mb_selective_scan_inputs si = {upload(u, B * DC * L, dt), upload(delta, B * DC * L, dt),
                                   upload(A, DC * N, pd), upload(Bs, B * G * N * L, dt),
                                   upload(Cs, B * G * N * L, dt), upload(Dv, DC, pd),
                                   upload(z, B * DC * L, dt), upload(bias, DC, pd)};
    dtens ys = d_output(B * DC * L, dt);
    CHECK_OK(mb_selective_scan_fwd_cuda(&sp, &si, ys.dev, NULL, NULL));
    tb_cuda_ok(cudaDeviceSynchronize(), "sync");
    const double* scan_y = tb_device_download(&ys.t, ys.dev);
    /* the scan's y back in the SSD layout */
    double* want = zeros_f64(B * L * DC);
    for (int64_t b = 0; b < B; b++)
        for (int64_t ch = 0; ch < DC; ch++)
            for (int64_t t = 0; t < L; t++) want[(b * L + t) * DC + ch] = scan_y[(b * DC + ch) * L + t];
    printf("   duality: SSD fwd (default) vs the CUDA selective scan with A repeated over N\n");
    compare("ssd vs scan", y_ssd, want, TOL_SSD_DUALITY_X * rtol_of(dt), TOL_SSD_DUALITY_X * atol_of(dt));
    const void* devs[] = {si.u, si.delta, si.A, si.B, si.C, si.D, si.z, si.delta_bias};
    for (size_t k = 0; k < sizeof devs / sizeof devs[0]; k++) if (devs[k]) cudaFree((void*)devs[k]);
    free(u), free(delta), free(z), free(Bs), free(Cs), free(A), free(Dv), free(bias), free(want);
    d_free(&ys);
}

// ----------------------------------------------------------------------------

static void run_case(const scase* c, mb_dtype dt) {
    const int64_t BLHP = c->B * c->L * c->H * c->P, BHPN = c->B * c->H * c->P * c->N;
    printf("  case B%lld L%lld H%lld P%lld N%lld G%lld chunk%lld D:%d z:%d bias:%d h0:%d softplus:%d %s\n",
           (long long)c->B, (long long)c->L, (long long)c->H, (long long)c->P, (long long)c->N,
           (long long)c->G, (long long)c->Q, c->use_D, c->use_z, c->use_bias, c->use_h0,
           c->softplus, mb_dtype_name(dt));
    ssd_data d = make_data(c, dt);
    mb_ssd_params p64 = params_of(c, MB_DTYPE_F64);
    mb_ssd_inputs in64 = host_inputs(&d);
    double* y_ref = zeros_f64(BLHP);
    double* fs_ref = zeros_f64(BHPN);
    CHECK_OK(mb_ssd_fwd_cpu(&p64, &in64, y_ref, fs_ref));
    dtens y = d_output(BLHP, dt), fs = d_output(BHPN, MB_DTYPE_F32);
    check_fwd(c, dt, &d, y_ref, fs_ref, &y, &fs);
    check_bwd(c, dt, &d);
    if (c->L <= 300) check_step(c, dt, &d, &y, y_ref, fs_ref);
    if (c->L <= 300 && dt == MB_DTYPE_BF16) check_step_bf16_state(c, &d);
    if (c->L <= 300) check_step_graph(c, dt, &d);
    if (!c->use_h0 && c->L <= 4096) check_duality(c, dt, &d, &y);
    free(y_ref), free(fs_ref);
    d_free(&y), d_free(&fs);
    free_data(&d);
}

// ----------------------------------------------------------------------------
// big tensors (> 2^31 elements): the forward, checked on sampled heads

/* n bf16 values uniform in [lo, hi) from a xorshift stream (cheap enough for 4e9) */
static uint16_t* bf16_uniform(int64_t n, double lo, double hi, uint64_t seed) {
    uint16_t* h = malloc((size_t)n * sizeof *h);
    if (!h) return NULL;
    uint64_t s = seed | 1;
    const float base = (float)lo, scale = (float)((hi - lo) / 16777216.0);
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        h[i] = mb_bf16_from_f32(base + scale * (float)(s >> 40));
    }
    return h;
}

/* how many of got[0..n) miss want by more than the bf16 GPU tolerance (NaN misses);
 * the largest |error| in *max_err */
static int64_t bf16_misses(const double* got, const double* want, int64_t n, double* max_err) {
    int64_t bad = 0;
    *max_err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs(got[i] - want[i]);
        if (!(e <= TOL_GPU_BF16_ATOL + TOL_GPU_BF16_RTOL * fabs(want[i]))) bad++;
        if (e > *max_err || isnan(e)) *max_err = e;
    }
    return bad;
}

/* a device copy of host (bytes), or NULL when the allocation fails */
static void* upload_or_null(const void* host, size_t bytes) {
    void* dev = NULL;
    if (!host || cudaMalloc(&dev, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    tb_cuda_ok(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice), "H2D big");
    return dev;
}

/* rows [b, :, k, :] of a (B, L, K, W) bf16 host tensor as fp64 (L, W) */
static void slice_bf16(double* dst, const uint16_t* src, int64_t b, int64_t L, int64_t K, int64_t k,
                       int64_t W) {
    for (int64_t t = 0; t < L; t++)
        for (int64_t w = 0; w < W; w++)
            dst[t * W + w] = mb_f32_from_bf16(src[((b * L + t) * K + k) * W + w]);
}

/* B 2, L 2^19 + 37, H 64, P 64, N 128 (the canonical head shape), bf16, with D, z, dt_bias,
 * softplus: x, z and y have 4.3e9 elements, and every offset of sequence 1 is past 2^31
 * (as are the forward's chunk states, B x chunks x H x P x N = 2.1e9). The default forward
 * against the fp64 recurrence of single heads (sequence 1, heads 0 and 63: the largest
 * offsets; sequence 0, head 63) over the whole sequence: y and the final state. The
 * backward is not run at this size (bwd v3's workspace would be ~90 GB). */
static void run_big(void) {
    const int64_t Bsz = 2, L = (1 << 19) + 37, H = 64, P = 64, N = 128;
    const int64_t nx = Bsz * L * H * P, nbc = Bsz * L * N, ndt = Bsz * L * H;
    printf("  big case B%lld L%lld H%lld P%lld N%lld bf16: %lld elements per (B, L, H, P) tensor\n",
           (long long)Bsz, (long long)L, (long long)H, (long long)P, (long long)N, (long long)nx);
    uint16_t* hx = bf16_uniform(nx, -1, 1, 0x5a17ull);
    uint16_t* hz = bf16_uniform(nx, -2, 2, 0x77e1ull);
    uint16_t* hdt = bf16_uniform(ndt, -3, 0.5, 0x3d7ull);
    uint16_t* hB = bf16_uniform(nbc, -0.7, 0.7, 0xb0b0ull);
    uint16_t* hC = bf16_uniform(nbc, -0.7, 0.7, 0xc0c0ull);
    uint16_t* hy = malloc((size_t)nx * 2);
    dtens A = d_input(H, MB_DTYPE_F32, -2.0, -0.1), D = d_input(H, MB_DTYPE_F32, -1, 1);
    dtens bias = d_input(H, MB_DTYPE_F32, -1, 0.5);
    void *x = upload_or_null(hx, (size_t)nx * 2), *z = upload_or_null(hz, (size_t)nx * 2);
    void *dt = upload_or_null(hdt, (size_t)ndt * 2), *Bm = upload_or_null(hB, (size_t)nbc * 2);
    void *Cm = upload_or_null(hC, (size_t)nbc * 2), *y = NULL, *fs = NULL;
    const int64_t nfs = Bsz * H * P * N;
    int ok = hy && x && z && dt && Bm && Cm && cudaMalloc(&y, (size_t)nx * 2) == cudaSuccess &&
             cudaMalloc(&fs, (size_t)nfs * 4) == cudaSuccess;
    if (!ok) {
        (void)cudaGetLastError();
        printf("    SKIP big case: not enough host or device memory\n");
    } else {
        tb_cuda_ok(cudaMemset(y, 0xFF, (size_t)nx * 2), "poison");
        tb_cuda_ok(cudaMemset(fs, 0xFF, (size_t)nfs * 4), "poison");
        mb_ssd_params p = {Bsz, L, H, P, N, 1, 256, MB_DTYPE_BF16, 1, MB_SSD_CHUNKED, 0};
        mb_ssd_inputs in = {x, dt, A.dev, Bm, Cm, D.dev, z, bias.dev, NULL};
        mb_status st = mb_ssd_fwd_cuda(&p, &in, y, fs, NULL);
        if (st == MB_ERR_ALLOC) {
            printf("    SKIP big case: the forward's workspace does not fit (%s)\n", mb_last_error());
            ok = 0;
        } else {
            CHECK_OK(st);
            ok = st == MB_OK;
        }
    }
    float* hfs = ok ? malloc((size_t)nfs * 4) : NULL;
    if (ok && !hfs) printf("    SKIP big case check: no host memory for the final state\n");
    if (ok && hfs) {
        tb_cuda_ok(cudaDeviceSynchronize(), "sync big fwd");
        tb_cuda_ok(cudaMemcpy(hy, y, (size_t)nx * 2, cudaMemcpyDeviceToHost), "D2H");
        tb_cuda_ok(cudaMemcpy(hfs, fs, (size_t)nfs * 4, cudaMemcpyDeviceToHost), "D2H");
        double *x1 = zeros_f64(L * P), *z1 = zeros_f64(L * P), *dt1 = zeros_f64(L);
        double *B1 = zeros_f64(L * N), *C1 = zeros_f64(L * N), *y1 = zeros_f64(L * P);
        double *fs1 = zeros_f64(P * N), *got = zeros_f64(L * P);
        const int64_t samples[][2] = {{1, 0}, {1, 63}, {0, 63}}; /* (sequence, head) */
        for (int k = 0; k < 3; k++) {
            const int64_t b = samples[k][0], h = samples[k][1];
            slice_bf16(x1, hx, b, L, H, h, P);
            slice_bf16(z1, hz, b, L, H, h, P);
            slice_bf16(dt1, hdt, b, L, H, h, 1);
            slice_bf16(B1, hB, b, L, 1, 0, N);
            slice_bf16(C1, hC, b, L, 1, 0, N);
            mb_ssd_params p1 = {1, L, 1, P, N, 1, 256, MB_DTYPE_F64, 1, MB_SSD_RECURRENT, 0};
            mb_ssd_inputs i1 = {x1, dt1, &A.t.host[h], B1, C1, &D.t.host[h], z1, &bias.t.host[h], NULL};
            CHECK_OK(mb_ssd_fwd_cpu(&p1, &i1, y1, fs1));
            double mx, mx_fs;
            slice_bf16(got, hy, b, L, H, h, P); /* the GPU's y of this head */
            const int64_t bad = bf16_misses(got, y1, L * P, &mx);
            for (int64_t i = 0; i < P * N; i++) got[i] = hfs[(b * H + h) * P * N + i];
            const int64_t bad_fs = bf16_misses(got, fs1, P * N, &mx_fs);
            CHECK(bad == 0 && bad_fs == 0, "big fwd sequence %lld head %lld: y %lld, final state %lld "
                  "outside tolerance", (long long)b, (long long)h, (long long)bad, (long long)bad_fs);
            printf("    sequence %lld head %lld: y max|err| %.3g  final_state max|err| %.3g\n",
                   (long long)b, (long long)h, mx, mx_fs);
        }
        free(x1), free(z1), free(dt1), free(B1), free(C1), free(y1), free(fs1), free(got);
    }
    free(hfs);
    void* devs[] = {x, z, dt, Bm, Cm, y, fs};
    for (size_t k = 0; k < sizeof devs / sizeof devs[0]; k++) if (devs[k]) cudaFree(devs[k]);
    free(hx), free(hz), free(hdt), free(hB), free(hC), free(hy);
    d_free(&A), d_free(&D), d_free(&bias);
}

int main(int argc, char** argv) {
    if (mb_cuda_device_count() == 0) {
        printf("test_cuda_ssd: SKIP: no CUDA device on this machine\n");
        return TB_SKIP;
    }
    int small = argc > 1 && strcmp(argv[1], "--small") == 0; /* for compute-sanitizer */
    rng_seed(20261126);
    /* B, L, H, P, N, G, chunk, D, z, bias, h0, softplus, dfinal_state, bf16 only */
    scase cases[] = {
        {1, 1, 2, 32, 16, 1, 64, 1, 1, 1, 1, 1, 1, 0},
        {2, 7, 4, 32, 64, 2, 64, 1, 0, 1, 0, 1, 0, 0},
        {1, 131, 4, 64, 128, 1, 64, 0, 1, 0, 1, 1, 1, 0},
        {2, 257, 4, 64, 64, 4, 128, 1, 1, 1, 1, 0, 1, 0},
        {1, 509, 2, 128, 256, 1, 256, 1, 1, 1, 1, 1, 1, 0},
        {1, 1000, 6, 32, 128, 3, 128, 1, 0, 0, 0, 1, 0, 0},
        {1, 100, 2, 64, 128, 1, 256, 1, 1, 1, 1, 1, 1, 0}, /* one short chunk (L < chunk) */
        {4, 3, 64, 32, 128, 1, 64, 1, 1, 1, 1, 1, 1, 0}, /* 256 heads in the batch: step v3's own kernel */
        {8, 2, 32, 32, 64, 2, 64, 1, 0, 1, 0, 1, 0, 0},
        {2, 200, 4, 64, 32, 1, 128, 1, 1, 1, 1, 1, 1, 0}, /* fwd v4 at N 32 (zero-padded) */
        {1, 250, 2, 32, 32, 1, 100, 1, 1, 1, 0, 1, 1, 0},
        {1, 300, 8, 128, 16, 2, 64, 0, 0, 1, 1, 1, 1, 0},
        {2, 4099, 4, 64, 128, 2, 256, 1, 1, 1, 0, 1, 1, 0},
        {1, 16384, 2, 64, 64, 1, 256, 1, 1, 1, 1, 1, 1, 0},
        {1, 2048, 64, 64, 128, 1, 256, 1, 1, 1, 0, 1, 1, 1}, /* the canonical bench shape */
        {3, 5, 3, 20, 8, 1, 64, 1, 1, 1, 0, 1, 0, 0},  /* step v5: N 8, 180 threads (a partial warp) */
        {1, 4, 3, 20, 32, 1, 64, 1, 1, 1, 1, 1, 1, 0}, /* step v5: N 32, 240 threads */
    };
    int ncases = small ? 3 : (int)(sizeof cases / sizeof cases[0]);
    mb_dtype dts[] = {MB_DTYPE_F32, MB_DTYPE_BF16};
    for (int c = 0; c < ncases; c++)
        for (int k = 0; k < 2; k++)
            if (!cases[c].bf16_only || dts[k] == MB_DTYPE_BF16) run_case(&cases[c], dts[k]);
    if (!small && !getenv("MB_SKIP_BIG")) run_big();
    return test_main_result("test_cuda_ssd");
}
#endif /* MB_HAVE_CUDA */
