// A `GcDyn` is Send and Sync whatever the trait, which is sound only because the object
// behind it is `Sync`: a type with a `Cell` cannot be viewed as a trait object.
use std::cell::Cell;

use goheap::gc::{Heap, Trace};
use goheap::gc_dyn;

trait Count {
    fn bump(&self) -> u32;
}

#[derive(Trace)]
struct Counter {
    n: Cell<u32>,
}

impl Count for Counter {
    fn bump(&self) -> u32 {
        self.n.set(self.n.get() + 1);
        self.n.get()
    }
}

fn main() {
    Heap::new().mutator().enter(|cx| {
        let c = gc_dyn!(cx.alloc(Counter { n: Cell::new(0) }) => dyn Count);
        std::thread::scope(|s| {
            s.spawn(|| c.bump());
            s.spawn(|| c.bump());
        });
    });
}
