//! Atomics used by the lock-free parts, swapped for loom's under `--cfg loom` so that the
//! protocols in [`crate::span`] can be model-checked (`RUSTFLAGS="--cfg loom" cargo test
//! --release -p goheap --test loom`).
//!
//! Only the modules that loom checks import from here; the rest use `core::sync::atomic`
//! directly because they need `const` constructors for statics.

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};

pub use core::sync::atomic::Ordering;

/// Spin-wait hint: loom must be told to run another thread, real hardware just pauses.
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
