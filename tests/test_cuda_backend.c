/*
 * test_cuda_backend.c -- the CUDA entry points against the CPU reference.
 *
 * Without CUDA in the build, or without a GPU, it prints why it skips and
 * exits 0. With a GPU, each op's forward and backward runs on fresh random
 * inputs in fp32 and bf16 and is compared with the fp64 CPU reference on the
 * same (rounded) inputs, with the GPU tolerances of tests/tolerances.h. An op
 * whose kernel is not written yet (MB_ERR_NOT_IMPLEMENTED) is reported as
 * such and counted; any other status is a failure.
 */
#include "testing.h"
#include "tolerances.h"

#ifndef MB_HAVE_CUDA
int main(void) {
    printf("test_cuda_backend: SKIP: mambabench was built without CUDA (no nvcc, or MB_CUDA=OFF)\n");
    return 0;
}
#else

#include <cuda_runtime_api.h>

static int not_implemented = 0;

// ----------------------------------------------------------------------------
// host <-> device tensors: a host fp64 copy (rounded to the dtype) and a device copy

typedef struct {
    int64_t n;        /* elements */
    mb_dtype dtype;   /* device storage */
    double* host;     /* (n) fp64 values exactly representable in dtype */
    void* device;     /* (n) dtype */
} tensor;

static size_t tensor_bytes(const tensor* t) { return (size_t)t->n * mb_dtype_size(t->dtype); }

/* Round x to what dtype can hold, and encode it into dst[i]. */
static double encode(void* dst, int64_t i, mb_dtype dtype, double x) {
    if (dtype == MB_DTYPE_BF16) {
        uint16_t b = mb_bf16_from_f32((float)x);
        ((uint16_t*)dst)[i] = b;
        return mb_f32_from_bf16(b);
    }
    if (dtype == MB_DTYPE_F64) { ((double*)dst)[i] = x; return x; }
    ((float*)dst)[i] = (float)x;
    return (float)x;
}

static double decode(const void* src, int64_t i, mb_dtype dtype) {
    if (dtype == MB_DTYPE_BF16) return mb_f32_from_bf16(((const uint16_t*)src)[i]);
    if (dtype == MB_DTYPE_F64) return ((const double*)src)[i];
    return ((const float*)src)[i];
}

static void cuda_ok(cudaError_t err, const char* what) {
    if (err != cudaSuccess) {
        fprintf(stderr, "FAIL: %s: %s\n", what, cudaGetErrorString(err));
        exit(1);
    }
}

/* A device tensor of n random values from `values` (host fp64, rounded in place). */
static tensor tensor_upload(double* values, int64_t n, mb_dtype dtype) {
    tensor t = {n, dtype, values, NULL};
    void* staging = malloc(tensor_bytes(&t) + 8);
    for (int64_t i = 0; i < n; i++) values[i] = encode(staging, i, dtype, values[i]);
    cuda_ok(cudaMalloc(&t.device, tensor_bytes(&t) + 8), "cudaMalloc");
    cuda_ok(cudaMemcpy(t.device, staging, tensor_bytes(&t), cudaMemcpyHostToDevice), "H2D");
    free(staging);
    return t;
}

/* An output tensor on the device, pre-filled with NaN-ish garbage so that an
 * element the kernel forgets to write cannot pass. */
static tensor tensor_output(int64_t n, mb_dtype dtype) {
    tensor t = {n, dtype, zeros_f64(n), NULL};
    cuda_ok(cudaMalloc(&t.device, tensor_bytes(&t) + 8), "cudaMalloc");
    cuda_ok(cudaMemset(t.device, 0xFF, tensor_bytes(&t)), "cudaMemset");
    return t;
}

/* Copy a device tensor back to its host fp64 array. */
static double* tensor_download(tensor* t) {
    void* staging = malloc(tensor_bytes(t) + 8);
    cuda_ok(cudaMemcpy(staging, t->device, tensor_bytes(t), cudaMemcpyDeviceToHost), "D2H");
    for (int64_t i = 0; i < t->n; i++) t->host[i] = decode(staging, i, t->dtype);
    free(staging);
    return t->host;
}

static void tensor_free(tensor* t) {
    if (t->device) cudaFree(t->device);
    free(t->host);
    t->device = NULL, t->host = NULL;
}

/* MB_OK: compare; NOT_IMPLEMENTED: count; anything else fails. Returns 1 to compare. */
static int kernel_ran(const char* what, mb_status st) {
    if (st == MB_ERR_NOT_IMPLEMENTED) {
        printf("  %s: kernel not implemented yet\n", what);
        not_implemented++;
        return 0;
    }
    CHECK(st == MB_OK, "%s: %s: %s", what, mb_status_string(st), mb_last_error());
    return st == MB_OK;
}

static void compare(const char* what, tensor* gpu, const double* want, mb_dtype dtype) {
    double rtol = dtype == MB_DTYPE_BF16 ? TOL_GPU_BF16_RTOL : TOL_GPU_F32_RTOL;
    double atol = dtype == MB_DTYPE_BF16 ? TOL_GPU_BF16_ATOL : TOL_GPU_F32_ATOL;
    expect_close_f64(what, tensor_download(gpu), want, gpu->n, rtol, atol);
}

// ----------------------------------------------------------------------------
// selective scan: B=2, D=8, G=2, N=16, L=77, with D, z, bias, softplus

static void test_scan_cuda(mb_dtype dtype) {
    const int64_t B = 2, D = 8, G = 2, N = 16, L = 77;
    mb_dtype pd = mb_param_dtype(dtype);
    tensor u = tensor_upload(rand_normal_f64(B * D * L, 1.0), B * D * L, dtype);
    tensor delta = tensor_upload(rand_uniform_f64(B * D * L, -3.0, 1.0), B * D * L, dtype);
    tensor A = tensor_upload(rand_uniform_f64(D * N, -2.0, -0.5), D * N, pd);
    tensor Bm = tensor_upload(rand_normal_f64(B * G * N * L, 1.0), B * G * N * L, dtype);
    tensor Cm = tensor_upload(rand_normal_f64(B * G * N * L, 1.0), B * G * N * L, dtype);
    tensor Dv = tensor_upload(rand_normal_f64(D, 1.0), D, pd);
    tensor z = tensor_upload(rand_normal_f64(B * D * L, 1.0), B * D * L, dtype);
    tensor bias = tensor_upload(rand_uniform_f64(D, -0.5, 0.5), D, pd);
    tensor y = tensor_output(B * D * L, dtype), hN = tensor_output(B * D * N, pd);

    mb_selective_scan_params p = {B, D, L, N, G, dtype, 1};
    mb_selective_scan_inputs dev = {u.device, delta.device, A.device, Bm.device, Cm.device,
                                    Dv.device, z.device, bias.device};
    mb_selective_scan_inputs host = {u.host, delta.host, A.host, Bm.host, Cm.host,
                                     Dv.host, z.host, bias.host};
    if (kernel_ran("selective_scan fwd", mb_selective_scan_fwd_cuda(&p, &dev, y.device,
                                                                    hN.device, NULL))) {
        mb_selective_scan_params p64 = p;
        p64.dtype = MB_DTYPE_F64;
        double *y_ref = zeros_f64(y.n), *h_ref = zeros_f64(hN.n);
        CHECK_OK(mb_selective_scan_fwd_cpu(&p64, &host, y_ref, h_ref));
        compare("selective_scan fwd y", &y, y_ref, dtype);
        compare("selective_scan fwd final_state", &hN, h_ref, pd);
        free(y_ref), free(h_ref);
    }
    tensor* all[] = {&u, &delta, &A, &Bm, &Cm, &Dv, &z, &bias, &y, &hN};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(all[i]);
}

// ----------------------------------------------------------------------------
// SSD: B=2, L=150 (not a multiple of the chunk 64), H=4, P=16, N=32, G=2, with h0

static void test_ssd_cuda(mb_dtype dtype) {
    const int64_t B = 2, L = 150, H = 4, P = 16, N = 32, G = 2;
    mb_dtype pd = mb_param_dtype(dtype);
    tensor x = tensor_upload(rand_normal_f64(B * L * H * P, 1.0), B * L * H * P, dtype);
    tensor dt = tensor_upload(rand_uniform_f64(B * L * H, -3.0, 1.0), B * L * H, dtype);
    tensor A = tensor_upload(rand_uniform_f64(H, -2.0, -0.5), H, pd);
    tensor Bm = tensor_upload(rand_normal_f64(B * L * G * N, 0.5), B * L * G * N, dtype);
    tensor Cm = tensor_upload(rand_normal_f64(B * L * G * N, 0.5), B * L * G * N, dtype);
    tensor Dv = tensor_upload(rand_normal_f64(H, 1.0), H, pd);
    tensor z = tensor_upload(rand_normal_f64(B * L * H * P, 1.0), B * L * H * P, dtype);
    tensor bias = tensor_upload(rand_uniform_f64(H, -0.5, 0.5), H, pd);
    tensor h0 = tensor_upload(rand_normal_f64(B * H * P * N, 0.5), B * H * P * N, pd);
    tensor y = tensor_output(B * L * H * P, dtype), hN = tensor_output(B * H * P * N, pd);

    mb_ssd_params p = {B, L, H, P, N, G, 64, dtype, 1, MB_SSD_CHUNKED};
    mb_ssd_inputs dev = {x.device, dt.device, A.device, Bm.device, Cm.device,
                         Dv.device, z.device, bias.device, h0.device};
    mb_ssd_inputs host = {x.host, dt.host, A.host, Bm.host, Cm.host,
                          Dv.host, z.host, bias.host, h0.host};
    if (kernel_ran("ssd fwd", mb_ssd_fwd_cuda(&p, &dev, y.device, hN.device, NULL))) {
        mb_ssd_params p64 = p;
        p64.dtype = MB_DTYPE_F64;
        double *y_ref = zeros_f64(y.n), *h_ref = zeros_f64(hN.n);
        CHECK_OK(mb_ssd_fwd_cpu(&p64, &host, y_ref, h_ref));
        compare("ssd fwd y", &y, y_ref, dtype);
        compare("ssd fwd final_state", &hN, h_ref, pd);
        free(y_ref), free(h_ref);
    }
    tensor* all[] = {&x, &dt, &A, &Bm, &Cm, &Dv, &z, &bias, &h0, &y, &hN};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(all[i]);
}

// ----------------------------------------------------------------------------
// causal attention: B=2, H=3, L=200, d=64

static void test_attention_cuda(mb_dtype dtype) {
    const int64_t B = 2, H = 3, L = 200, d = 64, n = B * H * L * d;
    mb_dtype pd = mb_param_dtype(dtype);
    tensor q = tensor_upload(rand_normal_f64(n, 1.0), n, dtype);
    tensor k = tensor_upload(rand_normal_f64(n, 1.0), n, dtype);
    tensor v = tensor_upload(rand_normal_f64(n, 1.0), n, dtype);
    tensor o = tensor_output(n, dtype), lse = tensor_output(B * H * L, pd);
    mb_attention_params p = {B, H, L, d, 0.0, dtype, 0};
    if (kernel_ran("attention fwd", attn_fwd_cuda(&p, q.device, k.device, v.device,
                                                          o.device, lse.device))) {
        mb_attention_params p64 = p;
        p64.dtype = MB_DTYPE_F64;
        double *o_ref = zeros_f64(n), *lse_ref = zeros_f64(lse.n);
        CHECK_OK(attn_fwd_cpu(&p64, q.host, k.host, v.host, o_ref, lse_ref));
        compare("attention fwd o", &o, o_ref, dtype);
        compare("attention fwd lse", &lse, lse_ref, pd);
        free(o_ref), free(lse_ref);
    }
    tensor* all[] = {&q, &k, &v, &o, &lse};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(all[i]);
}

int main(void) {
    int count = mb_cuda_device_count();
    if (count == 0) {
        printf("test_cuda_backend: SKIP: no CUDA device on this machine\n");
        return 0;
    }
    rng_seed(2026);
    mb_dtype dtypes[] = {MB_DTYPE_F32, MB_DTYPE_BF16};
    for (int i = 0; i < 2; i++) {
        printf("dtype %s\n", mb_dtype_name(dtypes[i]));
        test_scan_cuda(dtypes[i]);
        test_ssd_cuda(dtypes[i]);
        test_attention_cuda(dtypes[i]);
    }
    printf("test_cuda_backend: %d op/dtype combinations without a kernel yet\n", not_implemented);
    if (test_checks == 0) {
        printf("test_cuda_backend: SKIP: no CUDA kernel is implemented yet, nothing compared\n");
        return 0;
    }
    return test_main_result("test_cuda_backend");
}
#endif /* MB_HAVE_CUDA */
