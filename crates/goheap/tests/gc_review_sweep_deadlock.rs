//! Review: sweep termination deadlocks on its own mutex (the collector and every mutator
//! hang).
//!
//! `Mutators::wait_until` (mutator.rs) holds the `wait` mutex while it evaluates its `done`
//! closure. `sweep_termination`'s closure (cycle.rs) calls `flush_idle` for busy mutators,
//! and `flush_idle`, once its claim succeeds, calls `self.wake()`, which locks that same
//! `wait` mutex: a std `Mutex` locked twice by one thread deadlocks. Interleaving:
//!
//! 1. mutator m is inside a session that began before the last mark termination (stale):
//!    sweep termination's first loop finds it busy;
//! 2. in `wait_until`, `done()` loads `m.flushed` (still old) ...
//! 3. ... m exits its session (`flush_if_stale` sets `flushed`, then `epoch += 1`, even) ...
//! 4. ... `flush_idle(m)`: `try_claim` reads the even epoch and succeeds (whether or not a
//!    flush is still needed), then `wake()` -> `wait.lock()`: the collector thread blocks on
//!    the mutex it holds. From then on, every session exit that sees `watched` (still set)
//!    blocks in `wake()` on that mutex too, no cycle ever finishes, and `Heap::collect`
//!    never returns.
//!
//! (Other paths in: a mutator that backed out of `enter` at the first loop's claim is
//! outside and stale when `done()` runs.)
//!
//! The test runs one mutator thread in a loop of short sessions whose allocation triggers
//! cycles; a watchdog reports a hang when the thread stops progressing. Under gdb the hung
//! process shows exactly: goheap-gc in `sweep_termination -> wait_until -> {closure} ->
//! flush_idle -> wake -> Mutex::lock`, the mutator in `SessionGuard::drop -> exit -> wake ->
//! Mutex::lock`.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goheap::gc::{Config, Heap};

#[test]
fn sweep_termination_flush_idle_relocks_wait_mutex() {
    let heap = Heap::with_config(Config::default().with_procs(2).with_gc_percent(1));
    let progress = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let heap = heap.clone();
        let progress = progress.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut m = heap.mutator();
            while !stop.load(Ordering::Relaxed) {
                m.enter(|s| {
                    for k in 0..8u64 {
                        let _ = s.alloc([k; 8]);
                    }
                });
                progress.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = 0;
    let mut last_change = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let p = progress.load(Ordering::Relaxed);
        if p != last {
            last = p;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(3) {
            let st = heap.stats();
            panic!(
                "the mutator thread stopped at iteration {p} for 3 s (cycles so far: {}): \
                 collector deadlocked in sweep_termination (wait_until -> flush_idle -> wake)",
                st.num_gc
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    eprintln!("iterations {last}, cycles {}", heap.stats().num_gc);
}
