//! The collected heap: [`Heap`], the stop-the-world protocol, and one collection cycle
//! (Go's `gcStart` .. `gcMarkTermination`, in one piece).
//!
//! # Sessions and the world
//!
//! Mutators touch the heap only inside sessions ([`super::mutator`]). A session is open while
//! its mutator's `in_session` flag is set. To stop the world the collector sets `stop` and
//! waits until no mutator is inside a session; a mutator entering a session sets its flag,
//! then looks at `stop`, and if it is set clears its flag and waits. With all four accesses
//! sequentially consistent (Dekker), either the collector sees the flag or the mutator sees
//! `stop`, so no session runs while the world is stopped. Outside sessions no `Gc` exists,
//! so the roots are exactly the root table: there are no stacks to scan.
//!
//! # A cycle
//!
//! 1. **Sweep termination** (world stopped): finish sweeping the previous cycle's spans,
//!    make every mutator let its current spans go, free the empty spans nobody reused.
//! 2. **Mark**: every core marks from the roots ([`super::mark`]), the caller included.
//! 3. **Mark termination**: optional checkmark; weak pointers to dead objects are cleared
//!    and their cleanups queued; the marked bytes become the live heap and set the next goal
//!    ([`super::pacer`]); every span becomes unswept (`sweepgen += 2`).
//! 4. The world restarts; one worker sweeps in the background while mutators sweep lazily
//!    the spans they need (Go's concurrent sweep).
//!
//! Collections start when a mutator's allocation takes the live heap past the trigger: the
//! request is noted, and the first mutator to end a session afterwards runs the cycle (its
//! thread is outside any session then). `Heap::collect` runs one from any thread that is not
//! inside a session of this heap.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicUsize, Ordering};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Weak as ArcWeak};
use std::time::{Duration, Instant};

use super::alloc::{LargeLists, Local, Pools, TypePool};
use super::mark::{MarkQueue, Tracer};
use super::pacer::{self, DebugFlags};
use super::root::RootTable;
use super::span::{sweep_span, SweepCount, Swept};
use super::stats::{self, GcStats, PauseRing};
use super::weak::{CleanupQueue, Special};
use super::world;
use crate::lock::Mutex;

/// Settings of a heap. `Config::from_env()` reads Go's knobs under goheap's names.
#[derive(Clone, Debug)]
pub struct Config {
    /// GOGC: grow the heap by this percent of the live heap between cycles; negative turns
    /// proportional collection off. `GOHEAP_GOGC`, default 100.
    pub gc_percent: i32,
    /// GOMEMLIMIT: soft limit on memory in bytes (`pacer::NO_LIMIT` for none).
    /// `GOHEAP_MEMLIMIT`, with Go's suffixes (`512MiB`).
    pub mem_limit: i64,
    /// `GOHEAP_DEBUG`: `gctrace=1`, `gccheckmark=1`.
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
            c.debug = pacer::parse_debug(&v);
        }
        if let Ok(v) = std::env::var("GOHEAP_PROCS") {
            match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => c.procs = n,
                _ => eprintln!("goheap: ignoring GOHEAP_PROCS={v:?}: expected a positive number"),
            }
        }
        c
    }
}

/// A mutator's state as the collector sees it.
pub(crate) struct MutatorShared {
    /// Inside a session (module essay).
    pub in_session: AtomicBool,
    /// Allocation caches: used by the mutator's thread inside its sessions, and by the
    /// collector while the world is stopped; never both (module essay).
    pub local: UnsafeCell<Local>,
}
// SAFETY: `local` is accessed under the protocol above, which orders the accesses (SeqCst
// flag accesses plus the world mutex); the rest is atomic.
unsafe impl Sync for MutatorShared {}
// SAFETY: as above.
unsafe impl Send for MutatorShared {}

/// Heap-wide counters.
#[derive(Default)]
pub(crate) struct Counters {
    /// Bytes of objects possibly live: marked at the last cycle plus taken since (Go's
    /// heapLive). Drives the trigger.
    pub live: AtomicUsize,
    pub total_alloc: AtomicUsize,
    pub mallocs: AtomicUsize,
    pub frees: AtomicUsize,
    pub freed_bytes: AtomicUsize,
    /// Bytes of pages in the heap's spans (huge objects included).
    pub span_bytes: AtomicUsize,
    /// Bytes of huge objects (over 64 MiB, mapped outside the page heap).
    pub huge_bytes: AtomicUsize,
}

/// What one cycle measured, for statistics and gctrace.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct CycleRecord {
    pub start_ns: u64,
    pub stw1_ns: u64,
    pub mark_ns: u64,
    pub stw2_ns: u64,
    pub heap0: usize,
    pub heap1: usize,
    pub marked: usize,
    pub goal: usize,
    pub procs: usize,
    pub forced: bool,
}

/// State of the cycle lock: one cycle at a time.
pub(crate) struct GcState {
    pub num_gc: u32,
    pub num_forced: u32,
    pub pause_total_ns: u64,
    pub gc_cpu_ns: u64,
    pub pauses: PauseRing,
    pub last: CycleRecord,
    pub last_gc_unix_ns: u64,
}

/// Work handed to the worker threads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Job {
    Idle,
    Mark,
    Exit,
}

struct WorkerCtl {
    job: std::sync::Mutex<(Job, u64, usize)>,
    cv: Condvar,
    done: Condvar,
    sweep_pending: AtomicBool,
    sweep_cv: Condvar,
    sweep_m: std::sync::Mutex<()>,
}

/// The heap's shared state.
pub(crate) struct HeapInner {
    /// User handles ([`Heap`], [`Mutator`](super::Mutator), [`Root`](super::Root)); at zero
    /// the workers stop.
    handles: AtomicUsize,
    pub gc_percent: AtomicI32,
    pub mem_limit: AtomicI64,
    pub debug: DebugFlags,
    pub procs: usize,
    /// World stop requested or in effect.
    pub stop: AtomicBool,
    world: std::sync::Mutex<()>,
    world_cv: Condvar,
    /// The trigger was passed; the next session end runs a cycle.
    pub gc_pending: AtomicBool,
    /// Serialises cycles; held for a whole cycle, including the sweep termination that may
    /// run destructors, so nothing a destructor may call takes it.
    cycle: std::sync::Mutex<()>,
    /// Cycle statistics; locked only briefly, never around user code.
    pub gc: std::sync::Mutex<GcState>,
    pub mutators: Mutex<Vec<Arc<MutatorShared>>>,
    pub pools: Mutex<Pools>,
    pub large: Mutex<LargeLists>,
    pub roots: Mutex<RootTable>,
    pub specials: Mutex<HashMap<usize, Special>>,
    pub cleanups: Arc<CleanupQueue>,
    pub counters: Counters,
    pub trigger: AtomicUsize,
    pub goal: AtomicUsize,
    pub sweepgen: AtomicU32,
    /// Background sweeps in flight (sweep termination waits for them).
    sweeping: AtomicUsize,
    /// Spans to free in the background (empties nobody reused for a whole cycle).
    to_free: Mutex<Vec<*mut super::span::GcSpan>>,
    queue: MarkQueue,
    ctl: Arc<WorkerCtl>,
    workers_started: AtomicBool,
    marked_total: AtomicUsize,
    pub start: Instant,
    /// Test hook run between mark and checkmark (clears marks to prove checkmark works).
    #[allow(clippy::type_complexity)]
    pub(crate) after_mark_hook: Mutex<Option<Box<dyn Fn() + Send>>>,
}

// SAFETY: the raw span pointers in `to_free` are owned by the list (mutex-protected); all
// other fields are Sync.
unsafe impl Sync for HeapInner {}
// SAFETY: as above.
unsafe impl Send for HeapInner {}

/// A garbage-collected heap, shared by any number of threads. Cheap to clone (a handle).
///
/// Each thread that allocates or reads objects makes a [`Mutator`](super::Mutator) with
/// [`Heap::mutator`] and works inside its sessions.
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
            self.inner.shutdown_workers();
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
    pub fn new() -> Heap {
        Heap::with_config(Config::from_env())
    }

    /// A heap with explicit settings.
    pub fn with_config(c: Config) -> Heap {
        let goal = pacer::heap_goal(0, c.gc_percent, c.mem_limit, 0);
        Heap {
            inner: Arc::new(HeapInner {
                handles: AtomicUsize::new(1),
                gc_percent: AtomicI32::new(c.gc_percent),
                mem_limit: AtomicI64::new(c.mem_limit),
                debug: c.debug,
                procs: c.procs.max(1),
                stop: AtomicBool::new(false),
                world: std::sync::Mutex::new(()),
                world_cv: Condvar::new(),
                gc_pending: AtomicBool::new(false),
                cycle: std::sync::Mutex::new(()),
                gc: std::sync::Mutex::new(GcState {
                    num_gc: 0,
                    num_forced: 0,
                    pause_total_ns: 0,
                    gc_cpu_ns: 0,
                    pauses: PauseRing::default(),
                    last: CycleRecord::default(),
                    last_gc_unix_ns: 0,
                }),
                mutators: Mutex::new(Vec::new()),
                pools: Mutex::new(Pools::new()),
                large: Mutex::new(LargeLists {
                    live: Vec::new(),
                    unswept: Vec::new(),
                }),
                roots: Mutex::new(RootTable::new()),
                specials: Mutex::new(HashMap::new()),
                cleanups: Arc::new(CleanupQueue::new()),
                counters: Counters::default(),
                trigger: AtomicUsize::new(goal),
                goal: AtomicUsize::new(goal),
                sweepgen: AtomicU32::new(2),
                sweeping: AtomicUsize::new(0),
                to_free: Mutex::new(Vec::new()),
                queue: MarkQueue::new(),
                ctl: Arc::new(WorkerCtl {
                    job: std::sync::Mutex::new((Job::Idle, 0, 0)),
                    cv: Condvar::new(),
                    done: Condvar::new(),
                    sweep_pending: AtomicBool::new(false),
                    sweep_cv: Condvar::new(),
                    sweep_m: std::sync::Mutex::new(()),
                }),
                workers_started: AtomicBool::new(false),
                marked_total: AtomicUsize::new(0),
                start: Instant::now(),
                after_mark_hook: Mutex::new(None),
            }),
        }
    }

    /// Runs a full collection now and returns when it is done (Go's `runtime.GC`). Spans are
    /// swept in the background afterwards.
    ///
    /// # Panics
    /// When called inside a session of this heap on the same thread (the cycle would wait for
    /// that session to end: a deadlock).
    pub fn collect(&self) {
        assert!(
            !super::mutator::in_finalizer(),
            "goheap: Heap::collect() called from a destructor or cleanup; they must not use the heap"
        );
        assert!(
            !super::mutator::in_session_of(&self.inner),
            "goheap: Heap::collect() called inside a session of the same heap; call it outside `enter`"
        );
        self.inner.run_cycle(true);
    }

    /// Sets GOGC and returns the previous value (Go's `debug.SetGCPercent`). Negative turns
    /// proportional collection off.
    pub fn set_gc_percent(&self, p: i32) -> i32 {
        let old = self.inner.gc_percent.swap(p, Ordering::Relaxed);
        self.inner.update_goal();
        old
    }

    /// Sets the soft memory limit in bytes and returns the previous one (Go's
    /// `debug.SetMemoryLimit`); a negative value only reads it.
    pub fn set_memory_limit(&self, limit: i64) -> i64 {
        if limit < 0 {
            return self.inner.mem_limit.load(Ordering::Relaxed);
        }
        let old = self.inner.mem_limit.swap(limit, Ordering::Relaxed);
        self.inner.update_goal();
        old
    }

    /// Statistics (Go's `runtime.ReadMemStats`).
    pub fn stats(&self) -> GcStats {
        stats::read(&self.inner)
    }

    /// Waits until the background sweep of the last cycle is done (tests and benchmarks).
    ///
    /// Returns at once when called from a destructor or cleanup (the sweep it would wait for
    /// may be the one running it).
    pub fn wait_sweep(&self) {
        if super::mutator::in_finalizer() {
            return;
        }
        self.inner.finish_sweep();
    }

    /// Runs every queued cleanup on the calling thread and returns how many ran (cleanups
    /// otherwise run on the heap's cleanup thread).
    pub fn run_cleanups(&self) -> usize {
        self.inner.cleanups.run_all()
    }

    #[doc(hidden)]
    /// Test hook: `f` runs after each mark, before checkmark.
    pub fn __set_after_mark_hook(&self, f: Option<Box<dyn Fn() + Send>>) {
        *self.inner.after_mark_hook.lock() = f;
    }
}

impl HeapInner {
    fn shutdown_workers(&self) {
        let mut j = self.ctl.job.lock().unwrap();
        j.0 = Job::Exit;
        j.1 += 1;
        self.ctl.cv.notify_all();
        drop(j);
        self.ctl.sweep_pending.store(true, Ordering::SeqCst);
        let _g = self.ctl.sweep_m.lock().unwrap();
        self.ctl.sweep_cv.notify_all();
        self.cleanups.close();
    }

    /// Notes that the trigger was passed.
    pub(crate) fn request_gc(&self) {
        if !self.gc_pending.load(Ordering::Relaxed) {
            self.gc_pending.store(true, Ordering::Relaxed);
        }
    }

    fn update_goal(&self) {
        let marked = self.gc.lock().unwrap().last.marked;
        let goal = pacer::heap_goal(
            marked,
            self.gc_percent.load(Ordering::Relaxed),
            self.mem_limit.load(Ordering::Relaxed),
            self.overhead(),
        );
        self.goal.store(goal, Ordering::Relaxed);
        self.trigger.store(goal, Ordering::Relaxed);
        if self.counters.live.load(Ordering::Relaxed) >= goal {
            self.request_gc();
        }
    }

    /// Memory counted against the limit that is not this heap's object bytes: the rest of
    /// what goheap holds from the OS (other heaps, malloc) and span slack.
    pub(crate) fn overhead(&self) -> usize {
        // `COUNTERS.inuse` counts page-heap spans only; huge objects are mapped apart.
        let core = crate::heap::COUNTERS.inuse.load(Ordering::Relaxed);
        let huge = self.counters.huge_bytes.load(Ordering::Relaxed);
        let mine = self
            .counters
            .span_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(huge);
        core.saturating_sub(mine) + (64 << 10)
    }

    // ---- The world.

    pub(crate) fn register(&self, m: Arc<MutatorShared>) {
        self.mutators.lock().push(m);
    }

    pub(crate) fn unregister(&self, m: &Arc<MutatorShared>) {
        self.mutators.lock().retain(|x| !Arc::ptr_eq(x, m));
    }

    /// Opens a session for `m` (blocks while the world is stopped).
    pub(crate) fn enter_world(&self, m: &MutatorShared, nested: bool) {
        loop {
            if world::try_enter(&m.in_session, &self.stop, nested) {
                return;
            }
            let mut g = self.world.lock().unwrap();
            self.world_cv.notify_all();
            while self.stop.load(Ordering::SeqCst) {
                g = self.world_cv.wait(g).unwrap();
            }
        }
    }

    /// Closes a session of `m`.
    pub(crate) fn exit_world(&self, m: &MutatorShared) {
        if world::exit(&m.in_session, &self.stop) {
            let _g = self.world.lock().unwrap();
            self.world_cv.notify_all();
        }
    }

    fn stop_the_world(&self) {
        world::request_stop(&self.stop);
        let mut g = self.world.lock().unwrap();
        loop {
            if world::all_outside(self.mutators.lock().iter().map(|m| &m.in_session)) {
                return;
            }
            g = self
                .world_cv
                .wait_timeout(g, Duration::from_millis(1))
                .unwrap()
                .0;
        }
    }

    fn start_the_world(&self) {
        let _g = self.world.lock().unwrap();
        self.stop.store(false, Ordering::SeqCst);
        self.world_cv.notify_all();
    }

    /// Runs the cycle a passed trigger asked for, unless one is running already.
    pub(crate) fn collect_if_pending(self: &Arc<Self>) {
        if self.gc_pending.load(Ordering::Relaxed) {
            self.run_cycle(false);
        }
    }

    // ---- The cycle.

    pub(crate) fn run_cycle(self: &Arc<Self>, forced: bool) {
        // A poisoned lock (a gccheckmark failure panicked out of a cycle) does not stop
        // later cycles: the panic restarted the world first.
        let _cycle = if forced {
            self.cycle.lock().unwrap_or_else(|e| e.into_inner())
        } else {
            match self.cycle.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            }
        };
        if !forced && !self.gc_pending.load(Ordering::Relaxed) {
            return; // another thread just ran it
        }
        self.ensure_workers();
        let t0 = Instant::now();
        self.stop_the_world();

        // 1. Sweep termination.
        self.finish_sweep();
        for m in self.mutators.lock().iter() {
            // SAFETY: the world is stopped: no mutator is in a session, and none can enter
            // one (or drop itself) before `start_the_world`.
            let local = unsafe { &mut *m.local.get() };
            local.flush();
            self.publish(&mut local.pending);
        }
        let pools = self.pool_list();
        {
            let mut tf = self.to_free.lock();
            for &p in &pools {
                // SAFETY: pools live as long as the heap.
                let mut l = unsafe { (*p).lists.lock() };
                tf.append(&mut l.empty);
            }
        }
        let heap0 = self.counters.live.load(Ordering::Relaxed);
        // The goal this cycle ran under (gctrace prints it, as Go's lastHeapGoal).
        let cycle_goal = self.goal.load(Ordering::Relaxed);
        let t1 = Instant::now();

        // 2. Mark.
        let marked = self.mark();
        let t2 = Instant::now();

        // 3. Mark termination.
        if let Some(h) = self.after_mark_hook.lock().as_ref() {
            h();
        }
        if self.debug.gccheckmark {
            self.checkmark();
        }
        super::weak::process_specials(self);
        self.counters.live.store(marked, Ordering::Relaxed);
        self.sweepgen.fetch_add(2, Ordering::Relaxed);
        for &p in &pools {
            // SAFETY: pools live as long as the heap.
            let mut l = unsafe { (*p).lists.lock() };
            let l = &mut *l;
            l.unswept.append(&mut l.partial);
            l.unswept.append(&mut l.full);
        }
        {
            let mut l = self.large.lock();
            let l = &mut *l;
            l.unswept.append(&mut l.live);
        }
        let goal = pacer::heap_goal(
            marked,
            self.gc_percent.load(Ordering::Relaxed),
            self.mem_limit.load(Ordering::Relaxed),
            self.overhead(),
        );
        self.goal.store(goal, Ordering::Relaxed);
        self.trigger.store(goal, Ordering::Relaxed);
        self.gc_pending.store(false, Ordering::Relaxed);
        let t3 = Instant::now();
        let rec = CycleRecord {
            start_ns: (t0 - self.start).as_nanos() as u64,
            stw1_ns: (t1 - t0).as_nanos() as u64,
            mark_ns: (t2 - t1).as_nanos() as u64,
            stw2_ns: (t3 - t2).as_nanos() as u64,
            heap0,
            heap1: heap0,
            marked,
            goal: cycle_goal,
            procs: self.procs,
            forced,
        };
        let mut gc = self.gc.lock().unwrap();
        gc.num_gc += 1;
        if forced {
            gc.num_forced += 1;
        }
        let pause = (t3 - t0).as_nanos() as u64;
        gc.pause_total_ns += pause;
        gc.gc_cpu_ns += pause * self.procs as u64;
        let end_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        gc.pauses.push(pause, end_unix);
        gc.last_gc_unix_ns = end_unix;
        gc.last = rec;
        let trace = self
            .debug
            .gctrace
            .then(|| stats::gctrace_line(&gc, &rec, self.start.elapsed().as_nanos() as u64));
        drop(gc);
        self.start_the_world();

        // 4. Concurrent sweep, and memory back to the OS under a limit.
        self.kick_sweeper();
        self.enforce_limit();
        if let Some(line) = trace {
            stats::print_line(&line);
        }
    }

    /// Marks from the roots on every core; returns the bytes marked.
    fn mark(&self) -> usize {
        let n = self.procs;
        self.queue.reset(n);
        self.marked_total.store(0, Ordering::Relaxed);
        let mut t = Tracer::new(&self.queue);
        self.roots.lock().for_each(|a| t.mark(a));
        if n > 1 {
            let mut j = self.ctl.job.lock().unwrap();
            j.0 = Job::Mark;
            j.1 += 1;
            j.2 = n - 1;
            self.ctl.cv.notify_all();
        }
        t.run();
        if n > 1 {
            let mut j = self.ctl.job.lock().unwrap();
            while j.2 > 0 {
                j = self.ctl.done.wait(j).unwrap();
            }
            j.0 = Job::Idle;
        }
        self.marked_total
            .fetch_add(t.marked_bytes, Ordering::Relaxed);
        self.marked_total.load(Ordering::Relaxed)
    }

    /// `gccheckmark`: marks again from scratch on one thread and panics naming any
    /// reachable object the real mark missed.
    fn checkmark(&self) {
        let mut t = Tracer::checker(&self.queue);
        self.roots.lock().for_each(|a| t.mark(a));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.run_alone()));
        if let Err(e) = r {
            self.gc_pending.store(false, Ordering::Relaxed);
            self.start_the_world();
            std::panic::resume_unwind(e);
        }
    }

    /// Starts the mark and sweep worker threads (Go's background mark workers, bgsweep).
    fn ensure_workers(self: &Arc<Self>) {
        if self.workers_started.swap(true, Ordering::Relaxed) {
            return;
        }
        // Workers hold only a weak reference, so that dropping the last handle frees the heap.
        let weak = Arc::downgrade(self);
        for i in 0..self.procs - 1 {
            let w = weak.clone();
            let ctl = self.ctl.clone();
            std::thread::Builder::new()
                .name(format!("goheap-mark-{i}"))
                .spawn(move || mark_worker(w, ctl))
                .expect("goheap: cannot start a mark worker thread");
        }
        let ctl = self.ctl.clone();
        std::thread::Builder::new()
            .name("goheap-sweep".into())
            .spawn(move || sweep_worker(weak, ctl))
            .expect("goheap: cannot start the sweeper thread");
    }

    fn kick_sweeper(&self) {
        self.ctl.sweep_pending.store(true, Ordering::SeqCst);
        let _g = self.ctl.sweep_m.lock().unwrap();
        self.ctl.sweep_cv.notify_one();
    }

    /// Sweeps every unswept span (of every pool, and large ones), and frees the spans queued
    /// for freeing. Safe to run from several threads at once.
    pub(crate) fn sweep_all(&self) {
        super::mutator::as_finalizer("a destructor run by the sweeper", || self.sweep_all_inner())
    }

    fn sweep_all_inner(&self) {
        self.sweeping.fetch_add(1, Ordering::SeqCst);
        let sg = self.sweepgen.load(Ordering::Relaxed);
        let mut count = SweepCount::default();
        loop {
            let s = self.to_free.lock().pop();
            let Some(s) = s else { break };
            // SAFETY: spans on `to_free` are empty and held by that list alone.
            unsafe { self.free_span(s) };
        }
        for p in self.pool_list() {
            // SAFETY: pools live as long as the heap.
            let pool: &TypePool = unsafe { &*p };
            loop {
                let s = pool.lists.lock().unswept.pop();
                let Some(s) = s else { break };
                // SAFETY: taken off the unswept list, so we hold it; its mark is over.
                let r = unsafe { sweep_span(&*s, sg, &mut count) };
                let mut l = pool.lists.lock();
                match r {
                    Swept::Empty => l.empty.push(s),
                    Swept::Partial => l.partial.push(s),
                    Swept::Full => l.full.push(s),
                }
            }
        }
        loop {
            let s = self.large.lock().unswept.pop();
            let Some(s) = s else { break };
            // SAFETY: as above.
            match unsafe { sweep_span(&*s, sg, &mut count) } {
                // SAFETY: its one object is dead and dropped.
                Swept::Empty => unsafe { self.free_span(s) },
                _ => self.large.lock().live.push(s),
            }
        }
        self.count_swept(&count);
        self.sweeping.fetch_sub(1, Ordering::SeqCst);
    }

    /// Sweep termination: sweeps what is left and waits for sweeps in flight.
    pub(crate) fn finish_sweep(&self) {
        self.sweep_all();
        while self.sweeping.load(Ordering::SeqCst) > 0 {
            std::thread::yield_now();
        }
    }

    /// Under a memory limit, returns free pages to the OS until goheap's resident heap is
    /// under it (Go's scavenger does this in the background; here right after the cycle).
    fn enforce_limit(&self) {
        let limit = self.mem_limit.load(Ordering::Relaxed);
        if limit == pacer::NO_LIMIT || limit < 0 {
            return;
        }
        let (total, _free, scav) = crate::heap::page_counts();
        let ready = (total - scav) * crate::sizeclass::PAGE_SIZE;
        if ready > limit as usize {
            crate::heap::scavenge(ready - limit as usize, 64);
        }
    }
}

impl Drop for HeapInner {
    /// The last handle is gone, so no object is reachable: every destructor and every
    /// pending cleanup runs, and all memory goes back to the page heap.
    fn drop(&mut self) {
        super::mutator::as_finalizer("a destructor run at heap teardown", || self.teardown())
    }
}

impl HeapInner {
    fn teardown(&self) {
        self.finish_sweep();
        for m in self.mutators.lock().iter() {
            // SAFETY: no mutator exists any more (each holds a handle).
            unsafe { (*m.local.get()).flush() };
        }
        let sg = self.sweepgen.load(Ordering::Relaxed) + 2;
        let mut count = SweepCount::default();
        for p in self.pool_list() {
            // SAFETY: pools live as long as the heap, which is being dropped by us alone.
            let pool = unsafe { &*p };
            let mut g = pool.lists.lock();
            let l = &mut *g;
            let all: Vec<_> = l
                .partial
                .drain(..)
                .chain(l.full.drain(..))
                .chain(l.unswept.drain(..))
                .chain(l.empty.drain(..))
                .collect();
            drop(g);
            for s in all {
                // SAFETY: we hold every span; nothing is reachable, so clearing the marks
                // makes the sweep drop every allocated object exactly once.
                unsafe {
                    (*s).clear_marks();
                    sweep_span(&*s, sg, &mut count);
                    self.free_span(s);
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
                self.free_span(s);
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

fn mark_worker(heap: ArcWeak<HeapInner>, ctl: Arc<WorkerCtl>) {
    let mut seen = 0u64;
    loop {
        {
            let mut j = ctl.job.lock().unwrap();
            while j.1 == seen {
                j = ctl.cv.wait(j).unwrap();
            }
            seen = j.1;
            match j.0 {
                Job::Exit => return,
                Job::Idle => continue,
                Job::Mark => {}
            }
        }
        let Some(h) = heap.upgrade() else { return };
        let mut t = Tracer::new(&h.queue);
        t.run();
        h.marked_total.fetch_add(t.marked_bytes, Ordering::Relaxed);
        drop(h);
        let mut j = ctl.job.lock().unwrap();
        j.2 -= 1;
        if j.2 == 0 {
            ctl.done.notify_all();
        }
    }
}

fn sweep_worker(heap: ArcWeak<HeapInner>, ctl: Arc<WorkerCtl>) {
    loop {
        {
            let mut g = ctl.sweep_m.lock().unwrap();
            while !ctl.sweep_pending.swap(false, Ordering::SeqCst) {
                g = ctl.sweep_cv.wait(g).unwrap();
            }
        }
        if ctl.job.lock().unwrap().0 == Job::Exit {
            return;
        }
        let Some(h) = heap.upgrade() else { return };
        h.sweep_all();
        // Dropping the last strong reference here would tear the heap down on this thread;
        // that is fine: the teardown does not wait for the workers.
        drop(h);
    }
}

/// Used by stats: counters of the last cycle.
pub(crate) fn last_cycle(h: &HeapInner) -> (u32, u32, u64, u64, u64, CycleRecord, Vec<u64>) {
    let g = h.gc.lock().unwrap();
    (
        g.num_gc,
        g.num_forced,
        g.pause_total_ns,
        g.gc_cpu_ns,
        g.last_gc_unix_ns,
        g.last,
        g.pauses.recent(),
    )
}
