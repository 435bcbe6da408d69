//! The scavenger: returns free pages to the OS (Go's `mgcscavenge.go`).
//!
//! Free pages stay mapped after their span is freed, so that the next span can reuse them
//! without a page fault. The scavenger decides how many of them to give back with
//! `madvise(MADV_DONTNEED)`:
//!
//! - **Goal.** Keep at most `max(heap_inuse / 10, 4 MiB, 1.1 * gc_goals - heap_inuse)` of
//!   free, unscavenged memory, where `gc_goals` is the sum of the heap goals of the
//!   process's GC heaps ([`GC_GOALS`]). The 10% matches Go's `retainExtraPercent`; the last
//!   term is Go's `gcPercentGoal`: a collected heap grows back to its goal before the next
//!   cycle, so the pages it freed below 10% over the goal are kept for that (releasing them
//!   would cost a page fault each when they are reused), and everything above goes back.
//!   When a cycle finds the live heap much smaller, its goal drops with it, and the spans
//!   its sweep frees are released. The floor keeps tiny heaps from churning.
//! - **Pacing.** A background thread works in runs of at most 4 MiB and after each run
//!   sleeps 99 times the CPU time the run took, so it uses about 1% of one CPU (Go's
//!   `scavengePercent`). That sleep is taken only while there is memory to release.
//! - **Idle.** With nothing to do the thread sleeps in the kernel, untimed, until a producer
//!   of work wakes it (below). It never wakes up to look.
//! - **Central sweep.** The thread also frees the empty spans in the central lists (spans
//!   that exited threads handed over and that other threads then emptied), so their pages
//!   become reusable and, if unused, released; at most once a second, and only after a free
//!   into a centrally owned span or a hand-over to central (the only ways such a span can
//!   become empty) raised [`CENTRAL_FREES`].
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
//!
//! # Sleeping and waking
//!
//! The idle thread sleeps on [`PARKER`] ([`crate::sync::Parker`]: a futex word) and is woken
//! only on a change of state, never per allocation or per free:
//!
//! - **Pages.** Every release of the page-heap lock ([`crate::heap::lock`]'s guard) asks
//!   [`wake_due`]: one relaxed load of the parker's state while the thread is awake (or not
//!   started, or in synchronous mode); while it sleeps, also the goal arithmetic on the page
//!   counts the lock guards. Only when free unscavenged memory is at least [`WAKE_SLACK`]
//!   over the goal does the releaser claim the wake-up (an atomic swap of the state, so of
//!   all the releasers only the first pays) and make the futex call, after dropping the lock.
//!   The slack keeps a program whose free memory hovers at the goal from waking the thread
//!   for every span; once awake it releases down to the goal. Every way free pages grow or
//!   `heap_inuse` shrinks (span and large frees, page-cache flushes, the collector's span
//!   frees) ends with such a release of the lock, and `heap_inuse` is lowered before it.
//! - **Central frees.** [`central_freed`] raises [`CENTRAL_FREES`] ([`crate::sync::Signal`]),
//!   which wakes the thread on the raise that finds the flag down; further raises before the
//!   thread lowers it again are one load each.
//!
//! **No lost wake-up.** The thread, about to sleep, first marks itself asleep
//! (`Parker::prepare`, `SeqCst`), then re-checks both conditions: the page counts under the
//! heap lock, then the flag. A page producer changes the counts under the same lock and reads
//! the state before releasing it. If the producer's critical section came first, the re-check
//! sees its counts and the thread does not sleep; if the re-check's came first, its lock
//! release orders the "asleep" mark before the producer's read, which therefore sees it and
//! wakes the thread (the kernel compares the futex word before sleeping, so a wake that comes
//! before the futex call is not lost either). A central producer's raise (`SeqCst` swap) and
//! read of the state (`SeqCst`) against the thread's mark and its read of the flag (both
//! `SeqCst`) are Dekker's handshake: one side sees the other. The thread checks a flag it then
//! lowers before sweeping, and what the freers wrote before raising is visible to the sweep
//! (`Signal`'s essay). The protocols are modelled with loom (`tests/loom.rs`, models (f) to
//! (h)).
//!
//! The remaining timed sleeps are both pacing of known work, never a poll: the 99x sleep
//! after a run of releasing, and the wait until a second has passed since the last central
//! sweep when a new one is due.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::heap::{self, COUNTERS};
use crate::pagealloc::PageAlloc;
use crate::sizeclass::PAGE_SIZE;
use crate::sync::{Parker, Signal};

/// Fraction of one CPU the background scavenger may use, in percent.
pub const SCAVENGE_PERCENT: u32 = 1;
/// Largest run released per `madvise` call: 512 pages = 4 MiB.
const RUN_PAGES: usize = 512;
/// How far free unscavenged memory must exceed the goal before a release of the heap lock
/// wakes the sleeping thread: 1 MiB.
pub const WAKE_SLACK: usize = 1 << 20;
/// The least time between two sweeps of the central lists.
const CENTRAL_SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// Free unscavenged memory always allowed.
const RETAIN_FLOOR: usize = 4 << 20;
/// Sum of the heap goals of the process's GC heaps that have one (GOGC on), in bytes.
/// Each heap's pacer adds its goal when it is made and moves its share with every new goal
/// ([`gc_goal_changed`]); read by the goal arithmetic ([`excess_bytes`]).
pub static GC_GOALS: AtomicUsize = AtomicUsize::new(0);

/// A GC heap's goal moved from `old` to `new` (`usize::MAX`, or 0, for none: GOGC off, a
/// new or a dropped heap). The scavenger notices at the next release of the heap lock,
/// which the sweep that follows a cycle makes when it frees spans.
pub fn gc_goal_changed(old: usize, new: usize) {
    if old != usize::MAX && old != 0 {
        GC_GOALS.fetch_sub(old, Ordering::Relaxed);
    }
    if new != usize::MAX && new != 0 {
        GC_GOALS.fetch_add(new, Ordering::Relaxed);
    }
}

static STARTED: AtomicBool = AtomicBool::new(false);
/// Where the background thread sleeps when it has nothing to do (module essay).
static PARKER: Parker = Parker::new();
/// Raised when a centrally owned span may have become empty (module essay).
pub static CENTRAL_FREES: Signal = Signal::new();
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
pub fn excess_bytes(inuse: usize, free_pages: usize, scavenged_pages: usize) -> usize {
    excess_with_goals(
        inuse,
        GC_GOALS.load(Ordering::Relaxed),
        free_pages,
        scavenged_pages,
    )
}

/// [`excess_bytes`] with the GC heaps' goals given: the policy is a pure function of the
/// page counts and the goals (module essay), exported for tests.
pub fn excess_with_goals(
    inuse: usize,
    gc_goals: usize,
    free_pages: usize,
    scavenged_pages: usize,
) -> usize {
    let dirty = (free_pages - scavenged_pages) * PAGE_SIZE;
    let over_goals = gc_goals.saturating_add(gc_goals / 10).saturating_sub(inuse);
    let retain = (inuse / 10).max(RETAIN_FLOOR).max(over_goals);
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
    PARKER.reset();
}

/// Called with the page-heap lock held, just before it is released: true if the background
/// thread sleeps and there is now enough to release that it should be woken, in which case
/// the caller (the one releaser that claimed it) calls [`wake_claimed`] once the lock is
/// released. One relaxed load while the thread is awake.
#[inline]
pub fn wake_due(pages: &PageAlloc) -> bool {
    PARKER.is_asleep() && wake_due_slow(pages)
}

#[cold]
fn wake_due_slow(pages: &PageAlloc) -> bool {
    excess_bytes(
        COUNTERS.inuse.load(Ordering::Relaxed),
        pages.free_pages(),
        pages.scavenged_pages(),
    ) >= WAKE_SLACK
        && PARKER.claim()
}

/// Wakes the background thread after [`wake_due`] returned true.
#[cold]
pub fn wake_claimed() {
    PARKER.wake_claimed();
}

/// A free went into a span the central lists own (or a span was handed to them), so one of
/// them may have become empty: the background thread should sweep them. One load unless
/// this is the first such event since its last sweep. Called after the free's `SeqCst`
/// `fetch_or`.
#[inline]
pub fn central_freed() {
    CENTRAL_FREES.raise(&PARKER);
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

/// The thread's timed sleeps, both pacing of known work (module essay). Out of line so that
/// a profile or `strace -k` (bench/syscalls.py) names the scavenger as their caller.
#[inline(never)]
fn pace_sleep(d: Duration) {
    std::thread::sleep(d);
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Free unscavenged bytes over the goal now (the page counts read under the heap lock).
fn excess_now() -> usize {
    let (_, free, scav) = heap::page_counts();
    excess_bytes(COUNTERS.inuse.load(Ordering::Relaxed), free, scav)
}

fn run() {
    let mut last_sweep: Option<Instant> = None;
    loop {
        // A sweep is due when a central free raised the flag since the last one, and a
        // period has passed since it.
        let sweep_wait = if CENTRAL_FREES.is_raised() {
            let since = last_sweep.map_or(CENTRAL_SWEEP_PERIOD, |t| t.elapsed());
            CENTRAL_SWEEP_PERIOD.saturating_sub(since)
        } else {
            Duration::MAX
        };
        if sweep_wait.is_zero() {
            // Spans that exited threads handed to the central lists become empty when other
            // threads free their objects, and nobody else would notice: give them back to the
            // page heap so that their pages can be reused or released (Go's sweeper frees
            // empty spans the same way). Lowering the flag first makes every free that raised
            // it (or found it up) visible to the sweep; later ones raise it again.
            CENTRAL_FREES.take();
            for central in &crate::central::CENTRAL {
                central.free_empty_spans();
            }
            last_sweep = Some(Instant::now());
            continue;
        }
        let want = excess_now();
        let mut stuck = false;
        if want > 0 {
            let t = thread_cpu_time();
            let done = heap::scavenge(want.min(RUN_PAGES * PAGE_SIZE), RUN_PAGES);
            if done > 0 {
                // Pacing: about 1% of a CPU while there is memory to release. The run is
                // measured in this thread's CPU time: on a busy machine the wall time of a
                // run counts the time other threads had the core, and pacing on it released
                // memory ever more slowly as the machine got busier.
                pace_sleep(
                    pace(thread_cpu_time().saturating_sub(t)).max(Duration::from_micros(50)),
                );
                continue;
            }
            // Over the goal, but no page to take (another thread took them to release them
            // between our count and our take). Do not count the excess as work in the
            // re-check below, which could then spin; the next release of the heap lock, by
            // that thread or anyone, wakes us if the excess is still there.
            stuck = true;
        }
        if sweep_wait != Duration::MAX {
            // Pacing again: a sweep is due but the last was less than a period ago.
            pace_sleep(sweep_wait);
            continue;
        }
        // Nothing to do: sleep until a producer changes that (module essay). Mark ourselves
        // asleep, then re-check everything a producer could have changed meanwhile.
        PARKER.prepare();
        if CENTRAL_FREES.is_raised() || (!stuck && excess_now() >= WAKE_SLACK) {
            PARKER.cancel();
            continue;
        }
        PARKER.park();
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
        assert_eq!(
            excess_with_goals(100 * mib, 0, pages(30 * mib), 0),
            20 * mib
        );
        assert_eq!(
            excess_with_goals(100 * mib, 0, pages(30 * mib), pages(25 * mib)),
            0
        );
        // Small heap: the 4 MiB floor.
        assert_eq!(excess_with_goals(mib, 0, pages(6 * mib), 0), 2 * mib);
        assert_eq!(excess_with_goals(0, 0, 0, 0), 0);
    }

    #[test]
    fn gc_heaps_keep_ten_percent_over_their_goals() {
        let mib = 1 << 20;
        let pages = |bytes: usize| bytes / PAGE_SIZE;
        // 100 MiB in use, goals of 200 MiB: 120 MiB of free memory may stay (grown back
        // into before the next cycle), the rest goes.
        assert_eq!(
            excess_with_goals(100 * mib, 200 * mib, pages(150 * mib), 0),
            30 * mib
        );
        // The live set dropped: 4 MiB goal, 1 MiB in use, 249 MiB free: all but the floor.
        assert_eq!(
            excess_with_goals(mib, 4 * mib, pages(249 * mib), 0),
            245 * mib
        );
        // No GC heap: the allocator's own rule.
        assert_eq!(
            excess_with_goals(100 * mib, 0, pages(30 * mib), 0),
            20 * mib
        );
    }

    #[test]
    fn pacing_is_one_percent() {
        assert_eq!(pace(Duration::from_millis(2)), Duration::from_millis(198));
    }
}
