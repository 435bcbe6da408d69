//! Plain interior mutability in linked objects of a single-threaded program: `Cell` and
//! `RefCell` of data that holds no `Gc`, wrapped in `ThreadBound` so that the object stays
//! `Sync` and objects can point to it (gc/thread_bound.rs). A value whose destructor must
//! run on its own thread (`Rc`) is still rejected (compile-fail `cell_of_non_send_drop`).

use std::cell::{Cell, RefCell};

use goheap::gc::{Gc, GcCell, Heap, ThreadBound, Trace};

#[derive(Trace)]
struct Counter<'gc> {
    hits: ThreadBound<Cell<u64>>,
    log: ThreadBound<RefCell<Vec<String>>>,
    next: GcCell<Option<Gc<'gc, Counter<'gc>>>>,
}

#[test]
fn cells_of_plain_data_live_in_objects_across_sessions_and_collections() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    let root = m.enter(|cx| {
        let a = cx.alloc(Counter {
            hits: ThreadBound::new(Cell::new(0)),
            log: ThreadBound::new(RefCell::new(Vec::new())),
            next: GcCell::new(None),
        });
        let b = cx.alloc(Counter {
            hits: ThreadBound::new(Cell::new(100)),
            log: ThreadBound::new(RefCell::new(vec!["b".into()])),
            next: GcCell::new(Some(a)),
        });
        a.next.set(Some(b));
        cx.root(a)
    });
    for round in 0..50u64 {
        m.enter(|cx| {
            let a = cx.get(&root);
            a.hits.set(a.hits.get() + 1);
            a.log.borrow_mut().push(format!("round {round}"));
            let b = a.next.get().unwrap();
            b.hits.set(b.hits.get() + 2);
            // Garbage, so that the collections below have something to free.
            for i in 0..100 {
                cx.alloc(Counter {
                    hits: ThreadBound::new(Cell::new(i)),
                    log: ThreadBound::new(RefCell::new(vec![String::from("garbage")])),
                    next: GcCell::new(None),
                });
            }
        });
        if round % 10 == 9 {
            heap.collect();
        }
    }
    m.enter(|cx| {
        let a = cx.get(&root);
        let b = a.next.get().unwrap();
        assert_eq!(a.hits.get(), 50);
        assert_eq!(b.hits.get(), 200);
        assert_eq!(a.log.borrow().len(), 50);
        assert_eq!(a.log.borrow()[49], "round 49");
        assert_eq!(b.log.borrow().as_slice(), ["b"]);
        assert!(Gc::ptr_eq(b.next.get().unwrap(), a));
    });
    heap.wait_sweep();
    assert!(heap.stats().frees >= 4000, "{:?}", heap.stats());
}

#[test]
fn another_thread_cannot_reach_the_value() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    let root = m.enter(|cx| {
        cx.root(cx.alloc(Counter {
            hits: ThreadBound::new(Cell::new(7)),
            log: ThreadBound::new(RefCell::new(Vec::new())),
            next: GcCell::new(None),
        }))
    });
    // The object is Sync, so its root may go to another thread; the value may not.
    let other = {
        let (heap, root) = (heap.clone(), root.clone());
        std::thread::spawn(move || {
            heap.mutator().enter(|cx| {
                let c = cx.get(&root);
                let seen = ThreadBound::try_get(&c.hits).map(Cell::get);
                let deref = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.hits.get()));
                (seen, deref.is_err(), format!("{:?}", c.hits))
            })
        })
    };
    let (seen, panicked, printed) = other.join().unwrap();
    assert_eq!(seen, None);
    assert!(panicked, "dereferencing on another thread must panic");
    assert_eq!(printed, "ThreadBound(<another thread's>)");
    assert_eq!(m.enter(|cx| cx.get(&root).hits.get()), 7);
}
