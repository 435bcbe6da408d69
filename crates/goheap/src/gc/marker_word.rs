//! What `GcRefCell`'s borrow flag (`borrow.rs`) and `GcMutex`'s lock word (`lock_word.rs`)
//! share: marker reads counted in the word's high 16 bits, and sleeping on the word with a
//! sleeper bit set.
//!
//! Both words hold, besides their own bits, a count of marker reads in progress (one
//! [`MARKER`] each) and one bit that says someone sleeps on the word. A marker never waits:
//! it takes a read unless the word is *held* (mutably borrowed, or locked), which each word
//! decides for itself. Whoever must wait (a mutable borrow or a locker waiting for marker
//! reads, a waiter outside its session waiting for an unlock) sets the sleeper bit and sleeps
//! on the futex while the word still holds what it saw ([`sleep_on`]); the last marker read
//! to end clears the bit and wakes every sleeper ([`marker_read_done`]), which look again.
//! The futex compares and sleeps atomically with respect to the wake, so a wake-up cannot
//! fall between a sleeper's look and its sleep. The protocols are modelled with loom through
//! the two words' own functions (`tests/loom.rs`, `gc_borrow` and `gc_mutex`).

use crate::sync::{futex_wait, futex_wake, AtomicU32, Ordering};

/// One marker read.
pub const MARKER: u32 = 1 << 16;

/// Sleeps on `state`, which the caller last read as `f` and must wait on, after setting
/// `sleeper` in it; returns the word as read after the wake-up, or as found if it changed
/// before the bit could be set, for the caller to look at again. `load` orders that read
/// (and the failed compare's) as the caller's own reads of the word.
#[inline]
pub fn sleep_on(state: &AtomicU32, f: u32, sleeper: u32, load: Ordering) -> u32 {
    if f & sleeper == 0 {
        if let Err(x) = state.compare_exchange_weak(f, f | sleeper, Ordering::Relaxed, load) {
            return x;
        }
    }
    futex_wait(state, f | sleeper);
    state.load(load)
}

/// A marker's read: false when `held` says the word is held (the marker skips the value and
/// never waits). On true, the caller reads the value and then calls [`marker_read_done`].
/// `markers` is the mask of the word's marker-read count.
#[inline]
pub fn marker_read(state: &AtomicU32, markers: u32, held: impl Fn(u32) -> bool) -> bool {
    let mut f = state.load(Ordering::Relaxed);
    loop {
        if held(f) {
            return false;
        }
        debug_assert!(
            f & markers != markers,
            "goheap: too many markers on one GcRefCell or GcMutex"
        );
        match state.compare_exchange_weak(f, f + MARKER, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(x) => f = x,
        }
    }
}

/// Ends a marker read; the last one clears `sleeper` and wakes every sleeper.
#[inline]
pub fn marker_read_done(state: &AtomicU32, markers: u32, sleeper: u32) {
    let f = state.fetch_sub(MARKER, Ordering::Release) - MARKER;
    if f & markers == 0 && f & sleeper != 0 {
        state.fetch_and(!sleeper, Ordering::Relaxed);
        futex_wake(state, i32::MAX as u32); // all sleepers
    }
}
