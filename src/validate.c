/*
 * validate.c -- one argument validator per op and direction, shared by every
 * backend, so that a bad call is refused the same way everywhere and before
 * any tensor memory is read or written.
 *
 * Order of checks: NULL params/inputs/required tensors, dtype, dimensions,
 * 64-bit overflow of every tensor's byte size, groups, state size, options,
 * and for the backward the pairing of optional inputs with their gradients.
 */
#include "internal.h"

#include <math.h>
#include <stdbool.h>

// ----------------------------------------------------------------------------
// small checks

#define REQUIRE_PTR(fn, ptr)                                                              \
    do {                                                                                  \
        if (!(ptr)) return mb_fail(MB_ERR_NULL_POINTER, "%s: %s is NULL", fn, #ptr);     \
    } while (0)

#define RETURN_IF_FAIL(expr)                                                              \
    do {                                                                                  \
        mb_status status_ = (expr);                                                       \
        if (status_ != MB_OK) return status_;                                             \
    } while (0)

static mb_status check_dtype(const char* fn, mb_dtype dtype) {
    if (mb_dtype_size(dtype) == 0)
        return mb_fail(MB_ERR_DTYPE, "%s: unknown dtype %d", fn, (int)dtype);
    if (dtype == MB_DTYPE_F16)
        return mb_fail(MB_ERR_DTYPE, "%s: dtype f16 is not supported", fn);
    return MB_OK;
}

static mb_status check_positive(const char* fn, const char* name, int64_t value) {
    if (value <= 0) return mb_fail(MB_ERR_BAD_DIM, "%s: %s = %lld must be > 0", fn, name,
                                   (long long)value);
    return MB_OK;
}

/* The byte size of a tensor with `ndim` dims of `elem` bytes must fit int64. */
static mb_status check_tensor_size(const char* fn, const char* name, int ndim,
                                   const int64_t* dims, size_t elem) {
    int64_t bytes = (int64_t)elem;
    for (int i = 0; i < ndim; i++) {
        if (bytes > INT64_MAX / dims[i])
            return mb_fail(MB_ERR_OVERFLOW, "%s: the byte size of %s overflows int64", fn, name);
        bytes *= dims[i];
    }
    return MB_OK;
}

static mb_status check_flag(const char* fn, const char* name, int value) {
    if (value != 0 && value != 1)
        return mb_fail(MB_ERR_BAD_OPTION, "%s: %s = %d must be 0 or 1", fn, name, value);
    return MB_OK;
}

/* An optional input and its gradient come together or not at all. */
static mb_status check_grad_pairing(const char* fn, const char* input, const void* in_ptr,
                                    const char* grad, const void* grad_ptr) {
    if (in_ptr && !grad_ptr)
        return mb_fail(MB_ERR_NULL_POINTER, "%s: %s is given but %s is NULL", fn, input, grad);
    if (!in_ptr && grad_ptr)
        return mb_fail(MB_ERR_BAD_OPTION, "%s: %s is given but %s is absent", fn, grad, input);
    return MB_OK;
}

static mb_status check_groups(const char* fn, const char* what, int64_t count, int64_t groups) {
    if (count % groups != 0)
        return mb_fail(MB_ERR_GROUPS, "%s: %s = %lld is not divisible by ngroups = %lld", fn,
                       what, (long long)count, (long long)groups);
    return MB_OK;
}

static mb_status check_dstate(const char* fn, int64_t n) {
    if (n > MB_MAX_DSTATE)
        return mb_fail(MB_ERR_DSTATE_TOO_LARGE, "%s: dstate = %lld exceeds MB_MAX_DSTATE = %d",
                       fn, (long long)n, MB_MAX_DSTATE);
    return MB_OK;
}

// ----------------------------------------------------------------------------
// selective scan

static mb_status validate_scan_common(const char* fn, const mb_selective_scan_params* params,
                                      const mb_selective_scan_inputs* in) {
    REQUIRE_PTR(fn, params);
    REQUIRE_PTR(fn, in);
    REQUIRE_PTR(fn, in->u);
    REQUIRE_PTR(fn, in->delta);
    REQUIRE_PTR(fn, in->A);
    REQUIRE_PTR(fn, in->B);
    REQUIRE_PTR(fn, in->C);
    RETURN_IF_FAIL(check_dtype(fn, params->dtype));
    RETURN_IF_FAIL(check_positive(fn, "batch", params->batch));
    RETURN_IF_FAIL(check_positive(fn, "dim", params->dim));
    RETURN_IF_FAIL(check_positive(fn, "seqlen", params->seqlen));
    RETURN_IF_FAIL(check_positive(fn, "dstate", params->dstate));
    RETURN_IF_FAIL(check_positive(fn, "ngroups", params->ngroups));
    size_t act = mb_dtype_size(params->dtype);
    size_t par = mb_dtype_size(mb_param_dtype(params->dtype));
    const int64_t bdl[3] = {params->batch, params->dim, params->seqlen};
    const int64_t bgnl[4] = {params->batch, params->ngroups, params->dstate, params->seqlen};
    const int64_t dn[2] = {params->dim, params->dstate};
    const int64_t bdn[3] = {params->batch, params->dim, params->dstate};
    RETURN_IF_FAIL(check_tensor_size(fn, "u (B, D, L)", 3, bdl, act));
    RETURN_IF_FAIL(check_tensor_size(fn, "B (B, G, N, L)", 4, bgnl, act));
    RETURN_IF_FAIL(check_tensor_size(fn, "A (D, N)", 2, dn, par));
    RETURN_IF_FAIL(check_tensor_size(fn, "final_state (B, D, N)", 3, bdn, par));
    RETURN_IF_FAIL(check_groups(fn, "dim", params->dim, params->ngroups));
    RETURN_IF_FAIL(check_dstate(fn, params->dstate));
    RETURN_IF_FAIL(check_flag(fn, "delta_softplus", params->delta_softplus));
    return MB_OK;
}

mb_status mb_validate_selective_scan_fwd(const char* fn, const mb_selective_scan_params* params,
                                         const mb_selective_scan_inputs* in, const void* y) {
    RETURN_IF_FAIL(validate_scan_common(fn, params, in));
    REQUIRE_PTR(fn, y);
    return MB_OK;
}

mb_status mb_validate_selective_scan_bwd(const char* fn, const mb_selective_scan_params* params,
                                         const mb_selective_scan_inputs* in, const void* dy,
                                         const mb_selective_scan_grads* grads) {
    RETURN_IF_FAIL(validate_scan_common(fn, params, in));
    REQUIRE_PTR(fn, dy);
    REQUIRE_PTR(fn, grads);
    REQUIRE_PTR(fn, grads->du);
    REQUIRE_PTR(fn, grads->ddelta);
    REQUIRE_PTR(fn, grads->dA);
    REQUIRE_PTR(fn, grads->dB);
    REQUIRE_PTR(fn, grads->dC);
    RETURN_IF_FAIL(check_grad_pairing(fn, "D", in->D, "dD", grads->dD));
    RETURN_IF_FAIL(check_grad_pairing(fn, "z", in->z, "dz", grads->dz));
    RETURN_IF_FAIL(check_grad_pairing(fn, "delta_bias", in->delta_bias, "ddelta_bias",
                                      grads->ddelta_bias));
    return MB_OK;
}

/* One token: L must be 1; the state is read and written. */
static mb_status check_one_token(const char* fn, int64_t seqlen) {
    if (seqlen != 1)
        return mb_fail(MB_ERR_BAD_OPTION, "%s: seqlen = %lld, a step takes exactly one token "
                       "(seqlen = 1)", fn, (long long)seqlen);
    return MB_OK;
}

mb_status mb_validate_selective_scan_step(const char* fn, const mb_selective_scan_params* params,
                                          const mb_selective_scan_inputs* in, const void* state,
                                          const void* y) {
    RETURN_IF_FAIL(validate_scan_common(fn, params, in));
    RETURN_IF_FAIL(check_one_token(fn, params->seqlen));
    REQUIRE_PTR(fn, state);
    REQUIRE_PTR(fn, y);
    return MB_OK;
}

// ----------------------------------------------------------------------------
// SSD

static mb_status validate_ssd_common(const char* fn, const mb_ssd_params* params,
                                     const mb_ssd_inputs* in) {
    REQUIRE_PTR(fn, params);
    REQUIRE_PTR(fn, in);
    REQUIRE_PTR(fn, in->x);
    REQUIRE_PTR(fn, in->dt);
    REQUIRE_PTR(fn, in->A);
    REQUIRE_PTR(fn, in->B);
    REQUIRE_PTR(fn, in->C);
    RETURN_IF_FAIL(check_dtype(fn, params->dtype));
    RETURN_IF_FAIL(check_positive(fn, "batch", params->batch));
    RETURN_IF_FAIL(check_positive(fn, "seqlen", params->seqlen));
    RETURN_IF_FAIL(check_positive(fn, "nheads", params->nheads));
    RETURN_IF_FAIL(check_positive(fn, "headdim", params->headdim));
    RETURN_IF_FAIL(check_positive(fn, "dstate", params->dstate));
    RETURN_IF_FAIL(check_positive(fn, "ngroups", params->ngroups));
    RETURN_IF_FAIL(check_positive(fn, "chunk_size", params->chunk_size));
    size_t act = mb_dtype_size(params->dtype);
    size_t par = mb_dtype_size(mb_param_dtype(params->dtype));
    const int64_t blhp[4] = {params->batch, params->seqlen, params->nheads, params->headdim};
    const int64_t blgn[4] = {params->batch, params->seqlen, params->ngroups, params->dstate};
    const int64_t bhpn[4] = {params->batch, params->nheads, params->headdim, params->dstate};
    /* the reference's chunk block is min(chunk, L) squared: a chunk above L is one chunk */
    int64_t block = params->chunk_size < params->seqlen ? params->chunk_size : params->seqlen;
    const int64_t chunk2[2] = {block, block};
    const int64_t ll[2] = {params->seqlen, params->seqlen};
    RETURN_IF_FAIL(check_tensor_size(fn, "x (B, L, H, P)", 4, blhp, act));
    RETURN_IF_FAIL(check_tensor_size(fn, "B (B, L, G, N)", 4, blgn, act));
    RETURN_IF_FAIL(check_tensor_size(fn, "state (B, H, P, N)", 4, bhpn, par));
    RETURN_IF_FAIL(check_tensor_size(fn, "the chunk block (min(chunk, L), min(chunk, L))", 2, chunk2, 8));
    if (params->form == MB_SSD_QUADRATIC)
        RETURN_IF_FAIL(check_tensor_size(fn, "the quadratic mask (L, L)", 2, ll, 8));
    RETURN_IF_FAIL(check_groups(fn, "nheads", params->nheads, params->ngroups));
    RETURN_IF_FAIL(check_dstate(fn, params->dstate));
    RETURN_IF_FAIL(check_flag(fn, "dt_softplus", params->dt_softplus));
    RETURN_IF_FAIL(check_flag(fn, "state_bf16", params->state_bf16));
    if (params->form != MB_SSD_CHUNKED && params->form != MB_SSD_RECURRENT &&
        params->form != MB_SSD_QUADRATIC)
        return mb_fail(MB_ERR_BAD_OPTION, "%s: unknown SSD form %d", fn, (int)params->form);
    return MB_OK;
}

/* state_bf16 is the step's option: the forward's initial and final states, and
 * the backward's, stay in the param dtype. */
static mb_status check_no_bf16_state(const char* fn, const mb_ssd_params* params) {
    if (params->state_bf16)
        return mb_fail(MB_ERR_BAD_OPTION, "%s: state_bf16 = 1 applies to the one-token step "
                       "only (the forward and backward keep their states in fp32)", fn);
    return MB_OK;
}

mb_status mb_validate_ssd_fwd(const char* fn, const mb_ssd_params* params,
                              const mb_ssd_inputs* in, const void* y) {
    RETURN_IF_FAIL(validate_ssd_common(fn, params, in));
    RETURN_IF_FAIL(check_no_bf16_state(fn, params));
    REQUIRE_PTR(fn, y);
    return MB_OK;
}

mb_status mb_validate_ssd_bwd(const char* fn, const mb_ssd_params* params,
                              const mb_ssd_inputs* in, const void* dy, const mb_ssd_grads* grads) {
    RETURN_IF_FAIL(validate_ssd_common(fn, params, in));
    RETURN_IF_FAIL(check_no_bf16_state(fn, params));
    REQUIRE_PTR(fn, dy);
    REQUIRE_PTR(fn, grads);
    REQUIRE_PTR(fn, grads->dx);
    REQUIRE_PTR(fn, grads->ddt);
    REQUIRE_PTR(fn, grads->dA);
    REQUIRE_PTR(fn, grads->dB);
    REQUIRE_PTR(fn, grads->dC);
    RETURN_IF_FAIL(check_grad_pairing(fn, "D", in->D, "dD", grads->dD));
    RETURN_IF_FAIL(check_grad_pairing(fn, "z", in->z, "dz", grads->dz));
    RETURN_IF_FAIL(check_grad_pairing(fn, "dt_bias", in->dt_bias, "ddt_bias", grads->ddt_bias));
    RETURN_IF_FAIL(check_grad_pairing(fn, "initial_state", in->initial_state, "dinitial_state",
                                      grads->dinitial_state));
    return MB_OK;
}

mb_status mb_validate_ssd_step(const char* fn, const mb_ssd_params* params,
                               const mb_ssd_inputs* in, const void* state, const void* y) {
    RETURN_IF_FAIL(validate_ssd_common(fn, params, in));
    RETURN_IF_FAIL(check_one_token(fn, params->seqlen));
    if (in->initial_state)
        return mb_fail(MB_ERR_BAD_OPTION, "%s: initial_state must be NULL for a step (the "
                       "state is the `state` argument)", fn);
    if (params->state_bf16 && params->dtype != MB_DTYPE_BF16)
        return mb_fail(MB_ERR_DTYPE, "%s: state_bf16 = 1 needs bf16 activations (dtype is %s)",
                       fn, mb_dtype_name(params->dtype));
    REQUIRE_PTR(fn, state);
    REQUIRE_PTR(fn, y);
    return MB_OK;
}

// ----------------------------------------------------------------------------
// causal attention

/* H_kv (0 = H) must divide H. */
static mb_status check_kv_heads(const char* fn, int64_t nheads, int64_t nheads_kv) {
    if (nheads_kv < 0 || (nheads_kv > 0 && nheads % nheads_kv != 0))
        return mb_fail(MB_ERR_GROUPS, "%s: nheads_kv = %lld must be 0 (= nheads) or divide "
                       "nheads = %lld", fn, (long long)nheads_kv, (long long)nheads);
    return MB_OK;
}

static mb_status check_scale(const char* fn, double scale) {
    if (!(isfinite(scale) && scale >= 0.0))
        return mb_fail(MB_ERR_BAD_OPTION, "%s: scale = %g must be finite and >= 0 "
                       "(0 selects 1/sqrt(headdim))", fn, scale);
    return MB_OK;
}

static mb_status validate_attention_common(const char* fn, const mb_attention_params* params,
                                           const mb_attention_inputs* in) {
    REQUIRE_PTR(fn, params);
    REQUIRE_PTR(fn, in);
    REQUIRE_PTR(fn, in->q);
    REQUIRE_PTR(fn, in->k);
    REQUIRE_PTR(fn, in->v);
    RETURN_IF_FAIL(check_dtype(fn, params->dtype));
    RETURN_IF_FAIL(check_positive(fn, "batch", params->batch));
    RETURN_IF_FAIL(check_positive(fn, "nheads", params->nheads));
    RETURN_IF_FAIL(check_positive(fn, "seqlen", params->seqlen));
    RETURN_IF_FAIL(check_positive(fn, "headdim", params->headdim));
    RETURN_IF_FAIL(check_kv_heads(fn, params->nheads, params->nheads_kv));
    const int64_t bhld[4] = {params->batch, params->nheads, params->seqlen, params->headdim};
    const int64_t ll[2] = {params->seqlen, params->seqlen};
    RETURN_IF_FAIL(check_tensor_size(fn, "q (B, H, L, d)", 4, bhld,
                                     mb_dtype_size(params->dtype)));
    /* lse's param dtype can be wider than q's (bf16 q, fp32 lse, d = 1) */
    RETURN_IF_FAIL(check_tensor_size(fn, "lse (B, H, L)", 3, bhld,
                                     mb_dtype_size(mb_param_dtype(params->dtype))));
    RETURN_IF_FAIL(check_tensor_size(fn, "the scores (L, L)", 2, ll, 8));
    return check_scale(fn, params->scale);
}

mb_status mb_validate_attention_fwd(const char* fn, const mb_attention_params* params,
                                    const mb_attention_inputs* in, const void* o) {
    RETURN_IF_FAIL(validate_attention_common(fn, params, in));
    REQUIRE_PTR(fn, o);
    return MB_OK;
}

mb_status mb_validate_attention_bwd(const char* fn, const mb_attention_params* params,
                                    const mb_attention_inputs* in, const void* o,
                                    const void* lse, const void* dout,
                                    const mb_attention_grads* grads) {
    RETURN_IF_FAIL(validate_attention_common(fn, params, in));
    REQUIRE_PTR(fn, o);
    REQUIRE_PTR(fn, lse);
    REQUIRE_PTR(fn, dout);
    REQUIRE_PTR(fn, grads);
    REQUIRE_PTR(fn, grads->dq);
    REQUIRE_PTR(fn, grads->dk);
    REQUIRE_PTR(fn, grads->dv);
    return MB_OK;
}

/* Every cache length in 1..L_max (read from the host array). */
static mb_status check_cache_lengths(const char* fn, const mb_attention_decode_params* params,
                                     const int64_t* seqlens) {
    for (int64_t b = 0; b < params->batch; b++)
        if (seqlens[b] < 1 || seqlens[b] > params->max_seqlen)
            return mb_fail(MB_ERR_BAD_DIM, "%s: seqlens[%lld] = %lld must be in 1..max_seqlen "
                           "= %lld", fn, (long long)b, (long long)seqlens[b],
                           (long long)params->max_seqlen);
    return MB_OK;
}

mb_status mb_validate_attention_decode(const char* fn, const mb_attention_decode_params* params,
                                       const mb_attention_decode_inputs* in, const void* o) {
    REQUIRE_PTR(fn, params);
    REQUIRE_PTR(fn, in);
    REQUIRE_PTR(fn, in->q);
    REQUIRE_PTR(fn, in->k);
    REQUIRE_PTR(fn, in->v);
    REQUIRE_PTR(fn, in->seqlens);
    REQUIRE_PTR(fn, o);
    RETURN_IF_FAIL(check_dtype(fn, params->dtype));
    RETURN_IF_FAIL(check_positive(fn, "batch", params->batch));
    RETURN_IF_FAIL(check_positive(fn, "nheads", params->nheads));
    RETURN_IF_FAIL(check_positive(fn, "headdim", params->headdim));
    RETURN_IF_FAIL(check_positive(fn, "max_seqlen", params->max_seqlen));
    RETURN_IF_FAIL(check_kv_heads(fn, params->nheads, params->nheads_kv));
    int64_t hkv = params->nheads_kv ? params->nheads_kv : params->nheads;
    const int64_t cache[4] = {params->batch, hkv, params->max_seqlen, params->headdim};
    RETURN_IF_FAIL(check_tensor_size(fn, "k (B, H_kv, L_max, d)", 4, cache,
                                     mb_dtype_size(params->dtype)));
    /* q and o are (B, H, d), lse (B, H): with H_kv < H not bounded by the cache */
    const int64_t bhd[3] = {params->batch, params->nheads, params->headdim};
    RETURN_IF_FAIL(check_tensor_size(fn, "q (B, H, d)", 3, bhd, mb_dtype_size(params->dtype)));
    RETURN_IF_FAIL(check_tensor_size(fn, "lse (B, H)", 2, bhd,
                                     mb_dtype_size(mb_param_dtype(params->dtype))));
    RETURN_IF_FAIL(check_scale(fn, params->scale));
    return check_cache_lengths(fn, params, in->seqlens);
}
