/*
 * test_cuda_selective_scan.c -- every registered CUDA version of the selective
 * scan (fwd, bwd, step) against the fp64 CPU reference on fresh random inputs.
 *
 * Inputs are drawn in fp64, rounded to the device dtype, and the same rounded
 * values go to the CPU reference in fp64. Every device output is poisoned with
 * 0xFF bytes (NaN) before each run. The backward runs twice and must give
 * identical bytes. The step, token by token from a zero state, must equal the
 * full forward, on the GPU and on the CPU. One case has tensors of more than
 * 2^31 elements (checked on sampled channels). Skips (exit TB_SKIP, 77) without
 * CUDA in the build or without a GPU.
 */
#include "testing.h"
#include "tolerances.h"

#ifndef MB_HAVE_CUDA
int main(void) {
    printf("test_cuda_selective_scan: SKIP: mambabench was built without CUDA\n");
    return TB_SKIP;
}
#else

#include <cuda_runtime_api.h>

typedef struct {
    int64_t n;
    mb_dtype dt;
    double* host; /* rounded values (inputs) or reference (outputs) */
    void* dev;
} tens;

static size_t tbytes(const tens* t) { return (size_t)(t->n > 0 ? t->n : 1) * mb_dtype_size(t->dt); }

/* host values rounded to dt (tests/problems.h's one pack/unpack), and their device copy */
static tens t_input(int64_t n, mb_dtype dt, double lo, double hi) {
    tens t = {n, dt, rand_uniform_f64(n, lo, hi), NULL};
    tb_round_array(t.host, n, dt);
    void* st = tb_pack(t.host, n, dt);
    tb_cuda_ok(cudaMalloc(&t.dev, tbytes(&t)), "cudaMalloc");
    tb_cuda_ok(cudaMemcpy(t.dev, st, (size_t)n * mb_dtype_size(dt), cudaMemcpyHostToDevice), "H2D");
    free(st);
    return t;
}
static tens t_output(int64_t n, mb_dtype dt) {
    tens t = {n, dt, zeros_f64(n), NULL};
    tb_cuda_ok(cudaMalloc(&t.dev, tbytes(&t)), "cudaMalloc");
    return t;
}
static void t_poison(tens* t) { tb_cuda_ok(cudaMemset(t->dev, 0xFF, tbytes(t)), "poison"); }
static void t_free(tens* t) {
    if (t->dev) cudaFree(t->dev);
    free(t->host);
    t->dev = NULL, t->host = NULL;
}
static void* t_download(const tens* t) {
    void* h = malloc(tbytes(t));
    tb_cuda_ok(cudaDeviceSynchronize(), "sync");
    tb_cuda_ok(cudaMemcpy(h, t->dev, tbytes(t), cudaMemcpyDeviceToHost), "D2H");
    return h;
}

/* |got - want| <= atol + rtol |want| everywhere (NaN fails); prints the worst */
static void compare(const char* what, const tens* t, const double* want, double rtol, double atol) {
    void* h = t_download(t);
    double* gotv = tb_unpack(h, t->n, t->dt); /* (n) */
    int64_t bad = 0, worst = 0;
    double worst_ratio = 0.0, max_err = 0.0;
    for (int64_t i = 0; i < t->n; i++) {
        double got = gotv[i], err = fabs(got - want[i]);
        double lim = atol + rtol * fabs(want[i]);
        if (!(err <= lim)) bad++;
        double r = isnan(err) ? INFINITY : err / lim;
        if (r > worst_ratio || isnan(got)) worst_ratio = r, worst = i;
        if (err > max_err || isnan(err)) max_err = err;
    }
    CHECK(bad == 0, "%s: %lld of %lld outside tolerance; worst [%lld] got %g want %g", what,
          (long long)bad, (long long)t->n, (long long)worst, gotv[worst], want[worst]);
    printf("    %-14s max|err| %.3g  worst err/tol %.3f\n", what, max_err, worst_ratio);
    free(gotv);
    free(h);
}

typedef struct {
    int64_t B, D, L, N, G;
    int use_D, use_z, use_bias, softplus;
} scase;

/* Select CUDA version k of the scan's `dir` for this thread: its name, or NULL
 * when it does not take state size N (or cannot be listed: a failed check). */
static const char* select_version(mb_direction dir, int k, int64_t N) {
    mb_impl_info info;
    mb_status st = mb_impl_get(MB_OP_SELECTIVE_SCAN, dir, MB_BACKEND_CUDA, k, &info);
    CHECK(st == MB_OK, "mb_impl_get(%s, %d): %s", mb_direction_name(dir), k, mb_last_error());
    if (st != MB_OK || N > info.max_dstate) return NULL;
    CHECK_OK(mb_impl_select(MB_OP_SELECTIVE_SCAN, dir, MB_BACKEND_CUDA, info.name));
    return info.name;
}

static double rtol_of(mb_dtype dt) { return dt == MB_DTYPE_BF16 ? TOL_GPU_BF16_RTOL : TOL_GPU_F32_RTOL; }
static double atol_of(mb_dtype dt) { return dt == MB_DTYPE_BF16 ? TOL_GPU_BF16_ATOL : TOL_GPU_F32_ATOL; }

/* params as the caller gives them, and the fp64 copy for the CPU reference */
static mb_selective_scan_params params_of(const scase* c, mb_dtype dt) {
    mb_selective_scan_params p = {c->B, c->D, c->L, c->N, c->G, dt, c->softplus};
    return p;
}

/* rows of length L cut to their first Lp steps: (rows, L) -> (rows, Lp); NULL stays NULL */
static double* prefix_rows(const double* src, int64_t rows, int64_t L, int64_t Lp) {
    if (!src) return NULL;
    double* dst = zeros_f64(rows * Lp);
    for (int64_t r = 0; r < rows; r++) memcpy(dst + r * Lp, src + r * L, (size_t)Lp * sizeof(double));
    return dst;
}

/* The training pair's chunk states by the fp64 reference: entry (b, d, c) is the final
 * state of the forward over the first c * MB_SCAN_CHUNK steps (0 for c = 0).
 * Returns (B, D, nch, N). */
static double* ref_chunk_states(const mb_selective_scan_params* p64, const mb_selective_scan_inputs* in64) {
    const int64_t B = p64->batch, D = p64->dim, N = p64->dstate, L = p64->seqlen;
    const int64_t nch = (L + MB_SCAN_CHUNK - 1) / MB_SCAN_CHUNK, BD = B * D;
    double* states = zeros_f64(BD * nch * N);
    double* fs = zeros_f64(BD * N);
    for (int64_t c = 1; c < nch; c++) {
        const int64_t Lp = c * MB_SCAN_CHUNK, rows_bc = B * p64->ngroups * N;
        mb_selective_scan_params pp = *p64;
        pp.seqlen = Lp;
        double *u = prefix_rows(in64->u, BD, L, Lp), *dl = prefix_rows(in64->delta, BD, L, Lp);
        double *z = prefix_rows(in64->z, BD, L, Lp), *Bm = prefix_rows(in64->B, rows_bc, L, Lp);
        double *Cm = prefix_rows(in64->C, rows_bc, L, Lp), *y = zeros_f64(BD * Lp);
        mb_selective_scan_inputs ip = {u, dl, in64->A, Bm, Cm, in64->D, z, in64->delta_bias};
        CHECK_OK(mb_selective_scan_fwd_cpu(&pp, &ip, y, fs));
        for (int64_t bd = 0; bd < BD; bd++)
            memcpy(states + (bd * nch + c) * N, fs + bd * N, (size_t)N * sizeof(double));
        free(u), free(dl), free(z), free(Bm), free(Cm), free(y);
    }
    free(fs);
    return states;
}

static void run_case(const scase* c, mb_dtype dt) {
    const int64_t BDL = c->B * c->D * c->L, BGNL = c->B * c->G * c->N * c->L;
    const int64_t DN = c->D * c->N, BDN = c->B * c->D * c->N;
    printf("  case B%lld D%lld L%lld N%lld G%lld D:%d z:%d bias:%d softplus:%d %s\n",
           (long long)c->B, (long long)c->D, (long long)c->L, (long long)c->N, (long long)c->G,
           c->use_D, c->use_z, c->use_bias, c->softplus, mb_dtype_name(dt));
    const mb_dtype pd = MB_DTYPE_F32;
    tens u = t_input(BDL, dt, -1, 1);
    tens delta = c->softplus ? t_input(BDL, dt, -3, 0.5) : t_input(BDL, dt, 0.01, 0.6);
    tens A = t_input(DN, pd, -2.0, -0.1);
    tens Bm = t_input(BGNL, dt, -1, 1), Cm = t_input(BGNL, dt, -1, 1);
    tens Dv = {0}, z = {0}, bias = {0};
    if (c->use_D) Dv = t_input(c->D, pd, -1, 1);
    if (c->use_z) z = t_input(BDL, dt, -2, 2);
    /* without softplus delta' = delta + bias must stay positive (else the state grows) */
    if (c->use_bias) bias = c->softplus ? t_input(c->D, pd, -1, 0.5) : t_input(c->D, pd, 0.0, 0.3);
    tens dy = t_input(BDL, dt, -1, 1);

    mb_selective_scan_params p = params_of(c, dt), p64 = params_of(c, MB_DTYPE_F64);
    mb_selective_scan_inputs in = {u.dev, delta.dev, A.dev, Bm.dev, Cm.dev, Dv.dev, z.dev, bias.dev};
    mb_selective_scan_inputs in64 = {u.host, delta.host, A.host, Bm.host, Cm.host,
                                     Dv.host, z.host, bias.host};
    /* fp64 reference */
    double* y_ref = zeros_f64(BDL);
    double* fs_ref = zeros_f64(BDN);
    CHECK_OK(mb_selective_scan_fwd_cpu(&p64, &in64, y_ref, fs_ref));
    double rt = rtol_of(dt), at = atol_of(dt);

    tens y = t_output(BDL, dt), fs = t_output(BDN, pd);
    /* the training pair's chunk states (written by the saving forward, read by the backward) */
    tens states = t_output(mb_selective_scan_chunk_states_numel(&p), pd);
    double* states_ref = ref_chunk_states(&p64, &in64);
    int nf = mb_impl_count(MB_OP_SELECTIVE_SCAN, MB_DIR_FWD, MB_BACKEND_CUDA);
    for (int k = 0; k < nf; k++) {
        const char* name = select_version(MB_DIR_FWD, k, c->N);
        if (!name) continue;
        printf("   fwd %s\n", name);
        t_poison(&y), t_poison(&fs);
        CHECK_OK(mb_selective_scan_fwd_cuda(&p, &in, y.dev, fs.dev, NULL));
        compare("y", &y, y_ref, rt, at);
        compare("final_state", &fs, fs_ref, rt, at);
        printf("   fwd_save %s\n", name);
        t_poison(&y), t_poison(&fs), t_poison(&states);
        CHECK_OK(mb_selective_scan_fwd_save_cuda(&p, &in, y.dev, fs.dev, states.dev, NULL));
        compare("y", &y, y_ref, rt, at);
        compare("final_state", &fs, fs_ref, rt, at);
        compare("chunk_states", &states, states_ref, rt, at);
    }
    CHECK_OK(mb_impl_select(MB_OP_SELECTIVE_SCAN, MB_DIR_FWD, MB_BACKEND_CUDA, NULL));
    /* the default saving forward's states, for the backward below */
    CHECK_OK(mb_selective_scan_fwd_save_cuda(&p, &in, y.dev, fs.dev, states.dev, NULL));

    /* backward */
    struct { const char* name; int64_t n; mb_dtype t; int on; double rx, ax; } gs[8] = {
        {"du", BDL, dt, 1, TOL_SCAN_GRAD_RTOL_X, TOL_SCAN_GRAD_ATOL_X},
        {"ddelta", BDL, dt, 1, TOL_SCAN_DDELTA_RTOL_X, TOL_SCAN_DDELTA_ATOL_X},
        {"dA", DN, pd, 1, TOL_SCAN_DA_RTOL_X, TOL_SCAN_DA_ATOL_X},
        {"dB", BGNL, dt, 1, TOL_SCAN_GRAD_RTOL_X, TOL_SCAN_GRAD_ATOL_X},
        {"dC", BGNL, dt, 1, TOL_SCAN_GRAD_RTOL_X, TOL_SCAN_GRAD_ATOL_X},
        {"dD", c->D, pd, c->use_D, TOL_SCAN_GRAD_RTOL_X, TOL_SCAN_GRAD_ATOL_X},
        {"dz", BDL, dt, c->use_z, TOL_SCAN_GRAD_RTOL_X, TOL_SCAN_GRAD_ATOL_X},
        {"ddelta_bias", c->D, pd, c->use_bias, TOL_SCAN_GRAD_RTOL_X, TOL_SCAN_GRAD_ATOL_X}};
    tens gt[8];
    double* gref[8];
    void* gdev[8];
    void* gh64[8];
    for (int i = 0; i < 8; i++) {
        gt[i] = gs[i].on ? t_output(gs[i].n, gs[i].t) : (tens){0};
        gref[i] = gs[i].on ? zeros_f64(gs[i].n) : NULL;
        gdev[i] = gt[i].dev;
        gh64[i] = gref[i];
    }
    mb_selective_scan_grads g = {gdev[0], gdev[1], gdev[2], gdev[3], gdev[4], gdev[5], gdev[6], gdev[7]};
    mb_selective_scan_grads g64 = {gh64[0], gh64[1], gh64[2], gh64[3], gh64[4], gh64[5], gh64[6], gh64[7]};
    CHECK_OK(mb_selective_scan_bwd_cpu(&p64, &in64, dy.host, &g64));
    int nb = mb_impl_count(MB_OP_SELECTIVE_SCAN, MB_DIR_BWD, MB_BACKEND_CUDA);
    for (int k = 0; k < nb; k++) {
        const char* name = select_version(MB_DIR_BWD, k, c->N);
        if (!name) continue;
        for (int saved = 0; saved < 2; saved++) { /* bwd, then bwd_saved (the training pair) */
            printf("   %s %s\n", saved ? "bwd_saved" : "bwd", name);
            void* first[8] = {0};
            for (int rep = 0; rep < 2; rep++) {
                for (int i = 0; i < 8; i++) if (gs[i].on) t_poison(&gt[i]);
                CHECK_OK(saved ? mb_selective_scan_bwd_saved_cuda(&p, &in, dy.dev, states.dev, &g, NULL)
                               : mb_selective_scan_bwd_cuda(&p, &in, dy.dev, &g, NULL));
                for (int i = 0; i < 8; i++) {
                    if (!gs[i].on) continue;
                    if (rep == 0) {
                        first[i] = t_download(&gt[i]);
                    } else {
                        void* second = t_download(&gt[i]);
                        CHECK(memcmp(first[i], second, tbytes(&gt[i])) == 0,
                              "%s %s %s: two runs differ (not deterministic)",
                              saved ? "bwd_saved" : "bwd", name, gs[i].name);
                        free(second);
                        compare(gs[i].name, &gt[i], gref[i], rt * gs[i].rx, at * gs[i].ax);
                        free(first[i]);
                    }
                }
            }
        }
    }
    CHECK_OK(mb_impl_select(MB_OP_SELECTIVE_SCAN, MB_DIR_BWD, MB_BACKEND_CUDA, NULL));

    /* step, token by token from a zero state, short sequences only: the CPU
     * step in fp64, then every registered CUDA step version */
    if (c->L <= 300) {
        const int64_t BD = c->B * c->D, BGN = c->B * c->G * c->N;
        mb_selective_scan_params ps = p, ps64 = p64;
        ps.seqlen = ps64.seqlen = 1;
        double *ut = zeros_f64(BD), *dt_ = zeros_f64(BD), *zt = zeros_f64(BD);
        double *bt = zeros_f64(BGN), *ct = zeros_f64(BGN), *yt = zeros_f64(BD);
        double* st64 = zeros_f64(BDN);
        double* ystep64 = zeros_f64(BDL);
        tens du_ = t_output(BD, dt), ddl = t_output(BD, dt), dz_ = t_output(BD, dt);
        tens db_ = t_output(BGN, dt), dc_ = t_output(BGN, dt), dyt = t_output(BD, dt);
        tens state = t_output(BDN, pd), ystep = t_output(BDL, dt);
        void* stage = malloc((size_t)(BGN > BD ? BGN : BD) * 4);
        int ok = 1;
        /* the CPU step */
        for (int64_t t = 0; t < c->L; t++) {
            for (int64_t i = 0; i < BD; i++) {
                ut[i] = u.host[i * c->L + t];
                dt_[i] = delta.host[i * c->L + t];
                if (c->use_z) zt[i] = z.host[i * c->L + t];
            }
            for (int64_t i = 0; i < BGN; i++) bt[i] = Bm.host[i * c->L + t], ct[i] = Cm.host[i * c->L + t];
            mb_selective_scan_inputs i64 = {ut, dt_, A.host, bt, ct, Dv.host, c->use_z ? zt : NULL, bias.host};
            if (mb_selective_scan_step_cpu(&ps64, &i64, st64, yt) != MB_OK) ok = 0;
            for (int64_t i = 0; i < BD; i++) ystep64[i * c->L + t] = yt[i];
        }
        CHECK(ok, "cpu step calls failed: %s", mb_last_error());
        printf("   step cpu (fp64) token by token vs the full forward\n");
        expect_close_f64("cpu step y vs cpu fwd", ystep64, y_ref, BDL, TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
        expect_close_f64("cpu step state vs fwd", st64, fs_ref, BDN, TOL_F64_AGREE_RTOL, TOL_F64_AGREE_ATOL);
        double srt = dt == MB_DTYPE_BF16 ? TOL_SCAN_STEP_BF16_RTOL : TOL_SCAN_STEP_F32_RTOL;
        double sat = dt == MB_DTYPE_BF16 ? TOL_SCAN_STEP_BF16_ATOL : TOL_SCAN_STEP_F32_ATOL;
        int ns = mb_impl_count(MB_OP_SELECTIVE_SCAN, MB_DIR_STEP, MB_BACKEND_CUDA);
        for (int k = 0; k < ns; k++) {
            const char* name = select_version(MB_DIR_STEP, k, c->N);
            if (!name) continue;
            tb_cuda_ok(cudaMemset(state.dev, 0, tbytes(&state)), "zero state");
            t_poison(&ystep);
            ok = 1;
            for (int64_t t = 0; t < c->L; t++) {
                for (int64_t i = 0; i < BD; i++) {
                    ut[i] = u.host[i * c->L + t];
                    dt_[i] = delta.host[i * c->L + t];
                    if (c->use_z) zt[i] = z.host[i * c->L + t];
                }
                for (int64_t i = 0; i < BGN; i++) bt[i] = Bm.host[i * c->L + t], ct[i] = Cm.host[i * c->L + t];
                const double* src[5] = {ut, dt_, zt, bt, ct};
                tens* dst[5] = {&du_, &ddl, &dz_, &db_, &dc_};
                for (int q = 0; q < 5; q++) {
                    tb_pack_into(stage, src[q], dst[q]->n, dt);
                    tb_cuda_ok(cudaMemcpy(dst[q]->dev, stage, tbytes(dst[q]),
                                          cudaMemcpyHostToDevice), "H2D");
                }
                mb_selective_scan_inputs id = {du_.dev, ddl.dev, A.dev, db_.dev, dc_.dev, Dv.dev,
                                               c->use_z ? dz_.dev : NULL, bias.dev};
                t_poison(&dyt);
                if (mb_selective_scan_step_cuda(&ps, &id, state.dev, dyt.dev, NULL) != MB_OK) ok = 0;
                /* scatter y_t into ystep (B, D, L) on the device */
                size_t es = mb_dtype_size(dt);
                tb_cuda_ok(cudaMemcpy2D((char*)ystep.dev + t * es, (size_t)c->L * es, dyt.dev,
                                        es, es, (size_t)BD, cudaMemcpyDeviceToDevice),
                           "scatter");
            }
            CHECK(ok, "step %s calls failed: %s", name, mb_last_error());
            printf("   step %s token by token vs the fp64 full forward\n", name);
            compare("step y", &ystep, y_ref, srt, sat);
            compare("step state", &state, fs_ref, srt, sat);
        }
        CHECK_OK(mb_impl_select(MB_OP_SELECTIVE_SCAN, MB_DIR_STEP, MB_BACKEND_CUDA, NULL));
        free(ut), free(dt_), free(zt), free(bt), free(ct), free(yt), free(st64), free(ystep64), free(stage);
        tens* ts[] = {&du_, &ddl, &dz_, &db_, &dc_, &dyt, &state, &ystep};
        for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) t_free(ts[k]);
    }

    for (int i = 0; i < 8; i++) if (gs[i].on) t_free(&gt[i]), free(gref[i] == gt[i].host ? NULL : gref[i]);
    free(y_ref), free(fs_ref), free(states_ref);
    tens* all[] = {&u, &delta, &A, &Bm, &Cm, &Dv, &z, &bias, &dy, &y, &fs, &states};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) if (all[k]->dev || all[k]->host) t_free(all[k]);
}

/* D 4096, L 2^19 + 37, B 1, bf16: u, delta, y have 2.15e9 > 2^31 elements.
 * Forward checked against the reference on sampled channels (the last one's
 * offsets are past 2^31), and du, ddelta of the backward on the same channels. */
static void run_big(int64_t N) {
    const int64_t D = 4096, L = (1 << 19) + 37, BDL = D * L, NL = N * L;
    const mb_dtype dt = MB_DTYPE_BF16;
    printf("  big case D%lld L%lld N%lld bf16: %lld elements per (B, D, L) tensor\n", (long long)D,
           (long long)L, (long long)N, (long long)BDL);
    size_t bytes = (size_t)BDL * 2;
    uint16_t* hu = malloc(bytes);
    uint16_t* hd = malloc(bytes);
    if (!hu || !hd) { printf("    SKIP big case: no host memory\n"); free(hu); free(hd); return; }
    uint64_t s = 0x1234567ull;
    for (int64_t i = 0; i < BDL; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float a = (float)((s >> 40) & 0xFFFF) / 65536.0f, b = (float)((s >> 8) & 0xFFFF) / 65536.0f;
        hu[i] = mb_bf16_from_f32(2 * a - 1);
        hd[i] = mb_bf16_from_f32(-3 + 3.5f * b);
    }
    void *du, *dd, *dyv, *dB, *dC, *dA, *dy_out, *gdu, *gdd, *gdA, *gdB, *gdC;
    if (cudaMalloc(&du, bytes) != cudaSuccess || cudaMalloc(&dd, bytes) != cudaSuccess ||
        cudaMalloc(&dy_out, bytes) != cudaSuccess) {
        printf("    SKIP big case: not enough device memory\n");
        (void)cudaGetLastError();
        free(hu), free(hd);
        return;
    }
    tb_cuda_ok(cudaMemcpy(du, hu, bytes, cudaMemcpyHostToDevice), "H2D");
    tb_cuda_ok(cudaMemcpy(dd, hd, bytes, cudaMemcpyHostToDevice), "H2D");
    tens A = t_input(D * N, MB_DTYPE_F32, -2.0, -0.1);
    tens Bm = t_input(NL, dt, -1, 1), Cm = t_input(NL, dt, -1, 1);
    tens Dv = t_input(D, MB_DTYPE_F32, -1, 1), bias = t_input(D, MB_DTYPE_F32, -1, 0.5);
    (void)dyv, (void)dB, (void)dC, (void)dA;
    mb_selective_scan_params p = {1, D, L, N, 1, dt, 1};
    mb_selective_scan_inputs in = {du, dd, A.dev, Bm.dev, Cm.dev, Dv.dev, NULL, bias.dev};
    tb_cuda_ok(cudaMemset(dy_out, 0xFF, bytes), "poison");
    CHECK_OK(mb_selective_scan_fwd_cuda(&p, &in, dy_out, NULL, NULL));
    uint16_t* hy = malloc(bytes);
    tb_cuda_ok(cudaDeviceSynchronize(), "sync big fwd");
    tb_cuda_ok(cudaMemcpy(hy, dy_out, bytes, cudaMemcpyDeviceToHost), "D2H");
    /* backward: dy = u (any non-zero data), du, ddelta on the same channels */
    int bwd_ok = cudaMalloc(&gdu, bytes) == cudaSuccess && cudaMalloc(&gdd, bytes) == cudaSuccess &&
                 cudaMalloc(&gdA, D * N * 4) == cudaSuccess && cudaMalloc(&gdB, NL * 2) == cudaSuccess &&
                 cudaMalloc(&gdC, NL * 2) == cudaSuccess;
    void *gdD = NULL, *gdb = NULL;
    uint16_t *hgu = NULL, *hgd = NULL;
    if (bwd_ok && cudaMalloc(&gdD, D * 4) == cudaSuccess && cudaMalloc(&gdb, D * 4) == cudaSuccess) {
        tb_cuda_ok(cudaMemset(gdu, 0xFF, bytes), "poison");
        tb_cuda_ok(cudaMemset(gdd, 0xFF, bytes), "poison");
        mb_selective_scan_grads g = {gdu, gdd, gdA, gdB, gdC, gdD, NULL, gdb};
        CHECK_OK(mb_selective_scan_bwd_cuda(&p, &in, du, &g, NULL));
        hgu = malloc(bytes), hgd = malloc(bytes);
        tb_cuda_ok(cudaDeviceSynchronize(), "sync big bwd");
        tb_cuda_ok(cudaMemcpy(hgu, gdu, bytes, cudaMemcpyDeviceToHost), "D2H");
        tb_cuda_ok(cudaMemcpy(hgd, gdd, bytes, cudaMemcpyDeviceToHost), "D2H");
    } else {
        (void)cudaGetLastError();
        printf("    big backward skipped: not enough device memory\n");
    }
    int64_t chans[] = {0, 1, 2047, 4094, 4095};
    double* u1 = zeros_f64(L), *d1 = zeros_f64(L), *y1 = zeros_f64(L), *A1 = zeros_f64(N);
    double *gu1 = zeros_f64(L), *gd1 = zeros_f64(L), *gA1 = zeros_f64(N), *gB1 = zeros_f64(NL);
    double *gC1 = zeros_f64(NL), *gD1 = zeros_f64(1), *gb1 = zeros_f64(1);
    for (int k = 0; k < 5; k++) {
        int64_t d = chans[k];
        for (int64_t t = 0; t < L; t++) {
            u1[t] = mb_f32_from_bf16(hu[d * L + t]);
            d1[t] = mb_f32_from_bf16(hd[d * L + t]);
        }
        for (int64_t n = 0; n < N; n++) A1[n] = A.host[d * N + n];
        mb_selective_scan_params p1 = {1, 1, L, N, 1, MB_DTYPE_F64, 1};
        mb_selective_scan_inputs i1 = {u1, d1, A1, Bm.host, Cm.host, &Dv.host[d], NULL, &bias.host[d]};
        CHECK_OK(mb_selective_scan_fwd_cpu(&p1, &i1, y1, NULL));
        tens yt = {L, dt, NULL, NULL};
        (void)yt;
        int64_t bad = 0;
        double mx = 0;
        for (int64_t t = 0; t < L; t++) {
            double got = mb_f32_from_bf16(hy[d * L + t]), e = fabs(got - y1[t]);
            if (!(e <= TOL_GPU_BF16_ATOL + TOL_GPU_BF16_RTOL * fabs(y1[t]))) bad++;
            if (e > mx || isnan(e)) mx = e;
        }
        CHECK(bad == 0, "big fwd channel %lld: %lld outside tolerance", (long long)d, (long long)bad);
        printf("    channel %lld: y max|err| %.3g\n", (long long)d, mx);
        if (hgu) {
            mb_selective_scan_grads g1 = {gu1, gd1, gA1, gB1, gC1, gD1, NULL, gb1};
            CHECK_OK(mb_selective_scan_bwd_cpu(&p1, &i1, u1, &g1));
            int64_t badu = 0, badd = 0;
            double mu = 0, md = 0;
            for (int64_t t = 0; t < L; t++) {
                double e1 = fabs(mb_f32_from_bf16(hgu[d * L + t]) - gu1[t]);
                double e2 = fabs(mb_f32_from_bf16(hgd[d * L + t]) - gd1[t]);
                if (!(e1 <= TOL_SCAN_GRAD_ATOL_X * TOL_GPU_BF16_ATOL + TOL_SCAN_GRAD_RTOL_X * TOL_GPU_BF16_RTOL * fabs(gu1[t]))) badu++;
                if (!(e2 <= TOL_SCAN_DDELTA_ATOL_X * TOL_GPU_BF16_ATOL + TOL_SCAN_DDELTA_RTOL_X * TOL_GPU_BF16_RTOL * fabs(gd1[t]))) badd++;
                if (e1 > mu || isnan(e1)) mu = e1;
                if (e2 > md || isnan(e2)) md = e2;
            }
            CHECK(badu == 0 && badd == 0, "big bwd channel %lld: du %lld, ddelta %lld outside tolerance",
                  (long long)d, (long long)badu, (long long)badd);
            printf("    channel %lld: du max|err| %.3g  ddelta max|err| %.3g\n", (long long)d, mu, md);
        }
    }
    free(u1), free(d1), free(y1), free(A1), free(gu1), free(gd1), free(gA1), free(gB1), free(gC1), free(gD1), free(gb1);
    free(hu), free(hd), free(hy), free(hgu), free(hgd);
    cudaFree(du), cudaFree(dd), cudaFree(dy_out);
    if (bwd_ok) cudaFree(gdu), cudaFree(gdd), cudaFree(gdA), cudaFree(gdB), cudaFree(gdC);
    if (gdD) cudaFree(gdD);
    if (gdb) cudaFree(gdb);
    t_free(&A), t_free(&Bm), t_free(&Cm), t_free(&Dv), t_free(&bias);
}

int main(int argc, char** argv) {
    if (mb_cuda_device_count() == 0) {
        printf("test_cuda_selective_scan: SKIP: no CUDA device on this machine\n");
        return TB_SKIP;
    }
    int small = argc > 1 && strcmp(argv[1], "--small") == 0; /* for compute-sanitizer */
    /* --staged (for compute-sanitizer): only the small cases whose segmented forwards stage
     * their inputs in shared memory (the four after the N 256, L 40 case) */
    int staged = argc > 1 && strcmp(argv[1], "--staged") == 0;
    rng_seed(20261126);
    scase cases[] = {
        {1, 4, 1, 1, 1, 1, 1, 1, 1},
        {2, 6, 7, 16, 2, 1, 0, 1, 1},
        {3, 4, 129, 17, 2, 0, 0, 0, 0},
        {1, 4, 2053, 16, 1, 0, 1, 0, 0},
        {2, 8, 4099, 64, 4, 1, 1, 1, 1},
        {1, 3, 16384, 16, 3, 1, 1, 1, 1},
        {1, 2, 1000, 256, 1, 1, 1, 0, 1},
        {2, 5, 3001, 33, 5, 1, 0, 1, 0},
        {1, 4, 4096, 16, 1, 1, 1, 1, 1},
        {2, 4, 37, 64, 2, 1, 1, 1, 1},
        {1, 2, 50, 128, 1, 0, 1, 1, 0},
        {1, 3, 40, 256, 3, 1, 0, 0, 1},
        {2, 4, 2048, 64, 1, 1, 1, 1, 1}, /* staged segments at N 64 (fwd v17/v18's fp32 B, C) */
        {1, 6, 2048, 32, 1, 1, 0, 1, 1}, /* and at N 32 */
        {1, 4, 1024, 128, 1, 1, 1, 1, 1}, /* staged segments of 16-step stages (LPC 16), 4 segments */
        {2, 8, 1544, 256, 2, 1, 1, 0, 1}, /* LPC 32, two groups, 6 segments of 264 steps (the last short) */
        /* 3 x 32 blocks x 8 segments: more than one wave of the segmented forward's launch 2
         * on the H100 (528 resident blocks), so launch 1 walks segment 0 with y there */
        {3, 2048, 2048, 16, 1, 1, 1, 1, 1},
    };
    int first = staged ? 12 : 0;
    int ncases = small ? 3 : staged ? 16 : (int)(sizeof cases / sizeof cases[0]);
    mb_dtype dts[] = {MB_DTYPE_F32, MB_DTYPE_BF16};
    for (int c = first; c < ncases; c++)
        for (int k = 0; k < 2; k++) run_case(&cases[c], dts[k]);
    if (!small && !staged && !getenv("MB_SKIP_BIG")) run_big(4);
    return test_main_result("test_cuda_selective_scan");
}
#endif /* MB_HAVE_CUDA */
