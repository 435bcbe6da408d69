//! Sampling in GC heaps.
//!
//! A mutator allocates from 64-slot windows per (type, size class) (`gc/alloc.rs`), and the
//! sampling works as in the explicit-free heap (`Cache::refill_sampled`): a window's bytes
//! are counted against the thread's interval when it is loaded, and when the sample point
//! falls on its `k`-th slot, the window keeps the `k - 1` slots before it and *defers* the
//! rest (`Entry::deferred`); the allocation that finds the window empty next takes the
//! first deferred slot and is the sample. Deferred slots stay in the window's word: they
//! are counted, premarked and unmarked with it (`flush`, `blacken`), so the collector sees
//! no difference.
//!
//! A GC object is never freed explicitly: the sweeper frees it when a mark did not reach
//! it. A span that holds samples counts them (`Owned::sampled`), and `sweep_span` reports
//! its dead objects here only then ([`freed`]). Each sample carries the object's type name
//! as its `type` label.
//!
//! The interval state is per thread (a mutator lives on one thread); the capture runs in
//! the window refill, where the mutator holds no lock.

use core::cell::Cell;

use super::stack;
use crate::gc::span::GcSpan;

/// `LEFT` before its first draw.
const UNDRAWN: i64 = i64::MIN;

thread_local! {
    /// Bytes to allocate before the next sample.
    static LEFT: Cell<i64> = const { Cell::new(UNDRAWN) };
    /// The interval generator's state.
    static RNG: Cell<u64> = const { Cell::new(0) };
}

fn draw() -> i64 {
    RNG.with(|r| {
        if r.get() == 0 {
            r.set(super::seed() ^ (r as *const Cell<u64> as u64));
        }
        super::next_interval(r)
    })
}

/// Examines a window whose lowest slot the caller takes now: counts its slots of `size`
/// bytes against the interval, and cuts it short before the next sample point, moving the
/// slots from there on to `deferred` (which must be empty). `first_is_sample`: the slot
/// taken now is a deferred sample point. Returns whether the slot taken now is a sample.
pub(crate) fn window(
    bits: &mut u64,
    deferred: &mut u64,
    size: usize,
    first_is_sample: bool,
) -> bool {
    debug_assert!(*bits != 0 && *deferred == 0);
    let size = size as i64;
    let mut left = LEFT.get();
    if left == UNDRAWN {
        left = draw();
    }
    let first = *bits & bits.wrapping_neg();
    let mut sample_now = first_is_sample;
    if !sample_now {
        left -= size;
        if left <= 0 {
            sample_now = true;
            left = draw();
        }
    }
    let rest = *bits & !first;
    let m = rest.count_ones() as i64;
    if left > m * size {
        left -= m * size;
    } else {
        // The sample point is the `k`-th slot of the rest.
        let k = (left + size - 1) / size;
        let mut later = rest;
        for _ in 0..k - 1 {
            later &= later - 1;
        }
        *bits = first | (rest & !later);
        *deferred = later;
        // The next interval starts now (see `Cache::refill_sampled`).
        left = draw();
    }
    LEFT.set(left);
    sample_now
}

/// Whether a large object of `size` bytes is a sample (counted against the interval).
pub(crate) fn take_sample(size: usize) -> bool {
    let mut left = LEFT.get();
    if left == UNDRAWN {
        left = draw();
    }
    left = left.saturating_sub(size.min(i64::MAX as usize) as i64);
    let sampled = left <= 0;
    LEFT.set(if sampled { draw() } else { left });
    sampled
}

/// Records the sampled object at `addr` of `size` bytes in span `s` (held by the caller),
/// with the caller's stack and its type's name.
pub(crate) fn record(addr: usize, size: usize, s: &GcSpan) {
    let mut stack = super::table::Stack::EMPTY;
    stack::capture(&mut stack);
    let label = if s.ty.is_null() {
        crate::gc::alloc::TINY.name
    } else {
        // SAFETY: type descriptors are 'static.
        unsafe { (*s.ty).name }
    };
    // SAFETY: the caller holds `s`.
    unsafe { s.owned().sampled += 1 };
    super::record(addr, size, &stack, Some(label));
}

/// The sweeper found the objects `dead` (bit `i` = slot `base + i * size`) unreachable in a
/// span holding samples: counts the frees of those that were samples. Returns how many.
pub(crate) fn freed(base: usize, size: usize, mut dead: u64) -> u32 {
    let mut t = super::PROFILER.lock();
    let mut n = 0;
    while dead != 0 {
        let i = dead.trailing_zeros() as usize;
        dead &= dead - 1;
        n += t.record_free(base + i * size) as u32;
    }
    n
}
