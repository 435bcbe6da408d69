//! Review: `Weak::upgrade` racing mark termination returns a dead object.
//!
//! `Weak::upgrade` (weak.rs) reads the slot first (`self.slot.target.load`) and only then
//! the phase (`hold_in_session`), which answers "safe" for `OFF` without looking at the
//! slot again. Interleaving:
//!
//! 1. a session G is open when a mark starts (G is grey; termination waits for it);
//! 2. thread U enters a session during the mark (black) and upgrades a weak pointer whose
//!    target T is reachable only weakly: U loads the slot (T, white) ...
//! 3. ... and is preempted right after that load;
//! 4. G ends; mark termination runs: `MARK_DONE`, `process_specials` finds T unmarked and
//!    clears the slot, sweepgen += 2, phase = `OFF`;
//! 5. U resumes, reads the phase `OFF`, and returns `Some(T)`. Nothing shaded T: the sweep
//!    frees it (its destructor runs) while U's session holds it, and while a `Root` made from
//!    it exists (a root made with the phase `OFF` does not shade).
//!
//! The preemption of step 3 is made deterministic with a hardware data breakpoint on the
//! slot (perf_event_open, PERF_TYPE_BREAKPOINT, on U's thread only): the CPU traps right
//! after U's load and the signal handler sleeps, exactly what an OS preemption at that
//! instruction does. The only unsafe code in the test is that debugger machinery (plus
//! reading the slot's address from the `Weak`, to aim the breakpoint); the collector is
//! driven through the public API only.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use goheap::gc::{Config, GcCell, Heap, Root, Trace, Weak};

#[derive(Trace)]
struct Holder<'gc> {
    weak: GcCell<Weak<'gc, Target>>,
}

#[path = "common/breakpoint.rs"]
mod breakpoint;
#[path = "common/race.rs"]
mod race;
use breakpoint::stall;
use race::{grey_session, Target};

#[test]
fn upgrade_preempted_across_mark_termination_returns_freed_object() {
    if !breakpoint::available(stall::on_trap) {
        return;
    }
    let heap = Heap::with_config(Config::default().with_procs(2));
    let dropped = Arc::new(AtomicBool::new(false));
    let mut m0 = heap.mutator();
    // T is reachable only through the weak pointer in the rooted holder.
    let holder: Root<Holder<'static>> = m0.enter(|s| {
        let t = s.alloc(Target {
            magic: 0x5eed_f00d,
            dropped: dropped.clone(),
        });
        let h = s.alloc(Holder {
            weak: GcCell::new(s.downgrade(t)),
        });
        s.root(h)
    });
    drop(m0);

    let g_release = Barrier::new(2);
    let u_ready = Barrier::new(2);
    let u_loading = Barrier::new(2);
    let mut result: Option<Option<Root<Target>>> = None;
    std::thread::scope(|sc| {
        // G: a session open across the mark start, so the mark stays in progress until
        // G ends.
        grey_session(sc, &heap, &g_release);
        // The cycle: it starts marking at once and waits for G.
        sc.spawn(|| heap.collect());
        std::thread::sleep(Duration::from_millis(100));
        // U: a black session (entered during the mark) upgrades the weak pointer.
        let u = sc.spawn(|| {
            let mut m = heap.mutator();
            u_ready.wait();
            m.enter(|s| {
                let w = s.get(&holder).weak.get();
                // The slot's address (a Weak is one word: its slot), to aim the breakpoint.
                // SAFETY: reads the pointer's bits only.
                let slot: usize = unsafe { std::mem::transmute_copy(&w) };
                let fd = breakpoint::watch_stall(slot);
                stall::arm(Duration::from_millis(400), 0);
                u_loading.wait();
                let got = w.upgrade(s);
                drop(fd);
                // Keep it the official way (a Root), then let the sweep run.
                got.map(|t| {
                    assert_eq!(t.magic, 0x5eed_f00d);
                    s.root(t)
                })
            })
        });
        u_ready.wait();
        u_loading.wait();
        // U is now stalled right after its load of the slot (the handler sleeps 400 ms).
        std::thread::sleep(Duration::from_millis(100));
        g_release.wait();
        result = Some(u.join().unwrap());
    });
    assert!(stall::happened(), "the breakpoint did not fire");
    let kept = result.unwrap();
    let upgraded = kept.is_some();
    // Let the sweep of that cycle finish.
    heap.wait_sweep();
    eprintln!(
        "upgrade returned {}, target destroyed: {}",
        if upgraded { "Some" } else { "None" },
        dropped.load(Ordering::SeqCst)
    );
    assert!(
        !(upgraded && dropped.load(Ordering::SeqCst)),
        "Weak::upgrade returned an object that the collector then freed (its destructor ran \
         while the session and a Root held it)"
    );
    drop(kept);
}
