//! [`GcMutex`]: a lock around a traced value, for state that several threads change inside
//! objects. A thread that finds it held waits for it *outside* its sessions.
//!
//! # Why the wait happens between sessions
//!
//! A session is this collector's stack scan: a session open when a mark starts is grey, and
//! mark termination waits for it to end, because only then is the thread known to hold no
//! pointer the marker has not seen (`barrier.rs`). Rust frames cannot be scanned, so a
//! thread that slept on a lock inside a session would hold up mark termination (and the
//! next cycle's start, which waits for its cache) for as long as the holder keeps the lock;
//! for ever if the holder leaked its guard with `mem::forget`, which safe code may do. Go
//! solves this with `entersyscallblock`: the blocked goroutine's stack stays scannable and
//! its P is handed off. Here nothing could scan the sleeper's locals, and waking it after a
//! mark that ignored them would hand it pointers to swept objects. So:
//!
//! - Inside a session, [`GcMutex::try_lock`] takes the lock or fails; it never waits for
//!   another holder. (It may sleep while a marker traces the value: one trace, bounded.)
//! - A thread that failed ends its session and sleeps with [`MutexWaiter::wait`], outside
//!   every session, until the holder unlocks; then it enters a new session and tries again.
//!   Between its sessions it holds no `Gc`, so the collector claims its cache, marks and
//!   sweeps without it. [`GcMutex::waiter`] makes the handle inside the failed session: it
//!   roots the object holding the mutex, so the object stays alive. That alone does not
//!   keep the *mutex* there: one inside a `GcRefCell` (or another `GcMutex`) can be
//!   overwritten in place while the waiter reads and CASes its word (found by review), so
//!   `waiter` is `unsafe`, and its caller promises that the mutex stays where it is.
//!
//! That is the shape of an interpreter with short sessions: an instruction that needs a
//! contended lock ends the batch before its side effects and is retried
//! (`examples/gc_shared_interpreter.rs`). The wait is a futex sleep woken by the unlock; a
//! waiter retries only after a wake, never on a timer. It is not fair: a thread that locks
//! between the unlock and the waiter's retry takes it first (as std's mutex on Linux).
//!
//! # The barrier
//!
//! A guard is a mutable borrow for the barrier, exactly as `GcRefCell::borrow_mut`
//! (`cell.rs`, `barrier.rs`): taking the lock while a mark runs shades the value once per
//! mark (deletion half), under the store gate if the mark was seen before the lock was
//! taken; the unlock shades it again while grey sessions remain (insertion half). The
//! marker reads the value under a marker read of the word and skips a locked value, which
//! the barrier essay shows loses nothing: the lock was taken during the mark (the value was
//! shaded), or before it in a session that is grey (and shades at its unlock, or ends), or
//! its guard was leaked, and then nobody can reach the value again. So a guard held across
//! a mark start, or leaked, never makes a marker wait.
//!
//! The unlock of a value that holds pointers turns the lock into a marker read in one
//! atomic add, then looks at the barrier's insertion flag, shades if it is on, and ends
//! the read. Looking first and unlocking after would let a mark start in between find the
//! value still locked (the unlock sitting in a store buffer) and skip it, missing what the
//! guard put in; this way a flag that reads zero means the unlock preceded the mark start.
//!
//! # No poisoning
//!
//! A panic while a guard is held unlocks the mutex as the guard drops, and the next locker
//! gets the value as the panicking code left it, like `GcRefCell` and parking_lot's mutex,
//! unlike std's. Memory safety does not depend on the value's invariants, and an object
//! shared by sessions has no owner to whom a poisoned state could be reported: every later
//! session would have to handle an error it cannot repair. A program that needs to know
//! keeps a flag in the value.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, AtomicU64};

use super::exclusive;
use super::lock_word;
use super::mutator::{in_any_session, in_finalizer, Session};
use super::ptr::{Gc, GcPointee};
use super::root::Root;
use super::trace::{Rebrand, Trace, Tracer};

/// A traced value behind a lock, shared by threads: [`try_lock`](Self::try_lock) inside a
/// session; a thread that finds it held waits outside its sessions ([`MutexWaiter`]; the
/// module essay says why). A guard applies the write barrier as
/// [`GcRefMut`](super::GcRefMut) does. No poisoning: a panic under the lock leaves the
/// value as it was when the guard dropped.
///
/// ```
/// use goheap::gc::{Gc, GcMutex, Heap, Trace};
///
/// #[derive(Trace)]
/// struct Counter<'gc> {
///     log: GcMutex<Vec<Gc<'gc, str>>>,
/// }
///
/// let heap = Heap::new();
/// let counter = heap.mutator().enter(|cx| {
///     cx.root(cx.alloc(Counter { log: GcMutex::new(Vec::new()) }))
/// });
/// std::thread::scope(|s| {
///     for t in 0..4 {
///         let (heap, counter) = (&heap, &counter);
///         s.spawn(move || {
///             let mut m = heap.mutator();
///             for i in 0..100 {
///                 // Lock inside a session; when the lock is held, wait outside it.
///                 loop {
///                     let got = m.enter(|cx| {
///                         let c = cx.get(counter);
///                         // `as_ref`: a `&'gc` reference, which the guard may borrow
///                         // past the end of this block (a `Gc` local's deref may not).
///                         match Gc::as_ref(c).log.try_lock() {
///                             Some(mut log) => {
///                                 log.push(cx.alloc_str(&format!("{t}.{i}")));
///                                 None
///                             }
///                             // SAFETY: `log` is a plain field of the object, never
///                             // replaced while the waiter lives.
///                             None => Some(unsafe { c.log.waiter(cx, c) }),
///                         }
///                     });
///                     match got {
///                         None => break,
///                         Some(w) => w.wait(),
///                     }
///                 }
///             }
///         });
///     }
/// });
/// heap.collect();
/// let n = heap.mutator().enter(|cx| cx.get(&counter).log.try_lock().unwrap().len());
/// assert_eq!(n, 400);
/// ```
#[repr(C)] // `state` first: `MutexWaiter` reads the word at the mutex's address.
pub struct GcMutex<T: ?Sized> {
    /// The lock word (`lock_word.rs`): lockers, markers, sleepers.
    state: AtomicU32,
    /// `MARK_STARTS` when a lock last shaded the value (barrier essay). Written by the
    /// holder of the lock only.
    shaded: AtomicU64,
    /// Read and written by the holder of the lock, read by marker reads.
    value: UnsafeCell<T>,
}

// SAFETY: like `RwLock<T>` rather than `Mutex<T>`: besides the holder (exclusive, possibly on
// another thread: `T: Send`), several markers may read the value at once from their threads
// (`T: Sync`). Everything else is atomic.
unsafe impl<T: ?Sized + Send + Sync> Sync for GcMutex<T> {}
// SAFETY: owns a `T`.
unsafe impl<T: ?Sized + Send> Send for GcMutex<T> {}

impl<T> GcMutex<T> {
    /// A mutex holding `v`, unlocked.
    ///
    /// ```
    /// use goheap::gc::{GcMutex, Heap};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let m = cx.alloc(GcMutex::new(vec![1u64]));
    ///     m.try_lock().unwrap().push(2);
    ///     assert_eq!(m.try_lock().unwrap().len(), 2);
    /// });
    /// ```
    pub fn new(v: T) -> Self {
        GcMutex {
            state: AtomicU32::new(0),
            shaded: AtomicU64::new(0),
            value: UnsafeCell::new(v),
        }
    }
}

impl<T: ?Sized> GcMutex<T> {
    /// Takes the lock, or `None` if another guard holds it (then end the session and wait
    /// with [`Self::waiter`]). Never waits for the holder; may sleep while a marker traces
    /// the value.
    ///
    /// ```
    /// use goheap::gc::{GcMutex, Heap};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let m = cx.alloc(GcMutex::new(0u64));
    ///     let g = m.try_lock().unwrap();
    ///     assert!(m.try_lock().is_none()); // held: never waits inside a session
    ///     drop(g);
    ///     assert!(m.try_lock().is_some());
    /// });
    /// ```
    pub fn try_lock(&self) -> Option<GcMutexGuard<'_, T>>
    where
        T: Trace,
    {
        // The barrier of an exclusive hold (`exclusive.rs`), as `GcRefCell::try_borrow_mut`.
        // SAFETY: `try_lock` succeeds only with the lock, which excludes every other access
        // to the value until it is unlocked.
        let got = unsafe {
            exclusive::acquire(&self.shaded, &self.value, || {
                lock_word::try_lock(&self.state)
            })
        };
        // `then`, not `then_some`: a guard made eagerly would unlock on failure.
        got.then(|| GcMutexGuard {
            mutex: self,
            _m: PhantomData,
        })
    }

    /// Whether a guard holds the lock now (a snapshot, stale as soon as it returns).
    ///
    /// ```
    /// use goheap::gc::{GcMutex, Heap};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let m = cx.alloc(GcMutex::new(0u64));
    ///     assert!(!m.is_locked());
    ///     let _g = m.try_lock().unwrap();
    ///     assert!(m.is_locked());
    /// });
    /// ```
    pub fn is_locked(&self) -> bool {
        lock_word::is_locked(&self.state)
    }

    /// A handle to wait for this mutex outside the session: `self` must lie inside the
    /// object `owner` points to (a field of it, or the object itself), which the handle
    /// keeps alive (it holds a root). Costs a root (the heap's root table lock): make it
    /// only after [`Self::try_lock`] failed.
    ///
    /// # Safety
    /// The mutex must stay at its address, not overwritten or moved out, for as long as the
    /// returned handle lives: the handle reads and sets bits in its lock word from outside
    /// any session. That holds for a mutex reached from `owner` through plain fields (a
    /// `Gc`'s object is never moved, and safe code gets no `&mut` to it), and not for one
    /// inside a value that safe code can replace: a `GcRefCell`'s or another `GcMutex`'s
    /// value, or an enum variant or `Option` replaced through one of those.
    ///
    /// # Panics
    /// If `self` is not inside `owner`'s object.
    ///
    /// ```
    /// use goheap::gc::{Gc, GcMutex, Heap, Trace};
    ///
    /// #[derive(Trace)]
    /// struct Shared {
    ///     count: GcMutex<u64>,
    /// }
    ///
    /// let heap = Heap::new();
    /// let mut m = heap.mutator();
    /// let root = m.enter(|cx| cx.root(cx.alloc(Shared { count: GcMutex::new(0) })));
    /// let waiter = m.enter(|cx| {
    ///     let s = cx.get(&root);
    ///     let _held = Gc::as_ref(s).count.try_lock().unwrap();
    ///     // Another thread would fail here; it asks for a waiter instead.
    ///     assert!(s.count.try_lock().is_none());
    ///     // SAFETY: `count` is a plain field of the object, never replaced.
    ///     unsafe { s.count.waiter(cx, s) }
    /// }); // the guard dropped with the session: the lock is free again
    /// waiter.wait(); // outside every session; returns at once since the lock is free
    /// assert!(!waiter.is_locked());
    /// ```
    pub unsafe fn waiter<'gc, O>(&self, cx: &Session<'gc>, owner: Gc<'gc, O>) -> MutexWaiter
    where
        O: ?Sized + GcPointee + 'gc,
    {
        let obj: &'gc O = Gc::as_ref(owner);
        let (lo, len) = (
            obj as *const O as *const u8 as usize,
            core::mem::size_of_val(obj),
        );
        let me = self as *const Self as *const u8 as usize;
        assert!(
            me >= lo && me + core::mem::size_of_val(self) <= lo + len,
            "goheap: GcMutex::waiter needs the object that holds the mutex"
        );
        // The root holds the object's own address (the collector finds an object from an
        // address inside it only within its first page, so not the mutex's address, which
        // may lie further in a large object), and the waiter the mutex's offset in it.
        MutexWaiter {
            root: Root::new(cx.heap(), Gc::addr(owner)),
            offset: me - Gc::addr(owner),
        }
    }
}

/// The lock of a [`GcMutex`]: derefs to the value; unlocks when dropped. Leaking it
/// (`mem::forget`) keeps the mutex locked for good but blocks no collection.
///
/// ```
/// use goheap::gc::{GcMutex, GcMutexGuard, Heap};
///
/// Heap::new().mutator().enter(|cx| {
///     let m = cx.alloc(GcMutex::new(0u64));
///     {
///         let mut g: GcMutexGuard<'_, u64> = m.try_lock().unwrap();
///         *g += 1;
///         assert!(m.is_locked() && m.try_lock().is_none());
///     } // dropping the guard unlocks
///     assert_eq!(*m.try_lock().unwrap(), 1);
/// });
/// ```
pub struct GcMutexGuard<'a, T: ?Sized + Trace> {
    mutex: &'a GcMutex<T>,
    _m: PhantomData<&'a mut T>,
}

impl<T: ?Sized + Trace> Deref for GcMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the word is LOCKED for us alone, so no other access but ours exists.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized + Trace> DerefMut for GcMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized + Trace> Drop for GcMutexGuard<'_, T> {
    fn drop(&mut self) {
        let state = &self.mutex.state;
        if !T::NEEDS_TRACE {
            lock_word::unlock(state);
            return;
        }
        // Insertion half (module essay and `exclusive.rs`: why the unlock comes first).
        // SAFETY: this guard holds the lock; `unlock_to_marker_read` turns it into one
        // marker read, which excludes a new lock until `marker_read_done`.
        unsafe {
            exclusive::release(
                &self.mutex.value,
                || lock_word::unlock_to_marker_read(state),
                || lock_word::marker_read_done(state),
            )
        };
    }
}

impl<T: ?Sized + Trace + core::fmt::Debug> core::fmt::Debug for GcMutexGuard<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized> core::fmt::Debug for GcMutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Reading the value would need the lock, which Debug must not wait for or take
        // (taking it would apply the barrier): the state only.
        let s = if self.is_locked() {
            "locked"
        } else {
            "unlocked"
        };
        f.debug_struct("GcMutex")
            .field("state", &s)
            .finish_non_exhaustive()
    }
}

// SAFETY: reports everything the value holds, read under a marker read (so no guard
// exists); a locked value is skipped, which the barrier essay shows to be sound (module
// essay: the lock shaded the value, or its grey session does, or nobody can reach it again).
unsafe impl<T: ?Sized + Trace> Trace for GcMutex<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    fn trace(&self, t: &mut Tracer) {
        if lock_word::marker_read(&self.state) {
            // SAFETY: the marker read excludes guards.
            unsafe { (*self.value.get()).trace(t) };
            lock_word::marker_read_done(&self.state);
        }
    }
}

// SAFETY: replaces the lifetime inside the value type only.
unsafe impl<'b, T: Rebrand<'b>> Rebrand<'b> for GcMutex<T>
where
    T::Branded: Sized,
{
    type Branded = GcMutex<T::Branded>;
}

/// A handle to sleep, outside every session, until a [`GcMutex`] is unlocked; made by
/// [`GcMutex::waiter`] in the session whose `try_lock` failed. It keeps the mutex's object
/// alive (a root) until dropped. `Send` and `Sync`: any thread may wait with it.
///
/// ```
/// use goheap::gc::{Gc, GcMutex, Heap, Trace};
///
/// #[derive(Trace)]
/// struct Account {
///     balance: GcMutex<i64>,
/// }
///
/// let heap = Heap::new();
/// let account = heap
///     .mutator()
///     .enter(|cx| cx.root(cx.alloc(Account { balance: GcMutex::new(0) })));
/// std::thread::scope(|s| {
///     for _ in 0..2 {
///         s.spawn(|| {
///             let mut m = heap.mutator();
///             for _ in 0..50 {
///                 loop {
///                     let waiter = m.enter(|cx| {
///                         let a = cx.get(&account);
///                         match Gc::as_ref(a).balance.try_lock() {
///                             Some(mut b) => {
///                                 *b += 1;
///                                 None
///                             }
///                             // SAFETY: `balance` is a plain field, never replaced.
///                             None => Some(unsafe { a.balance.waiter(cx, a) }),
///                         }
///                     });
///                     match waiter {
///                         None => break,
///                         Some(w) => w.wait(), // outside the session
///                     }
///                 }
///             }
///         });
///     }
/// });
/// let total = heap
///     .mutator()
///     .enter(|cx| *cx.get(&account).balance.try_lock().unwrap());
/// assert_eq!(total, 100);
/// ```
pub struct MutexWaiter {
    /// A root at the address of the object holding the mutex. Never turned back into a
    /// `Gc` (its type is erased): only the lock word at `offset` in the object is read.
    root: Root<u8>,
    /// Where the mutex lies in the object (`GcMutex::waiter` checked it lies inside).
    offset: usize,
}

impl MutexWaiter {
    /// Sleeps until the mutex is unlocked (it may be locked again by the time this thread
    /// tries, in its next session). Returns at once if it is unlocked now. A guard leaked
    /// with `mem::forget` keeps the mutex locked, and then this never returns (as a std
    /// mutex whose guard leaked); the collector goes on meanwhile.
    ///
    /// # Panics
    /// If the calling thread is inside a session (of any heap: it would hold that heap's
    /// collections up while it sleeps), or runs a destructor or cleanup for the collector.
    ///
    /// ```
    /// use goheap::gc::{Gc, GcMutex, Heap, Trace};
    ///
    /// #[derive(Trace)]
    /// struct Shared {
    ///     count: GcMutex<u64>,
    /// }
    ///
    /// let heap = Heap::new();
    /// let root = heap.mutator().enter(|cx| cx.root(cx.alloc(Shared { count: GcMutex::new(0) })));
    /// let (locked, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         // This thread holds the lock across a rendezvous, then lets it go.
    ///         heap.mutator().enter(|cx| {
    ///             let _g = Gc::as_ref(cx.get(&root)).count.try_lock().unwrap();
    ///             locked.wait();
    ///             release.wait();
    ///         });
    ///     });
    ///     locked.wait();
    ///     let w = heap.mutator().enter(|cx| {
    ///         let sh = cx.get(&root);
    ///         assert!(sh.count.try_lock().is_none());
    ///         // SAFETY: `count` is a plain field of the object, never replaced.
    ///         unsafe { sh.count.waiter(cx, sh) }
    ///     });
    ///     release.wait();
    ///     w.wait(); // sleeps until the other thread's session ends and unlocks
    /// });
    /// ```
    pub fn wait(&self) {
        assert!(
            !in_any_session(),
            "goheap: MutexWaiter::wait inside a session; end the session first (a thread \
             asleep inside one holds collections up)"
        );
        assert!(
            !in_finalizer(),
            "goheap: MutexWaiter::wait in a destructor or cleanup run by the collector"
        );
        lock_word::wait_unlocked(self.word());
    }

    /// Whether the mutex is locked now (a snapshot).
    ///
    /// ```
    /// use goheap::gc::{Gc, GcMutex, Heap, Trace};
    ///
    /// #[derive(Trace)]
    /// struct Shared {
    ///     count: GcMutex<u64>,
    /// }
    ///
    /// let heap = Heap::new();
    /// let mut m = heap.mutator();
    /// let root = m.enter(|cx| cx.root(cx.alloc(Shared { count: GcMutex::new(0) })));
    /// let w = m.enter(|cx| {
    ///     let s = cx.get(&root);
    ///     // SAFETY: `count` is a plain field of the object, never replaced.
    ///     unsafe { s.count.waiter(cx, s) }
    /// });
    /// assert!(!w.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        lock_word::is_locked(self.word())
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: the root keeps the object alive and in place (objects never move) for as
        // long as `self` lives, and a `GcMutex` lies at `offset` in it (checked by
        // `GcMutex::waiter`) and stays there (`waiter`'s safety contract). `GcMutex` is
        // `repr(C)` with the word first, so that address is the word's, and an atomic may be
        // read by any thread.
        unsafe { &*((self.root.addr() + self.offset) as *const AtomicU32) }
    }
}

impl core::fmt::Debug for MutexWaiter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MutexWaiter")
            .field("locked", &self.is_locked())
            .finish()
    }
}
