/*
 * bench_ssd.c -- the Mamba-2 SSD benchmarks, swept over L: every registered
 * implementation (src/registry.c) of the forward and backward, CPU and CUDA,
 * so a new kernel version is benchmarked without editing this file.
 *
 * Build: the bench_ssd target of CMakeLists.txt (needs Google Benchmark).
 * Run: ./bench_ssd [--mb_lmax=N] [--benchmark_* flags]; bench/run_cpu_sweep.sh
 * runs it with JSON output. Options: bench_common.h.
 *
 * Shapes (B = batch, L = length, H = heads, P = head dim, N = state size,
 * G = groups, Q = chunk size), softplus on dt, with dt_bias and D, no z, no
 * initial state:
 *   CPU  (families ssd_<fwd|bwd>_cpu_<impl>)   B 1, H 4, P 32, N 32, G 1, Q 64, fp32
 *   CUDA (ssd_<fwd|fwdbwd>_cuda_<impl>)        the canonical Mamba-2 shape of
 *        anchors.md: B 1, H 64, P 64, N 128, G 1, Q 256, bf16, L 512..131072
 *
 * FLOP estimate of the chunked forward, per call (L/Q chunks, each term a
 * multiply-add counted as 2; the causal intra-chunk products counted half):
 *   G*Q^2*N      per chunk: C B^T within the chunk               (L/Q chunks)
 *   H*Q^2*P      per chunk: (decay-masked C B^T) x
 *   H*Q^2        per chunk: the segment-sum decay mask
 *   2*H*Q*P*N    per chunk: the chunk's state, x^T (decay * B)
 *   2*H*P*N      per chunk: passing the state to the next chunk
 *   2*H*Q*P*N    per chunk: the state's contribution to y, C h
 * so  flops = B * L * (G*Q*N + H*(Q*P + Q + 4*P*N + 2*P*N/Q)) + 8*B*L*H*P
 * (the last term: softplus(dt), D*x and the elementwise decays).
 * Backward: 2.5x the forward (the FlashAttention convention).
 */
#include "bench_common.h"

#include <stdio.h>
#include <string.h>

// ----------------------------------------------------------------------------
// families: one per registered implementation

typedef struct {
    char name[96];
    const char* dir;           /* fwd, bwd (CPU), fwdbwd (CUDA: the default forward, then bwd) */
    int bwd;                   /* 0: forward only, 1: with the backward */
    mb_backend backend;
    const char* impl;
    int64_t B, H, P, N, G, Q;  /* batch, heads, head dim, state, groups, chunk */
    mb_dtype dtype;
    int64_t lmin, lmax;        /* default sweep */
} ssd_family;

#define MAX_FAMILIES 32
static ssd_family families[MAX_FAMILIES];
static int nfamilies;

static double ssd_flops(const ssd_family* f, int64_t L) {
    const double H = (double)f->H, P = (double)f->P, N = (double)f->N, G = (double)f->G,
                 Q = (double)f->Q, BL = (double)f->B * (double)L;
    double fwd = BL * (G * Q * N + H * (Q * P + Q + 4.0 * P * N + 2.0 * P * N / Q)) +
                 8.0 * BL * H * P;
    if (!f->bwd) return fwd;
    return f->backend == MB_BACKEND_CUDA ? 3.5 * fwd : 2.5 * fwd;
}

// ----------------------------------------------------------------------------
// one case: the tensors of (family, L), built once and validated by one call

typedef struct {
    const ssd_family* fam;
    int64_t L;
    bc_pool pool;
    mb_ssd_params p;
    mb_ssd_inputs in;
    void* y;  /* (B, L, H, P) forward output */
    void* dy; /* (B, L, H, P) backward input */
    mb_ssd_grads g;
    bc_check check; /* the validating call */
} ssd_case;

static ssd_case cur = {.L = -1};

/* Select the family's implementation; CUDA fwd+bwd runs the default forward. */
static mb_status select_impl(const ssd_family* f) {
    if (!f->bwd) return mb_impl_select(MB_OP_SSD, MB_DIR_FWD, f->backend, f->impl);
    mb_impl_select(MB_OP_SSD, MB_DIR_FWD, f->backend, NULL);
    return mb_impl_select(MB_OP_SSD, MB_DIR_BWD, f->backend, f->impl);
}

static mb_status ssd_call(void* ctx) {
    const ssd_case* c = ctx;
    const ssd_family* f = c->fam;
    if (f->backend == MB_BACKEND_CPU) {
        if (f->bwd) return mb_ssd_bwd_cpu(&c->p, &c->in, c->dy, NULL, &c->g);
        return mb_ssd_fwd_cpu(&c->p, &c->in, c->y, NULL);
    }
    mb_status st = mb_ssd_fwd_cuda(&c->p, &c->in, c->y, NULL, NULL);
    if (st != MB_OK || !f->bwd) return st;
    return mb_ssd_bwd_cuda(&c->p, &c->in, c->dy, NULL, &c->g, NULL);
}

/* Build case c for (f, L) and run the validating call; `announce`: print progress. */
static void ssd_case_build(ssd_case* c, const ssd_family* f, int64_t L, int announce) {
    bc_pool_free(&c->pool);
    memset(c, 0, sizeof *c);
    c->fam = f;
    c->L = L;
    bc_pool_init_on(&c->pool, 0x55d0000 + (uint64_t)L, f->backend);
    const mb_dtype dt = f->dtype, pdt = mb_param_dtype(f->dtype);
    const int64_t BLHP = f->B * L * f->H * f->P, BLH = f->B * L * f->H,
                  BLGN = f->B * L * f->G * f->N;
    bc_pool* pool = &c->pool;
    c->p = (mb_ssd_params){f->B, L, f->H, f->P, f->N, f->G, f->Q, dt, 1, MB_SSD_CHUNKED};
    // x ~ U(-1, 1); softplus(dt + dt_bias) ~ 0.01..0.1; A < 0 per head
    c->in.x = bc_pool_uniform(pool, dt, BLHP, -1.0, 1.0);
    c->in.dt = bc_pool_uniform(pool, dt, BLH, -0.5, 0.5);
    c->in.A = bc_pool_uniform(pool, pdt, f->H, -4.0, -0.5);
    c->in.B = bc_pool_uniform(pool, dt, BLGN, -1.0, 1.0);
    c->in.C = bc_pool_uniform(pool, dt, BLGN, -1.0, 1.0);
    c->in.D = bc_pool_uniform(pool, pdt, f->H, -1.0, 1.0);
    c->in.dt_bias = bc_pool_uniform(pool, pdt, f->H, -4.5, -2.5);
    c->y = bc_pool_uniform(pool, dt, BLHP, -1.0, 1.0);
    if (f->bwd) {
        c->dy = bc_pool_uniform(pool, dt, BLHP, -1.0, 1.0);
        c->g.dx = bc_pool_uniform(pool, dt, BLHP, -1.0, 1.0);
        c->g.ddt = bc_pool_uniform(pool, dt, BLH, -1.0, 1.0);
        c->g.dA = bc_pool_uniform(pool, pdt, f->H, -1.0, 1.0);
        c->g.dB = bc_pool_uniform(pool, dt, BLGN, -1.0, 1.0);
        c->g.dC = bc_pool_uniform(pool, dt, BLGN, -1.0, 1.0);
        c->g.dD = bc_pool_uniform(pool, pdt, f->H, -1.0, 1.0);
        c->g.ddt_bias = bc_pool_uniform(pool, pdt, f->H, -1.0, 1.0);
    }
    mb_status sel = select_impl(f);
    if (sel != MB_OK) {
        c->check.status = sel;
        snprintf(c->check.err, sizeof c->check.err, "%s: %s", f->name, mb_last_error());
        return;
    }
    bc_check_case(&c->check, f->name, L, pool, ssd_call, c, announce);
}

// ----------------------------------------------------------------------------
// the benchmark body

static void bm_ssd(gb_state* st, void* user) {
    const ssd_family* f = user;
    const int64_t L = gb_range(st, 0);
    if (cur.fam != f || cur.L != L) ssd_case_build(&cur, f, L, 1);
    if (select_impl(f) != MB_OK) {
        bc_skip_status(st, f->name, MB_ERR_BAD_OPTION);
        return;
    }
    if (!bc_time_case(st, f->name, &cur.check, ssd_call, &cur)) return;
    char extra[160];
    snprintf(extra, sizeof extra, "B=%lld L=%lld H=%lld P=%lld N=%lld G=%lld chunk=%lld",
             (long long)f->B, (long long)L, (long long)f->H, (long long)f->P, (long long)f->N,
             (long long)f->G, (long long)f->Q);
    bc_report_row(st, MB_OP_SSD, f->dir, f->backend, f->impl, f->dtype, extra, L, f->B * L,
                  ssd_flops(f, L), &cur.pool, &cur.check);
}

/* bc_probe_fn: does the family run at L? (one untimed call) */
static int probe(void* user, int64_t L) {
    ssd_case_build(&cur, user, L, 0);
    return cur.check.status == MB_OK;
}

// ----------------------------------------------------------------------------
// registration: every implementation in the registry

/* Register one family per implementation of (dir, backend), from a template. */
static void register_impls(mb_direction dir, const char* dirname, ssd_family tmpl) {
    const char* impl;
    for (int i = 0; nfamilies < MAX_FAMILIES &&
                    (impl = bc_impl_name(MB_OP_SSD, dir, tmpl.backend, i)); i++) {
        ssd_family* f = &families[nfamilies++];
        *f = tmpl;
        f->dir = dirname, f->impl = impl;
        snprintf(f->name, sizeof f->name, "ssd_%s_%s_%s", dirname, mb_backend_name(tmpl.backend),
                 impl);
        bc_register_sweep_on(f->name, bm_ssd, f, f->lmin, f->lmax, f->backend, GB_O_N, probe);
    }
}

int main(int argc, char** argv) {
    if (bc_init(&argc, argv, "bench_ssd")) return 1;
    const ssd_family cpu = {.backend = MB_BACKEND_CPU, .B = 1, .H = 4, .P = 32, .N = 32,
                            .G = 1, .Q = 64, .dtype = MB_DTYPE_F32, .lmin = 64, .lmax = 131072};
    const ssd_family gpu = {.backend = MB_BACKEND_CUDA, .B = 1, .H = 64, .P = 64, .N = 128,
                            .G = 1, .Q = 256, .dtype = MB_DTYPE_BF16, .lmin = 512,
                            .lmax = 131072};
    if (!bc_gpu_only()) {
        register_impls(MB_DIR_FWD, "fwd", cpu);
        ssd_family cpu_bwd = cpu;
        cpu_bwd.bwd = 1, cpu_bwd.lmax = 65536;
        register_impls(MB_DIR_BWD, "bwd", cpu_bwd);
    }
    if (bc_have_gpu()) {
        register_impls(MB_DIR_FWD, "fwd", gpu);
        ssd_family gpu_fb = gpu;
        gpu_fb.bwd = 1;
        register_impls(MB_DIR_BWD, "fwdbwd", gpu_fb);
    }
    bc_pool_free(&cur.pool); // the probes' case: rebuilt, and announced, by the first run
    cur.fam = NULL;
    if (nfamilies == 0) { /* e.g. the GPU sweep of an op with no CUDA implementation yet */
        fprintf(stderr, "bench: no implementation of %s to time here: nothing written\n",
                "ssd");
        return 0;
    }
    int rc = gb_main(argc, argv);
    bc_pool_free(&cur.pool);
    return rc;
}
