//! One collection cycle, as Go runs it (`gcStart`, `gcMarkDone`, `gcMarkTermination`), and
//! the collector thread that runs cycles. The plan says *when*; how each step is done lives
//! with the state it touches (`sweep.rs`, `barrier.rs`, `mark.rs`, `mutator.rs`, `weak.rs`,
//! `pacer.rs`).
//!
//! ```text
//!   sweep termination   finish the last sweep; every mutator has let go of the spans it
//!                       held across the last mark termination
//!   mark start          phase = MARK (barriers on); sessions open now are grey; roots
//!                       scanned; mark workers started, for the cores the busy mutators
//!                       leave (pacer.rs, `mark_workers`)
//!   concurrent mark     workers trace, or the mutators in slices when they fill the
//!                       cores (fractional.rs); barriers shade; grey sessions end one by one
//!   mark termination    no grey session left, queue quiet, checked again with the gate
//!                       closed: phase = MARK_DONE; weak slots of dead targets cleared;
//!                       sweepgen += 2; phase = OFF; spans of the mark to the unswept lists
//!   concurrent sweep    background sweeper and lazy sweeps (sweep.rs)
//! ```
//!
//! Nothing stops the world, and no user code runs on the collector thread while anything
//! waits for it (destructors and cleanups run on the sweeper and cleanup threads). Only
//! `gccheckmark`, a debug mode, holds every mutator outside its sessions while it verifies
//! the mark.
//!
//! Mark termination's order matters to allocating mutators (`alloc.rs`,
//! `Local::allocates_black`): the generation is bumped before the phase turns `OFF`, so that
//! a mutator that sees `OFF` also sees that the spans it holds now await a sweep.

use core::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::alloc;
use super::barrier::{MARK_DONE, OFF};
use super::heap::HeapInner;
use super::mark::Tracer;
use super::mutator::MutatorShared;
use super::stats::{self, CycleRecord, GcState};
use super::workqueue::QuietWait;
use super::world;

/// Cycle requests and completions, between mutators, `Heap::collect` and the collector
/// thread. Everything under `req`.
pub(crate) struct CycleCtl {
    req: Mutex<Requests>,
    /// The collector thread waits here for a request.
    work_cv: Condvar,
    /// `Heap::collect` waits here for its cycle.
    done_cv: Condvar,
    /// Statistics of finished cycles; locked briefly, never around user code.
    pub stats: Mutex<GcState>,
    /// A request is pending (a filter read without the lock on every trigger check).
    pending_hint: core::sync::atomic::AtomicBool,
}

struct Requests {
    pending: bool,
    forced: bool,
    /// Cycles started and finished.
    started: u64,
    finished: u64,
    exit: bool,
    /// A forced cycle's `gccheckmark` report, for its `Heap::collect`.
    failure: Option<String>,
    /// The running cycle has waited a second for this thread's session (`mutator.rs`,
    /// `Mutators::wait_until`); cleared when the cycle finishes. An `Arc` so that nothing
    /// allocates under the lock (the page heap's growth check takes it: `pacer.rs`).
    blocked_by: Option<Arc<str>>,
}

impl CycleCtl {
    pub fn new() -> CycleCtl {
        CycleCtl {
            req: Mutex::new(Requests {
                pending: false,
                forced: false,
                started: 0,
                finished: 0,
                exit: false,
                failure: None,
                blocked_by: None,
            }),
            work_cv: Condvar::new(),
            done_cv: Condvar::new(),
            stats: Mutex::new(GcState::default()),
            pending_hint: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Asks for a cycle; returns the number of the cycle that will satisfy the request (the
    /// next one to start). A trigger (not forced) while a cycle runs is dropped: the trigger
    /// it passed belongs to that cycle, and the cycle checks the next trigger as it ends.
    pub fn request(&self, forced: bool) -> u64 {
        if !forced && self.pending_hint.load(Ordering::Relaxed) {
            return 0;
        }
        let mut r = self.req.lock().unwrap();
        if !forced && r.started > r.finished {
            return 0;
        }
        r.pending = true;
        r.forced |= forced;
        self.pending_hint.store(true, Ordering::Relaxed);
        self.work_cv.notify_one();
        r.started + 1
    }

    /// Waits until cycle `n` has finished its mark termination; a `gccheckmark` report of
    /// a forced cycle comes back as `Err`.
    pub fn wait_finished(&self, n: u64) -> Result<(), String> {
        let mut r = self.req.lock().unwrap();
        while r.finished < n && !r.exit {
            r = self.done_cv.wait(r).unwrap();
        }
        match r.failure.take() {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// Waits until cycle `n` has finished its mark termination, or a cycle has waited a
    /// second for a session: `Err` names the thread of that session. Never waits for a
    /// session that has not ended within that second plus the rest of the cycle.
    pub fn wait_finished_unless_blocked(&self, n: u64) -> Result<(), Arc<str>> {
        let mut r = self.req.lock().unwrap();
        while r.finished < n && !r.exit {
            if let Some(t) = &r.blocked_by {
                return Err(t.clone());
            }
            r = self.done_cv.wait(r).unwrap();
        }
        Ok(())
    }

    /// The running cycle has waited a second for `thread`'s session.
    pub fn note_blocked(&self, thread: &str) {
        let t: Arc<str> = thread.into();
        let mut r = self.req.lock().unwrap();
        r.blocked_by = Some(t);
        self.done_cv.notify_all();
    }

    /// Cycles started so far (test hook `Heap::__cycles_started`).
    pub fn started(&self) -> u64 {
        self.req.lock().unwrap().started
    }

    /// A forced cycle or the collector's exit is asked for: someone waits for the running
    /// cycle to end.
    pub fn someone_waits(&self) -> bool {
        let r = self.req.lock().unwrap();
        r.forced || r.exit
    }

    /// Lets the collector thread exit.
    pub fn shutdown(&self) {
        let mut r = self.req.lock().unwrap();
        r.exit = true;
        self.work_cv.notify_all();
        self.done_cv.notify_all();
    }

    /// Takes the next request (sleeping until there is one); `None` at exit.
    fn next(&self) -> Option<bool> {
        let mut r = self.req.lock().unwrap();
        loop {
            if r.exit {
                return None;
            }
            if r.pending {
                r.pending = false;
                r.started += 1;
                let forced = core::mem::take(&mut r.forced);
                // Stays set while the cycle runs: triggers are dropped meanwhile.
                return Some(forced);
            }
            r = self.work_cv.wait(r).unwrap();
        }
    }

    /// Cycle done; `failure` is a `gccheckmark` report, raised in the `Heap::collect` that
    /// waits for the cycle (a background cycle's report aborts, as Go throws).
    fn finished(&self, failure: Option<String>, forced: bool) {
        let mut r = self.req.lock().unwrap();
        r.finished += 1;
        r.blocked_by = None;
        self.pending_hint.store(r.pending, Ordering::Relaxed);
        if let Some(f) = failure {
            if !forced {
                eprintln!("{f}");
                std::process::abort();
            }
            r.failure = Some(f);
        }
        self.done_cv.notify_all();
    }
}

/// Starts the heap's collector thread. It sleeps on the cycle control alone (shared with
/// it), holding only a weak reference to the heap, so that dropping the last handle frees
/// the heap; `HeapInner::shutdown_threads` wakes it to exit.
pub(crate) fn start_thread(h: &Arc<HeapInner>) {
    let w = Arc::downgrade(h);
    let ctl = h.cycle.clone();
    let holders = h.holders.clone();
    std::thread::Builder::new()
        .name("goheap-gc".into())
        .spawn(move || {
            crate::report::abort_on_panic("the collector thread", || {
                while let Some(forced) = ctl.next() {
                    let Some(h) = holders.hold(&w) else { return };
                    let failure = run(&h, forced);
                    ctl.finished(failure, forced);
                    // Mutators that passed the new trigger while the cycle ended were dropped.
                    if h.in_use_for_goal() >= h.pacer.trigger() {
                        h.request_gc();
                    }
                }
            })
        })
        .expect("goheap: cannot start the collector thread");
}

/// One cycle (module essay); returns a `gccheckmark` report if the check failed.
fn run(h: &Arc<HeapInner>, forced: bool) -> Option<String> {
    let t0 = Instant::now();
    sweep_termination(h);
    let heap0 = h.counters.live.load(Ordering::Relaxed);
    let cycle_goal = h.pacer.goal();
    let t1 = Instant::now();

    // Who marks (pacer.rs: dedicated workers and the fractional share).
    let plan = super::pacer::mark_workers(h.procs, h.mutators.count_busy(), forced);
    // The assists' schedule runs in the goal's terms (all memory counted).
    h.pacer.mark_started(heap0 + h.other_bytes());
    stats::update_limiter(h);
    h.markers.set_fractional_ppm(plan.fractional_ppm);
    let greys = mark_start(h, plan.dedicated);

    let ended = mark_done(h, &greys, t1, plan);
    h.markers.set_fractional_ppm(0);
    let failure = ended.failure;
    let t3 = Instant::now();
    // Workers' time: the dedicated ones for the whole mark, those the collector started
    // when the mutators' share was not enough for the rest of it.
    let worker_ns = (t3 - t1).as_nanos() as u64 * plan.dedicated as u64
        + ended
            .took_over
            .map_or(0, |t| (t3 - t.at).as_nanos() as u64 * t.workers as u64);
    let marked_by_tracing = h.barrier.marked.load(Ordering::Relaxed);
    let live_end = h.counters.live.load(Ordering::Relaxed);
    let mark_alloc = live_end.saturating_sub(heap0);
    let Terminated { to_sweep, cleanups } = mark_termination(h);
    let t4 = Instant::now();

    // Objects allocated during the mark stay allocated until the next cycle (black ones are
    // marked, grey sessions' ones were found by tracing): the live counter keeps them, and
    // the pacer counts them as marked, as Go does (`Pacer::mark_ended`).
    let marked = marked_by_tracing;
    h.counters
        .live
        .store(marked + mark_alloc, Ordering::Relaxed);
    // The goal counts memory the heap's objects own (pacer.rs essay), from the settled
    // count at most: what dead objects own is still held until their sweep, which sets the
    // goal again. The record's heap sizes are the heap's objects.
    let other = h.other_bytes();
    h.pacer.mark_ended(
        marked,
        mark_alloc,
        other.min(h.pacer.settled_other()),
        h.beside_bytes(),
    );
    h.rearm_external();
    h.sweep.schedule(to_sweep, h.in_use_for_goal());
    let rec = CycleRecord {
        start_ns: (t0 - h.start).as_nanos() as u64,
        stw1_ns: (t1 - t0).as_nanos() as u64,
        mark_ns: (t3 - t1).as_nanos() as u64,
        stw2_ns: (t4 - t3).as_nanos() as u64,
        heap0,
        heap1: live_end,
        marked,
        goal: cycle_goal,
        procs: h.procs,
        workers: plan.dedicated + ended.took_over.map_or(0, |t| t.workers),
        worker_ns,
        fractional_ppm: plan.fractional_ppm,
        forced,
    };
    let max_block = h.mutators.pauses.take_cycle_max();
    let trace = stats::record_cycle(h, &rec, max_block);
    // Counted: the cycle's cleanups may run now (they see it in `GcStats::num_gc`).
    super::weak::queue_cleanups(h, cleanups);
    h.sweep.kick();
    // A program that only uses GC heaps starts the scavenger here (the explicit-free face
    // starts it on its own slow paths): it returns what the sweep frees.
    crate::scavenger::ensure_started();
    enforce_limit(h);
    if let Some(line) = trace {
        stats::print_line(&line);
    }
    failure
}

/// Sweep termination: the last cycle's sweep is finished and no mutator holds a span it
/// took before the last mark termination (those spans are swept now too).
fn sweep_termination(h: &HeapInner) {
    let ms = h.mutators.snapshot();
    let mut busy: Vec<&Arc<MutatorShared>> = Vec::new();
    for m in &ms {
        if !h.mutators.flush_idle(h, m, false) {
            busy.push(m);
        }
    }
    if !busy.is_empty() {
        // Sessions that have not passed a boundary since the last mark termination: they
        // let their spans go at their next one.
        let sg = h.sweep.sweepgen.load(Ordering::Acquire);
        // Those sessions have been open since the last mark termination ended.
        let last = h.cycle.stats.lock().unwrap().last;
        let since = h.start
            + std::time::Duration::from_nanos(
                last.start_ns + last.stw1_ns + last.mark_ns + last.stw2_ns,
            );
        h.mutators
            .wait_until(h, "the sweep termination of a collection", since, || {
                busy.iter().map(|m| &***m).find(|m| {
                    m.flushed.load(Ordering::SeqCst) != sg && !h.mutators.flush_idle(h, m, true)
                })
            });
    }
    super::sweep::finish(h);
    h.settle_goal();
}

/// A session open when the mark started: grey until its epoch moves.
struct GreySession {
    m: Arc<MutatorShared>,
    epoch: u64,
}

/// Mark start: barriers on, the grey sessions noted, roots scanned, workers started.
fn mark_start(h: &Arc<HeapInner>, workers: usize) -> Vec<GreySession> {
    // Workers of the last mark that the OS has not run yet join this one when it does.
    h.barrier.queue.reset(workers, false);
    h.sweep
        .mark_sweepgen
        .store(h.sweep.sweepgen.load(Ordering::Relaxed), Ordering::Relaxed);
    h.cycle_no.fetch_add(1, Ordering::Release);
    h.barrier.start();
    // After the phase (world.rs: colour at mark start).
    let greys: Vec<GreySession> = h
        .mutators
        .snapshot()
        .into_iter()
        .filter_map(|m| world::open_session(&m.epoch).map(|epoch| GreySession { m, epoch }))
        .collect();
    super::barrier::marker_begin();
    let mut t = Tracer::new();
    {
        let roots = h.roots.lock();
        roots.for_each(|a| t.mark(a));
    }
    h.barrier
        .marked
        .fetch_add(t.marked_bytes, Ordering::Relaxed);
    t.publish(&h.barrier.queue);
    h.markers.start(workers, h);
    greys
}

/// How a mark ended ([`mark_done`]).
struct MarkEnd {
    /// A `gccheckmark` report.
    failure: Option<String>,
    /// The collector started workers during a mark the mutators carried.
    took_over: Option<TakeOver>,
}

/// Workers started during a mark the mutators carried (fractional.rs), and when.
#[derive(Clone, Copy)]
struct TakeOver {
    at: Instant,
    workers: usize,
}

/// Waits until the mark is complete, then ends the phase (`MARK_DONE`) with the gate
/// closed; under `gccheckmark`, verifies the mark with every mutator held outside its
/// sessions.
///
/// When the mutators carry the mark (`plan` has no dedicated worker), the collector neither
/// traces nor starts workers while they do: it sleeps until the mark is quiet, until
/// someone needs it to end (`WorkQueue::want_help`; a forced cycle or the heap's shutdown
/// already pending count too), or for [`super::fractional::PATIENCE`] at most (the
/// `Markers::patience`), and then
/// takes over with workers.
fn mark_done(
    h: &Arc<HeapInner>,
    greys: &[GreySession],
    mark_start: Instant,
    plan: super::pacer::MarkWorkers,
) -> MarkEnd {
    h.mutators.wait_until(
        h,
        "the mark termination of a collection",
        mark_start,
        || {
            greys
                .iter()
                .find(|g| !world::passed(&g.m.epoch, g.epoch))
                .map(|g| &*g.m)
        },
    );
    h.barrier.greys_passed();
    let checking = h.debug.gccheckmark || h.after_mark_hook.lock().is_some();
    if checking {
        h.mutators.stop_all(h);
    }
    // The mutators carry the mark until the collector takes over: at once when a forced
    // cycle or the shutdown is already asked for (found by review: without workers, such a
    // mark was left to the collector alone), or under gccheckmark's stop (no mutator runs);
    // later when someone asks (`WorkQueue::want_help`) or the patience runs out.
    let mut carried = plan.dedicated == 0;
    let patience = Instant::now() + h.markers.patience();
    let mut took_over = None;
    loop {
        if carried {
            let why = if checking || h.cycle.someone_waits() {
                QuietWait::HelpWanted
            } else {
                h.barrier.queue.wait_quiet_or_help(Some(patience))
            };
            if why != QuietWait::Quiet {
                carried = false;
                h.markers.set_fractional_ppm(0);
                // Someone waits: every core; patience over: the background quarter.
                let forced = why == QuietWait::HelpWanted;
                let n = super::pacer::mark_workers(h.procs, 0, forced).dedicated;
                h.markers.start(n, h);
                took_over = Some(TakeOver {
                    at: Instant::now(),
                    workers: n,
                });
                continue;
            }
        } else {
            // While no mark worker is in the run, the collector traces waiting buffers itself,
            // as a worker does, before it sleeps: a worker refused by a heap that closes (or
            // not started yet) must not leave a buffer nobody takes (found under TSan: the
            // collector waited for it while the closing thread waited for the collector).
            // While a worker is in the run, the collector sleeps and leaves the buffers to it:
            // a collector that traced too was one more runnable thread than the cores, and
            // preempted the mutator (62 of the 94 pauses of 2 ms or more in one run of the
            // latency benchmark, one mutator on two cores; 9 to 25 such pauses after, against
            // 23 to 94). The mark's end is no slower for it on binary-trees (peak RSS 225-227
            // against 231-257 MiB, side by side).
            if h.barrier.queue.has_buffers() && !h.barrier.queue.has_running_workers() {
                super::mark::take_waiting(&h.barrier);
            }
            h.barrier.queue.wait_quiet();
        }
        // The store gate first (stores and borrow starts take it before a heap's gate), one
        // heap's termination at a time.
        let one_writer = super::barrier::STORE_GATE_WRITER
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        super::barrier::STORE_GATE.write();
        h.barrier.gate.write();
        // With the gates closed no barrier is shading or about to, the queue's only
        // outside producers: quiet now is final (barrier.rs: the termination argument).
        let done = h.barrier.queue.is_quiet();
        if done {
            h.barrier.finish(MARK_DONE);
        }
        h.barrier.gate.write_done();
        super::barrier::STORE_GATE.write_done();
        drop(one_writer);
        if done {
            break;
        }
    }
    // Workers not yet scheduled by the OS return when they get a core; the next mark
    // start waits for them, not this termination.
    h.barrier.queue.finish();
    let mut failure = None;
    if checking {
        if let Some(f) = h.after_mark_hook.lock().as_ref() {
            f();
        }
        if h.debug.gccheckmark {
            failure = checkmark(h).err();
        }
        h.mutators.restart_all();
    }
    MarkEnd { failure, took_over }
}

/// `gccheckmark`: marks again from the roots on this thread (every mutator held outside
/// its sessions, so the roots are the root table) and panics naming any reachable object
/// the mark missed.
fn checkmark(h: &HeapInner) -> Result<(), String> {
    let mut t = Tracer::checker();
    h.roots.lock().for_each(|a| t.mark(a));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.run_alone()));
    r.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "goheap gccheckmark: the check failed".into())
    })
}

/// Mark termination after `MARK_DONE` (module essay for the order); returns the number of
/// spans handed to the sweep.
/// What mark termination leaves to the rest of the cycle.
struct Terminated {
    /// Spans handed to the sweep.
    to_sweep: usize,
    /// Cleanups of objects found dead, queued once the cycle is counted.
    cleanups: Vec<super::weak::Cleanup>,
}

fn mark_termination(h: &HeapInner) -> Terminated {
    let cleanups = super::weak::process_specials(h);
    h.sweep.sweepgen.fetch_add(2, Ordering::Release);
    h.barrier.phase.store(OFF, Ordering::SeqCst);
    h.mutators.phase_changed();
    let sg = h.sweep.sweepgen.load(Ordering::Relaxed);
    let mut moved = 0;
    for p in alloc::pool_list(h) {
        // SAFETY: pools live as long as the heap.
        let mut l = unsafe { (*p).lists.lock() };
        let l = &mut *l;
        moved += move_stale(&mut l.partial, &mut l.unswept, sg);
        moved += move_stale(&mut l.full, &mut l.unswept, sg);
    }
    {
        let mut l = h.large.lock();
        let l = &mut *l;
        moved += move_stale(&mut l.live, &mut l.unswept, sg);
    }
    for m in h.mutators.snapshot() {
        h.mutators.flush_idle(h, &m, false);
    }
    Terminated {
        to_sweep: moved,
        cleanups,
    }
}

/// Moves the spans of `from` that were last swept before generation `sg` to `to`; returns
/// how many.
fn move_stale(
    from: &mut Vec<*mut super::span::GcSpan>,
    to: &mut Vec<*mut super::span::GcSpan>,
    sg: u32,
) -> usize {
    let before = to.len();
    from.retain(|&s| {
        // SAFETY: span structs are never unmapped; the list's lock is held.
        let stale = unsafe { (*s).sweepgen.load(Ordering::Relaxed) } != sg;
        if stale {
            to.push(s);
        }
        !stale
    });
    to.len() - before
}

/// Under a memory limit, returns free pages to the OS until goheap's resident heap is at
/// most 95% of it (Go's `memoryLimitGoal` for its scavenger): right after the cycle, and
/// again when its sweep has freed the dead objects' spans (`HeapInner::settle_goal`).
pub(crate) fn enforce_limit(h: &HeapInner) {
    let limit = h.pacer.mem_limit.load(Ordering::Relaxed);
    if limit == super::pacer::NO_LIMIT || limit < 0 {
        return;
    }
    let target = limit as usize - limit as usize / 20;
    let (total, _free, scav) = crate::heap::page_counts();
    let ready = (total - scav) * crate::sizeclass::PAGE_SIZE;
    if ready > target {
        crate::heap::scavenge(ready - target, 64);
    }
}
