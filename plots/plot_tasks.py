#!/usr/bin/env python3
"""plot_tasks.py -- tables and plots of the synthetic tasks: accuracy against test length and training curves.

Run:  python3 plots/plot_tasks.py results/tasks [--out DIR]

Reads every *.jsonl in the directory: result lines (one per model, task, test
length and mode, as mambabench-train --out writes them) and training-curve lines
(the *.curve.jsonl files that mambabench-train --curve writes, one line per
console log period, and any line with "kind": "curve"). Writes into DIR (default:
the same directory):
  summary.md                the tables: accuracy at the training length for every
                            (task, model) with its settings, steps, wall time and
                            tokens/s; accuracy by test length per task;
                            recurrent-vs-parallel agreement; selective copying in
                            the Mamba paper's Table 1 layout and induction heads in
                            its Table 11 layout; the training curves (last step,
                            first step at accuracy >= 0.99, wall time, tokens/s)
  tasks_accuracy_vs_length.png   accuracy against test length, one panel per task
                            evaluated at several lengths (skipped without matplotlib)
  tasks_accuracy_vs_steps.png    training accuracy against step, one panel per task
                            with curves (skipped without matplotlib)
  Both plots show the headline runs: per task, size and model configuration, every
  seed at the best learning rate (the tables list every run).
With DIR/bench/*.jsonl (tasks/bench_train_gpu.sh), summary.md also gets the training
throughput table (Mamba against the issue's PyTorch reference).
Where a length has both modes, the parallel one is shown (the two agree; the
recurrent one is the only one beyond the parallel mode's memory cap). A curve
resumed across runs continues under the same label and seed: its lines are sorted
by step and a step logged twice keeps its last line.
Exits non-zero when the directory holds no valid result or curve line, or on a
line that is not JSON or lacks a required key.
"""
import argparse
import collections
import functools
import glob
import json
import os
import statistics
import sys

RESULT_KEYS = ("model", "task", "len", "train_len", "mode", "accuracy")
CURVE_KEYS = ("model", "task", "step", "accuracy")
# A run: one training (label, seed, lr) of a model on a task at a training length,
# as far as `steps`; a run extended by --resume is a new run at more steps.
Run = collections.namedtuple("Run", "model task train_len label seed lr steps")
SOLVED = 0.99   # the curve table's "first step at accuracy >= SOLVED"


def read_jsonl(path):
    """(line number, record) for each non-empty line of a JSON-lines file."""
    with open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"plot_tasks: {path}:{i}: not JSON ({e})")


def require(r, keys, path, i):
    missing = [k for k in keys if r.get(k) is None]
    if missing:
        sys.exit(f"plot_tasks: {path}:{i}: missing {', '.join(missing)}")


def is_curve(path, r):
    return path.endswith(".curve.jsonl") or r.get("kind") == "curve"


def load(directory):
    """(result lines, curve lines) of the directory's *.jsonl files."""
    rows, curves = [], []
    for path in sorted(glob.glob(os.path.join(directory, "*.jsonl"))):
        for i, r in read_jsonl(path):
            if is_curve(path, r):
                require(r, CURVE_KEYS, path, i)
                curves.append(r)
            else:
                require(r, RESULT_KEYS, path, i)
                r["run"] = r.get("label") or f"{r['task']}-{r['model']}"
                rows.append(r)
    if not rows and not curves:
        sys.exit(f"plot_tasks: no result or curve lines in {directory}/*.jsonl")
    return rows, curves


def best_mode(rows, key=lambda r: (r["run"], r["len"])):
    """One row per key (default: run label and test length): the latest steps, the
    parallel mode where present."""
    out = {}
    for r in rows:
        k = key(r)
        old = out.get(k)
        if (old is None or r.get("steps", 0) > old.get("steps", 0) or
                (r.get("steps", 0) == old.get("steps", 0) and r["mode"] == "parallel")):
            out[k] = r
    return out


def dash(v, fmt="{}"):
    return "—" if v in (None, 0, "") else fmt.format(v)


def fmt_acc(a):
    return "—" if a is None else f"{100 * a:.1f}"


def fmt_lr(lr):
    """1e-3 for 0.001, 2.5e-4 for 0.00025; '—' for the binary's default (null)."""
    if lr is None:
        return "—"
    mantissa, exponent = f"{lr:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def opt(v):
    return "—" if v is None else str(v)


def none_last(key):
    """A sort key for tuples whose values may be None (sorted last)."""
    return tuple((v is None, v) for v in key)


def table(title, note, header, body):
    """Markdown lines of a table under '## title' and a note; none without a body."""
    if not body:
        return []
    return (["", f"## {title}", "", note, "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"] +
            ["| " + " | ".join(str(c) for c in cells) + " |" for cells in body])


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


# ---- the Mamba paper's layouts: Table 1 (selective copying), Table 11 (induction heads)

def run_of(r):
    return Run(*(r.get(k) for k in Run._fields))


def evaluations(rows, task):
    """{run: {test length: row}} of one task, the parallel mode preferred."""
    out = {}
    pick = best_mode([r for r in rows if r["task"] == task], key=lambda r: (run_of(r), r["len"]))
    for (run, n), r in pick.items():
        out.setdefault(run, {})[n] = r
    return out


def at_train_len(evals):
    """{run: its row at its training length} of the runs evaluated there."""
    return {run: by_len[run.train_len] for run, by_len in evals.items() if run.train_len in by_len}


def rank(r):
    """Best accuracy first; ties: more steps."""
    return (r["accuracy"], r.get("steps") or 0)


def best_per_seed(rows):
    best = {}
    for r in rows:
        seed = r.get("seed")
        if seed not in best or rank(r) > rank(best[seed]):
            best[seed] = r
    return [best[s] for s in sorted(best, key=lambda s: none_last((s,)))]


def selective_copy_cell(rows):
    """The best run's learning rate, and each seed's best accuracy at it."""
    if not rows:
        return "—"
    lr = max(rows, key=rank).get("lr")
    shown = best_per_seed([r for r in rows if r.get("lr") == lr])
    counts = [str(r.get("steps") or 0) for r in shown]  # in the order of the values, once if all equal
    steps = counts[0] if len(set(counts)) == 1 else "/".join(counts)
    return (" / ".join(f"{r['accuracy']:.3f}" for r in shown) +
            f" <small>(lr {fmt_lr(lr)}, {steps} steps)</small>")


def selective_copy_table(rows, task="selective-copy"):
    trained = list(at_train_len(evaluations(rows, task)).values())
    lens = sorted({r["train_len"] for r in trained})
    body = [[model] + [selective_copy_cell([r for r in trained if r["model"] == model and r["train_len"] == n])
                       for n in lens]
            for model in sorted({r["model"] for r in trained})]
    return table("Selective copying (Mamba paper Table 1 layout)",
                 "Best accuracy at the training length over learning rates and steps; where the best "
                 "learning rate has several seeds, each seed's best (seed order).",
                 ["model"] + [f"train len {n}" for n in lens], body)


def paper_lengths(evals):
    """The test lengths 2^6..2^20 present."""
    lens = {n for by_len in evals.values() for n in by_len}
    return sorted(n for n in lens if 64 <= n <= 2 ** 20 and n & (n - 1) == 0)


def induction_row(model, evals, trained, lens):
    run = max((run for run in trained if run.model == model), key=lambda run: rank(trained[run]))
    cells = [fmt_acc(evals[run][n]["accuracy"] if n in evals[run] else None) + ("*" if n == run.train_len else "")
             for n in lens]
    return [model] + cells + [f"{opt(run.label)}: lr {fmt_lr(run.lr)}, seed {opt(run.seed)}, {opt(run.steps)} steps"]


def induction_table(rows, task="induction"):
    evals = evaluations(rows, task)
    trained = at_train_len(evals)
    lens = paper_lengths(evals)
    if not lens:
        return []
    body = [induction_row(model, evals, trained, lens) for model in sorted({run.model for run in trained})]
    return table("Induction heads (Table 11 layout)",
                 "Accuracy % by test length (2^6..2^20) of each model's run with the best accuracy at its "
                 "training length (ties: more steps); * = training length.",
                 ["model"] + [str(n) for n in lens] + ["run"], body)


def config_of(r):
    """A model with the sizes that tell its runs apart: state N (SSMs), heads x head dim
    (attention), width."""
    name = r["model"]
    if r["model"].startswith("mha") and r.get("heads"):
        name += f" {r['heads']}x{r['dim'] // r['heads']}"
    elif r.get("d_state"):
        name += f" N {r['d_state']}"
    return name + f" d {r['dim']}" if r.get("dim") else name


def setting_of(r):
    """The task's size: training length, n (tokens, pairs or longest string), vocabulary."""
    return f"len {r['train_len']}, n {dash(r.get('n'))}, vocab {dash(r.get('vocab'))}"


def first_solved(curves, run):
    """The first logged step at training accuracy >= SOLVED of a run's curve, or None."""
    for (task, model, label, seed), lines in curve_groups(curves).items():
        if label == run.label and seed == run.seed and task == run.task:
            return first_step_at(lines, SOLVED)
    return None


def model_groups(rows):
    """(task, size, model configuration, its runs at the training length, the task's
    evaluations {run: {length: row}}, {run: row at the training length}), sorted."""
    for task in sorted({r["task"] for r in rows}):
        evals = evaluations(rows, task)
        trained = at_train_len(evals)
        groups = {}
        for run, r in trained.items():
            groups.setdefault((setting_of(r), config_of(r)), []).append(run)
        for (setting, config), runs in sorted(groups.items()):
            yield task, setting, config, runs, evals, trained


def best_lr_row(task, setting, config, runs, evals, trained, curves):
    best = max(runs, key=lambda run: rank(trained[run]))
    lrs = sorted({run.lr for run in runs if run.lr is not None})
    seeds = sorted({run.seed for run in runs if run.lr == best.lr and run.seed is not None})
    longer = [n for n in sorted(evals[best]) if best.train_len < n <= 8 * best.train_len]
    return [task, setting, config, ", ".join(fmt_lr(lr) for lr in lrs) or "—", fmt_lr(best.lr),
            ", ".join(str(x) for x in seeds) or "—", opt(best.steps), fmt_acc(trained[best]["accuracy"]),
            opt(first_solved(curves, best)),
            ", ".join(f"{n}: {fmt_acc(evals[best][n]['accuracy'])}" for n in longer) or "—"]


def best_lr_table(rows, curves):
    """Per task, task size and model configuration: the learning rates tried and the best
    run at the training length, with its first step at >= SOLVED and its accuracy at test
    lengths up to 8x the training length."""
    body = [best_lr_row(*group, curves) for group in model_groups(rows)]
    return table("Best learning rate per model",
                 "Each (task, size, model configuration): the learning rates tried, the best run at the "
                 "training length (best accuracy, ties: more steps) with its seeds at that rate, the first "
                 f"logged step at training accuracy >= {SOLVED} (from its curve; — if never or not "
                 "logged), and its accuracy % at longer test lengths (up to 8x).",
                 ["task", "size", "model", "lrs tried", "best lr", "seeds at it", "steps", "accuracy %",
                  f"first step ≥ {SOLVED}", "longer lengths"], body)


def headline_runs(rows):
    """The labels of the runs the plots show: per (task, size, model configuration), every
    seed at the best learning rate (best accuracy at the training length, ties: more steps)."""
    keep = set()
    for _, _, _, runs, _, trained in model_groups(rows):
        lr = max(runs, key=lambda run: rank(trained[run])).lr
        keep |= {run.label or f"{run.task}-{run.model}" for run in runs if run.lr == lr}
    return keep


def paper_tables(rows, curves=()):
    lines = selective_copy_table(rows) + induction_table(rows) + best_lr_table(rows, list(curves))
    return "\n".join(lines) + "\n" if lines else ""


# ---- training curves (mambabench-train --curve)

def curve_key(c):
    return (c["task"], c["model"], c.get("label"), c.get("seed"))


def curve_groups(curves):
    """{(task, model, label, seed): its lines by increasing step}; a step logged
    twice (a run resumed from an earlier checkpoint) keeps its last line."""
    by_step = {}
    for c in curves:
        by_step.setdefault(curve_key(c), {})[c["step"]] = c
    return {key: [by_step[key][s] for s in sorted(by_step[key])] for key in sorted(by_step, key=none_last)}


def first_step_at(lines, accuracy):
    return next((c["step"] for c in lines if c["accuracy"] >= accuracy), None)


def median_of(lines, key):
    values = [c[key] for c in lines if c.get(key) is not None]
    return statistics.median(values) if values else None


def curve_row(key, lines):
    last = lines[-1]
    devices = ", ".join(dict.fromkeys(c["device"] for c in lines if c.get("device")))
    return list(key[:2]) + [opt(key[2]), opt(key[3]), last["step"], f"{last['accuracy']:.3f}",
                            opt(first_step_at(lines, SOLVED)), dash(last.get("wall_s"), "{:.1f}"),
                            dash(median_of(lines, "tokens_per_s"), "{:.0f}"), devices or "—"]


def curve_table(curves):
    body = [curve_row(key, lines) for key, lines in curve_groups(curves).items()]
    return "\n".join(table("Training curves",
                           "From mambabench-train --curve: training accuracy on the marked positions; "
                           "wall time of the last line, tokens/s the median over the lines.",
                           ["task", "model", "label", "seed", "last step", "last accuracy",
                            f"first step at accuracy ≥ {SOLVED}", "wall (s)", "tok/s (median)", "device"],
                           body)) + "\n"


# ---- training throughput (tasks/bench_train_gpu.sh writes DIR/bench/*.jsonl)

# The reference: a PyTorch Mamba (d 64, 2 layers, batch 64) with its whole step
# captured in a CUDA graph, on the same H100 (../shared/docs/tasks.md, "Calibration").
PYTORCH_MAMBA_TOKENS_PER_S = {256: 1.54e6, 1024: 1.66e6}
THROUGHPUT_KEYS = ("model", "len", "graphs", "concurrent", "tokens_per_s")


def load_throughput(directory):
    lines = []
    for path in sorted(glob.glob(os.path.join(directory, "bench", "*.jsonl"))):
        for i, r in read_jsonl(path):
            if r.get("kind") == "train_throughput":
                require(r, THROUGHPUT_KEYS, path, i)
                lines.append(r)
    return lines


def throughput_row(r):
    ref = PYTORCH_MAMBA_TOKENS_PER_S.get(r["len"]) if r["model"] == "mamba" else None
    ratio = f"{r['tokens_per_s'] / ref:.2f}x" if ref and r["concurrent"] == 1 else "—"
    how = ("CUDA graph" if r["graphs"] else "eager") + (f", {r['concurrent']} processes in all"
                                                       if r["concurrent"] > 1 else "")
    return [r["model"], r.get("dim", "—"), r["len"], r.get("batch", "—"), how,
            f"{r['tokens_per_s'] / 1e6:.2f}M", ratio, r.get("device", "—"), r.get("commit", "—")]


def throughput_table(lines):
    body = [throughput_row(r) for r in lines]
    return "\n".join(table("Training throughput",
                           "tasks/bench_train_gpu.sh: tokens/s of whole training steps (forward, backward, "
                           "clipping, AdamW), the steady state of each run; Mamba against the PyTorch "
                           "CUDA-graph reference of the issue (1.54M tokens/s at 256, 1.66M at 1024; target 2x).",
                           ["model", "width", "len", "batch", "step run as", "tokens/s", "vs PyTorch", "device", "commit"],
                           body)) + "\n"


# ---- plots

@functools.lru_cache(maxsize=None)
def pyplot():
    """matplotlib.pyplot, or None (said once) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_tasks: matplotlib not found, no plots (pip install matplotlib)")
        return None
    return plt


def panels(plt, n):
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4.2), squeeze=False)
    return fig, axes[0]


def finish(plt, fig, axes, path):
    for ax in axes:
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2))  # below the axes and their label
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(curves, path, shown=None):
    """Training accuracy against step, one panel per task: the runs in `shown` (labels), or all."""
    plt = pyplot()
    groups = {k: v for k, v in curve_groups(curves).items() if shown is None or k[2] in shown}
    tasks = sorted({key[0] for key in groups})
    if plt is None or not tasks:
        return False
    fig, axes = panels(plt, len(tasks))
    for ax, task in zip(axes, tasks):
        for (t, model, label, seed), lines in groups.items():
            if t == task:
                ax.plot([c["step"] for c in lines], [c["accuracy"] for c in lines], marker=".",
                        label=f"{model} {opt(label)} seed {opt(seed)}")
        ax.set_xlabel("training step")
        ax.set_ylabel("training accuracy on the marked positions")
        ax.set_title(task)
    finish(plt, fig, axes, path)
    return True


def plot(rows, path):
    """Accuracy against test length, one panel per task whose runs were tested at several
    lengths: the headline runs (every seed at each model's best learning rate)."""
    plt = pyplot()
    if plt is None:
        return False
    shown = headline_runs(rows)
    rows = [r for r in rows if r["run"] in shown]
    by = best_mode(rows)
    tasks = [t for t in sorted({r["task"] for r in rows})
             if any(len({r["len"] for r in rows if r["run"] == name}) > 1
                    for name in {r["run"] for r in rows if r["task"] == t})]
    if not tasks:
        return False
    fig, axes = panels(plt, len(tasks))
    for ax, task in zip(axes, tasks):
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
        ax.set_xlabel("test sequence length")
        ax.set_ylabel("accuracy on the marked positions")
        devices = sorted({r.get("device") or "cpu" for r in rows if r["task"] == task})
        where = ", ".join("CPU" if d == "cpu" else d for d in devices)
        ax.set_title(f"{task} ({where}, dotted: training length)")
    finish(plt, fig, axes, path)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = args.out or args.directory
    rows, curves = load(args.directory)
    os.makedirs(out, exist_ok=True)
    text = "# Synthetic tasks: results (generated by plots/plot_tasks.py)\n\n"
    if rows:
        text += tables(rows) + paper_tables(rows, curves)
    if curves:
        text += curve_table(curves)
    throughput = load_throughput(args.directory)
    if throughput:
        text += throughput_table(throughput)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    if rows and plot(rows, os.path.join(out, "tasks_accuracy_vs_length.png")):
        print(f"wrote {os.path.join(out, 'tasks_accuracy_vs_length.png')}")
    shown = headline_runs(rows) if rows else None
    if curves and plot_curves(curves, os.path.join(out, "tasks_accuracy_vs_steps.png"), shown):
        print(f"wrote {os.path.join(out, 'tasks_accuracy_vs_steps.png')}")


if __name__ == "__main__":
    main()
