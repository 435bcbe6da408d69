//! goheap's cells: the only way to change a traced pointer after its object was made.
//!
//! Objects are immutable once allocated, except through these cells (and through std cells
//! around `'static` data, which cannot hold a `Gc`). That is what lets a marker read any
//! object while its mutators run, and what gives the collector a hook on every store of a
//! traced pointer: the write barrier.
//!
//! - [`GcCell`] holds one pointer-sized value (`Gc`, `Option<Gc>`, `Weak`) in an atomic
//!   word: a store is one atomic store (a plain `mov` on x86-64), a marker's read one load.
//! - [`GcRefCell`] holds any traced value behind an atomic borrow flag.
//!
//! # The barrier
//!
//! Every store swaps the new word in and then looks at the process-wide barrier filter;
//! while some heap marks, the overwritten and the new pointer are shaded
//! ([`super::barrier`], whose essay says why the swap comes first). A mutable borrow of a
//! [`GcRefCell`] shades the whole value before it is handed out (once per mark) and, while
//! grey sessions remain, again when it ends; the marker reads a cell's value under a marker
//! read of its flag and skips a cell that is mutably borrowed.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::barrier::{self, cas_then_check, swap_then_check, ACTIVE, STORE_GATE};
use super::borrow;
use super::exclusive;
use super::ptr::{Gc, GcPointee};
use super::trace::{Rebrand, Trace, Tracer};
use super::weak::Weak;

mod sealed {
    pub trait Sealed {}
}

/// Values a [`GcCell`] can hold: one word, a traced pointer or nothing. Sealed.
///
/// # Safety
/// `to_word`/`from_word` round-trip, and `0` is `None` only.
pub unsafe trait CellValue: Copy + sealed::Sealed {
    #[doc(hidden)]
    fn to_word(self) -> usize;
    #[doc(hidden)]
    /// # Safety
    /// `w` came from `to_word` of a value of this type that is still valid.
    unsafe fn from_word(w: usize) -> Self;
}

impl<'gc, T: ?Sized + GcPointee + 'gc> sealed::Sealed for Gc<'gc, T> {}
// SAFETY: a Gc is a non-null address.
unsafe impl<'gc, T: ?Sized + GcPointee + 'gc> CellValue for Gc<'gc, T> {
    #[inline(always)]
    fn to_word(self) -> usize {
        Gc::addr(self)
    }
    #[inline(always)]
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: caller's contract.
        unsafe { Gc::from_addr(w) }
    }
}
impl<'gc, T: ?Sized + GcPointee + 'gc> sealed::Sealed for Option<Gc<'gc, T>> {}
// SAFETY: None is 0, Some(g) its non-null address.
unsafe impl<'gc, T: ?Sized + GcPointee + 'gc> CellValue for Option<Gc<'gc, T>> {
    #[inline(always)]
    fn to_word(self) -> usize {
        self.map_or(0, Gc::addr)
    }
    #[inline(always)]
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: caller's contract.
        (w != 0).then(|| unsafe { Gc::from_addr(w) })
    }
}
impl<'gc, T: ?Sized + GcPointee + 'gc> sealed::Sealed for Weak<'gc, T> {}
// SAFETY: a Weak is one non-null address (its slot), same layout as a Gc.
unsafe impl<'gc, T: ?Sized + GcPointee + 'gc> CellValue for Weak<'gc, T> {
    #[inline(always)]
    fn to_word(self) -> usize {
        // SAFETY: Weak is a Gc<WeakSlot> plus a zero-sized marker.
        unsafe { core::mem::transmute_copy::<Weak<'gc, T>, usize>(&self) }
    }
    #[inline(always)]
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: caller's contract; same layout as above.
        unsafe { core::mem::transmute_copy::<usize, Weak<'gc, T>>(&w) }
    }
}

/// A mutable pointer field: `get` and `set`, with the write barrier. Holds a [`Gc`], an
/// `Option<Gc>` or a [`Weak`](super::Weak) (one word).
///
/// ```
/// use goheap::gc::{Gc, GcCell, Heap, Trace};
///
/// #[derive(Trace)]
/// struct Slot<'gc> {
///     value: GcCell<Option<Gc<'gc, u64>>>,
/// }
///
/// Heap::new().mutator().enter(|cx| {
///     let s = cx.alloc(Slot { value: GcCell::new(None) });
///     s.value.set(Some(cx.alloc(1)));
///     let old = s.value.replace(Some(cx.alloc(2)));
///     assert_eq!(old.as_deref(), Some(&1));
///     assert_eq!(s.value.get().as_deref(), Some(&2));
/// });
/// ```
pub struct GcCell<T: CellValue> {
    word: AtomicUsize,
    _m: PhantomData<T>,
}

impl<T: CellValue> GcCell<T> {
    /// A cell holding `v`.
    ///
    /// ```
    /// use goheap::gc::{Gc, GcCell, Heap, Trace};
    ///
    /// #[derive(Trace)]
    /// struct Slot<'gc> {
    ///     value: GcCell<Option<Gc<'gc, u64>>>,
    /// }
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let s = cx.alloc(Slot { value: GcCell::new(Some(cx.alloc(1))) });
    ///     assert_eq!(s.value.get().as_deref(), Some(&1));
    /// });
    /// ```
    pub fn new(v: T) -> Self {
        GcCell {
            word: AtomicUsize::new(v.to_word()),
            _m: PhantomData,
        }
    }

    /// The current value.
    ///
    /// ```
    /// use goheap::gc::{Gc, GcCell, Heap, Trace};
    ///
    /// #[derive(Trace)]
    /// struct Slot<'gc> {
    ///     value: GcCell<Option<Gc<'gc, u64>>>,
    /// }
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let s = cx.alloc(Slot { value: GcCell::new(None) });
    ///     assert!(s.value.get().is_none());
    /// });
    /// ```
    #[inline(always)]
    pub fn get(&self) -> T {
        // SAFETY: the word was written from a `T` by `new` or `set`, and the object it
        // names is alive: this cell's object is reachable (we hold `&self` inside a
        // session), so the collector traced the value through it.
        unsafe { T::from_word(self.word.load(Ordering::Acquire)) }
    }

    /// Stores `v`.
    ///
    /// ```
    /// use goheap::gc::{Gc, GcCell, Heap, Trace};
    ///
    /// #[derive(Trace)]
    /// struct Slot<'gc> {
    ///     value: GcCell<Option<Gc<'gc, u64>>>,
    /// }
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let s = cx.alloc(Slot { value: GcCell::new(None) });
    ///     s.value.set(Some(cx.alloc(2))); // with the collector's barrier
    ///     assert_eq!(s.value.get().as_deref(), Some(&2));
    /// });
    /// ```
    #[inline(always)]
    pub fn set(&self, v: T) {
        self.swap_word(v.to_word());
    }

    /// The store and its barrier (barrier.rs): about 20 cycles for the swap when no mark
    /// runs (the filter is read before and after it).
    #[inline(always)]
    fn swap_word(&self, new: usize) -> usize {
        if ACTIVE.load(Ordering::SeqCst) != 0 {
            return self.swap_gated(new);
        }
        let (old, on) = swap_then_check(&self.word, new, &ACTIVE);
        if on {
            // The mark started around our swap: our session is grey for it, so it cannot
            // end before we shade.
            barrier::shade_pair(old, new);
        }
        old
    }

    #[cold]
    #[inline(never)]
    fn swap_gated(&self, new: usize) -> usize {
        STORE_GATE.read();
        let old = self.word.swap(new, Ordering::SeqCst);
        barrier::shade_pair(old, new);
        STORE_GATE.read_done();
        old
    }

    /// Stores `new` if the cell holds `current` (compared by address), returning the
    /// previous value either way: `Ok` when it was `current`. Lets several threads update a
    /// shared pointer field without a lock (a stack push, for instance).
    ///
    /// ```
    /// use goheap::gc::{Gc, GcCell, Heap, Trace};
    ///
    /// #[derive(Trace)]
    /// struct Slot<'gc> {
    ///     value: GcCell<Option<Gc<'gc, u64>>>,
    /// }
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let s = cx.alloc(Slot { value: GcCell::new(None) });
    ///     let one = cx.alloc(1);
    ///     assert!(s.value.compare_exchange(None, Some(one)).is_ok());
    ///     // A second exchange from `None` fails and returns what is there.
    ///     let seen = s.value.compare_exchange(None, Some(cx.alloc(2))).unwrap_err();
    ///     assert!(seen.is_some_and(|g| Gc::ptr_eq(g, one)));
    /// });
    /// ```
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        let (c, n) = (current.to_word(), new.to_word());
        let gated = ACTIVE.load(Ordering::SeqCst) != 0;
        if gated {
            STORE_GATE.read();
        }
        let (r, on) = cas_then_check(&self.word, c, n, &ACTIVE);
        if let Ok(old) = r {
            if on {
                barrier::shade_pair(old, n);
            }
        }
        if gated {
            STORE_GATE.read_done();
        }
        match r {
            // SAFETY: as in `get`.
            Ok(old) => Ok(unsafe { T::from_word(old) }),
            // SAFETY: as in `get`.
            Err(old) => Err(unsafe { T::from_word(old) }),
        }
    }

    /// Stores `v`, returning the old value.
    ///
    /// ```
    /// use goheap::gc::{Gc, GcCell, Heap, Trace};
    ///
    /// #[derive(Trace)]
    /// struct Slot<'gc> {
    ///     value: GcCell<Option<Gc<'gc, u64>>>,
    /// }
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let s = cx.alloc(Slot { value: GcCell::new(Some(cx.alloc(1))) });
    ///     let old = s.value.replace(None);
    ///     assert_eq!(old.as_deref(), Some(&1));
    ///     assert!(s.value.get().is_none());
    /// });
    /// ```
    pub fn replace(&self, v: T) -> T {
        let old = self.swap_word(v.to_word());
        // SAFETY: as in `get`.
        unsafe { T::from_word(old) }
    }
}

impl<T: CellValue + core::fmt::Debug> core::fmt::Debug for GcCell<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("GcCell").field(&self.get()).finish()
    }
}

// SAFETY: reports the pointer the cell holds now (read atomically).
unsafe impl<T: CellValue + Trace> Trace for GcCell<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, t: &mut Tracer) {
        self.get().trace(t)
    }
}

// SAFETY: replaces the lifetime inside the value type only.
unsafe impl<'b, T: CellValue + Rebrand<'b>> Rebrand<'b> for GcCell<T>
where
    T::Branded: CellValue,
{
    type Branded = GcCell<T::Branded>;
}

/// A mutable traced value with dynamically checked borrows (an atomic `RefCell`).
/// Borrowing mutably while borrowed panics, as `RefCell` does; the flag is atomic so that the
/// concurrent marker can read the value between borrows. At most 65,534 shared borrows can
/// be held at once.
///
/// ```
/// use goheap::gc::{Gc, GcRefCell, Heap, Trace};
///
/// #[derive(Trace)]
/// struct List<'gc> {
///     items: GcRefCell<Vec<Gc<'gc, str>>>,
/// }
///
/// Heap::new().mutator().enter(|cx| {
///     let l = cx.alloc(List { items: GcRefCell::new(Vec::new()) });
///     l.items.borrow_mut().push(cx.alloc_str("a"));
///     l.items.borrow_mut().push(cx.alloc_str("b"));
///     assert_eq!(l.items.borrow().len(), 2);
///     let r = l.items.borrow();
///     assert!(l.items.try_borrow_mut().is_none()); // borrowed
///     drop(r);
/// });
/// ```
pub struct GcRefCell<T: ?Sized> {
    /// The borrow flag (`borrow.rs`).
    state: AtomicU32,
    /// `MARK_STARTS` when a mutable borrow last shaded the value (barrier essay).
    shaded: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: like `RwLock<T>`: shared borrows from several threads need `T: Sync`, a mutable
// borrow on another thread moves access to `T`, so `T: Send`. The flags are atomic.
unsafe impl<T: ?Sized + Send + Sync> Sync for GcRefCell<T> {}
// SAFETY: owns a `T`.
unsafe impl<T: ?Sized + Send> Send for GcRefCell<T> {}

impl<T> GcRefCell<T> {
    /// A cell holding `v`.
    ///
    /// ```
    /// use goheap::gc::{GcRefCell, Heap};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let c = cx.alloc(GcRefCell::new(String::from("a")));
    ///     c.borrow_mut().push('b');
    ///     assert_eq!(*c.borrow(), "ab");
    /// });
    /// ```
    pub fn new(v: T) -> Self {
        GcRefCell {
            state: AtomicU32::new(0),
            shaded: AtomicU64::new(0),
            value: UnsafeCell::new(v),
        }
    }
}

impl<T: ?Sized> GcRefCell<T> {
    /// Borrows the value.
    ///
    /// # Panics
    /// If it is mutably borrowed, or 65,534 shared borrows are held.
    ///
    /// ```
    /// use goheap::gc::{GcRefCell, Heap};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let c = cx.alloc(GcRefCell::new(vec![1u64, 2]));
    ///     assert_eq!(c.borrow().iter().sum::<u64>(), 3);
    /// });
    /// ```
    pub fn borrow(&self) -> GcRef<'_, T> {
        self.try_borrow()
            .expect("goheap: GcRefCell already mutably borrowed (or too many shared borrows)")
    }

    /// Borrows the value, or `None` if it is mutably borrowed (or 65,534 shared borrows
    /// are held).
    ///
    /// ```
    /// use goheap::gc::{GcRefCell, Heap};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let c = cx.alloc(GcRefCell::new(1u64));
    ///     let w = c.borrow_mut();
    ///     assert!(c.try_borrow().is_none());
    ///     drop(w);
    ///     assert_eq!(c.try_borrow().as_deref(), Some(&1));
    /// });
    /// ```
    pub fn try_borrow(&self) -> Option<GcRef<'_, T>> {
        // `then`, not `then_some`: a `GcRef` made eagerly and dropped on failure would
        // release a borrow it never took.
        borrow::try_shared(&self.state).then(|| GcRef { cell: self })
    }

    /// Borrows the value mutably.
    ///
    /// # Panics
    /// If it is borrowed.
    ///
    /// ```
    /// use goheap::gc::{GcRefCell, Heap};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let c = cx.alloc(GcRefCell::new(vec![cx.alloc_str("a")]));
    ///     c.borrow_mut().push(cx.alloc_str("b")); // a `Gc` stored with the barrier
    ///     assert_eq!(c.borrow().len(), 2);
    /// });
    /// ```
    pub fn borrow_mut(&self) -> GcRefMut<'_, T>
    where
        T: Trace,
    {
        self.try_borrow_mut()
            .expect("goheap: GcRefCell already borrowed")
    }

    /// Borrows the value mutably, or `None` if it is borrowed. Waits (briefly) while a
    /// marker reads the value.
    ///
    /// ```
    /// use goheap::gc::{GcRefCell, Heap};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let c = cx.alloc(GcRefCell::new(0u64));
    ///     let r = c.borrow();
    ///     assert!(c.try_borrow_mut().is_none());
    ///     drop(r);
    ///     *c.try_borrow_mut().unwrap() += 1;
    ///     assert_eq!(*c.borrow(), 1);
    /// });
    /// ```
    pub fn try_borrow_mut(&self) -> Option<GcRefMut<'_, T>>
    where
        T: Trace,
    {
        // The barrier of an exclusive hold (`exclusive.rs`).
        // SAFETY: `try_writing` succeeds only with the mutable borrow, which excludes every
        // other access to the value until it ends.
        let got = unsafe {
            exclusive::acquire(&self.shaded, &self.value, || {
                borrow::try_writing(&self.state)
            })
        };
        // `then`, not `then_some`: a `GcRefMut` made eagerly and dropped on failure would
        // end the borrow another holder has (found while writing `GcMutex`).
        got.then(|| GcRefMut {
            cell: self,
            _m: PhantomData,
        })
    }
}

/// A shared borrow of a [`GcRefCell`].
///
/// ```
/// use goheap::gc::{GcRef, GcRefCell, Heap};
///
/// Heap::new().mutator().enter(|cx| {
///     let c = cx.alloc(GcRefCell::new(vec![1u64, 2]));
///     let a: GcRef<'_, Vec<u64>> = c.borrow();
///     let b = c.borrow(); // shared borrows coexist
///     assert_eq!(a.len() + b.len(), 4);
///     assert!(c.try_borrow_mut().is_none()); // but exclude a mutable one
/// });
/// ```
pub struct GcRef<'a, T: ?Sized> {
    cell: &'a GcRefCell<T>,
}

impl<T: ?Sized> Deref for GcRef<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the flag counts this shared borrow, so no mutable borrow exists.
        unsafe { &*self.cell.value.get() }
    }
}

impl<T: ?Sized> Drop for GcRef<'_, T> {
    fn drop(&mut self) {
        borrow::release_shared(&self.cell.state);
    }
}

/// A mutable borrow of a [`GcRefCell`].
///
/// ```
/// use goheap::gc::{GcRefCell, GcRefMut, Heap};
///
/// Heap::new().mutator().enter(|cx| {
///     let c = cx.alloc(GcRefCell::new(vec![1u64, 2]));
///     {
///         let mut w: GcRefMut<'_, Vec<u64>> = c.borrow_mut();
///         w.push(3);
///         assert!(c.try_borrow().is_none()); // nothing else while it lives
///     }
///     assert_eq!(*c.borrow(), [1, 2, 3]);
/// });
/// ```
pub struct GcRefMut<'a, T: ?Sized + Trace> {
    cell: &'a GcRefCell<T>,
    _m: PhantomData<&'a mut T>,
}

impl<T: ?Sized + Trace> Deref for GcRefMut<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the flag is WRITING for us alone.
        unsafe { &*self.cell.value.get() }
    }
}

impl<T: ?Sized + Trace> DerefMut for GcRefMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the flag is WRITING for us alone.
        unsafe { &mut *self.cell.value.get() }
    }
}

impl<T: ?Sized + Trace> Drop for GcRefMut<'_, T> {
    fn drop(&mut self) {
        if !T::NEEDS_TRACE {
            borrow::release_writing(&self.cell.state);
            return;
        }
        // Insertion half: a grey session may have put a white object in. The borrow turns
        // into one shared borrow first (a swap), and only then looks at the flag
        // (`exclusive.rs`: why in that order).
        let state = &self.cell.state;
        // SAFETY: this guard is the mutable borrow; `writing_to_shared` turns it into one
        // shared borrow, which excludes mutable ones until `release_shared`.
        unsafe {
            exclusive::release(
                &self.cell.value,
                || borrow::writing_to_shared(state),
                || borrow::release_shared(state),
            )
        };
    }
}

impl<T: ?Sized + core::fmt::Debug> core::fmt::Debug for GcRefCell<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.try_borrow() {
            Some(b) => f.debug_tuple("GcRefCell").field(&&*b).finish(),
            None => f.write_str("GcRefCell(<borrowed>)"),
        }
    }
}

// SAFETY: reports everything the value holds, read under a marker read (so no mutable
// borrow is active); a mutably borrowed cell is skipped, which the barrier essay shows to be
// sound (the borrow shaded the value, or its grey session rescans it, or nobody can reach
// the value again).
unsafe impl<T: ?Sized + Trace> Trace for GcRefCell<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    fn trace(&self, t: &mut Tracer) {
        if borrow::marker_read(&self.state) {
            // SAFETY: the marker read excludes mutable borrows.
            unsafe { (*self.value.get()).trace(t) };
            borrow::marker_read_done(&self.state);
        }
    }
}

// SAFETY: replaces the lifetime inside the value type only.
unsafe impl<'b, T: Rebrand<'b>> Rebrand<'b> for GcRefCell<T>
where
    T::Branded: Sized,
{
    type Branded = GcRefCell<T::Branded>;
}
