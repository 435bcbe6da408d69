// `GcMutex::waiter` is unsafe: its handle reads and sets bits in the mutex's lock word from
// outside any session, so the mutex must stay where it is, and one inside a `GcRefCell` can be
// overwritten in place (found by review). The caller promises a mutex reached through plain
// fields.
use goheap::gc::{Gc, GcMutex, Heap};

fn main() {
    let heap = Heap::new();
    let w = heap.mutator().enter(|cx| {
        let m: Gc<'_, GcMutex<u64>> = cx.alloc(GcMutex::new(1));
        m.waiter(cx, m)
    });
    drop(w);
}
