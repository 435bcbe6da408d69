//! Synchronous scavenging (the malloc face's mode): with the background thread disabled
//! before the first allocation, frees themselves return memory to the OS once free memory
//! exceeds the goal by more than `SYNC_SLACK`, and no thread is ever started.
#![cfg(not(loom))]

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

/// Runs before `main` (and so before the test harness allocates anything).
extern "C" fn no_background_thread() {
    goheap::raw::scavenger::set_background(false);
}
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = no_background_thread;

const MIB: usize = 1 << 20;

fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm)
                .unwrap_or_default()
                .starts_with(prefix)
        })
        .count()
}

#[test]
fn frees_release_memory_without_a_thread() {
    let before = goheap::raw::os::rss_bytes();
    let mut v: Vec<Vec<u8>> = Vec::new();
    for i in 0..3000 {
        // 100 KiB large objects and 2 KiB small ones, all touched.
        let size = if i % 2 == 0 { 100 << 10 } else { 2 << 10 };
        v.push(vec![1u8; size]);
    }
    let peak = goheap::raw::os::rss_bytes();
    assert!(peak > before + 140 * MIB);
    drop(v);
    let after = goheap::raw::os::rss_bytes();
    let s = goheap::stats();
    eprintln!(
        "RSS {} -> {} -> {} MiB; released {} MiB",
        before / MIB,
        peak / MIB,
        after / MIB,
        s.released_total / MIB
    );
    // Within the goal (4 MiB floor) plus the slack plus one run, plus what small spans
    // keep in this thread's cache (512 KiB) and in central.
    assert!(
        after < before + goheap::raw::scavenger::SYNC_SLACK + 16 * MIB,
        "RSS stayed at {} MiB",
        after / MIB
    );
    assert!(s.released_total >= 100 * MIB);
    // Thread names are cut to 15 bytes in /proc.
    assert_eq!(
        threads_named("goheap-scav"),
        0,
        "a scavenger thread was started"
    );
}
