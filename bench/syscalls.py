#!/usr/bin/env python3
"""Counts the waiting-related system calls of goheap's benchmark workloads (issue 9, item 2).

Runs every `goheap-bench` workload once, at quick sizes, as a `child` process under
`strace -f -k -e trace=futex,sched_yield,nanosleep,clock_nanosleep`, for each allocator and
thread count asked for, and prints a Markdown table of the calls (all threads summed).
Optionally also the garbage collector's binary-trees (`goheap binary-trees D --threads T`
with GOHEAP_PROCS=T), and `examples/idle` (frees its memory, then idles: what the
background scavenger does meanwhile).

The workloads themselves make some of these calls (a thread join or xmalloc's condition
variables are futex calls; larson and xmalloc-test sleep once for their run time), so each
call is attributed, from the stack `strace -k` prints, to the first function outside libc:
the table gives, beside each total, the calls goheap made itself (its allocator core, or for
the GC rows its collector), and lists a reference allocator (glibc by default) beside it.
goheap should make no sched_yield at all, and no sleep while idle.

    bench/syscalls.py [--bin DIR] [--threads 2,16] [--alloc goheap,glibc]
                      [--only w1,w2] [--trees DEPTH] [--idle SECS] [--sites] [--csv FILE]
    bench/syscalls.py --gc-counts 19,21 [--threads 2,16] [--lock-bin DIR] [--callgrind DEPTH]

--gc-counts (issue 9, item 4) runs only the garbage collector's binary-trees, at each depth
and thread count (`--threads T` with GOHEAP_PROCS=T), and prints per cycle and per 1000
allocations: futex, sched_yield and sleep calls (`strace -f -c`, no stack unwinding),
context switches (`perf stat`), allocator lock acquisitions (a `--features lock-count`
build of the CLI in --lock-bin, counted in the process) and, with --callgrind, the locked
instructions per 1000 allocations (`valgrind --tool=callgrind --collect-bus=yes`, at that
depth, with the functions that execute most of them).

--bin is the directory holding the release binaries `goheap-bench` (and `goheap` for
--trees, `examples/idle` for --idle); by default they are built with `cargo build
--release` into $CARGO_TARGET_DIR (or target/). The quick suite takes about a minute per
allocator and thread count here (strace -k unwinds a stack per traced call, which slows
the futex-heavy workloads).
"""

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time

CALLS = ["futex", "sched_yield", "nanosleep", "clock_nanosleep"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(bindir):
    if bindir:
        return bindir
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "goheap-bench", "-p", "goheap-cli"],
        cwd=ROOT,
        check=True,
    )
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "goheap", "--example", "idle"],
        cwd=ROOT,
        check=True,
    )
    return os.path.join(target, "release")


ENTRY = re.compile(r"^\d+ +(\w+)\(")
DONE = re.compile(r"^\d+ +(?:<\.\.\. (\w+) resumed>.*|(\w+)\(.*\) += .*)$")
SYMBOL = re.compile(r"\((.+)\+0x[0-9a-f]+\) \[")


def who(frames):
    """Attributes a call to the first frame outside libc: goheap's allocator core, its
    garbage collector, or anything else (the workload, std, the runtime)."""
    for f in frames:
        if "libc.so" in f or "ld-linux" in f or "unexpected_backtracing_error" in f:
            continue
        m = SYMBOL.search(f)
        sym = m.group(1) if m else f
        sym = sym.lstrip("<")
        if sym.startswith("goheap::gc::"):
            return "gc", sym
        if sym.startswith("goheap::"):
            return "core", sym
        return "other", sym
    return "other", "?"


def strace_counts(cmd, env=None):
    """Runs `cmd` under strace -f -k. Returns ({syscall: [calls, from goheap core, from
    goheap gc]}, {(syscall, goheap function): calls}, wall seconds, exit status).

    Every call is counted when it starts; it is attributed (from the stack strace -k prints
    when it returns) to the first function outside libc. A call still blocked when the
    process exits (an idle thread's futex wait, a sleep) has no stack: it is attributed like
    the last call of the same thread that had one, if any, else to "other"."""
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        t = time.monotonic()
        p = subprocess.run(
            ["strace", "-f", "-k", "-o", out.name, "-e", "trace=" + ",".join(CALLS)] + cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        wall = time.monotonic() - t
        counts = {c: [0, 0, 0] for c in CALLS}
        sites = {}
        last_kind = {}  # thread -> kind of its last attributed call
        open_calls = {}  # thread -> syscall started and not yet returned
        done, frames = None, []

        def credit(name, kind, sym):
            if kind != "other":
                counts[name][1 if kind == "core" else 2] += 1
                sites[(name, sym)] = sites.get((name, sym), 0) + 1

        def close():
            if done:
                kind, sym = who(frames)
                last_kind[done[0]] = (kind, sym)
                credit(done[1], kind, sym)

        for line in out.read().splitlines():
            if line.startswith(" > "):
                frames.append(line)
                continue
            close()
            done, frames = None, []
            pid = line.split(" ", 1)[0]
            m = ENTRY.match(line)
            if m and m.group(1) in counts:
                counts[m.group(1)][0] += 1
                if "<unfinished ...>" in line:
                    open_calls[pid] = m.group(1)
            m = DONE.match(line)
            if m and "<unfinished ...>) = ?" in line:
                m = None  # "<... futex resumed> <unfinished ...>) = ?": killed at exit
            if m:
                name = m.group(1) or m.group(2)
                open_calls.pop(pid, None)
                if name in counts:
                    done = (pid, name)
        close()
        for pid, name in open_calls.items():
            kind, sym = last_kind.get(pid, ("other", "?"))
            credit(name, kind, f"[blocked at exit; thread last in {sym}]")
        if p.returncode != 0:
            sys.stderr.write(p.stderr.decode(errors="replace")[-2000:])
        return counts, sites, wall, p.returncode


def strace_summary(cmd, env):
    """`strace -f -c` over `cmd`: ({syscall: calls}, stderr of the program)."""
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        p = subprocess.run(
            ["strace", "-f", "-c", "-o", out.name, "-e", "trace=" + ",".join(CALLS)] + cmd,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
        calls = {c: 0 for c in CALLS}
        for line in out.read().splitlines():
            f = line.split()
            # "% time seconds usecs/call calls [errors] syscall"
            if len(f) >= 5 and f[-1] in calls and f[3].isdigit():
                calls[f[-1]] = int(f[3])
        return calls, p.stderr, p.returncode


def perf_switches(cmd, env):
    """Context switches and CPU migrations of `cmd`, all threads (`perf stat`)."""
    p = subprocess.run(["perf", "stat", "-x", ",", "-e", "context-switches,cpu-migrations"] + cmd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    got = {}
    for line in p.stderr.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[2] in ("context-switches", "cpu-migrations") and f[0].isdigit():
            got[f[2]] = int(f[0])
    return got.get("context-switches", -1), got.get("cpu-migrations", -1)


def stat_line(text, key):
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return None


def callgrind_locked(cmd, env):
    """Locked instructions (callgrind's Ge) of `cmd`: (total, [(Ge, function)] top 8)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(["valgrind", "--tool=callgrind", "--collect-bus=yes",
                        "--callgrind-out-file=" + out] + cmd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
        r = subprocess.run(["callgrind_annotate", "--inclusive=no", "--show=Ge", "--sort=Ge", out],
                           capture_output=True, text=True, check=True).stdout
    total, top = 0, []
    for line in r.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(PROGRAM TOTALS|\S.*)$", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        if m.group(2) == "PROGRAM TOTALS":
            total = n
        elif n and len(top) < 8 and ":" in m.group(2):
            top.append((n, m.group(2).split(":", 1)[1].split(" [")[0].strip()))
    return total, top


def gc_counts(a, threads):
    """Issue 9, item 4: the GC's binary-trees, per cycle and per 1000 allocations."""
    bindir = build(a.bin)
    exe = os.path.join(bindir, "goheap")
    lock_exe = os.path.join(a.lock_bin, "goheap") if a.lock_bin else None
    print("| depth | threads | cycles | allocations | futex | /cycle | sched_yield | nanosleep + "
          "clock_nanosleep | context switches | /cycle | lock acquisitions / 1000 allocs "
          "(page heap, GC span structs, central, GC pools and other) | contended / 1000 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for depth in [int(d) for d in a.gc_counts.split(",")]:
        for t in threads:
            env = dict(os.environ, GOHEAP_PROCS=str(t), GOHEAP_DEBUG="gctrace=1")
            cmd = [exe, "binary-trees", str(depth), "--threads", str(t), "--quiet"]
            calls, err, rc = strace_summary(cmd, env)
            cycles = sum(1 for l in err.splitlines() if l.startswith("gc "))
            allocs = int(stat_line(err, "mallocs") or 0)
            cs, mig = perf_switches(cmd, env)
            locks = "–"
            if lock_exe:
                lcmd = [lock_exe] + cmd[1:]
                p = subprocess.run(lcmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   env=env, text=True)
                m = re.match(r"(\d+) \(page heap (\d+), gc span structs (\d+), central (\d+), "
                             r"contended (\d+)\)", stat_line(p.stderr, "lock-acquisitions") or "")
                al = int(stat_line(p.stderr, "mallocs") or 0)
                if m and al:
                    k = al / 1000
                    total, heap, structs, central, contended = (int(x) / k for x in m.groups())
                    locks = "%.2f (%.2f, %.2f, %.2f, %.2f) | %.3f" % (
                        total, heap, structs, central, total - heap - structs - central, contended)
            if "|" not in locks:
                locks += " | –"
            sleeps = calls["nanosleep"] + calls["clock_nanosleep"]
            per = lambda n: "%.1f" % (n / cycles) if cycles else "–"
            print(f"| {depth} | {t} | {cycles} | {allocs:,} | {calls['futex']:,} | {per(calls['futex'])} | "
                  f"{calls['sched_yield']} | {sleeps} | {cs:,} | {per(cs)} | {locks} |"
                  + ("" if rc == 0 else f" exit {rc}"))
            sys.stdout.flush()
    if a.callgrind:
        print()
        print(f"Locked instructions (callgrind --collect-bus=yes), binary-trees {a.callgrind}:")
        print()
        for t in threads:
            env = dict(os.environ, GOHEAP_PROCS=str(t))
            cmd = [exe, "binary-trees", str(a.callgrind), "--threads", str(t), "--quiet"]
            p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                               text=True)
            allocs = int(stat_line(p.stderr, "mallocs") or 0)
            total, top = callgrind_locked(cmd, env)
            k = allocs / 1000 if allocs else float("nan")
            sites = "; ".join(f"{fn} {n / k:.2f}" for n, fn in top)
            print(f"- {t} threads: {total:,} locked instructions for {allocs:,} allocations, "
                  f"{total / k:.2f} per 1000; by function (per 1000 allocations): {sites}")
            sys.stdout.flush()
    return 0


def workloads(bench):
    out = subprocess.run([bench, "list"], capture_output=True, text=True, check=True).stdout
    names, section = [], None
    for line in out.splitlines():
        if line.endswith(":"):
            section = line[:-1]
        elif section == "workloads":
            name = line.split()[0]
            names.append((name, "multi-threaded" in line))
    return names


def cell(c, gc=False):
    total, core, gcn = c
    own = gcn if gc else core
    return f"{total:,}" if own == total else f"{total:,} ({own:,})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="directory with release goheap-bench (and goheap)")
    ap.add_argument("--threads", default="2,16", help="thread counts (multi-threaded workloads)")
    ap.add_argument("--alloc", default="goheap,glibc", help="allocators")
    ap.add_argument("--only", help="workloads (exact names)")
    ap.add_argument("--trees", type=int, help="also run the GC's binary-trees at this depth")
    ap.add_argument("--idle", type=int, metavar="SECS",
                    help="also run examples/idle (free memory, then idle SECS seconds)")
    ap.add_argument("--sites", action="store_true", help="list goheap's calling functions")
    ap.add_argument("--csv", help="also write the rows to this CSV file")
    ap.add_argument("--gc-counts", metavar="DEPTHS",
                    help="only the GC's binary-trees at these depths: per-cycle counts (item 4)")
    ap.add_argument("--lock-bin", help="--gc-counts: directory of a `--features lock-count` goheap")
    ap.add_argument("--callgrind", type=int, metavar="DEPTH",
                    help="--gc-counts: also count locked instructions under callgrind at DEPTH")
    a = ap.parse_args()
    if a.gc_counts:
        return gc_counts(a, [int(t) for t in a.threads.split(",")])

    bindir = build(a.bin)
    bench = os.path.join(bindir, "goheap-bench")
    threads = [int(t) for t in a.threads.split(",")]
    allocs = a.alloc.split(",")
    wl = workloads(bench)
    if a.only:
        want = a.only.split(",")
        wl = [w for w in wl if w[0] in want]

    rows = []
    for name, multi in wl:
        for t in threads if multi else [1]:
            for alloc in allocs:
                cmd = [bench, "child", name, alloc, "--quick", "--threads", str(max(t, 1))]
                counts, sites, wall, rc = strace_counts(cmd)
                rows.append((name, t, alloc, counts, sites, wall, rc))
                print(f"{name} t={t} {alloc}: {counts} {wall:.1f}s", file=sys.stderr)
    if a.idle:
        cmd = [os.path.join(bindir, "examples", "idle"), str(a.idle)]
        counts, sites, wall, rc = strace_counts(cmd)
        rows.append((f"examples/idle, {a.idle} s idle", 4, "goheap ", counts, sites, wall, rc))
        print(f"idle: {counts} {wall:.1f}s", file=sys.stderr)
    if a.trees:
        for t in threads:
            env = dict(os.environ, GOHEAP_PROCS=str(t))
            cmd = [os.path.join(bindir, "goheap"), "binary-trees", str(a.trees), "--threads",
                   str(t), "--quiet"]
            counts, sites, wall, rc = strace_counts(cmd, env)
            rows.append((f"gc binary-trees {a.trees}", t, "goheap gc", counts, sites, wall, rc))
            print(f"gc binary-trees t={t}: {counts} {wall:.1f}s", file=sys.stderr)

    print("Calls of all threads; in parentheses, those made by goheap itself (allocator core;")
    print("for the `goheap gc` rows, the garbage collector) when not all of them.")
    print()
    print("| workload | threads | allocator | " + " | ".join(CALLS) + " | wall s (under strace) |")
    print("|---|---:|---|" + "---:|" * len(CALLS) + "---:|")
    totals = {}
    for name, t, alloc, counts, sites, wall, rc in rows:
        fail = "" if rc == 0 else f" (exit {rc})"
        gc = alloc == "goheap gc"
        cells = " | ".join(cell(counts[c], gc) for c in CALLS)
        print(f"| {name}{fail} | {t} | {alloc.strip()} | {cells} | {wall:.1f} |")
        if alloc in allocs:
            tot = totals.setdefault((alloc, t), {c: [0, 0, 0] for c in CALLS})
            for c in CALLS:
                tot[c] = [x + y for x, y in zip(tot[c], counts[c])]
    for (alloc, t), tot in sorted(totals.items()):
        cells = " | ".join(f"**{cell(tot[c])}**" for c in CALLS)
        label = "single-threaded workloads" if t == 1 else "multi-threaded workloads"
        print(f"| **sum: {label}** | {t} | {alloc} | {cells} | |")

    if a.sites:
        print()
        print("goheap's calling functions (first frame outside libc), calls per run:")
        print()
        for name, t, alloc, counts, sites, wall, rc in rows:
            if sites:
                top = sorted(sites.items(), key=lambda kv: -kv[1])
                listed = "; ".join(f"{c} {f} {n:,}" for (c, f), n in top[:6])
                print(f"- {name}, {t} threads, {alloc}: {listed}")

    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.writer(f)
            head = ["workload", "threads", "allocator"]
            for c in CALLS:
                head += [c, c + "_goheap_core", c + "_goheap_gc"]
            w.writerow(head + ["wall_s", "exit"])
            for name, t, alloc, counts, sites, wall, rc in rows:
                vals = [v for c in CALLS for v in counts[c]]
                w.writerow([name, t, alloc] + vals + [f"{wall:.2f}", rc])
    return 1 if any(r[6] != 0 for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
