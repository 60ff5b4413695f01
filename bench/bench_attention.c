/*
 * bench_attention.c -- CPU benchmark of the naive causal attention reference
 * (mb_attention_{fwd,bwd}_cpu), swept over L.
 *
 * Build: the bench_attention target of CMakeLists.txt (needs Google
 * Benchmark). Run: ./bench_attention [--mb_lmax=N] [--benchmark_* flags];
 * bench/run_cpu_sweep.sh runs it with JSON output. Options: bench_common.h.
 *
 * Shape (B = batch, H = heads, L = length, d = head dim): B = 1, H = 1,
 * d = 32, fp32, scale 1/sqrt(d) -- small enough that the forward sweeps
 * L = 64..8192 (one call 1 to 2 s at the top on a 2-core EPYC); the
 * backward, about twice as slow, stops at L = 4096 (about 0.4 s a call).
 *
 * FLOP estimate, per call, the FlashAttention convention (see
 * ../shared/docs/anchors.md): the forward is two L x L x d matmuls (Q K^T and
 * P V), 2 flops per multiply-add, halved by the causal mask:
 *   forward   2 * B*H*L^2*d   (= 4*B*H*L^2*d / 2)
 *   backward  2.5x the forward = 5 * B*H*L^2*d
 * The softmax (O(B*H*L^2) exp) is not counted.
 */
#include "bench_common.h"

#include <stdio.h>
#include <string.h>

// ----------------------------------------------------------------------------
// families

typedef struct {
    const char* name;
    int bwd;             /* 0: forward, 1: backward */
    int64_t B, H, d;     /* batch, heads, head dim */
    mb_dtype dtype;
    int64_t lmin, lmax;  /* default sweep */
} attn_family;

static attn_family families[] = {
    {"attention_fwd", 0, 1, 1, 32, MB_DTYPE_F32, 64, 8192},
    {"attention_bwd", 1, 1, 1, 32, MB_DTYPE_F32, 64, 4096},
};

static double attn_flops(const attn_family* f, int64_t L) {
    double fwd = 2.0 * (double)f->B * (double)f->H * (double)L * (double)L * (double)f->d;
    return f->bwd ? 2.5 * fwd : fwd;
}

// ----------------------------------------------------------------------------
// one case: the tensors of (family, L), built once and validated by one call

typedef struct {
    const attn_family* fam;
    int64_t L;
    bc_pool pool;
    mb_attention_params p;
    void *q, *k, *v; /* (B, H, L, d) */
    void* o;         /* (B, H, L, d) forward output; backward input */
    void* lse;       /* (B, H, L)    param dtype; backward input */
    void *dout, *dq, *dk, *dv; /* (B, H, L, d) backward only */
    bc_check check;            /* the validating call */
} attn_case;

static attn_case cur = {.L = -1};

static mb_status attn_call(void* ctx) {
    const attn_case* c = ctx;
    const mb_attention_inputs in = {c->q, c->k, c->v};
    const mb_attention_grads g = {c->dq, c->dk, c->dv};
    if (c->fam->bwd) return mb_attention_bwd_cpu(&c->p, &in, c->o, c->lse, c->dout, &g);
    return mb_attention_fwd_cpu(&c->p, &in, c->o, NULL);
}

/* Build case c for (f, L) and run the validating call; `announce`: print progress. */
static void attn_case_build(attn_case* c, const attn_family* f, int64_t L, int announce) {
    bc_pool_free(&c->pool);
    memset(c, 0, sizeof *c);
    c->fam = f;
    c->L = L;
    bc_pool_init(&c->pool, 0xa77e0000 + (uint64_t)L);
    const mb_dtype dt = f->dtype, pdt = mb_param_dtype(f->dtype);
    const int64_t BHLd = f->B * f->H * L * f->d, BHL = f->B * f->H * L;
    bc_pool* pool = &c->pool;
    c->p = (mb_attention_params){f->B, f->H, L, f->d, 0.0, dt, 0};
    c->q = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
    c->k = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
    c->v = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
    c->o = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
    if (f->bwd) {
        c->lse = bc_pool_uniform(pool, pdt, BHL, -1.0, 1.0);
        c->dout = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
        c->dq = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
        c->dk = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
        c->dv = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
    }
    if (f->bwd && !pool->failed) { // the backward's o and lse come from a real forward (untimed)
        bc_check* check = &c->check;
        const mb_attention_inputs in = {c->q, c->k, c->v};
        check->status = mb_attention_fwd_cpu(&c->p, &in, c->o, c->lse);
        if (check->status != MB_OK) {
            snprintf(check->err, sizeof check->err, "%s L=%lld: the forward giving o and lse: "
                     "%s: %s", f->name, (long long)L, mb_status_string(check->status),
                     mb_last_error());
            return;
        }
    }
    bc_check_case(&c->check, f->name, L, pool, attn_call, c, announce);
}

// ----------------------------------------------------------------------------
// the benchmark body

static void bm_attention(gb_state* st, void* user) {
    const attn_family* f = user;
    const int64_t L = gb_range(st, 0);
    if (cur.fam != f || cur.L != L) attn_case_build(&cur, f, L, 1);
    if (!bc_time_case(st, f->name, &cur.check, attn_call, &cur)) return;
    char extra[128];
    snprintf(extra, sizeof extra, "B=%lld H=%lld L=%lld d=%lld causal=1", (long long)f->B,
             (long long)f->H, (long long)L, (long long)f->d);
    mb_direction dir = f->bwd ? MB_DIR_BWD : MB_DIR_FWD;
    bc_set_fields(st, MB_OP_ATTENTION, mb_direction_name(dir), MB_BACKEND_CPU,
                  mb_impl_selected(MB_OP_ATTENTION, dir, MB_BACKEND_CPU), f->dtype, extra);
    bc_report(st, L, f->B * L, attn_flops(f, L), cur.pool.bytes, cur.check.scratch_peak);
}

/* bc_probe_fn: does the family run at L? (one untimed call) */
static int probe(void* user, int64_t L) {
    attn_case_build(&cur, user, L, 0);
    return cur.check.status == MB_OK;
}

int main(int argc, char** argv) {
    if (bc_init(&argc, argv, "bench_attention")) return 1;
    for (size_t k = 0; !bc_gpu_only() && k < sizeof families / sizeof families[0]; k++) {
        attn_family* f = &families[k];
        bc_register_sweep(f->name, bm_attention, f, f->lmin, f->lmax, GB_O_N_SQUARED, probe);
    }
    bc_pool_free(&cur.pool); // the probes' case: rebuilt, and announced, by the first run
    cur.fam = NULL;
    int rc = gb_main(argc, argv);
    bc_pool_free(&cur.pool);
    return rc;
}
