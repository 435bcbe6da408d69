//! `fastpath-<size>` and `batch-<size>`: the allocator's fast path in isolation.
//!
//! Single-threaded micro-benchmarks (ours, not from mimalloc-bench):
//! * `fastpath-<size>`: a loop of `alloc` + `dealloc` of one `Layout` (size
//!   `<size>`, alignment 8). A thread-caching allocator serves every iteration
//!   from the same free-list slot, so this is the pure cost of the two calls.
//! * `batch-<size>`: allocate 1000 blocks, then free them in allocation
//!   order, repeated; this walks free lists and spans instead of one slot.
//!
//! The size is a const generic, so it is a compile-time constant at the call
//! site, as for `Box<T>`; an allocator whose fast path inlines (the Rust ones)
//! can fold its size-class lookup. Each block gets its first and last byte
//! written and read back through `black_box`. The reported number is ns per
//! alloc+free pair, after an untimed warm-up of 1 % of the pairs.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::time::Instant;

use super::{alloc, Params};

/// Blocks live at once in `batch-<size>`.
const BATCH: usize = 1000;

pub fn run<A: GlobalAlloc>(a: &A, size: usize, batch: bool, p: &Params) -> Result<f64, String> {
    let pairs: u64 = if p.quick { 10_000_000 } else { 40_000_000 };
    match size {
        8 => measure::<A, 8>(a, batch, pairs),
        16 => measure::<A, 16>(a, batch, pairs),
        32 => measure::<A, 32>(a, batch, pairs),
        64 => measure::<A, 64>(a, batch, pairs),
        128 => measure::<A, 128>(a, batch, pairs),
        256 => measure::<A, 256>(a, batch, pairs),
        512 => measure::<A, 512>(a, batch, pairs),
        1024 => measure::<A, 1024>(a, batch, pairs),
        _ => Err(format!("no fast-path variant for size {size}")),
    }
}

fn measure<A: GlobalAlloc, const SIZE: usize>(
    a: &A,
    batch: bool,
    pairs: u64,
) -> Result<f64, String> {
    let rounds = |n: u64| {
        if batch {
            batch_rounds::<A, SIZE>(a, n / BATCH as u64)
        } else {
            single_pairs::<A, SIZE>(a, n)
        }
    };
    let mut bad = rounds(pairs / 100);
    let start = Instant::now();
    bad |= rounds(pairs);
    let elapsed = start.elapsed().as_secs_f64();
    if bad != 0 {
        return Err("a block did not keep the bytes written into it".into());
    }
    // Pairs actually done (the batch variant rounds down to whole batches).
    let done = if batch {
        pairs / BATCH as u64 * BATCH as u64
    } else {
        pairs
    };
    Ok(elapsed * 1e9 / done as f64)
}

const fn layout<const SIZE: usize>() -> Layout {
    match Layout::from_size_align(SIZE, 8) {
        Ok(layout) => layout,
        Err(_) => panic!("bad fast-path layout"),
    }
}

/// Writes the first and last byte of a fresh block.
///
/// # Safety
/// `p` must be valid for writes of `SIZE` bytes, and `SIZE` must be at least 1.
#[inline(always)]
unsafe fn touch<const SIZE: usize>(p: *mut u8) {
    p.write(0xa5);
    p.add(SIZE - 1).write(0x5a);
}

/// Reads both bytes back; non-zero if either changed.
///
/// # Safety
/// `p` must be valid for reads of `SIZE` bytes whose first and last bytes are
/// initialized (as [`touch`] leaves them), and `SIZE` must be at least 1.
#[inline(always)]
unsafe fn check<const SIZE: usize>(p: *mut u8) -> u8 {
    (p.read() ^ 0xa5) | (p.add(SIZE - 1).read() ^ 0x5a)
}

#[inline(never)]
fn single_pairs<A: GlobalAlloc, const SIZE: usize>(a: &A, n: u64) -> u8 {
    let layout = const { layout::<SIZE>() };
    let mut bad = 0;
    for _ in 0..n {
        // SAFETY: `layout` has the non-zero size SIZE, as `alloc` requires; `p` is a fresh
        // SIZE-byte block for touch/check (black_box returns it unchanged), and it is freed
        // once, here, with the `a` and `layout` it was allocated with.
        unsafe {
            let p = alloc(a, layout);
            touch::<SIZE>(p);
            let p = black_box(p);
            bad |= check::<SIZE>(p);
            a.dealloc(p, layout);
        }
    }
    bad
}

#[inline(never)]
fn batch_rounds<A: GlobalAlloc, const SIZE: usize>(a: &A, rounds: u64) -> u8 {
    let layout = const { layout::<SIZE>() };
    let mut blocks = [std::ptr::null_mut::<u8>(); BATCH];
    let mut bad = 0;
    for _ in 0..rounds {
        // SAFETY: `layout` has the non-zero size SIZE; the first loop fills every slot with a
        // fresh touched block, and the second checks and frees each one once with the `a` and
        // `layout` it came from, before the next round refills the slots.
        unsafe {
            for slot in blocks.iter_mut() {
                let p = alloc(a, layout);
                touch::<SIZE>(p);
                *slot = p;
            }
            black_box(&mut blocks);
            for &p in blocks.iter() {
                bad |= check::<SIZE>(p);
                a.dealloc(p, layout);
            }
        }
    }
    bad
}
