/*
 * testing.h -- the small test framework every tests/test_*.c uses.
 *
 *   CHECK(cond, fmt, ...)      count a failure (with file:line) when cond is false
 *   expect_close(...)          elementwise |a - b| <= atol + rtol * |b|, reporting the worst
 *   problems.h                 the shared builders: the RNG, dtype pack/unpack, guarded
 *                              outputs, finite differences, problems of each op
 *   test_main_result()         what main returns: 1 when any check failed
 *
 * Header-only (static functions); problems.c is compiled into every test.
 */
#ifndef MB_TESTING_H
#define MB_TESTING_H

#include "mambabench.h"
#include "problems.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures = 0;
static int test_checks = 0;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        test_checks++;                                                                    \
        if (!(cond)) {                                                                    \
            test_failures++;                                                              \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                          \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

/* Check that a call returned MB_OK, printing the library's message if not. */
#define CHECK_OK(call)                                                                    \
    do {                                                                                  \
        mb_status st_ = (call);                                                           \
        CHECK(st_ == MB_OK, "%s returned %s: %s", #call, mb_status_string(st_),           \
              mb_last_error());                                                           \
    } while (0)

static inline int test_main_result(const char* name) {
    if (test_checks == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}

// ----------------------------------------------------------------------------
// comparison

/* Elementwise |got - want| <= atol + rtol * |want|; NaN/Inf in got always fail.
 * Returns 1 when all close, else prints the worst element and returns 0. */
static inline int expect_close_f64(const char* what, const double* got, const double* want, int64_t n,
                            double rtol, double atol) {
    int64_t worst = -1, bad = 0;
    double worst_excess = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]);
        double allowed = atol + rtol * fabs(want[i]);
        if (!isfinite(got[i]) || !(err <= allowed)) {
            bad++;
            double excess = isfinite(err) ? err / allowed : INFINITY;
            if (worst < 0 || excess > worst_excess) { worst = i; worst_excess = excess; }
        }
    }
    test_checks++;
    if (bad) {
        test_failures++;
        fprintf(stderr, "FAIL %s: %lld of %lld elements off; worst [%lld] got %.10g want %.10g "
                "(rtol %g atol %g)\n", what, (long long)bad, (long long)n, (long long)worst,
                got[worst], want[worst], rtol, atol);
        return 0;
    }
    return 1;
}

static inline double max_abs_f64(const double* x, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}


// ----------------------------------------------------------------------------
// attention with positional tensors (the API takes inputs/grads structs)

static inline mb_status attn_fwd_cpu(const mb_attention_params* p, const void* q, const void* k,
                                     const void* v, void* o, void* lse) {
    mb_attention_inputs in = {q, k, v};
    return mb_attention_fwd_cpu(p, &in, o, lse);
}

static inline mb_status attn_bwd_cpu(const mb_attention_params* p, const void* q, const void* k,
                                     const void* v, const void* o, const void* lse,
                                     const void* dout, void* dq, void* dk, void* dv) {
    mb_attention_inputs in = {q, k, v};
    mb_attention_grads g = {dq, dk, dv};
    return mb_attention_bwd_cpu(p, &in, o, lse, dout, &g);
}

static inline mb_status attn_fwd_cuda(const mb_attention_params* p, const void* q,
                                      const void* k, const void* v, void* o, void* lse) {
    mb_attention_inputs in = {q, k, v};
    return mb_attention_fwd_cuda(p, &in, o, lse, NULL);
}

static inline mb_status attn_bwd_cuda(const mb_attention_params* p, const void* q,
                                      const void* k, const void* v, const void* o,
                                      const void* lse, const void* dout, void* dq, void* dk,
                                      void* dv) {
    mb_attention_inputs in = {q, k, v};
    mb_attention_grads g = {dq, dk, dv};
    return mb_attention_bwd_cuda(p, &in, o, lse, dout, &g, NULL);
}

#endif /* MB_TESTING_H */
