/*
 * common.c -- status strings, the thread's last error, dtypes and bf16
 * conversion, and the counted scratch memory of the CPU references.
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// status and errors

const char* mb_status_string(mb_status status) {
    switch (status) {
    case MB_OK: return "ok";
    case MB_ERR_NULL_POINTER: return "a required pointer is NULL";
    case MB_ERR_BAD_DIM: return "a dimension is not positive";
    case MB_ERR_OVERFLOW: return "a tensor size overflows 64-bit arithmetic";
    case MB_ERR_GROUPS: return "channels or heads not divisible by the number of groups";
    case MB_ERR_DSTATE_TOO_LARGE: return "state size N above MB_MAX_DSTATE";
    case MB_ERR_DTYPE: return "dtype unknown or unsupported by this backend";
    case MB_ERR_BAD_OPTION: return "unsupported option or option combination";
    case MB_ERR_ALLOC: return "memory allocation failed";
    case MB_ERR_NO_CUDA: return "library built without CUDA";
    case MB_ERR_NO_DEVICE: return "no usable CUDA device";
    case MB_ERR_CUDA: return "a CUDA call failed";
    case MB_ERR_NOT_IMPLEMENTED: return "not implemented for this backend";
    }
    return "unknown status";
}

static _Thread_local char last_error[512];

const char* mb_last_error(void) { return last_error; }

void mb_clear_error(void) { last_error[0] = '\0'; }

mb_status mb_fail(mb_status status, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, args);
    va_end(args);
    return status;
}

// ----------------------------------------------------------------------------
// dtypes

size_t mb_dtype_size(mb_dtype dtype) {
    switch (dtype) {
    case MB_DTYPE_F32: return 4;
    case MB_DTYPE_BF16: return 2;
    case MB_DTYPE_F16: return 2;
    case MB_DTYPE_F64: return 8;
    }
    return 0;
}

const char* mb_dtype_name(mb_dtype dtype) {
    switch (dtype) {
    case MB_DTYPE_F32: return "f32";
    case MB_DTYPE_BF16: return "bf16";
    case MB_DTYPE_F16: return "f16";
    case MB_DTYPE_F64: return "f64";
    }
    return "?";
}

mb_dtype mb_param_dtype(mb_dtype dtype) {
    return dtype == MB_DTYPE_F64 ? MB_DTYPE_F64 : MB_DTYPE_F32;
}

uint16_t mb_bf16_from_f32(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if (isnan(x)) return (uint16_t)((bits >> 16) | 0x0040u); /* keep it a quiet NaN */
    uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);        /* round to nearest even */
    return (uint16_t)((bits + rounding) >> 16);
}

float mb_f32_from_bf16(uint16_t x) {
    uint32_t bits = (uint32_t)x << 16;
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

// ----------------------------------------------------------------------------
// counted scratch memory

/* Each block carries its size in a header so that free can uncount it. */
typedef struct {
    int64_t bytes;
    int64_t pad; /* keeps the payload 16-byte aligned */
} block_header;

static _Atomic int64_t live_bytes;
static _Atomic int64_t peak_bytes;

void mb_cpu_memory_reset_peak(void) { atomic_store(&peak_bytes, atomic_load(&live_bytes)); }

int64_t mb_cpu_memory_peak_bytes(void) { return atomic_load(&peak_bytes); }

void* mb_scratch_malloc(int64_t bytes) {
    if (bytes < 0 || (uint64_t)bytes > SIZE_MAX - sizeof(block_header)) return NULL;
    block_header* h = malloc(sizeof(block_header) + (size_t)bytes);
    if (!h) return NULL;
    h->bytes = bytes;
    int64_t now = atomic_fetch_add(&live_bytes, bytes) + bytes;
    int64_t peak = atomic_load(&peak_bytes);
    while (now > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, now)) {}
    return h + 1;
}

void mb_scratch_free(void* ptr) {
    if (!ptr) return;
    block_header* h = (block_header*)ptr - 1;
    atomic_fetch_sub(&live_bytes, h->bytes);
    free(h);
}

double* mb_arena_zeros(mb_arena* arena, int64_t n) {
    if (arena->count >= MB_ARENA_MAX_BLOCKS || n < 0 ||
        (uint64_t)n > (uint64_t)INT64_MAX / sizeof(double)) {
        arena->failed = 1;
        return NULL;
    }
    int64_t count = n > 0 ? n : 1;
    double* p = mb_scratch_malloc(count * (int64_t)sizeof(double));
    if (!p) {
        arena->failed = 1;
        return NULL;
    }
    memset(p, 0, (size_t)count * sizeof(double));
    arena->blocks[arena->count++] = p;
    return p;
}

double* mb_arena_load(mb_arena* arena, const void* src, mb_dtype dtype, int64_t n) {
    if (!src) return NULL;
    double* dst = mb_arena_zeros(arena, n);
    if (!dst) return NULL;
    for (int64_t i = 0; i < n; i++) {
        switch (dtype) {
        case MB_DTYPE_F32: dst[i] = ((const float*)src)[i]; break;
        case MB_DTYPE_BF16: dst[i] = mb_f32_from_bf16(((const uint16_t*)src)[i]); break;
        case MB_DTYPE_F64: dst[i] = ((const double*)src)[i]; break;
        case MB_DTYPE_F16: arena->failed = 1; return NULL; /* refused by validation */
        }
    }
    return dst;
}

void mb_arena_free(mb_arena* arena) {
    for (int i = 0; i < arena->count; i++) mb_scratch_free(arena->blocks[i]);
    arena->count = 0;
}

void mb_store_f64(void* dst, mb_dtype dtype, const double* src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        switch (dtype) {
        case MB_DTYPE_F32: ((float*)dst)[i] = (float)src[i]; break;
        case MB_DTYPE_BF16: ((uint16_t*)dst)[i] = mb_bf16_from_f32((float)src[i]); break;
        case MB_DTYPE_F64: ((double*)dst)[i] = src[i]; break;
        case MB_DTYPE_F16: return; /* refused by validation */
        }
    }
}
