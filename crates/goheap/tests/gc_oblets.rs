//! Oblets (`gc/mark.rs`): a large slice object is traced in pieces of `__OBLET_BYTES`, each
//! its own work item, so that no marker (above all no mark assist, which is a pause) traces
//! a multi-megabyte index in one go.
//!
//! (a) The work is really split: after a mark of slices of several MB, the most elements
//!     one work item traced (`goheap::gc::__largest_oblet`, a process-wide maximum) is at
//!     most an oblet's worth, and the marks are right: `gccheckmark` verifies each one,
//!     every element's object survives, and all are freed once the slice is dropped. The
//!     slices' lengths and one element size (24 bytes) are not multiples of the oblet, so
//!     the last, partial oblet and oblets that do not start on an element boundary of the
//!     byte size are covered.
//! (b) Oblets traced at different times while mutators move the objects between slots of
//!     far-apart oblets during concurrent marks: the slice's elements are the only path to
//!     the objects, every mark is checkmarked, and each object's seal is checked at the end.
//!
//! No test here measures time.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};

use goheap::gc::{Config, DebugFlags, Gc, GcCell, Heap, Root, Trace};

fn checkmark_config() -> Config {
    Config::default()
        .with_procs(2)
        .with_gc_percent(50)
        .with_debug(DebugFlags::default().with_gccheckmark(true))
}

/// Leaves dropped so far, by test (each test counts its own kind).
static SPLIT_DROPS: AtomicUsize = AtomicUsize::new(0);
static MOVED_DROPS: AtomicUsize = AtomicUsize::new(0);

const SEAL: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Trace)]
#[trace(static)]
struct SplitLeaf {
    id: u64,
    seal: u64,
}

impl Drop for SplitLeaf {
    fn drop(&mut self) {
        SPLIT_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Trace)]
#[trace(static)]
struct MovedLeaf {
    id: u64,
    seal: u64,
}

impl Drop for MovedLeaf {
    fn drop(&mut self) {
        MOVED_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

type Slot<'gc, L> = GcCell<Option<Gc<'gc, L>>>;

/// A 24-byte element: 16384 is not a multiple of 24, so oblet boundaries fall inside the
/// byte grid and the element count per oblet is rounded down.
#[derive(Trace)]
struct Wide<'gc> {
    #[trace(skip)]
    pad: [u64; 2],
    leaf: Slot<'gc, SplitLeaf>,
}

#[test]
fn a_large_slice_is_traced_in_oblets() {
    let heap = Heap::with_config(checkmark_config());
    let mut m = heap.mutator();
    // 2 MB of 8-byte slots and 1.5 MB of 24-byte elements, neither a whole number of oblets.
    let narrow_len = (256 << 10) + 777;
    let wide_len = (64 << 10) + 13;
    let (narrow, wide): (Root<[Slot<'static, SplitLeaf>]>, Root<[Wide<'static>]>) = m.enter(|cx| {
        let n = cx.alloc_slice_from_iter((0..narrow_len).map(|i| {
            let i = i as u64;
            GcCell::new(Some(cx.alloc(SplitLeaf {
                id: i,
                seal: i ^ SEAL,
            })))
        }));
        let w = cx.alloc_slice_from_iter((0..wide_len).map(|i| i as u64).map(|i| Wide {
            pad: [i, !i],
            leaf: GcCell::new(Some(cx.alloc(SplitLeaf {
                id: (1 << 40) + i,
                seal: ((1 << 40) + i) ^ SEAL,
            }))),
        }));
        (cx.root(n), cx.root(w))
    });
    for _ in 0..2 {
        heap.collect();
    }
    let largest = goheap::gc::__largest_oblet();
    let per_narrow = goheap::gc::__OBLET_BYTES / 8;
    assert!(
        largest > 0 && largest <= per_narrow,
        "one work item traced {largest} elements; an oblet holds at most {per_narrow}"
    );
    assert_eq!(
        SPLIT_DROPS.load(Ordering::SeqCst),
        0,
        "a reachable leaf was freed"
    );
    m.enter(|cx| {
        let n = cx.get(&narrow);
        assert_eq!(n.len(), narrow_len);
        for (i, s) in n.iter().enumerate() {
            let l = s.get().expect("slot emptied");
            assert_eq!((l.id, l.seal), (i as u64, i as u64 ^ SEAL));
        }
        let w = cx.get(&wide);
        for (i, e) in w.iter().enumerate() {
            let l = e.leaf.get().expect("slot emptied");
            let id = (1 << 40) + i as u64;
            assert_eq!(
                (l.id, l.seal, e.pad),
                (id, id ^ SEAL, [i as u64, !(i as u64)])
            );
        }
    });
    drop(narrow);
    drop(wide);
    heap.collect();
    heap.collect();
    assert_eq!(
        SPLIT_DROPS.load(Ordering::SeqCst),
        narrow_len + wide_len,
        "leaves of the dropped slices were not all freed"
    );
}

#[test]
fn oblets_marked_while_mutators_move_their_objects() {
    const THREADS: usize = 2;
    // Release builds run under ThreadSanitizer in CI: twice the slots, not more.
    let len: usize = if cfg!(debug_assertions) {
        128 << 10
    } else {
        256 << 10
    };
    let rounds: u64 = if cfg!(debug_assertions) { 120 } else { 200 };
    let heap = Heap::with_config(checkmark_config().with_gc_percent(20));
    let mut m = heap.mutator();
    let index: Root<[Slot<'static, MovedLeaf>]> = m.enter(|cx| {
        cx.root(cx.alloc_slice_from_iter((0..len).map(|i| {
            let i = i as u64;
            GcCell::new(Some(cx.alloc(MovedLeaf {
                id: i,
                seal: i ^ SEAL,
            })))
        })))
    });
    let fresh = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for t in 0..THREADS {
            let heap = &heap;
            let index = &index;
            let fresh = &fresh;
            sc.spawn(move || {
                let mut m = heap.mutator();
                let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ t as u64;
                let mut next = || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                // Thread t owns the slots i with i % THREADS == t, spread over every oblet.
                let mine = len / THREADS;
                for round in 0..rounds {
                    m.enter(|cx| {
                        let ix = cx.get(index);
                        for _ in 0..64 {
                            // Swap two slots far apart (likely in different oblets, one
                            // traced, one not yet): the object in transit is held only by
                            // this session between the two stores.
                            let i = (next() as usize % mine) * THREADS + t;
                            let j = (next() as usize % mine) * THREADS + t;
                            let a = ix[i].get();
                            let b = ix[j].replace(a);
                            ix[i].set(b);
                        }
                        // Replace a leaf by a new one (the old one becomes garbage).
                        let k = (next() as usize % mine) * THREADS + t;
                        let old = ix[k].get().expect("slot emptied");
                        ix[k].set(Some(cx.alloc(MovedLeaf {
                            id: old.id,
                            seal: old.id ^ SEAL,
                        })));
                        fresh.fetch_add(1, Ordering::Relaxed);
                        // Garbage to drive background marks and assists.
                        for g in 0..1000u64 {
                            cx.alloc([g; 8]);
                        }
                    });
                    if round % 40 == 39 {
                        heap.collect();
                    }
                }
            });
        }
    });
    heap.collect();
    let cycles = heap.stats().num_gc;
    eprintln!("{cycles} collections");
    assert!(cycles >= 3, "only {cycles} collections ran");
    m.enter(|cx| {
        let ix = cx.get(&index);
        let mut seen = vec![false; len];
        for s in ix.iter() {
            let l = s.get().expect("slot emptied");
            assert_eq!(l.seal, l.id ^ SEAL, "a leaf's memory was reused");
            assert!(!seen[l.id as usize], "leaf {} twice", l.id);
            seen[l.id as usize] = true;
        }
    });
    heap.collect();
    heap.collect();
    assert_eq!(
        MOVED_DROPS.load(Ordering::SeqCst),
        fresh.load(Ordering::Relaxed),
        "the replaced leaves, and only they, are freed"
    );
    drop(index);
}
