// A Root is Send only when its object is Sync: the other thread's sessions would share the
// object with this thread's.
use std::cell::Cell;

use goheap::gc::{Heap, Trace};

#[derive(Trace)]
struct Counter {
    hits: Cell<u32>,
}

fn main() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    let root = m.enter(|cx| cx.root(cx.alloc(Counter { hits: Cell::new(0) })));
    let h = heap.clone();
    std::thread::spawn(move || {
        let mut m2 = h.mutator();
        m2.enter(|cx| cx.get(&root).hits.set(1));
    });
}
