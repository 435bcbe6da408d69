//! Statistics in the spirit of Go's `runtime.MemStats`, for the explicit-free heap.
//!
//! Counting is split so that the fast paths pay nothing extra:
//!
//! - objects allocated are counted per thread cache when a *window* of free objects is
//!   loaded (one add per up to 64 objects), and the objects still in a window are subtracted
//!   when the statistics are read, so the figure is exact whenever threads are quiescent;
//! - objects freed by their span's owner are not counted on the free path at all: the span's
//!   free count goes up, and `nfree - synced` of every live span is added up here (see
//!   `Span::fold_frees`); frees by other threads are counted per thread with a plain load
//!   and store (no lock prefix);
//! - page-level figures (reserved, in use, idle, released) come from the page heap.
//!
//! The counters themselves live in the leaf module `counters.rs`, which the layers below
//! (the page heap, the caches) write without calling up into this one. A thread's counters
//! move to the `RETIRED_*` totals when it exits. Reading the statistics
//! walks every cache; while other threads allocate, the figures are a consistent-enough
//! snapshot (each counter is read atomically, but not all at the same instant), as
//! mimalloc's are. The invariants that hold at any quiescent point are checked by tests:
//! `heap_inuse + heap_idle == heap_sys`, `heap_released <= heap_idle`,
//! `heap_alloc <= heap_inuse`, `mallocs - frees == heap_objects`.

use core::sync::atomic::Ordering;

use crate::cache::for_each_cache;
use crate::counters::{RETIRED_FREE, RETIRED_MALLOC};
use crate::heap::{self, COUNTERS};
use crate::sizeclass::{CLASSES, NUM_CLASSES, PAGE_SIZE};

/// Allocation counts of one size class.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;
///
/// fn main() {
///     let boxes: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
///     let s = goheap::stats();
///     let eight = s.by_size.iter().find(|c| c.size == 8).unwrap();
///     assert!(eight.mallocs - eight.frees >= 1000);
///     drop(boxes);
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClassStats {
    /// Object size of the class in bytes (0 for the large-object row).
    pub size: usize,
    /// Objects allocated, in total.
    pub mallocs: u64,
    /// Objects freed, in total.
    pub frees: u64,
}

/// A snapshot of the heap. Field names follow Go's `runtime.MemStats`. Read it with
/// [`crate::stats()`].
///
/// ```
/// let s: goheap::MemStats = goheap::stats();
/// assert_eq!(s.heap_inuse + s.heap_idle, s.heap_sys);
/// let objects: u64 = s.by_size.iter().map(|c| c.mallocs - c.frees).sum();
/// assert_eq!(objects, s.mallocs - s.frees);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MemStats {
    /// Bytes of address space reserved from the OS for the heap (arenas and huge objects).
    pub heap_sys: usize,
    /// Bytes in spans in use (holding at least one object, or owned by a thread cache).
    pub heap_inuse: usize,
    /// Bytes of the heap not in spans: `heap_sys - heap_inuse`.
    pub heap_idle: usize,
    /// Bytes of idle memory returned to the OS.
    pub heap_released: usize,
    /// Bytes of allocated objects (rounded up to their size class).
    pub heap_alloc: usize,
    /// Number of allocated objects.
    pub heap_objects: u64,
    /// Cumulative bytes allocated (size-class rounded).
    pub total_alloc: u64,
    /// Cumulative objects allocated.
    pub mallocs: u64,
    /// Cumulative objects freed.
    pub frees: u64,
    /// Cumulative bytes the scavenger returned to the OS.
    pub released_total: usize,
    /// The most bytes `heap_inuse` has been.
    pub peak_inuse: usize,
    /// Per size class; entry 0 is large objects.
    pub by_size: [ClassStats; NUM_CLASSES],
}

/// Reads the statistics (Go's `runtime.ReadMemStats`, without stopping the world).
pub fn read() -> MemStats {
    let mut by_size = [ClassStats::default(); NUM_CLASSES];
    for (class, row) in by_size.iter_mut().enumerate() {
        row.size = CLASSES[class].size as usize;
        row.mallocs = RETIRED_MALLOC[class].load(Ordering::Relaxed);
        row.frees = RETIRED_FREE[class].load(Ordering::Relaxed);
    }
    for_each_cache(|c| {
        for (class, row) in by_size.iter_mut().enumerate().skip(1) {
            let m = c.counters.nmalloc[class].load(Ordering::Relaxed);
            let held = if c.live.load(Ordering::Acquire) {
                c.window_objects(class)
            } else {
                0
            };
            row.mallocs += m.saturating_sub(held);
            row.frees += c.counters.nfree[class].load(Ordering::Relaxed);
        }
    });
    // Local frees are counted in the span they were made in (the free fast path only
    // increments the span's free count) until the span is freed.
    crate::heap::for_each_span_struct(|s| {
        let class = s.live_class();
        if class != 0 {
            by_size[class].frees += s.unfolded_frees() as u64;
        }
    });
    by_size[0].mallocs = COUNTERS.large_allocs.load(Ordering::Relaxed) as u64;
    by_size[0].frees = COUNTERS.large_frees.load(Ordering::Relaxed) as u64;

    let (_, _, scav_pages) = heap::page_counts();
    let heap_sys = COUNTERS.sys.load(Ordering::Relaxed);
    let heap_inuse = COUNTERS.inuse.load(Ordering::Relaxed);
    let mut s = MemStats {
        heap_sys,
        heap_inuse,
        heap_idle: heap_sys.saturating_sub(heap_inuse),
        heap_released: scav_pages * PAGE_SIZE,
        heap_alloc: COUNTERS.large_bytes.load(Ordering::Relaxed),
        heap_objects: 0,
        total_alloc: COUNTERS.large_total_bytes.load(Ordering::Relaxed) as u64,
        mallocs: 0,
        frees: 0,
        released_total: COUNTERS.released_total.load(Ordering::Relaxed),
        peak_inuse: COUNTERS.peak_inuse.load(Ordering::Relaxed),
        by_size,
    };
    for row in &s.by_size {
        s.mallocs += row.mallocs;
        s.frees += row.frees;
        if row.size > 0 {
            let live = row.mallocs.saturating_sub(row.frees);
            s.heap_alloc += live as usize * row.size;
            s.total_alloc += row.mallocs * row.size as u64;
        }
    }
    s.heap_objects = s.mallocs.saturating_sub(s.frees);
    s
}

/// The process's peak resident set size in bytes (`getrusage`'s `ru_maxrss`).
pub fn peak_rss_bytes() -> usize {
    // SAFETY: an all-zero `rusage` is valid, and `getrusage` fills it.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    ru.ru_maxrss as usize * 1024
}

/// `GOHEAP_STATS`: the statistics on stderr at exit, as `MIMALLOC_SHOW_STATS` prints
/// mimalloc's, for every face (`crate::startup` registers it). The page-level figures,
/// the peaks and the time since start-up, object counts, then one row per size class that
/// was ever used:
///
/// ```text
/// goheap: statistics at exit (pid 4242)
///   heap_sys       67108864  bytes reserved from the OS
///   ...
///   peak_inuse      4464640  most bytes in spans in use at once
///   peak_rss        9216000  most resident memory of the process
///   elapsed_ms          112  milliseconds since start-up
///   class     size      mallocs        frees         live
///       1        8         1520         1490           30
///   large        -            3            3            0
/// ```
///
/// Nothing here allocates (see `crate::report`).
pub fn print_at_exit(elapsed_ms: u64) {
    let mut out = crate::report::Stderr::default();
    let _ = write_report(&mut out, elapsed_ms);
    out.flush();
}

fn write_report(w: &mut impl core::fmt::Write, elapsed_ms: u64) -> core::fmt::Result {
    let s = read();
    // SAFETY: `getpid` has no preconditions.
    let pid = unsafe { libc::getpid() };
    writeln!(w, "goheap: statistics at exit (pid {pid})")?;
    let rows: [(&str, u64, &str); 13] = [
        ("heap_sys", s.heap_sys as u64, "bytes reserved from the OS"),
        ("heap_inuse", s.heap_inuse as u64, "bytes in spans in use"),
        ("heap_idle", s.heap_idle as u64, "bytes in free pages"),
        (
            "heap_released",
            s.heap_released as u64,
            "bytes of free pages returned to the OS",
        ),
        (
            "heap_alloc",
            s.heap_alloc as u64,
            "bytes in live objects (class-rounded)",
        ),
        ("heap_objects", s.heap_objects, "live objects"),
        ("total_alloc", s.total_alloc, "bytes allocated in total"),
        ("mallocs", s.mallocs, "objects allocated"),
        ("frees", s.frees, "objects freed"),
        (
            "released_total",
            s.released_total as u64,
            "bytes returned to the OS in total",
        ),
        (
            "peak_inuse",
            s.peak_inuse as u64,
            "most bytes in spans in use at once",
        ),
        (
            "peak_rss",
            peak_rss_bytes() as u64,
            "most resident memory of the process",
        ),
        ("elapsed_ms", elapsed_ms, "milliseconds since start-up"),
    ];
    for (name, value, what) in rows {
        writeln!(w, "  {name:<15}{value:>14}  {what}")?;
    }
    // Only a `lock-count` build counts (bench/malloc/run.py --lock-count-goheap reads these).
    #[cfg(all(feature = "lock-count", not(loom)))]
    {
        let l = crate::lock_counts();
        let locks: [(&str, u64, &str); 4] = [
            ("lock_acquired", l.acquired, "allocator mutex acquisitions"),
            ("lock_page_heap", l.page_heap, "of them the page heap's"),
            ("lock_central", l.central, "of them the central lists'"),
            (
                "lock_contended",
                l.contended,
                "acquisitions that found the lock held",
            ),
        ];
        for (name, value, what) in locks {
            writeln!(w, "  {name:<15}{value:>14}  {what}")?;
        }
    }
    writeln!(
        w,
        "  {:>5} {:>8} {:>12} {:>12} {:>12}",
        "class", "size", "mallocs", "frees", "live"
    )?;
    for class in (1..NUM_CLASSES).chain(core::iter::once(0)) {
        let row = &s.by_size[class];
        if row.mallocs == 0 {
            continue;
        }
        let live = row.mallocs.saturating_sub(row.frees);
        if class == 0 {
            write!(w, "  {:>5} {:>8}", "large", "-")?;
        } else {
            write!(w, "  {class:>5} {:>8}", CLASSES[class].size)?;
        }
        writeln!(w, " {:>12} {:>12} {:>12}", row.mallocs, row.frees, live)?;
    }
    Ok(())
}
