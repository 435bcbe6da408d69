//! Spans of the collected heap: typed runs of pages, their mark and alloc bitmaps, the map
//! from an address to its span, and the sweep of one span.
//!
//! # Typed spans
//!
//! A GC span holds objects of one size class *and one type* (one [`GcType`]), so an object
//! needs no header: marking finds the span of an address and from it the type's trace
//! function. A two-pointer node costs its 16 bytes and two bits (one alloc, one mark), as in
//! Go. Tiny objects (pointer-free, under 16 bytes, no destructor) share 16-byte blocks in
//! spans of the "tiny" type, as Go's tiny allocator does. Large objects (over 32 KiB) get a
//! span each.
//!
//! # Bits and sweep generations
//!
//! ```text
//!   alloc[i]   object i was live at the last sweep (the mark bits of the cycle before)
//!   freeindex  every object below it has been handed out since the last sweep
//!   mark[i]    object i was reached by the current (or last) mark (one byte each)
//!   allocated  =  i < freeindex  ||  alloc[i]            (Go's isFree, negated)
//! ```
//!
//! Allocation writes no bitmap: the allocating mutator takes free slots (`!alloc`) in
//! increasing order and records how far it got in `freeindex` when it lets the span go.
//! Sweeping turns the mark bits into the alloc bits and clears the marks, so a span whose
//! objects died costs a few word operations, not a visit per object; only types with a
//! destructor have their dead objects (`allocated & !mark`) visited, to drop them.
//!
//! `sweepgen` follows Go: with `sg` the heap's generation (incremented by 2 at each mark
//! termination), a span with `sweepgen == sg - 2` needs sweeping, `sg - 1` is being swept,
//! `sg` is swept. The lists a span sits on say which is which for spans on lists; for a span
//! a mutator holds across a mark termination the field is what tells the mutator that the
//! span now awaits its sweep (it allocates black in it, and hands it to the unswept list
//! when it lets it go; see `alloc.rs`).
//!
//! # Ownership
//!
//! The non-atomic fields (`owned`) belong to whoever holds the span: the pool list it is on
//! (under that pool's lock), the mutator cache that took it (or the collector holding that
//! mutator's claim, `world.rs`), or the sweeper that took it. Hand-overs go through a mutex or the stop of
//! the world, which order the accesses.
//!
//! # Mark bytes
//!
//! Marks are one byte per object, set with a plain (relaxed atomic) store after a load has
//! shown the byte clear, so marking needs no locked instruction: a bit per object would
//! need an atomic OR, since neighbours share the word, and that locked read-modify-write was
//! half of the marking time in binary-trees. Two workers that reach the same object at the
//! same moment may both grey it; tracing it twice is harmless. The cost is a byte per
//! object instead of a bit (6% of a 16-byte object; Go pays 4 heap-bitmap bits plus a mark
//! bit). Sweeping packs the bytes into the alloc bitmap eight at a time.
//!
//! The byte also holds the object's colour during a mark: 0 white, [`GREY`] reached and
//! waiting in its span for the span's scan (the span is queued; `mark.rs`), [`MARKED`]
//! black (traced, being traced, pointer-free, or allocated black). Every grey byte is
//! scanned before the mark ends, so a finished mark leaves 0 and 1 only.

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU8, Ordering};

use super::ptr::GcType;
use crate::lock::Mutex;
use crate::os;
use crate::pagealloc::{ARENA_PAGES, ARENA_SHIFT};
use crate::sizeclass::{obj_index, PAGE_SHIFT, PAGE_SIZE};

/// Mark byte: reached, and traced or not to be traced (module essay).
pub(crate) const MARKED: u8 = 1;
/// Mark byte: reached, waiting in its queued span to be traced (module essay).
pub(crate) const GREY: u8 = 2;

/// Most objects in one span: 8-byte objects in one page.
pub(crate) const MAX_OBJECTS: usize = PAGE_SIZE / 8;
/// Words of a bitmap.
pub(crate) const BITMAP_WORDS: usize = MAX_OBJECTS / 64;

/// The parts of a span that its current holder owns (module essay).
pub(crate) struct Owned {
    /// Live objects at the last sweep, 1 = allocated.
    pub alloc: [u64; BITMAP_WORDS],
    /// Objects below this index were handed out since the last sweep.
    pub freeindex: usize,
    /// Live objects here that the heap profiler sampled (`crate::profile::gc`).
    pub sampled: u32,
}

/// A span of the collected heap. The fields a marker reads to mark an object come first,
/// in the struct's first cache line (structs are 64-byte aligned).
#[repr(C)]
pub(crate) struct GcSpan {
    /// First byte.
    pub base: usize,
    /// Bytes per object (for a large span: the whole object, rounded up to pages).
    pub elemsize: usize,
    /// Objects (1 for a large span).
    pub nelems: usize,
    /// Mark bytes, 1 = reached: `marks_cap` of them, `nelems` used (module essay).
    marks: *const AtomicU8,
    /// The type of every object here; null for tiny blocks (noscan, no destructor).
    pub ty: *const GcType,
    /// The mark phase of the span's heap, for barriers that know only an address.
    pub barrier: *const super::barrier::Barrier,
    /// `obj_index` multiplier (unused for large spans).
    pub div_magic: u32,
    /// One object per span, mapped at its first page only.
    pub large: bool,
    /// Pages.
    pub npages: usize,
    /// Go's sweep generation (module essay).
    pub sweepgen: AtomicU32,
    marks_cap: usize,
    owned: UnsafeCell<Owned>,
    /// Free structs only (the pool's lock or the stash's owner): link in a chain of free
    /// structs (a pool batch, a stash).
    next_free: *mut GcSpan,
    /// Free structs only, under the pool's lock: for the first struct of a full batch in
    /// the pool, the next full batch.
    next_batch: *mut GcSpan,
}

// SAFETY: `owned` is only accessed by the span's current holder (module essay); everything
// else is immutable after initialisation or atomic.
unsafe impl Sync for GcSpan {}
// SAFETY: as above.
unsafe impl Send for GcSpan {}

impl GcSpan {
    /// The holder's fields.
    ///
    /// # Safety
    /// The caller holds the span (module essay) and makes no other reference to `owned` live.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub unsafe fn owned(&self) -> &mut Owned {
        // SAFETY: caller's contract.
        unsafe { &mut *self.owned.get() }
    }

    /// Index of the object holding `addr` (floor: interior pointers into tiny blocks count).
    #[inline(always)]
    pub fn index_of(&self, addr: usize) -> usize {
        if self.large {
            0
        } else {
            obj_index(addr - self.base, self.div_magic)
        }
    }

    /// Address of object `i`.
    #[inline(always)]
    pub fn addr_of(&self, i: usize) -> usize {
        self.base + i * self.elemsize
    }

    /// Words of the bitmaps in use.
    #[inline(always)]
    pub fn nwords(&self) -> usize {
        self.nelems.div_ceil(64)
    }

    /// Bits of word `w` that are real objects.
    #[inline(always)]
    pub fn valid_bits(&self, w: usize) -> u64 {
        let rest = self.nelems - w * 64;
        if rest >= 64 {
            !0
        } else {
            (1u64 << rest) - 1
        }
    }

    /// The mark byte of object `i`.
    #[inline(always)]
    pub fn mark_byte(&self, i: usize) -> &AtomicU8 {
        debug_assert!(i < self.nelems);
        // SAFETY: `marks` has `marks_cap >= nelems` bytes for the span's life.
        unsafe { &*self.marks.add(i) }
    }

    /// The mark bytes of the span's objects.
    #[inline(always)]
    pub fn marks(&self) -> &[AtomicU8] {
        // SAFETY: `marks` has `marks_cap >= nelems` bytes for the span's life.
        unsafe { core::slice::from_raw_parts(self.marks, self.nelems) }
    }

    /// Marks every slot of word `w` set in `bits` (free slots a black mutator is about to
    /// hand out: allocation during mark is black).
    #[inline]
    pub fn premark(&self, w: usize, mut bits: u64) {
        while bits != 0 {
            let i = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.mark_byte(i).store(MARKED, Ordering::Relaxed);
        }
    }

    /// Clears the marks of the slots of word `w` set in `bits` (premarked slots a mutator
    /// did not take: they are free and must not look allocated to the sweep).
    #[inline]
    pub fn unmark(&self, w: usize, mut bits: u64) {
        while bits != 0 {
            let i = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.mark_byte(i).store(0, Ordering::Relaxed);
        }
    }

    /// Whether the object holding `addr` is marked.
    #[inline]
    pub fn is_marked(&self, addr: usize) -> bool {
        self.mark_byte(self.index_of(addr)).load(Ordering::Relaxed) != 0
    }

    /// The marks of objects `64 * w ..` as a bitmap word.
    ///
    /// Only while no marker runs (the mark phase that wrote them is over and synchronised
    /// with the caller): reads the bytes eight at a time with plain loads.
    pub fn mark_word(&self, w: usize) -> u64 {
        let mut bits = 0u64;
        let end = ((w + 1) * 64).min(self.nelems);
        let mut i = w * 64;
        while i + 8 <= end {
            // SAFETY: bytes `i..i+8` are inside the mark array (`i + 8 <= nelems <=
            // marks_cap`), and nobody writes them concurrently (above).
            let b = unsafe { core::ptr::read_unaligned(self.marks.add(i) as *const u64) };
            debug_assert!(
                b & !0x0101_0101_0101_0101 == 0,
                "goheap: span {:#x} holds a grey object after its mark",
                self.base
            );
            bits |= pack8(b) << (i - w * 64);
            i += 8;
        }
        while i < end {
            if self.mark_byte(i).load(Ordering::Relaxed) != 0 {
                bits |= 1 << (i - w * 64);
            }
            i += 1;
        }
        bits
    }

    /// Clears every mark. Only while no marker runs (as `mark_word`).
    pub fn clear_marks(&self) {
        // SAFETY: the array has `marks_cap >= nelems` bytes, nobody accesses them now.
        unsafe { core::ptr::write_bytes(self.marks as *mut u8, 0, self.nelems) };
    }

    /// The first bitmap word at or after slot `from` with free slots (slots below `from`
    /// masked off), and those slots; `None` when every slot from `from` on is taken.
    ///
    /// # Safety
    /// The caller holds the span.
    #[inline]
    pub unsafe fn free_window(&self, from: usize) -> Option<(usize, u64)> {
        // SAFETY: caller's contract.
        let o = unsafe { self.owned() };
        let first = from / 64;
        (first..self.nwords()).find_map(|w| {
            let mut bits = !o.alloc[w] & self.valid_bits(w);
            if w == first {
                bits &= !0u64 << (from % 64);
            }
            (bits != 0).then_some((w, bits))
        })
    }

    /// Which objects were allocated at the end of the cycle, word `w` (module essay).
    ///
    /// # Safety
    /// The caller holds the span.
    pub unsafe fn allocated_word(&self, w: usize) -> u64 {
        // SAFETY: caller's contract.
        let o = unsafe { self.owned() };
        let below = if o.freeindex >= (w + 1) * 64 {
            !0
        } else if o.freeindex <= w * 64 {
            0
        } else {
            (1u64 << (o.freeindex - w * 64)) - 1
        };
        (below | o.alloc[w]) & self.valid_bits(w)
    }
}

/// Packs eight mark bytes (each 0 or 1, first object in the low byte) into eight bits.
#[inline(always)]
pub(crate) fn pack8(w: u64) -> u64 {
    // Each byte is 0 or 1; the multiply gathers byte k's bit into bit 56 + k without carries.
    (w.wrapping_mul(0x0102_0408_1020_4080) >> 56) & 0xff
}

/// What sweeping found in a span.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Swept {
    /// No live object: its pages can go back to the page heap.
    Empty,
    /// Some free slots.
    Partial,
    /// No free slot.
    Full,
}

/// Result counters of sweeping one span.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct SweepCount {
    /// Objects freed (allocated and unmarked).
    pub freed: usize,
    /// Bytes freed.
    pub freed_bytes: usize,
}

/// Sweeps `s` for generation `sg`: runs the destructors of its dead objects, makes the mark
/// bits the alloc bits and clears the marks.
///
/// # Safety
/// The caller holds the span, the mark phase that set its bits is over, and no `Gc` to a
/// dead object of it can be dereferenced any more (none was reachable).
pub(crate) unsafe fn sweep_span(s: &GcSpan, sg: u32, count: &mut SweepCount) -> Swept {
    // SAFETY: the caller holds the span.
    let o = unsafe { s.owned() };
    let drop = if s.ty.is_null() {
        None
    } else {
        // SAFETY: descriptors are 'static.
        unsafe { (*s.ty).drop }
    };
    let mut live = 0;
    let mut freed = 0;
    for w in 0..s.nwords() {
        let marks = s.mark_word(w);
        // SAFETY: the caller holds the span.
        let allocated = unsafe { s.allocated_word(w) };
        let mut dead = allocated & !marks;
        freed += dead.count_ones() as usize;
        if o.sampled != 0 && dead != 0 {
            o.sampled -= crate::profile::gc::freed(s.addr_of(w * 64), s.elemsize, dead);
        }
        let poison = crate::asan::ENABLED && !(s.large && s.npages > crate::pagealloc::ARENA_PAGES);
        while dead != 0 && (drop.is_some() || poison) {
            let i = w * 64 + dead.trailing_zeros() as usize;
            dead &= dead - 1;
            if let Some(d) = drop {
                // SAFETY: object `i` was allocated (so initialised) and is unreachable
                // (caller's contract): this is its one and only drop, since its alloc bit is
                // cleared below and its slot is reused only after that.
                unsafe { d(s.addr_of(i)) };
            }
            if poison {
                // Dead from now on (`crate::asan`): a later read is reported. A huge
                // object's mapping goes back to the OS unpoisoned.
                crate::asan::poison(s.addr_of(i), s.elemsize);
            }
        }
        o.alloc[w] = marks & s.valid_bits(w);
        live += o.alloc[w].count_ones() as usize;
    }
    s.clear_marks();
    count.freed += freed;
    count.freed_bytes += freed * s.elemsize;
    o.freeindex = 0;
    s.sweepgen.store(sg, Ordering::Relaxed);
    if live == 0 {
        Swept::Empty
    } else if live == s.nelems {
        Swept::Full
    } else {
        Swept::Partial
    }
}

// ---------------------------------------------------------------------------------------
// Span map: address -> GC span, for addresses of GC objects only.

/// Per-arena table: the span of every page.
struct ArenaSpans {
    spans: [AtomicPtr<GcSpan>; ARENA_PAGES],
}

/// Entries: one per possible 64 MiB arena of a 48-bit address space (32 MiB of zero BSS,
/// backed by the kernel only where touched).
const MAP_LEN: usize = 1 << (48 - ARENA_SHIFT);
static MAP: [AtomicPtr<ArenaSpans>; MAP_LEN] = [const { AtomicPtr::new(ptr::null_mut()) }; MAP_LEN];
/// Serialises creation of arena tables.
static MAP_LOCK: Mutex<()> = Mutex::new(());

/// The span of `addr`, which must be the address of (or inside) a GC object: marking only
/// ever looks up pointers that `Gc` values hold.
#[inline(always)]
pub(crate) fn span_of(addr: usize) -> &'static GcSpan {
    // SAFETY: as in `span_slot`; tables and span structs are never freed.
    unsafe {
        let s = (*span_slot(addr)).load(Ordering::Relaxed);
        debug_assert!(!s.is_null(), "goheap: {addr:#x} has no span");
        &*s
    }
}

/// The map entry of `addr`'s page (the marker prefetches it), `addr` as in [`span_of`].
#[inline(always)]
pub(crate) fn span_slot(addr: usize) -> *const AtomicPtr<GcSpan> {
    let t = MAP[addr >> ARENA_SHIFT].load(Ordering::Relaxed);
    debug_assert!(
        !t.is_null(),
        "goheap: {addr:#x} is not in the collected heap"
    );
    // SAFETY: `addr` is in a live GC span (caller's contract), so its table was published
    // before any `Gc` to it existed; tables are never freed.
    unsafe { &(*t).spans[(addr >> PAGE_SHIFT) & (ARENA_PAGES - 1)] }
}

/// Enters `s` (or null) in the map for `n` pages from `base`.
fn map_pages(base: usize, n: usize, s: *mut GcSpan) -> bool {
    for i in 0..n {
        let a = base + i * PAGE_SIZE;
        let ai = a >> ARENA_SHIFT;
        let mut t = MAP[ai].load(Ordering::Acquire);
        if t.is_null() {
            let _g = MAP_LOCK.lock();
            t = MAP[ai].load(Ordering::Acquire);
            if t.is_null() {
                let m = os::reserve(core::mem::size_of::<ArenaSpans>(), os::OS_PAGE_SIZE);
                if m.is_null() {
                    return false;
                }
                // Zeroed memory is a valid table (all null).
                MAP[ai].store(m.cast(), Ordering::Release);
                t = m.cast();
            }
        }
        // SAFETY: `t` is a published arena table, never freed.
        unsafe { (*t).spans[(a >> PAGE_SHIFT) & (ARENA_PAGES - 1)].store(s, Ordering::Release) };
    }
    true
}

// ---------------------------------------------------------------------------------------
// Span structs: carved from OS memory, recycled in batches, never unmapped.
//
// The pool keeps its free structs in batches of `STASH_BATCH` (chained through `next_free`,
// the batches through their first struct's `next_batch`), so that a mutator's stash takes
// or gives a whole batch in a few stores under the pool's lock. It once walked a single
// free list under the lock, one dependent load of a cold struct per struct taken: 16 cache
// misses of lock hold per refill, and at 16 threads on 2 cores the pool's lock became the
// allocator's most contended (410 of 2,736 futex calls sampled in binary-trees 21, more
// than all the per-type pools together; docs/bench/gc-counts-2026-12-07.md).

/// Free span structs. Written only under `SPAN_POOL`'s lock.
struct SpanPool {
    /// Full batches of free structs (`STASH_BATCH` each), by mark capacity class
    /// (64 << k bytes).
    full: [*mut GcSpan; MARK_CLASSES],
    /// The batch being filled by `put`, by mark class, and its length (< `STASH_BATCH`).
    partial: [*mut GcSpan; MARK_CLASSES],
    partial_len: [usize; MARK_CLASSES],
    /// The OS chunk being carved: next free byte and end.
    cur: usize,
    end: usize,
}

/// Mark arrays of 64, 128, ..., 1024 bytes.
const MARK_CLASSES: usize = 5;

fn mark_class(nelems: usize) -> usize {
    let cap = nelems.max(64).next_power_of_two();
    cap.trailing_zeros() as usize - 6
}
// SAFETY: the pointers refer to OS memory owned by the pool; the mutex serialises access.
unsafe impl Send for SpanPool {}

static SPAN_POOL: Mutex<SpanPool> = Mutex::new(SpanPool {
    full: [ptr::null_mut(); MARK_CLASSES],
    partial: [ptr::null_mut(); MARK_CLASSES],
    partial_len: [0; MARK_CLASSES],
    cur: 0,
    end: 0,
});
const SPAN_CHUNK: usize = 256 << 10;
/// Bytes of a struct before its mark array.
const STRUCT_HEAD: usize = core::mem::size_of::<GcSpan>().next_multiple_of(64);

impl SpanPool {
    /// A free struct of mark class `mc` (its mark array follows it), recycled or carved
    /// from OS memory; null if out of memory.
    fn take(&mut self, mc: usize) -> *mut GcSpan {
        if self.partial[mc].is_null() && !self.full[mc].is_null() {
            // Open a full batch.
            let b = self.full[mc];
            // SAFETY: a batch head in the pool: an unused struct, ours under the lock.
            self.full[mc] = unsafe { (*b).next_batch };
            self.partial[mc] = b;
            self.partial_len[mc] = STASH_BATCH;
        }
        if !self.partial[mc].is_null() {
            let s = self.partial[mc];
            // SAFETY: pooled structs are unused span structs whose mark array follows them
            // (capacity of class `mc`); the lock makes them ours.
            self.partial[mc] = unsafe { (*s).next_free };
            self.partial_len[mc] -= 1;
            return s;
        }
        self.carve(mc)
    }

    /// `STASH_BATCH` free structs of mark class `mc` (fewer if out of memory; null if
    /// none), chained through `next_free`: a full batch (two loads and a store), else the
    /// batch being filled topped up with fresh ones (a short batch alone would bring the
    /// stash back for more after a few spans).
    fn take_batch(&mut self, mc: usize) -> *mut GcSpan {
        let b = self.full[mc];
        if !b.is_null() {
            // SAFETY: a batch head in the pool: an unused struct, ours under the lock.
            self.full[mc] = unsafe { (*b).next_batch };
            return b;
        }
        let mut head = self.partial[mc];
        let have = self.partial_len[mc];
        self.partial[mc] = ptr::null_mut();
        self.partial_len[mc] = 0;
        for _ in have..STASH_BATCH {
            let s = self.carve(mc);
            if s.is_null() {
                break;
            }
            // SAFETY: a fresh struct only we can see.
            unsafe { (*s).next_free = head };
            head = s;
        }
        head
    }

    /// A fresh struct of mark class `mc` carved from OS memory; null if out of memory.
    fn carve(&mut self, mc: usize) -> *mut GcSpan {
        let sz = STRUCT_HEAD + (64usize << mc);
        if self.cur + sz > self.end {
            let c = os::reserve(SPAN_CHUNK, os::OS_PAGE_SIZE);
            if c.is_null() {
                return ptr::null_mut();
            }
            self.cur = c as usize;
            self.end = c as usize + SPAN_CHUNK;
        }
        let s = self.cur as *mut GcSpan;
        self.cur += sz;
        // The mark-capacity field is what `free_span_struct` files a struct under.
        // SAFETY: fresh, aligned, unused memory only we can see; `marks_cap` is a plain
        // field (the rest is written when the struct is initialised).
        unsafe { core::ptr::addr_of_mut!((*s).marks_cap).write(64 << mc) };
        s
    }

    /// Files an unused struct under its mark class (the batch being filled; a full one
    /// joins the full batches).
    ///
    /// # Safety
    /// `s` is unmapped and unreferenced, its `marks_cap` set.
    unsafe fn put(&mut self, s: *mut GcSpan) {
        // SAFETY: caller's contract: we own the struct now.
        let mc = unsafe { (*s).marks_cap.trailing_zeros() as usize - 6 };
        // SAFETY: as above.
        unsafe { (*s).next_free = self.partial[mc] };
        self.partial[mc] = s;
        self.partial_len[mc] += 1;
        if self.partial_len[mc] == STASH_BATCH {
            // SAFETY: `s` heads the batch just filled; ours under the lock.
            unsafe { (*s).next_batch = self.full[mc] };
            self.full[mc] = s;
            self.partial[mc] = ptr::null_mut();
            self.partial_len[mc] = 0;
        }
    }
}

/// Structs a [`SpanStash`] takes from the pool at once, per mark class.
const STASH_BATCH: usize = 16;

/// A mutator's stash of free span structs, by mark class: taken from the span-struct
/// pool `STASH_BATCH` at a time, so that a mutator making new spans takes the pool's
/// lock once per `STASH_BATCH` spans instead of once per span. Owned by its mutator's
/// cache (`alloc::Local`); given back when the cache is dropped. At most `STASH_BATCH`
/// structs per mark class (under 40 KiB for the smallest).
pub(crate) struct SpanStash {
    /// Free structs of each mark class, chained through `next_free`.
    heads: [*mut GcSpan; MARK_CLASSES],
}

impl SpanStash {
    pub const EMPTY: SpanStash = SpanStash {
        heads: [ptr::null_mut(); MARK_CLASSES],
    };

    /// A struct of mark class `mc`, refilling the class from the pool (one acquisition of
    /// its lock, a batch taken whole) when empty; null if out of memory.
    fn pop(&mut self, mc: usize) -> *mut GcSpan {
        if self.heads[mc].is_null() {
            self.heads[mc] = SPAN_POOL.lock().take_batch(mc);
        }
        let s = self.heads[mc];
        if !s.is_null() {
            // SAFETY: stashed structs are unused and ours.
            self.heads[mc] = unsafe { (*s).next_free };
        }
        s
    }

    /// Gives every stashed struct back to the pool (one acquisition of its lock).
    pub fn flush(&mut self) {
        if self.heads.iter().all(|h| h.is_null()) {
            return;
        }
        let mut p = SPAN_POOL.lock();
        for head in self.heads.iter_mut() {
            while !head.is_null() {
                let s = *head;
                // SAFETY: stashed structs are unused and ours.
                unsafe {
                    *head = (*s).next_free;
                    p.put(s);
                }
            }
        }
    }
}

/// The address of the span-struct pool's lock (`lock-count` tells its acquisitions apart).
#[cfg(feature = "lock-count")]
pub(crate) fn span_pool_lock() -> usize {
    core::ptr::addr_of!(SPAN_POOL) as usize
}

/// A span struct for `npages` pages at `base`, mapped. Null if out of memory.
/// With `stash` (a mutator's), the struct comes from it, refilled in a batch.
#[allow(clippy::too_many_arguments)] // one call per span kind; a builder would only rename them
pub(crate) fn new_span(
    stash: Option<&mut SpanStash>,
    base: usize,
    npages: usize,
    elemsize: usize,
    nelems: usize,
    div_magic: u32,
    ty: *const GcType,
    large: bool,
    sg: u32,
    barrier: *const super::barrier::Barrier,
) -> *mut GcSpan {
    debug_assert!(nelems <= MAX_OBJECTS);
    let mc = mark_class(nelems);
    let cap = 64usize << mc;
    let s = match stash {
        Some(stash) => stash.pop(mc),
        None => {
            let mut p = SPAN_POOL.lock();
            p.take(mc)
        }
    };
    if s.is_null() {
        return s;
    }
    let marks = (s as usize + STRUCT_HEAD) as *const AtomicU8;
    // SAFETY: the mark array is ours with the struct; zero it (the sweep leaves it zeroed,
    // fresh OS memory is zero, but a span retired mid-cycle may hold marks).
    unsafe { core::ptr::write_bytes(marks as *mut u8, 0, cap) };
    // SAFETY: `s` is an unused, aligned slot that only we can see.
    unsafe {
        s.write(GcSpan {
            base,
            npages,
            elemsize,
            nelems,
            div_magic,
            ty,
            large,
            sweepgen: AtomicU32::new(sg),
            barrier,
            marks,
            marks_cap: cap,
            owned: UnsafeCell::new(Owned {
                alloc: [0; BITMAP_WORDS],
                freeindex: 0,
                sampled: 0,
            }),
            next_free: ptr::null_mut(),
            next_batch: ptr::null_mut(),
        })
    };
    if !map_pages(base, if large { 1 } else { npages }, s) {
        // SAFETY: not mapped, nobody saw it.
        unsafe { free_span_struct(s) };
        return ptr::null_mut();
    }
    s
}

/// Unmaps `s` and recycles its struct (the caller returns the pages).
///
/// # Safety
/// The caller holds `s`, and no `Gc` into it exists or will be traced.
pub(crate) unsafe fn retire_span(s: *mut GcSpan) {
    // SAFETY: caller's contract.
    let (base, n) = unsafe { ((*s).base, if (*s).large { 1 } else { (*s).npages }) };
    map_pages(base, n, ptr::null_mut());
    // SAFETY: unmapped and held by us.
    unsafe { free_span_struct(s) };
}

/// [`retire_span`] for several spans, recycling their structs under one acquisition of the
/// pool's lock.
///
/// # Safety
/// As for [`retire_span`], for every span of `spans`.
pub(crate) unsafe fn retire_spans(spans: &[*mut GcSpan]) {
    for &s in spans {
        // SAFETY: caller's contract.
        let (base, n) = unsafe { ((*s).base, if (*s).large { 1 } else { (*s).npages }) };
        map_pages(base, n, ptr::null_mut());
    }
    let mut p = SPAN_POOL.lock();
    for &s in spans {
        // SAFETY: unmapped and held by us: we own the struct now.
        unsafe { p.put(s) };
    }
}

/// # Safety
/// `s` is unmapped and unreferenced.
unsafe fn free_span_struct(s: *mut GcSpan) {
    // SAFETY: caller's contract: we own the struct now.
    unsafe { SPAN_POOL.lock().put(s) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack8_gathers_bytes() {
        for m in 0..256u64 {
            let mut b = [0u8; 8];
            for (k, x) in b.iter_mut().enumerate() {
                *x = ((m >> k) & 1) as u8;
            }
            assert_eq!(pack8(u64::from_le_bytes(b)), m);
        }
    }

    #[test]
    fn mark_classes() {
        assert_eq!(mark_class(1), 0);
        assert_eq!(mark_class(64), 0);
        assert_eq!(mark_class(65), 1);
        assert_eq!(mark_class(512), 3);
        assert_eq!(mark_class(1024), 4);
    }
}
