/*
 * bench_common.h -- helpers shared by the C benchmarks of mambabench
 * (bench/bench_*.c, each linked with bench_common.c, the library and the
 * Google Benchmark shim; see CMakeLists.txt).
 *
 *   options:  bc_init() reads the --mb_* flags (removing them from argv) and
 *             the MB_BENCH_* environment variables, and records the context
 *   sweeps:   bc_register_sweep() registers one family over L = powers of two
 *   data:     bc_pool, counted tensors of fresh random data (fixed seed)
 *   report:   bc_report() sets the counters every bench reports
 *   progress: bc_progress() prints one line per benchmark to stderr
 *
 * Flags (before or among the --benchmark_* flags) and environment variables;
 * a flag wins over its variable:
 *   --mb_lmin=N       MB_BENCH_LMIN        raise the smallest L of every family
 *   --mb_lmax=N       MB_BENCH_LMAX        cap the largest L of every family
 *   --mb_reps=N       MB_BENCH_REPETITIONS repetitions per L (default 5)
 *   --mb_min_time=S   MB_BENCH_MIN_TIME    min seconds per repetition (default 0.05)
 *   --mb_warmup=S     MB_BENCH_WARMUP      min warm-up seconds per L (default 0.02)
 *   --mb_bigo=auto    MB_BENCH_BIGO        fit the best complexity, not the op's own
 *   --mb_quiet        MB_BENCH_QUIET=1     no progress lines
 *   --mb_gpu_only     MB_BENCH_GPU_ONLY=1  only the CUDA families (the GPU sweep)
 *   --mb_versions_lmax=N  MB_BENCH_VERSIONS_LMAX  cap the L of the implementations
 *                     that are not their op's default (0: no cap; the GPU sweep
 *                     uses 16384: every version is compared there, the
 *                     defaults and the peers go on to the end)
 * Context added to the output: commit (MB_COMMIT or `git rev-parse --short
 * HEAD`, "-dirty" when tracked files changed), hostname, CPU model, compiler,
 * build type, UTC date, library version and the settings above.
 */
#ifndef MB_BENCH_COMMON_H
#define MB_BENCH_COMMON_H

#include "gbench_shim.h"
#include "mambabench.h"

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* options and context */

typedef struct {
    int64_t lmin;       /* 0: each family's default */
    int64_t lmax;       /* 0: each family's default; else a cap */
    int repetitions;    /* >= 1 */
    double min_time;    /* seconds per repetition */
    double warmup_time; /* seconds of untimed runs before the first repetition */
    int bigo_auto;      /* fit GB_O_AUTO instead of the family's complexity */
    int quiet;          /* no progress lines */
    int gpu_only;       /* register the CUDA families only */
    int64_t versions_lmax; /* cap on L of non-default implementations; 0: none */
} bc_options;

extern bc_options bc_opt;

/* Parse the --mb_* flags out of argv and the MB_BENCH_* variables into bc_opt,
 * then add the context (see above) and `bench` (the program's name) with
 * gb_add_context. Returns 0, or 1 after printing why on a malformed value. */
int bc_init(int* argc, char** argv, const char* bench);

/* Nonzero with --mb_gpu_only: benches register their CUDA families only. */
int bc_gpu_only(void);

/* The largest L to sweep implementation `impl` of (op, dir, backend) to:
 * lmax, or bc_opt.versions_lmax when that is smaller and impl is not the
 * default. */
int64_t bc_impl_lmax(mb_op op, mb_direction dir, mb_backend backend, const char* impl,
                     int64_t lmax);


/* ------------------------------------------------------------------------ */
/* L sweeps */

/* Fill Ls (room for `cap`) with the powers of two from lmin to lmax after
 * applying bc_opt.lmin / bc_opt.lmax; at least one L (the largest power of
 * two under the cap) even when the cap is below lmin. Returns the count. */
int bc_sweep(int64_t lmin, int64_t lmax, int64_t* Ls, int cap);

/* Nonzero when the family `user` runs at length L (the op returns MB_OK). */
typedef int (*bc_probe_fn)(void* user, int64_t L);

/* Register family `name` running fn(st, user) for the L of bc_sweep(lmin,
 * lmax), run names "name/L:<L>/...", with the common settings: wall time in
 * ms, bc_opt's repetitions, min time and warm-up, console showing the
 * aggregates only (the JSON file keeps every repetition), and the complexity
 * `big_o` (GB_O_AUTO with --mb_bigo=auto) -- but only when probe(user, the
 * smallest L) succeeds: Google Benchmark 1.7.1 crashes fitting the complexity
 * of a family whose every run failed, and a family failing at its smallest L
 * (say, an op not implemented yet) fails at all. Its runs then report the
 * error and gb_main returns nonzero. */
gb_bench* bc_register_sweep(const char* name, gb_fn fn, void* user, int64_t lmin, int64_t lmax,
                            gb_big_o big_o, bc_probe_fn probe);
/* The same, timed as `backend` needs (CUDA: manual time from events). */
gb_bench* bc_register_sweep_on(const char* name, gb_fn fn, void* user, int64_t lmin,
                               int64_t lmax, mb_backend backend, gb_big_o big_o,
                               bc_probe_fn probe);

/* ------------------------------------------------------------------------ */
/* random tensors */

typedef struct {
    uint64_t s;
} bc_rng;

void bc_rng_seed(bc_rng* rng, uint64_t seed);
uint64_t bc_rng_next(bc_rng* rng);
/* Uniform in [lo, hi). */
double bc_rng_uniform(bc_rng* rng, double lo, double hi);
/* n elements of `dtype` (f32, bf16 or f64) uniform in [lo, hi). 0, or -1 on a bad dtype. */
int bc_fill_uniform(void* dst, mb_dtype dtype, int64_t n, double lo, double hi, bc_rng* rng);

#define BC_POOL_MAX 32

/* The tensors of one benchmark case, freed together; `bytes` sums their sizes. */
typedef struct {
    void* ptrs[BC_POOL_MAX];
    int count;
    int64_t bytes;
    int failed; /* an allocation or fill failed; check once after allocating */
    bc_rng rng;
    mb_backend backend; /* where the tensors live: host memory, or device memory (CUDA) */
} bc_pool;

/* An empty pool of host tensors drawing from a generator seeded with `seed`. */
void bc_pool_init(bc_pool* pool, uint64_t seed);
/* The same for tensors of `backend`: CUDA tensors are filled on the host and
 * copied to the device (cudaMalloc'd, freed by bc_pool_free). */
void bc_pool_init_on(bc_pool* pool, uint64_t seed, mb_backend backend);
/* n elements of `dtype` uniform in [lo, hi) (outputs too: never zeros, and
 * every page is touched before timing). NULL and pool->failed on failure. */
void* bc_pool_uniform(bc_pool* pool, mb_dtype dtype, int64_t n, double lo, double hi);
void bc_pool_free(bc_pool* pool);

/* ------------------------------------------------------------------------ */
/* checking and timing one case */

/* The op call of a case, on the case's own tensors. */
typedef mb_status (*bc_call_fn)(void* ctx);

/* The outcome of a case's untimed validating call. */
typedef struct {
    mb_status status;     /* of that call; MB_ERR_ALLOC when the tensors failed */
    char err[512];        /* why, when status != MB_OK */
    int64_t scratch_peak; /* peak scratch of that call, bytes (host for CPU, device for CUDA) */
    mb_backend backend;   /* of the case's pool: how it is timed */
    int does_not_fit;     /* the op itself returned MB_ERR_ALLOC (say, naive attention's
                             L x L): recorded as an error row, not counted as a failure */
} bc_check;

/* The untimed validating call of case ctx of family `name` at length L: a
 * failed pool is refused without calling; else call(ctx) runs once (checks
 * MB_OK, measures the scratch peak, warms up) and, with `announce`, a progress
 * line is printed. */
void bc_check_case(bc_check* check, const char* name, int64_t L, const bc_pool* pool,
                   bc_call_fn call, void* ctx, int announce);

/* The validating call as bc_check_case, after the implementation was selected
 * with status `selected`: a failed selection is recorded as the check's
 * outcome (with mb_last_error()) and nothing is called. */
void bc_select_and_check(bc_check* check, mb_status selected, const char* name, int64_t arg,
                         const bc_pool* pool, bc_call_fn call, void* ctx, int announce);

/* The timed loop of a checked case: skips the run with check->err when the
 * validating call failed, else runs call(ctx) while gb_keep_running, skipping
 * the run at the first failing call. Returns 1 when every call succeeded.
 * Timing: CPU cases by the wall clock around each call; CUDA cases by CUDA
 * events around `calls_per_iteration` calls, after an L2 flush (a memset of a
 * buffer twice the L2 size) outside the events, reported as manual time per
 * call (so a loop of decode steps reports the time of one step). */
int bc_time_case(gb_state* st, const char* name, const bc_check* check, bc_call_fn call,
                 void* ctx);
int bc_time_case_n(gb_state* st, const char* name, const bc_check* check, bc_call_fn call,
                   void* ctx, int calls_per_iteration);
/* Calls per timed iteration of a one-token step whose validating call passed:
 * 100 (launch cost amortised over a loop of steps, as a decoder runs them) unless
 * one warm call of it (host clock, synchronised) takes over 100 us, then as many as
 * fill ~10 ms, at least 10: a superseded step of 0.5 ms would otherwise spend 10 s
 * on one row. 100 where the check failed or on the CPU (one call per iteration). */
int bc_step_calls(const bc_check* check, bc_call_fn call, void* ctx);
/* bc_time_case_n with the CUDA calls replayed from a graph (bc_time_gpu_graph). */
int bc_time_case_graph(gb_state* st, const char* name, const bc_check* check, bc_call_fn call,
                       void* ctx, int calls_per_iteration);

/* Exit with a message when a bench's table of `max` families is full (n == max):
 * a family left unregistered would drop its rows from the sweep without a word. */
void bc_require_family_slot(const char* bench, int n, int max);

/* Register family `name` over the given argument values (named arg_name),
 * with the settings of bc_register_sweep, timed as `backend` needs (CUDA:
 * manual time from events). bc_register_sweep is this over powers of two of L. */
gb_bench* bc_register_args(const char* name, gb_fn fn, void* user, const char* arg_name,
                           const int64_t* args, int nargs, mb_backend backend, gb_big_o big_o,
                           bc_probe_fn probe);

/* Register a family swept over `arg`: 'L' (powers of two from lmin to lmax,
 * complexity O(L)), 'N' (the state size 16..MB_MAX_DSTATE) or 'B' (of batch 1, 8,
 * 64 those in lmin..lmax, all when lmax is 0: one-token steps, timed bc_step_calls
 * calls per iteration, 20 iterations per repetition), with the settings of
 * bc_register_args. */
gb_bench* bc_register_by_arg(const char* name, gb_fn fn, void* user, char arg, int64_t lmin,
                             int64_t lmax, mb_backend backend, bc_probe_fn probe);

/* bc_register_by_arg for implementation `impl` of (op, dir, backend): when it is not the
 * default and bc_opt.versions_lmax is set, 'L' stops at bc_impl_lmax and 'B' (the
 * one-token steps) runs at batch 8 only, the target's batch; else as given ('B': 1, 8, 64). */
gb_bench* bc_register_impl(const char* name, gb_fn fn, void* user, char arg, int64_t lmin,
                           int64_t lmax, mb_op op, mb_direction dir, mb_backend backend,
                           const char* impl, bc_probe_fn probe);

/* "op=... dir=... backend=... impl=... default=0|1 dtype=..." + extra: the typed
 * fields of a row, set as its label (plots/plot_scaling.py groups by them, not
 * by names). default=1 when impl is its (op, direction, backend)'s default. */
void bc_set_fields(gb_state* st, mb_op op, const char* dir, mb_backend backend,
                   const char* impl, mb_dtype dtype, const char* extra);

/* ------------------------------------------------------------------------ */
/* the GPU side (bench/bench_gpu.c; stubs without CUDA) */

/* The name of implementation i of (op, dir, backend), NULL past the last one. */
const char* bc_impl_name(mb_op op, mb_direction dir, mb_backend backend, int i);

/* The counters of one finished row: its typed fields (bc_set_fields), bc_report,
 * and bc_report_gpu for a CUDA row. */
void bc_report_row(gb_state* st, mb_op op, const char* dir, mb_backend backend, const char* impl,
                   mb_dtype dtype, const char* extra, int64_t L, int64_t tokens, double flops,
                   const bc_pool* pool, const bc_check* check);

/* Nonzero when a CUDA device is usable (CUDA families are registered only then). */
int bc_have_gpu(void);
/* Add the GPU context (name, SMs, L2, clocks, memory, driver, runtime, the
 * measured device-to-device copy rate) once; nothing without a GPU. */
void bc_gpu_context(void);
/* The measured copy ceiling in bytes/s (read + written), 0 without a GPU. */
double bc_gpu_copy_ceiling(void);
/* Synchronize the device; MB_OK, or MB_ERR_CUDA with the message in err. */
mb_status bc_gpu_sync(char* err, size_t cap);
/* The CUDA timing loop of bc_time_case_n. */
int bc_time_gpu(gb_state* st, const char* name, bc_call_fn call, void* ctx, int calls);
/* The same timing with the `calls` calls captured once in a CUDA graph on a
 * stream of their own and replayed per iteration (what a decoding loop under
 * CUDA graphs pays: no host launch cost); the L2 flush and the events on that
 * stream. call(ctx) must launch on bc_call_stream(). */
int bc_time_gpu_graph(gb_state* st, const char* name, bc_call_fn call, void* ctx, int calls);
/* The stream a bc_call_fn launches on: NULL (the legacy default stream), or the
 * capturing stream inside bc_time_gpu_graph. */
void* bc_call_stream(void);

/* ------------------------------------------------------------------------ */
/* reporting */

/* Seconds on a monotonic clock. */
double bc_now(void);

/* Skip the run with "<what>: <status string>: <mb_last_error()>". */
void bc_skip_status(gb_state* st, const char* what, mb_status status);

/* Counters of one call at length L (call after the timed loop):
 *   complexity N = L
 *   tokens_per_second   tokens per call, as a rate (B * L)
 *   flop_per_second     flops per call (the op's estimate), as a rate
 *   bytes_per_second    io_bytes per call, as a rate
 *   io_bytes            input + output tensor bytes of one call
 *   scratch_peak_bytes  peak reference scratch of one call
 *   peak_bytes          io_bytes + scratch_peak_bytes */
void bc_report(gb_state* st, int64_t L, int64_t tokens, double flops, int64_t io_bytes,
               int64_t scratch_peak_bytes);

/* GPU rows: extra_device_bytes, the peak workspace of the call (peak_bytes of
 * bc_report is io_bytes + it, as bench/peers.py counts torch's), and
 * pct_of_copy_ceiling, the compulsory traffic io_bytes per call as a percentage
 * of the measured device-to-device copy rate. */
void bc_report_gpu(gb_state* st, int64_t io_bytes, int64_t workspace_bytes);

/* One progress line to stderr the first time (family, L) is seen in a row:
 * elapsed time, the case, the seconds of its untimed validating call and its
 * peak memory. */
void bc_progress(const char* family, int64_t L, double call_seconds, int64_t peak_bytes);

#endif /* MB_BENCH_COMMON_H */
