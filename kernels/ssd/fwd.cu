/*
 * fwd.cu -- SSD forward.
 *
 * v1: the sequential recurrence (recurrent_kernel, ssd_common.cuh), one launch.
 * v2: the chunked algorithm (ssd_chunk.cuh), three launches, no host round trip:
 *     1. chunk_state_kernel: dt', the chunk-local cumsum cs of dt' A, and each
 *        chunk's own state  S_c = sum_j exp(cs_end - cs_j) dt'_j x_j B_j^T
 *     2. state_pass_kernel: h entering chunk c, h_c = exp(cs_end(c-1)) h_{c-1} + S_{c-1},
 *        from the initial state; the final state
 *     3. chunk_scan_kernel (ROLE_Y): y_i = sum_{j<=i} exp(cs_i - cs_j) dt'_j (C_i.B_j) x_j
 *        + exp(cs_i) C_i h_c, then (+ D x) silu(z)
 *     For bf16, the weighted x of the chunk states is split into hi + lo bf16
 *     (two products against the exact B), so the final state is fp32-accurate.
 * v3: v2 + C B^T computed once per (chunk, group) by cb_kernel (fp32, tiles
 *     j <= i) and read by every head of the group: the output kernel no longer
 *     loads B or multiplies C B^T (4 launches).
 * v4: v3 with the chunk states and the output on mma.sync (ssd_mma.cuh):
 *     cp.async tiles of the whole chunk in flight, ldmatrix operands, scores
 *     decayed in registers and fed straight to the next MMA; the state pass
 *     also writes a bf16 copy of the entering states for the output kernel.
 *     bf16 with P % 64 == 0, N in {16, 32, 64, 128, 256}, chunk <= 256, at most
 *     65535 chunks (mma_fits);
 *     other calls run v3.
 * Shapes v2, v3 do not tile (P > 256, chunk > 2048) run v1.
 */
#include "ssd.h"
#include "ssd_chunk.cuh"
#include "ssd_mma.cuh"

using namespace mbssd;

template <typename T>
static mb_status fwd_recurrent(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                               void* final_state, const mb_exec* ex) {
    SsdArgs<T> a = make_args<T>(p, in);
    return launch_recurrent<T>(a, a.h0, (float*)final_state, y, mb_stream(ex));
}

/* the launches of v2 (kCB false) and v3 on a workspace of dt', cs (B, H, L),
 * states (B, NC, H, P, N) and (v3) C B^T (B, NC, G, Qa, Qa) */
template <typename T, bool kCB>
static mb_status fwd_chunked(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                             void* final_state, const mb_exec* ex) {
    const SsdArgs<T> a = make_args<T>(p, in);
    cudaStream_t st = mb_stream(ex);
    const int64_t BHL = a.Bsz * a.H * a.L, PN = a.P * a.N;
    const size_t states_bytes = floats_bytes(a.Bsz * a.NC * a.H * PN);
    const size_t bytes = 2 * floats_bytes(BHL) + states_bytes + (kCB ? floats_bytes(cb_floats(a)) : 0);
    void* base = nullptr;
    mb_status s = mb_device_alloc(&base, bytes, ex->stream);
    if (s != MB_OK) return s;
    ChunkWork w;
    w.dtp = (float*)base;
    w.cs = (float*)((char*)base + floats_bytes(BHL));
    w.states = (float*)((char*)base + 2 * floats_bytes(BHL));
    float* cb = kCB ? (float*)((char*)base + 2 * floats_bytes(BHL) + states_bytes) : nullptr;
    ScanOut<T> o = {w.states, (T*)y, nullptr, nullptr, nullptr, cb};
    s = kCB ? launch_cb<T>(a, cb, st) : MB_OK;
    if (s == MB_OK) s = launch_chunk_state<T, T, false>(a, w, w.states, st);
    if (s == MB_OK)
        s = launch_state_pass<false>(w, w.states, a.h0, (float*)final_state, a.Bsz, a.L, a.Q,
                                     a.NC, a.H, PN, st);
    if (s == MB_OK) s = launch_chunk_scan<T, T, ROLE_Y, kCB>(a, w, o, st);
    mb_device_free(base, bytes, ex->stream);
    return s;
}

/* the launches of v4 on a workspace of dt', cs (B, H, L), fp32 states and
 * their bf16 copy (B, NC, H, P, N), C B^T (B, NC, G, Qa, Qa) */
template <int kN>
static mb_status fwd_mma(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                         void* final_state, const mb_exec* ex) {
    typedef __nv_bfloat16 bf16;
    const SsdArgs<bf16> a = make_args<bf16>(p, in);
    cudaStream_t st = mb_stream(ex);
    const int64_t BHL = a.Bsz * a.H * a.L, PN = a.P * a.N, SN = a.Bsz * a.NC * a.H * PN;
    const size_t copy_bytes = ((size_t)SN * sizeof(bf16) + 255) / 256 * 256;
    const size_t bytes = 2 * floats_bytes(BHL) + floats_bytes(SN) + copy_bytes + floats_bytes(cb_floats(a));
    void* base = nullptr;
    mb_status s = mb_device_alloc(&base, bytes, ex->stream);
    if (s != MB_OK) return s;
    char* cur = (char*)base;
    ChunkWork w;
    w.dtp = (float*)cur, cur += floats_bytes(BHL);
    w.cs = (float*)cur, cur += floats_bytes(BHL);
    w.states = (float*)cur, cur += floats_bytes(SN);
    bf16* copy = (bf16*)cur;
    cur += copy_bytes;
    float* cb = (float*)cur;
    s = launch_cb<bf16>(a, cb, st);
    if (s == MB_OK) s = launch_state_mma(a, w, w.states, st);
    if (s == MB_OK)
        s = launch_state_pass<false>(w, w.states, a.h0, (float*)final_state, a.Bsz, a.L, a.Q, a.NC,
                                     a.H, PN, st, PassOut{copy, nullptr, false});
    if (s == MB_OK) {
        const ScanMmaOut o = {copy, nullptr, cb, (bf16*)y, nullptr, nullptr};
        s = launch_scan_mma<kN>(a, w, o, st);
    }
    mb_device_free(base, bytes, ex->stream);
    return s;
}

static bool chunked_fits(const mb_ssd_params* p) {
    return p->headdim <= 256 && p->dstate <= 256 && p->chunk_size <= kMaxChunk;
}

/* v1: x (B, L, H, P) ... y (B, L, H, P), final_state (B, H, P, N) or NULL */
extern "C" mb_status mb_ssd_fwd_cuda_v1(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                                        void* final_state, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return fwd_recurrent<__nv_bfloat16>(p, in, y, final_state, ex);
    return fwd_recurrent<float>(p, in, y, final_state, ex);
}

/* v2: the chunked algorithm on tensor cores (v1 for shapes it does not tile) */
extern "C" mb_status mb_ssd_fwd_cuda_v2(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                                        void* final_state, const mb_exec* ex) {
    if (!chunked_fits(p)) return mb_ssd_fwd_cuda_v1(p, in, y, final_state, ex);
    if (p->dtype == MB_DTYPE_BF16) return fwd_chunked<__nv_bfloat16, false>(p, in, y, final_state, ex);
    return fwd_chunked<float, false>(p, in, y, final_state, ex);
}

/* v3: v2 with C B^T once per (chunk, group) */
extern "C" mb_status mb_ssd_fwd_cuda_v3(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                                        void* final_state, const mb_exec* ex) {
    if (!chunked_fits(p)) return mb_ssd_fwd_cuda_v1(p, in, y, final_state, ex);
    if (p->dtype == MB_DTYPE_BF16) return fwd_chunked<__nv_bfloat16, true>(p, in, y, final_state, ex);
    return fwd_chunked<float, true>(p, in, y, final_state, ex);
}

/* v4: v3 on mma.sync with register-resident scores (v3 for shapes it does not take) */
extern "C" mb_status mb_ssd_fwd_cuda_v4(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y,
                                        void* final_state, const mb_exec* ex) {
    if (!mma_fits(p, in) || ((uintptr_t)y & 3) != 0) /* y written as bf16 pairs */
        return mb_ssd_fwd_cuda_v3(p, in, y, final_state, ex);
    if (p->dstate <= 64) return fwd_mma<64>(p, in, y, final_state, ex); /* 16, 32: zero-padded */
    if (p->dstate == 128) return fwd_mma<128>(p, in, y, final_state, ex);
    return fwd_mma<256>(p, in, y, final_state, ex);
}
