// A Session belongs to its thread (the mutator's caches are not synchronised, and the
// collector only waits for sessions it knows about): it can be neither shared with nor sent
// to another thread.
use goheap::gc::Heap;

fn main() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    m.enter(|cx| {
        std::thread::scope(|s| {
            s.spawn(|| cx.alloc(1u32));
        });
    });
}
