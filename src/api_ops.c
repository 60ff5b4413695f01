/*
 * api_ops.c -- the public entry points of every op. Each (op, direction) is
 * described once: its argument copy, the call of an implementation on it,
 * and one slot per tensor (shape and dtype kind); the _cpu and _cuda entry
 * points are that description with a backend. src/api.c does the rest.
 */
#include "api.h"
#ifdef MB_HAVE_CUDA
#include "selective_scan/selective_scan.h" /* mb_scan_chunk_states_cuda */
#endif

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
/* A slot for the tensor pointer `field` of the argument copy. */
#define SLOT(field, count, is_param, role) {(const void**)&(field), (count), (is_param), (role), NULL}
enum { ACT = 0, PAR = 1 };
#define IN MB_SLOT_IN
#define OUT MB_SLOT_OUT
#define INOUT MB_SLOT_INOUT

/* The call of (op, dir) on `backend` with these arguments and slots. */
static mb_call make_call(mb_op op, mb_direction dir, mb_backend backend, mb_dtype dtype,
                         int64_t dstate, int64_t headdim, void* stream, void* args,
                         mb_run_fn run, mb_slot* slots, int nslots) {
    mb_call call = {op, dir, backend, dtype, dstate, headdim, stream, args, run, slots, nslots};
    return call;
}

// ----------------------------------------------------------------------------
// selective scan

typedef struct {
    int64_t bdl, bgnl, dn, d, bdn; /* elements of (B,D,L) (B,G,N,L) (D,N) (D) (B,D,N) */
} scan_counts;

static scan_counts scan_counts_of(const mb_selective_scan_params* p) {
    scan_counts c;
    c.bdl = p->batch * p->dim * p->seqlen;
    c.bgnl = p->batch * p->ngroups * p->dstate * p->seqlen;
    c.dn = p->dim * p->dstate;
    c.d = p->dim;
    c.bdn = p->batch * p->dim * p->dstate;
    return c;
}

/* The 8 input slots of a scan call into s; returns 8. */
static int scan_input_slots(mb_slot* s, mb_selective_scan_inputs* in, const scan_counts* c) {
    mb_slot slots[] = {
        SLOT(in->u, c->bdl, ACT, IN),  SLOT(in->delta, c->bdl, ACT, IN),
        SLOT(in->A, c->dn, PAR, IN),   SLOT(in->B, c->bgnl, ACT, IN),
        SLOT(in->C, c->bgnl, ACT, IN), SLOT(in->D, c->d, PAR, IN),
        SLOT(in->z, c->bdl, ACT, IN),  SLOT(in->delta_bias, c->d, PAR, IN)};
    for (int i = 0; i < COUNT(slots); i++) s[i] = slots[i];
    return COUNT(slots);
}

typedef struct {
    mb_selective_scan_params p;
    mb_selective_scan_inputs in;
    void* y;            /* (B, D, L) */
    void* final_state;  /* (B, D, N) or NULL */
    float* states;      /* (B, D, ceil(L / MB_SCAN_CHUNK), N) fp32: the training pair, else NULL */
} scan_fwd_args;

static mb_status scan_fwd_run(const mb_impl* e, void* v, const mb_exec* ex) {
    scan_fwd_args* a = v;
    int written = 0;
    mb_exec x = *ex;
    x.scan_states = a->states;
    x.scan_states_written = &written;
    mb_status st = e->fn.scan_fwd(&a->p, &a->in, a->y, a->final_state, &x);
#ifdef MB_HAVE_CUDA
    /* a forward version that does not write the chunk states: computed on their own */
    if (st == MB_OK && a->states && !written) st = mb_scan_chunk_states_cuda(&a->p, &a->in, &x);
#endif
    return st;
}

/* The training pair's chunk states: a non-NULL pointer, checked with the other arguments. */
static mb_status require_states(const char* fn, const void* states) {
    if (!states)
        return mb_fail(MB_ERR_NULL_POINTER, "%s: chunk_states is NULL (the training pair needs "
                       "mb_selective_scan_chunk_states_numel() floats of device memory)", fn);
    return MB_OK;
}

/* pair: the training pair's forward, whose chunk states `states` are required */
static mb_status scan_fwd(const char* fn, mb_backend backend, const mb_selective_scan_params* p,
                          const mb_selective_scan_inputs* in, void* y, void* final_state,
                          void* states, int pair, void* stream) {
    mb_status valid = mb_validate_selective_scan_fwd(fn, p, in, y);
    if (valid == MB_OK && pair) valid = require_states(fn, states);
    if (valid != MB_OK) return valid;
    scan_fwd_args a = {*p, *in, y, final_state, states};
    scan_counts c = scan_counts_of(p);
    mb_slot s[11];
    int n = scan_input_slots(s, &a.in, &c);
    s[n++] = (mb_slot)SLOT(a.y, c.bdl, ACT, OUT);
    s[n++] = (mb_slot)SLOT(a.final_state, c.bdn, PAR, OUT);
    mb_call call = make_call(MB_OP_SELECTIVE_SCAN, MB_DIR_FWD, backend, p->dtype, p->dstate, 0,
                             stream, &a, scan_fwd_run, s, n);
    return mb_dispatch(fn, &call);
}

typedef struct {
    mb_selective_scan_params p;
    mb_selective_scan_inputs in;
    const void* dy; /* (B, D, L) */
    mb_selective_scan_grads g;
    float* states; /* (B, D, ceil(L / MB_SCAN_CHUNK), N) fp32 from the forward, or NULL */
} scan_bwd_args;

static mb_status scan_bwd_run(const mb_impl* e, void* v, const mb_exec* ex) {
    scan_bwd_args* a = v;
    mb_exec x = *ex;
    x.scan_states = a->states;
    return e->fn.scan_bwd(&a->p, &a->in, a->dy, &a->g, &x);
}

static mb_status scan_bwd(const char* fn, mb_backend backend, const mb_selective_scan_params* p,
                          const mb_selective_scan_inputs* in, const void* dy,
                          const mb_selective_scan_grads* g, const void* states, int pair,
                          void* stream) {
    mb_status valid = mb_validate_selective_scan_bwd(fn, p, in, dy, g);
    if (valid == MB_OK && pair) valid = require_states(fn, states);
    if (valid != MB_OK) return valid;
    scan_bwd_args a = {*p, *in, dy, *g, (float*)states}; /* read only */
    scan_counts c = scan_counts_of(p);
    mb_slot s[17];
    int n = scan_input_slots(s, &a.in, &c);
    mb_slot grads[] = {
        SLOT(a.dy, c.bdl, ACT, IN),        SLOT(a.g.du, c.bdl, ACT, OUT),
        SLOT(a.g.ddelta, c.bdl, ACT, OUT), SLOT(a.g.dA, c.dn, PAR, OUT),
        SLOT(a.g.dB, c.bgnl, ACT, OUT),    SLOT(a.g.dC, c.bgnl, ACT, OUT),
        SLOT(a.g.dD, c.d, PAR, OUT),       SLOT(a.g.dz, c.bdl, ACT, OUT),
        SLOT(a.g.ddelta_bias, c.d, PAR, OUT)};
    for (int i = 0; i < COUNT(grads); i++) s[n++] = grads[i];
    mb_call call = make_call(MB_OP_SELECTIVE_SCAN, MB_DIR_BWD, backend, p->dtype, p->dstate, 0,
                             stream, &a, scan_bwd_run, s, n);
    return mb_dispatch(fn, &call);
}

typedef struct {
    mb_selective_scan_params p;
    mb_selective_scan_inputs in;
    void* state; /* (B, D, N) in/out */
    void* y;     /* (B, D) */
} scan_step_args;

static mb_status scan_step_run(const mb_impl* e, void* v, const mb_exec* ex) {
    scan_step_args* a = v;
    return e->fn.scan_step(&a->p, &a->in, a->state, a->y, ex);
}

static mb_status scan_step(const char* fn, mb_backend backend,
                           const mb_selective_scan_params* p, const mb_selective_scan_inputs* in,
                           void* state, void* y, void* stream) {
    mb_status valid = mb_validate_selective_scan_step(fn, p, in, state, y);
    if (valid != MB_OK) return valid;
    scan_step_args a = {*p, *in, state, y};
    scan_counts c = scan_counts_of(p); /* L = 1 */
    mb_slot s[10];
    int n = scan_input_slots(s, &a.in, &c);
    s[n++] = (mb_slot)SLOT(a.state, c.bdn, PAR, INOUT);
    s[n++] = (mb_slot)SLOT(a.y, c.bdl, ACT, OUT);
    mb_call call = make_call(MB_OP_SELECTIVE_SCAN, MB_DIR_STEP, backend, p->dtype, p->dstate, 0,
                             stream, &a, scan_step_run, s, n);
    return mb_dispatch(fn, &call);
}

mb_status mb_selective_scan_fwd_cpu(const mb_selective_scan_params* params,
                                    const mb_selective_scan_inputs* in, void* y,
                                    void* final_state) {
    return scan_fwd(__func__, MB_BACKEND_CPU, params, in, y, final_state, NULL, 0, NULL);
}

mb_status mb_selective_scan_fwd_cuda(const mb_selective_scan_params* params,
                                     const mb_selective_scan_inputs* in, void* y,
                                     void* final_state, void* stream) {
    return scan_fwd(__func__, MB_BACKEND_CUDA, params, in, y, final_state, NULL, 0, stream);
}

mb_status mb_selective_scan_bwd_cpu(const mb_selective_scan_params* params,
                                    const mb_selective_scan_inputs* in, const void* dy,
                                    const mb_selective_scan_grads* grads) {
    return scan_bwd(__func__, MB_BACKEND_CPU, params, in, dy, grads, NULL, 0, NULL);
}

mb_status mb_selective_scan_bwd_cuda(const mb_selective_scan_params* params,
                                     const mb_selective_scan_inputs* in, const void* dy,
                                     const mb_selective_scan_grads* grads, void* stream) {
    return scan_bwd(__func__, MB_BACKEND_CUDA, params, in, dy, grads, NULL, 0, stream);
}

int64_t mb_selective_scan_chunk_states_numel(const mb_selective_scan_params* params) {
    if (!params || params->batch <= 0 || params->dim <= 0 || params->seqlen <= 0 ||
        params->dstate <= 0)
        return 0;
    const int64_t dims[] = {params->batch, params->dim,
                            params->seqlen / MB_SCAN_CHUNK + (params->seqlen % MB_SCAN_CHUNK != 0),
                            params->dstate};
    int64_t n = 1;
    for (int i = 0; i < COUNT(dims); i++) {
        if (n > INT64_MAX / 4 / dims[i]) return 0; /* its byte size would overflow int64 */
        n *= dims[i];
    }
    return n;
}

mb_status mb_selective_scan_fwd_save_cuda(const mb_selective_scan_params* params,
                                          const mb_selective_scan_inputs* in, void* y,
                                          void* final_state, void* chunk_states, void* stream) {
    return scan_fwd(__func__, MB_BACKEND_CUDA, params, in, y, final_state, chunk_states, 1, stream);
}

mb_status mb_selective_scan_bwd_saved_cuda(const mb_selective_scan_params* params,
                                           const mb_selective_scan_inputs* in, const void* dy,
                                           const void* chunk_states,
                                           const mb_selective_scan_grads* grads, void* stream) {
    return scan_bwd(__func__, MB_BACKEND_CUDA, params, in, dy, grads, chunk_states, 1, stream);
}

mb_status mb_selective_scan_step_cpu(const mb_selective_scan_params* params,
                                     const mb_selective_scan_inputs* in, void* state, void* y) {
    return scan_step(__func__, MB_BACKEND_CPU, params, in, state, y, NULL);
}

mb_status mb_selective_scan_step_cuda(const mb_selective_scan_params* params,
                                      const mb_selective_scan_inputs* in, void* state, void* y,
                                      void* stream) {
    return scan_step(__func__, MB_BACKEND_CUDA, params, in, state, y, stream);
}

// ----------------------------------------------------------------------------
// SSD

typedef struct {
    int64_t blhp, blh, blgn, h, bhpn; /* elements of (B,L,H,P) (B,L,H) (B,L,G,N) (H) (B,H,P,N) */
} ssd_counts;

static ssd_counts ssd_counts_of(const mb_ssd_params* p) {
    ssd_counts c;
    c.blhp = p->batch * p->seqlen * p->nheads * p->headdim;
    c.blh = p->batch * p->seqlen * p->nheads;
    c.blgn = p->batch * p->seqlen * p->ngroups * p->dstate;
    c.h = p->nheads;
    c.bhpn = p->batch * p->nheads * p->headdim * p->dstate;
    return c;
}

/* The 9 input slots of an SSD call into s; returns 9. */
static int ssd_input_slots(mb_slot* s, mb_ssd_inputs* in, const ssd_counts* c) {
    mb_slot slots[] = {
        SLOT(in->x, c->blhp, ACT, IN), SLOT(in->dt, c->blh, ACT, IN),
        SLOT(in->A, c->h, PAR, IN),    SLOT(in->B, c->blgn, ACT, IN),
        SLOT(in->C, c->blgn, ACT, IN), SLOT(in->D, c->h, PAR, IN),
        SLOT(in->z, c->blhp, ACT, IN), SLOT(in->dt_bias, c->h, PAR, IN),
        SLOT(in->initial_state, c->bhpn, PAR, IN)};
    for (int i = 0; i < COUNT(slots); i++) s[i] = slots[i];
    return COUNT(slots);
}

typedef struct {
    mb_ssd_params p;
    mb_ssd_inputs in;
    void* y;           /* (B, L, H, P) */
    void* final_state; /* (B, H, P, N) or NULL */
} ssd_fwd_args;

static mb_status ssd_fwd_run(const mb_impl* e, void* v, const mb_exec* ex) {
    ssd_fwd_args* a = v;
    return e->fn.ssd_fwd(&a->p, &a->in, a->y, a->final_state, ex);
}

static mb_status ssd_fwd(const char* fn, mb_backend backend, const mb_ssd_params* p,
                         const mb_ssd_inputs* in, void* y, void* final_state, void* stream) {
    mb_status valid = mb_validate_ssd_fwd(fn, p, in, y);
    if (valid != MB_OK) return valid;
    ssd_fwd_args a = {*p, *in, y, final_state};
    ssd_counts c = ssd_counts_of(p);
    mb_slot s[11];
    int n = ssd_input_slots(s, &a.in, &c);
    s[n++] = (mb_slot)SLOT(a.y, c.blhp, ACT, OUT);
    s[n++] = (mb_slot)SLOT(a.final_state, c.bhpn, PAR, OUT);
    mb_call call = make_call(MB_OP_SSD, MB_DIR_FWD, backend, p->dtype, p->dstate, 0, stream,
                             &a, ssd_fwd_run, s, n);
    return mb_dispatch(fn, &call);
}

typedef struct {
    mb_ssd_params p;
    mb_ssd_inputs in;
    const void* dy;           /* (B, L, H, P) */
    const void* dfinal_state; /* (B, H, P, N) or NULL */
    mb_ssd_grads g;
} ssd_bwd_args;

static mb_status ssd_bwd_run(const mb_impl* e, void* v, const mb_exec* ex) {
    ssd_bwd_args* a = v;
    return e->fn.ssd_bwd(&a->p, &a->in, a->dy, a->dfinal_state, &a->g, ex);
}

static mb_status ssd_bwd(const char* fn, mb_backend backend, const mb_ssd_params* p,
                         const mb_ssd_inputs* in, const void* dy, const void* dfinal_state,
                         const mb_ssd_grads* g, void* stream) {
    mb_status valid = mb_validate_ssd_bwd(fn, p, in, dy, g);
    if (valid != MB_OK) return valid;
    ssd_bwd_args a = {*p, *in, dy, dfinal_state, *g};
    ssd_counts c = ssd_counts_of(p);
    mb_slot s[20];
    int n = ssd_input_slots(s, &a.in, &c);
    mb_slot grads[] = {
        SLOT(a.dy, c.blhp, ACT, IN),           SLOT(a.dfinal_state, c.bhpn, PAR, IN),
        SLOT(a.g.dx, c.blhp, ACT, OUT),        SLOT(a.g.ddt, c.blh, ACT, OUT),
        SLOT(a.g.dA, c.h, PAR, OUT),           SLOT(a.g.dB, c.blgn, ACT, OUT),
        SLOT(a.g.dC, c.blgn, ACT, OUT),        SLOT(a.g.dD, c.h, PAR, OUT),
        SLOT(a.g.dz, c.blhp, ACT, OUT),        SLOT(a.g.ddt_bias, c.h, PAR, OUT),
        SLOT(a.g.dinitial_state, c.bhpn, PAR, OUT)};
    for (int i = 0; i < COUNT(grads); i++) s[n++] = grads[i];
    mb_call call = make_call(MB_OP_SSD, MB_DIR_BWD, backend, p->dtype, p->dstate, 0, stream,
                             &a, ssd_bwd_run, s, n);
    return mb_dispatch(fn, &call);
}

typedef struct {
    mb_ssd_params p;
    mb_ssd_inputs in;
    void* state; /* (B, H, P, N) in/out */
    void* y;     /* (B, H, P) */
} ssd_step_args;

static mb_status ssd_step_run(const mb_impl* e, void* v, const mb_exec* ex) {
    ssd_step_args* a = v;
    return e->fn.ssd_step(&a->p, &a->in, a->state, a->y, ex);
}

static mb_status ssd_step(const char* fn, mb_backend backend, const mb_ssd_params* p,
                          const mb_ssd_inputs* in, void* state, void* y, void* stream) {
    mb_status valid = mb_validate_ssd_step(fn, p, in, state, y);
    if (valid != MB_OK) return valid;
    ssd_step_args a = {*p, *in, state, y};
    ssd_counts c = ssd_counts_of(p); /* L = 1 */
    mb_slot s[11];
    int n = ssd_input_slots(s, &a.in, &c);
    s[n++] = (mb_slot)SLOT(a.state, c.bhpn, p->state_bf16 ? ACT : PAR, INOUT);
    s[n++] = (mb_slot)SLOT(a.y, c.blhp, ACT, OUT);
    mb_call call = make_call(MB_OP_SSD, MB_DIR_STEP, backend, p->dtype, p->dstate, 0, stream,
                             &a, ssd_step_run, s, n);
    return mb_dispatch(fn, &call);
}

mb_status mb_ssd_fwd_cpu(const mb_ssd_params* params, const mb_ssd_inputs* in, void* y,
                         void* final_state) {
    return ssd_fwd(__func__, MB_BACKEND_CPU, params, in, y, final_state, NULL);
}

mb_status mb_ssd_fwd_cuda(const mb_ssd_params* params, const mb_ssd_inputs* in, void* y,
                          void* final_state, void* stream) {
    return ssd_fwd(__func__, MB_BACKEND_CUDA, params, in, y, final_state, stream);
}

mb_status mb_ssd_bwd_cpu(const mb_ssd_params* params, const mb_ssd_inputs* in, const void* dy,
                         const void* dfinal_state, const mb_ssd_grads* grads) {
    return ssd_bwd(__func__, MB_BACKEND_CPU, params, in, dy, dfinal_state, grads, NULL);
}

mb_status mb_ssd_bwd_cuda(const mb_ssd_params* params, const mb_ssd_inputs* in, const void* dy,
                          const void* dfinal_state, const mb_ssd_grads* grads, void* stream) {
    return ssd_bwd(__func__, MB_BACKEND_CUDA, params, in, dy, dfinal_state, grads, stream);
}

mb_status mb_ssd_step_cpu(const mb_ssd_params* params, const mb_ssd_inputs* in, void* state,
                          void* y) {
    return ssd_step(__func__, MB_BACKEND_CPU, params, in, state, y, NULL);
}

mb_status mb_ssd_step_cuda(const mb_ssd_params* params, const mb_ssd_inputs* in, void* state,
                           void* y, void* stream) {
    return ssd_step(__func__, MB_BACKEND_CUDA, params, in, state, y, stream);
}

// ----------------------------------------------------------------------------
// causal attention

typedef struct {
    int64_t q, kv, lse; /* elements of (B,H,L,d) (B,H_kv,L,d) (B,H,L) */
} attention_counts;

static attention_counts attention_counts_of(const mb_attention_params* p) {
    int64_t hkv = p->nheads_kv ? p->nheads_kv : p->nheads;
    attention_counts c;
    c.q = p->batch * p->nheads * p->seqlen * p->headdim;
    c.kv = p->batch * hkv * p->seqlen * p->headdim;
    c.lse = p->batch * p->nheads * p->seqlen;
    return c;
}

typedef struct {
    mb_attention_params p;
    mb_attention_inputs in;
    void* o;   /* (B, H, L, d) */
    void* lse; /* (B, H, L) or NULL */
} attention_fwd_args;

static mb_status attention_fwd_run(const mb_impl* e, void* v, const mb_exec* ex) {
    attention_fwd_args* a = v;
    return e->fn.attention_fwd(&a->p, &a->in, a->o, a->lse, ex);
}

static mb_status attention_fwd(const char* fn, mb_backend backend,
                               const mb_attention_params* p, const mb_attention_inputs* in,
                               void* o, void* lse, void* stream) {
    mb_status valid = mb_validate_attention_fwd(fn, p, in, o);
    if (valid != MB_OK) return valid;
    attention_fwd_args a = {*p, *in, o, lse};
    attention_counts c = attention_counts_of(p);
    mb_slot s[] = {SLOT(a.in.q, c.q, ACT, IN), SLOT(a.in.k, c.kv, ACT, IN),
                   SLOT(a.in.v, c.kv, ACT, IN), SLOT(a.o, c.q, ACT, OUT),
                   SLOT(a.lse, c.lse, PAR, OUT)};
    mb_call call = make_call(MB_OP_ATTENTION, MB_DIR_FWD, backend, p->dtype, 0, p->headdim,
                             stream, &a, attention_fwd_run, s, COUNT(s));
    return mb_dispatch(fn, &call);
}

typedef struct {
    mb_attention_params p;
    mb_attention_inputs in;
    const void* o;    /* (B, H, L, d) */
    const void* lse;  /* (B, H, L) */
    const void* dout; /* (B, H, L, d) */
    mb_attention_grads g;
} attention_bwd_args;

static mb_status attention_bwd_run(const mb_impl* e, void* v, const mb_exec* ex) {
    attention_bwd_args* a = v;
    return e->fn.attention_bwd(&a->p, &a->in, a->o, a->lse, a->dout, &a->g, ex);
}

static mb_status attention_bwd(const char* fn, mb_backend backend,
                               const mb_attention_params* p, const mb_attention_inputs* in,
                               const void* o, const void* lse, const void* dout,
                               const mb_attention_grads* g, void* stream) {
    mb_status valid = mb_validate_attention_bwd(fn, p, in, o, lse, dout, g);
    if (valid != MB_OK) return valid;
    attention_bwd_args a = {*p, *in, o, lse, dout, *g};
    attention_counts c = attention_counts_of(p);
    mb_slot s[] = {SLOT(a.in.q, c.q, ACT, IN),   SLOT(a.in.k, c.kv, ACT, IN),
                   SLOT(a.in.v, c.kv, ACT, IN),  SLOT(a.o, c.q, ACT, IN),
                   SLOT(a.lse, c.lse, PAR, IN),  SLOT(a.dout, c.q, ACT, IN),
                   SLOT(a.g.dq, c.q, ACT, OUT),  SLOT(a.g.dk, c.kv, ACT, OUT),
                   SLOT(a.g.dv, c.kv, ACT, OUT)};
    mb_call call = make_call(MB_OP_ATTENTION, MB_DIR_BWD, backend, p->dtype, 0, p->headdim,
                             stream, &a, attention_bwd_run, s, COUNT(s));
    return mb_dispatch(fn, &call);
}

typedef struct {
    mb_attention_decode_params p;
    mb_attention_decode_inputs in;
    void* o;   /* (B, H, d) */
    void* lse; /* (B, H) or NULL */
} attention_decode_args;

static mb_status attention_decode_run(const mb_impl* e, void* v, const mb_exec* ex) {
    attention_decode_args* a = v;
    return e->fn.attention_decode(&a->p, &a->in, a->o, a->lse, ex);
}

static mb_status attention_decode(const char* fn, mb_backend backend,
                                  const mb_attention_decode_params* p,
                                  const mb_attention_decode_inputs* in, void* o, void* lse,
                                  void* stream) {
    mb_status valid = mb_validate_attention_decode(fn, p, in, o);
    if (valid != MB_OK) return valid;
    attention_decode_args a = {*p, *in, o, lse};
    int64_t hkv = p->nheads_kv ? p->nheads_kv : p->nheads;
    int64_t q = p->batch * p->nheads * p->headdim, kv = p->batch * hkv * p->max_seqlen * p->headdim;
    mb_slot s[] = {SLOT(a.in.q, q, ACT, IN), SLOT(a.in.k, kv, ACT, IN),
                   SLOT(a.in.v, kv, ACT, IN), SLOT(a.o, q, ACT, OUT),
                   SLOT(a.lse, p->batch * p->nheads, PAR, OUT)};
    mb_call call = make_call(MB_OP_ATTENTION, MB_DIR_DECODE, backend, p->dtype, 0, p->headdim,
                             stream, &a, attention_decode_run, s, COUNT(s));
    return mb_dispatch(fn, &call);
}

mb_status mb_attention_fwd_cpu(const mb_attention_params* params, const mb_attention_inputs* in,
                               void* o, void* lse) {
    return attention_fwd(__func__, MB_BACKEND_CPU, params, in, o, lse, NULL);
}

mb_status mb_attention_fwd_cuda(const mb_attention_params* params,
                                const mb_attention_inputs* in, void* o, void* lse,
                                void* stream) {
    return attention_fwd(__func__, MB_BACKEND_CUDA, params, in, o, lse, stream);
}

mb_status mb_attention_bwd_cpu(const mb_attention_params* params, const mb_attention_inputs* in,
                               const void* o, const void* lse, const void* dout,
                               const mb_attention_grads* grads) {
    return attention_bwd(__func__, MB_BACKEND_CPU, params, in, o, lse, dout, grads, NULL);
}

mb_status mb_attention_bwd_cuda(const mb_attention_params* params,
                                const mb_attention_inputs* in, const void* o, const void* lse,
                                const void* dout, const mb_attention_grads* grads,
                                void* stream) {
    return attention_bwd(__func__, MB_BACKEND_CUDA, params, in, o, lse, dout, grads, stream);
}

mb_status mb_attention_decode_cpu(const mb_attention_decode_params* params,
                                  const mb_attention_decode_inputs* in, void* o, void* lse) {
    return attention_decode(__func__, MB_BACKEND_CPU, params, in, o, lse, NULL);
}

mb_status mb_attention_decode_cuda(const mb_attention_decode_params* params,
                                   const mb_attention_decode_inputs* in, void* o, void* lse,
                                   void* stream) {
    return attention_decode(__func__, MB_BACKEND_CUDA, params, in, o, lse, stream);
}
