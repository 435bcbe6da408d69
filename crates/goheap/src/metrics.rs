//! Metrics in the manner of Go's `runtime/metrics`: a fixed set of named values, each with
//! a description, read into caller-provided [`Sample`]s by name. Names are Go's where
//! goheap has the same quantity (`/gc/heap/live:bytes`, `/gc/pauses:seconds`,
//! `/memory/classes/heap/released:bytes`, ...); goheap's own carry a `/goheap/` prefix.
//!
//! Two scopes, as goheap has two kinds of heap:
//!
//! - [`read`]: the explicit-free heap that `GoAlloc` and the `LD_PRELOAD` library serve,
//!   with the page heap it shares with GC heaps, and the process (RSS);
//! - [`read_gc`]: one GC heap ([`crate::gc::Heap`]): its cycles, goal, live bytes, pauses and
//!   collector CPU.
//!
//! ```
//! use goheap::metrics::{read_gc, Sample, Value};
//! let heap = goheap::gc::Heap::new();
//! let mut s = [Sample::new("/gc/heap/goal:bytes"), Sample::new("/gc/pauses:seconds")];
//! read_gc(&heap, &mut s);
//! assert!(matches!(s[0].value, Value::Uint64(g) if g > 0));
//! assert!(matches!(s[1].value, Value::Histogram(_)));
//! ```
//!
//! A name not in [`all`] (or [`all_gc`]) reads as [`Value::Unsupported`], as in Go. Reading
//! allocates (the samples' histograms): it is meant for programs, not for the allocator's
//! own paths.

#[cfg(feature = "gc")]
use crate::gc::Heap;
use crate::sizeclass::CLASSES;

/// What a metric's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A count or a size: [`Value::Uint64`].
    Uint64,
    /// A ratio or a time: [`Value::Float64`].
    Float64,
    /// A distribution: [`Value::Histogram`].
    Histogram,
}

/// A metric: its name (`/path:unit`), what it means, its kind, and whether it only grows.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Description {
    /// `/path:unit`, as Go names its metrics.
    pub name: &'static str,
    /// What the value means, in a sentence.
    pub description: &'static str,
    /// The variant of [`Value`] it reads as.
    pub kind: Kind,
    /// Whether it only grows over the process's (or the heap's) life.
    pub cumulative: bool,
}

/// A distribution, as Go's `Float64Histogram`: `counts[i]` values fell in
/// `[buckets[i], buckets[i + 1])`.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Histogram {
    /// Values per bucket: one fewer than `buckets`.
    pub counts: Vec<u64>,
    /// Bucket bounds, ascending.
    pub buckets: Vec<f64>,
}

/// A metric's value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A count or a size.
    Uint64(u64),
    /// A ratio or a time (seconds).
    Float64(f64),
    /// A distribution.
    Histogram(Histogram),
    /// The name is not a metric of this scope.
    Unsupported,
}

/// A metric to read, and, after [`read`] or [`read_gc`], its value.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Sample {
    /// The metric's name, `/path:unit` (see [`all`]).
    pub name: String,
    /// Its value, after a read; [`Value::Unsupported`] before, or for an unknown name.
    pub value: Value,
}

impl Sample {
    /// A sample of the metric `name`, not read yet.
    ///
    /// ```
    /// use goheap::metrics::{read, Sample, Value};
    /// let mut s = [Sample::new("/goheap/process/rss:bytes"), Sample::new("/no/such:metric")];
    /// read(&mut s);
    /// assert!(matches!(s[0].value, Value::Uint64(b) if b > 0));
    /// assert_eq!(s[1].value, Value::Unsupported);
    /// ```
    pub fn new(name: &str) -> Sample {
        Sample {
            name: name.to_string(),
            value: Value::Unsupported,
        }
    }
}

const fn d(
    name: &'static str,
    kind: Kind,
    cumulative: bool,
    description: &'static str,
) -> Description {
    Description {
        name,
        description,
        kind,
        cumulative,
    }
}

// `F` is for the GC heap's metrics only.
#[cfg_attr(not(feature = "gc"), allow(unused_imports))]
use Kind::{Float64 as F, Histogram as H, Uint64 as U};

const HEAP: &[Description] = &[
    d(
        "/gc/heap/allocs:bytes",
        U,
        true,
        "Bytes of objects allocated (size-class rounded).",
    ),
    d("/gc/heap/allocs:objects", U, true, "Objects allocated."),
    d(
        "/gc/heap/allocs-by-size:bytes",
        H,
        true,
        "Objects allocated, by size class.",
    ),
    d("/gc/heap/frees:bytes", U, true, "Bytes of objects freed."),
    d("/gc/heap/frees:objects", U, true, "Objects freed."),
    d(
        "/gc/heap/frees-by-size:bytes",
        H,
        true,
        "Objects freed, by size class.",
    ),
    d(
        "/gc/heap/objects:objects",
        U,
        false,
        "Objects allocated and not yet freed.",
    ),
    d(
        "/memory/classes/heap/objects:bytes",
        U,
        false,
        "Bytes of live objects.",
    ),
    d(
        "/memory/classes/heap/unused:bytes",
        U,
        false,
        "Bytes in spans in use but not in objects.",
    ),
    d(
        "/memory/classes/heap/free:bytes",
        U,
        false,
        "Bytes of free pages not returned to the OS.",
    ),
    d(
        "/memory/classes/heap/released:bytes",
        U,
        false,
        "Bytes of free pages returned to the OS.",
    ),
    d(
        "/memory/classes/total:bytes",
        U,
        false,
        "Bytes of address space the heap reserved.",
    ),
    d(
        "/goheap/heap/peak-inuse:bytes",
        U,
        false,
        "The most bytes in spans in use at once.",
    ),
    d(
        "/goheap/process/rss:bytes",
        U,
        false,
        "Resident memory of the process.",
    ),
    d(
        "/goheap/process/peak-rss:bytes",
        U,
        false,
        "The most resident memory of the process.",
    ),
];

#[cfg(feature = "gc")]
const GC: &[Description] = &[
    d(
        "/gc/cycles/automatic:gc-cycles",
        U,
        true,
        "Cycles the pacer started.",
    ),
    d(
        "/gc/cycles/forced:gc-cycles",
        U,
        true,
        "Cycles Heap::collect started.",
    ),
    d("/gc/cycles/total:gc-cycles", U, true, "Completed cycles."),
    d("/gc/gogc:percent", U, false, "GOGC in effect."),
    d(
        "/gc/gomemlimit:bytes",
        U,
        false,
        "The soft memory limit in effect.",
    ),
    d(
        "/gc/heap/allocs:bytes",
        U,
        true,
        "Bytes of objects allocated.",
    ),
    d("/gc/heap/allocs:objects", U, true, "Objects allocated."),
    d(
        "/gc/heap/frees:bytes",
        U,
        true,
        "Bytes of objects swept dead.",
    ),
    d("/gc/heap/frees:objects", U, true, "Objects swept dead."),
    d(
        "/gc/heap/goal:bytes",
        U,
        false,
        "Heap size at which the next cycle should end.",
    ),
    d(
        "/gc/heap/live:bytes",
        U,
        false,
        "Bytes marked live by the last cycle.",
    ),
    d(
        "/gc/heap/objects:objects",
        U,
        false,
        "Objects allocated and not yet swept dead.",
    ),
    d(
        "/gc/pauses:seconds",
        H,
        true,
        "Times a mutator was held up by the collector, by length.",
    ),
    d(
        "/cpu/classes/gc/total:cpu-seconds",
        F,
        true,
        "CPU time the collector used.",
    ),
    d(
        "/goheap/gc/cpu-fraction:ratio",
        F,
        false,
        "Collector CPU over wall time times GOMAXPROCS (Go's GCCPUFraction).",
    ),
    d(
        "/memory/classes/heap/objects:bytes",
        U,
        false,
        "Bytes of objects allocated and not yet swept dead.",
    ),
];

/// Every metric [`read`] knows.
///
/// ```
/// for d in goheap::metrics::all() {
///     assert!(d.name.starts_with('/') && d.name.contains(':'));
/// }
/// ```
pub fn all() -> &'static [Description] {
    HEAP
}

/// Every metric [`read_gc`] knows.
///
/// ```
/// assert!(goheap::metrics::all_gc().iter().any(|d| d.name == "/gc/heap/goal:bytes"));
/// ```
#[cfg(feature = "gc")]
pub fn all_gc() -> &'static [Description] {
    GC
}

/// Per-class counts as a histogram with the class sizes as bucket bounds: bucket `i` holds
/// objects of `(size(i-1), size(i)]` bytes, the last one large objects.
fn by_size(count: impl Fn(usize) -> u64) -> Histogram {
    let mut h = Histogram::default();
    h.buckets.push(0.0);
    for (class, c) in CLASSES.iter().enumerate().skip(1) {
        h.counts.push(count(class));
        h.buckets.push(c.size as f64 + 1.0);
    }
    h.counts.push(count(0));
    h.buckets.push(f64::INFINITY);
    h
}

/// Reads the explicit-free heap's metrics (see the module essay) into `samples`.
///
/// ```
/// use goheap::metrics::{read, Sample, Value};
///
/// let mut s = [Sample::new("/goheap/process/rss:bytes")];
/// read(&mut s);
/// assert!(matches!(s[0].value, Value::Uint64(b) if b > 0));
/// ```
pub fn read(samples: &mut [Sample]) {
    let s = crate::stats::read();
    for sample in samples.iter_mut() {
        sample.value = match sample.name.as_str() {
            "/gc/heap/allocs:bytes" => Value::Uint64(s.total_alloc),
            "/gc/heap/allocs:objects" => Value::Uint64(s.mallocs),
            "/gc/heap/allocs-by-size:bytes" => Value::Histogram(by_size(|c| s.by_size[c].mallocs)),
            "/gc/heap/frees:bytes" => {
                Value::Uint64(s.total_alloc.saturating_sub(s.heap_alloc as u64))
            }
            "/gc/heap/frees:objects" => Value::Uint64(s.frees),
            "/gc/heap/frees-by-size:bytes" => Value::Histogram(by_size(|c| s.by_size[c].frees)),
            "/gc/heap/objects:objects" => Value::Uint64(s.heap_objects),
            "/memory/classes/heap/objects:bytes" => Value::Uint64(s.heap_alloc as u64),
            "/memory/classes/heap/unused:bytes" => {
                Value::Uint64(s.heap_inuse.saturating_sub(s.heap_alloc) as u64)
            }
            "/memory/classes/heap/free:bytes" => {
                Value::Uint64(s.heap_idle.saturating_sub(s.heap_released) as u64)
            }
            "/memory/classes/heap/released:bytes" => Value::Uint64(s.heap_released as u64),
            "/memory/classes/total:bytes" => Value::Uint64(s.heap_sys as u64),
            "/goheap/heap/peak-inuse:bytes" => Value::Uint64(s.peak_inuse as u64),
            "/goheap/process/rss:bytes" => Value::Uint64(crate::os::rss_bytes() as u64),
            "/goheap/process/peak-rss:bytes" => {
                Value::Uint64(crate::stats::peak_rss_bytes() as u64)
            }
            _ => Value::Unsupported,
        };
    }
}

/// Reads the metrics of the GC heap `heap` (see the module essay) into `samples`.
///
/// ```
/// use goheap::metrics::{read_gc, Sample, Value};
///
/// let heap = goheap::gc::Heap::new();
/// let mut s = [Sample::new("/gc/heap/goal:bytes")];
/// read_gc(&heap, &mut s);
/// assert!(matches!(s[0].value, Value::Uint64(g) if g > 0));
/// ```
#[cfg(feature = "gc")]
pub fn read_gc(heap: &Heap, samples: &mut [Sample]) {
    let s = heap.stats();
    let inner = &heap.inner;
    let cpu_seconds = s.gc_cpu_fraction * inner.start.elapsed().as_secs_f64() * inner.procs as f64;
    for sample in samples.iter_mut() {
        sample.value = match sample.name.as_str() {
            "/gc/cycles/automatic:gc-cycles" => {
                Value::Uint64(u64::from(s.num_gc.saturating_sub(s.num_forced_gc)))
            }
            "/gc/cycles/forced:gc-cycles" => Value::Uint64(u64::from(s.num_forced_gc)),
            "/gc/cycles/total:gc-cycles" => Value::Uint64(u64::from(s.num_gc)),
            "/gc/gogc:percent" => Value::Uint64(s.gc_percent.max(0) as u64),
            "/gc/gomemlimit:bytes" => Value::Uint64(s.memory_limit.max(0) as u64),
            "/gc/heap/allocs:bytes" => Value::Uint64(s.total_alloc as u64),
            "/gc/heap/allocs:objects" => Value::Uint64(s.mallocs as u64),
            "/gc/heap/frees:bytes" => {
                Value::Uint64(s.total_alloc.saturating_sub(s.heap_alloc) as u64)
            }
            "/gc/heap/frees:objects" => Value::Uint64(s.frees as u64),
            "/gc/heap/goal:bytes" => Value::Uint64(s.next_gc as u64),
            "/gc/heap/live:bytes" => Value::Uint64(s.last_marked as u64),
            "/gc/heap/objects:objects" => Value::Uint64(s.heap_objects as u64),
            "/gc/pauses:seconds" => {
                // GcStats' buckets: under 1 us, then [2^(i-1), 2^i) us, the last unbounded.
                let counts = s.pause_histogram.counts.to_vec();
                let mut buckets = vec![0.0];
                buckets.extend((0..counts.len() - 1).map(|i| (1u64 << i) as f64 * 1e-6));
                buckets.push(f64::INFINITY);
                Value::Histogram(Histogram { counts, buckets })
            }
            "/cpu/classes/gc/total:cpu-seconds" => Value::Float64(cpu_seconds),
            "/goheap/gc/cpu-fraction:ratio" => Value::Float64(s.gc_cpu_fraction),
            "/memory/classes/heap/objects:bytes" => Value::Uint64(s.heap_alloc as u64),
            _ => Value::Unsupported,
        };
    }
}
