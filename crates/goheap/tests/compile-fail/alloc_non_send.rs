// Objects must be Send: the destructor of a dead object runs on the collector's sweeper
// thread.
use std::rc::Rc;

use goheap::gc::Heap;

fn main() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    m.enter(|cx| {
        cx.alloc(Rc::new(5u32));
    });
}
