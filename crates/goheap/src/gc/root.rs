//! Roots: handles that keep objects alive between sessions.
//!
//! A [`Root`] is a slot in its heap's root table plus the object's address. The collector
//! marks from every occupied slot (a slot is the only kind of root this collector has, since
//! no `Gc` exists outside a session). Creating, cloning and dropping a root lock the table;
//! the collector reads the whole table under the same lock at mark start, so it sees a
//! consistent set: a clone is made while its original still holds the object, so at every
//! instant one of them is in the table.
//!
//! Root changes are stores for the barrier (`barrier.rs`): while the heap marks, a new root
//! shades its object (a session may hold it only by the new root once it ends) and a
//! dropped root shades its object before leaving the table (a black session may have read
//! it from the root and still use it).

use core::marker::PhantomData;

use super::heap::{Heap, HeapInner};
use super::ptr::GcPointee;

/// The slots of a heap's roots.
pub(crate) struct RootTable {
    slots: Vec<usize>,
    free: Vec<u32>,
}

impl RootTable {
    pub fn new() -> RootTable {
        RootTable {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    fn add(&mut self, addr: usize) -> u32 {
        if let Some(i) = self.free.pop() {
            self.slots[i as usize] = addr;
            i
        } else {
            self.slots.push(addr);
            (self.slots.len() - 1) as u32
        }
    }

    fn remove(&mut self, i: u32) {
        self.slots[i as usize] = 0;
        self.free.push(i);
    }

    /// Calls `f` on every rooted address.
    pub fn for_each(&self, mut f: impl FnMut(usize)) {
        for &a in &self.slots {
            if a != 0 {
                f(a)
            }
        }
    }

    /// Number of live roots.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// Keeps an object alive outside sessions; turn it back into a `Gc` with
/// [`Session::get`](super::Session::get). `T` is the object's type at `'static`, e.g.
/// `Root<Node<'static>>` for a `Gc<'gc, Node<'gc>>`.
///
/// `Send` and `Sync` when `T: Sync`: another thread that gets the root can read the object.
///
/// ```
/// use goheap::gc::{Heap, Root};
///
/// let heap = Heap::new();
/// let root: Root<u64> = heap.mutator().enter(|cx| cx.root(cx.alloc(42u64)));
/// let reader = {
///     let (heap, root) = (heap.clone(), root.clone());
///     std::thread::spawn(move || heap.mutator().enter(|cx| *cx.get(&root)))
/// };
/// heap.collect();
/// assert_eq!(reader.join().unwrap(), 42);
/// ```
pub struct Root<T: ?Sized + GcPointee> {
    heap: Heap,
    slot: u32,
    addr: usize,
    _m: PhantomData<fn() -> *const T>,
}

// SAFETY: a root gives other threads `&T` access (through their sessions), which is sound
// when `T: Sync`; its own fields are a heap handle (Send + Sync) and plain integers.
unsafe impl<T: ?Sized + GcPointee + Sync> Send for Root<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + GcPointee + Sync> Sync for Root<T> {}

impl<T: ?Sized + GcPointee> Root<T> {
    pub(crate) fn new(h: &Heap, addr: usize) -> Root<T> {
        let slot = h.inner.roots.lock().add(addr);
        if h.inner.barrier.marking() {
            h.inner.barrier.shade(addr);
        }
        Root {
            heap: h.clone(),
            slot,
            addr,
            _m: PhantomData,
        }
    }

    pub(crate) fn heap_inner(&self) -> &HeapInner {
        &self.heap.inner
    }

    pub(crate) fn addr(&self) -> usize {
        self.addr
    }

    /// The heap this root belongs to.
    ///
    /// ```
    /// use goheap::gc::Heap;
    ///
    /// let heap = Heap::new();
    /// let root = heap.mutator().enter(|cx| cx.root(cx.alloc(1u64)));
    /// root.heap().collect(); // the root keeps its heap alive and reachable
    /// assert_eq!(root.heap().mutator().enter(|cx| *cx.get(&root)), 1);
    /// ```
    pub fn heap(&self) -> &Heap {
        &self.heap
    }

    /// Whether two roots keep the same object.
    ///
    /// ```
    /// use goheap::gc::{Heap, Root};
    ///
    /// let heap = Heap::new();
    /// let (a, b) = heap.mutator().enter(|cx| {
    ///     let g = cx.alloc(1u64);
    ///     (cx.root(g), cx.root(cx.alloc(1u64)))
    /// });
    /// assert!(Root::ptr_eq(&a, &a.clone()));
    /// assert!(!Root::ptr_eq(&a, &b)); // equal values, two objects
    /// ```
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.addr == b.addr
    }
}

impl<T: ?Sized + GcPointee> Clone for Root<T> {
    fn clone(&self) -> Self {
        let slot = self.heap.inner.roots.lock().add(self.addr);
        Root {
            heap: self.heap.clone(),
            slot,
            addr: self.addr,
            _m: PhantomData,
        }
    }
}

impl<T: ?Sized + GcPointee> Drop for Root<T> {
    fn drop(&mut self) {
        let h = &self.heap.inner;
        let mut t = h.roots.lock();
        if h.barrier.marking() {
            h.barrier.shade(self.addr);
        }
        t.remove(self.slot);
    }
}

impl<T: ?Sized + GcPointee> core::fmt::Debug for Root<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Root({:#x})", self.addr)
    }
}
