//! What the collector knows about a type: the [`Trace`] trait, which lists the [`Gc`]
//! pointers a value holds, and [`Rebrand`], which names a type at another session lifetime.
//!
//! # Tracing
//!
//! The collector is precise: it follows exactly the pointers that `Trace::trace` reports and
//! nothing else. Reporting too few would let the collector free an object that is still
//! reachable, so `Trace` is an `unsafe trait`; `#[derive(Trace)]` (crate `goheap-derive`)
//! writes correct implementations, and the implementations below cover the standard types
//! people put in objects. Reporting too many is impossible without unsafe code: the only
//! way to report an edge is to call `trace` on a `Gc` the value really holds.
//!
//! `NEEDS_TRACE` is false for types that can never hold a `Gc` (numbers, strings, any
//! `'static` type): their objects go to *noscan* spans that marking never reads (Go's
//! noscan size classes), and a container of them is not even walked.
//!
//! # Why `'static` means "holds no `Gc`"
//!
//! Every `Gc<'gc, T>` carries its session's brand `'gc`, a lifetime that is never `'static`.
//! So a `'static` type cannot contain one, and `Cell<T>`, `RefCell<T>`, `Mutex<T>`, ... are
//! `Trace` only when `T: 'static`: wrapping a traced pointer in a std cell (whose stores the
//! collector could not see, nor read without a data race) does not compile. Mutable traced
//! fields use goheap's own cells ([`super::cell`]), which apply the write barrier.

use core::cell::{Cell, OnceCell, RefCell};
use core::marker::PhantomData;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{
    AtomicBool, AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32,
    AtomicU64, AtomicU8, AtomicUsize,
};
use std::sync::{Arc, Mutex, RwLock};

pub use super::mark::Tracer;

/// A type whose values the collector can trace.
///
/// # Safety
///
/// `trace` must call `trace` on every [`Gc`](super::Gc) (and every traced container of
/// them) that `self` holds and that could be reached from it through `&self`, and
/// `NEEDS_TRACE` must be true if any value of the type can hold one. It must not read
/// anything a concurrent mutation through `&self` could change without synchronisation (use
/// goheap's cells for mutable traced fields). `#[derive(Trace)]` meets these rules.
///
/// # Example
///
/// Derive it (see [`derive@super::Trace`]); by hand, forward to every field that may hold a `Gc`:
///
/// ```
/// use goheap::gc::{Gc, Heap, Rebrand, Trace, Tracer};
///
/// struct Edge<'gc> {
///     to: Gc<'gc, u64>,
///     weight: f32,
/// }
///
/// // SAFETY: `to` is the only `Gc`, and it is reported; `weight` cannot hold one.
/// unsafe impl<'gc> Trace for Edge<'gc> {
///     const NEEDS_TRACE: bool = true;
///     fn trace(&self, t: &mut Tracer) {
///         self.to.trace(t);
///     }
/// }
/// // SAFETY: `Edge<'b>` is `Edge<'gc>` with the session lifetime replaced.
/// unsafe impl<'gc, 'b> Rebrand<'b> for Edge<'gc> {
///     type Branded = Edge<'b>;
/// }
///
/// let heap = Heap::new();
/// let mut m = heap.mutator();
/// let e = m.enter(|cx| {
///     let e = cx.alloc(Edge { to: cx.alloc(9), weight: 0.5 });
///     cx.root(e)
/// });
/// heap.collect();
/// assert_eq!(m.enter(|cx| *cx.get(&e).to), 9);
/// ```
pub unsafe trait Trace {
    /// False when no value of this type can hold a `Gc`: objects of the type are *noscan*.
    const NEEDS_TRACE: bool;

    /// Reports every `Gc` in `self` to `t` by calling `trace` on it.
    fn trace(&self, t: &mut Tracer);
}

/// `Self` with its session lifetime replaced by `'b`: lets a [`Root`](super::Root), which
/// lives outside every session, name the type of its object, and gives the object back at the
/// right lifetime inside the next session. A `Root<Node<'static>>` holds a `Node<'gc>`.
///
/// # Safety
///
/// `Branded` must be `Self` with every occurrence of the type's session lifetime replaced by
/// `'b` and nothing else changed, so that the two have the same layout and the same `Trace`.
/// `#[derive(Trace)]` implements it for types with at most one lifetime parameter.
///
/// ```
/// use goheap::gc::{Gc, Heap, Rebrand, Root, Trace};
///
/// #[derive(Trace)] // derives `Rebrand` too
/// struct Node<'gc> {
///     next: Option<Gc<'gc, Node<'gc>>>,
///     value: u64,
/// }
///
/// // A root names its object's type at `'static`; inside a session it is `Node<'gc>` again.
/// fn _branded<'b>(n: <Node<'static> as Rebrand<'b>>::Branded) -> Node<'b> {
///     n
/// }
///
/// let heap = Heap::new();
/// let mut m = heap.mutator();
/// let root: Root<Node<'static>> = m.enter(|cx| {
///     let tail = cx.alloc(Node { next: None, value: 2 });
///     cx.root(cx.alloc(Node { next: Some(tail), value: 1 }))
/// });
/// heap.collect();
/// m.enter(|cx| {
///     let head: Gc<'_, Node<'_>> = cx.get(&root);
///     assert_eq!(head.next.map(|n| n.value), Some(2));
/// });
/// ```
pub unsafe trait Rebrand<'b> {
    /// `Self` at lifetime `'b`.
    type Branded: ?Sized + 'b;
}

/// Types that hold no `Gc` at all: tracing does nothing and they are noscan.
macro_rules! leaf {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: the type holds no `Gc` (it is `'static`).
        unsafe impl Trace for $t {
            const NEEDS_TRACE: bool = false;
            #[inline(always)]
            fn trace(&self, _: &mut Tracer) {}
        }
        // SAFETY: the type has no lifetime to replace.
        unsafe impl<'b> Rebrand<'b> for $t {
            type Branded = $t;
        }
    )*};
}

leaf!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    str,
    String,
    std::ffi::CString,
    std::ffi::CStr,
    std::path::PathBuf,
    std::path::Path,
    std::time::Duration,
    std::time::Instant,
    std::time::SystemTime,
    AtomicBool,
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicIsize,
    core::num::NonZeroU32,
    core::num::NonZeroU64,
    core::num::NonZeroUsize,
);

/// Interior-mutable and shared-ownership std types: traceable only around `'static` data, so
/// never around a `Gc` (see the module essay). Their contents are not traced.
macro_rules! static_only {
    ($($t:ident),*) => {$(
        // SAFETY: `T: 'static` holds no `Gc`, so there is nothing to report.
        unsafe impl<T: 'static> Trace for $t<T> {
            const NEEDS_TRACE: bool = false;
            #[inline(always)]
            fn trace(&self, _: &mut Tracer) {}
        }
        // SAFETY: `'static` types have no session lifetime.
        unsafe impl<'b, T: 'static> Rebrand<'b> for $t<T> {
            type Branded = $t<T>;
        }
    )*};
}
static_only!(Cell, RefCell, OnceCell, Mutex, RwLock, Rc, Arc, PhantomData);

// SAFETY: forwards to the pointee, which the box owns.
unsafe impl<T: ?Sized + Trace> Trace for Box<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, t: &mut Tracer) {
        (**self).trace(t)
    }
}
// SAFETY: replaces the lifetime in the pointee only.
unsafe impl<'b, T: ?Sized + Rebrand<'b>> Rebrand<'b> for Box<T> {
    type Branded = Box<T::Branded>;
}

// SAFETY: forwards to the value when present.
unsafe impl<T: Trace> Trace for Option<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, t: &mut Tracer) {
        if T::NEEDS_TRACE {
            if let Some(v) = self {
                v.trace(t)
            }
        }
    }
}
// SAFETY: replaces the lifetime in the payload only.
unsafe impl<'b, T: Rebrand<'b>> Rebrand<'b> for Option<T>
where
    T::Branded: Sized,
{
    type Branded = Option<T::Branded>;
}

// SAFETY: forwards to whichever side is present.
unsafe impl<T: Trace, E: Trace> Trace for Result<T, E> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE || E::NEEDS_TRACE;
    fn trace(&self, t: &mut Tracer) {
        match self {
            Ok(v) => v.trace(t),
            Err(e) => e.trace(t),
        }
    }
}
// SAFETY: replaces the lifetime in both payloads only.
unsafe impl<'b, T: Rebrand<'b>, E: Rebrand<'b>> Rebrand<'b> for Result<T, E>
where
    T::Branded: Sized,
    E::Branded: Sized,
{
    type Branded = Result<T::Branded, E::Branded>;
}

// SAFETY: every element is visited.
unsafe impl<T: Trace> Trace for [T] {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, t: &mut Tracer) {
        if T::NEEDS_TRACE {
            for v in self {
                v.trace(t)
            }
        }
    }
}
// SAFETY: replaces the lifetime in the element type only.
unsafe impl<'b, T: Rebrand<'b>> Rebrand<'b> for [T]
where
    T::Branded: Sized,
{
    type Branded = [T::Branded];
}

// SAFETY: every element is visited.
unsafe impl<T: Trace, const N: usize> Trace for [T; N] {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, t: &mut Tracer) {
        self.as_slice().trace(t)
    }
}
// SAFETY: replaces the lifetime in the element type only.
unsafe impl<'b, T: Rebrand<'b>, const N: usize> Rebrand<'b> for [T; N]
where
    T::Branded: Sized,
{
    type Branded = [T::Branded; N];
}

/// Sequence containers: every element is visited.
macro_rules! seq {
    ($($c:ident),*) => {$(
        // SAFETY: every element is visited through the container's iterator.
        unsafe impl<T: Trace> Trace for $c<T> {
            const NEEDS_TRACE: bool = T::NEEDS_TRACE;
            #[inline]
            fn trace(&self, t: &mut Tracer) {
                if T::NEEDS_TRACE {
                    for v in self.iter() {
                        v.trace(t)
                    }
                }
            }
        }
        // SAFETY: replaces the lifetime in the element type only.
        unsafe impl<'b, T: Rebrand<'b>> Rebrand<'b> for $c<T>
        where
            T::Branded: Sized,
        {
            type Branded = $c<T::Branded>;
        }
    )*};
}
seq!(Vec, VecDeque, LinkedList, BTreeSet, BinaryHeap);

// SAFETY: every element is visited; the hasher is `'static`, so it holds no Gc.
unsafe impl<T: Trace, S: 'static> Trace for HashSet<T, S> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    fn trace(&self, t: &mut Tracer) {
        if T::NEEDS_TRACE {
            for v in self {
                v.trace(t)
            }
        }
    }
}
// SAFETY: replaces the lifetime in the element type only.
unsafe impl<'b, T: Rebrand<'b>, S: 'static> Rebrand<'b> for HashSet<T, S>
where
    T::Branded: Sized,
{
    type Branded = HashSet<T::Branded, S>;
}

// SAFETY: every key and value is visited; the hasher is `'static`, so it holds no Gc.
unsafe impl<K: Trace, V: Trace, S: 'static> Trace for HashMap<K, V, S> {
    const NEEDS_TRACE: bool = K::NEEDS_TRACE || V::NEEDS_TRACE;
    fn trace(&self, t: &mut Tracer) {
        if Self::NEEDS_TRACE {
            for (k, v) in self {
                k.trace(t);
                v.trace(t);
            }
        }
    }
}
// SAFETY: replaces the lifetime in the key and value types only.
unsafe impl<'b, K: Rebrand<'b>, V: Rebrand<'b>, S: 'static> Rebrand<'b> for HashMap<K, V, S>
where
    K::Branded: Sized,
    V::Branded: Sized,
{
    type Branded = HashMap<K::Branded, V::Branded, S>;
}

// SAFETY: every key and value is visited.
unsafe impl<K: Trace, V: Trace> Trace for BTreeMap<K, V> {
    const NEEDS_TRACE: bool = K::NEEDS_TRACE || V::NEEDS_TRACE;
    fn trace(&self, t: &mut Tracer) {
        if Self::NEEDS_TRACE {
            for (k, v) in self {
                k.trace(t);
                v.trace(t);
            }
        }
    }
}
// SAFETY: replaces the lifetime in the key and value types only.
unsafe impl<'b, K: Rebrand<'b>, V: Rebrand<'b>> Rebrand<'b> for BTreeMap<K, V>
where
    K::Branded: Sized,
    V::Branded: Sized,
{
    type Branded = BTreeMap<K::Branded, V::Branded>;
}

/// Tuples: every field is visited.
macro_rules! tuple {
    ($($n:ident),+) => {
        // SAFETY: every field is visited.
        unsafe impl<$($n: Trace),+> Trace for ($($n,)+) {
            const NEEDS_TRACE: bool = false $(|| $n::NEEDS_TRACE)+;
            #[allow(non_snake_case)]
            #[inline]
            fn trace(&self, t: &mut Tracer) {
                let ($($n,)+) = self;
                $($n.trace(t);)+
            }
        }
        // SAFETY: replaces the lifetime in every field type only.
        unsafe impl<'b, $($n: Rebrand<'b>),+> Rebrand<'b> for ($($n,)+)
        where
            $($n::Branded: Sized),+
        {
            type Branded = ($($n::Branded,)+);
        }
    };
}
tuple!(A);
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);
tuple!(A, B, C, D, E);
tuple!(A, B, C, D, E, F);
tuple!(A, B, C, D, E, F, G);
tuple!(A, B, C, D, E, F, G, H);

// SAFETY: a shared reference to 'static data holds no Gc.
unsafe impl<T: ?Sized + 'static> Trace for &'static T {
    const NEEDS_TRACE: bool = false;
    #[inline(always)]
    fn trace(&self, _: &mut Tracer) {}
}
// SAFETY: no session lifetime in a `&'static` of `'static` data.
unsafe impl<'b, T: ?Sized + 'static> Rebrand<'b> for &'static T {
    type Branded = &'static T;
}
