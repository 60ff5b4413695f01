#!/usr/bin/env python3
"""add_clock_context.py CLOCKS.csv FILE.json ... -- add the clocks sampled during
a GPU sweep (nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,clocks.max.sm,...)
to the context of each Google Benchmark JSON file: the median, minimum and
maximum SM clock, the median memory clock, the nominal maximum, the sample
count, and `gpu_throttled` = yes when the median SM clock sampled while work
ran was below 90% of the maximum."""
import json
import statistics
import sys


def read_samples(path):
    sm, mem, smax = [], [], []
    try:
        with open(path) as f:
            for line in f:
                parts = [p.strip() for p in line.split(",")]
                if len(parts) < 4:
                    continue
                try:
                    sm.append(float(parts[1]))
                    mem.append(float(parts[2]))
                    smax.append(float(parts[3]))
                except ValueError:
                    continue
    except OSError:
        pass
    return sm, mem, smax


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    sm, mem, smax = read_samples(argv[1])
    busy = [s for s in sm if s > 0.5 * max(sm)] if sm else []
    ctx = {"gpu_clock_samples": str(len(sm))}
    if sm:
        ctx.update({
            "gpu_sm_clock_sampled_median_mhz": f"{statistics.median(busy):.0f}",
            "gpu_sm_clock_sampled_min_mhz": f"{min(sm):.0f}",
            "gpu_sm_clock_sampled_max_mhz": f"{max(sm):.0f}",
            "gpu_mem_clock_sampled_median_mhz": f"{statistics.median(mem):.0f}",
            "gpu_sm_clock_nominal_max_mhz": f"{max(smax):.0f}",
            "gpu_throttled": "yes" if statistics.median(busy) < 0.9 * max(smax) else "no",
        })
    for path in argv[2:]:
        with open(path) as f:
            doc = json.load(f)
        doc.setdefault("context", {}).update(ctx)
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
