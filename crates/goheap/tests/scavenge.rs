//! Returning memory to the OS: after a few hundred MiB are allocated and freed, the
//! resident set falls, both on demand (`release_memory`, Go's debug.FreeOSMemory) and by the
//! background scavenger on its own.
//!
//! One test per file would be needed for exact RSS accounting across tests; instead the two
//! checks run in sequence inside one test.

#![cfg(not(loom))]

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

const MIB: usize = 1 << 20;

fn allocate_and_free(total: usize) {
    let mut v: Vec<Vec<u8>> = Vec::new();
    let mut n = 0;
    let mut i = 0usize;
    while n < total {
        // Mixed small and large blocks, every byte touched so it is resident.
        let size = match i % 4 {
            0 => 48,
            1 => 1000,
            2 => 20_000,
            _ => 300_000,
        };
        v.push(vec![7u8; size]);
        n += size;
        i += 1;
    }
    drop(v);
}

#[test]
fn rss_falls_after_free_on_demand_and_in_background() {
    let before = goheap::raw::os::rss_bytes();
    allocate_and_free(300 * MIB);
    let peak = goheap::raw::os::rss_bytes();
    assert!(
        peak > before + 250 * MIB,
        "expected the allocation to be resident"
    );

    let released = goheap::release_memory().bytes;
    let after = goheap::raw::os::rss_bytes();
    eprintln!(
        "RSS before {} MiB, after free {} MiB, after release_memory {} MiB (released {} MiB)",
        before / MIB,
        peak / MIB,
        after / MIB,
        released / MIB
    );
    assert!(
        released >= 250 * MIB,
        "release_memory released only {released}"
    );
    assert!(
        after < before + 40 * MIB,
        "RSS stayed at {after} after release_memory"
    );
    let s = goheap::stats();
    assert!(s.heap_released >= 250 * MIB);
    assert!(s.heap_released <= s.heap_idle);

    // Again, but now leave it to the background scavenger (paced to 1% of a CPU).
    allocate_and_free(300 * MIB);
    // The freed spans sit in this thread's cache (up to its small empty budget) or in the
    // page heap; the scavenger only sees the latter, as in Go.
    let peak2 = goheap::raw::os::rss_bytes();
    let t = std::time::Instant::now();
    let mut now = peak2;
    while t.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        now = goheap::raw::os::rss_bytes();
        if now < before + 60 * MIB {
            break;
        }
    }
    eprintln!(
        "background scavenger: RSS {} MiB -> {} MiB in {:.1} s",
        peak2 / MIB,
        now / MIB,
        t.elapsed().as_secs_f64()
    );
    assert!(
        now < before + 60 * MIB,
        "background scavenger left RSS at {now}"
    );

    // Objects of threads that have exited, freed by this thread: their spans sit in the
    // central lists; the background thread returns them to the page heap (and then the OS).
    let inuse_before = goheap::stats().heap_inuse;
    let handles: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(|| (0..400_000u32).map(Box::new).collect::<Vec<_>>()))
        .collect();
    let boxes: Vec<Vec<Box<u32>>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    drop(boxes);
    let t = std::time::Instant::now();
    let mut inuse = goheap::stats().heap_inuse;
    while t.elapsed() < std::time::Duration::from_secs(30) && inuse > inuse_before + 4 * MIB {
        std::thread::sleep(std::time::Duration::from_millis(200));
        inuse = goheap::stats().heap_inuse;
    }
    eprintln!(
        "central sweep: heap in use {} KiB -> {} KiB in {:.1} s",
        inuse_before >> 10,
        inuse >> 10,
        t.elapsed().as_secs_f64()
    );
    assert!(
        inuse <= inuse_before + 4 * MIB,
        "empty spans of exited threads stayed in use: {inuse} bytes"
    );
}
