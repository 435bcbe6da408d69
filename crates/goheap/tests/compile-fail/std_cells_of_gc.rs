// A Gc cannot live in a std cell of a derived type: stores into it would bypass the write
// barrier, and the marker could not read it without a data race. goheap implements Trace
// for std cells only around 'static data; use GcCell or GcRefCell.
use std::cell::{Cell, RefCell};

use goheap::gc::{Gc, Trace};

#[derive(Trace)]
struct InCell<'gc> {
    next: Cell<Option<Gc<'gc, u32>>>,
}

#[derive(Trace)]
struct InRefCell<'gc> {
    items: RefCell<Vec<Gc<'gc, u32>>>,
}

fn main() {}
