//! goheap: Go's memory allocator and garbage collector, rebuilt in Rust.
//!
//! Three faces over one page heap:
//!
//! - [`gc`]: garbage-collected heaps with a safe API ([`gc::Heap`], [`gc::Gc`],
//!   `#[derive(Trace)]`), paced like Go's collector (GOGC, memory limit). Feature `gc`, on
//!   by default.
//! - [`GoAlloc`]: a `#[global_allocator]` with Go's size classes, thread caches and
//!   scavenger; [`stats`], [`metrics`], [`release_memory`] and [`profile`] observe and
//!   steer it.
//! - the `goheap-malloc` crate: the same allocator as an `LD_PRELOAD` malloc.
//!
//! Only Linux is supported.
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;
//!
//! fn main() {
//!     let v: Vec<u64> = (0..1000).collect();
//!     assert_eq!(v.iter().sum::<u64>(), 499_500);
//!     assert!(goheap::stats().heap_alloc > 0);
//! }
//! ```
//!
//! # Glossary
//!
//! - **page**: 8 KiB, the unit of the page heap.
//! - **arena**: 64 MiB of address space reserved from the OS at once; the page heap is made
//!   of arenas.
//! - **span**: a run of pages holding objects of one size class, or one large object.
//! - **size class**: one of Go's 67 object sizes from 8 B to 32 KiB.
//! - **window** (alloc cache): 64 bits of a span's free bitmap that the owner allocates from
//!   with count-trailing-zeros.
//! - **cache** (Go's mcache): a thread's current span per class plus the spans it owns.
//! - **central** (Go's mcentral): per-class list of spans no thread owns.
//! - **remote free**: a free by a thread that does not own the object's span.
//! - **parked span**: a full span; the first remote free pushes it back to its owner.
//! - **scavenge**: return free pages' physical memory to the OS.
//!
//! The layers, from the top: `global` (entry points, [`GoAlloc`]) → `cache` → `central` →
//! `heap` (arenas, span map, large objects) → `pagealloc` → `os`. They are private;
//! `docs/design.md` maps them, with the invariants and the lock order, and says how the
//! public surface is organised.

#![cfg_attr(loom, allow(dead_code, unused_imports))]
#![warn(
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

// The platforms goheap is built for: it calls Linux's mmap, madvise and futex directly and
// assumes 64-bit addresses (README, "Platforms").
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!(
    "goheap supports Linux on x86_64 (tested) and aarch64 (compiles, untested) only; \
     this target is neither"
);

// Lets `#[derive(Trace)]`'s `::goheap::...` paths resolve inside this crate too.
extern crate self as goheap;

// ---- The layers (private; `raw` re-exports what the workspace's other crates need).
mod asan;
mod cpu;
mod sizeclass;
mod span;
mod sync;

#[cfg(not(loom))]
mod cache;
#[cfg(not(loom))]
mod central;
#[cfg(not(loom))]
mod counters;
#[cfg(not(loom))]
mod fork;
#[cfg(not(loom))]
mod global;
#[cfg(not(loom))]
mod heap;
#[cfg(not(loom))]
mod lock;
mod os;
#[cfg(not(loom))]
mod pagealloc;
#[cfg(not(loom))]
mod report;
#[cfg(not(loom))]
mod scavenge_policy;
#[cfg(not(loom))]
mod scavenger;
#[cfg(not(loom))]
mod startup;
#[cfg(not(loom))]
mod stats;
#[cfg(not(loom))]
mod thread_slot;

// ---- The public surface: the collector's API, the global allocator, statistics, metrics
// and heap profiles. Everything a user names is in this list or in `gc`'s.
#[cfg(feature = "gc")]
pub mod gc;
#[cfg(not(loom))]
pub mod metrics;
#[cfg(not(loom))]
pub mod profile;

#[cfg(not(loom))]
pub use global::GoAlloc;
#[cfg(not(loom))]
pub use stats::{ClassStats, MemStats};

/// Unstable plumbing for the workspace's own crates (goheap-malloc, goheap-bench,
/// goheap-cli, the loom models and the integration tests): the allocator's internal layers,
/// re-exported as they are. Not part of the public API; anything here may change or vanish
/// in any release.
#[doc(hidden)]
pub mod raw {
    /// The atomics and waiting primitives (loom's under `--cfg loom`).
    pub mod sync {
        pub use crate::sync::*;
    }
    /// Span structs and their lock-free stacks.
    pub mod span {
        pub use crate::span::*;
    }
    /// Go's size classes.
    pub mod sizeclass {
        pub use crate::sizeclass::*;
    }
    /// The OS layer (mmap, RSS).
    pub mod os {
        pub use crate::os::*;
    }
    /// Thread caches: the malloc face's inlined fast path.
    #[cfg(not(loom))]
    pub mod cache {
        pub use crate::cache::*;
    }
    /// The thread's cache slot: the malloc face's inlined fast path reads it.
    #[cfg(not(loom))]
    pub mod thread_slot {
        pub use crate::thread_slot::*;
    }
    /// The allocator's entry points (malloc, free, usable_size).
    #[cfg(not(loom))]
    pub mod global {
        pub use crate::global::*;
    }
    /// pthread_atfork handlers.
    #[cfg(not(loom))]
    pub mod fork {
        pub use crate::fork::*;
    }
    /// The background scavenger's switch and its slack (the scavenger's policy and its
    /// thread, re-exported together).
    #[cfg(not(loom))]
    pub mod scavenger {
        pub use crate::scavenge_policy::*;
        pub use crate::scavenger::*;
    }
    /// Formatting without allocating (stderr reports).
    #[cfg(not(loom))]
    pub mod report {
        pub use crate::report::*;
    }
    /// The malloc face's counters and its exit report.
    #[cfg(not(loom))]
    pub mod stats {
        pub use crate::stats::*;
    }
    /// The collector's session handshakes (loom models).
    #[cfg(feature = "gc")]
    pub mod world {
        pub use crate::gc::world::*;
    }
    /// The collector's store barrier (loom models).
    #[cfg(feature = "gc")]
    pub mod barrier {
        pub use crate::gc::barrier::*;
    }
    /// `GcRefCell`'s borrow flag (loom models).
    #[cfg(feature = "gc")]
    pub mod borrow {
        pub use crate::gc::borrow::*;
    }
    /// `GcMutex`'s lock word (loom models).
    #[cfg(feature = "gc")]
    pub mod lock_word {
        pub use crate::gc::lock_word::*;
    }
    /// The parallel markers' work queue (loom models).
    #[cfg(feature = "gc")]
    pub mod workqueue {
        pub use crate::gc::workqueue::*;
    }
    /// The sweep-token count (loom models).
    #[cfg(feature = "gc")]
    pub mod sweep_tokens {
        pub use crate::gc::sweep_tokens::*;
    }
    /// The pacer's arithmetic (pacing tests).
    #[cfg(all(feature = "gc", not(loom)))]
    pub mod pacer {
        pub use crate::gc::pacer::*;
    }
}

/// What [`release_memory`] did.
///
/// ```
/// let report = goheap::release_memory();
/// assert!(report.heaps_skipped.is_empty()); // no GC heap is in a session
/// println!("{report}: {} bytes", report.bytes);
/// ```
#[cfg(not(loom))]
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ReleaseReport {
    /// Bytes returned to the OS.
    pub bytes: usize,
    /// GC heaps collected (and swept) first.
    pub heaps_collected: usize,
    /// GC heaps not collected, each with the reason (a thread inside one of its sessions,
    /// the caller inside one, a call from a destructor).
    pub heaps_skipped: Vec<String>,
}

#[cfg(not(loom))]
impl core::fmt::Display for ReleaseReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "released {} KiB; {} GC heap(s) collected",
            self.bytes >> 10,
            self.heaps_collected
        )?;
        for s in &self.heaps_skipped {
            write!(f, "; skipped {s}")?;
        }
        Ok(())
    }
}

/// Returns as much memory to the OS as possible now (Go's `debug.FreeOSMemory`). First every
/// GC heap of the process is collected and swept, except those it could collect only by
/// waiting for another thread's session (or the caller's own): those are skipped and named
/// in the report. Then the calling thread's kept empty spans and the central lists' empty
/// spans go back to the page heap, and every free page is released with
/// `madvise(MADV_DONTNEED)`. Never waits for a session more than about a second.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;
///
/// fn main() {
///     let big: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 1 << 20]).collect();
///     drop(big);
///     let report = goheap::release_memory();
///     println!("{report}");
///     assert!(goheap::stats().heap_released > 0);
/// }
/// ```
#[cfg(not(loom))]
pub fn release_memory() -> ReleaseReport {
    #[cfg(feature = "gc")]
    let (heaps_collected, heaps_skipped) = gc::heap::collect_for_release();
    #[cfg(not(feature = "gc"))]
    let (heaps_collected, heaps_skipped) = (0, Vec::new());
    let c = thread_slot::current();
    if !c.is_null() {
        // SAFETY: `c` is the calling thread's live cache.
        unsafe { (*c).free_empty_spans() };
    }
    for central in &central::CENTRAL {
        central.free_empty_spans();
    }
    ReleaseReport {
        bytes: heap::scavenge(usize::MAX, 512),
        heaps_collected,
        heaps_skipped,
    }
}

/// A snapshot of the heap's statistics (Go's `runtime.ReadMemStats`): the memory
/// [`GoAlloc`] and the `LD_PRELOAD` library serve, and the page heap they share with GC
/// heaps ([`gc::Heap::stats`] reads one GC heap's).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;
///
/// fn main() {
///     let before = goheap::stats();
///     let v: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
///     let after = goheap::stats();
///     assert!(after.mallocs >= before.mallocs + 1000);
///     assert!(after.heap_alloc >= before.heap_alloc + 1000 * 8);
///     drop(v);
/// }
/// ```
#[cfg(not(loom))]
pub fn stats() -> MemStats {
    stats::read()
}

/// Acquisitions of the allocator's mutexes since the process started: all of them, those
/// of the page heap's, and those that found the lock held (feature `lock-count`).
#[cfg(all(feature = "lock-count", not(loom)))]
pub fn lock_counts() -> LockCounts {
    use core::sync::atomic::Ordering::Relaxed;
    LockCounts {
        acquired: lock::count::ACQUIRED.load(Relaxed),
        page_heap: lock::count::PAGE_HEAP.load(Relaxed),
        gc_span_structs: lock::count::GC_SPAN_STRUCTS.load(Relaxed),
        central: lock::count::CENTRAL.load(Relaxed),
        contended: lock::count::CONTENDED.load(Relaxed),
    }
}

/// What [`lock_counts`] returns.
#[cfg(all(feature = "lock-count", not(loom)))]
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct LockCounts {
    /// Every acquisition of an allocator mutex (page heap, central lists, GC pools, ...).
    pub acquired: u64,
    /// Acquisitions of the page heap's mutex.
    pub page_heap: u64,
    /// Acquisitions of the GC's span-struct pool.
    pub gc_span_structs: u64,
    /// Acquisitions of the malloc face's central lists (the rest are the GC's per-type
    /// pools, the span map's and the thread caches' pool).
    pub central: u64,
    /// Acquisitions that found the lock held (they spun, then slept).
    pub contended: u64,
}
