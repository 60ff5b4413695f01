/*
 * mma_sm80.cuh -- tensor-core building blocks for sm_80+ (the H100 through
 * mma.sync), shared by the flash attention kernels and the SSD kernels:
 * cp.async into XOR-swizzled shared memory, ldmatrix fragment loads, the bf16
 * m16n8k16 MMA and the register-resident accumulator -> operand repacking.
 *
 * Fragment layouts of mma.m16n8k16 (g = lane / 4, t = lane % 4):
 *   A (16 x 16, row-major)  a0 (g, 2t..2t+1)  a1 (g+8, 2t..)  a2 (g, 8+2t..)  a3 (g+8, 8+2t..)
 *   B (16 x 8,  k x n)      b0 (k 2t..2t+1, n g)   b1 (k 8+2t.., n g)
 *   C (16 x 8, fp32)        c0,c1 (g, 2t..2t+1)    c2,c3 (g+8, 2t..2t+1)
 * A tile of R rows x D bf16 (D a multiple of 64) lives in shared memory
 * row-major with its 16-byte chunks XOR-swizzled: chunk c of row r sits at
 * chunk c ^ (r % 8), so the 8 row addresses of one ldmatrix hit 8 distinct
 * bank groups (no conflicts), and cp.async writes whole 16-byte chunks.
 */
#ifndef MB_MMA_SM80_CUH
#define MB_MMA_SM80_CUH

#include <cuda_bf16.h>
#include <stdint.h>

namespace mbmma {

static __device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16 bytes global -> shared, zero-filled when !valid (then src is not read). */
static __device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(valid ? 16 : 0));
}
/* 4 bytes global -> shared (L1-cached), zero-filled when !valid. */
static __device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src),
                 "r"(valid ? 4 : 0));
}
static __device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N> static __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* Element offset of chunk `chunk` (8 bf16) of row r in a swizzled (R, D) tile. */
template <int D> static __device__ __forceinline__ int swz(int r, int chunk) {
    return r * D + ((chunk ^ (r & 7)) << 3);
}

static __device__ __forceinline__ void ldsm_x4(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
static __device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* c += a * b, bf16 inputs, fp32 accumulators. */
static __device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0,
                                                uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
        "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats as one bf16x2 word (lo in the low half: the lower column). */
static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

static __device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* A fragment (16 x 16, rows r0.., columns 16*ks..) of a swizzled (R, D) tile. */
template <int D>
static __device__ __forceinline__ void ldsm_a(uint32_t a[4], const __nv_bfloat16* tile, int r0,
                                              int ks, int lane) {
    const int r = r0 + (lane & 7) + ((lane >> 3) & 1) * 8;
    ldsm_x4(a, smem_addr(tile + swz<D>(r, ks * 2 + (lane >> 4))));
}

/* B fragments of two n8 tiles when B^T is stored (n rows, k columns), as K in
 * Q K^T: rows n0..n0+15, columns 16*ks..: {b[0], b[1]} n0.., {b[2], b[3]} n0+8.. */
template <int D>
static __device__ __forceinline__ void ldsm_b_nk(uint32_t b[4], const __nv_bfloat16* tile,
                                                 int n0, int ks, int lane) {
    const int r = n0 + (lane & 7) + (lane >> 4) * 8;
    ldsm_x4(b, smem_addr(tile + swz<D>(r, ks * 2 + ((lane >> 3) & 1))));
}

/* B fragments of two n8 tiles when B is stored (k rows, n columns), as V in
 * P V: rows k0..k0+15, columns 16*np..: {b[0], b[1]} n 16np.., {b[2], b[3]} 16np+8.. */
template <int D>
static __device__ __forceinline__ void ldsm_b_kn(uint32_t b[4], const __nv_bfloat16* tile,
                                                 int k0, int np, int lane) {
    const int r = k0 + (lane & 7) + ((lane >> 3) & 1) * 8;
    ldsm_x4_t(b, smem_addr(tile + swz<D>(r, np * 2 + (lane >> 4))));
}

/* The fp32 accumulators of a 16 x 16k slice (n8 tiles 2k, 2k+1) as the A
 * fragment of the next MMA (P in P V, dS in dS K). */
static __device__ __forceinline__ void acc_to_a(uint32_t a[4], const float c0[4],
                                                const float c1[4]) {
    a[0] = pack_bf16(c0[0], c0[1]);
    a[1] = pack_bf16(c0[2], c0[3]);
    a[2] = pack_bf16(c1[0], c1[1]);
    a[3] = pack_bf16(c1[2], c1[3]);
}

template <int N>
static __device__ __forceinline__ void zero_acc(float a[N][4]) {
#pragma unroll
    for (int j = 0; j < N; j++) a[j][0] = a[j][1] = a[j][2] = a[j][3] = 0.f;
}

/* A fragment (16 x 16: rows m0.., columns k0..) when A^T is stored (k rows,
 * m columns) in a swizzled (R, D) tile, as x^T in the SSD chunk states. */
template <int D>
static __device__ __forceinline__ void ldsm_a_km(uint32_t a[4], const __nv_bfloat16* tile, int k0,
                                                 int m0, int lane) {
    const int r = k0 + (lane & 7) + (lane >> 4) * 8;
    ldsm_x4_t(a, smem_addr(tile + swz<D>(r, (m0 >> 3) + ((lane >> 3) & 1))));
}

} // namespace mbmma

#endif /* MB_MMA_SM80_CUH */
