//! Review: with `gccheckmark` on, a session that waits for another session's *entry* hangs
//! the collector and both threads.
//!
//! `mark_done` (cycle.rs) runs `Mutators::stop_all` when checking: it sets every mutator's
//! claim (new sessions back out and wait) and then waits until every mutator is outside its
//! session. Without gccheckmark nothing ever blocks a session entry for long, so programs
//! may open a session of mutator B while a session of mutator A is open (two mutators
//! nested on one thread, or a session that waits for another thread's session, e.g. a
//! producer/consumer). Interleaving:
//!
//! 1. thread T is inside a session of mutator m1 (black: entered during the mark, so the
//!    mark does not wait for it);
//! 2. the mark ends; `stop_all` holds m1 and m2 and waits for m1 to leave its session;
//! 3. T calls `m2.enter`: it backs out and waits for m2's claim to be released;
//! 4. m1's session never ends (T waits in it), `stop_all` never returns: the collector, T,
//!    and every later `Heap::collect` hang.
//!
//! Debug mode only (gccheckmark, or the after-mark test hook), but `tests/gc_model.rs` runs
//! it on every cycle. Each test detects the hang with a watchdog (the threads are detached
//! and left hanging when it fires).

#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use goheap::gc::{Config, DebugFlags, Heap};

/// Waits for `done`; if it does not come within 10 s, checks that `progress` has stopped
/// moving (a hang, not slowness) and panics with `what`.
fn expect_done(done: mpsc::Receiver<()>, progress: &AtomicUsize, total: usize, what: &str) {
    if done.recv_timeout(Duration::from_secs(10)).is_ok() {
        return;
    }
    let a = progress.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(3));
    let b = progress.load(Ordering::SeqCst);
    if a == b {
        panic!("{what}: stuck at iteration {a} (3 s later: {b})");
    }
    panic!("{what}: not a hang but slow ({a} -> {b} iterations in 3 s, of {total})");
}

fn config() -> Config {
    Config::default()
        .with_procs(2)
        .with_debug(DebugFlags::default().with_gccheckmark(true))
}

#[test]
#[ignore = "known limit of gccheckmark (debug only): it stops the world, so a session that waits for another session to start deadlocks it (docs/design.md)"]
fn nested_sessions_of_two_mutators_hang_under_gccheckmark() {
    let heap = Heap::with_config(config());
    let (done_tx, done_rx) = mpsc::channel();
    let progress = Arc::new(AtomicUsize::new(0));
    {
        let heap = heap.clone();
        let progress = progress.clone();
        std::thread::spawn(move || {
            let mut m1 = heap.mutator();
            let mut m2 = heap.mutator();
            // Until 300 checkmarked cycles have run (each iteration is microseconds).
            let mut i = 0u64;
            while i % 64 != 0 || heap.stats().num_gc < 300 {
                i += 1;
                m1.enter(|s1| {
                    for k in 0..200u64 {
                        let _ = s1.alloc(k);
                    }
                    m2.enter(|s2| {
                        let _ = s2.alloc(2u64);
                    });
                });
                progress.fetch_add(1, Ordering::SeqCst);
            }
            let _ = done_tx.send(());
        });
    }
    {
        let heap = heap.clone();
        std::thread::spawn(move || loop {
            heap.collect();
        });
    }
    expect_done(
        done_rx,
        &progress,
        usize::MAX,
        "nested sessions (m1 then m2 on one thread) hung: stop_all holds m2 while m1's session \
         waits for m2.enter",
    );
}

#[test]
#[ignore = "known limit of gccheckmark (debug only): it stops the world, so a session that waits for another session to start deadlocks it (docs/design.md)"]
fn session_waiting_for_another_threads_session_hangs_under_gccheckmark() {
    let heap = Heap::with_config(config());
    let (done_tx, done_rx) = mpsc::channel();
    let (tok_tx, tok_rx) = mpsc::sync_channel::<()>(0);
    let progress = Arc::new(AtomicUsize::new(0));
    {
        // Consumer: inside its session, waits for a token that the producer sends from
        // inside the producer's session.
        let heap = heap.clone();
        let done_tx = done_tx.clone();
        let progress = progress.clone();
        std::thread::spawn(move || {
            let mut m = heap.mutator();
            let mut i = 0u64;
            while i % 64 != 0 || heap.stats().num_gc < 300 {
                i += 1;
                m.enter(|s| {
                    let _ = s.alloc(1u64);
                    tok_rx.recv().unwrap();
                });
                progress.fetch_add(1, Ordering::SeqCst);
            }
            let _ = done_tx.send(());
        });
    }
    {
        let heap = heap.clone();
        std::thread::spawn(move || {
            let mut m = heap.mutator();
            loop {
                let ok = m.enter(|s| {
                    let _ = s.alloc(2u64);
                    tok_tx.send(()).is_ok()
                });
                if !ok {
                    break;
                }
            }
        });
    }
    {
        let heap = heap.clone();
        std::thread::spawn(move || loop {
            heap.collect();
        });
    }
    expect_done(
        done_rx,
        &progress,
        usize::MAX,
        "a session waiting for another thread's session hung under gccheckmark",
    );
}
