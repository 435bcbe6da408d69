//! `mstress`: Daan Leijen's stress test, as run by mimalloc-bench:
//! `mstress P 50 25` (bench/mstress/mstress.c).
//!
//! Each of 25 iterations (quick: 5) creates P threads (the main thread acts
//! as thread 0) and destroys them at the end. Thread `tid` makes
//! 100 × 50 × (tid % 8 + 1) allocations of 2^k words (k < 5; k < 7 for the
//! half it retains until it exits; 2 % are 100×, 1000× or 10000× larger).
//! About 2/3 of the time it frees a random earlier allocation, and a quarter
//! of the time it swaps a random one with a slot of a shared 1000-entry
//! transfer array (atomic exchange), so objects migrate between threads and
//! outlive their thread. Between iterations the main thread frees half of the
//! transfer array (all of it after the last). The thread-local pointer arrays
//! are allocated (and grown with `realloc`) through the allocator under test,
//! as in the original.
//!
//! Every object is filled with `(items - i) ^ cookie` and fully checked when
//! freed; its size is recovered from its first word. Reports elapsed seconds.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::thread;
use std::time::Instant;

use super::{alloc, Params};
use crate::rng::SplitMixHash;

const SCALE: usize = 50;
const TRANSFERS: usize = 1000;
const COOKIE: u64 = 0xbf58_476d_1ce4_e5b9;
const MAX_ITEM_SHIFT: u64 = 5; // 2^4 words = 128 bytes
const MAX_ITEM_RETAINED_SHIFT: u64 = MAX_ITEM_SHIFT + 2;

type Transfer = [AtomicPtr<u64>; TRANSFERS];

fn words(items: usize) -> Layout {
    Layout::array::<u64>(items).unwrap()
}

pub fn run<A: GlobalAlloc + Sync>(a: &A, p: &Params) -> Result<f64, String> {
    let iterations = if p.quick { 5 } else { 25 };
    let transfer: Transfer = std::array::from_fn(|_| AtomicPtr::new(null_mut()));
    let transfer = &transfer;
    let mut r = SplitMixHash(43 * 43);

    let start = Instant::now();
    let mut corrupt = 0;
    for n in 0..iterations {
        corrupt += thread::scope(|s| {
            let others: Vec<_> = (1..p.threads)
                // SAFETY: every thread of this scope (and the main one) gets the same `a`
                // and `transfer`, which starts all-null and only receives `alloc_items`
                // objects from `a`.
                .map(|tid| s.spawn(move || unsafe { stress(a, tid, transfer) }))
                .collect();
            // SAFETY: the main thread runs as thread 0 with the same `a` and `transfer` as the
            // spawned threads, so `transfer` holds only `alloc_items` objects from `a`, or null.
            let mine = unsafe { stress(a, 0, transfer) };
            mine + others.into_iter().map(|t| t.join().unwrap()).sum::<u64>()
        });
        for slot in transfer {
            // Free all on the last iteration, otherwise about half.
            if r.chance(50) || n + 1 == iterations {
                // SAFETY: the swap takes the slot's object (or null) out of the array, so it
                // is ours alone and freed once; by stress's invariant it came from
                // `alloc_items` with `a`.
                corrupt += unsafe { free_items(a, slot.swap(null_mut(), Ordering::Acquire)) };
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    if corrupt != 0 {
        return Err(format!("{corrupt} objects were corrupted"));
    }
    Ok(elapsed)
}

/// Allocates an object of about `items` words, filled with its pattern.
///
/// # Safety
/// `items` must be at least 1. The object's first word encodes its size, so it must
/// be freed only with [`free_items`] and the same `a`, with that word intact.
unsafe fn alloc_items<A: GlobalAlloc>(a: &A, mut items: usize, r: &mut SplitMixHash) -> *mut u64 {
    if r.chance(1) {
        if r.chance(1) {
            items *= 10_000; // 0.01% giant
        } else if r.chance(10) {
            items *= 1000; // 0.1% huge
        } else {
            items *= 100; // 1% large
        }
    }
    if items == 40 {
        items += 1; // pthreads uses that size for stack increases
    }
    let p = alloc(a, words(items)) as *mut u64;
    for i in 0..items {
        p.add(i).write((items - i) as u64 ^ COOKIE);
    }
    p
}

/// Checks and frees an object (null is ignored); returns 1 if it was corrupt.
///
/// # Safety
/// `p` must be null, or an object made by [`alloc_items`] with the same `a` whose
/// first (size) word is intact, not freed before and not used after this call.
unsafe fn free_items<A: GlobalAlloc>(a: &A, p: *mut u64) -> u64 {
    if p.is_null() {
        return 0;
    }
    let items = (p.read() ^ COOKIE) as usize;
    if items == 0 || items > 128 * 10_000 {
        // The size word itself is gone; freeing with a made-up size would be
        // undefined behaviour, so leak the block and report it.
        return 1;
    }
    let mut corrupt = 0;
    for i in 0..items {
        corrupt |= u64::from(p.add(i).read() ^ COOKIE != (items - i) as u64);
    }
    a.dealloc(p as *mut u8, words(items));
    corrupt
}

/// A growable array of object pointers allocated through `A` itself.
struct PtrArray<'a, A: GlobalAlloc> {
    a: &'a A,
    ptr: *mut *mut u64,
    len: usize,
    cap: usize,
}

impl<'a, A: GlobalAlloc> PtrArray<'a, A> {
    fn with_capacity(a: &'a A, cap: usize) -> Self {
        let ptr = if cap == 0 {
            null_mut()
        } else {
            // SAFETY: `cap > 0` here, so the layout has a non-zero size; the block belongs to
            // this array and is freed once, by `drop`, with `layout(self.cap)`.
            unsafe { alloc(a, Self::layout(cap)) as _ }
        };
        PtrArray {
            a,
            ptr,
            len: 0,
            cap,
        }
    }

    fn layout(cap: usize) -> Layout {
        Layout::array::<*mut u64>(cap).unwrap()
    }

    /// Appends, growing by `step` (at least 1) entries with `realloc` when full.
    fn push(&mut self, p: *mut u64, step: usize) {
        if self.len == self.cap {
            let new_cap = self.cap + step.max(1);
            // SAFETY: a null `ptr` (only while `cap == 0`) gets a fresh non-zero block; else
            // it came from `self.a` with `layout(self.cap)`, the new size is non-zero and valid
            // (`layout(new_cap)` was built), and realloc's result replaces it (null aborts).
            self.ptr = unsafe {
                if self.ptr.is_null() {
                    alloc(self.a, Self::layout(new_cap)) as _
                } else {
                    let q = self.a.realloc(
                        self.ptr as *mut u8,
                        Self::layout(self.cap),
                        Self::layout(new_cap).size(),
                    );
                    if q.is_null() {
                        std::alloc::handle_alloc_error(Self::layout(new_cap));
                    }
                    q as _
                }
            };
            self.cap = new_cap;
        }
        // SAFETY: after the growth above `len < cap`, so `ptr` is non-null and slot `len` lies
        // inside the `cap`-pointer block, which this array owns exclusively.
        unsafe { self.ptr.add(self.len).write(p) };
        self.len += 1;
    }

    fn as_mut_slice(&mut self) -> &mut [*mut u64] {
        if self.ptr.is_null() {
            &mut []
        } else {
            // SAFETY: `ptr` is non-null, aligned for `*mut u64`, and its block holds `cap >= len`
            // slots, the first `len` written by `push`; `&mut self` keeps the slice exclusive.
            unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
        }
    }
}

impl<A: GlobalAlloc> Drop for PtrArray<'_, A> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: a non-null `ptr` came from `self.a` with `layout(self.cap)` (push keeps
            // `cap` in step with every realloc), and `drop` runs once, so it is freed once.
            unsafe { self.a.dealloc(self.ptr as *mut u8, Self::layout(self.cap)) };
        }
    }
}

/// One thread's work; returns the number of corrupt objects it freed.
///
/// # Safety
/// Every non-null pointer in `transfer` must be an object made by [`alloc_items`]
/// with this same `a`, owned by the array (whoever swaps it out owns it). `stress`
/// keeps this: it only swaps in its own such objects.
unsafe fn stress<A: GlobalAlloc>(a: &A, tid: usize, transfer: &Transfer) -> u64 {
    let mut r = SplitMixHash((tid as u64 + 1) * 43);
    let mut allocs = 100 * SCALE * (tid % 8 + 1); // some threads do more
    let mut retain = allocs / 2;
    let mut data = PtrArray::with_capacity(a, 0);
    let mut retained = PtrArray::with_capacity(a, retain);
    let mut corrupt = 0;

    while allocs > 0 || retain > 0 {
        if retain == 0 || (r.chance(50) && allocs > 0) {
            // 50%+ alloc
            allocs -= 1;
            let items = 1 << (r.next() % MAX_ITEM_SHIFT);
            let p = alloc_items(a, items, &mut r);
            data.push(p, 100_000);
        } else {
            // 25% retain
            let items = 1 << (r.next() % MAX_ITEM_RETAINED_SHIFT);
            let p = alloc_items(a, items, &mut r);
            retained.push(p, 0);
            retain -= 1;
        }
        let live = data.as_mut_slice();
        if r.chance(66) && !live.is_empty() {
            // 66% free a previous allocation
            let idx = r.next() as usize % live.len();
            corrupt += free_items(a, live[idx]);
            live[idx] = null_mut();
        }
        if r.chance(25) && !live.is_empty() {
            // 25% exchange a local pointer with the shared transfer array
            let idx = r.next() as usize % live.len();
            let transfer_idx = r.next() as usize % TRANSFERS;
            live[idx] = transfer[transfer_idx].swap(live[idx], Ordering::AcqRel);
        }
    }

    for &p in retained
        .as_mut_slice()
        .iter()
        .chain(data.as_mut_slice().iter())
    {
        corrupt += free_items(a, p);
    }
    corrupt
}
