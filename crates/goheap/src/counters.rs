//! Allocation and free counters per size class: each thread cache's own, and the totals
//! that retired caches, orphan frees and freed spans add to. `stats.rs` reads them; the
//! layers that write them (cache, global, the page heap) sit below `stats.rs`, so the counters
//! live here, in a leaf that imports nothing but the class count: counting never calls up.
//! How the counts are split so that the fast paths pay nothing extra is told in `stats.rs`.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::sizeclass::NUM_CLASSES;

/// Per-class counters of one cache. Written only by the owner (relaxed load + store: plain
/// moves, no lock prefix), read by anyone summing statistics.
pub struct ClassCounters {
    /// Objects handed out: counted when a window of free objects is loaded.
    pub nmalloc: [AtomicU64; NUM_CLASSES],
    /// Objects this thread freed into spans it does not own (its frees into its own spans
    /// are counted in the spans).
    pub nfree: [AtomicU64; NUM_CLASSES],
}

/// Totals of retired caches' counters and of frees counted outside any cache. Added to by
/// anyone (atomic adds), read by `stats::read`.
pub(crate) static RETIRED_MALLOC: [AtomicU64; NUM_CLASSES] =
    [const { AtomicU64::new(0) }; NUM_CLASSES];
pub(crate) static RETIRED_FREE: [AtomicU64; NUM_CLASSES] =
    [const { AtomicU64::new(0) }; NUM_CLASSES];

/// Adds a retiring cache's counters to the totals and zeroes them.
pub(crate) fn retire_counters(c: &ClassCounters) {
    for class in 0..NUM_CLASSES {
        let m = c.nmalloc[class].swap(0, Ordering::Relaxed);
        let f = c.nfree[class].swap(0, Ordering::Relaxed);
        RETIRED_MALLOC[class].fetch_add(m, Ordering::Relaxed);
        RETIRED_FREE[class].fetch_add(f, Ordering::Relaxed);
    }
}

/// Counts a free made by a thread that has no cache.
pub(crate) fn count_orphan_free(class: usize) {
    count_freed(class, 1);
}

/// Counts `n` frees of class `class` in the global totals (a span's folded local frees, when
/// the span goes back to the page heap).
pub(crate) fn count_freed(class: usize, n: u64) {
    if n > 0 {
        RETIRED_FREE[class].fetch_add(n, Ordering::Relaxed);
    }
}
