// A derived type cannot implement Drop: when a cycle dies its objects are freed in any
// order, and the destructor of one could follow a Gc field to one already freed.
use goheap::gc::{Gc, Trace};

#[derive(Trace)]
struct Node<'gc> {
    next: Option<Gc<'gc, Node<'gc>>>,
}

impl Drop for Node<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.next {
            println!("{}", n.next.is_some());
        }
    }
}

fn main() {}
