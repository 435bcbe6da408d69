//! Mutators and sessions: how threads reach the heap.
//!
//! A [`Mutator`] is one thread's handle on a [`Heap`]: its allocation caches and its place in
//! the session handshakes ([`super::world`]). It is not `Send`. All work on objects happens
//! inside [`Mutator::enter`], whose closure receives a [`Session<'gc>`] with a fresh lifetime
//! `'gc`; every `Gc<'gc, _>` made or read in the session carries it and so cannot outlive the
//! closure. Between sessions the thread holds no pointer into the heap: a session boundary
//! is where the collector's "stack scan" happens (a session open when a mark starts is grey
//! until it ends, see `barrier.rs`), and why no stack needs scanning. Values that must
//! survive a session go in [`Root`]s.
//!
//! # Session boundaries
//!
//! At each entry and exit the mutator does the collector's bidding for its own cache: after
//! a mark termination it lets its spans go (they await their sweep), and when it enters a
//! session during a mark it marks the free slots of its current windows (its allocation is
//! black from then on). The collector does the same for mutators outside their sessions by
//! claiming them (`world.rs`). Nothing else ever waits at a boundary, except a mutator whose
//! cache the collector is flushing at that moment (microseconds).
//!
//! Marking does not wait for a session to end, but mark termination does wait for the
//! sessions that were open when the mark started, and the start of the next cycle for
//! sessions that have not let their spans go since the last one: a thread blocked inside a
//! session holds up collections (the heap overshoots its goal meanwhile), as a goroutine in
//! a non-preemptible loop did before Go 1.14. Keep sessions short, for instance one per
//! request or per batch of interpreter instructions.

use core::cell::{Cell, RefCell, UnsafeCell};
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar};
use std::time::Instant;

use super::alloc::{self, Local, TINY_SIZE};
use super::heap::{Heap, HeapInner};
use super::pause::{PauseCause, Pauses};
use super::ptr::{self, Brand, Gc, GcPointee};
use super::root::Root;
use super::trace::{Rebrand, Trace};
use super::world;
use crate::sizeclass::{size_to_class, size_to_class_aligned, MAX_SMALL_SIZE, PAGE_SIZE};

/// How long a collector waits for a session before it says so on stderr.
const BLOCKED_REPORT_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

thread_local! {
    /// Sessions open on this thread, per heap (address of its shared state, depth).
    static OPEN: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
    /// Set while a destructor or cleanup runs on this thread from the collector.
    static IN_FINALIZER: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is inside a session of `h`.
pub(crate) fn in_session_of(h: &HeapInner) -> bool {
    let k = h as *const HeapInner as usize;
    OPEN.try_with(|o| o.borrow().iter().any(|&(x, d)| x == k && d > 0))
        .unwrap_or(false)
}

/// Whether this thread is inside a session of any heap (`GcMutex`'s waiter must not sleep
/// there).
pub(crate) fn in_any_session() -> bool {
    OPEN.try_with(|o| o.borrow().iter().any(|&(_, d)| d > 0))
        .unwrap_or(false)
}

/// Notes a session of `h` open on this thread (for `Heap::collect`'s misuse check). A
/// thread-local being destroyed just skips the note.
fn open_session(h: &HeapInner) {
    let k = h as *const HeapInner as usize;
    let _ = OPEN.try_with(|o| {
        let mut o = o.borrow_mut();
        if let Some(e) = o.iter_mut().find(|e| e.0 == k) {
            e.1 += 1;
        } else {
            o.push((k, 1));
        }
    });
}

fn close_session(h: &HeapInner) {
    let k = h as *const HeapInner as usize;
    let _ = OPEN.try_with(|o| {
        let mut o = o.borrow_mut();
        if let Some(i) = o.iter().position(|e| e.0 == k) {
            o[i].1 -= 1;
            if o[i].1 == 0 {
                o.swap_remove(i);
            }
        }
    });
}

/// Runs `f` marked as finalizer code (destructors and cleanups run by the collector), which
/// must not use the heap: entering a session or collecting from there could wait for the
/// very cycle or sweep that runs it. A panic in `f` aborts the process with `what` in the
/// message: unwinding out of a sweep would leave spans and the world in an unknown state
/// (Go crashes on a panicking cleanup too).
pub(crate) fn as_finalizer<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let was = IN_FINALIZER.with(|c| c.replace(true));
    let r = crate::report::abort_on_panic(what, f);
    IN_FINALIZER.with(|c| c.set(was));
    r
}

/// Whether the calling thread is running collector-invoked code (destructor, cleanup).
pub(crate) fn in_finalizer() -> bool {
    IN_FINALIZER.try_with(|c| c.get()).unwrap_or(false)
}

/// A mutator's state as the collector sees it.
pub(crate) struct MutatorShared {
    /// Session counter, odd inside a session (`world.rs`). The mutator's thread writes it.
    pub epoch: AtomicU64,
    /// The collector is working on `local` (`world.rs`). The collector writes it.
    pub claim: AtomicBool,
    /// The sweep generation `local` last let its spans go under: the same counter as
    /// `Local::flushed`, which writes it.
    pub flushed: Arc<AtomicU32>,
    /// Set by a collector waiting for this mutator (its epoch to move or `flushed` to become
    /// current), cleared by the collector when the wait is over or by the mutator when it
    /// wakes the collector (`world.rs`: waking). The same flag as `Local::watched`.
    pub watched: Arc<AtomicBool>,
    /// `epoch` as the last mark start saw it: a mutator whose epoch moved since, or whose
    /// session is open, is *busy* (`Mutators::count_busy`). The collector writes and reads
    /// it, at mark start.
    epoch_at_mark: AtomicU64,
    /// The thread the mutator belongs to, for reports (`wait_until`). Fixed at creation.
    pub thread: String,
    /// Allocation caches: owned by the mutator's thread inside its sessions, by the
    /// collector while it holds the claim; never both (`world.rs`).
    pub local: UnsafeCell<Local>,
}
// SAFETY: `local` is accessed under the claim protocol (world.rs), which orders the accesses
// with SeqCst flag accesses; the rest is atomic.
unsafe impl Sync for MutatorShared {}
// SAFETY: as above.
unsafe impl Send for MutatorShared {}

/// A heap's mutators, the waiting between them and the collector, and the time mutators
/// spent blocked by the collector (the honest pause: measured in the mutator).
pub(crate) struct Mutators {
    /// Registered mutators, and whether the world is stopped (new ones start held).
    list: crate::lock::Mutex<(Vec<Arc<MutatorShared>>, bool)>,
    /// Mutators that backed out wait here for a claim's release; the collector waits here
    /// for epochs to move, and weak upgrades for the end of mark termination.
    wait: std::sync::Mutex<()>,
    cv: Condvar,
    /// Time mutators spent held up by the collector (`pause.rs`).
    pub pauses: Pauses,
}

impl Mutators {
    pub fn new() -> Mutators {
        Mutators {
            list: crate::lock::Mutex::new((Vec::new(), false)),
            wait: std::sync::Mutex::new(()),
            cv: Condvar::new(),
            pauses: Pauses::new(),
        }
    }

    fn register(&self, m: Arc<MutatorShared>) {
        let mut l = self.list.lock();
        if l.1 {
            world::hold(&m.claim);
        }
        l.0.push(m);
    }

    fn unregister(&self, m: &Arc<MutatorShared>) {
        self.list.lock().0.retain(|x| !Arc::ptr_eq(x, m));
    }

    /// Mutators busy at a mark start (for `pacer::mark_workers`): inside a session, or
    /// through one since the last mark start. A mutator made since then counts when it has
    /// entered a session. Called by the collector, once per mark start.
    pub fn count_busy(&self) -> usize {
        self.snapshot()
            .iter()
            .filter(|m| {
                let e = m.epoch.load(Ordering::Relaxed);
                let before = m.epoch_at_mark.swap(e, Ordering::Relaxed);
                e % 2 == 1 || e != before
            })
            .count()
    }

    /// The registered mutators now.
    pub fn snapshot(&self) -> Vec<Arc<MutatorShared>> {
        self.list.lock().0.clone()
    }

    fn wake(&self) {
        let _g = self.wait.lock().unwrap();
        self.cv.notify_all();
    }

    /// Opens a session of `m` and does the boundary work (module essay).
    fn enter(&self, h: &HeapInner, m: &MutatorShared) {
        while let world::Entry::BackedOut { wake } =
            world::try_enter(&m.epoch, &m.claim, &m.watched)
        {
            if wake {
                self.wake();
            }
            let _pause = self.pauses.timer(PauseCause::SessionEntry);
            let mut g = self.wait.lock().unwrap();
            while m.claim.load(Ordering::SeqCst) {
                g = self.cv.wait(g).unwrap();
            }
        }
        // SAFETY: inside our session the cache is ours (world.rs).
        let local = unsafe { &mut *m.local.get() };
        // A sweep termination may have found this session entering and waits for the
        // flush (found by review: without the wake it slept until the session's end).
        if local.flush_if_stale(h) {
            self.stale_flushed(&m.watched);
        }
        let phase = h.barrier.phase.load(Ordering::SeqCst);
        let cycle = h.cycle_no.load(Ordering::Acquire);
        if let Some(c) = super::barrier::session_black_for(phase, cycle) {
            if local.black_for != c {
                local.blacken();
                local.black_for = c;
            }
        }
    }

    /// A mutator's cache let its stale spans go inside a session (`Local::refill`): wakes
    /// a sweep termination that waits for it (world.rs: waking). `watched`: the mutator's
    /// flag.
    pub fn stale_flushed(&self, watched: &AtomicBool) {
        if world::announce(watched) {
            self.wake();
        }
    }

    /// Closes a session of `m` (boundary work first).
    fn exit(&self, h: &HeapInner, m: &MutatorShared) {
        // SAFETY: still inside our session: the cache is ours.
        let local = unsafe { &mut *m.local.get() };
        alloc::publish(h, &mut local.pending);
        local.flush_if_stale(h);
        if world::exit(&m.epoch, &m.watched) {
            self.wake();
        }
    }

    /// The collector: flushes the cache of `m` if `m` is outside its sessions (claiming
    /// it meanwhile); false when `m` is inside one (it flushes at its next boundary).
    /// Every claim, even one given up at once, wakes the mutators waiting for a release
    /// (found by review, twice: a claim given up without a wake-up left a mutator asleep for
    /// good, and so did waking only for a claim the mutator raced, world.rs).
    /// `locked`: the caller holds `wait` (inside [`Self::wait_until`]).
    pub fn flush_idle(&self, h: &HeapInner, m: &MutatorShared, locked: bool) -> bool {
        let sg = h.sweep.sweepgen.load(Ordering::Acquire);
        if m.flushed.load(Ordering::SeqCst) == sg {
            return true;
        }
        let claimed = match world::try_claim(&m.epoch, &m.claim) {
            world::Claim::Held => {
                // SAFETY: claimed: the mutator is outside its sessions and cannot enter one.
                let local = unsafe { &mut *m.local.get() };
                local.flush_if_stale(h);
                world::release_claim(&m.claim);
                true
            }
            world::Claim::Refused => false,
        };
        if locked {
            self.cv.notify_all();
        } else {
            self.wake();
        }
        claimed
    }

    /// The collector sleeps until `pending()` finds no mutator left to wait for; `pending`
    /// reads epochs or flush generations that a mutator changes before `world::exit` or
    /// `world::announce`, and returns one mutator still waited for. Only that mutator's
    /// `watched` flag is raised (`world::Watch`), so only its change wakes the collector;
    /// every other session exit meanwhile stays off the mutex and the futex (module essay of
    /// `world.rs`: waking). It runs with `wait` held: it must not take it (pass `locked` to
    /// `flush_idle`).
    ///
    /// A wait that lasts [`BLOCKED_REPORT_AFTER`] prints once to stderr which thread holds
    /// it up and since when (`since`: the session has been open at least since then; `why`
    /// names the wait), unless `GOHEAP_DEBUG=sessionwait=0`, and tells the cycle control,
    /// so that `release_memory` stops waiting for this heap. The first sleep has that
    /// deadline; the others are untimed.
    pub fn wait_until<'m>(
        &self,
        h: &HeapInner,
        why: &str,
        since: Instant,
        mut pending: impl FnMut() -> Option<&'m MutatorShared>,
    ) {
        let deadline = Instant::now() + BLOCKED_REPORT_AFTER;
        let mut reported = false;
        let mut watch = world::Watch::new();
        let mut g = self.wait.lock().unwrap();
        loop {
            let Some(m) = pending() else {
                watch.end();
                return;
            };
            // Only `m` wakes us (world.rs: waking); the first time, check again first.
            if !watch.may_sleep(&m.watched) {
                continue;
            }
            let now = Instant::now();
            if reported {
                g = self.cv.wait(g).unwrap();
                continue;
            } else if now < deadline {
                g = self.cv.wait_timeout(g, deadline - now).unwrap().0;
                continue;
            }
            reported = true;
            // `release_memory` gives up on this heap rather than wait with us.
            h.cycle.note_blocked(&m.thread);
            if h.debug.sessionwait {
                eprintln!(
                    "goheap: {why} has waited {:.1} s for thread {} inside a session open since \
                     {:.3} s or earlier (heap clock; now {:.3} s); a thread blocked inside a \
                     session holds collections up (GOHEAP_DEBUG=sessionwait=0 silences this)",
                    (now - deadline + BLOCKED_REPORT_AFTER).as_secs_f64(),
                    m.thread,
                    since.saturating_duration_since(h.start).as_secs_f64(),
                    now.saturating_duration_since(h.start).as_secs_f64(),
                );
            }
        }
    }

    /// A weak upgrade waits here while mark termination decides which weak targets die.
    pub fn wait_phase_off(&self, h: &HeapInner) {
        let _pause = self.pauses.timer(PauseCause::WeakUpgrade);
        let mut g = self.wait.lock().unwrap();
        while h.barrier.phase.load(Ordering::SeqCst) == super::barrier::MARK_DONE {
            g = self.cv.wait(g).unwrap();
        }
    }

    /// Wakes the mutators waiting for [`Self::wait_phase_off`] (the phase changed).
    pub fn phase_changed(&self) {
        self.wake();
    }

    /// `gccheckmark`'s stop of the world: every mutator out of its sessions and held.
    pub fn stop_all(&self, h: &HeapInner) {
        let ms = {
            let mut l = self.list.lock();
            l.1 = true;
            for m in &l.0 {
                world::hold(&m.claim);
            }
            l.0.clone()
        };
        self.wait_until(h, "gccheckmark's stop", Instant::now(), || {
            ms.iter().find(|m| !world::outside(&m.epoch)).map(|m| &**m)
        });
    }

    /// Ends [`Self::stop_all`].
    pub fn restart_all(&self) {
        {
            let mut l = self.list.lock();
            l.1 = false;
            for m in &l.0 {
                world::release(&m.claim);
            }
        }
        self.wake();
    }
}

/// One thread's handle on a heap: it opens sessions ([`Mutator::enter`]), in which the
/// thread allocates and reads objects. Collections run only between sessions, so keep them
/// short; a value that must outlive its session is kept by a [`Root`](super::Root).
///
/// ```
/// use goheap::gc::Heap;
///
/// let heap = Heap::new();
/// let mut m = heap.mutator();
/// let root = m.enter(|cx| cx.root(cx.alloc_str("kept")));
/// heap.collect();
/// assert_eq!(m.enter(|cx| cx.get(&root).len()), 4);
/// ```
pub struct Mutator {
    heap: Heap,
    shared: Arc<MutatorShared>,
    _not_send: PhantomData<*const ()>,
}

impl Heap {
    /// A mutator for the calling thread.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let mut m = heap.mutator(); // one per thread that uses the heap
    /// m.enter(|cx| assert_eq!(*cx.alloc(1u8), 1));
    /// ```
    pub fn mutator(&self) -> Mutator {
        let local = Local::new(self.inner.sweep.sweepgen.load(Ordering::Acquire));
        let t = std::thread::current();
        let shared = Arc::new(MutatorShared {
            thread: format!("{:?} ({:?})", t.name().unwrap_or("<unnamed>"), t.id()),
            epoch: AtomicU64::new(0),
            epoch_at_mark: AtomicU64::new(0),
            claim: AtomicBool::new(false),
            flushed: local.flushed.clone(),
            watched: local.watched.clone(),
            local: UnsafeCell::new(local),
        });
        self.inner.mutators.register(shared.clone());
        Mutator {
            heap: self.clone(),
            shared,
            _not_send: PhantomData,
        }
    }
}

/// Ends a session even when its closure panics.
struct SessionGuard<'a> {
    m: &'a Mutator,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        let h = &self.m.heap.inner;
        close_session(h);
        h.mutators.exit(h, &self.m.shared);
    }
}

impl Mutator {
    /// The heap this mutator belongs to.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let m = heap.mutator();
    /// m.heap().collect(); // the same heap, through its mutator
    /// ```
    pub fn heap(&self) -> &Heap {
        &self.heap
    }

    /// Runs `f` in a session: inside it, `f` may allocate, read and mutate objects. No
    /// `Gc` can leave `f` (its lifetime `'gc` is fresh); keep objects with [`Session::root`].
    /// Collections run concurrently with sessions; a mark that starts while `f` runs ends
    /// only after `f` returns.
    ///
    /// # Panics
    /// If called from a destructor or cleanup run by the collector.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let mut m = heap.mutator();
    /// let kept = m.enter(|cx| cx.root(cx.alloc(String::from("kept"))));
    /// // The root keeps the object alive between sessions.
    /// heap.collect();
    /// m.enter(|cx| assert_eq!(*cx.get(&kept), "kept"));
    /// ```
    pub fn enter<R>(&mut self, f: impl for<'gc> FnOnce(&Session<'gc>) -> R) -> R {
        assert!(
            !in_finalizer(),
            "goheap: a destructor or cleanup tried to enter a session; they must not use the heap"
        );
        let h = &self.heap.inner;
        open_session(h);
        h.mutators.enter(h, &self.shared);
        let guard = SessionGuard { m: self };
        let cx = Session {
            heap: &self.heap,
            inner: &self.heap.inner,
            local: self.shared.local.get(),
            _brand: PhantomData,
            _not_sync: PhantomData,
        };
        let r = f(&cx);
        drop(guard);
        r
    }
}

impl Drop for Mutator {
    fn drop(&mut self) {
        let h = &self.heap.inner;
        // A session of our own (no bookkeeping in thread-locals: a mutator may be dropped
        // during thread-local destruction): the cache is ours while we flush it.
        h.mutators.enter(h, &self.shared);
        // SAFETY: inside our own session the cache is ours.
        unsafe {
            let l = &mut *self.shared.local.get();
            l.flush(h);
            alloc::publish(h, &mut l.pending);
        }
        h.mutators.unregister(&self.shared);
        h.mutators.exit(h, &self.shared);
        // A mark the mutators carry (fractional.rs) has one fewer to carry it: the
        // collector takes over rather than wait for the others. Asked whether or not a
        // mark runs (the call counts until the next mark ends): a mark about to start may
        // have counted this mutator busy. Mutators leave rarely; the next mark then has
        // workers, as before fractional marking.
        h.barrier.queue.want_help();
    }
}

/// An open session: allocation, roots, weak pointers. `'gc` brands every pointer made in it,
/// so no [`Gc`] can leave the session's closure.
///
/// ```
/// use goheap::gc::{Gc, Heap, Session};
///
/// fn squares<'gc>(cx: &Session<'gc>, n: u64) -> Gc<'gc, [u64]> {
///     cx.alloc_slice_from_iter((0..n as usize).map(|i| (i * i) as u64))
/// }
///
/// let heap = Heap::new();
/// let total: u64 = heap.mutator().enter(|cx| squares(cx, 4).iter().sum());
/// assert_eq!(total, 14);
/// ```
pub struct Session<'gc> {
    heap: &'gc Heap,
    inner: &'gc HeapInner,
    local: *mut Local,
    _brand: Brand<'gc>,
    _not_sync: PhantomData<*const ()>,
}

impl<'gc> Session<'gc> {
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    fn local(&self) -> &mut Local {
        // SAFETY: the session is open on this thread (Session is neither Send nor Sync), so
        // the local state is ours; no method holds this reference across a call that could
        // reach it again (allocation runs no user code).
        unsafe { &mut *self.local }
    }

    pub(crate) fn heap_inner(&self) -> &'gc HeapInner {
        self.inner
    }

    /// The heap this session belongs to (`GcMutex::waiter` roots with it).
    pub(crate) fn heap(&self) -> &'gc Heap {
        self.heap
    }

    /// Raw storage for an object of `size` bytes aligned to `align`, with descriptor `ty`;
    /// 0 when out of memory.
    #[inline(always)]
    fn raw(&self, ty: &'static ptr::GcType, size: usize, align: usize, tiny_ok: bool) -> usize {
        let size = size.max(1);
        if align <= 8 && size <= MAX_SMALL_SIZE {
            if tiny_ok && size < TINY_SIZE {
                return self.local().alloc_tiny(self.inner, size, align);
            }
            return self
                .local()
                .alloc_small(self.inner, ty, size_to_class(size));
        }
        self.raw_slow(ty, size, align)
    }

    #[cold]
    fn raw_slow(&self, ty: &'static ptr::GcType, size: usize, align: usize) -> usize {
        if let Some(c) = size_to_class_aligned(size, align) {
            return self.local().alloc_small(self.inner, ty, c);
        }
        if align > PAGE_SIZE || size > isize::MAX as usize / 2 {
            return 0;
        }
        alloc::alloc_large(self.inner, ty, size, self.local())
    }

    /// Allocates `v` in the heap.
    ///
    /// `T: Send` because the destructor of a dead object runs on the collector's sweeper
    /// thread. Aborts via `handle_alloc_error` when memory runs out; see [`Self::try_alloc`].
    ///
    /// ```
    /// use goheap::gc::{Gc, GcCell, Heap, Trace};
    ///
    /// #[derive(Trace)]
    /// struct Node<'gc> {
    ///     value: u32,
    ///     next: GcCell<Option<Gc<'gc, Node<'gc>>>>,
    /// }
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let tail = cx.alloc(Node { value: 2, next: GcCell::new(None) });
    ///     let head = cx.alloc(Node { value: 1, next: GcCell::new(Some(tail)) });
    ///     assert_eq!(head.next.get().unwrap().value, 2);
    /// });
    /// ```
    #[inline(always)]
    pub fn alloc<T: Trace + Send + 'gc>(&self, v: T) -> Gc<'gc, T> {
        match self.try_alloc(v) {
            Ok(g) => g,
            Err(_) => std::alloc::handle_alloc_error(std::alloc::Layout::new::<T>()),
        }
    }

    /// Allocates `v`, or gives it back when memory runs out.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     match cx.try_alloc([7u64; 16]) {
    ///         Ok(a) => assert_eq!(a[15], 7),
    ///         Err(value) => drop(value), // out of memory: the value comes back
    ///     }
    /// });
    /// ```
    #[inline(always)]
    pub fn try_alloc<T: Trace + Send + 'gc>(&self, v: T) -> Result<Gc<'gc, T>, T> {
        let tiny = !T::NEEDS_TRACE && !core::mem::needs_drop::<T>();
        let a = self.raw(
            ptr::sized_type::<T>(),
            core::mem::size_of::<T>(),
            core::mem::align_of::<T>(),
            tiny,
        );
        if a == 0 {
            return Err(v);
        }
        // A slot poisoned when its last object died (`crate::asan`; nothing without it).
        crate::asan::unpoison(a & !7, (a & 7) + core::mem::size_of::<T>().max(1));
        // SAFETY: `a` is fresh storage for a `T` (size and alignment as asked), owned by
        // nobody else; after the write it holds an initialised `T` of the type its span
        // describes.
        unsafe {
            (a as *mut T).write(v);
            Ok(Gc::from_addr(a))
        }
    }

    /// Allocates a slice object holding the items of `it` (at most `it.len()` of them).
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let squares = cx.alloc_slice_from_iter((1..5u32).map(|i| i * i));
    ///     assert_eq!(&*squares, &[1, 4, 9, 16]);
    /// });
    /// ```
    pub fn alloc_slice_from_iter<T, I>(&self, it: I) -> Gc<'gc, [T]>
    where
        T: Trace + Send + 'gc,
        I: IntoIterator<Item = T>,
        I::IntoIter: ExactSizeIterator,
    {
        let it = it.into_iter();
        let n = it.len();
        let off = ptr::slice_data_offset(core::mem::align_of::<T>());
        let size = core::mem::size_of::<T>()
            .checked_mul(n)
            .and_then(|b| b.checked_add(off))
            .unwrap_or(usize::MAX);
        let layout = std::alloc::Layout::from_size_align(size.min(isize::MAX as usize), 8)
            .unwrap_or(std::alloc::Layout::new::<usize>());
        if size > isize::MAX as usize {
            std::alloc::handle_alloc_error(layout);
        }
        let tiny = !T::NEEDS_TRACE && !core::mem::needs_drop::<T>();
        let align = core::mem::align_of::<T>().max(core::mem::align_of::<usize>());
        let a = self.raw(ptr::slice_type::<T>(), size, align, tiny);
        if a == 0 {
            std::alloc::handle_alloc_error(layout);
        }
        crate::asan::unpoison(a, size);
        // SAFETY: `a` is fresh storage of `size` bytes aligned for `usize` and `T`. The
        // length word always counts exactly the initialised elements, so a panic in the
        // iterator leaves a valid (shorter) object that the sweeper drops correctly.
        unsafe {
            let len = a as *mut usize;
            len.write(0);
            let data = (a + off) as *mut T;
            for (i, v) in it.take(n).enumerate() {
                data.add(i).write(v);
                len.write(i + 1);
            }
            Gc::from_addr(a)
        }
    }

    /// Allocates a copy of `s`.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let s = cx.alloc_slice(&[1.5f64, 2.5]);
    ///     assert_eq!(s.len(), 2);
    /// });
    /// ```
    pub fn alloc_slice<T: Trace + Send + Copy + 'gc>(&self, s: &[T]) -> Gc<'gc, [T]> {
        self.alloc_slice_from_iter(s.iter().copied())
    }

    /// Allocates a copy of `s`.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let s = cx.alloc_str("goheap");
    ///     assert_eq!(s.len(), 6);
    /// });
    /// ```
    pub fn alloc_str(&self, s: &str) -> Gc<'gc, str> {
        let b = self.alloc_slice(s.as_bytes());
        // SAFETY: the bytes were copied from a `str`; `Gc<[u8]>` and `Gc<str>` share the
        // layout (`str` objects are `[u8]` objects).
        unsafe { Gc::from_addr(Gc::addr(b)) }
    }

    /// Keeps `g`'s object alive beyond this session.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let mut m = heap.mutator();
    /// let r = m.enter(|cx| cx.root(cx.alloc_slice(&[1u8, 2, 3])));
    /// heap.collect();
    /// m.enter(|cx| assert_eq!(&*cx.get(&r), &[1, 2, 3]));
    /// drop(r); // the object may now be collected
    /// ```
    pub fn root<T>(&self, g: Gc<'gc, T>) -> Root<T::Branded>
    where
        T: ?Sized + GcPointee + Rebrand<'static> + 'gc,
        T::Branded: GcPointee,
    {
        Root::new(self.heap, Gc::addr(g))
    }

    /// The object a root keeps, as a pointer of this session.
    ///
    /// # Panics
    /// If the root belongs to another heap.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let mut m = heap.mutator();
    /// let r = m.enter(|cx| cx.root(cx.alloc(5i64)));
    /// let doubled = m.enter(|cx| *cx.get(&r) * 2);
    /// assert_eq!(doubled, 10);
    /// ```
    pub fn get<R>(&self, r: &Root<R>) -> Gc<'gc, R::Branded>
    where
        R: ?Sized + GcPointee + Rebrand<'gc>,
        R::Branded: GcPointee,
    {
        assert!(
            core::ptr::eq(r.heap_inner(), &*self.heap.inner),
            "goheap: a Root of one heap used in a session of another"
        );
        // SAFETY: the root keeps its object alive, and `R::Branded` is the object's type at
        // this session's lifetime (the `Rebrand` contract).
        unsafe { Gc::from_addr(r.addr()) }
    }
}

impl<'gc> core::fmt::Debug for Session<'gc> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}
