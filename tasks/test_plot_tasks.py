#!/usr/bin/env python3
"""test_plot_tasks.py SRC_DIR -- plots/plot_tasks.py on hand-made result lines
(tasks/testdata/plot_sample.jsonl, plot_sample_paper.jsonl) and training-curve
lines (plot_sample.curve.jsonl): the tables carry the right cells (the parallel
mode preferred, the recurrent one beyond it, '—' where a length was not run; the
Mamba paper's Table 1 and Table 11 layouts; the best learning rate per model; the curves' first step at accuracy
>= 0.99, a resumed curve's repeated step keeping its last line), the plots are
written when matplotlib is present, and bad input exits non-zero."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

src = sys.argv[1]
script = os.path.join(src, "plots", "plot_tasks.py")
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def plot_tasks(directory):
    return subprocess.run([sys.executable, script, directory], capture_output=True, text=True, timeout=120)


def refused(directory, name, text, where, what):
    """A directory holding only `name` with `text` is refused with a message naming `where`."""
    os.mkdir(directory)
    with open(os.path.join(directory, name), "w") as f:
        f.write(text)
    r = plot_tasks(directory)
    check(r.returncode != 0 and where in r.stderr and what in r.stderr, f"{where}: {r.stderr.strip()}")


def curve_line(step=None, accuracy=None):
    c = {"kind": "curve", "model": "mamba", "task": "induction", "train_len": 256, "label": "x", "seed": 0}
    c.update({k: v for k, v in (("step", step), ("accuracy", accuracy)) if v is not None})
    return json.dumps(c) + "\n"


with tempfile.TemporaryDirectory() as tmp:
    for name in ("plot_sample.jsonl", "plot_sample_paper.jsonl", "plot_sample.curve.jsonl"):
        shutil.copy(os.path.join(src, "tasks", "testdata", name), tmp)
    os.mkdir(os.path.join(tmp, "bench"))  # training throughput lines, as bench_train_gpu.sh writes them
    with open(os.path.join(tmp, "bench", "throughput.jsonl"), "w") as f:
        for model, tok, conc in (("mamba", 3.08e6, 1), ("lti", 2.0e6, 1), ("mamba", 6.0e6, 4)):
            f.write(json.dumps({"kind": "train_throughput", "model": model, "len": 256, "batch": 64, "dim": 64,
                                "graphs": 1, "concurrent": conc, "tokens_per_s": tok, "device": "GPU",
                                "commit": "c0ffee"}) + "\n")
    r = plot_tasks(tmp)
    check(r.returncode == 0, f"runs on the sample (exit {r.returncode}: {r.stderr.strip()[-200:]})")
    md = open(os.path.join(tmp, "summary.md")).read() if os.path.exists(os.path.join(tmp, "summary.md")) else ""
    check("| mamba | 64 | 256 | 64 | CUDA graph | 3.08M | 2.00x | GPU | c0ffee |" in md,
          "throughput: Mamba at 256 against the PyTorch reference (2.00x)")
    check("| lti | 64 | 256 | 64 | CUDA graph | 2.00M | — |" in md, "throughput: no reference for LTI")
    check("| mamba | 64 | 256 | 64 | CUDA graph, 4 processes in all | 6.00M | — |" in md,
          "throughput: concurrent processes are not compared with one PyTorch process")
    check("| ind-mamba (mamba) | 100.0* | — | 50.0 |" in md, "induction row of mamba: 100* at 64, none at 256, 50 at 4096")
    check("| ind-mha (mha-abs) | 98.0* | 25.0 | — |" in md, "induction row of mha-abs")
    check("| ind-mamba | 100 | 64 | 1e-05 | 1.0000 |" in md, "the recurrent-vs-parallel agreement row")
    check("| induction | ind-mamba (mamba) | 64 |" in md, "the training-length table")
    check("| mamba | 0.987 / 0.900 <small>(lr 3e-3, 1000 steps)</small> | 0.990 <small>(lr 1e-3, 2000 steps)</small> |"
          in md, "Table 1: mamba's best lr at 64 with both its seeds (parallel preferred), the resumed run at 256")
    check("| lti | 0.300 <small>(lr 1e-3, 1000 steps)</small> | — |" in md, "Table 1: lti, not trained at 256")
    check("| mamba | 100.0* | 90.0 | 70.0 | ind-mamba-b: lr 2e-3, seed 1, 200 steps |" in md,
          "Table 11: mamba's run best at 64 (tie: more steps), its row across the lengths")
    check("| mha-abs | 98.0* | 25.0 | — | ind-mha: lr —, seed —, 100 steps |" in md,
          "Table 11: mha-abs, '—' where not evaluated")
    check("| induction | len 64, n —, vocab 16 | mamba d 32 | 2e-3, 1e-2 | 2e-3 | 1 | 200 | 100.0 | — | 256: 90.0 |" in md,
          "best-lr table: the rates tried, the best one's seed, its accuracy at 4x the training length")
    check("| selective-copy | len 64, n —, vocab 16 | mamba d 32 | 1e-3, 3e-3 | 3e-3 | 0, 1 | 1000 | 98.7 | — | — |" in md,
          "best-lr table: both seeds at the best rate")
    check("| induction | mamba | lr1e-3-s0 | 0 | 600 | 1.000 | 400 | 12.3 | 3050000 | cuda |" in md,
          "curve of a resumed run: the repeated step 300 keeps its last line, first at 0.99: 400")
    check("| induction | mha-rope | lr1e-3-s0 | 0 | 300 | 0.700 | — | 3.0 | 5100000 | cuda |" in md,
          "curve never at 0.99: '—'")
    check("| selective-copy | lti | sc-lti | 0 | 1000 | 0.300 | — | 40.0 | 20000 | cpu |" in md,
          "a \"kind\": \"curve\" line among result lines is a curve")
    try:
        import matplotlib  # noqa: F401
        check(os.path.exists(os.path.join(tmp, "tasks_accuracy_vs_length.png")), "the plot is written")
        check(os.path.exists(os.path.join(tmp, "tasks_accuracy_vs_steps.png")), "the steps plot is written")
    except ImportError:
        print("SKIP  the plots (no matplotlib)")
    curves_only = os.path.join(tmp, "curves")
    os.mkdir(curves_only)
    shutil.copy(os.path.join(src, "tasks", "testdata", "plot_sample.curve.jsonl"), curves_only)
    r = plot_tasks(curves_only)
    md = open(os.path.join(curves_only, "summary.md")).read() if r.returncode == 0 else ""
    check("## Training curves" in md and "## Accuracy at" not in md, "curve lines alone give the curve table")
    refused(os.path.join(tmp, "nostep"), "a.curve.jsonl", curve_line(100, 0.5) + curve_line(accuracy=0.6),
            "a.curve.jsonl:2", "step")
    refused(os.path.join(tmp, "noacc"), "b.curve.jsonl", curve_line(100, 0.5) + "\n" + curve_line(step=200),
            "b.curve.jsonl:3", "accuracy")
    with open(os.path.join(tmp, "bad.jsonl"), "w") as f:
        f.write('{"model": "mamba"}\n')
    r = plot_tasks(tmp)
    check(r.returncode != 0 and "missing" in r.stderr, "a line without its fields is refused")
    empty = os.path.join(tmp, "empty")
    os.mkdir(empty)
    r = plot_tasks(empty)
    check(r.returncode != 0, "an empty directory is refused")

print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
