/*
 * naive.cu -- causal attention through the materialised (L, L) matrix, forward
 * and backward: the quadratic-memory baseline (what PyTorch's SDPA "math"
 * backend does), built from cuBLAS GEMMs and one row kernel each way.
 *
 * Dimension legend: B batch, H heads, H_kv K/V heads, G = H / H_kv heads per
 * K/V group, L sequence length, d head dim, ld = L rounded up to 8 (the row
 * stride of the (L, L) workspaces, so every row starts 32-byte aligned).
 *
 * Grouped-query attention without pointer arrays: the G query heads of K/V
 * head (b, g) are consecutive in q (B, H, L, d), so they form one (G*L, d)
 * matrix, and one GEMM per (b, g) -- a strided batch of B*H_kv -- computes the
 * scores of all G heads against the one K. The backward's dV = P^T dO and
 * dK = dS^T Q then sum over the G heads inside the GEMM's reduction
 * (deterministic: no atomics anywhere).
 *
 * Forward, per (b, g), rows r = (b, h, i) of the stacked (G*L, L) matrices:
 *   S   = scale Q K^T                      cuBLAS, fp32 out (workspace W)
 *   P   = causal softmax of S, lse         row kernel, in place (bf16 P for bf16)
 *   O   = P V                              cuBLAS, fp32 accumulation
 * Backward:
 *   S   = scale Q K^T -> W1;  dP = dO V^T -> W2             cuBLAS
 *   P   = exp(S - lse) (j <= i), dS = P o (dP - rowsum(dO o O))   row kernel,
 *         P into W1 and dS into W2, in place, in the activation dtype
 *   dV  = P^T dO,  dQ = scale dS K,  dK = scale dS^T Q      cuBLAS
 * bf16: GEMM inputs bf16, fp32 accumulation (CUBLAS_COMPUTE_32F), S, dP and the
 * softmax math in fp32; fp32: plain fp32 GEMMs (no TF32).
 *
 * Memory: the forward holds one (B*H, L, ld) fp32 workspace, the backward two;
 * when they do not fit the call returns MB_ERR_ALLOC (launching nothing).
 */
#include "attention/attention.h"
#include "common.cuh"

#include <cublas_v2.h>

#include <cstdio>

namespace {

// ----------------------------------------------------------------------------
// cuBLAS: one handle per (thread, device), created on first use

constexpr int kMaxDevices = 64;
thread_local cublasHandle_t handles[kMaxDevices];

mb_status cublas_fail(cublasStatus_t st, const char* what) {
    return mb_fail(MB_ERR_CUDA, "naive attention: %s failed: %s", what,
                   cublasGetStatusString(st));
}

#define CUBLAS_CHECK(call, what)                                         \
    do {                                                                 \
        cublasStatus_t st_ = (call);                                     \
        if (st_ != CUBLAS_STATUS_SUCCESS) return cublas_fail(st_, what); \
    } while (0)

/* This thread's handle for the current device, bound to `stream`. */
mb_status cublas_for(cudaStream_t stream, cublasHandle_t* out) {
    int device = 0;
    MB_CUDA_CHECK(cudaGetDevice(&device));
    if (device < 0 || device >= kMaxDevices)
        return mb_fail(MB_ERR_CUDA, "naive attention: device %d out of range", device);
    if (!handles[device]) CUBLAS_CHECK(cublasCreate(&handles[device]), "cublasCreate");
    CUBLAS_CHECK(cublasSetStream(handles[device], stream), "cublasSetStream");
    *out = handles[device];
    return MB_OK;
}

/* One operand of a row-major GEMM: a batch of matrices `stride` elements apart,
 * rows `ld` elements apart, used transposed when `trans`. */
struct Operand {
    const void* p;
    cudaDataType type;
    int64_t ld, stride;
    bool trans;
};

/* Row-major C (M, N) = alpha op(A) (M, K) op(B) (K, N) + beta C, a strided
 * batch. cuBLAS is column-major, so it computes C^T = op(B)^T op(A)^T. */
mb_status gemm_rm(cublasHandle_t h, const char* what, int64_t M, int64_t N, int64_t K,
                  float alpha, Operand A, Operand B, void* C, cudaDataType ctype, int64_t ldc,
                  int64_t strideC, int64_t batch) {
    const float beta = 0.f;
    CUBLAS_CHECK(cublasGemmStridedBatchedEx_64(
                     h, B.trans ? CUBLAS_OP_T : CUBLAS_OP_N, A.trans ? CUBLAS_OP_T : CUBLAS_OP_N,
                     N, M, K, &alpha, B.p, B.type, B.ld, B.stride, A.p, A.type, A.ld, A.stride,
                     &beta, C, ctype, ldc, strideC, batch, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT),
                 what);
    return MB_OK;
}

template <typename T> constexpr cudaDataType cuda_type();
template <> constexpr cudaDataType cuda_type<float>() { return CUDA_R_32F; }
template <> constexpr cudaDataType cuda_type<__nv_bfloat16>() { return CUDA_R_16BF; }

// ----------------------------------------------------------------------------
// shapes and workspace

struct Shape {
    int64_t B, H, Hkv, G, L, d, ld;
    float scale;
};

Shape shape_of(const mb_attention_params* p) {
    Shape s;
    s.B = p->batch, s.H = p->nheads, s.Hkv = p->nheads_kv ? p->nheads_kv : p->nheads;
    s.G = s.H / s.Hkv, s.L = p->seqlen, s.d = p->headdim;
    s.ld = (s.L + 7) / 8 * 8;
    s.scale = (float)mb_attention_scale(p->scale, p->headdim);
    return s;
}

/* Bytes of one (B*H, L, ld) fp32 workspace, or -1 when that overflows int64. */
int64_t scores_bytes(const Shape& s) {
    int64_t rows, elems, bytes;
    if (__builtin_mul_overflow(s.B * s.H, s.L, &rows) ||
        __builtin_mul_overflow(rows, s.ld, &elems) || __builtin_mul_overflow(elems, 4, &bytes))
        return -1;
    return bytes;
}

/* `count` workspaces of scores_bytes each (freed with free_scores); on failure
 * MB_ERR_ALLOC naming the quadratic memory, nothing left allocated. */
mb_status alloc_scores(const char* fn, const Shape& s, int count, float** ws,
                       cudaStream_t stream) {
    const int64_t bytes = scores_bytes(s);
    for (int k = 0; k < count; k++) ws[k] = nullptr;
    if (s.B * s.H * s.L > 0x7fffffff) /* one row-kernel block per row: grid.x */
        return mb_fail(MB_ERR_BAD_OPTION, "%s (naive): B*H*L = %lld rows exceed 2^31 - 1", fn,
                       (long long)(s.B * s.H * s.L));
    for (int k = 0; k < count; k++) {
        mb_status st = bytes < 0 ? MB_ERR_ALLOC
                                 : mb_device_alloc((void**)&ws[k], (size_t)bytes, stream);
        if (st != MB_OK) {
            char cause[256];
            snprintf(cause, sizeof cause, "%s", bytes < 0 ? "size overflows int64" : mb_last_error());
            for (int j = 0; j < k; j++) mb_device_free(ws[j], (size_t)bytes, stream);
            return mb_fail(st, "%s (naive): %d x (B*H, L, L) fp32 = %d x %lld bytes "
                           "(B*H %lld, L %lld) do not fit: %s", fn, count, count,
                           (long long)bytes, (long long)(s.B * s.H), (long long)s.L, cause);
        }
    }
    return MB_OK;
}

void free_scores(const Shape& s, int count, float** ws, cudaStream_t stream) {
    for (int k = 0; k < count; k++) mb_device_free(ws[k], (size_t)scores_bytes(s), stream);
}

/* Threads of a row kernel: enough for the row, at most 256. */
int row_threads(int64_t L) { return L > 1024 ? 256 : L > 128 ? 128 : 32; }

// ----------------------------------------------------------------------------
// block reductions (blockDim.x a multiple of 32, at most 1024)

/* (m, s) pairs of an online softmax: s = sum exp(x - m). */
__device__ __forceinline__ void merge_max_sum(float& m, float& s, float m2, float s2) {
    const float M = fmaxf(m, m2);
    if (M == -INFINITY) return; /* both empty */
    s = s * __expf(m - M) + s2 * __expf(m2 - M);
    m = M;
}

__device__ void block_max_sum(float& m, float& s) {
    __shared__ float sm[32], ss[32];
    for (int off = 16; off > 0; off >>= 1)
        merge_max_sum(m, s, __shfl_xor_sync(0xffffffffu, m, off),
                      __shfl_xor_sync(0xffffffffu, s, off));
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    if (lane == 0) sm[warp] = m, ss[warp] = s;
    __syncthreads();
    m = sm[0], s = ss[0];
    for (int w = 1; w < nwarps; w++) merge_max_sum(m, s, sm[w], ss[w]);
}

__device__ float block_sum(float x) {
    __shared__ float part[32];
    for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    if (lane == 0) part[warp] = x;
    __syncthreads();
    float total = 0.f;
    for (int w = 0; w < nwarps; w++) total += part[w]; /* fixed order: deterministic */
    return total;
}

// ----------------------------------------------------------------------------
// forward row kernel

/* One block per row r = (b, h, i) of the stacked scores. Reads S_ij, j <= i,
 * writes P_ij = exp(S_ij - m) / sum (0 for j > i) as P-typed values over the
 * start of the same row (bf16 P: the row's first ld*2 bytes; a barrier between
 * the reads and the writes of each tile keeps the overlap safe), and
 * lse_r = m + log(sum). */
template <typename P>
__global__ void causal_softmax_rows(float* __restrict__ S, /* (B*H*L, ld) in; P out */
                                   float* __restrict__ lse, /* (B*H*L) or null */
                                   int64_t L, int64_t ld) {
    const int64_t r = blockIdx.x, n = r % L + 1; /* keys 0..i */
    float* row = S + r * ld;
    P* prow = reinterpret_cast<P*>(row);
    // online max and sum over the causal part of the row
    float m = -INFINITY, s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) merge_max_sum(m, s, row[j], 1.f);
    block_max_sum(m, s);
    if (threadIdx.x == 0 && lse) lse[r] = m + logf(s);
    const float inv = 1.f / s;
    // P_ij = exp(S_ij - m) / s, masked entries exactly 0
    for (int64_t base = 0; base < L; base += blockDim.x) {
        const int64_t j = base + threadIdx.x;
        const float p = j < n ? __expf(row[j] - m) * inv : 0.f;
        if (sizeof(P) < sizeof(float)) __syncthreads();
        if (j < L) prow[j] = mb_from_float<P>(p);
    }
}

// ----------------------------------------------------------------------------
// backward row kernel

/* One block per row r = (b, h, i): D = dO_r . O_r, then for j <= i
 *   P_ij = exp(S_ij - lse_r),  dS_ij = P_ij (dP_ij - D)
 * (both 0 for j > i), written as T over the starts of the same rows of S and dP. */
template <typename T>
__global__ void causal_softmax_grad_rows(float* __restrict__ S,         /* (B*H*L, ld) in; P out */
                                         float* __restrict__ dP,        /* (B*H*L, ld) in; dS out */
                                         const float* __restrict__ lse, /* (B*H*L) */
                                         const T* __restrict__ o,       /* (B*H*L, d) */
                                         const T* __restrict__ dout,    /* (B*H*L, d) */
                                         int64_t L, int64_t ld, int64_t d) {
    const int64_t r = blockIdx.x, n = r % L + 1;
    // D_r = sum_c dO_rc O_rc
    float D = 0.f;
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x)
        D += mb_to_float(dout[r * d + c]) * mb_to_float(o[r * d + c]);
    D = block_sum(D);
    const float lse_r = lse[r];
    float* srow = S + r * ld;
    float* dprow = dP + r * ld;
    T* prow = reinterpret_cast<T*>(srow);
    T* dsrow = reinterpret_cast<T*>(dprow);
    for (int64_t base = 0; base < L; base += blockDim.x) {
        const int64_t j = base + threadIdx.x;
        float p = 0.f, ds = 0.f;
        if (j < n) {
            p = __expf(srow[j] - lse_r);
            ds = p * (dprow[j] - D);
        }
        if (sizeof(T) < sizeof(float)) __syncthreads();
        if (j < L) prow[j] = mb_from_float<T>(p), dsrow[j] = mb_from_float<T>(ds);
    }
}

// ----------------------------------------------------------------------------
// launchers

/* The batch of B*H_kv GEMMs of a K/V group: rows of the stacked (G*L, .) q-shaped
 * operands, strides between groups. */
struct Group {
    int64_t rows;     /* G*L */
    int64_t q_stride; /* G*L*d: between (b, g) groups of a (B, H, L, d) tensor */
    int64_t kv_stride; /* L*d: between (b, g) of a (B, H_kv, L, d) tensor */
    int64_t s_stride; /* G*L*ld: between groups in the fp32 workspace */
    int64_t batch;    /* B*H_kv */
};

Group group_of(const Shape& s) {
    return {s.G * s.L, s.G * s.L * s.d, s.L * s.d, s.G * s.L * s.ld, s.B * s.Hkv};
}

/* S = scale Q K^T for every group, into ws (fp32). */
template <typename T>
mb_status scores_gemm(cublasHandle_t h, const Shape& s, const void* q, const void* k, float* ws) {
    const Group g = group_of(s);
    const cudaDataType t = cuda_type<T>();
    return gemm_rm(h, "S = scale Q K^T", g.rows, s.L, s.d, s.scale,
                   {q, t, s.d, g.q_stride, false}, {k, t, s.d, g.kv_stride, true}, ws,
                   CUDA_R_32F, s.ld, g.s_stride, g.batch);
}

template <typename T>
mb_status fwd_naive(const mb_attention_params* p, const mb_attention_inputs* in, void* o,
                    void* lse, const mb_exec* ex) {
    const Shape s = shape_of(p);
    const Group g = group_of(s);
    const cudaStream_t stream = mb_stream(ex);
    const cudaDataType t = cuda_type<T>();
    const int64_t pk = sizeof(float) / sizeof(T); /* T elements per fp32 slot */
    cublasHandle_t h;
    mb_status st = cublas_for(stream, &h);
    if (st != MB_OK) return st;
    float* ws[1];
    st = alloc_scores("mb_attention_fwd_cuda", s, 1, ws, stream);
    if (st != MB_OK) return st;
    st = scores_gemm<T>(h, s, in->q, in->k, ws[0]);
    if (st == MB_OK) {
        causal_softmax_rows<T><<<(unsigned)(s.B * s.H * s.L), row_threads(s.L), 0, stream>>>(
            ws[0], (float*)lse, s.L, s.ld);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess)
            st = mb_fail(MB_ERR_CUDA, "naive attention: softmax launch: %s", cudaGetErrorString(err));
    }
    // O = P V, P read as T with row stride ld * pk
    if (st == MB_OK)
        st = gemm_rm(h, "O = P V", g.rows, s.d, s.L, 1.f, {ws[0], t, s.ld * pk, g.s_stride * pk, false},
                     {in->v, t, s.d, g.kv_stride, false}, o, t, s.d, g.q_stride, g.batch);
    free_scores(s, 1, ws, stream);
    return st;
}

template <typename T>
mb_status bwd_naive(const mb_attention_params* p, const mb_attention_inputs* in, const void* o,
                    const void* lse, const void* dout, const mb_attention_grads* gr,
                    const mb_exec* ex) {
    const Shape s = shape_of(p);
    const Group g = group_of(s);
    const cudaStream_t stream = mb_stream(ex);
    const cudaDataType t = cuda_type<T>();
    const int64_t pk = sizeof(float) / sizeof(T);
    cublasHandle_t h;
    mb_status st = cublas_for(stream, &h);
    if (st != MB_OK) return st;
    float* ws[2]; /* scores -> P, dP -> dS */
    st = alloc_scores("mb_attention_bwd_cuda", s, 2, ws, stream);
    if (st != MB_OK) return st;
    st = scores_gemm<T>(h, s, in->q, in->k, ws[0]);
    // dP = dO V^T
    if (st == MB_OK)
        st = gemm_rm(h, "dP = dO V^T", g.rows, s.L, s.d, 1.f, {dout, t, s.d, g.q_stride, false},
                     {in->v, t, s.d, g.kv_stride, true}, ws[1], CUDA_R_32F, s.ld, g.s_stride,
                     g.batch);
    if (st == MB_OK) {
        causal_softmax_grad_rows<T><<<(unsigned)(s.B * s.H * s.L), row_threads(s.L), 0, stream>>>(
            ws[0], ws[1], (const float*)lse, (const T*)o, (const T*)dout, s.L, s.ld, s.d);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess)
            st = mb_fail(MB_ERR_CUDA, "naive attention: softmax grad launch: %s",
                         cudaGetErrorString(err));
    }
    const Operand P = {ws[0], t, s.ld * pk, g.s_stride * pk, false};
    const Operand dS = {ws[1], t, s.ld * pk, g.s_stride * pk, false};
    Operand PT = P, dST = dS;
    PT.trans = dST.trans = true;
    // dV = P^T dO   (L, d): the sum over the G*L rows of the group
    if (st == MB_OK)
        st = gemm_rm(h, "dV = P^T dO", s.L, s.d, g.rows, 1.f, PT, {dout, t, s.d, g.q_stride, false},
                     gr->dv, t, s.d, g.kv_stride, g.batch);
    // dQ = scale dS K   (G*L, d)
    if (st == MB_OK)
        st = gemm_rm(h, "dQ = scale dS K", g.rows, s.d, s.L, s.scale, dS,
                     {in->k, t, s.d, g.kv_stride, false}, gr->dq, t, s.d, g.q_stride, g.batch);
    // dK = scale dS^T Q   (L, d)
    if (st == MB_OK)
        st = gemm_rm(h, "dK = scale dS^T Q", s.L, s.d, g.rows, s.scale, dST,
                     {in->q, t, s.d, g.q_stride, false}, gr->dk, t, s.d, g.kv_stride, g.batch);
    free_scores(s, 2, ws, stream);
    return st;
}

} // namespace

// ----------------------------------------------------------------------------
// registered entry points

extern "C" mb_status mb_attention_fwd_cuda_naive(const mb_attention_params* p,
                                                 const mb_attention_inputs* in, void* o,
                                                 void* lse, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return fwd_naive<__nv_bfloat16>(p, in, o, lse, ex);
    return fwd_naive<float>(p, in, o, lse, ex);
}

extern "C" mb_status mb_attention_bwd_cuda_naive(const mb_attention_params* p,
                                                 const mb_attention_inputs* in, const void* o,
                                                 const void* lse, const void* dout,
                                                 const mb_attention_grads* g, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return bwd_naive<__nv_bfloat16>(p, in, o, lse, dout, g, ex);
    return bwd_naive<float>(p, in, o, lse, dout, g, ex);
}
