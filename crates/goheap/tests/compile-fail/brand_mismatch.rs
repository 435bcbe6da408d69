// Pointers of two sessions cannot be mixed: each session's brand is its own lifetime, so an
// object of one session cannot hold a Gc of another (here of another heap, whose collector
// would never see the edge).
use goheap::gc::{Gc, GcCell, Heap, Trace};

#[derive(Trace)]
struct Node<'gc> {
    next: GcCell<Option<Gc<'gc, Node<'gc>>>>,
}

fn main() {
    let (heap_a, heap_b) = (Heap::new(), Heap::new());
    let (mut a, mut b) = (heap_a.mutator(), heap_b.mutator());
    a.enter(|outer| {
        let x = outer.alloc(Node {
            next: GcCell::new(None),
        });
        b.enter(|inner| {
            // An inner object pointing to an outer one...
            let y = inner.alloc(Node {
                next: GcCell::new(Some(x)),
            });
            // ...and an outer object pointing to an inner one.
            x.next.set(Some(y));
        });
    });
}
