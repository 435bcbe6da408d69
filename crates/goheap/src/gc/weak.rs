//! Weak pointers and cleanups (Go's `weak.Pointer` and `runtime.AddCleanup`), both kept as
//! *specials*: per-object records in a table keyed by the object's address.
//!
//! # Weak pointers
//!
//! An object has at most one weak slot: a small pointer-free heap object holding the target's
//! address. A [`Weak`] points to the slot, not to the target, so tracing a `Weak` keeps the
//! slot alive and never the target. At mark termination (phase `MARK_DONE`: marks final, no
//! shading) every special whose target is unmarked has its slot cleared, before the sweep
//! can free or reuse the target's memory: an upgrade after that finds null. Slots that
//! nobody references are dropped from the table and swept like any dead object.
//!
//! Marks are per 16-byte block for tiny objects (pointer-free, under 16 bytes, no
//! destructor: `alloc.rs`), so a tiny target stays alive, and its weak pointers valid, as
//! long as any object of its block is reachable, as Go documents for `weak.Pointer` and
//! `runtime.AddCleanup` on tiny objects. The slot itself is never tiny, so it never keeps
//! its own target's block alive (`tests/gc_regressions.rs`).
//!
//! # Upgrades while the heap marks
//!
//! An upgrade hands the session a strong pointer to an object that may be white (reachable
//! only weakly). While the heap marks, the upgrade shades the target, so a black session
//! never holds a white object. Between the end of the mark and the clearing of the slots
//! (`MARK_DONE`), an unmarked target is dead but its slot not yet cleared: the upgrade
//! waits for the phase to end (mark termination does nothing else meanwhile), then reads
//! the slot again. With the phase `OFF` the slot is the truth. A session open when a mark
//! starts needs no shade (it is grey: whatever it holds reaches the heap through a barrier),
//! and a session that saw `OFF` and is still open when the next mark starts is grey for it.
//! Reusing an existing slot in [`Session::downgrade`] follows the same rule for the slot.
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

use super::barrier::{MARK, OFF};
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

/// The heap object a [`Weak`] points to. Aligned to 16 so that it is never a tiny object
/// (those are under 16 bytes): in a tiny block next to its own target, the slot, which its
/// `Weak`s keep alive, would keep the block and so the target marked for ever (issue 10,
/// bug 1). Other live tiny objects in the target's block do keep it alive, as in Go (module
/// essay).
///
/// ```
/// use goheap::gc::{Heap, Weak};
///
/// // A `Weak` is one word: the address of its target's slot.
/// assert_eq!(std::mem::size_of::<Weak<'static, u64>>(), std::mem::size_of::<usize>());
/// Heap::new().mutator().enter(|cx| {
///     let g = cx.alloc(5u64);
///     let w = cx.downgrade(g); // makes the slot
///     assert_eq!(w.upgrade(cx).as_deref(), Some(&5));
/// });
/// ```
#[repr(align(16))]
pub struct WeakSlot {
    target: AtomicUsize,
}

// SAFETY: the slot's pointer is deliberately hidden from the collector (that is what makes
// it weak); the slot holds no other pointer.
unsafe impl Trace for WeakSlot {
    const NEEDS_TRACE: bool = false;
    fn trace(&self, _: &mut Tracer) {}
}

/// A pointer that does not keep its target alive. `Copy`, one word. Made with
/// [`Session::downgrade`](super::Session::downgrade); [`Weak::upgrade`] gives the target
/// back while it lives.
///
/// ```
/// use goheap::gc::{Gc, Heap, Trace, Weak};
///
/// #[derive(Trace)]
/// struct Cache<'gc> {
///     entry: Weak<'gc, String>,
/// }
///
/// let heap = Heap::new();
/// let mut m = heap.mutator();
/// let cache = m.enter(|cx| {
///     let v = cx.alloc(String::from("value"));
///     let c = cx.alloc(Cache { entry: cx.downgrade(v) });
///     assert_eq!(c.entry.upgrade(cx).as_deref().map(String::as_str), Some("value"));
///     cx.root(c) // the cache lives on; nothing holds the string strongly
/// });
/// heap.collect();
/// m.enter(|cx| assert!(cx.get(&cache).entry.upgrade(cx).is_none()));
/// ```
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
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let mut m = heap.mutator();
    /// let (kept, weak_root) = m.enter(|cx| {
    ///     let v = cx.alloc(1u64);
    ///     // A weak pointer inside a rooted object, to the rooted value.
    ///     (cx.root(v), cx.root(cx.alloc(cx.downgrade(v))))
    /// });
    /// heap.collect();
    /// m.enter(|cx| assert_eq!(cx.get(&weak_root).upgrade(cx).as_deref(), Some(&1)));
    /// drop(kept);
    /// heap.collect();
    /// m.enter(|cx| assert!(cx.get(&weak_root).upgrade(cx).is_none()));
    /// ```
    pub fn upgrade(self, cx: &Session<'gc>) -> Option<Gc<'gc, T>> {
        let a = hold_in_session(cx.heap_inner(), || self.slot.target.load(Ordering::Acquire));
        // SAFETY: a non-zero slot read with the phase `OFF`, or shaded during the mark,
        // names a target every cycle since the slot was made has marked (module essay), so
        // it is a live `T`; the session keeps it alive from here on.
        (a != 0).then(|| unsafe { Gc::from_addr(a) })
    }

    /// Whether the target has been collected.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let mut m = heap.mutator();
    /// let w = m.enter(|cx| {
    ///     let v = cx.alloc(1u64);
    ///     let w = cx.downgrade(v);
    ///     assert!(!w.is_dead());
    ///     cx.root(cx.alloc(w))
    /// });
    /// heap.collect(); // nothing held the value strongly
    /// m.enter(|cx| assert!(cx.get(&w).is_dead()));
    /// ```
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

/// Reads an object address from a weak slot or the specials table (`read`; 0 for none)
/// and makes it safe to hold in a session of `h` (module essay). The phase is read before
/// the source: a slot read after seeing `OFF` was cleared by any mark termination that
/// found its target dead; a slot read after seeing `MARK` is shaded, and if the shade finds
/// the mark over, the whole read starts again (found by review: reading the slot first let
/// a mark termination clear it between the two reads).
fn hold_in_session(h: &HeapInner, read: impl Fn() -> usize) -> usize {
    loop {
        let phase = h.barrier.phase.load(Ordering::SeqCst);
        let cycle = h.cycle_no.load(Ordering::SeqCst);
        match phase {
            OFF => return read(),
            MARK => {
                let a = read();
                if a == 0 || h.barrier.shade_in_cycle(a, cycle, &h.cycle_no) {
                    return a;
                }
                // The mark ended meanwhile (the target may be swept already: not touched):
                // read again once its slot clearing is done.
            }
            _ => h.mutators.wait_phase_off(h),
        }
    }
}

impl<'gc> Session<'gc> {
    /// A weak pointer to `g`'s object.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let mut m = heap.mutator();
    /// let w = m.enter(|cx| {
    ///     let g = cx.alloc(3u32);
    ///     let w = cx.downgrade(g);
    ///     assert_eq!(w.upgrade(cx).map(|g| *g), Some(3)); // alive while `g` is in use
    ///     cx.root(cx.alloc(w))
    /// });
    /// heap.collect(); // nothing else holds the u32
    /// m.enter(|cx| assert!(cx.get(&w).upgrade(cx).is_none()));
    /// ```
    pub fn downgrade<T: ?Sized + GcPointee + 'gc>(&self, g: Gc<'gc, T>) -> Weak<'gc, T> {
        let target = Gc::addr(g);
        let h = self.heap_inner();
        let existing = hold_in_session(h, || h.specials.lock().get(&target).map_or(0, |s| s.weak));
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
            let w = hold_in_session(h, || {
                let mut sp = h.specials.lock();
                let e = sp.entry(target).or_default();
                if e.weak == 0 {
                    e.weak = Gc::addr(s);
                }
                e.weak
            });
            // SAFETY: as above: a registered slot is live (ours, or the first one
            // registered, made safe to hold).
            unsafe { Gc::from_addr(w) }
        };
        Weak {
            slot,
            _m: PhantomData,
        }
    }

    /// Runs `f` once, on the heap's cleanup thread, after `g`'s object has become unreachable
    /// (Go's `runtime.AddCleanup`). `f` cannot hold the object: it is `'static`.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let (tx, rx) = mpsc::channel();
    /// heap.mutator().enter(|cx| {
    ///     let file = cx.alloc(String::from("handle 7"));
    ///     // The cleanup gets what it needs by value, never the object itself.
    ///     cx.add_cleanup(file, move || tx.send("closed handle 7").unwrap());
    /// });
    /// heap.collect(); // the string is unreachable: its cleanup is queued
    /// heap.run_cleanups(); // here, or on the heap's cleanup thread if it took it first
    /// assert_eq!(rx.recv().unwrap(), "closed handle 7");
    /// ```
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

/// Mark termination: clears weak slots of dead targets, forgets specials nobody needs, and
/// returns the dead targets' cleanups, which the cycle hands to [`queue_cleanups`] once it
/// has counted itself (as in Go, where `NumGC` moves at mark termination, before any
/// cleanup of that cycle runs). Phase `MARK_DONE`: marks final, nothing shades, no span is
/// swept before this returns; sessions run, and upgrades wait (module essay).
#[must_use]
pub(crate) fn process_specials(h: &HeapInner) -> Vec<Cleanup> {
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
    queued
}

/// Hands a cycle's cleanups (from [`process_specials`]) to the cleanup thread.
pub(crate) fn queue_cleanups(h: &HeapInner, cleanups: Vec<Cleanup>) {
    if !cleanups.is_empty() {
        h.cleanups.push_all(cleanups);
    }
}

/// Runs a cleanup; a panic aborts with a message.
pub(crate) fn run_cleanup(f: Cleanup) {
    super::mutator::as_finalizer("a cleanup", f)
}

/// Cleanups waiting to run, and the thread that runs them.
pub(crate) struct CleanupQueue {
    q: Mutex<Cleanups>,
    /// Signalled when cleanups are queued or the queue closes; the cleanup thread waits on it.
    cv: Condvar,
}

/// The queue's state, under `CleanupQueue::q`.
struct Cleanups {
    /// Cleanups not yet run, in the order their objects were found dead.
    waiting: VecDeque<Cleanup>,
    /// The cleanup thread has been started (it is started on the first cleanup).
    thread_started: bool,
    /// `close` was called: the thread exits once `waiting` is empty.
    closed: bool,
}

impl CleanupQueue {
    pub fn new() -> CleanupQueue {
        CleanupQueue {
            q: Mutex::new(Cleanups {
                waiting: VecDeque::new(),
                thread_started: false,
                closed: false,
            }),
            cv: Condvar::new(),
        }
    }

    fn push_all(self: &std::sync::Arc<Self>, v: Vec<Cleanup>) {
        let mut g = self.q.lock().unwrap();
        g.waiting.extend(v);
        if !g.thread_started {
            g.thread_started = true;
            let me = self.clone();
            std::thread::Builder::new()
                .name("goheap-cleanup".into())
                .spawn(move || crate::report::abort_on_panic("the cleanup thread", || me.thread()))
                .expect("goheap: cannot start the cleanup thread");
        }
        self.cv.notify_one();
    }

    fn thread(&self) {
        loop {
            let f = {
                let mut g = self.q.lock().unwrap();
                loop {
                    if let Some(f) = g.waiting.pop_front() {
                        break f;
                    }
                    if g.closed {
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
            let f = self.q.lock().unwrap().waiting.pop_front();
            let Some(f) = f else { return n };
            run_cleanup(f);
            n += 1;
        }
    }

    /// Lets the thread exit once the queue is empty.
    pub fn close(&self) {
        self.q.lock().unwrap().closed = true;
        self.cv.notify_all();
    }
}
