//! Loom models of the lock-free protocols in `goheap::span` (see that module's essay): the
//! park handshake between a span's owner and remote freers, the span stacks parked spans go
//! home on, and the collection of remote frees.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release -p goheap --test loom`. Every model
//! uses the real `Span` and `SpanStack`; only the atomics are loom's (`goheap::sync`).
//!
//! The models are explored exhaustively unless `LOOM_MAX_PREEMPTIONS` is set (then loom
//! bounds the preemptions per execution, as usual).
//!
//! Outcome checks are phrased as "exactly one of" so that a stranded free (neither side acts)
//! and a double hand-back (both act) both fail.

#![cfg(loom)]

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use goheap::sizeclass::{CLASSES, PAGE_SIZE};
use goheap::span::{next_in_stack, Span, SpanStack};
use loom::thread;

/// A span over real memory, initialised and owned by the model's main thread (owner value 8,
/// as any cache address).
struct TestSpan {
    span: Span,
    _mem: Vec<u8>,
}

/// The class whose spans hold the fewest objects, but at least 3 (model (e) frees two of
/// three): every object fits one bitmap word, and draining the span in the setup is cheap.
fn small_class() -> usize {
    (1..CLASSES.len())
        .filter(|&c| CLASSES[c].nelems >= 3)
        .min_by_key(|&c| CLASSES[c].nelems)
        .unwrap()
}

impl TestSpan {
    /// A span of [`small_class`] whose objects have all been allocated by its owner (the
    /// main thread).
    fn drained() -> TestSpan {
        let class = small_class();
        let nelems = CLASSES[class].nelems as usize;
        assert!((3..=64).contains(&nelems));
        let mem = vec![0u8; CLASSES[class].npages as usize * PAGE_SIZE];
        let span = Span::new();
        // SAFETY: fresh span, exclusively ours; its remote bits are zero.
        unsafe { span.init_small(mem.as_ptr() as usize, class, true, 8) };
        let mut got = drain(&span);
        got.sort();
        assert_eq!(got, (0..nelems).collect::<Vec<_>>());
        TestSpan { span, _mem: mem }
    }

    fn ptr(&self) -> *mut Span {
        &self.span as *const Span as *mut Span
    }
}

/// Allocates every free object of `s` (owner side), returning their indices.
fn drain(s: &Span) -> Vec<usize> {
    let mut out = vec![];
    // SAFETY: the caller owns the span.
    unsafe {
        loop {
            let p = s.alloc_from_window();
            if !p.is_null() {
                let (idx, exact) = s.object_index(p as usize);
                assert!(exact);
                out.push(idx);
                continue;
            }
            if s.refill_window().unwrap() == 0 {
                break;
            }
        }
    }
    out
}

/// Every span in the chain `take_all` returned, in order.
fn chain(mut s: *mut Span) -> Vec<*mut Span> {
    let mut out = vec![];
    while !s.is_null() {
        out.push(s);
        assert!(out.len() <= 8, "cycle in a span stack");
        // SAFETY: `s` came from a take_all chain.
        s = unsafe { next_in_stack(s) };
    }
    out
}

/// What a parked span and its home look like once the dust settles: the spans the home
/// received.
fn took_home(home: &SpanStack) -> Vec<*mut Span> {
    chain(home.take_all())
}

/// Runs `f` under loom (exhaustively unless `LOOM_MAX_PREEMPTIONS` is set) and returns the
/// set of outcomes its executions produced, so that each test can check that loom really
/// reached every interesting outcome and did not pass vacuously (loom 0.7's exploration has
/// gaps, see `span_stack_take_all_races_pushes`).
fn model<O, F>(f: F) -> HashSet<O>
where
    O: Eq + Hash + Debug + Send + 'static,
    F: Fn() -> O + Sync + Send + 'static,
{
    let seen = Arc::new(Mutex::new((0usize, HashSet::new())));
    let sink = seen.clone();
    loom::model::Builder::new().check(move || {
        let o = f();
        let mut g = sink.lock().unwrap();
        g.0 += 1;
        g.1.insert(o);
    });
    let (runs, outcomes) = std::mem::take(&mut *seen.lock().unwrap());
    eprintln!("{runs} executions, outcomes {outcomes:?}");
    outcomes
}

fn set<O: Eq + Hash>(v: impl IntoIterator<Item = O>) -> HashSet<O> {
    v.into_iter().collect()
}

/// (a) The park handshake: the owner parks a drained span while another thread frees an
/// object into it. Either park fails (and the owner then finds the remote bit), or the span
/// went home exactly once; never both, never neither.
#[test]
fn park_vs_one_remote_free() {
    let outcomes = model(|| {
        let t = Arc::new(TestSpan::drained());
        let home = Arc::new(SpanStack::new());
        let freer = {
            let t = t.clone();
            thread::spawn(move || t.span.free_remote(0).unwrap())
        };
        // SAFETY: the model's main thread owns the span; `home` outlives the parking.
        let parked = unsafe { t.span.park(&*home) };
        freer.join().unwrap();

        went_home_iff_parked(&t, &home, parked);
        // Either way the owner now holds the span and must find the free.
        // SAFETY: the owner got the span back (park failed, or it came home).
        unsafe {
            assert_eq!(t.span.collect_remote(), Ok(1));
            assert_eq!(t.span.nfree(), 1);
        }
        assert_eq!(drain(&t.span), vec![0]);
        parked
    });
    assert_eq!(outcomes, set([true, false]));
}

/// After every freer has run: a successful park means the span went home exactly once, a
/// failed one that it never did; either way it is no longer parked.
fn went_home_iff_parked(t: &TestSpan, home: &SpanStack, parked: bool) {
    let pushed = took_home(home);
    if parked {
        assert_eq!(
            pushed,
            vec![t.ptr()],
            "parked, but not pushed home exactly once"
        );
    } else {
        assert!(pushed.is_empty(), "park failed and the span was pushed too");
    }
    assert!(!t.span.is_parked());
}

/// (a, owner's view) When park fails, the owner's very next collection, made before joining
/// the freer, already sees the free: park only fails because it saw the remote bit.
#[test]
fn failed_park_implies_visible_remote_bit() {
    let outcomes = model(|| {
        let t = Arc::new(TestSpan::drained());
        let home = Arc::new(SpanStack::new());
        let freer = {
            let t = t.clone();
            thread::spawn(move || t.span.free_remote(0).unwrap())
        };
        // SAFETY: the main thread owns the span; `home` outlives the parking.
        let parked = unsafe { t.span.park(&*home) };
        if !parked {
            // SAFETY: park failed, the owner keeps the span.
            unsafe { assert_eq!(t.span.collect_remote(), Ok(1)) };
        }
        freer.join().unwrap();
        assert_eq!(took_home(&home).len(), parked as usize);
        parked
    });
    assert_eq!(outcomes, set([true, false]));
}

/// (b) Two remote freers and the owner parking: the span goes home exactly once if the park
/// succeeded, never if it failed.
#[test]
fn park_vs_two_remote_frees() {
    let outcomes = model(|| {
        let t = Arc::new(TestSpan::drained());
        let home = Arc::new(SpanStack::new());
        let freers: Vec<_> = (0..2)
            .map(|i| {
                let t = t.clone();
                thread::spawn(move || t.span.free_remote(i).unwrap())
            })
            .collect();
        // SAFETY: the main thread owns the span; `home` outlives the parking.
        let parked = unsafe { t.span.park(&*home) };
        for f in freers {
            f.join().unwrap();
        }

        went_home_iff_parked(&t, &home, parked);
        // SAFETY: the owner holds the span again.
        unsafe {
            assert_eq!(t.span.collect_remote(), Ok(2));
            assert_eq!(t.span.nfree(), 2);
        }
        let mut again = drain(&t.span);
        again.sort();
        assert_eq!(again, vec![0, 1]);
        parked
    });
    assert_eq!(outcomes, set([true, false]));
}

/// (c) The owner takes a parked span back (`unpark`) while a remote free arrives: exactly one
/// of them gets the span.
#[test]
fn unpark_vs_remote_free() {
    let outcomes = model(|| {
        let t = Arc::new(TestSpan::drained());
        let home = Arc::new(SpanStack::new());
        // SAFETY: the main thread owns the span; `home` outlives the parking.
        assert!(unsafe { t.span.park(&*home) });
        let freer = {
            let t = t.clone();
            thread::spawn(move || t.span.free_remote(0).unwrap())
        };
        // SAFETY: the main thread owns the span.
        let unparked = unsafe { t.span.unpark() };
        freer.join().unwrap();

        let pushed = took_home(&home);
        if unparked {
            assert!(pushed.is_empty(), "unparked span was pushed home too");
        } else {
            assert_eq!(
                pushed,
                vec![t.ptr()],
                "lost span: unpark failed, not pushed home"
            );
        }
        assert!(!t.span.is_parked());
        // SAFETY: the owner holds the span again.
        unsafe { assert_eq!(t.span.collect_remote(), Ok(1)) };
        unparked
    });
    assert_eq!(outcomes, set([true, false]));
}

/// Two spans, each pushed onto `home` by its own thread after the thread wrote a mark into
/// the span (its owner field: 100 + index), to check that a push publishes the span.
fn spawn_pushers(spans: &Arc<Vec<Span>>, home: &Arc<SpanStack>) -> Vec<thread::JoinHandle<()>> {
    (0..2)
        .map(|i| {
            let (spans, home) = (spans.clone(), home.clone());
            thread::spawn(move || {
                let s = &spans[i];
                // SAFETY: this thread owns span `i` until it pushes it; the span is live and
                // on no stack.
                unsafe {
                    s.set_owner(100 + i);
                    home.push(s as *const Span as *mut Span);
                }
            })
        })
        .collect()
}

/// Index (0 or 1) of each span of a chain, after checking the pusher's mark.
fn indices(spans: &[Span], chain: &[*mut Span]) -> Vec<usize> {
    chain
        .iter()
        .map(|&p| {
            let i = spans
                .iter()
                .position(|s| std::ptr::eq(s, p))
                .expect("foreign span");
            // SAFETY: `p` is one of `spans`, alive.
            assert_eq!(
                unsafe { (*p).owner() },
                100 + i,
                "push did not publish the span"
            );
            i
        })
        .collect()
}

/// (d) Two concurrent pushes onto one stack; `take_all` afterwards returns both, once each.
#[test]
fn span_stack_two_pushes() {
    let outcomes = model(|| {
        let spans: Arc<Vec<Span>> = Arc::new((0..2).map(|_| Span::new()).collect());
        let home = Arc::new(SpanStack::new());
        for p in spawn_pushers(&spans, &home) {
            p.join().unwrap();
        }
        let got = indices(&spans, &took_home(&home));
        assert_eq!(set(got.iter().copied()), set([0, 1]));
        assert_eq!(got.len(), 2);
        assert!(home.is_empty());
        assert!(home.take_all().is_null());
        got
    });
    // Both push orders were explored.
    assert_eq!(outcomes, set([vec![0, 1], vec![1, 0]]));
}

/// (d') `take_all` racing with two pushes: the concurrent take finds a consistent chain (each
/// span published by its push), and with a final take gets both spans, once each.
///
/// The taker is a spawned thread, started after the pushers, not the main thread: loom 0.7.3
/// misses the interleavings where a thread's load is overtaken by another thread's
/// load-then-store of the same atomic (tokio-rs/loom#392; its DPOR remembers only the last
/// access of an atomic), which is exactly `take_all`'s `is_empty` against `push`. With the
/// taker running first it never saw a push at all; in this order loom reaches every outcome,
/// and the outcome check below makes sure it stays so.
#[test]
fn span_stack_take_all_races_pushes() {
    let outcomes = model(|| {
        let spans: Arc<Vec<Span>> = Arc::new((0..2).map(|_| Span::new()).collect());
        let home = Arc::new(SpanStack::new());
        let pushers = spawn_pushers(&spans, &home);
        let taker = {
            let (spans, home) = (spans.clone(), home.clone());
            thread::spawn(move || indices(&spans, &took_home(&home)))
        };
        for p in pushers {
            p.join().unwrap();
        }
        let first = taker.join().unwrap();
        let mut got = first.clone();
        got.extend(indices(&spans, &took_home(&home)));
        assert_eq!(got.len(), 2);
        assert_eq!(set(got), set([0, 1]));
        first.len()
    });
    assert_eq!(outcomes, set([0, 1, 2]));
}

/// (e) The owner collects remote frees while two other threads free: every freed object is
/// counted exactly once across the racing and the final collection, and `nfree` agrees.
#[test]
fn collect_vs_remote_frees() {
    let outcomes = model(|| {
        let t = Arc::new(TestSpan::drained());
        let freers: Vec<_> = [0usize, 2]
            .into_iter()
            .map(|i| {
                let t = t.clone();
                thread::spawn(move || t.span.free_remote(i).unwrap())
            })
            .collect();
        // SAFETY: the main thread owns the span.
        let first = unsafe { t.span.collect_remote() }.unwrap();
        for f in freers {
            f.join().unwrap();
        }
        // SAFETY: as above.
        let last = unsafe { t.span.collect_remote() }.unwrap();
        assert_eq!(first + last, 2);
        // SAFETY: as above.
        unsafe { assert_eq!(t.span.nfree(), 2) };
        assert!(!t.span.has_remote());
        let mut again = drain(&t.span);
        again.sort();
        assert_eq!(again, vec![0, 2]);
        first
    });
    assert_eq!(outcomes, set([0, 1, 2]));
}

// ---------------------------------------------------------------------------------------
// The garbage collector's stop-the-world handshake (`goheap::gc::world`): a mutator inside a
// session and a collector that believes the world is stopped must never overlap. The
// "object" is a loom cell that the mutator writes inside its session and the collector reads
// while marking: loom reports any execution where the two accesses are not ordered.

mod gc_world {
    use goheap::gc::world;
    use goheap::sync::AtomicBool;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    struct Shared {
        stop: AtomicBool,
        flags: [AtomicBool; 2],
        /// One object per mutator (mutators' own writes to shared objects go through
        /// atomic cells; what the handshake must order is mutator vs collector).
        objects: [UnsafeCell<u64>; 2],
    }

    fn shared(outer_open: bool) -> Arc<Shared> {
        Arc::new(Shared {
            stop: AtomicBool::new(false),
            flags: [AtomicBool::new(outer_open), AtomicBool::new(false)],
            objects: [UnsafeCell::new(0), UnsafeCell::new(0)],
        })
    }

    /// The collector's side: stop, and if everyone is outside, "mark" (read every object).
    fn collector(s: &Shared) {
        world::request_stop(&s.stop);
        if world::all_outside(s.flags.iter()) {
            for o in &s.objects {
                // SAFETY (model): the world is stopped: no mutator is in a session.
                let _ = o.with(|p| unsafe { *p });
            }
        }
    }

    fn mutator(s: &Shared, me: usize) -> bool {
        if !world::try_enter(&s.flags[me], &s.stop, false) {
            return false; // backed out: would wait for the restart
        }
        // SAFETY (model): inside a session; the handshake must exclude the collector.
        s.objects[me].with_mut(|p| unsafe { *p += 1 });
        world::exit(&s.flags[me], &s.stop);
        true
    }

    /// Two mutators try one session each while a collector stops the world and, if it
    /// found everyone outside, "marks" (reads the object) before restarting it.
    #[test]
    fn sessions_never_overlap_a_stopped_world() {
        loom::model(|| {
            let s = shared(false);
            let ms: Vec<_> = (0..2)
                .map(|i| {
                    let s = s.clone();
                    thread::spawn(move || mutator(&s, i))
                })
                .collect();
            collector(&s);
            for m in ms {
                m.join().unwrap();
            }
        });
    }

    /// A nested entry (the thread already has a session open) never waits, and the outer
    /// session keeps the collector out: modelled by a mutator whose outer flag is already
    /// set when the collector starts.
    #[test]
    fn nested_entry_is_covered_by_the_outer_session() {
        loom::model(|| {
            let s = shared(true);
            let s2 = s.clone();
            let m = thread::spawn(move || {
                assert!(world::try_enter(&s2.flags[1], &s2.stop, true));
                // SAFETY (model): inside the nested session.
                s2.objects[1].with_mut(|p| unsafe { *p += 1 });
                world::exit(&s2.flags[1], &s2.stop);
                // SAFETY (model): still inside the outer session.
                s2.objects[0].with_mut(|p| unsafe { *p += 1 });
                world::exit(&s2.flags[0], &s2.stop); // the outer session ends last
            });
            collector(&s);
            m.join().unwrap();
        });
    }
}

// ---------------------------------------------------------------------------------------
// Parallel marking's termination (`goheap::gc::workqueue`): two workers, one starting with a
// small tree of work items (an item `k > 0` produces two items `k - 1`); the other starts
// idle and may be handed half of a stack. Every item must be processed exactly once, and
// both workers must return (loom reports a deadlock or a livelock otherwise).

mod mark_termination {
    use goheap::gc::workqueue::{WorkQueue, Worker, SHARE_DEPTH};
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::Arc;
    use loom::thread;

    struct W {
        stack: Vec<u32>,
        done: Arc<AtomicUsize>,
        helper: bool,
    }

    /// Set when, in some execution, the initially idle worker processed shared work: proves
    /// the model exercises sharing, not only one worker doing everything.
    static SHARED_WORK_SEEN: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    impl Worker<u32> for W {
        fn stack(&mut self) -> &mut Vec<u32> {
            &mut self.stack
        }
        fn process(&mut self, k: u32) {
            if self.helper {
                SHARED_WORK_SEEN.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            self.done.fetch_add(1, Ordering::Relaxed);
            if k > 0 {
                self.stack.push(k - 1);
                self.stack.push(k - 1);
            }
        }
    }

    #[test]
    fn every_item_once_and_both_workers_finish() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let q = Arc::new(WorkQueue::<u32>::new());
            q.reset(2);
            let done = Arc::new(AtomicUsize::new(0));
            // Enough items that the first worker's stack passes SHARE_DEPTH.
            let start: Vec<u32> = vec![1; SHARE_DEPTH + 2];
            let total = start.len() * 3;
            let (q2, d2) = (q.clone(), done.clone());
            let t = thread::spawn(move || {
                let mut w = W {
                    stack: Vec::new(),
                    done: d2,
                    helper: true,
                };
                q2.run(&mut w);
            });
            let mut w = W {
                stack: start,
                done: done.clone(),
                helper: false,
            };
            q.run(&mut w);
            t.join().unwrap();
            assert_eq!(done.load(Ordering::Relaxed), total);
        });
        assert!(SHARED_WORK_SEEN.load(std::sync::atomic::Ordering::Relaxed));
    }
}
