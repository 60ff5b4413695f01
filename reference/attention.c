/*
 * attention.c -- exact naive CPU reference of causal attention, forward,
 * backward and one-query decoding over a KV cache, all in fp64 (the API
 * layer, src/api.c, validates and converts the caller's dtype in and out;
 * outputs arrive zeroed).
 *
 * Dimension legend:
 *   B = batch, H = heads, L = sequence length, d = head dim
 *   i indexes queries (rows), j indexes keys (columns), c indexes d
 *   q, o, dout, dq:   (B, H, L, d)
 *   k, v, dk, dv:     (B, H_kv, L, d); head h reads K/V head h / (H / H_kv)
 *   lse:              (B, H, L)
 *
 * Forward, per (b, h):
 *   S_ij  = scale * q_i . k_j   for j <= i,   -inf for j > i        (L, L)
 *   m_i   = max_j S_ij          (finite: keys 0..i are never masked)
 *   P_ij  = exp(S_ij - m_i) / sum_j exp(S_ij - m_i)
 *   o_i   = sum_j P_ij v_j                                  O = P V
 *   lse_i = m_i + log sum_j exp(S_ij - m_i)
 *
 * Backward, per (b, h), with P recomputed from S and the forward's lse:
 *   P_ij  = exp(S_ij - lse_i)
 *   dV    = P^T dO
 *   dP    = dO V^T
 *   D_i   = sum_c dO_ic O_ic                                rowsum(dO o O)
 *   dS_ij = P_ij (dP_ij - D_i)
 *   dQ    = scale dS K
 *   dK    = scale dS^T Q
 *
 * Every pass over an (L, L) matrix walks it by rows, i outer and j inner,
 * and reads only its causal triangle j <= i: P V and P^T dO, dS K and dS^T Q
 * are row i gathering from (or scattering into) the rows j <= i of an (L, d)
 * operand, so the inner loops run over contiguous memory whatever L.
 *
 * Naive on purpose: the whole (L, L) score matrix is materialised in one
 * fp64 scratch block, reused by every (b, h). The peak scratch reported by
 * mb_cpu_memory_peak_bytes() is therefore L^2 * 8 bytes plus the fp64 copies
 * of the tensors: the quadratic memory of attention that the benchmark
 * measures (and that FlashAttention-style kernels avoid).
 */
#include "internal.h"
#include "reference.h"

#include <math.h>

// ----------------------------------------------------------------------------
// shared pieces

/* The softmax scale: params->scale, or 1/sqrt(d) when it is 0. */
static double attention_scale(const mb_attention_params* params) {
    if (params->scale == 0.0) return 1.0 / sqrt((double)params->headdim);
    return params->scale;
}

/* Fill the causal score matrix of one (b, h):
 *   S_ij = scale * q_i . k_j  for j <= i,  -inf for j > i. */
static void causal_scores(double* S,       /* (L, L) out */
                          const double* q, /* (L, d) */
                          const double* k, /* (L, d) */
                          int64_t L, int64_t d, double scale) {
    for (int64_t i = 0; i < L; i++) {
        for (int64_t j = 0; j < L; j++) {
            if (j > i) {
                S[i * L + j] = -INFINITY;
                continue;
            }
            // q_i . k_j
            double dot = 0.0;
            for (int64_t c = 0; c < d; c++) dot += q[i * d + c] * k[j * d + c];
            S[i * L + j] = scale * dot;
        }
    }
}

// ----------------------------------------------------------------------------
// forward

/* Turn each row of S into softmax probabilities in place and record its
 * log-sum-exp. Masked entries (-inf) become exactly 0 through exp(-inf). */
static void softmax_rows(double* S,   /* (L, L) scores in, probabilities out */
                         double* lse, /* (L) out */
                         int64_t L) {
    for (int64_t i = 0; i < L; i++) {
        double* row = S + i * L; /* (L) */
        // m_i = max_j S_ij; row[0] is never masked, so m_i is finite
        double m = row[0];
        for (int64_t j = 1; j < L; j++)
            if (row[j] > m) m = row[j];
        // sum_i = sum_j exp(S_ij - m_i), every term in (0, 1]
        double sum = 0.0;
        for (int64_t j = 0; j < L; j++) {
            row[j] = exp(row[j] - m);
            sum += row[j];
        }
        // P_ij = exp(S_ij - m_i) / sum_i
        for (int64_t j = 0; j < L; j++) row[j] /= sum;
        // lse_i = m_i + log(sum_i)
        lse[i] = m + log(sum);
    }
}

/* O = P V for one (b, h), walking P by rows over its causal triangle (P_ij = 0
 * for j > i): row i gathers o_i from the rows j <= i of V. */
static void probs_times_values(double* o,       /* (L, d) out */
                               const double* P, /* (L, L) */
                               const double* v, /* (L, d) */
                               int64_t L, int64_t d) {
    for (int64_t i = 0; i < L; i++) {
        double* oi = o + i * d; /* (d) */
        for (int64_t c = 0; c < d; c++) oi[c] = 0.0;
        for (int64_t j = 0; j <= i; j++) {
            // o_ic += P_ij v_jc      (o_ic = sum_{j<=i} P_ij v_jc)
            const double p = P[i * L + j];
            for (int64_t c = 0; c < d; c++) oi[c] += p * v[j * d + c];
        }
    }
}

/* The forward of one (b, h), using the (L, L) scratch S. */
static void attention_fwd_head(double* o,       /* (L, d) out */
                               double* lse,     /* (L) out */
                               double* S,       /* (L, L) scratch */
                               const double* q, /* (L, d) */
                               const double* k, /* (L, d) */
                               const double* v, /* (L, d) */
                               int64_t L, int64_t d, double scale) {
    causal_scores(S, q, k, L, d, scale);
    softmax_rows(S, lse, L);
    probs_times_values(o, S, v, L, d);
}

/* Offsets of head h of batch b in q-shaped (B, H, L, d) and k-shaped
 * (B, H_kv, L, d) tensors: head h reads K/V head h / (H / H_kv). */
typedef struct {
    int64_t q;  /* offset of (b, h, 0, 0) in (B, H, L, d) */
    int64_t kv; /* offset of (b, h / (H / H_kv), 0, 0) in (B, H_kv, L, d) */
    int64_t bh; /* b * H + h, the row of (B, H, L) lse */
} head_offsets;

static int64_t kv_heads(const mb_attention_params* params) {
    return params->nheads_kv ? params->nheads_kv : params->nheads;
}

static head_offsets head_at(const mb_attention_params* params, int64_t b, int64_t h) {
    const int64_t L = params->seqlen, d = params->headdim, H = params->nheads;
    const int64_t Hkv = kv_heads(params), group = H / Hkv;
    head_offsets at;
    at.bh = b * H + h;
    at.q = at.bh * L * d;
    at.kv = (b * Hkv + h / group) * L * d;
    return at;
}

mb_status mb_ref_attention_fwd(const mb_attention_params* params, const mb_attention_inputs* in,
                               void* o, void* lse, const mb_exec* ex) {
    (void)ex;
    const int64_t L = params->seqlen, d = params->headdim;
    const double* q = in->q; /* (B, H, L, d) */
    const double* k = in->k; /* (B, H_kv, L, d) */
    const double* v = in->v; /* (B, H_kv, L, d) */
    double* o64 = o;         /* (B, H, L, d) */
    mb_arena arena = {0};
    /* (B, H, L) lse, scratch when the caller wants none; (L, L) scores reused per head */
    double* lse64 = lse ? lse : mb_arena_zeros(&arena, params->batch * params->nheads * L);
    double* S = mb_arena_zeros(&arena, L * L);
    if (arena.failed) {
        mb_arena_free(&arena);
        return mb_fail(MB_ERR_ALLOC, "mb_attention_fwd: cannot allocate the (L, L) fp64 "
                       "scores (L = %lld: L*L*8 bytes)", (long long)L);
    }
    for (int64_t b = 0; b < params->batch; b++) {
        for (int64_t h = 0; h < params->nheads; h++) {
            head_offsets at = head_at(params, b, h);
            attention_fwd_head(o64 + at.q, lse64 + at.bh * L, S, q + at.q, k + at.kv,
                               v + at.kv, L, d, attention_scale(params));
        }
    }
    mb_arena_free(&arena);
    return MB_OK;
}

// ----------------------------------------------------------------------------
// backward

/* Recompute the probabilities from the scores and the forward's lse, in place,
 * on the causal triangle (the backward never reads j > i):
 *   P_ij = exp(S_ij - lse_i)   for j <= i */
static void probs_from_lse(double* S,         /* (L, L) scores in, probabilities out */
                           const double* lse, /* (L) */
                           int64_t L) {
    for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j <= i; j++) S[i * L + j] = exp(S[i * L + j] - lse[i]);
}

/* dV += P^T dO for one (b, h), walking P by rows: row i scatters into the
 * rows j <= i of dV (+=: the heads of a K/V group add into one dV). */
static void grad_values(double* dv,         /* (L, d) accumulated */
                        const double* P,    /* (L, L) */
                        const double* dout, /* (L, d) */
                        int64_t L, int64_t d) {
    for (int64_t i = 0; i < L; i++) {
        for (int64_t j = 0; j <= i; j++) {
            // dv_jc += P_ij dO_ic     (dv_jc = sum_{i>=j} P_ij dO_ic)
            const double p = P[i * L + j];
            for (int64_t c = 0; c < d; c++) dv[j * d + c] += p * dout[i * d + c];
        }
    }
}

/* Turn P into dS in place on the causal triangle:
 *   dS_ij = P_ij (dP_ij - D_i),  dP = dO V^T,  D_i = rowsum(dO o O)_i,  j <= i */
static void grad_scores(double* P,          /* (L, L) probabilities in, dS out */
                        const double* dout, /* (L, d) */
                        const double* v,    /* (L, d) */
                        const double* o,    /* (L, d) */
                        int64_t L, int64_t d) {
    for (int64_t i = 0; i < L; i++) {
        // D_i = sum_c dO_ic O_ic
        double D = 0.0;
        for (int64_t c = 0; c < d; c++) D += dout[i * d + c] * o[i * d + c];
        for (int64_t j = 0; j <= i; j++) {
            // dP_ij = dO_i . v_j
            double dP = 0.0;
            for (int64_t c = 0; c < d; c++) dP += dout[i * d + c] * v[j * d + c];
            // dS_ij = P_ij (dP_ij - D_i)
            P[i * L + j] = P[i * L + j] * (dP - D);
        }
    }
}

/* dQ = scale dS K and dK += scale dS^T Q for one (b, h), walking dS by rows:
 * row i gathers dq_i from the rows j <= i of K and scatters q_i into those of
 * dK (+=: the heads of a K/V group add into one dK). */
static void grad_queries_keys(double* dq,       /* (L, d) out */
                              double* dk,       /* (L, d) accumulated */
                              const double* dS, /* (L, L) */
                              const double* q,  /* (L, d) */
                              const double* k,  /* (L, d) */
                              int64_t L, int64_t d, double scale) {
    for (int64_t i = 0; i < L; i++) {
        double* dqi = dq + i * d; /* (d) */
        for (int64_t c = 0; c < d; c++) dqi[c] = 0.0;
        for (int64_t j = 0; j <= i; j++) {
            const double ds = scale * dS[i * L + j];
            for (int64_t c = 0; c < d; c++) {
                // dq_ic += scale dS_ij k_jc     (the sum over j <= i)
                dqi[c] += ds * k[j * d + c];
                // dk_jc += scale dS_ij q_ic     (the sum over i >= j)
                dk[j * d + c] += ds * q[i * d + c];
            }
        }
    }
}

/* The inputs and outputs of one (b, h) of the backward, all fp64. */
typedef struct {
    const double *q, *k, *v, *o, *dout; /* (L, d) each */
    const double* lse;                  /* (L) */
    double *dq, *dk, *dv;               /* (L, d) each, out */
} attention_head_grads;

/* The backward of one (b, h), using the (L, L) scratch S. */
static void attention_bwd_head(const attention_head_grads* t,
                               double* S, /* (L, L) scratch */
                               int64_t L, int64_t d, double scale) {
    causal_scores(S, t->q, t->k, L, d, scale);
    probs_from_lse(S, t->lse, L);
    grad_values(t->dv, S, t->dout, L, d);
    grad_scores(S, t->dout, t->v, t->o, L, d);
    grad_queries_keys(t->dq, t->dk, S, t->q, t->k, L, d, scale);
}

mb_status mb_ref_attention_bwd(const mb_attention_params* params, const mb_attention_inputs* in,
                               const void* o, const void* lse, const void* dout,
                               const mb_attention_grads* grads, const mb_exec* ex) {
    (void)ex;
    const int64_t L = params->seqlen, d = params->headdim;
    mb_arena arena = {0};
    double* S = mb_arena_zeros(&arena, L * L); /* (L, L), reused per head */
    if (arena.failed) {
        mb_arena_free(&arena);
        return mb_fail(MB_ERR_ALLOC, "mb_attention_bwd: cannot allocate the (L, L) fp64 "
                       "scores (L = %lld: L*L*8 bytes)", (long long)L);
    }
    for (int64_t b = 0; b < params->batch; b++) {
        for (int64_t h = 0; h < params->nheads; h++) {
            head_offsets at = head_at(params, b, h);
            const attention_head_grads head = {
                .q = (const double*)in->q + at.q, .k = (const double*)in->k + at.kv,
                .v = (const double*)in->v + at.kv, .o = (const double*)o + at.q,
                .dout = (const double*)dout + at.q, .lse = (const double*)lse + at.bh * L,
                .dq = (double*)grads->dq + at.q, .dk = (double*)grads->dk + at.kv,
                .dv = (double*)grads->dv + at.kv};
            attention_bwd_head(&head, S, L, d, attention_scale(params));
        }
    }
    mb_arena_free(&arena);
    return MB_OK;
}

// ----------------------------------------------------------------------------
// decoding: one query over a KV cache

/* o (d), *lse of one query q (d) over the first `len` rows of k, v (L_max, d). */
static void decode_head(double* o, double* lse, double* s, /* (len) scratch */
                        const double* q, const double* k, const double* v, int64_t len,
                        int64_t d, double scale) {
    double m = -INFINITY, sum = 0.0;
    for (int64_t j = 0; j < len; j++) {
        // s_j = scale * q . k_j
        double dot = 0.0;
        for (int64_t c = 0; c < d; c++) dot += q[c] * k[j * d + c];
        s[j] = scale * dot;
        if (s[j] > m) m = s[j];
    }
    for (int64_t c = 0; c < d; c++) o[c] = 0.0;
    for (int64_t j = 0; j < len; j++) {
        // p_j = exp(s_j - m);  o = sum_j p_j v_j / sum_j p_j
        double p = exp(s[j] - m);
        sum += p;
        for (int64_t c = 0; c < d; c++) o[c] += p * v[j * d + c];
    }
    for (int64_t c = 0; c < d; c++) o[c] /= sum;
    *lse = m + log(sum);
}

mb_status mb_ref_attention_decode(const mb_attention_decode_params* params,
                                  const mb_attention_decode_inputs* in, void* o, void* lse,
                                  const mb_exec* ex) {
    (void)ex;
    const int64_t H = params->nheads, d = params->headdim, Lmax = params->max_seqlen;
    const int64_t Hkv = params->nheads_kv ? params->nheads_kv : H, group = H / Hkv;
    const double scale = params->scale == 0.0 ? 1.0 / sqrt((double)d) : params->scale;
    mb_arena arena = {0};
    double* s = mb_arena_zeros(&arena, Lmax); /* (L_max) scores of one query */
    if (arena.failed) {
        mb_arena_free(&arena);
        return mb_fail(MB_ERR_ALLOC, "mb_attention_decode: out of host memory");
    }
    for (int64_t b = 0; b < params->batch; b++) {
        for (int64_t h = 0; h < H; h++) {
            const int64_t kv = (b * Hkv + h / group) * Lmax * d; /* (b, h_kv, 0, 0) */
            double unused, *lse_bh = lse ? (double*)lse + b * H + h : &unused;
            decode_head((double*)o + (b * H + h) * d, lse_bh, s,
                        (const double*)in->q + (b * H + h) * d, (const double*)in->k + kv,
                        (const double*)in->v + kv, in->seqlens[b], d, scale);
        }
    }
    mb_arena_free(&arena);
    return MB_OK;
}
