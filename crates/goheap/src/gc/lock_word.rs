//! The state word of a `GcMutex` (`mutex.rs`), as small functions over its one `u32`, shared
//! by the real lock and its loom model (`tests/loom.rs`, `gc_mutex`).
//!
//! ```text
//!   bit   0       LOCKED: a guard holds the value
//!   bit   1       SLEEPERS: someone sleeps on the word (futex)
//!   bits 16..32   marker reads in progress
//! ```
//!
//! Three parties use the word, as with `GcRefCell`'s flag (`borrow.rs`): lockers, markers
//! (mark workers, assists, barriers shading through the value) and threads waiting for the
//! lock to be released.
//!
//! # Who waits for whom, and where
//!
//! - A marker never waits: it finds the word locked and skips the value (the barrier essay
//!   in `barrier.rs` shows why that loses nothing; a guard leaked with `mem::forget` keeps
//!   the word locked for good and still blocks no mark).
//! - A locker ([`try_lock`], inside a session) never waits for another locker: it fails.
//!   It waits only for marker reads in progress, each one trace of the value, asleep on the
//!   word; the last marker wakes it.
//! - A thread that wants a locked mutex waits in [`wait_unlocked`], *outside* its sessions
//!   (`mutex.rs` says why it must), asleep on the word until an unlock wakes it; then it
//!   enters a session and tries again. Waiting outside a session, it holds up neither mark
//!   termination nor the start of a cycle, whatever the holder does.
//!
//! One bit serves both kinds of sleeper: whoever sets it sleeps, and every transition that
//! can satisfy some sleeper (the unlock, the last marker read ending) clears it and wakes
//! every sleeper, who re-check their own condition and set it again if they must sleep on.
//! The futex compares and sleeps atomically with respect to the wake, so a wake-up cannot
//! fall between a sleeper's check and its sleep. A wake is a real event (an unlock or the
//! end of a trace), never a timeout: nothing polls.
//!
//! # The unlock of a value that holds pointers
//!
//! It turns the lock into one marker read in a single atomic add (`LOCKED` becomes one
//! `MARKER`), then the mutex shades what the guard may have put in if the barrier asks for
//! it, then the marker read ends. Lockers that come meanwhile wait for that read like any
//! other; a mark that starts meanwhile finds the value readable (`mutex.rs`: why the
//! release comes before the look at the barrier).

use super::marker_word;
use crate::sync::{futex_wake, AtomicU32, Ordering};

/// A guard holds the value.
pub const LOCKED: u32 = 1;
/// Someone sleeps on the word.
pub const SLEEPERS: u32 = 1 << 1;
/// One marker read.
pub const MARKER: u32 = marker_word::MARKER;
/// The marker-read bits.
pub const MARKERS: u32 = 0xffff << 16;

/// Takes the lock; false if it is held. Sleeps while marker reads are in progress (module
/// essay), never for another locker.
pub fn try_lock(state: &AtomicU32) -> bool {
    let mut f = state.load(Ordering::Relaxed);
    loop {
        if f & LOCKED != 0 {
            return false;
        }
        if f & MARKERS != 0 {
            f = marker_word::sleep_on(state, f, SLEEPERS, Ordering::Relaxed);
            continue;
        }
        match state.compare_exchange_weak(f, f | LOCKED, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(x) => f = x,
        }
    }
}

/// Sleeps until the lock is not held (it may be taken again by the time the caller tries).
/// Must be called outside every session (`mutex.rs`).
pub fn wait_unlocked(state: &AtomicU32) {
    let mut f = state.load(Ordering::Acquire);
    loop {
        if f & LOCKED == 0 {
            return;
        }
        f = marker_word::sleep_on(state, f, SLEEPERS, Ordering::Acquire);
    }
}

/// Releases the lock of a value that holds no pointers, waking the sleepers.
#[inline]
pub fn unlock(state: &AtomicU32) {
    let prev = state.fetch_and(!(LOCKED | SLEEPERS), Ordering::SeqCst);
    if prev & SLEEPERS != 0 {
        futex_wake(state, i32::MAX as u32); // all sleepers
    }
}

/// Turns the lock into one marker read (module essay); the caller then reads the value as a
/// marker would and ends with [`marker_read_done`], which wakes the sleepers.
#[inline]
pub fn unlock_to_marker_read(state: &AtomicU32) {
    // While locked no marker read is in progress (a marker fails on a locked word), so this
    // turns bit 0 into exactly one marker read and keeps `SLEEPERS`.
    state.fetch_add(MARKER - LOCKED, Ordering::SeqCst);
}

/// A marker's read: false when the lock is held (the marker skips the value and never
/// waits). On true, the caller reads the value, then calls [`marker_read_done`].
#[inline]
pub fn marker_read(state: &AtomicU32) -> bool {
    marker_word::marker_read(state, MARKERS, |f| f & LOCKED != 0)
}

/// Ends a marker read; the last one wakes the sleepers.
#[inline]
pub fn marker_read_done(state: &AtomicU32) {
    marker_word::marker_read_done(state, MARKERS, SLEEPERS);
}

/// Whether the lock is held now (a snapshot).
#[inline]
pub fn is_locked(state: &AtomicU32) -> bool {
    state.load(Ordering::Relaxed) & LOCKED != 0
}
