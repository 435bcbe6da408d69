// A cell of plain data may live in an object (ThreadBound, tests/gc_local_state.rs), but
// not a value whose destructor must run on its own thread: a dead object's destructor runs
// on the collector's sweeper thread, and `Rc`'s would race with the clones left on this one.
use std::cell::RefCell;
use std::rc::Rc;

use goheap::gc::{Heap, ThreadBound, Trace};

#[derive(Trace)]
struct Shared {
    cache: ThreadBound<RefCell<Option<Rc<String>>>>,
}

fn main() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    let keep = Rc::new(String::from("kept by this thread"));
    m.enter(|cx| {
        cx.alloc(Shared {
            cache: ThreadBound::new(RefCell::new(Some(keep.clone()))),
        });
    });
}
