//! The shared part of parallel marking: buffers of work items that busy workers hand to
//! idle ones, producers outside the workers (write barriers, the root scan, assists), idle
//! workers that sleep until there is work, and the termination rule. Generic over the item
//! type (the marker's items are spans, `mark.rs`) so that its loom model (`tests/loom.rs`,
//! `mark_termination`) runs this very code.
//!
//! # Sharing
//!
//! A worker takes items from its own local queue (for the marker a FIFO ring of spans). When
//! it holds more than [`SHARE_DEPTH`] items, another worker is idle and no buffer is already
//! waiting for it, or when it holds more than [`LOCAL_MAX`] at all, it moves about half of
//! them, the oldest, to the shared list of buffers (Go's full work buffers). Barriers,
//! assists and the root scan push whole buffers the same way. One lock acquisition moves a
//! buffer, not an item.
//!
//! # Sleeping, and who is woken
//!
//! A worker that finds no buffer counts itself idle and sleeps on `work_cv` until a buffer
//! arrives or the mark is declared over. Every push happens under the queue's mutex, and an
//! idle worker re-checks the list under the same mutex before sleeping.
//!
//! A push wakes an idle worker only when no other woken worker is still on its way to the
//! list: `State::waking` is a token, "a worker was notified and has not looked yet" (Go's
//! `nmspinning`: `wakep` starts an M only when no M is spinning). The push that finds
//! it clear sets it and notifies one worker; a worker that returns from `work_cv`'s wait
//! clears it and, in the same critical section, looks at the list. A worker that takes a
//! buffer and leaves others behind passes the wake on (sets the token and notifies the next
//! idle worker), so a burst of buffers wakes idle workers one after another, each once,
//! rather than one notify (a `futex_wake`) per buffer while the first woken worker waits for
//! a core. Before, a busy worker sharing with an idle one spilled and notified again for
//! every item it processed until the woken worker got the lock: 650 of the 2,000 futex
//! calls sampled in binary-trees 19 at 16 threads.
//!
//! No wake-up is lost (loom: `mark_termination`,
//! `pushes_wake_sleeping_workers_through_the_token`): whenever a buffer waits on the list,
//! one of these holds when the mutex is released:
//! - no worker is idle: every worker of the run checks the list under the mutex before it
//!   sleeps (one not yet in the run checks it when it joins);
//! - the token is set: it was set by a notify made under the mutex while a worker was idle,
//!   i.e. inside `work_cv`'s wait or woken from it and not yet back under the mutex; that
//!   worker (or one woken with it) returns from the wait, clears the token and looks at the
//!   list in one critical section;
//! - a worker not idle (the one that just cleared the token and found the buffer, or the one
//!   that pushed it) will look at the list before it sleeps.
//!
//! A clear token with an idle worker and a waiting buffer is never left behind: the push
//! sets it, and the looker that clears it either takes a buffer (no longer idle) or finds
//! the list empty. Clearing the token early (two workers woken) costs a wake-up at most;
//! setting it without a notify, or not clearing it on return from the wait, loses one
//! (the models' mutants). Nothing spins or yields.
//!
//! # Termination
//!
//! The queue is *quiet* when every worker that joined the run is idle and no buffer is left. With only workers
//! producing work (`auto_finish`, the loom model), quiet is final:
//! a worker shares only while it is not idle, under the mutex, before it could go idle, so
//! the last worker to go idle sees every buffer ever pushed already taken, and ends the run.
//! With outside producers (concurrent marking), quiet is only a hint: the collector waits for
//! it ([`WorkQueue::wait_quiet`]), then blocks the producers (the barrier's gate) and checks
//! again ([`WorkQueue::is_quiet`]) before it ends the run with [`WorkQueue::finish`].
//!
//! # A run without workers
//!
//! When the program's threads fill the cores, a run has no worker: the mutators mark in
//! slices of their own (`fractional.rs`) and by assists, and the collector does not trace
//! either (one more runnable thread than cores preempts a mutator). It sleeps in
//! [`WorkQueue::wait_quiet_or_help`] instead, and whoever needs the mark to end without the
//! mutators' help (`Heap::collect`, a heap shutting down, a mutator leaving the heap) calls
//! [`WorkQueue::want_help`], which sets a flag under the mutex and notifies the same
//! condition variable: the flag is read under the mutex before each sleep, so the call is
//! never lost (loom: `want_help_wakes_the_collector`).

use crate::sync::{AtomicBool, AtomicUsize, Ordering};

#[cfg(loom)]
use loom::sync::{Condvar, Mutex};
#[cfg(not(loom))]
use std::sync::{Condvar, Mutex};

/// One worker's view: its local queue of items and what it does with an item.
pub trait Worker<T> {
    /// Takes the next item of the local queue.
    fn next(&mut self) -> Option<T>;
    /// Items in the local queue.
    fn local(&self) -> usize;
    /// Gives away about half of the local items (the oldest), at least one when it holds
    /// more than one.
    fn spill(&mut self) -> Vec<T>;
    /// Receives a shared buffer (the local queue is empty).
    fn take(&mut self, buf: Vec<T>);
    /// Processes one item (may queue more locally).
    fn process(&mut self, item: T);
    /// The worker is about to go idle (publish what it counted: the run may end while it
    /// sleeps).
    fn on_idle(&mut self) {}
    /// The worker took a shared buffer.
    fn on_work(&mut self) {}
}

/// Local items above which a worker gives half to an idle worker.
pub const SHARE_DEPTH: usize = 8;
/// Local items above which a worker moves half to the shared list even when no worker is
/// idle (keeps its queue bounded and the work stealable).
pub const LOCAL_MAX: usize = 256;

/// The mutex-protected part. Written only under `WorkQueue::state`.
struct State<T> {
    bufs: Vec<Vec<T>>,
    /// Workers counted idle (asleep or about to sleep).
    idle: usize,
    /// Workers of this run.
    workers: usize,
    /// Workers that have entered this run and not left it.
    running: usize,
    /// The run is over: workers return.
    done: bool,
    /// Quiet ends the run (no outside producers).
    auto_finish: bool,
    /// Someone needs this run to end without the mutators' help ([`WorkQueue::want_help`]);
    /// cleared when a run ends ([`WorkQueue::finish`]), not when one starts, so that a call
    /// made between the last run's end and this one's start counts for this one (found by
    /// review: a mutator leaving just before a mark start had its call wiped by the reset).
    help_wanted: bool,
    /// A worker was notified on `work_cv` for a buffer and has not looked at `bufs` yet:
    /// pushes do not notify another (module essay, "who is woken"). Set with the notify;
    /// cleared by a worker returning from the wait, which then looks at `bufs`.
    waking: bool,
}

/// What ended the collector's sleep in [`WorkQueue::wait_quiet_or_help`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuietWait {
    /// The queue is quiet.
    Quiet,
    /// [`WorkQueue::want_help`] was called in this run.
    HelpWanted,
    /// The deadline passed first.
    Deadline,
}

/// Loom only: a broken form of the wake-up protocol, which the models must catch
/// (`tests/loom.rs`, `mark_termination`).
#[cfg(loom)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WakeMutant {
    /// The protocol as built.
    Correct,
    /// A push takes the token but does not notify (the wake-up removed).
    NoNotify,
    /// A worker returning from the wait keeps the token (nobody may wake the next one).
    TokenKept,
    /// A push takes the token (and notifies) even when no worker is idle: the token then
    /// promises a look that no woken worker will make.
    TokenWithoutSleeper,
    /// The collector raises `quiet_waiting` once per wait, not at every sleep, while the
    /// notifiers lower it: its second sleep is never answered.
    QuietRaisedOnce,
}

/// Buffers shared between workers, and the idle count.
pub struct WorkQueue<T> {
    state: Mutex<State<T>>,
    /// Idle workers wait here for a buffer or the end of the run.
    work_cv: Condvar,
    /// The collector waits here for quiet.
    quiet_cv: Condvar,
    /// Mirror of `state.bufs.len()`, read without the lock before taking it.
    nbufs: AtomicUsize,
    /// Mirror of `state.idle`, read by busy workers to decide whether to share.
    idle: AtomicUsize,
    /// The collector sleeps in [`WorkQueue::wait_quiet`] and nobody has answered this look
    /// yet: whoever finds the queue quiet must tell it. Raised under `state` by the
    /// collector each time it goes to sleep; lowered under `state` by the one that notifies
    /// it (a worker going idle, [`WorkQueue::helper_done`]), so that one look is answered by
    /// one `futex_wake`, not one per assist that ends while the collector waits for a core;
    /// read without the lock by helpers first.
    quiet_waiting: AtomicBool,
    /// An outside helper (a mark assist) found no buffer to take: the next busy worker to
    /// see it shares half its stack, as for an idle worker. Without it a lone worker never
    /// shares, and assists, finding nothing, cannot slow the allocation that outruns it.
    hungry: AtomicBool,
    /// Loom only: the protocol variant under test. Set at construction.
    #[cfg(loom)]
    mutant: WakeMutant,
}

impl<T> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> WorkQueue<T> {
    /// An empty queue for one worker, ending when quiet.
    pub fn new() -> Self {
        WorkQueue {
            state: Mutex::new(State {
                bufs: Vec::new(),
                idle: 0,
                workers: 1,
                running: 0,
                done: false,
                auto_finish: true,
                help_wanted: false,
                waking: false,
            }),
            work_cv: Condvar::new(),
            quiet_cv: Condvar::new(),
            nbufs: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            quiet_waiting: AtomicBool::new(false),
            hungry: AtomicBool::new(false),
            #[cfg(loom)]
            mutant: WakeMutant::Correct,
        }
    }

    /// Loom only: an empty queue whose wake-ups are broken as `mutant` says.
    #[cfg(loom)]
    pub fn with_mutant(mutant: WakeMutant) -> Self {
        WorkQueue {
            mutant,
            ..Self::new()
        }
    }

    /// Prepares a run with `workers` workers. With `auto_finish` the run ends when quiet;
    /// otherwise at [`Self::finish`]. A worker still in the last run (late to see its end)
    /// stays and works in this one: the idle and running counts carry over.
    pub fn reset(&self, workers: usize, auto_finish: bool) {
        let mut g = self.state.lock().unwrap();
        g.workers = workers;
        g.done = false;
        g.auto_finish = auto_finish;
        self.idle.store(0, Ordering::Relaxed);
        self.hungry.store(false, Ordering::Relaxed);
    }

    /// Hands a buffer of items to the workers (from a worker or from outside).
    pub fn push(&self, b: Vec<T>) {
        if b.is_empty() {
            return;
        }
        let mut g = self.state.lock().unwrap();
        g.bufs.push(b);
        self.nbufs.fetch_add(1, Ordering::Relaxed);
        self.wake_for_buffer(&mut g);
    }

    /// A buffer waits on the list (under the mutex): notifies one idle worker unless none is
    /// idle or one is already on its way (module essay, "who is woken").
    fn wake_for_buffer(&self, g: &mut State<T>) {
        #[cfg(loom)]
        match self.mutant {
            WakeMutant::NoNotify => {
                if g.idle > 0 {
                    g.waking = true;
                }
                return;
            }
            WakeMutant::TokenWithoutSleeper => {
                if !g.waking {
                    g.waking = true;
                    self.work_cv.notify_one();
                }
                return;
            }
            _ => {}
        }
        if g.idle > 0 && !g.waking {
            g.waking = true;
            self.work_cv.notify_one();
        }
    }

    /// An outside helper found no buffer: asks busy workers to share.
    pub fn want(&self) {
        if !self.hungry.load(Ordering::Relaxed) {
            self.hungry.store(true, Ordering::Relaxed);
        }
    }

    /// Hands a buffer to the workers unless the lock is held (then gives it back): for a
    /// helper in a pause, which does more of its own work and tries again rather than
    /// sleep behind a holder the OS may have taken off the CPU.
    pub fn try_push(&self, b: Vec<T>) -> Result<(), Vec<T>> {
        if b.is_empty() {
            return Ok(());
        }
        let Ok(mut g) = self.state.try_lock() else {
            return Err(b);
        };
        g.bufs.push(b);
        self.nbufs.fetch_add(1, Ordering::Relaxed);
        self.wake_for_buffer(&mut g);
        Ok(())
    }

    /// An outside helper (a mark assist) took buffers and processed them: if the run is
    /// quiet now and the collector waits for that, tell it. A helper is a mutator in a
    /// pause, so it never sleeps on the lock here:
    /// - the flag is set under the lock before the collector's check, and the helper's
    ///   steal took the same lock, so either the check saw the steal or this load sees
    ///   the flag;
    /// - when the lock is held, its holder took it after the helper's steal and sees its
    ///   effect: the collector (checking quiet itself), a worker (which notifies when it
    ///   finds the run quiet as it goes idle, takes a buffer, so that the run is not quiet,
    ///   or pushes one, likewise), or another helper (which comes here after).
    ///
    /// The notifier lowers the flag (one answer per look). A helper that reads it lowered
    /// after its steal loses nothing: the lowering was paired with a notify, so the
    /// collector has a look pending, under the lock; if that look comes after the steal it
    /// sees it, and if it came before, the collector either returned (quiet) or raised the
    /// flag again as it slept, under the lock before the steal, so this load reads it
    /// raised (or lowered by a newer answer, with a newer look pending: the same again).
    pub fn helper_done(&self) {
        if !self.quiet_waiting.load(Ordering::Relaxed) {
            return;
        }
        let Ok(g) = self.state.try_lock() else {
            return;
        };
        if !g.auto_finish && g.idle == g.running && g.bufs.is_empty() {
            self.answer_quiet_look();
        }
    }

    /// The queue is quiet (under the mutex): wakes the collector if it sleeps in
    /// [`Self::wait_quiet`] and no one has woken it since it last looked.
    fn answer_quiet_look(&self) {
        if self.quiet_waiting.load(Ordering::Relaxed) {
            self.quiet_waiting.store(false, Ordering::Relaxed);
            self.quiet_cv.notify_all();
        }
    }

    /// Processes items until the local queue is empty, sharing when others are idle and no
    /// buffer already waits for them (a woken worker not yet scheduled takes that one; one
    /// more would be a lock acquisition per item processed meanwhile).
    fn drain(&self, w: &mut impl Worker<T>) {
        while let Some(item) = w.next() {
            let n = w.local();
            if n > LOCAL_MAX
                || (n > SHARE_DEPTH
                    && ((self.idle.load(Ordering::Relaxed) > 0
                        && self.nbufs.load(Ordering::Relaxed) == 0)
                        || (self.hungry.load(Ordering::Relaxed)
                            && self.hungry.swap(false, Ordering::Relaxed))))
            {
                self.push(w.spill());
            }
            w.process(item);
        }
    }

    /// For a helper outside the workers that may take its time (the collector, once no
    /// grey session is left): takes buffers and processes them as a worker does, sharing
    /// with idle workers, until no buffer is left; never counts itself idle, so the run's
    /// quiet does not depend on it (the collector checks quiet after this returns).
    pub fn help_drain(&self, w: &mut impl Worker<T>) {
        while let Some(b) = self.steal(true) {
            w.take(b);
            w.on_work();
            self.drain(w);
        }
    }

    /// Runs worker `w` until the run ends (module essay).
    pub fn run(&self, w: &mut impl Worker<T>) {
        self.state.lock().unwrap().running += 1;
        loop {
            self.drain(w);
            w.on_idle();
            let mut g = self.state.lock().unwrap();
            if let Some(b) = g.bufs.pop() {
                self.nbufs.fetch_sub(1, Ordering::Relaxed);
                if !g.bufs.is_empty() {
                    // Pass the wake on: more buffers wait, for the next idle worker.
                    self.wake_for_buffer(&mut g);
                }
                drop(g);
                w.take(b);
                w.on_work();
                continue;
            }
            g.idle += 1;
            self.idle.fetch_add(1, Ordering::Relaxed);
            loop {
                if g.done {
                    g.idle -= 1;
                    g.running -= 1;
                    return;
                }
                if !g.bufs.is_empty() {
                    g.idle -= 1;
                    self.idle.fetch_sub(1, Ordering::Relaxed);
                    break;
                }
                if g.auto_finish {
                    if g.idle == g.workers {
                        g.done = true;
                        g.idle -= 1;
                        g.running -= 1;
                        self.work_cv.notify_all();
                        return;
                    }
                } else if g.idle == g.running {
                    self.answer_quiet_look();
                }
                g = self.work_cv.wait(g).unwrap();
                // This worker looks at the list now (the loop's checks, under the mutex):
                // the next push may wake another.
                #[cfg(loom)]
                if self.mutant == WakeMutant::TokenKept {
                    continue;
                }
                g.waking = false;
            }
        }
    }

    /// Some worker has entered the run (and stays in it until [`Self::finish`]): buffers
    /// pushed now will be taken by a worker.
    pub fn has_running_workers(&self) -> bool {
        self.state.lock().unwrap().running > 0
    }

    /// Some buffer waits to be taken.
    pub fn has_buffers(&self) -> bool {
        self.nbufs.load(Ordering::Relaxed) > 0
    }

    /// Takes one buffer, for a helper outside the workers (a mutator's mark assist), which
    /// must keep the run from ending while it holds it (the barrier's gate does that).
    /// Unless `wait`, never waits: when a worker holds the lock, the helper (a mutator in a
    /// pause) goes without, rather than sleep behind a worker the OS may have taken off the
    /// CPU.
    pub fn steal(&self, wait: bool) -> Option<Vec<T>> {
        if self.nbufs.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut g = if wait {
            self.state.lock().unwrap()
        } else {
            self.state.try_lock().ok()?
        };
        let b = g.bufs.pop()?;
        self.nbufs.fetch_sub(1, Ordering::Relaxed);
        Some(b)
    }

    /// Whether no buffer is left and every worker that joined the run is idle (a worker
    /// that has not started yet holds no work: termination need not wait for the OS to
    /// schedule it).
    pub fn is_quiet(&self) -> bool {
        let g = self.state.lock().unwrap();
        g.idle == g.running && g.bufs.is_empty()
    }

    /// Sleeps until the queue is quiet (module essay: a hint while producers run).
    pub fn wait_quiet(&self) {
        let mut g = self.state.lock().unwrap();
        #[cfg(loom)]
        let raise_at_every_sleep = self.mutant != WakeMutant::QuietRaisedOnce;
        #[cfg(not(loom))]
        let raise_at_every_sleep = true;
        if !raise_at_every_sleep {
            self.quiet_waiting.store(true, Ordering::Relaxed);
        }
        while !(g.idle == g.running && g.bufs.is_empty()) {
            // One look, answered once (`quiet_waiting`): raised again at every sleep.
            if raise_at_every_sleep {
                self.quiet_waiting.store(true, Ordering::Relaxed);
            }
            g = self.quiet_cv.wait(g).unwrap();
        }
        self.quiet_waiting.store(false, Ordering::Relaxed);
    }

    /// Sleeps until the queue is quiet, [`Self::want_help`] has been called since the last
    /// run ended, or
    /// `deadline` passes (module essay: a run without workers). A deadline is checked once
    /// per sleep, not polled: the caller waits once with it and then without. (Loom's
    /// timed wait never times out: its models pass `None`.)
    pub fn wait_quiet_or_help(&self, deadline: Option<std::time::Instant>) -> QuietWait {
        let mut g = self.state.lock().unwrap();
        let why = loop {
            if g.help_wanted {
                break QuietWait::HelpWanted;
            }
            if g.idle == g.running && g.bufs.is_empty() {
                break QuietWait::Quiet;
            }
            // One look, answered once (`quiet_waiting`): raised again at every sleep, as in
            // `wait_quiet` (a notifier lowers it).
            self.quiet_waiting.store(true, Ordering::Relaxed);
            match deadline {
                None => g = self.quiet_cv.wait(g).unwrap(),
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        break QuietWait::Deadline;
                    }
                    g = self.quiet_cv.wait_timeout(g, d - now).unwrap().0;
                }
            }
        };
        self.quiet_waiting.store(false, Ordering::Relaxed);
        why
    }

    /// Asks the collector to end this run without the mutators' help (module essay); wakes
    /// it if it sleeps in [`Self::wait_quiet_or_help`].
    pub fn want_help(&self) {
        let mut g = self.state.lock().unwrap();
        g.help_wanted = true;
        self.quiet_cv.notify_all();
    }

    /// Ends the run: workers return once idle. Buffers left (none, after a quiet check
    /// with the producers blocked) are dropped.
    pub fn finish(&self) {
        let mut g = self.state.lock().unwrap();
        g.done = true;
        g.help_wanted = false;
        g.bufs.clear();
        self.nbufs.store(0, Ordering::Relaxed);
        self.work_cv.notify_all();
    }
}
