/*
 * gbench_shim.h -- a small C API over Google Benchmark (C++), so the
 * benchmarks of mambabench can be written in C11.
 *
 * Built from bench/gbench_shim.cc (the only C++ file of the project) into a
 * static library that links benchmark::benchmark; see CMakeLists.txt.
 * Written against Google Benchmark 1.7.x (Debian libbenchmark-dev).
 *
 * A benchmark is a C function run by the library as often as it wants:
 *
 *   static void bm_copy(gb_state* st, void* user) {
 *       int64_t n = gb_range(st, 0);
 *       ... untimed setup ...
 *       while (gb_keep_running(st)) { ... the timed work ... }
 *       gb_set_counter(st, "elems", (double)n, GB_COUNTER_IS_RATE | GB_COUNTER_ITERATION_INVARIANT);
 *   }
 *   int main(int argc, char** argv) {
 *       gb_bench* b = gb_register("copy", bm_copy, NULL);
 *       gb_arg_name(b, "n");
 *       for (int64_t n = 64; n <= 4096; n *= 2) gb_arg(b, n);
 *       gb_complexity(b, GB_O_N);
 *       return gb_main(argc, argv);
 *   }
 *
 * Every builder call returns its handle, so calls can be chained or ignored.
 * Handles stay valid until gb_main returns. Nothing here is thread-safe
 * beyond what Google Benchmark itself guarantees; the benches are
 * single-threaded.
 */
#ifndef GBENCH_SHIM_H
#define GBENCH_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* types */

typedef struct gb_state gb_state; /* one run of a benchmark: a benchmark::State */
typedef struct gb_bench gb_bench; /* a registered family: a benchmark::internal::Benchmark */

/* The benchmark body. `user` is the pointer given to gb_register. */
typedef void (*gb_fn)(gb_state* st, void* user);

/* Counter flags, OR-able; they map onto benchmark::Counter::Flags / OneK. */
enum {
    GB_COUNTER_PLAIN = 0,                     /* reported as set (aggregated over repetitions) */
    GB_COUNTER_IS_RATE = 1 << 0,              /* divided by the run's time: "per second" */
    GB_COUNTER_AVG_ITERATIONS = 1 << 1,       /* divided by the iteration count */
    GB_COUNTER_ITERATION_INVARIANT = 1 << 2,  /* multiplied by the iteration count (set a
                                                 per-iteration value once, after the loop) */
    GB_COUNTER_INVERT = 1 << 3,               /* reported as 1/value (with IS_RATE: s per x) */
    GB_COUNTER_BASE_1024 = 1 << 4             /* print with 1024-based prefixes (Ki, Mi) */
};

typedef enum { GB_UNIT_NS = 0, GB_UNIT_US = 1, GB_UNIT_MS = 2, GB_UNIT_S = 3 } gb_time_unit;

/* Asymptotic complexity fitted over the family's runs against gb_set_complexity_n. */
typedef enum {
    GB_O_NONE = 0,
    GB_O_1,
    GB_O_N,
    GB_O_N_SQUARED,
    GB_O_N_CUBED,
    GB_O_LOG_N,
    GB_O_N_LOG_N,
    GB_O_AUTO /* the best of the above by least squares */
} gb_big_o;

/* ------------------------------------------------------------------------ */
/* inside a benchmark body */

/* Nonzero while the library wants another timed iteration: `while (gb_keep_running(st))`.
 * The timer starts at the first call; code before it is untimed. */
int gb_keep_running(gb_state* st);
/* The i-th argument of this run (gb_arg / gb_args). */
int64_t gb_range(const gb_state* st, int i);
/* Number of iterations the loop ran (valid after it ended). */
int64_t gb_iteration_count(const gb_state* st);
/* Stop / restart the timer inside the loop (costly: keep the work between large). */
void gb_pause_timing(gb_state* st);
void gb_resume_timing(gb_state* st);
/* With gb_use_manual_time: the time of this iteration, measured by the caller
 * (e.g. with CUDA events). Call once per iteration. */
void gb_set_iteration_time(gb_state* st, double seconds);
/* A user counter; flags from GB_COUNTER_*. Setting a name again replaces it. */
void gb_set_counter(gb_state* st, const char* name, double value, int flags);
/* The N the complexity fit uses for this run. */
void gb_set_complexity_n(gb_state* st, int64_t n);
/* Totals over all iterations: reported as items_per_second / bytes_per_second. */
void gb_set_items_processed(gb_state* st, int64_t items);
void gb_set_bytes_processed(gb_state* st, int64_t bytes);
/* A free-form label printed with the run. */
void gb_set_label(gb_state* st, const char* label);
/* As gb_skip_with_error, for an outcome the benchmark expects (say, an op
 * that does not fit in memory at a large size): the row records the error,
 * but gb_main does not count it as a failure. */
void gb_skip_expected(gb_state* st, const char* msg);
/* Mark this run failed with `msg` (copied); the library reports it and runs no
 * timed iterations of it. Call it before the loop (then skip the loop) or
 * break out of the loop right after. Makes gb_main return nonzero. */
void gb_skip_with_error(gb_state* st, const char* msg);
/* Nonzero once gb_skip_with_error was called on this run. */
int gb_error_occurred(const gb_state* st);

/* ------------------------------------------------------------------------ */
/* registration (before gb_main) */

/* Register a family named `name` (copied) running fn(st, user). NULL on failure. */
gb_bench* gb_register(const char* name, gb_fn fn, void* user);

/* Arguments. Each gb_arg adds one run with a single argument; gb_args one
 * run with `n` arguments. gb_arg_range adds lo, then powers of the range
 * multiplier (default 8) up to hi, then hi; gb_dense_range lo, lo+step, ... hi. */
gb_bench* gb_arg(gb_bench* b, int64_t x);
gb_bench* gb_args(gb_bench* b, const int64_t* xs, int n);
gb_bench* gb_range_multiplier(gb_bench* b, int multiplier);
gb_bench* gb_arg_range(gb_bench* b, int64_t lo, int64_t hi);
gb_bench* gb_dense_range(gb_bench* b, int64_t lo, int64_t hi, int step);
/* Name of the (single) argument in run names: "op/L:4096" instead of "op/4096". */
gb_bench* gb_arg_name(gb_bench* b, const char* name);

/* Timing. */
gb_bench* gb_unit(gb_bench* b, gb_time_unit unit);
gb_bench* gb_use_real_time(gb_bench* b);   /* wall clock, not CPU time of the thread */
gb_bench* gb_use_manual_time(gb_bench* b); /* times from gb_set_iteration_time */
gb_bench* gb_min_time(gb_bench* b, double seconds);        /* per repetition */
gb_bench* gb_min_warmup_time(gb_bench* b, double seconds); /* untimed runs first */
gb_bench* gb_iterations(gb_bench* b, int64_t n);           /* fixed count (no min_time) */
gb_bench* gb_repetitions(gb_bench* b, int n); /* n > 1 adds mean/median/stddev/cv rows */
/* Report only the aggregates of repeated runs: on the console only
 * (display_only != 0) or also in the --benchmark_out file. */
gb_bench* gb_report_aggregates_only(gb_bench* b, int display_only);
/* Fit `big_o` over the family's runs (each must call gb_set_complexity_n).
 * Caution: Google Benchmark 1.7.1 crashes (SIGSEGV) when every run of a
 * family with a complexity was skipped with an error; request it only for a
 * family known to run (bench_common.c probes the smallest size first). */
gb_bench* gb_complexity(gb_bench* b, gb_big_o big_o);

/* ------------------------------------------------------------------------ */
/* running */

/* Add "key": "value" to the context block printed before the runs and
 * written into the JSON output. Call before gb_main. */
void gb_add_context(const char* key, const char* value);

/* Parse the --benchmark_* flags (removing them from argv), refuse any other
 * flag, run the benchmarks selected by --benchmark_filter, shut down.
 * Returns 0 when all went well, 1 on an unrecognised argument or an
 * internal error, 2 when any run was skipped with an error. */
int gb_main(int argc, char** argv);

#ifdef __cplusplus
}
#endif

#endif /* GBENCH_SHIM_H */
