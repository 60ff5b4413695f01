#!/usr/bin/env python3
"""test_regress.py SOURCE_DIR [BUILD_DIR] -- the tests of the speed regression
checker (bench/regress.py, scripts/bench_check.sh), on synthetic Google
Benchmark results: a 15%-slower run fails; a noisy but equal one passes; a 5%
change (within the 10% threshold) passes; a missing benchmark, a new one and an
unknown machine are reported, not failed; a throttled run is not compared; the
U test agrees with scipy where scipy is importable; and, with BUILD_DIR and
valgrind, an instruction-count baseline doctored 10% lower makes the CPU check fail."""
import copy
import json
import os
import random
import subprocess
import sys
import tempfile

src = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
build = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
sys.path.insert(0, os.path.join(src, "bench"))
import regress  # noqa: E402

failures = []


def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def doc(times_by_name, ctx=None, reps_tag=10):
    """A Google Benchmark document: one iteration row per time (ms), plus a
    median aggregate row (which the checker must ignore)."""
    rows = []
    for name, times in times_by_name.items():
        run = f"{name}/min_time:0.020/repeats:{reps_tag}/manual_time"
        label = "op=selective_scan dir=fwd backend=cuda impl=v7 default=1 dtype=bf16"
        for k, t in enumerate(times):
            rows.append({"name": run, "run_name": run, "run_type": "iteration", "repetitions": len(times),
                         "repetition_index": k, "real_time": t, "time_unit": "ms", "label": label})
        rows.append({"name": run + "_median", "run_name": run, "run_type": "aggregate",
                     "aggregate_name": "median", "real_time": sorted(times)[len(times) // 2] * 100,
                     "time_unit": "ms", "label": label})
    return {"context": dict(ctx or {"gpu_name": "Synthetic", "gpu_throttled": "no"}), "benchmarks": rows}


def noisy(center, n, rel, rng):
    return [center * (1 + rng.gauss(0, rel)) for _ in range(n)]


rng = random.Random(9)
NAMES = [f"selective_scan_fwd_cuda_v7/L:{L}" for L in (1024, 4096, 16384)]
base = doc({n: noisy(1.0 * (k + 1), 10, 0.01, rng) for k, n in enumerate(NAMES)})


def run_with(factor, rel=0.01, names=NAMES, reps=9, ctx=None):
    return doc({n: noisy(factor * (k + 1), reps, rel, rng) for k, n in enumerate(names) if n in names}, ctx, reps)


def verdicts(rows):
    return {r["benchmark"].split("/")[1]: r["verdict"] for r in rows}


# 1. 15% slower: SLOWER, status regression
rows, status, _ = regress.compare(base, run_with(1.15))
expect(status == "regression" and all(r["verdict"] == "SLOWER" for r in rows),
       f"15% slower fails ({status}: {verdicts(rows)})")

# 2. noisy (5% spread, 5x the baseline's) but equal: passes
rows, status, _ = regress.compare(base, run_with(1.0, rel=0.05))
expect(status == "pass", f"noisy but equal passes ({status}: {verdicts(rows)})")

# 3. 5% slower, significant but within the 10% threshold: passes
rows, status, _ = regress.compare(base, run_with(1.05))
expect(status == "pass" and all(r["p"] < 0.05 for r in rows) and all(r["verdict"] == "same" for r in rows),
       f"5% slower (p < 0.05) within the threshold passes ({status})")

# 3b. 15% slower but with the threshold at 20%: passes
rows, status, _ = regress.compare(base, run_with(1.15), threshold=0.20)
expect(status == "pass", "15% slower passes a 20% threshold")

# 4. a benchmark missing from the run, and a new one: reported, not failed
run = run_with(1.0, names=NAMES[:2] + ["selective_scan_fwd_cuda_v7/L:65536"])
rows, status, _ = regress.compare(base, run)
v = verdicts(rows)
expect(status == "pass" and v["L:16384"].startswith("missing") and v["L:65536"].startswith("new"),
       f"a missing and a new benchmark are reported, not failed ({status}: {v})")

# 5. a throttled run: nothing compared, even 15% slower
for ctx in ({"gpu_throttled": "yes"},
            {"gpu_sm_clock_sampled_median_mhz": "1500", "gpu_sm_clock_nominal_max_mhz": "1980"}):
    rows, status, why = regress.compare(base, run_with(1.15, ctx=ctx))
    expect(status == "throttled" and all(r["verdict"].startswith("throttled") for r in rows) and why,
           f"a throttled run is reported, not compared ({why})")

# 6. the command line: exit codes, the table and the JSON report; unknown machine
with tempfile.TemporaryDirectory() as tmp:
    bpath, rpath, jpath = (os.path.join(tmp, f) for f in ("base.json", "run.json", "check.json"))
    json.dump(base, open(bpath, "w"))
    json.dump(run_with(1.15), open(rpath, "w"))
    py = [sys.executable, os.path.join(src, "bench", "regress.py")]
    p = subprocess.run(py + ["check", "--baseline", bpath, "--json", jpath, rpath], capture_output=True, text=True)
    rep = json.load(open(jpath))
    expect(p.returncode == 1 and "SLOWER" in p.stdout and "baseline" in p.stdout.splitlines()[0]
           and rep["status"] == "regression" and len(rep["rows"]) == 3,
           f"check exits 1 on a regression and writes the table and the JSON (rc {p.returncode})")
    p = subprocess.run(py + ["check", "--baseline", bpath, "--threshold", "20%", rpath], capture_output=True, text=True)
    expect(p.returncode == 0, "BENCH_THRESHOLD as a percent (20%) is read as 0.20")
    missing = os.path.join(tmp, "no-such-machine.json")
    p = subprocess.run(py + ["check", "--baseline", missing, "--json", jpath, rpath], capture_output=True, text=True)
    expect(p.returncode == 0 and "unknown machine" in p.stdout and json.load(open(jpath))["status"] == "unknown-machine",
           "an unknown machine (no baseline) is reported, exit 0")
    p = subprocess.run(py + ["check", "--strict", "--baseline", missing, rpath], capture_output=True, text=True)
    expect(p.returncode == 3, "... and exit 3 with --strict (BENCH_STRICT=1)")
    env = dict(os.environ, BENCH_MACHINE="no-such-machine", BENCH_CHECK_OUT=os.path.join(tmp, "out"))
    p = subprocess.run([os.path.join(src, "scripts", "bench_check.sh"), tmp], capture_output=True, text=True, env=env)
    expect(p.returncode == 0 and "unknown machine" in p.stdout, "scripts/bench_check.sh on an unknown machine reports it")
    # the baseline merge: two files of a run into one, the bench binary's context kept
    d1 = copy.deepcopy(base); d1["context"]["mb_bench"] = "bench_selective_scan"
    json.dump({"context": {"peers": "1"}, "benchmarks": base["benchmarks"][:3]}, open(os.path.join(tmp, "a_peers.json"), "w"))
    json.dump(d1, open(os.path.join(tmp, "selective_scan.json"), "w"))
    for f in ("base.json", "run.json", "check.json"):
        os.remove(os.path.join(tmp, f))
    out = os.path.join(tmp, "baselines", "m.json")
    p = subprocess.run(py + ["baseline", "--out", out, tmp], capture_output=True, text=True)
    merged = json.load(open(out))
    expect(p.returncode == 0 and len(merged["benchmarks"]) == len(base["benchmarks"]) + 3
           and merged["context"].get("mb_bench") == "bench_selective_scan",
           "bench-baseline merges a run's files, keeping the bench binary's context")

# 7. the U test against scipy (the function compare.py calls), when importable
try:
    from scipy.stats import mannwhitneyu
except ImportError:
    print("skip the U test against scipy (scipy not importable)")
else:
    worst = 0.0
    for _ in range(300):
        a = [round(rng.gauss(1, 0.1), rng.choice([1, 3])) for _ in range(rng.randint(2, 12))]
        b = [round(rng.gauss(1.05, 0.1), rng.choice([1, 3])) for _ in range(rng.randint(2, 12))]
        worst = max(worst, abs(regress.mann_whitney_u(a, b) - mannwhitneyu(a, b, alternative="two-sided").pvalue))
    expect(worst < 1e-9, f"the U test matches scipy.stats.mannwhitneyu (worst difference {worst:.1e})")
expect(abs(regress.mann_whitney_u([1, 2, 3], [4, 5, 6]) - 0.1) < 1e-12, "exact U: [1,2,3] vs [4,5,6] gives p = 0.1")

# 8. a doctored instruction-count baseline (10% lower) makes the CPU check fail
valgrind = subprocess.run(["sh", "-c", "command -v valgrind"], capture_output=True).returncode == 0
if build and valgrind and os.path.exists(os.path.join(build, "count_ops")):
    real = json.load(open(os.path.join(src, "results", "baselines", "cpu_instructions.json")))
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, "cpu_instructions.json")
        doctored = copy.deepcopy(real)
        doctored["counts"] = {k: int(v * 0.9) for k, v in real["counts"].items()}
        json.dump(doctored, open(fake, "w"))
        p = subprocess.run([sys.executable, os.path.join(src, "bench", "regress.py"), "cpu",
                            "--build", build, "--baseline", fake], capture_output=True, text=True)
        expect(p.returncode == 1 and "MORE" in p.stdout,
               f"a doctored instruction-count baseline 10% lower fails the CPU check (rc {p.returncode})")
else:
    print("skip the doctored instruction-count baseline (no BUILD_DIR, count_ops or valgrind)")

print(f"test_regress: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
