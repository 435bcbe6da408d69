//! [`GcDyn`]: a pointer to a heap object seen as a trait object (`dyn Trait`), made from a
//! [`Gc`] by the [`gc_dyn!`](crate::gc_dyn) macro.
//!
//! # Why a second pointer type, and why it is this simple
//!
//! A `Gc` is one word: a sized object is read as itself, and a slice or `str` object keeps
//! its length in the object (`ptr.rs`). A trait object needs its vtable, which no object
//! carries (typed spans have no object header), so the vtable travels with the pointer: a
//! `GcDyn` is two words, a `*const dyn Trait`. Making `Gc` itself two words for every pointee
//! would double every pointer field and every `GcCell` (one atomic word) for the sake of the
//! few that point to trait objects.
//!
//! The collector does not need the vtable, nor `Trace` to be dyn-compatible (it is not: its
//! `NEEDS_TRACE` is an associated constant): the object was allocated as its concrete type,
//! in a span whose descriptor traces that type, and marking works from addresses. So a
//! `GcDyn` traces as the address it holds, exactly as a `Gc` does, and nothing about the
//! object changes when it is viewed through a trait.
//!
//! # The coercion, on stable Rust
//!
//! Stable Rust has no `CoerceUnsized` for user types, but it unsizes raw pointers: a closure
//! `|p| -> *const dyn Trait { p }` given a `*const T` returns it with `T`'s vtable for
//! `Trait`. [`gc_dyn!`](crate::gc_dyn) passes exactly that closure, written by the macro,
//! to the unsafe constructor (gc-arena's `unsize!` does the same). The closure body is its
//! argument and nothing else, so the only conversion that can happen is the compiler's
//! unsizing coercion (a cast such as `p as *const Other` cannot be smuggled in), which keeps
//! the address and the concrete type's vtable. What cannot coerce does not compile:
//!
//! - `Node<'gc>` to `dyn Trait + 'static` (`Node<'gc>: 'static` does not hold): a trait
//!   object cannot outlive the session's brand.
//! - a type that does not implement the trait.
//! - a type that is not `Sync`: a `GcDyn` is `Send` and `Sync` whatever the trait's auto
//!   traits say, because every object it can point to was required to be `Sync` when it was
//!   made (`&dyn Trait` to a `Sync` object may cross threads).
//!
//! A `GcDyn` is `Trace` (one edge), so it goes in objects, in `Vec`s and in `GcRefCell`s;
//! not in a `GcCell`, which holds one word. It has no `Weak` form: keep a `Weak` to the
//! concrete object and coerce after upgrading.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use super::ptr::{Brand, Gc};
use super::trace::{Trace, Tracer};

/// A pointer to a heap object seen as `D`, a trait object type (`GcDyn<'gc, dyn Shape>` is
/// `dyn Shape + 'gc`). Made with [`gc_dyn!`](crate::gc_dyn); two words; `Copy`; derefs to
/// `&D`; compares, orders, hashes and prints by value as `Gc` does (`ptr_eq` for identity).
///
/// ```
/// use goheap::gc::{Gc, GcDyn, Heap, Trace};
/// use goheap::gc_dyn;
///
/// trait Shape: Sync {
///     fn area(&self) -> f64;
/// }
///
/// #[derive(Trace)]
/// struct Square { side: f64 }
/// impl Shape for Square {
///     fn area(&self) -> f64 { self.side * self.side }
/// }
///
/// #[derive(Trace)]
/// struct Named<'gc> { name: Gc<'gc, str>, inner: GcDyn<'gc, dyn Shape> }
/// impl<'gc> Shape for Named<'gc> {
///     fn area(&self) -> f64 { self.inner.area() }
/// }
///
/// let heap = Heap::new();
/// let mut m = heap.mutator();
/// let root = m.enter(|cx| {
///     let sq = gc_dyn!(cx.alloc(Square { side: 2.0 }) => dyn Shape);
///     let named = cx.alloc(Named { name: cx.alloc_str("sq"), inner: sq });
///     let shapes: Vec<GcDyn<dyn Shape>> = vec![sq, gc_dyn!(named => dyn Shape)];
///     assert_eq!(shapes.iter().map(|s| s.area()).sum::<f64>(), 8.0);
///     cx.root(named)
/// });
/// heap.collect();
/// assert_eq!(m.enter(|cx| cx.get(&root).inner.area()), 4.0);
/// ```
pub struct GcDyn<'gc, D: ?Sized + 'gc> {
    /// The object, with the vtable of its concrete type for `D`.
    ptr: NonNull<D>,
    _m: PhantomData<(&'gc D, Brand<'gc>)>,
}

// SAFETY: `GcDyn::__unsize` requires the concrete type to be `Sync`, so the `&D` a `GcDyn`
// gives out may be shared with and sent to other threads whatever `D`'s own auto traits; the
// object's memory is managed by the (thread-safe) heap.
unsafe impl<'gc, D: ?Sized + 'gc> Send for GcDyn<'gc, D> {}
// SAFETY: as above.
unsafe impl<'gc, D: ?Sized + 'gc> Sync for GcDyn<'gc, D> {}

impl<'gc, D: ?Sized + 'gc> Clone for GcDyn<'gc, D> {
    #[inline(always)]
    fn clone(&self) -> Self {
        *self
    }
}
impl<'gc, D: ?Sized + 'gc> Copy for GcDyn<'gc, D> {}

impl<'gc, D: ?Sized + 'gc> GcDyn<'gc, D> {
    /// What [`gc_dyn!`](crate::gc_dyn) expands to; not for direct use.
    ///
    /// # Safety
    /// `coerce` returns its argument unsized to `*const D` (an unsizing coercion, nothing
    /// else): same address, `T`'s vtable. The macro passes `|p| p`.
    #[doc(hidden)]
    #[inline(always)]
    pub unsafe fn __unsize<T: Trace + Sync + 'gc>(
        g: Gc<'gc, T>,
        coerce: impl FnOnce(*const T) -> *const D,
    ) -> Self {
        let thin = Gc::as_ptr(g);
        let p = coerce(thin);
        assert_eq!(
            p as *const u8, thin as *const u8,
            "goheap: GcDyn's coercion changed the address"
        );
        GcDyn {
            // SAFETY: `p` has `thin`'s address (checked), which a `Gc` never has as null.
            ptr: unsafe { NonNull::new_unchecked(p as *mut D) },
            _m: PhantomData,
        }
    }

    /// The object as a reference valid for the whole session (as [`Gc::as_ref`]).
    ///
    /// ```
    /// use goheap::gc::{Gc, GcDyn, Heap, Trace};
    /// use goheap::gc_dyn;
    ///
    /// #[derive(Trace)]
    /// struct Meters {
    ///     m: f64,
    /// }
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let d: GcDyn<'_, dyn std::fmt::Debug> = gc_dyn!(cx.alloc(1u64) => dyn std::fmt::Debug);
    ///     let r: &dyn std::fmt::Debug = GcDyn::as_ref(d); // for the whole session
    ///     assert_eq!(format!("{r:?}"), "1");
    /// });
    /// ```
    #[allow(clippy::should_implement_trait)]
    #[inline(always)]
    pub fn as_ref(this: Self) -> &'gc D {
        // SAFETY: `ptr` is a live object of the heap, coerced from a `Gc<'gc, T>` with `T`'s
        // vtable (`__unsize`'s contract); like the `Gc` it came from, it stays alive until
        // the session `'gc` ends.
        unsafe { this.ptr.as_ref() }
    }

    /// The object as a raw pointer (its identity; `==` compares values).
    ///
    /// ```
    /// use goheap::gc::{Gc, GcDyn, Heap, Trace};
    /// use goheap::gc_dyn;
    ///
    /// #[derive(Trace)]
    /// struct Meters {
    ///     m: f64,
    /// }
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let g = cx.alloc(Meters { m: 2.0 });
    ///     let d: GcDyn<'_, dyn Sync> = gc_dyn!(g => dyn Sync);
    ///     // The same address as the object's `Gc`.
    ///     assert_eq!(GcDyn::as_ptr(d) as *const u8, Gc::as_ptr(g) as *const u8);
    /// });
    /// ```
    #[inline(always)]
    pub fn as_ptr(this: Self) -> *const D {
        this.ptr.as_ptr()
    }

    /// Whether two pointers point to the same object.
    ///
    /// ```
    /// use goheap::gc::{Gc, GcDyn, Heap, Trace};
    /// use goheap::gc_dyn;
    ///
    /// #[derive(Trace)]
    /// struct Meters {
    ///     m: f64,
    /// }
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let (a, b) = (cx.alloc(Meters { m: 1.0 }), cx.alloc(Meters { m: 1.0 }));
    ///     let (da, db) = (gc_dyn!(a => dyn Sync), gc_dyn!(b => dyn Sync));
    ///     assert!(GcDyn::ptr_eq(da, gc_dyn!(a => dyn Sync)));
    ///     assert!(!GcDyn::ptr_eq(da, db));
    /// });
    /// ```
    #[inline(always)]
    pub fn ptr_eq(a: Self, b: Self) -> bool {
        a.ptr.as_ptr() as *const u8 == b.ptr.as_ptr() as *const u8
    }
}

impl<'gc, D: ?Sized + 'gc> core::ops::Deref for GcDyn<'gc, D> {
    type Target = D;
    #[inline(always)]
    fn deref(&self) -> &D {
        GcDyn::as_ref(*self)
    }
}

impl<'gc, D: ?Sized + fmt::Debug + 'gc> fmt::Debug for GcDyn<'gc, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<'gc, D: ?Sized + fmt::Display + 'gc> fmt::Display for GcDyn<'gc, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// The object's address.
impl<'gc, D: ?Sized + 'gc> fmt::Pointer for GcDyn<'gc, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Pointer::fmt(&(self.ptr.as_ptr() as *const u8), f)
    }
}

/// Equality of the values, when the trait object type has it (e.g. a hand-written
/// `impl PartialEq for dyn Shape + '_`); `GcDyn::ptr_eq` for identity.
impl<'gc, D: ?Sized + PartialEq + 'gc> PartialEq for GcDyn<'gc, D> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<'gc, D: ?Sized + Eq + 'gc> Eq for GcDyn<'gc, D> {}

/// Order of the values.
impl<'gc, D: ?Sized + PartialOrd + 'gc> PartialOrd for GcDyn<'gc, D> {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        (**self).partial_cmp(&**other)
    }
}

/// Order of the values.
impl<'gc, D: ?Sized + Ord + 'gc> Ord for GcDyn<'gc, D> {
    #[inline]
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

/// Hash of the value, consistent with `==`.
impl<'gc, D: ?Sized + core::hash::Hash + 'gc> core::hash::Hash for GcDyn<'gc, D> {
    #[inline]
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

// SAFETY: the only pointer a `GcDyn` holds is its object's address; it reports it. The
// object's span traces the object as its concrete type.
unsafe impl<'gc, D: ?Sized + 'gc> Trace for GcDyn<'gc, D> {
    const NEEDS_TRACE: bool = true;
    #[inline(always)]
    fn trace(&self, t: &mut Tracer) {
        t.mark(self.ptr.as_ptr() as *const u8 as usize)
    }
}

/// Views a [`Gc`] as a trait object: `gc_dyn!(g => dyn Trait)` gives a
/// [`GcDyn<'gc, dyn Trait>`](crate::gc::GcDyn). The object's type must implement the trait
/// and be `Sync`; the trait object cannot outlive the session (`dyn Trait + 'static` from a
/// `Gc<'gc, Node<'gc>>` does not compile). See [`GcDyn`](crate::gc::GcDyn).
///
/// ```
/// use goheap::gc::{GcDyn, Heap, Trace};
/// use goheap::gc_dyn;
///
/// trait Shape {
///     fn area(&self) -> f64;
/// }
///
/// #[derive(Trace)]
/// struct Square {
///     side: f64,
/// }
///
/// impl Shape for Square {
///     fn area(&self) -> f64 {
///         self.side * self.side
///     }
/// }
///
/// Heap::new().mutator().enter(|cx| {
///     let sq = cx.alloc(Square { side: 3.0 });
///     let shape: GcDyn<'_, dyn Shape> = gc_dyn!(sq => dyn Shape);
///     assert_eq!(shape.area(), 9.0);
/// });
/// ```
#[macro_export]
macro_rules! gc_dyn {
    ($gc:expr => $d:ty) => {{
        let gc = $gc;
        // SAFETY: the closure's body is its argument coerced to `*const $d`, which between
        // raw pointer types can only be an unsizing coercion: same address, the concrete
        // type's vtable (`GcDyn::__unsize`'s contract).
        unsafe { $crate::gc::GcDyn::<$d>::__unsize(gc, |p| -> *const $d { p }) }
    }};
}
