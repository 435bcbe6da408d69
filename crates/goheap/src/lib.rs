//! goheap: Go's memory allocator (and, in time, its garbage collector) rebuilt in Rust.
//!
//! # Glossary
//!
//! - **page**: 8 KiB, the unit of the page heap ([`sizeclass::PAGE_SIZE`]).
//! - **arena**: 64 MiB of address space reserved from the OS at once; the page heap is made
//!   of arenas.
//! - **span**: a run of pages holding objects of one size class, or one large object.
//! - **size class**: one of Go's 67 object sizes from 8 B to 32 KiB ([`sizeclass`]).
//! - **window** (alloc cache): 64 bits of a span's free bitmap that the owner allocates from
//!   with count-trailing-zeros.
//! - **cache** (Go's mcache): a thread's current span per class plus the spans it owns.
//! - **central** (Go's mcentral): per-class list of spans no thread owns.
//! - **remote free**: a free by a thread that does not own the object's span.
//! - **parked span**: a full span; the first remote free pushes it back to its owner.
//! - **scavenge**: return free pages' physical memory to the OS.
//!
//! The layers, from the top: [`global`] (entry points, [`GoAlloc`]) → [`cache`] →
//! [`central`] → [`heap`] (arenas, span map, large objects) → [`pagealloc`] → [`os`].
//! `docs/design.md` maps them, with the invariants and the lock order.

#![cfg_attr(loom, allow(dead_code, unused_imports))]

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

pub mod asan;
pub mod sizeclass;
pub mod span;
pub mod sync;

#[cfg(not(loom))]
pub mod cache;
#[cfg(not(loom))]
pub mod central;
#[cfg(not(loom))]
pub mod fork;
pub mod gc;
#[cfg(not(loom))]
pub mod global;
#[cfg(not(loom))]
pub mod heap;
#[cfg(not(loom))]
pub mod lock;
#[cfg(not(loom))]
pub mod metrics;
pub mod os;
#[cfg(not(loom))]
pub mod pagealloc;
#[cfg(not(loom))]
pub mod profile;
#[cfg(not(loom))]
pub mod report;
#[cfg(not(loom))]
pub mod scavenger;
#[cfg(not(loom))]
mod startup;
#[cfg(not(loom))]
pub mod stats;
#[cfg(not(loom))]
pub mod tls;

#[cfg(not(loom))]
pub use global::GoAlloc;
#[cfg(not(loom))]
pub use stats::MemStats;

/// What [`release_memory`] did.
#[cfg(not(loom))]
#[derive(Debug, Default)]
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
#[cfg(not(loom))]
pub fn release_memory() -> ReleaseReport {
    let (heaps_collected, heaps_skipped) = gc::heap::collect_for_release();
    let c = cache::current();
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

/// A snapshot of the heap's statistics (Go's `runtime.ReadMemStats`).
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
