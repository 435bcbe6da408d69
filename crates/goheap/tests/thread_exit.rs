//! A thread that exits hands its spans back: 10,000 short-lived threads that allocate and
//! exit must leave the resident set bounded, memory one thread allocated and another freed
//! must be reusable afterwards, and a thread may exit while another is still freeing into its
//! spans.

#![cfg(not(loom))]

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

fn churn(seed: usize) -> Vec<Box<[u8]>> {
    // A little of every size class range, some of it kept for the parent to free.
    let mut keep = vec![];
    let mut tmp = vec![];
    for i in 0..300 {
        let size = 1 + (i * 131 + seed * 7) % 4000;
        let b = vec![i as u8; size].into_boxed_slice();
        if i % 10 == 0 {
            keep.push(b);
        } else {
            tmp.push(b);
        }
    }
    tmp.push(vec![1u8; 100_000].into_boxed_slice());
    keep
}

fn run_threads(n: usize, base: usize) {
    for i in 0..n {
        let kept = std::thread::spawn(move || churn(base + i)).join().unwrap();
        for (j, b) in kept.iter().enumerate() {
            assert!(b.iter().all(|&x| x == (j * 10) as u8));
        }
        drop(kept); // freed by the parent: remote frees into spans of an exited thread
    }
}

/// The tests measure the heap, so they run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn ten_thousand_short_lived_threads_keep_rss_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run_threads(1000, 0);
    let warm = goheap::raw::os::rss_bytes();
    let inuse_warm = goheap::stats().heap_inuse;
    run_threads(9000, 1000);
    let end = goheap::raw::os::rss_bytes();
    let inuse_end = goheap::stats().heap_inuse;
    eprintln!(
        "RSS after 1000 threads {} KiB, after 10000 {} KiB; heap in use {} -> {} KiB",
        warm >> 10,
        end >> 10,
        inuse_warm >> 10,
        inuse_end >> 10
    );
    // Each thread touches ~0.7 MiB; were spans not handed back, 9000 more threads would
    // leave gigabytes behind. Allow a little slack for the process's own growth.
    assert!(end < warm + (16 << 20), "RSS grew from {warm} to {end}");
    assert!(
        inuse_end < inuse_warm + (8 << 20),
        "heap in use grew from {inuse_warm} to {inuse_end}"
    );
}

/// Threads exit while another thread is still freeing into their full spans: the exiting
/// thread's parked spans come home through its reclaim stack, some of them while it retires,
/// and `Cache::retire` sleeps (futex) until every span a freer has claimed has arrived. A
/// lost wake-up would hang here; a span that arrived after the cache was recycled would
/// show up as heap growth or a crash in a later round.
#[test]
fn threads_exit_while_others_free_into_their_spans() {
    use std::sync::mpsc;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let inuse_before = goheap::stats().heap_inuse;
    for round in 0..300u32 {
        let (tx, rx) = mpsc::channel::<Vec<Box<[u32; 12]>>>();
        let freer = std::thread::spawn(move || {
            for batch in rx {
                for (i, b) in batch.iter().enumerate() {
                    assert!(b.iter().all(|&x| x == round + i as u32));
                }
                drop(batch);
            }
        });
        let owner = std::thread::spawn(move || {
            for _ in 0..8 {
                let v: Vec<_> = (0..1000).map(|i| Box::new([round + i; 12])).collect();
                tx.send(v).unwrap();
            }
            // Exits (and retires its cache) while the freer is still at work.
        });
        owner.join().unwrap();
        freer.join().unwrap();
    }
    let inuse_after = goheap::stats().heap_inuse;
    eprintln!(
        "heap in use {} KiB -> {} KiB",
        inuse_before >> 10,
        inuse_after >> 10
    );
    assert!(
        inuse_after < inuse_before + (8 << 20),
        "heap in use grew from {inuse_before} to {inuse_after}"
    );
}
