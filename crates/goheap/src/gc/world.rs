//! The handshakes between mutators and the collector, as small functions shared by the real
//! heap and its loom models (`tests/loom.rs`, `gc_world` and `gc_wake`). Nothing here stops
//! the world: each handshake concerns one mutator at a time.
//!
//! Each mutator has a session counter `epoch`, odd while it is inside a session, and a flag
//! `claim`, set while the collector works on the mutator's allocation cache for it.
//!
//! # Entering a session against a claim (Dekker)
//!
//! ```text
//!   mutator (try_enter)                 collector (try_claim)
//!   epoch += 1 (odd)      (SeqCst RMW)  claim = true        (SeqCst)
//!   read claim            (SeqCst)      read epoch          (SeqCst)
//! ```
//!
//! With all four accesses sequentially consistent, at least one side sees the other: either
//! the mutator sees the claim (and backs out, `epoch += 1` again, before touching its cache)
//! or the collector sees an odd epoch (and gives the claim up at once). Never "inside a
//! session" and "cache claimed" together. A claim is held only for the few microseconds a
//! cache flush takes, and the collector waits for nothing while holding one, so a backed-out
//! mutator waits briefly and never deadlocks, even when its thread is inside another session.
//!
//! A backed-out mutator sleeps until the claim is gone, and only the collector's release can
//! wake it, so the collector wakes the mutators after every claim, held or refused
//! ([`release_claim`], then `Mutators::flush_idle`). Waking only a mutator whose epoch moved
//! since the claim was raised (one wake-up per claim actually raced) was tried and lost a
//! wake-up (found by review): the mutator backs out against claim 1 and is preempted before
//! it looks again under the mutex; claim 1 is released (its wake-up finds nobody asleep);
//! claim 2, of the next cycle, reads the epoch *after* the back-out, is raised, and the
//! mutator now sleeps on claim 2, whose release sees no change of the epoch and wakes nobody.
//!
//! # Colour at mark start (Dekker again)
//!
//! ```text
//!   mutator (enter, then colour)        collector (mark start, then inside)
//!   epoch += 1 (odd)      (SeqCst RMW)  phase = Mark        (SeqCst)
//!   read phase            (SeqCst)      read every epoch    (SeqCst)
//! ```
//!
//! Either the mutator sees `Mark` (its session is *black*: it began after the mark did, so
//! everything it reaches is marked or reachable from a grey object, and it allocates black),
//! or the collector sees its odd epoch (the session is *grey*: it may hold pointers the
//! marker never saw, and mark termination waits until the epoch has moved on, the
//! session-boundary "stack scan"). Both may happen; that is only conservative.
//!
//! # Waking a waiting collector, and only it
//!
//! Each mutator has a third word, `watched`, set by a collector waiting for *that* mutator
//! (its epoch to move, or its flush generation to become current). `exit` (and a backing
//! out `try_enter`) increments the epoch and then reads its own `watched`; the collector
//! sets `watched`, then reads the epoch ([`Watch::may_sleep`]). Dekker once more:
//!
//! ```text
//!   mutator (exit, announce)            collector (Watch::may_sleep, then pending())
//!   epoch += 1            (SeqCst RMW)  watched = true      (SeqCst)
//!   fence                               fence
//!   read watched          (SeqCst)      read epoch          (SeqCst)
//! ```
//!
//! Either the collector sees the new epoch (and does not sleep), or the mutator sees
//! `watched` and wakes it under the collector's mutex (so the wake-up cannot fall between the
//! collector's check and its sleep). The interleaving that loses a wake-up, and which each
//! part of this rules out:
//!
//! 1. collector reads the epoch: odd (the session is open), so it will sleep;
//! 2. mutator: epoch += 1, reads `watched`: false, so it does not wake anyone;
//! 3. collector sets `watched` and sleeps: forever.
//!
//! The collector must therefore set the flag *before* its last read of the epoch, and both
//! sides need the store-to-load order (the fences; under loom a SeqCst access alone does not
//! give it): [`Watch::may_sleep`] returns false after setting the flag, and the caller reads
//! the epoch again before it sleeps. A mutator that finds its flag set clears it (`swap`)
//! and wakes the collector once; a collector woken for another reason that finds the flag of
//! the mutator it waits for cleared sets it again and re-reads. So a session's exit touches
//! the collector's mutex and futex only when the collector waits for that very mutator (at
//! most once per collector check), not on every exit while some wait is in progress: with
//! many threads entering and leaving sessions during a concurrent mark, a heap-wide flag made
//! every exit a `futex_wake`.
//!
//! `announce` is the same for a value other than the epoch: a mutator that lets its stale
//! spans go inside a session stores its flush generation, then reads its `watched`; sweep
//! termination sets `watched`, then reads the generations.

use crate::sync::{loom_seqcst_fence, AtomicBool, AtomicU64, Ordering};

/// What [`try_enter`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Entry {
    /// The session is open.
    Open,
    /// Backed out: wait until the claim is released, then try again. `wake`: a collector
    /// waits for this mutator and must be woken (the epoch moved twice under its eyes).
    BackedOut {
        /// A collector waits for this mutator and must be woken.
        wake: bool,
    },
}

/// Opens a session unless the collector holds a claim on the mutator's cache.
#[inline]
pub fn try_enter(epoch: &AtomicU64, claim: &AtomicBool, watched: &AtomicBool) -> Entry {
    let e = epoch.fetch_add(1, Ordering::SeqCst);
    debug_assert!(e % 2 == 0, "goheap: session entered twice");
    loom_seqcst_fence();
    if !claim.load(Ordering::SeqCst) {
        return Entry::Open;
    }
    epoch.fetch_add(1, Ordering::SeqCst);
    Entry::BackedOut {
        wake: announce(watched),
    }
}

/// Closes a session; true when a collector waits for this mutator and must be woken.
#[inline]
pub fn exit(epoch: &AtomicU64, watched: &AtomicBool) -> bool {
    let e = epoch.fetch_add(1, Ordering::SeqCst);
    debug_assert!(e % 2 == 1, "goheap: session closed twice");
    announce(watched)
}

/// A mutator has just stored (SeqCst) something a waiting collector checks (its epoch, or its
/// cache's flush generation when it lets stale spans go inside a session); true when the
/// collector waits for this mutator and must be woken. Clears `watched` (its own flag): the
/// collector sets it again if it still waits after this wake-up (module essay: waking).
#[inline]
pub fn announce(watched: &AtomicBool) -> bool {
    loom_seqcst_fence();
    // The plain load first: the flag is nearly always clear, and a load keeps the line shared
    // with the collector where a swap would take it exclusive on every exit.
    watched.load(Ordering::SeqCst) && watched.swap(false, Ordering::SeqCst)
}

/// What [`try_claim`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Claim {
    /// The cache is claimed: the mutator is outside its sessions and cannot enter one until
    /// [`release_claim`].
    Held,
    /// The mutator is inside a session; the claim is given up already (the mutator may
    /// have backed out against it meanwhile: the caller wakes it).
    Refused,
}

/// Claims an idle mutator's cache (module essay: entering a session against a claim).
#[inline]
pub fn try_claim(epoch: &AtomicU64, claim: &AtomicBool) -> Claim {
    claim.store(true, Ordering::SeqCst);
    loom_seqcst_fence();
    if epoch.load(Ordering::SeqCst) % 2 == 0 {
        return Claim::Held;
    }
    release_claim(claim);
    Claim::Refused
}

/// Releases a claim; the caller then wakes the mutators waiting for a release (module
/// essay: every claim is followed by a wake-up).
#[inline]
pub fn release_claim(claim: &AtomicBool) {
    claim.store(false, Ordering::SeqCst);
}

/// Releases a [`hold`] (the caller then wakes every mutator).
#[inline]
pub fn release(claim: &AtomicBool) {
    claim.store(false, Ordering::SeqCst);
}

/// The epoch of a session open now, or `None` when the mutator is outside. Called by the
/// collector after it has published the mark phase (module essay: colour at mark start).
#[inline]
pub fn open_session(epoch: &AtomicU64) -> Option<u64> {
    let e = epoch.load(Ordering::SeqCst);
    (e % 2 == 1).then_some(e)
}

/// Whether the session that had epoch `e` has ended.
#[inline]
pub fn passed(epoch: &AtomicU64, e: u64) -> bool {
    epoch.load(Ordering::SeqCst) != e
}

/// The collector is about to wait for a mutator (module essay: waking): sets its flag.
#[inline]
pub fn watch(watched: &AtomicBool) {
    watched.store(true, Ordering::SeqCst);
    loom_seqcst_fence();
}

/// A collector's wait for mutators: the one mutator whose `watched` flag it has set. Used by
/// `Mutators::wait_until` and the loom models, in this loop, under the collector's mutex:
///
/// ```text
///   loop {
///       let Some(m) = pending() else { watch.end(); return };  // reads m's epoch, etc.
///       if watch.may_sleep(&m.watched) { sleep on the condition variable }
///   }
/// ```
///
/// It watches only the mutator `pending` returned (the first one still waited for): the
/// others' exits touch no futex. When that one is done, `pending` returns the next one.
pub struct Watch<'m> {
    /// The flag this wait set last; only the waiting collector touches the field (the flag it
    /// points to is also cleared by its mutator, `announce`).
    flag: Option<&'m AtomicBool>,
}

impl<'m> Watch<'m> {
    /// A wait that watches nobody yet.
    pub const fn new() -> Watch<'m> {
        Watch { flag: None }
    }

    /// `pending` has just found the mutator with flag `watched` still waited for: true when
    /// the collector may sleep now (the flag was set before that check and is still set, so
    /// the mutator's next change will wake it); false when the flag had to be set (first
    /// time, or the mutator cleared it by waking the collector), after which the caller must
    /// check `pending` again before sleeping: the check it made before the flag was up may
    /// already be stale (module essay: the lost wake-up).
    pub fn may_sleep(&mut self, watched: &'m AtomicBool) -> bool {
        if let Some(f) = self.flag {
            if core::ptr::eq(f, watched) {
                if watched.load(Ordering::SeqCst) {
                    return true;
                }
            } else {
                // Moving on to another mutator: the last one's exits stay quiet.
                f.store(false, Ordering::SeqCst);
            }
        }
        self.flag = Some(watched);
        watch(watched);
        false
    }

    /// The wait is over: clears the flag it set, so that the mutator's next exits stay quiet.
    pub fn end(&mut self) {
        if let Some(f) = self.flag.take() {
            f.store(false, Ordering::SeqCst);
        }
    }
}

impl Default for Watch<'_> {
    fn default() -> Self {
        Watch::new()
    }
}

/// Stops a mutator from entering sessions (it backs out and waits) until [`release`];
/// `gccheckmark`'s stop of the world. Check [`outside`] to know it has left its session.
#[inline]
pub fn hold(claim: &AtomicBool) {
    claim.store(true, Ordering::SeqCst);
    loom_seqcst_fence();
}

/// Whether the mutator is outside its sessions (after [`hold`]: stays so until released).
#[inline]
pub fn outside(epoch: &AtomicU64) -> bool {
    epoch.load(Ordering::SeqCst) % 2 == 0
}
