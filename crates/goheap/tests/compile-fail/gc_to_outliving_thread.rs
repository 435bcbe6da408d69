// A Gc cannot go to a thread that may outlive its session (here a scoped thread whose scope
// is outside the session).
use goheap::gc::Heap;

fn main() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    std::thread::scope(|s| {
        m.enter(|cx| {
            let g = cx.alloc(String::from("hello"));
            s.spawn(move || println!("{}", *g));
        });
    });
}
