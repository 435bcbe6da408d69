//! Statistics of a collected heap (Go's `runtime.MemStats`, for the GC side) and the
//! `gctrace` line.

use core::sync::atomic::Ordering;
use std::io::Write;

use super::heap::HeapInner;
use super::pause::{PauseBreakdown, PauseHistogram};

/// What one cycle measured, for statistics and gctrace.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct CycleRecord {
    pub start_ns: u64,
    /// Sweep termination (Go's first stop-the-world phase; nothing is stopped here).
    pub stw1_ns: u64,
    /// Concurrent mark.
    pub mark_ns: u64,
    /// Mark termination (Go's second stop-the-world phase; nothing is stopped here).
    pub stw2_ns: u64,
    /// Live heap at the start, at the end of the mark, and marked.
    pub heap0: usize,
    pub heap1: usize,
    pub marked: usize,
    pub goal: usize,
    pub procs: usize,
    /// Mark workers of the cycle (dedicated, and any the collector started when the
    /// mutators carried the mark: `fractional.rs`).
    pub workers: usize,
    /// The workers' time: their count times the time each was asked to mark. An estimate:
    /// a worker the OS runs late may mark less of this cycle, or join the next one
    /// (workqueue.rs), where it is not counted.
    pub worker_ns: u64,
    /// Share of its time each busy mutator was asked to mark, in millionths.
    pub fractional_ppm: u32,
    pub forced: bool,
}

/// The statistics of finished cycles (under `CycleCtl::stats`).
#[derive(Default)]
pub(crate) struct GcState {
    pub num_gc: u32,
    pub num_forced: u32,
    /// Collector CPU time: mark workers' wall time plus the collector thread's.
    pub gc_cpu_ns: u64,
    /// The longest mutator block of each recent cycle.
    pub pauses: PauseRing,
    pub last: CycleRecord,
    pub last_gc_unix_ns: u64,
    /// The last cycle that ended with the GC CPU limiter on (0: none).
    pub limiter_last_on: u32,
}

/// Collector CPU time so far: mark workers and the collector thread (per finished cycle)
/// plus the mutators' assists and sweeps.
pub(crate) fn gc_cpu_ns(h: &HeapInner) -> u64 {
    h.cycle.stats.lock().unwrap().gc_cpu_ns + h.mutators.pauses.total()
}

/// Brings the GC CPU limiter up to now (collector thread); true when it is on. It turns on
/// only under a memory limit: the collector's CPU is estimated from wall times (a mark
/// worker counts as busy for the whole mark), which on one or two cores puts a collector
/// running back to back at GOGC=100 over half the CPU, where Go's measured limiter would
/// not turn on (found by review).
pub(crate) fn update_limiter(h: &HeapInner) -> bool {
    let wall = h.start.elapsed().as_nanos() as u64;
    let armed = h.pacer.mem_limit.load(Ordering::Relaxed) != super::pacer::NO_LIMIT;
    h.pacer.limiter.update(wall, gc_cpu_ns(h), h.procs, armed)
}

/// Records a finished cycle; returns its gctrace line if gctrace is on.
pub(crate) fn record_cycle(h: &HeapInner, rec: &CycleRecord, max_block_ns: u64) -> Option<String> {
    // The cycle's time first, then the limiter (found by review: updated before, the
    // limiter saw each mark as the program's time and never turned on).
    h.cycle.stats.lock().unwrap().gc_cpu_ns += rec.stw1_ns + rec.worker_ns + rec.stw2_ns;
    let limited = update_limiter(h);
    let mut gc = h.cycle.stats.lock().unwrap();
    gc.num_gc += 1;
    if limited {
        gc.limiter_last_on = gc.num_gc;
    }
    if rec.forced {
        gc.num_forced += 1;
    }
    let end_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    gc.pauses.push(max_block_ns, end_unix);
    gc.last_gc_unix_ns = end_unix;
    gc.last = *rec;
    super::timeline::cycle(h, rec, gc.num_gc, gc.gc_cpu_ns);
    h.debug
        .gctrace
        .then(|| gctrace_line(&gc, rec, h.start.elapsed().as_nanos() as u64))
}

/// Recent pauses (Go's `PauseNs`/`PauseEnd`: a circular buffer of 256).
#[derive(Clone)]
pub(crate) struct PauseRing {
    ns: [u64; 256],
    end: [u64; 256],
    n: usize,
}

impl Default for PauseRing {
    fn default() -> Self {
        PauseRing {
            ns: [0; 256],
            end: [0; 256],
            n: 0,
        }
    }
}

impl PauseRing {
    pub fn push(&mut self, ns: u64, end: u64) {
        self.ns[self.n % 256] = ns;
        self.end[self.n % 256] = end;
        self.n += 1;
    }

    /// The recorded pauses, oldest first (at most 256).
    pub fn recent(&self) -> Vec<u64> {
        let k = self.n.min(256);
        (self.n - k..self.n).map(|i| self.ns[i % 256]).collect()
    }
}

/// A snapshot of a heap's statistics. Names follow Go's `MemStats`.
///
/// ```
/// use goheap::gc::Heap;
///
/// let heap = Heap::new();
/// let mut m = heap.mutator();
/// let kept = m.enter(|cx| {
///     for i in 0..1000u64 {
///         cx.alloc(i); // garbage
///     }
///     cx.root(cx.alloc(7u64))
/// });
/// heap.collect();
/// let s = heap.stats();
/// assert!(s.num_gc >= 1 && s.num_forced_gc >= 1);
/// assert!(s.mallocs >= s.frees);
/// println!(
///     "{} cycles, {} objects live, longest pause {} ns",
///     s.num_gc, s.heap_objects, s.max_pause_ns
/// );
/// drop(kept);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct GcStats {
    /// Bytes of allocated heap objects, including unreachable ones not yet swept.
    pub heap_alloc: usize,
    /// Bytes of address space goheap's page heap has reserved (shared with the malloc face).
    pub heap_sys: usize,
    /// Bytes in spans with no object (free pages of the page heap).
    pub heap_idle: usize,
    /// Bytes in this heap's in-use spans.
    pub heap_inuse: usize,
    /// Idle bytes returned to the OS.
    pub heap_released: usize,
    /// Allocated objects (`mallocs - frees`).
    pub heap_objects: usize,
    /// Bytes allocated over the heap's life.
    pub total_alloc: usize,
    /// Objects allocated over the heap's life.
    pub mallocs: usize,
    /// Objects freed over the heap's life.
    pub frees: usize,
    /// The heap goal: the next cycle starts when the live heap reaches it.
    pub next_gc: usize,
    /// Bytes marked live by the last cycle's tracing.
    pub last_marked: usize,
    /// Bytes the last cycle left allocated: `last_marked` plus what was allocated while it
    /// marked, up to the runway the trigger left for that (Go's `heapMarked`, which counts
    /// black allocations as marked). The goal is
    /// `heap_marked * (1 + GOGC/100)` (at least 4 MiB * GOGC/100), under any memory limit.
    pub heap_marked: usize,
    /// Completed cycles.
    pub num_gc: u32,
    /// Cycles run by `Heap::collect`.
    pub num_forced_gc: u32,
    /// Total time mutators spent blocked by the collector, nanoseconds. Nothing stops the
    /// world; a *pause* is any time a mutator thread waits for the collector, measured in
    /// the mutator: a session entry waiting for a cache flush, a lazy sweep, a weak upgrade
    /// waiting for mark termination.
    pub pause_total_ns: u64,
    /// The longest pause of each recent cycle, oldest first (at most 256), nanoseconds.
    pub pause_ns: Vec<u64>,
    /// The longest pause so far, nanoseconds.
    pub max_pause_ns: u64,
    /// The longest pause and the total of each kind (a session entry's wait, a mark assist,
    /// a sweep, a weak upgrade's wait).
    pub pauses: PauseBreakdown,
    /// Every pause so far by length.
    pub pause_histogram: PauseHistogram,
    /// End of the last cycle, nanoseconds since the Unix epoch (0 if none).
    pub last_gc: u64,
    /// Fraction of the program's available CPU time used by the collector since the heap
    /// was made (Go's `GCCPUFraction`: over wall time times the cores): mark workers, the
    /// collector thread, and the mutators' assists and sweeps.
    pub gc_cpu_fraction: f64,
    /// The last cycle that ended with the GC CPU limiter on, 0 if none (Go's
    /// `/gc/limiter/last-enabled:gc-cycle`): while it is on, assists are off, so that the
    /// collector takes at most about half of the CPU and the heap may pass its memory limit.
    pub gc_cpu_limiter_last_on: u32,
    /// GOGC in effect.
    pub gc_percent: i32,
    /// Memory limit in effect (`i64::MAX` for none).
    pub memory_limit: i64,
    /// Live roots.
    pub roots: usize,
}

pub(crate) fn read(h: &HeapInner) -> GcStats {
    let (num_gc, num_forced, cpu, last_gc, last, pauses, limiter_last_on) = {
        let g = h.cycle.stats.lock().unwrap();
        (
            g.num_gc,
            g.num_forced,
            g.gc_cpu_ns,
            g.last_gc_unix_ns,
            g.last,
            g.pauses.recent(),
            g.limiter_last_on,
        )
    };
    let pauses_now = &h.mutators.pauses;
    let cpu = cpu + pauses_now.total();
    let c = &h.counters;
    let total_alloc = c.total_alloc.load(Ordering::Relaxed);
    let freed = c.freed_bytes.load(Ordering::Relaxed);
    let mallocs = c.mallocs.load(Ordering::Relaxed);
    let frees = c.frees.load(Ordering::Relaxed);
    let (_total, free, scav) = crate::heap::page_counts();
    let page = crate::sizeclass::PAGE_SIZE;
    let elapsed = h.start.elapsed().as_nanos() as f64 * h.procs as f64;
    GcStats {
        heap_alloc: total_alloc.saturating_sub(freed),
        heap_sys: crate::heap::COUNTERS.sys.load(Ordering::Relaxed),
        heap_idle: free * page,
        heap_inuse: c.span_bytes.load(Ordering::Relaxed),
        heap_released: scav * page,
        heap_objects: mallocs.saturating_sub(frees),
        total_alloc,
        mallocs,
        frees,
        next_gc: h.pacer.goal(),
        last_marked: last.marked,
        heap_marked: h.pacer.heap_marked(),
        num_gc,
        num_forced_gc: num_forced,
        pause_total_ns: pauses_now.total(),
        max_pause_ns: pauses_now.max(),
        pauses: pauses_now.breakdown(),
        pause_histogram: pauses_now.histogram(),
        pause_ns: pauses,
        last_gc,
        gc_cpu_fraction: if elapsed > 0.0 {
            cpu as f64 / elapsed
        } else {
            0.0
        },
        gc_cpu_limiter_last_on: limiter_last_on,
        gc_percent: h.pacer.gc_percent.load(Ordering::Relaxed),
        memory_limit: h.pacer.mem_limit.load(Ordering::Relaxed),
        roots: h.roots.lock().len(),
    }
}

/// Go's `fmtNSAsMS`: whole milliseconds from 10 ms up, else two significant digits with
/// at most three decimals.
pub fn fmt_ns_as_ms(ns: u64) -> String {
    if ns >= 10_000_000 {
        return (ns / 1_000_000).to_string();
    }
    let mut x = ns / 1000;
    if x == 0 {
        return "0".into();
    }
    let mut dec = 3;
    while x >= 100 {
        x /= 10;
        dec -= 1;
    }
    itoa_div(x, dec)
}

/// Go's `itoaDiv`: `val / 10^dec` with `dec` decimals.
fn itoa_div(mut val: u64, dec: usize) -> String {
    let mut buf = [0u8; 24];
    let mut i = buf.len() - 1;
    let idec = i as isize - dec as isize;
    while val >= 10 || i as isize >= idec {
        buf[i] = b'0' + (val % 10) as u8;
        i -= 1;
        if i as isize == idec {
            buf[i] = b'.';
            i -= 1;
        }
        val /= 10;
    }
    buf[i] = b'0' + val as u8;
    String::from_utf8_lossy(&buf[i..]).into_owned()
}

/// The gctrace line of a cycle, in the format of Go's `GODEBUG=gctrace=1`. The first and
/// last clock fields are sweep and mark termination, which stop nothing here (the
/// collector thread runs them alone, so their CPU is their clock time); the background
/// mark CPU is the mark's clock time on each of its workers (fractional marking on the
/// mutators' threads counts with their pauses, in the utilisation figure).
pub(crate) fn gctrace_line(g: &GcState, r: &CycleRecord, elapsed_ns: u64) -> String {
    let p = r.procs as u64;
    let util = if elapsed_ns > 0 {
        (g.gc_cpu_ns as f64 / (elapsed_ns as f64 * p as f64) * 100.0) as u64
    } else {
        0
    };
    let mut s = format!(
        "gc {} @{}s {}%: {}+{}+{} ms clock, {}+{}/{}/{}+{} ms cpu, {}->{}->{} MB, {} MB goal, 0 MB stacks, 0 MB globals, {} P",
        g.num_gc,
        itoa_div(r.start_ns / 1_000_000, 3),
        util,
        fmt_ns_as_ms(r.stw1_ns),
        fmt_ns_as_ms(r.mark_ns),
        fmt_ns_as_ms(r.stw2_ns),
        fmt_ns_as_ms(r.stw1_ns),
        fmt_ns_as_ms(0),
        fmt_ns_as_ms(r.worker_ns),
        fmt_ns_as_ms(0),
        fmt_ns_as_ms(r.stw2_ns),
        r.heap0 >> 20,
        r.heap1 >> 20,
        r.marked >> 20,
        r.goal >> 20,
        r.procs
    );
    if r.forced {
        s.push_str(" (forced)");
    }
    s
}

pub(crate) fn print_line(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_number_format() {
        // Values checked against Go 1.19's fmtNSAsMS.
        assert_eq!(fmt_ns_as_ms(0), "0");
        assert_eq!(fmt_ns_as_ms(999), "0");
        assert_eq!(fmt_ns_as_ms(12_000), "0.012");
        assert_eq!(fmt_ns_as_ms(39_000), "0.039");
        assert_eq!(fmt_ns_as_ms(850_000), "0.85");
        assert_eq!(fmt_ns_as_ms(4_000_000), "4.0");
        assert_eq!(fmt_ns_as_ms(9_999_999), "9.9");
        assert_eq!(fmt_ns_as_ms(16_000_000), "16");
        assert_eq!(fmt_ns_as_ms(1_234_000_000), "1234");
        assert_eq!(itoa_div(51, 3), "0.051");
        assert_eq!(itoa_div(12345, 3), "12.345");
        assert_eq!(itoa_div(7, 0), "07"); // as Go's itoaDiv (never reached by fmtNSAsMS)
    }

    #[test]
    fn gctrace_matches_go_format() {
        let g = GcState {
            num_gc: 6,
            num_forced: 0,
            gc_cpu_ns: 12_000_000,
            pauses: PauseRing::default(),
            last: CycleRecord::default(),
            last_gc_unix_ns: 0,
            limiter_last_on: 0,
        };
        let r = CycleRecord {
            start_ns: 51_000_000,
            stw1_ns: 12_000,
            mark_ns: 16_000_000,
            stw2_ns: 39_000,
            heap0: 23 << 20,
            heap1: 29 << 20,
            marked: 19 << 20,
            goal: 27 << 20,
            procs: 2,
            workers: 2,
            worker_ns: 32_000_000,
            fractional_ppm: 0,
            forced: false,
        };
        let line = gctrace_line(&g, &r, 51_000_000);
        assert_eq!(
            line,
            "gc 6 @0.051s 11%: 0.012+16+0.039 ms clock, 0.012+0/32/0+0.039 ms cpu, 23->29->19 MB, 27 MB goal, 0 MB stacks, 0 MB globals, 2 P"
        );
        let r = CycleRecord { forced: true, ..r };
        assert!(gctrace_line(&g, &r, 51_000_000).ends_with(" 2 P (forced)"));
    }
}
