/*
 * fuzz_api.c -- a libFuzzer target for the public API (include/mambabench.h).
 *
 * Each input picks one entry point (every op x direction x backend, and the
 * registry calls) and arbitrary parameters: dims (0, negative, huge, small),
 * groups, dtypes (invalid enum values too), flags, chunk sizes, scales (NaN,
 * negative, inf), nheads_kv, cache lengths, and for every pointer NULL or not.
 * It asserts:
 *   - no crash (ASan + UBSan abort on any memory or UB error);
 *   - a known status, and a non-empty mb_last_error() whenever it is not MB_OK;
 *   - every output byte untouched whenever the status is not MB_OK;
 *   - a call whose tensors cannot exist (a dim <= 0, or a byte size that
 *     overflows int64) is refused.
 * Buffers are real and exactly sized only for small dims (each <= 4), so it
 * runs fast; for larger dims every non-NULL pointer points to a small
 * poisoned block and the call must be refused (dims too large for their
 * buffers are given NULL pointers, so a refusal is the only correct answer).
 *
 * Build and run: `make fuzz` (tests/fuzz/run.sh). Without libFuzzer
 * (-DMB_FUZZ_REPLAY), main() replays the files named on the command line:
 * the committed corpus and every crash found, as a ctest (test_fuzz_replay).
 */
#include "mambabench.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// reading the input

typedef struct {
    const uint8_t* p;
    size_t n;
} reader;

static uint8_t u8(reader* r) {
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}

static uint64_t u64(reader* r) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | u8(r);
    return v;
}

/* a dimension: mostly small, sometimes 0, negative, a power of two or anything */
static int64_t dim(reader* r) {
    uint8_t c = u8(r);
    switch (c & 7) {
        case 0: return 0;
        case 1: return -1 - (int64_t)u8(r);
        case 2: return (int64_t)u64(r);
        case 3: return INT64_C(1) << (u8(r) % 63);
        default: return 1 + (c >> 3) % 4;
    }
}

static mb_dtype dtype_of(reader* r) {
    uint8_t c = u8(r);
    if (c < 240) return (mb_dtype)(c % 4);
    return (mb_dtype)(int)(int8_t)u8(r); /* an invalid value, often */
}

static int flag(reader* r) {
    static const int flags[] = {0, 1, 2, -1};
    return flags[u8(r) % 4];
}

static double scale_of(reader* r) {
    switch (u8(r) % 8) {
        case 0: return 0.0;
        case 1: return NAN;
        case 2: return -0.5;
        case 3: return INFINITY;
        case 4: return 1e308;
        default: return (double)(u8(r) + 1) / 64.0;
    }
}

// ----------------------------------------------------------------------------
// buffers: real and exactly sized (small dims), or a small poisoned block

#define POISON 0xA5
#define MAX_TENSORS 24
#define SMALL_DIM 4

typedef struct {
    int small;     /* every dim in 1..SMALL_DIM: real buffers */
    int bad;       /* a dim <= 0 or a byte size overflow: the call must be refused */
    uint32_t mask; /* bit i set: tensor i is given (non-NULL) */
    int count;
    void* bufs[MAX_TENSORS];
    size_t bytes[MAX_TENSORS];
    int is_out[MAX_TENSORS];
    void* saved[MAX_TENSORS]; /* a copy of each output before the call */
} arena;

static unsigned char dummy_in[256];
static unsigned char dummy_out[MAX_TENSORS][256];

/* Tensor number `i` of `n` elements (0 when its size is unknown or huge). */
static void* tensor(arena* a, int64_t n, int is_out) {
    int i = a->count++;
    a->is_out[i] = is_out;
    a->bufs[i] = NULL;
    if (!(a->mask >> i & 1)) return NULL;
    if (a->small) {
        a->bytes[i] = (size_t)(n > 0 ? n : 1) * 8; /* 8: the largest element */
        a->bufs[i] = malloc(a->bytes[i]);
        unsigned char* b = a->bufs[i];
        for (size_t k = 0; k < a->bytes[i]; k++) b[k] = is_out ? POISON : (unsigned char)(k * 37 % 61);
        if (!is_out) /* finite values in every dtype: small fp64/fp32 patterns */
            for (size_t k = 0; k + 8 <= a->bytes[i]; k += 8) {
                double v = ((double)(k % 13) - 6.0) / 8.0;
                memcpy(b + k, &v, 8);
            }
    } else {
        a->bytes[i] = 256;
        a->bufs[i] = is_out ? dummy_out[i] : dummy_in;
        if (is_out) memset(dummy_out[i], POISON, 256);
    }
    if (is_out) {
        a->saved[i] = malloc(a->bytes[i]);
        memcpy(a->saved[i], a->bufs[i], a->bytes[i]);
    }
    return a->bufs[i];
}

static int outputs_untouched(const arena* a) {
    for (int i = 0; i < a->count; i++)
        if (a->is_out[i] && a->bufs[i] && memcmp(a->bufs[i], a->saved[i], a->bytes[i]) != 0)
            return 0;
    return 1;
}

static void arena_free(arena* a) {
    for (int i = 0; i < a->count; i++) {
        if (a->small) free(a->bufs[i]);
        if (a->is_out[i] && a->bufs[i]) free(a->saved[i]);
    }
}

/* Classify dims: small (real buffers), bad (must be refused), or neither
 * (valid but too large for the fuzzer's buffers: every pointer NULL). The
 * shapes are the products in `shapes` (shape_dims[i] dims each, stored in the
 * dtype, in its param dtype where is_param[i] is 1, in fp64 where it is 2). */
static void classify(arena* a, mb_dtype dtype, const int64_t* dims, int ndims,
                     const int64_t* const* shapes, const int* shape_dims, const int* is_param,
                     int nshapes) {
    a->small = 1;
    a->bad = mb_dtype_size(dtype) == 0; /* an unknown dtype */
    for (int i = 0; i < ndims; i++) {
        if (dims[i] <= 0) a->bad = 1;
        if (dims[i] < 1 || dims[i] > SMALL_DIM) a->small = 0;
    }
    for (int s = 0; s < nshapes && !a->bad; s++) {
        int64_t bytes = is_param[s] == 2 ? 8 /* fp64 scratch */
                        : (int64_t)mb_dtype_size(is_param[s] ? mb_param_dtype(dtype) : dtype);
        for (int k = 0; k < shape_dims[s]; k++)
            if (__builtin_mul_overflow(bytes, shapes[s][k], &bytes)) a->bad = 1;
    }
    if (!a->small && !a->bad) a->mask = 0;
}

// ----------------------------------------------------------------------------
// the oracle

static void fail(const char* what, const char* fn, mb_status st) {
    fprintf(stderr, "fuzz_api: %s: %s returned %d (%s): \"%s\"\n", what, fn, (int)st,
            mb_status_string(st), mb_last_error());
    abort();
}

static void check(const char* fn, mb_status st, const arena* a) {
    if ((int)st < MB_OK || (int)st > MB_ERR_NOT_IMPLEMENTED) fail("unknown status", fn, st);
    if (st != MB_OK) {
        if (!mb_last_error()[0]) fail("no message", fn, st);
        if (!outputs_untouched(a)) fail("an output was written by a refused call", fn, st);
    } else if (mb_last_error()[0]) {
        fail("a successful call left a message", fn, st);
    }
    if (a->bad && (st == MB_OK || st == MB_ERR_ALLOC))
        fail("a call with impossible tensors passed validation", fn, st);
    if (!a->small && st == MB_OK) fail("a call larger than its buffers was accepted", fn, st);
}

// ----------------------------------------------------------------------------
// selective scan

static void fuzz_scan(reader* r, int dir, int cuda) {
    mb_selective_scan_params p = {dim(r), dim(r), dim(r), dim(r), dim(r), dtype_of(r), flag(r)};
    if (dir == 2 && u8(r) % 4) p.seqlen = 1;
    arena a = {.mask = (uint32_t)u64(r)};
    const int64_t bdl[] = {p.batch, p.dim, p.seqlen}, bgnl[] = {p.batch, p.ngroups, p.dstate, p.seqlen},
                  dn[] = {p.dim, p.dstate}, bdn[] = {p.batch, p.dim, p.dstate};
    const int64_t* shapes[] = {bdl, bgnl, dn, bdn};
    const int nd[] = {3, 4, 2, 3}, par[] = {0, 0, 1, 1};
    const int64_t dims[] = {p.batch, p.dim, p.seqlen, p.dstate, p.ngroups};
    classify(&a, p.dtype, dims, 5, shapes, nd, par, 4);
    int64_t nbdl = 0, nbgnl = 0, ndn = 0, nbdn = 0; /* elements; only small dims get buffers */
    if (a.small) {
        nbdl = p.batch * p.dim * p.seqlen, nbgnl = p.batch * p.ngroups * p.dstate * p.seqlen;
        ndn = p.dim * p.dstate, nbdn = p.batch * p.dim * p.dstate;
    }
    mb_selective_scan_inputs in = {tensor(&a, nbdl, 0), tensor(&a, nbdl, 0), tensor(&a, ndn, 0),
                                   tensor(&a, nbgnl, 0), tensor(&a, nbgnl, 0), tensor(&a, p.dim, 0),
                                   tensor(&a, nbdl, 0), tensor(&a, p.dim, 0)};
    const mb_selective_scan_params* pp = tensor(&a, 0, 0) || !a.small ? &p : NULL;
    const mb_selective_scan_inputs* inp = (a.mask >> 9 & 1) || a.mask == 0 ? &in : NULL;
    /* mask bit 30, CUDA: the training pair (fwd_save / bwd_saved), its chunk states the last tensor */
    const int pair = cuda && dir < 2 && (a.mask >> 30 & 1);
    const int64_t nstates = a.small ? mb_selective_scan_chunk_states_numel(&p) : 0;
    mb_status st;
    const char* fn;
    if (dir == 0 && pair) {
        void *y = tensor(&a, nbdl, 1), *fs = tensor(&a, nbdn, 1), *states = tensor(&a, nstates, 1);
        if (!states) a.bad = 1;
        fn = "mb_selective_scan_fwd_save_cuda";
        st = mb_selective_scan_fwd_save_cuda(pp, inp, y, fs, states, NULL);
    } else if (dir == 0) {
        void *y = tensor(&a, nbdl, 1), *fs = tensor(&a, nbdn, 1);
        fn = cuda ? "mb_selective_scan_fwd_cuda" : "mb_selective_scan_fwd_cpu";
        st = cuda ? mb_selective_scan_fwd_cuda(pp, inp, y, fs, NULL)
                  : mb_selective_scan_fwd_cpu(pp, inp, y, fs);
    } else if (dir == 1) {
        const void* dy = tensor(&a, nbdl, 0);
        mb_selective_scan_grads g = {tensor(&a, nbdl, 1), tensor(&a, nbdl, 1), tensor(&a, ndn, 1),
                                     tensor(&a, nbgnl, 1), tensor(&a, nbgnl, 1), tensor(&a, p.dim, 1),
                                     tensor(&a, nbdl, 1), tensor(&a, p.dim, 1)};
        const mb_selective_scan_grads* gp = (a.mask >> 20 & 1) || a.mask == 0 ? &g : NULL;
        if (pair) {
            const void* states = tensor(&a, nstates, 0);
            if (!states) a.bad = 1;
            fn = "mb_selective_scan_bwd_saved_cuda";
            st = mb_selective_scan_bwd_saved_cuda(pp, inp, dy, states, gp, NULL);
        } else {
            fn = cuda ? "mb_selective_scan_bwd_cuda" : "mb_selective_scan_bwd_cpu";
            st = cuda ? mb_selective_scan_bwd_cuda(pp, inp, dy, gp, NULL)
                      : mb_selective_scan_bwd_cpu(pp, inp, dy, gp);
        }
    } else {
        void *state = tensor(&a, nbdn, 1), *y = tensor(&a, nbdl, 1);
        fn = cuda ? "mb_selective_scan_step_cuda" : "mb_selective_scan_step_cpu";
        st = cuda ? mb_selective_scan_step_cuda(pp, inp, state, y, NULL)
                  : mb_selective_scan_step_cpu(pp, inp, state, y);
    }
    if (!pp || !inp) a.bad = 1; /* a NULL params/inputs struct must be refused too */
    check(fn, st, &a);
    arena_free(&a);
}

// ----------------------------------------------------------------------------
// SSD

static void fuzz_ssd(reader* r, int dir, int cuda) {
    mb_ssd_params p = {dim(r), dim(r), dim(r), dim(r), dim(r), dim(r), dim(r), dtype_of(r),
                       flag(r), (mb_ssd_form)(u8(r) % 5 - 1), flag(r)};
    if (dir == 2 && u8(r) % 4) p.seqlen = 1;
    arena a = {.mask = (uint32_t)u64(r)};
    const int64_t blhp[] = {p.batch, p.seqlen, p.nheads, p.headdim},
                  blgn[] = {p.batch, p.seqlen, p.ngroups, p.dstate},
                  bhpn[] = {p.batch, p.nheads, p.headdim, p.dstate};
    const int64_t* shapes[] = {blhp, blgn, bhpn};
    const int nd[] = {4, 4, 4}, par[] = {0, 0, 1};
    /* chunk_size may be anything > 0: only min(chunk, L) matters */
    const int64_t dims[] = {p.batch, p.seqlen, p.nheads, p.headdim, p.dstate, p.ngroups,
                            p.chunk_size > 0 ? 1 : p.chunk_size};
    classify(&a, p.dtype, dims, 7, shapes, nd, par, 3);
    int64_t nx = 0, ndt = 0, nbc = 0, nst = 0, nh = 0;
    if (a.small) {
        nx = p.batch * p.seqlen * p.nheads * p.headdim, ndt = p.batch * p.seqlen * p.nheads;
        nbc = p.batch * p.seqlen * p.ngroups * p.dstate;
        nst = p.batch * p.nheads * p.headdim * p.dstate, nh = p.nheads;
    }
    mb_ssd_inputs in = {tensor(&a, nx, 0), tensor(&a, ndt, 0), tensor(&a, nh, 0),
                        tensor(&a, nbc, 0), tensor(&a, nbc, 0), tensor(&a, nh, 0),
                        tensor(&a, nx, 0), tensor(&a, nh, 0), tensor(&a, nst, 0)};
    const mb_ssd_params* pp = tensor(&a, 0, 0) || !a.small ? &p : NULL;
    const mb_ssd_inputs* inp = (a.mask >> 10 & 1) || a.mask == 0 ? &in : NULL;
    mb_status st;
    const char* fn;
    if (dir == 0) {
        void *y = tensor(&a, nx, 1), *fs = tensor(&a, nst, 1);
        fn = cuda ? "mb_ssd_fwd_cuda" : "mb_ssd_fwd_cpu";
        st = cuda ? mb_ssd_fwd_cuda(pp, inp, y, fs, NULL) : mb_ssd_fwd_cpu(pp, inp, y, fs);
    } else if (dir == 1) {
        const void *dy = tensor(&a, nx, 0), *dfs = tensor(&a, nst, 0);
        mb_ssd_grads g = {tensor(&a, nx, 1), tensor(&a, ndt, 1), tensor(&a, nh, 1),
                          tensor(&a, nbc, 1), tensor(&a, nbc, 1), tensor(&a, nh, 1),
                          tensor(&a, nx, 1), tensor(&a, nh, 1), tensor(&a, nst, 1)};
        const mb_ssd_grads* gp = (a.mask >> 23 & 1) || a.mask == 0 ? &g : NULL;
        fn = cuda ? "mb_ssd_bwd_cuda" : "mb_ssd_bwd_cpu";
        st = cuda ? mb_ssd_bwd_cuda(pp, inp, dy, dfs, gp, NULL)
                  : mb_ssd_bwd_cpu(pp, inp, dy, dfs, gp);
    } else {
        void *state = tensor(&a, nst, 1), *y = tensor(&a, nx, 1);
        fn = cuda ? "mb_ssd_step_cuda" : "mb_ssd_step_cpu";
        st = cuda ? mb_ssd_step_cuda(pp, inp, state, y, NULL) : mb_ssd_step_cpu(pp, inp, state, y);
    }
    if (!pp || !inp) a.bad = 1;
    check(fn, st, &a);
    arena_free(&a);
}

// ----------------------------------------------------------------------------
// attention

static void fuzz_attention(reader* r, int dir, int cuda) {
    mb_attention_params p = {dim(r), dim(r), dim(r), dim(r), scale_of(r), dtype_of(r), 0};
    uint8_t kv = u8(r);
    p.nheads_kv = kv % 4 == 0 ? 0 : kv % 4 == 1 ? 1 : kv % 4 == 2 ? dim(r) : p.nheads;
    arena a = {.mask = (uint32_t)u64(r)};
    int64_t hkv = p.nheads_kv ? p.nheads_kv : p.nheads;
    const int64_t q[] = {p.batch, p.nheads, p.seqlen, p.headdim},
                  k[] = {p.batch, hkv, p.seqlen, p.headdim}, ll[] = {p.seqlen, p.seqlen};
    const int64_t* shapes[] = {q, k, ll, q};
    const int nd[] = {4, 4, 2, 3}, par[] = {0, 0, 2, 1}; /* (L, L) fp64 scores; lse (B, H, L) */
    const int64_t dims[] = {p.batch, p.nheads, p.seqlen, p.headdim, hkv};
    classify(&a, p.dtype, dims, 5, shapes, nd, par, 4);
    int64_t nq = 0, nkv = 0, nl = 0;
    if (a.small) {
        nq = p.batch * p.nheads * p.seqlen * p.headdim, nkv = p.batch * hkv * p.seqlen * p.headdim;
        nl = p.batch * p.nheads * p.seqlen;
    }
    mb_attention_inputs in = {tensor(&a, nq, 0), tensor(&a, nkv, 0), tensor(&a, nkv, 0)};
    const mb_attention_params* pp = tensor(&a, 0, 0) || !a.small ? &p : NULL;
    const mb_attention_inputs* inp = (a.mask >> 4 & 1) || a.mask == 0 ? &in : NULL;
    mb_status st;
    const char* fn;
    if (dir == 0) {
        void *o = tensor(&a, nq, 1), *lse = tensor(&a, nl, 1);
        fn = cuda ? "mb_attention_fwd_cuda" : "mb_attention_fwd_cpu";
        st = cuda ? mb_attention_fwd_cuda(pp, inp, o, lse, NULL) : mb_attention_fwd_cpu(pp, inp, o, lse);
    } else {
        /* o, lse, dout: real forward outputs are not needed for memory safety */
        const void *o = tensor(&a, nq, 0), *lse = tensor(&a, nl, 0), *dout = tensor(&a, nq, 0);
        mb_attention_grads g = {tensor(&a, nq, 1), tensor(&a, nkv, 1), tensor(&a, nkv, 1)};
        const mb_attention_grads* gp = (a.mask >> 11 & 1) || a.mask == 0 ? &g : NULL;
        fn = cuda ? "mb_attention_bwd_cuda" : "mb_attention_bwd_cpu";
        st = cuda ? mb_attention_bwd_cuda(pp, inp, o, lse, dout, gp, NULL)
                  : mb_attention_bwd_cpu(pp, inp, o, lse, dout, gp);
    }
    if (!pp || !inp) a.bad = 1;
    check(fn, st, &a);
    arena_free(&a);
}

static void fuzz_decode(reader* r, int cuda) {
    mb_attention_decode_params p = {dim(r), dim(r), 0, dim(r), dim(r), scale_of(r), dtype_of(r)};
    uint8_t kv = u8(r);
    p.nheads_kv = kv % 4 == 0 ? 0 : kv % 4 == 1 ? 1 : kv % 4 == 2 ? dim(r) : p.nheads;
    arena a = {.mask = (uint32_t)u64(r)};
    int64_t hkv = p.nheads_kv ? p.nheads_kv : p.nheads;
    const int64_t q[] = {p.batch, p.nheads, p.headdim},
                  k[] = {p.batch, hkv, p.max_seqlen, p.headdim};
    const int64_t* shapes[] = {q, k, q};
    const int nd[] = {3, 4, 2}, par[] = {0, 0, 1}; /* lse (B, H) */
    const int64_t dims[] = {p.batch, p.nheads, p.headdim, p.max_seqlen, hkv};
    classify(&a, p.dtype, dims, 5, shapes, nd, par, 3);
    int64_t nq = 0, nkv = 0, nl = 0;
    if (a.small) {
        nq = p.batch * p.nheads * p.headdim, nkv = p.batch * hkv * p.max_seqlen * p.headdim;
        nl = p.batch * p.nheads;
    }
    /* cache lengths: B of them (SMALL_DIM at most), each anything */
    int64_t seqlens[SMALL_DIM] = {1, 1, 1, 1};
    for (int b = 0; b < SMALL_DIM; b++) {
        uint8_t c = u8(r);
        seqlens[b] = c % 8 == 0 ? 0 : c % 8 == 1 ? -1 : c % 8 == 2 ? p.max_seqlen + 1
                   : 1 + c % (p.max_seqlen > 0 && p.max_seqlen < 100 ? p.max_seqlen : 1);
    }
    /* large dims: lengths of 1 for the first 256 sequences; a validator that
     * reads past them before refusing impossible dims is a bug */
    static int64_t ones[256];
    for (int b = 0; b < 256; b++) ones[b] = 1;
    mb_attention_decode_inputs in = {tensor(&a, nq, 0), tensor(&a, nkv, 0), tensor(&a, nkv, 0),
                                     !(a.mask >> 3 & 1) ? NULL : a.small ? seqlens : ones};
    const mb_attention_decode_params* pp = tensor(&a, 0, 0) || !a.small ? &p : NULL;
    const mb_attention_decode_inputs* inp = (a.mask >> 5 & 1) || a.mask == 0 ? &in : NULL;
    void *o = tensor(&a, nq, 1), *lse = tensor(&a, nl, 1);
    const char* fn = cuda ? "mb_attention_decode_cuda" : "mb_attention_decode_cpu";
    mb_status st = cuda ? mb_attention_decode_cuda(pp, inp, o, lse, NULL)
                        : mb_attention_decode_cpu(pp, inp, o, lse);
    if (!pp || !inp) a.bad = 1;
    check(fn, st, &a);
    arena_free(&a);
}

// ----------------------------------------------------------------------------
// the registry

static void fuzz_registry(reader* r) {
    mb_op op = (mb_op)(int)(int8_t)u8(r) % 5;
    mb_direction dir = (mb_direction)(int)(int8_t)u8(r) % 6;
    mb_backend be = (mb_backend)(int)(int8_t)u8(r) % 3;
    int count = mb_impl_count(op, dir, be);
    mb_impl_info info;
    mb_status st = mb_impl_get(op, dir, be, (int)(int8_t)u8(r), &info);
    if (st != MB_OK && !mb_last_error()[0]) fail("no message", "mb_impl_get", st);
    char name[17];
    size_t len = u8(r) % 17;
    for (size_t i = 0; i < len; i++) name[i] = (char)u8(r);
    name[len < 16 ? len : 16] = '\0';
    const char* before = mb_impl_selected(op, dir, be);
    st = mb_impl_select(op, dir, be, u8(r) % 8 ? name : NULL);
    if (st != MB_OK) {
        if (!mb_last_error()[0]) fail("no message", "mb_impl_select", st);
        if (mb_impl_selected(op, dir, be) != before) fail("selection changed", "mb_impl_select", st);
    }
    if (count < 0) fail("negative count", "mb_impl_count", MB_OK);
    (void)mb_op_name(op), (void)mb_direction_name(dir), (void)mb_backend_name(be);
    (void)mb_status_string((mb_status)(int)(int8_t)u8(r));
    (void)mb_dtype_size(dtype_of(r)), (void)mb_dtype_name(dtype_of(r));
    mb_impl_select(op, dir, be, NULL); /* back to the default for the next input */
}

// ----------------------------------------------------------------------------
// entry

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    reader r = {data, size};
    uint8_t which = u8(&r) % 19;
    int cuda = which >= 9 && which < 18;
    int entry = which % 9;
    if (which == 18) fuzz_registry(&r);
    else if (entry < 3) fuzz_scan(&r, entry, cuda);
    else if (entry < 6) fuzz_ssd(&r, entry - 3, cuda);
    else if (entry < 8) fuzz_attention(&r, entry - 6, cuda);
    else fuzz_decode(&r, cuda);
    return 0;
}

#ifdef MB_FUZZ_REPLAY
/* Replay each file named on the command line once (the corpus, crash files). */
int main(int argc, char** argv) {
    int replayed = 0;
    for (int i = 1; i < argc; i++) {
        FILE* f = fopen(argv[i], "rb");
        if (!f) {
            fprintf(stderr, "fuzz_replay: cannot open %s\n", argv[i]);
            return 1;
        }
        static uint8_t buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
        replayed++;
    }
    printf("fuzz_replay: %d inputs, no failure\n", replayed);
    return replayed ? 0 : 1;
}
#endif
