//! Review: a store whose barrier check comes after mark termination loses its deletion
//! shade.
//!
//! `GcCell::replace`/`set`/`compare_exchange` swap first and then look at the filter
//! (`swap_then_check`); `shade_pair` then shades only if the heap's phase is `MARK` when it
//! gets the gate. barrier.rs argues that a zero filter means "the swap precedes mark
//! start", but the filter also goes back to zero at mark *termination* (and the phase
//! leaves `MARK`). Interleaving:
//!
//! 1. a grey session G keeps the mark in progress; P holds cell F = Some(O), and O is
//!    reachable only through F; the marker has not traced P yet (it is busy with a long
//!    list, at whose far end P hangs);
//! 2. a black session X (entered during the mark) does `o = P.f.replace(None)`: the swap
//!    happens during the mark, and X is preempted right after it;
//! 3. the marker traces P and sees F = None; G ends; termination finds the queue quiet (X
//!    is not in the gate yet): `MARK_DONE`, ACTIVE -= 1, sweepgen += 2, phase `OFF`;
//! 4. X resumes: `ACTIVE == 0`, so no shade at all (had another heap been marking, the
//!    gate would have found the phase `OFF`: no shade either). X holds O, unmarked; the sweep
//!    frees it (its destructor runs) while X's session and a `Root` made from it hold it.
//!
//! The heap that makes step 1 hold: marking is span-ordered (a FIFO ring of spans per
//! worker, mark.rs), so anything the root scan reaches is traced right after it, before X
//! can act. P is therefore not a root: it hangs off the far end of a long rooted list, and
//! X reaches it through a weak pointer in a rooted holder. X's upgrade shades P, which puts
//! P's span in a buffer of the shared queue; the heap has one mark worker (`with_procs(1)`,
//! forced cycles), whose own ring never empties while it walks the list, so it takes that
//! buffer (and reaches P through the list's end) only after the walk, long after X's swap.
//!
//! The preemption of step 2 is a hardware data breakpoint on F for X's thread only
//! (perf_event_open), whose signal handler sleeps: what an OS preemption right after the
//! `xchg` does. The breakpoint is aimed with the cell's address, taken from a reference.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use goheap::gc::{Config, Gc, GcCell, Heap, Root, Trace, Weak};

#[derive(Trace)]
struct P<'gc> {
    f: GcCell<Option<Gc<'gc, Target>>>,
}

#[derive(Trace)]
struct Node<'gc> {
    next: Option<Gc<'gc, Node<'gc>>>,
    /// Set in the list's last node only.
    p: Option<Gc<'gc, P<'gc>>>,
}

#[derive(Trace)]
struct Holder<'gc> {
    weak: GcCell<Weak<'gc, P<'gc>>>,
}

/// The list the worker walks while X acts: long enough that its walk (150-250 ms in a
/// debug build, 60-100 ms in a release one, here) outlasts the mark start and X's start.
const LIST: usize = if cfg!(debug_assertions) {
    3_000_000
} else {
    8_000_000
};

#[path = "common/breakpoint.rs"]
mod breakpoint;
#[path = "common/race.rs"]
mod race;
use breakpoint::stall;
use race::{grey_session, Target};

#[test]
fn replace_preempted_across_mark_termination_loses_deletion_shade() {
    if !breakpoint::available(stall::on_trap) {
        return;
    }
    // One mark worker, forced cycles only.
    let heap = Heap::with_config(Config::default().with_procs(1).with_gc_percent(-1));
    let dropped = Arc::new(AtomicBool::new(false));
    let mut m0 = heap.mutator();
    // P only at the list's far end (the worker reaches it last); X's way to P is the weak
    // pointer in the holder, which the marker does not follow.
    let (root_h, root_l): (Root<Holder<'static>>, Root<Node<'static>>) = m0.enter(|s| {
        let o = s.alloc(Target {
            magic: 0x000b_1ec7,
            dropped: dropped.clone(),
        });
        let p = s.alloc(P {
            f: GcCell::new(Some(o)),
        });
        let h = s.alloc(Holder {
            weak: GcCell::new(s.downgrade(p)),
        });
        let rh = s.root(h);
        let mut head = s.alloc(Node {
            next: None,
            p: Some(p),
        });
        for _ in 0..LIST {
            head = s.alloc(Node {
                next: Some(head),
                p: None,
            });
        }
        (rh, s.root(head))
    });
    drop(m0);
    // How long a mark of the list takes here (the stall below must outlast it).
    let t0 = Instant::now();
    heap.collect();
    let mark_time = t0.elapsed();
    heap.wait_sweep();
    assert!(!dropped.load(Ordering::SeqCst));
    let stall_for = mark_time * 4 + Duration::from_millis(300);

    let g_release = Barrier::new(2);
    let x_ready = Barrier::new(2);
    let x_go = Barrier::new(2);
    let mut result = None;
    std::thread::scope(|sc| {
        // G: open across the mark start (grey): the mark cannot end before G does.
        grey_session(sc, &heap, &g_release);
        let mut mx = None;
        let x = sc.spawn(|| {
            let mut m = heap.mutator();
            x_ready.wait();
            x_go.wait();
            m.enter(|s| {
                // The upgrade shades P (a black session's access during the mark): its
                // span waits in the shared queue until the worker's walk ends.
                let p = s
                    .get(&root_h)
                    .weak
                    .get()
                    .upgrade(s)
                    .expect("P is reachable");
                let cell_addr = &p.f as *const GcCell<Option<Gc<'_, Target>>> as usize;
                let fd = breakpoint::watch_stall(cell_addr);
                stall::arm(stall_for, 0);
                // The swap traps; the handler sleeps past the mark's termination.
                let o = p.f.replace(None);
                drop(fd);
                o.map(|o| {
                    assert_eq!(o.magic, 0x000b_1ec7);
                    s.root(o)
                })
            })
        });
        x_ready.wait();
        sc.spawn(|| heap.collect());
        // Let the mark start (G keeps it open), so that X's session is black; X then acts
        // while the worker is still early in the list.
        std::thread::sleep(
            (mark_time / 8).clamp(Duration::from_millis(5), Duration::from_millis(20)),
        );
        x_go.wait();
        // X swaps and stalls; let the mark finish the list and reach P, then end G.
        std::thread::sleep(mark_time * 2 + Duration::from_millis(100));
        g_release.wait();
        mx.replace(x.join().unwrap());
        result = mx;
    });
    assert!(stall::happened(), "the breakpoint did not fire");
    let kept: Option<Root<Target>> = result.unwrap();
    heap.wait_sweep();
    let freed = dropped.load(Ordering::SeqCst);
    eprintln!(
        "list mark {:?}; replace returned {}, O destroyed: {freed}",
        mark_time,
        if kept.is_some() { "Some(O)" } else { "None" }
    );
    assert!(kept.is_some());
    assert!(
        !freed,
        "GcCell::replace during the mark returned an object that the collector then freed \
         (the deletion shade was skipped because the filter was read after termination)"
    );
    drop(kept);
    drop(root_h);
    drop(root_l);
}
