// The constructor `gc_dyn!` calls is `unsafe`: a closure that casts the object's pointer to
// another type (here a `u64` object given `Vec<u8>`'s vtable) cannot be passed from safe code.
use goheap::gc::{GcDyn, Heap};

trait Len: Sync {
    fn len(&self) -> usize;
}

impl Len for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

fn main() {
    Heap::new().mutator().enter(|cx| {
        let n = cx.alloc(7u64);
        let _ = GcDyn::<dyn Len>::__unsize(n, |p| p as *const Vec<u8> as *const dyn Len);
    });
}
