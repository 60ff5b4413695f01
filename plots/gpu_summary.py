#!/usr/bin/env python3
"""gpu_summary.py -- the GPU results against the anchors, the peers measured in
the same run and the issues' speed targets, appended to a run's summary.md.

    python3 plots/gpu_summary.py RUN_DIR [--anchors DIR]

Reads RUN_DIR/*.json (the bench binaries' and bench/peers.py's Google
Benchmark JSON, typed label fields) and the anchors (default bench/anchors/:
mamba_ssm, FlashAttention-2 and cuDNN measured on the same H100 model with
triton's do_bench on 2026-11-22, copied from the project's shared anchors),
and appends to RUN_DIR/summary.md, per op:
  - the default implementation's time per argument (L, N or batch) against
    the reference of the target -- the peer measured in this run where there
    is one, else the anchor -- the ratio, and the target with met / MISSED;
  - every version's ratio to the anchor;
  - the ratio to every peer measured in the same run.
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
COUNTERS = ("flop_per_second", "pct_of_copy_ceiling", "extra_device_bytes", "bytes_per_second")


def fields(label):
    if not isinstance(label, str) or "op=" not in label:
        return {}
    return dict(p.split("=", 1) for p in label.split() if "=" in p)


def row_key(f):
    """(op, dir, backend, impl); decode rows carry their batch: dir decode_b<B>."""
    d = f["dir"] + (f"_b{f.get('B', '?')}" if f["dir"] == "decode" else "")
    return (f["op"], d, f.get("backend", ""), f.get("impl", ""))


def medians(paths):
    """{key: {arg: ms}}, {key: {arg: cv}}, {key: {arg: {counter: value}}} from the
    median and cv aggregates; arg is L for L sweeps, else 'N:16' / 'B:8'.
    DEFAULTS collects the keys whose rows say default=1."""
    out, cvs, counters = {}, {}, {}
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
            key = row_key(f)
            if f.get("default") == "1":
                DEFAULTS.add(key)
            if agg == "median":
                out.setdefault(key, {})[arg] = float(b["real_time"]) * UNIT[b.get("time_unit", "ms")]
                counters.setdefault(key, {})[arg] = {c: b[c] for c in COUNTERS if c in b}
            else:
                cvs.setdefault(key, {})[arg] = float(b["real_time"])
    return out, cvs, counters


def anchor_rows(anchor_dir):
    rows = []
    for path in sorted(glob.glob(os.path.join(anchor_dir, "*.json"))):
        rows += json.load(open(path)).get("rows", [])
    by, ceiling = {}, None
    for r in rows:
        if r.get("op") == "ceiling_copy":
            ceiling = r.get("GBps")
        if "ms" not in r:
            continue
        arg = r["L"] if "N" not in r else f"N:{r['N']}"
        by.setdefault(r["op"], {})[arg] = r
    return by, ceiling


def anchor_ms(anchors, op):
    return {a: r["ms"] for a, r in anchors.get(op, {}).items()}


def fmt(ms):
    if ms is None:
        return "missing"
    return f"{ms * 1e3:.2f} us" if ms < 0.1 else f"{ms:.3f} ms"


def arg_order(a):
    return (isinstance(a, str), str(a).zfill(12))


def default_key(ours, op, d, backend="cuda"):
    keys = [k for k in ours if k[:3] == (op, d, backend) and k in DEFAULTS]
    return keys[0] if keys else None


def reference(ours, peer_key, anchor):
    """{arg: (ms, 'run' | 'anchor')}: the peer of this run where measured, else the anchor."""
    ref = {a: (t, "anchor") for a, t in (anchor or {}).items()}
    if peer_key and peer_key in ours:
        ref.update({a: (t, "run") for a, t in ours[peer_key].items()})
    return ref


def target_table(title, ours, cvs, key, ref, target, note=""):
    """Markdown lines: arg | ours (cv) | reference (source) | ref / ours | target | verdict.
    target(arg) is the minimum ratio reference time / our time, or None."""
    lines = [f"### {title}", ""] + ([note, ""] if note else [])
    if key is None:
        return lines + ["No default implementation measured in this run.", ""]
    mine, cv = ours.get(key, {}), cvs.get(key, {})
    lines += ["| arg | this project (cv) | reference | ref / ours | target | verdict |",
              "|---|---|---|---|---|---|"]
    for a in sorted(set(mine) | set(ref), key=arg_order):
        t = mine.get(a)
        r, src = ref.get(a, (None, ""))
        ratio = r / t if t and r else None
        want = target(a) if target else None
        if want is None:
            verdict = ""
        elif ratio is None:
            verdict = "not measured"
        else:
            verdict = "met" if ratio >= want else f"MISSED ({ratio / want:.2f} of the target)"
        c = cv.get(a)
        lines.append(f"| {a} | {fmt(t)}{'' if c is None else f' ({c * 100:.1f}%)'} | "
                     f"{fmt(r)}{f' ({src})' if src else ''} | "
                     f"{'' if ratio is None else f'{ratio:.2f}x'} | "
                     f"{'' if want is None else f'>= {want:.3g}x'} | {verdict} |")
    return lines + [""]


def versions_table(title, keys, ours, anchor):
    """One row per version: anchor time / our time at each argument."""
    if not keys:
        return []
    args = sorted({a for k in keys for a in ours[k]}, key=arg_order)
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


def at_least(ratio, lo=None, hi=None):
    """A target: `ratio` for integer L in [lo, hi], else none."""
    return lambda a: ratio if isinstance(a, int) and (lo is None or a >= lo) and (
        hi is None or a <= hi) else None


def step_section(title, ours, cvs, key, anchor_op, anchors):
    if key is None:
        return []
    t8 = ours[key].get("B:8")
    md = [f"### {title}: {key[3]} (the default)", "", "| batch | time per step (cv) |", "|---|---|"]
    md += [f"| {a} | {fmt(t)} ({cvs.get(key, {}).get(a, 0) * 100:.1f}%) |"
           for a, t in sorted(ours[key].items(), key=lambda x: int(x[0][2:]))]
    verdict = "not measured" if t8 is None else (
        "met" if t8 * 1e3 < 5.0 else f"MISSED ({t8 * 1e3:.2f} us)")
    ref = anchor_ms(anchors, anchor_op)
    med = statistics.median(ref.values()) if ref else None
    return md + ["", f"Target: under 5 us per token at batch 8: {verdict}. Triton "
                 f"selective_state_update from Python (anchor, batch 8, median over contexts): "
                 f"{fmt(med)}.", ""]


# ----------------------------------------------------------------------------
# per op


def scan_section(ours, cvs, anchors):
    md = []
    rows = [("fwd", "mamba1_scan_cuda", "forward, with z (mamba_ssm selective_scan_fwd)",
             lambda a: 1.5 if isinstance(a, int) and a >= 8192 else at_least(1.0, 2048)(a)),
            ("fwd_noz", "mamba1_scan_cuda_noz", "forward, no z",
             lambda a: 1.5 if isinstance(a, int) and a >= 8192 else at_least(1.0, 2048)(a)),
            ("fwdbwd", "fb_mamba1_scan_cuda", "forward + backward, with z", at_least(1.0, 2048)),
            ("fwdbwd_saved", "fb_mamba1_scan_cuda",
             "forward + backward as the training pair (the forward saves its chunk states), with z",
             at_least(1.0, 2048)),
            ("fwd_state", "state_mamba1_scan_cuda", "state size N at L 4096, no z",
             lambda a: 1.0 if a == "N:256" else None)]
    keys = sorted(k for k in ours if k[0] == "selective_scan" and k[2] == "cuda")
    for d, anchor_op, title, target in rows:
        key = default_key(ours, "selective_scan", d)
        if key:
            md += target_table(f"selective scan {title}: {key[3]} (the default)", ours, cvs, key,
                               reference(ours, None, anchor_ms(anchors, anchor_op)), target)
    for d, anchor_op, title, _ in rows:
        md += versions_table(f"selective scan {title}: every version, speed-up over the anchor",
                             [k for k in keys if k[1] == d], ours, anchor_ms(anchors, anchor_op))
    md += step_section("selective scan one-token step", ours, cvs,
                       default_key(ours, "selective_scan", "step"), "decode_mamba1_state_update",
                       anchors)
    md += step_section("selective scan one-token step, the 100 steps replayed from a CUDA graph "
                       "(no host launch cost)", ours, cvs,
                       default_key(ours, "selective_scan", "step_graph"),
                       "decode_mamba1_state_update", anchors)
    md += step_versions("selective scan", "selective_scan", ("step", "step_graph"), ours)
    return md


def step_versions(title, op, dirs, ours):
    """Per step direction, every version's time per step (the others at batch 8 only)."""
    md = []
    for d in dirs:
        md += versions_table(f"{title} {d}: every version, time per step",
                             [k for k in ours if k[:3] == (op, d, "cuda")], ours, None)
    return md


def ssd_section(ours, cvs, anchors):
    if not any(k[0] == "ssd" and k[2] == "cuda" for k in ours):
        return []
    md = ["## SSD (Mamba-2)", ""]
    triton = ("ssd", "fwd", "torch", "triton_ssd")
    fwd = default_key(ours, "ssd", "fwd")
    md += target_table(
        f"SSD forward: {fwd and fwd[3]} vs mamba_ssm's Triton SSD", ours, cvs, fwd,
        reference(ours, triton, anchor_ms(anchors, "mamba2_ssd_triton")),
        lambda a: 3.0 if isinstance(a, int) and a <= 2048 else at_least(1.0, 4096)(a),
        "Target: 3x the Triton SSD at L <= 2K, at least as fast from 4K.")
    fb = default_key(ours, "ssd", "fwdbwd")
    md += target_table(f"SSD forward + backward: {fb and fb[3]} vs the Triton SSD", ours, cvs,
                       fb, reference(ours, None, anchor_ms(anchors, "fb_mamba2_ssd_triton")),
                       at_least(1.0), "Target: at least as fast at every L.")
    scan_n128 = default_key(ours, "selective_scan", "fwd_n128")
    md += target_table(
        f"SSD forward vs this project's selective scan at the same N (128), no z", ours, cvs, fwd,
        reference(ours, scan_n128, None), at_least(1.0, 2048),
        "The paper's claim: SSD faster than the Mamba-1 scan at N >= 64 from L 2K. Reference: "
        f"the scan's default forward, {scan_n128 and scan_n128[3]}, D 4096 (= H 64 x P 64), "
        "N 128, same run.")
    st = default_key(ours, "ssd", "fwd_state")
    md += target_table(
        "SSD forward over the state size N at L 4096 vs this project's scan (same run)", ours,
        cvs, st, reference(ours, default_key(ours, "selective_scan", "fwd_state"), None),
        lambda a: 1.0 if a in ("N:64", "N:128", "N:256") else None,
        "The scan's time grows with N; SSD's should stay nearly flat. Target: faster at N >= 64.")
    md += target_table(
        "SSD forward vs FlashAttention-2 (SDPA flash, same run)", ours, cvs, fwd,
        reference(ours, ("attention", "fwd", "torch", "sdpa_flash"),
                  anchor_ms(anchors, "attn_sdpa_flash")), at_least(1.0, 2048),
        "The paper's claim: SSD faster than FlashAttention-2 from L 2K (attention at H 16, "
        "d 128, the canonical attention shape of the same model width).")
    md += versions_table("SSD forward: every version, speed-up over the Triton SSD anchor",
                         [k for k in ours if k[:3] == ("ssd", "fwd", "cuda")], ours,
                         anchor_ms(anchors, "mamba2_ssd_triton"))
    md += versions_table("SSD forward + backward: every version, speed-up over the anchor",
                         [k for k in ours if k[:3] == ("ssd", "fwdbwd", "cuda")], ours,
                         anchor_ms(anchors, "fb_mamba2_ssd_triton"))
    md += step_section("SSD one-token step", ours, cvs, default_key(ours, "ssd", "step"),
                       "decode_mamba2_state_update", anchors)
    md += step_section("SSD one-token step, state stored in bf16 (state_bf16, as mamba_ssm's "
                       "decode cache of a bf16 model)", ours, cvs,
                       default_key(ours, "ssd", "step_bf16state"), "decode_mamba2_state_update",
                       anchors)
    md += step_section("SSD one-token step, the 100 steps replayed from a CUDA graph (no host "
                       "launch cost)", ours, cvs, default_key(ours, "ssd", "step_graph"),
                       "decode_mamba2_state_update", anchors)
    md += step_section("SSD one-token step, state in bf16, replayed from a CUDA graph", ours, cvs,
                       default_key(ours, "ssd", "step_bf16state_graph"),
                       "decode_mamba2_state_update", anchors)
    md += step_versions("SSD", "ssd", ("step", "step_graph", "step_bf16state",
                                       "step_bf16state_graph"), ours)
    return md


def tflops_line(ours, counters, key, cudnn_key, anchors, Ls=(8192, 16384)):
    parts = []
    for L in Ls:
        mine = counters.get(key, {}).get(L, {}).get("flop_per_second")
        cd = ours.get(cudnn_key, {}).get(L)
        cd_src = "run"
        if cd is None:
            cd, cd_src = anchor_ms(anchors, "attn_sdpa_cudnn").get(L), "anchor"
        if mine:
            flops = 2.0 * 16 * L * L * 128
            txt = f"L {L}: {mine / 1e12:.0f} TFLOP/s"
            if cd:
                txt += f", cuDNN {flops / (cd * 1e-3) / 1e12:.0f} ({cd_src}): {mine / (flops / (cd * 1e-3)):.2f} of it"
            parts.append(txt)
    return "; ".join(parts)


def attention_section(ours, cvs, counters, anchors, ceiling):
    if not any(k[0] == "attention" and k[2] == "cuda" for k in ours):
        return []
    md = ["## Attention", ""]
    fwd = default_key(ours, "attention", "fwd")
    peer = lambda d, impl: ("attention", d, "torch", impl)
    md += target_table(
        f"flash forward: {fwd and fwd[3]} vs FlashAttention-2 (SDPA flash)", ours, cvs, fwd,
        reference(ours, peer("fwd", "sdpa_flash"), anchor_ms(anchors, "attn_sdpa_flash")),
        at_least(1.0, 4096), "Target: at least FA2's speed from L 4K. " +
        tflops_line(ours, counters, fwd, peer("fwd", "sdpa_cudnn"), anchors))
    fb = default_key(ours, "attention", "fwdbwd")
    md += target_table(
        f"flash forward + backward: {fb and fb[3]} vs FlashAttention-2", ours, cvs, fb,
        reference(ours, peer("fwdbwd", "sdpa_flash"), anchor_ms(anchors, "fb_attn_sdpa_flash")),
        at_least(0.9, 4096), "Target: at least 0.9x FA2 from L 4K.")
    naive = ("attention", "fwd", "cuda", "naive")
    md += target_table(
        "naive forward vs the SDPA math backend (both materialise L x L)", ours, cvs,
        naive if naive in ours else None,
        reference(ours, peer("fwd", "sdpa_math"), anchor_ms(anchors, "attn_sdpa_math")),
        at_least(1 / 1.5), "Target: within 1.5x of the math backend's time (ratio >= 0.67).")
    if naive in ours:
        md += ["| L | naive extra device memory | SDPA math extra memory | verdict |",
               "|---|---|---|---|"]
        math_key = peer("fwd", "sdpa_math")
        for L in sorted(ours[naive]):
            mine = counters.get(naive, {}).get(L, {}).get("extra_device_bytes")
            theirs = counters.get(math_key, {}).get(L, {}).get("extra_device_bytes")
            src = "run"
            if theirs is None:
                theirs, src = anchors.get("attn_sdpa_math", {}).get(L, {}).get("peak_bytes"), "anchor"
            verdict = "" if mine is None or theirs is None else (
                "met" if mine <= theirs else f"MISSED ({mine / theirs:.2f}x the memory)")
            gb = lambda x: "missing" if x is None else f"{x / 1e9:.3f} GB"
            md.append(f"| {L} | {gb(mine)} | {gb(theirs)} ({src}) | {verdict} |")
        md.append("")
    dec = default_key(ours, "attention", "decode_b8")
    if dec:
        md += [f"### decode, batch 8: {dec[3]} (the default)", "",
               "Target: at least 50% of the copy ceiling (KV-cache bytes read per second) for "
               f"contexts >= 16K. Copy ceiling of this run: the GPU context's measured "
               f"device-to-device rate; anchors': {ceiling:.0f} GB/s." if ceiling else "", "",
               "| context | ours (cv) | GB/s | % of copy ceiling | SDPA over the cache | "
               "SDPA / ours | verdict |", "|---|---|---|---|---|---|---|"]
        ref = reference(ours, peer("decode_b8", "sdpa"), anchor_ms(anchors, "decode_attn_kvcache"))
        for L in sorted(ours[dec]):
            t, c = ours[dec][L], counters.get(dec, {}).get(L, {})
            pct, bw = c.get("pct_of_copy_ceiling"), c.get("bytes_per_second")
            r, src = ref.get(L, (None, ""))
            verdict = "" if L < 16384 or pct is None else (
                "met" if pct >= 50 else f"MISSED ({pct:.0f}% of the ceiling)")
            md.append(f"| {L} | {fmt(t)} ({cvs.get(dec, {}).get(L, 0) * 100:.1f}%) | "
                      f"{'' if bw is None else f'{bw / 1e9:.0f}'} | "
                      f"{'' if pct is None else f'{pct:.0f}%'} | {fmt(r)} ({src}) | "
                      f"{'' if not r else f'{r / t:.2f}x'} | {verdict} |")
        md.append("")
    for d, title, anchor_op in (("fwd", "forward", "attn_sdpa_flash"),
                                ("fwdbwd", "forward + backward", "fb_attn_sdpa_flash"),
                                ("decode_b8", "decode (batch 8)", "decode_attn_kvcache")):
        md += versions_table(f"attention {title}: every version, speed-up over the anchor",
                             [k for k in ours if k[:3] == ("attention", d, "cuda")], ours,
                             anchor_ms(anchors, anchor_op))
    return md


def peers_section(ours):
    peers = [k for k in ours if k[2] == "torch"]
    if not peers:
        return []
    md = ["## Against the peers measured in this run", "",
          "| this project | peer | L | ours | peer | peer / ours |", "|---|---|---|---|---|---|"]
    for mine in sorted(k for k in ours if k[2] == "cuda" and (k in DEFAULTS or not DEFAULTS)):
        for peer in sorted(p for p in peers if p[0] == mine[0] and p[1] == mine[1]):
            for L in sorted(set(ours[mine]) & set(ours[peer]), key=arg_order):
                a, b = ours[mine][L], ours[peer][L]
                md.append(f"| {'_'.join(mine)} | {peer[3]} | {L} | {fmt(a)} | {fmt(b)} | "
                          f"{b / a:.2f}x |")
    return md + [""]


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--anchors", default=os.path.join(here, "..", "bench", "anchors"))
    args = ap.parse_args(argv)
    paths = sorted(glob.glob(os.path.join(args.run_dir, "*.json")))
    ours, cvs, counters = medians(paths)
    anchors, ceiling = anchor_rows(args.anchors)
    md = ["", "## Against the anchors and the targets", "",
          "Anchors: bench/anchors/ (mamba_ssm, FlashAttention-2, cuDNN on an H100 80GB HBM3, "
          "2026-11-22, triton do_bench: events, L2 flushed, median), not re-measured here. "
          "Where a peer was measured in this run (bench/peers.py, same method as the C "
          "benchmarks) it is the reference instead, marked (run). Ratio = reference time / this "
          "project's time (> 1: faster). cv = stddev / median over the repetitions.", ""]
    md += ["## Selective scan (Mamba-1)", ""] + scan_section(ours, cvs, anchors)
    md += ssd_section(ours, cvs, anchors)
    md += attention_section(ours, cvs, counters, anchors, ceiling)
    md += peers_section(ours)
    with open(os.path.join(args.run_dir, "summary.md"), "a") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
