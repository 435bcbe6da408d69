//! Loom models of the lock-free protocols in `goheap::raw::span` (see that module's essay): the
//! park handshake between a span's owner and remote freers, the span stacks parked spans go
//! home on, and the collection of remote frees; and of the allocator's sleeps and wake-ups
//! (`goheap::raw::sync::Parker`): a retiring cache waiting for a span in flight, and the
//! scavenger's two ways of being woken.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release -p goheap --test loom`. Every model
//! uses the real `Span` and `SpanStack`; only the atomics are loom's (`goheap::raw::sync`).
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

use goheap::raw::sizeclass::{CLASSES, PAGE_SIZE};
use goheap::raw::span::{next_in_stack, Span, SpanStack};
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
    model_with(loom::model::Builder::new(), f)
}

/// [`model`] with at most `bound` preemptions per execution (unless `LOOM_MAX_PREEMPTIONS`
/// asks for another bound): for models whose waiter loops until it has seen everything, which
/// loom cannot explore exhaustively in reasonable time.
fn model_bounded<O, F>(bound: usize, f: F) -> HashSet<O>
where
    O: Eq + Hash + Debug + Send + 'static,
    F: Fn() -> O + Sync + Send + 'static,
{
    let mut b = loom::model::Builder::new();
    b.preemption_bound = b.preemption_bound.or(Some(bound));
    model_with(b, f)
}

fn model_with<O, F>(builder: loom::model::Builder, f: F) -> HashSet<O>
where
    O: Eq + Hash + Debug + Send + 'static,
    F: Fn() -> O + Sync + Send + 'static,
{
    let seen = Arc::new(Mutex::new((0usize, HashSet::new())));
    let sink = seen.clone();
    builder.check(move || {
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
// Waiting without spinning (`goheap::raw::sync::Parker`, issue 9): a thread that must wait for
// another sleeps in the kernel (here: loom's condition variable, which stands in for the
// futex) and the thread that changes what it waits for wakes it. A lost wake-up leaves the
// waiter asleep after every other thread has finished, which loom reports as a deadlock.
// Each model also checks that loom reached the executions where the waiter really slept.

/// (f) A cache retiring while a remote freer takes one of its parked spans home
/// (`Cache::retire`): the owner's `unpark` either wins, or loses to the freer and then the
/// owner sleeps until the freer's push arrives (`SpanStack::wait_nonempty`). The span comes
/// back exactly once, and the owner never sleeps through the push.
#[test]
fn retire_sleeps_until_the_span_in_flight_arrives() {
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
        let mut slept = false;
        let mut got = vec![];
        if !unparked {
            // The freer won the span: it is in flight to `home`. Wait for it before joining
            // the freer, as `retire` does (it never joins anyone).
            slept = home.wait_nonempty();
            got = took_home(&home);
            assert_eq!(got, vec![t.ptr()], "the span in flight did not arrive once");
        }
        freer.join().unwrap();
        got.extend(took_home(&home));
        assert_eq!(got.len(), !unparked as usize);
        (unparked, slept)
    });
    assert_eq!(
        outcomes,
        set([(true, false), (false, false), (false, true)])
    );
}

/// (g) The scavenger's central-free signal (`goheap::raw::sync::Signal`): two threads free into a
/// span the consumer stands for the central lists' owner of, each raising the signal after its
/// free; the consumer sleeps whenever the signal is down and collects whenever it takes it.
/// It must end up with both frees: neither a raise that finds the flag up (no wake-up, no
/// write) nor a raise that comes while it falls asleep may strand a free.
///
/// Explored with at most 6 preemptions per execution (about 250,000 executions, 10 s); the
/// consumer's loop (spurious wake-ups included) has no bound that exhaustive search could
/// exhaust.
#[test]
fn central_signal_loses_no_free() {
    use goheap::raw::sync::{Parker, Signal};
    let outcomes = model_bounded(6, || {
        let t = Arc::new(TestSpan::drained());
        let sig = Arc::new((Signal::new(), Parker::new()));
        let freers: Vec<_> = (0..2)
            .map(|i| {
                let (t, sig) = (t.clone(), sig.clone());
                thread::spawn(move || {
                    t.span.free_remote(i).unwrap();
                    sig.0.raise(&sig.1);
                })
            })
            .collect();
        let (mut got, mut takes, mut slept) = (0, 0, false);
        while got < 2 {
            if sig.0.take() {
                takes += 1;
                // SAFETY: the main thread owns the span (as the central lock's holder would).
                got += unsafe { t.span.collect_remote() }.unwrap();
                continue;
            }
            sig.1.prepare();
            if sig.0.is_raised() {
                sig.1.cancel();
                continue;
            }
            sig.1.park();
            slept = true;
        }
        for f in freers {
            f.join().unwrap();
        }
        assert!(!t.span.has_remote());
        (takes, slept)
    });
    assert_eq!(
        outcomes,
        set([(1, false), (1, true), (2, false), (2, true)]),
        "not every interleaving of takes and sleeps was reached"
    );
}

/// (h) The scavenger woken from the page heap (`heap::HeapGuard`, `scavenge_policy::wake_due`):
/// producers change a count under a lock and, still under it, claim the wake-up if the
/// waiter is marked asleep (a relaxed read: the lock orders it); the waiter marks itself
/// asleep, then re-reads the count under the lock. Two producers, one waiter that wants to
/// see both increments; at most one futex wake per sleep.
#[test]
fn page_heap_wakes_the_sleeping_scavenger() {
    use goheap::raw::sync::Parker;
    use loom::sync::Mutex as LoomMutex;
    let outcomes = model(|| {
        let shared = Arc::new((LoomMutex::new(0u32), Parker::new()));
        let producers: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || {
                    let mut g = shared.0.lock().unwrap();
                    *g += 1;
                    let wake = shared.1.is_asleep() && shared.1.claim();
                    drop(g);
                    if wake {
                        shared.1.wake_claimed();
                    }
                    wake
                })
            })
            .collect();
        let mut sleeps = 0;
        loop {
            shared.1.prepare();
            if *shared.0.lock().unwrap() == 2 {
                shared.1.cancel();
                break;
            }
            shared.1.park();
            sleeps += 1;
        }
        let wakes: usize = producers
            .into_iter()
            .map(|p| p.join().unwrap() as usize)
            .sum();
        assert!(wakes <= sleeps + 1);
        sleeps.min(2)
    });
    assert_eq!(outcomes, set([0, 1, 2]));
}

// ---------------------------------------------------------------------------------------
// The collector's handshakes with sessions (`goheap::raw::world`): a claimed cache is never
// used by a session; a session open at mark start is seen (grey) or sees the mark (black);
// a collector waiting for an epoch to move is woken.

mod gc_world {
    use goheap::raw::barrier::{MARK, OFF};
    use goheap::raw::sync::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
    use goheap::raw::world::{self, Entry};
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    struct Shared {
        epochs: [AtomicU64; 2],
        claims: [AtomicBool; 2],
        watched: AtomicBool,
        /// Each mutator's allocation cache: written inside its sessions, by the collector
        /// while it holds the claim. Loom reports any unordered pair of accesses.
        caches: [UnsafeCell<u64>; 2],
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            epochs: [AtomicU64::new(0), AtomicU64::new(0)],
            claims: [AtomicBool::new(false), AtomicBool::new(false)],
            watched: AtomicBool::new(false),
            caches: [UnsafeCell::new(0), UnsafeCell::new(0)],
        })
    }

    /// Two mutators try one session each while the collector claims both caches and, where
    /// it got the claim, flushes (writes) the cache.
    #[test]
    fn a_claimed_cache_is_never_used_by_a_session() {
        loom::model(|| {
            let s = shared();
            let ms: Vec<_> = (0..2)
                .map(|i| {
                    let s = s.clone();
                    thread::spawn(move || {
                        if world::try_enter(&s.epochs[i], &s.claims[i], &s.watched) != Entry::Open {
                            return; // backed out: would wait for the release
                        }
                        // SAFETY (model): inside the session the cache is the mutator's.
                        s.caches[i].with_mut(|p| unsafe { *p += 1 });
                        world::exit(&s.epochs[i], &s.watched);
                    })
                })
                .collect();
            for i in 0..2 {
                if let world::Claim::Held = world::try_claim(&s.epochs[i], &s.claims[i]) {
                    // SAFETY (model): claimed: the mutator is outside its sessions.
                    s.caches[i].with_mut(|p| unsafe { *p = 0 });
                    world::release_claim(&s.claims[i]);
                }
            }
            for m in ms {
                m.join().unwrap();
            }
        });
    }

    /// The colour handshake at mark start, with the entry written as `enter`: either the
    /// mutator sees the mark (its session is black) or the collector sees the session open
    /// (grey). `enter` is the real order (epoch, then phase); the broken order reads the
    /// phase first.
    fn colour_model(enter: fn(&AtomicU64, &AtomicBool, &AtomicBool, &AtomicU8) -> u8) {
        loom::model(move || {
            let epoch = Arc::new(AtomicU64::new(0));
            let claim = Arc::new(AtomicBool::new(false));
            let watched = Arc::new(AtomicBool::new(false));
            let phase = Arc::new(AtomicU8::new(OFF));
            let (e2, c2, w2, p2) = (epoch.clone(), claim.clone(), watched.clone(), phase.clone());
            let m = thread::spawn(move || enter(&e2, &c2, &w2, &p2));
            phase.store(MARK, Ordering::SeqCst);
            goheap::raw::sync::loom_seqcst_fence();
            let grey = world::open_session(&epoch).is_some();
            let seen = m.join().unwrap();
            assert!(
                grey || seen == MARK,
                "a session open at mark start was neither grey nor black"
            );
        });
    }

    fn enter_then_colour(e: &AtomicU64, c: &AtomicBool, w: &AtomicBool, p: &AtomicU8) -> u8 {
        assert_eq!(world::try_enter(e, c, w), Entry::Open);
        p.load(Ordering::SeqCst)
    }

    fn colour_then_enter(e: &AtomicU64, c: &AtomicBool, w: &AtomicBool, p: &AtomicU8) -> u8 {
        let seen = p.load(Ordering::SeqCst);
        assert_eq!(world::try_enter(e, c, w), Entry::Open);
        seen
    }

    #[test]
    fn a_session_open_at_mark_start_is_grey_or_black() {
        colour_model(enter_then_colour);
    }

    /// The model is able to fail: reading the phase before the epoch moves loses the race.
    #[test]
    #[should_panic(expected = "neither grey nor black")]
    fn colour_read_before_entry_is_caught() {
        colour_model(colour_then_enter);
    }

    /// A collector waiting for an open session's epoch to move is woken by its end: either
    /// it sees the new epoch, or the mutator's exit sees it watching.
    #[test]
    fn a_watching_collector_is_woken() {
        loom::model(|| {
            let s = shared();
            assert_eq!(
                world::try_enter(&s.epochs[0], &s.claims[0], &s.watched),
                Entry::Open
            );
            let open = world::open_session(&s.epochs[0]).unwrap();
            let s2 = s.clone();
            let m = thread::spawn(move || world::exit(&s2.epochs[0], &s2.watched));
            world::watch(&s.watched);
            let passed = world::passed(&s.epochs[0], open);
            let woken = m.join().unwrap();
            assert!(passed || woken, "the collector would sleep forever");
        });
    }

    /// Sweep termination waits for a busy mutator's cache to let its stale spans go; the
    /// mutator does so inside its session, at its next refill (`Local::flush_if_stale`:
    /// the flush generation stored SeqCst, then `announce`). Either the collector sees the
    /// new generation, or the mutator sees it watching and wakes it. `flush` is the real
    /// order; the broken one reads `watched` before it stores the generation.
    fn stale_flush_model(flush: fn(&AtomicU32, &AtomicBool) -> bool) {
        loom::model(move || {
            let flushed = Arc::new(AtomicU32::new(2));
            let watched = Arc::new(AtomicBool::new(false));
            let (f2, w2) = (flushed.clone(), watched.clone());
            let m = thread::spawn(move || flush(&f2, &w2));
            world::watch(&watched);
            let seen = flushed.load(Ordering::SeqCst) == 4;
            let woken = m.join().unwrap();
            assert!(seen || woken, "sweep termination would sleep forever");
        });
    }

    fn store_then_announce(flushed: &AtomicU32, watched: &AtomicBool) -> bool {
        flushed.store(4, Ordering::SeqCst);
        world::announce(watched)
    }

    fn announce_then_store(flushed: &AtomicU32, watched: &AtomicBool) -> bool {
        let woken = world::announce(watched);
        flushed.store(4, Ordering::SeqCst);
        woken
    }

    #[test]
    fn a_stale_flush_inside_a_session_wakes_sweep_termination() {
        stale_flush_model(store_then_announce);
    }

    /// The model is able to fail: announcing before the store loses the wake-up.
    #[test]
    #[should_panic(expected = "would sleep forever")]
    fn announcing_before_the_flush_is_caught() {
        stale_flush_model(announce_then_store);
    }
}

// ---------------------------------------------------------------------------------------
// Targeted wake-ups between sessions and the collector (`goheap::raw::world`, "waking"):
// the collector waiting for sessions raises the `watched` flag of the one mutator it waits
// for, and only that mutator's exit wakes it; a claim wakes the mutator only when the
// mutator raced it. Both as `Mutators` runs them (mutex, condition variable), so a lost
// wake-up is a deadlock, which loom reports.

mod gc_wake {
    use goheap::raw::sync::{AtomicBool, AtomicU64, Ordering};
    use goheap::raw::world::{self, Claim, Entry, Watch};
    use loom::cell::UnsafeCell;
    use loom::sync::{Condvar, Mutex};
    use loom::thread;

    /// Two mutators' handshake words and `Mutators`' mutex and condition variable.
    struct Heap {
        epochs: [AtomicU64; 2],
        claims: [AtomicBool; 2],
        watched: [AtomicBool; 2],
        wait: Mutex<()>,
        cv: Condvar,
        /// Mutator 0's allocation cache (written in its session and under a claim).
        cache: UnsafeCell<u64>,
    }

    /// A heap for one execution. Leaked: a mutant's deadlock panics with the other threads
    /// blocked, and dropping loom's `Arc` while unwinding would abort the test run.
    fn heap() -> &'static Heap {
        Box::leak(Box::new(Heap {
            epochs: [AtomicU64::new(0), AtomicU64::new(0)],
            claims: [AtomicBool::new(false), AtomicBool::new(false)],
            watched: [AtomicBool::new(false), AtomicBool::new(false)],
            wait: Mutex::new(()),
            cv: Condvar::new(),
            cache: UnsafeCell::new(0),
        }))
    }

    /// `Mutators::wake`.
    fn wake(h: &Heap) {
        let _g = h.wait.lock().unwrap();
        h.cv.notify_all();
    }

    /// A session's exit as `Mutators::exit` does it, with the exit written as `exit`.
    fn end_session(h: &Heap, i: usize, exit: fn(&AtomicU64, &AtomicBool) -> bool) {
        if exit(&h.epochs[i], &h.watched[i]) {
            wake(h);
        }
    }

    /// Mark termination's wait for the grey sessions (`Mutators::wait_until` with
    /// `world::Watch`): `recheck` false is the broken collector that sleeps as soon as it
    /// has raised the flag, without reading the epoch again.
    fn wait_for_greys(h: &Heap, greys: [u64; 2], recheck: bool) {
        let mut watch = Watch::new();
        let mut g = h.wait.lock().unwrap();
        loop {
            let Some(i) = (0..2).find(|&i| !world::passed(&h.epochs[i], greys[i])) else {
                watch.end();
                return;
            };
            if !watch.may_sleep(&h.watched[i]) && recheck {
                continue;
            }
            g = h.cv.wait(g).unwrap();
        }
    }

    /// Both mutators are inside a session when the mark starts (grey); mutator 0 leaves and
    /// opens and leaves a second session, mutator 1 leaves once, while the collector waits
    /// for both first sessions to end. The collector must wake (loom reports a deadlock
    /// otherwise), and leave no flag raised (a raised flag makes every later exit wake it).
    fn greys_model(exit: fn(&AtomicU64, &AtomicBool) -> bool, recheck: bool) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = b.preemption_bound.or(Some(3));
        b.check(move || {
            let h = heap();
            for i in 0..2 {
                let e = world::try_enter(&h.epochs[i], &h.claims[i], &h.watched[i]);
                assert_eq!(e, Entry::Open);
            }
            let greys = [1, 1];
            let ms: Vec<_> = (0..2)
                .map(|i| {
                    thread::spawn(move || {
                        end_session(h, i, exit);
                        if i == 0 {
                            let e = world::try_enter(&h.epochs[0], &h.claims[0], &h.watched[0]);
                            assert_eq!(e, Entry::Open);
                            end_session(h, 0, exit);
                        }
                    })
                })
                .collect();
            wait_for_greys(h, greys, recheck);
            for m in ms {
                m.join().unwrap();
            }
            for w in &h.watched {
                assert!(!w.load(Ordering::SeqCst), "a flag was left raised");
            }
        });
    }

    #[test]
    fn the_collector_is_woken_by_the_mutator_it_watches() {
        greys_model(world::exit, true);
    }

    /// The model is able to fail: a collector that sleeps right after raising the flag
    /// misses an exit that read the flag just before (module essay: the lost wake-up).
    #[test]
    #[should_panic(expected = "deadlock")]
    fn sleeping_without_a_second_look_is_caught() {
        greys_model(world::exit, false);
    }

    /// An exit that does not look at its flag.
    fn exit_without_looking(epoch: &AtomicU64, _: &AtomicBool) -> bool {
        epoch.fetch_add(1, Ordering::SeqCst);
        false
    }

    /// The model is able to fail: without the mutator's check nobody wakes the collector.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn an_exit_that_never_wakes_is_caught() {
        greys_model(exit_without_looking, true);
    }

    /// Sweep termination's claim on an idle mutator (`Mutators::flush_idle`) against the
    /// mutator entering a session (`Mutators::enter`: a mutator that backs out sleeps until
    /// the claim is released). `claims`: how many claims the collector makes in a row (two:
    /// the mutator may back out against the first and sleep on the second, the interleaving
    /// that lost a wake-up when only a raced claim woke, world.rs). `wakes`: whether the
    /// collector wakes the mutators after each claim, as the real one always does.
    fn claim_model(claims: usize, wakes: bool) {
        loom::model(move || {
            let h = heap();
            let h2 = h;
            let m = thread::spawn(move || {
                loop {
                    match world::try_enter(&h2.epochs[0], &h2.claims[0], &h2.watched[0]) {
                        Entry::Open => break,
                        Entry::BackedOut { wake: w } => {
                            if w {
                                wake(h2);
                            }
                            let mut g = h2.wait.lock().unwrap();
                            while h2.claims[0].load(Ordering::SeqCst) {
                                g = h2.cv.wait(g).unwrap();
                            }
                        }
                    }
                }
                // SAFETY (model): inside the session the cache is the mutator's.
                h2.cache.with_mut(|p| unsafe { *p += 1 });
                end_session(h2, 0, world::exit);
            });
            for _ in 0..claims {
                if let Claim::Held = world::try_claim(&h.epochs[0], &h.claims[0]) {
                    // SAFETY (model): claimed: the mutator is outside its sessions.
                    h.cache.with_mut(|p| unsafe { *p = 0 });
                    world::release_claim(&h.claims[0]);
                }
                if wakes {
                    wake(h);
                }
            }
            m.join().unwrap();
        });
    }

    #[test]
    fn a_claim_wakes_the_mutator_that_backed_out() {
        claim_model(1, true);
    }

    /// Two claims in a row: the mutator never sleeps on the second for good.
    #[test]
    fn two_claims_in_a_row_leave_no_mutator_asleep() {
        claim_model(2, true);
    }

    /// The model is able to fail: a claim released without any wake-up.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn a_claim_that_never_wakes_is_caught() {
        claim_model(1, false);
    }
}

// ---------------------------------------------------------------------------------------
// The store barrier against mark start (`goheap::raw::barrier`): a store whose barrier saw
// the filter off is read by the marker; a session that saw the mark sees the filter.

mod gc_barrier {
    use goheap::raw::barrier::{marker_begin, swap_then_check, turn_on, MARK, OFF};
    use goheap::raw::sync::{AtomicU8, AtomicUsize, Ordering};
    use loom::sync::Arc;
    use loom::thread;

    const OLD: usize = 1;
    const NEW: usize = 2;

    /// A mutator stores NEW over OLD as marking starts; the marker then reads the cell.
    /// `store` returns whether the mutator shaded (its barrier was on).
    fn store_model(store: fn(&AtomicUsize, &AtomicUsize) -> bool) {
        loom::model(move || {
            let cell = Arc::new(AtomicUsize::new(OLD));
            let active = Arc::new(AtomicUsize::new(0));
            let phase = AtomicU8::new(OFF);
            let (c2, a2) = (cell.clone(), active.clone());
            let m = thread::spawn(move || store(&c2, &a2));
            turn_on(&phase, &active);
            marker_begin();
            let seen = cell.load(Ordering::Acquire);
            let shaded = m.join().unwrap();
            assert!(
                shaded || seen == NEW,
                "an edge stored as marking started was lost"
            );
        });
    }

    fn real_store(cell: &AtomicUsize, active: &AtomicUsize) -> bool {
        swap_then_check(cell, NEW, active).1
    }

    /// The old `GcCell::set`: look at the flag, then store.
    fn check_then_store(cell: &AtomicUsize, active: &AtomicUsize) -> bool {
        let on = active.load(Ordering::Relaxed) != 0;
        cell.store(NEW, Ordering::Release);
        on
    }

    #[test]
    fn a_store_racing_mark_start_is_never_lost() {
        store_model(real_store);
    }

    #[test]
    #[should_panic(expected = "was lost")]
    fn check_then_store_is_caught() {
        store_model(check_then_store);
    }

    /// A session that saw the phase `MARK` (black) must see the filter on, or its
    /// deletions would go unshaded. `on` is the collector's order.
    fn filter_model(on: fn(&AtomicU8, &AtomicUsize)) {
        loom::model(move || {
            let phase = Arc::new(AtomicU8::new(OFF));
            let active = Arc::new(AtomicUsize::new(0));
            let (p2, a2) = (phase.clone(), active.clone());
            let m = thread::spawn(move || {
                let black = p2.load(Ordering::SeqCst) == MARK;
                let cell = AtomicUsize::new(OLD);
                let (_, barrier) = swap_then_check(&cell, NEW, &a2);
                assert!(!black || barrier, "a black session skipped the barrier");
            });
            on(&phase, &active);
            m.join().unwrap();
        });
    }

    fn phase_first(phase: &AtomicU8, active: &AtomicUsize) {
        phase.store(MARK, Ordering::SeqCst);
        active.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn a_black_session_sees_the_barrier_on() {
        filter_model(turn_on);
    }

    #[test]
    #[should_panic(expected = "skipped the barrier")]
    fn phase_before_filter_is_caught() {
        filter_model(phase_first);
    }
}

// ---------------------------------------------------------------------------------------
// Parallel marking's termination (`goheap::raw::workqueue`): two workers, one starting with a
// small tree of work items (an item `k > 0` produces two items `k - 1`); the other starts
// idle and may be handed half of a local queue. Every item must be processed exactly once, and
// both workers must return (loom reports a deadlock or a livelock otherwise).

mod mark_termination {
    use goheap::raw::workqueue::{QuietWait, WakeMutant, WorkQueue, Worker, SHARE_DEPTH};
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
        fn next(&mut self) -> Option<u32> {
            self.stack.pop()
        }
        fn local(&self) -> usize {
            self.stack.len()
        }
        fn spill(&mut self) -> Vec<u32> {
            let rest = self.stack.split_off(self.stack.len() / 2);
            core::mem::replace(&mut self.stack, rest)
        }
        fn take(&mut self, buf: Vec<u32>) {
            self.stack = buf;
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
            q.reset(2, true);
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

    /// Concurrent marking's end (outside producers): the collector sleeps in `wait_quiet`
    /// while a mark assist takes the last buffer. With no worker left to go idle after it
    /// (workers refused by a closing heap, the case the collector's own draining was added
    /// for), only the assist can wake the collector, and it never sleeps on the queue's lock
    /// to do so (`WorkQueue::helper_done`, `try_lock`; the lock's holder then saw the steal).
    /// A lost wake-up is a deadlock, which loom reports.
    fn assist_model(helper_done: fn(&WorkQueue<u32>)) {
        loom::model(move || {
            let q = Arc::new(WorkQueue::<u32>::new());
            q.reset(0, false);
            q.push(vec![0]);
            let q2 = q.clone();
            let assist = thread::spawn(move || {
                let took = q2.steal(true).map_or(0, |b| b.len());
                helper_done(&q2);
                took
            });
            q.wait_quiet();
            assert_eq!(assist.join().unwrap(), 1, "the buffer was lost");
            assert!(q.is_quiet());
            q.finish();
        });
    }

    #[test]
    fn an_assist_that_empties_the_queue_wakes_the_collector() {
        assist_model(WorkQueue::helper_done);
    }

    /// An assist that reports nothing: the model is able to fail (the collector, asleep
    /// before the assist's steal, is never woken).
    #[test]
    #[should_panic(expected = "deadlock")]
    fn an_assist_that_never_reports_is_caught() {
        assist_model(|_| {});
    }

    /// A mark the mutators carry (`fractional.rs`): no worker, a buffer nobody takes, the
    /// collector asleep in `wait_quiet_or_help`. `Heap::collect` (or a mutator leaving, or
    /// the shutdown) calls `want_help` from another thread; whenever it comes, before the
    /// collector's check or while it sleeps, the collector wakes and sees it. A lost call is
    /// a deadlock, which loom reports.
    fn want_help_model(want_help: fn(&WorkQueue<u32>)) {
        loom::model(move || {
            let q = Arc::new(WorkQueue::<u32>::new());
            q.reset(0, false);
            q.push(vec![0]);
            let q2 = q.clone();
            let asker = thread::spawn(move || want_help(&q2));
            assert_eq!(q.wait_quiet_or_help(None), QuietWait::HelpWanted);
            asker.join().unwrap();
            // The call counts until the run ends; the next run starts without it.
            q.finish();
            q.reset(0, false);
            assert_eq!(q.wait_quiet_or_help(None), QuietWait::Quiet);
            q.finish();
        });
    }

    #[test]
    fn want_help_wakes_the_collector() {
        want_help_model(WorkQueue::want_help);
    }

    /// A caller that never asks: the model is able to fail (the collector sleeps for good).
    #[test]
    #[should_panic(expected = "deadlock")]
    fn a_missing_want_help_is_caught() {
        want_help_model(|_| {});
    }

    /// A worker that counts the items it processes (one-item buffers, nothing produced).
    struct Counter {
        stack: Vec<u32>,
        done: &'static AtomicUsize,
    }

    impl Worker<u32> for Counter {
        fn next(&mut self) -> Option<u32> {
            self.stack.pop()
        }
        fn local(&self) -> usize {
            self.stack.len()
        }
        fn spill(&mut self) -> Vec<u32> {
            let rest = self.stack.split_off(self.stack.len() / 2);
            core::mem::replace(&mut self.stack, rest)
        }
        fn take(&mut self, buf: Vec<u32>) {
            self.stack = buf;
        }
        fn process(&mut self, _: u32) {
            self.done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The wake-up token (`WorkQueue`'s essay, "who is woken"): two workers, both possibly
    /// asleep, and an outside producer (an assist publishing its rest, a barrier's shade)
    /// that pushes two one-item buffers, then waits for quiet as the collector does. Every
    /// interleaving must process both items and end: a buffer left on the list while both
    /// workers sleep is a deadlock (the collector's `wait_quiet` never returns), which loom
    /// reports. Covers: a push that finds the token clear notifies; the woken worker clears it
    /// and looks; a push that finds it set does not notify, and its buffer is taken by the
    /// woken worker or passed on.
    fn wake_token_model(mutant: WakeMutant) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(move || {
            // Leaked: a deadlocking mutant unwinds through loom's cleanup, and dropping a
            // loom object there aborts the whole test binary.
            let q: &'static WorkQueue<u32> = Box::leak(Box::new(WorkQueue::with_mutant(mutant)));
            q.reset(2, false);
            let done: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    thread::spawn(move || {
                        let mut w = Counter {
                            stack: Vec::new(),
                            done,
                        };
                        q.run(&mut w);
                    })
                })
                .collect();
            q.push(vec![0]);
            q.push(vec![0]);
            q.wait_quiet();
            assert_eq!(
                done.load(Ordering::Relaxed),
                2,
                "quiet with an item unprocessed"
            );
            q.finish();
            for t in workers {
                t.join().unwrap();
            }
        });
    }

    #[test]
    fn pushes_wake_sleeping_workers_through_the_token() {
        wake_token_model(WakeMutant::Correct);
    }

    /// The push takes the token without notifying: the model is able to fail.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn a_push_that_never_wakes_is_caught() {
        wake_token_model(WakeMutant::NoNotify);
    }

    /// A woken worker that keeps the token: the next push, after both sleep again, wakes
    /// nobody.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn a_token_never_given_back_is_caught() {
        wake_token_model(WakeMutant::TokenKept);
    }

    /// The collector's looks for quiet are answered once each (`quiet_waiting` lowered by
    /// the one who notifies, raised again at every sleep): one worker, a buffer listed
    /// before it starts, and an outside producer that pushes a second one at any time. The
    /// collector waits for quiet, waits for the producer, waits for quiet again (mark
    /// termination's loop). In the interleaving where the first answer comes while the
    /// second buffer is listed by the time the collector looks, the collector sleeps a
    /// second time and only the worker going idle after the second item can wake it.
    fn quiet_looks_model(mutant: WakeMutant) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(move || {
            // Leaked, as in `wake_token_model`.
            let q: &'static WorkQueue<u32> = Box::leak(Box::new(WorkQueue::with_mutant(mutant)));
            q.reset(1, false);
            q.push(vec![0]);
            let done: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
            let worker = thread::spawn(move || {
                let mut w = Counter {
                    stack: Vec::new(),
                    done,
                };
                q.run(&mut w);
            });
            let producer = thread::spawn(move || q.push(vec![0]));
            q.wait_quiet();
            producer.join().unwrap();
            q.wait_quiet();
            assert_eq!(
                done.load(Ordering::Relaxed),
                2,
                "quiet with an item unprocessed"
            );
            q.finish();
            worker.join().unwrap();
        });
    }

    #[test]
    fn every_look_for_quiet_is_answered() {
        quiet_looks_model(WakeMutant::Correct);
    }

    /// The flag raised once per wait while the answers lower it: the second sleep is never
    /// answered.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn a_look_not_raised_again_is_caught() {
        quiet_looks_model(WakeMutant::QuietRaisedOnce);
    }

    /// A push that takes the token with no worker idle (nobody notified will look):
    /// the worker that takes that buffer goes to sleep with the token still set.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn a_token_taken_with_nobody_asleep_is_caught() {
        wake_token_model(WakeMutant::TokenWithoutSleeper);
    }
}

// ---------------------------------------------------------------------------------------
// The borrow flag of a `GcRefCell` (`goheap::raw::borrow`): markers never wait for a mutable
// borrow, so a leaked one blocks nothing; a mutable borrow that waits for marker reads is
// woken by the last one.

mod gc_borrow {
    use goheap::raw::borrow::{self, MARKER, WRITING};
    use goheap::raw::sync::{AtomicU32, Ordering};
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    struct Cell {
        state: AtomicU32,
        /// The cell's value: written under the mutable borrow, read under a marker read.
        /// Loom reports any unordered pair of accesses.
        value: UnsafeCell<u64>,
    }

    fn cell() -> Arc<Cell> {
        Arc::new(Cell {
            state: AtomicU32::new(0),
            value: UnsafeCell::new(0),
        })
    }

    /// A marker, written as `read`/`done`, reads a cell whose mutable borrow the program
    /// takes and leaks (`mem::forget`). The real marker skips the borrowed cell and never
    /// waits: the model ends in every interleaving. A marker that waited for the borrow to
    /// end would wait forever, which loom reports.
    fn leaked_borrow_model(read: fn(&AtomicU32) -> bool) {
        loom::model(move || {
            let c = cell();
            let c2 = c.clone();
            let marker = thread::spawn(move || {
                if read(&c2.state) {
                    // SAFETY (model): a marker read excludes the mutable borrow.
                    c2.value.with(|v| unsafe { *v });
                    borrow::marker_read_done(&c2.state);
                }
            });
            if borrow::try_writing(&c.state) {
                // SAFETY (model): the mutable borrow is ours.
                c.value.with_mut(|v| unsafe { *v = 1 });
                // Leaked: never released.
            }
            marker.join().unwrap();
        });
    }

    /// A marker that waits for a mutable borrow to end (the design the real one avoids),
    /// polling: loom gives up on it when it has run the maximum number of branches.
    fn read_waiting_for_writers(state: &AtomicU32) -> bool {
        loop {
            let f = state.load(Ordering::SeqCst);
            if f & WRITING == WRITING {
                thread::yield_now();
                continue;
            }
            if state
                .compare_exchange(f, f + MARKER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
        }
    }

    #[test]
    fn a_leaked_mutable_borrow_never_blocks_the_marker() {
        leaked_borrow_model(borrow::marker_read);
    }

    /// The model is able to fail: a marker that waits for the borrow never returns.
    #[test]
    #[should_panic(expected = "maximum number of branches")]
    fn a_marker_waiting_for_a_leaked_borrow_is_caught() {
        leaked_borrow_model(read_waiting_for_writers);
    }

    /// A mutable borrow that finds a marker read in progress sleeps until it ends; the
    /// marker's end, written as `done`, must wake it. Two markers read while the program
    /// borrows and releases.
    fn waiter_model(done: fn(&AtomicU32)) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(move || {
            let c = cell();
            let markers: Vec<_> = (0..2)
                .map(|_| {
                    let c = c.clone();
                    thread::spawn(move || {
                        if borrow::marker_read(&c.state) {
                            // SAFETY (model): a marker read excludes the mutable borrow.
                            c.value.with(|v| unsafe { *v });
                            done(&c.state);
                        }
                    })
                })
                .collect();
            if borrow::try_writing(&c.state) {
                // SAFETY (model): the mutable borrow is ours.
                c.value.with_mut(|v| unsafe { *v += 1 });
                borrow::release_writing(&c.state);
            }
            for m in markers {
                m.join().unwrap();
            }
        });
    }

    /// A marker's end that forgets the wake-up (takes its count and the waiter bit off).
    fn done_without_wake(state: &AtomicU32) {
        let f = state.fetch_sub(MARKER, Ordering::Release) - MARKER;
        if f & borrow::MARKERS == 0 {
            state.fetch_and(!borrow::WAITER, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_borrow_waiting_for_markers_is_woken() {
        waiter_model(borrow::marker_read_done);
    }

    /// The model is able to fail: without the wake-up the borrow sleeps forever.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn a_lost_marker_wake_up_is_caught() {
        waiter_model(done_without_wake);
    }
}

// ---------------------------------------------------------------------------------------
// Allocation colour (`goheap::raw::barrier::allocation_is_black`): a grey session's new
// object may point to an object the session made before the mark by a plain write.

mod gc_colour {
    use goheap::raw::barrier::{
        allocation_is_black, marker_begin, session_black_for, swap_then_check, turn_on, MARK, OFF,
    };
    use goheap::raw::sync::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
    use goheap::raw::world::{self, Entry};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    /// Objects 1 (the child) and 2 (the parent); 0 is null.
    const CHILD: usize = 1;
    const PARENT: usize = 2;
    /// The mark's cycle number and the sweep generation (nothing is stale here).
    const CYCLE: u64 = 1;
    const SG: u32 = 2;

    struct Heap {
        phase: AtomicU8,
        active: AtomicUsize,
        epoch: AtomicU64,
        claim: AtomicBool,
        watched: AtomicBool,
        /// A `GcCell` the root table holds.
        root: AtomicUsize,
        marks: [AtomicBool; 3],
        /// Each object's one pointer field, written once when it is made.
        child: [AtomicUsize; 3],
        grey: Mutex<Vec<usize>>,
    }

    impl Heap {
        fn shade(&self, x: usize) {
            if x != 0 && !self.marks[x].swap(true, Ordering::SeqCst) {
                self.grey.lock().unwrap().push(x);
            }
        }

        fn drain(&self) {
            loop {
                let Some(x) = self.grey.lock().unwrap().pop() else {
                    return;
                };
                self.shade(self.child[x].load(Ordering::SeqCst));
            }
        }
    }

    type Colour = fn(u8, u64, u64, u32, u32, u32) -> bool;

    /// The mutator makes the child, then the parent pointing to it (a plain initialising
    /// write), then stores the parent in a rooted cell, all in one session, while a mark
    /// starts. The collector scans the root, traces, waits for the session to end (as
    /// mark termination waits for a grey one) and traces again: the parent and the child
    /// must be marked. `colour` decides each allocation's colour.
    fn colour_model(colour: Colour) {
        loom::model(move || {
            let h = Arc::new(Heap {
                phase: AtomicU8::new(OFF),
                active: AtomicUsize::new(0),
                epoch: AtomicU64::new(0),
                claim: AtomicBool::new(false),
                watched: AtomicBool::new(false),
                root: AtomicUsize::new(0),
                marks: core::array::from_fn(|_| AtomicBool::new(false)),
                child: core::array::from_fn(|_| AtomicUsize::new(0)),
                grey: Mutex::new(Vec::new()),
            });
            let hm = h.clone();
            let m = thread::spawn(move || {
                let h = hm;
                assert_eq!(
                    world::try_enter(&h.epoch, &h.claim, &h.watched),
                    Entry::Open
                );
                let black_for =
                    session_black_for(h.phase.load(Ordering::SeqCst), CYCLE).unwrap_or(0);
                let alloc = |x: usize, child: usize| {
                    h.child[x].store(child, Ordering::Relaxed);
                    if colour(h.phase.load(Ordering::SeqCst), black_for, CYCLE, SG, SG, SG) {
                        h.marks[x].store(true, Ordering::SeqCst);
                    }
                };
                alloc(CHILD, 0);
                alloc(PARENT, CHILD);
                let (old, on) = swap_then_check(&h.root, PARENT, &h.active);
                if on && h.phase.load(Ordering::SeqCst) == MARK {
                    h.shade(old);
                    h.shade(PARENT);
                }
                world::exit(&h.epoch, &h.watched);
            });
            turn_on(&h.phase, &h.active);
            let _grey = world::open_session(&h.epoch).is_some();
            marker_begin();
            h.shade(h.root.load(Ordering::SeqCst));
            h.drain();
            m.join().unwrap();
            h.drain();
            if h.root.load(Ordering::SeqCst) == PARENT {
                assert!(
                    h.marks[PARENT].load(Ordering::SeqCst) && h.marks[CHILD].load(Ordering::SeqCst),
                    "a reachable object was left white"
                );
            }
        });
    }

    /// Black whenever a mark runs, whatever the session's colour (Go's rule, which is sound
    /// only because Go scans a stack before it lets it allocate black).
    fn black_while_marking(phase: u8, _: u64, _: u64, _: u32, _: u32, _: u32) -> bool {
        phase != OFF
    }

    #[test]
    fn a_grey_session_never_hides_its_old_objects_behind_a_black_one() {
        colour_model(allocation_is_black);
    }

    /// The model is able to fail: allocating black in a grey session loses the child.
    #[test]
    #[should_panic(expected = "left white")]
    fn allocating_black_in_a_grey_session_is_caught() {
        colour_model(black_while_marking);
    }
}

// ---------------------------------------------------------------------------------------
// Sweep tokens (`goheap::raw::sweep_tokens`): sweeps in flight are counted in an atomic word
// that sweepers take and drop without blocking; sweep termination sleeps on it until it is
// zero. The last drop must wake a waiter that saw a token (the store-buffer handshake in
// `gc/sweep.rs`'s essay), and the waiter must see what every sweep did before its drop.
mod sweep_tokens {
    use goheap::raw::sweep_tokens::{release, wait_none};
    use goheap::raw::sync::{AtomicU32, Ordering};
    use loom::sync::Arc;
    use loom::thread;

    struct Words {
        in_flight: AtomicU32,
        waiters: AtomicU32,
        /// What each sweep wrote before dropping its token.
        swept: [AtomicU32; 2],
    }

    /// Two sweeps hold tokens; sweep termination waits for none. `drop_token` is the real
    /// `release` or a broken one.
    fn model(drop_token: fn(&AtomicU32, &AtomicU32)) {
        loom::model(move || {
            let w = Arc::new(Words {
                in_flight: AtomicU32::new(2), // both tokens taken before the wait
                waiters: AtomicU32::new(0),
                swept: [AtomicU32::new(0), AtomicU32::new(0)],
            });
            let sweepers: Vec<_> = (0..2)
                .map(|i| {
                    let w = w.clone();
                    thread::spawn(move || {
                        w.swept[i].store(1, Ordering::Relaxed);
                        drop_token(&w.in_flight, &w.waiters);
                    })
                })
                .collect();
            wait_none(&w.in_flight, &w.waiters);
            for s in &w.swept {
                assert_eq!(s.load(Ordering::Relaxed), 1, "a sweep was still in flight");
            }
            for t in sweepers {
                t.join().unwrap();
            }
        });
    }

    #[test]
    fn sweep_termination_is_woken_by_the_last_token() {
        model(release);
    }

    /// The last drop without its SeqCst fence (under loom a SeqCst access is only AcqRel):
    /// its read of the waiter count may miss the waiter, which then sleeps forever.
    fn release_unfenced(in_flight: &AtomicU32, waiters: &AtomicU32) {
        let last = in_flight.fetch_sub(1, Ordering::SeqCst) == 1;
        let w = waiters.load(Ordering::SeqCst);
        if last
            && w & 1 == 1
            && waiters
                .compare_exchange(w, w + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            goheap::raw::sync::futex_wake(waiters, u32::MAX >> 1);
        }
    }

    /// The model is able to fail: the store-buffer outcome strands the waiter.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn a_drop_that_misses_the_waiter_is_caught() {
        model(release_unfenced);
    }

    /// Two sweep terminations wait while a sweep drops its token and a mutator takes and
    /// drops another (the count passes through zero twice): each waiter's look is answered
    /// once, a waiter that finds no token leaves its bit for the other, and neither sleeps
    /// for good (a word that came back to a sleeper's value, or a look nobody answers,
    /// would be a deadlock). `drop_token` is the real `release` or a broken one.
    fn two_waiters_model(drop_token: fn(&AtomicU32, &AtomicU32)) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = b.preemption_bound.or(Some(3));
        b.check(move || {
            let w: &'static Words = Box::leak(Box::new(Words {
                in_flight: AtomicU32::new(1),
                waiters: AtomicU32::new(0),
                swept: [AtomicU32::new(0), AtomicU32::new(0)],
            }));
            let sweeper = thread::spawn(move || {
                w.swept[0].store(1, Ordering::Relaxed);
                drop_token(&w.in_flight, &w.waiters);
                // A mutator's later token (sweep.rs: it finds the lists empty).
                w.in_flight.fetch_add(1, Ordering::SeqCst);
                drop_token(&w.in_flight, &w.waiters);
            });
            let other = thread::spawn(move || {
                wait_none(&w.in_flight, &w.waiters);
                assert_eq!(
                    w.swept[0].load(Ordering::Relaxed),
                    1,
                    "a sweep was still in flight"
                );
            });
            wait_none(&w.in_flight, &w.waiters);
            assert_eq!(
                w.swept[0].load(Ordering::Relaxed),
                1,
                "a sweep was still in flight"
            );
            sweeper.join().unwrap();
            other.join().unwrap();
        });
    }

    #[test]
    fn two_waiters_and_a_late_token() {
        two_waiters_model(release);
    }

    /// The model is able to fail with two waiters too.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn two_waiters_and_a_drop_that_misses_them_is_caught() {
        two_waiters_model(release_unfenced);
    }
}

// ---------------------------------------------------------------------------------------
// `GcMutex`'s lock word (`goheap::raw::lock_word`): lockers exclude each other and markers;
// a marker never waits for a lock (a leaked guard blocks no mark); a thread waiting outside
// its session for the lock is woken by the unlock, whether the unlock is plain or goes
// through a marker read (a value holding pointers), and a locker waiting for a marker read
// is woken by its end.

mod gc_mutex {
    use goheap::raw::lock_word::{self, LOCKED, SLEEPERS};
    use goheap::raw::sync::{AtomicU32, Ordering};
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    struct Mutex {
        state: AtomicU32,
        /// Written under the lock, read under a marker read: loom reports any unordered
        /// pair of accesses.
        value: UnsafeCell<u64>,
    }

    fn mutex() -> Arc<Mutex> {
        Arc::new(Mutex {
            state: AtomicU32::new(0),
            value: UnsafeCell::new(0),
        })
    }

    /// The unlock of a value with pointers: a marker read (the insertion shade reads the
    /// value), then its end.
    fn unlock_through_marker_read(m: &Mutex) {
        lock_word::unlock_to_marker_read(&m.state);
        // SAFETY (model): the marker read excludes lockers.
        m.value.with(|v| unsafe { *v });
        lock_word::marker_read_done(&m.state);
    }

    /// The holder locks, writes and unlocks with `unlock`; a waiter finds the lock held (or
    /// not), sleeps until it is released, then takes it and sees the write; a marker reads
    /// when it can. A lost wake-up is a deadlock loom reports.
    fn waiter_model(unlock: fn(&Mutex)) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(move || {
            let m = mutex();
            assert!(lock_word::try_lock(&m.state));
            let (m2, m3) = (m.clone(), m.clone());
            let waiter = thread::spawn(move || loop {
                if lock_word::try_lock(&m2.state) {
                    // SAFETY (model): the lock is ours.
                    let v = m2.value.with(|v| unsafe { *v });
                    assert_eq!(v, 1, "took the lock before the holder's write");
                    lock_word::unlock(&m2.state);
                    return;
                }
                // Outside the session: asleep until the unlock.
                lock_word::wait_unlocked(&m2.state);
            });
            let marker = thread::spawn(move || {
                if lock_word::marker_read(&m3.state) {
                    // SAFETY (model): a marker read excludes lockers.
                    m3.value.with(|v| unsafe { *v });
                    lock_word::marker_read_done(&m3.state);
                }
            });
            // SAFETY (model): the lock is ours.
            m.value.with_mut(|v| unsafe { *v = 1 });
            unlock(&m);
            waiter.join().unwrap();
            marker.join().unwrap();
            assert_eq!(m.state.load(Ordering::SeqCst) & (LOCKED | SLEEPERS), 0);
        });
    }

    #[test]
    fn a_waiter_is_woken_by_a_plain_unlock() {
        waiter_model(|m| lock_word::unlock(&m.state));
    }

    #[test]
    fn a_waiter_is_woken_by_an_unlock_through_a_marker_read() {
        waiter_model(unlock_through_marker_read);
    }

    /// The model is able to fail: an unlock that clears the bits but wakes nobody leaves the
    /// waiter asleep for good.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn an_unlock_without_wake_up_is_caught() {
        waiter_model(|m| {
            m.state.fetch_and(!(LOCKED | SLEEPERS), Ordering::SeqCst);
        });
    }

    /// A guard leaked (`mem::forget`): the word stays locked; a marker skips the value and
    /// the model ends in every interleaving (nothing waits for the guard).
    #[test]
    fn a_marker_never_waits_for_a_leaked_guard() {
        loom::model(|| {
            let m = mutex();
            let m2 = m.clone();
            let marker = thread::spawn(move || {
                if lock_word::marker_read(&m2.state) {
                    // SAFETY (model): a marker read excludes lockers.
                    m2.value.with(|v| unsafe { *v });
                    lock_word::marker_read_done(&m2.state);
                }
            });
            if lock_word::try_lock(&m.state) {
                // SAFETY (model): the lock is ours.
                m.value.with_mut(|v| unsafe { *v = 1 });
                // Leaked: never unlocked.
            }
            marker.join().unwrap();
        });
    }
}
