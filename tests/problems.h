/*
 * problems.h -- the shared builders of every test (tests/problems.c), one of each:
 *
 *   rng_*            one seeded xorshift64* generator (fresh data per test, never zeros)
 *   tb_round/pack/unpack   fp64 <-> a stored dtype (f32, bf16, f64), one place
 *   tb_guarded_*     poisoned outputs between two guard zones: "nothing written"
 *                    and "nothing written out of bounds" checks
 *   tb_fd_gradient   central finite differences of any scalar loss
 *   tb_tensor        a host fp64 array (rounded to the dtype) with its stored copy
 *   tb_*_problem     a problem of each op at a given shape and dtype, seeded
 *   tb_device_*      (MB_HAVE_CUDA) upload, poisoned device outputs, download
 *
 * Dimension letters as in include/mambabench.h.
 */
#ifndef MB_TEST_PROBLEMS_H
#define MB_TEST_PROBLEMS_H

#include "mambabench.h"

#include <stddef.h>
#include <stdint.h>

/* what a test that cannot run here (no CUDA, no GPU, no torch) exits with;
 * CMake gives every test SKIP_RETURN_CODE 77, so ctest counts it as skipped */
#define TB_SKIP 77

// ----------------------------------------------------------------------------
// the one RNG (xorshift64*, seeded per test so failures reproduce)

void rng_seed(uint64_t seed);
uint64_t rng_u64(void);
double rng_uniform(double lo, double hi); /* [lo, hi) */
double rng_normal(void);                  /* standard normal (Box-Muller) */

/* fresh fp64 arrays of n elements (n may be 0); the caller frees */
double* rand_uniform_f64(int64_t n, double lo, double hi);
double* rand_normal_f64(int64_t n, double stddev);
double* zeros_f64(int64_t n);
double* copy_f64(const double* src, int64_t n);
/* malloc that exits the test on failure */
void* tb_malloc(size_t bytes);

// ----------------------------------------------------------------------------
// dtypes: the one pack/unpack

/* x rounded to what `dtype` holds (bf16: nearest even) */
double tb_round(double x, mb_dtype dtype);
/* every element of x (may be NULL) rounded in place */
void tb_round_array(double* x, int64_t n, mb_dtype dtype);
/* n doubles stored as `dtype` in a new buffer (NULL for NULL); free() it */
void* tb_pack(const double* x, int64_t n, mb_dtype dtype);
/* pack into an existing buffer */
void tb_pack_into(void* dst, const double* x, int64_t n, mb_dtype dtype);
/* n elements of `dtype` into a new fp64 array; free() it */
double* tb_unpack(const void* src, int64_t n, mb_dtype dtype);

// ----------------------------------------------------------------------------
// poisoned, guarded output buffers

#define TB_POISON 0xA5
#define TB_GUARD_BYTES 128

/* `bytes` of payload filled with TB_POISON between two TB_GUARD_BYTES guards
 * of TB_POISON; free with tb_guarded_free. */
void* tb_guarded_alloc(size_t bytes);
void tb_guarded_free(void* payload);
/* both guards still TB_POISON (nothing written out of bounds) */
int tb_guards_intact(const void* payload, size_t bytes);
/* bytes [from, to) of p still TB_POISON (nothing written there) */
int tb_poisoned(const void* p, size_t from, size_t to);
/* refill [0, bytes) with TB_POISON */
void tb_poison(void* p, size_t bytes);

// ----------------------------------------------------------------------------
// finite differences

/* A scalar loss of whatever `ctx` holds; x is read through ctx. */
typedef double (*tb_loss_fn)(void* ctx);

/* out[i] = d loss / d x[i] by central differences with step
 * TOL_FD_STEP * max(1, |x[i]|); x (n) is perturbed in place and restored. */
void tb_fd_gradient(tb_loss_fn loss, void* ctx, double* x, int64_t n, double* out);

// ----------------------------------------------------------------------------
// tensors: fp64 values exactly representable in `dtype`, and their stored copy

typedef struct {
    int64_t n;      /* elements */
    mb_dtype dtype; /* of data */
    double* host;   /* (n) fp64, rounded to dtype; NULL for an absent tensor */
    void* data;     /* (n) dtype, guarded (tb_guarded_alloc); NULL for an absent tensor */
} tb_tensor;

tb_tensor tb_tensor_normal(int64_t n, mb_dtype dtype, double stddev);
tb_tensor tb_tensor_uniform(int64_t n, mb_dtype dtype, double lo, double hi);
/* host zeros, data all TB_POISON: an output */
tb_tensor tb_tensor_output(int64_t n, mb_dtype dtype);
/* data unpacked into host; returns host */
double* tb_tensor_read(tb_tensor* t);
size_t tb_tensor_bytes(const tb_tensor* t);
void tb_tensor_free(tb_tensor* t);

// ----------------------------------------------------------------------------
// problems of each op: params, and every input drawn from the shared RNG

/* which optional inputs a problem has */
enum { TB_WITH_D = 1, TB_WITH_Z = 2, TB_WITH_BIAS = 4, TB_WITH_H0 = 8, TB_WITH_ALL = 15 };

typedef struct {
    mb_selective_scan_params p;
    /* u, z ~ N(0,1); delta ~ U(-3,1); A ~ U(-2,-0.5); B, C ~ N(0,1); D ~ N(0,1); bias ~ U(-.5,.5) */
    tb_tensor u, delta, A, B, C, D, z, delta_bias;
} tb_scan_problem;

tb_scan_problem tb_scan_make(mb_selective_scan_params p, int with);
/* the stored tensors (`data`) or the fp64 values (`host`, with dtype F64) */
mb_selective_scan_inputs tb_scan_inputs(const tb_scan_problem* pr);
mb_selective_scan_inputs tb_scan_inputs_f64(const tb_scan_problem* pr);
void tb_scan_free(tb_scan_problem* pr);

typedef struct {
    mb_ssd_params p;
    /* x, z ~ N(0,1); dt ~ U(-3,1); A ~ U(-2,-0.5); B, C ~ N(0,.5); D ~ N(0,1);
     * dt_bias ~ U(-.5,.5); initial_state ~ N(0,.5) */
    tb_tensor x, dt, A, B, C, D, z, dt_bias, initial_state;
} tb_ssd_problem;

tb_ssd_problem tb_ssd_make(mb_ssd_params p, int with);
mb_ssd_inputs tb_ssd_inputs(const tb_ssd_problem* pr);
mb_ssd_inputs tb_ssd_inputs_f64(const tb_ssd_problem* pr);
void tb_ssd_free(tb_ssd_problem* pr);

typedef struct {
    mb_attention_params p;
    tb_tensor q, k, v; /* N(0,1): (B,H,L,d), (B,H_kv,L,d), (B,H_kv,L,d) */
} tb_attention_problem;

tb_attention_problem tb_attention_make(mb_attention_params p);
mb_attention_inputs tb_attention_inputs(const tb_attention_problem* pr);
mb_attention_inputs tb_attention_inputs_f64(const tb_attention_problem* pr);
void tb_attention_free(tb_attention_problem* pr);

// ----------------------------------------------------------------------------
// device tensors for the CUDA tests (the same tb_tensor, a device copy of data)

#ifdef MB_HAVE_CUDA
#include <cuda_runtime_api.h>
/* exits the test with "FAIL: <what>: <CUDA's reason>" unless err is cudaSuccess */
void tb_cuda_ok(cudaError_t err, const char* what);
/* a device copy of t->data (exits the test on a CUDA error); cudaFree it */
void* tb_device_upload(const tb_tensor* t);
/* a device buffer of t's size filled with TB_POISON bytes */
void* tb_device_poisoned(const tb_tensor* t);
/* device -> t->data -> t->host; returns t->host */
double* tb_device_download(tb_tensor* t, const void* device);
void tb_device_free(void* device);
#endif

#endif /* MB_TEST_PROBLEMS_H */
