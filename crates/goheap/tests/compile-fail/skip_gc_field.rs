// A `#[trace(skip)]` field must be 'static: a Gc the collector does not see would dangle
// after the next collection.
use goheap::gc::{Gc, Trace};

#[derive(Trace)]
struct Hidden<'gc> {
    #[trace(skip)]
    target: Gc<'gc, String>,
}

fn main() {}
