//! What destructors and cleanups may do. They run on the collector's threads (the sweeper,
//! the thread whose collection sweeps, the cleanup thread), so they must not enter a
//! session or collect (that aborts with a message); everything else a `'static` value can
//! reach must work: dropping roots, reading the heap's statistics, changing its settings.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use goheap::gc::{Config, Heap, Root, Trace};

fn config() -> Config {
    Config::default().with_procs(2)
}

#[path = "common/within.rs"]
mod within;
use within::within;

#[derive(Trace)]
#[trace(static)]
struct Payload([u64; 2]); // 16 bytes: not a tiny object

/// Holds a root of another object and drops it in its destructor.
#[derive(Trace)]
#[trace(static)]
struct RootHolder {
    root: Option<Root<Payload>>,
    drops: Arc<AtomicUsize>,
}
impl Drop for RootHolder {
    fn drop(&mut self) {
        drop(self.root.take());
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A destructor may drop roots: the objects they kept die at the next collection.
#[test]
fn destructors_may_drop_roots() {
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    let drops = Arc::new(AtomicUsize::new(0));
    m.enter(|cx| {
        for i in 0..1000 {
            let p = cx.alloc(Payload([i, !i]));
            assert_eq!(p.0[1], !i);
            cx.alloc(RootHolder {
                root: Some(cx.root(p)),
                drops: drops.clone(),
            });
        }
    });
    assert_eq!(heap.stats().roots, 1000);
    heap.collect();
    heap.wait_sweep();
    assert_eq!(drops.load(Ordering::SeqCst), 1000);
    assert_eq!(heap.stats().roots, 0);
    // The payloads are still allocated (they were rooted during that mark)...
    assert_eq!(heap.stats().heap_objects, 1000);
    heap.collect();
    heap.wait_sweep();
    // ...and gone after the next.
    assert_eq!(heap.stats().heap_objects, 0);
}

/// Cleanups may read statistics and change settings (they run outside the collector's
/// locks, on the cleanup thread or in `run_cleanups`).
#[test]
fn cleanups_may_use_the_heap_handle() {
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    let seen = Arc::new(AtomicUsize::new(0));
    m.enter(|cx| {
        for _ in 0..100 {
            let p = cx.alloc(Payload([1, 2]));
            let (h, seen) = (heap.clone(), seen.clone());
            cx.add_cleanup(p, move || {
                let s = h.stats();
                assert!(s.num_gc >= 1);
                h.set_gc_percent(100);
                seen.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let h = heap.clone();
    let s2 = seen.clone();
    within(20, "cleanups using Heap::stats", move || {
        h.collect();
        h.wait_sweep();
        while s2.load(Ordering::SeqCst) < 100 {
            h.run_cleanups();
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    assert_eq!(seen.load(Ordering::SeqCst), 100);
}

/// A `'static` object that reads its heap's statistics when it dies (say, to log them).
#[derive(Trace)]
#[trace(static)]
struct StatsOnDrop {
    heap: Heap,
    seen: Arc<AtomicUsize>,
}
impl Drop for StatsOnDrop {
    fn drop(&mut self) {
        let s = self.heap.stats();
        assert!(s.heap_objects > 0);
        self.seen.fetch_add(1, Ordering::SeqCst);
    }
}

/// Destructors run inside the sweep, and the sweep also runs at the start of a collection
/// (sweep termination), inside the cycle. A destructor that reads the statistics must not
/// wait for the cycle that runs it (it did when the cycle held the statistics' mutex: the
/// collecting thread deadlocked against itself, and the background sweeper, which
/// `finish_sweep` waits for, blocked on the same mutex).
#[test]
fn destructor_calling_heap_stats_does_not_deadlock() {
    let heap = Heap::with_config(config());
    let seen = Arc::new(AtomicUsize::new(0));
    let (h, s) = (heap.clone(), seen.clone());
    within(20, "a destructor calling Heap::stats()", move || {
        let mut m = h.mutator();
        for _ in 0..10 {
            m.enter(|cx| {
                for _ in 0..20_000 {
                    cx.alloc(StatsOnDrop {
                        heap: h.clone(),
                        seen: s.clone(),
                    });
                }
            });
            // The second collection's sweep termination sweeps what the background sweeper
            // has not reached yet.
            h.collect();
            h.collect();
        }
        h.wait_sweep();
    });
    assert_eq!(seen.load(Ordering::SeqCst), 200_000);
}

/// A `'static` object that waits for the sweep when it dies.
#[derive(Trace)]
#[trace(static)]
struct WaitSweepOnDrop {
    heap: Heap,
    seen: Arc<AtomicUsize>,
}
impl Drop for WaitSweepOnDrop {
    fn drop(&mut self) {
        self.heap.wait_sweep();
        self.seen.fetch_add(1, Ordering::SeqCst);
    }
}

/// `Heap::wait_sweep()` from a destructor (which runs inside a sweep) must not wait for
/// itself: `finish_sweep` spins until `sweeping` is 0, and the sweep running the destructor
/// is one of those it counts.
#[test]
fn destructor_calling_wait_sweep_does_not_hang() {
    let heap = Heap::with_config(config());
    let seen = Arc::new(AtomicUsize::new(0));
    let (h, s) = (heap.clone(), seen.clone());
    within(20, "a destructor calling Heap::wait_sweep()", move || {
        let mut m = h.mutator();
        m.enter(|cx| {
            for _ in 0..100 {
                cx.alloc(WaitSweepOnDrop {
                    heap: h.clone(),
                    seen: s.clone(),
                });
            }
        });
        h.collect();
        h.wait_sweep();
    });
    assert_eq!(seen.load(Ordering::SeqCst), 100);
}

/// A destructor that panics.
#[derive(Trace)]
#[trace(static)]
struct PanicsOnDrop(#[allow(dead_code)] [u64; 2]);
impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("boom in a destructor");
    }
}

/// A panicking destructor aborts the process with a message that names the panic, whichever
/// thread runs it; it never unwinds into the sweep and never leaves a waiter hanging. Runs in
/// a child process, since the expected end is an abort.
#[test]
fn panicking_destructor_aborts_with_its_message() {
    if std::env::var_os("GOHEAP_FINALIZER_CHILD").is_some() {
        let heap = Heap::with_config(config());
        let mut m = heap.mutator();
        m.enter(|cx| {
            cx.alloc(PanicsOnDrop([1, 2]));
        });
        heap.collect();
        heap.collect();
        drop(m);
        drop(heap);
        println!("CHILD SURVIVED");
        return;
    }
    within(60, "a child whose destructor panics", || {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "panicking_destructor_aborts_with_its_message",
                "--test-threads=1",
            ])
            .env("GOHEAP_FINALIZER_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "the child must abort:\n{stdout}\n{stderr}"
        );
        assert!(
            stderr.contains("panicked: boom in a destructor; aborting"),
            "the abort must name the panic (stderr bypasses the harness's capture):\n{stderr}"
        );
    });
}
