//! Fractional marking: the busy mutators' share of the background mark, run on their own
//! threads in short slices.
//!
//! Go's background mark takes a quarter of the CPU, and when the quarter is not a whole
//! number of cores its scheduler runs a *fractional* worker on a P for part of the time.
//! goheap does not own the scheduler: its mark workers are threads of their own, and when
//! the program's threads already fill the cores a worker can only run by preempting one of
//! them, for a scheduler slice, in the middle of whatever it does (an allocation, an assist,
//! a sweep), which the mutator then sees as a pause of milliseconds. So the cycle starts no
//! worker for a core a busy mutator holds (`pacer::mark_workers`), and each busy mutator
//! marks its share of what the quarter lacks on its own thread: at each span it takes
//! during a mark, it adds its share of the time since it last looked to what it owes, and
//! when it owes a whole slice ([`SLICE`]) it marks for one (`mark::fractional`, which
//! holds the heap's gate for reading and never sleeps, as an assist). The slice is a pause
//! of its own kind (`PauseCause::Fractional`), and its length bounds it.
//!
//! What the mutators owe is time, not bytes: the assists already tie marking to
//! allocation (`pacer::assist_debt`); this share is the background mark that keeps the
//! assists small, and a mutator that allocates little owes it all the same. It is paid only
//! at span refills (once per few hundred objects), so a mutator that stops allocating stops
//! paying: the mark then waits for it, which costs nothing the program would notice (the
//! heap does not grow without allocation). Whoever does need the mark to end asks the
//! collector for help instead (`WorkQueue::want_help`: `Heap::collect`, a heap's shutdown,
//! a mutator leaving its heap), and so does a mark that has waited [`PATIENCE`] once no
//! session holds it up any longer (`cycle.rs`): the collector then starts its workers.
//!
//! Cost: one clock read per span taken during a mark in which mutators mark (about 20 ns
//! per few hundred objects); nothing otherwise (one relaxed load of the share).

use std::time::{Duration, Instant};

use super::heap::HeapInner;
use super::pacer::PPM;
use super::pause::PauseCause;

/// Longest slice of fractional marking: a pause, so well under the half millisecond goheap
/// promises; long enough that the slice's fixed costs (the gate, a buffer taken from the
/// shared queue and the rest handed back: three locked instructions) are noise.
pub(crate) const SLICE: Duration = Duration::from_micros(100);

/// How long the collector lets the mutators mark alone once no grey session is left,
/// before it starts its workers (module essay). One deadline per mark, not a poll: a mark
/// of binary-trees 21 at a quarter of two cores takes tens of milliseconds.
pub(crate) const PATIENCE: Duration = Duration::from_millis(500);

/// A mutator's fractional-marking clock. Owned by the mutator, with its cache (`Local`).
pub(crate) struct MarkShare {
    /// The mark this clock counts for (`HeapInner::cycle_no`; 0: none yet).
    cycle: u64,
    /// When the mutator last looked at the clock in that mark.
    last: Option<Instant>,
    /// Marking time owed, nanoseconds (at most one slice: a mutator that found no work
    /// does not save up for a long slice later).
    owed_ns: u64,
}

impl MarkShare {
    pub const fn new() -> MarkShare {
        MarkShare {
            cycle: 0,
            last: None,
            owed_ns: 0,
        }
    }

    /// At a span refill while `h` marks: if the mutators share the mark, adds this
    /// mutator's share of the time since it last looked and, when a slice is owed, marks
    /// for one.
    #[inline]
    pub fn at_refill(&mut self, h: &HeapInner) {
        let ppm = h.markers.fractional_ppm();
        if ppm == 0 {
            return;
        }
        self.pay(h, ppm as u64);
    }

    #[cold]
    fn pay(&mut self, h: &HeapInner, ppm: u64) {
        let now = Instant::now();
        let cycle = h.cycle_no.load(core::sync::atomic::Ordering::Relaxed);
        let since = match self.last {
            Some(t) if self.cycle == cycle => now.saturating_duration_since(t),
            // A new mark: the clock starts now.
            _ => Duration::ZERO,
        };
        self.cycle = cycle;
        self.last = Some(now);
        self.owed_ns = owed_after(self.owed_ns, since.as_nanos() as u64, ppm);
        if self.owed_ns < SLICE.as_nanos() as u64 {
            return;
        }
        if !h.barrier.queue.has_buffers() {
            // Nothing to take: no slice, and no pause recorded (found by review: every
            // refill of a mutator that owed a slice recorded an empty one, which padded
            // the pause counts and pulled the percentiles down).
            return;
        }
        let spent = {
            let _pause = h.mutators.pauses.timer(PauseCause::Fractional);
            super::mark::fractional(&h.barrier, SLICE);
            now.elapsed()
        };
        self.owed_ns = self.owed_ns.saturating_sub(spent.as_nanos() as u64);
    }
}

/// What a mutator owes after `since_ns` more nanoseconds at a share of `ppm` millionths,
/// having owed `owed_ns`: at most one slice.
fn owed_after(owed_ns: u64, since_ns: u64, ppm: u64) -> u64 {
    owed_ns
        .saturating_add(since_ns.saturating_mul(ppm) / PPM)
        .min(SLICE.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulated: a mutator that takes a span every 10 us at a quarter share marks a quarter
    /// of the time, one slice at a time.
    #[test]
    fn a_quarter_share_marks_a_quarter_of_the_time() {
        let slice = SLICE.as_nanos() as u64;
        let (mut owed, mut marked, mut now, mut since) = (0u64, 0u64, 0u64, 0u64);
        let mut slices = 0;
        while now < 1_000_000_000 {
            now += 10_000;
            owed = owed_after(owed, since + 10_000, 250_000);
            since = 0;
            if owed >= slice {
                marked += slice;
                now += slice;
                owed -= slice;
                // The slice's own time counts at the next look, as Go's fractional
                // worker's time counts in its utilisation.
                since = slice;
                slices += 1;
            }
        }
        let share = marked as f64 / now as f64;
        assert!((0.24..=0.26).contains(&share), "{share}");
        assert!(slices > 2000);
        assert_eq!(
            owed_after(0, u64::MAX, 250_000),
            slice,
            "never more than a slice"
        );
    }
}
