//! A program that allocates and frees about 150 MiB on four threads, then does nothing
//! for a while: what goheap's background scavenger does in an idle program. It releases the
//! free memory over its goal, paced, and then sleeps in the kernel until woken; it does not
//! wake up to look. `bench/syscalls.py --idle SECS` runs this under strace.
//!
//! ```sh
//! cargo run --release -p goheap --example idle -- 5
//! ```

#[cfg(not(loom))]
#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

/// goheap's allocator is not built for loom model checking (`--cfg loom`).
#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let v: Vec<Box<[u8]>> = (0..16_000)
                    .map(|i| vec![(t + i) as u8; 256 + (i % 64) * 64].into_boxed_slice())
                    .collect();
                v.iter().map(|b| b[0] as u64).sum::<u64>()
            })
        })
        .collect();
    let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let s = goheap::stats();
    println!(
        "checksum {sum}; idle for {secs} s with {} MiB in use, {} MiB released so far",
        s.heap_inuse >> 20,
        s.heap_released >> 20
    );
    std::thread::sleep(std::time::Duration::from_secs(secs));
    let s = goheap::stats();
    println!(
        "after idling: {} MiB in use, {} MiB released",
        s.heap_inuse >> 20,
        s.heap_released >> 20
    );
}
