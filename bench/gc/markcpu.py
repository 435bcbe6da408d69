#!/usr/bin/env python3
"""Mark CPU per marked byte, and GC CPU as Go defines GCCPUFraction, for goheap builds side
by side (stdlib only; needs `perf`).

Each program runs under `perf record` (the software CPU clock with a fixed period, so a
sample is 1/freq s of CPU; works in VMs without hardware counters) with GOHEAP_DEBUG=gctrace=1; repetitions are interleaved (rep, then program).

    mark CPU   samples of the mark worker threads (goheap-mark-*) plus samples of any other
               thread in marking code (assists on mutators, barrier shades, the root scan):
               symbols matching MARK_SYMBOLS. Divided by the sampling frequency: seconds.
    marked     the sum over cycles of gctrace's marked heap (the third "->" figure, MB).
    GC CPU     mark CPU plus the collector thread (goheap-gc: sweep termination, mark
               termination, pacing). Go's GCCPUFraction counts assists, mark workers and
               stop-the-world time, not the background sweeper, so goheap-sweep and lazy
               sweeps in mutators are left out (reported as `sweep s`).
    GCCPUFraction  GC CPU / (wall x procs); procs = GOHEAP_PROCS or the CPU count.

With --go BIN (Go's binary-trees, e.g. bench/gc/build/go-seq), Go runs in the same loop
with GODEBUG=gctrace=1, and its row gives Go's own figures: the cpu terms of every gctrace
line but the idle mark (stop-the-world x GOMAXPROCS, assists, background marking: what
Go's GCCPUFraction counts) summed, over wall x GOMAXPROCS; `Go's own %` is the runtime's
running GCCPUFraction from the last line.

    python3 markcpu.py --depth 21 --reps 2 \\
        old=../../target-old/release/goheap new=target/release/goheap --go build/go-seq
    python3 markcpu.py --latency --reps 2 old=LAT_OLD new=LAT_NEW   # goheap-latency binaries
                                                                    # (1.5M slots, 1M ops)

The marked bytes of the old stop-the-world collector and the concurrent one differ per
cycle only by what the mutators allocate meanwhile; the per-byte figure is what compares.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

MARK_SYMBOLS = re.compile(
    r"gc::mark::|gc::workqueue::|gc::ptr::trace_|gc::ptr::scan_|as goheap::gc::trace::Trace>::trace"
)
GCTRACE = re.compile(
    r"^gc \d+ @[\d.]+s (\d+)%: ([\d.]+)\+([\d.]+)\+([\d.]+) ms clock, "
    r"([\d.]+)\+([\d.]+)/([\d.]+)/([\d.]+)\+([\d.]+) ms cpu, (\d+)->(\d+)->(\d+) MB.* (\d+) P"
)


def parse_gctrace(text):
    """Per-line tuples of the figures a gctrace line holds."""
    out = []
    for line in text.splitlines():
        m = GCTRACE.match(line)
        if m:
            g = m.groups()
            out.append({
                "pct": int(g[0]),
                # Go's GCCPUFraction: both stop-the-world terms, assists and background
                # marking; not the idle-priority mark (g[7]), which uses CPU nobody wanted.
                "gc_cpu_ms": sum(float(g[k]) for k in (4, 5, 6, 8)),
                "marked_mb": int(g[11]),
                "procs": int(g[12]),
            })
    return out


def perf_samples(data):
    """(comm, symbol) of every sample."""
    # perf script prints the symbol only beside the address: ask for both.
    r = subprocess.run(["perf", "script", "-i", data, "-F", "comm,ip,sym"],
                       capture_output=True, text=True, check=True)
    out = []
    for line in r.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 2:
            continue
        out.append((parts[0], parts[2] if len(parts) > 2 else ""))
    return out


def run_goheap(exe, argv, freq, env):
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        t0 = time.monotonic()
        # A fixed period of CPU time per sample (not -F, whose period perf adapts), so
        # samples x period is CPU time.
        r = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-c", str(10**9 // freq),
                            "-o", data, "--", exe] + argv,
                           capture_output=True, text=True, env=env)
        wall = time.monotonic() - t0
        if r.returncode != 0:
            sys.exit("%s failed:\n%s" % (exe, r.stderr[-2000:]))
        samples = perf_samples(data)
    lines = parse_gctrace(r.stderr)
    mark = sum(1 for c, s in samples if c.startswith("goheap-mark") or MARK_SYMBOLS.search(s))
    collector = sum(1 for c, s in samples if c == "goheap-gc" and not MARK_SYMBOLS.search(s))
    sweep = sum(1 for c, s in samples if c != "goheap-gc" and not c.startswith("goheap-mark")
                and re.search(r"gc::sweep::|sweep_span|sweep_all", s))
    procs = int(env.get("GOHEAP_PROCS") or os.cpu_count())
    marked = sum(l["marked_mb"] for l in lines) * (1 << 20)
    mark_s = mark / freq
    gc_s = (mark + collector) / freq
    return {
        "wall": wall, "cycles": len(lines), "cpu_s": len(samples) / freq, "mark_s": mark_s,
        "gc_s": gc_s, "sweep_s": sweep / freq, "marked_gb": marked / 1e9,
        "ns_per_kb": mark_s * 1e9 / (marked / 1024) if marked else float("nan"),
        "fraction": gc_s / (wall * procs), "go_pct": None,
    }


def run_go(exe, argv, env):
    env = dict(env, GODEBUG="gctrace=1")
    t0 = time.monotonic()
    r = subprocess.run([exe] + argv, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit("%s failed:\n%s" % (exe, r.stderr[-2000:]))
    lines = parse_gctrace(r.stderr)
    procs = lines[-1]["procs"] if lines else os.cpu_count()
    gc_s = sum(l["gc_cpu_ms"] for l in lines) / 1e3
    marked = sum(l["marked_mb"] for l in lines) * (1 << 20)
    return {
        "wall": wall, "cycles": len(lines), "cpu_s": float("nan"), "mark_s": float("nan"),
        "gc_s": gc_s, "sweep_s": float("nan"), "marked_gb": marked / 1e9, "ns_per_kb": float("nan"),
        "fraction": gc_s / (wall * procs), "go_pct": lines[-1]["pct"] if lines else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("progs", nargs="+", help="NAME=PATH of a goheap binary (the CLI, or goheap-latency)")
    ap.add_argument("--depth", type=int, default=21, help="binary-trees depth (default 21)")
    ap.add_argument("--threads", type=int, default=1, help="binary-trees --threads")
    ap.add_argument("--latency", action="store_true",
                    help="the binaries are goheap-latency: run the pointer-rich variant")
    ap.add_argument("--slots", type=int, default=1_500_000, help="latency: index entries")
    ap.add_argument("--ops", type=int, default=1_000_000, help="latency: operations")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--freq", type=int, default=999, help="perf sampling frequency, Hz")
    ap.add_argument("--go", help="Go's binary-trees (same depth), run with GODEBUG=gctrace=1")
    args = ap.parse_args()

    progs = []
    for p in args.progs:
        name, _, path = p.partition("=")
        if not path or not os.access(path, os.X_OK):
            ap.error("%s: want NAME=PATH to an executable" % p)
        progs.append((name, path))
    if args.latency:
        argv = ["--variant", "ptr", "--slots", str(args.slots), "--ops", str(args.ops)]
        what = "latency benchmark, pointer-rich, %d slots, %d ops" % (args.slots, args.ops)
    else:
        argv = ["binary-trees", str(args.depth), "--quiet"]
        if args.threads > 1:
            argv += ["--threads", str(args.threads)]
        what = "binary-trees %d, --threads %d" % (args.depth, args.threads)
    env = dict(os.environ, GOHEAP_DEBUG="gctrace=1")
    rows = {n: [] for n, _ in progs}
    if args.go:
        rows["go"] = []
    for rep in range(args.reps):
        for name, path in progs:
            print("rep %d: %s" % (rep + 1, name), file=sys.stderr)
            rows[name].append(run_goheap(path, argv, args.freq, env))
        if args.go:
            print("rep %d: go" % (rep + 1), file=sys.stderr)
            rows["go"].append(run_go(args.go, [str(args.depth)], os.environ))

    def med(name, key):
        v = [r[key] for r in rows[name] if r[key] is not None]
        return statistics.median(v) if v else float("nan")

    first = progs[0][0]
    print("%s, %d repetitions (medians), perf at %d Hz\n" % (what, args.reps, args.freq))
    print("| program | wall s | cycles | marked GB | mark CPU s | mark ns / KB | / %s | GC CPU s | sweep s | GCCPUFraction | Go's own %% |"
          % first)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in rows:
        nkb = med(name, "ns_per_kb")
        ratio = nkb / med(first, "ns_per_kb") if name != "go" else float("nan")
        pct = med(name, "go_pct")
        print("| %s | %.2f | %d | %.1f | %.2f | %.0f | %.2f | %.2f | %.2f | %.3f | %s |" % (
            name, med(name, "wall"), med(name, "cycles"), med(name, "marked_gb"), med(name, "mark_s"),
            nkb, ratio, med(name, "gc_s"), med(name, "sweep_s"), med(name, "fraction"),
            "" if pct != pct else "%d%%" % pct))


if __name__ == "__main__":
    main()
