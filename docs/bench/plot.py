#!/usr/bin/env python3
"""Draws the allocator comparison as an SVG bar chart (standard library only).

    python3 docs/bench/plot.py docs/bench/goheap-bench-2026-11-27.csv docs/bench/allocators.svg

One group of bars per workload: each allocator's median time divided by mimalloc's median,
on a log scale (1.0 = mimalloc; lower is faster). Workload groups follow the CSV's order.
"""
import csv
import math
import statistics
import sys
from collections import OrderedDict, defaultdict

ALLOCS = ["goheap", "mimalloc", "jemalloc", "glibc"]
COLORS = {"goheap": "#00add8", "mimalloc": "#7f7f7f", "jemalloc": "#e69f00", "glibc": "#cc79a7"}


def medians(path):
    vals = defaultdict(list)
    order = OrderedDict()
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["status"] != "ok":
                continue
            order[r["workload"]] = True
            vals[(r["workload"], r["allocator"])].append(float(r["value"]))
    return list(order), {k: statistics.median(v) for k, v in vals.items()}


def main(src, dst):
    workloads, med = medians(src)
    lo, hi = 0.25, 16.0  # log-scale range of ratios shown
    width, height, left, top, bottom = 1100, 420, 60, 40, 120
    plot_h = height - top - bottom
    group_w = (width - left - 20) / len(workloads)
    bar_w = group_w / (len(ALLOCS) + 1)

    def y(ratio):
        r = min(max(ratio, lo), hi)
        return top + plot_h * (1 - (math.log(r) - math.log(lo)) / (math.log(hi) - math.log(lo)))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="20" font-size="14">Time relative to mimalloc '
        "(log scale, lower is faster)</text>",
    ]
    for t in [0.25, 0.5, 1, 2, 4, 8, 16]:
        yy = y(t)
        stroke = "#000" if t == 1 else "#ddd"
        out.append(f'<line x1="{left}" x2="{width - 20}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{stroke}"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{t:g}</text>')
    for i, w in enumerate(workloads):
        base = med.get((w, "mimalloc"))
        if not base:
            continue
        x0 = left + i * group_w + bar_w / 2
        for j, a in enumerate(ALLOCS):
            v = med.get((w, a))
            if v is None:
                continue
            ratio = v / base
            x = x0 + j * bar_w
            y1, y0 = y(ratio), y(1.0)
            top_y, h = (y1, y0 - y1) if ratio >= 1 else (y0, y1 - y0)
            out.append(
                f'<rect x="{x:.1f}" y="{top_y:.1f}" width="{bar_w * 0.9:.1f}" '
                f'height="{max(h, 0.5):.1f}" fill="{COLORS[a]}"><title>{w} {a}: '
                f"{ratio:.2f}x</title></rect>"
            )
        cx = x0 + len(ALLOCS) * bar_w / 2
        out.append(
            f'<text x="{cx:.1f}" y="{height - bottom + 12}" text-anchor="end" '
            f'transform="rotate(-50 {cx:.1f} {height - bottom + 12})">{w}</text>'
        )
    for j, a in enumerate(ALLOCS):
        out.append(f'<rect x="{width - 330 + j * 80}" y="8" width="12" height="12" fill="{COLORS[a]}"/>')
        out.append(f'<text x="{width - 314 + j * 80}" y="18">{a}</text>')
    out.append("</svg>")
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
