//! `cache-scratch1` / `cache-scratchN`: Berger's passive false-sharing test
//! from the Hoard suite, as run by mimalloc-bench:
//! `cache-scratch {1|P} 1000 1 2000000 P` (bench/cache-scratch/cache-scratch.cpp).
//!
//! The main thread allocates one 1-byte object per worker, close together,
//! and hands one to each of the `nthreads` workers. A worker frees the object
//! it was given, then 1000 times allocates a 1-byte object, writes (and reads
//! back) its byte 2,000,000 / nthreads times (quick: 200,000 / nthreads), and
//! frees it. An allocator that hands the freed neighbour objects back to the
//! workers makes them share a cache line, which shows as a large slowdown in
//! the N-thread run. The writes and reads are volatile so they really reach
//! memory; a read that does not return what was written is a failure.
//! Reports elapsed seconds.

use std::alloc::GlobalAlloc;
use std::ptr::{read_volatile, write_volatile};
use std::thread;
use std::time::Instant;

use super::{alloc, bytes, Params, SendPtr};

const ITERATIONS: usize = 1000;
const OBJECT_SIZE: usize = 1;

pub fn run<A: GlobalAlloc + Sync>(a: &A, nthreads: usize, p: &Params) -> Result<f64, String> {
    let repetitions = if p.quick { 200_000 } else { 2_000_000 } / nthreads;
    let start = Instant::now();
    let objects: Vec<SendPtr<u8>> = (0..nthreads)
        // SAFETY: `bytes(OBJECT_SIZE)` has the non-zero size 1; each object goes to exactly
        // one worker below, which frees it through the same `a` with the same layout.
        .map(|_| SendPtr(unsafe { alloc(a, bytes(OBJECT_SIZE)) }))
        .collect();
    let mismatches: u64 = thread::scope(|s| {
        let workers: Vec<_> = objects
            .iter()
            // SAFETY: `given` was allocated just above through `a` with `bytes(OBJECT_SIZE)`, and
            // each object goes to exactly one worker (one spawn per entry), which frees it.
            .map(|&given| s.spawn(move || unsafe { worker(a, given, repetitions) }))
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let elapsed = start.elapsed().as_secs_f64();
    if mismatches != 0 {
        return Err(format!(
            "{mismatches} reads did not return the byte just written"
        ));
    }
    Ok(elapsed)
}

/// Returns the number of reads that saw something else than was written.
///
/// # Safety
/// `given.0` must be a live block allocated through `a` with `bytes(OBJECT_SIZE)`
/// that nothing else uses or frees; this call frees it.
unsafe fn worker<A: GlobalAlloc>(a: &A, given: SendPtr<u8>, repetitions: usize) -> u64 {
    a.dealloc(given.0, bytes(OBJECT_SIZE));
    let mut mismatches = 0;
    for _ in 0..ITERATIONS {
        let obj = alloc(a, bytes(OBJECT_SIZE));
        for _ in 0..repetitions {
            for k in 0..OBJECT_SIZE {
                write_volatile(obj.add(k), k as u8);
                mismatches += u64::from(read_volatile(obj.add(k)) != k as u8);
            }
        }
        a.dealloc(obj, bytes(OBJECT_SIZE));
    }
    mismatches
}
