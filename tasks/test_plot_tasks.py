#!/usr/bin/env python3
"""test_plot_tasks.py SRC_DIR -- plots/plot_tasks.py on hand-made result lines
(tasks/testdata/plot_sample.jsonl): the tables carry the right cells (the
parallel mode preferred, the recurrent one beyond it, '—' where a length was
not run), the plot is written when matplotlib is present, and bad input exits
non-zero."""
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


with tempfile.TemporaryDirectory() as tmp:
    shutil.copy(os.path.join(src, "tasks", "testdata", "plot_sample.jsonl"), tmp)
    r = subprocess.run([sys.executable, script, tmp], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, f"runs on the sample (exit {r.returncode}: {r.stderr.strip()[-200:]})")
    md = open(os.path.join(tmp, "summary.md")).read() if os.path.exists(os.path.join(tmp, "summary.md")) else ""
    check("| ind-mamba (mamba) | 100.0* | — | 50.0 |" in md, "induction row of mamba: 100* at 64, none at 256, 50 at 4096")
    check("| ind-mha (mha-abs) | 98.0* | 25.0 | — |" in md, "induction row of mha-abs")
    check("| ind-mamba | 100 | 64 | 1e-05 | 1.0000 |" in md, "the recurrent-vs-parallel agreement row")
    check("| induction | ind-mamba (mamba) | 64 |" in md, "the training-length table")
    try:
        import matplotlib  # noqa: F401
        check(os.path.exists(os.path.join(tmp, "tasks_accuracy_vs_length.png")), "the plot is written")
    except ImportError:
        print("SKIP  the plot (no matplotlib)")
    with open(os.path.join(tmp, "bad.jsonl"), "w") as f:
        f.write('{"model": "mamba"}\n')
    r = subprocess.run([sys.executable, script, tmp], capture_output=True, text=True, timeout=120)
    check(r.returncode != 0 and "missing" in r.stderr, "a line without its fields is refused")
    empty = os.path.join(tmp, "empty")
    os.mkdir(empty)
    r = subprocess.run([sys.executable, script, empty], capture_output=True, text=True, timeout=120)
    check(r.returncode != 0, "an empty directory is refused")

print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
