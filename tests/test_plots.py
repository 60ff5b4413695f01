#!/usr/bin/env python3
"""test_plots.py -- checks plots/plot_scaling.py on hand-made Google Benchmark JSON.

Run (ctest does): python3 tests/test_plots.py <source dir>

tests/data/small_bench.json holds two synthetic families over L = 64..16384:
  selective_scan_fwd     time 1e-4 * L/64 s (+ 2 us), peak 1000 L bytes, median aggregates
                 (the raw repetitions are skewed, so only the median gives slope 1)
  attention_fwd  time 1e-6 * (L/64)^2 s, peak 8 L^2 bytes, raw iterations only
                 (symmetric noise: their mean gives slope 2), plus one failed run
They cross at L = 6400. Also checks that two nearly equal noisy curves are not
reported as crossing, and that bad input gives a non-zero exit. Skips (exit 0) when matplotlib is not importable.
"""
import json
import os
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def run(script, *args):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                          timeout=120)


def row_of(stdout, family):
    """The summary row of `family`: [op, L range, fit range, slope time, slope mem, ...]."""
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0] == family:
            return cells
    return None


def near(text, want, tol):
    try:
        return abs(float(text) - want) <= tol
    except (TypeError, ValueError):
        return False


def main():
    src = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                          os.path.join(os.path.dirname(__file__), ".."))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("SKIP: matplotlib is not importable; plot_scaling.py not tested")
        return 77  # ctest's SKIP_RETURN_CODE
    script = os.path.join(src, "plots", "plot_scaling.py")
    data = os.path.join(src, "tests", "data", "small_bench.json")

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        r = run(script, "--out", out, data)
        check(r.returncode == 0, f"plot_scaling.py exits 0 on valid input (got {r.returncode}: "
              f"{r.stderr.strip()[-300:]})")
        print(r.stdout)
        lin, quad = row_of(r.stdout, "selective_scan_fwd"), row_of(r.stdout, "attention_fwd")
        check(lin is not None and len(lin) >= 5, "summary row for selective_scan_fwd printed")
        check(quad is not None and len(quad) >= 5, "summary row for attention_fwd printed")
        if lin and len(lin) >= 5:
            check(near(lin[3], 1.0, 0.05), f"selective_scan_fwd time slope {lin[3]} within 0.05 of 1")
            check(near(lin[4], 1.0, 0.05), f"selective_scan_fwd memory slope {lin[4]} within 0.05 of 1")
            check(lin[1] == "64..16384", f"selective_scan_fwd L range {lin[1]}")
        if quad and len(quad) >= 5:
            check(near(quad[3], 2.0, 0.05), f"attention_fwd time slope {quad[3]} within 0.05 of 2")
            check(near(quad[4], 2.0, 0.05), f"attention_fwd memory slope {quad[4]} within 0.05 of 2")
            check(quad[1] == "64..16384", f"attention_fwd L range {quad[1]} (failed run ignored)")
        cross = [ln for ln in r.stdout.splitlines() if "cross at L ~" in ln]
        lx = None
        if cross:
            try:
                lx = float(cross[0].split("cross at L ~")[1].split()[0])
            except (IndexError, ValueError):
                lx = None
        check(lx is not None and abs(lx - 6400) < 0.05 * 6400,
              f"time crossover near L = 6400 (got {lx})")
        for name in ("time_vs_L.png", "memory_vs_L.png", "summary.md"):
            path = os.path.join(out, name)
            ok = os.path.isfile(path) and os.path.getsize(path) > 0
            if ok and name.endswith(".png"):
                with open(path, "rb") as f:
                    ok = f.read(8) == b"\x89PNG\r\n\x1a\n"
            check(ok, f"{name} written and non-empty")

        # two nearly equal noisy curves (within 3%) must not be reported as crossing
        tied = os.path.join(tmp, "tied.json")
        rows = []
        for k in range(8):
            L = 64 << k
            # typed rows (label fields): an SSD and an attention family, a second
            # SSD family that crosses the first but is not a chosen pair with it
            # (same op), and a selective scan that is (the SSD against the scan)
            for fam, op, wiggle in (("a", "ssd", 1.0 + 0.03 * (k % 2)),
                                    ("b", "attention", 1.0 + 0.03 * ((k + 1) % 2)),
                                    ("c", "ssd", 4.0 / (k + 1)),
                                    ("d", "selective_scan", 4.0 / (k + 1))):
                rows.append({"name": f"{fam}/L:{L}", "run_name": f"{fam}/L:{L}",
                             "run_type": "iteration", "iterations": 1, "real_time": L * wiggle,
                             "cpu_time": L * wiggle, "time_unit": "ns", "peak_bytes": 8.0 * L,
                             "label": f"op={op} dir=fwd backend=cpu impl={fam} dtype=f32"})
        with open(tied, "w") as f:
            json.dump({"context": {}, "benchmarks": rows}, f)
        r = run(script, "--out", os.path.join(tmp, "tied"), tied)
        pair = "attention_fwd_cpu_b vs ssd_fwd_cpu_a"
        check(r.returncode == 0 and pair in r.stdout and f"{pair}: cross at" not in r.stdout,
              "noise between nearly equal curves is not reported as a crossing")
        check("ssd_fwd_cpu_a vs ssd_fwd_cpu_c" not in r.stdout and
              "ssd_fwd_cpu_c vs ssd_fwd_cpu_a" not in r.stdout,
              "two implementations of one op are not a chosen crossover pair")
        check("selective_scan_fwd_cpu_d vs ssd_fwd_cpu_a: cross at" in r.stdout,
              "the SSD against the selective scan is a chosen pair, and they cross")
        check("attention_fwd_cpu_b vs selective_scan_fwd_cpu_d: cross at" in r.stdout,
              "a linear mixer crossing attention is reported (typed label fields)")

        # decoding: attention decode over contexts, the steps' constant cost and state
        dec = os.path.join(tmp, "decode.json")
        rows = []

        def median_row(name, label, ms, state):
            rows.append({"name": name + "_median", "run_name": name, "run_type": "aggregate",
                         "aggregate_name": "median", "real_time": ms, "cpu_time": ms,
                         "time_unit": "ms", "label": label, "decode_state_bytes": state})
        for k in range(6):
            L = 512 << k
            kv = 2 * 16 * L * 128 * 2  # K and V of one sequence, bf16
            median_row(f"attention_decode_cuda_v1_b8/L:{L}", "op=attention dir=decode "
                       f"backend=cuda impl=v1 default=1 dtype=bf16 B=8 H=16 L={L} d=128",
                       0.01 * (L / 512), kv)
        median_row("ssd_step_cuda_v1/B:8", "op=ssd dir=step backend=cuda impl=v1 default=1 "
                   "dtype=bf16 B=8 L=1 H=64 P=64 N=128", 0.02, 64 * 64 * 128 * 4)
        with open(dec, "w") as f:
            json.dump({"context": {"gpu_name": "test"}, "benchmarks": rows}, f)
        r = run(script, "--out", os.path.join(tmp, "dec"), dec)
        png = os.path.join(tmp, "dec", "decode_vs_context.png")
        check(r.returncode == 0 and os.path.isfile(png) and os.path.getsize(png) > 0,
              "decode_vs_context.png written from decode and step rows")
        with open(os.path.join(tmp, "dec", "summary.md")) as f:
            md = f.read()
        # the step (0.02 ms) is slower than decode at 512, 1K (0.01, 0.02) and faster from 2K;
        # its 2 MiB state is the KV cache of 256 tokens (8 KiB a token)
        check("the step is faster from context 2048" in md,
              "the context from which the step is faster than decode is reported")
        check("the KV cache of 256 tokens" in md, "the state's size in KV-cache tokens is reported")

        bad = os.path.join(tmp, "bad.json")
        with open(bad, "w") as f:
            f.write('{"benchmarks": [ {"name": "x/L:64", ')
        r = run(script, "--out", out, bad)
        check(r.returncode != 0 and "error" in r.stderr,
              f"invalid JSON gives a non-zero exit and a message (got {r.returncode})")
        r = run(script, "--out", out, os.path.join(tmp, "missing.json"))
        check(r.returncode != 0, f"a missing file gives a non-zero exit (got {r.returncode})")
        notgb = os.path.join(tmp, "notgb.json")
        with open(notgb, "w") as f:
            f.write('{"hello": 1}')
        r = run(script, "--out", out, notgb)
        check(r.returncode != 0, f"JSON without 'benchmarks' gives a non-zero exit "
              f"(got {r.returncode})")

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
