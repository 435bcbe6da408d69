//! The handshakes between mutators and the collector, as small functions shared by the real
//! heap and its loom models (`tests/loom.rs`, `gc_world`). Nothing here stops the world:
//! each handshake concerns one mutator at a time.
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
//! # Waking a waiting collector
//!
//! `exit` (and a backing out `try_enter`) increments the epoch and then reads `watched`; a
//! collector that waits for some epoch to move sets `watched` and then reads the epochs.
//! Dekker once more: either the collector sees the new epoch, or the mutator sees `watched`
//! and wakes it (under the collector's mutex, so the wake-up cannot fall between its check
//! and its sleep). `announce` is the same for a value other than the epoch: a mutator that
//! lets its stale spans go inside a session stores its flush generation, then reads
//! `watched`; sweep termination sets `watched`, then reads the generations.

use crate::sync::{loom_seqcst_fence, AtomicBool, AtomicU64, Ordering};

/// What [`try_enter`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Entry {
    /// The session is open.
    Open,
    /// Backed out: wait until the claim is released, then try again. `wake`: a collector
    /// watches epochs and must be woken (the epoch moved twice under its eyes).
    BackedOut {
        /// A collector watches epochs and must be woken.
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
    loom_seqcst_fence();
    Entry::BackedOut {
        wake: watched.load(Ordering::SeqCst),
    }
}

/// Closes a session; true when a collector watches epochs and should be woken.
#[inline]
pub fn exit(epoch: &AtomicU64, watched: &AtomicBool) -> bool {
    let e = epoch.fetch_add(1, Ordering::SeqCst);
    debug_assert!(e % 2 == 1, "goheap: session closed twice");
    announce(watched)
}

/// A mutator has just stored (SeqCst) something a waiting collector checks besides epochs
/// (its cache's flush generation, when it lets stale spans go inside a session); true when
/// a collector watches and must be woken. The same Dekker pair as [`exit`].
#[inline]
pub fn announce(watched: &AtomicBool) -> bool {
    loom_seqcst_fence();
    watched.load(Ordering::SeqCst)
}

/// Claims an idle mutator's cache; true when it is claimed (the mutator is outside its
/// sessions and cannot enter one until [`release`]). On false nothing is held.
#[inline]
pub fn try_claim(epoch: &AtomicU64, claim: &AtomicBool) -> bool {
    claim.store(true, Ordering::SeqCst);
    loom_seqcst_fence();
    if epoch.load(Ordering::SeqCst) % 2 == 0 {
        return true;
    }
    claim.store(false, Ordering::SeqCst);
    false
}

/// Releases a claim (the caller then wakes mutators that backed out).
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

/// The collector is about to wait for epochs to move (module essay: waking).
#[inline]
pub fn watch(watched: &AtomicBool) {
    watched.store(true, Ordering::SeqCst);
    loom_seqcst_fence();
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
