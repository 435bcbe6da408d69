//! Scaffolding of the race tests (`gc_review_*.rs`, included with `#[path]`): an object
//! that reports its destruction, and a grey session that keeps a mark open.

#![allow(dead_code)] // each test uses the part it needs

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use goheap::gc::{Heap, Trace};

/// The object a race would free too early: `dropped` turns true when its destructor runs.
#[derive(Trace)]
#[trace(static)]
pub struct Target {
    pub magic: u64,
    pub dropped: Arc<AtomicBool>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// Starts a thread whose session is open when this returns and stays open until `release`
/// is passed by the caller: a session open across the next mark start is grey, and that
/// mark cannot terminate before it ends.
pub fn grey_session<'scope, 'env>(
    sc: &'scope std::thread::Scope<'scope, 'env>,
    heap: &'env Heap,
    release: &'env Barrier,
) {
    let entered = Arc::new(Barrier::new(2));
    let e = entered.clone();
    sc.spawn(move || {
        let mut m = heap.mutator();
        m.enter(|_s| {
            e.wait();
            release.wait();
        });
    });
    entered.wait();
}
