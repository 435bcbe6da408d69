//! The explicit-free face: `malloc`-style entry points and [`GoAlloc`], the
//! `#[global_allocator]`.
//!
//! ```text
//!   alloc(size, align)
//!     size <= 32 KiB, align <= 8 ......... size class -> thread cache -> span window (fast path)
//!     size <= 32 KiB, align <= 8 KiB .... smallest class whose size is a multiple of align
//!     otherwise ......................... large object: pages straight from the page heap
//!   free(ptr)
//!     arena map -> span -> object index (multiply, no division)
//!     span owned by this thread ......... set a bit (no atomic)
//!     otherwise ......................... one fetch_or on the span's remote bitmap
//! ```
//!
//! No panic may unwind out of a global allocator (that is undefined behaviour), so every
//! function here that is not a tiny inlined fast path is `extern "C"`: should an internal
//! assertion ever fire inside one, the process aborts with the panic message instead of
//! unwinding into the caller. The fast paths call nothing that can panic.
//!
//! Every small span starts at a page boundary, so an object of a class whose size is a
//! multiple of `align` is `align`-aligned; all class sizes are multiples of 8, which covers
//! every alignment up to 8 without a look-up. Bad pointers (not from goheap, not the start
//! of an object, already free) abort with a message (see [`crate::report`]); an impossible
//! request or an exhausted OS gives null.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

use crate::cache;
use crate::heap;
use crate::report;
use crate::sizeclass::{size_to_class, size_to_class_aligned, CLASSES, MAX_SMALL_SIZE, PAGE_SIZE};
use crate::span::Span;
use crate::thread_slot;

/// Alignment every small object has for free (all class sizes are multiples of 8).
const MIN_ALIGN: usize = 8;

/// Allocates `size` bytes aligned to `align` (a power of two). Null if impossible or out of
/// memory. A zero size is served as one byte, so the pointer is unique and can be freed.
#[inline(always)]
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    if size <= MAX_SMALL_SIZE && align <= MIN_ALIGN {
        return alloc_class(size_to_class(size));
    }
    alloc_slow(size, align, false)
}

/// Allocates `size` zeroed bytes aligned to `align`. Memory that is known to be zero (fresh
/// from the OS, never used) is not cleared again.
pub extern "C" fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    if size <= MAX_SMALL_SIZE && align <= MIN_ALIGN {
        return zero_small(alloc_class(size_to_class(size)));
    }
    alloc_slow(size, align, true)
}

#[inline(always)]
fn alloc_class(class: usize) -> *mut u8 {
    let c = thread_slot::raw();
    // SAFETY: `c` is this thread's slot value; `class` comes from the size-class table.
    let p = unsafe {
        let p = thread_slot::alloc_from_slot(c, class);
        if p.is_null() {
            alloc_refill(c, class)
        } else {
            p
        }
    };
    if crate::asan::ENABLED && !p.is_null() {
        crate::asan::unpoison(p as usize, CLASSES[class].size as usize);
    }
    p
}

/// Slow path of [`thread_slot::alloc_from_slot`]: refills the window of `class` in the thread's
/// cache `c`, or, when `c` is a state (the thread has no cache), gives the thread its cache
/// or serves it from the fallback. Null only when out of memory.
///
/// # Safety
/// `c` is the calling thread's slot value ([`thread_slot::raw`]), `class` a size class, and the
/// window of `class` was just found empty.
#[cold]
#[inline(never)]
pub unsafe extern "C" fn alloc_refill(c: *mut cache::Cache, class: usize) -> *mut u8 {
    if thread_slot::is_state(c) {
        return alloc_class_nocache(class);
    }
    // SAFETY: caller's contract; `c` is a live cache.
    unsafe { (*c).refill(class) }
}

#[cold]
#[inline(never)]
extern "C" fn alloc_class_nocache(class: usize) -> *mut u8 {
    let c = thread_slot::init_thread();
    if !c.is_null() {
        crate::scavenger::ensure_started();
        // SAFETY: `c` is this thread's live cache.
        return unsafe { (*c).alloc(class) };
    }
    let mut fb = cache::fallback();
    let c = fb.get();
    if c.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: we hold the fallback lock, which makes us the fallback cache's owner.
    unsafe { (*c).alloc(class) }
}

#[cold]
extern "C" fn alloc_slow(size: usize, align: usize, zero: bool) -> *mut u8 {
    if !align.is_power_of_two() || size > isize::MAX as usize - (align - 1) {
        return ptr::null_mut();
    }
    crate::scavenger::ensure_started();
    if size <= MAX_SMALL_SIZE && align <= PAGE_SIZE {
        if let Some(class) = size_to_class_aligned(size.max(1), align) {
            let p = alloc_class(class);
            return if zero { zero_small(p) } else { p };
        }
    }
    if crate::profile::sampling() {
        return crate::profile::alloc_large(size, align, zero);
    }
    heap::alloc_large(size, align, zero)
}

/// Clears a freshly allocated small object unless its span's memory is known to be zero.
extern "C" fn zero_small(p: *mut u8) -> *mut u8 {
    if p.is_null() {
        return p;
    }
    let s = heap::span_of(p as usize);
    // SAFETY: `p` was just allocated from `s`, which this thread owns (it is the current
    // span of one of our caches, or the fallback's under a lock we no longer hold: then
    // `needzero` may be stale-true, which only costs a memset). The object is ours.
    unsafe {
        if (*s).owner() != thread_slot::current() as usize || (*s).needzero() {
            ptr::write_bytes(p, 0, (*s).elemsize());
        }
    }
    p
}

/// Looks up the span of `p` and checks that `p` is the start of a live-looking object.
/// Aborts with a message naming the C function `func` if not. Returns the span and the object index.
#[inline(always)]
fn object_of(p: *mut u8, func: &str) -> (*mut Span, usize) {
    let s = heap::span_of(p as usize);
    if s.is_null() {
        report::invalid_pointer(func, p as usize);
    }
    // SAFETY: the map holds only live spans.
    let (idx, exact) = unsafe { (*s).object_index(p as usize) };
    if !exact {
        report::invalid_pointer(func, p as usize);
    }
    (s, idx)
}

/// Frees `p`, which must come from [`alloc`] (null is ignored). A pointer goheap did not hand
/// out, or one already freed, aborts the process with a message.
///
/// Budget, the owner's free of a small object in the flat table's range (x86-64, as
/// `libgoheap_malloc.so`'s `free` compiles; callgrind counts 43.3 per free on alloc-test,
/// the list work of `free_local_slow` included): 43 instructions, one conditional branch per
/// check and none that depends on the data (a program freeing at random must not
/// mispredict them):
///
/// ```text
///   flat table range test (shift, compare) ..................  5
///   span load (table address from the GOT, load, null test) ..  6
///   exactness: (p - base) * magic, low half < limit ..........  6
///   object index (high half) .................................  2
///   owner test (slot offset from the GOT, %fs load, compare) .  5
///   the object's bit, and the window's word as a mask .......  7
///   double-free test on free bits | window, set the bit ......  6
///   credit countdown and its sign test, return ...............  6
/// ```
///
/// mimalloc v3 spends 21 (no exactness or double-free test, a free list in the object
/// instead of a bitmap); docs/design.md section 8 says what the extra ones buy.
///
/// # Safety
/// `p` is not used after this call.
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    // Null finds no span (arena 0 never has one) and `free_failed` ignores it, so the common
    // case pays for no null test. Every way out is a jump: no stack frame.
    let s = heap::span_of(p as usize);
    if s.is_null() {
        return report::free_failed(p as usize, false);
    }
    // SAFETY: the map holds only live spans.
    let (idx, exact) = unsafe { (*s).object_index(p as usize) };
    if !exact {
        return report::free_failed(p as usize, false);
    }
    if crate::asan::ENABLED {
        // SAFETY: live span from the map. A huge object's pages go back to the OS: left
        // unpoisoned, as the address may be mapped again by anyone.
        let (size, npages) = unsafe { ((*s).elemsize(), (*s).npages()) };
        if npages <= crate::pagealloc::ARENA_PAGES {
            crate::asan::poison(p as usize, size);
        }
    }
    // SAFETY: `s` is live (map), and `p` is object `idx` of it. Large spans are owned by
    // `CENTRAL_OWNER`, never by a cache, so they always take the second branch.
    unsafe {
        let c = thread_slot::raw();
        if (*s).owner() == c as usize {
            (*c).free_local(s, idx, p as usize);
        } else {
            free_not_owned(s, idx, p);
        }
    }
}

/// Free of an object in a span this thread does not own: a large object, or a remote free.
#[inline(never)]
extern "C" fn free_not_owned(s: *mut Span, idx: usize, p: *mut u8) {
    // SAFETY: `s` is a live span from the map and `p` its object `idx`.
    let class = unsafe { (*s).class() };
    if class == 0 {
        // SAFETY: `p` is the large object of `s` (checked by `object_of`).
        unsafe { heap::free_large(s) };
        return;
    }
    let mut c = thread_slot::current();
    if c.is_null() && thread_slot::is_fresh() {
        // A thread that frees before it ever allocated (a consumer thread) gets its cache
        // now, so that it counts its frees in its own counters instead of contending on
        // a global one.
        c = thread_slot::init_thread();
    }
    // SAFETY: `s` is a live span from the map; any thread may free remotely.
    if unsafe { (*s).free_remote(idx) }.is_err() {
        report::double_free(p as usize);
    }
    // A span of the central lists may just have become empty, and only the scavenger's
    // sweep would notice: tell it (one load unless it is the first such free since its
    // last sweep). Read after the free's SeqCst fetch_or (`Span::owned_by_central`).
    // SAFETY: as above.
    if unsafe { (*s).owned_by_central() } {
        crate::scavenge_policy::central_freed();
    }
    if c.is_null() {
        crate::counters::count_orphan_free(class);
    } else {
        // SAFETY: `c` is this thread's live cache; its counters are ours to bump.
        unsafe {
            let n = &(*c).counters.nfree[class];
            n.store(
                n.load(core::sync::atomic::Ordering::Relaxed) + 1,
                core::sync::atomic::Ordering::Relaxed,
            );
        }
    }
}

/// Usable size of the object at `p` (its size class, or its pages for a large object).
///
/// # Safety
/// `p` is a live object from [`alloc`].
pub unsafe extern "C" fn usable_size(p: *mut u8) -> usize {
    // SAFETY: the caller's contract.
    unsafe { usable_size_in(p, "usable_size") }
}

/// [`usable_size`] for the malloc face: a pointer goheap did not hand out aborts with a
/// message naming the C function `func` (`goheap: realloc(): invalid pointer 0x...`) rather
/// than `free()`.
///
/// # Safety
/// `p` is a live object from [`alloc`], or a pointer to report.
pub unsafe fn usable_size_in(p: *mut u8, func: &str) -> usize {
    let (s, _) = object_of(p, func);
    // SAFETY: live span from the map.
    unsafe { (*s).elemsize() }
}

/// Resizes the object at `p` (of `old_size` requested bytes, alignment `align`) to
/// `new_size`, in place when the size class (or the large object's pages) allows, else by
/// moving it. Null (and `p` untouched) if out of memory.
///
/// # Safety
/// `p` is a live object from [`alloc`] with the given alignment.
pub unsafe extern "C" fn realloc(
    p: *mut u8,
    old_size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    let (s, _) = object_of(p, "realloc");
    // SAFETY: live span from the map.
    let (class, elemsize) = unsafe { ((*s).class(), (*s).elemsize()) };
    if class != 0 {
        // In place if the new size still needs this class: not larger, and not small enough
        // for the previous class.
        let lower = CLASSES[class - 1].size as usize;
        if new_size <= elemsize && (new_size > lower || class == 1) {
            return p;
        }
    // SAFETY: live large span.
    } else if new_size > MAX_SMALL_SIZE && unsafe { heap::large_fits(s, new_size) } {
        return p;
    }
    let q = if align <= MIN_ALIGN && new_size <= MAX_SMALL_SIZE {
        alloc(new_size, align)
    } else {
        alloc_slow(new_size, align, false)
    };
    if !q.is_null() {
        // SAFETY: both blocks are live and distinct; we copy what both can hold.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old_size.min(new_size));
            free(p);
        }
    }
    q
}

/// goheap as Rust's global allocator:
///
/// ```
/// #[global_allocator]
/// static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;
/// ```
pub struct GoAlloc;

// SAFETY: `alloc` returns null or a block of at least `layout.size()` bytes aligned to
// `layout.align()` that nothing else uses until `dealloc`; `dealloc` accepts exactly such
// blocks; `realloc` keeps the contents up to the smaller size.
unsafe impl GlobalAlloc for GoAlloc {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        alloc(layout.size(), layout.align())
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        // SAFETY: the GlobalAlloc contract: `p` came from us and is not used again.
        unsafe { free(p) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        alloc_zeroed(layout.size(), layout.align())
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the GlobalAlloc contract: `p` is live with `layout`.
        unsafe { realloc(p, layout.size(), layout.align(), new_size) }
    }
}
