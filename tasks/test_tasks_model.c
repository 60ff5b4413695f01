/*
 * test_tasks_model.c -- the whole model's gradient against central finite
 * differences, for every mixer, at a tiny size; and the recurrent mode of
 * the SSM mixers against the parallel mode.
 *
 * The model computes in fp32 (the mixers in fp64 inside the references), so
 * each parameter tensor is checked along one random unit direction v:
 *   (loss(theta + eps v) - loss(theta - eps v)) / (2 eps)  vs  grad . v
 * with eps = 1e-2 (3e-3 for the embedding): the fp32 rounding of the loss (~1e-7 relative) divided by
 * eps gives ~1e-5, the O(eps^2) truncation ~1e-4 of a unit-curvature loss, so
 * with the fp32 noise of the forward itself (~1e-6 of the loss / eps ~ 1e-4)
 * the pass bound is 3e-4 absolute + 2% relative (an error in a backward
 * formula shows as O(1) relative).
 */
#include "data.h"
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0, checks = 0;

enum { B = 2, T = 9, V = 8 };

static void make_batch(int32_t* x, int32_t* y, uint64_t seed) {
    task_rng r = rng_seeded(seed, 1, 2);
    for (int i = 0; i < B * T; i++) {
        x[i] = (int32_t)rng_below(&r, V);
        y[i] = (i % 3 == 1 || i % T == T - 1) ? (int32_t)rng_below(&r, V) : TASK_IGNORE;
    }
}

// ----------------------------------------------------------------------------

static void check_gradients(model_config cfg, const char* label) {
    char msg[256];
    model* m = model_create(&cfg, 3, msg, sizeof msg);
    if (!m) { printf("FAIL %s: %s\n", label, msg); failures++; return; }
    /* move off the initialisation (D = 1, B = 1 ...) so no symmetry hides an error */
    float* p = model_params(m);
    task_rng r = rng_seeded(11, 0, 0);
    for (size_t i = 0; i < model_num_params(m); i++) p[i] += 0.05f * rng_normal(&r);
    /* delta = softplus(dt_bias) near 1 (not 1e-3..1e-1): the SSM's own
     * parameters then move the loss by far more than the fp32 noise */
    param_tensors* pt = model_param_tensors(m);
    for (size_t i = 0; pt->x_proj && i < model_param_size(m, 7); i++) pt->x_proj[i] *= 8.0f;
    for (size_t i = 0; pt->dt_bias && i < model_param_size(m, 9); i++) pt->dt_bias[i] = 0.5f + 0.2f * rng_normal(&r);
    int32_t x[B * T], y[B * T];
    make_batch(x, y, 5);
    float loss = model_forward(m, x, y, B, T, NULL, NULL);
    if (model_backward(m)) { printf("FAIL %s: backward: %s\n", label, model_error(m)); failures++; model_free(m); return; }
    size_t n = model_num_params(m);
    float* g = malloc(sizeof(float) * n);
    memcpy(g, model_grads(m), sizeof(float) * n);
    size_t off = 0;
    for (int k = 0; k < NUM_PARAM_TENSORS; k++) {
        size_t sz = model_param_size(m, k);
        if (!sz) continue;
        /* the embedding rows are small (|row| ~ 0.15) and RMSNorm divides by
         * them, so the truncation error there is (eps/|row|)^2: a smaller eps */
        const float eps = k == 0 ? 3e-3f : 1e-2f;
        float* v = malloc(sizeof(float) * sz);
        double norm = 0, gv = 0;
        for (size_t i = 0; i < sz; i++) { v[i] = rng_normal(&r); norm += (double)v[i] * v[i]; }
        for (size_t i = 0; i < sz; i++) { v[i] = (float)(v[i] / sqrt(norm)); gv += (double)g[off + i] * v[i]; }
        float* w = p + off;
        for (size_t i = 0; i < sz; i++) w[i] += eps * v[i];
        double lp = model_forward(m, x, y, B, T, NULL, NULL);
        for (size_t i = 0; i < sz; i++) w[i] -= 2 * eps * v[i];
        double lm = model_forward(m, x, y, B, T, NULL, NULL);
        for (size_t i = 0; i < sz; i++) w[i] += eps * v[i];
        double fd = (lp - lm) / (2 * eps);
        double err = fabs(fd - gv), bound = 3e-4 + 0.02 * fabs(fd);
        checks++;
        if (!(err <= bound)) {
            failures++;
            printf("FAIL %-8s %-10s analytic %+.6e  finite-diff %+.6e  err %.2e > %.2e\n",
                   label, model_param_name(k), gv, fd, err, bound);
        } else {
            printf("ok   %-8s %-10s analytic %+.6e  finite-diff %+.6e  err %.2e\n",
                   label, model_param_name(k), gv, fd, err);
        }
        free(v);
        off += sz;
    }
    printf("     %-8s loss %.4f, %zu parameters\n", label, loss, n);
    free(g);
    model_free(m);
}

/* Recurrent mode (one token at a time, constant memory) against the parallel forward. */
static void check_recurrent(model_config cfg, const char* label) {
    char msg[256];
    model* m = model_create(&cfg, 4, msg, sizeof msg);
    if (!m) { printf("FAIL %s: %s\n", label, msg); failures++; return; }
    enum { TL = 40 };
    int32_t x[B * TL], xt[B];
    task_rng r = rng_seeded(9, 0, 0);
    for (int i = 0; i < B * TL; i++) x[i] = (int32_t)rng_below(&r, V);
    model_forward(m, x, NULL, B, TL, NULL, NULL);
    const float* par = model_logits(m);
    model_state* s = model_state_create(m, B);
    float lg[B * V];
    double maxdiff = 0;
    for (int t = 0; t < TL; t++) {
        for (int b = 0; b < B; b++) xt[b] = x[b * TL + t];
        model_step(m, s, xt, lg);
        for (int b = 0; b < B; b++)
            for (int v = 0; v < V; v++) {
                double dd = fabs(lg[b * V + v] - par[((size_t)b * TL + t) * V + v]);
                if (dd > maxdiff) maxdiff = dd;
            }
    }
    checks++;
    /* fp32 recurrence vs fp64 references over 40 steps: 1e-3 on O(1) logits */
    if (maxdiff > 1e-3) { failures++; printf("FAIL %s recurrent vs parallel: max |dlogit| %.2e\n", label, maxdiff); }
    else printf("ok   %-8s recurrent vs parallel: max |dlogit| %.2e\n", label, maxdiff);
    model_state_free(s);
    model_free(m);
}

int main(void) {
    for (int k = 0; k < MIXER_COUNT; k++) {
        model_config c = model_default_config(k, V, 8, 2);
        c.d_state = 4;
        c.nheads = 2;
        if (k == MIXER_LTI || k == MIXER_MHA_ROPE) c.tied = 0; /* the untied head too */
        check_gradients(c, mixer_name(k));
        if (mixer_is_ssm(k)) check_recurrent(c, mixer_name(k));
    }
    /* bad configurations are refused with a reason, never a crash */
    char msg[256] = "";
    model_config bad = model_default_config(MIXER_MHA_ABS, V, 10, 2);
    bad.nheads = 3;
    checks++;
    if (model_create(&bad, 1, msg, sizeof msg) || !strstr(msg, "heads")) { failures++; printf("FAIL bad heads accepted\n"); }
    bad = model_default_config(MIXER_MAMBA, V, 8, 2);
    bad.d_state = 300;
    checks++;
    if (model_create(&bad, 1, msg, sizeof msg)) { failures++; printf("FAIL d_state 300 accepted\n"); }
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
