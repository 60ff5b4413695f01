/*
 * test_common.c -- the small shared pieces of the API: dtype sizes and names,
 * the parameter dtype rule, bf16 conversion (round to nearest even, NaN and
 * infinities), and the peak accounting of the references' scratch memory.
 */
#include "testing.h"

#include <float.h>

static void test_dtypes(void) {
    CHECK(mb_dtype_size(MB_DTYPE_F32) == 4 && mb_dtype_size(MB_DTYPE_BF16) == 2 &&
              mb_dtype_size(MB_DTYPE_F16) == 2 && mb_dtype_size(MB_DTYPE_F64) == 8,
          "dtype sizes");
    CHECK(mb_dtype_size((mb_dtype)42) == 0, "unknown dtype has size 0");
    CHECK(strcmp(mb_dtype_name(MB_DTYPE_BF16), "bf16") == 0, "bf16 name");
    CHECK(strcmp(mb_dtype_name((mb_dtype)42), "?") == 0, "unknown dtype name");
    CHECK(mb_param_dtype(MB_DTYPE_BF16) == MB_DTYPE_F32, "bf16 params are fp32");
    CHECK(mb_param_dtype(MB_DTYPE_F32) == MB_DTYPE_F32, "fp32 params are fp32");
    CHECK(mb_param_dtype(MB_DTYPE_F64) == MB_DTYPE_F64, "fp64 params are fp64");
}

/* bits of a float, and the float of bits */
static uint32_t bits_of(float x) { uint32_t b; memcpy(&b, &x, 4); return b; }
static float float_of(uint32_t b) { float x; memcpy(&x, &b, 4); return x; }

static void test_bf16_rounding(void) {
    /* exactly representable values round-trip */
    const float exact[] = {0.0f, -0.0f, 1.0f, -2.5f, 3.140625f, 65280.0f, 1.0f / 1024.0f};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        float back = mb_f32_from_bf16(mb_bf16_from_f32(exact[i]));
        CHECK(bits_of(back) == bits_of(exact[i]), "round trip of %g gave %g", exact[i], back);
    }
    /* 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1) */
    CHECK(mb_bf16_from_f32(1.0f + 1.0f / 256.0f) == 0x3F80, "tie rounds to even (down)");
    /* 1 + 3*2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up */
    CHECK(mb_bf16_from_f32(1.0f + 3.0f / 256.0f) == 0x3F82, "tie rounds to even (up)");
    /* just above the halfway point rounds up */
    CHECK(mb_bf16_from_f32(float_of(0x3F808001u)) == 0x3F81, "above the tie rounds up");
    /* relative error of a conversion is at most the unit roundoff 2^-8 (8 significant bits) */
    rng_seed(11);
    for (int i = 0; i < 10000; i++) {
        float x = (float)(rng_normal() * 1000.0);
        float r = mb_f32_from_bf16(mb_bf16_from_f32(x));
        CHECK(fabsf(r - x) <= fabsf(x) * (1.0f / 256.0f), "bf16(%g) = %g too far", x, r);
        if (test_failures) break;
    }
}

static void test_bf16_special(void) {
    CHECK(isinf(mb_f32_from_bf16(mb_bf16_from_f32(INFINITY))), "+inf stays inf");
    CHECK(mb_f32_from_bf16(mb_bf16_from_f32(-INFINITY)) < 0, "-inf stays negative");
    CHECK(isnan(mb_f32_from_bf16(mb_bf16_from_f32(NAN))), "NaN stays NaN");
    /* a NaN whose payload sits only in the low 16 bits must not become inf */
    CHECK(isnan(mb_f32_from_bf16(mb_bf16_from_f32(float_of(0x7F800001u)))), "low NaN stays NaN");
    /* FLT_MAX rounds to +inf in bf16 (its mantissa is above bf16's largest) */
    CHECK(isinf(mb_f32_from_bf16(mb_bf16_from_f32(FLT_MAX))), "FLT_MAX overflows to inf");
}

/* A forward of naive attention at L allocates an L x L score block: the peak
 * since a reset must reflect it, and a later reset must forget it. */
static void test_memory_peak(void) {
    const int64_t L = 96, d = 4;
    double* q = rand_normal_f64(L * d, 1.0);
    double* o = zeros_f64(L * d);
    mb_attention_params p = {1, 1, L, d, 0.0, MB_DTYPE_F64, 0};
    mb_cpu_memory_reset_peak();
    CHECK(mb_cpu_memory_peak_bytes() == 0, "no scratch live between calls");
    CHECK_OK(attn_fwd_cpu(&p, q, q, q, o, NULL));
    int64_t peak = mb_cpu_memory_peak_bytes();
    CHECK(peak >= L * L * (int64_t)sizeof(double), "peak %lld below the L x L block",
          (long long)peak);
    mb_cpu_memory_reset_peak();
    CHECK(mb_cpu_memory_peak_bytes() == 0, "reset forgets the peak");
    free(q), free(o);
}

int main(void) {
    test_dtypes();
    test_bf16_rounding();
    test_bf16_special();
    test_memory_peak();
    return test_main_result("test_common");
}
