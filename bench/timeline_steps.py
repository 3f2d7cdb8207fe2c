#!/usr/bin/env python3
"""Decode-step accounting from a bench/cuda_timeline.cpp CSV: a step runs from the end of one
argmax kernel (greedy decoding ends every step with one) to the end of the next. Per step: wall
time, the share of it in which some kernel ran (the union of kernel intervals: "GPU busy"), and
kernel time by name (as the kernels ran, PDL overlap included, so the sums may exceed the busy
time). Reports the median step of the last N (default 16).

Usage: timeline_steps.py TIMELINE.csv [--steps N] [--top K]
"""
import argparse
import collections
import csv
import re
import statistics
import subprocess


def short_names(names):
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True,
                             check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        out = names
    result = {}
    for raw, dem in zip(names, out):
        dem = dem.replace("(anonymous namespace)::", "")
        dem = re.sub(r"^void ", "", dem)
        result[raw] = re.sub(r"[<(].*", "", dem).split("::")[-1][:48] or raw[:48]
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    with open(args.csv) as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "kernel"]
    rows.sort(key=lambda r: int(r["start_ns"]))
    names = short_names(sorted({r["name"] for r in rows}))
    ks = [(int(r["start_ns"]), int(r["end_ns"]), names[r["name"]]) for r in rows]
    ends = [e for s, e, n in ks if "argmax" in n.lower()]
    if len(ends) < 3:
        raise SystemExit(f"{len(ends)} argmax kernels: not enough decode steps in {args.csv}")
    bounds = list(zip(ends[:-1], ends[1:]))[-args.steps:]
    steps = []
    for lo, hi in bounds:
        inside = [(max(s, lo), min(e, hi), n) for s, e, n in ks if e > lo and s < hi]
        busy, cur_s, cur_e = 0, None, None
        for s, e, _ in sorted(inside):
            if cur_e is None or s > cur_e:
                if cur_e is not None:
                    busy += cur_e - cur_s
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        if cur_e is not None:
            busy += cur_e - cur_s
        per = collections.defaultdict(lambda: [0, 0])
        for s, e, n in inside:
            per[n][0] += 1
            per[n][1] += e - s
        steps.append((hi - lo, busy, len(inside), per))
    steps.sort(key=lambda x: x[0])
    wall, busy, count, per = steps[len(steps) // 2]
    print(f"{len(steps)} steps; median step {wall / 1e3:.1f} us wall, GPU busy {busy / 1e3:.1f} us "
          f"({100 * busy / wall:.1f} %), {count} kernels; steps from "
          f"{steps[0][0] / 1e3:.1f} to {steps[-1][0] / 1e3:.1f} us")
    print(f"busy share over all {len(steps)} steps: "
          f"{100 * statistics.fmean(b / w for w, b, _, _ in steps):.1f} % (mean)")
    for n, (c, t) in sorted(per.items(), key=lambda x: -x[1][1])[:args.top]:
        print(f"  {n:48s} {c:5d} {t / 1e3:9.1f} us {t / c / 1e3:8.2f} us/call")


if __name__ == "__main__":
    main()
