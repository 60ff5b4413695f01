/*
 * step_timing.cu -- where the SSD one-token step's time goes (not a test, not the
 * benchmark harness). Shape: H 64, P 64, N 128, G 1, bf16 activations, softplus,
 * D, dt_bias, z; batch 1, 8, 64; state fp32 and bf16. Every row: 100 steps
 * between one pair of CUDA events after an L2 flush (the benchmark's method),
 * median of 15, printed per step:
 *   launches   v2 - v11 through their entry points, 100 launches from the host
 *   graph      the same 100 launches captured once in a CUDA graph and replayed
 *              (what a decoding loop under CUDA graphs pays: no host launch cost)
 *   floor      an in-place read-modify-write of the state, 4 elements per thread
 *              (16 bytes fp32, 8 bytes bf16): the bytes of a step and nothing else
 *   floor8     the same with 8 elements per thread (32 / 16 bytes)
 * Build (repository root):
 *   nvcc -std=c++17 -O3 -arch=sm_90 -I include -I src -I kernels -I reference \
 *     kernels/ssd/tools/step_timing.cu kernels/ssd/fwd.cu kernels/common.cu \
 *     src/common.c -o ssd_step_timing
 */
#include "ssd/step.cu" /* load4 / store4 for the floor kernel */
#include "tools/timing_tools.cuh"

namespace {

/* the state scaled in place, 4 elements per thread (16 bytes fp32, 8 bytes bf16) */
template <typename S>
__global__ void state_rmw_kernel(S* state, int64_t n4) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n4) return;
    float4 v = load4(state, 4 * i);
    v.x *= 0.999f, v.y *= 0.999f, v.z *= 0.999f, v.w *= 0.999f;
    store4(state, 4 * i, v);
}

/* 8 elements per thread (two 16-byte accesses fp32, one bf16); kPDL: launched as a
 * programmatic dependent launch, as step v9 / v10 */
template <typename S, bool kPDL = false>
__global__ void state_rmw8_kernel(S* state, int64_t n8) {
    if constexpr (kPDL) {
        mb_pdl_wait();
        mb_pdl_launch_dependents();
    }
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    Float8 v = load8(state, 8 * i);
#pragma unroll
    for (int k = 0; k < 8; k++) v.v[k] *= 0.999f;
    store8(state, 8 * i, v);
}

constexpr int kSteps = 100;

/* ms per step of kSteps calls of f between two events (L2 flushed before) */
template <typename F>
double per_step(F&& f) {
    return time_ms([&] { for (int i = 0; i < kSteps; i++) f(); }) / kSteps;
}

/* ms per step of kSteps calls of f captured in one graph on `stream` */
template <typename F>
double per_step_graph(cudaStream_t stream, F&& f) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < kSteps; i++) f();
    CK(cudaStreamEndCapture(stream, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    const double ms = time_ms([&] { CK(cudaGraphLaunch(exec, stream)); }) / kSteps;
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
    return ms;
}

void run_batch(long Bb, bool state_bf16, cudaStream_t stream) {
    const long H = 64, P = 64, N = 128;
    void *x = bf(Bb * H * P, -1, 1, 1), *dt = bf(Bb * H, -3, 0.5, 2), *z = bf(Bb * H * P, -2, 2, 3);
    void *Bm = bf(Bb * N, -1, 1, 5), *Cm = bf(Bb * N, -1, 1, 6), *A = ff(H, -2, -0.1, 7);
    void *Dv = ff(H, -1, 1, 8), *bias = ff(H, -1, 0.5, 9), *y;
    const size_t nstate = (size_t)(Bb * H * P * N);
    void* st = state_bf16 ? bf(nstate, -1, 1, 10) : ff(nstate, -1, 1, 10);
    CK(cudaMalloc(&y, Bb * H * P * 2));
    mb_ssd_params p = {Bb, 1, H, P, N, 1, 256, MB_DTYPE_BF16, 1, MB_SSD_CHUNKED, state_bf16 ? 1 : 0};
    mb_ssd_inputs in = {x, dt, A, Bm, Cm, Dv, z, bias, NULL};
    mb_exec ex = {stream};
    const double mb = (double)nstate * (state_bf16 ? 2 : 4) * 2 / 1e6; /* MB read + written */
    const char* sname = state_bf16 ? "bf16" : "fp32";
    auto row = [&](const char* what, double ms) {
        printf("B %-3ld state %s %-22s %8.2f us  %7.0f GB/s of state\n", Bb, sname, what, ms * 1e3,
               mb / ms);
    };
    mb_ssd_step_fn steps[] = {mb_ssd_step_cuda_v2, mb_ssd_step_cuda_v3, mb_ssd_step_cuda_v4,
                              mb_ssd_step_cuda_v5, mb_ssd_step_cuda_v6, mb_ssd_step_cuda_v7,
                              mb_ssd_step_cuda_v8, mb_ssd_step_cuda_v9, mb_ssd_step_cuda_v10,
                              mb_ssd_step_cuda_v11};
    const char* names[] = {"v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11"};
    for (int k = 0; k < (int)(sizeof steps / sizeof steps[0]); k++) {
        char label[64];
        if (steps[k](&p, &in, st, y, &ex) != MB_OK) { printf("%s refused\n", names[k]); continue; }
        snprintf(label, sizeof label, "%s launches", names[k]);
        row(label, per_step([&] { steps[k](&p, &in, st, y, &ex); }));
        snprintf(label, sizeof label, "%s graph", names[k]);
        row(label, per_step_graph(stream, [&] { steps[k](&p, &in, st, y, &ex); }));
    }
    const int64_t n4 = (int64_t)nstate / 4;
    auto floor_rmw = [&] {
        if (state_bf16) state_rmw_kernel<bf16><<<(unsigned)ceil_div(n4, 256), 256, 0, stream>>>((bf16*)st, n4);
        else state_rmw_kernel<float><<<(unsigned)ceil_div(n4, 256), 256, 0, stream>>>((float*)st, n4);
    };
    row("floor launches", per_step(floor_rmw));
    row("floor graph", per_step_graph(stream, floor_rmw));
    const int64_t n8 = (int64_t)nstate / 8;
    auto floor_rmw8 = [&] {
        if (state_bf16) state_rmw8_kernel<bf16><<<(unsigned)ceil_div(n8, 256), 256, 0, stream>>>((bf16*)st, n8);
        else state_rmw8_kernel<float><<<(unsigned)ceil_div(n8, 256), 256, 0, stream>>>((float*)st, n8);
    };
    row("floor8 launches", per_step(floor_rmw8));
    row("floor8 graph", per_step_graph(stream, floor_rmw8));
    auto floor_rmw8_pdl = [&] { /* launched as step v9 / v10 are (mb_launch_programmatic, common.cuh) */
        const dim3 grid((unsigned)ceil_div(n8, 256)), block(256);
        if (state_bf16) CK(mb_launch_programmatic(state_rmw8_kernel<bf16, true>, grid, block, stream, (bf16*)st, n8));
        else CK(mb_launch_programmatic(state_rmw8_kernel<float, true>, grid, block, stream, (float*)st, n8));
    };
    row("floor8 pdl launches", per_step(floor_rmw8_pdl));
    row("floor8 pdl graph", per_step_graph(stream, floor_rmw8_pdl));
    CK(cudaGetLastError());
    for (void* q : {x, dt, z, Bm, Cm, A, Dv, bias, st, y}) cudaFree(q);
}

} // namespace

int main() {
    CK(cudaMalloc(&flushbuf, kFlush));
    cudaStream_t stream;
    CK(cudaStreamCreate(&stream));
    for (long Bb : {1L, 8L, 64L})
        for (bool sb : {false, true}) run_batch(Bb, sb, stream);
    return 0;
}
