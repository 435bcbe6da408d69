//! The write barrier and the mark phase it serves: what a store, a root change, a weak
//! upgrade or a mutable borrow must do while a heap marks concurrently with its mutators.
//!
//! # The rule (Go's hybrid barrier, with "stack scan = session boundary")
//!
//! While a heap marks, every store of a traced pointer *shades* (marks, and queues for
//! tracing) both the value it overwrites (Yuasa's deletion half) and the value it writes
//! (Dijkstra's insertion half). A session that was open when marking started is *grey*: its
//! locals may hold pointers the marker never saw, and it turns black at its next session end,
//! when it holds none (`world.rs`). Go shades the new value only while the storing
//! goroutine's stack is grey; here a store may come from a thread without a mutator (a
//! scoped thread inside a session holds `Gc`s too), so it shades both, always: the extra
//! shade costs a mark-byte load when the object is already marked.
//!
//! Allocation colour follows the session's: a black session allocates black (its window's
//! free slots are marked before it takes them, `alloc.rs`), a grey one white. A grey
//! session's new object may point to objects made before marking by plain initialising
//! writes, so it must not be black: it is white and reaches the heap only through a store
//! (shaded), a root (shaded) or another new white object, so whatever it points to is traced
//! once it is published, or dies with the session.
//!
//! # The store: swap first, then look at the flag
//!
//! ```text
//!   mutator (GcCell::set)                     collector (mark start), marker
//!   old = cell.swap(new)   (SeqCst)           ACTIVE += 1; phase = Mark   (SeqCst)
//!   if ACTIVE != 0         (SeqCst)           marker: fence(SeqCst), then reads cells
//!       shade(old), shade(new)  (if phase = Mark, under the gate)
//! ```
//!
//! A mutator that looked at the flag first and stored after could be caught in between by
//! the start of marking: the marker reads the old value, blackens the object, and the new
//! value, stored a moment later, is never traced. Swapping first closes that window: if the
//! flag load sees zero, the swap precedes the collector's flag store in the single order of
//! sequentially consistent operations, and the marker's fence follows that store, so the
//! marker reads the new value (or a later one). If it sees the flag, the mutator shades both
//! values itself, if the heap's phase is `Mark`; if the phase is not yet `Mark`, the phase
//! load precedes the phase store, so again the swap precedes the marker's fence. The filter
//! goes up before the phase: a black session (one that saw the phase at its entry) then
//! never misses the filter, which would let its deletions go unshaded. The swap also gives the exact overwritten value, which a load-then-store
//! would not when two threads store into one cell at once. Cost: an `xchg` instead of a
//! `mov` per store (about 20 cycles), marking or not. [`swap_then_check`], [`turn_on`] and
//! [`marker_begin`] are the exact code of both sides; `tests/loom.rs` (`gc_barrier`) checks
//! them, and fails when the swap is made a plain store before the flag check, or the
//! sequentially consistent fence is removed.
//!
//! # The end of a mark: the store gate
//!
//! Swapping first protects the start of a mark; its end needs more. A black session that
//! swaps a value out of a cell may keep it; if the mark ended between its swap and its
//! shade, the value (white if the cell's object was scanned after the swap) would be swept
//! while the session holds it. So a store that sees the filter on *before* its swap enters
//! the process-wide [`STORE_GATE`] for reading first and leaves it after shading; mark
//! termination holds it for writing around its final check. A store that saw the filter
//! off before its swap and on after it belongs to a session that was open when the mark
//! started: grey, so the mark cannot end before that session does. The same holds for the
//! start of a `GcRefCell` borrow (the marker skips a mutably borrowed cell, relying on the
//! borrow to shade the value). A weak upgrade, which learns of a target by reading a slot,
//! shades it only if the mark it saw is still the one running ([`Barrier::shade_in_cycle`]).
//! Found by review with a hardware breakpoint that stalled an upgrade between its two reads.
//!
//! # The gate: shading never overlaps mark termination
//!
//! Shading happens with the heap's [`Gate`] held for reading; mark termination holds it for
//! writing while it checks that no grey object is left and ends the phase. So termination
//! never misses a shade in flight, and no shade touches a mark byte after the phase ended
//! (when the sweeper may be rewriting the mark bytes). A shade waits only while a
//! termination check runs (microseconds). The gate is a futex word: readers increment it,
//! the writer sets its top bit and sleeps until the readers are gone; blocked readers sleep
//! until the writer leaves.
//!
//! # Mutable borrows of a `GcRefCell`
//!
//! A borrow can change anything in the cell, so the barrier applies to the whole value: the
//! first mutable borrow of a cell after a mark started shades everything the value holds
//! (deletion half: whatever the borrow removes was shaded), once per cycle (the cell keeps
//! the number of the last mark start it did this for, [`MARK_STARTS`]); while any heap has
//! grey sessions ([`INSERTION`]), the end of a mutable borrow shades the value again
//! (insertion half: a grey session may have put a white object in). The marker traces a
//! cell under a marker read; a cell mutably borrowed is skipped, which is sound: the borrow
//! either began during the mark (and shaded the value) or began before it, in a grey session
//! that rescans at its end; a leaked borrow (`mem::forget`) leaves a value nobody can reach
//! again once its session ended, so skipping it never waits and loses nothing reachable.

use crate::sync::{loom_seqcst_fence, AtomicU8, AtomicUsize, Ordering};

/// Phase: no mark in progress (marks are stale or being swept; barriers do nothing).
pub const OFF: u8 = 0;
/// Phase: marking; barriers shade.
pub const MARK: u8 = 1;
/// Phase: marking ended; marks are final until the sweep (weak upgrades consult them).
pub const MARK_DONE: u8 = 2;

/// The store half of the barrier: swaps `new` into `cell`, then tells whether some heap's
/// barrier is on (`active != 0`): returns the old value and that answer (module essay).
#[inline(always)]
pub fn swap_then_check(cell: &AtomicUsize, new: usize, active: &AtomicUsize) -> (usize, bool) {
    let old = cell.swap(new, Ordering::SeqCst);
    loom_seqcst_fence();
    (old, active.load(Ordering::SeqCst) != 0)
}

/// The compare-and-swap form of [`swap_then_check`]: `Ok(old)` when stored.
#[inline(always)]
pub fn cas_then_check(
    cell: &AtomicUsize,
    current: usize,
    new: usize,
    active: &AtomicUsize,
) -> (Result<usize, usize>, bool) {
    let r = cell.compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst);
    loom_seqcst_fence();
    (r, r.is_ok() && active.load(Ordering::SeqCst) != 0)
}

/// Mark start, the collector's side: the process-wide filter first, then the phase. A
/// session that sees the phase (it is black) must also see the filter, or its stores would
/// skip the barrier: its deletions would go unshaded while it allocates black.
#[inline]
pub fn turn_on(phase: &AtomicU8, active: &AtomicUsize) {
    active.fetch_add(1, Ordering::SeqCst);
    phase.store(MARK, Ordering::SeqCst);
}

/// Allocation colour (module essay): whether an object a mutator takes now from a span must
/// be black. `phase` and `cycle` as the mutator reads them (phase first), `black_for` the
/// cycle its session joined black (0: none, see [`session_black_for`]), `span_sg` the span's
/// sweep generation, `sg` the heap's, `mark_sg` the one the running mark started under.
/// Black when the span awaits the sweep of a mark that is over (a mutator held it across the
/// generation bump: everything allocated in it now must survive that sweep), or when the
/// session is black in the running mark and the bump has not happened yet. A grey session
/// allocates white: its new objects may point to objects it made before the mark by plain
/// initialising writes (binary-trees builds children before parents).
#[inline]
pub fn allocation_is_black(
    phase: u8,
    black_for: u64,
    cycle: u64,
    span_sg: u32,
    sg: u32,
    mark_sg: u32,
) -> bool {
    span_sg != sg || (phase != OFF && black_for == cycle && sg == mark_sg)
}

/// The colour a session takes at its entry, from the phase it read after its epoch moved
/// (`world.rs`: colour at mark start): the cycle it joins black, or `None` (it is grey in a
/// mark that started before, or no mark runs).
#[inline]
pub fn session_black_for(phase: u8, cycle: u64) -> Option<u64> {
    (phase != OFF).then_some(cycle)
}

/// A marker, after it learned that a mark started and before it reads any object.
#[inline]
pub fn marker_begin() {
    crate::sync::seqcst_fence();
}

#[cfg(not(loom))]
pub(crate) use real::*;

#[cfg(not(loom))]
mod real {
    use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

    use super::super::mark::{MarkQueue, Tracer};
    use super::{MARK, OFF};

    /// Heaps whose barrier is on: the filter every store reads (one load).
    pub(crate) static ACTIVE: AtomicUsize = AtomicUsize::new(0);
    /// Heaps with grey sessions left: ends of mutable borrows rescan while non-zero.
    pub(crate) static INSERTION: AtomicUsize = AtomicUsize::new(0);
    /// Mark starts so far, over all heaps (tags of `GcRefCell`s; module essay).
    pub(crate) static MARK_STARTS: AtomicU64 = AtomicU64::new(1);

    /// Held for reading by a store or a mutable borrow's start that saw the filter on,
    /// from before its swap (or flag change) until its shading is done; held for writing
    /// by mark termination (of any heap) around its final check. Without it a mark could
    /// end between a black session's swap and its shade of the overwritten value, which
    /// that session may still hold (module essay: the end of a mark). Process-wide,
    /// because a cell does not know its heap before it looks at what it holds.
    pub(crate) static STORE_GATE: Gate = Gate::new();

    /// Taken around [`STORE_GATE`]'s `write` .. `write_done` by mark termination. The gate
    /// admits one writer, and each heap has its own collector thread: two terminations
    /// that both set the writer bit would both pass, or one would sleep on a word no
    /// reader wakes again (found by review). Held for the gate's final check only.
    pub(crate) static STORE_GATE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A heap's mark phase as barriers see it.
    pub(crate) struct Barrier {
        /// `OFF`, `MARK` or `MARK_DONE`. Written by the collector thread; `MARK` ->
        /// `MARK_DONE` only with the gate held for writing.
        pub phase: AtomicU8,
        /// Grey sessions remain (this heap counts once in [`INSERTION`]). Collector thread.
        insertion: AtomicBool,
        /// Shading holds it for reading, mark termination for writing.
        pub gate: Gate,
        /// Spans holding grey objects, for the markers (`mark.rs`).
        pub queue: MarkQueue,
        /// Bytes marked in the current cycle (markers and shades add theirs when done).
        pub marked: AtomicUsize,
    }

    impl Barrier {
        pub fn new() -> Barrier {
            Barrier {
                phase: AtomicU8::new(OFF),
                insertion: AtomicBool::new(false),
                gate: Gate::new(),
                queue: MarkQueue::new(),
                marked: AtomicUsize::new(0),
            }
        }

        /// Whether the heap is marking.
        #[inline]
        pub fn marking(&self) -> bool {
            self.phase.load(Ordering::SeqCst) == MARK
        }

        /// Mark start: barriers on, grey sessions assumed until [`Self::greys_passed`].
        pub fn start(&self) {
            self.marked.store(0, Ordering::Relaxed);
            self.insertion.store(true, Ordering::Relaxed);
            INSERTION.fetch_add(1, Ordering::SeqCst);
            // Before the phase: a borrow that sees this heap marking reads the new number,
            // so a cell shaded in an earlier mark is shaded again. A borrow that reads the
            // new number before the phase is on shades under a gate that is not `MARK`,
            // and then does not tag the cell (`GcRefCell::try_borrow_mut`).
            MARK_STARTS.fetch_add(1, Ordering::SeqCst);
            super::turn_on(&self.phase, &ACTIVE);
        }

        /// Every session that was open at mark start has ended.
        pub fn greys_passed(&self) {
            if self.insertion.swap(false, Ordering::Relaxed) {
                INSERTION.fetch_sub(1, Ordering::SeqCst);
            }
        }

        /// Mark termination: with the gate held for writing, ends the phase.
        pub fn finish(&self, phase: u8) {
            self.greys_passed();
            self.phase.store(phase, Ordering::SeqCst);
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
        }

        /// Shades `addr`, an object that was reachable when the caller saw this heap's mark
        /// number `cycle` running, if that same mark still runs; false when it does not
        /// (then `addr` may be dead and swept: it is not touched).
        pub fn shade_in_cycle(&self, addr: usize, cycle: u64, cycle_no: &AtomicU64) -> bool {
            self.gate.read();
            let on = self.phase.load(Ordering::SeqCst) == MARK
                && cycle_no.load(Ordering::SeqCst) == cycle;
            if !on {
                self.gate.read_done();
                return false;
            }
            // Still this mark, and the gate held: `addr` cannot be swept before we are done.
            let mut t = Tracer::shading_holding(self);
            t.mark(addr);
            let _ = t.finish_shading();
            true
        }

        /// Shades the object at `addr` of this heap if it is marking; false when it is not.
        /// `addr` must be live (its span is looked up before the gate is entered).
        pub fn shade(&self, addr: usize) -> bool {
            let mut t = Tracer::shading();
            t.mark(addr);
            let done = t.shading_active();
            let _ = t.finish_shading();
            done
        }
    }

    /// Slow path of the cell barrier: shades `old` and `new` (0 = none) in their heaps.
    #[cold]
    #[inline(never)]
    pub(crate) fn shade_pair(old: usize, new: usize) {
        let mut t = Tracer::shading();
        if old != 0 {
            t.mark(old);
        }
        if new != 0 {
            t.mark(new);
        }
        let _ = t.finish_shading();
    }

    /// Readers-writer gate over a futex word (module essay).
    pub(crate) struct Gate {
        state: AtomicU32,
    }

    const WRITER: u32 = 1 << 31;

    impl Gate {
        pub const fn new() -> Gate {
            Gate {
                state: AtomicU32::new(0),
            }
        }

        /// Enters as a reader (waits while a writer holds the gate).
        pub fn read(&self) {
            let mut s = self.state.load(Ordering::Relaxed);
            loop {
                if s & WRITER != 0 {
                    crate::sync::futex_wait(&self.state, s);
                    s = self.state.load(Ordering::Relaxed);
                    continue;
                }
                match self.state.compare_exchange_weak(
                    s,
                    s + 1,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(x) => s = x,
                }
            }
        }

        /// Enters as a reader unless a writer holds the gate or waits for it; false then.
        /// For mark assists, which are optional work inside a mutator's pause: a writer is
        /// mark termination checking for the end of the mark, and an assist that waited for
        /// it would wait for the collector thread to get a core.
        pub fn try_read(&self) -> bool {
            let mut s = self.state.load(Ordering::Relaxed);
            loop {
                if s & WRITER != 0 {
                    return false;
                }
                match self.state.compare_exchange_weak(
                    s,
                    s + 1,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(x) => s = x,
                }
            }
        }

        /// Leaves as a reader; the last reader wakes a waiting writer.
        pub fn read_done(&self) {
            let s = self.state.fetch_sub(1, Ordering::SeqCst);
            if s == WRITER | 1 {
                crate::sync::futex_wake(&self.state, i32::MAX as u32); // all sleepers
            }
        }

        /// Enters as the writer (one at a time: the collector thread); waits for readers.
        pub fn write(&self) {
            let mut s = self.state.fetch_or(WRITER, Ordering::SeqCst) | WRITER;
            while s != WRITER {
                crate::sync::futex_wait(&self.state, s);
                s = self.state.load(Ordering::SeqCst);
            }
        }

        /// Leaves as the writer and wakes blocked readers.
        pub fn write_done(&self) {
            self.state.fetch_and(!WRITER, Ordering::SeqCst);
            crate::sync::futex_wake(&self.state, i32::MAX as u32); // all sleepers
        }
    }
}
