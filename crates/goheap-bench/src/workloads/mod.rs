//! The workloads, each generic over the allocator under test.
//!
//! A workload is a function `fn<A: GlobalAlloc + Sync>(&'static A, &Params)`
//! that allocates and frees through `A` only (bookkeeping arrays may use the
//! std allocator, but are sized before the measured part starts) and returns
//! one "smaller is better" number in the unit given by [`Workload::unit`].
//! Every workload writes into the blocks it gets and checks something cheap
//! before freeing them, so a broken allocator fails instead of winning.

use std::alloc::{handle_alloc_error, GlobalAlloc, Layout};

mod alloc_test;
mod binary_trees;
mod cache_scratch;
mod fastpath;
mod larson;
mod mstress;
mod xmalloc;

/// Run-wide knobs, identical for every allocator.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Smaller problem sizes, for a smoke run of the whole suite.
    pub quick: bool,
    /// Worker threads of the multi-threaded workloads (mimalloc-bench's `procs`).
    pub threads: usize,
}

/// Block sizes of the `fastpath-*` and `batch-*` micro-benchmarks.
pub const FASTPATH_SIZES: [usize; 8] = [8, 16, 32, 64, 128, 256, 512, 1024];

/// One benchmark of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Fastpath(usize),
    Batch(usize),
    BinaryTrees,
    Larson,
    Xmalloc,
    CacheScratch1,
    CacheScratchN,
    Mstress,
    AllocTest1,
    AllocTestN,
}

impl Workload {
    /// The whole suite, in the order it runs and is reported.
    pub fn all() -> Vec<Workload> {
        let mut all: Vec<Workload> = FASTPATH_SIZES
            .iter()
            .map(|&s| Workload::Fastpath(s))
            .collect();
        all.extend(FASTPATH_SIZES.iter().map(|&s| Workload::Batch(s)));
        all.extend([
            Workload::BinaryTrees,
            Workload::Larson,
            Workload::Xmalloc,
            Workload::CacheScratch1,
            Workload::CacheScratchN,
            Workload::Mstress,
            Workload::AllocTest1,
            Workload::AllocTestN,
        ]);
        all
    }

    pub fn name(self) -> String {
        match self {
            Workload::Fastpath(size) => format!("fastpath-{size}"),
            Workload::Batch(size) => format!("batch-{size}"),
            Workload::BinaryTrees => "binary-trees".into(),
            Workload::Larson => "larson".into(),
            Workload::Xmalloc => "xmalloc-test".into(),
            Workload::CacheScratch1 => "cache-scratch1".into(),
            Workload::CacheScratchN => "cache-scratchN".into(),
            Workload::Mstress => "mstress".into(),
            Workload::AllocTest1 => "alloc-test1".into(),
            Workload::AllocTestN => "alloc-testN".into(),
        }
    }

    pub fn parse(name: &str) -> Option<Workload> {
        Workload::all().into_iter().find(|w| w.name() == name)
    }

    /// Whether the workload runs several threads at once; these make up the
    /// geometric-mean row of the report.
    pub fn multi_threaded(self) -> bool {
        matches!(
            self,
            Workload::Larson
                | Workload::Xmalloc
                | Workload::CacheScratchN
                | Workload::Mstress
                | Workload::AllocTestN
        )
    }

    /// Unit of the number the workload reports.
    pub fn unit(self) -> &'static str {
        match self {
            Workload::Fastpath(_) | Workload::Batch(_) => "ns/pair",
            // Throughput-derived "relative time", as mimalloc-bench reports it.
            Workload::Larson | Workload::Xmalloc => "rtime",
            _ => "s",
        }
    }

    /// Runs the workload once with allocator `a`.
    pub fn run<A: GlobalAlloc + Sync + 'static>(
        self,
        a: &'static A,
        p: &Params,
    ) -> Result<f64, String> {
        match self {
            Workload::Fastpath(size) => fastpath::run(a, size, false, p),
            Workload::Batch(size) => fastpath::run(a, size, true, p),
            Workload::BinaryTrees => binary_trees::run(a, p),
            Workload::Larson => larson::run(a, p),
            Workload::Xmalloc => xmalloc::run(a, p),
            Workload::CacheScratch1 => cache_scratch::run(a, 1, p),
            Workload::CacheScratchN => cache_scratch::run(a, p.threads, p),
            Workload::Mstress => mstress::run(a, p),
            Workload::AllocTest1 => alloc_test::run(a, 1, p),
            Workload::AllocTestN => alloc_test::run(a, p.threads, p),
        }
    }
}

/// `a.alloc(layout)`, aborting the process if the allocator returns null.
///
/// # Safety
/// `layout.size()` must be non-zero (`GlobalAlloc::alloc`'s contract). The caller
/// owns the block and may free it only once, through the same `a` with `layout`.
#[inline(always)]
unsafe fn alloc<A: GlobalAlloc>(a: &A, layout: Layout) -> *mut u8 {
    let p = a.alloc(layout);
    if p.is_null() {
        handle_alloc_error(layout);
    }
    p
}

/// Layout of a `size`-byte buffer with byte alignment, like C's `malloc(size)`
/// or `new char[size]` in the original programs (and Rust's `Vec<u8>`).
/// Sizes here are at most a few KiB, so this never fails; checking keeps it a sound safe
/// function at the cost of one predictable branch (the same for every allocator).
#[inline(always)]
fn bytes(size: usize) -> Layout {
    match Layout::from_size_align(size, 1) {
        Ok(l) => l,
        Err(_) => panic!("impossible layout of {size} bytes"),
    }
}

/// A raw pointer that may be handed to another thread: the workloads move
/// blocks between threads on purpose.
#[derive(Clone, Copy, Debug)]
struct SendPtr<T>(*mut T);

unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for w in Workload::all() {
            assert_eq!(Workload::parse(&w.name()), Some(w));
        }
        assert_eq!(Workload::all().len(), 24);
    }
}
