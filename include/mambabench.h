/*
 * mambabench.h -- the one public C API of mambabench.
 *
 * Three sequence mixers, each with a forward, a backward and a decoding
 * entry point, each on two backends (CPU reference, CUDA kernels where built):
 *   selective scan (Mamba-1)   mb_selective_scan_{fwd,bwd,step}_{cpu,cuda}
 *   SSD (Mamba-2)              mb_ssd_{fwd,bwd,step}_{cpu,cuda}
 *   causal attention           mb_attention_{fwd,bwd,decode}_{cpu,cuda}
 * Each (op, direction, backend) can have several registered implementations
 * (numbered kernel versions); see "Implementations" at the end.
 *
 * Dimension legend (the letters used in every shape comment below):
 *   B = batch, L = sequence length,
 *   selective scan: D = channels, N = state size, G = groups of B/C
 *   SSD:            H = heads, P = head dim, N = state size, G = groups of B/C
 *   attention:      H = heads, d = head dim
 * Shapes are row-major, the last dimension contiguous, exactly as the
 * tensors of state-spaces/mamba and PyTorch are laid out, so results can be
 * compared element by element.
 *
 * Dtypes. Every parameter struct has one `dtype`, the storage type of the
 * activation tensors (inputs, outputs and their gradients). The "parameter
 * dtype" -- used for A, D, the biases, the SSM states and the attention
 * log-sum-exp -- is fp32 for fp32/bf16 activations (as mamba_ssm keeps them)
 * and fp64 for fp64 activations; see mb_param_dtype(). The CPU references
 * accept fp32, bf16 and fp64 and always compute in fp64. fp16 is refused.
 *
 * Errors. Every entry point validates all its arguments before it reads or
 * writes any tensor memory. On failure it returns a status other than
 * MB_OK, leaves every output untouched, and mb_last_error() (thread-local)
 * says what was wrong. Nothing in the library aborts.
 *
 * Backward convention: gradients are written (overwritten), not accumulated.
 */
#ifndef MAMBABENCH_H
#define MAMBABENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define MB_API __declspec(dllexport)
#else
#define MB_API __attribute__((visibility("default")))
#endif

#define MB_VERSION_MAJOR 0
#define MB_VERSION_MINOR 1
#define MB_VERSION_PATCH 0

/* Largest supported state size N (mamba_ssm's kernels stop at 256). */
#define MB_MAX_DSTATE 256

/* ------------------------------------------------------------------------ */
/* Status codes */

typedef enum {
    MB_OK = 0,
    MB_ERR_NULL_POINTER = 1,      /* a required pointer is NULL */
    MB_ERR_BAD_DIM = 2,           /* a dimension is <= 0 */
    MB_ERR_OVERFLOW = 3,          /* a tensor's byte size overflows int64 */
    MB_ERR_GROUPS = 4,            /* D (scan) or H (SSD) not divisible by G */
    MB_ERR_DSTATE_TOO_LARGE = 5,  /* N > MB_MAX_DSTATE */
    MB_ERR_DTYPE = 6,             /* dtype unknown or not supported by this backend */
    MB_ERR_BAD_OPTION = 7,        /* unsupported option or option combination */
    MB_ERR_ALLOC = 8,             /* host or device memory allocation failed */
    MB_ERR_NO_CUDA = 9,           /* the library was built without CUDA */
    MB_ERR_NO_DEVICE = 10,        /* built with CUDA, but no usable GPU */
    MB_ERR_CUDA = 11,             /* a CUDA call failed (see mb_last_error) */
    MB_ERR_NOT_IMPLEMENTED = 12   /* this op/backend/dtype has no implementation yet */
} mb_status;

/* A short fixed description of a status code; never NULL. */
MB_API const char* mb_status_string(mb_status status);

/* The detailed message of the last failing call on this thread (which
 * argument, which values), or "" when the last call succeeded. */
MB_API const char* mb_last_error(void);

/* ------------------------------------------------------------------------ */
/* Dtypes */

typedef enum {
    MB_DTYPE_F32 = 0,
    MB_DTYPE_BF16 = 1,
    MB_DTYPE_F16 = 2, /* declared for completeness; refused by every backend today */
    MB_DTYPE_F64 = 3
} mb_dtype;

/* Bytes per element of a dtype, 0 for an unknown one. */
MB_API size_t mb_dtype_size(mb_dtype dtype);
/* "f32", "bf16", "f16", "f64" or "?" */
MB_API const char* mb_dtype_name(mb_dtype dtype);
/* Dtype of A, D, biases, states and lse for activations of `dtype`. */
MB_API mb_dtype mb_param_dtype(mb_dtype dtype);
/* bf16 <-> fp32 (round to nearest even; NaN stays NaN). */
MB_API uint16_t mb_bf16_from_f32(float x);
MB_API float mb_f32_from_bf16(uint16_t x);

/* ------------------------------------------------------------------------ */
/* Selective scan (Mamba-1)
 *   delta' = softplus(delta + delta_bias)   (bias and softplus optional)
 *   h_t    = exp(delta'_t * A) * h_{t-1} + delta'_t * B_t * u_t     h_{-1} = 0
 *   y_t    = C_t . h_t + D * u_t,   then   y_t *= silu(z_t)   if z given
 * Channel d uses the B/C group g = d / (D / G). */

typedef struct {
    int64_t batch;       /* B */
    int64_t dim;         /* D, channels */
    int64_t seqlen;      /* L */
    int64_t dstate;      /* N, 1..MB_MAX_DSTATE */
    int64_t ngroups;     /* G, divides D */
    mb_dtype dtype;      /* of u, delta, B, C, z, y and their gradients */
    int delta_softplus;  /* 0 or 1 */
} mb_selective_scan_params;

typedef struct {
    const void* u;          /* (B, D, L)    dtype */
    const void* delta;      /* (B, D, L)    dtype */
    const void* A;          /* (D, N)       param dtype, real */
    const void* B;          /* (B, G, N, L) dtype */
    const void* C;          /* (B, G, N, L) dtype */
    const void* D;          /* (D)          param dtype, optional (NULL) */
    const void* z;          /* (B, D, L)    dtype, optional (NULL) */
    const void* delta_bias; /* (D)          param dtype, optional (NULL) */
} mb_selective_scan_inputs;

typedef struct {
    void* du;          /* (B, D, L)    dtype */
    void* ddelta;      /* (B, D, L)    dtype */
    void* dA;          /* (D, N)       param dtype */
    void* dB;          /* (B, G, N, L) dtype */
    void* dC;          /* (B, G, N, L) dtype */
    void* dD;          /* (D)          param dtype; required iff inputs.D given */
    void* dz;          /* (B, D, L)    dtype;       required iff inputs.z given */
    void* ddelta_bias; /* (D)          param dtype; required iff delta_bias given */
} mb_selective_scan_grads;

/* y: (B, D, L) dtype. final_state: (B, D, N) param dtype, may be NULL. */
MB_API mb_status mb_selective_scan_fwd_cpu(const mb_selective_scan_params* params,
                                           const mb_selective_scan_inputs* in,
                                           void* y, void* final_state);
/* dy: (B, D, L) dtype. */
MB_API mb_status mb_selective_scan_bwd_cpu(const mb_selective_scan_params* params,
                                           const mb_selective_scan_inputs* in,
                                           const void* dy,
                                           const mb_selective_scan_grads* grads);

/* One-token step (decoding), mamba_ssm's selective_state_update: params->seqlen
 * must be 1, so u, delta, z are (B, D) and B, C are (B, G, N) -- the layouts
 * above with L = 1. state: (B, D, N) param dtype, read as h_{t-1} and
 * overwritten with h_t. y: (B, D) dtype. */
MB_API mb_status mb_selective_scan_step_cpu(const mb_selective_scan_params* params,
                                            const mb_selective_scan_inputs* in, void* state,
                                            void* y);

/* ------------------------------------------------------------------------ */
/* SSD (Mamba-2): a selective scan whose A is one scalar per head and whose
 * state is (P, N) per head, B/C shared by the P channels of a head.
 *   dt'  = softplus(dt + dt_bias)            (bias and softplus optional)
 *   h_t  = exp(dt'_t * A_h) * h_{t-1} + dt'_t * x_t B_t^T     (P, N)
 *   y_t  = h_t C_t + D_h * x_t,   then  y_t *= silu(z_t)  if z given
 * Head h uses group g = h / (H / G). h_{-1} = initial_state or 0. */

typedef enum {
    MB_SSD_CHUNKED = 0,   /* intra-chunk quadratic + inter-chunk recurrence (default) */
    MB_SSD_RECURRENT = 1, /* the sequential recurrence, one step per token */
    MB_SSD_QUADRATIC = 2  /* y = (M o C B^T) x with the 1-semiseparable mask M */
} mb_ssd_form;

typedef struct {
    int64_t batch;      /* B */
    int64_t seqlen;     /* L */
    int64_t nheads;     /* H */
    int64_t headdim;    /* P */
    int64_t dstate;     /* N, 1..MB_MAX_DSTATE */
    int64_t ngroups;    /* G, divides H */
    int64_t chunk_size; /* > 0; any L is allowed, the last chunk may be short */
    mb_dtype dtype;     /* of x, dt, B, C, z, y and their gradients */
    int dt_softplus;    /* 0 or 1 */
    mb_ssd_form form;   /* which formulation the CPU reference runs; CUDA ignores it */
    int state_bf16;     /* the step's state storage: 0 = param dtype (fp32), 1 = bf16
                           (needs bf16 activations; math stays fp32; half the bytes per
                           token, as mamba_ssm's decode cache of a bf16 model). The
                           forward and backward take 0 only. */
} mb_ssd_params;

typedef struct {
    const void* x;             /* (B, L, H, P) dtype */
    const void* dt;            /* (B, L, H)    dtype */
    const void* A;             /* (H)          param dtype */
    const void* B;             /* (B, L, G, N) dtype */
    const void* C;             /* (B, L, G, N) dtype */
    const void* D;             /* (H)          param dtype, optional */
    const void* z;             /* (B, L, H, P) dtype, optional */
    const void* dt_bias;       /* (H)          param dtype, optional */
    const void* initial_state; /* (B, H, P, N) param dtype, optional */
} mb_ssd_inputs;

typedef struct {
    void* dx;             /* (B, L, H, P) dtype */
    void* ddt;            /* (B, L, H)    dtype */
    void* dA;             /* (H)          param dtype */
    void* dB;             /* (B, L, G, N) dtype */
    void* dC;             /* (B, L, G, N) dtype */
    void* dD;             /* (H)          param dtype;  required iff D given */
    void* dz;             /* (B, L, H, P) dtype;        required iff z given */
    void* ddt_bias;       /* (H)          param dtype;  required iff dt_bias given */
    void* dinitial_state; /* (B, H, P, N) param dtype;  required iff initial_state given */
} mb_ssd_grads;

/* y: (B, L, H, P) dtype. final_state: (B, H, P, N) param dtype, may be NULL. */
MB_API mb_status mb_ssd_fwd_cpu(const mb_ssd_params* params, const mb_ssd_inputs* in,
                                void* y, void* final_state);
/* dy: (B, L, H, P) dtype. dfinal_state: (B, H, P, N) param dtype, may be NULL
 * (treated as zero). */
MB_API mb_status mb_ssd_bwd_cpu(const mb_ssd_params* params, const mb_ssd_inputs* in,
                                const void* dy, const void* dfinal_state,
                                const mb_ssd_grads* grads);

/* One-token step: params->seqlen must be 1, so x, z are (B, H, P), dt is (B, H),
 * B, C are (B, G, N); initial_state must be NULL (the state is `state`).
 * state: (B, H, P, N) param dtype (bf16 with params->state_bf16), in/out.
 * y: (B, H, P) dtype. chunk_size and form are ignored. */
MB_API mb_status mb_ssd_step_cpu(const mb_ssd_params* params, const mb_ssd_inputs* in,
                                 void* state, void* y);

/* ------------------------------------------------------------------------ */
/* Causal attention
 *   S = scale * Q K^T, masked to -inf above the diagonal,
 *   O = softmax(S) V,  lse_i = log sum_j exp(S_ij)
 * Grouped-query attention: head h reads K/V head h / (H / H_kv). */

typedef struct {
    int64_t batch;     /* B */
    int64_t nheads;    /* H */
    int64_t seqlen;    /* L */
    int64_t headdim;   /* d */
    double scale;      /* 0 means 1/sqrt(d); must be finite and >= 0 */
    mb_dtype dtype;    /* of q, k, v, o and their gradients */
    int64_t nheads_kv; /* H_kv, divides H; 0 means H (plain multi-head attention) */
} mb_attention_params;

typedef struct {
    const void* q; /* (B, H, L, d)    dtype */
    const void* k; /* (B, H_kv, L, d) dtype */
    const void* v; /* (B, H_kv, L, d) dtype */
} mb_attention_inputs;

typedef struct {
    void* dq; /* (B, H, L, d)    dtype */
    void* dk; /* (B, H_kv, L, d) dtype */
    void* dv; /* (B, H_kv, L, d) dtype */
} mb_attention_grads;

/* o: (B, H, L, d) dtype. lse: (B, H, L) param dtype, may be NULL (the backward needs it). */
MB_API mb_status mb_attention_fwd_cpu(const mb_attention_params* params,
                                      const mb_attention_inputs* in, void* o, void* lse);
/* o, lse from the forward; dout: (B, H, L, d) dtype. */
MB_API mb_status mb_attention_bwd_cpu(const mb_attention_params* params,
                                      const mb_attention_inputs* in, const void* o,
                                      const void* lse, const void* dout,
                                      const mb_attention_grads* grads);

/* Decoding: one new query per sequence over a KV cache, sequence b attending
 * to its first seqlens[b] cached positions (the new token's own K/V included). */
typedef struct {
    int64_t batch;      /* B */
    int64_t nheads;     /* H */
    int64_t nheads_kv;  /* H_kv, divides H; 0 means H */
    int64_t headdim;    /* d */
    int64_t max_seqlen; /* L_max, the cache capacity */
    double scale;       /* 0 means 1/sqrt(d) */
    mb_dtype dtype;     /* of q, k, v, o */
} mb_attention_decode_params;

typedef struct {
    const void* q;          /* (B, H, d)            dtype */
    const void* k;          /* (B, H_kv, L_max, d)  dtype */
    const void* v;          /* (B, H_kv, L_max, d)  dtype */
    const int64_t* seqlens; /* (B) HOST array, each in 1..L_max (both backends) */
} mb_attention_decode_inputs;

/* o: (B, H, d) dtype; lse: (B, H) param dtype, may be NULL. */
MB_API mb_status mb_attention_decode_cpu(const mb_attention_decode_params* params,
                                         const mb_attention_decode_inputs* in, void* o,
                                         void* lse);

/* ------------------------------------------------------------------------ */
/* CUDA backend. Same semantics and layouts as the CPU entry points; every
 * tensor pointer is a device pointer (except decode's seqlens), and `stream`
 * is a cudaStream_t (NULL = the legacy default stream).
 *
 * The launch contract, kept by every CUDA entry point:
 *   - validation first, on the host, before anything is launched; a refused
 *     call launches nothing and writes nothing;
 *   - asynchronous: the work is queued on `stream` and the call returns
 *     without synchronizing (MB_OK means "launched"; an error that happens
 *     on the device later surfaces at the caller's next synchronization);
 *   - every launch is checked (cudaGetLastError), and every error path frees
 *     what the call allocated;
 *   - workspace: stream-ordered allocations (cudaMallocAsync) from a pool
 *     that keeps its memory, so only the first call at a size allocates from
 *     the driver and no timed call allocates synchronously; every byte is
 *     counted in mb_cuda_memory_peak_bytes();
 *   - tensors are contiguous in the layouts above (no strides);
 *   - without CUDA in the build every entry validates, then returns
 *     MB_ERR_NO_CUDA; without a GPU MB_ERR_NO_DEVICE; an op with no CUDA
 *     implementation registered MB_ERR_NOT_IMPLEMENTED (never a silent
 *     wrong number). */

/* Number of usable CUDA devices; 0 without CUDA in the build or without a GPU. */
MB_API int mb_cuda_device_count(void);

MB_API mb_status mb_selective_scan_fwd_cuda(const mb_selective_scan_params* params,
                                            const mb_selective_scan_inputs* in,
                                            void* y, void* final_state, void* stream);
MB_API mb_status mb_selective_scan_bwd_cuda(const mb_selective_scan_params* params,
                                            const mb_selective_scan_inputs* in,
                                            const void* dy,
                                            const mb_selective_scan_grads* grads,
                                            void* stream);
MB_API mb_status mb_selective_scan_step_cuda(const mb_selective_scan_params* params,
                                             const mb_selective_scan_inputs* in, void* state,
                                             void* y, void* stream);
/* The training pair: the forward also saves the state at the start of every
 * MB_SCAN_CHUNK-step chunk, and the backward reads those states instead of
 * recomputing them (what mamba_ssm's forward saves for its backward).
 * chunk_states: (B, D, ceil(L / MB_SCAN_CHUNK), N) fp32, device memory of
 * mb_selective_scan_chunk_states_numel() floats; entry c is h_{c*128-1}, the
 * state before step c*128 (entry 0 is the zero start). The backward must get
 * the states its forward saved from the same inputs; its gradients then equal
 * mb_selective_scan_bwd_cuda's within the tolerances of the tests. CUDA only
 * (the CPU references recompute what they need). */
#define MB_SCAN_CHUNK 128
/* B * D * ceil(L / MB_SCAN_CHUNK) * N, or 0 when a dimension is <= 0 or the
 * states' byte size would overflow int64 */
MB_API int64_t mb_selective_scan_chunk_states_numel(const mb_selective_scan_params* params);
MB_API mb_status mb_selective_scan_fwd_save_cuda(const mb_selective_scan_params* params,
                                                 const mb_selective_scan_inputs* in, void* y,
                                                 void* final_state, void* chunk_states,
                                                 void* stream);
MB_API mb_status mb_selective_scan_bwd_saved_cuda(const mb_selective_scan_params* params,
                                                  const mb_selective_scan_inputs* in,
                                                  const void* dy, const void* chunk_states,
                                                  const mb_selective_scan_grads* grads,
                                                  void* stream);
MB_API mb_status mb_ssd_fwd_cuda(const mb_ssd_params* params, const mb_ssd_inputs* in,
                                 void* y, void* final_state, void* stream);
MB_API mb_status mb_ssd_bwd_cuda(const mb_ssd_params* params, const mb_ssd_inputs* in,
                                 const void* dy, const void* dfinal_state,
                                 const mb_ssd_grads* grads, void* stream);
MB_API mb_status mb_ssd_step_cuda(const mb_ssd_params* params, const mb_ssd_inputs* in,
                                  void* state, void* y, void* stream);
MB_API mb_status mb_attention_fwd_cuda(const mb_attention_params* params,
                                       const mb_attention_inputs* in, void* o, void* lse,
                                       void* stream);
MB_API mb_status mb_attention_bwd_cuda(const mb_attention_params* params,
                                       const mb_attention_inputs* in, const void* o,
                                       const void* lse, const void* dout,
                                       const mb_attention_grads* grads, void* stream);
MB_API mb_status mb_attention_decode_cuda(const mb_attention_decode_params* params,
                                          const mb_attention_decode_inputs* in, void* o,
                                          void* lse, void* stream);

/* Peak extra device memory (workspace bytes live at once) of the CUDA
 * implementations since the last reset, counted over all threads and streams. */
MB_API void mb_cuda_memory_reset_peak(void);
MB_API int64_t mb_cuda_memory_peak_bytes(void);
/* The workspace pool keeps freed memory, so that a call after the first at a
 * size allocates nothing from the driver. This gives its unused memory back
 * (after synchronizing the device): say, before allocating large tensors of
 * your own after a call that needed a large workspace (naive attention's
 * L x L). MB_OK, or MB_ERR_CUDA; MB_OK without CUDA. */
MB_API mb_status mb_cuda_memory_trim(void);

/* ------------------------------------------------------------------------ */
/* Implementations. Every (op, direction, backend) has a table of registered
 * implementations: the CPU reference, numbered CUDA versions ("v1", "v2", ...)
 * and named variants. The public entry points call the selected one of their
 * (op, direction, backend): the default unless this thread selected another. */

typedef enum {
    MB_OP_SELECTIVE_SCAN = 0,
    MB_OP_SSD = 1,
    MB_OP_ATTENTION = 2,
    MB_OP_COUNT = 3
} mb_op;

typedef enum {
    MB_DIR_FWD = 0,
    MB_DIR_BWD = 1,
    MB_DIR_STEP = 2,   /* one-token state update (scan, SSD) */
    MB_DIR_DECODE = 3, /* one query over a KV cache (attention) */
    MB_DIR_COUNT = 4
} mb_direction;

typedef enum { MB_BACKEND_CPU = 0, MB_BACKEND_CUDA = 1, MB_BACKEND_COUNT = 2 } mb_backend;

typedef struct {
    const char* name;  /* unique within its (op, direction, backend) */
    int version;       /* 1, 2, ... for numbered versions; 0 otherwise */
    int is_default;    /* the one the entry point uses unless another is selected */
    unsigned dtypes;   /* bit (1u << mb_dtype) set for each dtype it accepts */
    int max_dstate;    /* largest N it accepts (scan, SSD) */
    unsigned headdims; /* attention: bit i set = head dim 8*(i+1) accepted; 0 = any */
    const char* about; /* one line: what it is, or what it changes over the previous version */
} mb_impl_info;

/* "selective_scan", "ssd", "attention"; "fwd", "bwd", "step", "decode";
 * "cpu", "cuda"; "?" for a value out of range. */
MB_API const char* mb_op_name(mb_op op);
MB_API const char* mb_direction_name(mb_direction dir);
MB_API const char* mb_backend_name(mb_backend backend);

/* Number of implementations registered for (op, dir, backend); 0 for none
 * (or arguments out of range). A build without CUDA registers none for CUDA. */
MB_API int mb_impl_count(mb_op op, mb_direction dir, mb_backend backend);
/* Describe implementation `index` (0 .. count-1) of (op, dir, backend). */
MB_API mb_status mb_impl_get(mb_op op, mb_direction dir, mb_backend backend, int index,
                             mb_impl_info* info);
/* Select the implementation that this thread's calls of (op, dir, backend)
 * use: by name ("v2"), by version number written in decimal ("2"), or NULL /
 * "default" for the default. An unknown name is MB_ERR_BAD_OPTION, listing
 * the known ones, and leaves the selection as it was. Thread-local: other
 * threads are unaffected. With the default selected, a call the default does
 * not support (dtype, N, head dim) runs on the first registered
 * implementation that does -- fp32 attention on CUDA runs "naive", the flash
 * kernels being bf16-only; with an explicit selection it is refused. */
MB_API mb_status mb_impl_select(mb_op op, mb_direction dir, mb_backend backend,
                                const char* name);
/* The name of this thread's selected implementation of (op, dir, backend),
 * or NULL when none is registered. */
MB_API const char* mb_impl_selected(mb_op op, mb_direction dir, mb_backend backend);

/* ------------------------------------------------------------------------ */
/* Host memory accounting of the CPU references: every scratch buffer they
 * allocate is counted, so benchmarks can report peak workspace per call. */

MB_API void mb_cpu_memory_reset_peak(void);
/* Peak bytes of reference scratch memory live at once since the last reset. */
MB_API int64_t mb_cpu_memory_peak_bytes(void);

#ifdef __cplusplus
}
#endif
#endif /* MAMBABENCH_H */
