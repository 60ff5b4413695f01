/*
 * attention.c -- exact naive CPU reference of causal attention, forward and
 * backward, computed in fp64 whatever the storage dtype.
 *
 * Dimension legend:
 *   B = batch, H = heads, L = sequence length, d = head dim
 *   i indexes queries (rows), j indexes keys (columns), c indexes d
 *   q, k, v, o, dout, dq, dk, dv: (B, H, L, d) in params->dtype
 *   lse:                          (B, H, L)    in mb_param_dtype(params->dtype)
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

mb_status mb_attention_fwd_cpu(const mb_attention_params* params, const void* q,
                               const void* k, const void* v, void* o, void* lse) {
    const char* fn = "mb_attention_fwd_cpu";
    mb_status status = mb_validate_attention_fwd(fn, params, q, k, v, o);
    if (status != MB_OK) return status;
    status = mb_require_cpu_dtype(fn, params->dtype);
    if (status != MB_OK) return status;

    const mb_dtype dtype = params->dtype;
    const int64_t L = params->seqlen, d = params->headdim;
    const int64_t heads = params->batch * params->nheads; /* B * H */
    const int64_t n = heads * L * d;                      /* elements of (B, H, L, d) */
    const double scale = attention_scale(params);

    mb_arena arena = {0};
    double* q64 = mb_arena_load(&arena, q, dtype, n);     /* (B, H, L, d) */
    double* k64 = mb_arena_load(&arena, k, dtype, n);     /* (B, H, L, d) */
    double* v64 = mb_arena_load(&arena, v, dtype, n);     /* (B, H, L, d) */
    double* o64 = mb_arena_zeros(&arena, n);              /* (B, H, L, d) */
    double* lse64 = mb_arena_zeros(&arena, heads * L);    /* (B, H, L) */
    double* S = mb_arena_zeros(&arena, L * L);            /* (L, L), reused per head */
    if (arena.failed) {
        mb_arena_free(&arena);
        return mb_fail(MB_ERR_ALLOC, "%s: cannot allocate the fp64 scratch (B*H = %lld, "
                       "L = %lld, d = %lld; the scores alone are L*L*8 bytes)", fn,
                       (long long)heads, (long long)L, (long long)d);
    }

    for (int64_t bh = 0; bh < heads; bh++) {
        const int64_t t = bh * L * d; /* offset of this head in (B, H, L, d) */
        attention_fwd_head(o64 + t, lse64 + bh * L, S, q64 + t, k64 + t, v64 + t, L, d,
                           scale);
    }

    mb_store_f64(o, dtype, o64, n);
    if (lse) mb_store_f64(lse, mb_param_dtype(dtype), lse64, heads * L);
    mb_arena_free(&arena);
    mb_clear_error();
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

/* dV = P^T dO for one (b, h), walking P by rows: row i scatters into the
 * rows j <= i of dV. */
static void grad_values(double* dv,         /* (L, d) out */
                        const double* P,    /* (L, L) */
                        const double* dout, /* (L, d) */
                        int64_t L, int64_t d) {
    for (int64_t x = 0; x < L * d; x++) dv[x] = 0.0;
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

/* dQ = scale dS K and dK = scale dS^T Q for one (b, h), walking dS by rows:
 * row i gathers dq_i from the rows j <= i of K and scatters q_i into those of dK. */
static void grad_queries_keys(double* dq,       /* (L, d) out */
                              double* dk,       /* (L, d) out */
                              const double* dS, /* (L, L) */
                              const double* q,  /* (L, d) */
                              const double* k,  /* (L, d) */
                              int64_t L, int64_t d, double scale) {
    for (int64_t x = 0; x < L * d; x++) dk[x] = 0.0;
    for (int64_t i = 0; i < L; i++) {
        double* dqi = dq + i * d; /* (d) */
        for (int64_t c = 0; c < d; c++) dqi[c] = 0.0;
        for (int64_t j = 0; j <= i; j++) {
            const double ds = dS[i * L + j];
            for (int64_t c = 0; c < d; c++) {
                // dq_ic += dS_ij k_jc     (the sum over j <= i)
                dqi[c] += ds * k[j * d + c];
                // dk_jc += dS_ij q_ic     (the sum over i >= j)
                dk[j * d + c] += ds * q[i * d + c];
            }
        }
    }
    // dq_ic = scale * sum_{j<=i} dS_ij k_jc,   dk_jc = scale * sum_{i>=j} dS_ij q_ic
    for (int64_t x = 0; x < L * d; x++) {
        dq[x] *= scale;
        dk[x] *= scale;
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

mb_status mb_attention_bwd_cpu(const mb_attention_params* params, const void* q,
                               const void* k, const void* v, const void* o, const void* lse,
                               const void* dout, void* dq, void* dk, void* dv) {
    const char* fn = "mb_attention_bwd_cpu";
    mb_status status = mb_validate_attention_bwd(fn, params, q, k, v, o, lse, dout, dq, dk, dv);
    if (status != MB_OK) return status;
    status = mb_require_cpu_dtype(fn, params->dtype);
    if (status != MB_OK) return status;

    const mb_dtype dtype = params->dtype;
    const int64_t L = params->seqlen, d = params->headdim;
    const int64_t heads = params->batch * params->nheads; /* B * H */
    const int64_t n = heads * L * d;                      /* elements of (B, H, L, d) */
    const double scale = attention_scale(params);

    mb_arena arena = {0};
    double* q64 = mb_arena_load(&arena, q, dtype, n);                           /* (B, H, L, d) */
    double* k64 = mb_arena_load(&arena, k, dtype, n);                           /* (B, H, L, d) */
    double* v64 = mb_arena_load(&arena, v, dtype, n);                           /* (B, H, L, d) */
    double* o64 = mb_arena_load(&arena, o, dtype, n);                           /* (B, H, L, d) */
    double* dout64 = mb_arena_load(&arena, dout, dtype, n);                     /* (B, H, L, d) */
    double* lse64 = mb_arena_load(&arena, lse, mb_param_dtype(dtype), heads * L); /* (B, H, L) */
    double* dq64 = mb_arena_zeros(&arena, n);                                   /* (B, H, L, d) */
    double* dk64 = mb_arena_zeros(&arena, n);                                   /* (B, H, L, d) */
    double* dv64 = mb_arena_zeros(&arena, n);                                   /* (B, H, L, d) */
    double* S = mb_arena_zeros(&arena, L * L);                      /* (L, L), reused per head */
    if (arena.failed) {
        mb_arena_free(&arena);
        return mb_fail(MB_ERR_ALLOC, "%s: cannot allocate the fp64 scratch (B*H = %lld, "
                       "L = %lld, d = %lld; the scores alone are L*L*8 bytes)", fn,
                       (long long)heads, (long long)L, (long long)d);
    }

    for (int64_t bh = 0; bh < heads; bh++) {
        const int64_t t = bh * L * d; /* offset of this head in (B, H, L, d) */
        const attention_head_grads head = {
            .q = q64 + t, .k = k64 + t, .v = v64 + t, .o = o64 + t, .dout = dout64 + t,
            .lse = lse64 + bh * L, .dq = dq64 + t, .dk = dk64 + t, .dv = dv64 + t};
        attention_bwd_head(&head, S, L, d, scale);
    }

    mb_store_f64(dq, dtype, dq64, n);
    mb_store_f64(dk, dtype, dk64, n);
    mb_store_f64(dv, dtype, dv64, n);
    mb_arena_free(&arena);
    mb_clear_error();
    return MB_OK;
}
