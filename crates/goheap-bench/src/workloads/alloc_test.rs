//! `alloc-test1` / `alloc-testN`: OLogN's (ithare.com) allocator test, as run
//! by mimalloc-bench: `alloc-test 1` and `alloc-test P`
//! (bench/alloc-test/allocator_tester.h, `randomPos_RandomSize`, mode `full`).
//!
//! Each thread owns 2^18 / nthreads slots. Setup fills about half of them.
//! The main loop picks a slot with a Pareto-like 80/20 distribution: if the
//! slot is occupied, its block is read in full and freed, else a new block
//! is allocated there and filled. Block sizes are 5..=1024 bytes, skewed to
//! small ones (the original's `calcSizeWithStatsAdjustment`, max 2^10). At the
//! end all blocks are read and freed. The generators, seed (41, the same for
//! every thread) and distributions are the original's.
//!
//! Each thread does the original's 100 M operations (quick: 10 M); on the
//! 2-core VM mimalloc needs about 3 s (quick: 0.3 s). Every block is memset to
//! its size (mod 256) and the full read checks every byte. Reports elapsed
//! seconds, threads created and joined inside the measurement, as in the
//! original.

use std::alloc::GlobalAlloc;
use std::ptr::null_mut;
use std::thread;
use std::time::Instant;

use super::{alloc, bytes, Params};
use crate::rng::XorShiftMul;

const MAX_ITEMS: usize = 1 << 18;
const MAX_ITEM_SIZE_EXP: u32 = 10;
const SEED: u64 = 41;

pub fn run<A: GlobalAlloc + Sync>(a: &A, nthreads: usize, p: &Params) -> Result<f64, String> {
    let iterations = if p.quick { 10_000_000 } else { 100_000_000 };
    let max_items = MAX_ITEMS / nthreads;
    let start = Instant::now();
    let corrupt: u64 = thread::scope(|s| {
        let threads: Vec<_> = (0..nthreads)
            // SAFETY: no caller precondition; each thread allocates and frees its blocks through
            // `a` in its own `bins`, and the scope joins every thread before `run` goes on.
            .map(|_| s.spawn(move || unsafe { random_pos_random_size(a, iterations, max_items) }))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    let elapsed = start.elapsed().as_secs_f64();
    if corrupt != 0 {
        return Err(format!("{corrupt} blocks did not keep their contents"));
    }
    Ok(elapsed)
}

/// A slot of the working set.
#[derive(Clone, Copy)]
struct Bin {
    ptr: *mut u8,
    size: usize,
}

/// One thread of the test; returns the number of corrupt blocks seen.
///
/// # Safety
/// No caller precondition: every block lives in this call's own `bins` and is
/// allocated and freed through `a` before it returns; `unsafe` only lets the
/// body call the block helpers.
unsafe fn random_pos_random_size<A: GlobalAlloc>(
    a: &A,
    iterations: usize,
    max_items: usize,
) -> u64 {
    let pareto = Pareto::new(max_items as u32);
    let mut bins = vec![
        Bin {
            ptr: null_mut(),
            size: 0
        };
        max_items
    ];
    let mut rng = XorShiftMul(SEED);
    let mut corrupt = 0;

    // Setup: fill about half of the slots.
    for i in 0..max_items / 32 {
        let bits = rng.next_u32();
        for j in 0..32 {
            if (bits >> j) & 1 != 0 {
                let size = size_with_stats_adjustment(rng.next_u64(), MAX_ITEM_SIZE_EXP);
                bins[i * 32 + j] = new_block(a, size);
            }
        }
    }

    // Main loop: free the picked slot if occupied, else fill it.
    for _ in 0..32 {
        for _ in 0..iterations >> 5 {
            let rnum1 = rng.next_u32();
            let rnum2 = rng.next_u32();
            let bin = &mut bins[pareto.pick(rnum1, rnum2)];
            if bin.ptr.is_null() {
                *bin = new_block(
                    a,
                    size_with_stats_adjustment(rng.next_u64(), MAX_ITEM_SIZE_EXP),
                );
            } else {
                corrupt += free_block(a, *bin);
                bin.ptr = null_mut();
            }
        }
    }

    // Exit: free everything.
    for bin in bins.iter().filter(|b| !b.ptr.is_null()) {
        corrupt += free_block(a, *bin);
    }
    corrupt
}

/// Allocates a block and fills it with its size.
///
/// # Safety
/// `size` must be at least 1 (and far below `isize::MAX`). The caller owns the
/// returned block and may free it only once, with [`free_block`] and the same `a`.
#[inline(always)]
unsafe fn new_block<A: GlobalAlloc>(a: &A, size: usize) -> Bin {
    let ptr = alloc(a, bytes(size));
    ptr.write_bytes(size as u8, size);
    Bin { ptr, size }
}

/// Reads a block in full and frees it; returns 1 if it was corrupt.
///
/// # Safety
/// `bin` must come from [`new_block`] with the same `a` and not be freed before;
/// the caller must not use its pointer after this call.
#[inline(always)]
unsafe fn free_block<A: GlobalAlloc>(a: &A, bin: Bin) -> u64 {
    let Bin { ptr, size } = bin;
    let pattern = u64::from_ne_bytes([size as u8; 8]);
    let words = size / 8;
    let mut ok = true;
    for i in 0..words {
        ok &= (ptr as *const u64).add(i).read_unaligned() == pattern;
    }
    for i in words * 8..size {
        ok &= ptr.add(i).read() == size as u8;
    }
    a.dealloc(ptr, bytes(size));
    u64::from(!ok)
}

/// The original's `calcSizeWithStatsAdjustment`: pick a power-of-two class
/// with probability halving per class, then a size uniformly inside it.
/// Returns 5..=2^max_size_exp.
#[inline(always)]
fn size_with_stats_adjustment(mut rand: u64, max_size_exp: u32) -> usize {
    let exp = max_size_exp - 3;
    let class_base = (rand & ((1 << exp) - 1)) + 1;
    rand >>= exp;
    let idx = class_base.trailing_zeros() + 2;
    let mask = (1u64 << idx) - 1;
    ((rand & mask) + 1 + (1 << idx)) as usize
}

/// The original's `Pareto_80_20_6`: seven slot ranges of growing size, picked
/// with shrinking probability, so a few slots see most of the traffic.
struct Pareto {
    probability_ranges: [u32; 6],
    offsets: [u32; 8],
}

impl Pareto {
    const P: [f64; 7] = [
        0.262144, 0.393216, 0.245760, 0.081920, 0.015360, 0.001536, 0.000064,
    ];

    fn new(item_count: u32) -> Self {
        let max = u32::MAX as f64;
        let mut probability_ranges = [0u32; 6];
        probability_ranges[0] = (max * Self::P[0]) as u32;
        probability_ranges[5] = (max * (1.0 - Self::P[6])) as u32;
        for i in 1..5 {
            probability_ranges[i] = probability_ranges[i - 1] + (max * Self::P[i]) as u32;
        }
        let mut offsets = [0u32; 8];
        offsets[7] = item_count;
        for i in 0..6 {
            offsets[i + 1] = offsets[i] + (item_count as f64 * Self::P[6 - i]) as u32;
        }
        Pareto {
            probability_ranges,
            offsets,
        }
    }

    #[inline(always)]
    fn pick(&self, rnum1: u32, rnum2: u32) -> usize {
        let idx = self
            .probability_ranges
            .iter()
            .position(|&r| rnum1 < r)
            .unwrap_or(6);
        let range = self.offsets[idx + 1] - self.offsets[idx];
        (self.offsets[idx] + rnum2 % range) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_in_range() {
        let mut rng = XorShiftMul(SEED);
        for _ in 0..100_000 {
            let size = size_with_stats_adjustment(rng.next_u64(), MAX_ITEM_SIZE_EXP);
            assert!((5..=1024).contains(&size), "{size}");
        }
    }

    #[test]
    fn pareto_stays_in_range() {
        for items in [MAX_ITEMS, MAX_ITEMS / 2] {
            let pareto = Pareto::new(items as u32);
            let mut rng = XorShiftMul(7);
            for _ in 0..100_000 {
                assert!(pareto.pick(rng.next_u32(), rng.next_u32()) < items);
            }
        }
    }
}
