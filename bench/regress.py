#!/usr/bin/env python3
"""regress.py -- speed regression checks of mambabench (issue 9).

  regress.py baseline --out results/baselines/<machine>.json RUN_DIR_OR_JSON...
      merge the Google Benchmark JSON files of one `make bench` run into one
      baseline file (`make bench-baseline`); the rows and the context stay as
      Google Benchmark wrote them, plus mb_baseline_* keys saying where from.
  regress.py check --baseline FILE [--threshold 0.10] [--alpha 0.05]
                   [--filter REGEX] [--lmax L] [--json OUT] RUN.json...
      compare a run with the baseline of this machine (`make bench-check`).
      Per benchmark (the run name without its repeats/min_time parts): the
      median time of the baseline and of the run, the change, and the two-sided
      Mann-Whitney U test on the repetitions (the test of Google Benchmark's
      tools/compare.py). SLOWER -- and exit 1 -- only when the change is above
      the threshold AND p < alpha. Compared by default: the default
      implementations (label field default=1); with --filter, every row whose
      name matches. Reported, never pass/fail: no baseline file (an unknown
      machine), a benchmark of the baseline missing from the run, a new one
      without a baseline, and a throttled run (context gpu_throttled=yes, or the
      sampled SM clock below 90% of nominal): then nothing is compared.
  regress.py default-filter --baseline FILE
      the --benchmark_filter regex of the families with default=1 rows.
  regress.py cpu --build DIR --baseline FILE [--update] [--tolerance 0.03]
      instruction counts of one call of each CPU reference (bench/count_ops.c)
      and of one training step of the task model, by valgrind's callgrind,
      against the committed counts; and the log-log slope of the counts in L.
  regress.py slopes [RESULTS_DIR]
      the log-log slopes of the committed timing results (results/*/*.json):
      linear mixers near 1 at large L, attention near 2 (default
      implementations and peers: the claims; other versions stop at 16K).

Exit status: 0 pass (or nothing to compare), 1 a regression, 2 usage or I/O
error, 3 nothing compared and --strict given.

Why not import gbench.report from Debian's libbenchmark-tools: it imports
scipy (and numpy) at module level, and neither is in this project's CI; when
scipy is importable, tests/test_regress.py checks the U test below against
scipy.stats.mannwhitneyu, the function compare.py calls.
"""
import argparse
import glob
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile

# ----------------------------------------------------------------------------
# Mann-Whitney U (two-sided), as scipy.stats.mannwhitneyu(method="auto") does
# it: the exact distribution when a sample has at most 8 values and there are
# no ties, else the normal approximation with the tie and continuity corrections.


def _ranks(values):
    """Average ranks (1-based) of values, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _exact_sf(u, n1, n2):
    """P(U >= u) under H0 for samples of n1 and n2 without ties."""
    # counts[m][n][k]: the arrangements of m x's and n y's with U = k, built up
    # by the last element: an x (adds n to U) or a y (adds nothing)
    from functools import lru_cache

    @lru_cache(maxsize=None)
    def count(m, n, k):
        if k < 0:
            return 0
        if m == 0 or n == 0:
            return 1 if k == 0 else 0
        return count(m - 1, n, k - n) + count(m, n - 1, k)

    total = math.comb(n1 + n2, n1)
    ways = sum(count(n1, n2, k) for k in range(int(math.ceil(u - 1e-9)), n1 * n2 + 1))
    return ways / total


def mann_whitney_u(a, b):
    """Two-sided p-value of the Mann-Whitney U test of samples a and b."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return float("nan")
    ranks = _ranks(list(a) + list(b))
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    values = list(a) + list(b)
    ties = len(set(values)) < len(values)
    if (n1 <= 8 or n2 <= 8) and not ties:
        return min(1.0, 2 * _exact_sf(u, n1, n2))
    n = n1 + n2
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    tie_term = sum(t ** 3 - t for t in counts.values()) / (n * (n - 1))
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term))
    if sigma == 0:
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / sigma
    return min(1.0, math.erfc(z / math.sqrt(2)))


# ----------------------------------------------------------------------------
# Google Benchmark JSON

TIME_SCALE = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
RUN_PARTS = re.compile(r"/(repeats|min_time|min_warmup_time|iterations):[^/]*")


def load(path):
    with open(path) as f:
        return json.load(f)


def bench_key(row):
    """The run name without the parts that change with the settings (repetitions,
    min time): the same benchmark in a 10-repetition baseline and a 9-repetition check."""
    return RUN_PARTS.sub("", row.get("run_name") or row["name"])


def label_fields(row):
    """The typed fields of a row's label ("op=.. dir=.. default=1 .."), as a dict."""
    return dict(p.split("=", 1) for p in row.get("label", "").split() if "=" in p)


def arg_L(key):
    m = re.search(r"/L:(\d+)", key)
    return int(m.group(1)) if m else None


def samples(doc, select):
    """{key: {"times": [s...], "error": str|None, "fields": {...}}} of the
    iteration rows (not aggregates) that select(key, fields) keeps."""
    out = {}
    for row in doc.get("benchmarks", []):
        if row.get("run_type", "iteration") != "iteration":
            continue
        key = bench_key(row)
        fields = label_fields(row)
        if not select(key, fields):
            continue
        entry = out.setdefault(key, {"times": [], "error": None, "fields": fields})
        if row.get("error_occurred"):
            entry["error"] = row.get("error_message", "error")
            continue
        entry["times"].append(row["real_time"] * TIME_SCALE.get(row.get("time_unit", "ns"), 1e-9))
    return out


def merge(paths):
    """One Google Benchmark document from several of one run: the first file's
    context, every file's rows."""
    docs = [(p, load(p)) for p in paths]
    # the context of a bench binary's file (bench/peers.py writes a shorter one)
    ctx = next((d["context"] for _, d in docs if "mb_bench" in d.get("context", {})),
               docs[0][1].get("context", {}))
    merged = {"context": dict(ctx), "benchmarks": []}
    for _, doc in docs:
        merged["benchmarks"].extend(doc.get("benchmarks", []))
    merged["context"]["mb_baseline_sources"] = " ".join(os.path.basename(p) for p, _ in docs)
    merged["context"]["mb_baseline_benches"] = " ".join(
        sorted({doc.get("context", {}).get("mb_bench", "?") for _, doc in docs}))
    return merged


def run_files(items):
    paths = []
    for item in items:
        if os.path.isdir(item):
            paths += sorted(glob.glob(os.path.join(item, "*.json")))
        else:
            paths.append(item)
    return [p for p in paths if os.path.isfile(p)]


# ----------------------------------------------------------------------------
# throttling


def throttled(ctx):
    """Why the run's clocks make its times unfit to compare, or None."""
    if ctx.get("gpu_throttled") == "yes":
        return "gpu_throttled=yes in the run's context"
    try:
        sm = float(ctx["gpu_sm_clock_sampled_median_mhz"])
        nominal = float(ctx["gpu_sm_clock_nominal_max_mhz"])
    except (KeyError, ValueError):
        return None
    if nominal > 0 and sm < 0.9 * nominal:
        return f"SM clock sampled at {sm:.0f} MHz, below 90% of the nominal {nominal:.0f} MHz"
    return None


# ----------------------------------------------------------------------------
# check


def compare(base_doc, run_doc, threshold=0.10, alpha=0.05, pattern=None, lmax=None):
    """The rows of the comparison and the overall status
    (pass, regression, throttled)."""
    regex = re.compile(pattern) if pattern else None

    def select(key, fields):
        if lmax and arg_L(key) and arg_L(key) > lmax:
            return False
        if regex:
            return bool(regex.search(key))
        return fields.get("default") == "1"

    base = samples(base_doc, select)
    now = samples(run_doc, select)
    why_throttled = throttled(run_doc.get("context", {}))
    base_throttled = throttled(base_doc.get("context", {}))
    rows = []
    for key in sorted(set(base) | set(now), key=lambda k: (re.sub(r"/L:\d+", "", k), arg_L(k) or 0)):
        b, n = base.get(key), now.get(key)
        row = {"benchmark": key, "baseline_s": None, "now_s": None, "change": None, "p": None,
               "n_baseline": len(b["times"]) if b else 0, "n_now": len(n["times"]) if n else 0}
        if b and b["times"]:
            row["baseline_s"] = statistics.median(b["times"])
        if n and n["times"]:
            row["now_s"] = statistics.median(n["times"])
        if row["baseline_s"] and row["now_s"]:
            row["change"] = row["now_s"] / row["baseline_s"] - 1
        if b and n and len(b["times"]) >= 2 and len(n["times"]) >= 2:
            row["p"] = mann_whitney_u(b["times"], n["times"])
        if n is None:
            row["verdict"] = "missing (in the baseline, not in this run)"
        elif b is None:
            row["verdict"] = "new (no baseline)"
        elif n["error"]:
            row["verdict"] = "error: " + n["error"]
        elif row["p"] is None:
            row["verdict"] = "too few repetitions to test"
        elif why_throttled:
            row["verdict"] = "throttled (not compared)"
        elif base_throttled:
            row["verdict"] = "baseline throttled (not compared)"
        elif row["change"] > threshold and row["p"] < alpha:
            row["verdict"] = "SLOWER"
        elif row["change"] < -threshold and row["p"] < alpha:
            row["verdict"] = "faster"
        else:
            row["verdict"] = "same"
        rows.append(row)
    status = "pass"
    if why_throttled:
        status = "throttled"
    elif any(r["verdict"] == "SLOWER" for r in rows):
        status = "regression"
    return rows, status, why_throttled or base_throttled


def fmt_time(s):
    if s is None:
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.4g} {unit}"
    return f"{s / 1e-9:.4g} ns"


def table(rows):
    head = ("benchmark", "baseline", "now", "change", "p", "verdict")
    body = [(r["benchmark"], fmt_time(r["baseline_s"]), fmt_time(r["now_s"]),
             "-" if r["change"] is None else f"{100 * r['change']:+.1f}%",
             "-" if r["p"] is None else f"{r['p']:.4f}", r["verdict"]) for r in rows]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def fraction(text):
    """A threshold as a fraction: "0.10", "10%" or "10" (a percent when >= 1)."""
    v = float(str(text).rstrip("%"))
    return v / 100 if str(text).endswith("%") or v >= 1 else v


def cmd_check(a):
    report = {"baseline": a.baseline, "threshold": a.threshold, "alpha": a.alpha,
              "filter": a.filter or "default=1 rows", "rows": []}
    if not os.path.isfile(a.baseline):
        report["status"] = "unknown-machine"
        msg = (f"bench-check: no baseline {a.baseline}: an unknown machine, nothing compared "
               f"(make one with `make bench` then `make bench-baseline`)")
        print(msg)
    else:
        paths = run_files(a.runs)
        if not paths:
            print("bench-check: no run JSON given or found", file=sys.stderr)
            return 2
        run_doc = merge(paths)
        rows, status, why = compare(load(a.baseline), run_doc, a.threshold, a.alpha, a.filter, a.lmax)
        report.update(status=status, rows=rows, note=why,
                      run_context={k: v for k, v in run_doc["context"].items()
                                   if k.startswith(("gpu_", "mb_commit", "mb_settings"))})
        # the commits compared: the run's, and the baseline's
        report["context"] = {
            "mb_commit": run_doc["context"].get("mb_commit", "unknown"),
            "mb_baseline_commit": load(a.baseline).get("context", {}).get("mb_commit", "unknown")}
        print(table(rows))
        counts = {}
        for r in rows:
            counts[r["verdict"].split(" ")[0].split(":")[0]] = counts.get(r["verdict"].split(" ")[0].split(":")[0], 0) + 1
        print(f"\nbench-check: {status}; threshold {100 * a.threshold:.0f}% slower with "
              f"Mann-Whitney p < {a.alpha}; " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        if why:
            print(f"bench-check: times not compared: {why}")
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    if report["status"] == "regression":
        return 1
    if report["status"] in ("unknown-machine", "throttled") and a.strict:
        return 3
    return 0


def cmd_baseline(a):
    paths = [p for p in run_files(a.runs) if os.path.basename(p) != os.path.basename(a.out)]
    if not paths:
        print(f"bench-baseline: no Google Benchmark JSON in {' '.join(a.runs)}", file=sys.stderr)
        return 2
    doc = merge(paths)
    n = sum(1 for r in doc["benchmarks"] if r.get("run_type") == "iteration")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"bench-baseline: {len(paths)} file(s), {n} timed repetitions "
          f"(commit {doc['context'].get('mb_commit', '?')}) -> {a.out}")
    return 0


def cmd_default_filter(a):
    fams = set()
    for row in load(a.baseline).get("benchmarks", []):
        if label_fields(row).get("default") == "1":
            fams.add(row["name"].split("/")[0])
    print("^(" + "|".join(sorted(fams)) + ")/" if fams else "")
    return 0


# ----------------------------------------------------------------------------
# slopes


def fit_slope(points):
    """Least-squares slope of log y on log L over the upper half of L
    (L >= sqrt(Lmin * Lmax)), as plots/plot_scaling.py fits it."""
    pts = sorted((L, y) for L, y in points if y and y > 0)
    if len(pts) < 2:
        return None
    mid = math.sqrt(pts[0][0] * pts[-1][0])
    upper = [p for p in pts if p[0] >= mid * (1 - 1e-9)]
    if len(upper) < 2:
        upper = pts[-2:]
    xs = [math.log(p[0]) for p in upper]
    zs = [math.log(p[1]) for p in upper]
    mx, mz = sum(xs) / len(xs), sum(zs) / len(zs)
    sxx = sum((x - mx) ** 2 for x in xs)
    return None if sxx == 0 else sum((x - mx) * (z - mz) for x, z in zip(xs, zs)) / sxx


# the bands of the timing slopes; instruction counts use the tighter ones of CPU_BANDS
TIME_BANDS = {"selective_scan": (0.8, 1.2), "ssd": (0.8, 1.2), "attention": (1.7, 2.3)}
CPU_BANDS = {"selective_scan": (0.9, 1.1), "ssd": (0.9, 1.1), "attention": (1.8, 2.2)}
SWEPT_DIRS = {"fwd", "bwd", "fwdbwd", "fwd_noz", "fwd_n128"}


def headline_row(row):
    """The rows whose slope is the op's scaling claim: defaults and peers (the
    other versions are swept to 16K only, where launch overhead still bends
    the curve), and the older untyped rows (CPU references)."""
    f = label_fields(row)
    return "op" not in f or f.get("default") == "1" or f.get("peer") == "1"


def row_group(row):
    """(op, dir, impl) of a row: its typed label fields, or its name for the
    older untyped rows (results/cpu: "selective_scan_fwd/L:64/...")."""
    f = label_fields(row)
    if "op" in f:
        return f["op"], f.get("dir", "?"), f.get("backend", "?") + ":" + f.get("impl", "?")
    fam = row["name"].split("/")[0]
    for op in CPU_BANDS:
        if fam.startswith(op + "_"):
            return op, fam[len(op) + 1:], "cpu:reference"
    return None


def cmd_slopes(a):
    failed, lines = 0, []
    for path in sorted(glob.glob(os.path.join(a.results, "*", "*.json"))):
        if os.path.basename(os.path.dirname(path)) == "baselines":
            continue
        groups = {}
        for row in load(path).get("benchmarks", []):
            if row.get("run_type", "iteration") != "iteration" or row.get("error_occurred"):
                continue
            g, L = row_group(row), arg_L(bench_key(row))
            if not g or L is None or g[1] not in SWEPT_DIRS or not headline_row(row):
                continue
            t = row["real_time"] * TIME_SCALE.get(row.get("time_unit", "ns"), 1e-9)
            groups.setdefault(g, {}).setdefault(L, []).append(t)
        for (op, d, impl), by_L in sorted(groups.items()):
            if len(by_L) < 4:
                continue
            slope = fit_slope([(L, statistics.median(ts)) for L, ts in by_L.items()])
            lo, hi = TIME_BANDS[op]
            ok = slope is not None and lo <= slope <= hi
            failed += not ok
            lines.append(f"{'ok  ' if ok else 'FAIL'} {os.path.relpath(path, a.results):34s} "
                         f"{op}/{d}/{impl:24s} slope {slope:.3f} over L {min(by_L)}..{max(by_L)} "
                         f"(upper half), band [{lo}, {hi}]")
    print("\n".join(lines))
    print(f"bench-check-slopes: {len(lines)} families, {failed} outside their band")
    return 1 if failed else 0


# ----------------------------------------------------------------------------
# instruction counts (callgrind)

CPU_LS = {"selective_scan": [128, 256, 512, 1024], "ssd": [128, 256, 512, 1024],
          "attention": [64, 128, 256, 512]}
ENTRY = {"selective_scan": "mb_selective_scan_{}_cpu", "ssd": "mb_ssd_{}_cpu",
         "attention": "mb_attention_{}_cpu"}
TRAIN_ARGS = ["--task", "selective-copy", "--mixer", "mamba", "--len", "32", "--n", "4",
              "--dim", "32", "--layers", "2", "--batch", "4", "--steps", "1", "--threads", "1",
              "--eval-n", "1", "--eval-lens", "32", "--no-recurrent", "--seed", "0"]
TRAIN_FUNCS = ["model_forward", "model_backward", "model_adamw"]


def callgrind(cmd, funcs):
    """Instructions executed inside funcs (inclusive) by one run of cmd."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        argv += [f"--toggle-collect={f}" for f in funcs] + cmd
        proc = subprocess.run(argv, cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} under callgrind failed:\n{proc.stderr[-2000:]}")
        m = re.search(r"Collected\s*:\s*([\d,]+)", proc.stderr)
        if not m:
            raise RuntimeError("no 'Collected' line in callgrind's output")
        return int(m.group(1).replace(",", ""))


def measure_counts(build):
    counts = {}
    for op, Ls in CPU_LS.items():
        for d in ("fwd", "bwd"):
            for L in Ls:
                counts[f"{op}/{d}/L:{L}"] = callgrind(
                    [os.path.abspath(os.path.join(build, "count_ops")), op, d, str(L)],
                    [ENTRY[op].format(d)])
    train = os.path.abspath(os.path.join(build, "tasks", "mambabench-train"))
    if os.path.exists(train):
        counts["train_step/mamba/L:32"] = callgrind([train] + TRAIN_ARGS, TRAIN_FUNCS)
    return counts


def count_slopes(counts):
    """{(op, dir): slope} of the instruction counts against L (every L, log-log)."""
    by = {}
    for key, n in counts.items():
        op, d, L = key.split("/")
        if op in CPU_BANDS:
            by.setdefault((op, d), []).append((int(L[2:]), n))
    return {k: fit_slope(v) for k, v in by.items()}


def source_commit():
    """The short commit of the sources measured, with -dirty when tracked files differ."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def cmd_cpu(a):
    try:
        counts = measure_counts(a.build)
    except (OSError, RuntimeError) as e:
        print(f"bench-check-cpu: {e}", file=sys.stderr)
        return 2
    failed = 0
    slopes = count_slopes(counts)
    print(f"{'case':36s} {'baseline':>14s} {'now':>14s} {'change':>8s}  verdict")
    base = {}
    if not a.update:
        if not os.path.isfile(a.baseline):
            print(f"bench-check-cpu: no baseline {a.baseline}; make bench-check-cpu-update writes one")
            return 2
        base = load(a.baseline)["counts"]
    for key in sorted(set(counts) | set(base)):
        b, n = base.get(key), counts.get(key)
        if a.update:
            verdict, change = "written", None
        elif b is None:
            verdict, change = "new (no baseline)", None
        elif n is None:
            verdict, change = "missing", None
        else:
            change = n / b - 1
            verdict = "MORE" if change > a.tolerance else ("fewer" if change < -a.tolerance else "same")
            failed += verdict == "MORE"
        print(f"{key:36s} {b if b is not None else '-':>14} {n if n is not None else '-':>14} "
              f"{'-' if change is None else f'{100 * change:+.2f}%':>8s}  {verdict}")
    print()
    for (op, d), s in sorted(slopes.items()):
        lo, hi = CPU_BANDS[op]
        ok = s is not None and lo <= s <= hi
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} slope of {op}/{d} instructions in L: {s:.3f} "
              f"(band [{lo}, {hi}], L {min(CPU_LS[op])}..{max(CPU_LS[op])})")
    if a.update:
        doc = {"context": {"mb_commit": source_commit()},
               "tool": "valgrind --tool=callgrind, instructions (Ir) inside the entry point",
               "valgrind": subprocess.run(["valgrind", "--version"], capture_output=True,
                                          text=True).stdout.strip(),
               "driver": "bench/count_ops.c; train_step: tasks/mambabench-train " + " ".join(TRAIN_ARGS)
                         + " (collected: " + ", ".join(TRAIN_FUNCS) + ")",
               "counts": counts, "slopes": {f"{o}/{d}": round(s, 4) for (o, d), s in slopes.items()}}
        os.makedirs(os.path.dirname(os.path.abspath(a.baseline)), exist_ok=True)
        with open(a.baseline, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"bench-check-cpu-update: wrote {a.baseline}")
        return 1 if failed else 0
    print(f"bench-check-cpu: {'FAIL' if failed else 'pass'} (instruction counts within "
          f"{100 * a.tolerance:.0f}% of {a.baseline}, slopes within their bands)")
    return 1 if failed else 0


# ----------------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("baseline")
    s.add_argument("--out", required=True)
    s.add_argument("runs", nargs="+")
    s = sub.add_parser("check")
    s.add_argument("--baseline", required=True)
    s.add_argument("--threshold", type=fraction, default=0.10)
    s.add_argument("--alpha", type=float, default=0.05)
    s.add_argument("--filter", default=None)
    s.add_argument("--lmax", type=int, default=None)
    s.add_argument("--json", default=None)
    s.add_argument("--strict", action="store_true")
    s.add_argument("runs", nargs="*")
    s = sub.add_parser("default-filter")
    s.add_argument("--baseline", required=True)
    s = sub.add_parser("cpu")
    s.add_argument("--build", default="build")
    s.add_argument("--baseline", default="results/baselines/cpu_instructions.json")
    s.add_argument("--tolerance", type=float, default=0.03)
    s.add_argument("--update", action="store_true")
    s = sub.add_parser("slopes")
    s.add_argument("results", nargs="?", default="results")
    a = p.parse_args(argv)
    return {"baseline": cmd_baseline, "check": cmd_check, "default-filter": cmd_default_filter,
            "cpu": cmd_cpu, "slopes": cmd_slopes}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
