//! The borrow flag of a `GcRefCell` (`cell.rs`), as small functions over its one word, shared
//! by the real cell and its loom models (`tests/loom.rs`, `gc_borrow`).
//!
//! ```text
//!   bits  0..16   user borrows: the number of shared ones, or WRITING (one mutable)
//!   bits 16..31   marker reads in progress
//!   bit  31       a mutable borrow waits for marker reads to end (futex word)
//! ```
//!
//! Three parties use the word. The program takes shared borrows and one mutable borrow at a
//! time, as a `RefCell`; a marker (mark worker, assist, or a barrier shading through the
//! cell) reads the value between mutable borrows; and a mutable borrow that finds marker
//! reads in progress waits for them, asleep on the word.
//!
//! # Who waits for whom
//!
//! - A marker never waits. It finds the cell mutably borrowed and skips it (the barrier
//!   essay in `barrier.rs` shows why that loses nothing). So a mutable borrow leaked with
//!   `mem::forget`, which safe code may do, never blocks a mark.
//! - A mutable borrow waits for marker reads, each of which is one trace of the value. The
//!   last marker to finish wakes it: it sets `WAITER`, then sleeps while the word still
//!   holds what it saw; the marker takes its count off, then (seeing `WAITER`) clears it and
//!   wakes every sleeper. The futex compares and sleeps atomically with respect to the
//!   wake, so the wake-up cannot fall between the borrow's check and its sleep.
//! - A mutable borrow ends in two steps when the value holds pointers: it turns into one
//!   shared borrow (a swap), the cell then shades what the borrow may have put in, and the
//!   shared borrow ends (`cell.rs`: why the swap comes first).

use super::marker_word;
use crate::sync::{AtomicU32, Ordering};

/// The user-borrow bits.
pub const USERS: u32 = 0xffff;
/// A mutable borrow.
pub const WRITING: u32 = USERS;
/// One marker read.
pub const MARKER: u32 = marker_word::MARKER;
/// The marker-read bits.
pub const MARKERS: u32 = 0x7fff << 16;
/// A mutable borrow sleeps until marker reads end.
pub const WAITER: u32 = 1 << 31;

/// Takes a shared borrow; false when the cell is mutably borrowed (or 65,534 shared borrows
/// are held).
#[inline]
pub fn try_shared(state: &AtomicU32) -> bool {
    let mut f = state.load(Ordering::Relaxed);
    loop {
        if f & USERS >= WRITING - 1 {
            return false;
        }
        match state.compare_exchange_weak(f, f + 1, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(x) => f = x,
        }
    }
}

/// Ends a shared borrow.
#[inline]
pub fn release_shared(state: &AtomicU32) {
    state.fetch_sub(1, Ordering::Release);
}

/// Takes the mutable borrow; false if the cell is borrowed. Sleeps while marker reads are in
/// progress (module essay).
pub fn try_writing(state: &AtomicU32) -> bool {
    let mut f = state.load(Ordering::Relaxed);
    loop {
        if f & USERS != 0 {
            return false;
        }
        if f & MARKERS != 0 {
            f = marker_word::sleep_on(state, f, WAITER, Ordering::Relaxed);
            continue;
        }
        match state.compare_exchange_weak(f, WRITING, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(x) => f = x,
        }
    }
}

/// Ends the mutable borrow of a value that holds no pointers.
#[inline]
pub fn release_writing(state: &AtomicU32) {
    state.store(0, Ordering::Release);
}

/// Turns the mutable borrow into one shared borrow (`cell.rs`: the swap before the look at
/// the barrier's insertion flag).
#[inline]
pub fn writing_to_shared(state: &AtomicU32) {
    state.swap(1, Ordering::SeqCst);
}

/// A marker's read: false when the cell is mutably borrowed (the marker skips it and never
/// waits). On true, the caller reads the value and then calls [`marker_read_done`].
#[inline]
pub fn marker_read(state: &AtomicU32) -> bool {
    marker_word::marker_read(state, MARKERS, |f| f & USERS == WRITING)
}

/// Ends a marker read; the last one wakes a mutable borrow waiting for it.
#[inline]
pub fn marker_read_done(state: &AtomicU32) {
    marker_word::marker_read_done(state, MARKERS, WAITER);
}
