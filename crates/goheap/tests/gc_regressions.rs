//! Regression tests for the four review findings of issue 10, one test (or two) each. Each
//! test failed on the code before its fix (the report names the commit it was run on).
//!
//! 1. A `Weak` to a small pointer-free object kept it alive for ever: the weak slot was a
//!    tiny object itself, landed in the target's 16-byte block, and marks are per block.
//!    Decision (as Go, whose `runtime.AddCleanup` and `weak` documentation say so): *other*
//!    live tiny objects in the same block may keep a weak target alive (a block lives as
//!    long as any of its objects), but the weak slot never does, because it is never a tiny
//!    object.
//! 2. A `Mutator` kept in a `thread_local!` aborted the process at thread exit (its drop
//!    read the session thread-local, which is destroyed by then).
//! 3. A destructor that made and dropped a `Mutator` deadlocked the collection running it
//!    (the old stop-the-world: the drop entered a world the sweeping collector had stopped).
//! 4. A sweep that overlapped mark termination swept spans for the generation it had read
//!    when it started, so spans put back after the bump were stamped with the old one and
//!    tripped the debug assertion in `acquire_span` (or were swept twice).

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use goheap::gc::{Config, Gc, Heap, Mutator, Root, Trace, Weak};

fn config() -> Config {
    Config::default().with_procs(2)
}

#[path = "common/within.rs"]
mod within;
use within::within;

#[derive(Trace)]
struct WeakHolder<'gc> {
    w: Weak<'gc, u32>,
}

/// Bug 1: a weak pointer to a tiny object with no live neighbour is cleared by the next
/// collection. Before the fix its own slot shared the target's block and kept it marked.
#[test]
fn weak_to_a_tiny_object_does_not_keep_it_alive() {
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    let holder = m.enter(|cx| {
        // A fresh tiny block: fill the current one first with a 16-byte request's worth.
        let _ = cx.alloc([0u64; 2]);
        let t: Gc<'_, u32> = cx.alloc(7u32);
        let h = cx.alloc(WeakHolder { w: cx.downgrade(t) });
        assert_eq!(h.w.upgrade(cx).map(|t| *t), Some(7));
        cx.root(h)
    });
    // Two cycles: the slot's own block and the target's must both be judged dead at least once.
    heap.collect();
    heap.collect();
    assert!(
        m.enter(|cx| cx.get(&holder).w.upgrade(cx).is_none()),
        "the weak target (a 4-byte object) survived two collections with nothing referring to it"
    );
}

/// Bug 1, the decision: a live tiny neighbour in the same 16-byte block keeps a weak target
/// alive, as in Go; once the neighbour dies too, the weak is cleared.
#[test]
fn tiny_neighbours_keep_a_weak_target_alive_as_in_go() {
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    let (holder, neighbour) = m.enter(|cx| {
        let t: Gc<'_, u32> = cx.alloc(7u32);
        let n: Gc<'_, u32> = cx.alloc(8u32);
        // Same block: the tiny allocator packs both into one 16-byte block.
        assert_eq!(Gc::addr(n) & !15, Gc::addr(t) & !15);
        let h = cx.alloc(WeakHolder { w: cx.downgrade(t) });
        (cx.root(h), cx.root(n))
    });
    heap.collect();
    assert_eq!(
        m.enter(|cx| cx.get(&holder).w.upgrade(cx).map(|t| *t)),
        Some(7),
        "the block is live (its neighbour is rooted), so its objects are"
    );
    drop(neighbour);
    heap.collect();
    heap.collect();
    assert!(m.enter(|cx| cx.get(&holder).w.upgrade(cx).is_none()));
}

/// Bug 2 (child side): a mutator in a thread-local, used, then dropped with the thread.
fn mutator_in_thread_local_child() {
    thread_local! {
        static M: std::cell::RefCell<Option<Mutator>> = const { std::cell::RefCell::new(None) };
    }
    let heap = Heap::with_config(config());
    for _ in 0..4 {
        let heap = heap.clone();
        std::thread::spawn(move || {
            M.with(|m| {
                let mut m = m.borrow_mut();
                let m = m.get_or_insert_with(|| heap.mutator());
                m.enter(|cx| {
                    for i in 0..1000u64 {
                        let _ = cx.alloc([i; 4]);
                    }
                });
            });
            // The thread exits here: the thread-local drops the mutator during TLS
            // destruction.
        })
        .join()
        .unwrap();
    }
    heap.collect();
    println!("CHILD OK");
}

/// Bug 2: a `Mutator` kept in a `thread_local!` is dropped at thread exit without aborting
/// the process. Runs in a child process, since the failure was an abort.
#[test]
fn mutator_in_a_thread_local_survives_thread_exit() {
    if std::env::var_os("GOHEAP_REGRESSION_CHILD").is_some() {
        mutator_in_thread_local_child();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "mutator_in_a_thread_local_survives_thread_exit",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GOHEAP_REGRESSION_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("CHILD OK"),
        "child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// Bug 3: an object whose destructor makes a mutator of the heap and drops it.
#[derive(Trace)]
#[trace(static)]
struct MakesAMutatorOnDrop {
    heap: Heap,
    drops: Arc<AtomicUsize>,
}
impl Drop for MakesAMutatorOnDrop {
    fn drop(&mut self) {
        let m = self.heap.mutator();
        drop(m);
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Bug 3: destructors that make and drop a mutator run to the end (on the sweeper, on the
/// collector's sweep termination, at teardown), and nothing waits for them for ever.
#[test]
fn destructor_making_and_dropping_a_mutator_does_not_hang() {
    let heap = Heap::with_config(config());
    let drops = Arc::new(AtomicUsize::new(0));
    let (h, d) = (heap.clone(), drops.clone());
    within(
        30,
        "a destructor making and dropping a Mutator",
        move || {
            let mut m = h.mutator();
            for _ in 0..5 {
                m.enter(|cx| {
                    for _ in 0..200 {
                        cx.alloc(MakesAMutatorOnDrop {
                            heap: h.clone(),
                            drops: d.clone(),
                        });
                    }
                });
                // Back to back: the second cycle's sweep termination sweeps what the background
                // sweeper has not, on the collector thread.
                h.collect();
                h.collect();
            }
            h.wait_sweep();
        },
    );
    assert_eq!(drops.load(Ordering::SeqCst), 1000);
}

/// Bug 4: a list node of `N` words, one pool per `N`.
#[derive(Trace)]
struct Node<'gc, const N: usize> {
    next: Option<Gc<'gc, Node<'gc, N>>>,
    pad: [u64; N],
}

/// Bug 4: a rooted list of `len` nodes of `N` words, each holding its index.
fn make_list<const N: usize>(cx: &goheap::gc::Session<'_>, len: u64) -> Root<Node<'static, N>> {
    let mut l = None;
    for i in 0..len {
        l = Some(cx.alloc(Node::<N> {
            next: l,
            pad: [i; N],
        }));
    }
    cx.root(l.unwrap())
}

/// Bug 4: checks a list made by [`make_list`].
fn check_list<const N: usize>(cx: &goheap::gc::Session<'_>, r: &Root<Node<'static, N>>, len: u64) {
    let mut p = Some(cx.get(r));
    let mut n = 0;
    while let Some(x) = p {
        assert!(
            x.pad.iter().all(|&v| v == len - 1 - n),
            "node {n} of a {N}-word list was freed"
        );
        n += 1;
        p = x.next;
    }
    assert_eq!(n, len);
}

/// Bug 4: sweeps run from any thread (`wait_sweep` here) while cycles end one after the
/// other, over many pools, so that a sweep is often in the middle of its pool list when a
/// mark termination moves spans to the unswept lists. A span swept for an older generation
/// than the one current when it was taken goes back to the unswept list (it looks stale)
/// and is swept a second time with its marks cleared: its live objects are freed, which the
/// list checks catch (and, before the rewrite, the debug assertion in `acquire_span`).
#[test]
fn sweeps_overlapping_mark_termination_use_the_current_generation() {
    const LEN: u64 = 2000;
    let heap = Heap::with_config(config().with_gc_percent(5));
    let stop = Arc::new(AtomicBool::new(false));
    let sweeper = {
        let (heap, stop) = (heap.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                heap.wait_sweep();
                n += 1;
            }
            n
        })
    };
    let (h, s) = (heap.clone(), stop.clone());
    within(
        120,
        "allocation with sweeps racing mark terminations",
        move || {
            let mut m = h.mutator();
            let lists = m.enter(|cx| {
                (
                    make_list::<1>(cx, LEN),
                    make_list::<2>(cx, LEN),
                    make_list::<3>(cx, LEN),
                    make_list::<5>(cx, LEN),
                    make_list::<8>(cx, LEN),
                    make_list::<13>(cx, LEN),
                )
            });
            // Until 20 cycles have ended (a loaded machine runs fewer per round).
            let mut round = 0u64;
            while h.stats().num_gc < 20 {
                round += 1;
                assert!(round < 1_000_000, "only {} cycles ran", h.stats().num_gc);
                m.enter(|cx| {
                    // Many pools: garbage of many types between the lists' pools.
                    for i in 0..100u64 {
                        let _ = cx.alloc([round ^ i; 1]);
                        let _ = cx.alloc([round as u32; 3]);
                        let _ = cx.alloc([round; 4]);
                        let _ = cx.alloc([i as u16; 40]);
                        let _ = cx.alloc([round; 6]);
                        let _ = cx.alloc([round; 7]);
                        let _ = cx.alloc([round; 9]);
                        let _ = cx.alloc([round; 30]);
                    }
                });
                if round % 50 == 49 || h.stats().num_gc >= 20 {
                    m.enter(|cx| {
                        check_list(cx, &lists.0, LEN);
                        check_list(cx, &lists.1, LEN);
                        check_list(cx, &lists.2, LEN);
                        check_list(cx, &lists.3, LEN);
                        check_list(cx, &lists.4, LEN);
                        check_list(cx, &lists.5, LEN);
                    });
                }
            }
            s.store(true, Ordering::Relaxed);
        },
    );
    let sweeps = sweeper.join().unwrap();
    eprintln!(
        "{} cycles, {sweeps} sweeps from the test thread",
        heap.stats().num_gc
    );
}

/// A failed `try_borrow_mut` or `try_borrow` must leave the holder's borrow alone. They built
/// their guard with `bool::then_some`, which evaluates it eagerly: on failure the guard was
/// dropped, and its `Drop` ended the borrow someone else held (a mutable borrow released
/// while its `&mut` lived on, or a shared count taken off a mutable borrow's flag). Found
/// while writing `GcMutex`, which had copied the pattern.
#[test]
fn failed_refcell_borrows_leave_the_holders_borrow() {
    use goheap::gc::GcRefCell;
    Heap::new().mutator().enter(|cx| {
        let c = cx.alloc(GcRefCell::new(vec![Some(cx.alloc(1u64))]));
        let w = c.borrow_mut();
        assert!(c.try_borrow_mut().is_none());
        assert!(c.try_borrow().is_none());
        assert!(
            c.try_borrow_mut().is_none(),
            "the mutable borrow was released"
        );
        assert!(
            c.try_borrow().is_none(),
            "a shared borrow beside a mutable one"
        );
        drop(w);
        let r = c.borrow();
        assert!(c.try_borrow_mut().is_none());
        let r2 = c.borrow();
        drop(r);
        assert!(
            c.try_borrow_mut().is_none(),
            "the shared borrow r2 was released"
        );
        drop(r2);
        assert!(c.try_borrow_mut().is_some());
    });
}
