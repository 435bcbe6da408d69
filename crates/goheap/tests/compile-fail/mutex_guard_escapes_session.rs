// A GcMutex guard cannot leave its session: it borrows the object, whose `Gc` is branded with
// the session's lifetime. Outside the session a collection may free the object (and the
// value the guard would give access to), and a guard held there would keep the lock from
// every session for good.
use goheap::gc::{Gc, GcMutex, Heap};

fn main() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    let root = m.enter(|cx| cx.root(cx.alloc(GcMutex::new(vec![1u64]))));
    let guard = m.enter(|cx| Gc::as_ref(cx.get(&root)).try_lock().unwrap());
    heap.collect();
    println!("{:?}", *guard);
}
