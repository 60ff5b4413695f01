/*
 * bench_selective_scan.c -- the selective scan (Mamba-1) benchmarks: every
 * registered implementation (src/registry.c) of every direction, CPU and
 * CUDA, so a new kernel version is benchmarked without editing this file.
 *
 * Build: the bench_selective_scan target (needs Google Benchmark). Run:
 * ./bench_selective_scan [--mb_lmax=N] [--benchmark_* flags]; scripts/bench.sh
 * runs it with JSON output. Options: bench_common.h.
 *
 * Families (name = <op>_<dir>_<backend>_<impl>; the row's label carries the
 * same as typed fields):
 *   CPU  fwd, bwd        B 1, D 64, N 16, G 1, fp32, softplus, D, delta_bias, z
 *   CUDA fwd, fwd_noz    the canonical shape of anchors.md: B 1, D 4096, N 16,
 *                        G 1, bf16, softplus, D, delta_bias, with / without z,
 *                        L = 512 .. 131072
 *   CUDA fwdbwd          the default forward then the backward of <impl>
 *   CUDA fwdbwd_saved    the training pair (default backward only): the default
 *                        forward saving its chunk states, the backward reading them
 *   CUDA fwd_state       N = 16 .. 256 at L 4096, no z (the argument is N)
 *   CUDA fwd_n128        the default forward at N 128, no z: the SSD
 *                        benchmark's state size, swept over L beside it
 *   CUDA step            one token, batch 1, 8, 64 (the argument is B), timed
 *                        over 100 steps in one event pair (fewer for a step over
 *                        100 us: bc_step_calls; the row's calls_per_iteration): ms per step
 *   CUDA step_graph      the same steps captured once in a CUDA graph and replayed
 *                        between the events (decoding under CUDA graphs: no host
 *                        launch cost per step)
 * Dimension legend: B batch, D channels, L length, N state size, G groups.
 *
 * FLOP estimate of the forward, per call: 9 B D L N (exp(delta A), delta B u,
 * the state update, C . h) + 10 B D L (bias, softplus, D u, the gate); the
 * backward 2.5x the forward (the FlashAttention convention).
 */
#include "bench_common.h"

#include <stdio.h>
#include <string.h>

// ----------------------------------------------------------------------------
// families

/* FWDBWD_SAVED: the training pair, mb_selective_scan_fwd_save_cuda then _bwd_saved_cuda */
typedef enum { FWD, BWD, FWDBWD, FWDBWD_SAVED, STEP } scan_kind;

typedef struct {
    char name[96];
    const char* dir;     /* the row's dir field: fwd, fwd_noz, bwd, fwdbwd, fwdbwd_saved, fwd_state, step, step_graph */
    scan_kind kind;
    mb_backend backend;
    const char* impl;    /* the implementation timed (of fwd, bwd or step) */
    int64_t B, D, N, G;  /* fixed shape; the swept one comes from the argument */
    int has_z;
    mb_dtype dtype;
    char arg;            /* the argument: 'L', 'N' or 'B' */
    int64_t L;           /* fixed L when the argument is not L */
    int graph;           /* step: the steps replayed from a CUDA graph */
} scan_family;

#define MAX_FAMILIES 128
static scan_family families[MAX_FAMILIES];
static int nfamilies;

static double scan_flops(const scan_family* f, int64_t B, int64_t L, int64_t N) {
    double fwd = (double)B * (double)f->D * (double)L * (9.0 * (double)N + 10.0);
    return f->kind == FWD || f->kind == STEP ? fwd : f->kind == BWD ? 2.5 * fwd : 3.5 * fwd;
}

// ----------------------------------------------------------------------------
// one case: the tensors of (family, argument), built once and validated by one call

typedef struct {
    const scan_family* fam;
    int64_t arg;
    bc_pool pool;
    mb_selective_scan_params p;
    mb_selective_scan_inputs in;
    void* y;     /* (B, D, L) forward output; (B, D) for a step */
    void* state; /* (B, D, N) step state */
    void* dy;    /* (B, D, L) backward input */
    void* states; /* (B, D, ceil(L / MB_SCAN_CHUNK), N) fp32: the training pair's chunk states */
    mb_selective_scan_grads g;
    bc_check check;
    int step_calls; /* step: calls per timed iteration (bc_step_calls) */
} scan_case;

static scan_case cur;

/* Select the family's implementation; fwd+bwd runs the default forward. */
static mb_status select_impl(const scan_family* f) {
    mb_direction dir = f->kind == STEP ? MB_DIR_STEP : f->kind == FWD ? MB_DIR_FWD : MB_DIR_BWD;
    if (f->kind == FWDBWD || f->kind == FWDBWD_SAVED)
        mb_impl_select(MB_OP_SELECTIVE_SCAN, MB_DIR_FWD, f->backend, NULL);
    return mb_impl_select(MB_OP_SELECTIVE_SCAN, dir, f->backend, f->impl);
}

static mb_status scan_call(void* ctx) {
    const scan_case* c = ctx;
    const scan_family* f = c->fam;
    const int cuda = f->backend == MB_BACKEND_CUDA;
    mb_status st = MB_OK;
    void* stream = bc_call_stream(); /* the capturing stream of a step_graph row, else NULL */
    if (f->kind == STEP)
        return cuda ? mb_selective_scan_step_cuda(&c->p, &c->in, c->state, c->y, stream)
                    : mb_selective_scan_step_cpu(&c->p, &c->in, c->state, c->y);
    if (f->kind == FWDBWD_SAVED) { /* CUDA only */
        st = mb_selective_scan_fwd_save_cuda(&c->p, &c->in, c->y, NULL, c->states, stream);
        return st != MB_OK ? st
                           : mb_selective_scan_bwd_saved_cuda(&c->p, &c->in, c->dy, c->states,
                                                               &c->g, stream);
    }
    if (f->kind == FWD || f->kind == FWDBWD)
        st = cuda ? mb_selective_scan_fwd_cuda(&c->p, &c->in, c->y, NULL, stream)
                  : mb_selective_scan_fwd_cpu(&c->p, &c->in, c->y, NULL);
    if (st != MB_OK || f->kind == FWD) return st;
    return cuda ? mb_selective_scan_bwd_cuda(&c->p, &c->in, c->dy, &c->g, stream)
                : mb_selective_scan_bwd_cpu(&c->p, &c->in, c->dy, &c->g);
}

/* The shape of family f at argument value `arg`. */
static mb_selective_scan_params params_at(const scan_family* f, int64_t arg) {
    mb_selective_scan_params p = {f->B, f->D, f->L, f->N, f->G, f->dtype, 1};
    if (f->arg == 'L') p.seqlen = arg;
    if (f->arg == 'N') p.dstate = arg;
    if (f->arg == 'B') p.batch = arg;
    if (f->kind == STEP) p.seqlen = 1;
    return p;
}

/* Fill c->in (and the step state) for p from c->pool. */
static void build_inputs(scan_case* c, const mb_selective_scan_params* p, int has_z) {
    const mb_dtype dt = p->dtype, pdt = mb_param_dtype(p->dtype);
    const int64_t BDL = p->batch * p->dim * p->seqlen;
    const int64_t BGNL = p->batch * p->ngroups * p->dstate * p->seqlen;
    bc_pool* pool = &c->pool;
    // u, z ~ U(-1, 1); softplus(delta + bias) ~ 0.01..0.1, the usual dt range
    c->in.u = bc_pool_uniform(pool, dt, BDL, -1.0, 1.0);
    c->in.delta = bc_pool_uniform(pool, dt, BDL, -0.5, 0.5);
    c->in.A = bc_pool_uniform(pool, pdt, p->dim * p->dstate, -4.0, -0.5);
    c->in.B = bc_pool_uniform(pool, dt, BGNL, -1.0, 1.0);
    c->in.C = bc_pool_uniform(pool, dt, BGNL, -1.0, 1.0);
    c->in.D = bc_pool_uniform(pool, pdt, p->dim, -1.0, 1.0);
    c->in.z = has_z ? bc_pool_uniform(pool, dt, BDL, -1.0, 1.0) : NULL;
    c->in.delta_bias = bc_pool_uniform(pool, pdt, p->dim, -4.5, -2.5);
    c->y = bc_pool_uniform(pool, dt, BDL, -1.0, 1.0);
}

/* Gradients of c->in (the optional ones where the input is given). */
static void build_grads(scan_case* c, const mb_selective_scan_params* p) {
    const mb_dtype dt = p->dtype, pdt = mb_param_dtype(p->dtype);
    const int64_t BDL = p->batch * p->dim * p->seqlen;
    const int64_t BGNL = p->batch * p->ngroups * p->dstate * p->seqlen;
    bc_pool* pool = &c->pool;
    c->dy = bc_pool_uniform(pool, dt, BDL, -1.0, 1.0);
    c->g.du = bc_pool_uniform(pool, dt, BDL, -1.0, 1.0);
    c->g.ddelta = bc_pool_uniform(pool, dt, BDL, -1.0, 1.0);
    c->g.dA = bc_pool_uniform(pool, pdt, p->dim * p->dstate, -1.0, 1.0);
    c->g.dB = bc_pool_uniform(pool, dt, BGNL, -1.0, 1.0);
    c->g.dC = bc_pool_uniform(pool, dt, BGNL, -1.0, 1.0);
    c->g.dD = bc_pool_uniform(pool, pdt, p->dim, -1.0, 1.0);
    c->g.dz = c->in.z ? bc_pool_uniform(pool, dt, BDL, -1.0, 1.0) : NULL;
    c->g.ddelta_bias = bc_pool_uniform(pool, pdt, p->dim, -1.0, 1.0);
}

/* Build case c for (f, arg) and run the validating call; `announce`: print progress. */
static void scan_case_build(scan_case* c, const scan_family* f, int64_t arg, int announce) {
    bc_pool_free(&c->pool);
    memset(c, 0, sizeof *c);
    c->fam = f;
    c->arg = arg;
    bc_pool_init_on(&c->pool, 0x5ca11ab1e + (uint64_t)arg, f->backend);
    c->p = params_at(f, arg);
    build_inputs(c, &c->p, f->has_z);
    if (f->kind == STEP)
        c->state = bc_pool_uniform(&c->pool, mb_param_dtype(f->dtype),
                                   c->p.batch * c->p.dim * c->p.dstate, -1.0, 1.0);
    if (f->kind == BWD || f->kind == FWDBWD || f->kind == FWDBWD_SAVED) build_grads(c, &c->p);
    if (f->kind == FWDBWD_SAVED)
        c->states = bc_pool_uniform(&c->pool, MB_DTYPE_F32,
                                    mb_selective_scan_chunk_states_numel(&c->p), -1.0, 1.0);
    bc_select_and_check(&c->check, select_impl(f), f->name, arg, &c->pool, scan_call, c,
                        announce);
    if (f->kind == STEP) c->step_calls = bc_step_calls(&c->check, scan_call, c);
}

// ----------------------------------------------------------------------------
// the benchmark body

static void bm_scan(gb_state* st, void* user) {
    const scan_family* f = user;
    const int64_t arg = gb_range(st, 0);
    if (cur.fam != f || cur.arg != arg) scan_case_build(&cur, f, arg, 1);
    if (select_impl(f) != MB_OK) {
        bc_skip_status(st, f->name, MB_ERR_BAD_OPTION);
        return;
    }
    int calls = f->kind == STEP ? cur.step_calls : 1;
    if (!(f->graph ? bc_time_case_graph(st, f->name, &cur.check, scan_call, &cur, calls)
                   : bc_time_case_n(st, f->name, &cur.check, scan_call, &cur, calls)))
        return;
    const mb_selective_scan_params* p = &cur.p;
    char extra[160];
    snprintf(extra, sizeof extra, "B=%lld D=%lld L=%lld N=%lld G=%lld z=%d softplus=1 "
             "D_skip=1 delta_bias=1", (long long)p->batch, (long long)p->dim,
             (long long)p->seqlen, (long long)p->dstate, (long long)p->ngroups, f->has_z);
    int64_t L = p->seqlen;
    bc_report_row(st, MB_OP_SELECTIVE_SCAN, f->dir, f->backend, f->impl, f->dtype, extra,
                  f->arg == 'L' ? L : arg, p->batch * L, scan_flops(f, p->batch, L, p->dstate),
                  &cur.pool, &cur.check);
    if (f->kind == STEP) gb_set_counter(st, "calls_per_iteration", calls, 0);
    if (f->kind == STEP) // the constant state one sequence keeps to decode (bench_attention.c)
        gb_set_counter(st, "decode_state_bytes",
                       (double)(p->dim * p->dstate *
                                (int64_t)mb_dtype_size(mb_param_dtype(p->dtype))), 0);
}

/* bc_probe_fn: does the family run at its first argument? (one untimed call) */
static int probe(void* user, int64_t arg) {
    scan_case_build(&cur, user, arg, 0);
    return cur.check.status == MB_OK;
}

// ----------------------------------------------------------------------------
// registration: every implementation in the registry

static scan_family* add_family(const char* dir, scan_kind kind, mb_backend backend,
                               const char* impl) {
    bc_require_family_slot("bench_selective_scan", nfamilies, MAX_FAMILIES);
    scan_family* f = &families[nfamilies++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "selective_scan_%s_%s_%s", dir, mb_backend_name(backend),
             impl);
    f->dir = dir, f->kind = kind, f->backend = backend, f->impl = impl;
    f->B = 1, f->N = 16, f->G = 1, f->has_z = 1, f->arg = 'L', f->L = 4096;
    f->D = backend == MB_BACKEND_CUDA ? 4096 : 64;
    f->dtype = backend == MB_BACKEND_CUDA ? MB_DTYPE_BF16 : MB_DTYPE_F32;
    return f;
}

static void register_family(scan_family* f, int64_t lmin, int64_t lmax) {
    if (!f) return;
    mb_direction dir = f->kind == STEP ? MB_DIR_STEP : f->kind == FWD ? MB_DIR_FWD : MB_DIR_BWD;
    bc_register_impl(f->name, bm_scan, f, f->arg, lmin, lmax, MB_OP_SELECTIVE_SCAN, dir, f->backend, f->impl,
                     probe);
}

/* Nonzero when `impl` is the default CUDA implementation of dir. */
static int is_default(mb_direction dir, const char* impl) {
    mb_impl_info info;
    for (int i = 0; mb_impl_get(MB_OP_SELECTIVE_SCAN, dir, MB_BACKEND_CUDA, i, &info) == MB_OK; i++)
        if (info.is_default) return strcmp(info.name, impl) == 0;
    return 0;
}

/* The name of implementation i of (dir, backend). */
static const char* impl_name(mb_direction dir, mb_backend backend, int i) {
    return bc_impl_name(MB_OP_SELECTIVE_SCAN, dir, backend, i);
}

static void register_cpu(void) {
    const mb_backend cpu = MB_BACKEND_CPU;
    for (int i = 0; i < mb_impl_count(MB_OP_SELECTIVE_SCAN, MB_DIR_FWD, cpu); i++)
        register_family(add_family("fwd", FWD, cpu, impl_name(MB_DIR_FWD, cpu, i)), 64, 131072);
    for (int i = 0; i < mb_impl_count(MB_OP_SELECTIVE_SCAN, MB_DIR_BWD, cpu); i++)
        register_family(add_family("bwd", BWD, cpu, impl_name(MB_DIR_BWD, cpu, i)), 64, 65536);
}

static void register_cuda(void) {
    const mb_backend gpu = MB_BACKEND_CUDA;
    const int64_t lmin = 512, lmax = 131072;
    for (int i = 0; i < mb_impl_count(MB_OP_SELECTIVE_SCAN, MB_DIR_FWD, gpu); i++) {
        const char* impl = impl_name(MB_DIR_FWD, gpu, i);
        register_family(add_family("fwd", FWD, gpu, impl), lmin, lmax);
        scan_family* noz = add_family("fwd_noz", FWD, gpu, impl);
        if (noz) noz->has_z = 0;
        register_family(noz, lmin, lmax);
        scan_family* state = add_family("fwd_state", FWD, gpu, impl);
        if (state) state->has_z = 0, state->arg = 'N';
        register_family(state, 0, 0);
        if (!is_default(MB_DIR_FWD, impl)) continue;
        scan_family* n128 = add_family("fwd_n128", FWD, gpu, impl); // the SSD's N, beside it
        if (n128) n128->has_z = 0, n128->N = 128;
        register_family(n128, lmin, lmax);
    }
    for (int i = 0; i < mb_impl_count(MB_OP_SELECTIVE_SCAN, MB_DIR_BWD, gpu); i++) {
        const char* impl = impl_name(MB_DIR_BWD, gpu, i);
        register_family(add_family("fwdbwd", FWDBWD, gpu, impl), lmin, lmax);
        if (is_default(MB_DIR_BWD, impl)) // the training pair: the forward's chunk states saved
            register_family(add_family("fwdbwd_saved", FWDBWD_SAVED, gpu, impl), lmin, lmax);
    }
    for (int i = 0; i < mb_impl_count(MB_OP_SELECTIVE_SCAN, MB_DIR_STEP, gpu); i++)
        for (int graph = 0; graph <= 1; graph++) {
            scan_family* step = add_family(graph ? "step_graph" : "step", STEP, gpu,
                                           impl_name(MB_DIR_STEP, gpu, i));
            if (step) step->arg = 'B', step->graph = graph;
            register_family(step, 0, 0);
        }
}

int main(int argc, char** argv) {
    if (bc_init(&argc, argv, "bench_selective_scan")) return 1;
    if (!bc_gpu_only()) register_cpu();
    if (bc_have_gpu()) register_cuda();
    bc_pool_free(&cur.pool); // the probes' case: rebuilt, and announced, by the first run
    cur.fam = NULL;
    if (nfamilies == 0) { /* e.g. the GPU sweep of an op with no CUDA implementation yet */
        fprintf(stderr, "bench: no implementation of %s to time here: nothing written\n",
                "selective_scan");
        return 0;
    }
    int rc = gb_main(argc, argv);
    bc_pool_free(&cur.pool);
    return rc;
}
