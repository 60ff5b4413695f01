/*
 * ssd.c -- exact CPU reference of Mamba-2's SSD (state space duality),
 * forward, backward and one-token step, all in fp64 (the API layer,
 * src/api.c, validates and converts the caller's dtype in and out; outputs
 * arrive zeroed).
 *
 * Dimension legend:
 *   B = batch, L = sequence length, H = heads, P = head dim, N = state size,
 *   G = groups of B/C (head h reads group g = h / (H / G)),
 *   Q = tokens in one segment (a chunk of chunk_size tokens, the last one
 *       possibly shorter, or the whole sequence for the quadratic form)
 *   x, z, y, dy, dx, dz:    (B, L, H, P)
 *   dt, ddt:                (B, L, H)
 *   B, C, dB, dC:           (B, L, G, N)
 *   A, D, dt_bias (+grads): (H)
 *   initial/final states:   (B, H, P, N)
 *
 * The model, per batch b and head h, with a (P, N) state h_t:
 *   dt'_t = softplus(dt_t + dt_bias_h)   (dt_t + dt_bias_h without softplus)
 *   h_t   = exp(dt'_t A_h) h_{t-1} + dt'_t x_t B_t^T     h_{-1} = initial_state or 0
 *   y_t   = h_t C_t + D_h x_t,   then   y_t *= z_t sigmoid(z_t)   when z is given
 *   final_state = h_{L-1}
 *
 * The forward runs one of three formulations (params->form), equal up to
 * rounding:
 *   MB_SSD_RECURRENT  the recurrence above, one token at a time.
 *   MB_SSD_CHUNKED    the chunked algorithm of the Mamba-2 paper (ssd_minimal):
 *                     per chunk, (1) the quadratic diagonal block, (2) the
 *                     state the chunk contributes at its end, (3) the state
 *                     passed across chunk boundaries, (4) the incoming state's
 *                     contribution to the chunk's outputs.
 *   MB_SSD_QUADRATIC  the dual "masked attention" form over the whole sequence:
 *                     y = (M o C B^T) (dt' x) with the (L, L) 1-semiseparable
 *                     mask M[t,s] = exp(sum_{s<r<=t} dt'_r A_h), 0 above the
 *                     diagonal, plus the initial state's term
 *                     C_t . exp(sum_{r<=t} dt'_r A_h) h_{-1}.
 * Every decay exp(sum dt' A) is the exp of an exact sum over the tokens of its
 * segment, never a difference of cumulative sums: a state that decays to
 * nothing underflows to exactly 0 instead of producing inf - inf = NaN.
 *
 * The backward ignores params->form: the three forms are one function with one
 * gradient, and the backward differentiates the sequential recurrence. It
 * walks one head (b, h) at a time, all P channels together, with checkpointed
 * recomputation over segments of seg = min(chunk_size, L) tokens (the chunks
 * of the chunked form, whatever params->form; see ssd_bwd_work):
 *   1. a forward sweep over t keeps only the (P, N) state entering each
 *      segment (the checkpoints, ceil(L / seg) of them);
 *   2. the segments are walked from the last to the first: recompute the
 *      segment's (seg, P, N) states from its checkpoint, then run the adjoint
 *      for t descending, starting from dh_{L-1} = dfinal_state (or 0) and
 *      ending with dinitial_state = dh_{-1}.
 * Per token, the inner loops run over p and n: the rows B_t, C_t, dB_t, dC_t
 * are read once per head, x_t, dy_t, dx_t are contiguous over p, and the
 * segment's states stay in cache whatever L. The recomputation costs about one
 * more forward sweep (2 L state steps per head instead of L).
 * Scratch: (the API layer's fp64 copies of the tensors and gradients, plus)
 * (ceil(L/seg) + seg + 1) P N doubles reused by every head -- never O(L P N).
 */
#include "internal.h"
#include "reference.h"
#include "scalar_math.h"

#include <math.h>
#include <string.h>

// ----------------------------------------------------------------------------
// shapes and indexing

typedef struct {
    int64_t B, L, H, P, N, G;
    int64_t heads_per_group; /* H / G */
    int softplus;            /* dt' = softplus(dt + dt_bias) when 1 */
} ssd_shape;

static ssd_shape shape_of(const mb_ssd_params* params) {
    ssd_shape s;
    s.B = params->batch;
    s.L = params->seqlen;
    s.H = params->nheads;
    s.P = params->headdim;
    s.N = params->dstate;
    s.G = params->ngroups;
    s.heads_per_group = s.H / s.G;
    s.softplus = params->dt_softplus;
    return s;
}

/* Element (b, t, h, p) of a (B, L, H, P) tensor. */
static int64_t at_blhp(const ssd_shape* s, int64_t b, int64_t t, int64_t h, int64_t p) {
    return ((b * s->L + t) * s->H + h) * s->P + p;
}

/* Element (b, t, h) of a (B, L, H) tensor. */
static int64_t at_blh(const ssd_shape* s, int64_t b, int64_t t, int64_t h) {
    return (b * s->L + t) * s->H + h;
}

/* Start of the row (b, t, g, :) of a (B, L, G, N) tensor. */
static int64_t at_blg(const ssd_shape* s, int64_t b, int64_t t, int64_t g) {
    return ((b * s->L + t) * s->G + g) * s->N;
}

/* Start of the row (b, h, p, :) of a (B, H, P, N) tensor. */
static int64_t at_bhp(const ssd_shape* s, int64_t b, int64_t h, int64_t p) {
    return ((b * s->H + h) * s->P + p) * s->N;
}

/* The B/C group read by head h. */
static int64_t group_of(const ssd_shape* s, int64_t h) { return h / s->heads_per_group; }

static int64_t count_blhp(const ssd_shape* s) { return s->B * s->L * s->H * s->P; }
static int64_t count_blh(const ssd_shape* s) { return s->B * s->L * s->H; }
static int64_t count_bhpn(const ssd_shape* s) { return s->B * s->H * s->P * s->N; }

// ----------------------------------------------------------------------------
// scalar functions

/* sum_n a[n] b[n] */
static double dot(const double* a, /* (N) */
                  const double* b, /* (N) */
                  int64_t N) {
    double acc = 0.0;
    for (int64_t n = 0; n < N; n++) acc += a[n] * b[n];
    return acc;
}

// ----------------------------------------------------------------------------
// inputs in fp64

typedef struct {
    const double* x;       /* (B, L, H, P) */
    const double* dt;      /* (B, L, H) dt as given */
    const double* A;       /* (H) */
    const double* B;       /* (B, L, G, N) */
    const double* C;       /* (B, L, G, N) */
    const double* D;       /* (H) or NULL */
    const double* z;       /* (B, L, H, P) or NULL */
    const double* dt_bias; /* (H) or NULL */
    const double* h0;      /* (B, H, P, N) initial_state, or NULL (zeros) */
    double* dtp;           /* (B, L, H) dt', filled by compute_dt_eff() */
} ssd_tensors;

/* The fp64 inputs of `in` (absent optional inputs stay NULL), and dt' allocated
 * in the arena (the caller checks arena->failed). */
static void view_inputs(mb_arena* arena, const mb_ssd_inputs* in, const ssd_shape* s,
                        ssd_tensors* T) {
    T->x = in->x;
    T->dt = in->dt;
    T->A = in->A;
    T->B = in->B;
    T->C = in->C;
    T->D = in->D;
    T->z = in->z;
    T->dt_bias = in->dt_bias;
    T->h0 = in->initial_state;
    T->dtp = mb_arena_zeros(arena, count_blh(s));
}

/* dt'[b,t,h] = softplus(dt + dt_bias_h), or dt + dt_bias_h without softplus. */
static void compute_dt_eff(const ssd_shape* s, ssd_tensors* T) {
    for (int64_t i = 0; i < count_blh(s); i++) {
        int64_t h = i % s->H;
        double v = T->dt[i] + (T->dt_bias ? T->dt_bias[h] : 0.0);
        T->dtp[i] = s->softplus ? softplus(v) : v;
    }
}

/* state[p, n] = h_{-1}[b, h, p, n]: the initial state, or 0. */
static void init_state(const ssd_shape* s, const ssd_tensors* T, int64_t b, int64_t h,
                       double* state /* (P, N) out */) {
    int64_t count = s->P * s->N;
    if (T->h0)
        memcpy(state, T->h0 + at_bhp(s, b, h, 0), (size_t)count * sizeof(double));
    else
        memset(state, 0, (size_t)count * sizeof(double));
}

// ----------------------------------------------------------------------------
// forward: the epilogue shared by the three forms

/* y_t[p] = (y_t[p] + D_h x_t[p]) * z_t[p] sigmoid(z_t[p]), D and z optional;
 * y comes in holding the state term h_t C_t. */
static void apply_skip_and_gate(const ssd_shape* s, const ssd_tensors* T,
                                double* y /* (B, L, H, P) in/out */) {
    for (int64_t i = 0; i < count_blhp(s); i++) {
        int64_t h = (i / s->P) % s->H;
        double v = y[i];
        if (T->D) v += T->D[h] * T->x[i];
        if (T->z) v *= silu(T->z[i]);
        y[i] = v;
    }
}

// ----------------------------------------------------------------------------
// forward: the sequential recurrence

/* One (b, h) of the recurrence: y[b, :, h, :] = h_t C_t, state = h_{L-1}. */
static void recurrent_head(const ssd_shape* s, const ssd_tensors* T, int64_t b, int64_t h,
                           double* y,     /* (B, L, H, P) out: the (b, h) slice */
                           double* state  /* (P, N) out */) {
    int64_t N = s->N, g = group_of(s, h);
    init_state(s, T, b, h, state);
    for (int64_t t = 0; t < s->L; t++) {
        const double* Bt = T->B + at_blg(s, b, t, g); /* (N) */
        const double* Ct = T->C + at_blg(s, b, t, g); /* (N) */
        double dtv = T->dtp[at_blh(s, b, t, h)];
        // decay_t = exp(dt'_t A_h)
        double decay = exp(dtv * T->A[h]);
        for (int64_t p = 0; p < s->P; p++) {
            double* hp = state + p * N; /* (N) */
            double xv = T->x[at_blhp(s, b, t, h, p)];
            // h_t[p, n] = decay_t h_{t-1}[p, n] + dt'_t x_t[p] B_t[n]
            for (int64_t n = 0; n < N; n++) hp[n] = decay * hp[n] + dtv * xv * Bt[n];
            // y_t[p] = sum_n h_t[p, n] C_t[n]
            y[at_blhp(s, b, t, h, p)] = dot(hp, Ct, N);
        }
    }
}

// ----------------------------------------------------------------------------
// forward: decay masks of a segment (shared by the chunked and quadratic forms)

/* dtA[i] = dt'_{t0+i} A_h for the Q tokens of a segment starting at t0. */
static void segment_dtA(const ssd_shape* s, const ssd_tensors* T, int64_t b, int64_t h,
                        int64_t t0, int64_t Q, double* dtA /* (Q) out */) {
    for (int64_t i = 0; i < Q; i++) dtA[i] = T->dtp[at_blh(s, b, t0 + i, h)] * T->A[h];
}

/* The 1-semiseparable decay mask of a segment and its decay from the start:
 *   mask[i, j]    = exp(sum_{j<r<=i} dtA[r])  for j <= i,  0 for j > i
 *   from_start[i] = exp(sum_{0<=r<=i} dtA[r])
 * Each sum is accumulated exactly, walking j down from i. */
static void build_decay_mask(const double* dtA, /* (Q) */
                             int64_t Q,
                             double* mask,       /* (Q, Q) out */
                             double* from_start  /* (Q) out */) {
    for (int64_t i = 0; i < Q; i++) {
        double* row = mask + i * Q; /* (Q) */
        // seg = sum_{j<r<=i} dtA[r], the empty sum for j = i
        double seg = 0.0;
        for (int64_t j = i; j >= 0; j--) {
            row[j] = exp(seg);
            seg += dtA[j];
        }
        // now seg = sum_{0<=r<=i} dtA[r]
        from_start[i] = exp(seg);
        for (int64_t j = i + 1; j < Q; j++) row[j] = 0.0;
    }
}

// ----------------------------------------------------------------------------
// forward: the chunked algorithm (Mamba-2 paper, ssd_minimal)

/* Scratch of the chunked and quadratic forms, sized for the longest segment. */
typedef struct {
    double* dtA;         /* (Q) */
    double* mask;        /* (Q, Q) */
    double* from_start;  /* (Q) */
    double* chunk_state; /* (P, N) */
} ssd_work;

/* (1) The diagonal block of chunk [t0, t0+Q):
 *   y[t0+i, p] += sum_{j<=i} mask[i, j] (C_i . B_j) dt'_j x_j[p] */
static void chunk_diagonal_block(const ssd_shape* s, const ssd_tensors* T, int64_t b, int64_t h,
                                 int64_t t0, int64_t Q,
                                 const double* mask, /* (Q, Q) */
                                 double* y           /* (B, L, H, P) in/out */) {
    int64_t g = group_of(s, h);
    for (int64_t i = 0; i < Q; i++) {
        const double* Ci = T->C + at_blg(s, b, t0 + i, g); /* (N) */
        for (int64_t j = 0; j <= i; j++) {
            const double* Bj = T->B + at_blg(s, b, t0 + j, g); /* (N) */
            // w = mask[i, j] (C_i . B_j) dt'_j
            double w = mask[i * Q + j] * dot(Ci, Bj, s->N) * T->dtp[at_blh(s, b, t0 + j, h)];
            for (int64_t p = 0; p < s->P; p++)
                y[at_blhp(s, b, t0 + i, h, p)] += w * T->x[at_blhp(s, b, t0 + j, h, p)];
        }
    }
}

/* (2) The state chunk [t0, t0+Q) contributes at its last token, from its own
 * inputs only:  S[p, n] = sum_j mask[Q-1, j] dt'_j x_j[p] B_j[n] */
static void chunk_state(const ssd_shape* s, const ssd_tensors* T, int64_t b, int64_t h,
                        int64_t t0, int64_t Q,
                        const double* mask, /* (Q, Q) */
                        double* S           /* (P, N) out */) {
    int64_t N = s->N, g = group_of(s, h);
    memset(S, 0, (size_t)(s->P * N) * sizeof(double));
    for (int64_t j = 0; j < Q; j++) {
        const double* Bj = T->B + at_blg(s, b, t0 + j, g); /* (N) */
        // w = mask[Q-1, j] dt'_j: decay from token j to the chunk's end
        double w = mask[(Q - 1) * Q + j] * T->dtp[at_blh(s, b, t0 + j, h)];
        for (int64_t p = 0; p < s->P; p++) {
            double wx = w * T->x[at_blhp(s, b, t0 + j, h, p)];
            for (int64_t n = 0; n < N; n++) S[p * N + n] += wx * Bj[n];
        }
    }
}

/* (3) State passing across the chunk boundary:
 *   state_out[p, n] = from_start[Q-1] state_in[p, n] + S[p, n] */
static void chunk_pass_state(const ssd_shape* s, int64_t Q,
                             const double* from_start, /* (Q) */
                             const double* S,          /* (P, N) */
                             double* state             /* (P, N) in/out */) {
    double decay = from_start[Q - 1];
    for (int64_t k = 0; k < s->P * s->N; k++) state[k] = decay * state[k] + S[k];
}

/* (4) The incoming state's contribution to the chunk's outputs:
 *   y[t0+i, p] += from_start[i] sum_n C_i[n] state_in[p, n] */
static void chunk_state_to_output(const ssd_shape* s, const ssd_tensors* T, int64_t b, int64_t h,
                                  int64_t t0, int64_t Q,
                                  const double* from_start, /* (Q) */
                                  const double* state,      /* (P, N) */
                                  double* y                 /* (B, L, H, P) in/out */) {
    int64_t g = group_of(s, h);
    for (int64_t i = 0; i < Q; i++) {
        const double* Ci = T->C + at_blg(s, b, t0 + i, g); /* (N) */
        for (int64_t p = 0; p < s->P; p++)
            y[at_blhp(s, b, t0 + i, h, p)] += from_start[i] * dot(Ci, state + p * s->N, s->N);
    }
}

/* One (b, h) of the chunked form: chunks of `chunk` tokens, the last one
 * possibly shorter. y must come in zeroed; state ends as h_{L-1}. */
static void chunked_head(const ssd_shape* s, const ssd_tensors* T, int64_t chunk, int64_t b,
                         int64_t h, const ssd_work* w,
                         double* y,     /* (B, L, H, P) in/out: the (b, h) slice */
                         double* state  /* (P, N) out */) {
    init_state(s, T, b, h, state);
    for (int64_t t0 = 0; t0 < s->L; t0 += chunk) {
        int64_t Q = s->L - t0 < chunk ? s->L - t0 : chunk;
        segment_dtA(s, T, b, h, t0, Q, w->dtA);
        build_decay_mask(w->dtA, Q, w->mask, w->from_start);
        chunk_diagonal_block(s, T, b, h, t0, Q, w->mask, y);
        // the state entering this chunk is used before it is passed on
        chunk_state_to_output(s, T, b, h, t0, Q, w->from_start, state, y);
        chunk_state(s, T, b, h, t0, Q, w->mask, w->chunk_state);
        chunk_pass_state(s, Q, w->from_start, w->chunk_state, state);
    }
}

// ----------------------------------------------------------------------------
// forward: the quadratic (masked attention) form

/* h_{L-1}[p, n] = from_start[L-1] h_{-1}[p, n] + sum_s M[L-1, s] dt'_s x_s[p] B_s[n],
 * read from the last row of the mask before it becomes the score matrix. */
static void quadratic_final_state(const ssd_shape* s, const ssd_tensors* T, int64_t b, int64_t h,
                                  const double* M,          /* (L, L) */
                                  const double* from_start, /* (L) */
                                  double* state             /* (P, N) out */) {
    int64_t L = s->L, N = s->N, g = group_of(s, h);
    init_state(s, T, b, h, state);
    for (int64_t k = 0; k < s->P * N; k++) state[k] *= from_start[L - 1];
    for (int64_t t = 0; t < L; t++) {
        const double* Bt = T->B + at_blg(s, b, t, g); /* (N) */
        double w = M[(L - 1) * L + t] * T->dtp[at_blh(s, b, t, h)];
        for (int64_t p = 0; p < s->P; p++) {
            double wx = w * T->x[at_blhp(s, b, t, h, p)];
            for (int64_t n = 0; n < N; n++) state[p * N + n] += wx * Bt[n];
        }
    }
}

/* In place: W = M o (C B^T), the causal "attention" matrix of one (b, h):
 *   W[t, s] = M[t, s] (C_t . B_s)   (0 above the diagonal, where M is 0) */
static void quadratic_scores(const ssd_shape* s, const ssd_tensors* T, int64_t b, int64_t h,
                             double* M /* (L, L) in: mask, out: W */) {
    int64_t L = s->L, g = group_of(s, h);
    for (int64_t t = 0; t < L; t++) {
        const double* Ct = T->C + at_blg(s, b, t, g); /* (N) */
        for (int64_t u = 0; u <= t; u++)
            M[t * L + u] *= dot(Ct, T->B + at_blg(s, b, u, g), s->N);
    }
}

/* y_t[p] = sum_{s<=t} W[t, s] dt'_s x_s[p] + from_start[t] sum_n C_t[n] h_{-1}[p, n] */
static void quadratic_output(const ssd_shape* s, const ssd_tensors* T, int64_t b, int64_t h,
                             const double* W,          /* (L, L) */
                             const double* from_start, /* (L) */
                             double* y                 /* (B, L, H, P) out: the (b, h) slice */) {
    int64_t L = s->L, g = group_of(s, h);
    const double* h0 = T->h0 ? T->h0 + at_bhp(s, b, h, 0) : NULL; /* (P, N) */
    for (int64_t t = 0; t < L; t++) {
        const double* Ct = T->C + at_blg(s, b, t, g); /* (N) */
        for (int64_t p = 0; p < s->P; p++) {
            double acc = h0 ? from_start[t] * dot(Ct, h0 + p * s->N, s->N) : 0.0;
            for (int64_t u = 0; u <= t; u++)
                acc += W[t * L + u] * T->dtp[at_blh(s, b, u, h)] * T->x[at_blhp(s, b, u, h, p)];
            y[at_blhp(s, b, t, h, p)] = acc;
        }
    }
}

/* One (b, h) of the quadratic form: the whole sequence is one segment. */
static void quadratic_head(const ssd_shape* s, const ssd_tensors* T, int64_t b, int64_t h,
                           const ssd_work* w,
                           double* y,     /* (B, L, H, P) out: the (b, h) slice */
                           double* state  /* (P, N) out */) {
    segment_dtA(s, T, b, h, 0, s->L, w->dtA);
    build_decay_mask(w->dtA, s->L, w->mask, w->from_start);
    quadratic_final_state(s, T, b, h, w->mask, w->from_start, state);
    quadratic_scores(s, T, b, h, w->mask);
    quadratic_output(s, T, b, h, w->mask, w->from_start, y);
}

// ----------------------------------------------------------------------------
// forward: entry point

/* Tokens per segment of a form: its scratch is (Q, Q) + O(Q + P N). */
static int64_t segment_length(const mb_ssd_params* params) {
    if (params->form == MB_SSD_QUADRATIC) return params->seqlen;
    if (params->form == MB_SSD_CHUNKED)
        return params->chunk_size < params->seqlen ? params->chunk_size : params->seqlen;
    return 0; /* the recurrence needs no segment scratch */
}

/* Run the selected form over every (b, h): y = h_t C_t, fs = h_{L-1}. */
static void run_forward_form(const mb_ssd_params* params, const ssd_shape* s,
                             const ssd_tensors* T, const ssd_work* w,
                             double* y,  /* (B, L, H, P) out, zeroed */
                             double* fs  /* (B, H, P, N) out */) {
    for (int64_t b = 0; b < s->B; b++) {
        for (int64_t h = 0; h < s->H; h++) {
            double* state = fs + at_bhp(s, b, h, 0); /* (P, N) */
            switch (params->form) {
            case MB_SSD_RECURRENT: recurrent_head(s, T, b, h, y, state); break;
            case MB_SSD_QUADRATIC: quadratic_head(s, T, b, h, w, y, state); break;
            case MB_SSD_CHUNKED:
                chunked_head(s, T, params->chunk_size, b, h, w, y, state);
                break;
            }
        }
    }
}

mb_status mb_ref_ssd_fwd(const mb_ssd_params* params, const mb_ssd_inputs* in, void* y,
                         void* final_state, const mb_exec* ex) {
    (void)ex;
    ssd_shape s = shape_of(params);
    int64_t Q = segment_length(params);
    mb_arena arena = {0};
    ssd_tensors T;
    view_inputs(&arena, in, &s, &T);
    ssd_work w;
    w.dtA = mb_arena_zeros(&arena, Q);
    w.mask = mb_arena_zeros(&arena, Q * Q);
    w.from_start = mb_arena_zeros(&arena, Q);
    w.chunk_state = mb_arena_zeros(&arena, s.P * s.N);
    /* (B, H, P, N) h_{L-1}; scratch when the caller wants no final state */
    double* fs64 = final_state ? final_state : mb_arena_zeros(&arena, count_bhpn(&s));
    if (arena.failed) {
        mb_arena_free(&arena);
        return mb_fail(MB_ERR_ALLOC, "mb_ssd_fwd: out of host memory for the fp64 scratch "
                       "(the (Q, Q) block: Q = %lld)", (long long)Q);
    }
    compute_dt_eff(&s, &T);
    run_forward_form(params, &s, &T, &w, y, fs64);
    apply_skip_and_gate(&s, &T, y);
    mb_arena_free(&arena);
    return MB_OK;
}

/* One token (L = 1): the recurrence of one step from `state`, which it overwrites. */
mb_status mb_ref_ssd_step(const mb_ssd_params* params, const mb_ssd_inputs* in, void* state,
                          void* y, const mb_exec* ex) {
    (void)ex;
    ssd_shape s = shape_of(params);
    mb_arena arena = {0};
    ssd_tensors T;
    view_inputs(&arena, in, &s, &T);
    T.h0 = state;                                     /* (B, H, P, N) h_{t-1} */
    double* next = mb_arena_zeros(&arena, s.P * s.N); /* (P, N) h_t of one head */
    if (arena.failed) {
        mb_arena_free(&arena);
        return mb_fail(MB_ERR_ALLOC, "mb_ssd_step: out of host memory");
    }
    compute_dt_eff(&s, &T);
    for (int64_t b = 0; b < s.B; b++) {
        for (int64_t h = 0; h < s.H; h++) {
            recurrent_head(&s, &T, b, h, y, next);
            memcpy((double*)state + at_bhp(&s, b, h, 0), next,
                   (size_t)(s.P * s.N) * sizeof(double));
        }
    }
    apply_skip_and_gate(&s, &T, y);
    mb_arena_free(&arena);
    return MB_OK;
}

// ----------------------------------------------------------------------------
// backward: checkpointed recomputation of the states of one head (b, h)

/* Scratch of the backward, reused by every head.
 * Its segments are the forward's chunks: seg = min(chunk_size, L) tokens, the
 * last segment possibly shorter, whatever params->form. chunk_size is then the
 * one knob of the memory/recomputation trade-off of both directions (the
 * chunked forward holds (Q, Q), the backward (ceil(L/Q) + Q + 1) (P, N)); at the
 * usual Q = 64..256 the segment's states stay in L2 and the checkpoints are a
 * small fraction of the tensors. A tiny Q (1) costs a checkpoint per token, a
 * Q >= L one segment of L states: the caller's choice, as the chunked
 * forward's (Q, Q) block is. */
typedef struct {
    int64_t seg;         /* tokens per segment: min(chunk_size, L) */
    int64_t nseg;        /* segments: ceil(L / seg) */
    double* checkpoints; /* (nseg, P, N): [k] = h_{k seg - 1}, the state entering
                            segment k, for k >= 1 ([0] unused: see segment_entry) */
    double* states;      /* (seg, P, N): [i] = h_{t0 + i} of the segment being walked */
    double* dh;          /* (P, N): dL/dh_t of the head */
} ssd_bwd_work;

/* One step of the recurrence for every channel of head (b, h):
 *   h_t[p, n] = exp(dt'_t A_h) h_{t-1}[p, n] + dt'_t x_t[p] B_t[n]
 * prev = NULL stands for h_{t-1} = 0 (no initial state). */
static void advance_state(const ssd_shape* s, const ssd_tensors* T, int64_t b, int64_t h,
                          int64_t t,
                          const double* prev, /* (P, N) h_{t-1}, or NULL */
                          double* next        /* (P, N) out: h_t */) {
    int64_t N = s->N;
    const double* Bt = T->B + at_blg(s, b, t, group_of(s, h)); /* (N) */
    const double* xt = T->x + at_blhp(s, b, t, h, 0);          /* (P) */
    double dtv = T->dtp[at_blh(s, b, t, h)];
    // a_t = exp(dt'_t A_h)
    double decay = exp(dtv * T->A[h]);
    for (int64_t p = 0; p < s->P; p++) {
        for (int64_t n = 0; n < N; n++) {
            // h_t[p, n] = a_t h_{t-1}[p, n] + dt'_t x_t[p] B_t[n]
            double carried = prev ? decay * prev[p * N + n] : 0.0;
            next[p * N + n] = carried + dtv * xt[p] * Bt[n];
        }
    }
}

/* The state entering segment k of head (b, h), h_{k seg - 1}: a checkpoint for
 * k >= 1; for k = 0 the initial state, or NULL when there is none (zeros). */
static const double* segment_entry(const ssd_shape* s, const ssd_tensors* T,
                                   const ssd_bwd_work* w, int64_t b, int64_t h,
                                   int64_t k) /* returns (P, N) or NULL */ {
    if (k > 0) return w->checkpoints + k * s->P * s->N;
    return T->h0 ? T->h0 + at_bhp(s, b, h, 0) : NULL;
}

/* The Q states of segment k of head (b, h), t0 = k seg, from the state entering it:
 *   states[i] = h_{t0 + i},  i = 0 .. Q-1 */
static void recompute_segment(const ssd_shape* s, const ssd_tensors* T, const ssd_bwd_work* w,
                              int64_t b, int64_t h, int64_t k, int64_t Q) {
    int64_t PN = s->P * s->N, t0 = k * w->seg;
    const double* prev = segment_entry(s, T, w, b, h, k); /* (P, N) or NULL */
    for (int64_t i = 0; i < Q; i++) {
        double* next = w->states + i * PN; /* (P, N) */
        advance_state(s, T, b, h, t0 + i, prev, next);
        prev = next;
    }
}

/* The forward sweep of head (b, h) keeping only the segment boundaries:
 *   checkpoints[k] = h_{k seg - 1} = the last state of segment k-1,  1 <= k < nseg
 * Every segment but the last is full (seg tokens). */
static void fill_checkpoints(const ssd_shape* s, const ssd_tensors* T, const ssd_bwd_work* w,
                             int64_t b, int64_t h) {
    int64_t PN = s->P * s->N;
    for (int64_t k = 1; k < w->nseg; k++) {
        recompute_segment(s, T, w, b, h, k - 1, w->seg);
        memcpy(w->checkpoints + k * PN, w->states + (w->seg - 1) * PN,
               (size_t)PN * sizeof(double));
    }
}

// ----------------------------------------------------------------------------
// backward: the adjoint of the recurrence, one head (b, h) at a time

/* Gradient accumulators in fp64, all zeroed at allocation. */
typedef struct {
    double* dx;       /* (B, L, H, P) */
    double* ddt;      /* (B, L, H) w.r.t. dt' first, w.r.t. dt after finish_dt_grad() */
    double* dA;       /* (H) */
    double* dB;       /* (B, L, G, N) */
    double* dC;       /* (B, L, G, N) */
    double* dD;       /* (H) */
    double* dz;       /* (B, L, H, P) */
    double* ddt_bias; /* (H) */
    double* dh0;      /* (B, H, P, N) */
} ssd_grads64;

/* Adjoint of the outputs of token t of head (b, h), for every channel p:
 *   s_t[p] = sum_n h_t[p, n] C_t[n] + D_h x_t[p],   y_t[p] = s_t[p] silu(z_t[p])
 * accumulates dz, dD, dx (skip part) and dC, and adds ds_t[p] C_t into dh[p, :]. */
static void bwd_output_step(const ssd_shape* s, const ssd_tensors* T,
                            const double* dy, /* (B, L, H, P) */
                            int64_t b, int64_t t, int64_t h,
                            const double* ht, /* (P, N) h_t of this head */
                            double* dh,       /* (P, N) in/out: dL/dh_t */
                            ssd_grads64* G) {
    int64_t N = s->N, i0 = at_blhp(s, b, t, h, 0);
    int64_t row = at_blg(s, b, t, group_of(s, h));
    const double* Ct = T->C + row; /* (N) */
    double* dCt = G->dC + row;     /* (N) */
    double Dh = T->D ? T->D[h] : 0.0;
    for (int64_t p = 0; p < s->P; p++) {
        int64_t iy = i0 + p;
        const double* hp = ht + p * N; /* (N) */
        double* dhp = dh + p * N;      /* (N) */
        double xv = T->x[iy];
        // s_t[p] = h_t[p, :] . C_t + D_h x_t[p], the output before the gate
        double sv = dot(hp, Ct, N) + Dh * xv;
        // ds = dy silu(z);  dz = dy s silu'(z),  silu' = sig (1 + z (1 - sig))
        double ds = dy[iy];
        if (T->z) {
            double zv = T->z[iy], sg = sigmoid(zv);
            G->dz[iy] = dy[iy] * sv * sg * (1.0 + zv * (1.0 - sg));
            ds = dy[iy] * zv * sg;
        }
        // dD_h += ds x_t[p];  dx_t[p] += ds D_h
        if (T->D) {
            G->dD[h] += ds * xv;
            G->dx[iy] += ds * Dh;
        }
        for (int64_t n = 0; n < N; n++) {
            // dC_t[n] += ds h_t[p, n];  dh_t[p, n] += ds C_t[n]
            dCt[n] += ds * hp[n];
            dhp[n] += ds * Ct[n];
        }
    }
}

/* Adjoint of h_t[p, n] = a_t h_{t-1}[p, n] + dt'_t x_t[p] B_t[n], a_t = exp(dt'_t A_h),
 * for every channel p of head (b, h): takes dh = dL/dh_t, leaves dh = dL/dh_{t-1}. */
static void bwd_state_step(const ssd_shape* s, const ssd_tensors* T, int64_t b, int64_t t,
                           int64_t h,
                           const double* hprev, /* (P, N) h_{t-1}, or NULL = 0 */
                           double* dh,          /* (P, N) in/out */
                           ssd_grads64* G) {
    int64_t N = s->N, i0 = at_blhp(s, b, t, h, 0), idt = at_blh(s, b, t, h);
    int64_t row = at_blg(s, b, t, group_of(s, h));
    const double* Bt = T->B + row; /* (N) */
    double* dBt = G->dB + row;     /* (N) */
    double dtv = T->dtp[idt], Ah = T->A[h];
    double a = exp(dtv * Ah);
    for (int64_t p = 0; p < s->P; p++) {
        const double* hp = hprev ? hprev + p * N : NULL; /* (N) or NULL */
        double* dhp = dh + p * N;                         /* (N) */
        double xv = T->x[i0 + p];
        double da = 0.0, dhB = 0.0;
        for (int64_t n = 0; n < N; n++) {
            // da_t[p] = sum_n dh_t[p, n] h_{t-1}[p, n]
            if (hp) da += dhp[n] * hp[n];
            // dh_t[p, :] . B_t, shared by dx_t[p] and ddt'_t
            dhB += dhp[n] * Bt[n];
            // dB_t[n] += dh_t[p, n] dt'_t x_t[p]
            dBt[n] += dhp[n] * dtv * xv;
            // dh_{t-1}[p, n] = a_t dh_t[p, n]
            dhp[n] *= a;
        }
        // dx_t[p] += dt'_t (dh_t[p, :] . B_t)
        G->dx[i0 + p] += dtv * dhB;
        // ddt'_t += x_t[p] (dh_t[p, :] . B_t) + da_t[p] a_t A_h    (d a_t / d dt'_t = a_t A_h)
        G->ddt[idt] += xv * dhB + da * a * Ah;
        // dA_h += da_t[p] a_t dt'_t                                (d a_t / d A_h = a_t dt'_t)
        G->dA[h] += da * a * dtv;
    }
}

/* The whole adjoint of head (b, h), from dh_{L-1} = dfinal_state down to
 * dh_{-1} = dinitial_state: checkpoints first, then the segments from the last
 * to the first, each recomputed from its checkpoint and walked t descending. */
static void bwd_head(const ssd_shape* s, const ssd_tensors* T,
                     const double* dy,  /* (B, L, H, P) */
                     const double* dfs, /* (B, H, P, N) or NULL = 0 */
                     int64_t b, int64_t h, const ssd_bwd_work* w, ssd_grads64* G) {
    int64_t PN = s->P * s->N, srow = at_bhp(s, b, h, 0);
    fill_checkpoints(s, T, w, b, h);
    // dh_{L-1} = dfinal_state[b, h, :, :]
    for (int64_t k = 0; k < PN; k++) w->dh[k] = dfs ? dfs[srow + k] : 0.0;
    for (int64_t k = w->nseg - 1; k >= 0; k--) {
        // segment k: the Q tokens t0 .. t0+Q-1, the last segment possibly short
        int64_t t0 = k * w->seg;
        int64_t Q = s->L - t0 < w->seg ? s->L - t0 : w->seg;
        // states[i] = h_{t0+i}, from the checkpoint h_{t0-1}
        recompute_segment(s, T, w, b, h, k, Q);
        const double* entry = segment_entry(s, T, w, b, h, k); /* (P, N) or NULL */
        for (int64_t i = Q - 1; i >= 0; i--) {
            // h_{t-1}: the previous state of the segment, or the one entering it
            const double* hprev = i > 0 ? w->states + (i - 1) * PN : entry; /* (P, N) */
            // dh = dL/dh_t  ->  dL/dh_{t-1},  t = t0 + i
            bwd_output_step(s, T, dy, b, t0 + i, h, w->states + i * PN, w->dh, G);
            bwd_state_step(s, T, b, t0 + i, h, hprev, w->dh, G);
        }
    }
    // dinitial_state[b, h, :, :] = dh_{-1}
    memcpy(G->dh0 + srow, w->dh, (size_t)PN * sizeof(double));
}

/* Chain rule through dt' = softplus(dt + dt_bias):
 *   ddt = ddt' sigmoid(dt + dt_bias)   (ddt = ddt' without softplus)
 *   ddt_bias_h = sum_{b,t} ddt[b, t, h] */
static void finish_dt_grad(const ssd_shape* s, const ssd_tensors* T, ssd_grads64* G) {
    for (int64_t i = 0; i < count_blh(s); i++) {
        int64_t h = i % s->H;
        double v = T->dt[i] + (T->dt_bias ? T->dt_bias[h] : 0.0);
        if (s->softplus) G->ddt[i] *= sigmoid(v);
        G->ddt_bias[h] += G->ddt[i];
    }
}

// ----------------------------------------------------------------------------
// backward: entry point

/* The caller's zeroed fp64 gradients; the optional ones the caller did not ask
 * for are accumulated into zeroed scratch instead (checked through arena->failed). */
static void view_grads(mb_arena* arena, const ssd_shape* s, const mb_ssd_grads* out,
                       ssd_grads64* G) {
    G->dx = out->dx;
    G->ddt = out->ddt;
    G->dA = out->dA;
    G->dB = out->dB;
    G->dC = out->dC;
    G->dD = out->dD ? out->dD : mb_arena_zeros(arena, s->H);
    G->dz = out->dz ? out->dz : mb_arena_zeros(arena, count_blhp(s));
    G->ddt_bias = out->ddt_bias ? out->ddt_bias : mb_arena_zeros(arena, s->H);
    G->dh0 = out->dinitial_state ? out->dinitial_state : mb_arena_zeros(arena, count_bhpn(s));
}

/* Allocate the backward's per-head scratch (checked through arena->failed):
 * (ceil(L/seg) + seg + 1) P N doubles, not L P N. */
static void alloc_bwd_work(mb_arena* arena, const mb_ssd_params* params, const ssd_shape* s,
                           ssd_bwd_work* w) {
    w->seg = params->chunk_size < s->L ? params->chunk_size : s->L;
    w->nseg = (s->L + w->seg - 1) / w->seg;
    w->checkpoints = mb_arena_zeros(arena, w->nseg * s->P * s->N); /* (nseg, P, N) */
    w->states = mb_arena_zeros(arena, w->seg * s->P * s->N);       /* (seg, P, N) */
    w->dh = mb_arena_zeros(arena, s->P * s->N);                    /* (P, N) */
}

mb_status mb_ref_ssd_bwd(const mb_ssd_params* params, const mb_ssd_inputs* in, const void* dy,
                         const void* dfinal_state, const mb_ssd_grads* grads, const mb_exec* ex) {
    (void)ex;
    ssd_shape s = shape_of(params);
    mb_arena arena = {0};
    ssd_tensors T;
    view_inputs(&arena, in, &s, &T);
    ssd_grads64 G;
    view_grads(&arena, &s, grads, &G);
    ssd_bwd_work w;
    alloc_bwd_work(&arena, params, &s, &w);
    if (arena.failed) {
        mb_arena_free(&arena);
        return mb_fail(MB_ERR_ALLOC, "mb_ssd_bwd: out of host memory for the fp64 scratch");
    }
    compute_dt_eff(&s, &T);
    /* dy: (B, L, H, P);  dfinal_state: (B, H, P, N) or NULL */
    for (int64_t b = 0; b < s.B; b++)
        for (int64_t h = 0; h < s.H; h++) bwd_head(&s, &T, dy, dfinal_state, b, h, &w, &G);
    finish_dt_grad(&s, &T, &G);
    mb_arena_free(&arena);
    return MB_OK;
}
