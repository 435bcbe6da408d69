// A Gc stored in a variable outside the session cannot be used in a later session: between
// the two a collection may run, and only a Root keeps an object alive across it.
use goheap::gc::{Gc, Heap};

fn main() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    let mut keep: Option<Gc<'_, String>> = None;
    m.enter(|cx| {
        keep = Some(cx.alloc(String::from("hello")));
    });
    heap.collect();
    m.enter(|_cx| {
        println!("{}", *keep.unwrap());
    });
}
