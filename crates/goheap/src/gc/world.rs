//! The handshake between mutators entering sessions and a collector stopping the world, as
//! two small functions shared by the real heap and its loom model (`tests/loom.rs`).
//!
//! ```text
//!   mutator (try_enter)              collector (request_stop, then all_outside)
//!   in_session = true   (SeqCst)     stop = true           (SeqCst)
//!   read stop           (SeqCst)     read every in_session (SeqCst)
//! ```
//!
//! This is Dekker's pattern: with all four accesses sequentially consistent, at least one
//! side sees the other's write. So either the mutator sees `stop` (and backs out, clearing
//! its flag, before touching any object), or the collector sees the mutator's flag (and
//! waits). Never both "in a session" and "world stopped". The waiting itself (condition
//! variable, wake-ups) lives in `gc/heap.rs` and only needs to avoid lost wake-ups; safety
//! rests on these lines alone.

use crate::sync::{loom_seqcst_fence, AtomicBool, Ordering};

/// Marks a mutator inside a session unless a stop is requested; false means "backed out:
/// wait for the world to restart, then try again". `nested`: the thread already holds a
/// session of this heap open, so the world cannot be stopped before it ends anyway, and
/// waiting would deadlock.
#[inline]
pub fn try_enter(in_session: &AtomicBool, stop: &AtomicBool, nested: bool) -> bool {
    in_session.store(true, Ordering::SeqCst);
    loom_seqcst_fence();
    if nested || !stop.load(Ordering::SeqCst) {
        return true;
    }
    in_session.store(false, Ordering::SeqCst);
    false
}

/// Ends a session; true when a collector is waiting and should be woken.
#[inline]
pub fn exit(in_session: &AtomicBool, stop: &AtomicBool) -> bool {
    in_session.store(false, Ordering::SeqCst);
    loom_seqcst_fence();
    stop.load(Ordering::SeqCst)
}

/// Asks mutators to stay out of sessions.
#[inline]
pub fn request_stop(stop: &AtomicBool) {
    stop.store(true, Ordering::SeqCst);
    loom_seqcst_fence();
}

/// Whether every mutator is outside its sessions (after `request_stop`: then the world is
/// stopped, and stays so until `stop` is cleared).
pub fn all_outside<'a>(mut flags: impl Iterator<Item = &'a AtomicBool>) -> bool {
    flags.all(|f| !f.load(Ordering::SeqCst))
}
