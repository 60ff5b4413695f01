/*
 * internal.h -- helpers shared by every backend, not part of the public API.
 *
 *   errors:     mb_fail() records the thread's detailed message and returns the status
 *   validation: mb_validate_<op>_<fwd|bwd>() refuse a bad call before any tensor is touched
 *   scratch:    mb_arena, a list of counted host allocations freed together, and the
 *               fp64 load/store of tensors of any supported dtype
 */
#ifndef MB_INTERNAL_H
#define MB_INTERNAL_H

#include "mambabench.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* errors */

/* Record "<fmt...>" as this thread's last error and return `status`. */
mb_status mb_fail(mb_status status, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Clear the thread's last error (every successful entry point does). */
void mb_clear_error(void);

/* ------------------------------------------------------------------------ */
/* validation (src/validate.c); `fn` names the entry point in messages */

mb_status mb_validate_selective_scan_fwd(const char* fn, const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, const void* y);
mb_status mb_validate_selective_scan_bwd(const char* fn, const mb_selective_scan_params* p,
                                         const mb_selective_scan_inputs* in, const void* dy,
                                         const mb_selective_scan_grads* g);
mb_status mb_validate_selective_scan_step(const char* fn, const mb_selective_scan_params* p,
                                          const mb_selective_scan_inputs* in, const void* state,
                                          const void* y);
mb_status mb_validate_ssd_fwd(const char* fn, const mb_ssd_params* p, const mb_ssd_inputs* in,
                              const void* y);
mb_status mb_validate_ssd_bwd(const char* fn, const mb_ssd_params* p, const mb_ssd_inputs* in,
                              const void* dy, const mb_ssd_grads* g);
mb_status mb_validate_ssd_step(const char* fn, const mb_ssd_params* p, const mb_ssd_inputs* in,
                               const void* state, const void* y);
mb_status mb_validate_attention_fwd(const char* fn, const mb_attention_params* p,
                                    const mb_attention_inputs* in, const void* o);
mb_status mb_validate_attention_bwd(const char* fn, const mb_attention_params* p,
                                    const mb_attention_inputs* in, const void* o,
                                    const void* lse, const void* dout,
                                    const mb_attention_grads* g);
mb_status mb_validate_attention_decode(const char* fn, const mb_attention_decode_params* p,
                                       const mb_attention_decode_inputs* in, const void* o);


/* ------------------------------------------------------------------------ */
/* scratch memory: every block is counted by mb_cpu_memory_peak_bytes() */

#define MB_ARENA_MAX_BLOCKS 64

typedef struct {
    void* blocks[MB_ARENA_MAX_BLOCKS];
    int count;
    int failed; /* set when any allocation failed; check once after allocating */
} mb_arena;

/* n zeroed doubles (n may be 0: returns a valid 1-element block). */
double* mb_arena_zeros(mb_arena* arena, int64_t n);
/* n elements of `dtype` at src converted to doubles; NULL src gives NULL
 * (an absent optional input) without marking the arena failed. */
double* mb_arena_load(mb_arena* arena, const void* src, mb_dtype dtype, int64_t n);
void mb_arena_free(mb_arena* arena);

/* Store n doubles into dst as `dtype` (bf16 rounds to nearest even). */
void mb_store_f64(void* dst, mb_dtype dtype, const double* src, int64_t n);

/* Counted plain allocation, for code that does not fit the arena. */
void* mb_scratch_malloc(int64_t bytes);
void mb_scratch_free(void* ptr);

#ifdef __cplusplus
}
#endif
#endif /* MB_INTERNAL_H */
