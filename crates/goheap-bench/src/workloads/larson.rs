//! `larson`: Larson & Krishnan's server simulation (ISMM'98), as run by
//! mimalloc-bench: `larson 5 8 1000 5000 100 4141 P` (bench/larson/larson.cpp).
//!
//! The main thread fills P arrays ("slots") of 5000 blocks of 8..1000 bytes,
//! shuffles them and churns them 4× (warm-up, untimed). Then P threads each
//! take a slot and do 100 × 5000 rounds of: pick a random block, free it,
//! allocate a new random-size block in its place and write to it. A thread
//! that finishes its rounds starts a successor thread on the same slot and
//! exits, so blocks allocated by one thread are freed by another ("bleeding"),
//! and threads keep being born and dying. After 5 s (quick: 1 s) the threads
//! stop; the number reported is mimalloc-bench's relative time
//! `1e9 / (allocations per second)`, smaller is better.
//!
//! Each block gets its first and last byte written (the original writes the
//! first two); both are checked before the block is freed.

use std::alloc::GlobalAlloc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::{alloc, bytes, Params};
use crate::rng::Lran2;

const MIN_SIZE: usize = 8;
const MAX_SIZE: usize = 1000;
const CHUNKS_PER_THREAD: usize = 5000;
const ROUNDS: usize = 100;
const SEED: i64 = 4141;

/// One thread's working set, handed from each thread to its successor.
struct Slot {
    blocks: Vec<*mut u8>,
    sizes: Vec<usize>,
    rng: Lran2,
    allocs: u64,
    corrupt: u64,
}

// The blocks are owned by whichever thread currently holds the slot.
unsafe impl Send for Slot {}

/// Writes the marker bytes of a fresh block.
///
/// # Safety
/// `size` must be at least 1 and `p` valid for writes of `size` bytes.
#[inline(always)]
unsafe fn mark(p: *mut u8, size: usize) {
    p.write(size as u8);
    p.add(size - 1).write(!(size as u8));
}

/// True if the marker bytes are intact.
///
/// # Safety
/// `size` must be at least 1 and `p` valid for reads of `size` bytes whose first
/// and last bytes are initialized (as [`mark`] leaves them).
#[inline(always)]
unsafe fn marked(p: *mut u8, size: usize) -> bool {
    p.read() == size as u8 && p.add(size - 1).read() == !(size as u8)
}

#[inline(always)]
fn random_size(rng: &mut Lran2) -> usize {
    MIN_SIZE + rng.next() as usize % (MAX_SIZE - MIN_SIZE)
}

pub fn run<A: GlobalAlloc + Sync + 'static>(a: &'static A, p: &Params) -> Result<f64, String> {
    let run_time = Duration::from_secs(if p.quick { 1 } else { 5 });
    let nthreads = p.threads;

    let mut rng = Lran2::new(SEED);
    // SAFETY: `warmup` has no caller precondition; the (block, size) pairs it returns stay
    // paired in the slots, so each block is later freed with its own `bytes(size)`.
    let (blocks, sizes) = unsafe { warmup(a, &mut rng, nthreads * CHUNKS_PER_THREAD) };
    let slots: Vec<Slot> = blocks
        .chunks(CHUNKS_PER_THREAD)
        .zip(sizes.chunks(CHUNKS_PER_THREAD))
        .map(|(b, s)| Slot {
            blocks: b.to_vec(),
            sizes: s.to_vec(),
            rng: Lran2::new(rng.next()),
            allocs: 0,
            corrupt: 0,
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = channel();
    let start = Instant::now();
    for slot in slots {
        spawn_worker(a, slot, stop.clone(), done_tx.clone());
    }
    thread::sleep(run_time);
    stop.store(true, Ordering::Relaxed);
    let finished: Vec<Slot> = done_rx.iter().take(nthreads).collect();
    let duration = start.elapsed().as_secs_f64();

    let allocs: u64 = finished.iter().map(|s| s.allocs).sum();
    let mut corrupt: u64 = finished.iter().map(|s| s.corrupt).sum();
    for slot in &finished {
        for (&p, &size) in slot.blocks.iter().zip(&slot.sizes) {
            // SAFETY: each (block, size) pair of a finished slot is a live marked block from `a`
            // with `bytes(size)`; its last worker sent the slot here and stopped touching it, so
            // main owns it alone and frees each block once.
            unsafe {
                corrupt += u64::from(!marked(p, size));
                a.dealloc(p, bytes(size));
            }
        }
    }
    if corrupt != 0 {
        return Err(format!("{corrupt} blocks lost their marker bytes"));
    }
    if allocs == 0 {
        return Err("no allocations were made".into());
    }
    let throughput = allocs as f64 / duration;
    Ok(1e9 / throughput)
}

/// Allocates `n` blocks, shuffles them and replaces random ones 4n times, all
/// on the main thread (larson's `warmup`).
///
/// # Safety
/// No caller precondition. The caller owns the returned blocks: `blocks[i]` came
/// from `a` with `bytes(sizes[i])`, is marked, and may be freed once with that layout.
unsafe fn warmup<A: GlobalAlloc>(a: &A, rng: &mut Lran2, n: usize) -> (Vec<*mut u8>, Vec<usize>) {
    let mut blocks = Vec::with_capacity(n);
    let mut sizes = Vec::with_capacity(n);
    for _ in 0..n {
        let size = random_size(rng);
        let p = alloc(a, bytes(size));
        mark(p, size);
        blocks.push(p);
        sizes.push(size);
    }
    for i in (1..=n).rev() {
        let victim = rng.next() as usize % i;
        blocks.swap(victim, i - 1);
        sizes.swap(victim, i - 1);
    }
    for _ in 0..4 * n {
        let victim = rng.next() as usize % n;
        a.dealloc(blocks[victim], bytes(sizes[victim]));
        let size = random_size(rng);
        let p = alloc(a, bytes(size));
        mark(p, size);
        blocks[victim] = p;
        sizes[victim] = size;
    }
    (blocks, sizes)
}

fn spawn_worker<A: GlobalAlloc + Sync + 'static>(
    a: &'static A,
    slot: Slot,
    stop: Arc<AtomicBool>,
    done: Sender<Slot>,
) {
    thread::Builder::new()
        .spawn(move || exercise_heap(a, slot, stop, done))
        .expect("cannot start a larson thread");
}

/// One thread's life: `ROUNDS * CHUNKS_PER_THREAD` free/alloc pairs on the
/// slot, then hand the slot to a new thread (or back to main once stopped).
fn exercise_heap<A: GlobalAlloc + Sync + 'static>(
    a: &'static A,
    mut slot: Slot,
    stop: Arc<AtomicBool>,
    done: Sender<Slot>,
) {
    if !stop.load(Ordering::Relaxed) {
        let asize = slot.blocks.len();
        for _ in 0..ROUNDS * CHUNKS_PER_THREAD {
            let victim = slot.rng.next() as usize % asize;
            // SAFETY: this thread owns `slot` (moved in); `old` is a live marked block from `a`
            // with `bytes(old_size)`, freed once here and replaced at once by a new marked block
            // of non-zero size (8..1000).
            unsafe {
                let old = slot.blocks[victim];
                let old_size = slot.sizes[victim];
                slot.corrupt += u64::from(!marked(old, old_size));
                a.dealloc(old, bytes(old_size));
                let size = random_size(&mut slot.rng);
                let p = alloc(a, bytes(size));
                mark(p, size);
                slot.blocks[victim] = p;
                slot.sizes[victim] = size;
            }
            slot.allocs += 1;
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    if stop.load(Ordering::Relaxed) {
        // The main thread waits for every slot; it outlives the channel.
        let _ = done.send(slot);
    } else {
        spawn_worker(a, slot, stop, done);
    }
}
