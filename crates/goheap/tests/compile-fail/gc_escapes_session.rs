// A Gc cannot be returned out of its session: its brand `'gc` ends with the closure, and
// outside sessions a collection may free the object.
use goheap::gc::Heap;

fn main() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    let g = m.enter(|cx| cx.alloc(5u32));
    heap.collect();
    println!("{}", *g);
}
