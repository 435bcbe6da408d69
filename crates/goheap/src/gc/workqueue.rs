//! The shared part of parallel marking: buffers of grey objects that busy workers hand to
//! idle ones, and the termination rule. Generic over the item type so that its loom model
//! (`tests/loom.rs`, `mark_termination`) runs this very code.
//!
//! # Termination
//!
//! A worker shares (pushes half its stack) only while it is not idle, and it increments
//! `nbufs` under the buffer lock, before it could go idle. A worker goes idle only after
//! finding no buffer. So when `idle == workers`, every buffer ever pushed has been popped
//! and no worker holds work: the mark is complete. An idle worker that sees `nbufs > 0`
//! leaves the idle count before taking a buffer.

use crate::sync::{spin_hint, AtomicUsize, Ordering};

#[cfg(loom)]
use loom::sync::Mutex;
#[cfg(not(loom))]
use std::sync::Mutex;

/// One worker's view: its private stack and what it does with an item.
pub trait Worker<T> {
    /// The worker's stack of items.
    fn stack(&mut self) -> &mut Vec<T>;
    /// Processes one item (may push more onto the stack).
    fn process(&mut self, item: T);
}

/// Depth of a worker's stack above which it gives half to an idle worker.
pub const SHARE_DEPTH: usize = 8;

/// Buffers shared between workers, and the idle count.
pub struct WorkQueue<T> {
    bufs: Mutex<Vec<Vec<T>>>,
    nbufs: AtomicUsize,
    idle: AtomicUsize,
    workers: AtomicUsize,
}

impl<T> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> WorkQueue<T> {
    /// An empty queue for one worker.
    pub fn new() -> Self {
        WorkQueue {
            bufs: Mutex::new(Vec::new()),
            nbufs: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            workers: AtomicUsize::new(1),
        }
    }

    /// Prepares a run with `n` workers (no worker may be running).
    pub fn reset(&self, n: usize) {
        self.idle.store(0, Ordering::SeqCst);
        self.workers.store(n, Ordering::SeqCst);
    }

    fn push(&self, b: Vec<T>) {
        let mut g = self.bufs.lock().unwrap();
        g.push(b);
        self.nbufs.fetch_add(1, Ordering::SeqCst);
    }

    fn pop(&self) -> Option<Vec<T>> {
        if self.nbufs.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut g = self.bufs.lock().unwrap();
        let b = g.pop()?;
        self.nbufs.fetch_sub(1, Ordering::SeqCst);
        Some(b)
    }

    /// Processes items until the stack is empty, sharing when others are idle.
    fn drain(&self, w: &mut impl Worker<T>) {
        while let Some(item) = w.stack().pop() {
            let s = w.stack();
            if s.len() > SHARE_DEPTH && self.idle.load(Ordering::Relaxed) > 0 {
                let rest = s.split_off(s.len() / 2);
                let older = core::mem::replace(s, rest);
                self.push(older);
            }
            w.process(item);
        }
    }

    /// Runs worker `w` until every worker's work is done (module essay).
    pub fn run(&self, w: &mut impl Worker<T>) {
        loop {
            self.drain(w);
            if let Some(b) = self.pop() {
                *w.stack() = b;
                continue;
            }
            self.idle.fetch_add(1, Ordering::SeqCst);
            let mut spins = 0u32;
            loop {
                if self.nbufs.load(Ordering::SeqCst) > 0 {
                    self.idle.fetch_sub(1, Ordering::SeqCst);
                    break;
                }
                if self.idle.load(Ordering::SeqCst) == self.workers.load(Ordering::SeqCst) {
                    return;
                }
                spins += 1;
                if cfg!(loom) || spins < 64 {
                    spin_hint();
                } else {
                    #[cfg(not(loom))]
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Runs `w` alone (no sharing, no termination protocol).
    pub fn run_alone(&self, w: &mut impl Worker<T>) {
        while let Some(item) = w.stack().pop() {
            w.process(item);
        }
    }
}
