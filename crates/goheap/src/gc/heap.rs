//! The collected heap: [`Heap`], the handle users hold, and [`HeapInner`], the shared state,
//! which is a bundle of the parts below, each owning its state in its own file:
//!
//! | part | file | what |
//! |---|---|---|
//! | `barrier` | `barrier.rs` | the mark phase as barriers see it, the gate, the mark queue of spans |
//! | `markers` | `mark.rs` | mark worker threads |
//! | `sweep` | `sweep.rs` | sweep generation, background sweeper, sweep termination |
//! | `cycle` | `cycle.rs` | cycle requests, the collector thread, cycle records |
//! | `mutators` | `mutator.rs` | the registry of mutators and the session handshakes |
//! | `pools`, `large`, `counters` | `alloc.rs` | span pools, large objects, byte counts |
//! | `pacer` | `pacer.rs` | GOGC, memory limit, goal, trigger |
//! | `roots` | `root.rs` | the root table |
//! | `specials`, `cleanups` | `weak.rs` | weak slots and cleanups |
//!
//! The cycle itself (Go's `gcStart` .. `gcMarkTermination`) is in `cycle.rs`: it runs on
//! the heap's collector thread, concurrently with the mutators; nothing stops the world
//! (except `gccheckmark`'s verification, a debug mode).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::alloc::{self, Counters, LargeLists, Pools};
use super::barrier::Barrier;
use super::cycle::CycleCtl;
use super::external::External;
use super::mark::Markers;
use super::mutator::Mutators;
use super::pacer::{self, DebugFlags, Pacer};
use super::root::RootTable;
use super::span::{sweep_span, SweepCount};
use super::stats::{self, GcStats};
use super::sweep::Sweeper;
use super::weak::{CleanupQueue, Special};
use crate::lock::Mutex;

/// Settings of a heap. `Config::from_env()` reads Go's knobs under goheap's names; the
/// `with_*` methods set one field each (the struct is `#[non_exhaustive]`, so code outside
/// goheap starts from `Config::default()` or `Config::from_env()`).
///
/// ```
/// use goheap::gc::{Config, DebugFlags, Heap};
///
/// let heap = Heap::with_config(
///     Config::default()
///         .with_gc_percent(50)
///         .with_mem_limit(256 << 20)
///         .with_procs(2)
///         .with_debug(DebugFlags::default().with_gctrace(false)),
/// );
/// assert_eq!(heap.stats().gc_percent, 50);
/// assert_eq!(heap.stats().memory_limit, 256 << 20);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// GOGC: grow the heap by this percent of the live heap between cycles; negative turns
    /// proportional collection off. `GOHEAP_GOGC`, default 100.
    pub gc_percent: i32,
    /// GOMEMLIMIT: soft limit on memory in bytes (`pacer::NO_LIMIT` for none).
    /// `GOHEAP_MEMLIMIT`, with Go's suffixes (`512MiB`).
    pub mem_limit: i64,
    /// `GOHEAP_DEBUG`: `gctrace=1`, `gccheckmark=1`, `sessionwait=0`.
    pub debug: DebugFlags,
    /// Threads that mark (GOMAXPROCS): the cores of the machine by default.
    /// `GOHEAP_PROCS`.
    pub procs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            gc_percent: 100,
            mem_limit: pacer::NO_LIMIT,
            debug: DebugFlags::default(),
            procs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl Config {
    /// Defaults overridden by `GOHEAP_GOGC`, `GOHEAP_MEMLIMIT` and `GOHEAP_DEBUG`. Values that
    /// do not parse are reported on stderr and ignored (Go ignores them silently).
    ///
    /// ```
    /// use goheap::gc::{Config, Heap};
    ///
    /// // GOHEAP_GOGC=off in the environment would turn proportional collection off here.
    /// let heap = Heap::with_config(Config::from_env().with_procs(2));
    /// heap.mutator().enter(|cx| assert_eq!(*cx.alloc(7u32), 7));
    /// ```
    pub fn from_env() -> Config {
        let mut c = Config::default();
        if let Ok(v) = std::env::var("GOHEAP_GOGC") {
            match pacer::parse_gogc(&v) {
                Some(p) => c.gc_percent = p,
                None => eprintln!("goheap: ignoring GOHEAP_GOGC={v:?}: not a number or \"off\""),
            }
        }
        if let Ok(v) = std::env::var("GOHEAP_MEMLIMIT") {
            match pacer::parse_memlimit(&v) {
                Some(l) => c.mem_limit = l,
                None => eprintln!(
                    "goheap: ignoring GOHEAP_MEMLIMIT={v:?}: expected bytes with an optional B/KiB/MiB/GiB/TiB suffix"
                ),
            }
        }
        if let Ok(v) = std::env::var("GOHEAP_DEBUG") {
            c.debug = pacer::parse_debug_reporting(&v, |m| eprintln!("goheap: GOHEAP_DEBUG: {m}"));
        }
        if let Ok(v) = std::env::var("GOHEAP_PROCS") {
            match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => c.procs = n,
                _ => eprintln!("goheap: ignoring GOHEAP_PROCS={v:?}: expected a positive number"),
            }
        }
        c
    }

    /// With GOGC `percent` ([`Config::gc_percent`]; negative: proportional collection off).
    ///
    /// ```
    /// use goheap::gc::{Config, Heap};
    ///
    /// // Collect when the heap has grown by half the live data, not by all of it.
    /// let heap = Heap::with_config(Config::default().with_gc_percent(50));
    /// assert_eq!(heap.set_gc_percent(100), 50);
    /// ```
    pub fn with_gc_percent(mut self, percent: i32) -> Config {
        self.gc_percent = percent;
        self
    }

    /// With a soft memory limit of `bytes` ([`Config::mem_limit`]; `i64::MAX` for none).
    ///
    /// ```
    /// use goheap::gc::{Config, Heap};
    ///
    /// let heap = Heap::with_config(Config::default().with_mem_limit(256 << 20));
    /// assert_eq!(heap.set_memory_limit(-1), 256 << 20); // negative: only reads it
    /// ```
    pub fn with_mem_limit(mut self, bytes: i64) -> Config {
        self.mem_limit = bytes;
        self
    }

    /// With the `GOHEAP_DEBUG` settings `debug` ([`Config::debug`]).
    ///
    /// ```
    /// use goheap::gc::{Config, DebugFlags, Heap};
    ///
    /// // Verify every mark with a second, single-threaded one (slow; for tests).
    /// let heap = Heap::with_config(Config::default().with_debug(DebugFlags::default().with_gccheckmark(true)));
    /// heap.collect();
    /// ```
    pub fn with_debug(mut self, debug: DebugFlags) -> Config {
        self.debug = debug;
        self
    }

    /// With `procs` marking threads ([`Config::procs`]; at least 1).
    ///
    /// ```
    /// use goheap::gc::{Config, Heap};
    ///
    /// let heap = Heap::with_config(Config::default().with_procs(1));
    /// heap.collect(); // marked by one thread
    /// ```
    pub fn with_procs(mut self, procs: usize) -> Config {
        self.procs = procs;
        self
    }
}

/// Strong references the heap's own threads hold for a while (a cycle, a sweep, a mark run),
/// counted so that dropping the last user handle can wait for them: the heap is then torn
/// down (destructors run, memory returned) on the user's thread, before the program can
/// exit, not later on a background thread.
pub(crate) struct Holders {
    state: std::sync::Mutex<HoldState>,
    /// Signalled when the last hold ends; `close_and_wait` waits on it.
    cv: std::sync::Condvar,
}

/// Under `Holders::state`.
struct HoldState {
    /// Threads holding the heap now.
    holding: usize,
    /// The heap is closing: new holds are refused (but see `Holders::join`).
    closing: bool,
}

impl Holders {
    pub fn new() -> Holders {
        Holders {
            state: std::sync::Mutex::new(HoldState {
                holding: 0,
                closing: false,
            }),
            cv: std::sync::Condvar::new(),
        }
    }

    /// Takes a strong reference to the heap for a while, unless it is closing.
    pub fn hold(&self, w: &std::sync::Weak<HeapInner>) -> Option<Held<'_>> {
        self.take(w, false)
    }

    /// As [`Self::hold`], for a mark worker joining the collector's work: while the heap
    /// closes, it still succeeds as long as another thread holds the heap (the collector,
    /// in a cycle that waits for its workers). Found by review: a worker refused there left
    /// a grey buffer nobody would take, and the collector and the closing thread waited for
    /// each other forever.
    pub fn join(&self, w: &std::sync::Weak<HeapInner>) -> Option<Held<'_>> {
        self.take(w, true)
    }

    fn take(&self, w: &std::sync::Weak<HeapInner>, joining: bool) -> Option<Held<'_>> {
        {
            let mut g = self.state.lock().unwrap();
            if g.closing && !(joining && g.holding > 0) {
                return None;
            }
            g.holding += 1;
        }
        match w.upgrade() {
            Some(heap) => Some(Held {
                heap: Some(heap),
                holders: self,
            }),
            None => {
                self.release();
                None
            }
        }
    }

    fn release(&self) {
        let mut g = self.state.lock().unwrap();
        g.holding -= 1;
        if g.holding == 0 {
            self.cv.notify_all();
        }
    }

    /// Refuses new holds and waits for the current ones to end.
    fn close_and_wait(&self) {
        let mut g = self.state.lock().unwrap();
        g.closing = true;
        while g.holding > 0 {
            g = self.cv.wait(g).unwrap();
        }
    }
}

/// A background thread's hold on the heap (see [`Holders`]).
pub(crate) struct Held<'a> {
    heap: Option<Arc<HeapInner>>,
    holders: &'a Holders,
}

impl core::ops::Deref for Held<'_> {
    type Target = Arc<HeapInner>;
    fn deref(&self) -> &Arc<HeapInner> {
        self.heap.as_ref().expect("held")
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // The reference goes first, then the count: a waiting last handle then finds only
        // its own reference left and tears the heap down itself.
        drop(self.heap.take());
        self.holders.release();
    }
}

/// Every GC heap of the process, for [`collect_for_release`]: a weak reference and the
/// holders that let a caller keep the heap for a while. Entries of dropped heaps are removed
/// when the next heap is made.
#[allow(clippy::type_complexity)]
static HEAPS: std::sync::Mutex<Vec<(std::sync::Weak<HeapInner>, Arc<Holders>)>> =
    std::sync::Mutex::new(Vec::new());

/// The first step of [`crate::release_memory`] (Go's `debug.FreeOSMemory` collects first):
/// collects and sweeps every GC heap of the process that can be collected without waiting
/// for another thread's session, so that its dead objects' spans go back to the page heap.
/// Returns how many were collected and, for each one skipped, why. Skipped: heaps with a
/// session open on another thread (collecting would wait for it), heaps the calling thread
/// is inside a session of (it would wait for itself), every heap when called from a
/// destructor or cleanup, and a heap whose collection then waited a second for a session
/// that opened meanwhile (that collection goes on in the background). Never waits for a
/// session longer than that second.
pub(crate) fn collect_for_release() -> (usize, Vec<String>) {
    let all: Vec<_> = HEAPS.lock().unwrap().clone();
    let mut collected = 0;
    let mut skipped = Vec::new();
    if super::mutator::in_finalizer() {
        if !all.is_empty() {
            skipped.push(format!(
                "{} GC heap(s): called from a destructor or cleanup, which must not collect",
                all.len()
            ));
        }
        return (0, skipped);
    }
    for (i, (w, holders)) in all.iter().enumerate() {
        let Some(h) = holders.hold(w) else { continue };
        if super::mutator::in_session_of(&h) {
            skipped.push(format!(
                "GC heap {i}: the calling thread is inside a session of it"
            ));
            continue;
        }
        let busy = h
            .mutators
            .snapshot()
            .into_iter()
            .find(|m| super::world::open_session(&m.epoch).is_some());
        if let Some(m) = busy {
            skipped.push(format!(
                "GC heap {i}: thread {} is inside a session of it",
                m.thread
            ));
            continue;
        }
        let n = h.request_forced();
        match h.cycle.wait_finished_unless_blocked(n) {
            Ok(()) => {
                super::sweep::finish(&h);
                h.settle_goal();
                collected += 1;
            }
            Err(thread) => skipped.push(format!(
                "GC heap {i}: its collection waits for thread {thread}'s session (left to finish in the background)"
            )),
        }
    }
    (collected, skipped)
}

/// The heap's shared state (module essay).
pub(crate) struct HeapInner {
    /// User handles ([`Heap`], [`Mutator`](super::Mutator), [`Root`](super::Root)); at zero
    /// the threads stop.
    handles: AtomicUsize,
    pub debug: DebugFlags,
    /// Threads that mark (GOMAXPROCS).
    pub procs: usize,
    pub pacer: Pacer,
    pub barrier: Barrier,
    pub markers: Arc<Markers>,
    pub sweep: Sweeper,
    pub cycle: Arc<CycleCtl>,
    /// External memory declared to the heap (`external.rs`).
    pub external: Arc<External>,
    /// Number of the current (or last) cycle; bumped at mark start, before the phase.
    pub cycle_no: AtomicU64,
    pub mutators: Mutators,
    pub pools: Mutex<Pools>,
    pub large: Mutex<LargeLists>,
    pub counters: Counters,
    pub roots: Mutex<RootTable>,
    pub specials: Mutex<HashMap<usize, Special>>,
    pub cleanups: Arc<CleanupQueue>,
    pub start: Instant,
    /// The heap's threads' holds on it.
    pub holders: Arc<Holders>,
    /// Test hook run between mark and checkmark (clears marks to prove checkmark works).
    #[allow(clippy::type_complexity)]
    pub(crate) after_mark_hook: Mutex<Option<Box<dyn Fn() + Send>>>,
}

/// A garbage-collected heap, shared by any number of threads. Cheap to clone (a handle).
///
/// Each thread that allocates or reads objects makes a [`Mutator`](super::Mutator) with
/// [`Heap::mutator`] and works inside its sessions.
///
/// ```
/// use goheap::gc::{Gc, GcCell, Heap, Trace};
///
/// #[derive(Trace)]
/// struct Node<'gc> {
///     next: GcCell<Option<Gc<'gc, Node<'gc>>>>,
/// }
///
/// let heap = Heap::new();
/// let mut m = heap.mutator();
/// m.enter(|cx| {
///     for _ in 0..1000 {
///         let n = cx.alloc(Node { next: GcCell::new(None) });
///         n.next.set(Some(n)); // garbage cycles
///     }
/// });
/// heap.collect(); // a full cycle: the cycles are found dead
/// heap.wait_sweep(); // and freed by the background sweep
/// let s = heap.stats();
/// assert!(s.num_gc >= 1);
/// assert!(s.frees >= 1000);
/// ```
pub struct Heap {
    pub(crate) inner: Arc<HeapInner>,
}

impl Clone for Heap {
    fn clone(&self) -> Heap {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        Heap {
            inner: self.inner.clone(),
        }
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.shutdown_threads();
            // Let the heap's threads finish what they hold it for, so that the teardown
            // happens here (a destructor dropping the last handle runs on the sweeper,
            // which may be such a holder itself: it does not wait).
            if !super::mutator::in_finalizer() {
                self.inner.holders.close_and_wait();
            }
        }
    }
}

impl Default for Heap {
    fn default() -> Self {
        Heap::new()
    }
}

impl core::fmt::Debug for Heap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Heap").finish_non_exhaustive()
    }
}

impl Heap {
    /// A heap configured from the environment ([`Config::from_env`]).
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let n = heap.mutator().enter(|cx| *cx.alloc(41u64) + 1);
    /// assert_eq!(n, 42);
    /// ```
    pub fn new() -> Heap {
        Heap::with_config(Config::from_env())
    }

    /// A heap with explicit settings.
    ///
    /// ```
    /// use goheap::gc::{Config, Heap};
    ///
    /// let heap = Heap::with_config(Config::default().with_gc_percent(200).with_procs(2));
    /// heap.mutator().enter(|cx| assert_eq!(&*cx.alloc_str("hi"), "hi"));
    /// ```
    pub fn with_config(c: Config) -> Heap {
        super::timeline::start();
        let cycle = Arc::new(CycleCtl::new());
        let inner = Arc::new(HeapInner {
            handles: AtomicUsize::new(1),
            debug: c.debug,
            procs: c.procs.max(1),
            pacer: Pacer::new(c.gc_percent, c.mem_limit),
            barrier: Barrier::new(),
            markers: Arc::new(Markers::new()),
            sweep: Sweeper::new(),
            cycle: cycle.clone(),
            external: Arc::new(External::new(cycle)),
            cycle_no: AtomicU64::new(0),
            mutators: Mutators::new(),
            pools: Mutex::new(Pools::new()),
            large: Mutex::new(LargeLists {
                live: Vec::new(),
                unswept: Vec::new(),
            }),
            counters: Counters::default(),
            roots: Mutex::new(RootTable::new()),
            specials: Mutex::new(HashMap::new()),
            cleanups: Arc::new(CleanupQueue::new()),
            start: Instant::now(),
            holders: Arc::new(Holders::new()),
            after_mark_hook: Mutex::new(None),
        });
        inner.mutators.pauses.report_from(c.debug.longpause_us);
        super::pacer::register(&*inner);
        {
            let mut all = HEAPS.lock().unwrap();
            all.retain(|(w, _)| w.strong_count() > 0);
            all.push((Arc::downgrade(&inner), inner.holders.clone()));
        }
        inner
            .sweep
            .start_thread(Arc::downgrade(&inner), inner.holders.clone());
        super::cycle::start_thread(&inner);
        Heap { inner }
    }

    /// Runs a full collection now and returns when its mark is done (Go's `runtime.GC`):
    /// everything unreachable when it was called is found dead (objects that sessions
    /// allocate while it marks survive it). Spans are swept in the background afterwards.
    ///
    /// # Panics
    /// When called inside a session of this heap on the same thread (the cycle would wait for
    /// that session to end: a deadlock), or from a destructor or cleanup.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let mut m = heap.mutator();
    /// m.enter(|cx| {
    ///     cx.alloc([0u64; 64]); // garbage once the session ends
    /// });
    /// heap.collect(); // outside every session of this heap
    /// assert!(heap.stats().num_gc >= 1);
    /// ```
    pub fn collect(&self) {
        assert!(
            !super::mutator::in_finalizer(),
            "goheap: Heap::collect() called from a destructor or cleanup; they must not use the heap"
        );
        assert!(
            !super::mutator::in_session_of(&self.inner),
            "goheap: Heap::collect() called inside a session of the same heap; call it outside `enter`"
        );
        let n = self.inner.request_forced();
        if let Err(report) = self.inner.cycle.wait_finished(n) {
            panic!("{report}");
        }
    }

    /// Sets GOGC and returns the previous value (Go's `debug.SetGCPercent`). Negative turns
    /// proportional collection off.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let old = heap.set_gc_percent(-1); // collect only under the memory limit
    /// assert_eq!(old, 100);
    /// ```
    pub fn set_gc_percent(&self, p: i32) -> i32 {
        let old = self.inner.pacer.gc_percent.swap(p, Ordering::Relaxed);
        self.inner.update_goal();
        old
    }

    /// Sets the soft memory limit in bytes and returns the previous one (Go's
    /// `debug.SetMemoryLimit`); a negative value only reads it.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// heap.set_memory_limit(512 << 20);
    /// assert_eq!(heap.set_memory_limit(-1), 512 << 20);
    /// ```
    pub fn set_memory_limit(&self, limit: i64) -> i64 {
        if limit < 0 {
            return self.inner.pacer.mem_limit.load(Ordering::Relaxed);
        }
        let old = self.inner.pacer.mem_limit.swap(limit, Ordering::Relaxed);
        self.inner.update_goal();
        old
    }

    /// Declares `bytes` of memory that this heap's objects hold outside goheap (gc-arena's
    /// `mark_external_allocation`): the heap's goal and memory limit count it until
    /// [`Self::mark_external_deallocation`] takes it back, typically in the destructor that
    /// frees it. For programs whose global allocator is not `GoAlloc` (with it, every buffer
    /// counts already); see also [`ExternalVec`](super::ExternalVec), which does this itself.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// // An object of this heap owns a 64 MiB buffer from another allocator: count it.
    /// heap.mark_external_allocation(64 << 20);
    /// // ... and when the object's destructor frees the buffer:
    /// heap.mark_external_deallocation(64 << 20);
    /// ```
    pub fn mark_external_allocation(&self, bytes: usize) {
        self.inner.external.add(bytes);
        if self.inner.in_use_for_goal() >= self.inner.pacer.trigger() {
            self.inner.request_gc();
        }
    }

    /// Takes back `bytes` declared by [`Self::mark_external_allocation`].
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// heap.mark_external_allocation(1 << 20);
    /// heap.mark_external_deallocation(1 << 20);
    /// ```
    pub fn mark_external_deallocation(&self, bytes: usize) {
        self.inner.external.sub(bytes);
    }

    /// Statistics (Go's `runtime.ReadMemStats`).
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// heap.mutator().enter(|cx| {
    ///     cx.alloc([1u64; 8]);
    /// });
    /// heap.collect();
    /// let s = heap.stats();
    /// assert!(s.num_gc >= 1 && s.max_pause_ns < u64::MAX);
    /// ```
    pub fn stats(&self) -> GcStats {
        stats::read(&self.inner)
    }

    /// Waits until the background sweep of the last cycle is done (tests and benchmarks).
    ///
    /// Returns at once when called from a destructor or cleanup (the sweep it would wait for
    /// may be the one running it).
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// heap.mutator().enter(|cx| {
    ///     cx.alloc([0u8; 100]);
    /// });
    /// heap.collect();
    /// heap.wait_sweep(); // the dead array's slot is free again
    /// assert_eq!(heap.stats().heap_objects, 0);
    /// ```
    pub fn wait_sweep(&self) {
        if super::mutator::in_finalizer() {
            return;
        }
        super::sweep::finish(&self.inner);
    }

    /// Runs every queued cleanup on the calling thread and returns how many ran (cleanups
    /// otherwise run on the heap's cleanup thread).
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// // No cleanup is registered, so none runs; a program with cleanups calls this to run them
    /// // on its own thread instead of the heap's cleanup thread.
    /// assert_eq!(heap.run_cleanups(), 0);
    /// ```
    pub fn run_cleanups(&self) -> usize {
        self.inner.cleanups.run_all()
    }

    #[doc(hidden)]
    /// Test hook: how long the collector lets the mutators carry a mark alone before its
    /// workers take over (`fractional.rs`; default `PATIENCE`, half a second).
    pub fn __set_mark_patience(&self, d: std::time::Duration) {
        self.inner.markers.set_patience(d);
    }

    #[doc(hidden)]
    /// Test hook: cycles started so far (`GcStats::num_gc` counts those finished).
    pub fn __cycles_started(&self) -> u64 {
        self.inner.cycle.started()
    }

    #[doc(hidden)]
    /// Test hook: `f` runs after each mark, before checkmark.
    pub fn __set_after_mark_hook(&self, f: Option<Box<dyn Fn() + Send>>) {
        *self.inner.after_mark_hook.lock() = f;
    }
}

impl HeapInner {
    fn shutdown_threads(&self) {
        self.cycle.shutdown();
        // A mark the mutators carry (fractional.rs) has no mutator left to carry it.
        self.barrier.queue.want_help();
        self.markers.shutdown();
        self.sweep.shutdown();
        self.cleanups.close();
    }

    /// Asks for a forced cycle (`Heap::collect`, `release_memory`) and returns its number. A
    /// mark the mutators carry (fractional.rs) is taken over by workers: the caller waits
    /// for it to end before its own cycle starts.
    fn request_forced(&self) -> u64 {
        let n = self.cycle.request(true);
        self.barrier.queue.want_help();
        n
    }

    /// The live heap passed the trigger: asks the collector thread for a cycle.
    #[inline]
    pub(crate) fn request_gc(&self) {
        self.cycle.request(false);
    }

    /// GOGC or the limit changed: a new goal and trigger from the last cycle's live heap.
    fn update_goal(&self) {
        self.pacer.retarget(self.other_bytes(), self.beside_bytes());
        self.rearm_external();
        if self.in_use_for_goal() >= self.pacer.trigger() {
            self.request_gc();
        }
    }

    /// Memory the goal counts besides this heap's objects (`pacer.rs` essay: Go has one
    /// heap): every byte goheap's page heap and large objects hold outside GC heaps
    /// (`GoAlloc` allocations, among them the buffers this heap's objects own), plus the
    /// external memory declared to this heap. Other GC heaps are paced by their own goals:
    /// only the limit counts them ([`Self::beside_bytes`]).
    pub(crate) fn other_bytes(&self) -> usize {
        let core = crate::heap::COUNTERS.inuse.load(Ordering::Relaxed);
        core.saturating_sub(super::pacer::gc_page_bytes())
            + self.external.bytes.load(Ordering::Relaxed)
    }

    /// Memory the limit counts besides [`Self::other_bytes`] and this heap's objects: the
    /// other GC heaps' spans and this heap's span slack.
    pub(crate) fn beside_bytes(&self) -> usize {
        // This heap's huge objects are mapped apart from the page heap.
        let huge = self.counters.huge_bytes.load(Ordering::Relaxed);
        let mine = self
            .counters
            .span_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(huge);
        super::pacer::gc_page_bytes().saturating_sub(mine) + (64 << 10)
    }

    /// What the trigger and the goal are compared with: live objects plus
    /// [`Self::other_bytes`].
    #[inline]
    pub(crate) fn in_use_for_goal(&self) -> usize {
        self.counters.live.load(Ordering::Relaxed) + self.other_bytes()
    }

    /// A sweep of the last mark is over: the goal is set again from what is held now
    /// (`pacer.rs` essay, the settled count), and a cycle asked for if that passes it.
    pub(crate) fn settle_goal(&self) {
        self.pacer.settle(self.other_bytes(), self.beside_bytes());
        self.rearm_external();
        super::cycle::enforce_limit(self);
        if self.in_use_for_goal() >= self.pacer.trigger() {
            self.request_gc();
        }
    }

    /// After a goal change: the external count at which the trigger is passed.
    pub(crate) fn rearm_external(&self) {
        let room = self.pacer.trigger().saturating_sub(self.in_use_for_goal());
        self.external.rearm(room);
    }
}

impl Drop for HeapInner {
    /// The last handle is gone, so no object is reachable: every destructor and every
    /// pending cleanup runs, and all memory goes back to the page heap.
    fn drop(&mut self) {
        super::pacer::unregister(self);
        super::mutator::as_finalizer("a destructor run at heap teardown", || self.teardown())
    }
}

impl HeapInner {
    fn teardown(&self) {
        self.shutdown_threads();
        super::sweep::finish(self);
        let sg = self.sweep.sweepgen.load(Ordering::Relaxed) + 2;
        let mut count = SweepCount::default();
        for p in alloc::pool_list(self) {
            // SAFETY: pools live as long as the heap, which is being dropped by us alone.
            let pool = unsafe { &*p };
            let mut g = pool.lists.lock();
            let l = &mut *g;
            let all: Vec<_> = l
                .partial
                .drain(..)
                .chain(l.full.drain(..))
                .chain(l.unswept.drain(..))
                .collect();
            drop(g);
            for s in all {
                // SAFETY: we hold every span; nothing is reachable, so clearing the marks
                // makes the sweep drop every allocated object exactly once.
                unsafe {
                    (*s).clear_marks();
                    sweep_span(&*s, sg, &mut count);
                    alloc::free_span(self, s);
                }
            }
        }
        let large: Vec<_> = {
            let mut l = self.large.lock();
            let l = &mut *l;
            l.live.drain(..).chain(l.unswept.drain(..)).collect()
        };
        for s in large {
            // SAFETY: as above.
            unsafe {
                (*s).clear_marks();
                sweep_span(&*s, sg, &mut count);
                alloc::free_span(self, s);
            }
        }
        let rest: Vec<Box<dyn FnOnce() + Send>> = self
            .specials
            .lock()
            .drain()
            .flat_map(|(_, s)| s.cleanups)
            .collect();
        for f in rest {
            super::weak::run_cleanup(f);
        }
        self.cleanups.run_all();
    }
}
