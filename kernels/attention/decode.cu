/*
 * decode.cu -- one query per sequence over a KV cache (flash-decoding).
 *
 * Dimension legend: B batch, H query heads, H_kv K/V heads, G = H / H_kv heads
 * of a group, d head dim, L_max cache capacity, len_b = seqlens[b] (host array),
 * S splits of the cache, NG heads of a group handled by one block (1, 2, 4, 8).
 *   q, o      (B, H, d)           k, v   (B, H_kv, L_max, d)
 *   lse       (B, H) fp32         o_part (B, H, S, d) fp32, lse_part (B, H, S) fp32
 *
 * Kernel 1, grid (B * H_kv * ceil(G / NG), S), 128 threads: block (b, g, s)
 * reads keys [s*chunk, min((s+1)*chunk, len_b)) of K/V head (b, g) once for its
 * NG query heads. A key row of d elements is read by d/VEC threads with 16-byte
 * loads (VEC = 8 bf16 or 4 fp32), so the block reads 128/(d/VEC) keys at a time,
 * U = 4 such steps unrolled (their loads in flight together). Per key the row's
 * threads reduce q . k with shuffles, then an online softmax in base 2 (q is
 * pre-scaled by scale * log2(e)) updates the thread's running max m, sum l and
 * its VEC output columns. The key slots of the block are merged through shared
 * memory; the block writes its normalised partial output and its lse.
 * Kernel 2 (only when S > 1), one block of d threads per (b, h): merges the S
 * partials by their lse in a fixed order (deterministic):
 *   M = max_s lse_s,  w_s = exp(lse_s - M),  o = sum w_s o_s / sum w_s,
 *   lse = M + log(sum w_s)
 * With S = 1 kernel 1 writes o and lse itself.
 *
 * Splits: enough blocks for ~kBlocksPerSm blocks per SM, at least kMinChunk keys
 * per block. Cache lengths travel by value in the launch parameters, so a launch
 * covers at most kLensPerLaunch sequences (larger batches: several launches).
 */
#include "attention/attention.h"
#include "common.cuh"

#include <cstdio>

namespace {

constexpr int kThreads = 128;
constexpr int kUnroll = 4;
constexpr int kLensPerLaunch = 128;
constexpr float kLn2 = 0.6931471805599453f;

/* The launch's cache lengths, by value. */
struct Lens {
    int64_t len[kLensPerLaunch];
};

template <typename T>
struct DecodeArgs {
    const T* q;       /* (B', H, d) of this launch's sequences */
    const T* k;       /* (B', H_kv, L_max, d) */
    const T* v;       /* (B', H_kv, L_max, d) */
    T* o;             /* (B', H, d), written when splits == 1 */
    float* lse;       /* (B', H) or null, written when splits == 1 */
    float* o_part;    /* (B', H, S, d) when splits > 1 */
    float* lse_part;  /* (B', H, S) when splits > 1 */
    int64_t max_seqlen, chunk;
    int H, Hkv, G, gchunks, splits;
    float qscale; /* scale * log2(e) */
    Lens lens;
};

// ----------------------------------------------------------------------------
// 16-byte loads as VEC floats

__device__ __forceinline__ void to_floats(uint4 raw, float (&x)[8]) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int e = 0; e < 4; e++) {
        float2 f = __bfloat1622float2(h[e]);
        x[2 * e] = f.x, x[2 * e + 1] = f.y;
    }
}
__device__ __forceinline__ void to_floats(uint4 raw, float (&x)[4]) {
    x[0] = __uint_as_float(raw.x), x[1] = __uint_as_float(raw.y);
    x[2] = __uint_as_float(raw.z), x[3] = __uint_as_float(raw.w);
}

// ----------------------------------------------------------------------------
// kernel 1: one split of one K/V head for NG query heads

template <typename T, int D, int NG>
__global__ void __launch_bounds__(kThreads)
decode_split_kernel(const DecodeArgs<T> a) {
    constexpr int VEC = 16 / sizeof(T);   /* elements per 16-byte load */
    constexpr int TPR = D / VEC;          /* threads per key row */
    constexpr int SLOTS = kThreads / TPR; /* keys per step of the block */
    static_assert(TPR <= 32 && (32 % TPR) == 0, "a key row within one warp");
    __shared__ float m_s[SLOTS][NG], l_s[SLOTS][NG];
    __shared__ float acc_s[SLOTS][NG][D];

    const int gc = blockIdx.x % a.gchunks;
    const int64_t pair = blockIdx.x / a.gchunks; /* b * H_kv + g */
    const int64_t b = pair / a.Hkv;
    const int h0 = (int)(pair % a.Hkv) * a.G + gc * NG; /* first query head */
    const int ng = min(NG, a.G - gc * NG);
    const int split = blockIdx.y;
    const int slot = threadIdx.x / TPR, c0 = (threadIdx.x % TPR) * VEC;
    const int64_t len = a.lens.len[b];
    const int64_t start = split * a.chunk, end = min(start + a.chunk, len);

    // q of the NG heads, pre-scaled: s = q . k in log2 units
    float q[NG][VEC];
#pragma unroll
    for (int g = 0; g < NG; g++) {
        float x[VEC] = {};
        if (g < ng) to_floats(*reinterpret_cast<const uint4*>(a.q + (b * a.H + h0 + g) * D + c0), x);
#pragma unroll
        for (int e = 0; e < VEC; e++) q[g][e] = x[e] * a.qscale;
    }
    float m[NG], l[NG], acc[NG][VEC];
#pragma unroll
    for (int g = 0; g < NG; g++) {
        m[g] = -INFINITY, l[g] = 0.f;
#pragma unroll
        for (int e = 0; e < VEC; e++) acc[g][e] = 0.f;
    }

    const T* kbase = a.k + pair * a.max_seqlen * D + c0; /* (L_max, d) of head (b, g) */
    const T* vbase = a.v + pair * a.max_seqlen * D + c0;
    for (int64_t base = start; base < end; base += SLOTS * kUnroll) { /* uniform trip count */
        uint4 kr[kUnroll], vr[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; u++) {
            const int64_t j = base + u * SLOTS + slot;
            if (j < end) {
                kr[u] = *reinterpret_cast<const uint4*>(kbase + j * D);
                vr[u] = *reinterpret_cast<const uint4*>(vbase + j * D);
            } else {
                kr[u] = vr[u] = make_uint4(0, 0, 0, 0);
            }
        }
        // scores s[u][g] = q_g . k_j (log2 units), -inf past the end
        float s[kUnroll][NG];
#pragma unroll
        for (int u = 0; u < kUnroll; u++) {
            float kx[VEC];
            to_floats(kr[u], kx);
#pragma unroll
            for (int g = 0; g < NG; g++) {
                float dot = 0.f;
#pragma unroll
                for (int e = 0; e < VEC; e++) dot = fmaf(q[g][e], kx[e], dot);
#pragma unroll
                for (int off = TPR / 2; off > 0; off >>= 1)
                    dot += __shfl_xor_sync(0xffffffffu, dot, off);
                s[u][g] = base + u * SLOTS + slot < end ? dot : -INFINITY;
            }
        }
        // online softmax: m_new = max(m, s_u), rescale, add p_u v_u
#pragma unroll
        for (int g = 0; g < NG; g++) {
            float m_new = m[g];
#pragma unroll
            for (int u = 0; u < kUnroll; u++) m_new = fmaxf(m_new, s[u][g]);
            if (m_new == -INFINITY) continue; /* no key of this step for this slot */
            const float corr = exp2f(m[g] - m_new);
            l[g] *= corr;
#pragma unroll
            for (int e = 0; e < VEC; e++) acc[g][e] *= corr;
#pragma unroll
            for (int u = 0; u < kUnroll; u++) {
                const float p = exp2f(s[u][g] - m_new);
                float vx[VEC];
                to_floats(vr[u], vx);
                l[g] += p;
#pragma unroll
                for (int e = 0; e < VEC; e++) acc[g][e] = fmaf(p, vx[e], acc[g][e]);
            }
            m[g] = m_new;
        }
    }

    // let a programmatic dependent combine start (a no-op without one)
#if __CUDA_ARCH__ >= 900
    cudaTriggerProgrammaticLaunchCompletion();
#endif
    // merge the key slots of the block
#pragma unroll
    for (int g = 0; g < NG; g++) {
#pragma unroll
        for (int e = 0; e < VEC; e++) acc_s[slot][g][c0 + e] = acc[g][e];
        if (c0 == 0) m_s[slot][g] = m[g], l_s[slot][g] = l[g];
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < ng * D; idx += kThreads) {
        const int g = idx / D, c = idx % D;
        float M = -INFINITY;
        for (int t = 0; t < SLOTS; t++) M = fmaxf(M, m_s[t][g]);
        float lsum = 0.f, osum = 0.f;
        if (M != -INFINITY) {
            for (int t = 0; t < SLOTS; t++) {
                const float w = exp2f(m_s[t][g] - M);
                lsum = fmaf(w, l_s[t][g], lsum);
                osum = fmaf(w, acc_s[t][g][c], osum);
            }
        }
        const float out = lsum > 0.f ? osum / lsum : 0.f;
        const float lse = lsum > 0.f ? (M + log2f(lsum)) * kLn2 : -INFINITY;
        const int64_t bh = b * a.H + h0 + g;
        if (a.splits == 1) {
            a.o[bh * D + c] = mb_from_float<T>(out);
            if (a.lse && c == 0) a.lse[bh] = lse;
        } else {
            a.o_part[(bh * a.splits + split) * D + c] = out;
            if (c == 0) a.lse_part[bh * a.splits + split] = lse;
        }
    }
}

// ----------------------------------------------------------------------------
// kernel 2: merge the splits of one (b, h) by their lse

template <typename T>
__global__ void decode_combine_kernel(const float* __restrict__ o_part,   /* (B', H, S, d) */
                                      const float* __restrict__ lse_part, /* (B', H, S) */
                                      T* __restrict__ o,                  /* (B', H, d) */
                                      float* __restrict__ lse,            /* (B', H) or null */
                                      int splits, int d) {
#if __CUDA_ARCH__ >= 900
    cudaGridDependencySynchronize(); /* kernel 1's partials (returns at once without PDL) */
#endif
    const int64_t bh = blockIdx.x;
    const int c = threadIdx.x;
    const float* ls = lse_part + bh * splits;
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) M = fmaxf(M, ls[s]); /* finite: split 0 has key 0 */
    float wsum = 0.f, osum = 0.f;
    for (int s = 0; s < splits; s++) {
        const float w = __expf(ls[s] - M);
        wsum += w;
        osum = fmaf(w, o_part[(bh * splits + s) * d + c], osum);
    }
    o[bh * d + c] = mb_from_float<T>(osum / wsum);
    if (lse && c == 0) lse[bh] = M + logf(wsum);
}

// ----------------------------------------------------------------------------
// launch

/* Kernel 2 after kernel 1; with pdl, a programmatic dependent launch: its blocks
 * start as kernel 1's blocks leave their main loops and wait in
 * cudaGridDependencySynchronize() for kernel 1's results, so the launch gap
 * between the two kernels is hidden. */
template <typename T>
cudaError_t launch_combine(const DecodeArgs<T>& a, unsigned blocks, int d, cudaStream_t stream,
                           int pdl) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(blocks), cfg.blockDim = dim3(d), cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr, cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, decode_combine_kernel<T>, (const float*)a.o_part,
                              (const float*)a.lse_part, a.o, a.lse, a.splits, d);
}

int sm_count() {
    int device = 0, sms = 132;
    if (cudaGetDevice(&device) == cudaSuccess)
        (void)cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    return sms;
}

/* How the cache is split: S and the keys per split. */
struct Plan {
    int splits;
    int64_t chunk;
};

Plan plan_splits(int64_t blocks_per_split, int64_t max_len, int64_t step,
                 const mb_decode_tuning& tune) {
    const int64_t target = (int64_t)sm_count() * tune.blocks_per_sm;
    int64_t splits = (target + blocks_per_split - 1) / blocks_per_split;
    const int64_t most = (max_len + tune.min_chunk - 1) / tune.min_chunk;
    splits = splits < most ? splits : most;
    splits = splits < 1 ? 1 : splits > 1024 ? 1024 : splits;
    int64_t chunk = (max_len + splits - 1) / splits;
    chunk = (chunk + step - 1) / step * step; /* whole steps of the block */
    return {(int)((max_len + chunk - 1) / chunk), chunk};
}

template <typename T, int D, int NG>
mb_status launch_decode(const mb_attention_decode_params* p, const mb_attention_decode_inputs* in,
                        void* o, void* lse, const mb_exec* ex, const mb_decode_tuning& tune) {
    constexpr int SLOTS = kThreads / (D / (16 / (int)sizeof(T)));
    const cudaStream_t stream = mb_stream(ex);
    const int64_t B = p->batch, H = p->nheads, Hkv = p->nheads_kv ? p->nheads_kv : p->nheads;
    const int G = (int)(H / Hkv), gchunks = (G + NG - 1) / NG;
    const int64_t launch_b = B < kLensPerLaunch ? B : kLensPerLaunch;
    int64_t max_len = 1;
    for (int64_t b = 0; b < B; b++) max_len = in->seqlens[b] > max_len ? in->seqlens[b] : max_len;
    const Plan plan = plan_splits(launch_b * Hkv * gchunks, max_len, (int64_t)SLOTS * kUnroll, tune);
    const float scale = (float)mb_attention_scale(p->scale, D);

    float* part = nullptr; /* o_part then lse_part, for launch_b sequences */
    const size_t part_bytes = (size_t)(launch_b * H * plan.splits) * (D + 1) * sizeof(float);
    if (plan.splits > 1) {
        mb_status st = mb_device_alloc((void**)&part, part_bytes, stream);
        if (st != MB_OK) return st;
    }
    mb_status st = MB_OK;
    for (int64_t b0 = 0; b0 < B && st == MB_OK; b0 += kLensPerLaunch) {
        const int64_t nb = B - b0 < kLensPerLaunch ? B - b0 : kLensPerLaunch;
        DecodeArgs<T> a;
        a.q = (const T*)in->q + b0 * H * D;
        a.k = (const T*)in->k + b0 * Hkv * p->max_seqlen * D;
        a.v = (const T*)in->v + b0 * Hkv * p->max_seqlen * D;
        a.o = (T*)o + b0 * H * D;
        a.lse = lse ? (float*)lse + b0 * H : nullptr;
        a.o_part = part;
        a.lse_part = part ? part + launch_b * H * plan.splits * D : nullptr;
        a.max_seqlen = p->max_seqlen, a.chunk = plan.chunk;
        a.H = (int)H, a.Hkv = (int)Hkv, a.G = G, a.gchunks = gchunks, a.splits = plan.splits;
        a.qscale = scale * kLog2e;
        for (int64_t b = 0; b < nb; b++) a.lens.len[b] = in->seqlens[b0 + b];
        const dim3 grid((unsigned)(nb * Hkv * gchunks), (unsigned)plan.splits);
        decode_split_kernel<T, D, NG><<<grid, kThreads, 0, stream>>>(a);
        cudaError_t err = cudaGetLastError();
        if (err == cudaSuccess && plan.splits > 1)
            err = launch_combine<T>(a, (unsigned)(nb * H), D, stream, tune.pdl);
        if (err != cudaSuccess)
            st = mb_fail(MB_ERR_CUDA, "attention decode: launch failed: %s", cudaGetErrorString(err));
    }
    if (part) mb_device_free(part, part_bytes, stream);
    return st;
}

/* NG: the smallest of 1, 2, 4, 8 covering the group (larger groups: chunks of 8). */
template <typename T, int D>
mb_status decode_heads(const mb_attention_decode_params* p, const mb_attention_decode_inputs* in,
                       void* o, void* lse, const mb_exec* ex, const mb_decode_tuning& tune) {
    const int64_t G = p->nheads / (p->nheads_kv ? p->nheads_kv : p->nheads);
    if (G == 1) return launch_decode<T, D, 1>(p, in, o, lse, ex, tune);
    if (G == 2) return launch_decode<T, D, 2>(p, in, o, lse, ex, tune);
    if (G <= 4) return launch_decode<T, D, 4>(p, in, o, lse, ex, tune);
    return launch_decode<T, D, 8>(p, in, o, lse, ex, tune);
}

template <typename T>
mb_status decode_dims(const mb_attention_decode_params* p, const mb_attention_decode_inputs* in,
                      void* o, void* lse, const mb_exec* ex, const mb_decode_tuning& tune) {
    switch (p->headdim) {
    case 32: return decode_heads<T, 32>(p, in, o, lse, ex, tune);
    case 64: return decode_heads<T, 64>(p, in, o, lse, ex, tune);
    case 128: return decode_heads<T, 128>(p, in, o, lse, ex, tune);
    default:
        return mb_fail(MB_ERR_BAD_OPTION, "attention decode: head dim %lld not supported "
                       "(32, 64, 128)", (long long)p->headdim);
    }
}

/* The 16-byte loads need 16-byte aligned q, k, v (cudaMalloc gives 256). */
mb_status check_aligned(const mb_attention_decode_inputs* in) {
    const void* ptrs[3] = {in->q, in->k, in->v};
    const char* names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++)
        if ((uintptr_t)ptrs[i] % 16)
            return mb_fail(MB_ERR_BAD_OPTION, "mb_attention_decode_cuda: %s must be 16-byte "
                           "aligned (got %p)", names[i], ptrs[i]);
    return MB_OK;
}

mb_status decode(const mb_attention_decode_params* p, const mb_attention_decode_inputs* in,
                 void* o, void* lse, const mb_exec* ex, const mb_decode_tuning& tune) {
    mb_status st = check_aligned(in);
    if (st != MB_OK) return st;
    if (p->dtype == MB_DTYPE_BF16)
        return decode_dims<__nv_bfloat16>(p, in, o, lse, ex, tune);
    return decode_dims<float>(p, in, o, lse, ex, tune);
}

} // namespace

// ----------------------------------------------------------------------------
// registered versions

extern "C" mb_status mb_attention_decode_cuda_tuned(const mb_attention_decode_params* p,
                                                    const mb_attention_decode_inputs* in,
                                                    void* o, void* lse, const mb_exec* ex,
                                                    const mb_decode_tuning* tune) {
    return decode(p, in, o, lse, ex, *tune);
}

/* v1: about 4 blocks per SM, at least 256 keys per split, plain launches. */
extern "C" mb_status mb_attention_decode_cuda_v1(const mb_attention_decode_params* p,
                                                 const mb_attention_decode_inputs* in, void* o,
                                                 void* lse, const mb_exec* ex) {
    return decode(p, in, o, lse, ex, {4, 256, 0});
}

/* v2: v1 + the combine as a programmatic dependent launch, at least 128 keys
 * per split (short caches get more blocks). */
extern "C" mb_status mb_attention_decode_cuda_v2(const mb_attention_decode_params* p,
                                                 const mb_attention_decode_inputs* in, void* o,
                                                 void* lse, const mb_exec* ex) {
    return decode(p, in, o, lse, ex, {4, 128, 1});
}
