#!/usr/bin/env python3
"""gpu_summary.py -- the GPU results against the anchors and the issues' speed
targets, appended to a run's summary.md as tables.

    python3 plots/gpu_summary.py RUN_DIR [--anchors DIR]

Reads RUN_DIR/*.json (the bench binaries' and bench/peers.py's Google
Benchmark JSON, typed label fields) and the anchors (default bench/anchors/:
mamba_ssm, FlashAttention-2 and cuDNN measured on the same H100 model with
triton's do_bench on 2026-11-22, copied from the project's shared anchors),
and appends to RUN_DIR/summary.md, per op and implementation:
  - time per L against the anchor at the same L, the speed-up, and the
    target of the issue with met / missed;
  - the state-size sweep (N) and the one-token step (batch);
  - the ratio to every peer measured in the same run (bench/peers.py).
Missing rows are reported as missing, never filled in.
"""
import argparse
import glob
import json
import os
import statistics
import sys

UNIT = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}  # -> ms
DEFAULTS = set()


def fields(label):
    if not isinstance(label, str) or "op=" not in label:
        return {}
    return dict(p.split("=", 1) for p in label.split() if "=" in p)


def medians(paths):
    """{(op, dir, backend, impl): {arg: ms}} from the median aggregates, and
    {(...): {arg: cv}}; arg is L for L sweeps, else 'N:16' / 'B:8'. DEFAULTS
    collects the keys whose rows say default=1."""
    out, cvs = {}, {}
    for path in paths:
        try:
            doc = json.load(open(path))
        except (OSError, json.JSONDecodeError):
            continue
        for b in doc.get("benchmarks", []):
            f = fields(b.get("label"))
            agg = b.get("aggregate_name")
            if not f or agg not in ("median", "cv") or b.get("error_occurred"):
                continue
            name = b.get("run_name", b.get("name", ""))
            arg = None
            for part in name.split("/"):
                if ":" in part and part.split(":")[0] in ("L", "N", "B"):
                    k, v = part.split(":", 1)
                    arg = int(v) if k == "L" else f"{k}:{v}"
            if arg is None:
                continue
            key = (f["op"], f["dir"], f.get("backend", ""), f.get("impl", ""))
            if f.get("default") == "1":
                DEFAULTS.add(key)
            if agg == "median":
                out.setdefault(key, {})[arg] = float(b["real_time"]) * UNIT[b.get("time_unit", "ms")]
            else:
                cvs.setdefault(key, {})[arg] = float(b["real_time"])
    return out, cvs


def anchor_rows(anchor_dir):
    rows = []
    for path in sorted(glob.glob(os.path.join(anchor_dir, "*.json"))):
        rows += json.load(open(path)).get("rows", [])
    by = {}
    for r in rows:
        if "ms" not in r:
            continue
        arg = r["L"] if "N" not in r else f"N:{r['N']}"
        by.setdefault(r["op"], {})[arg] = r["ms"]
    return by


def fmt(ms):
    if ms is None:
        return "missing"
    return f"{ms * 1e3:.2f} us" if ms < 0.1 else f"{ms:.3f} ms"


def table(title, ours, cvs, anchor, target):
    """Markdown lines: arg | ours (cv) | anchor | anchor/ours | target | verdict."""
    lines = [f"### {title}", "", "| arg | this project (cv) | anchor | speed-up (anchor / ours) "
             "| target | verdict |", "|---|---|---|---|---|---|"]
    args = sorted(set(ours) | set(anchor or {}), key=lambda a: (isinstance(a, str), str(a).zfill(12)))
    for a in args:
        t, ref = ours.get(a), (anchor or {}).get(a)
        ratio = ref / t if t and ref else None
        want = target(a) if target else None
        if want is None or ratio is None:
            verdict = "" if want is None else "not measured"
        else:
            verdict = "met" if ratio >= want else f"MISSED ({ratio / want:.2f} of the target)"
        cv = cvs.get(a)
        lines.append(f"| {a} | {fmt(t)}{'' if cv is None else f' ({cv * 100:.1f}%)'} | "
                     f"{fmt(ref)} | {'' if ratio is None else f'{ratio:.2f}x'} | "
                     f"{'' if want is None else f'>= {want:g}x'} | {verdict} |")
    return lines + [""]


def versions_table(title, keys, ours, anchor):
    """One row per version: anchor time / our time at each argument."""
    if not keys:
        return []
    args = sorted({a for k in keys for a in ours[k]}, key=lambda a: (isinstance(a, str), str(a).zfill(12)))
    lines = [f"### {title}", "", "| version | " + " | ".join(str(a) for a in args) + " |",
             "|---|" + "---|" * len(args)]
    for k in sorted(keys, key=lambda k: (len(k[3]), k[3])):
        cells = []
        for a in args:
            t, ref = ours[k].get(a), (anchor or {}).get(a)
            cells.append("" if t is None else (f"{ref / t:.2f}x" if ref else fmt(t)))
        mark = " (default)" if k in DEFAULTS else ""
        lines.append(f"| {k[3]}{mark} | " + " | ".join(cells) + " |")
    return lines + [""]


def scan_targets(kind):
    """The selective-scan issue's targets as minimum speed-ups over mamba_ssm."""
    if kind == "fwd":
        return lambda L: 1.5 if isinstance(L, int) and L >= 8192 else (
            1.0 if isinstance(L, int) and L >= 2048 else None)
    if kind == "fwdbwd":
        return lambda L: 1.0 if isinstance(L, int) and L >= 2048 else None
    if kind == "state":
        return lambda a: 1.0 if a == "N:256" else None
    return None


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--anchors", default=os.path.join(here, "..", "bench", "anchors"))
    args = ap.parse_args(argv)
    paths = sorted(glob.glob(os.path.join(args.run_dir, "*.json")))
    ours, cvs = medians(paths)
    anchors = anchor_rows(args.anchors)
    md = ["", "## Against the anchors and the targets", "",
          "Anchors: bench/anchors/ (mamba_ssm, FlashAttention-2, cuDNN on an H100 80GB HBM3, "
          "2026-11-22, triton do_bench: events, L2 flushed, median), not re-measured here; "
          "peers measured in this run are in the next section. Speed-up = anchor time / this "
          "project's time (> 1: faster). cv = stddev / median over the repetitions.", ""]
    scan_rows = [("fwd", "mamba1_scan_cuda", "forward, with z (mamba_ssm selective_scan_fwd)", "fwd"),
                 ("fwd_noz", "mamba1_scan_cuda_noz", "forward, no z", "fwd"),
                 ("fwdbwd", "fb_mamba1_scan_cuda", "forward + backward, with z", "fwdbwd"),
                 ("fwd_state", "state_mamba1_scan_cuda", "state size N at L 4096, no z", "state")]
    scan_keys = sorted(k for k in ours if k[0] == "selective_scan" and k[2] == "cuda")
    for key in (k for k in scan_keys if k in DEFAULTS):
        for d, anchor_op, title, kind in scan_rows:
            if key[1] == d:
                md += table(f"selective scan {title}: {key[3]} (the default)", ours[key],
                            cvs.get(key, {}), anchors.get(anchor_op), scan_targets(kind))
    for d, anchor_op, title, _ in scan_rows:
        md += versions_table(f"selective scan {title}: every version, speed-up over the "
                             "anchor", [k for k in scan_keys if k[1] == d], ours,
                             anchors.get(anchor_op))
    for key in (k for k in scan_keys if k[1] == "step"):
        t8 = ours[key].get("B:8")
        mark = " (the default)" if key in DEFAULTS else ""
        md += [f"### selective scan one-token step: {key[3]}{mark}", "",
               "| batch | ms per step (cv) |", "|---|---|"]
        md += [f"| {a} | {fmt(t)} ({cvs.get(key, {}).get(a, 0) * 100:.1f}%) |"
               for a, t in sorted(ours[key].items(), key=lambda x: int(x[0][2:]))]
        verdict = "not measured" if t8 is None else (
            "met" if t8 * 1e3 < 5.0 else f"MISSED ({t8 * 1e3:.2f} us)")
        anchor8 = anchors.get("decode_mamba1_state_update", {})
        ref = statistics.median(anchor8.values()) if anchor8 else None
        md += ["", f"Target: under 5 us per token at batch 8: {verdict}. Triton "
               f"selective_state_update from Python (anchor, batch 8, median over contexts): "
               f"{fmt(ref)}.", ""]
    peers = [k for k in ours if k[2] == "torch"]
    if peers:
        md += ["## Against the peers measured in this run", "",
               "| this project | peer | L | ours | peer | peer / ours |", "|---|---|---|---|---|---|"]
        for mine in sorted(k for k in ours if k[2] == "cuda" and (k in DEFAULTS or not DEFAULTS)):
            for peer in sorted(p for p in peers if p[0] == mine[0] and p[1] == mine[1]):
                for L in sorted(set(ours[mine]) & set(ours[peer]), key=lambda a: (str(type(a)), a)):
                    a, b = ours[mine][L], ours[peer][L]
                    md.append(f"| {'_'.join(mine)} | {peer[3]} | {L} | {fmt(a)} | {fmt(b)} | "
                              f"{b / a:.2f}x |")
        md.append("")
    with open(os.path.join(args.run_dir, "summary.md"), "a") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
