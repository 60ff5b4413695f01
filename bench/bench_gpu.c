/*
 * bench_gpu.c -- the GPU side of the benchmark harness (see bench_common.h):
 * CUDA-event timing with an L2 flush before every timed iteration, device
 * synchronisation with error checks, and the GPU context of the JSON.
 *
 * Timing of one iteration (nvbench's cold measurement):
 *   memset of a buffer of twice the L2 size  (evicts the inputs from L2)
 *   event start; `calls` calls of the op; event stop; synchronize
 *   manual time = elapsed / calls
 * The flush sits outside the events; the events sit on the legacy default
 * stream, which every entry point is given (stream NULL). The graph timing
 * (bc_time_gpu_graph) captures the `calls` calls once on a stream of its own
 * and replays the graph between the events, flush and events on that stream.
 */
#include "bench_common.h"

#include <stdio.h>
#include <string.h>

#ifdef MB_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

static void* flush_buf;      /* (2 x L2 bytes) */
static size_t flush_bytes;
static double copy_ceiling;  /* bytes/s, read + written */
static int context_done;

int bc_have_gpu(void) { return mb_cuda_device_count() > 0; }

mb_status bc_gpu_sync(char* err, size_t cap) {
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e == cudaSuccess) return MB_OK;
    snprintf(err, cap, "CUDA error after the call: %s", cudaGetErrorString(e));
    return MB_ERR_CUDA;
}

/* Time a 1 GiB device-to-device copy (median of 5) into copy_ceiling. */
static void measure_copy_ceiling(void) {
    const size_t bytes = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        cudaFree(a);
        return;
    }
    cudaMemset(a, 1, bytes);
    cudaEvent_t t0, t1;
    cudaEventCreate(&t0);
    cudaEventCreate(&t1);
    float best[5];
    for (int r = 0; r < 6; r++) { /* the first run is a warm-up */
        cudaEventRecord(t0, 0);
        cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0);
        cudaEventRecord(t1, 0);
        cudaEventSynchronize(t1);
        if (r > 0) cudaEventElapsedTime(&best[r - 1], t0, t1);
    }
    for (int i = 0; i < 5; i++) /* sort, take the median */
        for (int j = i + 1; j < 5; j++)
            if (best[j] < best[i]) { float t = best[i]; best[i] = best[j]; best[j] = t; }
    copy_ceiling = 2.0 * (double)bytes / (best[2] * 1e-3);
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    cudaFree(a);
    cudaFree(b);
}

double bc_gpu_copy_ceiling(void) { return copy_ceiling; }

void bc_gpu_context(void) {
    if (context_done || !bc_have_gpu()) return;
    context_done = 1;
    struct cudaDeviceProp prop;
    int dev = 0, v = 0, clock_khz = 0, mem_khz = 0;
    char buf[256];
    cudaGetDevice(&dev);
    if (cudaGetDeviceProperties(&prop, dev) != cudaSuccess) return;
    gb_add_context("gpu_name", prop.name);
    snprintf(buf, sizeof buf, "%d", prop.multiProcessorCount);
    gb_add_context("gpu_sm_count", buf);
    snprintf(buf, sizeof buf, "%d", prop.l2CacheSize);
    gb_add_context("gpu_l2_bytes", buf);
    snprintf(buf, sizeof buf, "%zu", prop.totalGlobalMem);
    gb_add_context("gpu_memory_bytes", buf);
    snprintf(buf, sizeof buf, "%d.%d", prop.major, prop.minor);
    gb_add_context("gpu_compute_capability", buf);
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev) == cudaSuccess) {
        snprintf(buf, sizeof buf, "%d", clock_khz / 1000);
        gb_add_context("gpu_sm_clock_max_mhz", buf);
    }
    if (cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, dev) == cudaSuccess) {
        snprintf(buf, sizeof buf, "%d", mem_khz / 1000);
        gb_add_context("gpu_mem_clock_max_mhz", buf);
    }
    cudaDriverGetVersion(&v);
    snprintf(buf, sizeof buf, "%d.%d", v / 1000, (v % 1000) / 10);
    gb_add_context("cuda_driver_api", buf);
    cudaRuntimeGetVersion(&v);
    snprintf(buf, sizeof buf, "%d.%d", v / 1000, (v % 1000) / 10);
    gb_add_context("cuda_runtime", buf);
    int major = 0, minor = 0, patch = 0;
    if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
        cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
        cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS) {
        snprintf(buf, sizeof buf, "%d.%d.%d", major, minor, patch);
        gb_add_context("cublas_version", buf);
    }
    flush_bytes = 2 * (size_t)prop.l2CacheSize;
    if (cudaMalloc(&flush_buf, flush_bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        flush_buf = NULL;
    }
    gb_add_context("gpu_timing", flush_buf ? "cuda events, L2 flushed (memset of 2 x L2) "
                   "before every timed iteration" : "cuda events, NO L2 flush (alloc failed)");
    measure_copy_ceiling();
    snprintf(buf, sizeof buf, "%.1f", copy_ceiling * 1e-9);
    gb_add_context("gpu_copy_ceiling_gbps", buf);
}

int bc_time_gpu(gb_state* st, const char* name, bc_call_fn call, void* ctx, int calls) {
    cudaEvent_t t0, t1;
    if (cudaEventCreate(&t0) != cudaSuccess || cudaEventCreate(&t1) != cudaSuccess) {
        gb_skip_with_error(st, "cudaEventCreate failed");
        return 0;
    }
    int ok = 1;
    while (ok && gb_keep_running(st)) {
        if (flush_buf) cudaMemsetAsync(flush_buf, 0, flush_bytes, 0);
        cudaEventRecord(t0, 0);
        for (int i = 0; i < calls && ok; i++) {
            mb_status status = call(ctx);
            if (status != MB_OK) {
                bc_skip_status(st, name, status);
                ok = 0;
            }
        }
        cudaEventRecord(t1, 0);
        cudaError_t e = cudaEventSynchronize(t1);
        float ms = 0.0f;
        if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, t0, t1);
        if (ok && e != cudaSuccess) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s: CUDA error: %s", name, cudaGetErrorString(e));
            gb_skip_with_error(st, msg);
            ok = 0;
        }
        gb_set_iteration_time(st, ms * 1e-3 / calls);
    }
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    return ok;
}

static void* call_stream; /* the capturing stream inside bc_time_gpu_graph, else NULL */

void* bc_call_stream(void) { return call_stream; }

/* Skip the run with "<name>: <what>: <CUDA error>"; returns 0. */
static int skip_cuda(gb_state* st, const char* name, const char* what, cudaError_t e) {
    char msg[320];
    snprintf(msg, sizeof msg, "%s: %s: %s", name, what, cudaGetErrorString(e));
    cudaGetLastError(); /* clear a non-sticky error */
    gb_skip_with_error(st, msg);
    return 0;
}

/* `calls` calls of call(ctx) captured on s and instantiated into *exec; 1 on success. */
static int capture_calls(gb_state* st, const char* name, bc_call_fn call, void* ctx, int calls,
                         cudaStream_t s, cudaGraphExec_t* exec) {
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) return skip_cuda(st, name, "cudaStreamBeginCapture", e);
    call_stream = s;
    mb_status status = MB_OK;
    for (int i = 0; i < calls && status == MB_OK; i++) status = call(ctx);
    call_stream = NULL;
    e = cudaStreamEndCapture(s, &graph);
    if (status != MB_OK) {
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();
        bc_skip_status(st, name, status);
        return 0;
    }
    if (e != cudaSuccess) return skip_cuda(st, name, "stream capture", e);
    size_t nodes = 0;
    e = cudaGraphGetNodes(graph, NULL, &nodes);
    if (e != cudaSuccess) {
        cudaGraphDestroy(graph);
        return skip_cuda(st, name, "cudaGraphGetNodes", e);
    }
    if (nodes == 0) { /* the calls launched elsewhere: nothing to time */
        cudaGraphDestroy(graph);
        char msg[320];
        snprintf(msg, sizeof msg, "%s: the capture recorded no work (the calls did not launch "
                 "on the capturing stream, bc_call_stream())", name);
        gb_skip_with_error(st, msg);
        return 0;
    }
    e = cudaGraphInstantiate(exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) return skip_cuda(st, name, "cudaGraphInstantiate", e);
    return 1;
}

/* One timed replay of exec on s after the L2 flush: ms, or -1 after skipping the run. */
static float time_replay(gb_state* st, const char* name, cudaGraphExec_t exec, cudaStream_t s,
                         cudaEvent_t t0, cudaEvent_t t1) {
    if (flush_buf) cudaMemsetAsync(flush_buf, 0, flush_bytes, s);
    cudaEventRecord(t0, s);
    cudaError_t e = cudaGraphLaunch(exec, s);
    cudaEventRecord(t1, s);
    if (e == cudaSuccess) e = cudaEventSynchronize(t1);
    float ms = 0.0f;
    if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, t0, t1);
    if (e != cudaSuccess) return (float)skip_cuda(st, name, "graph replay", e) - 1.0f;
    return ms;
}

int bc_time_gpu_graph(gb_state* st, const char* name, bc_call_fn call, void* ctx, int calls) {
    cudaStream_t s = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    cudaGraphExec_t exec = NULL;
    cudaError_t e = cudaDeviceSynchronize(); /* the case was built on the legacy stream */
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreate(&t0);
    if (e == cudaSuccess) e = cudaEventCreate(&t1);
    int ok = e == cudaSuccess ? capture_calls(st, name, call, ctx, calls, s, &exec)
                              : skip_cuda(st, name, "stream or event set-up", e);
    while (ok && gb_keep_running(st)) {
        const float ms = time_replay(st, name, exec, s, t0, t1);
        ok = ms >= 0.0f;
        gb_set_iteration_time(st, ok ? ms * 1e-3 / calls : 0.0);
    }
    if (exec) cudaGraphExecDestroy(exec);
    if (t0) cudaEventDestroy(t0);
    if (t1) cudaEventDestroy(t1);
    if (s) cudaStreamDestroy(s);
    return ok;
}

#else /* no CUDA in the build */

int bc_have_gpu(void) { return 0; }
void bc_gpu_context(void) {}
double bc_gpu_copy_ceiling(void) { return 0.0; }
mb_status bc_gpu_sync(char* err, size_t cap) {
    snprintf(err, cap, "built without CUDA");
    return MB_ERR_NO_CUDA;
}
int bc_time_gpu(gb_state* st, const char* name, bc_call_fn call, void* ctx, int calls) {
    (void)name, (void)call, (void)ctx, (void)calls;
    gb_skip_with_error(st, "built without CUDA");
    return 0;
}
int bc_time_gpu_graph(gb_state* st, const char* name, bc_call_fn call, void* ctx, int calls) {
    return bc_time_gpu(st, name, call, ctx, calls);
}
void* bc_call_stream(void) { return NULL; }

#endif
