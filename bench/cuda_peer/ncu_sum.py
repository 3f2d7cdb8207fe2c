#!/usr/bin/env python3
"""Kernel time by kernel from an ncu CSV (`ncu --metrics gpu__time_duration.sum --csv --log-file F`,
as bench/cuda_peer/ab_run.sh's ncu stage writes): calls, total and mean microseconds per kernel
(demangled short name), largest first. --last N keeps only the last N launches.

Usage: ncu_sum.py CSV [--last N]
"""
import csv, re, sys, collections
path = sys.argv[1]
last = int(sys.argv[sys.argv.index('--last') + 1]) if '--last' in sys.argv else 0
rows = []
with open(path) as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get('Metric Name') != 'gpu__time_duration.sum':
        continue
    v = float(r['Metric Value'].replace(',', ''))
    unit = r.get('Metric Unit', 'nsecond')
    us = v / 1000 if unit.startswith('n') else v * 1000 if unit.startswith('m') else v
    name = re.sub(r'^void ', '', r['Kernel Name'])
    name = re.sub(r"\(anonymous namespace\)::|<unnamed>::", "", name)
    name = re.sub(r'[<(].*', '', name).split('::')[-1][:50]
    rows.append((name, us))
if last:
    rows = rows[-last:]
agg = collections.OrderedDict()
for n, us in rows:
    c, t = agg.get(n, (0, 0.0))
    agg[n] = (c + 1, t + us)
total = sum(t for c, t in agg.values())
print(f"{len(rows)} kernels, {total:.1f} us")
for n, (c, t) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print(f"{n:50s} {c:6d} {t:10.1f} us {t / c:8.2f} us/call")
