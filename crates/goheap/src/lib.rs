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

// Lets `#[derive(Trace)]`'s `::goheap::...` paths resolve inside this crate too.
extern crate self as goheap;

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
pub mod os;
#[cfg(not(loom))]
pub mod pagealloc;
#[cfg(not(loom))]
pub mod report;
#[cfg(not(loom))]
pub mod scavenger;
#[cfg(not(loom))]
pub mod stats;
#[cfg(not(loom))]
pub mod tls;

#[cfg(not(loom))]
pub use global::GoAlloc;
#[cfg(not(loom))]
pub use stats::MemStats;

/// Returns as much memory to the OS as possible now (Go's `debug.FreeOSMemory`): the calling
/// thread's kept empty spans and the central lists' empty spans go back to the page heap,
/// then every free page is released with `madvise(MADV_DONTNEED)`. Returns the bytes
/// released.
#[cfg(not(loom))]
pub fn release_memory() -> usize {
    let c = cache::current();
    if !c.is_null() {
        // SAFETY: `c` is the calling thread's live cache.
        unsafe { (*c).free_empty_spans() };
    }
    for central in &central::CENTRAL {
        central.free_empty_spans();
    }
    heap::scavenge(usize::MAX, 512)
}

/// A snapshot of the heap's statistics (Go's `runtime.ReadMemStats`).
#[cfg(not(loom))]
pub fn stats() -> MemStats {
    stats::read()
}
