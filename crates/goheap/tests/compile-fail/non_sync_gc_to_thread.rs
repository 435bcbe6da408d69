// A Gc is Send only when its object is Sync: another thread holding a Gc to an object with
// a Cell could race with this one.
use std::cell::Cell;

use goheap::gc::{Heap, Trace};

#[derive(Trace)]
struct Counter {
    hits: Cell<u32>,
}

fn main() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    m.enter(|cx| {
        let c = cx.alloc(Counter { hits: Cell::new(0) });
        std::thread::scope(|s| {
            s.spawn(move || c.hits.set(c.hits.get() + 1));
        });
    });
}
