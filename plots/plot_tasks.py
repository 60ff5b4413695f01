#!/usr/bin/env python3
"""plot_tasks.py -- tables and the accuracy-vs-test-length plot of the synthetic tasks.

Run:  python3 plots/plot_tasks.py results/tasks [--out DIR]

Reads every *.jsonl in the directory (one line per model, task, test length and
mode, as mambabench-train --out writes them) and writes into DIR (default: the
same directory):
  summary.md                the tables: accuracy at the training length for every
                            (task, model) with its settings, steps, wall time and
                            tokens/s; accuracy by test length per task (the Mamba
                            paper's Table 11 layout); recurrent-vs-parallel agreement
  tasks_accuracy_vs_length.png   accuracy against test length, one panel per task
                            evaluated at several lengths (skipped without matplotlib)
Where a length has both modes, the parallel one is shown (the two agree; the
recurrent one is the only one beyond the parallel mode's memory cap).
Exits non-zero when the directory holds no valid result line.
"""
import argparse
import glob
import json
import os
import sys


def load(directory):
    rows = []
    files = sorted(glob.glob(os.path.join(directory, "*.jsonl")))
    for path in files:
        with open(path) as f:
            for i, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    sys.exit(f"plot_tasks: {path}:{i}: not JSON ({e})")
                missing = [k for k in ("model", "task", "len", "train_len", "mode", "accuracy") if k not in r]
                if missing:
                    sys.exit(f"plot_tasks: {path}:{i}: missing {', '.join(missing)}")
                r["run"] = r.get("label") or f"{r['task']}-{r['model']}"
                rows.append(r)
    if not rows:
        sys.exit(f"plot_tasks: no result lines in {directory}/*.jsonl")
    return rows


def best_mode(rows):
    """One row per (run, len): the latest steps, the parallel mode where present."""
    out = {}
    for r in rows:
        key = (r["run"], r["len"])
        old = out.get(key)
        if (old is None or r.get("steps", 0) > old.get("steps", 0) or
                (r.get("steps", 0) == old.get("steps", 0) and r["mode"] == "parallel")):
            out[key] = r
    return out


def dash(v, fmt="{}"):
    return "—" if v in (None, 0, "") else fmt.format(v)


def fmt_acc(a):
    return "—" if a is None else f"{100 * a:.1f}"


def tables(rows):
    by = best_mode(rows)
    runs = sorted({r["run"] for r in rows}, key=lambda n: [r for r in rows if r["run"] == n][0]["task"] + n)
    lines = ["## Accuracy at the training length", "",
             "| task | run (model) | train len | n | params | steps | batch | lr | train wall (s) | train tok/s | accuracy % | commit |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in runs:
        r0 = next(r for r in rows if r["run"] == name)
        r = by.get((name, r0["train_len"]), r0)
        lines.append(f"| {r['task']} | {name} ({r['model']}) | {r['train_len']} | {dash(r.get('n'))} | {dash(r.get('params'))} | "
                     f"{dash(r.get('steps'))} | {dash(r.get('batch'))} | {dash(r.get('lr'))} | "
                     f"{dash(r.get('train_wall_s'), '{:.0f}')} | {dash(r.get('train_tokens_per_s'), '{:.0f}')} | "
                     f"{fmt_acc(r['accuracy'] if r['len'] == r['train_len'] else None)} | {r.get('commit', '')} |")
    hist = []
    for name in runs:
        pts = sorted({(r.get("steps", 0), r["accuracy"]) for r in rows
                      if r["run"] == name and r["len"] == r["train_len"] and r["mode"] == "parallel"})
        if len(pts) > 1:
            hist.append(f"| {name} | " + ", ".join(f"{s}: {fmt_acc(a)}" for s, a in pts) + " |")
    if hist:
        lines += ["", "## Accuracy % at the training length against training steps (runs extended by --resume)", "",
                  "| run | steps: accuracy % |", "|---|---|"] + hist
    for task in sorted({r["task"] for r in rows}):
        lens = sorted({r["len"] for r in rows if r["task"] == task})
        if len(lens) < 2:
            continue
        lines += ["", f"## {task}: accuracy % by test length (* = training length)", "",
                  "| run (model) | " + " | ".join(str(n) for n in lens) + " |", "|---" * (len(lens) + 1) + "|"]
        for name in runs:
            rs = [r for r in rows if r["run"] == name and r["task"] == task]
            if not rs:
                continue
            cells = []
            for n in lens:
                r = by.get((name, n))
                cells.append(fmt_acc(r["accuracy"] if r else None) + ("*" if n == rs[0]["train_len"] else ""))
            lines.append(f"| {name} ({rs[0]['model']}) | " + " | ".join(cells) + " |")
    agree = [r for r in rows if "parallel_max_abs_logit_diff" in r]
    if agree:
        lines += ["", "## Recurrent mode against the parallel mode (SSMs)", "",
                  "| run | steps | len | max abs logit diff | argmax agreement |", "|---|---|---|---|---|"]
        for r in agree:
            lines.append(f"| {r['run']} | {r.get('steps', '')} | {r['len']} | {r['parallel_max_abs_logit_diff']:.2g} | "
                         f"{r['parallel_argmax_agree']:.4f} |")
    return "\n".join(lines) + "\n"


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_tasks: matplotlib not found, no plot (pip install matplotlib)")
        return False
    by = best_mode(rows)
    tasks = [t for t in sorted({r["task"] for r in rows}) if len({r["len"] for r in rows if r["task"] == t}) > 1]
    if not tasks:
        return False
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for name in sorted({r["run"] for r in rows if r["task"] == task}):
            pts = sorted((n, r["accuracy"]) for (run, n), r in by.items() if run == name)
            r0 = next(r for r in rows if r["run"] == name)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    label=f"{name}: {r0['model']} (trained at {r0['train_len']}, {max(r.get('steps', 0) for r in rows if r['run'] == name)} steps)")
        vocab = {r.get("vocab") for r in rows if r["task"] == task}
        if task == "induction" and len(vocab) == 1 and None not in vocab:
            ax.axhline(1 / (vocab.pop() - 1), color="gray", linestyle="--", linewidth=1, label="chance")
        train_lens = {r["train_len"] for r in rows if r["task"] == task}
        for n in train_lens:
            ax.axvline(n, color="gray", linestyle=":", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("test sequence length")
        ax.set_ylabel("accuracy on the marked positions")
        ax.set_title(f"{task} (CPU, dotted: training length)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = args.out or args.directory
    rows = load(args.directory)
    os.makedirs(out, exist_ok=True)
    text = "# Synthetic tasks: results (generated by plots/plot_tasks.py)\n\n" + tables(rows)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    if plot(rows, os.path.join(out, "tasks_accuracy_vs_length.png")):
        print(f"wrote {os.path.join(out, 'tasks_accuracy_vs_length.png')}")


if __name__ == "__main__":
    main()
