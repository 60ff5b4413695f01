/*
 * flash_sm90.cuh -- what the wgmma flash kernels (flash_fwd_sm90.cu,
 * flash_bwd_sm90.cu) share: tile loads into the sw128 layout of
 * wgmma_sm90.cuh, the 1024-byte aligned shared memory base, and the run-time
 * check that the wgmma path can run.
 */
#ifndef MB_FLASH_SM90_CUH
#define MB_FLASH_SM90_CUH

#include "flash_common.cuh"
#include "wgmma_sm90.cuh"

namespace mbflash {

using namespace mbwg;

/* Rows row0 .. row0+R-1 of a (L, D) matrix into an sw128 tile; rows >= L
 * are zero-filled. All NT threads of the block take part. */
template <int R, int D, int NT>
static __device__ __forceinline__ void load_tile_sw128(__nv_bfloat16* tile,      /* (R, D) sw128 smem */
                                                       const __nv_bfloat16* src, /* (L, D) */
                                                       int64_t row0, int64_t L) {
    constexpr int kChunks = D / 8;
#pragma unroll
    for (int it = 0; it < (R * kChunks + NT - 1) / NT; it++) {
        const int i = it * NT + threadIdx.x;
        if ((R * kChunks) % NT != 0 && i >= R * kChunks) break;
        const int r = i / kChunks, c = i % kChunks;
        const bool valid = row0 + r < L;
        const __nv_bfloat16* g = valid ? src + (row0 + r) * D + c * 8 : src;
        cp_async16(smem_addr(tile + sw128<R>(r, c * 8)), g, valid);
    }
}

/* The wgmma kernels' tile layout for kv_stage_advance (flash_common.cuh): sw128
 * tiles, each thread's cp.async data fenced into the async proxy that wgmma
 * reads through before the block barrier. */
struct Sw128Tiles {
    template <int R, int D, int NT>
    static __device__ __forceinline__ void load(__nv_bfloat16* tile, const __nv_bfloat16* src,
                                                int64_t row0, int64_t L) {
        load_tile_sw128<R, D, NT>(tile, src, row0, L);
    }
    static __device__ __forceinline__ void publish() {
#ifdef MB_WGMMA_DEVICE
        fence_async_smem();
#endif
    }
};

/* The block's dynamic shared memory from its first 1024-byte boundary (the
 * sw128 swizzle repeats every 1024 bytes; kernels ask for 1 KB more). */
static __device__ __forceinline__ unsigned char* smem_1024(unsigned char* raw) {
    const uint32_t a = smem_addr(raw);
    return raw + (((a + 1023u) & ~1023u) - a);
}

/* Can the wgmma path run: sm_90a code in this build and a compute 9.0 GPU? */
static inline bool wgmma_usable() {
#ifdef MB_HAVE_SM90A
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
        return false;
    return major == 9 && minor == 0;
#else
    return false;
#endif
}

} // namespace mbflash

#endif /* MB_FLASH_SM90_CUH */
