//! Mutators and sessions: how threads reach the heap.
//!
//! A [`Mutator`] is one thread's handle on a [`Heap`]: its allocation caches and its place in
//! the stop-the-world protocol ([`super::heap`]). It is not `Send`. All work on objects
//! happens inside [`Mutator::enter`], whose closure receives a [`Session<'gc>`] with a fresh
//! lifetime `'gc`; every `Gc<'gc, _>` made or read in the session carries it and so cannot
//! outlive the closure. Between sessions the thread holds no pointer into the heap: that is
//! where collections happen, and why no stack needs scanning. Values that must survive a
//! session go in [`Root`]s.
//!
//! A thread blocked inside a session holds up every collection (as a goroutine in a
//! non-preemptible loop did before Go 1.14): keep sessions short, for instance one per
//! request or per batch of interpreter instructions, and never wait inside a session for
//! another thread that needs to enter one.

use core::cell::{Cell, RefCell};
use core::marker::PhantomData;
use std::sync::Arc;

use super::alloc::{Local, TINY_SIZE};
use super::heap::{Heap, HeapInner, MutatorShared};
use super::ptr::{self, Brand, Gc, GcPointee};
use super::root::Root;
use super::trace::{Rebrand, Trace};
use crate::sizeclass::{size_to_class, size_to_class_aligned, MAX_SMALL_SIZE, PAGE_SIZE};

thread_local! {
    /// Sessions open on this thread, per heap (address of its shared state, depth).
    static OPEN: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
    /// Set while a destructor or cleanup runs on this thread from the collector.
    static IN_FINALIZER: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is inside a session of `h`.
pub(crate) fn in_session_of(h: &HeapInner) -> bool {
    let k = h as *const HeapInner as usize;
    OPEN.with(|o| o.borrow().iter().any(|&(x, d)| x == k && d > 0))
}

fn open_session(h: &HeapInner) -> bool {
    let k = h as *const HeapInner as usize;
    OPEN.with(|o| {
        let mut o = o.borrow_mut();
        if let Some(e) = o.iter_mut().find(|e| e.0 == k) {
            e.1 += 1;
            e.1 > 1
        } else {
            o.push((k, 1));
            false
        }
    })
}

fn close_session(h: &HeapInner) -> bool {
    let k = h as *const HeapInner as usize;
    OPEN.with(|o| {
        let mut o = o.borrow_mut();
        let i = o
            .iter()
            .position(|e| e.0 == k)
            .expect("session bookkeeping");
        o[i].1 -= 1;
        if o[i].1 == 0 {
            o.swap_remove(i);
            true
        } else {
            false
        }
    })
}

/// Runs `f` marked as finalizer code (destructors and cleanups run by the collector), which
/// must not use the heap: entering a session or collecting from there could wait for the
/// very cycle or sweep that runs it. A panic in `f` aborts the process with `what` in the
/// message: unwinding out of a sweep would leave spans and the world in an unknown state
/// (Go crashes on a panicking cleanup too).
pub(crate) fn as_finalizer<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let was = IN_FINALIZER.with(|c| c.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_FINALIZER.with(|c| c.set(was));
    match r {
        Ok(r) => r,
        Err(_) => {
            eprintln!("goheap: {what} panicked; aborting");
            std::process::abort();
        }
    }
}

/// Whether the calling thread is running collector-invoked code (destructor, cleanup).
pub(crate) fn in_finalizer() -> bool {
    IN_FINALIZER.with(|c| c.get())
}

/// One thread's handle on a heap. See the module documentation.
pub struct Mutator {
    heap: Heap,
    shared: Arc<MutatorShared>,
    _not_send: PhantomData<*const ()>,
}

impl Heap {
    /// A mutator for the calling thread.
    pub fn mutator(&self) -> Mutator {
        let shared = Arc::new(MutatorShared {
            in_session: core::sync::atomic::AtomicBool::new(false),
            local: core::cell::UnsafeCell::new(Local::new()),
        });
        self.inner.register(shared.clone());
        Mutator {
            heap: self.clone(),
            shared,
            _not_send: PhantomData,
        }
    }
}

/// Ends a session even when its closure panics.
struct SessionGuard<'a> {
    m: &'a Mutator,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        let h = &self.m.heap.inner;
        // SAFETY: inside our session, the local state is ours.
        unsafe { h.publish(&mut (*self.m.shared.local.get()).pending) };
        let last = close_session(h);
        // Nested or not, this mutator's own flag was set by its `enter`.
        h.exit_world(&self.m.shared);
        if last && !std::thread::panicking() {
            h.collect_if_pending();
        }
    }
}

impl Mutator {
    /// The heap this mutator belongs to.
    pub fn heap(&self) -> &Heap {
        &self.heap
    }

    /// Runs `f` in a session: inside it, `f` may allocate, read and mutate objects. No
    /// `Gc` can leave `f` (its lifetime `'gc` is fresh); keep objects with [`Session::root`].
    /// Blocks while a collection is running. A collection that became due during the
    /// session runs when it ends, on this thread.
    ///
    /// # Panics
    /// If called from a destructor or cleanup run by the collector.
    pub fn enter<R>(&mut self, f: impl for<'gc> FnOnce(&Session<'gc>) -> R) -> R {
        assert!(
            !IN_FINALIZER.with(|c| c.get()),
            "goheap: a destructor or cleanup tried to enter a session; they must not use the heap"
        );
        let h = &self.heap.inner;
        let nested = open_session(h);
        h.enter_world(&self.shared, nested);
        let guard = SessionGuard { m: self };
        let cx = Session {
            heap: &self.heap,
            inner: &self.heap.inner,
            local: self.shared.local.get(),
            _brand: PhantomData,
            _not_sync: PhantomData,
        };
        let r = f(&cx);
        drop(guard);
        r
    }
}

impl Drop for Mutator {
    fn drop(&mut self) {
        let h = &self.heap.inner;
        let nested = open_session(h);
        h.enter_world(&self.shared, nested);
        // SAFETY: we are in our own session: the collector cannot touch the local state.
        unsafe {
            let l = &mut *self.shared.local.get();
            l.flush();
            h.publish(&mut l.pending);
        }
        h.unregister(&self.shared);
        close_session(h);
        h.exit_world(&self.shared);
    }
}

/// An open session: allocation, roots, weak pointers. `'gc` brands every pointer made in it.
pub struct Session<'gc> {
    heap: &'gc Heap,
    inner: &'gc HeapInner,
    local: *mut Local,
    _brand: Brand<'gc>,
    _not_sync: PhantomData<*const ()>,
}

impl<'gc> Session<'gc> {
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    fn local(&self) -> &mut Local {
        // SAFETY: the session is open on this thread (Session is neither Send nor Sync), so
        // the local state is ours; no method holds this reference across a call that could
        // reach it again (allocation runs no user code).
        unsafe { &mut *self.local }
    }

    pub(crate) fn heap_inner(&self) -> &'gc HeapInner {
        self.inner
    }

    /// Raw storage for an object of `size` bytes aligned to `align`, with descriptor `ty`;
    /// 0 when out of memory.
    #[inline(always)]
    fn raw(&self, ty: &'static ptr::GcType, size: usize, align: usize, tiny_ok: bool) -> usize {
        let size = size.max(1);
        if align <= 8 && size <= MAX_SMALL_SIZE {
            if tiny_ok && size < TINY_SIZE {
                return self.local().alloc_tiny(self.inner, size, align);
            }
            return self
                .local()
                .alloc_small(self.inner, ty, size_to_class(size));
        }
        self.raw_slow(ty, size, align)
    }

    #[cold]
    fn raw_slow(&self, ty: &'static ptr::GcType, size: usize, align: usize) -> usize {
        if let Some(c) = size_to_class_aligned(size, align) {
            return self.local().alloc_small(self.inner, ty, c);
        }
        if align > PAGE_SIZE || size > isize::MAX as usize / 2 {
            return 0;
        }
        self.heap.inner.alloc_large(ty, size)
    }

    /// Allocates `v` in the heap.
    ///
    /// `T: Send` because the destructor of a dead object runs on the collector's sweeper
    /// thread. Aborts via `handle_alloc_error` when memory runs out; see [`Self::try_alloc`].
    #[inline(always)]
    pub fn alloc<T: Trace + Send + 'gc>(&self, v: T) -> Gc<'gc, T> {
        match self.try_alloc(v) {
            Ok(g) => g,
            Err(_) => std::alloc::handle_alloc_error(std::alloc::Layout::new::<T>()),
        }
    }

    /// Allocates `v`, or gives it back when memory runs out.
    #[inline(always)]
    pub fn try_alloc<T: Trace + Send + 'gc>(&self, v: T) -> Result<Gc<'gc, T>, T> {
        let tiny = !T::NEEDS_TRACE && !core::mem::needs_drop::<T>();
        let a = self.raw(
            ptr::sized_type::<T>(),
            core::mem::size_of::<T>(),
            core::mem::align_of::<T>(),
            tiny,
        );
        if a == 0 {
            return Err(v);
        }
        // SAFETY: `a` is fresh storage for a `T` (size and alignment as asked), owned by
        // nobody else; after the write it holds an initialised `T` of the type its span
        // describes.
        unsafe {
            (a as *mut T).write(v);
            Ok(Gc::from_addr(a))
        }
    }

    /// Allocates a slice object holding the items of `it` (at most `it.len()` of them).
    pub fn alloc_slice_from_iter<T, I>(&self, it: I) -> Gc<'gc, [T]>
    where
        T: Trace + Send + 'gc,
        I: IntoIterator<Item = T>,
        I::IntoIter: ExactSizeIterator,
    {
        let it = it.into_iter();
        let n = it.len();
        let off = ptr::slice_data_offset(core::mem::align_of::<T>());
        let size = core::mem::size_of::<T>()
            .checked_mul(n)
            .and_then(|b| b.checked_add(off))
            .unwrap_or(usize::MAX);
        let layout = std::alloc::Layout::from_size_align(size.min(isize::MAX as usize), 8)
            .unwrap_or(std::alloc::Layout::new::<usize>());
        if size > isize::MAX as usize {
            std::alloc::handle_alloc_error(layout);
        }
        let tiny = !T::NEEDS_TRACE && !core::mem::needs_drop::<T>();
        let align = core::mem::align_of::<T>().max(core::mem::align_of::<usize>());
        let a = self.raw(ptr::slice_type::<T>(), size, align, tiny);
        if a == 0 {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: `a` is fresh storage of `size` bytes aligned for `usize` and `T`. The
        // length word always counts exactly the initialised elements, so a panic in the
        // iterator leaves a valid (shorter) object that the sweeper drops correctly.
        unsafe {
            let len = a as *mut usize;
            len.write(0);
            let data = (a + off) as *mut T;
            for (i, v) in it.take(n).enumerate() {
                data.add(i).write(v);
                len.write(i + 1);
            }
            Gc::from_addr(a)
        }
    }

    /// Allocates a copy of `s`.
    pub fn alloc_slice<T: Trace + Send + Copy + 'gc>(&self, s: &[T]) -> Gc<'gc, [T]> {
        self.alloc_slice_from_iter(s.iter().copied())
    }

    /// Allocates a copy of `s`.
    pub fn alloc_str(&self, s: &str) -> Gc<'gc, str> {
        let b = self.alloc_slice(s.as_bytes());
        // SAFETY: the bytes were copied from a `str`; `Gc<[u8]>` and `Gc<str>` share the
        // layout (`str` objects are `[u8]` objects).
        unsafe { Gc::from_addr(Gc::addr(b)) }
    }

    /// Keeps `g`'s object alive beyond this session.
    pub fn root<T>(&self, g: Gc<'gc, T>) -> Root<T::Branded>
    where
        T: ?Sized + GcPointee + Rebrand<'static> + 'gc,
        T::Branded: GcPointee,
    {
        Root::new(self.heap, Gc::addr(g))
    }

    /// The object a root keeps, as a pointer of this session.
    ///
    /// # Panics
    /// If the root belongs to another heap.
    pub fn get<R>(&self, r: &Root<R>) -> Gc<'gc, R::Branded>
    where
        R: ?Sized + GcPointee + Rebrand<'gc>,
        R::Branded: GcPointee,
    {
        assert!(
            core::ptr::eq(r.heap_inner(), &*self.heap.inner),
            "goheap: a Root of one heap used in a session of another"
        );
        // SAFETY: the root keeps its object alive, and `R::Branded` is the object's type at
        // this session's lifetime (the `Rebrand` contract).
        unsafe { Gc::from_addr(r.addr()) }
    }
}

impl<'gc> core::fmt::Debug for Session<'gc> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}
