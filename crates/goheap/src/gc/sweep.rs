//! Sweeping (Go's `mgcsweep.go`): the sweep generation, the background sweeper thread, lazy
//! sweeps by allocating mutators, and sweep termination.
//!
//! After a mark, mark termination bumps `sweepgen` by 2 and moves every span the mark
//! covered to its pool's unswept list (`cycle.rs`). From then on the background sweeper
//! (one thread, which also runs destructors) and allocating mutators (lazily, spans of
//! destructor-free types only, see `alloc.rs`) take spans off the unswept lists and sweep
//! them ([`super::span::sweep_span`]). A span a mutator holds across the bump is *stale*
//! ([`Sweeper::is_stale`]) until it lets it go, to the unswept list.
//!
//! Sweep termination, at the start of the next cycle, sweeps whatever is left and waits
//! for sweeps in flight: the next mark may not set a mark byte of a span whose previous
//! marks are still being read. Every sweep holds a [`SweepToken`] while it runs; the count
//! of tokens is kept under a mutex, and the waiter sleeps on a condition variable until it
//! falls to zero.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};

use super::alloc::{self, TypePool};
use super::heap::HeapInner;
use super::span::{sweep_span, SweepCount, Swept};

/// The sweep state of a heap.
pub(crate) struct Sweeper {
    /// Go's sweep generation (span.rs essay). Bumped by 2 by mark termination (collector
    /// thread); read by everyone.
    pub sweepgen: AtomicU32,
    /// The generation the running (or last) mark started under. Collector thread.
    pub mark_sweepgen: AtomicU32,
    /// Sweeps in flight. Under its mutex; `idle_cv` signals zero.
    in_flight: Mutex<usize>,
    idle_cv: Condvar,
    /// Wakes the background sweeper.
    kick: Arc<Kick>,
    /// The proportional sweep's schedule (`pacer::sweep_due`): spans handed to the sweep by
    /// the last mark termination and the live heap then (collector thread), and spans
    /// swept since (every sweeper; relaxed: a schedule, not a guarantee).
    to_sweep: AtomicUsize,
    sweep_start: AtomicUsize,
    swept: AtomicUsize,
}

/// The background sweeper's wake-up: a flag under a mutex and a condition variable.
struct Kick {
    state: Mutex<KickState>,
    cv: Condvar,
}

struct KickState {
    pending: bool,
    exit: bool,
}

/// A sweep in flight (see the module essay).
pub(crate) struct SweepToken<'a> {
    s: &'a Sweeper,
}

impl Drop for SweepToken<'_> {
    fn drop(&mut self) {
        let mut n = self.s.in_flight.lock().unwrap();
        *n -= 1;
        if *n == 0 {
            self.s.idle_cv.notify_all();
        }
    }
}

impl Sweeper {
    pub fn new() -> Sweeper {
        Sweeper {
            sweepgen: AtomicU32::new(2),
            mark_sweepgen: AtomicU32::new(2),
            in_flight: Mutex::new(0),
            idle_cv: Condvar::new(),
            kick: Arc::new(Kick {
                state: Mutex::new(KickState {
                    pending: false,
                    exit: false,
                }),
                cv: Condvar::new(),
            }),
            to_sweep: AtomicUsize::new(0),
            sweep_start: AtomicUsize::new(0),
            swept: AtomicUsize::new(0),
        }
    }

    /// A sweep of `spans` spans begins with the live heap at `live` (collector thread, after
    /// mark termination).
    pub fn schedule(&self, spans: usize, live: usize) {
        self.swept.store(0, Ordering::Relaxed);
        self.sweep_start.store(live, Ordering::Relaxed);
        self.to_sweep.store(spans, Ordering::Relaxed);
    }

    /// One span swept.
    #[inline]
    pub fn note_swept(&self) {
        self.swept.fetch_add(1, Ordering::Relaxed);
    }

    /// Spans the sweep is behind its schedule with the live heap at `live` and the next
    /// cycle due at `trigger`: what an allocating mutator sweeps before it takes a span.
    #[inline]
    pub fn behind(&self, live: usize, trigger: usize) -> usize {
        let due = super::pacer::sweep_due(
            self.to_sweep.load(Ordering::Relaxed),
            live,
            self.sweep_start.load(Ordering::Relaxed),
            trigger,
        );
        due.saturating_sub(self.swept.load(Ordering::Relaxed))
    }

    /// Registers a sweep in flight.
    pub fn begin(&self) -> SweepToken<'_> {
        *self.in_flight.lock().unwrap() += 1;
        SweepToken { s: self }
    }

    /// Wakes the background sweeper.
    pub fn kick(&self) {
        let mut k = self.kick.state.lock().unwrap();
        k.pending = true;
        self.kick.cv.notify_one();
    }

    /// Lets the background sweeper exit.
    pub fn shutdown(&self) {
        let mut k = self.kick.state.lock().unwrap();
        k.exit = true;
        self.kick.cv.notify_all();
    }

    /// Starts the background sweeper thread (holding only a weak reference to the heap).
    pub fn start_thread(&self, heap: Weak<HeapInner>, holders: Arc<super::heap::Holders>) {
        let kick = self.kick.clone();
        std::thread::Builder::new()
            .name("goheap-sweep".into())
            .spawn(move || sweeper_thread(heap, kick, holders))
            .expect("goheap: cannot start the sweeper thread");
    }
}

fn sweeper_thread(heap: Weak<HeapInner>, kick: Arc<Kick>, holders: Arc<super::heap::Holders>) {
    // The sweeper runs at the program's priority. It once ran at nice 19, as "the lowest-
    // priority work there is", and that was a priority inversion: a sweep holds a token
    // (which sweep termination waits for) and, briefly, its pool's lock and the page
    // heap's (which allocating mutators wait for), and on a machine whose cores were busy
    // the kernel left a nice-19 thread holding one of them off the CPU for hundreds of
    // milliseconds: sweep terminations of 300 ms, mutators blocked for 100 ms, and a heap
    // that grew meanwhile to six times its goal (binary-trees 21, two mutators on two
    // cores). The sweeping is owed anyway: what this thread does not do, allocations do
    // (proportional sweep, alloc.rs) and count as pauses.
    loop {
        {
            let mut k = kick.state.lock().unwrap();
            while !k.pending && !k.exit {
                k = kick.cv.wait(k).unwrap();
            }
            if k.exit {
                return;
            }
            k.pending = false;
        }
        let Some(h) = holders.hold(&heap) else { return };
        sweep_all(&h);
        h.settle_goal();
        drop(h);
    }
}

/// Sweeps every unswept span (of every pool, and large ones); spans left empty go back to
/// the page heap at once (Go's sweeper frees them too), where any pool or the malloc face
/// can reuse their pages. Safe to run from several threads at once. Runs destructors.
pub(crate) fn sweep_all(h: &HeapInner) {
    super::mutator::as_finalizer("a destructor run by the sweeper", || sweep_all_inner(h))
}

fn sweep_all_inner(h: &HeapInner) {
    let s = &h.sweep;
    for p in alloc::pool_list(h) {
        // SAFETY: pools live as long as the heap.
        let pool: &TypePool = unsafe { &*p };
        loop {
            let token = s.begin();
            let span = pool.lists.lock().unswept.pop();
            let Some(span) = span else { break };
            // Read per span: a mark may have ended since the last one (a span is swept for
            // the generation current when it is taken off the list).
            let sg = s.sweepgen.load(Ordering::Acquire);
            let mut count = SweepCount::default();
            // SAFETY: taken off the unswept list, so we hold it; its mark is over.
            match unsafe { sweep_span(&*span, sg, &mut count) } {
                // SAFETY: no live object, and we hold it.
                Swept::Empty => unsafe { alloc::free_span(h, span) },
                Swept::Partial => pool.lists.lock().put(span, false, &s.sweepgen),
                Swept::Full => pool.lists.lock().put(span, true, &s.sweepgen),
            }
            // Counted before the token goes: whoever waited for the sweep sees the frees.
            alloc::count_swept(h, &count);
            drop(token);
        }
    }
    loop {
        let token = s.begin();
        let span = h.large.lock().unswept.pop();
        let Some(span) = span else { break };
        let sg = s.sweepgen.load(Ordering::Acquire);
        let mut count = SweepCount::default();
        // SAFETY: as above.
        match unsafe { sweep_span(&*span, sg, &mut count) } {
            // SAFETY: its one object is dead and dropped.
            Swept::Empty => unsafe { alloc::free_span(h, span) },
            _ => h.large.lock().put(span, &s.sweepgen),
        }
        alloc::count_swept(h, &count);
        drop(token);
    }
}

/// Sweep termination: sweeps what is left and waits for sweeps in flight.
pub(crate) fn finish(h: &HeapInner) {
    sweep_all(h);
    let s = &h.sweep;
    let mut n = s.in_flight.lock().unwrap();
    while *n > 0 {
        n = s.idle_cv.wait(n).unwrap();
    }
}
