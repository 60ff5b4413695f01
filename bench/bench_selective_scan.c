/*
 * bench_selective_scan.c -- CPU benchmark of the Mamba-1 selective scan
 * reference (mb_selective_scan_{fwd,bwd}_cpu), swept over L.
 *
 * Build: the bench_selective_scan target of CMakeLists.txt (needs Google
 * Benchmark). Run: ./bench_selective_scan [--mb_lmax=N] [--benchmark_* flags];
 * bench/run_cpu_sweep.sh runs it with JSON output. Options: bench_common.h.
 *
 * Shape (B = batch, D = channels, L = length, N = state size, G = groups):
 * B = 1, D = 64, N = 16, G = 1, fp32, softplus on delta, with delta_bias,
 * D and z -- the canonical Mamba-1 call at a width the CPU can sweep.
 *
 * FLOP estimate of the forward, per call:
 *   9 * B*D*L*N       per state element: exp(delta*A) 2 (mul, exp), delta*B*u 2,
 *                     h = dA*h + dBu 2, y += C*h 2, plus 1 for the delta*u hoist
 * + 10 * B*D*L        per channel and step: bias, softplus, D*u, silu(z) gate
 * Backward: 2.5x the forward (reverse sweep of the same terms plus the
 * recomputed forward; the FlashAttention convention for backward passes).
 */
#include "bench_common.h"

#include <stdio.h>
#include <string.h>

// ----------------------------------------------------------------------------
// families

typedef struct {
    const char* name;
    int bwd;                     /* 0: forward, 1: backward */
    int64_t B, D, N, G;          /* batch, channels, state size, groups */
    mb_dtype dtype;
    int64_t lmin, lmax;          /* default sweep */
} scan_family;

static scan_family families[] = {
    {"selective_scan_fwd", 0, 1, 64, 16, 1, MB_DTYPE_F32, 64, 131072},
    {"selective_scan_bwd", 1, 1, 64, 16, 1, MB_DTYPE_F32, 64, 65536},
};

static double scan_flops(const scan_family* f, int64_t L) {
    double fwd = (double)f->B * (double)f->D * (double)L * (9.0 * (double)f->N + 10.0);
    return f->bwd ? 2.5 * fwd : fwd;
}

// ----------------------------------------------------------------------------
// one case: the tensors of (family, L), built once and validated by one call

typedef struct {
    const scan_family* fam;
    int64_t L;
    bc_pool pool;
    mb_selective_scan_params p;
    mb_selective_scan_inputs in;
    void* y;                       /* (B, D, L) forward output */
    void* dy;                      /* (B, D, L) backward input */
    mb_selective_scan_grads g;
    bc_check check;                /* the validating call */
} scan_case;

static scan_case cur = {.L = -1};

static mb_status scan_call(void* ctx) {
    const scan_case* c = ctx;
    if (c->fam->bwd) return mb_selective_scan_bwd_cpu(&c->p, &c->in, c->dy, &c->g);
    return mb_selective_scan_fwd_cpu(&c->p, &c->in, c->y, NULL);
}

/* Build case c for (f, L) and run the validating call; `announce`: print progress. */
static void scan_case_build(scan_case* c, const scan_family* f, int64_t L, int announce) {
    bc_pool_free(&c->pool);
    memset(c, 0, sizeof *c);
    c->fam = f;
    c->L = L;
    bc_pool_init(&c->pool, 0x5ca11ab1e + (uint64_t)L);
    const mb_dtype dt = f->dtype, pdt = mb_param_dtype(f->dtype);
    const int64_t BDL = f->B * f->D * L, BGNL = f->B * f->G * f->N * L;
    bc_pool* pool = &c->pool;
    c->p = (mb_selective_scan_params){f->B, f->D, L, f->N, f->G, dt, 1};
    // u, z ~ U(-1, 1); softplus(delta + bias) ~ 0.01..0.1, the usual dt range
    c->in.u = bc_pool_uniform(pool, dt, BDL, -1.0, 1.0);
    c->in.delta = bc_pool_uniform(pool, dt, BDL, -0.5, 0.5);
    c->in.A = bc_pool_uniform(pool, pdt, f->D * f->N, -4.0, -0.5);
    c->in.B = bc_pool_uniform(pool, dt, BGNL, -1.0, 1.0);
    c->in.C = bc_pool_uniform(pool, dt, BGNL, -1.0, 1.0);
    c->in.D = bc_pool_uniform(pool, pdt, f->D, -1.0, 1.0);
    c->in.z = bc_pool_uniform(pool, dt, BDL, -1.0, 1.0);
    c->in.delta_bias = bc_pool_uniform(pool, pdt, f->D, -4.5, -2.5);
    if (!f->bwd) {
        c->y = bc_pool_uniform(pool, dt, BDL, -1.0, 1.0);
    } else {
        c->dy = bc_pool_uniform(pool, dt, BDL, -1.0, 1.0);
        c->g.du = bc_pool_uniform(pool, dt, BDL, -1.0, 1.0);
        c->g.ddelta = bc_pool_uniform(pool, dt, BDL, -1.0, 1.0);
        c->g.dA = bc_pool_uniform(pool, pdt, f->D * f->N, -1.0, 1.0);
        c->g.dB = bc_pool_uniform(pool, dt, BGNL, -1.0, 1.0);
        c->g.dC = bc_pool_uniform(pool, dt, BGNL, -1.0, 1.0);
        c->g.dD = bc_pool_uniform(pool, pdt, f->D, -1.0, 1.0);
        c->g.dz = bc_pool_uniform(pool, dt, BDL, -1.0, 1.0);
        c->g.ddelta_bias = bc_pool_uniform(pool, pdt, f->D, -1.0, 1.0);
    }
    bc_check_case(&c->check, f->name, L, pool, scan_call, c, announce);
}

// ----------------------------------------------------------------------------
// the benchmark body

static void bm_scan(gb_state* st, void* user) {
    const scan_family* f = user;
    const int64_t L = gb_range(st, 0);
    if (cur.fam != f || cur.L != L) scan_case_build(&cur, f, L, 1);
    if (!bc_time_case(st, f->name, &cur.check, scan_call, &cur)) return;
    char label[128];
    snprintf(label, sizeof label, "B=%lld D=%lld N=%lld G=%lld %s softplus z D",
             (long long)f->B, (long long)f->D, (long long)f->N, (long long)f->G,
             mb_dtype_name(f->dtype));
    gb_set_label(st, label);
    bc_report(st, L, f->B * L, scan_flops(f, L), cur.pool.bytes, cur.check.scratch_peak);
}

/* bc_probe_fn: does the family run at L? (one untimed call) */
static int probe(void* user, int64_t L) {
    scan_case_build(&cur, user, L, 0);
    return cur.check.status == MB_OK;
}

int main(int argc, char** argv) {
    if (bc_init(&argc, argv, "bench_selective_scan")) return 1;
    for (size_t k = 0; k < sizeof families / sizeof families[0]; k++) {
        scan_family* f = &families[k];
        bc_register_sweep(f->name, bm_scan, f, f->lmin, f->lmax, GB_O_N, probe);
    }
    bc_pool_free(&cur.pool); // the probes' case: rebuilt, and announced, by the first run
    cur.fam = NULL;
    int rc = gb_main(argc, argv);
    bc_pool_free(&cur.pool);
    return rc;
}
