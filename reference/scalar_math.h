/*
 * scalar_math.h -- the scalar functions the references share, in fp64,
 * written so that no argument overflows (exact, not approximated).
 */
#ifndef MB_REFERENCE_SCALAR_MATH_H
#define MB_REFERENCE_SCALAR_MATH_H

#include <math.h>

/* softplus(x) = log(1 + exp(x)), without overflow for large x */
static inline double softplus(double x) {
    return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/* sigmoid(x) = 1 / (1 + exp(-x)), without overflow for either sign;
 * also the derivative of softplus */
static inline double sigmoid(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* silu(x) = x sigmoid(x), the gate applied by z */
static inline double silu(double x) { return x * sigmoid(x); }

#endif /* MB_REFERENCE_SCALAR_MATH_H */
