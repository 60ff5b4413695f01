/*
 * test_cuda_backend.c -- the CUDA entry points against the CPU reference.
 *
 * Without CUDA in the build, or without a GPU, it prints why it skips and
 * exits TB_SKIP (77: ctest counts it as skipped). With a GPU, each op's forward and backward runs on fresh random
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
    return TB_SKIP;
}
#else

static int not_implemented = 0;

// ----------------------------------------------------------------------------
// the device side of the shared problems (tests/problems.h)

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

/* the device output `device` (of t's shape) against the fp64 `want` */
static void compare(const char* what, tb_tensor* t, const void* device, const double* want) {
    double rtol = t->dtype == MB_DTYPE_BF16 ? TOL_GPU_BF16_RTOL : TOL_GPU_F32_RTOL;
    double atol = t->dtype == MB_DTYPE_BF16 ? TOL_GPU_BF16_ATOL : TOL_GPU_F32_ATOL;
    expect_close_f64(what, tb_device_download(t, device), want, t->n, rtol, atol);
}

// ----------------------------------------------------------------------------
// selective scan: B=2, D=8, G=2, N=16, L=77, with D, z, bias, softplus

static void test_scan_cuda(mb_dtype dtype) {
    const int64_t B = 2, D = 8, G = 2, N = 16, L = 77;
    mb_dtype pd = mb_param_dtype(dtype);
    mb_selective_scan_params p = {B, D, L, N, G, dtype, 1};
    tb_scan_problem pr = tb_scan_make(p, TB_WITH_ALL);
    tb_tensor* ins[] = {&pr.u, &pr.delta, &pr.A, &pr.B, &pr.C, &pr.D, &pr.z, &pr.delta_bias};
    void* d[8];
    for (int i = 0; i < 8; i++) d[i] = tb_device_upload(ins[i]);
    tb_tensor y = tb_tensor_output(B * D * L, dtype), hN = tb_tensor_output(B * D * N, pd);
    void *y_d = tb_device_poisoned(&y), *hN_d = tb_device_poisoned(&hN);
    mb_selective_scan_inputs dev = {d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]};
    mb_selective_scan_inputs host = tb_scan_inputs_f64(&pr);
    if (kernel_ran("selective_scan fwd", mb_selective_scan_fwd_cuda(&p, &dev, y_d, hN_d, NULL))) {
        mb_selective_scan_params p64 = p;
        p64.dtype = MB_DTYPE_F64;
        double *y_ref = zeros_f64(y.n), *h_ref = zeros_f64(hN.n);
        CHECK_OK(mb_selective_scan_fwd_cpu(&p64, &host, y_ref, h_ref));
        compare("selective_scan fwd y", &y, y_d, y_ref);
        compare("selective_scan fwd final_state", &hN, hN_d, h_ref);
        free(y_ref), free(h_ref);
    }
    for (int i = 0; i < 8; i++) tb_device_free(d[i]);
    tb_device_free(y_d), tb_device_free(hN_d);
    tb_tensor_free(&y), tb_tensor_free(&hN), tb_scan_free(&pr);
}

// ----------------------------------------------------------------------------
// SSD: B=2, L=150 (not a multiple of the chunk 64), H=4, P=16, N=32, G=2, with h0

static void test_ssd_cuda(mb_dtype dtype) {
    const int64_t B = 2, L = 150, H = 4, P = 16, N = 32, G = 2;
    mb_dtype pd = mb_param_dtype(dtype);
    mb_ssd_params p = {B, L, H, P, N, G, 64, dtype, 1, MB_SSD_CHUNKED, 0};
    tb_ssd_problem pr = tb_ssd_make(p, TB_WITH_ALL);
    tb_tensor* ins[] = {&pr.x, &pr.dt, &pr.A, &pr.B, &pr.C,
                        &pr.D, &pr.z, &pr.dt_bias, &pr.initial_state};
    void* d[9];
    for (int i = 0; i < 9; i++) d[i] = tb_device_upload(ins[i]);
    tb_tensor y = tb_tensor_output(B * L * H * P, dtype), hN = tb_tensor_output(B * H * P * N, pd);
    void *y_d = tb_device_poisoned(&y), *hN_d = tb_device_poisoned(&hN);
    mb_ssd_inputs dev = {d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8]};
    mb_ssd_inputs host = tb_ssd_inputs_f64(&pr);
    if (kernel_ran("ssd fwd", mb_ssd_fwd_cuda(&p, &dev, y_d, hN_d, NULL))) {
        mb_ssd_params p64 = p;
        p64.dtype = MB_DTYPE_F64;
        double *y_ref = zeros_f64(y.n), *h_ref = zeros_f64(hN.n);
        CHECK_OK(mb_ssd_fwd_cpu(&p64, &host, y_ref, h_ref));
        compare("ssd fwd y", &y, y_d, y_ref);
        compare("ssd fwd final_state", &hN, hN_d, h_ref);
        free(y_ref), free(h_ref);
    }
    for (int i = 0; i < 9; i++) tb_device_free(d[i]);
    tb_device_free(y_d), tb_device_free(hN_d);
    tb_tensor_free(&y), tb_tensor_free(&hN), tb_ssd_free(&pr);
}

// ----------------------------------------------------------------------------
// causal attention: B=2, H=3, L=200, d=64

static void test_attention_cuda(mb_dtype dtype) {
    const int64_t B = 2, H = 3, L = 200, d = 64, n = B * H * L * d;
    mb_dtype pd = mb_param_dtype(dtype);
    mb_attention_params p = {B, H, L, d, 0.0, dtype, 0};
    tb_attention_problem pr = tb_attention_make(p);
    void *q = tb_device_upload(&pr.q), *k = tb_device_upload(&pr.k), *v = tb_device_upload(&pr.v);
    tb_tensor o = tb_tensor_output(n, dtype), lse = tb_tensor_output(B * H * L, pd);
    void *o_d = tb_device_poisoned(&o), *lse_d = tb_device_poisoned(&lse);
    mb_attention_inputs dev = {q, k, v}, host = tb_attention_inputs_f64(&pr);
    if (kernel_ran("attention fwd", mb_attention_fwd_cuda(&p, &dev, o_d, lse_d, NULL))) {
        mb_attention_params p64 = p;
        p64.dtype = MB_DTYPE_F64;
        double *o_ref = zeros_f64(n), *lse_ref = zeros_f64(lse.n);
        CHECK_OK(mb_attention_fwd_cpu(&p64, &host, o_ref, lse_ref));
        compare("attention fwd o", &o, o_d, o_ref);
        compare("attention fwd lse", &lse, lse_d, lse_ref);
        free(o_ref), free(lse_ref);
    }
    tb_device_free(q), tb_device_free(k), tb_device_free(v);
    tb_device_free(o_d), tb_device_free(lse_d);
    tb_tensor_free(&o), tb_tensor_free(&lse), tb_attention_free(&pr);
}

int main(void) {
    int count = mb_cuda_device_count();
    if (count == 0) {
        printf("test_cuda_backend: SKIP: no CUDA device on this machine\n");
        return TB_SKIP;
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
        return TB_SKIP;
    }
    return test_main_result("test_cuda_backend");
}
#endif /* MB_HAVE_CUDA */
