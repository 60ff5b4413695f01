/*
 * wgmma_sm90.cuh -- Hopper warpgroup tensor-core building blocks (sm_90a):
 * shared-memory tiles in the 128-byte swizzle layout that wgmma reads, their
 * matrix descriptors, and the bf16 wgmma.mma_async shapes the kernels use.
 * Everything here compiles only for sm_90a (__CUDA_ARCH_FEAT_SM90_ALL); the
 * callers guard their kernels with MB_WGMMA_DEVICE.
 *
 * Tile layout ("sw128"): an (R, D) bf16 tile, D a multiple of 64, is stored
 * as D/64 column panels of (R, 64); a panel row is 128 bytes, and its 16-byte
 * chunk c (columns 8c..8c+7) of row r sits at chunk c ^ (r % 8). Tile bases
 * are 1024-byte aligned (the swizzle repeats every 8 rows = 1024 bytes). The
 * same tile serves as a K-major operand (rows = M or N, columns = K) and as an
 * MN-major B operand (rows = K, columns = N).
 *
 * Descriptors (PTX ISA, matrix descriptor: start address, leading and stride
 * byte offsets, all >> 4; bits 62-63 = 1: 128-byte swizzle):
 *   K-major:  8-row groups 1024 bytes apart (stride offset); a k step of 16
 *             columns moves the start address 32 bytes inside the panel row;
 *             the leading offset is unused.
 *   MN-major: the 64-column panels R*128 bytes apart (leading offset), the
 *             8-row groups along K 1024 bytes apart (stride offset); a k step
 *             of 16 rows moves the start address 2048 bytes.
 *
 * Register fragments: per warp w of the warpgroup, rows 16w..16w+15 of the 64;
 * the accumulator of m64nN holds, per n8 block j, d[j][0..3] at (g, 8j+2t..+1)
 * and (g+8, 8j+2t..+1) (g = lane/4, t = lane%4): the mma.sync C layout, so
 * mbmma::acc_to_a turns two n8 blocks into the A fragment of the next product.
 *
 * Ordering: shared memory written by the threads (cp.async included) must be
 * fenced into the async proxy (fence_async_smem) before the barrier after
 * which a wgmma reads it; registers written by the threads before a wgmma
 * reads or accumulates into them need wgmma_fence(); results are valid after
 * wgmma_wait<N>() (and fence_acc keeps the compiler from reading them early).
 */
#ifndef MB_WGMMA_SM90_CUH
#define MB_WGMMA_SM90_CUH

#include <cuda_bf16.h>
#include <stdint.h>

#include "mma_sm80.cuh" /* acc_to_a: accumulators -> A fragments */

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MB_WGMMA_DEVICE 1
#endif

namespace mbwg {

/* Element offset of (r, col) in an sw128 tile of R rows. */
template <int R>
static __host__ __device__ __forceinline__ int sw128(int r, int col) {
    return (col >> 6) * R * 64 + r * 64 + ((((col >> 3) & 7) ^ (r & 7)) << 3) + (col & 7);
}

static __device__ __forceinline__ uint64_t make_desc(uint32_t addr, uint32_t lead, uint32_t stride) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | (uint64_t)((lead & 0x3FFFF) >> 4) << 16 |
           (uint64_t)((stride & 0x3FFFF) >> 4) << 32 | (uint64_t)1 << 62;
}

/* K-major operand: rows r0.. (r0 a multiple of 8) of an sw128 tile of R rows
 * (shared address tile), k step ks (columns 16ks..16ks+15). */
template <int R>
static __device__ __forceinline__ uint64_t desc_kmajor(uint32_t tile, int r0, int ks) {
    return make_desc(tile + (ks >> 2) * R * 128 + r0 * 128 + (ks & 3) * 32, 16, 1024);
}

/* MN-major B operand: k step ks (rows 16ks..16ks+15) of an sw128 tile of R
 * rows, all of its columns as N. */
template <int R>
static __device__ __forceinline__ uint64_t desc_mnmajor(uint32_t tile, int ks) {
    return make_desc(tile + ks * 2048, R * 128, 1024);
}

#ifdef MB_WGMMA_DEVICE
static __device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
static __device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N> static __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Shared memory written by this thread, visible to the async proxy (wgmma). */
static __device__ __forceinline__ void fence_async_smem() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
/* Accumulators as compiler barriers: not read before / moved across a wait. */
template <int J> static __device__ __forceinline__ void fence_acc(float (&d)[J][4]) {
#pragma unroll
    for (int j = 0; j < J; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+f"(d[j][e])::"memory");
}
template <int K> static __device__ __forceinline__ void fence_regs(uint32_t (&a)[K][4]) {
#pragma unroll
    for (int k = 0; k < K; k++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+r"(a[k][e])::"memory");
}

/* d (64 x 64) = (accumulate ? d : 0) + A B: A (64 x 16) and B (16 x 64) in shared
 * memory, both K-major (a_desc, b_desc). */
static __device__ __forceinline__ void wgmma_ss_m64n64(float (&d)[8][4], uint64_t a_desc,
                                                     uint64_t b_desc, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
          "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
          "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
          "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
          "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
          "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
          "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
          "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
        : "l"(a_desc), "l"(b_desc), "r"(accumulate));
}

/* d (64 x 128) = (accumulate ? d : 0) + A B: A (64 x 16) and B (16 x 128) in shared
 * memory, both K-major (a_desc, b_desc). */
static __device__ __forceinline__ void wgmma_ss_m64n128(float (&d)[16][4], uint64_t a_desc,
                                                     uint64_t b_desc, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
          "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
          "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
          "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
          "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
          "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
          "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
          "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]),
          "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
          "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]),
          "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]),
          "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
          "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
          "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
          "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
          "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
        : "l"(a_desc), "l"(b_desc), "r"(accumulate));
}

/* d (64 x 64) += A B: A (64 x 16) bf16 in registers (per warp the mma.sync A
 * fragment of its 16 rows), B (16 x 64) in shared memory, MN-major (b_desc). */
static __device__ __forceinline__ void wgmma_rs_m64n64_bmn(float (&d)[8][4], const uint32_t (&a)[4],
                                                         uint64_t b_desc) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
          "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
          "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
          "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
          "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
          "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
          "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
          "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
}

/* d (64 x 128) += A B: A (64 x 16) bf16 in registers (per warp the mma.sync A
 * fragment of its 16 rows), B (16 x 128) in shared memory, MN-major (b_desc). */
static __device__ __forceinline__ void wgmma_rs_m64n128_bmn(float (&d)[16][4], const uint32_t (&a)[4],
                                                         uint64_t b_desc) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
          "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
          "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
          "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
          "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
          "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
          "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
          "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]),
          "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
          "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]),
          "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]),
          "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
          "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
          "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
          "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
          "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
}

/* The shapes above by N (64 or 128). */
template <int N>
static __device__ __forceinline__ void wgmma_ss(float (&d)[N / 8][4], uint64_t a_desc, uint64_t b_desc,
                                                int accumulate) {
    static_assert(N == 64 || N == 128, "wgmma_ss: N 64 or 128");
    if constexpr (N == 128) wgmma_ss_m64n128(d, a_desc, b_desc, accumulate);
    else wgmma_ss_m64n64(d, a_desc, b_desc, accumulate);
}
template <int N>
static __device__ __forceinline__ void wgmma_rs_bmn(float (&d)[N / 8][4], const uint32_t (&a)[4],
                                                    uint64_t b_desc) {
    static_assert(N == 64 || N == 128, "wgmma_rs_bmn: N 64 or 128");
    if constexpr (N == 128) wgmma_rs_m64n128_bmn(d, a, b_desc);
    else wgmma_rs_m64n64_bmn(d, a, b_desc);
}

/* d (64 x N) (+)= A B^T over K = D: A rows a_r0.. of the sw128 tile a_tile
 * (RA rows), B^T the sw128 tile b_tile (N rows); both K-major. */
template <int D, int N, int RA>
static __device__ __forceinline__ void wgmma_tile_x_tile_t(float (&d)[N / 8][4], uint32_t a_tile,
                                                           int a_r0, uint32_t b_tile) {
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++)
        wgmma_ss<N>(d, desc_kmajor<RA>(a_tile, a_r0, ks), desc_kmajor<N>(b_tile, 0, ks), ks);
}

/* d (64 x N) += A B over K = 16 KK rows of the sw128 tile b_tile (R rows,
 * MN-major B), A given as KK packed register fragments. */
template <int N, int KK, int R>
static __device__ __forceinline__ void wgmma_regs_x_tile(float (&d)[N / 8][4], const uint32_t (&a)[KK][4],
                                                         uint32_t b_tile) {
#pragma unroll
    for (int kk = 0; kk < KK; kk++) wgmma_rs_bmn<N>(d, a[kk], desc_mnmajor<R>(b_tile, kk));
}

/* d (64 x N) += X B and wait for it: X (64 x 16 KK) the fp32 accumulators x,
 * packed to bf16 A fragments (P in P V, dS in dS K), B 16 KK rows of the sw128
 * tile b_tile (R rows, MN-major). */
template <int N, int KK, int R>
static __device__ __forceinline__ void wgmma_acc_x_tile_wait(float (&d)[N / 8][4], const float (&x)[2 * KK][4],
                                                             uint32_t b_tile) {
    uint32_t a[KK][4];
#pragma unroll
    for (int kk = 0; kk < KK; kk++) mbmma::acc_to_a(a[kk], x[2 * kk], x[2 * kk + 1]);
    wgmma_fence(); // d and a written by the threads
    wgmma_regs_x_tile<N, KK, R>(d, a, b_tile);
    wgmma_commit();
    wgmma_wait<0>();
    fence_acc(d);
    fence_regs(a);
}
#endif /* MB_WGMMA_DEVICE */

} // namespace mbwg

#endif /* MB_WGMMA_SM90_CUH */
