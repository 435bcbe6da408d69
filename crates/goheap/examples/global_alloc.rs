//! goheap as a program's global allocator, with its statistics and `release_memory`.
//!
//! ```sh
//! cargo run --release -p goheap --example global_alloc
//! ```

#[cfg(not(loom))]
#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

/// goheap's allocator is not built for loom model checking (`--cfg loom`).
#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// The process's resident set, from goheap's metrics.
#[cfg(not(loom))]
fn rss_bytes() -> usize {
    use goheap::metrics::{read, Sample, Value};
    let mut s = [Sample::new("/goheap/process/rss:bytes")];
    read(&mut s);
    match s[0].value {
        Value::Uint64(b) => b as usize,
        _ => 0,
    }
}

#[cfg(not(loom))]
fn report(when: &str) {
    let s = goheap::stats();
    println!(
        "{when:<28} heap: {:>7.1} MiB reserved, {:>7.1} MiB in use, {:>7.1} MiB released; \
         {:>9} objects live, RSS {:>6.1} MiB",
        mib(s.heap_sys),
        mib(s.heap_inuse),
        mib(s.heap_released),
        s.heap_objects,
        mib(rss_bytes()),
    );
}

#[cfg(not(loom))]
fn main() {
    report("start");
    // A few million small objects from several threads, freed by other threads.
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                (0..500_000u64)
                    .map(|i| format!("thread {t} string {i}"))
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let all: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let total: usize = all.iter().map(|v| v.len()).sum();
    report(&format!("{total} strings live"));
    drop(all);
    report("after freeing them");
    // The background scavenger returns the spans the exited threads left behind once a
    // second, then releases their pages at about 1% of a CPU.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    report("2.5 s later");
    let released = goheap::release_memory().bytes;
    report(&format!("release_memory ({:.0} MiB)", mib(released)));

    let s = goheap::stats();
    println!("\nbusiest size classes:");
    let mut rows: Vec<_> = s.by_size.iter().filter(|c| c.mallocs > 0).collect();
    rows.sort_by_key(|c| std::cmp::Reverse(c.mallocs));
    for c in rows.iter().take(5) {
        let size = if c.size == 0 {
            "large".to_string()
        } else {
            format!("{} B", c.size)
        };
        println!(
            "  {size:>8}: {:>9} mallocs, {:>9} frees",
            c.mallocs, c.frees
        );
    }
}
