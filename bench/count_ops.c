/*
 * count_ops.c -- one call of one CPU reference at a fixed small size, for
 * counting its instructions with valgrind's callgrind (bench/regress.py cpu):
 *
 *   count_ops OP DIR L       OP: selective_scan | ssd | attention
 *                            DIR: fwd | bwd
 *   valgrind --tool=callgrind --toggle-collect=mb_ssd_bwd_cpu build/count_ops ssd bwd 256
 *
 * The inputs are filled (and, for bwd, the forward run) outside the collected
 * function, so callgrind's --toggle-collect=<the entry point> counts exactly one
 * call of it. Sizes (dimension letters as in include/mambabench.h), f32:
 *   selective_scan  B=1 D=16 N=16 G=1, z, D, delta_bias, softplus
 *   ssd             B=1 H=4 P=16 N=16 G=1 chunk=32, z, D, dt_bias, softplus
 *   attention       B=1 H=2 d=32
 * The data come from a fixed-seed generator: the counts are deterministic.
 * Prints the entry point's name on success; exit 1 on a failed call, 2 on usage.
 */
#include "mambabench.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// data

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float uniform(float lo, float hi) {
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 0x2545F4914F6CDD1Dull;
    return lo + (hi - lo) * (float)((r >> 11) * (1.0 / 9007199254740992.0));
}

/* n floats uniform in [lo, hi); exits on allocation failure (never freed: one call per run) */
static float* tensor(int64_t n, float lo, float hi) {
    float* p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!p) { fprintf(stderr, "count_ops: out of memory\n"); exit(1); }
    for (int64_t i = 0; i < n; i++) p[i] = uniform(lo, hi);
    return p;
}

static int check(mb_status s, const char* what) {
    if (s == MB_OK) return 0;
    fprintf(stderr, "count_ops: %s: %s: %s\n", what, mb_status_string(s), mb_last_error());
    return 1;
}

// ----------------------------------------------------------------------------
// the three ops

static int run_scan(int bwd, int64_t L) {
    const int64_t B = 1, D = 16, N = 16, G = 1;
    mb_selective_scan_params p = {B, D, L, N, G, MB_DTYPE_F32, 1};
    mb_selective_scan_inputs in = {
        tensor(B * D * L, -1, 1),     tensor(B * D * L, -2, 0), tensor(D * N, -1.5f, -0.5f),
        tensor(B * G * N * L, -1, 1), tensor(B * G * N * L, -1, 1), tensor(D, -1, 1),
        tensor(B * D * L, -1, 1),     tensor(D, -0.5f, 0.5f)};
    float* y = tensor(B * D * L, 0, 1);
    if (!bwd) return check(mb_selective_scan_fwd_cpu(&p, &in, y, NULL), "mb_selective_scan_fwd_cpu");
    mb_selective_scan_grads g = {tensor(B * D * L, 0, 1), tensor(B * D * L, 0, 1),
                                 tensor(D * N, 0, 1),     tensor(B * G * N * L, 0, 1),
                                 tensor(B * G * N * L, 0, 1), tensor(D, 0, 1),
                                 tensor(B * D * L, 0, 1), tensor(D, 0, 1)};
    float* dy = tensor(B * D * L, -1, 1);
    return check(mb_selective_scan_bwd_cpu(&p, &in, dy, &g), "mb_selective_scan_bwd_cpu");
}

static int run_ssd(int bwd, int64_t L) {
    const int64_t B = 1, H = 4, P = 16, N = 16, G = 1;
    mb_ssd_params p = {B, L, H, P, N, G, 32, MB_DTYPE_F32, 1, MB_SSD_CHUNKED, 0};
    mb_ssd_inputs in = {tensor(B * L * H * P, -1, 1), tensor(B * L * H, -2, 0),
                        tensor(H, -1.5f, -0.5f),      tensor(B * L * G * N, -1, 1),
                        tensor(B * L * G * N, -1, 1), tensor(H, -1, 1),
                        tensor(B * L * H * P, -1, 1), tensor(H, -0.5f, 0.5f), NULL};
    float* y = tensor(B * L * H * P, 0, 1);
    if (!bwd) return check(mb_ssd_fwd_cpu(&p, &in, y, NULL), "mb_ssd_fwd_cpu");
    mb_ssd_grads g = {tensor(B * L * H * P, 0, 1), tensor(B * L * H, 0, 1), tensor(H, 0, 1),
                      tensor(B * L * G * N, 0, 1), tensor(B * L * G * N, 0, 1), tensor(H, 0, 1),
                      tensor(B * L * H * P, 0, 1), tensor(H, 0, 1), NULL};
    float* dy = tensor(B * L * H * P, -1, 1);
    return check(mb_ssd_bwd_cpu(&p, &in, dy, NULL, &g), "mb_ssd_bwd_cpu");
}

static int run_attention(int bwd, int64_t L) {
    const int64_t B = 1, H = 2, d = 32;
    mb_attention_params p = {B, H, L, d, 0.0, MB_DTYPE_F32, 0};
    mb_attention_inputs in = {tensor(B * H * L * d, -1, 1), tensor(B * H * L * d, -1, 1),
                              tensor(B * H * L * d, -1, 1)};
    float* o = tensor(B * H * L * d, 0, 1);
    float* lse = tensor(B * H * L, 0, 1);
    mb_status s = mb_attention_fwd_cpu(&p, &in, o, lse); /* bwd: this one is not collected */
    if (!bwd) return check(s, "mb_attention_fwd_cpu");
    if (check(s, "mb_attention_fwd_cpu")) return 1;
    mb_attention_grads g = {tensor(B * H * L * d, 0, 1), tensor(B * H * L * d, 0, 1),
                            tensor(B * H * L * d, 0, 1)};
    float* dout = tensor(B * H * L * d, -1, 1);
    return check(mb_attention_bwd_cpu(&p, &in, o, lse, dout, &g), "mb_attention_bwd_cpu");
}

// ----------------------------------------------------------------------------

int main(int argc, char** argv) {
    char* end = NULL;
    long long L = argc == 4 ? strtoll(argv[3], &end, 10) : 0;
    int bwd = argc == 4 && strcmp(argv[2], "bwd") == 0;
    if (argc != 4 || (!bwd && strcmp(argv[2], "fwd") != 0) || !end || *end || L < 1 ||
        L > (1 << 20)) {
        fprintf(stderr, "usage: count_ops selective_scan|ssd|attention fwd|bwd L\n");
        return 2;
    }
    if (strcmp(argv[1], "selective_scan") == 0) return run_scan(bwd, L);
    if (strcmp(argv[1], "ssd") == 0) return run_ssd(bwd, L);
    if (strcmp(argv[1], "attention") == 0) return run_attention(bwd, L);
    fprintf(stderr, "count_ops: unknown op %s\n", argv[1]);
    return 2;
}
