// `gc_dyn!` only coerces: an object whose type does not implement the trait has no vtable
// for it, and the macro's closure (whose body is its argument) leaves no room for a cast.
use goheap::gc::Heap;
use goheap::gc_dyn;

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
        let _ = gc_dyn!(n => dyn Len);
    });
}
