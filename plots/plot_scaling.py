#!/usr/bin/env python3
"""plot_scaling.py -- scaling plots and fits from Google Benchmark JSON files.

Usage:
    python3 plots/plot_scaling.py [--out DIR] [FILE.json ...]

Reads the JSON written by the bench_* binaries (--benchmark_out=F
--benchmark_out_format=json; default: results/cpu/*.json of this repository),
takes per family and L the "median" aggregate of the repetitions when present
(else the mean of the raw iterations' times), and writes into DIR (default:
the directory of the first file):

    time_vs_L.png     log-log wall time per call vs L, one line per family
    memory_vs_L.png   log-log peak_bytes counter vs L
    summary.md        the table and crossovers printed on stdout

A family is one (op, direction, backend, implementation), read from the typed
fields of each row's label ("op=selective_scan dir=fwd backend=cuda impl=v1
dtype=bf16 ... [peer=1]"), as the bench binaries and bench/peers.py write them;
rows of older files without fields fall back to the run name up to the first
"/". L is the "L:<n>" argument of the run name; rows swept over another
argument (N, B) are not drawn against L. Peers (peer=1) are drawn in grey.
Slopes are least-squares fits of log(time) and log(peak bytes) on log(L) over
the upper half of each family's L range in log space (L >= sqrt(Lmin * Lmax)):
small L is dominated by per-call overhead. Crossovers are where two families'
curves cross, for the chosen pairs only: each linear mixer (selective scan,
SSD) against each attention family of the same direction; by linear
interpolation in log-log space; points where two curves are within --tie (5%)
of each other count as ties, so noise does not make spurious crossings.

Exit status: 0 on success, 2 on a missing, unreadable or invalid JSON file or
when no usable run is found.
"""
import argparse
import glob
import json
import math
import os
import re
import sys

UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
SKIP_AGGREGATES = {"BigO", "RMS"}


class InputError(Exception):
    """A problem with the input files; reported as one line, exit status 2."""


# ----------------------------------------------------------------------------
# reading


def parse_run_name(run_name):
    """(family, L) of a run name like 'op/L:4096/min_time:0.050/real_time', L None if absent."""
    parts = run_name.split("/")
    family = parts[0]
    for p in parts[1:]:
        m = re.fullmatch(r"L:(\d+)", p)
        if m:
            return family, int(m.group(1))
    for p in parts[1:]:
        if re.fullmatch(r"\d+", p):
            return family, int(p)
    return family, None


def label_fields(label):
    """{'op': ..., 'dir': ..., ...} from 'op=x dir=y ...', or {} for a free-text label."""
    if not isinstance(label, str) or "op=" not in label:
        return {}
    return dict(p.split("=", 1) for p in label.split() if "=" in p)


def family_of(name, label, meta):
    """The family key of a row, recording its fields in meta[family]."""
    f = label_fields(label)
    if f.get("op") and f.get("dir"):
        key = "_".join(f.get(k, "?") for k in ("op", "dir", "backend", "impl"))
        if f["dir"] == "decode":  # one family per batch size
            key += f"_b{f.get('B', '?')}"
        meta.setdefault(key, {"op": f["op"], "dir": f["dir"], "backend": f.get("backend", ""),
                              "impl": f.get("impl", ""), "peer": f.get("peer") == "1",
                              # rows without the field (older files) count as defaults
                              "default": f.get("default", "1") == "1",
                              "shape": " ".join(f"{k}={v}" for k, v in f.items()
                                                if k in ("B", "D", "N", "G", "H", "P", "d",
                                                         "chunk", "dtype"))})
        return key
    key = name.split("/")[0]
    m = re.fullmatch(r"(.*)_(fwd|bwd)", key)
    meta.setdefault(key, {"op": m.group(1) if m else key, "dir": m.group(2) if m else "",
                          "backend": "cpu", "impl": "reference", "peer": False, "default": True})
    return key


META = {}  # family -> fields (op, dir, backend, impl, peer)


def load_json(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid JSON: {e}")
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise InputError(f"{path} is not Google Benchmark JSON (no 'benchmarks' list)")
    return doc


def collect(docs):
    """{family: {L: {'time': seconds, 'peak': bytes or None, 'source': 'median'|'mean'}}}."""
    raw = {}  # (family, L) -> {'median': [(t, peak)], 'iter': [(t, peak)]}
    owner = {}  # family -> path of the file it was taken from
    for path, doc in docs:
        seen_here = set()
        for i, b in enumerate(doc["benchmarks"]):
            if not isinstance(b, dict):
                raise InputError(f"{path}: benchmarks[{i}] is not an object")
            if b.get("error_occurred"):
                continue
            name = b.get("run_name", b.get("name"))
            if not isinstance(name, str):
                raise InputError(f"{path}: benchmarks[{i}] has no run name")
            agg = b.get("aggregate_name")
            if agg in SKIP_AGGREGATES:
                continue
            _, L = parse_run_name(name)
            if L is None or L <= 0 or "/L:" not in "/" + name + "/" and "L:" not in name:
                continue
            family = family_of(name, b.get("label"), META)
            if family in owner and owner[family] != path and family not in seen_here:
                print(f"plot_scaling: warning: {family} also in {path}; using that file's runs",
                      file=sys.stderr)
                for key in [k for k in raw if k[0] == family]:
                    del raw[key]
            owner[family] = path
            seen_here.add(family)
            if agg == "stddev":
                try:
                    sd = float(b["real_time"]) * UNIT_SECONDS[b.get("time_unit", "ns")]
                except (KeyError, TypeError, ValueError):
                    continue
                raw.setdefault((family, L), {"median": [], "iter": []})["sd"] = sd
                continue
            if agg == "median":
                kind = "median"
            elif agg is None and b.get("run_type", "iteration") == "iteration":
                kind = "iter"
            else:
                continue  # mean, stddev, cv, ... aggregates
            try:
                t = float(b["real_time"]) * UNIT_SECONDS[b.get("time_unit", "ns")]
            except (KeyError, TypeError, ValueError):
                raise InputError(f"{path}: benchmarks[{i}] ({name}) lacks a usable real_time/time_unit")
            peak = b.get("peak_bytes")
            peak = float(peak) if isinstance(peak, (int, float)) else None
            raw.setdefault((family, L), {"median": [], "iter": []})[kind].append((t, peak))
    data = {}
    for (family, L), rows in raw.items():
        src = "median" if rows["median"] else "mean"
        use = rows["median"] if rows["median"] else rows["iter"]
        if not use:
            continue
        t = sum(r[0] for r in use) / len(use)
        peaks = [r[1] for r in use if r[1] is not None]
        peak = sum(peaks) / len(peaks) if peaks else None
        if t > 0 and math.isfinite(t):
            data.setdefault(family, {})[L] = {"time": t, "peak": peak, "source": src,
                                              "sd": rows.get("sd")}
    return data


# ----------------------------------------------------------------------------
# fits and crossovers


def fit_upper_half(Ls, ys):
    """Least-squares slope of log y on log L over L >= sqrt(Lmin*Lmax); (slope, lo, hi)."""
    pts = [(L, y) for L, y in zip(Ls, ys) if y is not None and y > 0]
    if len(pts) < 2:
        return None, None, None
    lmin, lmax = min(p[0] for p in pts), max(p[0] for p in pts)
    mid = math.sqrt(lmin * lmax)
    upper = [p for p in pts if p[0] >= mid * (1 - 1e-9)]
    if len(upper) < 2:
        upper = sorted(pts)[-2:]
    xs = [math.log(p[0]) for p in upper]
    zs = [math.log(p[1]) for p in upper]
    n = len(xs)
    mx, mz = sum(xs) / n, sum(zs) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None, None, None
    slope = sum((x - mx) * (z - mz) for x, z in zip(xs, zs)) / sxx
    return slope, min(p[0] for p in upper), max(p[0] for p in upper)


def interp_log(Ls, ys, L):
    """log y at L by linear interpolation in log-log space (Ls sorted, L inside)."""
    x = math.log(L)
    for k in range(len(Ls) - 1):
        x0, x1 = math.log(Ls[k]), math.log(Ls[k + 1])
        if x0 <= x <= x1:
            z0, z1 = math.log(ys[k]), math.log(ys[k + 1])
            return z0 if x1 == x0 else z0 + (z1 - z0) * (x - x0) / (x1 - x0)
    return math.log(ys[-1]) if x >= math.log(Ls[-1]) else math.log(ys[0])


def direction(family):
    return META.get(family, {}).get("dir", "")


def op_of(family):
    return META.get(family, {}).get("op", family)


def headline(family):
    """Drawn in the main plots and compared for crossovers: defaults and peers
    (decoding has its own plots: decode_vs_context.png)."""
    m = META.get(family, {})
    return (m.get("peer", False) or m.get("default", True)) and m.get("dir") != "decode"


def direction_class(family):
    """fwd for every forward variant (fwd, fwd_noz, fwd_n128), fwdbwd for both ways of
    forward + backward (fwdbwd, fwdbwd_saved), else the direction."""
    d = direction(family)
    if d.startswith("fwdbwd"):
        return "fwdbwd"
    return "fwd" if d.startswith("fwd") else d


def chosen_pair(a, b):
    """Crossovers are computed between a linear mixer and attention, and between
    the SSD and the selective scan, same direction class, default
    implementations and peers only."""
    if direction_class(a) != direction_class(b) or not (headline(a) and headline(b)):
        return False
    ops = {op_of(a), op_of(b)}
    return ("attention" in ops and len(ops) == 2) or ops == {"ssd", "selective_scan"}


def crossovers(series, tie=0.05, points=None):
    """Crossings between every two families of the same direction.

    series: {family: (sorted Ls, ys)}. Points where the two curves are within
    `tie` (relative) of each other are treated as ties, not as crossings, so
    noise between two nearly equal curves does not make spurious crossings.
    Returns a list of text lines; appends (a, b, L, y) of each crossing to
    `points` when given (y: the curves' value there)."""
    lines = []
    band = math.log1p(tie)
    fams = sorted(series)
    for i, a in enumerate(fams):
        for b in fams[i + 1:]:
            if not chosen_pair(a, b):
                continue
            La, ya = series[a]
            Lb, yb = series[b]
            lo, hi = max(La[0], Lb[0]), min(La[-1], Lb[-1])
            if lo >= hi:
                lines.append(f"{a} vs {b}: L ranges do not overlap")
                continue
            pts = sorted({L for L in La + Lb if lo <= L <= hi})
            d = [interp_log(La, ya, L) - interp_log(Lb, yb, L) for L in pts]  # log(a / b)
            clear = [k for k in range(len(pts)) if abs(d[k]) > band]
            ties = len(pts) - len(clear)
            tie_note = f"; within {tie:.0%} at {ties} of {len(pts)} L" if ties else ""
            found = []  # (L at the crossing, log(a / b) just after it)
            for k0, k1 in zip(clear, clear[1:]):
                if d[k0] * d[k1] >= 0:
                    continue
                # a real change of sign between two clear points: place it where
                # the full sequence first leaves d[k0]'s sign
                k = next(j for j in range(k0, k1) if d[j + 1] * d[k0] <= 0)
                x0, x1 = math.log(pts[k]), math.log(pts[k + 1])
                Lx = math.exp(x0 + (x1 - x0) * d[k] / (d[k] - d[k + 1]))
                found.append((Lx, d[k1]))
                if points is not None:
                    points.append((a, b, Lx, math.exp(interp_log(La, ya, Lx))))
            for Lx, after in found:
                below, above = (b, a) if after < 0 else (a, b)
                lines.append(f"{a} vs {b}: cross at L ~ {Lx:.0f} "
                             f"({below} lower below it, {above} lower above it){tie_note}")
            if not found and clear:
                lower = a if d[clear[-1]] < 0 else b
                where = f"wherever they differ by more than {tie:.0%}" if ties else "throughout"
                lines.append(f"{a} vs {b}: no crossing in L {lo}..{hi}; {lower} lower {where} "
                             f"({math.exp(abs(d[-1])):.3g}x at L={hi}){tie_note}")
            elif not found:
                lines.append(f"{a} vs {b}: within {tie:.0%} of each other over L {lo}..{hi}")
    return lines


# ----------------------------------------------------------------------------
# output


def fmt_time(s):
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= f:
            return f"{s / f:.4g} {unit}"
    return f"{s / 1e-9:.4g} ns"


def fmt_slope(v):
    return "n/a" if v is None else f"{v:.3f}"


def plot(data, fits, out_dir, what, ctx, fname=None, keep=headline, marks=()):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, ylabel, default_name = {
        "time": ("time", "time per call (s)", "time_vs_L.png"),
        "peak": ("peak", "peak memory per call (MiB)", "memory_vs_L.png"),
    }[what]
    fname = fname or default_name
    data = {f: v for f, v in data.items() if keep(f)}
    scale = 1.0 / 2**20 if what == "peak" else 1.0
    fig, ax = plt.subplots(figsize=(10.0, 7.0), dpi=120)
    own = sorted(f for f in data if not META.get(f, {}).get("peer"))
    # the cycle's grey is left to the peers; two more colours for many families
    colors = [c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"]
              if matplotlib.colors.to_hex(c) != "#7f7f7f"] + ["#000080", "#808000", "#008080"]
    greys = ["0.35", "0.55", "0.7", "0.45", "0.8"]
    drew = []
    for family in sorted(data, key=lambda f: (META.get(f, {}).get("peer", False), f)):
        Ls = sorted(data[family])
        pts = [(L, data[family][L][key] * scale, (data[family][L].get("sd") or 0) * scale)
               for L in Ls if data[family][L][key]]
        if not pts:
            continue
        peer = META.get(family, {}).get("peer", False)
        color = greys[sorted(set(data) - set(own)).index(family) % len(greys)] if peer else \
            colors[own.index(family) % len(colors)]
        style = "--" if direction_class(family) in ("bwd", "fwdbwd") else "-"
        slope = fits[family][what]
        label = family + (" [peer]" if peer else "") + ("" if slope is None else f" (slope {slope:.2f})")
        yerr = [p[2] for p in pts] if what == "time" else None
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=yerr, fmt=style, marker="o",
                    ms=3, color=color, label=label, capsize=2, lw=1.2 if peer else 1.6)
        drew.append(pts)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    if drew:  # slope-1 and slope-2 guides through the geometric middle of the data
        xs = [p[0] for pts in drew for p in pts]
        ys = [p[1] for pts in drew for p in pts if p[1] > 0]
        x0 = math.sqrt(min(xs) * max(xs))
        y0 = math.exp(sum(math.log(y) for y in ys) / len(ys))
        gx = [min(xs), max(xs)]
        for k, ls in ((1, ":"), (2, "-.")):
            ax.plot(gx, [y0 * (x / x0) ** k for x in gx], ls, color="0.6", lw=0.8,
                    label=f"slope {k} guide")
    for a, b, Lx, y in marks:  # the crossovers of the families drawn
        if a in data and b in data:
            ax.plot([Lx], [y * scale], "kx", ms=9, mew=2, zorder=5)
            ax.annotate(f"L~{Lx:.0f}", (Lx, y * scale), textcoords="offset points",
                        xytext=(4, -11), fontsize=7)
    ax.set_xlabel("sequence length L")
    ax.set_ylabel(ylabel)
    machine = ctx.get("gpu_name") or ctx.get("mb_cpu_model") or "?"
    title = {"time": "time per call vs L", "peak": "peak memory (tensors + scratch) vs L"}[what]
    if fname != default_name:
        title = "every registered version: " + title
    shapes = {}
    for f in data:
        m = META.get(f, {})
        if m.get("shape") and not m.get("peer"):
            shapes.setdefault(m["op"], m["shape"])
    shape_line = "\n".join(f"{op}: {sh}" for op, sh in sorted(shapes.items()))
    ax.set_title(f"{title} -- {machine}, commit {ctx.get('mb_commit', '?')}\n"
                 + (f"{shape_line}\n" if shape_line else "") +
                 "median of the repetitions (bars: stddev); slopes fitted over the upper half "
                 "of each L range", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    if drew:
        ax.legend(fontsize=6.5, ncol=2)
    fig.tight_layout()
    path = os.path.join(out_dir, fname)
    fig.savefig(path)
    plt.close(fig)
    return path


def decode_rows(docs):
    """The median rows of decoding: {('decode'|'step', op, impl, peer, B): {L or None:
    (seconds, decode_state_bytes)}} -- attention decode over a KV cache of L, and
    the scan's and SSD's one-token steps (no L: their state does not grow)."""
    out = {}
    for _, doc in docs:
        for b in doc["benchmarks"]:
            f = label_fields(b.get("label"))
            if f.get("dir") not in ("decode", "step") or b.get("aggregate_name") != "median":
                continue
            if b.get("error_occurred") or not (f.get("default") == "1" or f.get("peer") == "1"):
                continue
            t = float(b["real_time"]) * UNIT_SECONDS[b.get("time_unit", "ns")]
            key = (f["dir"], f["op"], f.get("impl", "?"), f.get("peer") == "1", int(f.get("B", 0)))
            L = int(f["L"]) if f["dir"] == "decode" else None
            out.setdefault(key, {})[L] = (t, b.get("decode_state_bytes"))
    return out


def decode_plot(docs, out_dir, ctx):
    """decode_vs_context.png: time per generated token vs context (attention over
    its KV cache; the scan's and SSD's steps, flat), and the memory one sequence
    keeps to decode (KV cache of one layer vs the constant states). Returns
    (path or None, summary lines)."""
    rows = decode_rows(docs)
    if not any(k[0] == "decode" for k in rows):
        return None, []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13.0, 5.5), dpi=120)
    ctxs = sorted({L for k, v in rows.items() if k[0] == "decode" for L in v})
    lines, colors = [], plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, key in enumerate(sorted(rows, key=lambda k: (k[3], k[0], k[1], k[4]))):
        kind, op, impl, peer, B = key
        v = rows[key]
        name = f"{op} {kind} {impl} B={B}" + (" [peer]" if peer else "")
        color = ("0.4" if B == 8 else "0.7") if peer else colors[i % len(colors)]
        style = "-" if B == 8 else ":"
        if kind == "decode":
            Ls = sorted(v)
            ax_t.plot(Ls, [v[L][0] for L in Ls], style, marker="o", ms=3, color=color, label=name)
            if B == 8 and not peer and v[Ls[-1]][1]:
                ax_m.plot(Ls, [v[L][1] / 2**20 for L in Ls], "-", marker="o", ms=3, color=color,
                          label="attention KV cache (H 16, d 128, bf16)")
        else:
            t, state = v[None]
            ax_t.plot([ctxs[0], ctxs[-1]], [t, t], style, color=color, label=name + " (step)")
            lines.append((op, B, t, state))
    for op, B, t, state in lines:
        if B == 8 and state:
            ax_m.plot([ctxs[0], ctxs[-1]], [state / 2**20] * 2, "--", label=f"{op} state (fp32)")
    summary = []
    attn8 = {k: v for k, v in rows.items() if k[0] == "decode" and k[4] == 8 and not k[3]}
    for op, B, t, state in lines:
        if B != 8:
            continue
        for key, v in attn8.items():
            faster = [L for L in sorted(v) if v[L][0] > t]
            summary.append(f"{op} step (B 8, {t * 1e6:.2f} us) vs attention decode {key[2]} (B 8): "
                           + (f"the step is faster from context {faster[0]}" if faster else
                              "attention decode is faster at every context measured"))
            if state and v[max(v)][1]:
                summary.append(f"{op} state {state / 2**20:.2f} MiB per sequence = the KV cache "
                               f"of {state / (v[max(v)][1] / max(v)):.0f} tokens")
    for ax, ylabel in ((ax_t, "time per generated token (s)"),
                       (ax_m, "memory one sequence keeps to decode (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length L")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6.5)
    machine = ctx.get("gpu_name") or "?"
    fig.suptitle(f"decoding one token -- {machine}, commit {ctx.get('mb_commit', '?')}\n"
                 "attention: one query over a full KV cache (H 16, d 128, bf16); scan "
                 "(D 4096, N 16) and SSD (H 64, P 64, N 128): one-token steps; median, L2 flushed",
                 fontsize=9)
    fig.tight_layout()
    path = os.path.join(out_dir, "decode_vs_context.png")
    fig.savefig(path)
    plt.close(fig)
    return path, summary


def summarize(data):
    fits, rows = {}, []
    for family in sorted(data):
        Ls = sorted(data[family])
        ts = [data[family][L]["time"] for L in Ls]
        ms = [data[family][L]["peak"] for L in Ls]
        st, flo, fhi = fit_upper_half(Ls, ts)
        sm, _, _ = fit_upper_half(Ls, ms)
        fits[family] = {"time": st, "peak": sm}
        rows.append({
            "op": family,
            "range": f"{Ls[0]}..{Ls[-1]}",
            "fit": "n/a" if flo is None else f"{flo}..{fhi}",
            "slope_t": fmt_slope(st),
            "slope_m": fmt_slope(sm),
            "t_max": fmt_time(ts[-1]),
            "src": data[family][Ls[-1]]["source"],
        })
    return fits, rows


def series_of(data, key):
    out = {}
    for family in data:
        Ls = [L for L in sorted(data[family]) if (data[family][L][key] or 0) > 0]
        if len(Ls) >= 2:
            out[family] = (Ls, [data[family][L][key] for L in Ls])
    return out


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", help="Google Benchmark JSON files "
                    "(default: results/cpu/*.json of the repository)")
    ap.add_argument("--out", help="output directory (default: that of the first file)")
    ap.add_argument("--tie", type=float, default=0.05,
                    help="relative gap under which two curves count as equal, not crossing "
                    "(default 0.05)")
    args = ap.parse_args(argv)

    # sorted, so the summary (its context comes from the first file) is the same
    # however the files were named on the command line
    files = sorted(args.files) or sorted(glob.glob(os.path.join(here, "..", "results", "cpu", "*.json")))
    if not files:
        raise InputError("no JSON files given and none in results/cpu/")
    docs = [(f, load_json(f)) for f in files]
    data = collect(docs)
    if not data:
        raise InputError("no usable runs (with an L argument and no error) in: " + ", ".join(files))
    out_dir = args.out or os.path.dirname(os.path.abspath(files[0]))
    os.makedirs(out_dir, exist_ok=True)

    fits, rows = summarize(data)
    time_pts, mem_pts = [], []
    time_x = crossovers(series_of(data, "time"), args.tie, time_pts)
    mem_x = crossovers(series_of(data, "peak"), args.tie, mem_pts)
    ctx = {}
    for _, doc in docs:  # the first file's context, filled in by the others
        if isinstance(doc.get("context"), dict):
            for k, v in doc["context"].items():
                ctx.setdefault(k, v)
    pngs = [plot(data, fits, out_dir, "time", ctx, marks=time_pts),
            plot(data, fits, out_dir, "peak", ctx, marks=mem_pts)]
    versions = any(not headline(f) and direction(f) != "decode" for f in data)
    if versions:  # every version of every op, own kernels only
        pngs.append(plot(data, fits, out_dir, "time", ctx, "versions_vs_L.png",
                         keep=lambda f: not META.get(f, {}).get("peer", False)
                         and direction(f) != "decode"))
    decode_png, decode_lines = decode_plot(docs, out_dir, ctx)

    note = ("slopes: least squares of log(time) and log(peak bytes) on log(L) over the upper "
            "half of each L range (L >= sqrt(Lmin*Lmax)); small L is overhead-dominated")
    head = ("op", "L range", "fit range", "slope time", "slope mem", "time at Lmax")
    width = [max(len(head[0]), *(len(r["op"]) for r in rows)) + 2, 16, 16, 12, 11, 14]
    print(note)
    print("".join(h.ljust(w) for h, w in zip(head, width)).rstrip())
    for r in rows:
        cells = (r["op"], r["range"], r["fit"], r["slope_t"], r["slope_m"], r["t_max"])
        print("".join(c.ljust(w) for c, w in zip(cells, width)).rstrip())
    print("time crossovers:" if time_x else "time crossovers: none to compare")
    for line in time_x:
        print("  " + line)
    if mem_x:
        print("peak memory crossovers:")
        for line in mem_x:
            print("  " + line)

    gpu = bool(ctx.get("gpu_name"))
    md = ["# GPU scaling summary" if gpu else "# CPU scaling summary", ""]
    keys = ("mb_commit", "mb_date_utc", "mb_hostname", "mb_cpu_model", "num_cpus", "mb_compiler",
            "mb_build_type", "mb_cuda_architectures", "mb_settings")
    if gpu:
        keys += tuple(k for k in sorted(ctx) if k.startswith(("gpu_", "cuda_", "torch_")))
    facts = [(k, ctx.get(k)) for k in keys]
    md += [f"- {k.replace('mb_', '')}: {v}" for k, v in facts if v is not None]
    commits = {os.path.basename(f): (d.get("context") or {}).get("mb_commit") for f, d in docs}
    if len(set(commits.values())) > 1:  # a sweep split over several runs: say which made what
        md.append("- commits per file: " + ", ".join(f"{k} {v}" for k, v in commits.items()))
    md += [f"- inputs: {', '.join(os.path.basename(f) for f in files)}", "",
           f"Times are per call, the median of the repetitions where present. {note[0].upper()}{note[1:]}.",
           "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        md.append(f"| {r['op']} | {r['range']} | {r['fit']} | {r['slope_t']} | "
                  f"{r['slope_m']} | {r['t_max']} |")
    md += ["", "## Time crossovers", ""] + [f"- {x}" for x in time_x or ["none to compare"]]
    md += ["", "## Peak memory crossovers", ""] + [f"- {x}" for x in mem_x or ["none to compare"]]
    md += ["", "![time vs L](time_vs_L.png)", "", "![peak memory vs L](memory_vs_L.png)", ""]
    if versions:
        md += ["Every registered version (the plots above show the defaults and the peers):", "",
               "![every version, time vs L](versions_vs_L.png)", ""]
    if decode_png:
        pngs.append(decode_png)
        md += ["## Decoding one token", ""] + [f"- {x}" for x in decode_lines] + \
              ["", "![decode vs context](decode_vs_context.png)", ""]
    md_path = os.path.join(out_dir, "summary.md")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    print("wrote " + ", ".join(pngs + [md_path]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except InputError as e:
        print(f"plot_scaling: error: {e}", file=sys.stderr)
        sys.exit(2)
