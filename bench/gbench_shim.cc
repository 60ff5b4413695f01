// gbench_shim.cc -- the C API of gbench_shim.h over Google Benchmark 1.7.x.
//
// The only C++ file of mambabench. Opaque C handles are the library's own
// objects reinterpreted: gb_state* is a benchmark::State*, gb_bench* a
// benchmark::internal::Benchmark*. No C++ exception crosses into C: every
// entry point that can allocate catches and reports.
//
// Build: part of the `gbench_shim` static library in CMakeLists.txt.

#include "gbench_shim.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <exception>
#include <vector>
#include <string>

namespace {

// ----------------------------------------------------------------------------
// handles and error bookkeeping

benchmark::State& S(gb_state* st) { return *reinterpret_cast<benchmark::State*>(st); }
const benchmark::State& S(const gb_state* st) {
    return *reinterpret_cast<const benchmark::State*>(st);
}
benchmark::internal::Benchmark* B(gb_bench* b) {
    return reinterpret_cast<benchmark::internal::Benchmark*>(b);
}
gb_bench* H(benchmark::internal::Benchmark* b) { return reinterpret_cast<gb_bench*>(b); }

// Runs skipped with an error, and shim failures (a C++ exception caught).
long g_errors = 0;

void shim_failed(const char* where, const std::exception& e) {
    std::fprintf(stderr, "gbench_shim: %s failed: %s\n", where, e.what());
    ++g_errors;
}

benchmark::TimeUnit to_unit(gb_time_unit u) {
    switch (u) {
    case GB_UNIT_NS: return benchmark::kNanosecond;
    case GB_UNIT_US: return benchmark::kMicrosecond;
    case GB_UNIT_MS: return benchmark::kMillisecond;
    case GB_UNIT_S: return benchmark::kSecond;
    }
    return benchmark::kNanosecond;
}

benchmark::BigO to_big_o(gb_big_o o) {
    switch (o) {
    case GB_O_NONE: return benchmark::oNone;
    case GB_O_1: return benchmark::o1;
    case GB_O_N: return benchmark::oN;
    case GB_O_N_SQUARED: return benchmark::oNSquared;
    case GB_O_N_CUBED: return benchmark::oNCubed;
    case GB_O_LOG_N: return benchmark::oLogN;
    case GB_O_N_LOG_N: return benchmark::oNLogN;
    case GB_O_AUTO: return benchmark::oAuto;
    }
    return benchmark::oNone;
}

benchmark::Counter make_counter(double value, int flags) {
    using C = benchmark::Counter;
    unsigned f = 0;
    if (flags & GB_COUNTER_IS_RATE) f |= C::kIsRate;
    if (flags & GB_COUNTER_AVG_ITERATIONS) f |= C::kAvgIterations;
    if (flags & GB_COUNTER_ITERATION_INVARIANT) f |= C::kIsIterationInvariant;
    if (flags & GB_COUNTER_INVERT) f |= static_cast<unsigned>(C::kInvert);
    const C::OneK k = (flags & GB_COUNTER_BASE_1024) ? C::kIs1024 : C::kIs1000;
    return C(value, static_cast<C::Flags>(f), k);
}

}  // namespace

extern "C" {

// ----------------------------------------------------------------------------
// inside a benchmark body

int gb_keep_running(gb_state* st) { return S(st).KeepRunning() ? 1 : 0; }
int64_t gb_range(const gb_state* st, int i) { return S(st).range(static_cast<std::size_t>(i)); }
int64_t gb_iteration_count(const gb_state* st) { return S(st).iterations(); }
void gb_pause_timing(gb_state* st) { S(st).PauseTiming(); }
void gb_resume_timing(gb_state* st) { S(st).ResumeTiming(); }
void gb_set_iteration_time(gb_state* st, double seconds) { S(st).SetIterationTime(seconds); }

void gb_set_counter(gb_state* st, const char* name, double value, int flags) {
    try {
        S(st).counters[name] = make_counter(value, flags);
    } catch (const std::exception& e) {
        shim_failed("gb_set_counter", e);
    }
}

void gb_set_complexity_n(gb_state* st, int64_t n) { S(st).SetComplexityN(n); }
void gb_set_items_processed(gb_state* st, int64_t items) {
    try {
        S(st).SetItemsProcessed(items);
    } catch (const std::exception& e) {
        shim_failed("gb_set_items_processed", e);
    }
}
void gb_set_bytes_processed(gb_state* st, int64_t bytes) {
    try {
        S(st).SetBytesProcessed(bytes);
    } catch (const std::exception& e) {
        shim_failed("gb_set_bytes_processed", e);
    }
}
void gb_set_label(gb_state* st, const char* label) {
    try {
        S(st).SetLabel(label ? label : "");
    } catch (const std::exception& e) {
        shim_failed("gb_set_label", e);
    }
}

void gb_skip_with_error(gb_state* st, const char* msg) {
    ++g_errors;
    S(st).SkipWithError(msg ? msg : "(no message)");
}
void gb_skip_expected(gb_state* st, const char* msg) {
    S(st).SkipWithError(msg ? msg : "(no message)");
}
int gb_error_occurred(const gb_state* st) { return S(st).error_occurred() ? 1 : 0; }

// ----------------------------------------------------------------------------
// registration

gb_bench* gb_register(const char* name, gb_fn fn, void* user) {
    if (!name || !fn) return nullptr;
    try {
        return H(benchmark::RegisterBenchmark(
            name, [fn, user](benchmark::State& st) {
                fn(reinterpret_cast<gb_state*>(&st), user);
            }));
    } catch (const std::exception& e) {
        shim_failed("gb_register", e);
        return nullptr;
    }
}

// Apply `op` to b unless b is NULL (a failed registration), catching exceptions.
#define GB_BUILD(b, what, op)                  \
    do {                                       \
        if (!(b)) return nullptr;              \
        try {                                  \
            B(b)->op;                          \
        } catch (const std::exception& e) {    \
            shim_failed(what, e);              \
        }                                      \
        return (b);                            \
    } while (0)

gb_bench* gb_arg(gb_bench* b, int64_t x) { GB_BUILD(b, "gb_arg", Arg(x)); }
gb_bench* gb_args(gb_bench* b, const int64_t* xs, int n) {
    if (!xs || n <= 0) return b;
    GB_BUILD(b, "gb_args", Args(std::vector<int64_t>(xs, xs + n)));
}
gb_bench* gb_range_multiplier(gb_bench* b, int m) {
    GB_BUILD(b, "gb_range_multiplier", RangeMultiplier(m));
}
gb_bench* gb_arg_range(gb_bench* b, int64_t lo, int64_t hi) {
    GB_BUILD(b, "gb_arg_range", Range(lo, hi));
}
gb_bench* gb_dense_range(gb_bench* b, int64_t lo, int64_t hi, int step) {
    GB_BUILD(b, "gb_dense_range", DenseRange(lo, hi, step));
}
gb_bench* gb_arg_name(gb_bench* b, const char* name) {
    GB_BUILD(b, "gb_arg_name", ArgName(name ? name : ""));
}
gb_bench* gb_unit(gb_bench* b, gb_time_unit unit) { GB_BUILD(b, "gb_unit", Unit(to_unit(unit))); }
gb_bench* gb_use_real_time(gb_bench* b) { GB_BUILD(b, "gb_use_real_time", UseRealTime()); }
gb_bench* gb_use_manual_time(gb_bench* b) { GB_BUILD(b, "gb_use_manual_time", UseManualTime()); }
gb_bench* gb_min_time(gb_bench* b, double s) { GB_BUILD(b, "gb_min_time", MinTime(s)); }
gb_bench* gb_min_warmup_time(gb_bench* b, double s) {
    GB_BUILD(b, "gb_min_warmup_time", MinWarmUpTime(s));
}
gb_bench* gb_iterations(gb_bench* b, int64_t n) {
    GB_BUILD(b, "gb_iterations", Iterations(static_cast<benchmark::IterationCount>(n)));
}
gb_bench* gb_repetitions(gb_bench* b, int n) { GB_BUILD(b, "gb_repetitions", Repetitions(n)); }
gb_bench* gb_report_aggregates_only(gb_bench* b, int display_only) {
    if (display_only) GB_BUILD(b, "gb_report_aggregates_only", DisplayAggregatesOnly(true));
    GB_BUILD(b, "gb_report_aggregates_only", ReportAggregatesOnly(true));
}
gb_bench* gb_complexity(gb_bench* b, gb_big_o o) {
    GB_BUILD(b, "gb_complexity", Complexity(to_big_o(o)));
}

#undef GB_BUILD

// ----------------------------------------------------------------------------
// running

void gb_add_context(const char* key, const char* value) {
    if (!key) return;
    try {
        benchmark::AddCustomContext(key, value ? value : "");
    } catch (const std::exception& e) {
        shim_failed("gb_add_context", e);
    }
}

int gb_main(int argc, char** argv) {
    try {
        benchmark::Initialize(&argc, argv);
        if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
        const std::size_t ran = benchmark::RunSpecifiedBenchmarks();
        benchmark::Shutdown();
        if (ran == 0) {
            std::fprintf(stderr, "gbench_shim: no benchmark was run\n");
            return 1;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gbench_shim: gb_main failed: %s\n", e.what());
        return 1;
    }
    return g_errors ? 2 : 0;
}

}  // extern "C"
