//! `fork(2)` in a multi-threaded process: the child gets a copy of the heap as the parent
//! left it, but only the forking thread. Any allocator lock another thread held at that
//! instant would stay held forever in the child. The malloc face registers these three
//! functions with `pthread_atfork`, as glibc and mimalloc do for their own locks:
//!
//! - [`before_fork`] takes the heap profiler's lock, then every allocator lock in the lock
//!   order of `docs/design.md` (fallback cache, the central lists, the page heap, the cache
//!   pool), so no other thread is inside the allocator or the profiler when the fork
//!   happens and both are consistent;
//! - [`after_fork_in_parent`] releases them;
//! - [`after_fork_in_child`] resets them to free (the threads that could wait on them do not
//!   exist in the child) and forgets the background scavenger, which did not survive the fork.
//!
//! Caches of the parent's other threads are copied into the child with the spans they own;
//! nobody will use them there, so that memory is simply not reused by the child (as with
//! glibc's arenas of threads that did not survive). A run of pages the scavenger had taken
//! while releasing it stays taken in the child: at most 4 MiB.

use crate::cache::{FALLBACK, POOL};
use crate::central::CENTRAL;
use crate::heap::HEAP;

/// Takes every allocator lock (`pthread_atfork` prepare handler).
pub fn before_fork() {
    // The profiler's lock first: it is a leaf, taken while holding no allocator lock.
    crate::profile::before_fork();
    FALLBACK.raw_lock();
    for c in &CENTRAL {
        c.raw().raw_lock();
    }
    HEAP.raw_lock();
    POOL.raw_lock();
}

/// Releases the locks [`before_fork`] took (parent handler).
///
/// # Safety
/// Called once after [`before_fork`], in the thread that called it.
pub unsafe fn after_fork_in_parent() {
    // SAFETY: `before_fork` took each of these locks in this thread.
    unsafe {
        POOL.raw_unlock();
        HEAP.raw_unlock();
        for c in CENTRAL.iter().rev() {
            c.raw().raw_unlock();
        }
        FALLBACK.raw_unlock();
        crate::profile::after_fork_in_parent();
    }
}

/// Makes every allocator lock free in the child (child handler).
///
/// # Safety
/// Called once in the child process right after `fork`, after [`before_fork`] ran in the
/// parent.
pub unsafe fn after_fork_in_child() {
    // SAFETY: the child has one thread; the locks were taken by `before_fork`, so the data
    // they guard is consistent.
    unsafe {
        POOL.reset_in_child();
        HEAP.reset_in_child();
        for c in &CENTRAL {
            c.raw().reset_in_child();
        }
        FALLBACK.reset_in_child();
        crate::profile::after_fork_in_child();
    }
    crate::scavenger::forget_thread();
}
