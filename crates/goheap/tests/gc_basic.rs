//! First behavioural tests of the collector: survival, reclamation, cycles, slices, weak
//! pointers, cleanups, destructors, statistics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use goheap::gc::{Config, Gc, GcCell, GcRefCell, Heap, Trace};

#[derive(Trace)]
struct Node<'gc> {
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
}

fn tree<'gc>(cx: &goheap::gc::Session<'gc>, d: u32) -> Gc<'gc, Node<'gc>> {
    if d == 0 {
        cx.alloc(Node {
            left: None,
            right: None,
        })
    } else {
        let l = tree(cx, d - 1);
        let r = tree(cx, d - 1);
        cx.alloc(Node {
            left: Some(l),
            right: Some(r),
        })
    }
}

fn check(n: &Node) -> usize {
    1 + n.left.map_or(0, |l| check(&l)) + n.right.map_or(0, |r| check(&r))
}

fn quiet() -> Config {
    Config::default().with_procs(2)
}

#[test]
fn rooted_tree_survives_and_garbage_is_reclaimed() {
    let heap = Heap::with_config(quiet());
    let mut m = heap.mutator();
    let root = m.enter(|cx| cx.root(tree(cx, 14)));
    for _ in 0..20 {
        m.enter(|cx| {
            let t = tree(cx, 12);
            assert_eq!(check(&t), (1 << 13) - 1);
        });
    }
    heap.collect();
    heap.wait_sweep();
    let s = heap.stats();
    assert!(s.num_gc >= 1);
    // The live tree: (2^15 - 1) nodes of 16 bytes.
    let live = ((1 << 15) - 1) * 16;
    assert_eq!(s.last_marked, live, "{s:?}");
    assert_eq!(s.heap_alloc, live, "{s:?}");
    assert_eq!(s.heap_objects, (1 << 15) - 1);
    assert_eq!(m.enter(|cx| check(&cx.get(&root))), (1 << 15) - 1);
    drop(root);
    heap.collect();
    heap.wait_sweep();
    let s = heap.stats();
    assert_eq!(s.last_marked, 0);
    assert_eq!(s.heap_objects, 0, "{s:?}");
}

#[derive(Trace)]
struct Link<'gc> {
    v: u64,
    next: GcCell<Option<Gc<'gc, Link<'gc>>>>,
}

#[test]
fn cycles_and_long_lists() {
    let heap = Heap::with_config(quiet());
    let mut m = heap.mutator();
    // A 1,000,000-node list (10 million in the release-mode test in gc_model.rs).
    let head = m.enter(|cx| {
        let first = cx.alloc(Link {
            v: 0,
            next: GcCell::new(None),
        });
        let mut cur = first;
        for i in 1..1_000_000u64 {
            let n = cx.alloc(Link {
                v: i,
                next: GcCell::new(None),
            });
            cur.next.set(Some(n));
            cur = n;
        }
        cur.next.set(Some(first)); // close the cycle
        cx.root(first)
    });
    heap.collect();
    let sum = m.enter(|cx| {
        let first = cx.get(&head);
        let mut cur = first.next.get().unwrap();
        let mut s = first.v;
        while !Gc::ptr_eq(cur, first) {
            s += cur.v;
            cur = cur.next.get().unwrap();
        }
        s
    });
    assert_eq!(sum, 999_999 * 1_000_000 / 2);
    drop(head);
    heap.collect();
    heap.wait_sweep();
    assert_eq!(heap.stats().heap_objects, 0);
}

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
// SAFETY: holds no Gc.
unsafe impl Trace for Counted {
    const NEEDS_TRACE: bool = false;
    fn trace(&self, _: &mut goheap::gc::Tracer) {}
}
// SAFETY: no lifetime to replace.
unsafe impl<'b> goheap::gc::Rebrand<'b> for Counted {
    type Branded = Counted;
}

#[test]
fn destructors_run_once_for_dead_objects_only() {
    let heap = Heap::with_config(quiet());
    let mut m = heap.mutator();
    let drops = Arc::new(AtomicUsize::new(0));
    let keep = m.enter(|cx| {
        for _ in 0..1000 {
            cx.alloc(Counted(drops.clone()));
        }
        cx.root(cx.alloc(Counted(drops.clone())))
    });
    heap.collect();
    heap.wait_sweep();
    assert_eq!(drops.load(Ordering::SeqCst), 1000);
    heap.collect();
    heap.wait_sweep();
    assert_eq!(drops.load(Ordering::SeqCst), 1000);
    drop(keep);
    heap.collect();
    heap.wait_sweep();
    assert_eq!(drops.load(Ordering::SeqCst), 1001);
}

#[test]
fn heap_drop_runs_remaining_destructors() {
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let heap = Heap::with_config(quiet());
        let mut m = heap.mutator();
        let _r = m.enter(|cx| {
            let v: Vec<u32> = (0..100).collect();
            let s = cx.alloc(v);
            assert_eq!(s.len(), 100);
            for _ in 0..10 {
                cx.alloc(Counted(drops.clone()));
            }
            cx.root(cx.alloc(Counted(drops.clone())))
        });
    }
    assert_eq!(drops.load(Ordering::SeqCst), 11);
}

#[test]
fn slices_strings_and_large_objects() {
    let heap = Heap::with_config(quiet());
    let mut m = heap.mutator();
    let (s, big, strs) = m.enter(|cx| {
        let s = cx.alloc_str("hello, goheap");
        let big = cx.alloc_slice_from_iter((0..100_000usize).map(|i| i as u64 * 3));
        let strs = cx.alloc_slice_from_iter((0..10).map(|i| cx.alloc_str(&format!("s{i}"))));
        (cx.root(s), cx.root(big), cx.root(strs))
    });
    for _ in 0..3 {
        m.enter(|cx| {
            for i in 0..10_000 {
                cx.alloc_str(&format!("garbage {i}"));
            }
        });
        heap.collect();
    }
    m.enter(|cx| {
        assert_eq!(&*cx.get(&s), "hello, goheap");
        let b = cx.get(&big);
        assert_eq!(b.len(), 100_000);
        assert!(b.iter().enumerate().all(|(i, &v)| v == i as u64 * 3));
        let st = cx.get(&strs);
        for (i, x) in st.iter().enumerate() {
            assert_eq!(&**x, format!("s{i}"));
        }
    });
    drop((s, big, strs));
    heap.collect();
    heap.wait_sweep();
    assert_eq!(heap.stats().heap_objects, 0);
}

#[test]
fn weak_pointers_and_cleanups() {
    let heap = Heap::with_config(quiet());
    let mut m = heap.mutator();
    let ran = Arc::new(AtomicUsize::new(0));
    #[derive(Trace)]
    struct Holder<'gc> {
        w: goheap::gc::Weak<'gc, Link<'gc>>,
    }
    let (keep_target, holder) = m.enter(|cx| {
        let t = cx.alloc(Link {
            v: 7,
            next: GcCell::new(None),
        });
        let r = ran.clone();
        cx.add_cleanup(t, move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        let h = cx.alloc(Holder { w: cx.downgrade(t) });
        (cx.root(t), cx.root(h))
    });
    heap.collect();
    assert_eq!(
        m.enter(|cx| cx.get(&holder).w.upgrade(cx).map(|t| t.v)),
        Some(7)
    );
    drop(keep_target);
    heap.collect();
    assert!(m.enter(|cx| cx.get(&holder).w.upgrade(cx).is_none()));
    // The cleanup runs on the cleanup thread; wait for it.
    for _ in 0..1000 {
        if ran.load(Ordering::SeqCst) == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    heap.collect();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn refcell_vectors_of_pointers() {
    #[derive(Trace)]
    struct Bag<'gc> {
        items: GcRefCell<Vec<Gc<'gc, Link<'gc>>>>,
    }
    let heap = Heap::with_config(quiet());
    let mut m = heap.mutator();
    let bag = m.enter(|cx| {
        cx.root(cx.alloc(Bag {
            items: GcRefCell::new(Vec::new()),
        }))
    });
    for round in 0..5u64 {
        m.enter(|cx| {
            let b = cx.get(&bag);
            for i in 0..1000 {
                let l = cx.alloc(Link {
                    v: round * 1000 + i,
                    next: GcCell::new(None),
                });
                b.items.borrow_mut().push(l);
            }
        });
        heap.collect();
    }
    let total: u64 = m.enter(|cx| cx.get(&bag).items.borrow().iter().map(|l| l.v).sum());
    assert_eq!(total, (0..5000).sum());
    heap.wait_sweep();
    assert_eq!(heap.stats().heap_objects, 5001);
}

#[test]
fn automatic_collections_keep_the_heap_near_its_goal() {
    let heap = Heap::with_config(quiet());
    let mut m = heap.mutator();
    let keep = m.enter(|cx| cx.root(tree(cx, 16))); // 2 MiB live
    for _ in 0..200 {
        m.enter(|cx| {
            tree(cx, 10);
        });
    }
    // About 6.5 MiB allocated over a 2 MiB live heap with a 4 MiB goal: at least two cycles.
    // They run concurrently (and slowly under the sanitizers): wait for them.
    let t0 = std::time::Instant::now();
    while heap.stats().num_gc < 2 && t0.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    heap.wait_sweep();
    let s = heap.stats();
    assert!(s.num_gc >= 2, "{s:?}");
    assert_eq!(s.num_forced_gc, 0);
    // Goal: max(4 MiB, 2 x what the last cycle left: the 2 MiB live, plus what was
    // allocated while it marked, as Go's heapMarked); the mark is short next to the loop.
    assert!(s.next_gc >= 4 << 20 && s.next_gc < 8 << 20, "{s:?}");
    assert!(s.heap_inuse < 12 << 20, "{s:?}");
    drop(keep);
}
