//! Objects of every size and alignment the collector handles: tiny pointer-free objects that
//! share 16-byte blocks, zero-sized types, over-aligned types, large objects (over 32 KiB,
//! a span each) and a huge one (over an arena, 64 MiB, a mapping of its own). Each must
//! survive collections intact while rooted (or reachable through a traced field), be
//! correctly aligned, and be reclaimed (destructor once, object count and `heap_inuse` back
//! down) once unreachable. The 10-million-node list is in `gc_model.rs`.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use goheap::gc::{Config, Gc, GcCell, Heap, Root, Session, Trace};

fn config() -> Config {
    Config::default().with_procs(2)
}

/// The large-object tests compare `heap_inuse`, which other tests' heaps do not change (it is
/// per heap), but the huge one needs 70 MiB at once: run the memory-hungry tests one at a
/// time.
static BIG: Mutex<()> = Mutex::new(());
fn big_lock() -> MutexGuard<'static, ()> {
    BIG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts drops of the objects that hold it (a `'static` member with a destructor: derived
/// types that hold `Gc`s may not implement `Drop` themselves).
#[derive(Trace)]
#[trace(static)]
struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn settle(heap: &Heap) {
    heap.collect();
    heap.wait_sweep();
}

// ---- Tiny objects.

/// Pointers to tiny objects from a traced object: the tiny objects are interior pointers
/// into 16-byte blocks, and must keep their block alive.
#[derive(Trace)]
struct TinyRefs<'gc> {
    a: Gc<'gc, u8>,
    b: Gc<'gc, u32>,
    c: Gc<'gc, (u16, u16)>,
    d: Gc<'gc, [u8; 7]>,
    e: GcCell<Option<Gc<'gc, u8>>>,
}

/// Tiny objects (noscan, no destructor, under 16 bytes) survive while rooted or referenced,
/// keep their values while the blocks around them fill with garbage and are reused, are
/// aligned, and are all reclaimed once nothing references them.
#[test]
fn tiny_objects_survive_and_are_reclaimed() {
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    const N: u32 = 20_000;
    #[allow(clippy::type_complexity)]
    let (r8, r32, r2, r7, refs): (
        Vec<Root<u8>>,
        Vec<Root<u32>>,
        Vec<Root<(u16, u16)>>,
        Vec<Root<[u8; 7]>>,
        Vec<Root<TinyRefs<'static>>>,
    ) = m.enter(|cx| {
        let (mut r8, mut r32, mut r2, mut r7, mut refs) = (vec![], vec![], vec![], vec![], vec![]);
        for i in 0..N {
            // Interleave sizes and alignments so that the objects share blocks.
            let a = cx.alloc(i as u8);
            let b = cx.alloc(i.wrapping_mul(2_654_435_761));
            let c = cx.alloc((i as u16, !(i as u16)));
            let d = cx.alloc([i as u8, 1, 2, 3, 4, 5, (i >> 8) as u8]);
            assert_eq!(Gc::addr(b) % 4, 0);
            assert_eq!(Gc::addr(c) % 2, 0);
            // Keep one in 7 of each kind directly, one in 11 through a traced object.
            if i % 7 == 0 {
                r8.push(cx.root(a));
                r32.push(cx.root(b));
                r2.push(cx.root(c));
                r7.push(cx.root(d));
            }
            if i % 11 == 0 {
                let e = cx.alloc(!(i as u8));
                refs.push(cx.root(cx.alloc(TinyRefs {
                    a,
                    b,
                    c,
                    d,
                    e: GcCell::new(Some(e)),
                })));
            }
        }
        (r8, r32, r2, r7, refs)
    });
    let check = |m: &mut goheap::gc::Mutator| {
        m.enter(|cx| {
            let mut i = 0u32;
            for k in 0..r8.len() {
                assert_eq!(*cx.get(&r8[k]), i as u8, "u8 #{i}");
                assert_eq!(*cx.get(&r32[k]), i.wrapping_mul(2_654_435_761), "u32 #{i}");
                assert_eq!(*cx.get(&r2[k]), (i as u16, !(i as u16)), "(u16, u16) #{i}");
                assert_eq!(
                    *cx.get(&r7[k]),
                    [i as u8, 1, 2, 3, 4, 5, (i >> 8) as u8],
                    "[u8; 7] #{i}"
                );
                i += 7;
            }
            let mut i = 0u32;
            for r in &refs {
                let t = cx.get(r);
                assert_eq!(*t.a, i as u8);
                assert_eq!(*t.b, i.wrapping_mul(2_654_435_761));
                assert_eq!(*t.c, (i as u16, !(i as u16)));
                assert_eq!(*t.d, [i as u8, 1, 2, 3, 4, 5, (i >> 8) as u8]);
                assert_eq!(*t.e.get().unwrap(), !(i as u8));
                i += 11;
            }
        })
    };
    for round in 0..4u32 {
        // Tiny garbage reuses the freed blocks.
        m.enter(|cx| {
            for i in 0..50_000u32 {
                let x = cx.alloc([round as u8; 7]);
                let y = cx.alloc(i);
                assert_eq!(*x, [round as u8; 7]);
                assert_eq!(*y, i);
            }
        });
        settle(&heap);
        check(&mut m);
    }
    let s = heap.stats();
    // What is left: the blocks holding survivors (at most one per rooted tiny object) and the
    // TinyRefs objects.
    let rooted_tiny = 4 * r8.len() + refs.len();
    assert!(
        s.heap_objects <= rooted_tiny + refs.len() && s.heap_objects > refs.len(),
        "{} objects for {} rooted tiny objects and {} holders: {s:?}",
        s.heap_objects,
        rooted_tiny,
        refs.len()
    );
    drop((r8, r32, r2, r7, refs));
    settle(&heap);
    let s = heap.stats();
    assert_eq!(s.heap_objects, 0, "{s:?}");
    assert_eq!(s.heap_alloc, 0, "{s:?}");
}

// ---- Zero-sized types.

#[derive(Trace)]
struct Unit;

/// A zero-sized type with a destructor.
#[derive(Trace)]
#[trace(static)]
struct ZstDrop;
static ZST_DROPS: AtomicUsize = AtomicUsize::new(0);
impl Drop for ZstDrop {
    fn drop(&mut self) {
        ZST_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Trace)]
struct HoldsZsts<'gc> {
    unit: Gc<'gc, Unit>,
    zd: Gc<'gc, ZstDrop>,
    empty: Gc<'gc, [u64; 0]>,
    units: Gc<'gc, [()]>,
}

#[test]
fn zero_sized_types() {
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    assert_eq!(std::mem::size_of::<ZstDrop>(), 0);
    let (kept, holder) = m.enter(|cx| {
        let mut addrs = std::collections::HashSet::new();
        let mut kept = Vec::new();
        for i in 0..5000 {
            let z = cx.alloc(ZstDrop);
            let u = cx.alloc(());
            let e = cx.alloc([0u64; 0]);
            // Every allocation is its own object: distinct addresses.
            assert!(
                addrs.insert(Gc::addr(z)),
                "ZstDrop #{i} at a reused address"
            );
            assert!(addrs.insert(Gc::addr(u)));
            assert!(addrs.insert(Gc::addr(e)));
            assert_eq!(Gc::addr(e) % 8, 0);
            if i % 10 == 0 {
                kept.push(cx.root(z));
            }
        }
        let holder = cx.alloc(HoldsZsts {
            unit: cx.alloc(Unit),
            zd: cx.alloc(ZstDrop),
            empty: cx.alloc([]),
            units: cx.alloc_slice_from_iter(std::iter::repeat_n((), 1000)),
        });
        (kept, cx.root(holder))
    });
    settle(&heap);
    // 5000 allocated, 500 rooted, one more held by the rooted holder.
    assert_eq!(ZST_DROPS.load(Ordering::SeqCst), 4500);
    for _ in 0..2 {
        m.enter(|cx| {
            for _ in 0..10_000 {
                cx.alloc(ZstDrop);
                cx.alloc(Unit);
            }
        });
        settle(&heap);
    }
    assert_eq!(ZST_DROPS.load(Ordering::SeqCst), 24_500);
    m.enter(|cx| {
        let h = cx.get(&holder);
        assert_eq!(h.units.len(), 1000);
        assert_eq!(h.empty.len(), 0);
        let _: &Unit = &h.unit;
        let _: &ZstDrop = &h.zd;
        for k in &kept {
            let _: Gc<ZstDrop> = cx.get(k);
        }
    });
    drop(kept);
    drop(holder);
    settle(&heap);
    assert_eq!(ZST_DROPS.load(Ordering::SeqCst), 25_001);
    assert_eq!(heap.stats().heap_objects, 0, "{:?}", heap.stats());
}

// ---- Over-aligned types.

#[derive(Trace)]
#[repr(align(64))]
struct A64<'gc> {
    v: u64,
    next: Option<Gc<'gc, A64<'gc>>>,
    count: DropCount,
}

#[derive(Trace)]
#[repr(align(128))]
struct A128 {
    v: [u32; 3],
}

#[derive(Trace)]
#[repr(align(4096))]
struct A4096 {
    v: u64,
}

#[derive(Trace)]
#[repr(align(8192))]
struct A8192<'gc> {
    v: u64,
    link: Option<Gc<'gc, A64<'gc>>>,
}

#[derive(Trace)]
#[repr(align(16384))]
struct A16384 {
    v: u64,
}

/// Over-aligned objects are aligned as their type asks, survive, are traced through, and are
/// dropped exactly once when unreachable.
#[test]
fn over_aligned_types() {
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    let drops = Arc::new(AtomicUsize::new(0));
    const N: u64 = 3000;
    let (chain, a128, a4096, a8192, slice) = m.enter(|cx| {
        let mut head: Option<Gc<A64>> = None;
        for i in 0..N {
            // Garbage between the kept objects.
            let g = cx.alloc(A64 {
                v: !i,
                next: None,
                count: DropCount(drops.clone()),
            });
            assert_eq!(Gc::addr(g) % 64, 0);
            let n = cx.alloc(A64 {
                v: i,
                next: head,
                count: DropCount(drops.clone()),
            });
            assert_eq!(Gc::addr(n) % 64, 0);
            head = Some(n);
            let x = cx.alloc(A128 {
                v: [i as u32, 0, 0],
            });
            assert_eq!(Gc::addr(x) % 128, 0);
        }
        let a128: Vec<_> = (0..100u32)
            .map(|i| {
                let x = cx.alloc(A128 {
                    v: [i, i + 1, i + 2],
                });
                assert_eq!(Gc::addr(x) % 128, 0);
                cx.root(x)
            })
            .collect();
        let a4096: Vec<_> = (0..20u64)
            .map(|i| {
                let x = cx.alloc(A4096 { v: i * 3 });
                assert_eq!(Gc::addr(x) % 4096, 0);
                cx.root(x)
            })
            .collect();
        let a8192: Vec<_> = (0..5u64)
            .map(|i| {
                let x = cx.alloc(A8192 { v: i, link: head });
                assert_eq!(Gc::addr(x) % 8192, 0);
                cx.root(x)
            })
            .collect();
        // A slice of over-aligned elements: each element aligned.
        let slice = cx.alloc_slice_from_iter((0..50usize).map(|i| A64 {
            v: i as u64 * 7,
            next: None,
            count: DropCount(drops.clone()),
        }));
        for e in slice.iter() {
            assert_eq!(e as *const A64 as usize % 64, 0);
        }
        // Beyond the page size: refused (never misaligned).
        if let Ok(g) = cx.try_alloc(A16384 { v: 1 }) {
            assert_eq!(Gc::addr(g) % 16384, 0);
        }
        (cx.root(head.unwrap()), a128, a4096, a8192, cx.root(slice))
    });
    for _ in 0..3 {
        m.enter(|cx| {
            for i in 0..2000u64 {
                cx.alloc(A64 {
                    v: i,
                    next: None,
                    count: DropCount(drops.clone()),
                });
                cx.alloc(A128 { v: [7; 3] });
            }
        });
        settle(&heap);
    }
    // Garbage: N plus 6000 A64s; kept: the chain (N) and the slice's 50 elements.
    assert_eq!(drops.load(Ordering::SeqCst), N as usize + 6000);
    m.enter(|cx| {
        let mut cur = Some(cx.get(&chain));
        let mut expect = N;
        while let Some(n) = cur {
            expect -= 1;
            assert_eq!(n.v, expect);
            assert_eq!(Gc::addr(n) % 64, 0);
            cur = n.next;
        }
        assert_eq!(expect, 0);
        for (i, r) in a128.iter().enumerate() {
            let i = i as u32;
            assert_eq!(cx.get(r).v, [i, i + 1, i + 2]);
        }
        for (i, r) in a4096.iter().enumerate() {
            assert_eq!(cx.get(r).v, i as u64 * 3);
        }
        for (i, r) in a8192.iter().enumerate() {
            let x = cx.get(r);
            assert_eq!(x.v, i as u64);
            assert_eq!(x.link.unwrap().v, N - 1);
        }
        for (i, e) in cx.get(&slice).iter().enumerate() {
            assert_eq!(e.v, i as u64 * 7);
        }
    });
    // The chain stays alive through the A8192 objects after its own root goes.
    drop(chain);
    settle(&heap);
    assert_eq!(drops.load(Ordering::SeqCst), N as usize + 6000);
    drop((a128, a4096, a8192, slice));
    settle(&heap);
    assert_eq!(drops.load(Ordering::SeqCst), 2 * N as usize + 6050);
    assert_eq!(heap.stats().heap_objects, 0, "{:?}", heap.stats());
}

// ---- Large and huge objects.

/// A large object with pointers: its elements are traced.
#[derive(Trace)]
struct Item<'gc> {
    v: u64,
    child: Option<Gc<'gc, Item<'gc>>>,
    count: DropCount,
}

fn large_pointer_slice<'gc>(
    cx: &Session<'gc>,
    n: usize,
    drops: &Arc<AtomicUsize>,
) -> Gc<'gc, [Gc<'gc, Item<'gc>>]> {
    cx.alloc_slice_from_iter((0..n).map(|i| {
        let child = cx.alloc(Item {
            v: i as u64 * 1000,
            child: None,
            count: DropCount(drops.clone()),
        });
        cx.alloc(Item {
            v: i as u64,
            child: Some(child),
            count: DropCount(drops.clone()),
        })
    }))
}

/// Objects over 32 KiB (a span each): noscan, scan (a slice of pointers whose targets live
/// only through it) and with destructors; they survive, and `heap_inuse` goes back down
/// when they die.
#[test]
fn large_objects_survive_and_are_freed() {
    let _g = big_lock();
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    let drops = Arc::new(AtomicUsize::new(0));
    let base = heap.stats().heap_inuse;
    // 8000 pointers: 64 KiB; 100_000 u64: 800 KiB; 33 KiB of bytes; 5000 DropCounts: 40 KiB.
    let (ptrs, words, bytes, arr) = m.enter(|cx| {
        let ptrs = large_pointer_slice(cx, 8000, &drops);
        let words = cx.alloc_slice_from_iter((0..100_000usize).map(|i| i as u64 ^ 0x5555));
        let bytes = cx.alloc_slice_from_iter((0..33 * 1024).map(|i| (i % 251) as u8));
        let arr = cx.alloc_slice_from_iter((0..5000).map(|_| DropCount(drops.clone())));
        (cx.root(ptrs), cx.root(words), cx.root(bytes), cx.root(arr))
    });
    for _ in 0..3 {
        // Large garbage of all kinds in between.
        m.enter(|cx| {
            for _ in 0..10 {
                large_pointer_slice(cx, 5000, &drops);
                cx.alloc_slice_from_iter((0..50_000usize).map(|i| !(i as u64)));
            }
        });
        settle(&heap);
    }
    assert_eq!(drops.load(Ordering::SeqCst), 3 * 10 * 5000 * 2);
    let with = heap.stats();
    assert!(
        with.heap_inuse >= base + 800_000 + 64_000 + 33 * 1024,
        "{with:?}"
    );
    m.enter(|cx| {
        for (i, it) in cx.get(&ptrs).iter().enumerate() {
            assert_eq!(it.v, i as u64);
            assert_eq!(it.child.unwrap().v, i as u64 * 1000);
        }
        assert!(cx
            .get(&words)
            .iter()
            .enumerate()
            .all(|(i, &w)| w == i as u64 ^ 0x5555));
        let b = cx.get(&bytes);
        assert_eq!(b.len(), 33 * 1024);
        assert!(b.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
        assert_eq!(cx.get(&arr).len(), 5000);
    });
    drop((ptrs, words, bytes, arr));
    settle(&heap);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        3 * 10 * 5000 * 2 + 16_000 + 5000
    );
    let after = heap.stats();
    assert_eq!(after.heap_objects, 0, "{after:?}");
    // Everything is gone but empty small spans kept for reuse until the next cycle.
    settle(&heap);
    let after = heap.stats();
    assert!(after.heap_inuse <= base + (256 << 10), "{after:?}");
}

/// Over an arena (64 MiB): the object gets a mapping of its own; it survives collections and
/// its memory leaves the heap when it dies.
#[test]
fn huge_object_survives_and_is_freed() {
    let _g = big_lock();
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    let base = heap.stats().heap_inuse;
    // 70 MiB as 8960 elements of 8 KiB.
    const CHUNKS: usize = 70 * 128;
    let huge = m.enter(|cx| {
        let h = cx.alloc_slice_from_iter((0..CHUNKS).map(|i| [i as u64; 1024]));
        assert_eq!(h.len(), CHUNKS);
        cx.root(h)
    });
    let s = heap.stats();
    assert!(s.heap_inuse >= base + (70 << 20), "{s:?}");
    for _ in 0..2 {
        m.enter(|cx| {
            for i in 0..1000u64 {
                cx.alloc_slice_from_iter((0..64usize).map(|k| k as u64 ^ i));
            }
        });
        settle(&heap);
    }
    m.enter(|cx| {
        let h = cx.get(&huge);
        for (i, c) in h.iter().enumerate() {
            assert!(
                c[0] == i as u64 && c[1023] == i as u64 && c[i % 1024] == i as u64,
                "chunk {i} of the huge object corrupted"
            );
        }
    });
    let s = heap.stats();
    assert_eq!(s.heap_objects, 1, "{s:?}");
    assert!(s.last_marked >= 70 << 20, "{s:?}");
    drop(huge);
    settle(&heap);
    let s = heap.stats();
    assert_eq!(s.heap_objects, 0, "{s:?}");
    assert!(
        s.heap_inuse < base + (1 << 20),
        "the huge object's memory stayed: {s:?}"
    );
    // A second one fits again (its mapping was given back, or reused).
    let again = m.enter(|cx| {
        let h = cx.alloc_slice_from_iter((0..CHUNKS).map(|i| [!(i as u64); 1024]));
        h[CHUNKS - 1][5]
    });
    assert_eq!(again, !(CHUNKS as u64 - 1));
    settle(&heap);
    assert!(heap.stats().heap_inuse < base + (1 << 20));
}

// ---- Slices built from iterators that misbehave.

/// A destructor-counted element that records its index.
#[derive(Trace)]
#[trace(static)]
struct Elem {
    i: u64,
    _count: DropCount,
}

/// The iterator of `alloc_slice_from_iter` panics half-way: the elements already moved in
/// are dropped once (by the sweeper), the others by the unwinding iterator, none twice,
/// and the mutator keeps working.
#[test]
fn slice_iterator_that_panics() {
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    let drops = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.enter(|cx| {
            let (d, mk) = (drops.clone(), made.clone());
            cx.alloc_slice_from_iter((0..100usize).map(move |i| {
                assert!(i != 60, "iterator panics at element 60");
                mk.fetch_add(1, Ordering::SeqCst);
                Elem {
                    i: i as u64,
                    _count: DropCount(d.clone()),
                }
            }));
        })
    }));
    assert!(r.is_err());
    settle(&heap);
    assert_eq!(made.load(Ordering::SeqCst), 60);
    assert_eq!(drops.load(Ordering::SeqCst), 60);
    assert_eq!(heap.stats().heap_objects, 0);
    let kept = m.enter(|cx| {
        let s = cx.alloc_slice_from_iter((0..10usize).map(|i| Elem {
            i: i as u64,
            _count: DropCount(drops.clone()),
        }));
        cx.root(s)
    });
    settle(&heap);
    m.enter(|cx| {
        let s = cx.get(&kept);
        assert!(s.iter().enumerate().all(|(k, e)| e.i == k as u64));
    });
    drop(kept);
    settle(&heap);
    assert_eq!(drops.load(Ordering::SeqCst), 70);
}

/// An `ExactSizeIterator` whose `len()` promises more items than it yields.
struct Short {
    next: u64,
    end: u64,
}
impl Iterator for Short {
    type Item = Elem;
    fn next(&mut self) -> Option<Elem> {
        (self.next < self.end).then(|| {
            self.next += 1;
            Elem {
                i: self.next - 1,
                _count: DropCount(Arc::new(AtomicUsize::new(0))),
            }
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (1000, Some(1000))
    }
}
impl ExactSizeIterator for Short {}

/// The slice holds exactly the items the iterator gave, however long it said it was.
#[test]
fn slice_iterator_shorter_than_its_len() {
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    let s = m.enter(|cx| cx.root(cx.alloc_slice_from_iter(Short { next: 0, end: 10 })));
    settle(&heap);
    m.enter(|cx| {
        let g = cx.get(&s);
        assert_eq!(g.len(), 10);
        assert!(g.iter().enumerate().all(|(k, e)| e.i == k as u64));
    });
    drop(s);
    settle(&heap);
    assert_eq!(heap.stats().heap_objects, 0);
}
