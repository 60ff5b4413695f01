/*
 * test_tasks_cuda.c -- the GPU path of the task model (--device cuda)
 * against the CPU path, for every mixer: the same model, seed and batch give
 * the same loss, logits and gradients; a few training steps give the same
 * losses and parameters; the GPU backward gives identical bytes run twice;
 * steps replayed from the CUDA graph give the bytes of eager steps, also
 * after a forward at another shape in between. Skips (exit 77) without CUDA
 * or without a GPU.
 *
 * Tolerances (fp32 on both sides; the CPU mixers compute in fp64, the GPU
 * mixers in fp32 -- the SSD's matmuls as three tf32 products -- and cuBLAS
 * sums in another order than OpenBLAS):
 *   loss             1e-4 relative
 *   logits           2e-4 x the largest |logit| + 1e-5
 *   each gradient    2e-3 x the tensor's largest |g_cpu| + 1e-7 (a wrong
 *                    formula is off by O(1) of the tensor's scale)
 *   after 4 AdamW steps: the losses 2e-3 relative; the parameter change
 *                    ||dtheta_gpu - dtheta_cpu|| <= 2% of ||dtheta_cpu|| (Adam's
 *                    first steps move every weight by ~lr, so a gradient near 0
 *                    can flip one weight's step; a wrong update is O(1) off)
 */
#include "data.h"
#include "model.h"
#include "model_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0, checks = 0;

#define CHECK(cond, ...)                                       \
    do {                                                       \
        checks++;                                              \
        if (!(cond)) {                                         \
            failures++;                                        \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);        \
            printf(__VA_ARGS__);                               \
            printf("\n");                                      \
        }                                                      \
    } while (0)

enum { V = 16, TRAIN_STEPS = 4 };

/* tokens uniform, targets on about a third of the positions (and the last) */
static void make_batch(int32_t* x, int32_t* y, int B, int T, uint64_t seed) {
    task_rng r = rng_seeded(seed, 5, 6);
    for (int i = 0; i < B * T; i++) {
        x[i] = (int32_t)rng_below(&r, V);
        y[i] = (i % 3 == 1 || i % T == T - 1) ? (int32_t)rng_below(&r, V) : TASK_IGNORE;
    }
}

static double max_abs(const float* a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static double max_diff(const float* a, const float* b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* Forward + backward on both sides; compares loss, logits, each gradient. */
static void check_forward_backward(model* m, gpu_model* g, int B, int T, const char* label) {
    size_t BT = (size_t)B * T, np = model_num_params(m);
    int32_t* x = malloc(BT * sizeof(int32_t));
    int32_t* y = malloc(BT * sizeof(int32_t));
    float* logits = malloc(BT * V * sizeof(float));
    float* grads = malloc(np * sizeof(float));
    float* grads2 = malloc(np * sizeof(float));
    make_batch(x, y, B, T, 11);
    int64_t hc, mc, hg, mg;
    float lc = model_forward(m, x, y, B, T, &hc, &mc);
    float lg = gpu_model_forward(g, x, y, B, T, &hg, &mg);
    CHECK(isfinite(lg), "%s T=%d: GPU forward: %s", label, T, gpu_model_error(g));
    CHECK(fabs(lc - lg) <= 1e-4 * fmax(1.0, fabs(lc)), "%s T=%d: loss cpu %.7f gpu %.7f", label, T, lc, lg);
    CHECK(mc == mg && llabs(hc - hg) <= 1, "%s T=%d: marked %lld/%lld hits %lld/%lld", label, T,
          (long long)mc, (long long)mg, (long long)hc, (long long)hg);
    CHECK(!gpu_model_logits(g, logits), "%s: logits: %s", label, gpu_model_error(g));
    double scale = max_abs(model_logits(m), BT * V), dl = max_diff(model_logits(m), logits, BT * V);
    CHECK(dl <= 2e-4 * scale + 1e-5, "%s T=%d: logits differ by %.3g (scale %.3g)", label, T, dl, scale);
    CHECK(!model_backward(m), "%s: CPU backward: %s", label, model_error(m));
    CHECK(!gpu_model_backward(g) && !gpu_model_grads(g, grads), "%s: GPU backward: %s", label, gpu_model_error(g));
    const float* gc = model_grads(m);
    size_t off = 0;
    for (int k = 0; k < NUM_PARAM_TENSORS; k++) {
        size_t n = model_param_size(m, k);
        if (n) {
            double sc = max_abs(gc + off, n), d = max_diff(gc + off, grads + off, n);
            CHECK(d <= 2e-3 * sc + 1e-7, "%s T=%d: d%s differs by %.3g (scale %.3g)", label, T,
                  model_param_name(k), d, sc);
        }
        off += n;
    }
    /* the same backward again: the same bytes */
    CHECK(!gpu_model_backward(g) && !gpu_model_grads(g, grads2), "%s: GPU backward: %s", label, gpu_model_error(g));
    CHECK(!memcmp(grads, grads2, np * sizeof(float)), "%s T=%d: the GPU gradients differ between two runs", label, T);
    free(x); free(y); free(logits); free(grads); free(grads2);
}

/* TRAIN_STEPS AdamW steps on the GPU (graphs on or off; with a forward at
 * another shape after step 2); the losses into losses[], params to the host. */
static int gpu_train(model* start, int graphs, int B, int T, float* losses, float* params_out, int* graphed) {
    char msg[256];
    gpu_model* g = gpu_model_create(start, msg, sizeof msg);
    if (!g) { printf("FAIL: %s\n", msg); return -1; }
    gpu_model_use_graphs(g, graphs);
    size_t BT = (size_t)B * T;
    int32_t* x = malloc(BT * sizeof(int32_t));
    int32_t* y = malloc(BT * sizeof(int32_t));
    int rc = 0;
    gpu_train_opts o = {1.0f, 0.9f, 0.95f, 1e-8f, 0.1f};
    *graphed = 0;
    for (int s = 0; s < TRAIN_STEPS && !rc; s++) {
        make_batch(x, y, B, T, 100 + (uint64_t)s);
        int64_t h, mk;
        rc = gpu_model_step_launch(g, x, y, B, T, 1e-3f, s + 1, &o) || gpu_model_step_wait(g, &losses[s], &h, &mk);
        *graphed += gpu_model_graphed(g);
        if (!rc && s == 1) rc = !isfinite(gpu_model_forward(g, x, y, 1, T / 2 + 1, NULL, NULL));
    }
    if (rc) printf("FAIL: GPU training: %s\n", gpu_model_error(g));
    model* tmp = NULL;
    if (!rc) {
        char m2[256];
        tmp = model_create(model_cfg(start), 0, m2, sizeof m2);
        rc = !tmp || gpu_model_download(g, tmp);
        if (!rc) memcpy(params_out, model_params(tmp), model_num_params(start) * sizeof(float));
    }
    model_free(tmp);
    gpu_model_free(g);
    free(x); free(y);
    return rc;
}

/* The same steps on the CPU, from the same start. */
static void cpu_train(model* m, int B, int T, float* losses) {
    size_t BT = (size_t)B * T;
    int32_t* x = malloc(BT * sizeof(int32_t));
    int32_t* y = malloc(BT * sizeof(int32_t));
    for (int s = 0; s < TRAIN_STEPS; s++) {
        make_batch(x, y, B, T, 100 + (uint64_t)s);
        losses[s] = model_forward(m, x, y, B, T, NULL, NULL);
        model_backward(m);
        model_clip_grads(m, 1.0f);
        model_adamw(m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, s + 1);
    }
    free(x); free(y);
}

static void check_training(const model_config* cfg, int B, int T, const char* label) {
    char msg[256];
    model* m = model_create(cfg, 21, msg, sizeof msg);
    size_t np = model_num_params(m);
    float* start = malloc(np * sizeof(float));
    float* eager = malloc(np * sizeof(float));
    float* graph = malloc(np * sizeof(float));
    memcpy(start, model_params(m), np * sizeof(float));
    float lc[TRAIN_STEPS], le[TRAIN_STEPS], lgr[TRAIN_STEPS];
    int ge = 0, gg = 0;
    int rc = gpu_train(m, 0, B, T, le, eager, &ge) || gpu_train(m, 1, B, T, lgr, graph, &gg);
    CHECK(!rc, "%s: GPU training failed", label);
    if (!rc) {
        cpu_train(m, B, T, lc);
        for (int s = 0; s < TRAIN_STEPS; s++)
            CHECK(fabs(lc[s] - le[s]) <= 2e-3 * fmax(1.0, fabs(lc[s])), "%s: step %d loss cpu %.6f gpu %.6f", label,
                  s + 1, lc[s], le[s]);
        double num = 0, den = 0;
        const float* pc = model_params(m);
        for (size_t i = 0; i < np; i++) {
            double dc = (double)pc[i] - start[i], dg = (double)eager[i] - start[i];
            num += (dg - dc) * (dg - dc);
            den += dc * dc;
        }
        CHECK(den > 0 && sqrt(num / den) <= 0.02, "%s: parameter change differs by %.3g of its norm", label,
              den > 0 ? sqrt(num / den) : -1.0);
        CHECK(ge == 0 && gg == TRAIN_STEPS - 1, "%s: graphed steps: eager run %d, graph run %d (want 0, %d)",
              label, ge, gg, TRAIN_STEPS - 1);
        CHECK(!memcmp(eager, graph, np * sizeof(float)) && !memcmp(le, lgr, sizeof le),
              "%s: steps replayed from the CUDA graph differ from eager steps", label);
    }
    model_free(m);
    free(start); free(eager); free(graph);
}

static void check_mixer(int mixer, int tied, int dim) {
    model_config cfg = model_default_config(mixer, V, dim, 2);
    cfg.tied = tied;
    char label[64], msg[256];
    snprintf(label, sizeof label, "%s%s%s", mixer_name(mixer), tied ? "" : " (untied)",
             dim != 32 ? " (d 128)" : "");
    model* m = model_create(&cfg, 7, msg, sizeof msg);
    gpu_model* g = m ? gpu_model_create(m, msg, sizeof msg) : NULL;
    CHECK(g != NULL, "%s: %s", label, msg);
    if (g) {
        int lens[] = {1, 37, 130}; /* one token; one short chunk; three chunks of 64, the last short */
        for (int i = 0; i < 3; i++) check_forward_backward(m, g, 3, lens[i], label);
        check_training(&cfg, 4, 70, label);
    }
    gpu_model_free(g);
    model_free(m);
    printf("%-16s checked\n", label);
}

static void check_bad_input(void) {
    model_config cfg = model_default_config(MIXER_MAMBA, V, 32, 1);
    char msg[256];
    model* m = model_create(&cfg, 1, msg, sizeof msg);
    gpu_model* g = gpu_model_create(m, msg, sizeof msg);
    int32_t x[4] = {1, 2, V, 3}, y[4] = {-1, 1, 2, 3};
    CHECK(g && isnan(gpu_model_forward(g, x, y, 1, 4, NULL, NULL)) && strstr(gpu_model_error(g), "vocabulary"),
          "a token outside the vocabulary is refused (%s)", g ? gpu_model_error(g) : "no model");
    x[2] = 0;
    CHECK(g && isnan(gpu_model_forward(g, x, y, 0, 4, NULL, NULL)), "B = 0 is refused");
    CHECK(g && gpu_model_step_launch(g, x, NULL, 1, 4, 1e-3f, 1, NULL) == -1, "a step without targets is refused");
    gpu_model_free(g);
    model_free(m);
}

int main(void) {
    model_config probe_cfg = model_default_config(MIXER_MAMBA, V, 32, 1);
    char msg[256];
    model* probe = model_create(&probe_cfg, 1, msg, sizeof msg);
    gpu_model* g = gpu_model_create(probe, msg, sizeof msg);
    gpu_model_free(g);
    model_free(probe);
    if (!g) {
        printf("SKIP: %s\n", msg);
        return 77;
    }
    model_set_threads(2);
    for (int mixer = 0; mixer < MIXER_COUNT; mixer++) check_mixer(mixer, 1, 32);
    check_mixer(MIXER_MAMBA, 0, 32);
    /* Hard-ALiBi at d 128: 8 heads, 4 local ones (windows 2, 4, 8, 16; d 32 has one, of 2) */
    check_mixer(MIXER_MHA_HARD_ALIBI, 1, 128);
    check_bad_input();
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
