/*
 * wgmma_check.cu -- checks the wgmma building blocks of wgmma_sm90.cuh on the
 * GPU (sm_90a) against a CPU product, one warpgroup, random bf16 inputs:
 *   ss:  C (64 x 64) = A B^T, A = rows 64..127 of a (128, 128) sw128 tile, B a
 *        (64, 128) sw128 tile, both K-major (desc_kmajor), 8 k steps;
 *   rs128 / rs64: C (64 x N) = X Bm, X (64 x 64) packed from registers
 *        (acc_to_a of an accumulator-layout copy), Bm the first N columns of
 *        the (64, 128) tile read MN-major (desc_mnmajor), 4 k steps.
 * Prints the max abs error of each against fp64 and exits 1 if one is over
 * 1e-3 (fp32 accumulation of bf16 products of magnitude <= 1, K <= 128).
 * Build: nvcc -std=c++17 -O2 -gencode=arch=compute_90a,code=sm_90a -I kernels \
 *          kernels/tools/wgmma_check.cu -o build/wgmma_check
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "mma_sm80.cuh"
#include "wgmma_sm90.cuh"

using namespace mbwg;
typedef __nv_bfloat16 bf16;

#define CK(x)                                                                                  \
    do {                                                                                       \
        cudaError_t e_ = (x);                                                                  \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));         \
            exit(2);                                                                           \
        }                                                                                      \
    } while (0)

/* accumulator element (row, col) of thread (warp w, lane) for n8 block j, e */
__device__ __forceinline__ void acc_rc(int w, int lane, int j, int e, int& r, int& c) {
    r = w * 16 + (lane >> 2) + (e >> 1) * 8;
    c = j * 8 + 2 * (lane & 3) + (e & 1);
}

__global__ void __launch_bounds__(128) wgmma_check_kernel(const bf16* a,  /* (128, 128) */
                                                          const bf16* b,  /* (64, 128) */
                                                          const float* x, /* (64, 64) */
                                                          float* c_ss,    /* (64, 64) */
                                                          float* c_rs128, /* (64, 128) */
                                                          float* c_rs64) { /* (64, 64) */
#ifdef MB_WGMMA_DEVICE
    __shared__ __align__(1024) bf16 As[128 * 128];
    __shared__ __align__(1024) bf16 Bs[64 * 128];
    for (int i = threadIdx.x; i < 128 * 128; i += 128) As[sw128<128>(i / 128, i % 128)] = a[i];
    for (int i = threadIdx.x; i < 64 * 128; i += 128) Bs[sw128<64>(i / 128, i % 128)] = b[i];
    fence_async_smem();
    __syncthreads();
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const uint32_t at = mbmma::smem_addr(As), bt = mbmma::smem_addr(Bs);

    float css[8][4];
    wgmma_fence();
    for (int ks = 0; ks < 8; ks++) wgmma_ss_m64n64(css, desc_kmajor<128>(at, 64, ks), desc_kmajor<64>(bt, 0, ks), ks);
    wgmma_commit();
    wgmma_wait<0>();
    fence_acc(css);

    float xa[8][4]; // X in the accumulator layout, then packed as A fragments
    for (int j = 0; j < 8; j++)
        for (int e = 0; e < 4; e++) {
            int r, c;
            acc_rc(w, lane, j, e, r, c);
            xa[j][e] = x[r * 64 + c];
        }
    uint32_t xr[4][4];
    for (int kk = 0; kk < 4; kk++) mbmma::acc_to_a(xr[kk], xa[2 * kk], xa[2 * kk + 1]);
    float c128[16][4], c64[8][4];
    mbmma::zero_acc<16>(c128);
    mbmma::zero_acc<8>(c64);
    wgmma_fence();
    for (int kk = 0; kk < 4; kk++) wgmma_rs_m64n128_bmn(c128, xr[kk], desc_mnmajor<64>(bt, kk));
    for (int kk = 0; kk < 4; kk++) wgmma_rs_m64n64_bmn(c64, xr[kk], desc_mnmajor<64>(bt, kk));
    wgmma_commit();
    wgmma_wait<0>();
    fence_acc(c128);
    fence_acc(c64);
    fence_regs(xr);

    for (int j = 0; j < 16; j++)
        for (int e = 0; e < 4; e++) {
            int r, c;
            acc_rc(w, lane, j, e, r, c);
            c_rs128[r * 128 + c] = c128[j][e];
            if (j < 8) {
                c_ss[r * 64 + c] = css[j][e];
                c_rs64[r * 64 + c] = c64[j][e];
            }
        }
#endif
}

static float urand(unsigned& s) {
    s = s * 1664525u + 1013904223u;
    return ((s >> 8) / 16777216.f) * 2.f - 1.f;
}

int main() {
    unsigned seed = 12345u;
    static bf16 ha[128 * 128], hb[64 * 128];
    static float fa[128 * 128], fb[64 * 128], hx[64 * 64];
    for (int i = 0; i < 128 * 128; i++) fa[i] = __bfloat162float(ha[i] = __float2bfloat16(urand(seed)));
    for (int i = 0; i < 64 * 128; i++) fb[i] = __bfloat162float(hb[i] = __float2bfloat16(urand(seed)));
    for (int i = 0; i < 64 * 64; i++) hx[i] = __bfloat162float(__float2bfloat16(urand(seed)));
    bf16 *da, *db;
    float *dx, *dss, *d128, *d64;
    CK(cudaMalloc(&da, sizeof ha));
    CK(cudaMalloc(&db, sizeof hb));
    CK(cudaMalloc(&dx, sizeof hx));
    CK(cudaMalloc(&dss, 64 * 64 * 4));
    CK(cudaMalloc(&d128, 64 * 128 * 4));
    CK(cudaMalloc(&d64, 64 * 64 * 4));
    CK(cudaMemcpy(da, ha, sizeof ha, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db, hb, sizeof hb, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dx, hx, sizeof hx, cudaMemcpyHostToDevice));
    CK(cudaMemset(dss, 0xFF, 64 * 64 * 4)); // NaN: an unwritten element fails
    CK(cudaMemset(d128, 0xFF, 64 * 128 * 4));
    CK(cudaMemset(d64, 0xFF, 64 * 64 * 4));
    wgmma_check_kernel<<<1, 128>>>(da, db, dx, dss, d128, d64);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    static float css[64 * 64], c128[64 * 128], c64[64 * 64];
    CK(cudaMemcpy(css, dss, sizeof css, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(c128, d128, sizeof c128, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(c64, d64, sizeof c64, cudaMemcpyDeviceToHost));
    double ess = 0, e128 = 0, e64 = 0;
    for (int r = 0; r < 64; r++)
        for (int c = 0; c < 128; c++) {
            double ref = 0;
            for (int kk = 0; kk < 64; kk++) ref += (double)hx[r * 64 + kk] * fb[kk * 128 + c];
            e128 = fmax(e128, isnan(c128[r * 128 + c]) ? 1e30 : fabs(c128[r * 128 + c] - ref));
            if (c < 64) {
                e64 = fmax(e64, isnan(c64[r * 64 + c]) ? 1e30 : fabs(c64[r * 64 + c] - ref));
                double s = 0;
                for (int kk = 0; kk < 128; kk++) s += (double)fa[(64 + r) * 128 + kk] * fb[c * 128 + kk];
                ess = fmax(ess, isnan(css[r * 64 + c]) ? 1e30 : fabs(css[r * 64 + c] - s));
            }
        }
    printf("wgmma_check: ss (K-major A, B) max err %.3g; rs128 (MN-major B) %.3g; rs64 %.3g\n", ess,
           e128, e64);
    const bool ok = ess < 1e-3 && e128 < 1e-3 && e64 < 1e-3;
    printf("wgmma_check: %s\n", ok ? "PASSED" : "FAILED");
    return ok ? 0 : 1;
}
