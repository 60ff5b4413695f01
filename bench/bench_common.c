/*
 * bench_common.c -- options, context, L sweeps, random tensors and counters
 * shared by the C benchmarks. See bench_common.h.
 */
#define _POSIX_C_SOURCE 200809L /* popen, gethostname, clock_gettime */

#include "bench_common.h"

#ifdef MB_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif


#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bc_options bc_opt = {0, 0, 5, 0.05, 0.02, 0, 0, 0, 0};

static double t_start; /* bc_now() at bc_init */

// ----------------------------------------------------------------------------
// options

/* Parse a positive integer; 0 on success. */
static int parse_i64(const char* s, int64_t* out) {
    char* end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v <= 0) return -1;
    *out = (int64_t)v;
    return 0;
}

/* Parse a non-negative finite double; 0 on success. */
static int parse_f64(const char* s, double* out) {
    char* end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < 0) return -1;
    *out = v;
    return 0;
}

/* Apply one option `name` = `value` (from a flag or a variable); 0 on success. */
static int set_option(const char* name, const char* value, const char* from) {
    int64_t i = 0;
    int bad = 0;
    if (strcmp(name, "lmin") == 0) {
        bad = parse_i64(value, &i);
        if (!bad) bc_opt.lmin = i;
    } else if (strcmp(name, "lmax") == 0) {
        bad = parse_i64(value, &i);
        if (!bad) bc_opt.lmax = i;
    } else if (strcmp(name, "reps") == 0) {
        bad = parse_i64(value, &i) || i > 1000;
        if (!bad) bc_opt.repetitions = (int)i;
    } else if (strcmp(name, "min_time") == 0) {
        bad = parse_f64(value, &bc_opt.min_time) || bc_opt.min_time <= 0;
    } else if (strcmp(name, "warmup") == 0) {
        bad = parse_f64(value, &bc_opt.warmup_time);
    } else if (strcmp(name, "bigo") == 0) {
        bad = strcmp(value, "auto") != 0 && strcmp(value, "default") != 0;
        if (!bad) bc_opt.bigo_auto = strcmp(value, "auto") == 0;
    } else if (strcmp(name, "quiet") == 0) {
        bc_opt.quiet = strcmp(value, "0") != 0;
    } else if (strcmp(name, "gpu_only") == 0) {
        bc_opt.gpu_only = strcmp(value, "0") != 0;
    } else if (strcmp(name, "versions_lmax") == 0) {
        bad = parse_i64(value, &i);
        if (!bad) bc_opt.versions_lmax = i;
    } else {
        fprintf(stderr, "bench: unknown option %s (from %s)\n", name, from);
        return 1;
    }
    if (bad) fprintf(stderr, "bench: bad value '%s' for %s (from %s)\n", value, name, from);
    return bad ? 1 : 0;
}

static int read_env(void) {
    static const char* const vars[][2] = {
        {"MB_BENCH_LMIN", "lmin"},       {"MB_BENCH_LMAX", "lmax"},
        {"MB_BENCH_REPETITIONS", "reps"}, {"MB_BENCH_MIN_TIME", "min_time"},
        {"MB_BENCH_WARMUP", "warmup"},   {"MB_BENCH_BIGO", "bigo"},
        {"MB_BENCH_QUIET", "quiet"},     {"MB_BENCH_GPU_ONLY", "gpu_only"},
        {"MB_BENCH_VERSIONS_LMAX", "versions_lmax"}};
    int bad = 0;
    for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++) {
        const char* v = getenv(vars[k][0]);
        if (v && *v) bad |= set_option(vars[k][1], v, vars[k][0]);
    }
    return bad;
}

/* Consume the --mb_<name>[=value] flags, keeping every other argument in order. */
static int read_flags(int* argc, char** argv) {
    int bad = 0, out = 1;
    for (int a = 1; a < *argc; a++) {
        const char* arg = argv[a];
        if (strncmp(arg, "--mb_", 5) != 0) {
            argv[out++] = argv[a];
            continue;
        }
        char name[32];
        const char* eq = strchr(arg + 5, '=');
        size_t len = eq ? (size_t)(eq - (arg + 5)) : strlen(arg + 5);
        if (len == 0 || len >= sizeof name) {
            fprintf(stderr, "bench: malformed flag %s\n", arg);
            bad = 1;
            continue;
        }
        memcpy(name, arg + 5, len);
        name[len] = '\0';
        bad |= set_option(name, eq ? eq + 1 : "1", arg);
    }
    *argc = out;
    argv[out] = NULL;
    return bad;
}

// ----------------------------------------------------------------------------
// context

/* First line of a shell command's output into buf ("" on failure). */
static void command_line(const char* cmd, char* buf, size_t size) {
    buf[0] = '\0';
    FILE* p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(buf, (int)size, p)) buf[0] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    pclose(p);
}

/* The source tree: this file's directory's parent (CMake compiles absolute paths). */
static void source_dir(char* buf, size_t size) {
    snprintf(buf, size, "%s", __FILE__);
    char* cut = strstr(buf, "/bench/bench_common.c");
    if (cut && buf[0] == '/') *cut = '\0';
    else snprintf(buf, size, ".");
}

static void commit_string(char* buf, size_t size) {
    const char* env = getenv("MB_COMMIT");
    if (env && *env) {
        snprintf(buf, size, "%s", env);
        return;
    }
    char dir[1024], cmd[1200], dirty[256];
    source_dir(dir, sizeof dir);
    if (strchr(dir, '\'')) {
        snprintf(buf, size, "unknown");
        return;
    }
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse --short HEAD 2>/dev/null", dir);
    command_line(cmd, buf, size);
    if (!buf[0]) {
        snprintf(buf, size, "unknown");
        return;
    }
    snprintf(cmd, sizeof cmd, "git -C '%s' status --porcelain --untracked-files=no 2>/dev/null",
             dir);
    command_line(cmd, dirty, sizeof dirty);
    if (dirty[0] && strlen(buf) + 7 < size) strcat(buf, "-dirty");
}

static void cpu_model(char* buf, size_t size) {
    snprintf(buf, size, "unknown");
    FILE* f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char* colon = strchr(line, ':');
        if (!colon) continue;
        colon++;
        while (*colon == ' ' || *colon == '\t') colon++;
        snprintf(buf, size, "%s", colon);
        buf[strcspn(buf, "\r\n")] = '\0';
        break;
    }
    fclose(f);
}

static const char* build_type(void) {
#if defined(MB_BUILD_TYPE)
    return MB_BUILD_TYPE;
#elif defined(NDEBUG) && defined(__OPTIMIZE__)
    return "optimized, NDEBUG (Release-like)";
#elif defined(__OPTIMIZE__)
    return "optimized, assertions on";
#else
    return "unoptimized (Debug-like)";
#endif
}

static void add_context(const char* bench) {
    char buf[1024];
    gb_add_context("mb_bench", bench);
    snprintf(buf, sizeof buf, "%d.%d.%d", MB_VERSION_MAJOR, MB_VERSION_MINOR, MB_VERSION_PATCH);
    gb_add_context("mb_version", buf);
    commit_string(buf, sizeof buf);
    gb_add_context("mb_commit", buf);
    if (gethostname(buf, sizeof buf) != 0) snprintf(buf, sizeof buf, "unknown");
    buf[sizeof buf - 1] = '\0';
    gb_add_context("mb_hostname", buf);
    cpu_model(buf, sizeof buf);
    gb_add_context("mb_cpu_model", buf);
#if defined(__clang__)
    snprintf(buf, sizeof buf, "clang %s", __clang_version__);
#elif defined(__GNUC__)
    snprintf(buf, sizeof buf, "gcc %s", __VERSION__);
#else
    snprintf(buf, sizeof buf, "unknown C compiler");
#endif
    gb_add_context("mb_compiler", buf);
    gb_add_context("mb_build_type", build_type());
#ifdef MB_CUDA_ARCHS
    gb_add_context("mb_cuda_architectures", MB_CUDA_ARCHS); /* CMAKE_CUDA_ARCHITECTURES */
#endif
    time_t now = time(NULL);
    struct tm tm_utc;
    if (gmtime_r(&now, &tm_utc)) strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm_utc);
    else snprintf(buf, sizeof buf, "unknown");
    gb_add_context("mb_date_utc", buf);
    snprintf(buf, sizeof buf, "%d", mb_cuda_device_count());
    gb_add_context("mb_cuda_devices", buf);
    snprintf(buf, sizeof buf,
             "repetitions=%d min_time=%gs warmup=%gs lmin=%lld lmax=%lld versions_lmax=%lld "
             "bigo=%s",
             bc_opt.repetitions, bc_opt.min_time, bc_opt.warmup_time, (long long)bc_opt.lmin,
             (long long)bc_opt.lmax, (long long)bc_opt.versions_lmax,
             bc_opt.bigo_auto ? "auto" : "per-op");
    gb_add_context("mb_settings", buf);
}

int bc_gpu_only(void) { return bc_opt.gpu_only; }

int bc_init(int* argc, char** argv, const char* bench) {
    t_start = bc_now();
    int bad = read_env();
    bad |= read_flags(argc, argv);
    if (bad) return 1;
    add_context(bench);
    bc_gpu_context();
    return 0;
}

// ----------------------------------------------------------------------------
// L sweeps

/* Nonzero when impl is a registered implementation of (op, dir, backend) other than its default. */
static int is_other_version(mb_op op, mb_direction dir, mb_backend backend, const char* impl) {
    mb_impl_info info;
    for (int i = 0; impl && mb_impl_get(op, dir, backend, i, &info) == MB_OK; i++)
        if (strcmp(info.name, impl) == 0) return !info.is_default;
    return 0;
}

int64_t bc_impl_lmax(mb_op op, mb_direction dir, mb_backend backend, const char* impl,
                     int64_t lmax) {
    if (bc_opt.versions_lmax <= 0 || bc_opt.versions_lmax >= lmax) return lmax;
    return is_other_version(op, dir, backend, impl) ? bc_opt.versions_lmax : lmax;
}


int bc_sweep(int64_t lmin, int64_t lmax, int64_t* Ls, int cap) {
    if (bc_opt.lmin > lmin) lmin = bc_opt.lmin;
    if (bc_opt.lmax > 0 && bc_opt.lmax < lmax) lmax = bc_opt.lmax;
    int n = 0;
    for (int64_t L = 1; L <= lmax && L <= INT64_MAX / 2 && n < cap; L *= 2) {
        if (L >= lmin) Ls[n++] = L;
    }
    if (n == 0 && cap > 0) { /* cap below lmin: the largest power of two under it */
        int64_t L = 1;
        while (L * 2 <= lmax) L *= 2;
        Ls[n++] = L;
    }
    return n;
}

/* bc_register_args; iterations > 0: that many iterations per repetition instead
 * of bc_opt's min time and warm-up (Google Benchmark takes one or the other). */
static gb_bench* register_args(const char* name, gb_fn fn, void* user, const char* arg_name,
                               const int64_t* args, int nargs, mb_backend backend,
                               gb_big_o big_o, bc_probe_fn probe, int64_t iterations) {
    gb_bench* b = gb_register(name, fn, user);
    if (!b || nargs < 1) return b;
    gb_arg_name(b, arg_name);
    for (int k = 0; k < nargs; k++) gb_arg(b, args[k]);
    gb_unit(b, GB_UNIT_MS);
    if (backend == MB_BACKEND_CUDA) gb_use_manual_time(b); /* CUDA events */
    else gb_use_real_time(b);
    if (iterations > 0) {
        gb_iterations(b, iterations);
    } else {
        gb_min_time(b, bc_opt.min_time);
        if (bc_opt.warmup_time > 0) gb_min_warmup_time(b, bc_opt.warmup_time);
    }
    gb_repetitions(b, bc_opt.repetitions);
    if (bc_opt.repetitions > 1) gb_report_aggregates_only(b, 1);
    if (probe && !probe(user, args[0])) {
        fprintf(stderr, "bench: %s fails at %s=%lld; its runs will report the error "
                "(no complexity fit)\n", name, arg_name, (long long)args[0]);
        return b;
    }
    if (big_o != GB_O_NONE) gb_complexity(b, bc_opt.bigo_auto ? GB_O_AUTO : big_o);
    return b;
}

gb_bench* bc_register_args(const char* name, gb_fn fn, void* user, const char* arg_name,
                           const int64_t* args, int nargs, mb_backend backend, gb_big_o big_o,
                           bc_probe_fn probe) {
    return register_args(name, fn, user, arg_name, args, nargs, backend, big_o, probe, 0);
}

gb_bench* bc_register_sweep_on(const char* name, gb_fn fn, void* user, int64_t lmin,
                               int64_t lmax, mb_backend backend, gb_big_o big_o,
                               bc_probe_fn probe) {
    int64_t Ls[64];
    int n = bc_sweep(lmin, lmax, Ls, 64);
    return bc_register_args(name, fn, user, "L", Ls, n, backend, big_o, probe);
}

gb_bench* bc_register_sweep(const char* name, gb_fn fn, void* user, int64_t lmin, int64_t lmax,
                            gb_big_o big_o, bc_probe_fn probe) {
    return bc_register_sweep_on(name, fn, user, lmin, lmax, MB_BACKEND_CPU, big_o, probe);
}

const char* bc_impl_name(mb_op op, mb_direction dir, mb_backend backend, int i) {
    mb_impl_info info;
    return mb_impl_get(op, dir, backend, i, &info) == MB_OK ? info.name : NULL;
}

/* The registry direction a row's dir names: fwd, fwd_noz, fwd_state -> fwd;
 * bwd, fwdbwd -> bwd (the implementation named is the backward's); step; decode. */
static mb_direction registry_direction(const char* dir) {
    if (strncmp(dir, "step", 4) == 0) return MB_DIR_STEP;
    if (strncmp(dir, "decode", 6) == 0) return MB_DIR_DECODE;
    if (strstr(dir, "bwd")) return MB_DIR_BWD;
    return MB_DIR_FWD;
}

/* 1 when impl is the default of (op, dir, backend). */
static int is_default(mb_op op, const char* dir, mb_backend backend, const char* impl) {
    mb_direction d = registry_direction(dir);
    for (int i = 0; i < mb_impl_count(op, d, backend); i++) {
        mb_impl_info info;
        if (mb_impl_get(op, d, backend, i, &info) == MB_OK && strcmp(info.name, impl) == 0)
            return info.is_default;
    }
    return 0;
}

void bc_set_fields(gb_state* st, mb_op op, const char* dir, mb_backend backend,
                   const char* impl, mb_dtype dtype, const char* extra) {
    char label[320];
    snprintf(label, sizeof label, "op=%s dir=%s backend=%s impl=%s default=%d dtype=%s%s%s",
             mb_op_name(op), dir, mb_backend_name(backend), impl,
             is_default(op, dir, backend, impl), mb_dtype_name(dtype),
             extra && *extra ? " " : "", extra ? extra : "");
    gb_set_label(st, label);
}

// ----------------------------------------------------------------------------
// random tensors

void bc_rng_seed(bc_rng* rng, uint64_t seed) { rng->s = seed; }

/* splitmix64 */
uint64_t bc_rng_next(bc_rng* rng) {
    uint64_t z = (rng->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double bc_rng_uniform(bc_rng* rng, double lo, double hi) {
    double u = (double)(bc_rng_next(rng) >> 11) * 0x1.0p-53; /* [0, 1) */
    return lo + (hi - lo) * u;
}

int bc_fill_uniform(void* dst, mb_dtype dtype, int64_t n, double lo, double hi, bc_rng* rng) {
    switch (dtype) {
    case MB_DTYPE_F32:
        for (int64_t i = 0; i < n; i++) ((float*)dst)[i] = (float)bc_rng_uniform(rng, lo, hi);
        return 0;
    case MB_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t*)dst)[i] = mb_bf16_from_f32((float)bc_rng_uniform(rng, lo, hi));
        return 0;
    case MB_DTYPE_F64:
        for (int64_t i = 0; i < n; i++) ((double*)dst)[i] = bc_rng_uniform(rng, lo, hi);
        return 0;
    default: return -1;
    }
}

void bc_pool_init(bc_pool* pool, uint64_t seed) { bc_pool_init_on(pool, seed, MB_BACKEND_CPU); }

void bc_pool_init_on(bc_pool* pool, uint64_t seed, mb_backend backend) {
    memset(pool, 0, sizeof *pool);
    bc_rng_seed(&pool->rng, seed);
    pool->backend = backend;
}

static void free_tensor(const bc_pool* pool, void* p) {
#ifdef MB_HAVE_CUDA
    if (pool->backend == MB_BACKEND_CUDA) {
        cudaFree(p);
        return;
    }
#endif
    (void)pool;
    free(p);
}

/* Device tensor of n elements of `dtype`: a host block of at most 4M random
 * elements, copied over the whole buffer (host RNG over gigabytes would take
 * longer than the benchmark). NULL on failure. */
static void* device_uniform(bc_pool* pool, mb_dtype dtype, int64_t n, double lo, double hi) {
#ifdef MB_HAVE_CUDA
    const size_t esize = mb_dtype_size(dtype);
    const int64_t block = n < ((int64_t)1 << 22) ? n : ((int64_t)1 << 22);
    void* host = malloc((size_t)block * esize);
    void* dev = NULL;
    if (!host || bc_fill_uniform(host, dtype, block, lo, hi, &pool->rng) != 0 ||
        cudaMalloc(&dev, (size_t)n * esize) != cudaSuccess) {
        (void)cudaGetLastError();
        free(host);
        return NULL;
    }
    for (int64_t at = 0; at < n; at += block) {
        int64_t count = n - at < block ? n - at : block;
        if (cudaMemcpy((char*)dev + at * (int64_t)esize, host, (size_t)count * esize,
                       cudaMemcpyHostToDevice) != cudaSuccess) {
            cudaFree(dev);
            dev = NULL;
            break;
        }
    }
    free(host);
    return dev;
#else
    (void)pool, (void)dtype, (void)n, (void)lo, (void)hi;
    return NULL;
#endif
}

void* bc_pool_uniform(bc_pool* pool, mb_dtype dtype, int64_t n, double lo, double hi) {
    size_t esize = mb_dtype_size(dtype);
    if (pool->count >= BC_POOL_MAX || esize == 0 || n <= 0 ||
        (uint64_t)n > (uint64_t)INT64_MAX / esize) {
        pool->failed = 1;
        return NULL;
    }
    void* p = NULL;
    if (pool->backend == MB_BACKEND_CUDA) {
        p = device_uniform(pool, dtype, n, lo, hi);
    } else if ((p = malloc((size_t)n * esize)) &&
               bc_fill_uniform(p, dtype, n, lo, hi, &pool->rng) != 0) {
        free(p);
        p = NULL;
    }
    if (!p) {
        pool->failed = 1;
        return NULL;
    }
    pool->ptrs[pool->count++] = p;
    pool->bytes += n * (int64_t)esize;
    return p;
}

void bc_pool_free(bc_pool* pool) {
    for (int k = 0; k < pool->count; k++) free_tensor(pool, pool->ptrs[k]);
    // the workspace a case needed (naive attention's L x L: up to 69 GB) goes back
    // to the driver, so the next case's tensors fit; its first call re-allocates
    if (pool->backend == MB_BACKEND_CUDA && mb_cuda_memory_trim() != MB_OK)
        fprintf(stderr, "bench: giving the workspace pool back failed: %s\n", mb_last_error());
    uint64_t seed = pool->rng.s;
    mb_backend backend = pool->backend;
    memset(pool, 0, sizeof *pool);
    pool->rng.s = seed;
    pool->backend = backend;
}

// ----------------------------------------------------------------------------
// checking and timing one case

void bc_check_case(bc_check* check, const char* name, int64_t L, const bc_pool* pool,
                   bc_call_fn call, void* ctx, int announce) {
    memset(check, 0, sizeof *check);
    if (pool->failed) {
        check->status = MB_ERR_ALLOC;
        snprintf(check->err, sizeof check->err, "%s L=%lld: allocating the tensors failed",
                 name, (long long)L);
        return;
    }
    check->backend = pool->backend;
    const int gpu = pool->backend == MB_BACKEND_CUDA;
    if (gpu) mb_cuda_memory_reset_peak();
    else mb_cpu_memory_reset_peak();
    const int64_t live = gpu ? mb_cuda_memory_peak_bytes() : mb_cpu_memory_peak_bytes();
    const double t0 = bc_now();
    check->status = call(ctx);
    if (check->status == MB_OK && gpu) check->status = bc_gpu_sync(check->err, sizeof check->err);
    const double secs = bc_now() - t0;
    check->scratch_peak = (gpu ? mb_cuda_memory_peak_bytes() : mb_cpu_memory_peak_bytes()) - live;
    check->does_not_fit = check->status == MB_ERR_ALLOC;
    if (check->status != MB_OK && check->err[0]) return;
    if (check->status != MB_OK)
        snprintf(check->err, sizeof check->err, "%s L=%lld: %s: %s", name, (long long)L,
                 mb_status_string(check->status), mb_last_error());
    if (announce) bc_progress(name, L, secs, pool->bytes + check->scratch_peak);
}

void bc_select_and_check(bc_check* check, mb_status selected, const char* name, int64_t arg,
                         const bc_pool* pool, bc_call_fn call, void* ctx, int announce) {
    if (selected != MB_OK) {
        memset(check, 0, sizeof *check);
        check->status = selected;
        snprintf(check->err, sizeof check->err, "%s: %s", name, mb_last_error());
        return;
    }
    bc_check_case(check, name, arg, pool, call, ctx, announce);
}

gb_bench* bc_register_by_arg(const char* name, gb_fn fn, void* user, char arg, int64_t lmin,
                             int64_t lmax, mb_backend backend, bc_probe_fn probe) {
    int64_t args[64];
    int n = 0;
    if (arg == 'L') n = bc_sweep(lmin, lmax, args, 64);
    if (arg == 'N')
        for (int64_t N = 16; N <= MB_MAX_DSTATE; N *= 2) args[n++] = N;
    if (arg == 'B')
        for (int64_t b = 1; b <= 64; b *= 8)
            if (lmax <= 0 || (b >= lmin && b <= lmax)) args[n++] = b;
    const char* arg_name = arg == 'L' ? "L" : arg == 'N' ? "N" : "B";
    // the steps (B) report the time of one call of an iteration's 100, so a min time
    // would run ~100x longer than asked: a fixed 20 iterations (2000 steps) instead
    return register_args(name, fn, user, arg_name, args, n, backend,
                         arg == 'L' ? GB_O_N : GB_O_NONE, probe, arg == 'B' ? 20 : 0);
}

gb_bench* bc_register_impl(const char* name, gb_fn fn, void* user, char arg, int64_t lmin,
                           int64_t lmax, mb_op op, mb_direction dir, mb_backend backend,
                           const char* impl, bc_probe_fn probe) {
    if (arg == 'B') { // lmin..lmax: the batches
        const int cap = bc_opt.versions_lmax > 0 && is_other_version(op, dir, backend, impl);
        lmin = cap ? 8 : 1, lmax = cap ? 8 : 64;
    } else {
        lmax = bc_impl_lmax(op, dir, backend, impl, lmax);
    }
    return bc_register_by_arg(name, fn, user, arg, lmin, lmax, backend, probe);
}

int bc_time_case(gb_state* st, const char* name, const bc_check* check, bc_call_fn call,
                 void* ctx) {
    return bc_time_case_n(st, name, check, call, ctx, 1);
}

/* The CPU loop: wall clock, one call per iteration. */
static int time_cpu(gb_state* st, const char* name, bc_call_fn call, void* ctx) {
    while (gb_keep_running(st)) {
        mb_status status = call(ctx);
        if (status != MB_OK) {
            bc_skip_status(st, name, status);
            return 0;
        }
    }
    return 1;
}

/* 1 when the validating call passed; else the run is skipped with its reason. */
static int check_passed(gb_state* st, const bc_check* check) {
    if (check->status != MB_OK && check->does_not_fit) {
        char msg[600];
        snprintf(msg, sizeof msg, "does not fit (expected, not a failure): %s", check->err);
        gb_skip_expected(st, msg);
        return 0;
    }
    if (check->status != MB_OK) {
        gb_skip_with_error(st, check->err);
        return 0;
    }
    return 1;
}

void bc_require_family_slot(const char* bench, int n, int max) {
    if (n < max) return;
    fprintf(stderr, "%s: more than %d benchmark families registered: raise MAX_FAMILIES\n",
            bench, max);
    exit(2);
}

int bc_time_case_n(gb_state* st, const char* name, const bc_check* check, bc_call_fn call,
                   void* ctx, int calls_per_iteration) {
    if (!check_passed(st, check)) return 0;
    if (check->backend == MB_BACKEND_CUDA)
        return bc_time_gpu(st, name, call, ctx, calls_per_iteration);
    return time_cpu(st, name, call, ctx);
}

int bc_step_calls(const bc_check* check, bc_call_fn call, void* ctx) {
    enum { most = 100, fewest = 10 };
    if (check->status != MB_OK || check->backend != MB_BACKEND_CUDA) return most;
    char err[256];
    const double t0 = bc_now();
    if (call(ctx) != MB_OK || bc_gpu_sync(err, sizeof err) != MB_OK) return most;
    const double secs = bc_now() - t0;
    if (secs <= 1e-4) return most;
    const int calls = (int)(1e-2 / secs);
    return calls < fewest ? fewest : calls > most ? most : calls;
}

int bc_time_case_graph(gb_state* st, const char* name, const bc_check* check, bc_call_fn call,
                       void* ctx, int calls_per_iteration) {
    if (!check_passed(st, check)) return 0;
    if (check->backend != MB_BACKEND_CUDA) {
        gb_skip_with_error(st, "CUDA graphs time CUDA calls only");
        return 0;
    }
    return bc_time_gpu_graph(st, name, call, ctx, calls_per_iteration);
}

// ----------------------------------------------------------------------------
// reporting

double bc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void bc_skip_status(gb_state* st, const char* what, mb_status status) {
    char msg[768];
    snprintf(msg, sizeof msg, "%s: %s: %s", what, mb_status_string(status), mb_last_error());
    gb_skip_with_error(st, msg);
}

void bc_report(gb_state* st, int64_t L, int64_t tokens, double flops, int64_t io_bytes,
               int64_t scratch_peak_bytes) {
    const int per_call_rate = GB_COUNTER_IS_RATE | GB_COUNTER_ITERATION_INVARIANT;
    gb_set_complexity_n(st, L);
    gb_set_counter(st, "tokens_per_second", (double)tokens, per_call_rate);
    gb_set_counter(st, "flop_per_second", flops, per_call_rate);
    gb_set_bytes_processed(st, gb_iteration_count(st) * io_bytes);
    gb_set_counter(st, "io_bytes", (double)io_bytes, GB_COUNTER_BASE_1024);
    gb_set_counter(st, "scratch_peak_bytes", (double)scratch_peak_bytes, GB_COUNTER_BASE_1024);
    gb_set_counter(st, "peak_bytes", (double)(io_bytes + scratch_peak_bytes),
                   GB_COUNTER_BASE_1024);
}

void bc_report_row(gb_state* st, mb_op op, const char* dir, mb_backend backend, const char* impl,
                   mb_dtype dtype, const char* extra, int64_t L, int64_t tokens, double flops,
                   const bc_pool* pool, const bc_check* check) {
    bc_set_fields(st, op, dir, backend, impl, dtype, extra);
    bc_report(st, L, tokens, flops, pool->bytes, check->scratch_peak);
    if (backend == MB_BACKEND_CUDA) bc_report_gpu(st, pool->bytes, check->scratch_peak);
}

void bc_report_gpu(gb_state* st, int64_t io_bytes, int64_t workspace_bytes) {
    gb_set_counter(st, "extra_device_bytes", (double)workspace_bytes, GB_COUNTER_BASE_1024);
    double ceiling = bc_gpu_copy_ceiling();
    if (ceiling > 0.0)
        gb_set_counter(st, "pct_of_copy_ceiling", 100.0 * (double)io_bytes / ceiling,
                       GB_COUNTER_IS_RATE | GB_COUNTER_ITERATION_INVARIANT);
}

void bc_progress(const char* family, int64_t L, double call_seconds, int64_t peak_bytes) {
    static char last_family[128];
    static int64_t last_L = -1;
    if (L == last_L && strncmp(family, last_family, sizeof last_family) == 0) return;
    snprintf(last_family, sizeof last_family, "%s", family);
    last_L = L;
    if (bc_opt.quiet) return;
    fprintf(stderr, "[mb-bench %7.1fs] %-22s L=%-7lld one call %.4f s, peak %.1f MiB\n",
            bc_now() - t_start, family, (long long)L, call_seconds,
            (double)peak_bytes / (1024.0 * 1024.0));
    fflush(stderr);
}
