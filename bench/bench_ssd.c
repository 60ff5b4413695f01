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
 *   CPU  fwd, bwd      B 1, H 4, P 32, N 32, G 1, Q 64, fp32
 *   CUDA fwd           the canonical Mamba-2 shape of anchors.md: B 1, H 64,
 *                      P 64, N 128, G 1, Q 256, bf16, L 512..131072
 *   CUDA fwdbwd        the default forward then the backward of <impl>
 *   CUDA fwd_state     N = 16 .. 256 at L 4096 (the argument is N): SSD's
 *                      time should stay flat where the scan's grows with N
 *   CUDA step          one token, batch 1, 8, 64 (the argument is B), timed
 *                      over 100 steps in one event pair (fewer for a step over
 *                      100 us: bc_step_calls; the row's calls_per_iteration): ms per step
 *   CUDA step_bf16state  the same with the state stored in bf16 (state_bf16)
 *   CUDA step_graph, step_bf16state_graph  the same 100 steps captured once in a
 *                      CUDA graph and replayed between the events (decoding under
 *                      CUDA graphs: no host launch cost per step)
 * Family names: ssd_<dir>_<backend>_<impl>; the row's label has typed fields.
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
 * Backward: 2.5x the forward (the FlashAttention convention). Step, per token:
 * B*H*(4*P*N + 8*P) (decay and update of the (P, N) state, C h, the elementwise terms).
 */
#include "bench_common.h"

#include <stdio.h>
#include <string.h>

// ----------------------------------------------------------------------------
// families

typedef enum { FWD, BWD, FWDBWD, STEP } ssd_kind;

typedef struct {
    char name[96];
    const char* dir;          /* the row's dir field: fwd, bwd, fwdbwd, fwd_state, step,
                                 step_bf16state */
    ssd_kind kind;
    mb_backend backend;
    const char* impl;         /* the implementation timed (of fwd, bwd or step) */
    int64_t B, H, P, N, G, Q; /* batch, heads, head dim, state, groups, chunk */
    mb_dtype dtype;
    char arg;                 /* the argument: 'L', 'N' or 'B' */
    int64_t L;                /* fixed L when the argument is not L */
    int state_bf16;           /* step: the state in bf16 (params.state_bf16) */
    int graph;                /* step: the 100 steps replayed from a CUDA graph */
} ssd_family;

#define MAX_FAMILIES 128
static ssd_family families[MAX_FAMILIES];
static int nfamilies;

static double ssd_flops(const ssd_family* f, const mb_ssd_params* p) {
    const double H = (double)p->nheads, P = (double)p->headdim, N = (double)p->dstate,
                 G = (double)p->ngroups, Q = (double)(p->seqlen < p->chunk_size ? p->seqlen
                                                                               : p->chunk_size),
                 BL = (double)p->batch * (double)p->seqlen;
    if (f->kind == STEP) return BL * H * (4.0 * P * N + 8.0 * P);
    double fwd = BL * (G * Q * N + H * (Q * P + Q + 4.0 * P * N + 2.0 * P * N / Q)) +
                 8.0 * BL * H * P;
    return f->kind == FWD ? fwd : f->kind == BWD ? 2.5 * fwd : 3.5 * fwd;
}

// ----------------------------------------------------------------------------
// one case: the tensors of (family, argument), built once and validated by one call

typedef struct {
    const ssd_family* fam;
    int64_t arg;
    bc_pool pool;
    mb_ssd_params p;
    mb_ssd_inputs in;
    void* y;     /* (B, L, H, P) forward output; (B, H, P) for a step */
    void* state; /* (B, H, P, N) step state */
    void* dy;    /* (B, L, H, P) backward input */
    mb_ssd_grads g;
    bc_check check; /* the validating call */
    int step_calls; /* step: calls per timed iteration (bc_step_calls) */
} ssd_case;

static ssd_case cur;

/* Select the family's implementation; fwd+bwd runs the default forward. */
static mb_status select_impl(const ssd_family* f) {
    mb_direction dir = f->kind == STEP ? MB_DIR_STEP : f->kind == FWD ? MB_DIR_FWD : MB_DIR_BWD;
    if (f->kind == FWDBWD) mb_impl_select(MB_OP_SSD, MB_DIR_FWD, f->backend, NULL);
    return mb_impl_select(MB_OP_SSD, dir, f->backend, f->impl);
}

static mb_status ssd_call(void* ctx) {
    const ssd_case* c = ctx;
    const ssd_family* f = c->fam;
    const int cuda = f->backend == MB_BACKEND_CUDA;
    mb_status st = MB_OK;
    if (f->kind == STEP)
        return cuda ? mb_ssd_step_cuda(&c->p, &c->in, c->state, c->y, bc_call_stream())
                    : mb_ssd_step_cpu(&c->p, &c->in, c->state, c->y);
    if (f->kind == FWD || f->kind == FWDBWD)
        st = cuda ? mb_ssd_fwd_cuda(&c->p, &c->in, c->y, NULL, NULL)
                  : mb_ssd_fwd_cpu(&c->p, &c->in, c->y, NULL);
    if (st != MB_OK || f->kind == FWD) return st;
    return cuda ? mb_ssd_bwd_cuda(&c->p, &c->in, c->dy, NULL, &c->g, NULL)
                : mb_ssd_bwd_cpu(&c->p, &c->in, c->dy, NULL, &c->g);
}

/* The shape of family f at argument value `arg`. */
static mb_ssd_params params_at(const ssd_family* f, int64_t arg) {
    mb_ssd_params p = {f->B, f->L, f->H, f->P, f->N, f->G, f->Q, f->dtype, 1, MB_SSD_CHUNKED, 0};
    if (f->arg == 'L') p.seqlen = arg;
    if (f->arg == 'N') p.dstate = arg;
    if (f->arg == 'B') p.batch = arg;
    if (f->kind == STEP) p.seqlen = 1, p.state_bf16 = f->state_bf16;
    return p;
}

/* Fill c->in and c->y for p from c->pool: softplus on dt, dt_bias and D, no z,
 * no initial state. */
static void build_inputs(ssd_case* c, const mb_ssd_params* p) {
    const mb_dtype dt = p->dtype, pdt = mb_param_dtype(p->dtype);
    const int64_t BLHP = p->batch * p->seqlen * p->nheads * p->headdim,
                  BLH = p->batch * p->seqlen * p->nheads,
                  BLGN = p->batch * p->seqlen * p->ngroups * p->dstate;
    bc_pool* pool = &c->pool;
    // x ~ U(-1, 1); softplus(dt + dt_bias) ~ 0.01..0.1; A < 0 per head
    c->in.x = bc_pool_uniform(pool, dt, BLHP, -1.0, 1.0);
    c->in.dt = bc_pool_uniform(pool, dt, BLH, -0.5, 0.5);
    c->in.A = bc_pool_uniform(pool, pdt, p->nheads, -4.0, -0.5);
    c->in.B = bc_pool_uniform(pool, dt, BLGN, -1.0, 1.0);
    c->in.C = bc_pool_uniform(pool, dt, BLGN, -1.0, 1.0);
    c->in.D = bc_pool_uniform(pool, pdt, p->nheads, -1.0, 1.0);
    c->in.dt_bias = bc_pool_uniform(pool, pdt, p->nheads, -4.5, -2.5);
    c->y = bc_pool_uniform(pool, dt, BLHP, -1.0, 1.0);
}

/* dy and the gradients of the inputs build_inputs gives. */
static void build_grads(ssd_case* c, const mb_ssd_params* p) {
    const mb_dtype dt = p->dtype, pdt = mb_param_dtype(p->dtype);
    const int64_t BLHP = p->batch * p->seqlen * p->nheads * p->headdim,
                  BLH = p->batch * p->seqlen * p->nheads,
                  BLGN = p->batch * p->seqlen * p->ngroups * p->dstate;
    bc_pool* pool = &c->pool;
    c->dy = bc_pool_uniform(pool, dt, BLHP, -1.0, 1.0);
    c->g.dx = bc_pool_uniform(pool, dt, BLHP, -1.0, 1.0);
    c->g.ddt = bc_pool_uniform(pool, dt, BLH, -1.0, 1.0);
    c->g.dA = bc_pool_uniform(pool, pdt, p->nheads, -1.0, 1.0);
    c->g.dB = bc_pool_uniform(pool, dt, BLGN, -1.0, 1.0);
    c->g.dC = bc_pool_uniform(pool, dt, BLGN, -1.0, 1.0);
    c->g.dD = bc_pool_uniform(pool, pdt, p->nheads, -1.0, 1.0);
    c->g.ddt_bias = bc_pool_uniform(pool, pdt, p->nheads, -1.0, 1.0);
}

/* Build case c for (f, arg) and run the validating call; `announce`: print progress. */
static void ssd_case_build(ssd_case* c, const ssd_family* f, int64_t arg, int announce) {
    bc_pool_free(&c->pool);
    memset(c, 0, sizeof *c);
    c->fam = f;
    c->arg = arg;
    bc_pool_init_on(&c->pool, 0x55d0000 + (uint64_t)arg, f->backend);
    c->p = params_at(f, arg);
    build_inputs(c, &c->p);
    if (f->kind == STEP)
        c->state = bc_pool_uniform(&c->pool, f->state_bf16 ? f->dtype : mb_param_dtype(f->dtype),
                                   c->p.batch * c->p.nheads * c->p.headdim * c->p.dstate,
                                   -1.0, 1.0);
    if (f->kind == BWD || f->kind == FWDBWD) build_grads(c, &c->p);
    bc_select_and_check(&c->check, select_impl(f), f->name, arg, &c->pool, ssd_call, c,
                        announce);
    if (f->kind == STEP) c->step_calls = bc_step_calls(&c->check, ssd_call, c);
}

// ----------------------------------------------------------------------------
// the benchmark body

static void bm_ssd(gb_state* st, void* user) {
    const ssd_family* f = user;
    const int64_t arg = gb_range(st, 0);
    if (cur.fam != f || cur.arg != arg) ssd_case_build(&cur, f, arg, 1);
    if (select_impl(f) != MB_OK) {
        bc_skip_status(st, f->name, MB_ERR_BAD_OPTION);
        return;
    }
    int calls = f->kind == STEP ? cur.step_calls : 1;
    if (!(f->graph ? bc_time_case_graph(st, f->name, &cur.check, ssd_call, &cur, calls)
                   : bc_time_case_n(st, f->name, &cur.check, ssd_call, &cur, calls)))
        return;
    const mb_ssd_params* p = &cur.p;
    char extra[160];
    snprintf(extra, sizeof extra, "B=%lld L=%lld H=%lld P=%lld N=%lld G=%lld chunk=%lld",
             (long long)p->batch, (long long)p->seqlen, (long long)p->nheads,
             (long long)p->headdim, (long long)p->dstate, (long long)p->ngroups,
             (long long)p->chunk_size);
    bc_report_row(st, MB_OP_SSD, f->dir, f->backend, f->impl, f->dtype, extra,
                  f->arg == 'L' ? p->seqlen : arg, p->batch * p->seqlen, ssd_flops(f, p),
                  &cur.pool, &cur.check);
    if (f->kind == STEP) gb_set_counter(st, "calls_per_iteration", calls, 0);
    if (f->kind == STEP) // the constant state one sequence keeps to decode (bench_attention.c)
        gb_set_counter(st, "decode_state_bytes",
                       (double)(p->nheads * p->headdim * p->dstate *
                                (int64_t)mb_dtype_size(p->state_bf16 ? p->dtype
                                                                     : mb_param_dtype(p->dtype))),
                       0);
}

/* bc_probe_fn: does the family run at its first argument? (one untimed call) */
static int probe(void* user, int64_t arg) {
    ssd_case_build(&cur, user, arg, 0);
    return cur.check.status == MB_OK;
}

// ----------------------------------------------------------------------------
// registration: every implementation in the registry

/* A family of `backend`'s shape (CPU: small fp32; CUDA: the canonical bf16). */
static ssd_family* add_family(const char* dir, ssd_kind kind, mb_backend backend,
                              const char* impl) {
    bc_require_family_slot("bench_ssd", nfamilies, MAX_FAMILIES);
    ssd_family* f = &families[nfamilies++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "ssd_%s_%s_%s", dir, mb_backend_name(backend), impl);
    f->dir = dir, f->kind = kind, f->backend = backend, f->impl = impl;
    f->arg = 'L', f->L = 4096, f->B = 1, f->G = 1;
    const int cuda = backend == MB_BACKEND_CUDA;
    f->H = cuda ? 64 : 4, f->P = cuda ? 64 : 32, f->N = cuda ? 128 : 32, f->Q = cuda ? 256 : 64;
    f->dtype = cuda ? MB_DTYPE_BF16 : MB_DTYPE_F32;
    return f;
}

static void register_family(ssd_family* f, int64_t lmin, int64_t lmax) {
    if (!f) return;
    mb_direction dir = f->kind == STEP ? MB_DIR_STEP : f->kind == FWD ? MB_DIR_FWD : MB_DIR_BWD;
    bc_register_impl(f->name, bm_ssd, f, f->arg, lmin, lmax, MB_OP_SSD, dir, f->backend, f->impl,
                     probe);
}

/* The name of implementation i of (dir, backend). */
static const char* impl_name(mb_direction dir, mb_backend backend, int i) {
    return bc_impl_name(MB_OP_SSD, dir, backend, i);
}

static void register_cpu(void) {
    const mb_backend cpu = MB_BACKEND_CPU;
    for (int i = 0; i < mb_impl_count(MB_OP_SSD, MB_DIR_FWD, cpu); i++)
        register_family(add_family("fwd", FWD, cpu, impl_name(MB_DIR_FWD, cpu, i)), 64, 131072);
    for (int i = 0; i < mb_impl_count(MB_OP_SSD, MB_DIR_BWD, cpu); i++)
        register_family(add_family("bwd", BWD, cpu, impl_name(MB_DIR_BWD, cpu, i)), 64, 65536);
}

static void register_cuda(void) {
    const mb_backend gpu = MB_BACKEND_CUDA;
    const int64_t lmin = 512, lmax = 131072;
    for (int i = 0; i < mb_impl_count(MB_OP_SSD, MB_DIR_FWD, gpu); i++) {
        const char* impl = impl_name(MB_DIR_FWD, gpu, i);
        register_family(add_family("fwd", FWD, gpu, impl), lmin, lmax);
        ssd_family* state = add_family("fwd_state", FWD, gpu, impl);
        if (state) state->arg = 'N';
        register_family(state, 0, 0);
    }
    for (int i = 0; i < mb_impl_count(MB_OP_SSD, MB_DIR_BWD, gpu); i++)
        register_family(add_family("fwdbwd", FWDBWD, gpu, impl_name(MB_DIR_BWD, gpu, i)), lmin,
                        lmax);
    static const char* step_dirs[2][2] = {{"step", "step_graph"},
                                          {"step_bf16state", "step_bf16state_graph"}};
    for (int i = 0; i < mb_impl_count(MB_OP_SSD, MB_DIR_STEP, gpu); i++)
        for (int state_bf16 = 0; state_bf16 <= 1; state_bf16++)
            for (int graph = 0; graph <= 1; graph++) {
                ssd_family* step = add_family(step_dirs[state_bf16][graph], STEP, gpu,
                                              impl_name(MB_DIR_STEP, gpu, i));
                if (step) step->arg = 'B', step->state_bf16 = state_bf16, step->graph = graph;
                register_family(step, 0, 0);
            }
}

int main(int argc, char** argv) {
    if (bc_init(&argc, argv, "bench_ssd")) return 1;
    if (!bc_gpu_only()) register_cpu();
    if (bc_have_gpu()) register_cuda();
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
