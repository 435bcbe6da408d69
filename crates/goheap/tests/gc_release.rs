//! A GC heap gives memory back (issue 10, item 1): after its live set drops from 250 MiB to
//! nothing, the background scavenger brings RSS under 64 MiB within 5 s of the collection
//! with no further call, and `goheap::release_memory()` does it at once without an explicit
//! collection (it collects every GC heap that it can collect without waiting for another
//! thread's session, and says which it skipped).
//!
//! RSS is process-wide, so the steps run in sequence inside one test, with GoAlloc as the
//! global allocator (the configuration of the report).

#![cfg(not(loom))]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use goheap::gc::{Config, Gc, Heap, Root, Trace};

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

const MIB: usize = 1 << 20;

#[derive(Trace)]
struct Node<'gc> {
    next: Option<Gc<'gc, Node<'gc>>>,
    pad: [u64; 500],
}

/// A rooted list of about `mib` MiB of 4 KiB nodes, every byte written.
fn build(heap: &Heap, mib: usize) -> Root<Node<'static>> {
    let mut m = heap.mutator();
    let n = mib * MIB / 4096;
    let mut root: Option<Root<Node<'static>>> = None;
    // In batches of sessions, as a real program would.
    for batch in 0..n / 1000 {
        root = Some(m.enter(|cx| {
            let mut l = root.as_ref().map(|r| cx.get(r));
            for i in 0..1000 {
                l = Some(cx.alloc(Node {
                    next: l,
                    pad: [(batch * 1000 + i) as u64; 500],
                }));
            }
            cx.root(l.unwrap())
        }));
    }
    root.unwrap()
}

/// The tests measure the process and look at every heap of it: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rss() -> usize {
    goheap::raw::os::rss_bytes()
}

#[test]
fn rss_falls_after_a_gc_heap_drops_its_live_set() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let heap = Heap::with_config(Config::default().with_procs(2));
    let before = rss();

    // 1. The background scavenger alone.
    let live = build(&heap, 250);
    let peak = rss();
    assert!(
        peak >= before + 240 * MIB,
        "not resident: {} MiB",
        peak / MIB
    );
    drop(live);
    heap.collect();
    let t = Instant::now();
    let mut now = rss();
    while now > 64 * MIB && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
        now = rss();
    }
    let took = t.elapsed();
    eprintln!(
        "background: RSS {} MiB at the peak, {} MiB {:.2} s after the collection",
        peak / MIB,
        now / MIB,
        took.as_secs_f64()
    );
    assert!(
        now <= 64 * MIB,
        "RSS still {} MiB 5 s after the live set dropped",
        now / MIB
    );

    // 2. release_memory() right after the drop, no collection asked for.
    let live = build(&heap, 250);
    let peak = rss();
    assert!(
        peak >= before + 200 * MIB,
        "not resident: {} MiB",
        peak / MIB
    );
    drop(live);
    let t = Instant::now();
    let r = goheap::release_memory();
    let now = rss();
    eprintln!(
        "release_memory: RSS {} MiB -> {} MiB in {:.3} s; {r}",
        peak / MIB,
        now / MIB,
        t.elapsed().as_secs_f64()
    );
    assert!(r.heaps_collected >= 1 && r.heaps_skipped.is_empty(), "{r}");
    assert!(
        now <= 64 * MIB,
        "RSS {} MiB after release_memory",
        now / MIB
    );
}

/// A heap with another thread inside a session is skipped, and named, at once; so is a heap
/// whose session the caller is inside. Nothing waits.
#[test]
fn release_memory_skips_heaps_it_would_wait_for() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let heap = Heap::with_config(Config::default().with_procs(2));
    let (entered_tx, entered) = mpsc::channel();
    let (leave_tx, leave) = mpsc::channel::<()>();
    let h = heap.clone();
    let t = std::thread::Builder::new()
        .name("in-a-session".into())
        .spawn(move || {
            let mut m = h.mutator();
            m.enter(|cx| {
                let _ = cx.alloc([1u64; 4]);
                entered_tx.send(()).unwrap();
                leave.recv().unwrap();
            });
        })
        .unwrap();
    entered.recv().unwrap();
    let r = goheap::release_memory();
    assert!(
        r.heaps_skipped
            .iter()
            .any(|s| s.contains("\"in-a-session\"")),
        "{r}"
    );
    leave_tx.send(()).unwrap();
    t.join().unwrap();

    let mut m = heap.mutator();
    let r = m.enter(|_| goheap::release_memory());
    assert!(
        r.heaps_skipped
            .iter()
            .any(|s| s.contains("the calling thread is inside a session")),
        "{r}"
    );
    // Outside every session, it collects.
    let r = goheap::release_memory();
    assert!(r.heaps_skipped.is_empty(), "{r}");
}
