//! `Gc<'gc, T>`: the pointer to a collected object, and the per-type descriptor
//! ([`GcType`]) the collector reads to trace and drop an object it knows only by address.
//!
//! # Representation
//!
//! A `Gc` is one machine word, the address of the object's first byte, for every pointee:
//! a sized `T` is stored as itself (no header: the span says what type its objects are, see
//! [`super::span`]); a slice `[T]` or a `str` is stored as a length word followed by the
//! elements, so that `Gc<[T]>` stays one word too.
//!
//! # The brand
//!
//! `'gc` is the lifetime of the session the pointer was made in (see [`super::mutator`]).
//! It is invariant, so a pointer cannot be passed off as belonging to another session, and a
//! session's closure is generic over it, so no `Gc` can leave the closure. While any session
//! is open no collection runs; outside sessions no `Gc` exists. That is why dereferencing a
//! `Gc` is safe.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use super::span::GcSpan;
use super::trace::{Rebrand, Trace, Tracer};

/// Marks `'gc` invariant.
pub(crate) type Brand<'gc> = PhantomData<fn(&'gc ()) -> &'gc ()>;

/// What the collector knows about the objects of one type: one `'static` descriptor per type,
/// referenced from every span holding such objects.
pub struct GcType {
    /// Bytes of one value (of one element for a slice type).
    pub(crate) size: usize,
    /// Alignment of one value (of one element for a slice type).
    pub(crate) align: usize,
    /// Objects are `[len][elements]` (slices and `str`).
    pub(crate) slice: bool,
    /// How the marker reads the objects; `None` for noscan types.
    pub(crate) trace: Option<&'static Scan>,
    /// Runs the object's destructor; `None` when it has none.
    pub(crate) drop: Option<unsafe fn(usize)>,
    /// The type's name, for reports (`gccheckmark`, leaks).
    pub(crate) name: fn() -> &'static str,
}

/// The marker's two ways into the objects of a scan type.
pub(crate) struct Scan {
    /// Reports the pointers of the object at an address (checkmark).
    pub(crate) object: unsafe fn(usize, &mut Tracer),
    /// Scans the grey objects of a span of the type ([`Tracer::scan_span`] with the type's
    /// `Trace` inlined), or for a large slice one oblet ([`Tracer::scan_oblet`]); returns
    /// the objects (or elements) traced.
    pub(crate) span: unsafe fn(&GcSpan, usize, &mut Tracer) -> usize,
}

impl fmt::Debug for GcType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcType")
            .field("name", &(self.name)())
            .field("size", &self.size)
            .field("align", &self.align)
            .field("slice", &self.slice)
            .field("scan", &self.trace.is_some())
            .field("drop", &self.drop.is_some())
            .finish()
    }
}

/// Byte offset of the elements in a slice object: after the length word, aligned for `T`.
pub(crate) const fn slice_data_offset(align: usize) -> usize {
    let w = core::mem::size_of::<usize>();
    if align > w {
        align
    } else {
        w
    }
}

/// Trace a sized `T` at `addr`.
///
/// # Safety
/// `addr` holds an initialised `T` that stays alive for the call.
#[inline(always)]
unsafe fn trace_sized<T: Trace>(addr: usize, t: &mut Tracer) {
    // SAFETY: caller's contract.
    unsafe { (*(addr as *const T)).trace(t) }
}

/// Scan a span of `T` (see [`Scan::span`]).
///
/// # Safety
/// As [`Tracer::scan_span`], for a span of `T`.
unsafe fn scan_sized<T: Trace>(s: &GcSpan, first: usize, t: &mut Tracer) -> usize {
    // SAFETY: caller's contract: every object `scan_span` traces is a marked, initialised T.
    unsafe { t.scan_span(s, first, |addr, t| trace_sized::<T>(addr, t)) }
}

/// Scan a span of `[T]` (see [`Scan::span`]).
///
/// # Safety
/// As [`Tracer::scan_span`], for a span of `[T]`.
unsafe fn scan_slice<T: Trace>(s: &GcSpan, first: usize, t: &mut Tracer) -> usize {
    let size = core::mem::size_of::<T>();
    if s.large && size != 0 {
        // A large slice is traced an oblet at a time (mark.rs essay).
        // SAFETY: caller's contract: `s` holds one slice object of T, laid out as
        // `GcPointee for [T]` says, and `first` is an entry's for it.
        return unsafe {
            t.scan_oblet(
                s,
                first,
                size,
                slice_data_offset(core::mem::align_of::<T>()),
                |from, n, t| {
                    for e in core::slice::from_raw_parts(from as *const T, n) {
                        e.trace(t);
                    }
                },
            )
        };
    }
    // SAFETY: caller's contract: every object `scan_span` traces is a marked, initialised
    // slice object of T.
    unsafe { t.scan_span(s, first, |addr, t| trace_slice::<T>(addr, t)) }
}

/// Drop the sized `T` at `addr`.
///
/// # Safety
/// `addr` holds an initialised `T` nobody will use again.
unsafe fn drop_sized<T>(addr: usize) {
    // SAFETY: caller's contract.
    unsafe { core::ptr::drop_in_place(addr as *mut T) }
}

/// Trace the slice of `T` at `addr`.
///
/// # Safety
/// `addr` holds an initialised slice object of `T` (length word, then elements).
#[inline(always)]
unsafe fn trace_slice<T: Trace>(addr: usize, t: &mut Tracer) {
    // SAFETY: caller's contract; the layout is the one `Session::alloc_slice*` writes.
    unsafe { <[T] as GcPointee>::deref(addr as *const u8).trace(t) }
}

/// Drop the elements of the slice of `T` at `addr`.
///
/// # Safety
/// `addr` holds an initialised slice object of `T` nobody will use again.
unsafe fn drop_slice<T>(addr: usize) {
    // SAFETY: caller's contract; the layout is the one `Session::alloc_slice*` writes.
    unsafe {
        let len = *(addr as *const usize);
        let data = (addr + slice_data_offset(core::mem::align_of::<T>())) as *mut T;
        core::ptr::drop_in_place(core::ptr::slice_from_raw_parts_mut(data, len));
    }
}

/// Holder of the per-type descriptors as associated constants, so that `&Desc::<T>::X` is
/// promoted to a `'static` (one per monomorphised type).
pub(crate) struct Desc<T>(PhantomData<T>);

impl<T: Trace> Desc<T> {
    const SCAN_SIZED: Scan = Scan {
        object: trace_sized::<T>,
        span: scan_sized::<T>,
    };
    const SCAN_SLICE: Scan = Scan {
        object: trace_slice::<T>,
        span: scan_slice::<T>,
    };
    pub(crate) const SIZED: GcType = GcType {
        size: core::mem::size_of::<T>(),
        align: core::mem::align_of::<T>(),
        slice: false,
        trace: if T::NEEDS_TRACE {
            Some(&Self::SCAN_SIZED)
        } else {
            None
        },
        drop: if core::mem::needs_drop::<T>() {
            Some(drop_sized::<T>)
        } else {
            None
        },
        name: core::any::type_name::<T>,
    };
    pub(crate) const SLICE: GcType = GcType {
        size: core::mem::size_of::<T>(),
        align: core::mem::align_of::<T>(),
        slice: true,
        trace: if T::NEEDS_TRACE {
            Some(&Self::SCAN_SLICE)
        } else {
            None
        },
        drop: if core::mem::needs_drop::<T>() {
            Some(drop_slice::<T>)
        } else {
            None
        },
        name: core::any::type_name::<[T]>,
    };
}

/// The descriptor of sized `T`.
#[inline(always)]
pub(crate) fn sized_type<T: Trace>() -> &'static GcType {
    &Desc::<T>::SIZED
}

/// The descriptor of `[T]`.
#[inline(always)]
pub(crate) fn slice_type<T: Trace>() -> &'static GcType {
    &Desc::<T>::SLICE
}

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for T {}
    impl<T> Sealed for [T] {}
    impl Sealed for str {}
}

/// Types a [`Gc`] can point to: any sized type, slices and `str`. Sealed.
///
/// # Safety
/// `deref` must read the object exactly as the allocation functions laid it out.
///
/// ```
/// use goheap::gc::{Gc, GcPointee, Heap};
///
/// // Code generic over what a `Gc` points to: sized values, slices and `str`.
/// fn bytes<T: ?Sized + GcPointee>(g: Gc<'_, T>) -> usize {
///     std::mem::size_of_val(Gc::as_ref(g))
/// }
///
/// Heap::new().mutator().enter(|cx| {
///     assert_eq!(bytes(cx.alloc(1u64)), 8);
///     assert_eq!(bytes(cx.alloc_slice(&[1u16, 2, 3])), 6);
///     assert_eq!(bytes(cx.alloc_str("four")), 4);
/// });
/// ```
pub unsafe trait GcPointee: sealed::Sealed {
    /// The object at `p` as a reference.
    ///
    /// # Safety
    /// `p` is the address of a live, initialised object of this type, alive for `'a`.
    unsafe fn deref<'a>(p: *const u8) -> &'a Self;
}

// SAFETY: a sized object is stored as itself.
unsafe impl<T> GcPointee for T {
    #[inline(always)]
    unsafe fn deref<'a>(p: *const u8) -> &'a T {
        // SAFETY: caller's contract.
        unsafe { &*(p as *const T) }
    }
}

// SAFETY: slice objects are a length word followed by the elements at
// `slice_data_offset(align_of::<T>())` (see `Session::alloc_slice_from_iter`).
unsafe impl<T> GcPointee for [T] {
    #[inline(always)]
    unsafe fn deref<'a>(p: *const u8) -> &'a [T] {
        // SAFETY: caller's contract plus the layout above.
        unsafe {
            let len = *(p as *const usize);
            let data = p.add(slice_data_offset(core::mem::align_of::<T>())) as *const T;
            core::slice::from_raw_parts(data, len)
        }
    }
}

// SAFETY: `str` objects are `[u8]` objects holding UTF-8 (written from a `&str`).
unsafe impl GcPointee for str {
    #[inline(always)]
    unsafe fn deref<'a>(p: *const u8) -> &'a str {
        // SAFETY: caller's contract; the bytes were copied from a `str`.
        unsafe { core::str::from_utf8_unchecked(<[u8] as GcPointee>::deref(p)) }
    }
}

/// A pointer to a garbage-collected object, valid for the session `'gc` it was made in.
/// `Copy`, one word, dereferences to `&T`. To keep an object beyond its session, make a
/// [`Root`](super::Root); to store one in a mutable field, use [`GcCell`](super::GcCell) or
/// [`GcRefCell`](super::GcRefCell).
///
/// Like `Rc`, it forwards `==`, ordering, hashing, `Debug` and `Display` to the value;
/// [`Gc::ptr_eq`] and [`Gc::as_ptr`] give identity.
///
/// ```
/// use goheap::gc::{Gc, Heap, Trace};
///
/// #[derive(Trace)]
/// struct Pair<'gc> {
///     name: Gc<'gc, str>,
///     next: Option<Gc<'gc, Pair<'gc>>>,
/// }
///
/// Heap::new().mutator().enter(|cx| {
///     let a = cx.alloc(Pair { name: cx.alloc_str("a"), next: None });
///     let b = cx.alloc(Pair { name: cx.alloc_str("b"), next: Some(a) });
///     assert_eq!(&*b.next.unwrap().name, "a");
///     assert!(Gc::ptr_eq(b.next.unwrap(), a));
///     let nums = cx.alloc_slice(&[3u32, 1, 2]);
///     assert_eq!(nums.iter().max(), Some(&3));
///     assert_eq!(format!("{:?}", cx.alloc(5u8)), "5");
/// });
/// ```
#[repr(transparent)]
pub struct Gc<'gc, T: ?Sized + GcPointee + 'gc> {
    ptr: NonNull<u8>,
    _m: PhantomData<(&'gc T, Brand<'gc>)>,
}

// SAFETY: a `Gc` gives out `&T` only, so sharing or sending it is sharing `&T`: sound exactly
// when `T: Sync`. (The object's memory is managed by the heap, which is thread-safe.)
unsafe impl<'gc, T: ?Sized + GcPointee + Sync + 'gc> Send for Gc<'gc, T> {}
// SAFETY: as for `Send`.
unsafe impl<'gc, T: ?Sized + GcPointee + Sync + 'gc> Sync for Gc<'gc, T> {}

impl<'gc, T: ?Sized + GcPointee + 'gc> Clone for Gc<'gc, T> {
    #[inline(always)]
    fn clone(&self) -> Self {
        *self
    }
}
impl<'gc, T: ?Sized + GcPointee + 'gc> Copy for Gc<'gc, T> {}

impl<'gc, T: ?Sized + GcPointee + 'gc> Gc<'gc, T> {
    /// Wraps an object address.
    ///
    /// # Safety
    /// `p` is a live object of type `T` in a heap whose session `'gc` is open.
    #[inline(always)]
    pub(crate) unsafe fn from_addr(p: usize) -> Self {
        Gc {
            // SAFETY: objects are never at address 0 (caller's contract).
            ptr: unsafe { NonNull::new_unchecked(p as *mut u8) },
            _m: PhantomData,
        }
    }

    /// The object's address.
    ///
    /// ```
    /// use goheap::gc::{Gc, Heap};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let g = cx.alloc(1u64);
    ///     assert_eq!(Gc::addr(g), Gc::as_ptr(g) as usize);
    ///     assert_eq!(Gc::addr(g) % 8, 0);
    /// });
    /// ```
    #[inline(always)]
    pub fn addr(this: Self) -> usize {
        this.ptr.as_ptr() as usize
    }

    /// The object as a raw pointer: its identity (two `Gc`s to one object give the same
    /// pointer), valid to read while the session `'gc` is open. As `Rc::as_ptr`; the
    /// comparison traits compare the values instead.
    ///
    /// ```
    /// use goheap::gc::{Gc, Heap};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let a = cx.alloc(7u64);
    ///     let b = cx.alloc(7u64);
    ///     assert_eq!(a, b); // equal values
    ///     assert_ne!(Gc::as_ptr(a), Gc::as_ptr(b)); // two objects
    ///     assert!(core::ptr::eq(Gc::as_ptr(a), &*a));
    /// });
    /// ```
    #[inline(always)]
    pub fn as_ptr(this: Self) -> *const T {
        Gc::as_ref(this)
    }

    /// The object as a reference valid for the whole session (longer than `Deref` gives).
    /// An associated function, not a method, so that it never shadows a method of `T`.
    ///
    /// ```
    /// use goheap::gc::{Gc, Heap};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let name = cx.alloc_str("goheap");
    ///     let r: &str = Gc::as_ref(name); // lives as long as the session, not the local
    ///     assert_eq!(r.len(), 6);
    /// });
    /// ```
    #[allow(clippy::should_implement_trait)]
    #[inline(always)]
    pub fn as_ref(this: Self) -> &'gc T {
        // SAFETY: `this` points to a live object of type `T` (constructor's contract), and no
        // collection can run before the session `'gc` ends, so it stays alive for `'gc`.
        unsafe { T::deref(this.ptr.as_ptr()) }
    }

    /// Whether two pointers point to the same object (identity; `==` compares values).
    ///
    /// ```
    /// use goheap::gc::{Gc, Heap};
    ///
    /// Heap::new().mutator().enter(|cx| {
    ///     let a = cx.alloc_str("x");
    ///     let b = a;
    ///     let c = cx.alloc_str("x");
    ///     assert!(Gc::ptr_eq(a, b));
    ///     assert!(!Gc::ptr_eq(a, c));
    ///     assert_eq!(a, c);
    /// });
    /// ```
    #[inline(always)]
    pub fn ptr_eq(a: Self, b: Self) -> bool {
        a.ptr == b.ptr
    }
}

impl<'gc, T: ?Sized + GcPointee + 'gc> core::ops::Deref for Gc<'gc, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        Gc::as_ref(*self)
    }
}

impl<'gc, T: ?Sized + GcPointee + fmt::Debug + 'gc> fmt::Debug for Gc<'gc, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<'gc, T: ?Sized + GcPointee + fmt::Display + 'gc> fmt::Display for Gc<'gc, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// The object's address, as `Rc`'s `Pointer` prints it.
impl<'gc, T: ?Sized + GcPointee + 'gc> fmt::Pointer for Gc<'gc, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Pointer::fmt(&self.ptr, f)
    }
}

// The comparison and hashing traits forward to the values, as `Rc`'s do: two `Gc`s to
// different objects holding equal values are equal. `Gc::ptr_eq` and `Gc::as_ptr` give
// identity.

/// Equality of the values (`Gc::ptr_eq` for identity).
impl<'gc, T: ?Sized + GcPointee + PartialEq + 'gc> PartialEq for Gc<'gc, T> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<'gc, T: ?Sized + GcPointee + Eq + 'gc> Eq for Gc<'gc, T> {}

/// Order of the values.
impl<'gc, T: ?Sized + GcPointee + PartialOrd + 'gc> PartialOrd for Gc<'gc, T> {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        (**self).partial_cmp(&**other)
    }
}

/// Order of the values.
impl<'gc, T: ?Sized + GcPointee + Ord + 'gc> Ord for Gc<'gc, T> {
    #[inline]
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

/// Hash of the value, consistent with `==` (and with `Borrow<T>`).
impl<'gc, T: ?Sized + GcPointee + core::hash::Hash + 'gc> core::hash::Hash for Gc<'gc, T> {
    #[inline]
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

/// Lets a set or map keyed by `Gc<T>` be searched with a `&T`.
impl<'gc, T: ?Sized + GcPointee + 'gc> core::borrow::Borrow<T> for Gc<'gc, T> {
    #[inline]
    fn borrow(&self) -> &T {
        self
    }
}

// SAFETY: the only pointer a `Gc` holds is itself; it reports it.
unsafe impl<'gc, T: ?Sized + GcPointee + 'gc> Trace for Gc<'gc, T> {
    const NEEDS_TRACE: bool = true;
    #[inline(always)]
    fn trace(&self, t: &mut Tracer) {
        t.mark(self.ptr.as_ptr() as usize)
    }
}

// SAFETY: replaces the brand (and the pointee's lifetime) only.
unsafe impl<'gc, 'b, T> Rebrand<'b> for Gc<'gc, T>
where
    T: ?Sized + GcPointee + Rebrand<'b> + 'gc,
    T::Branded: GcPointee,
{
    type Branded = Gc<'b, T::Branded>;
}
