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
//! [`Heap`] and the cycle ([`heap`]) → marking ([`mark`]) and sweeping ([`span`]) →
//! allocation ([`alloc`]: per-type pools and mutator caches) → goheap's page heap
//! ([`crate::heap`]). The API: [`ptr`] (`Gc`), [`trace`] (`Trace`, `Rebrand`), [`cell`]
//! (`GcCell`, `GcRefCell`), [`mutator`] (`Mutator`, `Session`), [`root`], [`weak`]; policy
//! in [`pacer`]; numbers in [`stats`].
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
pub mod alloc;
pub mod barrier;
pub mod borrow;
#[cfg(not(loom))]
pub mod cell;
#[cfg(not(loom))]
pub mod cycle;
#[cfg(not(loom))]
pub mod external;
#[cfg(not(loom))]
pub mod heap;
#[cfg(not(loom))]
pub mod mark;
#[cfg(not(loom))]
pub mod mutator;
#[cfg(not(loom))]
pub mod pacer;
#[cfg(not(loom))]
mod pause;
#[cfg(not(loom))]
pub mod ptr;
#[cfg(not(loom))]
pub mod root;
#[cfg(not(loom))]
pub mod span;
#[cfg(not(loom))]
pub mod stats;
#[cfg(not(loom))]
pub mod sweep;
pub mod sweep_tokens;
#[cfg(not(loom))]
pub(crate) mod timeline;
#[cfg(not(loom))]
pub mod trace;
#[cfg(not(loom))]
pub mod weak;
pub mod workqueue;
pub mod world;

#[cfg(not(loom))]
pub use cell::{GcCell, GcRef, GcRefCell, GcRefMut};
#[cfg(not(loom))]
pub use external::ExternalVec;
#[cfg(not(loom))]
pub use heap::{Config, Heap};
#[cfg(not(loom))]
pub use mutator::{Mutator, Session};
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
pub use trace::{Rebrand, Trace, Tracer};
#[cfg(not(loom))]
pub use weak::{Weak, WeakSlot};

#[cfg(all(feature = "derive", not(loom)))]
#[cfg(not(loom))]
pub use goheap_derive::Trace;

#[doc(hidden)]
pub mod __private {
    /// Implemented by every `Drop` type; `#[derive(Trace)]` implements it for the type it
    /// derives, so a `Drop` impl on that type is a conflicting-implementations error.
    pub trait MustNotImplDrop {}
    #[allow(drop_bounds)]
    impl<T: ?Sized + Drop> MustNotImplDrop for T {}

    /// Compiles only for `'static` values (fields `#[trace(skip)]` leaves untraced).
    #[inline(always)]
    pub fn assert_static<T: ?Sized + 'static>(_: &T) {}
}
