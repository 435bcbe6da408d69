//! latency: a GC latency benchmark with a pointer-rich (or pointer-free) live heap of
//! millions of small objects, every operation timed, on goheap's garbage collector. The Go
//! twin is `../go/latency/main.go`; both do the same work on the same random stream, print
//! the same checksum and the same `key: value` report (bench/gc/README.md has the
//! definitions). Run by `../latency.py`.
//!
//! Heap: an index, itself a GC object (`Gc<[GcCell<Option<Gc<Record>>>]>`, `slots` entries;
//! `2 * slots` entries of `Gc<RecordNP>` in the pointer-free variant) kept in a `Root`,
//! whose every entry holds a small object graph:
//!
//! ```text
//! ptr:   A{id, next: B, data: leafA} -> B{id+1, next: None, data: leafB}
//!        4 objects (2 records of 24 B, 2 noscan leaves of 16 B)
//! noptr: index[2i] = A{id, next: 2i+2, data[16]}, index[2i+1] = B{id+1, 0, data[16]}
//!        2 pointer-free records of 32 B (noscan spans); `next` is an index+1
//! ```
//!
//! Operation (one random 64-bit x per op, splitmix64 from `--seed`):
//!
//! ```text
//! x%16 == 0  read:   walk `walk` random entries (A then B), summing ids and leaf bytes
//! otherwise  update: allocate `garbage` short-lived records (ptr: a chain, each with a
//!            leaf; noptr: pointer-free records), sum them, then replace a random
//!            entry's graph with a fresh one
//! ```
//!
//! A `Gc` cannot outlive a session and collections run between sessions (a collection that
//! became due runs when the session ends, on this thread), so the operations run in
//! sessions of `--batch` operations (default 100); each session re-reads the index from its
//! root. Every operation is timed with `Instant` (CLOCK_MONOTONIC) at op boundaries, so
//! the time from the last op of one session to the end of the first op of the next one
//! (session exit, any collection run there, session entry, which can block on the
//! collector) is charged to that first op: blocking by the collector is visible.

use std::io::Write;
use std::time::Instant;

use goheap::gc::{Gc, GcCell, Heap, Mutator, Root, Session, Trace};

// ---------------------------------------------------------------------------------------
// The objects

#[derive(Trace)]
struct Leaf {
    b: [u8; 16],
}

#[derive(Trace)]
struct Record<'gc> {
    id: u64,
    next: Option<Gc<'gc, Record<'gc>>>,
    data: Gc<'gc, Leaf>,
}

#[derive(Trace)]
struct RecordNP {
    id: u64,
    /// index+1 of the next record in the index; 0: none
    next: u64,
    data: [u8; 16],
}

type Slot<'gc> = GcCell<Option<Gc<'gc, Record<'gc>>>>;
type SlotNP<'gc> = GcCell<Option<Gc<'gc, RecordNP>>>;

// ---------------------------------------------------------------------------------------
// The random stream and the data

struct SplitMix64(u64);

impl SplitMix64 {
    #[inline(always)]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[inline(always)]
fn fill(x: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (j, v) in b.iter_mut().enumerate() {
        *v = ((x >> ((j & 7) * 8)) as u8) ^ (j as u8);
    }
    b
}

#[inline(always)]
fn bytes_sum(b: &[u8; 16]) -> u64 {
    b.iter().map(|&v| v as u64).sum()
}

#[inline(always)]
fn new_leaf<'gc>(cx: &Session<'gc>, x: u64) -> Gc<'gc, Leaf> {
    cx.alloc(Leaf { b: fill(x) })
}

#[inline(always)]
fn graph<'gc>(cx: &Session<'gc>, x: u64) -> Gc<'gc, Record<'gc>> {
    let b = {
        let data = new_leaf(cx, x.wrapping_add(1));
        cx.alloc(Record {
            id: x.wrapping_add(1),
            next: None,
            data,
        })
    };
    let data = new_leaf(cx, x);
    cx.alloc(Record {
        id: x,
        next: Some(b),
        data,
    })
}

#[inline(always)]
fn walk<'gc>(mut r: Option<Gc<'gc, Record<'gc>>>) -> u64 {
    let mut s = 0u64;
    while let Some(x) = r {
        s = s.wrapping_add(x.id).wrapping_add(bytes_sum(&x.data.b));
        r = x.next;
    }
    s
}

#[inline(always)]
fn new_np<'gc>(cx: &Session<'gc>, id: u64, next: u64) -> Gc<'gc, RecordNP> {
    cx.alloc(RecordNP {
        id,
        next,
        data: fill(id),
    })
}

#[inline(always)]
fn walk_np<'gc>(index: &[SlotNP<'gc>], j: u64) -> u64 {
    let mut s = 0u64;
    let mut k = j + 1;
    while k != 0 {
        let r = index[(k - 1) as usize].get().expect("filled slot");
        s = s.wrapping_add(r.id).wrapping_add(bytes_sum(&r.data));
        k = r.next;
    }
    s
}

// ---------------------------------------------------------------------------------------

struct Params {
    variant: String,
    slots: usize,
    ops: usize,
    garbage: u64,
    walk: usize,
    seed: u64,
    threshold: i64, // ns
    batch: usize,
    timeline: Option<String>,
    json: bool,
}

const READ_FLAG: u32 = 1 << 31;

/// Caps a duration at 2^31-1 ns (2.1 s); bit 31 is the read flag.
#[inline(always)]
fn encode(d: u128) -> u32 {
    d.min((READ_FLAG - 1) as u128) as u32
}

/// What the timed phase left: (build ns, ops ns, checksum, cycles before the ops).
struct Run {
    build_ns: u64,
    ops_ns: u64,
    /// user+sys CPU seconds of the process during the timed phase (all threads)
    ops_cpu: f64,
    /// involuntary context switches of the process during the timed phase
    ops_csw: i64,
    check: u64,
    gc_before: u32,
}

fn run_ptr(p: &Params, heap: &Heap, m: &mut Mutator, rng: &mut SplitMix64, tl: &mut [u32]) -> Run {
    let t0 = Instant::now();
    let n = p.slots;
    let index: Root<[Slot<'static>]> =
        m.enter(|cx| cx.root(cx.alloc_slice_from_iter((0..n).map(|_| Slot::new(None)))));
    let mut i = 0;
    while i < n {
        let end = (i + p.batch.max(1000)).min(n);
        m.enter(|cx| {
            let idx = cx.get(&index);
            for slot in &idx[i..end] {
                slot.set(Some(graph(cx, rng.next())));
            }
        });
        i = end;
    }
    heap.collect();
    heap.wait_sweep();
    let gc_before = heap.stats().num_gc;

    let nn = n as u64;
    let mut check = 0u64;
    let (cpu0, csw0) = (cpu_s(), involuntary_switches());
    let start = Instant::now();
    let mut prev = start;
    let mut k = 0;
    while k < p.ops {
        let end = (k + p.batch).min(p.ops);
        m.enter(|cx| {
            let idx = cx.get(&index);
            for t in &mut tl[k..end] {
                let x = rng.next();
                let mut flag = 0;
                if x.is_multiple_of(16) {
                    for _ in 0..p.walk {
                        let j = (rng.next() % nn) as usize;
                        check = check.wrapping_add(walk(idx[j].get()));
                    }
                    flag = READ_FLAG;
                } else {
                    let mut tmp = None;
                    for g in 0..p.garbage {
                        let id = x.wrapping_add(g);
                        let data = new_leaf(cx, id);
                        tmp = Some(cx.alloc(Record {
                            id,
                            next: tmp,
                            data,
                        }));
                    }
                    check = check.wrapping_add(walk(tmp));
                    let i = (rng.next() % nn) as usize;
                    check = check.wrapping_add(idx[i].get().expect("filled slot").id);
                    idx[i].set(Some(graph(cx, x)));
                }
                let now = Instant::now();
                *t = encode(now.duration_since(prev).as_nanos()) | flag;
                prev = now;
            }
        });
        k = end;
    }
    let ops_ns = prev.duration_since(start).as_nanos() as u64;
    let ops_cpu = cpu_s() - cpu0;
    let ops_csw = involuntary_switches() - csw0;
    drop(index);
    Run {
        build_ns: start.duration_since(t0).as_nanos() as u64,
        ops_ns,
        ops_cpu,
        ops_csw,
        check,
        gc_before,
    }
}

fn run_np(p: &Params, heap: &Heap, m: &mut Mutator, rng: &mut SplitMix64, tl: &mut [u32]) -> Run {
    let t0 = Instant::now();
    let n = p.slots;
    let index: Root<[SlotNP<'static>]> =
        m.enter(|cx| cx.root(cx.alloc_slice_from_iter((0..2 * n).map(|_| SlotNP::new(None)))));
    let mut i = 0;
    while i < n {
        let end = (i + p.batch.max(1000)).min(n);
        m.enter(|cx| {
            let idx = cx.get(&index);
            for s in i..end {
                let x = rng.next();
                idx[2 * s].set(Some(new_np(cx, x, (2 * s + 2) as u64)));
                idx[2 * s + 1].set(Some(new_np(cx, x.wrapping_add(1), 0)));
            }
        });
        i = end;
    }
    heap.collect();
    heap.wait_sweep();
    let gc_before = heap.stats().num_gc;

    let nn = n as u64;
    let mut check = 0u64;
    let (cpu0, csw0) = (cpu_s(), involuntary_switches());
    let start = Instant::now();
    let mut prev = start;
    let mut k = 0;
    while k < p.ops {
        let end = (k + p.batch).min(p.ops);
        m.enter(|cx| {
            let idx = cx.get(&index);
            for t in &mut tl[k..end] {
                let x = rng.next();
                let mut flag = 0;
                if x.is_multiple_of(16) {
                    for _ in 0..p.walk {
                        check = check.wrapping_add(walk_np(&idx, 2 * (rng.next() % nn)));
                    }
                    flag = READ_FLAG;
                } else {
                    for g in 0..p.garbage {
                        let id = x.wrapping_add(g);
                        let r = new_np(cx, id, g);
                        check = check.wrapping_add(r.id).wrapping_add(bytes_sum(&r.data));
                    }
                    let i = (rng.next() % nn) as usize;
                    check = check.wrapping_add(idx[2 * i].get().expect("filled slot").id);
                    idx[2 * i].set(Some(new_np(cx, x, (2 * i + 2) as u64)));
                    idx[2 * i + 1].set(Some(new_np(cx, x.wrapping_add(1), 0)));
                }
                let now = Instant::now();
                *t = encode(now.duration_since(prev).as_nanos()) | flag;
                prev = now;
            }
        });
        k = end;
    }
    let ops_ns = prev.duration_since(start).as_nanos() as u64;
    let ops_cpu = cpu_s() - cpu0;
    let ops_csw = involuntary_switches() - csw0;
    drop(index);
    Run {
        build_ns: start.duration_since(t0).as_nanos() as u64,
        ops_ns,
        ops_cpu,
        ops_csw,
        check,
        gc_before,
    }
}

// ---------------------------------------------------------------------------------------
// Analysis: the same definitions as analyse() in ../go/latency/main.go and in
// ../latency.py (bench/gc/README.md, "Definitions").

const MMU_WINDOWS_NS: [i64; 4] = [1_000_000, 10_000_000, 100_000_000, 1_000_000_000];

struct Analysis {
    median: i64,
    mean: f64,
    p99: i64,
    p999: i64,
    p9999: i64,
    max: i64,
    max_at: i64,
    med_update: i64,
    med_read: i64,
    stalls: usize,
    stall_ns: i64,
    total: i64,
    mmu: Vec<f64>,
    threshold: i64,
}

/// Nearest-rank percentile num/den of sorted `xs`: the value at 1-based rank
/// ceil(n*num/den).
fn rank(xs: &[i64], num: usize, den: usize) -> i64 {
    let r = (xs.len() * num).div_ceil(den).max(1);
    xs[r - 1]
}

fn lower_median(xs: &[i64]) -> i64 {
    if xs.is_empty() {
        0
    } else {
        xs[(xs.len() - 1) / 2]
    }
}

fn analyse(tl: &[u32], threshold: i64) -> Analysis {
    let d: Vec<i64> = tl.iter().map(|&v| (v & !READ_FLAG) as i64).collect();
    let mut reads = Vec::new();
    let mut updates = Vec::new();
    let (mut sum, mut max, mut max_at, mut at) = (0i64, 0i64, 0i64, 0i64);
    for (&v, &x) in tl.iter().zip(&d) {
        if v & READ_FLAG != 0 {
            reads.push(x);
        } else {
            updates.push(x);
        }
        if x > max {
            max = x;
            max_at = at;
        }
        sum += x;
        at += x;
    }
    let mut sorted = d.clone();
    sorted.sort_unstable();
    reads.sort_unstable();
    updates.sort_unstable();
    let med_update = lower_median(&updates);
    let med_read = lower_median(&reads);

    // Stalls: [op start + its kind's median, op end) for every op whose duration exceeds
    // its kind's median by more than the threshold.
    let (mut ps, mut pe) = (Vec::new(), Vec::new());
    let mut stall_ns = 0i64;
    at = 0;
    for (&v, &x) in tl.iter().zip(&d) {
        let med = if v & READ_FLAG != 0 {
            med_read
        } else {
            med_update
        };
        if x - med > threshold {
            ps.push(at + med);
            pe.push(at + x);
            stall_ns += x - med;
        }
        at += x;
    }
    Analysis {
        median: lower_median(&sorted),
        mean: sum as f64 / d.len() as f64,
        p99: rank(&sorted, 99, 100),
        p999: rank(&sorted, 999, 1000),
        p9999: rank(&sorted, 9999, 10000),
        max,
        max_at,
        med_update,
        med_read,
        stalls: ps.len(),
        stall_ns,
        total: sum,
        mmu: MMU_WINDOWS_NS
            .iter()
            .map(|&w| mmu(&ps, &pe, sum, w))
            .collect(),
        threshold,
    }
}

/// The minimum, over every window [t, t+w) inside [0, total), of the fraction of the window
/// not covered by the (sorted, disjoint) stalls [ps[i], pe[i]). The minimum is reached by a
/// window that starts at a stall's start or ends at a stall's end, so only those 2n windows
/// (clamped into the run) are evaluated, each with two binary searches over prefix sums. A
/// window wider than the run is the whole run.
fn mmu(ps: &[i64], pe: &[i64], total: i64, w: i64) -> f64 {
    if ps.is_empty() {
        return 1.0;
    }
    if w >= total {
        let s: i64 = ps.iter().zip(pe).map(|(a, b)| b - a).sum();
        return 1.0 - s as f64 / total as f64;
    }
    let mut cum = vec![0i64; ps.len() + 1];
    for i in 0..ps.len() {
        cum[i + 1] = cum[i] + pe[i] - ps[i];
    }
    // paused(x): stall time in [0, x).
    let paused = |x: i64| -> i64 {
        let k = ps.partition_point(|&s| s < x); // stalls starting before x
        let mut p = cum[k];
        if k > 0 && pe[k - 1] > x {
            p -= pe[k - 1] - x;
        }
        p
    };
    let mut worst = 0i64;
    let mut try_at = |t: i64| {
        let t = t.max(0).min(total - w);
        let p = paused(t + w) - paused(t);
        if p > worst {
            worst = p;
        }
    };
    for i in 0..ps.len() {
        try_at(ps[i]);
        try_at(pe[i] - w);
    }
    1.0 - worst as f64 / w as f64
}

fn us(ns: f64) -> String {
    format!("{:.3}", ns / 1e3)
}

impl Analysis {
    fn kv(&self) -> Vec<(String, String)> {
        let mut kv: Vec<(String, String)> = [
            ("lat-median-us", us(self.median as f64)),
            ("lat-mean-us", us(self.mean)),
            ("lat-median-update-us", us(self.med_update as f64)),
            ("lat-median-read-us", us(self.med_read as f64)),
            ("lat-p99-us", us(self.p99 as f64)),
            ("lat-p99.9-us", us(self.p999 as f64)),
            ("lat-p99.99-us", us(self.p9999 as f64)),
            ("lat-max-us", us(self.max as f64)),
            ("lat-max-at-s", format!("{:.3}", self.max_at as f64 / 1e9)),
            ("mmu-threshold-us", us(self.threshold as f64)),
            ("stall-ops", self.stalls.to_string()),
            ("stall-ms", format!("{:.3}", self.stall_ns as f64 / 1e6)),
            (
                "mutator-utilization",
                format!("{:.4}", 1.0 - self.stall_ns as f64 / self.total as f64),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (w, u) in MMU_WINDOWS_NS.iter().zip(&self.mmu) {
            kv.push((format!("mmu-{}ms", w / 1_000_000), format!("{u:.4}")));
        }
        kv
    }
}

// ---------------------------------------------------------------------------------------

fn usage(msg: &str) -> ! {
    eprintln!("goheap-latency: {msg}");
    eprintln!(
        "usage: goheap-latency [--quick] [--variant ptr|noptr] [--slots N] [--ops N] \
         [--garbage N] [--walk N] [--seed N] [--batch N] [--mmu-threshold-us F] \
         [--timeline FILE] [--json]"
    );
    std::process::exit(2)
}

fn parse_args() -> Params {
    let mut p = Params {
        variant: "ptr".into(),
        slots: 1_500_000,
        ops: 3_000_000,
        garbage: 16,
        walk: 16,
        seed: 42,
        threshold: 50_000,
        batch: 100,
        timeline: None,
        json: false,
    };
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        // Go's flag syntax: -name or --name, value as the next argument or after '='.
        let a = a.trim_start_matches('-').to_string();
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (a, None),
        };
        let mut val = || {
            inline
                .clone()
                .or_else(|| args.next())
                .unwrap_or_else(|| usage(&format!("--{name} needs a value")))
        };
        fn num<T: std::str::FromStr>(name: &str, s: String) -> T {
            s.parse()
                .unwrap_or_else(|_| usage(&format!("bad value for --{name}: {s}")))
        }
        match name.as_str() {
            "quick" => quick = true,
            "json" => p.json = true,
            "variant" => p.variant = val(),
            "slots" => p.slots = num(&name, val()),
            "ops" => p.ops = num(&name, val()),
            "garbage" => p.garbage = num(&name, val()),
            "walk" => p.walk = num(&name, val()),
            "seed" => p.seed = num(&name, val()),
            "batch" => p.batch = num(&name, val()),
            "mmu-threshold-us" => p.threshold = (num::<f64>(&name, val()) * 1000.0) as i64,
            "timeline" => p.timeline = Some(val()),
            "h" | "help" => usage("help"),
            _ => usage(&format!("unknown flag --{name}")),
        }
    }
    if quick {
        p.slots = 200_000;
        p.ops = 300_000;
    }
    if p.variant != "ptr" && p.variant != "noptr" {
        usage("--variant must be ptr or noptr");
    }
    if p.slots < 1 || p.ops < 1 || p.batch < 1 {
        usage("--slots, --ops and --batch must be >= 1");
    }
    p
}

fn rusage() -> (f64, f64, f64) {
    // SAFETY: getrusage fills the struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = core::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime), ru.ru_maxrss as f64 / 1024.0)
}

/// The times the OS preempted any thread of the process (`ru_nivcsw`): a noise indicator
/// on a shared machine.
fn involuntary_switches() -> i64 {
    // SAFETY: getrusage fills the struct we pass.
    unsafe {
        let mut ru: libc::rusage = core::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru.ru_nivcsw as i64
    }
}

fn cpu_s() -> f64 {
    let (u, s, _) = rusage();
    u + s
}

fn main() {
    let start_wall = Instant::now();
    let p = parse_args();
    // The timeline: on the system allocator (not the GC heap), prefaulted by the fill.
    let mut tl = vec![u32::MAX; p.ops];
    let heap = Heap::new();
    let mut m = heap.mutator();
    let mut rng = SplitMix64(p.seed);
    let run = if p.variant == "ptr" {
        run_ptr(&p, &heap, &mut m, &mut rng, &mut tl)
    } else {
        run_np(&p, &heap, &mut m, &mut rng, &mut tl)
    };
    // Wall, CPU and peak RSS are taken here, before the analysis (which allocates and
    // sorts copies of the timeline).
    let wall = start_wall.elapsed().as_secs_f64();
    let (user, sys, rss) = rusage();
    let s = heap.stats();
    let a = analyse(&tl, p.threshold);

    let objs = if p.variant == "ptr" {
        4 * p.slots
    } else {
        2 * p.slots
    };
    let ops_s = run.ops_ns as f64 / 1e9;
    let mut kv: Vec<(String, String)> = [
        ("benchmark", "latency".to_string()),
        ("impl", "goheap".to_string()),
        ("runtime", format!("goheap {}", env!("CARGO_PKG_VERSION"))),
        ("variant", p.variant.clone()),
        ("slots", p.slots.to_string()),
        ("live-objects", objs.to_string()),
        ("ops", p.ops.to_string()),
        ("garbage-per-update", p.garbage.to_string()),
        ("walk-per-read", p.walk.to_string()),
        ("batch", p.batch.to_string()),
        ("seed", p.seed.to_string()),
        ("checksum", format!("{:016x}", run.check)),
        ("build-s", format!("{:.3}", run.build_ns as f64 / 1e9)),
        ("ops-wall-s", format!("{ops_s:.3}")),
        ("ops-per-s", format!("{:.0}", p.ops as f64 / ops_s)),
        ("ops-cpu-s", format!("{:.3}", run.ops_cpu)),
        ("ops-invol-csw", run.ops_csw.to_string()),
        ("wall-s", format!("{wall:.3}")),
        ("cpu-s", format!("{:.3}", user + sys)),
        ("user-s", format!("{user:.3}")),
        ("sys-s", format!("{sys:.3}")),
        ("peak-rss-mib", format!("{rss:.1}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    kv.extend(a.kv());
    kv.push((
        "gc-cycles-ops".into(),
        (s.num_gc - run.gc_before).to_string(),
    ));
    kv.push(("gc-cycles".into(), s.num_gc.to_string()));
    kv.push((
        "max-pause-ms".into(),
        format!("{:.3}", s.max_pause_ns as f64 / 1e6),
    ));
    kv.push((
        "max-pause-source".into(),
        "GcStats::max_pause_ns (longest stop-the-world of the last 256 cycles)".into(),
    ));
    kv.push((
        "max-assist-ms".into(),
        format!("{:.3}", s.pauses.assist.max_ns as f64 / 1e6),
    ));
    kv.push((
        "total-pause-ms".into(),
        format!("{:.3}", s.pause_total_ns as f64 / 1e6),
    ));
    kv.push((
        "gc-cpu-fraction".into(),
        format!("{:.4}", s.gc_cpu_fraction),
    ));

    let mut out = std::io::stdout().lock();
    if p.json {
        let parts: Vec<String> = kv.iter().map(|(k, v)| format!("{k:?}: {v:?}")).collect();
        let _ = writeln!(out, "{{{}}}", parts.join(", "));
    } else {
        for (k, v) in &kv {
            let _ = writeln!(out, "{k}: {v}");
        }
    }
    drop(out);
    if let Some(path) = &p.timeline {
        let bytes: Vec<u8> = tl.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(path, bytes).unwrap_or_else(|e| {
            eprintln!("timeline: {e}");
            std::process::exit(1)
        });
    }
    eprintln!("max-pause-ms: {:.3}", s.max_pause_ns as f64 / 1e6);
    eprintln!("gc-cycles: {}", s.num_gc);
    eprintln!("total-pause-ms: {:.3}", s.pause_total_ns as f64 / 1e6);
}
