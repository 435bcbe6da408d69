// A trait object made from a session's object cannot claim to outlive the session: the
// object holds `Gc<'gc, _>` pointers, so it is not `'static`, and `dyn Trait + 'static`
// would let it be kept (in a `'static` container, another thread) after a collection freed
// what it points to.
use goheap::gc::{Gc, GcDyn, Heap, Trace};
use goheap::gc_dyn;

trait Describe: Sync {
    fn describe(&self) -> String;
}

#[derive(Trace)]
struct Node<'gc> {
    name: Gc<'gc, str>,
}

impl Describe for Node<'_> {
    fn describe(&self) -> String {
        self.name.to_string()
    }
}

fn main() {
    Heap::new().mutator().enter(|cx| {
        let n = cx.alloc(Node { name: cx.alloc_str("n") });
        let d: GcDyn<'_, dyn Describe + 'static> = gc_dyn!(n => dyn Describe + 'static);
        println!("{}", d.describe());
    });
}
