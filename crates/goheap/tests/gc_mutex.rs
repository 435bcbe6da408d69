//! `GcMutex`: correctness under contention while collections run (gccheckmark on), a guard
//! held across mark start, a leaked guard that blocks nothing but its waiter, the waiter's
//! misuse checks, and no poisoning.
//!
//! Objects in these tests are reachable only through the locked values, so a value the
//! marker skipped without the barrier covering it shows up as a freed (and, in debug
//! builds, overwritten) node, as a checkmark failure, or as a wrong count.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use goheap::gc::{
    Config, DebugFlags, Gc, GcMutex, Heap, Mutator, MutexWaiter, Root, Session, Trace,
};

fn checkmark_heap() -> Heap {
    Heap::with_config(
        Config::default()
            .with_procs(2)
            .with_gc_percent(50)
            .with_debug(DebugFlags::default().with_gccheckmark(true)),
    )
}

/// A node whose payload says who made it: `seal` = `tag * K + 12345`.
#[derive(Trace)]
struct Node<'gc> {
    tag: u64,
    seal: u64,
    text: Gc<'gc, str>,
    next: Option<Gc<'gc, Node<'gc>>>,
}

const K: u64 = 0x9e37_79b9;

fn node<'gc>(cx: &Session<'gc>, tag: u64, next: Option<Gc<'gc, Node<'gc>>>) -> Gc<'gc, Node<'gc>> {
    cx.alloc(Node {
        tag,
        seal: tag.wrapping_mul(K).wrapping_add(12345),
        text: cx.alloc_str(&format!("node {tag}")),
        next,
    })
}

fn check(n: &Node<'_>) {
    assert_eq!(
        n.seal,
        n.tag.wrapping_mul(K).wrapping_add(12345),
        "node corrupted"
    );
    assert_eq!(&*n.text, format!("node {}", n.tag), "text corrupted");
}

/// The shared state: per-thread chains and a total, all behind one lock.
#[derive(Trace)]
struct Shared<'gc> {
    state: GcMutex<State<'gc>>,
}

#[derive(Trace)]
struct State<'gc> {
    /// One chain per thread; each push makes a new head, each pop drops one (garbage).
    chains: Vec<Option<Gc<'gc, Node<'gc>>>>,
    lengths: Vec<usize>,
    ops: usize,
}

/// Runs `f` under the lock in a session of `m`, waiting outside the session while the lock
/// is held; returns `f`'s result and the number of waits.
fn with_lock<R>(
    m: &mut Mutator,
    root: &Root<Shared<'static>>,
    mut f: impl for<'gc> FnMut(&Session<'gc>, &mut State<'gc>) -> R,
) -> (R, usize) {
    let mut waits = 0;
    loop {
        let r: Result<R, MutexWaiter> = m.enter(|cx| {
            let s = cx.get(root);
            // `as_ref`: a reference for the whole session, which the guard may borrow.
            match Gc::as_ref(s).state.try_lock() {
                Some(mut g) => Ok(f(cx, &mut g)),
                // SAFETY: `state` is a plain field of the object.
                None => Err(unsafe { s.state.waiter(cx, s) }),
            }
        });
        match r {
            Ok(r) => return (r, waits),
            Err(w) => {
                waits += 1;
                w.wait();
            }
        }
    }
}

#[test]
fn contended_lock_during_collections() {
    const THREADS: usize = 4;
    let ops: usize = if cfg!(debug_assertions) { 1500 } else { 6000 };
    let heap = checkmark_heap();
    let root = heap.mutator().enter(|cx| {
        cx.root(cx.alloc(Shared {
            state: GcMutex::new(State {
                chains: vec![None; THREADS],
                lengths: vec![0; THREADS],
                ops: 0,
            }),
        }))
    });
    let done = AtomicBool::new(false);
    let waits = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (heap, root, waits) = (&heap, &root, &waits);
                s.spawn(move || {
                    let mut m = heap.mutator();
                    let mut my_len = 0usize;
                    let mut next_tag = (t as u64) << 32;
                    for i in 0..ops {
                        let pop = i % 3 == 2;
                        let ((), w) = with_lock(&mut m, root, |cx, st| {
                            if pop {
                                let head = st.chains[t].expect("a chain to pop");
                                check(&head);
                                st.chains[t] = head.next;
                                st.lengths[t] -= 1;
                            } else {
                                // Allocation under the lock (it may start a cycle), and a
                                // new white object put into the locked value.
                                next_tag += 1;
                                st.chains[t] = Some(node(cx, next_tag, st.chains[t]));
                                st.lengths[t] += 1;
                            }
                            st.ops += 1;
                            if i % 64 == 0 {
                                // Hold the lock a while, so that other threads find it held
                                // and wait outside their sessions.
                                std::thread::sleep(Duration::from_micros(300));
                            }
                        });
                        waits.fetch_add(w, Ordering::Relaxed);
                        my_len = if pop { my_len - 1 } else { my_len + 1 };
                    }
                    my_len
                })
            })
            .collect();
        // Collections all along, while threads wait for the lock outside their sessions.
        let collector = s.spawn(|| {
            let mut n = 0u32;
            while !done.load(Ordering::Relaxed) {
                heap.collect();
                n += 1;
            }
            n
        });
        // Stop the collector loop before any worker's panic is re-raised (else the scope
        // would wait for it for ever).
        let lens: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        done.store(true, Ordering::Relaxed);
        let lens: Vec<usize> = lens.into_iter().map(|l| l.unwrap()).collect();
        let forced = collector.join().unwrap();
        assert!(forced > 0);
        // Every chain intact and as long as its thread says.
        heap.collect();
        heap.mutator().enter(|cx| {
            let s = cx.get(&root);
            let st = s.state.try_lock().expect("unlocked at the end");
            assert_eq!(st.ops, THREADS * ops);
            for (t, &len) in lens.iter().enumerate() {
                assert_eq!(st.lengths[t], len);
                let mut n = 0;
                let mut cur = st.chains[t];
                let mut prev_tag = u64::MAX;
                while let Some(x) = cur {
                    check(&x);
                    assert_eq!(x.tag >> 32, t as u64, "a node of another chain");
                    assert!(x.tag < prev_tag, "chain order broken");
                    prev_tag = x.tag;
                    n += 1;
                    cur = x.next;
                }
                assert_eq!(n, len, "chain {t}");
            }
        });
    });
    let w = waits.load(Ordering::Relaxed);
    eprintln!("contended_lock_during_collections: {w} waits outside sessions");
    assert!(
        w > 0,
        "the test never found the lock held: it tested no waiting"
    );
    // Dropping the root frees everything: nothing was kept by a stray root of a waiter.
    drop(root);
    heap.collect();
    heap.wait_sweep();
    assert_eq!(heap.stats().heap_objects, 0);
}

#[test]
fn guard_held_across_mark_start() {
    let heap = checkmark_heap();
    let root = heap.mutator().enter(|cx| {
        cx.root(cx.alloc(Shared {
            state: GcMutex::new(State {
                chains: vec![None; 1],
                lengths: vec![0],
                ops: 0,
            }),
        }))
    });
    heap.mutator().enter(|cx| {
        let s = cx.get(&root);
        let mut st = s.state.try_lock().unwrap();
        let mut head = None;
        for tag in 1..=200 {
            head = Some(node(cx, tag, head));
        }
        st.chains[0] = head;
        st.lengths[0] = 200;
    });
    for round in 0..5u64 {
        let locked = Arc::new(Barrier::new(2));
        let mut m = heap.mutator();
        std::thread::scope(|s| {
            let locked2 = locked.clone();
            let heap2 = &heap;
            let collector = s.spawn(move || {
                locked2.wait();
                heap2.collect();
            });
            m.enter(|cx| {
                let s = cx.get(&root);
                // Taken before the mark starts: this session is grey for it, the marker
                // finds the value locked and skips it.
                let mut st = s.state.try_lock().unwrap();
                locked.wait();
                std::thread::sleep(Duration::from_millis(20)); // the mark starts meanwhile
                                                               // Cut the old chain out (kept only in a local now) and put a new one in,
                                                               // made of objects allocated white by this grey session.
                let old = st.chains[0].take();
                let mut head = None;
                for tag in 1..=200 {
                    head = Some(node(cx, round * 1000 + 1000 + tag, head));
                }
                st.chains[0] = head;
                std::thread::sleep(Duration::from_millis(20));
                // The old chain, read after the mark ran: intact (the lock shaded nothing,
                // but this session was grey, so the mark waits for it).
                let mut cur = old;
                while let Some(x) = cur {
                    check(&x);
                    cur = x.next;
                }
            });
            collector.join().unwrap();
        });
        heap.collect();
        m.enter(|cx| {
            let st = Gc::as_ref(cx.get(&root)).state.try_lock().unwrap();
            let mut cur = st.chains[0];
            let mut n = 0;
            while let Some(x) = cur {
                check(&x);
                assert_eq!(x.tag / 1000, round + 1);
                n += 1;
                cur = x.next;
            }
            assert_eq!(n, 200);
        });
    }
}

#[test]
fn leaked_guard_blocks_only_its_waiters() {
    let heap = checkmark_heap();
    let root = heap.mutator().enter(|cx| {
        cx.root(cx.alloc(Shared {
            state: GcMutex::new(State {
                chains: vec![None; 1],
                lengths: vec![0],
                ops: 0,
            }),
        }))
    });
    // Objects reachable only through the value whose guard leaks.
    heap.mutator().enter(|cx| {
        let s = cx.get(&root);
        let mut st = s.state.try_lock().unwrap();
        let mut head = None;
        for tag in 1..=500 {
            head = Some(node(cx, tag, head));
        }
        st.chains[0] = head;
        std::mem::forget(st);
    });
    let objects_before = heap.stats().heap_objects;
    // A thread that wants the lock: fails in its session, waits outside it, for ever.
    let (waiting2, waiting) = mpsc::channel();
    let (heap2, root2) = (heap.clone(), root.clone());
    let waiter = std::thread::spawn(move || {
        let mut m = heap2.mutator();
        let w = m.enter(|cx| {
            let s = cx.get(&root2);
            assert!(s.state.try_lock().is_none());
            // SAFETY: `state` is a plain field of the object.
            unsafe { s.state.waiter(cx, s) }
        });
        assert!(w.is_locked());
        waiting2.send(()).unwrap();
        w.wait();
        unreachable!("a leaked guard's mutex was unlocked");
    });
    waiting.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20)); // asleep in the wait by now
                                                   // Collections finish while the waiter sleeps (a watchdog turns a hang into a failure),
                                                   // and other threads keep allocating.
    let (tx, rx) = mpsc::channel();
    let heap3 = heap.clone();
    std::thread::spawn(move || {
        let mut m = heap3.mutator();
        let before = heap3.stats().num_gc;
        for _ in 0..10 {
            m.enter(|cx| {
                for i in 0..1000u64 {
                    cx.alloc(i);
                }
            });
            heap3.collect();
        }
        tx.send(heap3.stats().num_gc - before).unwrap();
    });
    let cycles = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("collections hung while a thread waited for a leaked guard");
    assert!(cycles >= 10);
    assert!(!waiter.is_finished());
    // The marker skipped the locked value: what only it reached is gone (nobody can reach it
    // again), and no marker waited for the guard.
    heap.wait_sweep();
    let objects_after = heap.stats().heap_objects;
    assert!(
        objects_after + 1000 <= objects_before,
        "the leaked value's objects were kept: {objects_before} -> {objects_after}"
    );
    // The waiter thread stays asleep; the process exits around it.
}

#[test]
#[should_panic(expected = "MutexWaiter::wait inside a session")]
fn waiting_inside_a_session_panics() {
    let heap = Heap::new();
    let root = heap.mutator().enter(|cx| {
        cx.root(cx.alloc(Shared {
            state: GcMutex::new(State {
                chains: vec![],
                lengths: vec![],
                ops: 0,
            }),
        }))
    });
    let w = heap.mutator().enter(|cx| {
        let s = cx.get(&root);
        // SAFETY: `state` is a plain field of the object.
        unsafe { s.state.waiter(cx, s) }
    });
    // Unlocked: the wait would return at once, but the check comes first.
    let other = Heap::new();
    other.mutator().enter(|_| w.wait());
}

#[test]
#[should_panic(expected = "needs the object that holds the mutex")]
fn waiter_of_a_mutex_outside_its_owner_panics() {
    let heap = Heap::new();
    heap.mutator().enter(|cx| {
        let a = cx.alloc(GcMutex::new(1u64));
        let b = cx.alloc(GcMutex::new(2u64));
        // SAFETY: (the call panics first: `a` is not inside `b`.)
        let _ = unsafe { a.waiter(cx, b) };
    });
}

#[test]
fn no_poisoning_debug_and_noscan_values() {
    let heap = Heap::new();
    let mut m = heap.mutator();
    let root: Root<GcMutex<Vec<u64>>> = m.enter(|cx| cx.root(cx.alloc(GcMutex::new(vec![1u64]))));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.enter(|cx| {
            let mx = cx.get(&root);
            let mut g = mx.try_lock().unwrap();
            g.push(2);
            assert!(mx.is_locked());
            assert_eq!(format!("{mx:?}"), "GcMutex { state: \"locked\", .. }");
            panic!("under the lock");
        })
    }));
    assert!(r.is_err());
    m.enter(|cx| {
        let mx = cx.get(&root);
        assert!(!mx.is_locked());
        let g = mx.try_lock().expect("not poisoned, unlocked by the unwind");
        assert_eq!(*g, vec![1, 2]);
        assert_eq!(format!("{g:?}"), "[1, 2]");
        assert!(mx.try_lock().is_none(), "not reentrant");
        // SAFETY: the mutex is the object itself.
        let w = unsafe { mx.waiter(cx, mx) };
        assert!(w.is_locked());
        drop(g);
        assert!(!w.is_locked());
    });
}

/// A waiter that sleeps is woken by the unlock of a holder in another thread.
#[test]
fn waiter_is_woken_by_unlock() {
    let heap = Heap::new();
    let root: Root<GcMutex<u64>> = heap
        .mutator()
        .enter(|cx| cx.root(cx.alloc(GcMutex::new(0u64))));
    let holding = Arc::new(Barrier::new(2));
    let release = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let (heap2, root2, holding2, release2) = (&heap, &root, holding.clone(), release.clone());
        s.spawn(move || {
            heap2.mutator().enter(|cx| {
                let mut g = Gc::as_ref(cx.get(root2)).try_lock().unwrap();
                holding2.wait();
                std::thread::sleep(Duration::from_millis(50));
                *g = 7;
                release2.store(true, Ordering::SeqCst);
            });
        });
        holding.wait();
        let mut m = heap.mutator();
        let w = m.enter(|cx| {
            let mx = cx.get(&root);
            assert!(mx.try_lock().is_none());
            // SAFETY: the mutex is the object itself.
            unsafe { mx.waiter(cx, mx) }
        });
        w.wait();
        assert!(release.load(Ordering::SeqCst), "woke before the unlock");
        m.enter(|cx| assert_eq!(*cx.get(&root).try_lock().unwrap(), 7));
    });
}

/// Reports its destruction.
#[derive(Trace)]
#[trace(static)]
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A mutex deep inside a large object (past its first page).
#[derive(Trace)]
#[repr(C)]
struct Big {
    pad: [u64; 8192],
    m: GcMutex<Vec<u64>>,
    c: Counted,
}

/// A mutex at a non-zero offset of a small object.
#[derive(Trace)]
#[repr(C)]
struct Small {
    pad: [u64; 3],
    m: GcMutex<u64>,
    c: Counted,
}

/// A waiter keeps the object holding its mutex alive, wherever the mutex lies in it (past the
/// first page of a large object too: a root at the mutex's own address made the collector
/// abort with "has no span" there, since it finds objects from interior addresses only within
/// their first page), reads the right word, and lets the object die once dropped.
#[test]
fn a_waiter_keeps_its_object_alive_from_an_interior_address() {
    let heap = checkmark_heap();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut m = heap.mutator();
    let (big, small): (Root<Big>, Root<Small>) = m.enter(|cx| {
        let big = cx.alloc(Big {
            pad: [7; 8192],
            m: GcMutex::new(vec![1, 2, 3]),
            c: Counted(drops.clone()),
        });
        let small = cx.alloc(Small {
            pad: [9; 3],
            m: GcMutex::new(5),
            c: Counted(drops.clone()),
        });
        (cx.root(big), cx.root(small))
    });
    let (wb, ws) = m.enter(|cx| {
        let (b, s) = (cx.get(&big), cx.get(&small));
        let off_b = &b.m as *const _ as usize - Gc::addr(b);
        let off_s = &s.m as *const _ as usize - Gc::addr(s);
        assert!(off_b >= 65536 && off_s >= 24, "offsets {off_b} {off_s}");
        // SAFETY: `m` is a plain field of each object.
        unsafe { (b.m.waiter(cx, b), s.m.waiter(cx, s)) }
    });
    drop((big, small));
    for _ in 0..3 {
        heap.collect();
        heap.wait_sweep();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "an object kept by a waiter was freed"
        );
        m.enter(|cx| {
            for i in 0..10_000u64 {
                let _ = cx.alloc([i; 8]);
            }
        });
    }
    assert!(!wb.is_locked() && !ws.is_locked());
    wb.wait();
    ws.wait();
    drop((wb, ws));
    heap.collect();
    heap.wait_sweep();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}
