//! Review: `GcRefCell::try_borrow_mut` racing mark termination: the value is neither traced
//! nor shaded.
//!
//! The marker skips a mutably borrowed cell (cell.rs, barrier.rs: "the borrow either began
//! during the mark (and shaded the value) or began before it, in a grey session"). But the
//! borrow's shade is decided after the flag CAS, by reading ACTIVE; a borrow whose CAS lands
//! during the mark and whose ACTIVE load comes after termination does neither:
//!
//! 1. a grey session G keeps the mark open; Q (rooted) holds `c: GcRefCell<Vec<Gc<O>>>`,
//!    O reachable only through it; the marker has not traced Q yet (busy with a long list);
//! 2. a black session X calls `Q.c.borrow_mut()`: its CAS sets WRITING during the mark, and
//!    X is preempted right after it;
//! 3. the marker traces Q, finds the cell WRITING and skips it; G ends; termination:
//!    `MARK_DONE` .. `OFF`, ACTIVE back to 0;
//! 4. X resumes: ACTIVE == 0, no shade; the borrow ends with INSERTION == 0, no rescan.
//!    O is unmarked although reachable (Root -> Q -> c -> O): the sweep frees it.
//!
//! Step 2's preemption is a hardware data breakpoint on the cell's flag (perf_event_open,
//! X's thread only) whose signal handler sleeps after the second access (the CAS).

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use goheap::gc::{Config, Gc, GcRefCell, Heap, Root, Trace};

static STALL_ARMED: AtomicBool = AtomicBool::new(false);
/// Traps to let pass before the one that stalls.
static SKIP_TRAPS: AtomicU64 = AtomicU64::new(0);
static STALLED: AtomicBool = AtomicBool::new(false);
static STALL_NS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_trap(_: libc::c_int) {
    if !STALL_ARMED.load(Ordering::SeqCst) {
        return;
    }
    if SKIP_TRAPS.load(Ordering::SeqCst) > 0 {
        SKIP_TRAPS.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    if STALL_ARMED.swap(false, Ordering::SeqCst) {
        STALLED.store(true, Ordering::SeqCst);
        let ns = STALL_NS.load(Ordering::SeqCst);
        let ts = libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: nanosleep is async-signal-safe.
        unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
    }
}

#[derive(Trace)]
#[trace(static)]
struct Target {
    magic: u64,
    dropped: Arc<AtomicBool>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[derive(Trace)]
struct Q<'gc> {
    c: GcRefCell<Vec<Gc<'gc, Target>>>,
}

#[derive(Trace)]
struct Node<'gc> {
    next: Option<Gc<'gc, Node<'gc>>>,
}

const LIST: usize = 3_000_000;

#[path = "common/breakpoint.rs"]
mod breakpoint;

/// A breakpoint for the calling thread handled by this test's `on_trap`.
fn watch(addr: usize) -> Option<libc::c_int> {
    breakpoint::watch(addr, 0, on_trap)
}

#[test]
fn borrow_mut_preempted_across_mark_termination_leaves_value_untraced() {
    if !breakpoint::available(on_trap) {
        return;
    }
    let heap = Heap::with_config(Config::default().with_procs(2).with_gc_percent(-1)); // forced cycles only
    let dropped = Arc::new(AtomicBool::new(false));
    let mut m0 = heap.mutator();
    // Q first, then the list head: the worker walks the list before it traces Q.
    let (root_q, root_l): (Root<Q<'static>>, Root<Node<'static>>) = m0.enter(|s| {
        let o = s.alloc(Target {
            magic: 0x000b_1ec7,
            dropped: dropped.clone(),
        });
        let q = s.alloc(Q {
            c: GcRefCell::new(vec![o]),
        });
        let rq = s.root(q);
        let mut head = s.alloc(Node { next: None });
        for _ in 0..LIST {
            head = s.alloc(Node { next: Some(head) });
        }
        (rq, s.root(head))
    });
    drop(m0);
    let t0 = Instant::now();
    heap.collect();
    let mark_time = t0.elapsed();
    heap.wait_sweep();
    assert!(!dropped.load(Ordering::SeqCst));
    STALL_NS.store(
        (mark_time * 4 + Duration::from_millis(300)).as_nanos() as u64,
        Ordering::SeqCst,
    );

    let g_in = Barrier::new(2);
    let g_release = Barrier::new(2);
    let x_ready = Barrier::new(2);
    let x_go = Barrier::new(2);
    let mut result = None;
    std::thread::scope(|sc| {
        // G: open across the mark start (grey).
        sc.spawn(|| {
            let mut m = heap.mutator();
            m.enter(|_s| {
                g_in.wait();
                g_release.wait();
            });
        });
        g_in.wait();
        let x = sc.spawn(|| {
            let mut m = heap.mutator();
            x_ready.wait();
            x_go.wait();
            m.enter(|s| {
                let q = s.get(&root_q);
                // The flag word is in the first 16 bytes of the cell (field order is the
                // compiler's): one breakpoint on each 8 bytes.
                let a = &q.c as *const GcRefCell<Vec<Gc<'_, Target>>> as usize;
                let fd1 = watch(a).expect("perf_event_open breakpoint unavailable");
                let fd2 = watch(a + 8).expect("perf_event_open breakpoint unavailable");
                // try_borrow_mut: the flag's load traps first, its CAS second: stall there.
                SKIP_TRAPS.store(1, Ordering::SeqCst);
                STALL_ARMED.store(true, Ordering::SeqCst);
                let b = q.c.borrow_mut();
                // SAFETY: closing our own fds.
                unsafe {
                    libc::close(fd1);
                    libc::close(fd2);
                }
                let o = b[0];
                assert_eq!(o.magic, 0x000b_1ec7);
                drop(b);
                s.root(o)
            })
        });
        x_ready.wait();
        sc.spawn(|| heap.collect());
        std::thread::sleep(Duration::from_millis(20));
        x_go.wait();
        std::thread::sleep(mark_time * 2 + Duration::from_millis(100));
        g_release.wait();
        result = Some(x.join().unwrap());
    });
    assert!(
        STALLED.load(Ordering::SeqCst),
        "the breakpoint did not fire"
    );
    let kept: Root<Target> = result.unwrap();
    heap.wait_sweep();
    let freed = dropped.load(Ordering::SeqCst);
    eprintln!("list mark {mark_time:?}; O destroyed while reachable through the cell: {freed}");
    assert!(
        !freed,
        "an object held in a GcRefCell (rooted) was freed: the mark skipped the mutably \
         borrowed cell, and the borrow's shade was skipped because it read the filter after \
         termination"
    );
    drop(kept);
    drop(root_q);
    drop(root_l);
}
