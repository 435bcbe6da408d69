//! The barrier of a value behind an exclusive hold: `GcRefCell`'s mutable borrow
//! (`cell.rs`) and `GcMutex`'s lock (`mutex.rs`), which take and give up their holds through
//! different words (`borrow.rs`, `lock_word.rs`) but apply the same barrier around them.
//!
//! - **On acquire** ([`acquire`]): if the collector's filter was seen on before the word
//!   changed, the store gate is held until the value is shaded, so that a mark cannot end
//!   between the two (barrier.rs: the end of a mark); and the deletion half shades the
//!   value once per mark, tagged by `MARK_STARTS` in the holder's `shaded` word, so that
//!   whatever the hold removes was shaded first.
//! - **On release** ([`release`]): the insertion half. The hold first turns into a read (a
//!   sequentially consistent read-modify-write on the word), and only then looks at the
//!   insertion flag; had it looked first and released after, a mark starting in between
//!   could find the value still held (the release sitting in a store buffer), skip it, and
//!   never see what the hold put in. This way, if the flag reads zero, the release precedes
//!   the mark start and the marker finds the value readable.
//!
//! Values that hold no pointers (`T::NEEDS_TRACE` false) skip both halves; the callers
//! release those with a plain store.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

use super::barrier::{ACTIVE, INSERTION, MARK_STARTS, STORE_GATE};
use super::trace::{Trace, Tracer};

/// Takes an exclusive hold with `try_hold` (true when it got it) and applies the acquire
/// barrier (module essay). `shaded` is the holder's record of the mark start that last
/// shaded `value`, written only here, by the holder.
///
/// # Safety
/// `try_hold` returns true only when it took a hold that excludes every other access to
/// `value` until the holder gives it up (the value is read through it here).
#[inline]
pub unsafe fn acquire<T: ?Sized + Trace>(
    shaded: &AtomicU64,
    value: &UnsafeCell<T>,
    try_hold: impl FnOnce() -> bool,
) -> bool {
    // Seen on before the word changes: hold the store gate until the value is shaded.
    let gated = T::NEEDS_TRACE && ACTIVE.load(Ordering::SeqCst) != 0;
    if gated {
        STORE_GATE.read();
    }
    let got = try_hold();
    if got && T::NEEDS_TRACE && ACTIVE.load(Ordering::SeqCst) != 0 {
        // Deletion half, once per mark: whatever the hold removes is shaded first.
        let k = MARK_STARTS.load(Ordering::SeqCst);
        // SAFETY: `try_hold` took an exclusive hold (the caller's contract).
        if shaded.load(Ordering::Relaxed) != k && unsafe { shade(value) } {
            // Shaded under `MARK` after mark start `k`: skip until the next one.
            shaded.store(k, Ordering::Relaxed);
        }
    }
    if gated {
        STORE_GATE.read_done();
    }
    got
}

/// Gives up an exclusive hold of a value that holds pointers, with the release barrier
/// (module essay): `to_read` turns the hold into one read of the value (a sequentially
/// consistent read-modify-write of the word), `read_done` ends that read.
///
/// # Safety
/// The caller holds `value` exclusively; after `to_read`, until `read_done`, it holds a
/// read that excludes every mutable access (the value is traced through it here).
#[inline]
pub unsafe fn release<T: ?Sized + Trace>(
    value: &UnsafeCell<T>,
    to_read: impl FnOnce(),
    read_done: impl FnOnce(),
) {
    to_read();
    if INSERTION.load(Ordering::SeqCst) != 0 {
        // SAFETY: after `to_read` we hold a read that excludes every mutable access (the
        // caller's contract).
        let _ = unsafe { shade(value) };
    }
    read_done();
}

/// Shades everything `value` holds; true when something was shaded with every heap
/// involved marking.
///
/// # Safety
/// The caller holds the value exclusively, or a read of it that excludes every mutable
/// access.
#[cold]
unsafe fn shade<T: ?Sized + Trace>(value: &UnsafeCell<T>) -> bool {
    let mut t = Tracer::shading();
    // SAFETY: the caller's contract.
    unsafe { (*value.get()).trace(&mut t) };
    t.finish_shading()
}
