/*
 * test_bad_input.c -- every invalid-argument class, for every op, direction
 * and backend: the call returns the class's status, sets a message, and
 * leaves every output byte untouched.
 *
 * The CUDA entry points validate before touching the device, so this test
 * checks them too on a machine without a GPU (or a build without CUDA).
 */
#include "testing.h"

#include <stdbool.h>

// ----------------------------------------------------------------------------
// output buffers filled with a sentinel byte, checked after each refused call

#define BUF_BYTES 4096 /* larger than any valid tensor used below */

enum { N_OUT = 11 }; /* out_bufs[10]: the scan training pair's chunk states */
static unsigned char out_bufs[N_OUT][BUF_BYTES];
/* valid, random input storage: never read by a refused call, but real data */
static double in_buf[BUF_BYTES / sizeof(double)];

static void arm_outputs(void) { tb_poison(out_bufs, sizeof out_bufs); }

static bool outputs_untouched(void) { return tb_poisoned(out_bufs, 0, sizeof out_bufs); }

/* One refused call: expected status, a message, nothing written. */
static void expect_refused(const char* what, mb_status got, mb_status want) {
    CHECK(got == want, "%s: got %s (%d), want %s (%d) [%s]", what, mb_status_string(got),
          (int)got, mb_status_string(want), (int)want, mb_last_error());
    CHECK(mb_last_error()[0] != '\0', "%s: no error message", what);
    CHECK(outputs_untouched(), "%s: an output was written", what);
}

// ----------------------------------------------------------------------------
// selective scan

typedef mb_status (*scan_fwd_fn)(const mb_selective_scan_params*, const mb_selective_scan_inputs*,
                                 void*, void*);
typedef mb_status (*scan_bwd_fn)(const mb_selective_scan_params*, const mb_selective_scan_inputs*,
                                 const void*, const mb_selective_scan_grads*);

static mb_status scan_fwd_cuda(const mb_selective_scan_params* p,
                               const mb_selective_scan_inputs* in, void* y, void* fs) {
    return mb_selective_scan_fwd_cuda(p, in, y, fs, NULL);
}
static mb_status scan_bwd_cuda(const mb_selective_scan_params* p,
                               const mb_selective_scan_inputs* in, const void* dy,
                               const mb_selective_scan_grads* g) {
    return mb_selective_scan_bwd_cuda(p, in, dy, g, NULL);
}

/* the training pair, with chunk states given: refused for the same inputs as fwd and bwd */
static mb_status scan_fwd_save_cuda(const mb_selective_scan_params* p,
                                    const mb_selective_scan_inputs* in, void* y, void* fs) {
    return mb_selective_scan_fwd_save_cuda(p, in, y, fs, out_bufs[10], NULL);
}
static mb_status scan_bwd_saved_cuda(const mb_selective_scan_params* p,
                                     const mb_selective_scan_inputs* in, const void* dy,
                                     const mb_selective_scan_grads* g) {
    return mb_selective_scan_bwd_saved_cuda(p, in, dy, out_bufs[10], g, NULL);
}

static mb_selective_scan_params scan_params(void) {
    return (mb_selective_scan_params){.batch = 2, .dim = 4, .seqlen = 5, .dstate = 3,
                                      .ngroups = 2, .dtype = MB_DTYPE_F32,
                                      .delta_softplus = 1};
}

static mb_selective_scan_inputs scan_inputs(void) {
    return (mb_selective_scan_inputs){in_buf, in_buf, in_buf, in_buf, in_buf, in_buf, in_buf,
                                      in_buf};
}

static mb_selective_scan_grads scan_grads(void) {
    return (mb_selective_scan_grads){out_bufs[0], out_bufs[1], out_bufs[2], out_bufs[3],
                                     out_bufs[4], out_bufs[5], out_bufs[6], out_bufs[7]};
}

/* Run one (params, inputs, grads) case through forward and backward. */
static void scan_case(const char* backend, scan_fwd_fn fwd, scan_bwd_fn bwd, const char* what,
                      mb_selective_scan_params p, mb_selective_scan_inputs in,
                      mb_selective_scan_grads g, mb_status want) {
    char label[256];
    arm_outputs();
    snprintf(label, sizeof label, "scan fwd %s: %s", backend, what);
    expect_refused(label, fwd(&p, &in, out_bufs[8], out_bufs[9]), want);
    arm_outputs();
    snprintf(label, sizeof label, "scan bwd %s: %s", backend, what);
    expect_refused(label, bwd(&p, &in, in_buf, &g), want);
}

static void test_scan_bad_input(const char* backend, scan_fwd_fn fwd, scan_bwd_fn bwd) {
    mb_selective_scan_params p;
    mb_selective_scan_inputs in;
    const mb_selective_scan_grads g = scan_grads();

    in = scan_inputs(), in.u = NULL;
    scan_case(backend, fwd, bwd, "u NULL", scan_params(), in, g, MB_ERR_NULL_POINTER);
    in = scan_inputs(), in.C = NULL;
    scan_case(backend, fwd, bwd, "C NULL", scan_params(), in, g, MB_ERR_NULL_POINTER);
    p = scan_params(), p.seqlen = 0;
    scan_case(backend, fwd, bwd, "seqlen 0", p, scan_inputs(), g, MB_ERR_BAD_DIM);
    p = scan_params(), p.batch = -3;
    scan_case(backend, fwd, bwd, "batch -3", p, scan_inputs(), g, MB_ERR_BAD_DIM);
    p = scan_params(), p.ngroups = 0;
    scan_case(backend, fwd, bwd, "ngroups 0", p, scan_inputs(), g, MB_ERR_BAD_DIM);
    p = scan_params(), p.batch = INT64_C(1) << 31, p.dim = INT64_C(1) << 31, p.seqlen = 4;
    scan_case(backend, fwd, bwd, "B*D*L overflows", p, scan_inputs(), g, MB_ERR_OVERFLOW);
    p = scan_params(), p.dim = 6, p.ngroups = 4;
    scan_case(backend, fwd, bwd, "D % G != 0", p, scan_inputs(), g, MB_ERR_GROUPS);
    p = scan_params(), p.dstate = MB_MAX_DSTATE + 1;
    scan_case(backend, fwd, bwd, "N too large", p, scan_inputs(), g, MB_ERR_DSTATE_TOO_LARGE);
    p = scan_params(), p.dtype = MB_DTYPE_F16;
    scan_case(backend, fwd, bwd, "dtype f16", p, scan_inputs(), g, MB_ERR_DTYPE);
    p = scan_params(), p.dtype = (mb_dtype)99;
    scan_case(backend, fwd, bwd, "dtype 99", p, scan_inputs(), g, MB_ERR_DTYPE);
    p = scan_params(), p.delta_softplus = 2;
    scan_case(backend, fwd, bwd, "softplus flag 2", p, scan_inputs(), g, MB_ERR_BAD_OPTION);

    char label[128];
    arm_outputs();
    p = scan_params(), in = scan_inputs();
    snprintf(label, sizeof label, "scan fwd %s: params NULL", backend);
    expect_refused(label, fwd(NULL, &in, out_bufs[8], NULL), MB_ERR_NULL_POINTER);
    snprintf(label, sizeof label, "scan fwd %s: y NULL", backend);
    expect_refused(label, fwd(&p, &in, NULL, out_bufs[9]), MB_ERR_NULL_POINTER);
    snprintf(label, sizeof label, "scan bwd %s: grads NULL", backend);
    expect_refused(label, bwd(&p, &in, in_buf, NULL), MB_ERR_NULL_POINTER);
    snprintf(label, sizeof label, "scan bwd %s: dy NULL", backend);
    mb_selective_scan_grads gg = scan_grads();
    expect_refused(label, bwd(&p, &in, NULL, &gg), MB_ERR_NULL_POINTER);
    gg.dz = NULL; /* z is given but its gradient is not */
    snprintf(label, sizeof label, "scan bwd %s: dz NULL with z", backend);
    expect_refused(label, bwd(&p, &in, in_buf, &gg), MB_ERR_NULL_POINTER);
    gg = scan_grads(), in.D = NULL; /* dD given for an absent D */
    snprintf(label, sizeof label, "scan bwd %s: dD without D", backend);
    expect_refused(label, bwd(&p, &in, in_buf, &gg), MB_ERR_BAD_OPTION);
}

/* The training pair without its chunk states, and their size. */
static void test_scan_pair_states(void) {
    const mb_selective_scan_params p = scan_params();
    const mb_selective_scan_inputs in = scan_inputs();
    const mb_selective_scan_grads g = scan_grads();
    arm_outputs();
    expect_refused("scan fwd_save: chunk_states NULL",
                   mb_selective_scan_fwd_save_cuda(&p, &in, out_bufs[8], NULL, NULL, NULL),
                   MB_ERR_NULL_POINTER);
    expect_refused("scan bwd_saved: chunk_states NULL",
                   mb_selective_scan_bwd_saved_cuda(&p, &in, in_buf, NULL, &g, NULL),
                   MB_ERR_NULL_POINTER);
    mb_selective_scan_params q = p;
    q.seqlen = 2 * MB_SCAN_CHUNK + 1; /* 3 chunks */
    CHECK(mb_selective_scan_chunk_states_numel(&q) == q.batch * q.dim * 3 * q.dstate,
          "chunk_states_numel: %lld for 3 chunks", (long long)mb_selective_scan_chunk_states_numel(&q));
    q.seqlen = 0;
    CHECK(mb_selective_scan_chunk_states_numel(&q) == 0 && mb_selective_scan_chunk_states_numel(NULL) == 0,
          "chunk_states_numel of a bad shape is not 0");
    q = p, q.batch = INT64_C(1) << 40, q.dim = INT64_C(1) << 20; /* 2^60 x 1 chunk x 3 floats */
    CHECK(mb_selective_scan_chunk_states_numel(&q) == 0, "chunk_states_numel overflow: %lld",
          (long long)mb_selective_scan_chunk_states_numel(&q));
}

// ----------------------------------------------------------------------------
// SSD

typedef mb_status (*ssd_fwd_fn)(const mb_ssd_params*, const mb_ssd_inputs*, void*, void*);
typedef mb_status (*ssd_bwd_fn)(const mb_ssd_params*, const mb_ssd_inputs*, const void*,
                                const void*, const mb_ssd_grads*);

static mb_status ssd_fwd_cuda(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                              void* fs) {
    return mb_ssd_fwd_cuda(p, in, y, fs, NULL);
}
static mb_status ssd_bwd_cuda(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* dy,
                              const void* dfs, const mb_ssd_grads* g) {
    return mb_ssd_bwd_cuda(p, in, dy, dfs, g, NULL);
}

static mb_ssd_params ssd_params(void) {
    return (mb_ssd_params){.batch = 2, .seqlen = 5, .nheads = 4, .headdim = 2, .dstate = 3,
                           .ngroups = 2, .chunk_size = 2, .dtype = MB_DTYPE_F32,
                           .dt_softplus = 1, .form = MB_SSD_CHUNKED};
}

static mb_ssd_inputs ssd_inputs(void) {
    return (mb_ssd_inputs){in_buf, in_buf, in_buf, in_buf, in_buf,
                           in_buf, in_buf, in_buf, in_buf};
}

static mb_ssd_grads ssd_grads(void) {
    return (mb_ssd_grads){out_bufs[0], out_bufs[1], out_bufs[2], out_bufs[3], out_bufs[4],
                          out_bufs[5], out_bufs[6], out_bufs[7], out_bufs[8]};
}

static void ssd_case(const char* backend, ssd_fwd_fn fwd, ssd_bwd_fn bwd, const char* what,
                     mb_ssd_params p, mb_ssd_inputs in, mb_ssd_grads g, mb_status want) {
    char label[256];
    arm_outputs();
    snprintf(label, sizeof label, "ssd fwd %s: %s", backend, what);
    expect_refused(label, fwd(&p, &in, out_bufs[8], out_bufs[9]), want);
    arm_outputs();
    snprintf(label, sizeof label, "ssd bwd %s: %s", backend, what);
    expect_refused(label, bwd(&p, &in, in_buf, in_buf, &g), want);
}

static void test_ssd_bad_input(const char* backend, ssd_fwd_fn fwd, ssd_bwd_fn bwd) {
    mb_ssd_params p;
    mb_ssd_inputs in;
    const mb_ssd_grads g = ssd_grads();

    in = ssd_inputs(), in.x = NULL;
    ssd_case(backend, fwd, bwd, "x NULL", ssd_params(), in, g, MB_ERR_NULL_POINTER);
    in = ssd_inputs(), in.dt = NULL;
    ssd_case(backend, fwd, bwd, "dt NULL", ssd_params(), in, g, MB_ERR_NULL_POINTER);
    p = ssd_params(), p.headdim = 0;
    ssd_case(backend, fwd, bwd, "headdim 0", p, ssd_inputs(), g, MB_ERR_BAD_DIM);
    p = ssd_params(), p.chunk_size = -1;
    ssd_case(backend, fwd, bwd, "chunk -1", p, ssd_inputs(), g, MB_ERR_BAD_DIM);
    p = ssd_params(), p.batch = INT64_C(1) << 20, p.seqlen = INT64_C(1) << 20,
    p.nheads = INT64_C(1) << 20, p.ngroups = 1;
    ssd_case(backend, fwd, bwd, "B*L*H*P overflows", p, ssd_inputs(), g, MB_ERR_OVERFLOW);
    p = ssd_params(), p.seqlen = INT64_C(1) << 32, p.form = MB_SSD_QUADRATIC;
    ssd_case(backend, fwd, bwd, "L*L mask overflows", p, ssd_inputs(), g, MB_ERR_OVERFLOW);
    p = ssd_params(), p.nheads = 6, p.ngroups = 4;
    ssd_case(backend, fwd, bwd, "H % G != 0", p, ssd_inputs(), g, MB_ERR_GROUPS);
    p = ssd_params(), p.dstate = 1000;
    ssd_case(backend, fwd, bwd, "N too large", p, ssd_inputs(), g, MB_ERR_DSTATE_TOO_LARGE);
    p = ssd_params(), p.dtype = MB_DTYPE_F16;
    ssd_case(backend, fwd, bwd, "dtype f16", p, ssd_inputs(), g, MB_ERR_DTYPE);
    p = ssd_params(), p.form = (mb_ssd_form)7;
    ssd_case(backend, fwd, bwd, "form 7", p, ssd_inputs(), g, MB_ERR_BAD_OPTION);
    p = ssd_params(), p.dt_softplus = -1;
    ssd_case(backend, fwd, bwd, "softplus flag -1", p, ssd_inputs(), g, MB_ERR_BAD_OPTION);
    p = ssd_params(), p.dtype = MB_DTYPE_BF16, p.state_bf16 = 1;
    ssd_case(backend, fwd, bwd, "state_bf16 (the step's option)", p, ssd_inputs(), g,
             MB_ERR_BAD_OPTION);

    char label[128];
    mb_ssd_grads gg = ssd_grads();
    p = ssd_params(), in = ssd_inputs();
    arm_outputs();
    gg.dinitial_state = NULL;
    snprintf(label, sizeof label, "ssd bwd %s: dinitial_state NULL with h0", backend);
    expect_refused(label, bwd(&p, &in, in_buf, NULL, &gg), MB_ERR_NULL_POINTER);
    gg = ssd_grads(), in.dt_bias = NULL;
    snprintf(label, sizeof label, "ssd bwd %s: ddt_bias without dt_bias", backend);
    expect_refused(label, bwd(&p, &in, in_buf, NULL, &gg), MB_ERR_BAD_OPTION);
    snprintf(label, sizeof label, "ssd fwd %s: inputs NULL", backend);
    expect_refused(label, fwd(&p, NULL, out_bufs[8], NULL), MB_ERR_NULL_POINTER);
}

// ----------------------------------------------------------------------------
// causal attention

typedef mb_status (*attn_fwd_fn)(const mb_attention_params*, const void*, const void*,
                                 const void*, void*, void*);
typedef mb_status (*attn_bwd_fn)(const mb_attention_params*, const void*, const void*,
                                 const void*, const void*, const void*, const void*, void*,
                                 void*, void*);

static mb_attention_params attn_params(void) {
    return (mb_attention_params){.batch = 2, .nheads = 2, .seqlen = 5, .headdim = 4,
                                 .scale = 0.0, .dtype = MB_DTYPE_F32};
}

static void attn_case(const char* backend, attn_fwd_fn fwd, attn_bwd_fn bwd, const char* what,
                      mb_attention_params p, const void* q, mb_status want) {
    char label[256];
    arm_outputs();
    snprintf(label, sizeof label, "attention fwd %s: %s", backend, what);
    expect_refused(label, fwd(&p, q, in_buf, in_buf, out_bufs[0], out_bufs[1]), want);
    arm_outputs();
    snprintf(label, sizeof label, "attention bwd %s: %s", backend, what);
    expect_refused(label, bwd(&p, q, in_buf, in_buf, in_buf, in_buf, in_buf, out_bufs[0],
                              out_bufs[1], out_bufs[2]), want);
}

static void test_attention_bad_input(const char* backend, attn_fwd_fn fwd, attn_bwd_fn bwd) {
    mb_attention_params p;
    attn_case(backend, fwd, bwd, "q NULL", attn_params(), NULL, MB_ERR_NULL_POINTER);
    p = attn_params(), p.headdim = 0;
    attn_case(backend, fwd, bwd, "headdim 0", p, in_buf, MB_ERR_BAD_DIM);
    p = attn_params(), p.nheads = -1;
    attn_case(backend, fwd, bwd, "nheads -1", p, in_buf, MB_ERR_BAD_DIM);
    p = attn_params(), p.seqlen = INT64_C(1) << 31;
    attn_case(backend, fwd, bwd, "L*L scores overflow", p, in_buf, MB_ERR_OVERFLOW);
    p = attn_params(), p.batch = INT64_C(1) << 62;
    attn_case(backend, fwd, bwd, "B*H*L*d overflows", p, in_buf, MB_ERR_OVERFLOW);
    p = attn_params(), p.dtype = MB_DTYPE_F16;
    attn_case(backend, fwd, bwd, "dtype f16", p, in_buf, MB_ERR_DTYPE);
    p = attn_params(), p.scale = NAN;
    attn_case(backend, fwd, bwd, "scale NaN", p, in_buf, MB_ERR_BAD_OPTION);
    p = attn_params(), p.scale = -0.5;
    attn_case(backend, fwd, bwd, "scale negative", p, in_buf, MB_ERR_BAD_OPTION);

    char label[128];
    p = attn_params();
    arm_outputs();
    snprintf(label, sizeof label, "attention fwd %s: o NULL", backend);
    expect_refused(label, fwd(&p, in_buf, in_buf, in_buf, NULL, out_bufs[1]),
                   MB_ERR_NULL_POINTER);
    snprintf(label, sizeof label, "attention bwd %s: lse NULL", backend);
    expect_refused(label, bwd(&p, in_buf, in_buf, in_buf, in_buf, NULL, in_buf, out_bufs[0],
                              out_bufs[1], out_bufs[2]), MB_ERR_NULL_POINTER);
    snprintf(label, sizeof label, "attention bwd %s: dv NULL", backend);
    expect_refused(label, bwd(&p, in_buf, in_buf, in_buf, in_buf, in_buf, in_buf, out_bufs[0],
                              out_bufs[1], NULL), MB_ERR_NULL_POINTER);
}

// ----------------------------------------------------------------------------
// the step and decode entry points, grouped-query K/V, NULL structs

typedef struct {
    mb_status (*scan_step)(const mb_selective_scan_params*, const mb_selective_scan_inputs*,
                           void*, void*);
    mb_status (*ssd_step)(const mb_ssd_params*, const mb_ssd_inputs*, void*, void*);
    mb_status (*decode)(const mb_attention_decode_params*, const mb_attention_decode_inputs*,
                        void*, void*);
    mb_status (*attn_fwd)(const mb_attention_params*, const mb_attention_inputs*, void*, void*);
    mb_status (*attn_bwd)(const mb_attention_params*, const mb_attention_inputs*, const void*,
                          const void*, const void*, const mb_attention_grads*);
} entries;

static mb_status scan_step_cuda(const mb_selective_scan_params* p,
                                const mb_selective_scan_inputs* in, void* state, void* y) {
    return mb_selective_scan_step_cuda(p, in, state, y, NULL);
}
static mb_status ssd_step_cuda(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state,
                               void* y) {
    return mb_ssd_step_cuda(p, in, state, y, NULL);
}
static mb_status decode_cuda(const mb_attention_decode_params* p,
                             const mb_attention_decode_inputs* in, void* o, void* lse) {
    return mb_attention_decode_cuda(p, in, o, lse, NULL);
}
static mb_status attn_fwd_struct_cuda(const mb_attention_params* p,
                                      const mb_attention_inputs* in, void* o, void* lse) {
    return mb_attention_fwd_cuda(p, in, o, lse, NULL);
}
static mb_status attn_bwd_struct_cuda(const mb_attention_params* p,
                                      const mb_attention_inputs* in, const void* o,
                                      const void* lse, const void* dout,
                                      const mb_attention_grads* g) {
    return mb_attention_bwd_cuda(p, in, o, lse, dout, g, NULL);
}

static const entries cpu_entries = {mb_selective_scan_step_cpu, mb_ssd_step_cpu,
                                    mb_attention_decode_cpu, mb_attention_fwd_cpu,
                                    mb_attention_bwd_cpu};
static const entries cuda_entries = {scan_step_cuda, ssd_step_cuda, decode_cuda,
                                     attn_fwd_struct_cuda, attn_bwd_struct_cuda};

/* label "<what> <backend>: <case>", outputs armed, the call, then the checks */
#define REFUSED(what, call, want)                                                        \
    do {                                                                                  \
        char label_[160];                                                                 \
        snprintf(label_, sizeof label_, "%s %s: %s", what, backend, #call);               \
        arm_outputs();                                                                    \
        expect_refused(label_, (call), (want));                                           \
    } while (0)

static void test_new_entry_points(const char* backend, const entries* e) {
    // selective scan step: L must be 1
    mb_selective_scan_params sp = scan_params();
    mb_selective_scan_inputs sin = scan_inputs();
    sp.seqlen = 5;
    REFUSED("scan step seqlen 5", e->scan_step(&sp, &sin, out_bufs[0], out_bufs[1]),
            MB_ERR_BAD_OPTION);
    sp.seqlen = 1;
    REFUSED("scan step", e->scan_step(&sp, &sin, NULL, out_bufs[1]), MB_ERR_NULL_POINTER);
    REFUSED("scan step", e->scan_step(&sp, &sin, out_bufs[0], NULL), MB_ERR_NULL_POINTER);
    REFUSED("scan step", e->scan_step(&sp, NULL, out_bufs[0], out_bufs[1]), MB_ERR_NULL_POINTER);
    REFUSED("scan step", e->scan_step(NULL, &sin, out_bufs[0], out_bufs[1]), MB_ERR_NULL_POINTER);

    // SSD step: L must be 1, no initial_state
    mb_ssd_params dp = ssd_params();
    mb_ssd_inputs din = ssd_inputs();
    din.initial_state = NULL;
    REFUSED("ssd step seqlen 5", e->ssd_step(&dp, &din, out_bufs[0], out_bufs[1]),
            MB_ERR_BAD_OPTION);
    dp.seqlen = 1;
    din.initial_state = in_buf;
    REFUSED("ssd step with initial_state", e->ssd_step(&dp, &din, out_bufs[0], out_bufs[1]),
            MB_ERR_BAD_OPTION);
    din.initial_state = NULL;
    REFUSED("ssd step", e->ssd_step(&dp, &din, NULL, out_bufs[1]), MB_ERR_NULL_POINTER);
    REFUSED("ssd step", e->ssd_step(&dp, NULL, out_bufs[0], out_bufs[1]), MB_ERR_NULL_POINTER);
    dp.state_bf16 = 1; /* ssd_params() has fp32 activations */
    REFUSED("ssd step bf16 state with fp32 activations",
            e->ssd_step(&dp, &din, out_bufs[0], out_bufs[1]), MB_ERR_DTYPE);
    dp.state_bf16 = 2, dp.dtype = MB_DTYPE_BF16;
    REFUSED("ssd step state_bf16 2", e->ssd_step(&dp, &din, out_bufs[0], out_bufs[1]),
            MB_ERR_BAD_OPTION);

    // decode: every cache length in 1..L_max, H_kv divides H
    mb_attention_decode_params ap = {.batch = 3, .nheads = 4, .nheads_kv = 2, .headdim = 4,
                                     .max_seqlen = 6, .scale = 0.0, .dtype = MB_DTYPE_F32};
    int64_t lens[3] = {2, 0, 6};
    mb_attention_decode_inputs ain = {in_buf, in_buf, in_buf, lens};
    REFUSED("decode length 0", e->decode(&ap, &ain, out_bufs[0], out_bufs[1]), MB_ERR_BAD_DIM);
    lens[1] = 7;
    REFUSED("decode length > max_seqlen", e->decode(&ap, &ain, out_bufs[0], out_bufs[1]),
            MB_ERR_BAD_DIM);
    lens[1] = 3;
    ap.nheads_kv = 3;
    REFUSED("decode nheads_kv 3 of 4", e->decode(&ap, &ain, out_bufs[0], out_bufs[1]),
            MB_ERR_GROUPS);
    ap.nheads_kv = -2;
    REFUSED("decode nheads_kv -2", e->decode(&ap, &ain, out_bufs[0], out_bufs[1]), MB_ERR_GROUPS);
    ap.nheads_kv = 2;
    ain.seqlens = NULL;
    REFUSED("decode", e->decode(&ap, &ain, out_bufs[0], out_bufs[1]), MB_ERR_NULL_POINTER);
    ain.seqlens = lens;
    REFUSED("decode", e->decode(&ap, NULL, out_bufs[0], out_bufs[1]), MB_ERR_NULL_POINTER);
    REFUSED("decode", e->decode(&ap, &ain, NULL, out_bufs[1]), MB_ERR_NULL_POINTER);
    ap.scale = NAN;
    REFUSED("decode scale NaN", e->decode(&ap, &ain, out_bufs[0], out_bufs[1]),
            MB_ERR_BAD_OPTION);

    // attention: nheads_kv must divide nheads; NULL in / grads structs
    mb_attention_params tp = attn_params();
    mb_attention_inputs tin = {in_buf, in_buf, in_buf};
    mb_attention_grads tg = {out_bufs[2], out_bufs[3], out_bufs[4]};
    tp.nheads = 4, tp.nheads_kv = 3;
    REFUSED("attention nheads_kv 3 of 4", e->attn_fwd(&tp, &tin, out_bufs[0], out_bufs[1]),
            MB_ERR_GROUPS);
    REFUSED("attention bwd nheads_kv 3 of 4",
            e->attn_bwd(&tp, &tin, in_buf, in_buf, in_buf, &tg), MB_ERR_GROUPS);
    tp.nheads_kv = 2;
    REFUSED("attention fwd", e->attn_fwd(&tp, NULL, out_bufs[0], out_bufs[1]),
            MB_ERR_NULL_POINTER);
    REFUSED("attention bwd", e->attn_bwd(&tp, NULL, in_buf, in_buf, in_buf, &tg),
            MB_ERR_NULL_POINTER);
    REFUSED("attention bwd", e->attn_bwd(&tp, &tin, in_buf, in_buf, in_buf, NULL),
            MB_ERR_NULL_POINTER);
    tin.k = NULL;
    REFUSED("attention fwd k NULL", e->attn_fwd(&tp, &tin, out_bufs[0], out_bufs[1]),
            MB_ERR_NULL_POINTER);
}

// ----------------------------------------------------------------------------
// a valid call after a refused one succeeds and clears the message

static void test_error_cleared_by_success(void) {
    mb_attention_params p = attn_params();
    p.dtype = MB_DTYPE_F64;
    mb_status bad = attn_fwd_cpu(&p, NULL, in_buf, in_buf, out_bufs[0], NULL);
    CHECK(bad == MB_ERR_NULL_POINTER && mb_last_error()[0] != '\0', "setup: refused call");
    /* B*H*L*d = 80 doubles of valid random input, output into out_bufs[0] */
    CHECK_OK(attn_fwd_cpu(&p, in_buf, in_buf, in_buf, out_bufs[0], NULL));
    CHECK(mb_last_error()[0] == '\0', "message not cleared: %s", mb_last_error());
}

static void test_status_strings(void) {
    for (int s = MB_OK; s <= MB_ERR_NOT_IMPLEMENTED; s++) {
        const char* text = mb_status_string((mb_status)s);
        CHECK(text && text[0] && strcmp(text, "unknown status") != 0, "status %d has no text", s);
    }
    CHECK(strcmp(mb_status_string((mb_status)12345), "unknown status") == 0, "unknown status");
}

int main(void) {
    rng_seed(7);
    for (size_t i = 0; i < sizeof in_buf / sizeof in_buf[0]; i++) in_buf[i] = rng_normal();

    test_status_strings();
    test_scan_bad_input("cpu", mb_selective_scan_fwd_cpu, mb_selective_scan_bwd_cpu);
    test_scan_bad_input("cuda", scan_fwd_cuda, scan_bwd_cuda);
    test_scan_bad_input("cuda pair", scan_fwd_save_cuda, scan_bwd_saved_cuda);
    test_scan_pair_states();
    test_ssd_bad_input("cpu", mb_ssd_fwd_cpu, mb_ssd_bwd_cpu);
    test_ssd_bad_input("cuda", ssd_fwd_cuda, ssd_bwd_cuda);
    test_attention_bad_input("cpu", attn_fwd_cpu, attn_bwd_cpu);
    test_attention_bad_input("cuda", attn_fwd_cuda, attn_bwd_cuda);
    test_new_entry_points("cpu", &cpu_entries);
    test_new_entry_points("cuda", &cuda_entries);
    test_error_cleared_by_success();
    return test_main_result("test_bad_input");
}
