/*
 * bench_attention.c -- the causal attention benchmarks, swept over L: every
 * registered implementation (src/registry.c) of the forward and backward,
 * CPU and CUDA, so a new kernel version is benchmarked without editing this
 * file. CUDA families use the canonical shape of anchors.md (B 1, H 16,
 * d 128, bf16, L 512..131072; fwdbwd = the default forward, then the
 * backward of <impl>, both timed; naive's fwdbwd runs the naive forward);
 * a point that does not fit (naive attention's L x L) is recorded as an error
 * row and the sweep goes on.
 *
 * Decode (CUDA, family attention_decode_cuda_<impl>_b<B>): one query per
 * sequence over a KV cache of L tokens (every sequence's length L), B 1, 8
 * and 64, H = H_kv 16, d 128, bf16, L 512..131072 (B 64: ..65536). One call per timed
 * iteration, after the L2 flush, so the cache is read from HBM. Its rows also
 * carry decode_state_bytes, the memory one sequence keeps to decode the next
 * token (the K and V cache of one layer at L); the step rows of the scan and
 * SSD carry the same counter (their constant state), for the plot beside it.
 *
 * Build: the bench_attention target of CMakeLists.txt (needs Google
 * Benchmark). Run: ./bench_attention [--mb_lmax=N] [--benchmark_* flags];
 * bench/run_cpu_sweep.sh runs it with JSON output. Options: bench_common.h.
 *
 * CPU shape (B = batch, H = heads, L = length, d = head dim): B = 1, H = 1,
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
// families: one per registered implementation

typedef enum { FWD, BWD, DECODE } attn_kind;

typedef struct {
    char name[96];
    const char* dir;     /* fwd, bwd (CPU: o and lse from an untimed forward), fwdbwd (CUDA),
                            decode */
    int bwd;             /* 0: forward only, 1: with the backward */
    attn_kind kind;      /* FWD, BWD (bwd or fwdbwd: see bwd) or DECODE */
    mb_backend backend;
    const char* impl;
    int64_t B, H, d;     /* batch, heads, head dim */
    mb_dtype dtype;
    int64_t lmin, lmax;  /* default sweep */
} attn_family;

#define MAX_FAMILIES 128
static attn_family families[MAX_FAMILIES];
static int nfamilies;

static double attn_flops(const attn_family* f, int64_t L) {
    if (f->kind == DECODE) return 4.0 * (double)f->B * (double)f->H * (double)L * (double)f->d;
    double fwd = 2.0 * (double)f->B * (double)f->H * (double)L * (double)L * (double)f->d;
    if (!f->bwd) return fwd;
    return f->backend == MB_BACKEND_CUDA ? 3.5 * fwd : 2.5 * fwd;
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
    void* lse;       /* (B, H, L)    param dtype */
    void *dout, *dq, *dk, *dv; /* (B, H, L, d) backward only */
    mb_attention_decode_params dp; /* decode only: q, o (B, H, d); k, v (B, H, L, d) caches */
    int64_t seqlens[64];           /* decode: (B) host cache lengths, all L */
    bc_check check;                /* the validating call */
} attn_case;

static attn_case cur = {.L = -1};

/* Select the family's implementation. A backward runs after the default
 * forward, except naive's: the naive forward, the quadratic baseline whole. */
static mb_status select_impl(const attn_family* f) {
    if (f->kind == DECODE)
        return mb_impl_select(MB_OP_ATTENTION, MB_DIR_DECODE, f->backend, f->impl);
    if (!f->bwd) return mb_impl_select(MB_OP_ATTENTION, MB_DIR_FWD, f->backend, f->impl);
    const char* fwd = strcmp(f->impl, "naive") == 0 ? "naive" : NULL;
    if (mb_impl_select(MB_OP_ATTENTION, MB_DIR_FWD, f->backend, fwd) != MB_OK)
        mb_impl_select(MB_OP_ATTENTION, MB_DIR_FWD, f->backend, NULL);
    return mb_impl_select(MB_OP_ATTENTION, MB_DIR_BWD, f->backend, f->impl);
}

static mb_status attn_fwd(const attn_case* c) {
    const mb_attention_inputs in = {c->q, c->k, c->v};
    if (c->fam->backend == MB_BACKEND_CPU) return mb_attention_fwd_cpu(&c->p, &in, c->o, c->lse);
    return mb_attention_fwd_cuda(&c->p, &in, c->o, c->lse, NULL);
}

static mb_status attn_call(void* ctx) {
    const attn_case* c = ctx;
    const attn_family* f = c->fam;
    if (f->kind == DECODE) {
        const mb_attention_decode_inputs din = {c->q, c->k, c->v, c->seqlens};
        return mb_attention_decode_cuda(&c->dp, &din, c->o, c->lse, NULL);
    }
    const mb_attention_inputs in = {c->q, c->k, c->v};
    const mb_attention_grads g = {c->dq, c->dk, c->dv};
    if (f->backend == MB_BACKEND_CPU) {
        if (f->bwd) return mb_attention_bwd_cpu(&c->p, &in, c->o, c->lse, c->dout, &g);
        return attn_fwd(c);
    }
    mb_status st = attn_fwd(c);
    if (st != MB_OK || !f->bwd) return st;
    return mb_attention_bwd_cuda(&c->p, &in, c->o, c->lse, c->dout, &g, NULL);
}

/* The decode case of family c->fam at context L: q (B, H, d), caches
 * k, v (B, H, L, d) full (every sequence's length L), o (B, H, d), lse (B, H). */
static void build_decode(attn_case* c, int64_t L, int announce) {
    const attn_family* f = c->fam;
    const mb_dtype dt = f->dtype, pdt = mb_param_dtype(f->dtype);
    bc_pool* pool = &c->pool;
    c->dp = (mb_attention_decode_params){f->B, f->H, f->H, f->d, L, 0.0, dt};
    for (int64_t b = 0; b < f->B && b < 64; b++) c->seqlens[b] = L;
    c->q = bc_pool_uniform(pool, dt, f->B * f->H * f->d, -1.0, 1.0);
    c->k = bc_pool_uniform(pool, dt, f->B * f->H * L * f->d, -1.0, 1.0);
    c->v = bc_pool_uniform(pool, dt, f->B * f->H * L * f->d, -1.0, 1.0);
    c->o = bc_pool_uniform(pool, dt, f->B * f->H * f->d, -1.0, 1.0);
    c->lse = bc_pool_uniform(pool, pdt, f->B * f->H, -1.0, 1.0);
    bc_select_and_check(&c->check, select_impl(f), f->name, L, pool, attn_call, c, announce);
}

/* Build case c for (f, L) and run the validating call; `announce`: print progress. */
static void attn_case_build(attn_case* c, const attn_family* f, int64_t L, int announce) {
    bc_pool_free(&c->pool);
    memset(c, 0, sizeof *c);
    c->fam = f;
    c->L = L;
    bc_pool_init_on(&c->pool, 0xa77e0000 + (uint64_t)L, f->backend);
    const mb_dtype dt = f->dtype, pdt = mb_param_dtype(f->dtype);
    const int64_t BHLd = f->B * f->H * L * f->d, BHL = f->B * f->H * L;
    bc_pool* pool = &c->pool;
    c->p = (mb_attention_params){f->B, f->H, L, f->d, 0.0, dt, 0};
    if (f->kind == DECODE) {
        build_decode(c, L, announce);
        return;
    }
    c->q = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
    c->k = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
    c->v = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
    c->o = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
    c->lse = bc_pool_uniform(pool, pdt, BHL, -1.0, 1.0);
    if (f->bwd) {
        c->dout = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
        c->dq = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
        c->dk = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
        c->dv = bc_pool_uniform(pool, dt, BHLd, -1.0, 1.0);
    }
    bc_check* check = &c->check;
    mb_status sel = select_impl(f);
    if (sel != MB_OK) {
        check->status = sel;
        snprintf(check->err, sizeof check->err, "%s: %s", f->name, mb_last_error());
        return;
    }
    if (f->bwd && f->backend == MB_BACKEND_CPU && !pool->failed) {
        // the CPU backward's o and lse come from a real forward (untimed)
        check->status = attn_fwd(c);
        if (check->status != MB_OK) {
            snprintf(check->err, sizeof check->err, "%s L=%lld: the forward giving o and lse: "
                     "%s: %s", f->name, (long long)L, mb_status_string(check->status),
                     mb_last_error());
            return;
        }
    }
    bc_check_case(check, f->name, L, pool, attn_call, c, announce);
}

// ----------------------------------------------------------------------------
// the benchmark body

static void bm_attention(gb_state* st, void* user) {
    const attn_family* f = user;
    const int64_t L = gb_range(st, 0);
    if (cur.fam != f || cur.L != L) attn_case_build(&cur, f, L, 1);
    if (select_impl(f) != MB_OK) {
        bc_skip_status(st, f->name, MB_ERR_BAD_OPTION);
        return;
    }
    if (!bc_time_case(st, f->name, &cur.check, attn_call, &cur)) return;
    char extra[128];
    snprintf(extra, sizeof extra, "B=%lld H=%lld L=%lld d=%lld causal=1", (long long)f->B,
             (long long)f->H, (long long)L, (long long)f->d);
    if (f->kind == DECODE)
        snprintf(extra, sizeof extra, "B=%lld H=%lld H_kv=%lld L=%lld d=%lld", (long long)f->B,
                 (long long)f->H, (long long)f->H, (long long)L, (long long)f->d);
    // tokens: one new token per sequence for decode, B*L otherwise
    bc_report_row(st, MB_OP_ATTENTION, f->dir, f->backend, f->impl, f->dtype, extra, L,
                  f->kind == DECODE ? f->B : f->B * L, attn_flops(f, L), &cur.pool, &cur.check);
    if (f->kind == DECODE) // the K and V cache of one sequence at context L
        gb_set_counter(st, "decode_state_bytes",
                   (double)(2 * f->H * L * f->d * (int64_t)mb_dtype_size(f->dtype)), 0);
}

/* bc_probe_fn: does the family run at L? (one untimed call) */
static int probe(void* user, int64_t L) {
    attn_case_build(&cur, user, L, 0);
    return cur.check.status == MB_OK;
}

// ----------------------------------------------------------------------------
// registration: every implementation in the registry

/* Does implementation i of (dir, backend) take the template's dtype and head dim? (The
 * registry line says; flash-simt, for one, stops at head dim 64.) */
static int takes_shape(mb_direction dir, int i, const attn_family* tmpl) {
    mb_impl_info info;
    if (mb_impl_get(MB_OP_ATTENTION, dir, tmpl->backend, i, &info) != MB_OK) return 0;
    if (!(info.dtypes & (1u << tmpl->dtype))) return 0;
    return !info.headdims || (tmpl->d % 8 == 0 && tmpl->d <= 256 &&
                              (info.headdims & (1u << (tmpl->d / 8 - 1))));
}

/* Register one family per implementation of (dir, backend) that takes the template's
 * dtype and head dim. */
static void register_impls(mb_direction dir, const char* dirname, attn_family tmpl) {
    const char* impl;
    for (int i = 0; (impl = bc_impl_name(MB_OP_ATTENTION, dir, tmpl.backend, i)); i++) {
        if (!takes_shape(dir, i, &tmpl)) continue;
        bc_require_family_slot("bench_attention", nfamilies, MAX_FAMILIES);
        attn_family* f = &families[nfamilies++];
        *f = tmpl;
        f->dir = dirname, f->impl = impl;
        snprintf(f->name, sizeof f->name, "attention_%s_%s_%s", dirname,
                 mb_backend_name(tmpl.backend), impl);
        // naive is the quadratic baseline, not a version of flash: swept until it
        // no longer fits (its MB_ERR_ALLOC row recorded), whatever the versions' cap
        if (strcmp(impl, "naive") != 0)
            f->lmax = bc_impl_lmax(MB_OP_ATTENTION, dir, tmpl.backend, impl, f->lmax);
        bc_register_sweep_on(f->name, bm_attention, f, f->lmin, f->lmax, f->backend,
                             GB_O_N_SQUARED, probe);
    }
}

/* Register one decode family per CUDA implementation and batch size. */
static void register_decode(attn_family tmpl) {
    static const int64_t batches[] = {1, 8, 64};
    const char* impl;
    for (int i = 0; (impl = bc_impl_name(MB_OP_ATTENTION, MB_DIR_DECODE, tmpl.backend, i)); i++)
        for (int j = 0; j < 3; j++) {
            bc_require_family_slot("bench_attention", nfamilies, MAX_FAMILIES);
            attn_family* f = &families[nfamilies++];
            *f = tmpl;
            f->kind = DECODE, f->dir = "decode", f->impl = impl, f->B = batches[j];
            if (f->B >= 64) f->lmax = 65536; // 34 GB of cache there; 128K would need 69 GB
            f->lmax = bc_impl_lmax(MB_OP_ATTENTION, MB_DIR_DECODE, tmpl.backend, impl, f->lmax);
            snprintf(f->name, sizeof f->name, "attention_decode_%s_%s_b%lld",
                     mb_backend_name(tmpl.backend), impl, (long long)f->B);
            bc_register_sweep_on(f->name, bm_attention, f, f->lmin, f->lmax, f->backend, GB_O_N,
                                 probe);
        }
}

int main(int argc, char** argv) {
    if (bc_init(&argc, argv, "bench_attention")) return 1;
    const attn_family cpu = {.backend = MB_BACKEND_CPU, .B = 1, .H = 1, .d = 32,
                             .dtype = MB_DTYPE_F32, .lmin = 64, .lmax = 8192};
    const attn_family gpu = {.backend = MB_BACKEND_CUDA, .B = 1, .H = 16, .d = 128,
                             .dtype = MB_DTYPE_BF16, .lmin = 512, .lmax = 131072};
    if (!bc_gpu_only()) {
        register_impls(MB_DIR_FWD, "fwd", cpu);
        attn_family cpu_bwd = cpu;
        cpu_bwd.bwd = 1, cpu_bwd.kind = BWD, cpu_bwd.lmax = 4096;
        register_impls(MB_DIR_BWD, "bwd", cpu_bwd);
    }
    if (bc_have_gpu()) {
        register_impls(MB_DIR_FWD, "fwd", gpu);
        attn_family gpu_fb = gpu;
        gpu_fb.bwd = 1, gpu_fb.kind = BWD;
        register_impls(MB_DIR_BWD, "fwdbwd", gpu_fb);
        register_decode(gpu);
    }
    bc_pool_free(&cur.pool); // the probes' case: rebuilt, and announced, by the first run
    cur.fam = NULL;
    if (nfamilies == 0) { /* e.g. the GPU sweep of an op with no CUDA implementation yet */
        fprintf(stderr, "bench: no implementation of %s to time here: nothing written\n",
                "attention");
        return 0;
    }
    int rc = gb_main(argc, argv);
    bc_pool_free(&cur.pool);
    return rc;
}
