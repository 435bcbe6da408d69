//! [`ThreadBound`]: plain interior mutability (`Cell`, `RefCell` of data that holds no
//! `Gc`) in objects that also point to other objects.
//!
//! # Why `Cell` alone is not enough
//!
//! `Session::alloc` requires `T: Send`, because a dead object's destructor runs on the
//! collector's sweeper thread (docs/design.md, soundness rule 7). A `Gc<U>` is `Send` only
//! when `U: Sync` (another thread holding it could read `U`). So an object with a `Cell` is
//! not `Sync`, a `Gc` to it is not `Send`, and an object that points to such an object
//! cannot be allocated: a linked structure of objects with `Cell` counters does not compile,
//! although nothing in it would ever be touched by two threads.
//!
//! # The answer
//!
//! `ThreadBound<T>` holds a value and the identity of the thread that made it, and gives
//! `&T` to that thread only (another thread's access panics, or gets `None` from
//! [`ThreadBound::try_get`]). Only one thread can ever see the value, so the wrapper is
//! `Sync` whenever `T` can be moved to another thread (`T: Send`, which the sweeper thread
//! needs anyway to drop it). An object of `ThreadBound<Cell<u64>>` fields is `Sync`, its
//! `Gc` is `Send`, and objects pointing to it can be allocated.
//!
//! `T: Send` is still required: a value whose destructor must run on its own thread (an
//! `Rc`, a `MutexGuard`) is rejected at allocation (`tests/compile-fail/
//! cell_of_non_send_drop.rs`), since the sweeper thread would run that destructor.
//! `T: 'static` is required to trace it as noscan: a `'static` type holds no `Gc`
//! (`trace.rs`), so the collector misses nothing by not looking inside.
//!
//! Thread identity is a number taken from a process-wide counter the first time a thread
//! asks, never reused (a `ThreadId` would do, but `thread::current()` costs an `Arc` clone):
//! a thread that exits cannot pass its values to a later thread. The check is one
//! thread-local load and a compare per access.

use core::fmt;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::mark::Tracer;
use super::trace::{Rebrand, Trace};

/// The next thread number to hand out (0 means "not taken yet").
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's number, 0 until it first asks.
    static THIS_THREAD: Cell<u64> = const { Cell::new(0) };
}

/// The calling thread's number: unique among all threads the process ever ran.
fn this_thread() -> u64 {
    THIS_THREAD.with(|id| match id.get() {
        0 => {
            let n = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
            id.set(n);
            n
        }
        n => n,
    })
}

/// A value only the thread that made it can use: lets a single-threaded program keep a
/// `Cell` or `RefCell` of plain data (no `Gc` inside) in objects. Dereferencing it on
/// another thread panics. See the module essay for why a bare `Cell` cannot be used.
///
/// ```
/// use std::cell::{Cell, RefCell};
/// use goheap::gc::{Gc, GcCell, Heap, ThreadBound, Trace};
///
/// #[derive(Trace)]
/// struct Node<'gc> {
///     visits: ThreadBound<Cell<u64>>,
///     names: ThreadBound<RefCell<Vec<String>>>,
///     next: GcCell<Option<Gc<'gc, Node<'gc>>>>,
/// }
///
/// let heap = Heap::new();
/// heap.mutator().enter(|cx| {
///     let node = || Node {
///         visits: ThreadBound::new(Cell::new(0)),
///         names: ThreadBound::new(RefCell::new(Vec::new())),
///         next: GcCell::new(None),
///     };
///     let a = cx.alloc(node());
///     let b = cx.alloc(node());
///     a.next.set(Some(b));
///     b.visits.set(b.visits.get() + 1);
///     b.names.borrow_mut().push("b".into());
///     assert_eq!(a.next.get().unwrap().visits.get(), 1);
///     // Another thread gets nothing.
///     std::thread::scope(|s| {
///         s.spawn(|| assert!(ThreadBound::try_get(&a.visits).is_none()));
///     });
/// });
/// ```
pub struct ThreadBound<T> {
    /// The number of the thread that made it (`this_thread`); immutable.
    owner: u64,
    /// The value; referenced only on the owner thread (or by whoever owns `self`).
    value: T,
}

// SAFETY: `&T` is given out only on the owner thread (`try_get`), so sharing a
// `&ThreadBound<T>` with other threads shares nothing of `T` with them; only the owner
// thread ever references the value, as if it owned it. `T: Send` because the wrapper, and
// with it `T`, may then be dropped on another thread (the sweeper), which is moving it there.
unsafe impl<T: Send> Sync for ThreadBound<T> {}

impl<T> ThreadBound<T> {
    /// Wraps `value`, bound to the calling thread.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use goheap::gc::{Heap, ThreadBound};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let hits = cx.alloc(ThreadBound::new(Cell::new(0u32)));
    ///     hits.set(hits.get() + 1); // `Cell`'s methods, through `Deref`
    ///     assert_eq!(hits.get(), 1);
    /// });
    /// ```
    pub fn new(value: T) -> ThreadBound<T> {
        ThreadBound {
            owner: this_thread(),
            value,
        }
    }

    // The accessors are associated functions, not methods, so that they never shadow a
    // method of `T` reached through `Deref` (`cell.get()` is `Cell::get`).

    /// Whether the calling thread is the one that made it.
    ///
    /// ```
    /// use goheap::gc::ThreadBound;
    ///
    /// let b = ThreadBound::new(5u32);
    /// assert!(ThreadBound::is_owner(&b));
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert!(!ThreadBound::is_owner(&b)));
    /// });
    /// ```
    #[inline]
    pub fn is_owner(this: &Self) -> bool {
        this_thread() == this.owner
    }

    /// The value, if the calling thread made it.
    ///
    /// ```
    /// use goheap::gc::ThreadBound;
    ///
    /// let b = ThreadBound::new(5u32);
    /// assert_eq!(ThreadBound::try_get(&b), Some(&5));
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert_eq!(ThreadBound::try_get(&b), None));
    /// });
    /// ```
    #[inline]
    pub fn try_get(this: &Self) -> Option<&T> {
        if ThreadBound::is_owner(this) {
            Some(&this.value)
        } else {
            None
        }
    }

    /// The value.
    ///
    /// # Panics
    /// On a thread other than the one that made it.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use goheap::gc::ThreadBound;
    ///
    /// let log = ThreadBound::new(RefCell::new(Vec::new()));
    /// ThreadBound::get(&log).borrow_mut().push("first");
    /// assert_eq!(log.borrow().len(), 1); // `Deref` calls `get`
    /// ```
    #[inline]
    #[track_caller]
    pub fn get(this: &Self) -> &T {
        match ThreadBound::try_get(this) {
            Some(v) => v,
            None => panic!("goheap: ThreadBound used on a thread other than the one that made it"),
        }
    }

    /// The value, on any thread: owning the wrapper is owning the value.
    ///
    /// ```
    /// use goheap::gc::ThreadBound;
    ///
    /// let b = ThreadBound::new(vec![1, 2, 3]);
    /// let v = std::thread::spawn(move || ThreadBound::into_inner(b)).join().unwrap();
    /// assert_eq!(v, [1, 2, 3]);
    /// ```
    pub fn into_inner(this: Self) -> T {
        this.value
    }
}

impl<T> core::ops::Deref for ThreadBound<T> {
    type Target = T;
    /// As [`ThreadBound::get`]: panics on another thread.
    #[inline]
    #[track_caller]
    fn deref(&self) -> &T {
        ThreadBound::get(self)
    }
}

impl<T: Default> Default for ThreadBound<T> {
    fn default() -> Self {
        ThreadBound::new(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for ThreadBound<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match ThreadBound::try_get(self) {
            Some(v) => f.debug_tuple("ThreadBound").field(v).finish(),
            None => f.write_str("ThreadBound(<another thread's>)"),
        }
    }
}

// SAFETY: `T: 'static` holds no `Gc` (a `Gc` carries a non-`'static` brand), so there is
// nothing to report, and the tracer never reads the value.
unsafe impl<T: 'static> Trace for ThreadBound<T> {
    const NEEDS_TRACE: bool = false;
    #[inline(always)]
    fn trace(&self, _: &mut Tracer) {}
}

// SAFETY: a `'static` type has no session lifetime to replace.
unsafe impl<'b, T: 'static> Rebrand<'b> for ThreadBound<T> {
    type Branded = ThreadBound<T>;
}
