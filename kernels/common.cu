/*
 * common.cu -- the CUDA side shared by every kernel: the device gate and the
 * counted, stream-ordered workspace of the launch contract.
 *
 * Workspace comes from the device's default memory pool through
 * cudaMallocAsync, with the pool's release threshold raised to "keep
 * everything": after the first call at a size, allocations are served from
 * the pool without the driver, so timed calls do not allocate synchronously.
 * The caller passes the size back to mb_device_free, so that the live and
 * peak byte counts (mb_cuda_memory_peak_bytes) stay exact.
 */
#include "common.cuh"

#include <atomic>
#include <cstdint>

static std::atomic<int64_t> live_bytes{0};
static std::atomic<int64_t> peak_bytes{0};
static std::atomic<int> pool_configured{0};

extern "C" int mb_cuda_device_count(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
    return count;
}

extern "C" mb_status mb_require_device(const char* fn) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0)
        return mb_fail(MB_ERR_NO_DEVICE, "%s: no usable CUDA device (%s)", fn,
                       err != cudaSuccess ? cudaGetErrorString(err) : "device count is 0");
    return MB_OK;
}

/* Keep freed memory in the current device's default pool (once per process). */
static mb_status configure_pool(void) {
    if (pool_configured.load()) return MB_OK;
    int device = 0;
    MB_CUDA_CHECK(cudaGetDevice(&device));
    cudaMemPool_t pool;
    MB_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t keep_all = UINT64_MAX;
    MB_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));
    pool_configured.store(1);
    return MB_OK;
}

extern "C" mb_status mb_device_alloc(void** ptr, size_t bytes, void* stream) {
    *ptr = NULL;
    mb_status st = configure_pool();
    if (st != MB_OK) return st;
    cudaError_t err = cudaMallocAsync(ptr, bytes ? bytes : 1, (cudaStream_t)stream);
    if (err != cudaSuccess) {
        *ptr = NULL;
        (void)cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        return mb_fail(err == cudaErrorMemoryAllocation ? MB_ERR_ALLOC : MB_ERR_CUDA,
                       "device workspace of %zu bytes: %s", bytes, cudaGetErrorString(err));
    }
    int64_t now = live_bytes.fetch_add((int64_t)bytes) + (int64_t)bytes;
    int64_t peak = peak_bytes.load();
    while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {}
    return MB_OK;
}

extern "C" void mb_device_free(void* ptr, size_t bytes, void* stream) {
    if (!ptr) return;
    (void)cudaFreeAsync(ptr, (cudaStream_t)stream);
    live_bytes.fetch_sub((int64_t)bytes);
}

extern "C" void mb_cuda_memory_reset_peak(void) { peak_bytes.store(live_bytes.load()); }

extern "C" int64_t mb_cuda_memory_peak_bytes(void) { return peak_bytes.load(); }

extern "C" mb_status mb_cuda_memory_trim(void) {
    if (!pool_configured.load()) return MB_OK; /* nothing was ever allocated from it */
    int device = 0;
    cudaMemPool_t pool;
    MB_CUDA_CHECK(cudaGetDevice(&device));
    MB_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    MB_CUDA_CHECK(cudaDeviceSynchronize()); /* frees still in flight return to the pool */
    MB_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
    return MB_OK;
}
