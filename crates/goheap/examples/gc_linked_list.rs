//! A circular doubly linked list on goheap's garbage collector: cycles everywhere, no
//! reference counts, no `Weak` back-pointers.
//!
//! Every node points to both neighbours through `GcCell`s (`a.next == b` and `b.prev == a`
//! is a cycle of two), and the list is a ring closed by a sentinel node. The list survives
//! from one session to the next in a `Root`, and a forced collection (`heap.collect()`) runs
//! between sessions. The example
//!
//! 1. builds a list of 10,000 nodes with `push_front` and `push_back`;
//! 2. walks it forwards and backwards;
//! 3. unlinks every odd node from the middle of the list, *leaving the removed nodes'
//!    `prev`/`next` pointing at their old neighbours* (garbage that points into live data),
//!    and shows that the collection reclaims exactly those nodes: the heap's object count
//!    drops by 5,000, and a cleanup (`Session::add_cleanup`) reports each removed value;
//! 4. splices a second list into the middle of the first, then cuts a run of nodes out into
//!    a list of its own: a ring of 1,001 objects that stays alive while anything roots any
//!    node of it, and is reclaimed, cycles and all, once nothing does.
//!
//! Every number it prints is also asserted, so a collector that frees a live node or keeps a
//! dead one makes the program fail.
//!
//! ```sh
//! cargo run -p goheap --example gc_linked_list
//! cargo run --release -p goheap --example gc_linked_list
//! GOHEAP_DEBUG=gctrace=1 cargo run -p goheap --example gc_linked_list   # one line per cycle
//! ```

use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goheap::gc::{Gc, GcCell, Heap, Root, Session, Trace};

/// A link: `None` only while a node is being made (a ring has no ends).
type Link<'gc> = GcCell<Option<Gc<'gc, Node<'gc>>>>;

#[derive(Trace)]
struct Node<'gc> {
    value: i64,
    prev: Link<'gc>,
    next: Link<'gc>,
}

impl<'gc> Node<'gc> {
    fn next(&self) -> Gc<'gc, Node<'gc>> {
        self.next.get().expect("a linked node has a next")
    }
    fn prev(&self) -> Gc<'gc, Node<'gc>> {
        self.prev.get().expect("a linked node has a prev")
    }
}

/// A circular list with a sentinel: `sentinel.next` is the first node, `sentinel.prev` the
/// last; an empty list's sentinel points to itself both ways.
#[derive(Trace)]
struct List<'gc> {
    sentinel: Gc<'gc, Node<'gc>>,
    /// A std cell is fine for data that holds no `Gc`.
    len: Cell<usize>,
}

impl<'gc> List<'gc> {
    fn new(cx: &Session<'gc>) -> Gc<'gc, List<'gc>> {
        let s = cx.alloc(Node {
            value: i64::MIN,
            prev: GcCell::new(None),
            next: GcCell::new(None),
        });
        s.prev.set(Some(s));
        s.next.set(Some(s));
        cx.alloc(List {
            sentinel: s,
            len: Cell::new(0),
        })
    }

    fn is_sentinel(&self, n: Gc<'gc, Node<'gc>>) -> bool {
        Gc::ptr_eq(n, self.sentinel)
    }

    /// Links `n` between `a` and `a.next`.
    fn link_after(&self, a: Gc<'gc, Node<'gc>>, n: Gc<'gc, Node<'gc>>) {
        let b = a.next();
        n.prev.set(Some(a));
        n.next.set(Some(b));
        a.next.set(Some(n));
        b.prev.set(Some(n));
        self.len.set(self.len.get() + 1);
    }

    fn push_back(&self, cx: &Session<'gc>, value: i64) -> Gc<'gc, Node<'gc>> {
        let n = cx.alloc(Node {
            value,
            prev: GcCell::new(None),
            next: GcCell::new(None),
        });
        self.link_after(self.sentinel.prev(), n);
        n
    }

    fn push_front(&self, cx: &Session<'gc>, value: i64) -> Gc<'gc, Node<'gc>> {
        let n = cx.alloc(Node {
            value,
            prev: GcCell::new(None),
            next: GcCell::new(None),
        });
        self.link_after(self.sentinel, n);
        n
    }

    /// Unlinks `n` from the list. `n` keeps its own `prev` and `next`: it still points into
    /// the list, but nothing in the list points to it any more.
    fn unlink(&self, n: Gc<'gc, Node<'gc>>) {
        assert!(!self.is_sentinel(n));
        let (a, b) = (n.prev(), n.next());
        a.next.set(Some(b));
        b.prev.set(Some(a));
        self.len.set(self.len.get() - 1);
    }

    /// Moves every node of `other` (in order) to just after `at`, which is in `self`;
    /// `other` is left empty. O(1).
    fn splice_after(&self, at: Gc<'gc, Node<'gc>>, other: &List<'gc>) {
        if other.len.get() == 0 {
            return;
        }
        let (first, last) = (other.sentinel.next(), other.sentinel.prev());
        other.sentinel.next.set(Some(other.sentinel));
        other.sentinel.prev.set(Some(other.sentinel));
        let after = at.next();
        at.next.set(Some(first));
        first.prev.set(Some(at));
        last.next.set(Some(after));
        after.prev.set(Some(last));
        self.len.set(self.len.get() + other.len.replace(0));
    }

    /// Cuts the run `first..=last` (in list order) out into a new list.
    fn split_off(
        &self,
        cx: &Session<'gc>,
        first: Gc<'gc, Node<'gc>>,
        last: Gc<'gc, Node<'gc>>,
    ) -> Gc<'gc, List<'gc>> {
        let mut n = 1;
        let mut cur = first;
        while !Gc::ptr_eq(cur, last) {
            cur = cur.next();
            assert!(
                !self.is_sentinel(cur),
                "split_off: `last` is not after `first`"
            );
            n += 1;
        }
        let (a, b) = (first.prev(), last.next());
        a.next.set(Some(b));
        b.prev.set(Some(a));
        self.len.set(self.len.get() - n);
        let out = List::new(cx);
        let s = out.sentinel;
        s.next.set(Some(first));
        first.prev.set(Some(s));
        s.prev.set(Some(last));
        last.next.set(Some(s));
        out.len.set(n);
        out
    }

    fn iter(&self) -> Iter<'gc> {
        Iter {
            sentinel: self.sentinel,
            cur: self.sentinel.next(),
            forward: true,
        }
    }

    fn iter_rev(&self) -> Iter<'gc> {
        Iter {
            sentinel: self.sentinel,
            cur: self.sentinel.prev(),
            forward: false,
        }
    }

    fn values(&self) -> Vec<i64> {
        self.iter().map(|n| n.value).collect()
    }

    fn find(&self, value: i64) -> Option<Gc<'gc, Node<'gc>>> {
        self.iter().find(|n| n.value == value)
    }

    /// The invariants of a well-formed ring: every `next` is mirrored by a `prev`, the
    /// length matches, and the backward walk is the forward walk reversed.
    fn check(&self) {
        let mut count = 0;
        let mut cur = self.sentinel;
        loop {
            let next = cur.next();
            assert!(Gc::ptr_eq(next.prev(), cur), "next/prev mismatch");
            if self.is_sentinel(next) {
                break;
            }
            count += 1;
            cur = next;
        }
        assert_eq!(count, self.len.get(), "length field out of date");
        let mut fwd = self.values();
        fwd.reverse();
        let bwd: Vec<i64> = self.iter_rev().map(|n| n.value).collect();
        assert_eq!(fwd, bwd, "backward walk is not the forward walk reversed");
    }
}

/// Walks the ring from the sentinel, forwards or backwards.
struct Iter<'gc> {
    sentinel: Gc<'gc, Node<'gc>>,
    cur: Gc<'gc, Node<'gc>>,
    forward: bool,
}

impl<'gc> Iterator for Iter<'gc> {
    type Item = Gc<'gc, Node<'gc>>;
    fn next(&mut self) -> Option<Self::Item> {
        if Gc::ptr_eq(self.cur, self.sentinel) {
            return None;
        }
        let n = self.cur;
        self.cur = if self.forward { n.next() } else { n.prev() };
        Some(n)
    }
}

fn head_tail(v: &[i64]) -> String {
    let show = |s: &[i64]| {
        s.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    if v.len() <= 12 {
        format!("[{}]", show(v))
    } else {
        format!("[{} ... {}]", show(&v[..6]), show(&v[v.len() - 6..]))
    }
}

/// A full collection followed by the end of its sweep, so that the statistics count only
/// what is live; returns the number of objects in the heap.
fn collect(heap: &Heap, what: &str) -> usize {
    heap.collect();
    heap.wait_sweep();
    let s = heap.stats();
    println!(
        "  collect ({what}): {} objects, {} bytes live, {} roots, gc #{}",
        s.heap_objects, s.heap_alloc, s.roots, s.num_gc
    );
    s.heap_objects
}

/// Nodes of the list at the start.
const N: i64 = 10_000;
/// Nodes of the list spliced in.
const EXTRA: i64 = 100;

fn main() {
    let t0 = Instant::now();
    let heap = Heap::new();
    let mut m = heap.mutator();

    // --- Session 1: build 0..N, half from each end. ---------------------------------
    println!(
        "session 1: push_back {}..{N}, push_front {}..=0",
        N / 2,
        N / 2 - 1
    );
    let list: Root<List<'static>> = m.enter(|cx| {
        let l = List::new(cx);
        for v in N / 2..N {
            l.push_back(cx, v);
        }
        for v in (0..N / 2).rev() {
            l.push_front(cx, v);
        }
        cx.root(l)
    });
    // Live: the List object, its sentinel and N nodes.
    let full = collect(&heap, "after building");
    assert_eq!(full, N as usize + 2);

    // --- Session 2: walk both ways. -------------------------------------------------
    m.enter(|cx| {
        let l = cx.get(&list);
        let fwd = l.values();
        let bwd: Vec<i64> = l.iter_rev().map(|n| n.value).collect();
        println!(
            "session 2: {} nodes; forwards {}; backwards {}",
            l.len.get(),
            head_tail(&fwd),
            head_tail(&bwd)
        );
        assert_eq!(fwd, (0..N).collect::<Vec<_>>());
        assert_eq!(bwd, (0..N).rev().collect::<Vec<_>>());
        l.check();
    });
    heap.collect();

    // --- Session 3: remove every odd node from the middle. ----------------------------
    let reclaimed: Arc<Mutex<Vec<i64>>> = Arc::default();
    let removed = m.enter(|cx| {
        let l = cx.get(&list);
        let odd: Vec<_> = l.iter().filter(|n| n.value % 2 != 0).collect();
        for &n in &odd {
            l.unlink(n);
            let r = reclaimed.clone();
            let v = n.value;
            cx.add_cleanup(n, move || r.lock().unwrap().push(v));
        }
        // The removed nodes still point at their old neighbours, which are live: garbage
        // holding pointers into the ring, which no longer points back.
        for &n in &odd {
            assert_eq!(n.prev().value, n.value - 1);
            let next = n.next();
            assert!(l.is_sentinel(next) || next.value == n.value + 1);
        }
        let n = odd[odd.len() / 2];
        println!(
            "session 3: unlinked {} odd nodes; e.g. node {} still has prev={} next={}, \
             but the list goes {} -> {}",
            odd.len(),
            n.value,
            n.prev().value,
            n.next().value,
            n.prev().value,
            n.prev().next().value
        );
        l.check();
        odd.len()
    });
    let before = heap.stats().heap_objects;
    println!("  before collecting: {before} objects (the removed nodes are not swept yet)");
    assert_eq!(before, full);
    let after = collect(&heap, "after removing half");
    println!(
        "  objects: {before} -> {after}: {} reclaimed for {removed} removed nodes",
        before - after
    );
    assert_eq!(before - after, removed);
    assert_eq!(after, N as usize / 2 + 2);
    // Each removed node's cleanup runs once, on the heap's cleanup thread.
    let mut got = wait_for(&heap, &reclaimed, removed);
    got.sort_unstable();
    assert_eq!(got, (0..N).filter(|v| v % 2 != 0).collect::<Vec<_>>());
    println!(
        "  cleanups ran for exactly the {} removed values ({}..={})",
        got.len(),
        got[0],
        got[got.len() - 1]
    );

    // --- Session 4: the survivors are intact. -----------------------------------------
    m.enter(|cx| {
        let l = cx.get(&list);
        l.check();
        let v = l.values();
        println!("session 4: {} nodes left: {}", v.len(), head_tail(&v));
        assert_eq!(v, (0..N).step_by(2).collect::<Vec<_>>());
    });

    // --- Session 5: splice a second list in, cut a run out. ---------------------------
    let (cut, one_node, splice_src) = m.enter(|cx| {
        let l = cx.get(&list);
        let other = List::new(cx);
        for v in 0..EXTRA {
            other.push_back(cx, 1_000_000 + v);
        }
        let at = l.find(4_000).unwrap();
        l.splice_after(at, &other);
        assert_eq!(other.len.get(), 0);
        let (first, last) = (l.find(6_000).unwrap(), l.find(7_998).unwrap());
        let c = l.split_off(cx, first, last);
        println!(
            "session 5: spliced {EXTRA} nodes after 4000 (list: {} nodes), cut 6000..=7998 \
             out into a list of {}",
            l.len.get(),
            c.len.get()
        );
        l.check();
        c.check();
        other.check();
        let mid = c.find(7_000).unwrap();
        (cx.root(c), cx.root(mid), cx.root(other))
    });
    let cut_len = 1_000;
    let main_len = N as usize / 2 - cut_len + EXTRA as usize;
    // Live: main list (2 + nodes), the emptied list (2), the cut list (2 + its nodes).
    let objs = collect(&heap, "after splicing");
    assert_eq!(objs, 2 + main_len + 2 + 2 + cut_len);

    m.enter(|cx| {
        let l = cx.get(&list);
        l.check();
        let v = l.values();
        let i = v.iter().position(|&x| x == 4_000).unwrap();
        assert_eq!(v[i + 1], 1_000_000);
        assert_eq!(v[i + EXTRA as usize], 1_000_000 + EXTRA - 1);
        assert_eq!(v[i + EXTRA as usize + 1], 4_002);
        let j = v.iter().position(|&x| x == 5_998).unwrap();
        assert_eq!(v[j + 1], 8_000);
        assert_eq!(v.len(), main_len);
        println!(
            "session 6: main list of {}: ... {} {} ... {} {} ... 5998 8000 ...",
            v.len(),
            v[i],
            v[i + 1],
            v[i + EXTRA as usize],
            v[i + EXTRA as usize + 1],
        );
        let c = cx.get(&cut);
        c.check();
        assert_eq!(c.values(), (6_000..8_000).step_by(2).collect::<Vec<_>>());
    });

    // The cut list is a ring: one rooted node keeps every node (and the sentinel) alive.
    drop(cut);
    drop(splice_src);
    let objs = collect(
        &heap,
        "cut list's root dropped, one of its nodes still rooted",
    );
    // Gone: the two List objects and the emptied list's sentinel; the ring stays.
    assert_eq!(objs, 2 + main_len + 1 + cut_len);
    m.enter(|cx| {
        let mid = cx.get(&one_node);
        let mut ring = 1;
        let mut cur = mid.next();
        while !Gc::ptr_eq(cur, mid) {
            ring += 1;
            cur = cur.next();
        }
        println!("session 7: node 7000 is still in a ring of {ring} (1000 nodes + sentinel)");
        assert_eq!(ring, cut_len + 1);
    });
    drop(one_node);
    let objs = collect(&heap, "last root into the ring dropped");
    assert_eq!(objs, 2 + main_len);

    drop(list);
    let objs = collect(&heap, "list root dropped");
    assert_eq!(objs, 0);

    let s = heap.stats();
    println!(
        "done in {:.0?}: {} cycles ({} forced), {} objects allocated in all, {} freed, \
         total pause {:.3} ms (max {:.3} ms)",
        t0.elapsed(),
        s.num_gc,
        s.num_forced_gc,
        s.mallocs,
        s.frees,
        s.pause_total_ns as f64 / 1e6,
        s.max_pause_ns as f64 / 1e6
    );
    assert_eq!(s.mallocs, s.frees);
    // No live node's cleanup ever ran, and no removed node's ran twice.
    assert_eq!(reclaimed.lock().unwrap().len(), removed);
}

/// Waits (up to 10 s) until `n` cleanups have reported, and returns what they reported.
fn wait_for(heap: &Heap, log: &Mutex<Vec<i64>>, n: usize) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        heap.run_cleanups(); // help the cleanup thread
        let got = log.lock().unwrap().clone();
        if got.len() >= n || Instant::now() > deadline {
            assert_eq!(got.len(), n, "cleanups of removed nodes");
            return got;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
