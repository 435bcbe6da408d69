// A Mutator is one thread's handle (its allocation caches and session bookkeeping are
// per thread): it cannot move to another thread; that thread makes its own.
use goheap::gc::Heap;

fn main() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    std::thread::spawn(move || {
        m.enter(|cx| {
            cx.alloc(1u32);
        });
    });
}
