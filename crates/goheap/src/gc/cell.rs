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
//! Every store goes through [`write_barrier`] (old value, new value) and every mutable
//! borrow through [`borrow_barrier`]. While marking stops the world, as in this version,
//! no store can happen during a mark and both are a load of a flag that is never set. The
//! concurrent collector turns them into Go's hybrid barrier (shade the old value always,
//! the new one while the storing mutator is grey) and, for `GcRefCell`, into "trace the
//! object before the first mutable borrow during mark, grey it again after the borrow"
//! (see `docs/design.md`).

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::ptr::{Gc, GcPointee};
use super::trace::{Rebrand, Trace, Tracer};
use super::weak::Weak;

/// Set while some heap marks concurrently with its mutators (never, in this version).
pub(crate) static BARRIER_ON: AtomicBool = AtomicBool::new(false);

/// The write barrier hook: `old` is overwritten by `new` (addresses, 0 for none).
#[inline(always)]
pub(crate) fn write_barrier(old: usize, new: usize) {
    if BARRIER_ON.load(Ordering::Relaxed) {
        barrier_slow(old, new)
    }
}

#[cold]
fn barrier_slow(_old: usize, _new: usize) {
    unreachable!("goheap: concurrent marking is not enabled in this version")
}

/// The mutable-borrow barrier hook for the cell at `cell`.
#[inline(always)]
pub(crate) fn borrow_barrier(cell: usize) {
    if BARRIER_ON.load(Ordering::Relaxed) {
        barrier_slow(cell, 0)
    }
}

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

/// A mutable pointer field: `get` and `set`, with the write barrier.
pub struct GcCell<T: CellValue> {
    word: AtomicUsize,
    _m: PhantomData<T>,
}

impl<T: CellValue> GcCell<T> {
    /// A cell holding `v`.
    pub fn new(v: T) -> Self {
        GcCell {
            word: AtomicUsize::new(v.to_word()),
            _m: PhantomData,
        }
    }

    /// The current value.
    #[inline(always)]
    pub fn get(&self) -> T {
        // SAFETY: the word was written from a `T` by `new` or `set`, and the object it
        // names is alive: this cell's object is reachable (we hold `&self` inside a
        // session), so the collector traced the value through it.
        unsafe { T::from_word(self.word.load(Ordering::Acquire)) }
    }

    /// Stores `v`.
    #[inline(always)]
    pub fn set(&self, v: T) {
        let new = v.to_word();
        if BARRIER_ON.load(Ordering::Relaxed) {
            let old = self.word.swap(new, Ordering::AcqRel);
            barrier_slow(old, new);
        } else {
            write_barrier(0, new);
            self.word.store(new, Ordering::Release);
        }
    }

    /// Stores `new` if the cell holds `current` (compared by address), returning the
    /// previous value either way: `Ok` when it was `current`. Lets several threads update a
    /// shared pointer field without a lock (a stack push, for instance).
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        let (c, n) = (current.to_word(), new.to_word());
        match self
            .word
            .compare_exchange(c, n, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(old) => {
                write_barrier(old, n);
                // SAFETY: as in `get`.
                Ok(unsafe { T::from_word(old) })
            }
            // SAFETY: as in `get`.
            Err(old) => Err(unsafe { T::from_word(old) }),
        }
    }

    /// Stores `v`, returning the old value.
    pub fn replace(&self, v: T) -> T {
        let new = v.to_word();
        let old = self.word.swap(new, Ordering::AcqRel);
        write_barrier(old, new);
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

/// Borrow flag: the number of shared borrows, or `WRITING`.
const WRITING: usize = usize::MAX;

/// A mutable traced value with dynamically checked borrows (an atomic `RefCell`).
/// Borrowing mutably while borrowed panics, as `RefCell` does; the flag is atomic so that the
/// concurrent marker can take a shared borrow to trace the value.
pub struct GcRefCell<T: ?Sized> {
    flag: AtomicUsize,
    value: UnsafeCell<T>,
}

// SAFETY: like `RwLock<T>`: shared borrows from several threads need `T: Sync`, a mutable
// borrow on another thread moves access to `T`, so `T: Send`. The flag is atomic.
unsafe impl<T: ?Sized + Send + Sync> Sync for GcRefCell<T> {}
// SAFETY: owns a `T`.
unsafe impl<T: ?Sized + Send> Send for GcRefCell<T> {}

impl<T> GcRefCell<T> {
    /// A cell holding `v`.
    pub fn new(v: T) -> Self {
        GcRefCell {
            flag: AtomicUsize::new(0),
            value: UnsafeCell::new(v),
        }
    }
}

impl<T: ?Sized> GcRefCell<T> {
    /// Borrows the value.
    ///
    /// # Panics
    /// If it is mutably borrowed.
    pub fn borrow(&self) -> GcRef<'_, T> {
        self.try_borrow()
            .expect("goheap: GcRefCell already mutably borrowed")
    }

    /// Borrows the value, or `None` if it is mutably borrowed.
    pub fn try_borrow(&self) -> Option<GcRef<'_, T>> {
        let mut f = self.flag.load(Ordering::Relaxed);
        loop {
            if f == WRITING || f == WRITING - 1 {
                return None;
            }
            match self
                .flag
                .compare_exchange_weak(f, f + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Some(GcRef { cell: self }),
                Err(x) => f = x,
            }
        }
    }

    /// Borrows the value mutably.
    ///
    /// # Panics
    /// If it is borrowed.
    pub fn borrow_mut(&self) -> GcRefMut<'_, T> {
        self.try_borrow_mut()
            .expect("goheap: GcRefCell already borrowed")
    }

    /// Borrows the value mutably, or `None` if it is borrowed.
    pub fn try_borrow_mut(&self) -> Option<GcRefMut<'_, T>> {
        self.flag
            .compare_exchange(0, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        borrow_barrier(self as *const Self as *const u8 as usize);
        Some(GcRefMut {
            cell: self,
            _m: PhantomData,
        })
    }
}

/// A shared borrow of a [`GcRefCell`].
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
        self.cell.flag.fetch_sub(1, Ordering::Release);
    }
}

/// A mutable borrow of a [`GcRefCell`].
pub struct GcRefMut<'a, T: ?Sized> {
    cell: &'a GcRefCell<T>,
    _m: PhantomData<&'a mut T>,
}

impl<T: ?Sized> Deref for GcRefMut<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the flag is WRITING for us alone.
        unsafe { &*self.cell.value.get() }
    }
}

impl<T: ?Sized> DerefMut for GcRefMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the flag is WRITING for us alone.
        unsafe { &mut *self.cell.value.get() }
    }
}

impl<T: ?Sized> Drop for GcRefMut<'_, T> {
    fn drop(&mut self) {
        // The insertion half of the barrier for a borrow: everything the borrow may have
        // stored is re-examined by the concurrent marker (no-op in this version).
        borrow_barrier(self.cell as *const GcRefCell<T> as *const u8 as usize);
        self.cell.flag.store(0, Ordering::Release);
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

// SAFETY: reports everything the value holds. Marking stops the world in this version, and
// no borrow outlives a session, so no borrow is active while it runs and the read is
// race-free; the concurrent marker will take a shared borrow first (module essay).
unsafe impl<T: ?Sized + Trace> Trace for GcRefCell<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    fn trace(&self, t: &mut Tracer) {
        // SAFETY: see above.
        unsafe { (*self.value.get()).trace(t) }
    }
}

// SAFETY: replaces the lifetime inside the value type only.
unsafe impl<'b, T: Rebrand<'b>> Rebrand<'b> for GcRefCell<T>
where
    T::Branded: Sized,
{
    type Branded = GcRefCell<T::Branded>;
}
