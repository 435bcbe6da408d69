//! Review: `GcRefCell::try_borrow_mut` racing mark termination: the value is neither traced
//! nor shaded.
//!
//! The marker skips a mutably borrowed cell (cell.rs, barrier.rs: "the borrow either began
//! during the mark (and shaded the value) or began before it, in a grey session"). But the
//! borrow's shade is decided after the flag CAS, by reading ACTIVE; a borrow whose CAS lands
//! during the mark and whose ACTIVE load comes after termination does neither:
//!
//! 1. a grey session G keeps the mark open; Q holds `c: GcRefCell<Vec<Gc<O>>>`, O reachable
//!    only through it; the marker has not traced Q yet (busy with a long list);
//! 2. a black session X calls `Q.c.borrow_mut()`: its CAS sets WRITING during the mark, and
//!    X is preempted right after it;
//! 3. the marker traces Q, finds the cell WRITING and skips it; G ends; termination:
//!    `MARK_DONE` .. `OFF`, ACTIVE back to 0;
//! 4. X resumes: ACTIVE == 0, no shade; the borrow ends with INSERTION == 0, no rescan.
//!    O is unmarked although reachable (Root -> list -> Q -> c -> O): the sweep frees it.
//!
//! The heap that makes step 1 hold: marking is span-ordered (a FIFO ring of spans per
//! worker, mark.rs), so anything the root scan reaches is traced right after it, before X
//! can act. Q is therefore not a root: it hangs off the far end of a long rooted list, and
//! X reaches it through a weak pointer in a rooted holder. X's upgrade shades Q, which puts
//! Q's span in a buffer of the shared queue; the heap has one mark worker (`with_procs(1)`,
//! forced cycles), whose own ring never empties while it walks the list, so it takes that
//! buffer (and reaches Q through the list's end) only after the walk, long after X's CAS.
//!
//! Step 2's preemption is a hardware data breakpoint on the cell's flag (perf_event_open,
//! X's thread only) whose signal handler sleeps after the second access (the CAS).

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use goheap::gc::{Config, Gc, GcCell, GcRefCell, Heap, Root, Trace, Weak};

#[derive(Trace)]
struct Q<'gc> {
    c: GcRefCell<Vec<Gc<'gc, Target>>>,
}

#[derive(Trace)]
struct Node<'gc> {
    next: Option<Gc<'gc, Node<'gc>>>,
    /// Set in the list's last node only.
    q: Option<Gc<'gc, Q<'gc>>>,
}

#[derive(Trace)]
struct Holder<'gc> {
    weak: GcCell<Weak<'gc, Q<'gc>>>,
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
fn borrow_mut_preempted_across_mark_termination_leaves_value_untraced() {
    if !breakpoint::available(stall::on_trap) {
        return;
    }
    // One mark worker, forced cycles only.
    let heap = Heap::with_config(Config::default().with_procs(1).with_gc_percent(-1));
    let dropped = Arc::new(AtomicBool::new(false));
    let mut m0 = heap.mutator();
    // Q only at the list's far end (the worker reaches it last); X's way to Q is the weak
    // pointer in the holder, which the marker does not follow.
    let (root_h, root_l): (Root<Holder<'static>>, Root<Node<'static>>) = m0.enter(|s| {
        let o = s.alloc(Target {
            magic: 0x000b_1ec7,
            dropped: dropped.clone(),
        });
        let q = s.alloc(Q {
            c: GcRefCell::new(vec![o]),
        });
        let h = s.alloc(Holder {
            weak: GcCell::new(s.downgrade(q)),
        });
        let rh = s.root(h);
        let mut head = s.alloc(Node {
            next: None,
            q: Some(q),
        });
        for _ in 0..LIST {
            head = s.alloc(Node {
                next: Some(head),
                q: None,
            });
        }
        (rh, s.root(head))
    });
    drop(m0);
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
        // G: open across the mark start (grey).
        grey_session(sc, &heap, &g_release);
        let x = sc.spawn(|| {
            let mut m = heap.mutator();
            x_ready.wait();
            x_go.wait();
            m.enter(|s| {
                // The upgrade shades Q (a black session's access during the mark): its
                // span waits in the shared queue until the worker's walk ends.
                let q = s
                    .get(&root_h)
                    .weak
                    .get()
                    .upgrade(s)
                    .expect("Q is reachable");
                // The flag word is in the first 16 bytes of the cell (field order is the
                // compiler's): one breakpoint on each 8 bytes.
                let a = &q.c as *const GcRefCell<Vec<Gc<'_, Target>>> as usize;
                let fd1 = breakpoint::watch_stall(a);
                let fd2 = breakpoint::watch_stall(a + 8);
                // try_borrow_mut: the flag's load traps first, its CAS second: stall there.
                stall::arm(stall_for, 1);
                let b = q.c.borrow_mut();
                drop((fd1, fd2));
                let o = b[0];
                assert_eq!(o.magic, 0x000b_1ec7);
                drop(b);
                s.root(o)
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
        std::thread::sleep(mark_time * 2 + Duration::from_millis(100));
        g_release.wait();
        result = Some(x.join().unwrap());
    });
    assert!(stall::happened(), "the breakpoint did not fire");
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
    drop(root_h);
    drop(root_l);
}
