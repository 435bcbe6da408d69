//! Review: a store whose barrier check comes after mark termination loses its deletion
//! shade.
//!
//! `GcCell::replace`/`set`/`compare_exchange` swap first and then look at the filter
//! (`swap_then_check`); `shade_pair` then shades only if the heap's phase is `MARK` when it
//! gets the gate. barrier.rs argues that a zero filter means "the swap precedes mark
//! start", but the filter also goes back to zero at mark *termination* (and the phase
//! leaves `MARK`). Interleaving:
//!
//! 1. a grey session G keeps the mark in progress; P (rooted) holds cell F = Some(O), and
//!    O is reachable only through F; the marker has not traced P yet (it is busy with a long
//!    list rooted after P, whose head it pops first);
//! 2. a black session X (entered during the mark) does `o = P.f.replace(None)`: the swap
//!    happens during the mark, and X is preempted right after it;
//! 3. the marker traces P and sees F = None; G ends; termination finds the queue quiet (X
//!    is not in the gate yet): `MARK_DONE`, ACTIVE -= 1, sweepgen += 2, phase `OFF`;
//! 4. X resumes: `ACTIVE == 0`, so no shade at all (had another heap been marking, the
//!    gate would have found the phase `OFF`: no shade either). X holds O, unmarked; the sweep
//!    frees it (its destructor runs) while X's session and a `Root` made from it hold it.
//!
//! The preemption of step 2 is a hardware data breakpoint on F for X's thread only
//! (perf_event_open), whose signal handler sleeps: what an OS preemption right after the
//! `xchg` does. The breakpoint is aimed with the cell's address, taken from a reference.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use goheap::gc::{Config, Gc, GcCell, Heap, Root, Trace};

#[derive(Trace)]
struct P<'gc> {
    f: GcCell<Option<Gc<'gc, Target>>>,
}

#[derive(Trace)]
struct Node<'gc> {
    next: Option<Gc<'gc, Node<'gc>>>,
}

const LIST: usize = 3_000_000;

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
    let heap = Heap::with_config(Config::default().with_procs(2).with_gc_percent(-1)); // forced cycles only
    let dropped = Arc::new(AtomicBool::new(false));
    let mut m0 = heap.mutator();
    // Root order matters: the root scan pushes P, then the list head; a worker pops the
    // head first and walks the whole list before it gets to P.
    let (root_p, root_l): (Root<P<'static>>, Root<Node<'static>>) = m0.enter(|s| {
        let o = s.alloc(Target {
            magic: 0x000b_1ec7,
            dropped: dropped.clone(),
        });
        let p = s.alloc(P {
            f: GcCell::new(Some(o)),
        });
        let rp = s.root(p);
        let mut head = s.alloc(Node { next: None });
        for _ in 0..LIST {
            head = s.alloc(Node { next: Some(head) });
        }
        (rp, s.root(head))
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
                let p = s.get(&root_p);
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
        // The mark has started (G keeps it open) and the workers are in the list.
        std::thread::sleep(Duration::from_millis(20));
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
    drop(root_l);
}
