// A GcMutex is shared by threads (the lock holder and the markers read its value from theirs),
// so its value must be Send and Sync: a mutex around an `Rc` cannot be allocated.
use std::rc::Rc;

use goheap::gc::{GcMutex, Heap};

fn main() {
    Heap::new().mutator().enter(|cx| {
        let m = cx.alloc(GcMutex::new(Rc::new(1u64)));
        *m.try_lock().unwrap() = Rc::new(2);
    });
}
