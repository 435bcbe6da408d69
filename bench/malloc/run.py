#!/usr/bin/env python3
"""Run mimalloc-bench-shaped workloads under LD_PRELOAD and compare allocators.

The workloads are small C programs in src/ (larson, xmalloc-test, cache-scratch,
mstress, rptest, alloc-test, glibc-simple, glibc-thread; and mixed-large, issue 13's shape), written from the
descriptions of mimalloc-bench's programs. Each is compiled with `cc -O2
-pthread` and run once per allocator with LD_PRELOAD set (glibc: no preload),
interleaved as repetition, then workload, then allocator, so that slow drifts of
the machine hit every allocator alike.

For every run the script checks the exit status, that the program says
"check: ok" (each program verifies what it wrote), and that malloc really came
from the preloaded library. Time is the elapsed wall time, except for the
throughput workloads (larson, xmalloc-test, rptest, glibc-thread), where it is
the relative time the program derives from its own throughput, as
mimalloc-bench's bench.sh does. Peak RSS is ru_maxrss from wait4's rusage.
Both are taken by a small C launcher (src/launch.c) that forks the program and
waits for it: forked straight from Python, a program's peak RSS would start at
Python's 16 MiB.

Progress goes to stderr, a Markdown report to stdout; --csv FILE writes one row
per run. The exit status is 1 if any run failed, 2 on a usage or setup error.
"""

import argparse
import csv
import datetime
import glob
import hashlib
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SRC = os.path.join(HERE, "src")


class Workload:
    def __init__(self, name, program, full, quick, throughput=False, unit="s", rss=True, ops=None):
        self.ops = ops  # (stdout, argv) -> operations the run made, or None (--syscalls)
        self.name = name
        self.program = program
        self.full = full  # argv template; "{P}" is replaced by --procs
        self.quick = quick
        self.throughput = throughput  # time = the program's "relative-time:" line
        self.unit = unit
        self.rss = rss  # counted in the RSS geometric mean

    def argv(self, quick, procs):
        return [a.replace("{P}", str(procs)) for a in (self.quick if quick else self.full)]


def ops_from(pattern, scale=1.0, argv_factor=None):
    """An `ops` extractor for --syscalls: the first group of `pattern` in the program's
    stdout, times `scale`, times argv[i] for i in `argv_factor` (a tuple of indexes)."""
    def extract(stdout, argv):
        m = re.search(pattern, stdout)
        if not m:
            return None
        n = float(m.group(1)) * scale
        for i in argv_factor or ():
            n *= float(argv[i])
        return n
    return extract


# bench.sh's command lines with procs = P. "x10"/"x100" mark parameters raised so
# that the run lasts about a second with mimalloc on a 2-core machine (the
# originals finish in milliseconds); the quick set shortens the rest. README.md
# lists them.
WORKLOADS = [
    Workload("larsonN", "larson",
             "5 8 1000 5000 100 4141 {P}".split(),
             "1 8 1000 5000 100 4141 {P}".split(),
             throughput=True, unit="s/1e9 ops",
             ops=ops_from(r"Throughput = ([0-9.]+) operations per second", argv_factor=(0,))),
    Workload("xmalloc-testN", "xmalloc-test",
             "-w {P} -t 5 -s 64".split(),
             "-w {P} -t 1 -s 64".split(),
             throughput=True, unit="s/1e8 frees", rss=False,
             ops=ops_from(r"frees: ([0-9]+) in", 2)),
    Workload("cache-scratch1", "cache-scratch",
             "1 1000 1 2000000 {P}".split(),
             "1 1000 1 500000 {P}".split()),
    Workload("cache-scratchN", "cache-scratch",
             "{P} 1000 1 2000000 {P}".split(),
             "{P} 1000 1 500000 {P}".split()),
    Workload("mstressN", "mstress",
             "{P} 50 250".split(),  # x10 iterations
             "{P} 50 50".split(),
             ops=ops_from(r"elapsed: [0-9.]+ s, ([0-9]+) allocations", 2)),
    Workload("rptestN", "rptest",
             "{P} 0 1 2 50000 1000 100 8 16000".split(),  # x100 loops
             "{P} 0 1 2 10000 1000 100 8 16000".split(),
             throughput=True, unit="s/1e8 ops",
             ops=ops_from(r"memory ops: ([0-9]+) in")),
    Workload("alloc-test1", "alloc-test",
             "1 100000000".split(),
             "1 25000000".split(),
             ops=ops_from(r"for ([0-9]+) allocations per thread", 2, argv_factor=(0,))),
    Workload("alloc-testN", "alloc-test",
             "{P} 100000000".split(),
             "{P} 25000000".split(),
             ops=ops_from(r"for ([0-9]+) allocations per thread", 2, argv_factor=(0,))),
    Workload("glibc-simple", "glibc-simple",
             "2000000".split(),
             "500000".split()),
    Workload("mixed-largeN", "mixed-large",
             "{P} 300000".split(),
             "{P} 100000".split(),
             ops=ops_from(r"elapsed: [0-9.]+ s, ([0-9]+) operations", 2)),
    Workload("glibc-thread", "glibc-thread",
             "{P} 2".split(),
             "{P} 0.5".split(),
             throughput=True, unit="s/1e8 iters",
             ops=ops_from(r"iterations: ([0-9]+) in", 2)),
]

PROGRAMS = sorted({w.program for w in WORKLOADS}) + ["launch"]


class Allocator:
    def __init__(self, key, name, lib):
        self.key = key
        self.name = name
        self.lib = lib  # None: the system malloc, no preload
        self.version = ""
        self.env = {}  # added to the program's environment (ghp: GOHEAP_PROFILE)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def die(msg):
    log("error: " + msg)
    sys.exit(2)


def find_lib(patterns):
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                return path
    return None


def package_version(path):
    """'package version' owning a file, via dpkg; '' if unknown."""
    try:
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True,
                               text=True, timeout=10)
        if owner.returncode != 0:
            owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, timeout=10)
        if owner.returncode != 0:
            return ""
        pkg = owner.stdout.split(":")[0].strip()
        ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                             text=True, timeout=10)
        return f"{pkg} {ver.stdout.strip()}" if ver.returncode == 0 else pkg
    except (OSError, subprocess.SubprocessError):
        return ""


def git_describe():
    """The repository's HEAD commit, and whether the tree has uncommitted changes."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "not a git checkout"
        return f"tree at {head.stdout.strip()}" + (" with uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "git unavailable"


def glibc_version():
    try:
        return "glibc " + os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    except (ValueError, OSError, AttributeError, IndexError):
        return "glibc"


def lib_dirs():
    return ["/usr/lib/*-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/lib/*-linux-gnu"]


def resolve_allocators(args):
    wanted = [k.strip() for k in args.alloc.split(",") if k.strip()]
    known = {"gh", "ghp", "gh0", "mi3", "mi", "je", "sys"}
    for k in wanted:
        if k not in known:
            die(f"unknown allocator '{k}' (choose from gh, ghp, gh0, mi3, mi, je, sys)")
    if "gh0" in wanted and not args.goheap_base:
        die("gh0 (goheap-base) needs --goheap-base PATH")
    out = []
    for k in wanted:
        if k in ("gh", "ghp", "gh0"):
            explicit = args.goheap is not None or k == "gh0"
            path = args.goheap_base if k == "gh0" else (
                args.goheap or os.path.join(ROOT, "target", "release", "libgoheap_malloc.so"))
            if not os.path.isfile(path):
                if explicit:
                    die(f"--goheap {path}: no such file")
                log(f"warning: goheap skipped: {path} does not exist (build it with "
                    "`cargo build --release -p goheap-malloc`, or pass --goheap PATH)")
                continue
            # Run a snapshot, so a rebuild during the run cannot mix two builds.
            os.makedirs(args.build_dir, exist_ok=True)
            snap = os.path.join(args.build_dir, "base/libgoheap_malloc.so" if k == "gh0" else "libgoheap_malloc.so")
            os.makedirs(os.path.dirname(snap), exist_ok=True)
            if os.path.realpath(path) != os.path.realpath(snap):
                shutil.copyfile(path, f"{snap}.tmp{os.getpid()}")
                os.replace(f"{snap}.tmp{os.getpid()}", snap)
            with open(snap, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()[:12]
            built = datetime.datetime.fromtimestamp(os.path.getmtime(path)).astimezone()
            a = Allocator(k, {"gh": "goheap", "ghp": "goheap-profiled", "gh0": "goheap-base"}[k], snap)
            if k == "ghp":
                # The same library with its heap profiler on at the default rate (512 KiB),
                # writing a profile at exit as a user's run would; the files go to a
                # directory of their own, emptied after every run (run_one).
                a.env = {"GOHEAP_PROFILE": os.path.join(args.build_dir, "profiles", "%p.pb.gz")}
                os.makedirs(os.path.join(args.build_dir, "profiles"), exist_ok=True)
            a.version = (f"copy of {os.path.abspath(path)} built {built:%Y-%m-%d %H:%M:%S}, "
                         f"sha256 {digest}, {git_describe()}")
        elif k == "mi3":
            a = Allocator("mi3", "mimalloc3", None)
            if args.mimalloc3:
                if not os.path.isfile(args.mimalloc3):
                    die(f"--mimalloc3 {args.mimalloc3}: no such file")
                a.lib = args.mimalloc3
                a.version = "given with --mimalloc3"
            else:
                # Built from the libmimalloc-sys crate's bundled v3 source on every run (4 s):
                # see build-mimalloc.sh for the flags and why they matter.
                os.makedirs(args.build_dir, exist_ok=True)
                r = subprocess.run([os.path.join(HERE, "build-mimalloc.sh"),
                                    os.path.join(args.build_dir, "libmimalloc-v3.so")],
                                   stdout=subprocess.PIPE, text=True,
                                   env=dict(os.environ, CC=" ".join(args.cc)))
                lines = r.stdout.splitlines()
                if r.returncode != 0 or len(lines) != 2:
                    die("bench/malloc/build-mimalloc.sh failed (see above), or pass --mimalloc3 PATH")
                a.lib, a.version = lines
        elif k == "mi":
            path = args.mimalloc or find_lib(
                [d + "/libmimalloc.so.2" for d in lib_dirs()] + [d + "/libmimalloc.so*" for d in lib_dirs()])
            if not path or not os.path.isfile(path):
                die("mimalloc not found: `apt-get install -y libmimalloc2.0`, or pass --mimalloc PATH")
            a = Allocator("mi", "mimalloc", path)
            a.version = package_version(path)
        elif k == "je":
            path = args.jemalloc or find_lib(
                [d + "/libjemalloc.so.2" for d in lib_dirs()] + [d + "/libjemalloc.so*" for d in lib_dirs()])
            if not path or not os.path.isfile(path):
                die("jemalloc not found: `apt-get install -y libjemalloc2`, or pass --jemalloc PATH")
            a = Allocator("je", "jemalloc", path)
            a.version = package_version(path)
        else:
            a = Allocator("sys", "glibc", None)
            a.version = glibc_version() + ", no preload"
        out.append(a)
    if args.baseline not in [a.key for a in out]:
        die(f"the baseline allocator '{args.baseline}' is not among those run")
    return out


def build(build_dir, cc):
    os.makedirs(build_dir, exist_ok=True)
    for prog in PROGRAMS:
        src = os.path.join(SRC, prog + ".c")
        exe = os.path.join(build_dir, prog)
        tmp = f"{exe}.tmp{os.getpid()}"
        cmd = cc + ["-O2", "-pthread", "-Wall", "-Wextra", "-o", tmp, src, "-lm"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or r.stderr.strip():
            log(f"{'error' if r.returncode else 'warning'}: {' '.join(cmd)}\n{r.stderr}")
            if r.returncode != 0:
                sys.exit(2)
        os.replace(tmp, exe)
    log(f"built {len(PROGRAMS)} programs in {build_dir}")


def spawn(launcher, exe, argv, preload, timeout, extra_env=None):
    """Run exe through the launcher (see src/launch.c: it keeps the parent's RSS out of
    ru_maxrss); return (wait status, rusage dict, wall seconds, stdout, stderr, timed_out)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(extra_env or {})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r", prefix="bench-malloc-") as res:
        cmd = [launcher, res.name, f"{timeout:g}", preload or "-", exe] + argv
        try:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                               timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            die(f"the launcher hung: {' '.join(cmd)}")
        fields = res.read().split()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        if r.returncode != 0 or len(fields) != 8:
            die(f"the launcher failed (status {r.returncode}): {' '.join(cmd)}\n{stderr}")
        wall, status, maxrss, utime, stime, minflt, majflt, timed_out = fields
        ru = {"maxrss": int(maxrss), "user": float(utime), "sys": float(stime),
              "minflt": int(minflt), "majflt": int(majflt)}
        return int(status), ru, float(wall), stdout, stderr, timed_out == "1"


def run_one(exe, wl, alloc, args):
    argv = wl.argv(args.quick, args.procs)
    launcher = os.path.join(args.build_dir, "launch")
    status, ru, wall, out, err, timed_out = spawn(launcher, exe, argv, alloc.lib, args.timeout,
                                                  alloc.env)
    written = None
    if "GOHEAP_PROFILE" in alloc.env:
        written = glob.glob(os.path.join(os.path.dirname(alloc.env["GOHEAP_PROFILE"]), "*.pb.gz"))
        for f in written:
            os.remove(f)
    res = {
        "workload": wl.name, "allocator": alloc.name, "argv": argv, "wall": wall,
        "rss_kib": ru["maxrss"], "user": ru["user"], "sys": ru["sys"],
        "minflt": ru["minflt"], "majflt": ru["majflt"], "rtime": None, "error": None,
    }
    problems = []
    if written == []:
        problems.append("GOHEAP_PROFILE was set and no profile was written")
    if timed_out:
        problems.append(f"killed after the {args.timeout:.0f} s timeout")
    elif os.WIFSIGNALED(status):
        problems.append(f"killed by signal {os.WTERMSIG(status)}")
    elif os.WEXITSTATUS(status) != 0:
        problems.append(f"exit status {os.WEXITSTATUS(status)}")
    lines = out.splitlines()
    checks = [l for l in lines if l.startswith("check:")]
    if not any(l.startswith("check: ok") for l in checks):
        problems.append("no 'check: ok' line" + (f" ({checks[-1]})" if checks else ""))
    source = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("malloc-from:")), None)
    if alloc.lib:
        if source is None or os.path.realpath(source) != os.path.realpath(alloc.lib):
            problems.append(f"malloc came from {source!r}, not the preloaded {alloc.lib}")
    elif source is None or not os.path.basename(source).startswith("libc.so"):
        problems.append(f"malloc came from {source!r}, not glibc")
    if "cannot be preloaded" in err:
        problems.append("LD_PRELOAD failed")
    if wl.throughput:
        rt = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("relative-time:")), None)
        try:
            res["rtime"] = float(rt)
            if not (res["rtime"] > 0 and math.isfinite(res["rtime"])):
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"no usable 'relative-time:' line ({rt!r})")
    if problems:
        tail = "\n".join(("stdout: " + l) for l in lines[-8:]) + "\n" + \
               "\n".join(("stderr: " + l) for l in err.splitlines()[-8:])
        res["error"] = "; ".join(problems)
        log("\n" + "!" * 72 + f"\nFAILED: {wl.name} under {alloc.name}: {res['error']}\n"
            f"command: {'LD_PRELOAD=' + alloc.lib + ' ' if alloc.lib else ''}{exe} {' '.join(argv)}\n"
            f"{tail.rstrip()}\n" + "!" * 72 + "\n")
    res["time"] = res["rtime"] if wl.throughput else wall
    return res


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, Linux {platform.release()}"


def cpu_busy_s():
    """Seconds of CPU time the whole machine has spent busy since boot (/proc/stat)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def own_cpu_s():
    """CPU seconds of this script and everything it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cc_version(cc):
    try:
        r = subprocess.run(cc + ["--version"], capture_output=True, text=True, timeout=10)
        return r.stdout.splitlines()[0] if r.returncode == 0 and r.stdout else " ".join(cc)
    except (OSError, subprocess.SubprocessError):
        return " ".join(cc)


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def fmt_abs(v, unit):
    if unit == "MiB":
        return f"{v:.1f} MiB"
    return f"{v:.3f} {unit}" if v < 10 else f"{v:.1f} {unit}"


def report(results, workloads, allocs, args, started, wall_total, others):
    base = next(a for a in allocs if a.key == args.baseline)
    # median over repetitions of each (workload, allocator); None if any run failed
    med = {}
    for wl in workloads:
        for a in allocs:
            runs = [r for r in results if r["workload"] == wl.name and r["allocator"] == a.name]
            if not runs or any(r["error"] for r in runs):
                med[wl.name, a.name] = None
            else:
                med[wl.name, a.name] = (statistics.median(r["time"] for r in runs),
                                        statistics.median(r["rss_kib"] for r in runs) / 1024.0)

    out = []
    p = out.append
    p("# Allocator benchmark: mimalloc-bench workload shapes under LD_PRELOAD\n")
    p(f"- date: {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}")
    p(f"- machine: {machine()}")
    p(f"- command: `{' '.join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], os.getcwd())] + sys.argv[1:])}`")
    p(f"- parameters: {'quick' if args.quick else 'full'}, procs = {args.procs}, "
      f"{args.reps} repetition(s) (median reported), total wall time {wall_total:.0f} s")
    if others is not None:
        p(f"- other processes used {others:.2f} of {os.cpu_count()} cores on average during the "
          "run (from /proc/stat; anything well above 0 makes the numbers noisy)")
    p(f"- compiler: {cc_version(args.cc)}, `-O2 -pthread`")
    for a in allocs:
        p(f"- {a.name}: {a.lib or 'system malloc'}" + (f" ({a.version})" if a.version else ""))
    p("")

    def table(title, idx, unit_of, include):
        p(f"## {title}\n")
        p("| workload | unit | " + " | ".join(a.name for a in allocs) + " |")
        p("|---|---|" + "---:|" * len(allocs))
        ratios = {a.name: [] for a in allocs}
        for wl in workloads:
            b = med[wl.name, base.name]
            cells = []
            for a in allocs:
                m = med[wl.name, a.name]
                if m is None:
                    cells.append("FAIL" if any(r["error"] for r in results if r["workload"] == wl.name
                                               and r["allocator"] == a.name) else "-")
                elif b is None:
                    cells.append(fmt_abs(m[idx], unit_of(wl)))
                else:
                    ratio = m[idx] / b[idx]
                    if include(wl):
                        ratios[a.name].append(ratio)
                    cell = f"{ratio:.2f}"
                    if a is base:
                        cell += f" ({fmt_abs(m[idx], unit_of(wl))})"
                    cells.append(cell)
            name = wl.name + ("" if include(wl) else " †")
            p(f"| {name} | {unit_of(wl)} | " + " | ".join(cells) + " |")
        gm = []
        for a in allocs:
            g = geomean(ratios[a.name])
            n = sum(1 for wl in workloads if include(wl))
            gm.append("-" if g is None else f"**{g:.2f}**" + ("" if len(ratios[a.name]) == n
                                                              else f" ({len(ratios[a.name])}/{n})"))
        p("| **geomean** | | " + " | ".join(gm) + " |")
        p("")

    table(f"Time relative to {base.name} (lower is better)", 0,
          lambda wl: wl.unit if wl.throughput else "s", lambda wl: True)
    table(f"Peak RSS relative to {base.name} (lower is better)", 1,
          lambda wl: "MiB", lambda wl: wl.rss)
    if args.reps > 1:
        spreads = []
        for wl in workloads:
            for a in allocs:
                ts = [r["time"] for r in results if r["workload"] == wl.name
                      and r["allocator"] == a.name and not r["error"]]
                if len(ts) > 1 and min(ts) > 0:
                    spreads.append((max(ts) / min(ts), wl.name, a.name))
        if spreads:
            spreads.sort()
            worst = spreads[-1]
            p(f"Noise: the slowest of the {args.reps} repetitions took {spreads[len(spreads) // 2][0]:.2f}x "
              f"the fastest in the median cell, {worst[0]:.2f}x in the worst ({worst[1]} under "
              f"{worst[2]}).\n")
    p(f"The {base.name} column shows its absolute median in parentheses. Time is elapsed wall "
      "time, except for larsonN, xmalloc-testN, rptestN and glibc-thread, where it is the "
      "relative time the program derives from its own throughput (as mimalloc-bench's "
      "bench.sh does). † not in the RSS geometric mean: xmalloc-test's RSS grows with its "
      "speed. FAIL: a run failed its checks (see stderr).\n")
    p("## Command lines\n")
    p("| workload | command |")
    p("|---|---|")
    for wl in workloads:
        p(f"| {wl.name} | `{wl.program} {' '.join(wl.argv(args.quick, args.procs))}` |")
    p("")
    return "\n".join(out)


SYSCALLS = ["madvise", "munmap", "mmap", "mprotect", "brk", "futex", "sched_yield"]
LOCKS = ["lock_acquired", "lock_page_heap", "lock_central", "lock_contended"]


def count_syscalls(exe, wl, alloc, args):
    """Runs one workload under `strace -f -c` (only the calls in SYSCALLS are traced, with a
    seccomp filter, so the rest run at full speed); returns {call: (count, seconds)} and the
    operations the program reports (None if it reports none)."""
    argv = wl.argv(args.quick, args.procs)
    with tempfile.NamedTemporaryFile(mode="r", prefix="bench-malloc-strace-") as summary:
        cmd = ["strace", "-f", "-c", "--seccomp-bpf", "-e", "trace=" + ",".join(SYSCALLS),
               "-o", summary.name]
        if alloc.lib:
            cmd += ["-E", "LD_PRELOAD=" + alloc.lib]
        cmd += [exe] + argv
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, env=env,
                               timeout=args.timeout * 3)
        except subprocess.TimeoutExpired:
            die(f"timed out under strace: {' '.join(cmd)}")
        if r.returncode != 0 or "check: ok" not in r.stdout:
            die(f"failed under strace (status {r.returncode}): {' '.join(cmd)}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        calls = {}
        for line in summary.read().splitlines():
            f = line.split()
            # "% time  seconds  usecs/call  calls  [errors]  syscall"
            if len(f) >= 5 and f[-1] in SYSCALLS:
                calls[f[-1]] = (int(f[3]), float(f[1]))
    ops = wl.ops(r.stdout, argv) if wl.ops else None
    return calls, ops


def count_locks(exe, wl, lib, args):
    """Runs one workload under a `lock-count` build of goheap with GOHEAP_STATS=1 and returns
    the lock lines of its exit report, and the operations the program reports."""
    argv = wl.argv(args.quick, args.procs)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(LD_PRELOAD=lib, GOHEAP_STATS="1")
    r = subprocess.run([exe] + argv, capture_output=True, text=True, env=env, timeout=args.timeout)
    if r.returncode != 0 or "check: ok" not in r.stdout:
        die(f"failed under the lock-count build (status {r.returncode}): {exe} {' '.join(argv)}")
    locks = {}
    for line in r.stderr.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] in LOCKS:
            locks[f[0]] = int(f[1])
    if len(locks) != len(LOCKS):
        die(f"{lib} printed no lock counts with GOHEAP_STATS=1: is it a lock-count build "
            "(cargo build --release -p goheap-malloc --features goheap/lock-count)?")
    return locks, (wl.ops(r.stdout, argv) if wl.ops else None)


def syscall_report(workloads, allocs, args, started):
    out = []
    p = out.append
    p("# System calls per operation: mimalloc-bench workload shapes under LD_PRELOAD\n")
    p(f"- date: {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}")
    p(f"- machine: {machine()}")
    p(f"- command: `{' '.join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], os.getcwd())] + sys.argv[1:])}`")
    p(f"- parameters: {'quick' if args.quick else 'full'}, procs = {args.procs}, one run each under "
      "`strace -f -c --seccomp-bpf`")
    for a in allocs:
        p(f"- {a.name}: {a.lib or 'system malloc'}" + (f" ({a.version})" if a.version else ""))
    if args.lock_count_goheap:
        p(f"- lock counts: {args.lock_count_goheap} (a `lock-count` build) with GOHEAP_STATS=1")
    p("")
    p("Calls per 10^6 operations (the mallocs and frees the program reports; per run where it "
      "reports none, marked `/run`), and the seconds strace attributes to them, all threads summed.\n")
    p("| workload | allocator | ops | " + " | ".join(SYSCALLS) + " | syscall s |")
    p("|---|---|---:|" + "---:|" * (len(SYSCALLS) + 1))
    lock_rows = []
    for wl in workloads:
        exe = os.path.join(args.build_dir, wl.program)
        for a in allocs:
            calls, ops = count_syscalls(exe, wl, a, args)
            scale = 1e6 / ops if ops else 1.0
            unit = "" if ops else " /run"
            secs = sum(t for _, t in calls.values())
            cells = [f"{calls.get(c, (0, 0))[0] * scale:.3g}{unit}" for c in SYSCALLS]
            p(f"| {wl.name} | {a.name} | {'-' if not ops else f'{ops:.3g}'} | "
              + " | ".join(cells) + f" | {secs:.3f} |")
            log(f"strace {wl.name:15s} {a.name:9s} ops {ops} {calls}")
        if args.lock_count_goheap:
            locks, ops = count_locks(exe, wl, args.lock_count_goheap, args)
            lock_rows.append((wl, locks, ops))
    p("")
    if lock_rows:
        p("goheap's mutex acquisitions per 1000 operations (`lock-count` build; contended: "
          "acquisitions that found the lock held).\n")
        p("| workload | ops | " + " | ".join(l.replace("lock_", "") for l in LOCKS) + " |")
        p("|---|---:|" + "---:|" * len(LOCKS))
        for wl, locks, ops in lock_rows:
            scale = 1e3 / ops if ops else 1.0
            unit = "" if ops else " /run"
            p(f"| {wl.name} | {'-' if not ops else f'{ops:.3g}'} | "
              + " | ".join(f"{locks[l] * scale:.3g}{unit}" for l in LOCKS) + " |")
        p("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(
        description="mimalloc-bench-shaped allocator benchmark (LD_PRELOAD).",
        epilog="Allocators: gh = goheap, ghp = goheap with GOHEAP_PROFILE set (its heap profiler at the "
               "default rate, a profile written at exit), gh0 = goheap-base (--goheap-base), mi3 = mimalloc v3 (built by build-mimalloc.sh), "
               "mi = mimalloc from the system (Debian's is 2.0.9), je = jemalloc, sys = glibc (no preload).")
    ap.add_argument("--quick", action="store_true", help="shorter parameters (about 1 minute in all)")
    ap.add_argument("--reps", type=int, default=1, metavar="N", help="repetitions (default 1)")
    ap.add_argument("--procs", type=int, default=2, metavar="P",
                    help="threads of the N workloads, bench.sh's procs (default 2)")
    ap.add_argument("--alloc", default="gh,mi3,mi,je,sys", metavar="LIST",
                    help="allocators to run, comma-separated (default gh,mi3,mi,je,sys)")
    ap.add_argument("--workloads", default=None, metavar="LIST",
                    help="workloads to run, comma-separated (default all: "
                         + ",".join(w.name for w in WORKLOADS) + ")")
    ap.add_argument("--baseline", default="mi3",
                    help="allocator the ratios are relative to (default mi3, mimalloc v3)")
    ap.add_argument("--goheap", metavar="PATH",
                    help="goheap's malloc library (default target/release/libgoheap_malloc.so)")
    ap.add_argument("--goheap-base", metavar="PATH",
                    help="a second goheap build, run as gh0 (goheap-base): before/after in one run")
    ap.add_argument("--mimalloc3", metavar="PATH",
                    help="mimalloc v3 library (default: built by build-mimalloc.sh into --build-dir)")
    ap.add_argument("--mimalloc", metavar="PATH", help="mimalloc library (default: found in /usr/lib)")
    ap.add_argument("--jemalloc", metavar="PATH", help="jemalloc library (default: found in /usr/lib)")
    ap.add_argument("--csv", metavar="FILE", help="also write one CSV row per run to FILE")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "target", "bench-malloc"),
                    help="where the programs are built (default target/bench-malloc)")
    ap.add_argument("--syscalls", action="store_true",
                    help="instead of timing, run every workload once per allocator under "
                         "strace -f -c and report system calls per operation")
    ap.add_argument("--lock-count-goheap", metavar="PATH",
                    help="with --syscalls: also count goheap's mutex acquisitions with this "
                         "lock-count build of libgoheap_malloc.so")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds before a run is killed and counted as failed (default 300, quick 60)")
    args = ap.parse_args()
    args.cc = shlex.split(os.environ.get("CC", "cc"))
    if args.reps < 1 or args.procs < 1:
        die("--reps and --procs must be at least 1")
    if args.timeout is None:
        args.timeout = 60.0 if args.quick else 300.0

    workloads = WORKLOADS
    if args.workloads:
        names = [n.strip() for n in args.workloads.split(",") if n.strip()]
        by_name = {w.name: w for w in WORKLOADS}
        for n in names:
            if n not in by_name:
                die(f"unknown workload '{n}' (choose from {', '.join(by_name)})")
        workloads = [by_name[n] for n in names]

    started = datetime.datetime.now().astimezone()
    t0 = time.monotonic()
    busy0, own0 = cpu_busy_s(), own_cpu_s()
    allocs = resolve_allocators(args)
    build(args.build_dir, args.cc)
    if args.syscalls:
        if shutil.which("strace") is None:
            die("--syscalls needs strace (apt-get install -y strace)")
        print(syscall_report(workloads, allocs, args, started))
        return 0
    log(f"allocators: {', '.join(a.name for a in allocs)}; {len(workloads)} workloads; "
        f"{args.reps} repetition(s); {'quick' if args.quick else 'full'}")

    results = []
    total = args.reps * len(workloads) * len(allocs)
    for rep in range(args.reps):
        for wl in workloads:
            for a in allocs:
                r = run_one(os.path.join(args.build_dir, wl.program), wl, a, args)
                r["rep"] = rep + 1
                results.append(r)
                status = "FAILED" if r["error"] else "ok"
                t = f"{r['rtime']:.4g} {wl.unit}" if wl.throughput and r["rtime"] else f"{r['wall']:.3f} s"
                log(f"[{len(results):3d}/{total}] rep {rep + 1} {wl.name:15s} {a.name:9s} "
                    f"{t:>22s}  wall {r['wall']:6.2f} s  rss {r['rss_kib'] / 1024:8.1f} MiB  {status}")

    wall_total = time.monotonic() - t0
    busy1, own1 = cpu_busy_s(), own_cpu_s()
    others = None
    if busy0 is not None and busy1 is not None and wall_total > 0:
        others = max(0.0, ((busy1 - busy0) - (own1 - own0)) / wall_total)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["rep", "workload", "allocator", "ok", "time", "time_unit", "wall_s",
                        "relative_time", "peak_rss_kib", "user_s", "sys_s", "minflt", "majflt",
                        "args", "error"])
            for r in results:
                wl = next(x for x in workloads if x.name == r["workload"])
                w.writerow([r["rep"], r["workload"], r["allocator"], int(not r["error"]),
                            f"{r['time']:.6f}" if r["time"] is not None else "",
                            wl.unit if wl.throughput else "s", f"{r['wall']:.6f}",
                            "" if r["rtime"] is None else f"{r['rtime']:.6f}", r["rss_kib"],
                            f"{r['user']:.3f}", f"{r['sys']:.3f}", r["minflt"], r["majflt"],
                            " ".join(r["argv"]), r["error"] or ""])
        log(f"wrote {args.csv}")

    print(report(results, workloads, allocs, args, started, wall_total, others))
    failed = [r for r in results if r["error"]]
    if failed:
        log(f"\n{len(failed)} of {len(results)} runs FAILED:")
        for r in failed:
            log(f"  rep {r['rep']} {r['workload']} under {r['allocator']}: {r['error']}")
        return 1
    log(f"all {len(results)} runs passed their checks ({wall_total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
