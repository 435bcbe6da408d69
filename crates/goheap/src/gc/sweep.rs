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
//! marks are still being read. Every sweep holds a [`SweepToken`] while it runs.
//!
//! # The token count
//!
//! Tokens are taken by allocating mutators, inside what counts as their pauses, so taking
//! and dropping one never blocks: the count is an atomic word, and only the waiter sleeps
//! (on the word, a futex). It once was a count under a mutex, and a mutator's lazy sweep
//! then waited for that mutex behind the background sweeper whenever the OS had taken the
//! sweeper off the CPU while it held it: 175 of the 250 futex sleeps of binary-trees 18's
//! one mutator, and sweep pauses of milliseconds. The wake-up is the store-buffer pattern:
//!
//! ```text
//!   waiter (sweep termination)          last token's drop
//!   W1 waiters |= 1 -> m    (SeqCst)    W2 in_flight -= 1 -> 0   (SeqCst)
//!   R1 n = in_flight        (SeqCst)    R2 w = waiters, odd:     (SeqCst)
//!                                          CAS w -> w + 1 (even, a wake-up counted)
//!   n > 0: sleep while waiters == m     CAS won: wake every sleeper on waiters
//! ```
//!
//! In the single order of SeqCst operations, if R1 comes before W2 (the waiter saw a token)
//! then W1 < R1 < W2 < R2, so the drop sees the look (or a later drop answered it, and
//! woke); the futex sleeps only while `waiters` still holds the value the look made, and
//! an answer changes it for good (the count of wake-ups in the high bits), so a drop between
//! R1 and the sleep makes the sleep return at once. The drop *answers* the look, so only the
//! first drop to empty the count after a waiter's look wakes it: while mutators keep taking and dropping tokens (every span they
//! take holds one) and the waiter is off the CPU, the count may pass through zero many
//! times, and each pass used to be a `futex_wake` (50 per cycle at 16 threads, the largest
//! source left after `Mutators::wake`). A woken waiter looks again, setting its bit anew.
//! Weakening either pair to Release/Acquire lets both reads miss both writes, and the
//! waiter sleeps forever: the loom model `sweep_tokens` (tests/loom.rs) finds that.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};

pub use super::sweep_tokens::{SweepToken, SweepTokens};

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
    /// Sweeps in flight (module essay: the token count).
    pub tokens: SweepTokens,
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

impl Sweeper {
    pub fn new() -> Sweeper {
        Sweeper {
            sweepgen: AtomicU32::new(2),
            mark_sweepgen: AtomicU32::new(2),
            tokens: SweepTokens::new(),
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

    /// Registers a sweep in flight (never blocks).
    #[inline]
    pub fn begin(&self) -> SweepToken<'_> {
        self.tokens.take()
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
            .spawn(move || {
                crate::report::abort_on_panic("the sweeper thread", || {
                    sweeper_thread(heap, kick, holders)
                })
            })
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
            // Before the spans leave the list (see `finish`).
            let token = s.begin();
            let mut batch = [core::ptr::null_mut(); alloc::SWEEP_BATCH];
            let mut n = 0;
            {
                // One acquisition of the pool's lock per batch, not two per span.
                let mut l = pool.lists.lock();
                while n < batch.len() {
                    let Some(span) = l.unswept.pop() else { break };
                    batch[n] = span;
                    n += 1;
                }
            }
            if n == 0 {
                break;
            }
            // SAFETY: taken off the unswept list, so we hold them; their mark is over; the
            // token is held until the batch is back on its lists (frees counted before).
            unsafe { alloc::sweep_batch(h, pool, &batch[..n], false) };
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
    h.sweep.tokens.wait_none();
}
