/*
 * selective_scan.c -- the exact CPU reference of the Mamba-1 selective scan,
 * forward and backward, computed in fp64 whatever the storage dtype.
 *
 *   delta'_t = softplus(delta_t + delta_bias)     (bias optional, softplus optional)
 *   h_t      = exp(delta'_t * A) * h_{t-1} + delta'_t * B_t * u_t      h_{-1} = 0
 *   y_t      = C_t . h_t + D * u_t,   then   y_t *= silu(z_t)   if z given
 *
 * Dimension legend:
 *   B = batch, D = channels, L = sequence length, N = state size,
 *   G = groups of B/C; channel d reads group g = d / (D / G).
 * Layouts (row-major, last dimension contiguous):
 *   u, delta, z, y, dy   (B, D, L)     so one channel (b, d) is one contiguous row of L
 *   A                    (D, N)
 *   B, C                 (B, G, N, L)
 *   D, delta_bias        (D)
 *   final_state          (B, D, N)
 *
 * The math alone: every tensor is fp64 (the API layer, src/api.c, validates
 * the call and converts the caller's dtype in and out), and outputs arrive
 * zeroed. The backward is exact reverse mode through the recurrence, one
 * channel (b, d) at a time: it recomputes and keeps that channel's L x N
 * states, then runs the adjoint from t = L-1 down to 0. Scratch memory is
 * O(inputs + L*N), never O(B*D*L*N).
 */
#include "internal.h"
#include "reference.h"
#include "scalar_math.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

// ----------------------------------------------------------------------------
// shapes, loaded tensors and one channel's offsets

typedef struct {
    int64_t B, D, L, N, G;
    int64_t dpg;  /* channels per group, D / G */
    int softplus; /* delta_softplus */
} scan_dims;

/* Every input as fp64; the optional ones are NULL when absent. */
typedef struct {
    const double* u;     /* (B, D, L) */
    const double* delta; /* (B, D, L) */
    const double* A;     /* (D, N) */
    const double* Bm;    /* (B, G, N, L) */
    const double* Cm;    /* (B, G, N, L) */
    const double* Dv;    /* (D) or NULL */
    const double* z;     /* (B, D, L) or NULL */
    const double* bias;  /* (D) or NULL */
} scan_tensors;

/* Where channel (b, d) lives in each layout. */
typedef struct {
    int64_t d;   /* channel index, for A (D, N), D and delta_bias (D) */
    int64_t row; /* offset of (b, d, 0) in a (B, D, L) tensor */
    int64_t bc;  /* offset of (b, g, 0, 0) in a (B, G, N, L) tensor */
    int64_t fs;  /* offset of (b, d, 0) in a (B, D, N) tensor */
} scan_channel;

static scan_dims dims_from_params(const mb_selective_scan_params* p) {
    scan_dims dims;
    dims.B = p->batch;
    dims.D = p->dim;
    dims.L = p->seqlen;
    dims.N = p->dstate;
    dims.G = p->ngroups;
    dims.dpg = p->dim / p->ngroups;
    dims.softplus = p->delta_softplus;
    return dims;
}

static scan_channel channel_at(const scan_dims* dims, int64_t b, int64_t d) {
    scan_channel ch;
    int64_t g = d / dims->dpg;
    ch.d = d;
    ch.row = (b * dims->D + d) * dims->L;
    ch.bc = (b * dims->G + g) * dims->N * dims->L;
    ch.fs = (b * dims->D + d) * dims->N;
    return ch;
}

/* The fp64 inputs of `in`; the optional ones are NULL when absent. */
static scan_tensors view_inputs(const mb_selective_scan_inputs* in) {
    scan_tensors x;
    x.u = in->u;
    x.delta = in->delta;
    x.A = in->A;
    x.Bm = in->B;
    x.Cm = in->C;
    x.Dv = in->D;
    x.z = in->z;
    x.bias = in->delta_bias;
    return x;
}

// ----------------------------------------------------------------------------
// forward of one channel

/* delta'_t of channel `ch`; *ddelta_out = d delta'_t / d delta_t. */
static double effective_delta(const scan_dims* dims, const scan_tensors* x,
                              const scan_channel* ch, int64_t t, double* ddelta_out) {
    // pre = delta + delta_bias
    double pre = x->delta[ch->row + t] + (x->bias ? x->bias[ch->d] : 0.0);
    if (!dims->softplus) {
        *ddelta_out = 1.0;
        return pre;
    }
    // d softplus(pre) / d pre = sigmoid(pre)
    *ddelta_out = sigmoid(pre);
    return softplus(pre);
}

/* Run the recurrence of channel `ch` from the state in h.
 *   h      (N)     in: h_{-1} (zero for a whole sequence); out: h_{L-1}
 *   states (L, N)  out: h_t for every t, or NULL when not needed
 *   y_pre  (L)     out: C_t . h_t + D * u_t, before the z gate */
static void channel_forward(const scan_dims* dims, const scan_tensors* x,
                            const scan_channel* ch, double* h, double* states, double* y_pre) {
    const int64_t N = dims->N, L = dims->L;
    const double* A = x->A + ch->d * N; /* (N) */
    const double* Bm = x->Bm + ch->bc;  /* (N, L) */
    const double* Cm = x->Cm + ch->bc;  /* (N, L) */
    for (int64_t t = 0; t < L; t++) {
        double unused;
        double dt = effective_delta(dims, x, ch, t, &unused);
        double ut = x->u[ch->row + t];
        double acc = 0.0;
        for (int64_t n = 0; n < N; n++) {
            // h_t = exp(delta' * A) * h_{t-1} + delta' * B_t * u_t
            h[n] = exp(dt * A[n]) * h[n] + dt * Bm[n * L + t] * ut;
            // acc = C_t . h_t
            acc += Cm[n * L + t] * h[n];
            if (states) states[t * N + n] = h[n];
        }
        // y_pre_t = C_t . h_t + D * u_t
        y_pre[t] = acc + (x->Dv ? x->Dv[ch->d] * ut : 0.0);
    }
}

/* y (L) in place: y_t *= z_t * sigmoid(z_t) when z (L) is given. */
static void apply_gate(double* y, const double* z, int64_t L) {
    if (!z) return;
    for (int64_t t = 0; t < L; t++) {
        // y = y_pre * silu(z)
        y[t] *= z[t] * sigmoid(z[t]);
    }
}

// ----------------------------------------------------------------------------
// forward and one-token step

mb_status mb_ref_selective_scan_fwd(const mb_selective_scan_params* params,
                                    const mb_selective_scan_inputs* in, void* y,
                                    void* final_state, const mb_exec* ex) {
    (void)ex;
    scan_dims dims = dims_from_params(params);
    scan_tensors x = view_inputs(in);
    double* y64 = y; /* (B, D, L) */
    mb_arena arena = {0};
    /* (B, D, N) h_{L-1}, zero at the start; scratch when the caller wants no final state */
    double* h64 = final_state ? final_state : mb_arena_zeros(&arena, dims.B * dims.D * dims.N);
    if (arena.failed) {
        mb_arena_free(&arena);
        return mb_fail(MB_ERR_ALLOC, "mb_selective_scan_fwd: out of host memory for the state");
    }
    for (int64_t b = 0; b < dims.B; b++) {
        for (int64_t d = 0; d < dims.D; d++) {
            scan_channel ch = channel_at(&dims, b, d);
            channel_forward(&dims, &x, &ch, h64 + ch.fs, NULL, y64 + ch.row);
            apply_gate(y64 + ch.row, x.z ? x.z + ch.row : NULL, dims.L);
        }
    }
    mb_arena_free(&arena);
    return MB_OK;
}

/* One token (L = 1): the forward of one step from the given state. */
mb_status mb_ref_selective_scan_step(const mb_selective_scan_params* params,
                                     const mb_selective_scan_inputs* in, void* state, void* y,
                                     const mb_exec* ex) {
    (void)ex;
    scan_dims dims = dims_from_params(params);
    scan_tensors x = view_inputs(in);
    double* h64 = state; /* (B, D, N) h_{t-1} in, h_t out */
    double* y64 = y;     /* (B, D) */
    for (int64_t b = 0; b < dims.B; b++) {
        for (int64_t d = 0; d < dims.D; d++) {
            scan_channel ch = channel_at(&dims, b, d);
            channel_forward(&dims, &x, &ch, h64 + ch.fs, NULL, y64 + ch.row);
            apply_gate(y64 + ch.row, x.z ? x.z + ch.row : NULL, 1);
        }
    }
    return MB_OK;
}

// ----------------------------------------------------------------------------
// backward: fp64 gradients and per-channel scratch

/* Every gradient as fp64, zeroed; the optional ones are NULL when absent. */
typedef struct {
    double* du;     /* (B, D, L) */
    double* ddelta; /* (B, D, L) */
    double* dA;     /* (D, N) */
    double* dB;     /* (B, G, N, L) */
    double* dC;     /* (B, G, N, L) */
    double* dD;     /* (D) or NULL */
    double* dz;     /* (B, D, L) or NULL */
    double* dbias;  /* (D) or NULL */
} scan_grads64;

/* What one channel's backward needs, reused channel after channel. */
typedef struct {
    double* h;      /* (N)    h_{L-1} of the recomputed forward (unused after) */
    double* states; /* (L, N) h_t of the channel */
    double* y_pre;  /* (L)    y before the z gate */
    double* dy_pre; /* (L)    dLoss / dy_pre */
    double* adj;    /* (N)    adjoint of h_t, carried backwards in t */
} scan_scratch;

/* The caller's zeroed fp64 gradients. */
static scan_grads64 view_grads(const mb_selective_scan_grads* out) {
    scan_grads64 g;
    g.du = out->du;
    g.ddelta = out->ddelta;
    g.dA = out->dA;
    g.dB = out->dB;
    g.dC = out->dC;
    g.dD = out->dD;
    g.dz = out->dz;
    g.dbias = out->ddelta_bias;
    return g;
}

static scan_scratch alloc_scratch(mb_arena* arena, const scan_dims* dims) {
    scan_scratch s;
    s.h = mb_arena_zeros(arena, dims->N);
    s.states = mb_arena_zeros(arena, dims->L * dims->N);
    s.y_pre = mb_arena_zeros(arena, dims->L);
    s.dy_pre = mb_arena_zeros(arena, dims->L);
    s.adj = mb_arena_zeros(arena, dims->N);
    return s;
}

// ----------------------------------------------------------------------------
// backward of one channel

/* Through the gate y = y_pre * z * sigmoid(z):
 *   dy     (L)  upstream gradient of this channel
 *   dy_pre (L)  out: dLoss / dy_pre
 *   dz     (L)  out: dLoss / dz, NULL iff z (L) is NULL */
static void gate_backward(const double* z, const double* dy, const double* y_pre,
                          double* dy_pre, double* dz, int64_t L) {
    for (int64_t t = 0; t < L; t++) {
        if (!z) {
            dy_pre[t] = dy[t];
            continue;
        }
        double s = sigmoid(z[t]);
        // dy_pre = dy * z * sigmoid(z)
        dy_pre[t] = dy[t] * z[t] * s;
        // dz = dy * y_pre * d silu(z)/dz = dy * y_pre * s * (1 + z * (1 - s))
        dz[t] = dy[t] * y_pre[t] * s * (1.0 + z[t] * (1.0 - s));
    }
}

/* Through the skip term D * u_t of y_pre_t (nothing without D). */
static void skip_backward(const scan_dims* dims, const scan_tensors* x, const scan_channel* ch,
                          const double* dy_pre, scan_grads64* g) {
    if (!x->Dv) return;
    for (int64_t t = 0; t < dims->L; t++) {
        // dD[d] += dy_pre_t * u_t  (summed over b and t)
        g->dD[ch->d] += dy_pre[t] * x->u[ch->row + t];
        // du_t += dy_pre_t * D[d]
        g->du[ch->row + t] += dy_pre[t] * x->Dv[ch->d];
    }
}

/* One step t of the adjoint, t from L-1 down to 0. On entry adj (N) holds
 * adj_{t+1} * exp(delta'_{t+1} A) (zero at t = L-1); on exit
 * adj_t * exp(delta'_t A), ready for step t-1.
 *   states (L, N)  h of the channel;  dy_t = dLoss / dy_pre_t */
static void adjoint_step(const scan_dims* dims, const scan_tensors* x, const scan_channel* ch,
                         int64_t t, const double* states, double dy_t, double* adj,
                         scan_grads64* g) {
    const int64_t N = dims->N, L = dims->L;
    const double* A = x->A + ch->d * N; /* (N) */
    const double* Bm = x->Bm + ch->bc;  /* (N, L) */
    const double* Cm = x->Cm + ch->bc;  /* (N, L) */
    double dsoft;
    double dt = effective_delta(dims, x, ch, t, &dsoft);
    double ut = x->u[ch->row + t];
    double ddt = 0.0, du_t = 0.0;
    for (int64_t n = 0; n < N; n++) {
        double a = exp(dt * A[n]);
        double h_prev = t > 0 ? states[(t - 1) * N + n] : 0.0;
        // dC_t[n] += dy_t * h_t[n]   (accumulates over the channels of the group)
        g->dC[ch->bc + n * L + t] += dy_t * states[t * N + n];
        // adj_t = adj_{t+1} * exp(delta'_{t+1} A) + dy_t * C_t
        adj[n] += dy_t * Cm[n * L + t];
        // dA[d, n] += adj_t * h_{t-1} * exp(delta' A) * delta'
        g->dA[ch->d * N + n] += adj[n] * h_prev * a * dt;
        // d delta'_t += adj_t * (h_{t-1} * exp(delta' A) * A + B_t * u_t)
        ddt += adj[n] * (h_prev * a * A[n] + Bm[n * L + t] * ut);
        // dB_t[n] += adj_t * delta' * u_t   (accumulates over the channels of the group)
        g->dB[ch->bc + n * L + t] += adj[n] * dt * ut;
        // du_t += adj_t * delta' * B_t
        du_t += adj[n] * dt * Bm[n * L + t];
        // carry to step t-1: adj_t * exp(delta'_t A)
        adj[n] *= a;
    }
    g->du[ch->row + t] += du_t;
    // d delta_t = d delta'_t * softplus'(delta_t + bias)   (1 without softplus)
    g->ddelta[ch->row + t] = ddt * dsoft;
    // d delta_bias[d] += d delta_t   (summed over b and t)
    if (g->dbias) g->dbias[ch->d] += ddt * dsoft;
}

/* The whole backward of channel (b, d): recompute, gate, skip, recurrence. */
static void channel_backward(const scan_dims* dims, const scan_tensors* x, const double* dy,
                             const scan_channel* ch, scan_scratch* s, scan_grads64* g) {
    for (int64_t n = 0; n < dims->N; n++) s->h[n] = 0.0;
    channel_forward(dims, x, ch, s->h, s->states, s->y_pre);
    gate_backward(x->z ? x->z + ch->row : NULL, dy + ch->row, s->y_pre, s->dy_pre,
                  g->dz ? g->dz + ch->row : NULL, dims->L);
    skip_backward(dims, x, ch, s->dy_pre, g);
    for (int64_t n = 0; n < dims->N; n++) s->adj[n] = 0.0;
    for (int64_t t = dims->L - 1; t >= 0; t--)
        adjoint_step(dims, x, ch, t, s->states, s->dy_pre[t], s->adj, g);
}

// ----------------------------------------------------------------------------
// backward entry point

mb_status mb_ref_selective_scan_bwd(const mb_selective_scan_params* params,
                                    const mb_selective_scan_inputs* in, const void* dy,
                                    const mb_selective_scan_grads* grads, const mb_exec* ex) {
    (void)ex;
    scan_dims dims = dims_from_params(params);
    scan_tensors x = view_inputs(in);
    const double* dy64 = dy; /* (B, D, L) */
    scan_grads64 g = view_grads(grads);
    mb_arena arena = {0};
    scan_scratch s = alloc_scratch(&arena, &dims);
    if (arena.failed) {
        mb_arena_free(&arena);
        return mb_fail(MB_ERR_ALLOC, "mb_selective_scan_bwd: out of host memory for the "
                       "per-channel scratch (L x N doubles)");
    }
    for (int64_t b = 0; b < dims.B; b++) {
        for (int64_t d = 0; d < dims.D; d++) {
            scan_channel ch = channel_at(&dims, b, d);
            channel_backward(&dims, &x, dy64, &ch, &s, &g);
        }
    }
    mb_arena_free(&arena);
    return MB_OK;
}
