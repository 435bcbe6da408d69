//! The scavenger's policy, below the page heap: how much free memory to keep, when a free
//! must give memory back itself (synchronous mode), and when to wake the background thread.
//!
//! The page heap ([`crate::heap`]) asks this module before every release of its lock, with
//! the counts it holds, and releases what it is told to with its own `scavenge`; the
//! background thread ([`crate::scavenger`], above the page heap) asks it what to release and
//! sleeps on its [`PARKER`]. It calls nothing above [`crate::pagealloc`], so allocation and
//! freeing go down the layers (design.md §1) and never up into the scavenger's thread.
//!
//! - **Goal.** Keep at most `max(heap_inuse / 10, 4 MiB, 1.1 * gc_goals - heap_inuse)` of
//!   free, unscavenged memory, where `gc_goals` is the sum of the heap goals of the
//!   process's GC heaps ([`GC_GOALS`]). The 10% matches Go's `retainExtraPercent`; the last
//!   term is Go's `gcPercentGoal`: a collected heap grows back to its goal before the next
//!   cycle, so the pages it freed below 10% over the goal are kept for that (releasing them
//!   would cost a page fault each when they are reused), and everything above goes back.
//!   When a cycle finds the live heap much smaller, its goal drops with it, and the spans
//!   its sweep frees are released. The floor keeps tiny heaps from churning.
//!
//! - **Synchronous mode.** A library that must not start threads behind its host's back
//!   (the malloc face: a C program does not expect `malloc` to spawn one) calls
//!   [`set_background(false)`](set_background) before its first allocation. Then whoever
//!   returns pages to the page heap checks the goal on the spot ([`sync_excess`]) and
//!   releases up to one run (4 MiB) before returning, as glibc's `free` trims its heap and
//!   as Go scavenges synchronously when the heap grows. What it releases has hysteresis,
//!   because with no thread to pace the work the frees themselves would otherwise churn:
//!   - **Delay.** Free memory over the goal is released only once it has *stayed* over the
//!     goal for [`SYNC_DELAY`] (mimalloc's purge delay, and the background thread's slowness
//!     in the other mode). The frees keep a window: the least excess any of them saw since
//!     the window opened. When a window of `SYNC_DELAY` closes, its least excess is memory
//!     that nobody reused for that long; it becomes due and the following frees release it,
//!     one run each. A program that frees and reallocates a few large blocks (1-9 MiB
//!     buffers traded between threads) cycles through them without a `madvise` and the page
//!     faults that follow one; before the delay it released 4 MiB on nearly every such
//!     free, ten times mimalloc's bytes, and spent seconds of system time on it (issue 13).
//!   - **Bound.** Free memory over the goal by more than [`SYNC_BOUND`] (or by more than
//!     half of `heap_inuse`, for big heaps) is released at once, as before, so a burst of
//!     frees still brings the footprint down on the spot, and so the delay can never keep
//!     more than the bound.
//!   - **Fragments.** A synchronous release takes runs of at least [`SYNC_MIN_RUN_PAGES`]
//!     (64 KiB) only, highest first, and leaves shorter runs of free pages alone
//!     ([`PageAlloc::take_unscavenged_at_least`]). When a program's threads exit,
//!     `heap_inuse` falls at once and the bound releases, and the highest free pages are
//!     then mostly the single pages between spans that are still live; releasing those cost
//!     one `madvise` per 8 KiB, which the next threads faulted straight back (mstress at 16
//!     threads: 19 000-24 000 calls per run, 7 400 of them one page; 9 000-11 000 since).
//!     Fragments go when they join a longer free run, or by `release_memory` and the
//!     background thread, which take runs of any length.
//!
//!   The delay needs the clock, read only while there is an excess under the bound. Nothing
//!   releases a window's due memory until some later free, so a program that frees and then
//!   stops calling the allocator keeps up to the bound ([`crate::release_memory`] returns it).
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

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::pagealloc::PageAlloc;
use crate::sizeclass::PAGE_SIZE;
use crate::sync::{Parker, Signal};

/// Largest run released per `madvise` call: 512 pages = 4 MiB.
pub const RUN_PAGES: usize = 512;
/// Shortest run the synchronous mode releases: 8 pages = 64 KiB (module essay,
/// "Fragments").
pub const SYNC_MIN_RUN_PAGES: usize = 8;
/// How far free unscavenged memory must exceed the goal before a release of the heap lock
/// wakes the sleeping thread: 1 MiB.
pub const WAKE_SLACK: usize = 1 << 20;
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

/// Where the background thread sleeps when it has nothing to do (module essay).
pub(crate) static PARKER: Parker = Parker::new();
/// Raised when a centrally owned span may have become empty (module essay).
pub static CENTRAL_FREES: Signal = Signal::new();
/// False once `set_background(false)` was called.
static BACKGROUND: AtomicBool = AtomicBool::new(true);
/// In synchronous mode, how far over the goal free memory may go before a free releases
/// some at once, without waiting for [`SYNC_DELAY`] (the least of the two bounds in the
/// module essay's "Bound"): enough that a program cycling through a few MiB never pays for
/// `madvise`.
pub const SYNC_SLACK: usize = 16 << 20;
/// In synchronous mode, the bound on free memory kept over the goal for reuse is the larger
/// of [`SYNC_SLACK`] and `heap_inuse / SYNC_BOUND_DIVISOR` (module essay, "Bound").
pub const SYNC_BOUND_DIVISOR: usize = 2;
/// In synchronous mode, how long free memory must stay over the goal before frees release it
/// (module essay, "Delay"): mimalloc's default purge delay.
pub const SYNC_DELAY: Duration = Duration::from_secs(1);
/// The excess-window of synchronous mode (module essay, "Delay"). Written only by
/// [`sync_excess`], whose callers hold the page-heap lock, so the relaxed atomics are never
/// raced; they are atomics only to be statics.
static SYNC_WINDOW: SyncWindow = SyncWindow::new();

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

/// Bytes a free in synchronous mode should release now, from the page counts it read under
/// the heap lock (module essay, "Synchronous mode"): a run of the excess over the bound at
/// once, else a run of what stayed over the goal for a whole [`SYNC_DELAY`], else 0. The
/// caller holds the page-heap lock (it serialises the window).
pub fn sync_excess(inuse: usize, free_pages: usize, scavenged_pages: usize) -> usize {
    if !synchronous() {
        return 0;
    }
    let excess = excess_bytes(inuse, free_pages, scavenged_pages);
    let run = RUN_PAGES * PAGE_SIZE;
    if excess >= sync_bound(inuse) {
        return excess.min(run);
    }
    if excess == 0 {
        // Everything free is within the goal: nothing is due, and the window's least is 0.
        SYNC_WINDOW.observe_none();
        return 0;
    }
    SYNC_WINDOW.observe(excess, crate::os::now_ns()).min(run)
}

/// The bound on free memory kept over the goal in synchronous mode (module essay, "Bound").
pub fn sync_bound(inuse: usize) -> usize {
    SYNC_SLACK.max(inuse / SYNC_BOUND_DIVISOR)
}

/// The synchronous mode's memory of how long free memory has been over the goal (module
/// essay, "Delay"). Only [`sync_excess`] touches it, with the page-heap lock held.
struct SyncWindow {
    /// When the current window opened (`CLOCK_MONOTONIC` ns; 0: none open).
    start_ns: AtomicU64,
    /// The least excess seen since `start_ns`.
    least: AtomicUsize,
    /// Bytes of excess that stayed over the goal for a whole closed window and have not been
    /// released yet.
    due: AtomicUsize,
}

impl SyncWindow {
    const fn new() -> Self {
        SyncWindow {
            start_ns: AtomicU64::new(0),
            least: AtomicUsize::new(0),
            due: AtomicUsize::new(0),
        }
    }

    /// Free memory is within the goal: nothing stayed over it, nothing is due.
    fn observe_none(&self) {
        self.least.store(0, Ordering::Relaxed);
        self.due.store(0, Ordering::Relaxed);
    }

    /// A free saw `excess` (> 0) over the goal at `now`: returns how many bytes it should
    /// release (at most what is due), and counts them as released.
    fn observe(&self, excess: usize, now: u64) -> usize {
        let start = self.start_ns.load(Ordering::Relaxed);
        let least = self.least.load(Ordering::Relaxed).min(excess);
        // What is due can never be more than what is over the goal now.
        let mut due = self.due.load(Ordering::Relaxed).min(excess);
        if start == 0 {
            // The first excess opens a window; it may have been over the goal since.
            self.start_ns.store(now, Ordering::Relaxed);
            self.least.store(excess, Ordering::Relaxed);
        } else if now.saturating_sub(start) >= SYNC_DELAY.as_nanos() as u64 {
            // The window closed: its least excess stayed free for all of it.
            due = due.max(least);
            self.start_ns.store(now, Ordering::Relaxed);
            self.least.store(excess, Ordering::Relaxed);
        } else {
            self.least.store(least, Ordering::Relaxed);
        }
        // Release in runs, but not crumbs: below WAKE_SLACK a madvise costs more than the
        // memory is worth (the background thread has the same floor).
        let release = if due >= WAKE_SLACK {
            due.min(RUN_PAGES * PAGE_SIZE)
        } else {
            0
        };
        self.due.store(due - release, Ordering::Relaxed);
        // The released bytes are no longer over the goal: the window's least drops with them.
        let least = self.least.load(Ordering::Relaxed);
        self.least
            .store(least.saturating_sub(release), Ordering::Relaxed);
        release
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

/// Called with the page-heap lock held, just before it is released: true if the background
/// thread sleeps and there is now enough to release that it should be woken, in which case
/// the caller (the one releaser that claimed it) calls [`wake_claimed`] once the lock is
/// released. One relaxed load while the thread is awake.
#[inline]
pub fn wake_due(pages: &PageAlloc, inuse: &AtomicUsize) -> bool {
    PARKER.is_asleep() && wake_due_slow(pages, inuse)
}

#[cold]
fn wake_due_slow(pages: &PageAlloc, inuse: &AtomicUsize) -> bool {
    excess_bytes(
        inuse.load(Ordering::Relaxed),
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

/// Forgets that the background thread sleeps (in a forked child, where it does not exist).
pub fn forget_sleeper() {
    PARKER.reset();
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
    fn sync_window_releases_only_what_stayed_over_the_goal_for_a_delay() {
        let mib = 1 << 20;
        let run = RUN_PAGES * PAGE_SIZE;
        let delay = SYNC_DELAY.as_nanos() as u64;
        let w = SyncWindow::new();
        let t0 = 1_000;
        // Excess comes and goes within one delay: nothing is released.
        assert_eq!(w.observe(12 * mib, t0), 0);
        assert_eq!(w.observe(30 * mib, t0 + delay / 4), 0);
        assert_eq!(w.observe(9 * mib, t0 + delay / 2), 0);
        assert_eq!(w.observe(40 * mib, t0 + delay - 1), 0);
        // The window closes: its least (9 MiB) stayed free all along and becomes due, one
        // run per free; the rest (31 MiB, reused and freed again meanwhile) stays.
        assert_eq!(w.observe(40 * mib, t0 + delay), run);
        assert_eq!(w.observe(36 * mib, t0 + delay + 1), run);
        assert_eq!(w.observe(32 * mib, t0 + delay + 2), mib);
        assert_eq!(w.observe(31 * mib, t0 + delay + 3), 0);
        // The new window's least is the 40 MiB it opened with, less what was released since.
        assert_eq!(w.least.load(Ordering::Relaxed), 31 * mib);
        // Reuse lowers what is due: a window closes with 20 MiB due, then the excess drops
        // to 2 MiB before anything is released; only those 2 MiB can still go.
        let t1 = t0 + 3 * delay;
        assert_eq!(w.observe(20 * mib, t1), run);
        assert_eq!(w.observe(2 * mib, t1 + 1), 2 * mib);
        assert_eq!(w.observe(2 * mib, t1 + 2), 0);
        // Crumbs under WAKE_SLACK are not worth a madvise.
        let w = SyncWindow::new();
        w.observe(WAKE_SLACK / 2, t0);
        assert_eq!(w.observe(WAKE_SLACK / 2, t0 + delay), 0);
        // Within the goal: nothing stays due.
        let w = SyncWindow::new();
        w.observe(8 * mib, t0);
        w.observe_none();
        assert_eq!(w.observe(8 * mib, t0 + delay), 0);
    }

    #[test]
    fn sync_bound_is_the_slack_or_half_the_heap() {
        assert_eq!(sync_bound(0), SYNC_SLACK);
        assert_eq!(sync_bound(400 << 20), 200 << 20);
    }
}
