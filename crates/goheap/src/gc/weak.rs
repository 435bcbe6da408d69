//! Weak pointers and cleanups (Go's `weak.Pointer` and `runtime.AddCleanup`), both kept as
//! *specials*: per-object records in a table keyed by the object's address.
//!
//! # Weak pointers
//!
//! An object has at most one weak slot: a small pointer-free heap object holding the target's
//! address. A [`Weak`] points to the slot, not to the target, so tracing a `Weak` keeps the
//! slot alive and never the target. At mark termination (world stopped) every special whose
//! target is unmarked has its slot cleared, before the sweep can free or reuse the target's
//! memory: an upgrade after that finds null. Slots that nobody references are dropped from
//! the table and swept like any dead object.
//!
//! # Cleanups
//!
//! `add_cleanup(obj, f)` records `f: FnOnce() + Send + 'static`. Being `'static`, `f` cannot
//! hold any `Gc`, so it can never see or resurrect the object (the trap of finalizers).
//! When the object is found unmarked, its cleanups move to the heap's cleanup queue and run
//! on a dedicated thread, off the collector's path, each exactly once. A cleanup that panics
//! aborts the process with a message, as a panicking cleanup goroutine crashes a Go program.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use super::heap::HeapInner;
use super::mutator::Session;
use super::ptr::{Gc, GcPointee};
use super::span::span_of;
use super::trace::{Rebrand, Trace, Tracer};

/// A cleanup closure.
pub(crate) type Cleanup = Box<dyn FnOnce() + Send>;

/// The specials of one object.
#[derive(Default)]
pub(crate) struct Special {
    /// Address of its weak slot, or 0.
    pub weak: usize,
    pub cleanups: Vec<Cleanup>,
}

/// The heap object a [`Weak`] points to.
pub struct WeakSlot {
    target: AtomicUsize,
}

// SAFETY: the slot's pointer is deliberately hidden from the collector (that is what makes
// it weak); the slot holds no other pointer.
unsafe impl Trace for WeakSlot {
    const NEEDS_TRACE: bool = false;
    fn trace(&self, _: &mut Tracer) {}
}

/// A pointer that does not keep its target alive. `Copy`, one word.
pub struct Weak<'gc, T: ?Sized + GcPointee + 'gc> {
    slot: Gc<'gc, WeakSlot>,
    _m: PhantomData<Gc<'gc, T>>,
}

impl<'gc, T: ?Sized + GcPointee + 'gc> Clone for Weak<'gc, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<'gc, T: ?Sized + GcPointee + 'gc> Copy for Weak<'gc, T> {}

impl<'gc, T: ?Sized + GcPointee + 'gc> Weak<'gc, T> {
    /// The target, if it has not been collected.
    pub fn upgrade(self, _cx: &Session<'gc>) -> Option<Gc<'gc, T>> {
        let a = self.slot.target.load(Ordering::Acquire);
        // SAFETY: a non-zero slot means the target was marked by every cycle since the slot
        // was made (slots are cleared at the first mark that misses the target, before its
        // sweep), so it is a live `T`; the session keeps it alive from here on.
        (a != 0).then(|| unsafe { Gc::from_addr(a) })
    }

    /// Whether the target has been collected.
    pub fn is_dead(self) -> bool {
        self.slot.target.load(Ordering::Acquire) == 0
    }
}

// SAFETY: reports the slot, which the Weak holds; the target is deliberately not reported.
unsafe impl<'gc, T: ?Sized + GcPointee + 'gc> Trace for Weak<'gc, T> {
    const NEEDS_TRACE: bool = true;
    fn trace(&self, t: &mut Tracer) {
        self.slot.trace(t)
    }
}

// SAFETY: replaces the brand only.
unsafe impl<'gc, 'b, T> Rebrand<'b> for Weak<'gc, T>
where
    T: ?Sized + GcPointee + Rebrand<'b> + 'gc,
    T::Branded: GcPointee,
{
    type Branded = Weak<'b, T::Branded>;
}

impl<'gc> Session<'gc> {
    /// A weak pointer to `g`'s object.
    pub fn downgrade<T: ?Sized + GcPointee + 'gc>(&self, g: Gc<'gc, T>) -> Weak<'gc, T> {
        let target = Gc::addr(g);
        let h = self.heap_inner();
        let existing = h.specials.lock().get(&target).map_or(0, |s| s.weak);
        let slot = if existing != 0 {
            // SAFETY: a slot in the table is a live WeakSlot (dead ones are removed at mark
            // termination, before they are swept).
            unsafe { Gc::from_addr(existing) }
        } else {
            let s = self.alloc(WeakSlot {
                target: AtomicUsize::new(target),
            });
            // Another thread may have registered a slot for the same target meanwhile: the
            // first one registered wins and ours becomes garbage. (Every slot handed out
            // must be in the table, or mark termination could not clear it.)
            let mut sp = h.specials.lock();
            let e = sp.entry(target).or_default();
            if e.weak == 0 {
                e.weak = Gc::addr(s);
                s
            } else {
                // SAFETY: as above: a registered slot is live.
                unsafe { Gc::from_addr(e.weak) }
            }
        };
        Weak {
            slot,
            _m: PhantomData,
        }
    }

    /// Runs `f` once, on the heap's cleanup thread, after `g`'s object has become unreachable
    /// (Go's `runtime.AddCleanup`). `f` cannot hold the object: it is `'static`.
    pub fn add_cleanup<T: ?Sized + GcPointee + 'gc>(
        &self,
        g: Gc<'gc, T>,
        f: impl FnOnce() + Send + 'static,
    ) {
        self.heap_inner()
            .specials
            .lock()
            .entry(Gc::addr(g))
            .or_default()
            .cleanups
            .push(Box::new(f));
    }
}

/// Mark termination: clears weak slots of dead targets, queues their cleanups, forgets
/// specials nobody needs. World stopped, marks final.
pub(crate) fn process_specials(h: &HeapInner) {
    let mut queued = Vec::new();
    h.specials.lock().retain(|&target, sp| {
        if sp.weak != 0 && !span_of(sp.weak).is_marked(sp.weak) {
            sp.weak = 0; // nobody holds the slot: it is swept with the other garbage
        }
        if !span_of(target).is_marked(target) {
            if sp.weak != 0 {
                // SAFETY: the slot is marked (checked above), so it is a live WeakSlot.
                unsafe {
                    (*(sp.weak as *const WeakSlot))
                        .target
                        .store(0, Ordering::Release)
                };
            }
            queued.append(&mut sp.cleanups);
            return false;
        }
        sp.weak != 0 || !sp.cleanups.is_empty()
    });
    if !queued.is_empty() {
        h.cleanups.push_all(queued);
    }
}

/// Runs a cleanup; a panic aborts with a message.
pub(crate) fn run_cleanup(f: Cleanup) {
    super::mutator::as_finalizer("a cleanup", f)
}

/// Cleanups waiting to run, and the thread that runs them.
pub(crate) struct CleanupQueue {
    q: Mutex<(VecDeque<Cleanup>, bool, bool)>,
    cv: Condvar,
}

impl CleanupQueue {
    pub fn new() -> CleanupQueue {
        CleanupQueue {
            q: Mutex::new((VecDeque::new(), false, false)),
            cv: Condvar::new(),
        }
    }

    fn push_all(self: &std::sync::Arc<Self>, v: Vec<Cleanup>) {
        let mut g = self.q.lock().unwrap();
        g.0.extend(v);
        if !g.1 {
            g.1 = true;
            let me = self.clone();
            std::thread::Builder::new()
                .name("goheap-cleanup".into())
                .spawn(move || me.thread())
                .expect("goheap: cannot start the cleanup thread");
        }
        self.cv.notify_one();
    }

    fn thread(&self) {
        loop {
            let f = {
                let mut g = self.q.lock().unwrap();
                loop {
                    if let Some(f) = g.0.pop_front() {
                        break f;
                    }
                    if g.2 {
                        return;
                    }
                    g = self.cv.wait(g).unwrap();
                }
            };
            run_cleanup(f);
        }
    }

    /// Runs every queued cleanup on the calling thread.
    pub fn run_all(&self) -> usize {
        let mut n = 0;
        loop {
            let f = self.q.lock().unwrap().0.pop_front();
            let Some(f) = f else { return n };
            run_cleanup(f);
            n += 1;
        }
    }

    /// Lets the thread exit once the queue is empty.
    pub fn close(&self) {
        self.q.lock().unwrap().2 = true;
        self.cv.notify_all();
    }
}
