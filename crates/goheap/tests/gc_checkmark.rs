//! `gccheckmark`: with `DebugFlags { gccheckmark: true }` every mark is verified by a second,
//! single-threaded mark from the roots, which panics naming any reachable object the real
//! mark missed.
//!
//! (a) A normal multi-threaded workload (trees, cycles, slices, weak pointers, cleanups,
//!     automatic and forced collections) passes with the check on.
//! (b) A mark that missed a reachable object is caught. The after-mark hook
//!     (`Heap::__set_after_mark_hook`, run with the world stopped between the mark and the
//!     check) cannot clear a mark byte from outside the crate (no public API reaches the span
//!     metadata), so the hook produces the other half of the same situation: it stores a
//!     pointer to an object the mark did not reach (garbage at that cycle) into a reachable
//!     object, as a store the marker did not see (a missing write barrier) would. The check
//!     must then find a reachable, unmarked object and panic naming its address and type.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use goheap::gc::{Config, DebugFlags, Gc, GcCell, GcRefCell, Heap, Root, Session, Trace, Weak};

fn checkmark_config() -> Config {
    Config::default()
        .with_procs(2)
        .with_gc_percent(50)
        .with_debug(DebugFlags::default().with_gccheckmark(true))
}

#[derive(Trace)]
struct Node<'gc> {
    v: u64,
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
    next: GcCell<Option<Gc<'gc, Node<'gc>>>>,
}

fn tree<'gc>(cx: &Session<'gc>, d: u32, v: u64) -> Gc<'gc, Node<'gc>> {
    let (left, right) = if d == 0 {
        (None, None)
    } else {
        (
            Some(tree(cx, d - 1, 2 * v)),
            Some(tree(cx, d - 1, 2 * v + 1)),
        )
    };
    cx.alloc(Node {
        v,
        left,
        right,
        next: GcCell::new(None),
    })
}

fn sum(n: &Node) -> u64 {
    n.v + n.left.map_or(0, |l| sum(&l)) + n.right.map_or(0, |r| sum(&r))
}

#[derive(Trace)]
struct Bag<'gc> {
    items: GcRefCell<Vec<Gc<'gc, Node<'gc>>>>,
    names: GcRefCell<Vec<Gc<'gc, str>>>,
    weak: GcRefCell<Vec<Weak<'gc, Node<'gc>>>>,
    tiny: GcRefCell<Vec<Gc<'gc, u32>>>,
}

/// (a) Two mutator threads and the main thread's forced collections; every cycle (dozens of
/// automatic ones) is checkmarked, and none may panic.
#[test]
fn normal_workload_passes_checkmark() {
    let heap = Heap::with_config(checkmark_config());
    let cleanups = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let heap = heap.clone();
            let cleanups = cleanups.clone();
            s.spawn(move || {
                let mut m = heap.mutator();
                let bag: Root<Bag<'static>> = m.enter(|cx| {
                    cx.root(cx.alloc(Bag {
                        items: GcRefCell::new(Vec::new()),
                        names: GcRefCell::new(Vec::new()),
                        weak: GcRefCell::new(Vec::new()),
                        tiny: GcRefCell::new(Vec::new()),
                    }))
                });
                for round in 0..60u64 {
                    m.enter(|cx| {
                        let b = cx.get(&bag);
                        // Garbage trees, one kept; a cycle through `next`.
                        for _ in 0..8 {
                            tree(cx, 8, round);
                        }
                        let keep = tree(cx, 6, round);
                        keep.next.set(Some(keep));
                        let w = cx.downgrade(keep);
                        let c = cleanups.clone();
                        cx.add_cleanup(keep, move || {
                            c.fetch_add(1, Ordering::SeqCst);
                        });
                        let mut items = b.items.borrow_mut();
                        items.push(keep);
                        if items.len() > 10 {
                            let k = (round as usize * 7 + t as usize) % items.len();
                            items.remove(k);
                        }
                        b.weak.borrow_mut().push(w);
                        b.names
                            .borrow_mut()
                            .push(cx.alloc_str(&format!("thread {t} round {round}")));
                        b.tiny.borrow_mut().push(cx.alloc(round as u32));
                    });
                    if round % 10 == 0 {
                        heap.collect();
                    }
                }
                m.enter(|cx| {
                    let b = cx.get(&bag);
                    for n in b.items.borrow().iter() {
                        // A depth-6 tree rooted at value r sums to r * 64 * 127 + constant:
                        // just check it is self-consistent and the cycle is intact.
                        assert!(Gc::ptr_eq(n.next.get().unwrap(), *n));
                        assert_eq!(sum(n), sum(&tree(cx, 6, n.v)));
                    }
                    for (i, name) in b.names.borrow().iter().enumerate() {
                        assert_eq!(&**name, format!("thread {t} round {i}"));
                    }
                    for (i, x) in b.tiny.borrow().iter().enumerate() {
                        assert_eq!(**x, i as u32);
                    }
                    let alive = b
                        .weak
                        .borrow()
                        .iter()
                        .filter(|w| w.upgrade(cx).is_some())
                        .count();
                    assert!(alive >= b.items.borrow().len());
                });
            });
        }
        for _ in 0..10 {
            heap.collect();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    heap.collect();
    heap.wait_sweep();
    let s = heap.stats();
    // Collections requested while a cycle runs share the next one, so 23 `collect` calls
    // make at least 12 cycles, plus the automatic ones.
    assert!(s.num_gc >= 15, "too few cycles checked: {s:?}");
    // 2 x 60 kept trees, at most 2 x 11 still in the bags.
    heap.run_cleanups();
    assert!(cleanups.load(Ordering::SeqCst) <= 2 * 60);
}

#[derive(Trace)]
struct Victim<'gc> {
    v: u64,
    next: Option<Gc<'gc, Victim<'gc>>>,
}

#[derive(Trace)]
struct Holder<'gc> {
    slot: GcCell<Option<Gc<'gc, Victim<'gc>>>>,
}

/// A `Gc` made from an address, for the hook (which runs outside any session).
///
/// # Safety
/// `a` is a live object of type `T`, and the result is used while the world is stopped only.
unsafe fn gc_from_addr<T>(a: usize) -> Gc<'static, T> {
    assert_eq!(
        std::mem::size_of::<Gc<'static, T>>(),
        std::mem::size_of::<usize>()
    );
    // SAFETY: `Gc` is `repr(transparent)` over a non-null pointer; `a` is non-zero.
    unsafe { std::mem::transmute::<usize, Gc<'static, T>>(a) }
}

/// Runs `heap.collect()` and returns the panic message it must raise.
fn collect_panics(heap: &Heap) -> String {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| heap.collect()));
    let e = r.expect_err("gccheckmark did not catch a reachable object the mark missed");
    if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = e.downcast_ref::<&str>() {
        s.to_string()
    } else {
        panic!("checkmark panicked with a non-string payload")
    }
}

/// (b) An object the mark missed but that is reachable when the check runs: the collect
/// panics, naming the object's address and its type.
#[test]
fn checkmark_names_an_unmarked_reachable_object() {
    let heap = Heap::with_config(checkmark_config());
    let mut m = heap.mutator();
    let (holder, holder_addr, victim_addr) = m.enter(|cx| {
        let h = cx.alloc(Holder {
            slot: GcCell::new(None),
        });
        // Garbage: nothing references these, so the mark leaves them white.
        let v2 = cx.alloc(Victim { v: 2, next: None });
        let v = cx.alloc(Victim {
            v: 1,
            next: Some(v2),
        });
        (cx.root(h), Gc::addr(h), Gc::addr(v))
    });
    // A clean collection first: the check passes.
    heap.collect();
    // That collection freed the victims: make fresh ones, garbage again.
    let victim_addr = {
        let _ = victim_addr;
        m.enter(|cx| {
            let v2 = cx.alloc(Victim { v: 2, next: None });
            Gc::addr(cx.alloc(Victim {
                v: 1,
                next: Some(v2),
            }))
        })
    };
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    heap.__set_after_mark_hook(Some(Box::new(move || {
        r.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the world is stopped; the holder is rooted, the victim not swept yet (its
        // cycle is in mark termination).
        unsafe {
            let h = &*(holder_addr as *const Holder<'static>);
            h.slot
                .set(Some(gc_from_addr::<Victim<'static>>(victim_addr)));
        }
    })));
    let msg = collect_panics(&heap);
    heap.__set_after_mark_hook(None);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the after-mark hook did not run once"
    );
    let addr = format!("{victim_addr:#x}");
    assert!(
        msg.contains(&addr),
        "the checkmark message does not name the object's address {addr}: {msg}"
    );
    assert!(
        msg.contains("Victim"),
        "the checkmark message does not name the object's type: {msg}"
    );
    assert!(msg.contains("gccheckmark"), "{msg}");
    // The heap is not used after a failed check (Go throws); dropping it must still be sound.
    drop(holder);
    drop(m);
}

/// (b') The same through a large scan object and a tiny object: the reported type is the
/// missed object's own (a slice element type, or the tiny block).
#[test]
fn checkmark_reports_tiny_blocks_and_objects_behind_large_slices() {
    #[derive(Trace)]
    struct TinyHolder<'gc> {
        slot: GcCell<Option<Gc<'gc, u16>>>,
    }
    let heap = Heap::with_config(checkmark_config());
    let mut m = heap.mutator();
    let (h, h_addr) = m.enter(|cx| {
        let h = cx.alloc(TinyHolder {
            slot: GcCell::new(None),
        });
        (cx.root(h), Gc::addr(h))
    });
    heap.collect();
    // A fresh tiny block holding only garbage.
    let tiny_addr = m.enter(|cx| {
        let mut a = 0;
        for i in 0..64u16 {
            a = Gc::addr(cx.alloc(i));
        }
        a
    });
    heap.__set_after_mark_hook(Some(Box::new(move || {
        // SAFETY: as in the test above.
        unsafe {
            let h = &*(h_addr as *const TinyHolder<'static>);
            h.slot.set(Some(gc_from_addr::<u16>(tiny_addr)));
        }
    })));
    let msg = collect_panics(&heap);
    heap.__set_after_mark_hook(None);
    let block = tiny_addr & !15;
    assert!(
        msg.contains(&format!("{block:#x}")) && msg.contains("tiny block"),
        "expected the tiny block {block:#x} to be named: {msg}"
    );
    drop(h);
    drop(m);
    drop(heap);

    // Behind a large slice of pointers (its own span): the victim is a `Victim`.
    let heap = Heap::with_config(checkmark_config());
    let mut m = heap.mutator();
    let (big, big_addr) = m.enter(|cx| {
        let big = cx.alloc_slice_from_iter((0..6000).map(|_| Holder {
            slot: GcCell::new(None),
        }));
        (cx.root(big), Gc::addr(big))
    });
    heap.collect();
    let victim_addr = m.enter(|cx| Gc::addr(cx.alloc(Victim { v: 9, next: None })));
    heap.__set_after_mark_hook(Some(Box::new(move || {
        // SAFETY: as above; a slice object is its length word then the elements (8-aligned).
        unsafe {
            let len = *(big_addr as *const usize);
            let elems = (big_addr + 8) as *const Holder<'static>;
            (*elems.add(len - 1))
                .slot
                .set(Some(gc_from_addr::<Victim<'static>>(victim_addr)));
        }
    })));
    let msg = collect_panics(&heap);
    heap.__set_after_mark_hook(None);
    assert!(
        msg.contains(&format!("{victim_addr:#x}")) && msg.contains("Victim"),
        "{msg}"
    );
    drop(big);
    drop(m);
}
