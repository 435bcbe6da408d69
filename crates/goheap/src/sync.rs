//! Atomics used by the lock-free parts, swapped for loom's under `--cfg loom` so that the
//! protocols in [`crate::span`] can be model-checked (`RUSTFLAGS="--cfg loom" cargo test
//! --release -p goheap --test loom`).
//!
//! Only the modules that loom checks import from here; the rest use `core::sync::atomic`
//! directly because they need `const` constructors for statics.

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize};

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize};

pub use core::sync::atomic::Ordering;

/// Spin-wait hint: loom must be told to run another thread, real hardware just pauses.
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// Loom-only stand-in for the sequential consistency of the park handshake (span essay).
///
/// Loom treats `SeqCst` loads and stores as `AcqRel` (its README, "Unsupported features"), so
/// it would report the store-buffering outcome of the Dekker handshake, which the C++20 memory
/// model rules out for `SeqCst` accesses. Loom does model `fence(SeqCst)`, so under loom one
/// goes between each side's `SeqCst` write and `SeqCst` read; real builds get nothing (the
/// accesses themselves are `SeqCst`).
#[inline(always)]
pub fn loom_seqcst_fence() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}
