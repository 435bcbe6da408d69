//! Allocation in the collected heap: per-type span pools (Go's mcentral, one per type and size
//! class) and each mutator's cache of current spans (Go's mcache), including the tiny
//! allocator and large objects.
//!
//! # The fast path
//!
//! A mutator keeps, per (type, size class) it allocates, one entry in a small open-addressing
//! table keyed by the type descriptor's address: the current span, and 64 bits of its free
//! slots (the *window*, Go's allocCache) with the address of the window's first slot.
//! Allocating is: find the entry (one probe in the common case), take the lowest set bit,
//! return `window_base + bit * elemsize`. No bitmap is written (see [`super::span`]).
//!
//! # Accounting
//!
//! Slots are counted as allocated when a window is loaded (all of its free bits at once) and
//! the untaken rest is subtracted when the span is let go, so the counters move once per
//! window, not per object. The heap-wide live-bytes counter, which triggers collections, is
//! updated when a mutator takes a new span (every few hundred objects), as Go does.

use core::ptr;
use core::sync::atomic::Ordering;
use std::collections::HashMap;

use super::heap::HeapInner;
use super::ptr::GcType;
use super::span::{self, retire_span, sweep_span, GcSpan, SweepCount, Swept};
use crate::heap as pageheap;
use crate::lock::Mutex;
use crate::pagealloc::ARENA_PAGES;
use crate::sizeclass::{CLASSES, MAX_SMALL_SIZE, PAGE_SIZE};

/// Descriptor of tiny blocks: 16 bytes that hold several small pointer-free objects.
pub(crate) static TINY: GcType = GcType {
    size: TINY_SIZE,
    align: 8,
    slice: false,
    trace: None,
    drop: None,
    name: tiny_name,
};
fn tiny_name() -> &'static str {
    "goheap tiny block"
}
/// Go's maxTinySize.
pub(crate) const TINY_SIZE: usize = 16;

/// Span lists of one (type, size class).
pub(crate) struct PoolLists {
    /// Swept spans with free slots (slots below `freeindex` are taken).
    pub partial: Vec<*mut GcSpan>,
    /// Swept spans with no live object, kept for reuse until the next cycle starts.
    pub empty: Vec<*mut GcSpan>,
    /// Spans with no free slot (or let go by a mutator at a stop of the world).
    pub full: Vec<*mut GcSpan>,
    /// Spans not swept since the last mark.
    pub unswept: Vec<*mut GcSpan>,
}

// SAFETY: the span pointers are only used by whoever holds the pool lock or took them out.
unsafe impl Send for PoolLists {}

/// Go's mcentral for one (type, size class).
pub(crate) struct TypePool {
    pub ty: &'static GcType,
    pub elemsize: usize,
    pub npages: usize,
    pub nelems: usize,
    pub div_magic: u32,
    pub lists: Mutex<PoolLists>,
}

impl TypePool {
    fn new(ty: &'static GcType, class: usize) -> TypePool {
        let c = &CLASSES[class];
        TypePool {
            ty,
            elemsize: c.size as usize,
            npages: c.npages as usize,
            nelems: c.nelems as usize,
            div_magic: c.div_magic,
            lists: Mutex::new(PoolLists {
                partial: Vec::new(),
                empty: Vec::new(),
                full: Vec::new(),
                unswept: Vec::new(),
            }),
        }
    }

    /// The type's descriptor, or null for tiny blocks (span convention).
    fn span_ty(&self) -> *const GcType {
        if ptr::eq(self.ty, &TINY) {
            ptr::null()
        } else {
            self.ty
        }
    }
}

/// Every pool of a heap.
pub(crate) struct Pools {
    map: HashMap<usize, Box<TypePool>>,
    /// The same pools, for iteration (never removed while the heap lives).
    pub list: Vec<*const TypePool>,
}
// SAFETY: pools are owned by the map (boxed, stable addresses); the list only borrows them.
unsafe impl Send for Pools {}

impl Pools {
    pub fn new() -> Pools {
        Pools {
            map: HashMap::new(),
            list: Vec::new(),
        }
    }
}

/// Key of a (type, class) pair.
#[inline(always)]
pub(crate) fn key(ty: &'static GcType, class: usize) -> usize {
    ((ty as *const GcType as usize) << 7) | class
}

/// One entry of a mutator's table.
#[derive(Clone, Copy)]
struct Entry {
    /// 0 = empty slot.
    key: usize,
    /// Free slots of the window, 1 = free.
    bits: u64,
    /// Address of the window's slot 0.
    word_base: usize,
    elemsize: usize,
    /// Window's word index.
    word: usize,
    span: *mut GcSpan,
    pool: *const TypePool,
}

const EMPTY_ENTRY: Entry = Entry {
    key: 0,
    bits: 0,
    word_base: 0,
    elemsize: 0,
    word: 0,
    span: ptr::null_mut(),
    pool: ptr::null(),
};

/// Counters a mutator accumulates before adding them to the heap's.
#[derive(Default)]
pub(crate) struct Pending {
    /// Bytes of slots taken (can go negative when leftovers are returned).
    pub bytes: isize,
    /// Objects taken.
    pub objects: isize,
}

/// A mutator's allocation state (Go's mcache).
pub(crate) struct Local {
    table: Vec<Entry>,
    mask: usize,
    used: usize,
    tiny: usize,
    tiny_off: usize,
    pub pending: Pending,
}

impl Local {
    pub fn new() -> Local {
        Local {
            table: vec![EMPTY_ENTRY; 16],
            mask: 15,
            used: 0,
            tiny: 0,
            tiny_off: 0,
            pending: Pending::default(),
        }
    }

    #[inline(always)]
    fn slot(&self, key: usize) -> usize {
        // key = descriptor address << 7 | class: the address's bits above its alignment
        // (>> 10) mixed with the class; no multiply on the fast path.
        ((key >> 10) ^ key) & self.mask
    }

    /// A small object of pool (`ty`, `class`): its address, or 0 when out of memory.
    #[inline(always)]
    pub fn alloc_small(&mut self, heap: &HeapInner, ty: &'static GcType, class: usize) -> usize {
        let k = key(ty, class);
        let mut i = self.slot(k);
        loop {
            // SAFETY: `i <= mask < table.len()`.
            let e = unsafe { self.table.get_unchecked_mut(i) };
            if e.key == k {
                if e.bits != 0 {
                    let b = e.bits.trailing_zeros() as usize;
                    e.bits &= e.bits - 1;
                    return e.word_base + b * e.elemsize;
                }
                return self.refill(heap, i);
            }
            if e.key == 0 {
                return self.insert(heap, ty, class, k);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// A tiny pointer-free object of `size < 16` bytes aligned to `align`, or 0.
    #[inline]
    pub fn alloc_tiny(&mut self, heap: &HeapInner, size: usize, align: usize) -> usize {
        let off = self.tiny_off.next_multiple_of(align);
        if self.tiny != 0 && off + size <= TINY_SIZE {
            self.tiny_off = off + size;
            return self.tiny + off;
        }
        let b = self.alloc_small(heap, &TINY, crate::sizeclass::size_to_class(TINY_SIZE));
        if b != 0 {
            self.tiny = b;
            self.tiny_off = size;
        }
        b
    }

    #[cold]
    fn insert(&mut self, heap: &HeapInner, ty: &'static GcType, class: usize, k: usize) -> usize {
        if (self.used + 1) * 2 > self.table.len() {
            let n = self.table.len() * 2;
            let old = core::mem::replace(&mut self.table, vec![EMPTY_ENTRY; n]);
            self.mask = self.table.len() - 1;
            for e in old.into_iter().filter(|e| e.key != 0) {
                let mut i = self.slot(e.key);
                while self.table[i].key != 0 {
                    i = (i + 1) & self.mask;
                }
                self.table[i] = e;
            }
        }
        let pool = heap.pool(ty, class);
        let mut i = self.slot(k);
        while self.table[i].key != 0 {
            i = (i + 1) & self.mask;
        }
        self.table[i] = Entry {
            key: k,
            // SAFETY: pools live as long as the heap.
            elemsize: unsafe { (*pool).elemsize },
            pool,
            ..EMPTY_ENTRY
        };
        self.used += 1;
        self.refill(heap, i)
    }

    /// Loads the next window of entry `i`'s span, or takes a new span; returns an object or 0.
    #[cold]
    fn refill(&mut self, heap: &HeapInner, i: usize) -> usize {
        let mut e = self.table[i];
        // First slot not yet looked at in the entry's span.
        let mut from = (e.word + 1) * 64;
        loop {
            if !e.span.is_null() {
                // SAFETY: the entry's span is held by this mutator.
                let s = unsafe { &*e.span };
                // SAFETY: as above.
                if let Some((w, bits)) = unsafe { s.free_window(from) } {
                    self.load_window(&mut e, s, w, bits);
                    return self.take(i, e);
                }
                // Every slot from `from` on was handed out: the span is full.
                // SAFETY: held by us until it is on the full list; pools outlive the heap's
                // mutators.
                unsafe {
                    s.owned().freeindex = s.nelems;
                    (*e.pool).lists.lock().full.push(e.span);
                }
                e.span = ptr::null_mut();
                e.bits = 0;
            }
            // SAFETY: pools live as long as the heap.
            let s = heap.acquire_span(unsafe { &*e.pool }, &mut self.pending);
            if s.is_null() {
                self.table[i] = e;
                return 0;
            }
            e.span = s;
            // SAFETY: we hold the span now.
            from = unsafe { (*s).owned().freeindex };
        }
    }

    #[inline(always)]
    fn load_window(&mut self, e: &mut Entry, s: &GcSpan, w: usize, bits: u64) {
        e.word = w;
        e.bits = bits;
        e.word_base = s.addr_of(w * 64);
        let n = bits.count_ones() as isize;
        self.pending.objects += n;
        self.pending.bytes += n * s.elemsize as isize;
    }

    #[inline(always)]
    fn take(&mut self, i: usize, mut e: Entry) -> usize {
        let b = e.bits.trailing_zeros() as usize;
        e.bits &= e.bits - 1;
        self.table[i] = e;
        e.word_base + b * e.elemsize
    }

    /// Lets every current span go (to its pool's partial list, with its `freeindex`), and
    /// forgets the tiny block. Called with the world stopped, or by the mutator itself
    /// outside any session of its own (when it is dropped).
    pub fn flush(&mut self) {
        for e in self.table.iter_mut() {
            if e.span.is_null() {
                continue;
            }
            // SAFETY: the entry's span is held by this cache.
            let s = unsafe { &*e.span };
            let o = unsafe { s.owned() };
            let left = e.bits.count_ones() as isize;
            self.pending.objects -= left;
            self.pending.bytes -= left * s.elemsize as isize;
            o.freeindex = (e.word * 64 + e.bits.trailing_zeros() as usize).min(s.nelems);
            // SAFETY: pools live as long as the heap.
            unsafe { (*e.pool).lists.lock().partial.push(e.span) };
            e.span = ptr::null_mut();
            e.bits = 0;
        }
        self.tiny = 0;
        self.tiny_off = 0;
    }
}

impl HeapInner {
    /// The pool of (`ty`, `class`), created on first use.
    pub(crate) fn pool(&self, ty: &'static GcType, class: usize) -> *const TypePool {
        let mut p = self.pools.lock();
        let k = key(ty, class);
        if let Some(b) = p.map.get(&k) {
            return &**b;
        }
        let b = Box::new(TypePool::new(ty, class));
        let r: *const TypePool = &*b;
        p.map.insert(k, b);
        p.list.push(r);
        r
    }

    /// Snapshot of every pool.
    pub(crate) fn pool_list(&self) -> Vec<*const TypePool> {
        self.pools.lock().list.clone()
    }

    /// Publishes a mutator's pending counters and checks the trigger.
    pub(crate) fn publish(&self, p: &mut Pending) {
        if p.bytes != 0 {
            let b = p.bytes;
            let live = if b >= 0 {
                self.counters.live.fetch_add(b as usize, Ordering::Relaxed) + b as usize
            } else {
                self.counters
                    .live
                    .fetch_sub((-b) as usize, Ordering::Relaxed)
                    - (-b) as usize
            };
            if b > 0 {
                self.counters
                    .total_alloc
                    .fetch_add(b as usize, Ordering::Relaxed);
            } else {
                self.counters
                    .total_alloc
                    .fetch_sub((-b) as usize, Ordering::Relaxed);
            }
            if live >= self.trigger.load(Ordering::Relaxed) {
                self.request_gc();
            }
        }
        if p.objects > 0 {
            self.counters
                .mallocs
                .fetch_add(p.objects as usize, Ordering::Relaxed);
        } else if p.objects < 0 {
            self.counters
                .mallocs
                .fetch_sub((-p.objects) as usize, Ordering::Relaxed);
        }
        *p = Pending::default();
    }

    /// A span with free slots for `pool`, now held by the caller; null when out of memory.
    fn acquire_span(&self, pool: &TypePool, pending: &mut Pending) -> *mut GcSpan {
        self.publish(pending);
        let sweep_ok = pool.ty.drop.is_none();
        let mut count = SweepCount::default();
        let sg = self.sweepgen.load(Ordering::Relaxed);
        let got = loop {
            let mut l = pool.lists.lock();
            if let Some(s) = l.partial.pop().or_else(|| l.empty.pop()) {
                // The self-check the span's sweep generation is kept for: the lists hold
                // only spans swept in this cycle (flushed ones move to `unswept` at mark
                // termination).
                // SAFETY: span structs are never unmapped.
                debug_assert_eq!(unsafe { (*s).sweepgen.load(Ordering::Relaxed) }, sg);
                break s;
            }
            // Sweep lazily (Go's proportional sweep, simplified: until a span has room).
            // Spans of types with destructors are left to the background sweeper, so that
            // no destructor runs inside an allocation.
            if !sweep_ok {
                break ptr::null_mut();
            }
            let Some(s) = l.unswept.pop() else {
                break ptr::null_mut();
            };
            drop(l);
            // SAFETY: taken off the unswept list, so we hold it; the mark that set its bits
            // is over (lists are refilled only at mark termination).
            match unsafe { sweep_span(&*s, sg, &mut count) } {
                Swept::Full => pool.lists.lock().full.push(s),
                _ => break s,
            }
        };
        self.count_swept(&count);
        if !got.is_null() {
            return got;
        }
        self.new_small_span(pool)
    }

    /// A fresh span for `pool` from the page heap.
    fn new_small_span(&self, pool: &TypePool) -> *mut GcSpan {
        let Some((base, _zeroed)) = pageheap::lock().alloc_pages(pool.npages) else {
            return ptr::null_mut();
        };
        let s = span::new_span(
            base,
            pool.npages,
            pool.elemsize,
            pool.nelems,
            pool.div_magic,
            pool.span_ty(),
            false,
            self.sweepgen.load(Ordering::Relaxed),
        );
        if s.is_null() {
            pageheap::lock().pages.free(base, pool.npages);
            return s;
        }
        self.counters
            .span_bytes
            .fetch_add(pool.npages * PAGE_SIZE, Ordering::Relaxed);
        pageheap::COUNTERS
            .inuse
            .fetch_add(pool.npages * PAGE_SIZE, Ordering::Relaxed);
        s
    }

    /// A large object of `size` bytes of type `ty`: its address, or 0 when out of memory.
    pub(crate) fn alloc_large(&self, ty: &'static GcType, size: usize) -> usize {
        debug_assert!(size > MAX_SMALL_SIZE);
        let npages = size.div_ceil(PAGE_SIZE);
        let bytes = npages * PAGE_SIZE;
        let base = if npages <= ARENA_PAGES {
            match pageheap::lock().alloc_pages(npages) {
                Some((b, _)) => b,
                None => return 0,
            }
        } else {
            let p = crate::os::reserve(bytes, PAGE_SIZE);
            if p.is_null() {
                return 0;
            }
            p as usize
        };
        let s = span::new_span(
            base,
            npages,
            bytes,
            1,
            1,
            ty,
            true,
            self.sweepgen.load(Ordering::Relaxed),
        );
        if s.is_null() {
            free_large_pages(base, npages);
            return 0;
        }
        // SAFETY: fresh span, ours: its one object is handed out now.
        unsafe { (*s).owned().freeindex = 1 };
        self.large.lock().live.push(s);
        self.counters.span_bytes.fetch_add(bytes, Ordering::Relaxed);
        if npages <= ARENA_PAGES {
            pageheap::COUNTERS.inuse.fetch_add(bytes, Ordering::Relaxed);
        } else {
            self.counters.huge_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        let mut p = Pending {
            bytes: bytes as isize,
            objects: 1,
        };
        self.publish(&mut p);
        base
    }

    /// Adds what a sweep freed to the heap's counters.
    pub(crate) fn count_swept(&self, c: &SweepCount) {
        if c.freed > 0 {
            self.counters.frees.fetch_add(c.freed, Ordering::Relaxed);
            self.counters
                .freed_bytes
                .fetch_add(c.freed_bytes, Ordering::Relaxed);
        }
    }

    /// Returns an empty span's pages to the page heap and recycles its struct.
    ///
    /// # Safety
    /// The caller holds `s`, which has no live object.
    pub(crate) unsafe fn free_span(&self, s: *mut GcSpan) {
        // SAFETY: caller's contract.
        let (base, npages, large) = unsafe { ((*s).base, (*s).npages, (*s).large) };
        // SAFETY: caller's contract: empty, so nothing points into it.
        unsafe { retire_span(s) };
        self.counters
            .span_bytes
            .fetch_sub(npages * PAGE_SIZE, Ordering::Relaxed);
        if !large || npages <= ARENA_PAGES {
            pageheap::COUNTERS
                .inuse
                .fetch_sub(npages * PAGE_SIZE, Ordering::Relaxed);
        } else {
            self.counters
                .huge_bytes
                .fetch_sub(npages * PAGE_SIZE, Ordering::Relaxed);
        }
        free_large_pages(base, npages);
    }
}

/// Gives `npages` pages at `base` back to the page heap (or to the OS for a huge object).
fn free_large_pages(base: usize, npages: usize) {
    if npages <= ARENA_PAGES {
        pageheap::lock().pages.free(base, npages);
    } else {
        // SAFETY: a huge object's own mapping, no longer referenced.
        unsafe { crate::os::release(base as *mut u8, npages * PAGE_SIZE) };
    }
}

/// Large spans of a heap.
pub(crate) struct LargeLists {
    /// Swept (or allocated since the last mark).
    pub live: Vec<*mut GcSpan>,
    /// Not swept since the last mark.
    pub unswept: Vec<*mut GcSpan>,
}
// SAFETY: as for `PoolLists`.
unsafe impl Send for LargeLists {}
