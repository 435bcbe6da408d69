// A guard cannot put into its value a pointer of another session: the value's type carries
// the brand of the session the mutex was read in. Here the other session belongs to another
// heap, whose collector would never see the edge, so the object would be freed while the
// mutex still points to it.
use goheap::gc::{Gc, GcMutex, Heap, Trace};

#[derive(Trace)]
struct Shared<'gc> {
    items: GcMutex<Vec<Gc<'gc, str>>>,
}

fn main() {
    let (heap_a, heap_b) = (Heap::new(), Heap::new());
    let (mut a, mut b) = (heap_a.mutator(), heap_b.mutator());
    a.enter(|outer| {
        let s = outer.alloc(Shared {
            items: GcMutex::new(Vec::new()),
        });
        b.enter(|inner| {
            let mut items = Gc::as_ref(s).items.try_lock().unwrap();
            items.push(inner.alloc_str("from heap b"));
        });
    });
}
