//! Review: a mutator that backs out of `enter` can sleep forever (lost wake-up).
//!
//! `Mutators::enter` (mutator.rs): when `world::try_enter` sees the collector's claim, the
//! mutator backs out and sleeps on the `wait` condvar while `claim` is set. The collector's
//! `flush_idle` -> `world::try_claim` sets the claim, sees the odd epoch of the entering
//! mutator, and gives the claim up with a plain `claim.store(false)`: no lock, no notify
//! (only a *successful* claim calls `wake()`). Interleaving (the Dekker race of world.rs
//! where both sides see each other):
//!
//!   collector (mark_termination: flush_idle(m))    mutator m (enter)
//!   claim = true                                   epoch += 1 (odd)
//!   epoch is odd  ... preempted ...
//!                                                  claim is true -> back out, epoch += 1
//!                                                  lock(wait); claim is true -> cv.wait
//!   claim = false; return false (no wake)
//!
//! m now sleeps with `claim == false` until somebody else calls `wake()`: a later mark
//! termination, a session exit while the collector watches, ... If nothing else runs on the
//! heap (m was the one that would trigger the next cycle), m sleeps forever.
//!
//! Made deterministic with hardware data breakpoints (perf_event_open) on m's `epoch` word:
//! one on m's thread (it stalls right after its `fetch_add`), one on the collector thread
//! (`goheap-gc`; it stalls right after its epoch load in `try_claim`, claim still set).
//! The epoch word's address is found by watching which word of m's shared state counts the
//! sessions (the harness reads internal memory only to aim the breakpoints; the collector
//! is driven through the public API).

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use goheap::gc::{Config, Heap, Mutator};

/// Per role: the thread id whose traps stall, traps to let pass first, stall length (ns).
struct Stall {
    tid: AtomicI32,
    skip: AtomicU64,
    ns: AtomicU64,
    armed: AtomicBool,
    fired: AtomicBool,
}

impl Stall {
    const fn new() -> Stall {
        Stall {
            tid: AtomicI32::new(0),
            skip: AtomicU64::new(0),
            ns: AtomicU64::new(0),
            armed: AtomicBool::new(false),
            fired: AtomicBool::new(false),
        }
    }
}

static STALLS: [Stall; 2] = [Stall::new(), Stall::new()];
static TRAPS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_trap(_: libc::c_int) {
    // SAFETY: gettid is async-signal-safe.
    let me = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    TRAPS.fetch_add(1, Ordering::SeqCst);
    for s in &STALLS {
        if s.tid.load(Ordering::SeqCst) != me || !s.armed.load(Ordering::SeqCst) {
            continue;
        }
        if s.skip.load(Ordering::SeqCst) > 0 {
            s.skip.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        if s.armed.swap(false, Ordering::SeqCst) {
            s.fired.store(true, Ordering::SeqCst);
            let ns = s.ns.load(Ordering::SeqCst);
            let ts = libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            };
            // SAFETY: nanosleep is async-signal-safe.
            unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
        }
        return;
    }
}

/// The thread id of this process's thread named `name`.
fn tid_named(name: &str) -> Option<i32> {
    for e in std::fs::read_dir("/proc/self/task").ok()? {
        let e = e.ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        if comm.trim() == name {
            return e.file_name().to_str()?.parse().ok();
        }
    }
    None
}

/// The address of `m`'s session counter: the word of its shared state that counts
/// sessions (0, then 2 per session). Reads the mutator's internals for the debugger only.
fn epoch_addr(heap: &Heap, m: &mut Mutator) -> usize {
    assert_eq!(std::mem::size_of::<Mutator>(), 16);
    // SAFETY: reads the two pointer-sized fields of the handle (a Heap and an Arc).
    let words: [usize; 2] = unsafe { std::mem::transmute_copy(&*m) };
    // SAFETY: a Heap is one Arc pointer.
    let h: usize = unsafe { std::mem::transmute_copy(heap) };
    let shared = if words[0] == h { words[1] } else { words[0] } + 16; // past the Arc counts
                                                                       // SAFETY: reading words inside the live MutatorShared (its size is well above 96).
    let read = |o: usize| unsafe { std::ptr::read_volatile((shared + o) as *const u64) };
    let before: Vec<u64> = (0..96).step_by(8).map(read).collect();
    for _ in 0..3 {
        m.enter(|_| {});
    }
    let mid: Vec<u64> = (0..96).step_by(8).map(read).collect();
    m.enter(|_| {});
    let after: Vec<u64> = (0..96).step_by(8).map(read).collect();
    let hits: Vec<usize> = (0..12)
        .filter(|&i| before[i] == 0 && mid[i] == 6 && after[i] == 8)
        .collect();
    assert_eq!(hits.len(), 1, "epoch word not found uniquely: {hits:?}");
    shared + hits[0] * 8
}

#[path = "common/breakpoint.rs"]
mod breakpoint;
use breakpoint::gettid;

/// A breakpoint for thread `tid` (0: the caller) handled by this test's `on_trap`.
fn watch(addr: usize, tid: i32) -> Option<libc::c_int> {
    breakpoint::watch(addr, tid, on_trap)
}

#[test]
fn backed_out_mutator_is_never_woken() {
    if !breakpoint::available(on_trap) {
        return;
    }
    let heap = Heap::with_config(Config::default().with_procs(2).with_gc_percent(-1)); // forced cycles only: nothing else will wake m
    let entered = AtomicBool::new(false);
    let g_in = Barrier::new(2);
    let g_release = Barrier::new(2);
    let m_ready = Barrier::new(2);
    let m_go = Barrier::new(2);
    let epoch_at = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| {
        // m: one session before the cycle (so its cache is stale after the cycle's
        // termination), then one entered during the mark, which stalls right after its
        // epoch += 1.
        sc.spawn(|| {
            let mut m = heap.mutator();
            let epoch = epoch_addr(&heap, &mut m);
            m.enter(|s| {
                let _ = s.alloc(1u64);
            });
            let fd = watch(epoch, 0).expect("perf_event_open breakpoint unavailable");
            STALLS[0].tid.store(gettid(), Ordering::SeqCst);
            STALLS[0].ns.store(300_000_000, Ordering::SeqCst);
            epoch_at.store(epoch, Ordering::SeqCst);
            m_ready.wait();
            m_go.wait();
            STALLS[0].armed.store(true, Ordering::SeqCst);
            m.enter(|_s| {});
            entered.store(true, Ordering::SeqCst);
            // SAFETY: closing our own fd.
            unsafe { libc::close(fd) };
        });
        // G: grey session keeping the mark open.
        sc.spawn(|| {
            let mut m = heap.mutator();
            m.enter(|_s| {
                g_in.wait();
                g_release.wait();
            });
        });
        g_in.wait();
        m_ready.wait();
        let epoch = epoch_at.load(Ordering::SeqCst);
        let gc = tid_named("goheap-gc").expect("collector thread");
        let collect = sc.spawn(|| heap.collect());
        std::thread::sleep(Duration::from_millis(50)); // mark started, waits for G
                                                       // Collector side: its next access to m's epoch after the mark start is the
                                                       // termination's try_claim: stall there (claim set).
        let fd_c = watch(epoch, gc).expect("breakpoint on the collector thread");
        STALLS[1].tid.store(gc, Ordering::SeqCst);
        STALLS[1].ns.store(600_000_000, Ordering::SeqCst);
        STALLS[1].armed.store(true, Ordering::SeqCst);
        m_go.wait();
        let entered = &entered;
        std::thread::sleep(Duration::from_millis(50));
        g_release.wait();
        collect.join().unwrap();
        // SAFETY: closing our own fd.
        unsafe { libc::close(fd_c) };
        let t0 = Instant::now();
        while !entered.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let ok = entered.load(Ordering::SeqCst);
        eprintln!(
            "traps {}, mutator stall fired: {}, collector stall fired: {}, m entered: {ok}",
            TRAPS.load(Ordering::SeqCst),
            STALLS[0].fired.load(Ordering::SeqCst),
            STALLS[1].fired.load(Ordering::SeqCst)
        );
        if !ok {
            // Let the test end: any wake() releases m (a forced cycle's termination does).
            std::thread::spawn({
                let heap = heap.clone();
                move || heap.collect()
            });
        }
        assert!(
            ok,
            "m backed out of enter and slept 3 s after the claim was released: try_claim's \
             failure path does not wake it"
        );
    });
}
