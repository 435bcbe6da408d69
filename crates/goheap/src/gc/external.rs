//! Memory outside goheap that a heap's goal counts: for programs whose global allocator is
//! not `GoAlloc` (with `GoAlloc`, every buffer is counted already: `pacer.rs` essay).
//!
//! Two ways in, as gc-arena's `mark_external_allocation`:
//!
//! - [`Heap::mark_external_allocation`](super::Heap::mark_external_allocation) and
//!   [`Heap::mark_external_deallocation`](super::Heap::mark_external_deallocation): the
//!   program says how many bytes its objects hold elsewhere, and declares them freed when the
//!   objects' destructors free them. The count must balance: the program's promise.
//! - [`ExternalVec<T>`]: a `Vec` that keeps its heap's count equal to its capacity in bytes,
//!   from its creation to its drop, so that a GC object that owns one counts its buffer with
//!   no bookkeeping by the program.
//!
//! The count ([`External::bytes`]) is added to what the heap's goal and trigger compare
//! (`HeapInner::other_bytes`). A heap learns that it passed its trigger on its mutators'
//! span refills, too rarely when small objects own large buffers, so a growth of the count
//! past [`External::request_at`] (set after each cycle to the count at which the trigger
//! would be passed, all else equal) asks for a cycle itself. Declaring memory with GoAlloc as
//! the global allocator counts it twice: harmless (the heap collects earlier), and pointless.

use core::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::cycle::CycleCtl;
use super::trace::{Rebrand, Trace, Tracer};

/// A heap's count of declared external memory. Shared (in an `Arc`) with its
/// [`ExternalVec`]s, which do not keep the heap alive.
pub(crate) struct External {
    /// Bytes declared now. Written by any thread that declares or frees.
    pub bytes: AtomicUsize,
    /// A growth of `bytes` to this asks for a cycle. Written by the collector thread after
    /// each cycle (and on goal changes).
    pub request_at: AtomicUsize,
    /// Where the request goes.
    pub cycle: Arc<CycleCtl>,
}

impl External {
    pub fn new(cycle: Arc<CycleCtl>) -> External {
        External {
            bytes: AtomicUsize::new(0),
            request_at: AtomicUsize::new(usize::MAX),
            cycle,
        }
    }

    /// `n` more bytes held outside the heap.
    pub fn add(&self, n: usize) {
        let now = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if now >= self.request_at.load(Ordering::Relaxed) {
            self.cycle.request(false);
        }
    }

    /// `n` bytes fewer.
    pub fn sub(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
    }

    /// The goal moved: the count at which the trigger is passed, with `room` bytes left
    /// before it now.
    pub fn rearm(&self, room: usize) {
        let at = self.bytes.load(Ordering::Relaxed).saturating_add(room);
        self.request_at.store(at, Ordering::Relaxed);
    }
}

/// A vector whose buffer counts toward its heap's goal and memory limit while it lives
/// (module essay), for programs whose global allocator is not `GoAlloc`. Holds no `Gc`
/// (`T: 'static`), so it can sit in any GC object; derefs to a slice.
///
/// ```
/// use goheap::gc::{ExternalVec, Heap};
///
/// let heap = Heap::new();
/// let mut pixels = ExternalVec::new(&heap);
/// pixels.extend(std::iter::repeat(0u8).take(1 << 20));
/// pixels[0] = 255; // a slice, through DerefMut
/// assert!(pixels.counted_bytes() >= 1 << 20); // counts toward the heap's goal
/// // It holds no `Gc`, so it can live in a GC object.
/// heap.mutator().enter(|cx| {
///     let image = cx.alloc(pixels);
///     assert_eq!(image[0], 255);
/// });
/// let plain: Vec<u32> = ExternalVec::from_vec(&heap, vec![1, 2, 3]).into_vec(); // uncounted
/// assert_eq!(plain, [1, 2, 3]);
/// ```
pub struct ExternalVec<T: 'static> {
    v: Vec<T>,
    /// Bytes declared for `v` (its capacity).
    counted: usize,
    ext: Arc<External>,
}

impl<T: 'static> ExternalVec<T> {
    /// An empty vector counted by `heap`.
    ///
    /// ```
    /// use goheap::gc::{ExternalVec, Heap};
    ///
    /// let heap = Heap::new();
    /// let v: ExternalVec<u16> = ExternalVec::new(&heap);
    /// assert!(v.is_empty());
    /// ```
    pub fn new(heap: &super::Heap) -> ExternalVec<T> {
        ExternalVec::from_vec(heap, Vec::new())
    }

    /// Takes `v` over; its capacity is counted from now on.
    ///
    /// ```
    /// use goheap::gc::{ExternalVec, Heap};
    ///
    /// let heap = Heap::new();
    /// let v = ExternalVec::from_vec(&heap, vec![0u64; 1000]);
    /// assert!(v.counted_bytes() >= 8000);
    /// ```
    pub fn from_vec(heap: &super::Heap, v: Vec<T>) -> ExternalVec<T> {
        let mut e = ExternalVec {
            v,
            counted: 0,
            ext: heap.inner.external.clone(),
        };
        e.recount();
        e
    }

    fn recount(&mut self) {
        let now = self.v.capacity() * core::mem::size_of::<T>();
        if now > self.counted {
            self.ext.add(now - self.counted);
        } else if now < self.counted {
            self.ext.sub(self.counted - now);
        }
        self.counted = now;
    }

    /// Appends `x` (a growth of the buffer is counted).
    ///
    /// ```
    /// use goheap::gc::{ExternalVec, Heap};
    ///
    /// let heap = Heap::new();
    /// let mut v = ExternalVec::new(&heap);
    /// v.push('a');
    /// assert_eq!(&*v, &['a']);
    /// ```
    pub fn push(&mut self, x: T) {
        self.v.push(x);
        if self.v.capacity() * core::mem::size_of::<T>() != self.counted {
            self.recount();
        }
    }

    /// Reserves room for `n` more elements (counted).
    ///
    /// ```
    /// use goheap::gc::{ExternalVec, Heap};
    ///
    /// let heap = Heap::new();
    /// let mut v: ExternalVec<u8> = ExternalVec::new(&heap);
    /// v.reserve(4096);
    /// assert!(v.capacity() >= 4096 && v.counted_bytes() >= 4096);
    /// ```
    pub fn reserve(&mut self, n: usize) {
        self.v.reserve(n);
        self.recount();
    }

    /// Appends every item of `it` (counted).
    ///
    /// ```
    /// use goheap::gc::{ExternalVec, Heap};
    ///
    /// let heap = Heap::new();
    /// let mut v = ExternalVec::new(&heap);
    /// v.extend([1, 2, 3]);
    /// assert_eq!(v.len(), 3);
    /// ```
    pub fn extend<I: IntoIterator<Item = T>>(&mut self, it: I) {
        self.v.extend(it);
        self.recount();
    }

    /// Removes the last element.
    ///
    /// ```
    /// use goheap::gc::{ExternalVec, Heap};
    ///
    /// let heap = Heap::new();
    /// let mut v = ExternalVec::from_vec(&heap, vec![1, 2]);
    /// assert_eq!(v.pop(), Some(2));
    /// ```
    pub fn pop(&mut self) -> Option<T> {
        self.v.pop()
    }

    /// Shrinks the buffer to the length (counted).
    ///
    /// ```
    /// use goheap::gc::{ExternalVec, Heap};
    ///
    /// let heap = Heap::new();
    /// let mut v: ExternalVec<u8> = ExternalVec::new(&heap);
    /// v.reserve(1 << 20);
    /// v.push(1);
    /// v.shrink_to_fit(); // the heap counts the smaller buffer now
    /// assert!(v.counted_bytes() < 1 << 20);
    /// ```
    pub fn shrink_to_fit(&mut self) {
        self.v.shrink_to_fit();
        self.recount();
    }

    /// Elements the buffer has room for.
    ///
    /// ```
    /// use goheap::gc::{ExternalVec, Heap};
    ///
    /// let heap = Heap::new();
    /// let v = ExternalVec::from_vec(&heap, Vec::<u32>::with_capacity(10));
    /// assert!(v.capacity() >= 10);
    /// ```
    pub fn capacity(&self) -> usize {
        self.v.capacity()
    }

    /// Bytes this vector counts toward its heap now.
    ///
    /// ```
    /// use goheap::gc::{ExternalVec, Heap};
    ///
    /// let heap = Heap::new();
    /// let v = ExternalVec::from_vec(&heap, Vec::<u64>::with_capacity(100));
    /// assert_eq!(v.counted_bytes(), v.capacity() * 8);
    /// ```
    pub fn counted_bytes(&self) -> usize {
        self.counted
    }

    /// Gives the vector back, no longer counted.
    ///
    /// ```
    /// use goheap::gc::{ExternalVec, Heap};
    ///
    /// let heap = Heap::new();
    /// let v = ExternalVec::from_vec(&heap, vec![3, 1, 2]);
    /// let mut plain = v.into_vec(); // no longer counted
    /// plain.sort();
    /// assert_eq!(plain, [1, 2, 3]);
    /// ```
    pub fn into_vec(mut self) -> Vec<T> {
        let v = core::mem::take(&mut self.v);
        self.recount();
        v
    }
}

impl<T: 'static> core::ops::Deref for ExternalVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.v
    }
}

impl<T: 'static> core::ops::DerefMut for ExternalVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.v
    }
}

impl<T: 'static> Drop for ExternalVec<T> {
    fn drop(&mut self) {
        self.ext.sub(self.counted);
    }
}

impl<T: core::fmt::Debug + 'static> core::fmt::Debug for ExternalVec<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.v.fmt(f)
    }
}

// SAFETY: holds no `Gc` (`T: 'static`), so there is nothing to trace.
unsafe impl<T: 'static> Trace for ExternalVec<T> {
    const NEEDS_TRACE: bool = false;
    fn trace(&self, _: &mut Tracer) {}
}

// SAFETY: `'static` types have no session lifetime.
unsafe impl<'b, T: 'static> Rebrand<'b> for ExternalVec<T> {
    type Branded = ExternalVec<T>;
}
