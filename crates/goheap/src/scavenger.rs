//! The scavenger: returns free pages to the OS (Go's `mgcscavenge.go`).
//!
//! Free pages stay mapped after their span is freed, so that the next span can reuse them
//! without a page fault. The scavenger decides how many of them to give back with
//! `madvise(MADV_DONTNEED)`:
//!
//! - **Goal.** How much free memory to keep, when a free in synchronous mode releases
//!   some itself, and when to wake the thread is the policy of
//!   [`crate::scavenge_policy`], below the page heap, which asks it before every release
//!   of its lock; this module is the background thread that carries it out.
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
//! A library that must not start threads (the malloc face) turns the thread off with
//! [`set_background(false)`](crate::scavenge_policy::set_background) and frees then scavenge
//! synchronously (`scavenge_policy`'s essay). How the idle thread sleeps and who wakes it is
//! told there too ("Sleeping and waking").

use core::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::heap::{self, COUNTERS};
use crate::scavenge_policy::{
    excess_bytes, synchronous, CENTRAL_FREES, PARKER, RUN_PAGES, WAKE_SLACK,
};
use crate::sizeclass::PAGE_SIZE;

/// Fraction of one CPU the background scavenger may use, in percent.
pub const SCAVENGE_PERCENT: u32 = 1;
/// The least time between two sweeps of the central lists.
const CENTRAL_SWEEP_PERIOD: Duration = Duration::from_secs(1);

static STARTED: AtomicBool = AtomicBool::new(false);

/// How long to sleep after a run that took `work`, to stay at `SCAVENGE_PERCENT` of a CPU.
pub fn pace(work: Duration) -> Duration {
    work * (100 / SCAVENGE_PERCENT - 1)
}

/// Forgets the background thread (in a forked child, where it does not exist), so that the
/// next heap growth starts a new one.
pub fn forget_thread() {
    STARTED.store(false, Ordering::Relaxed);
    crate::scavenge_policy::forget_sleeper();
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
    fn pacing_is_one_percent() {
        assert_eq!(pace(Duration::from_millis(2)), Duration::from_millis(198));
    }
}
