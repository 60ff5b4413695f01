/*
 * bench_ssd.c -- CPU benchmark of the Mamba-2 SSD reference
 * (mb_ssd_{fwd,bwd}_cpu, chunked form), swept over L.
 *
 * Build: the bench_ssd target of CMakeLists.txt (needs Google Benchmark).
 * Run: ./bench_ssd [--mb_lmax=N] [--benchmark_* flags]; bench/run_cpu_sweep.sh
 * runs it with JSON output. Options: bench_common.h.
 *
 * Shape (B = batch, L = length, H = heads, P = head dim, N = state size,
 * G = groups, Q = chunk size): B = 1, H = 4, P = 32, N = 32, G = 1, Q = 64,
 * fp32, softplus on dt, with dt_bias and D, no z, no initial state.
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
// families

typedef struct {
    const char* name;
    int bwd;                   /* 0: forward, 1: backward */
    int64_t B, H, P, N, G, Q;  /* batch, heads, head dim, state, groups, chunk */
    mb_dtype dtype;
    int64_t lmin, lmax;        /* default sweep */
} ssd_family;

static ssd_family families[] = {
    {"ssd_fwd", 0, 1, 4, 32, 32, 1, 64, MB_DTYPE_F32, 64, 131072},
    {"ssd_bwd", 1, 1, 4, 32, 32, 1, 64, MB_DTYPE_F32, 64, 65536},
};

static double ssd_flops(const ssd_family* f, int64_t L) {
    const double H = (double)f->H, P = (double)f->P, N = (double)f->N, G = (double)f->G,
                 Q = (double)f->Q, BL = (double)f->B * (double)L;
    double fwd = BL * (G * Q * N + H * (Q * P + Q + 4.0 * P * N + 2.0 * P * N / Q)) +
                 8.0 * BL * H * P;
    return f->bwd ? 2.5 * fwd : fwd;
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

static mb_status ssd_call(void* ctx) {
    const ssd_case* c = ctx;
    if (c->fam->bwd) return mb_ssd_bwd_cpu(&c->p, &c->in, c->dy, NULL, &c->g);
    return mb_ssd_fwd_cpu(&c->p, &c->in, c->y, NULL);
}

/* Build case c for (f, L) and run the validating call; `announce`: print progress. */
static void ssd_case_build(ssd_case* c, const ssd_family* f, int64_t L, int announce) {
    bc_pool_free(&c->pool);
    memset(c, 0, sizeof *c);
    c->fam = f;
    c->L = L;
    bc_pool_init(&c->pool, 0x55d0000 + (uint64_t)L);
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
    if (!f->bwd) {
        c->y = bc_pool_uniform(pool, dt, BLHP, -1.0, 1.0);
    } else {
        c->dy = bc_pool_uniform(pool, dt, BLHP, -1.0, 1.0);
        c->g.dx = bc_pool_uniform(pool, dt, BLHP, -1.0, 1.0);
        c->g.ddt = bc_pool_uniform(pool, dt, BLH, -1.0, 1.0);
        c->g.dA = bc_pool_uniform(pool, pdt, f->H, -1.0, 1.0);
        c->g.dB = bc_pool_uniform(pool, dt, BLGN, -1.0, 1.0);
        c->g.dC = bc_pool_uniform(pool, dt, BLGN, -1.0, 1.0);
        c->g.dD = bc_pool_uniform(pool, pdt, f->H, -1.0, 1.0);
        c->g.ddt_bias = bc_pool_uniform(pool, pdt, f->H, -1.0, 1.0);
    }
    bc_check_case(&c->check, f->name, L, pool, ssd_call, c, announce);
}

// ----------------------------------------------------------------------------
// the benchmark body

static void bm_ssd(gb_state* st, void* user) {
    const ssd_family* f = user;
    const int64_t L = gb_range(st, 0);
    if (cur.fam != f || cur.L != L) ssd_case_build(&cur, f, L, 1);
    if (!bc_time_case(st, f->name, &cur.check, ssd_call, &cur)) return;
    char extra[128];
    snprintf(extra, sizeof extra, "B=%lld L=%lld H=%lld P=%lld N=%lld G=%lld chunk=%lld",
             (long long)f->B, (long long)L, (long long)f->H, (long long)f->P, (long long)f->N,
             (long long)f->G, (long long)f->Q);
    mb_direction dir = f->bwd ? MB_DIR_BWD : MB_DIR_FWD;
    bc_set_fields(st, MB_OP_SSD, mb_direction_name(dir), MB_BACKEND_CPU,
                  mb_impl_selected(MB_OP_SSD, dir, MB_BACKEND_CPU), f->dtype, extra);
    bc_report(st, L, f->B * L, ssd_flops(f, L), cur.pool.bytes, cur.check.scratch_peak);
}

/* bc_probe_fn: does the family run at L? (one untimed call) */
static int probe(void* user, int64_t L) {
    ssd_case_build(&cur, user, L, 0);
    return cur.check.status == MB_OK;
}

int main(int argc, char** argv) {
    if (bc_init(&argc, argv, "bench_ssd")) return 1;
    for (size_t k = 0; !bc_gpu_only() && k < sizeof families / sizeof families[0]; k++) {
        ssd_family* f = &families[k];
        bc_register_sweep(f->name, bm_ssd, f, f->lmin, f->lmax, GB_O_N, probe);
    }
    bc_pool_free(&cur.pool); // the probes' case: rebuilt, and announced, by the first run
    cur.fam = NULL;
    int rc = gb_main(argc, argv);
    bc_pool_free(&cur.pool);
    return rc;
}
