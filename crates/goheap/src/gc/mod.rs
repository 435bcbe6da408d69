//! The garbage collector: a precise, non-moving mark-sweep collector over goheap's span heap,
//! paced like Go's (GOGC, memory limit), behind a safe API.
//!
//! # Glossary
//!
//! - **heap** ([`Heap`]): objects, roots and collector state, shared by threads.
//! - **mutator** ([`Mutator`]): one thread's handle; its allocation caches.
//! - **session** ([`Session`]): the closure in which a mutator uses objects; its lifetime
//!   `'gc` brands every [`Gc`] made in it. Collections happen only between sessions.
//! - **root** ([`Root`]): keeps an object alive across sessions.
//! - **typed span**: a span whose objects are all of one type, so objects need no header.
//! - **noscan**: objects of a type that holds no `Gc`; marked, never traced.
//! - **tiny block**: 16 bytes holding several small noscan objects.
//! - **sweep**: turning a span's mark bits into its alloc bits after a mark.
//! - **special**: a weak slot or cleanups attached to an object.
//!
//! # Layers
//!
//! [`Heap`] and the cycle (`heap`) → marking (`mark`) and sweeping (`span`) → allocation
//! (`alloc`: per-type pools and mutator caches) → goheap's page heap. The API: `ptr`
//! ([`Gc`]), `dyn_ptr` ([`GcDyn`], trait objects), `trace` ([`Trace`], [`Rebrand`]), `cell`
//! ([`GcCell`], [`GcRefCell`]), `mutex` ([`GcMutex`]), `mutator` ([`Mutator`],
//! [`Session`]), `root` ([`Root`]), `weak` ([`Weak`]); policy in `pacer`; numbers in
//! `stats` ([`GcStats`]). The modules are private: this module's re-exports
//! are the collector's whole public surface.
//!
//! # Example
//!
//! ```
//! use goheap::gc::{Gc, GcCell, Heap, Trace};
//!
//! #[derive(Trace)]
//! struct Node<'gc> {
//!     value: u64,
//!     next: GcCell<Option<Gc<'gc, Node<'gc>>>>,
//! }
//!
//! let heap = Heap::new();
//! let mut m = heap.mutator();
//! let list = m.enter(|cx| {
//!     let a = cx.alloc(Node { value: 1, next: GcCell::new(None) });
//!     let b = cx.alloc(Node { value: 2, next: GcCell::new(Some(a)) });
//!     a.next.set(Some(b)); // a cycle
//!     cx.root(b)
//! });
//! heap.collect();
//! let sum = m.enter(|cx| {
//!     let b = cx.get(&list);
//!     b.value + b.next.get().unwrap().value
//! });
//! assert_eq!(sum, 3);
//! ```

#[cfg(not(loom))]
pub(crate) mod alloc;
pub(crate) mod barrier;
pub(crate) mod borrow;
#[cfg(not(loom))]
pub(crate) mod cell;
#[cfg(not(loom))]
pub(crate) mod cycle;
#[cfg(not(loom))]
mod dyn_ptr;
#[cfg(not(loom))]
mod exclusive;
#[cfg(not(loom))]
pub(crate) mod external;
#[cfg(not(loom))]
mod fractional;
#[cfg(not(loom))]
pub(crate) mod heap;
pub(crate) mod lock_word;
#[cfg(not(loom))]
pub(crate) mod mark;
pub(crate) mod marker_word;
#[cfg(not(loom))]
pub(crate) mod mutator;
#[cfg(not(loom))]
pub(crate) mod mutex;
#[cfg(not(loom))]
pub(crate) mod pacer;
#[cfg(not(loom))]
mod pause;
#[cfg(not(loom))]
pub(crate) mod ptr;
#[cfg(not(loom))]
pub(crate) mod root;
#[cfg(not(loom))]
pub(crate) mod span;
#[cfg(not(loom))]
pub(crate) mod stats;
#[cfg(not(loom))]
pub(crate) mod sweep;
pub(crate) mod sweep_tokens;
#[cfg(not(loom))]
mod thread_bound;
#[cfg(not(loom))]
pub(crate) mod timeline;
#[cfg(not(loom))]
pub(crate) mod trace;
#[cfg(not(loom))]
pub(crate) mod weak;
pub(crate) mod workqueue;
pub(crate) mod world;

#[cfg(not(loom))]
pub use cell::{GcCell, GcRef, GcRefCell, GcRefMut};
#[cfg(not(loom))]
pub use dyn_ptr::GcDyn;
#[cfg(not(loom))]
pub use external::ExternalVec;
#[cfg(not(loom))]
pub use heap::{Config, Heap};
#[cfg(not(loom))]
pub use mutator::{Mutator, Session};
#[cfg(not(loom))]
pub use mutex::{GcMutex, GcMutexGuard, MutexWaiter};
#[cfg(not(loom))]
pub use pacer::DebugFlags;
#[cfg(not(loom))]
pub use pause::{PauseBreakdown, PauseFigures, PauseHistogram};
#[cfg(not(loom))]
pub use ptr::{Gc, GcPointee};
#[cfg(not(loom))]
pub use root::Root;
#[cfg(not(loom))]
pub use stats::GcStats;
#[cfg(not(loom))]
pub use thread_bound::ThreadBound;
#[cfg(not(loom))]
pub use trace::{Rebrand, Trace, Tracer};
#[cfg(not(loom))]
pub use weak::{Weak, WeakSlot};

#[cfg(not(loom))]
pub use goheap_derive::Trace;

/// What `#[derive(Trace)]` expands to; not for direct use.
#[doc(hidden)]
pub mod __private {
    /// Implemented by every `Drop` type; `#[derive(Trace)]` implements it for the type it
    /// derives, so a `Drop` impl on that type is a conflicting-implementations error
    /// (E0119). The name is the message: stable Rust cannot customise E0119, so the trait
    /// says what to do instead. A type that holds no `Gc` may implement `Drop` with
    /// `#[trace(static)]`; one that holds a `Gc` runs its last words as a cleanup
    /// (`Session::add_cleanup`), which the collector runs after the object is dead and
    /// cannot see it.
    #[allow(non_camel_case_types)]
    pub trait DropOnDerivedTraceType_UseTraceStaticOrSessionAddCleanup {}
    #[allow(drop_bounds)]
    impl<T: ?Sized + Drop> DropOnDerivedTraceType_UseTraceStaticOrSessionAddCleanup for T {}

    /// Compiles only for `'static` values (fields `#[trace(skip)]` leaves untraced).
    #[inline(always)]
    pub fn assert_static<T: ?Sized + 'static>(_: &T) {}
}

/// Test hook: the most elements of a large slice that one mark work item traced in this
/// process (`mark.rs`: oblets); at most `__OBLET_BYTES / size_of::<T>()` (at least 1).
#[doc(hidden)]
#[cfg(not(loom))]
pub fn __largest_oblet() -> usize {
    mark::largest_oblet()
}

/// Test hook: the bytes of elements in one oblet (`mark.rs`).
#[doc(hidden)]
#[cfg(not(loom))]
pub const __OBLET_BYTES: usize = mark::OBLET_BYTES;
