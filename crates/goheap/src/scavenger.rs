//! The scavenger: returns free pages to the OS (Go's `mgcscavenge.go`).
//!
//! Free pages stay mapped after their span is freed, so that the next span can reuse them
//! without a page fault. The scavenger decides how many of them to give back with
//! `madvise(MADV_DONTNEED)`:
//!
//! - **Goal.** Keep at most `max(heap_inuse / 10, 4 MiB)` of free, unscavenged memory: the
//!   10% matches Go's `retainExtraPercent`, the floor keeps tiny heaps from churning.
//! - **Pacing.** A background thread works in runs of at most 4 MiB and after each run
//!   sleeps 99 times as long as the run took, so it uses about 1% of one CPU (Go's
//!   `scavengePercent`). With nothing to do it sleeps for [`IDLE_SLEEP`].
//! - **Central sweep.** Once a second the thread also frees the empty spans in the central
//!   lists (spans that exited threads handed over and that other threads then emptied), so
//!   their pages become reusable and, if unused, released.
//! - **On demand.** [`crate::release_memory`] (Go's `debug.FreeOSMemory`) returns every free
//!   page at once, after handing back empty spans from the caller's cache and the central
//!   lists.
//!
//! The thread starts on the first heap growth, from an allocation slow path with no lock
//! held, and can be disabled with `GOHEAP_SCAVENGER=off`.
//!
//! - **Synchronous mode.** A library that must not start threads behind its host's back
//!   (the malloc face: a C program does not expect `malloc` to spawn one) calls
//!   [`set_background(false)`](set_background) before its first allocation. Then whoever
//!   returns pages to the page heap checks the goal on the spot, and when more than
//!   [`SYNC_SLACK`] is over it, releases up to one run (4 MiB) before returning, as glibc's
//!   `free` trims its heap and as Go scavenges synchronously when the heap grows.

use core::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::heap::{self, COUNTERS};
use crate::sizeclass::PAGE_SIZE;

/// Fraction of one CPU the background scavenger may use, in percent.
pub const SCAVENGE_PERCENT: u32 = 1;
/// Largest run released per `madvise` call: 512 pages = 4 MiB.
const RUN_PAGES: usize = 512;
/// Sleep when the goal is met.
const IDLE_SLEEP: Duration = Duration::from_millis(100);
/// How often the background thread returns the central lists' empty spans to the page heap.
const CENTRAL_SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// Free unscavenged memory always allowed.
const RETAIN_FLOOR: usize = 4 << 20;

static STARTED: AtomicBool = AtomicBool::new(false);
/// False once `set_background(false)` was called.
static BACKGROUND: AtomicBool = AtomicBool::new(true);
/// In synchronous mode, how far over the goal free memory may go before a free releases
/// some: enough that a program cycling through a few MiB never pays for `madvise`.
pub const SYNC_SLACK: usize = 16 << 20;

/// Chooses between the background thread (the default) and synchronous scavenging.
/// Call before the first allocation; the thread, once started, is not stopped.
pub fn set_background(enabled: bool) {
    BACKGROUND.store(enabled, Ordering::Relaxed);
}

/// True when frees must scavenge for themselves (no background thread).
#[inline]
pub fn synchronous() -> bool {
    !BACKGROUND.load(Ordering::Relaxed)
}

/// Bytes a free in synchronous mode should release now (0 while within [`SYNC_SLACK`] of the
/// goal), from the page counts it read under the heap lock.
pub fn sync_excess(inuse: usize, free_pages: usize, scavenged_pages: usize) -> usize {
    if !synchronous() {
        return 0;
    }
    match excess_bytes(inuse, free_pages, scavenged_pages) {
        e if e >= SYNC_SLACK => e.min(RUN_PAGES * PAGE_SIZE),
        _ => 0,
    }
}

/// Releases what [`sync_excess`] asked for (no lock held).
pub fn sync_release(bytes: usize) {
    if bytes > 0 {
        heap::scavenge(bytes, RUN_PAGES);
    }
}

/// Bytes of free, unscavenged memory the scavenger should release now to meet its goal.
/// Exported for tests: the policy is a pure function of the page counts.
pub fn excess_bytes(inuse: usize, free_pages: usize, scavenged_pages: usize) -> usize {
    let dirty = (free_pages - scavenged_pages) * PAGE_SIZE;
    let retain = (inuse / 10).max(RETAIN_FLOOR);
    dirty.saturating_sub(retain)
}

/// How long to sleep after a run that took `work`, to stay at `SCAVENGE_PERCENT` of a CPU.
pub fn pace(work: Duration) -> Duration {
    work * (100 / SCAVENGE_PERCENT - 1)
}

/// Forgets the background thread (in a forked child, where it does not exist), so that the
/// next heap growth starts a new one.
pub fn forget_thread() {
    STARTED.store(false, Ordering::Relaxed);
}

/// Starts the background scavenger once the heap has grown. Cheap to call often.
#[inline]
pub fn ensure_started() {
    if STARTED.load(Ordering::Relaxed) || !heap::has_grown() {
        return;
    }
    start();
}

#[cold]
fn start() {
    if STARTED.swap(true, Ordering::AcqRel) || synchronous() {
        return;
    }
    if std::env::var_os("GOHEAP_SCAVENGER").is_some_and(|v| v == "off" || v == "0") {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("goheap-scavenger".into())
        .spawn(run);
}

fn run() {
    let mut last_sweep = Instant::now();
    loop {
        if last_sweep.elapsed() >= CENTRAL_SWEEP_PERIOD {
            // Spans that exited threads handed to the central lists become empty when other
            // threads free their objects, and nobody else would notice: give them back to the
            // page heap so that their pages can be reused or released (Go's sweeper frees
            // empty spans the same way).
            for central in &crate::central::CENTRAL {
                central.free_empty_spans();
            }
            last_sweep = Instant::now();
        }
        let (_, free, scav) = heap::page_counts();
        let want = excess_bytes(COUNTERS.inuse.load(Ordering::Relaxed), free, scav);
        if want == 0 {
            std::thread::sleep(IDLE_SLEEP);
            continue;
        }
        let t = Instant::now();
        let done = heap::scavenge(want.min(RUN_PAGES * PAGE_SIZE), RUN_PAGES);
        if done == 0 {
            std::thread::sleep(IDLE_SLEEP);
            continue;
        }
        std::thread::sleep(pace(t.elapsed()).max(Duration::from_micros(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goal_keeps_a_tenth_of_inuse_or_the_floor() {
        let mib = 1 << 20;
        let pages = |bytes: usize| bytes / PAGE_SIZE;
        // 100 MiB in use: 10 MiB of dirty free memory may stay.
        assert_eq!(excess_bytes(100 * mib, pages(30 * mib), 0), 20 * mib);
        assert_eq!(excess_bytes(100 * mib, pages(30 * mib), pages(25 * mib)), 0);
        // Small heap: the 4 MiB floor.
        assert_eq!(excess_bytes(mib, pages(6 * mib), 0), 2 * mib);
        assert_eq!(excess_bytes(0, 0, 0), 0);
    }

    #[test]
    fn pacing_is_one_percent() {
        assert_eq!(pace(Duration::from_millis(2)), Duration::from_millis(198));
    }
}
