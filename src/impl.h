/*
 * impl.h -- what an implementation of an op is, for the registry (src/registry.c)
 * and the API layer (src/api.c). Not part of the public API.
 *
 * An implementation is one function per op and direction. It is called only
 * after the API layer has validated every argument (src/validate.c), checked
 * that the implementation supports the call (dtype, N, head dim: its entry's
 * `supports`), and, for CUDA entries, that a device is present. So it does the
 * math and nothing else: no validation, no error-message clearing.
 *
 *   CPU entries (reference/): receive every tensor as fp64 (the API layer
 *     loads and stores the caller's dtype), so the references are the math alone.
 *   CUDA entries (kernels/<op>/): receive the caller's device pointers in the
 *     caller's dtype, and follow the launch contract of include/mambabench.h:
 *     asynchronous on ex->stream, every launch checked, workspace from
 *     mb_device_alloc()/mb_device_free() (stream-ordered, pooled, counted).
 */
#ifndef MB_IMPL_H
#define MB_IMPL_H

#include "mambabench.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What an implementation gets besides its op's own arguments. */
typedef struct {
    void* stream; /* cudaStream_t of the call (NULL = legacy default stream); CPU: unused */
    /* the scan's training pair (mb_selective_scan_fwd_save_cuda, _bwd_saved_cuda), else
     * NULL: the chunk states (B, D, ceil(L / MB_SCAN_CHUNK), N) fp32 on the device. A
     * forward that writes them sets *scan_states_written (the API layer computes them
     * otherwise); a backward may read them instead of recomputing them, or ignore them. */
    float* scan_states;
    int* scan_states_written;
} mb_exec;

/* ------------------------------------------------------------------------ */
/* one function type per op and direction (same arguments as the public entry) */

typedef mb_status (*mb_scan_fwd_fn)(const mb_selective_scan_params* p,
                                    const mb_selective_scan_inputs* in,
                                    void* y,           /* (B, D, L) */
                                    void* final_state, /* (B, D, N) or NULL */
                                    const mb_exec* ex);
typedef mb_status (*mb_scan_bwd_fn)(const mb_selective_scan_params* p,
                                    const mb_selective_scan_inputs* in,
                                    const void* dy, /* (B, D, L) */
                                    const mb_selective_scan_grads* g, const mb_exec* ex);
/* p->seqlen is 1; u, delta, z (B, D); B, C (B, G, N) */
typedef mb_status (*mb_scan_step_fn)(const mb_selective_scan_params* p,
                                     const mb_selective_scan_inputs* in,
                                     void* state, /* (B, D, N) param dtype, in/out */
                                     void* y,     /* (B, D) */
                                     const mb_exec* ex);

typedef mb_status (*mb_ssd_fwd_fn)(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                   void* y,           /* (B, L, H, P) */
                                   void* final_state, /* (B, H, P, N) or NULL */
                                   const mb_exec* ex);
typedef mb_status (*mb_ssd_bwd_fn)(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                   const void* dy,           /* (B, L, H, P) */
                                   const void* dfinal_state, /* (B, H, P, N) or NULL */
                                   const mb_ssd_grads* g, const mb_exec* ex);
/* p->seqlen is 1; x, z (B, H, P); dt (B, H); B, C (B, G, N) */
typedef mb_status (*mb_ssd_step_fn)(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                    void* state, /* (B, H, P, N) param dtype, in/out */
                                    void* y,     /* (B, H, P) */
                                    const mb_exec* ex);

typedef mb_status (*mb_attention_fwd_fn)(const mb_attention_params* p,
                                         const mb_attention_inputs* in,
                                         void* o,   /* (B, H, L, d) */
                                         void* lse, /* (B, H, L) or NULL */
                                         const mb_exec* ex);
typedef mb_status (*mb_attention_bwd_fn)(const mb_attention_params* p,
                                         const mb_attention_inputs* in,
                                         const void* o,    /* (B, H, L, d) */
                                         const void* lse,  /* (B, H, L) */
                                         const void* dout, /* (B, H, L, d) */
                                         const mb_attention_grads* g, const mb_exec* ex);
typedef mb_status (*mb_attention_decode_fn)(const mb_attention_decode_params* p,
                                            const mb_attention_decode_inputs* in,
                                            void* o,   /* (B, H, d) */
                                            void* lse, /* (B, H) or NULL */
                                            const mb_exec* ex);

/* ------------------------------------------------------------------------ */
/* a registry entry */

typedef struct {
    mb_op op;
    mb_direction dir;
    mb_backend backend;
    const char* name;  /* unique within (op, dir, backend), e.g. "v1", "naive", "reference" */
    int version;       /* numbered versions 1, 2, ...; 0 for the reference and for named
                          variants outside the numbered line (naive, flash-atomic) */
    int is_default;    /* exactly one default per (op, dir, backend) */
    unsigned dtypes;   /* bit mask of (1u << mb_dtype) it accepts */
    int max_dstate;    /* largest N it supports (scan, SSD); 0 = MB_MAX_DSTATE */
    unsigned headdims; /* attention: bit i set = head dim 8*(i+1) supported; 0 = any */
    const char* about; /* one line: what this version changes over the previous one */
    union {
        mb_scan_fwd_fn scan_fwd;
        mb_scan_bwd_fn scan_bwd;
        mb_scan_step_fn scan_step;
        mb_ssd_fwd_fn ssd_fwd;
        mb_ssd_bwd_fn ssd_bwd;
        mb_ssd_step_fn ssd_step;
        mb_attention_fwd_fn attention_fwd;
        mb_attention_bwd_fn attention_bwd;
        mb_attention_decode_fn attention_decode;
    } fn;
} mb_impl;

/* The whole table and its length (src/registry.c). */
extern const mb_impl mb_registry[];
extern const int mb_registry_count;

#define MB_DT(x) (1u << (x))
#define MB_DT_F32_BF16 (MB_DT(MB_DTYPE_F32) | MB_DT(MB_DTYPE_BF16))
#define MB_DT_CPU (MB_DT(MB_DTYPE_F32) | MB_DT(MB_DTYPE_BF16) | MB_DT(MB_DTYPE_F64))

/* ------------------------------------------------------------------------ */
/* device memory of CUDA implementations (kernels/common.cu): stream-ordered
 * allocations from a pool that keeps its memory, so a call after the first
 * does not allocate synchronously; counted for mb_cuda_memory_peak_bytes(). */

/* MB_OK when a usable GPU is present, else MB_ERR_NO_DEVICE with CUDA's reason. */
mb_status mb_require_device(const char* fn);
mb_status mb_device_alloc(void** ptr, size_t bytes, void* stream);
/* bytes: the size given to mb_device_alloc (the counters need it back) */
void mb_device_free(void* ptr, size_t bytes, void* stream);

#ifdef __cplusplus
}
#endif
#endif /* MB_IMPL_H */
