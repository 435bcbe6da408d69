//! The allocator's mutex: a futex lock that never allocates and that can be held across
//! `fork` and released in the child.
//!
//! `std::sync::Mutex` would do for the explicit-free face, but the malloc face must survive
//! `fork()` in a multi-threaded process: if another thread holds an allocator lock at the
//! moment of the fork, the child inherits the lock held by a thread that does not exist
//! there, and its first `malloc` deadlocks. The cure (glibc's and mimalloc's) is a
//! `pthread_atfork` handler that takes every allocator lock before the fork and releases
//! them on both sides after it; that needs a lock that can be taken and released without a
//! guard object, which is what [`Mutex::raw_lock`] and [`Mutex::raw_unlock`] are.
//!
//! The lock word has three states (Drepper's "futexes are tricky", mutex 2): 0 free, 1 held,
//! 2 held with waiters. Taking a free lock is one CAS; releasing an uncontended one is one
//! swap; only contention makes system calls. A short spin precedes sleeping, because the
//! allocator's critical sections are short.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::sync::{futex_wait, futex_wake};

const FREE: u32 = 0;
const HELD: u32 = 1;
const CONTENDED: u32 = 2;
/// Spins before sleeping: about a microsecond, longer than most critical sections here.
const SPINS: u32 = 100;

/// A mutual-exclusion lock around a `T`. See the module essay.
pub struct Mutex<T> {
    state: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `data`, so sharing the mutex shares `T` between
// threads one at a time, which needs only `T: Send`.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            state: AtomicU32::new(FREE),
            data: UnsafeCell::new(value),
        }
    }

    /// Takes the lock.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.raw_lock();
        MutexGuard { lock: self }
    }

    /// Takes the lock without a guard; release it with [`Mutex::raw_unlock`].
    #[inline]
    pub fn raw_lock(&self) {
        if self
            .state
            .compare_exchange(FREE, HELD, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        #[cfg(feature = "lock-count")]
        count::acquired(self as *const Self as usize);
    }

    #[cold]
    fn lock_contended(&self) {
        #[cfg(feature = "lock-count")]
        count::CONTENDED.fetch_add(1, Ordering::Relaxed);
        for _ in 0..SPINS {
            if self.state.load(Ordering::Relaxed) == FREE
                && self
                    .state
                    .compare_exchange(FREE, HELD, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            core::hint::spin_loop();
        }
        // Mark the lock contended; whoever releases it will wake a sleeper.
        while self.state.swap(CONTENDED, Ordering::Acquire) != FREE {
            futex_wait(&self.state, CONTENDED);
        }
    }

    /// Releases a lock taken with [`Mutex::raw_lock`].
    ///
    /// # Safety
    /// The caller holds the lock and has no guard for it.
    #[inline]
    pub unsafe fn raw_unlock(&self) {
        if self.state.swap(FREE, Ordering::Release) == CONTENDED {
            futex_wake(&self.state, 1);
        }
    }

    /// Makes the lock free again in a forked child, whatever its state was.
    ///
    /// # Safety
    /// Only in the child after `fork`, where no other thread exists to hold or wait for it,
    /// and where the parent's `prepare` handler made sure the protected data is consistent.
    pub unsafe fn reset_in_child(&self) {
        self.state.store(FREE, Ordering::Relaxed);
    }
}

/// Acquisitions of the allocator's mutexes, counted only with the `lock-count` feature
/// (compiled out otherwise, so a normal build pays nothing; the counting itself is a
/// locked add per acquisition). Read with [`crate::lock_counts`].
#[cfg(feature = "lock-count")]
pub(crate) mod count {
    use core::sync::atomic::{AtomicU64, Ordering};

    /// Every acquisition.
    pub static ACQUIRED: AtomicU64 = AtomicU64::new(0);
    /// Acquisitions of the page heap's mutex (`heap::HEAP`).
    pub static PAGE_HEAP: AtomicU64 = AtomicU64::new(0);
    /// Acquisitions of the GC's span-struct pool (`gc::span::SPAN_POOL`).
    pub static GC_SPAN_STRUCTS: AtomicU64 = AtomicU64::new(0);
    /// Acquisitions of the malloc face's central lists (`central::CENTRAL`).
    pub static CENTRAL: AtomicU64 = AtomicU64::new(0);
    /// Acquisitions that found the lock held.
    pub static CONTENDED: AtomicU64 = AtomicU64::new(0);

    /// The GC's span-struct pool lock's address (0 without the collector).
    fn gc_span_pool_lock() -> usize {
        #[cfg(feature = "gc")]
        return crate::gc::span::span_pool_lock();
        #[cfg(not(feature = "gc"))]
        0
    }

    pub fn acquired(lock: usize) {
        ACQUIRED.fetch_add(1, Ordering::Relaxed);
        let central = crate::central::CENTRAL.as_ptr_range();
        if lock == core::ptr::addr_of!(crate::heap::HEAP) as usize {
            PAGE_HEAP.fetch_add(1, Ordering::Relaxed);
        } else if cfg!(feature = "gc") && lock == gc_span_pool_lock() {
            GC_SPAN_STRUCTS.fetch_add(1, Ordering::Relaxed);
        } else if (central.start as usize..central.end as usize).contains(&lock) {
            CENTRAL.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Holds a [`Mutex`] until dropped.
pub struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held, so nobody else accesses `data`.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard holds the lock.
        unsafe { self.lock.raw_unlock() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_under_contention() {
        // A non-atomic read-modify-write under the lock: any overlap loses increments.
        let m = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        let mut g = m.lock();
                        let v = *g;
                        std::hint::black_box(&v);
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 400_000);
    }

    #[test]
    fn raw_lock_and_reset() {
        let m = Mutex::new(5);
        m.raw_lock();
        assert_eq!(m.state.load(Ordering::Relaxed), HELD);
        // SAFETY: we hold it.
        unsafe { m.raw_unlock() };
        m.raw_lock();
        // SAFETY: single-threaded test standing in for a fork child.
        unsafe { m.reset_in_child() };
        assert_eq!(*m.lock(), 5);
    }
}
