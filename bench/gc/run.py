#!/usr/bin/env python3
"""binary-trees GC comparison harness (stdlib only).

Builds every program, runs each at one depth, checks its stdout against the
expected Benchmarks Game text (computed here from the algorithm), measures
wall time, user+sys CPU and peak RSS of the benchmark process with wait4()
(through the tiny launcher measure.c, see there why), parses
"max-pause-ms:" (and "gc-cycles:") from its stderr, and prints a markdown
table of medians.

    python3 run.py                      # depth 21, 1 rep, everything
    python3 run.py --quick              # depth 16
    python3 run.py --depth 18 --reps 3 --only go-seq,boehm,goheap
    python3 run.py --quick --csv results.csv

Progress goes to stderr, the table to stdout. See README.md.
"""

import argparse
import csv
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))  # /work/main
BUILD = os.path.join(HERE, "build")
PEERS = os.path.join(HERE, "rust-peers")
PEERS_TARGET = os.path.join(PEERS, "target")


def main_target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")


def nproc():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# --------------------------------------------------------------------------
# Expected output, from the algorithm (bench-workloads.md section 1.1)
# --------------------------------------------------------------------------

MIN_DEPTH = 4


def tree_nodes(depth):
    """check(tree(depth)) = number of nodes of a perfect tree of that depth."""
    return (1 << (depth + 1)) - 1


def expected_output(n):
    max_depth = max(MIN_DEPTH + 2, n)
    stretch = max_depth + 1
    lines = ["stretch tree of depth %d\t check: %d" % (stretch, tree_nodes(stretch))]
    for d in range(MIN_DEPTH, max_depth + 1, 2):
        iterations = 1 << (max_depth - d + MIN_DEPTH)
        lines.append("%d\t trees of depth %d\t check: %d" % (iterations, d, iterations * tree_nodes(d)))
    lines.append("long lived tree of depth %d\t check: %d" % (max_depth, tree_nodes(max_depth)))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Programs and how to build them
# --------------------------------------------------------------------------

class Program:
    def __init__(self, name, group, kind, argv, note):
        self.name = name
        self.group = group  # build group
        self.kind = kind  # "seq" (compared with go-seq) or "par" (with go-par)
        self.argv = argv  # function depth -> argv
        self.note = note


def _bin(path):
    return lambda depth: [path, str(depth)]


def _goheap(threads):
    def argv(depth):
        exe = os.path.join(main_target_dir(), "release", "goheap")
        a = [exe, "binary-trees", str(depth)]
        if threads is not None:
            a += ["--threads", str(threads)]
        return a
    return argv


PROGRAMS = [
    Program("go-seq", "go", "seq", _bin(os.path.join(BUILD, "go-seq")), "Go, sequential, default GC"),
    Program("go-par", "go", "par", _bin(os.path.join(BUILD, "go-par")), "Go, goroutine per depth (Go #2 style)"),
    Program("boehm", "boehm", "seq", _bin(os.path.join(BUILD, "boehm")), "C + Boehm GC_MALLOC, default settings"),
    Program("gc-arena", "rust-peers", "seq", _bin(os.path.join(PEERS_TARGET, "release", "gc-arena")), "gc-arena 0.5, collect_debt between trees"),
    Program("rust-gc", "rust-peers", "seq", _bin(os.path.join(PEERS_TARGET, "release", "rust-gc")), "gc 0.5 (rust-gc), automatic collection"),
    Program("dumpster", "rust-peers", "seq", _bin(os.path.join(PEERS_TARGET, "release", "dumpster")), "dumpster 1.x unsync::Gc"),
    Program("box-mimalloc", "rust-peers", "seq", _bin(os.path.join(PEERS_TARGET, "release", "box-mimalloc")), "Box + mimalloc, explicit free"),
    Program("goheap", "goheap", "seq", _goheap(None), "goheap binary-trees, 1 thread"),
    Program("goheap-par", "goheap", "par", _goheap(nproc()), "goheap binary-trees --threads %d" % nproc()),
]
BY_NAME = {p.name: p for p in PROGRAMS}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_build(cmd, cwd, env=None):
    log("  $ (cd %s && %s)" % (os.path.relpath(cwd, REPO) if cwd.startswith(REPO) else cwd, " ".join(cmd)))
    try:
        r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except FileNotFoundError as e:
        return False, str(e)
    return r.returncode == 0, r.stdout


def build_group(group):
    """Returns (ok, message)."""
    os.makedirs(BUILD, exist_ok=True)
    if group == "go":
        if not shutil.which("go"):
            return False, "go not found"
        gdir = os.path.join(HERE, "go")
        for name, pkg in (("go-seq", "./seq"), ("go-par", "./par")):
            ok, out = run_build(["go", "build", "-o", os.path.join(BUILD, name), pkg], gdir)
            if not ok:
                return False, out
        return True, ""
    if group == "boehm":
        cc = os.environ.get("CC", "cc")
        ok, out = run_build([cc, "-O2", "-o", os.path.join(BUILD, "boehm"),
                             os.path.join(HERE, "boehm", "binary_trees.c"), "-lgc"], HERE)
        if not ok and not os.path.exists("/usr/include/gc.h"):
            out += "\n(/usr/include/gc.h missing: apt-get install -y libgc-dev)"
        return ok, out
    if group == "rust-peers":
        return run_build(["cargo", "build", "--release", "--target-dir", PEERS_TARGET], PEERS)
    if group == "goheap":
        return run_build(["cargo", "build", "--release", "-p", "goheap-cli"], REPO)
    raise ValueError(group)


# --------------------------------------------------------------------------
# Running and measuring
# --------------------------------------------------------------------------

PAUSE_RE = re.compile(r"^max-pause-ms:\s*(\S+)\s*$", re.M)
CYCLES_RE = re.compile(r"^gc-cycles:\s*(\d+)\s*$", re.M)


MEASURE = os.path.join(BUILD, "measure")


def build_measure():
    """The tiny fork/exec/wait4 launcher (measure.c); see its header comment."""
    os.makedirs(BUILD, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    return run_build([cc, "-O2", "-o", MEASURE, os.path.join(HERE, "measure.c")], HERE)


def run_once(prog, depth, expected, timeout, use_measure):
    argv = prog.argv(depth)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r", suffix=".rusage") as rus:
        cmd = [MEASURE, rus.name] + argv if use_measure else argv
        t0 = time.perf_counter()
        # own session, so a timeout can kill the launcher and the benchmark together
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        timer = None
        timed_out = []
        if timeout:
            def kill():
                timed_out.append(True)
                try:
                    os.killpg(p.pid, 9)
                except ProcessLookupError:
                    pass
            timer = threading.Timer(timeout, kill)
            timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        if timer:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        user, sys_, maxrss = ru.ru_utime, ru.ru_stime, ru.ru_maxrss
        if use_measure:
            # The launcher waited for the benchmark with wait4() and wrote its rusage.
            fields = rus.read().split()
            if len(fields) == 5:
                wall, user, sys_ = float(fields[0]), float(fields[1]), float(fields[2])
                maxrss = int(fields[3])
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")

    pause = None  # None: not reported; "n/a": reported as not measurable
    m = PAUSE_RE.findall(stderr)
    if m:
        try:
            pause = float(m[-1])
        except ValueError:
            pause = m[-1]
    c = CYCLES_RE.findall(stderr)
    return {
        "program": prog.name,
        "depth": depth,
        "argv": " ".join(argv),
        "wall_s": wall,
        "user_s": user,
        "sys_s": sys_,
        "cpu_s": user + sys_,
        "peak_rss_mib": maxrss / 1024.0,  # ru_maxrss is in KiB on Linux
        "max_pause_ms": pause,
        "gc_cycles": int(c[-1]) if c else None,
        "exit_code": p.returncode,
        "timed_out": bool(timed_out),
        "output_ok": stdout == expected and p.returncode == 0,
        "stdout": stdout,
        "stderr": stderr,
    }


def describe_mismatch(r, expected):
    if r["timed_out"]:
        return "timed out"
    if r["exit_code"] != 0:
        tail = r["stderr"].strip().splitlines()[-3:]
        return "exit code %d: %s" % (r["exit_code"], " | ".join(tail))
    got = r["stdout"].splitlines()
    want = expected.splitlines()
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return "line %d: got %r, want %r" % (i + 1, g, w)
    if len(got) != len(want):
        return "got %d lines, want %d" % (len(got), len(want))
    return "whitespace/trailing-newline difference"


def fmt_pause(p):
    if p is None:
        return "–"
    if isinstance(p, str):
        return p
    return "%.2f" % p


def progress_line(rep, reps, r):
    status = "ok" if r["output_ok"] else "WRONG OUTPUT"
    cyc = "" if r["gc_cycles"] is None else ", %d GC cycles" % r["gc_cycles"]
    return "[rep %d/%d] %-12s %7.2f s wall %7.2f s cpu %8.1f MiB  pause %s ms%s  %s" % (
        rep, reps, r["program"], r["wall_s"], r["cpu_s"], r["peak_rss_mib"],
        fmt_pause(r["max_pause_ms"]), cyc, status)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def median_or_none(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(results, names):
    rows = {}
    for name in names:
        rs = [r for r in results if r["program"] == name]
        good = [r for r in rs if r["output_ok"]]
        if not rs:
            continue
        if not good:
            rows[name] = {"failed": True, "n": len(rs)}
            continue
        pauses = [r["max_pause_ms"] for r in good]
        num = [p for p in pauses if isinstance(p, float)]
        if num:
            pause = statistics.median(num)
        elif any(isinstance(p, str) for p in pauses):
            pause = next(p for p in pauses if isinstance(p, str))
        else:
            pause = None
        rows[name] = {
            "failed": False,
            "n": len(good),
            "bad": len(rs) - len(good),
            "wall": statistics.median(r["wall_s"] for r in good),
            "cpu": statistics.median(r["cpu_s"] for r in good),
            "rss": statistics.median(r["peak_rss_mib"] for r in good),
            "pause": pause,
            "cycles": median_or_none([r["gc_cycles"] for r in good]),
        }
    return rows


def table(rows, names, depth, reps):
    lines = []
    lines.append("binary-trees depth %d, median of %d rep(s), %d CPU(s), %s" % (
        depth, reps, nproc(), platform.platform()))
    envs = ["%s=%s" % (k, os.environ[k]) for k in ("GOGC", "GOMAXPROCS", "GOMEMLIMIT", "GC_MARKERS", "GODEBUG") if k in os.environ]
    if envs:
        lines.append("environment: " + " ".join(envs))
    lines.append("")
    lines.append("| program | wall s | cpu s | peak RSS MiB | max pause ms | wall/Go | RSS/Go |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        if name not in rows:
            continue
        r = rows[name]
        if r["failed"]:
            lines.append("| %s | WRONG OUTPUT / FAILED (%d run(s)) | | | | | |" % (name, r["n"]))
            continue
        ref_name = "go-par" if BY_NAME[name].kind == "par" else "go-seq"
        ref = rows.get(ref_name)
        if ref and not ref["failed"]:
            wr = "%.2f" % (r["wall"] / ref["wall"])
            rr = "%.2f" % (r["rss"] / ref["rss"])
        else:
            wr = rr = "–"
        label = name if r["bad"] == 0 else "%s (%d bad run(s) excluded)" % (name, r["bad"])
        lines.append("| %s | %.2f | %.2f | %.1f | %s | %s | %s |" % (
            label, r["wall"], r["cpu"], r["rss"], fmt_pause(r["pause"]), wr, rr))
    lines.append("")
    lines.append("Ratios: go-par and goheap-par against go-par, every other row against go-seq. "
                 "wall, cpu (user+sys) and peak RSS (ru_maxrss) come from wait4() on the benchmark process "
                 "(through build/measure, see measure.c). "
                 "max pause: as reported by the program on stderr (n/a = not measurable, see README).")
    return "\n".join(lines)


def write_csv(path, results):
    fields = ["rep", "program", "depth", "argv", "wall_s", "cpu_s", "user_s", "sys_s",
              "peak_rss_mib", "max_pause_ms", "gc_cycles", "exit_code", "timed_out", "output_ok"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in results:
            row = dict(r)
            if row["max_pause_ms"] is None:
                row["max_pause_ms"] = ""
            if row["gc_cycles"] is None:
                row["gc_cycles"] = ""
            w.writerow(row)


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="binary-trees GC comparison (see README.md)")
    ap.add_argument("--depth", type=int, default=21, help="benchmark depth n (default 21)")
    ap.add_argument("--quick", action="store_true", help="depth 16 (overrides --depth)")
    ap.add_argument("--reps", type=int, default=1, help="repetitions, interleaved (default 1)")
    ap.add_argument("--only", default="", help="comma-separated program names: " + ",".join(BY_NAME))
    ap.add_argument("--csv", metavar="FILE", help="write every run's raw results to FILE")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--timeout", type=float, default=0, help="kill a run after this many seconds (0 = never)")
    ap.add_argument("--nice", type=int, default=0, help="os.nice() increment for builds and runs")
    args = ap.parse_args()

    depth = 16 if args.quick else args.depth
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    if args.only:
        names = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            ap.error("unknown program(s) %s; known: %s" % (",".join(unknown), ",".join(BY_NAME)))
        names = [p.name for p in PROGRAMS if p.name in names]  # canonical order
    else:
        names = [p.name for p in PROGRAMS]
    if args.nice:
        os.nice(args.nice)

    failed_hard = False
    skipped = {}
    groups = []
    for n in names:
        if BY_NAME[n].group not in groups:
            groups.append(BY_NAME[n].group)

    if not args.no_build:
        log("== build")
        ok, out = build_measure()
        if not ok:
            log("  could not build measure.c (%s)" % out.strip())
        for g in groups:
            ok, out = build_group(g)
            if not ok:
                members = [n for n in names if BY_NAME[n].group == g]
                if g == "goheap":
                    log("  goheap-cli did not build (the crate may not exist yet); skipping %s" % ", ".join(members))
                    tail = [l for l in out.strip().splitlines() if l.strip()][-3:]
                    for l in tail:
                        log("    | " + l)
                else:
                    log("  BUILD FAILED for %s; skipping %s\n%s" % (g, ", ".join(members), out))
                    failed_hard = True
                for n in members:
                    skipped[n] = "build failed"
    for n in names:
        if n in skipped:
            continue
        exe = BY_NAME[n].argv(depth)[0]
        if not os.path.exists(exe):
            skipped[n] = "binary missing: %s" % exe
            log("  %s: binary %s missing; skipping" % (n, exe))
            if BY_NAME[n].group != "goheap":
                failed_hard = True
    to_run = [n for n in names if n not in skipped]

    use_measure = os.access(MEASURE, os.X_OK)
    if not use_measure:
        log("  WARNING: %s missing: measuring with os.wait4 on the direct child; its peak RSS then "
            "includes this Python process's RSS as a floor (see measure.c)" % MEASURE)

    expected = expected_output(depth)
    log("== run: depth %d, %d rep(s), programs: %s" % (depth, args.reps, ", ".join(to_run) or "(none)"))
    results = []
    for rep in range(1, args.reps + 1):
        for n in to_run:
            r = run_once(BY_NAME[n], depth, expected, args.timeout, use_measure)
            r["rep"] = rep
            results.append(r)
            log(progress_line(rep, args.reps, r))
            if not r["output_ok"]:
                log("    mismatch: " + describe_mismatch(r, expected))

    if args.csv:
        write_csv(args.csv, results)
        log("raw results written to %s" % args.csv)

    rows = summarize(results, to_run)
    print(table(rows, to_run, depth, args.reps))
    if not use_measure:
        print("\nWARNING: measured without build/measure: peak RSS has a floor of this Python's RSS.")
    if skipped:
        print("")
        for n, why in skipped.items():
            print("skipped %s: %s" % (n, why))

    if failed_hard or any(not r["output_ok"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
