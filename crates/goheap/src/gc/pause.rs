//! Pauses, measured where they are felt: in the mutator.
//!
//! Nothing stops the world, so goheap has no stop-the-world phase to time. A *pause* is any
//! stretch in which a mutator thread, inside the heap's code, waits for the collector or
//! does the collector's work instead of its own. There are five kinds:
//!
//! ```text
//!   SessionEntry  a session entry waited while the collector held the mutator's claim
//!                 (flushing its caches)                                 mutator.rs
//!   Assist        a mark assist: marking paid for by an allocation      alloc.rs
//!   Sweep         a lazy or proportional sweep by an allocation         alloc.rs
//!   WeakUpgrade   a weak upgrade waited for mark termination's verdict  mutator.rs
//!   Fractional    a slice of the background mark, marked on the mutator's
//!                 thread while mutators fill the cores                  fractional.rs
//! ```
//!
//! Each kind keeps its longest pause, its total and its count; one more maximum covers the current
//! cycle (taken by the cycle's record, for gctrace and `GcStats::pause_ns`). Time the OS
//! takes the thread away in the middle of such a stretch counts too: the issue is what the
//! program sees, not what the collector meant.
//!
//! # A pause never sleeps on a collector thread
//!
//! On a machine whose cores are all busy, a mutator that sleeps on a lock or a futex word
//! held by one of the collector's threads waits until the kernel next runs that thread:
//! milliseconds, not microseconds. binary-trees 21 with one mutator on two cores made 87
//! pauses of 0.5 ms or more, almost all of them sleeps (counted with getrusage's voluntary
//! context switches around each long pause): assists behind the work queue's lock and the
//! gate mark termination closes, lazy sweeps behind the sweep-token mutex. So nothing in a
//! pause waits for a collector thread: sweep tokens are an atomic count
//! (`sweep_tokens.rs`); an assist skips its work when mark termination holds the gate
//! (`Gate::try_read`), takes a buffer only if the queue's lock is free, and traces a span
//! more rather than wait to hand its rest over (`mark::help`). After that: 2 pauses of
//! 0.5 ms or more in 600,000, both the kernel preempting the mutator. What remains is
//! preemption when there are more runnable threads than cores (two mutators and a mark
//! worker on two cores), which no protocol of ours can remove.
//!
//! Cost: one `Instant::now()` at each end and four relaxed atomic updates per pause; a pause
//! is at least a span's sweep, so this is never on an allocation's fast path.

use core::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// What held a mutator up (module essay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PauseCause {
    SessionEntry = 0,
    Assist = 1,
    Sweep = 2,
    WeakUpgrade = 3,
    Fractional = 4,
}

const CAUSES: usize = 5;

impl PauseCause {
    /// The name reports and the timeline give it.
    pub fn name(self) -> &'static str {
        match self {
            PauseCause::SessionEntry => "session entry",
            PauseCause::Assist => "assist",
            PauseCause::Sweep => "sweep",
            PauseCause::WeakUpgrade => "weak upgrade",
            PauseCause::Fractional => "fractional",
        }
    }
}

/// Pause accounting of one heap. Every field is written by mutators (relaxed atomics: the
/// figures are statistics, read without ordering by `GcStats` and the cycle record).
pub(crate) struct Pauses {
    /// Longest pause of each cause, nanoseconds.
    max_ns: [AtomicU64; CAUSES],
    /// Total pause time of each cause, nanoseconds.
    total_ns: [AtomicU64; CAUSES],
    /// Pauses of each cause.
    count: [AtomicU64; CAUSES],
    /// Pauses of any cause by length (`PauseHistogram`).
    hist: [AtomicU64; BUCKETS],
    /// Longest pause of any cause since the last cycle ended; the collector thread takes
    /// and zeroes it in each cycle's record.
    cycle_max_ns: AtomicU64,
    /// Pauses this long or longer are printed on stderr (`GOHEAP_DEBUG=longpause`;
    /// `u64::MAX`: none). Set once when the heap is made.
    report_ns: AtomicU64,
}

/// The longest pause and the total, per cause, in nanoseconds (`GcStats::pauses`).
///
/// ```
/// use goheap::gc::Heap;
///
/// let heap = Heap::new();
/// heap.mutator().enter(|cx| {
///     for i in 0..10_000u64 {
///         cx.alloc(i);
///     }
/// });
/// heap.collect();
/// let p = heap.stats().pauses;
/// for (cause, f) in [
///     ("session entry", p.session_entry),
///     ("assist", p.assist),
///     ("sweep", p.sweep),
///     ("weak upgrade", p.weak_upgrade),
/// ] {
///     println!("{cause}: {} pauses, longest {} ns", f.count, f.max_ns);
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PauseBreakdown {
    /// Session entries that waited for the collector to flush the mutator's caches.
    pub session_entry: PauseFigures,
    /// Mark assists charged to allocations.
    pub assist: PauseFigures,
    /// Lazy and proportional sweeps done by allocations.
    pub sweep: PauseFigures,
    /// Weak upgrades that waited for mark termination.
    pub weak_upgrade: PauseFigures,
    /// Slices of the background mark run on the mutator's thread (fractional marking).
    pub fractional: PauseFigures,
}

/// The pauses of one cause: the longest and the total (nanoseconds), and how many.
///
/// ```
/// use goheap::gc::Heap;
///
/// let heap = Heap::new();
/// heap.mutator().enter(|cx| {
///     cx.alloc(1u64);
/// });
/// heap.collect();
/// let sweep = heap.stats().pauses.sweep;
/// assert!(sweep.max_ns <= sweep.total_ns);
/// assert!(sweep.count > 0 || sweep.total_ns == 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PauseFigures {
    /// The longest pause, nanoseconds.
    pub max_ns: u64,
    /// All pauses together, nanoseconds.
    pub total_ns: u64,
    /// How many pauses.
    pub count: u64,
}

/// Buckets of the pause histogram: bucket 0 holds pauses under 1 us, bucket `i > 0` those of
/// `[2^(i-1), 2^i)` us, the last everything longer.
pub const BUCKETS: usize = 32;

fn bucket(ns: u64) -> usize {
    ((64 - (ns / 1000).leading_zeros()) as usize).min(BUCKETS - 1)
}

/// Every pause so far by length, in powers of two of microseconds (`GcStats::pause_histogram`).
///
/// ```
/// use goheap::gc::Heap;
///
/// let heap = Heap::new();
/// heap.mutator().enter(|cx| {
///     for i in 0..10_000u64 {
///         cx.alloc(i);
///     }
/// });
/// heap.collect();
/// let h = heap.stats().pause_histogram;
/// assert_eq!(h.at_least_us(0), h.total());
/// println!(
///     "{} pauses; p99 under {} us; {} of 1 ms or more",
///     h.total(),
///     h.quantile_us(0.99),
///     h.at_least_us(1000)
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PauseHistogram {
    /// `counts[0]`: pauses under 1 us; `counts[i]`: pauses of `[2^(i-1), 2^i)` us.
    pub counts: [u64; BUCKETS],
}

impl Default for PauseHistogram {
    fn default() -> Self {
        PauseHistogram {
            counts: [0; BUCKETS],
        }
    }
}

impl PauseHistogram {
    /// Pauses counted.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// heap.mutator().enter(|cx| {
    ///     for i in 0..1000u64 {
    ///         cx.alloc(i);
    ///     }
    /// });
    /// heap.collect();
    /// let h = heap.stats().pause_histogram;
    /// assert_eq!(h.total(), h.counts.iter().sum::<u64>());
    /// ```
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Pauses at least `us` microseconds long, to the bucket: every pause in the bucket that
    /// holds `us` and above (exact when `us` is a power of two).
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// heap.mutator().enter(|cx| {
    ///     for i in 0..1000u64 {
    ///         cx.alloc(i);
    ///     }
    /// });
    /// heap.collect();
    /// let h = heap.stats().pause_histogram;
    /// assert!(h.at_least_us(1000) <= h.at_least_us(1)); // 1 ms or more, of all
    /// ```
    pub fn at_least_us(&self, us: u64) -> u64 {
        self.counts[bucket(us * 1000)..].iter().sum()
    }

    /// An upper bound, in microseconds, of the `q` quantile (0 < q <= 1) of pause length:
    /// the top of the bucket that holds it.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// heap.mutator().enter(|cx| {
    ///     for i in 0..1000u64 {
    ///         cx.alloc(i);
    ///     }
    /// });
    /// heap.collect();
    /// let h = heap.stats().pause_histogram;
    /// let p99 = h.quantile_us(0.99);
    /// assert!(h.total() == 0 || p99.is_power_of_two()); // the top of a bucket
    /// ```
    pub fn quantile_us(&self, q: f64) -> u64 {
        let want = (self.total() as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want && *c > 0 {
                return 1 << i;
            }
        }
        0
    }
}

/// One line on stderr for a long pause (`GOHEAP_DEBUG=longpause`): what, how long, the
/// thread's kernel id and the end on `CLOCK_MONOTONIC`, the clock `perf sched record -k
/// CLOCK_MONOTONIC` stamps its events with, so that `perf sched timehist` shows what ran on
/// the thread's core instead (design.md §11, Pauses).
#[cold]
fn report(cause: PauseCause, ns: u64) {
    eprintln!(
        "goheap: pause {} {} us, tid {}, ended {} ns CLOCK_MONOTONIC",
        cause.name(),
        ns / 1000,
        crate::os::thread_id(),
        crate::os::now_ns()
    );
}

/// A pause in progress; it is recorded when dropped.
pub(crate) struct PauseTimer<'a> {
    pauses: &'a Pauses,
    cause: PauseCause,
    start: Instant,
}

impl Drop for PauseTimer<'_> {
    fn drop(&mut self) {
        let ns = self.start.elapsed().as_nanos() as u64;
        self.pauses.note(self.cause, ns);
        super::timeline::pause(self.cause, self.start, ns);
    }
}

impl Pauses {
    pub const fn new() -> Pauses {
        Pauses {
            max_ns: [const { AtomicU64::new(0) }; CAUSES],
            total_ns: [const { AtomicU64::new(0) }; CAUSES],
            count: [const { AtomicU64::new(0) }; CAUSES],
            hist: [const { AtomicU64::new(0) }; BUCKETS],
            cycle_max_ns: AtomicU64::new(0),
            report_ns: AtomicU64::new(u64::MAX),
        }
    }

    /// Prints every pause of `us` microseconds or more (0: none; `GOHEAP_DEBUG=longpause`).
    pub fn report_from(&self, us: u64) {
        let ns = if us == 0 {
            u64::MAX
        } else {
            us.saturating_mul(1000)
        };
        self.report_ns.store(ns, Ordering::Relaxed);
    }

    /// Starts timing a pause of `cause`; it ends when the timer is dropped.
    pub fn timer(&self, cause: PauseCause) -> PauseTimer<'_> {
        PauseTimer {
            pauses: self,
            cause,
            start: Instant::now(),
        }
    }

    /// Records a pause of `ns` nanoseconds.
    pub fn note(&self, cause: PauseCause, ns: u64) {
        let c = cause as usize;
        self.max_ns[c].fetch_max(ns, Ordering::Relaxed);
        self.total_ns[c].fetch_add(ns, Ordering::Relaxed);
        self.count[c].fetch_add(1, Ordering::Relaxed);
        self.hist[bucket(ns)].fetch_add(1, Ordering::Relaxed);
        self.cycle_max_ns.fetch_max(ns, Ordering::Relaxed);
        if ns >= self.report_ns.load(Ordering::Relaxed) {
            report(cause, ns);
        }
    }

    /// Longest pause of any cause so far.
    pub fn max(&self) -> u64 {
        self.max_ns
            .iter()
            .map(|m| m.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// Total pause time of every cause so far.
    pub fn total(&self) -> u64 {
        self.total_ns
            .iter()
            .map(|m| m.load(Ordering::Relaxed))
            .sum()
    }

    /// Longest pause since the last call (one call per cycle).
    pub fn take_cycle_max(&self) -> u64 {
        self.cycle_max_ns.swap(0, Ordering::Relaxed)
    }

    /// Every pause so far by length.
    pub fn histogram(&self) -> PauseHistogram {
        PauseHistogram {
            counts: core::array::from_fn(|i| self.hist[i].load(Ordering::Relaxed)),
        }
    }

    /// The figures of every cause.
    pub fn breakdown(&self) -> PauseBreakdown {
        let f = |c: PauseCause| PauseFigures {
            max_ns: self.max_ns[c as usize].load(Ordering::Relaxed),
            total_ns: self.total_ns[c as usize].load(Ordering::Relaxed),
            count: self.count[c as usize].load(Ordering::Relaxed),
        };
        PauseBreakdown {
            session_entry: f(PauseCause::SessionEntry),
            assist: f(PauseCause::Assist),
            sweep: f(PauseCause::Sweep),
            weak_upgrade: f(PauseCause::WeakUpgrade),
            fractional: f(PauseCause::Fractional),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_kept_apart_and_the_cycle_maximum_resets() {
        let p = Pauses::new();
        p.note(PauseCause::Assist, 30);
        p.note(PauseCause::Assist, 10);
        p.note(PauseCause::Sweep, 50);
        let b = p.breakdown();
        let f = |max_ns, total_ns, count| PauseFigures {
            max_ns,
            total_ns,
            count,
        };
        assert_eq!(b.assist, f(30, 40, 2));
        assert_eq!(b.sweep, f(50, 50, 1));
        assert_eq!(b.session_entry, PauseFigures::default());
        assert_eq!((p.max(), p.total()), (50, 90));
        assert_eq!(p.take_cycle_max(), 50);
        assert_eq!(p.take_cycle_max(), 0);
        {
            let _t = p.timer(PauseCause::WeakUpgrade);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(p.breakdown().weak_upgrade.max_ns >= 2_000_000);
        let h = p.histogram();
        // 30, 10 and 50 ns under 1 us (bucket 0); the sleep of 2 ms or more in [1024, 2048) us
        // or above.
        assert_eq!(h.counts[0], 3);
        assert_eq!(h.total(), 4);
        assert_eq!(h.at_least_us(1024), 1);
        assert_eq!(h.quantile_us(0.5), 1);
        assert!(h.quantile_us(1.0) >= 2048);
    }

    #[test]
    fn buckets_are_powers_of_two_of_microseconds() {
        assert_eq!(bucket(999), 0);
        assert_eq!(bucket(1_000), 1);
        assert_eq!(bucket(1_999), 1);
        assert_eq!(bucket(2_000), 2);
        assert_eq!(bucket(500_000), 9); // [256, 512) us
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }
}
