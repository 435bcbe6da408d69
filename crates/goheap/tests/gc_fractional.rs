//! Marks the mutators carry (`gc/fractional.rs`): when the busy mutators fill the cores the
//! cycle starts no mark worker, and each mutator marks slices on its own thread at the
//! spans it takes. These tests use one core (`with_procs(1)`), so that one busy mutator
//! fills it.
//!
//! - A mutator that allocates pays its share in slices, and cycles end without a worker.
//! - A mark nobody carries (the mutator idle outside its sessions) ends when someone needs
//!   it: `Heap::collect`, the mutator leaving the heap, or the collector's patience running
//!   out. The patience is set to an hour where the test is about another way out, so that a
//!   broken way out hangs (and `within` fails the test) instead of being rescued by it.

#![cfg(not(loom))]

#[path = "common/within.rs"]
mod within;

use std::time::Duration;

use goheap::gc::{Config, Gc, GcCell, Heap, Mutator, Root, Session, Trace};
use within::within;

#[derive(Trace)]
struct Link<'gc> {
    v: u64,
    next: GcCell<Option<Gc<'gc, Link<'gc>>>>,
}

fn list<'gc>(cx: &Session<'gc>, n: u64) -> Gc<'gc, Link<'gc>> {
    let mut head = cx.alloc(Link {
        v: 0,
        next: GcCell::new(None),
    });
    for v in 1..n {
        head = cx.alloc(Link {
            v,
            next: GcCell::new(Some(head)),
        });
    }
    head
}

fn sum<'gc>(mut l: Option<Gc<'gc, Link<'gc>>>) -> u64 {
    let mut s = 0;
    while let Some(x) = l {
        s += x.v;
        l = x.next.get();
    }
    s
}

const HOUR: Duration = Duration::from_secs(3600);

/// A heap on one core whose mutator is busy (it has been in a session): the next background
/// cycle is carried by the mutator. Returns the heap, the mutator and a rooted list of
/// 100,000 links, which gives the mark work.
fn one_core_heap() -> (Heap, Mutator, Root<Link<'static>>) {
    let heap = Heap::with_config(Config::default().with_procs(1));
    let mut m = heap.mutator();
    let root = m.enter(|cx| cx.root(list(cx, 100_000)));
    (heap, m, root)
}

/// Starts a background cycle while the mutator is idle outside its sessions (a declared
/// external allocation passes the trigger), and waits until the collector has started it.
fn start_background_cycle(heap: &Heap) {
    let before = heap.__cycles_started();
    heap.mark_external_allocation(1 << 40);
    heap.mark_external_deallocation(1 << 40);
    while heap.__cycles_started() == before {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn busy_mutators_mark_in_slices_and_cycles_end_without_workers() {
    within(120, "cycles carried by the mutator", || {
        let (heap, mut m, root) = one_core_heap();
        heap.__set_mark_patience(HOUR);
        // 200 MB of garbage, taken span by span: every mark that starts is carried by this
        // mutator (no worker, the patience is an hour), and must end for the next to start.
        for _ in 0..400 {
            m.enter(|cx| {
                let l = list(cx, 20_000);
                assert_eq!(sum(Some(l)), 20_000 * 19_999 / 2);
            });
        }
        let s = heap.stats();
        assert!(s.num_gc >= 3, "cycles did not end: {s:?}");
        assert!(
            s.pauses.fractional.count > 0,
            "the mutator never marked a slice: {s:?}"
        );
        assert_eq!(m.enter(|cx| sum(Some(cx.get(&root)))), 100_000 * 99_999 / 2);
    });
}

#[test]
fn collect_takes_over_a_mark_nobody_carries() {
    within(60, "Heap::collect during a mark nobody carries", || {
        let (heap, mut m, root) = one_core_heap();
        heap.__set_mark_patience(HOUR);
        let before = heap.stats().num_gc;
        start_background_cycle(&heap);
        // The mutator is idle: only the collector's workers can end this mark.
        heap.collect();
        let s = heap.stats();
        assert_eq!(
            s.num_gc,
            before + 2,
            "the background and the forced cycle: {s:?}"
        );
        assert_eq!(m.enter(|cx| sum(Some(cx.get(&root)))), 100_000 * 99_999 / 2);
    });
}

#[test]
fn a_mutator_leaving_the_heap_hands_its_mark_over() {
    within(60, "a dropped mutator's mark", || {
        let (heap, m, root) = one_core_heap();
        heap.__set_mark_patience(HOUR);
        let before = heap.stats().num_gc;
        start_background_cycle(&heap);
        drop(root);
        drop(m);
        while heap.stats().num_gc == before {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

#[test]
fn a_mark_nobody_carries_ends_when_the_patience_runs_out() {
    within(60, "a mark nobody carries, with a short patience", || {
        let (heap, mut m, root) = one_core_heap();
        heap.__set_mark_patience(Duration::from_millis(20));
        let before = heap.stats().num_gc;
        start_background_cycle(&heap);
        // Nobody asks for the mark; the mutator stays registered and idle.
        while heap.stats().num_gc == before {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(m.enter(|cx| sum(Some(cx.get(&root)))), 100_000 * 99_999 / 2);
    });
}
