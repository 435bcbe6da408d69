//! The page heap (Go's mheap): arenas, the address-to-span map, span structs, large objects.
//!
//! # Arenas
//!
//! The heap takes address space from the OS in *arenas* of 64 MiB, aligned to 64 MiB, and
//! never gives an arena's address range back (it gives back the physical pages: see the
//! scavenger). Every arena is handed to the [page allocator](crate::pagealloc), which tracks
//! which of its 8192 pages are in use.
//!
//! # From an address to its span
//!
//! `free(p)` must find the span that holds `p` and must say "not ours" for any other address.
//! Like Go, we map addresses with a two-level table: `ARENA_MAP[p >> 26]` (one entry per
//! possible arena of a 48-bit address space: 4M entries, 32 MiB of zero-filled BSS that the
//! kernel only backs where touched) points to the arena's [`ArenaMeta`], whose `spans[page]`
//! points to the span covering that page. Small-object spans fill every page they cover (any
//! interior address maps to them); a large-object span fills only its first page, because the
//! only valid pointer to a large object is its start. Entries are cleared when a span is freed,
//! so a stale or foreign pointer finds null.
//!
//! Objects larger than an arena (more than 64 MiB) get a mapping of their own ("huge"), whose
//! first page is entered in the same map.
//!
//! # Locks
//!
//! One mutex, `HEAP`, guards the page allocator, the span-struct pool and arena growth. It is
//! taken to get pages for a span (unless the caller's page cache can serve them), to free a
//! span's pages, and for every large allocation. The map is read without locks: entries are
//! atomics published with release stores after the span is fully initialised.

use crate::lock::{Mutex, MutexGuard};
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::os;
use crate::pagealloc::{PageAlloc, PageCache, ARENA_BYTES, ARENA_PAGES, ARENA_SHIFT};
use crate::scavenge_policy;
use crate::sizeclass::{CLASSES, PAGE_SHIFT, PAGE_SIZE};
use crate::span::Span;

/// Bits of address the arena map covers: x86-64 and AArch64 user space is at most 48 bits.
const ADDR_BITS: usize = 48;
/// Entries in the arena map: 2^(48-26) = 4M.
const ARENA_MAP_LEN: usize = 1 << (ADDR_BITS - ARENA_SHIFT);

/// Per-arena metadata: the span of every page. 64 KiB, from the OS.
#[repr(C)]
pub struct ArenaMeta {
    spans: [AtomicPtr<Span>; ARENA_PAGES],
}

/// `ARENA_MAP[ai]` is null, or the arena's `ArenaMeta::spans` moved back by the index of the
/// arena's first page in the whole address space (`ai << (ARENA_SHIFT - PAGE_SHIFT)`
/// entries), so that the entry of the page of `addr` is `ARENA_MAP[ai] + (addr >> PAGE_SHIFT)`:
/// one shift and one load, no masking ([`page_entry`]). Never null for a mapped arena
/// (`ensure_meta`).
static ARENA_MAP: [AtomicPtr<AtomicPtr<Span>>; ARENA_MAP_LEN] =
    [const { AtomicPtr::new(ptr::null_mut()) }; ARENA_MAP_LEN];

/// Where the flat span table starts covering: the first arena's address (`HEAP.arena_hint`'s
/// initial value), above which the heap grows.
const FLAT_BASE: usize = 0x00c0_0000_0000;
/// Pages the flat span table covers from `FLAT_BASE`: 256 GiB of heap.
const FLAT_PAGES: usize = 1 << 25;

/// The flat span table: the span of page `i` of `[FLAT_BASE, FLAT_BASE + FLAT_PAGES *
/// PAGE_SIZE)` is `FLAT[i]`, one load after a subtraction and a compare, where the arena map
/// takes two dependent loads and more tests. Zero-filled BSS like the arena map: 256 MiB of
/// address space, of which the kernel backs only the entries of pages in use (64 KiB per
/// arena, as for its `ArenaMeta`). [`map_span`] writes both maps; [`span_of`] asks this one
/// for the addresses it covers and the arena map for the others (a heap beyond 256 GiB,
/// arenas the OS placed elsewhere, huge objects).
static FLAT: [AtomicPtr<Span>; FLAT_PAGES] =
    [const { AtomicPtr::new(ptr::null_mut()) }; FLAT_PAGES];

/// Address bits above the flat table's range: the table covers exactly the addresses whose
/// bits from `FLAT_SHIFT` up equal those of `FLAT_BASE`.
const FLAT_SHIFT: usize = PAGE_SHIFT + FLAT_PAGES.trailing_zeros() as usize;
const _: () = assert!(FLAT_BASE % (1 << FLAT_SHIFT) == 0 && FLAT_PAGES.is_power_of_two());

/// The flat table's entry for `addr`, if the table covers it. The range test is one shift
/// and one compare, and the entry is `FLAT` moved back by `FLAT_BASE`'s page number plus
/// `addr`'s page number: one load with a constant displacement, no subtraction.
#[inline(always)]
fn flat_entry(addr: usize) -> Option<&'static AtomicPtr<Span>> {
    if addr >> FLAT_SHIFT != FLAT_BASE >> FLAT_SHIFT {
        return None;
    }
    let e = FLAT
        .as_ptr()
        .wrapping_sub(FLAT_BASE >> PAGE_SHIFT)
        .wrapping_add(addr >> PAGE_SHIFT);
    // SAFETY: `addr` is in the table's range, so `e` is entry `(addr - FLAT_BASE) >> PAGE_SHIFT
    // < FLAT_PAGES` of `FLAT`, a static.
    Some(unsafe { &*e })
}

/// First-page index (in the whole address space) of arena `ai`.
const fn arena_first_page(ai: usize) -> usize {
    ai << (ARENA_SHIFT - PAGE_SHIFT)
}

/// The span-map entry of the page holding `addr`, or null if its arena has no metadata.
#[inline(always)]
fn page_entry(addr: usize) -> *const AtomicPtr<Span> {
    let ai = addr >> ARENA_SHIFT;
    if ai >= ARENA_MAP_LEN {
        return ptr::null();
    }
    let biased = ARENA_MAP[ai].load(Ordering::Acquire);
    if biased.is_null() {
        return ptr::null();
    }
    // In bounds of the arena's `spans`: the page index within the arena is
    // `(addr >> PAGE_SHIFT) - arena_first_page(ai)`, below ARENA_PAGES.
    biased.wrapping_add(addr >> PAGE_SHIFT)
}

/// Heap-wide byte counters, readable without the lock. See [`crate::stats`].
pub struct HeapCounters {
    /// Bytes of address space reserved for arenas and huge objects.
    pub sys: AtomicUsize,
    /// Bytes in spans that are in use (small spans and large objects).
    pub inuse: AtomicUsize,
    /// Bytes of large objects (class 0) currently allocated, and their count.
    pub large_bytes: AtomicUsize,
    pub large_allocs: AtomicUsize,
    pub large_frees: AtomicUsize,
    pub large_total_bytes: AtomicUsize,
    /// Bytes returned to the OS by the scavenger over the process lifetime.
    pub released_total: AtomicUsize,
    /// The most `inuse` has been (raised by [`add_inuse`]).
    pub peak_inuse: AtomicUsize,
}

/// Adds `bytes` to the bytes in use and raises the peak; returns the bytes in use now. Every
/// span taken from the page heap is counted here (a few instructions per span, none per
/// object).
pub fn add_inuse(bytes: usize) -> usize {
    let now = COUNTERS.inuse.fetch_add(bytes, Ordering::Relaxed) + bytes;
    COUNTERS.peak_inuse.fetch_max(now, Ordering::Relaxed);
    now
}

pub static COUNTERS: HeapCounters = HeapCounters {
    sys: AtomicUsize::new(0),
    inuse: AtomicUsize::new(0),
    large_bytes: AtomicUsize::new(0),
    large_allocs: AtomicUsize::new(0),
    large_frees: AtomicUsize::new(0),
    large_total_bytes: AtomicUsize::new(0),
    released_total: AtomicUsize::new(0),
    peak_inuse: AtomicUsize::new(0),
};

/// Span structs are carved from chunks of OS memory and never freed; the registry lets
/// statistics visit every one of them ([`for_each_span_struct`]).
const SPAN_CHUNK_BYTES: usize = 256 << 10;
const SPAN_SLOT: usize = core::mem::size_of::<Span>().next_multiple_of(64);
/// 65536 chunks of 256 KiB hold 44 million span structs: more spans than a 48-bit heap has
/// 64 KiB runs.
const MAX_SPAN_CHUNKS: usize = 1 << 16;
static SPAN_CHUNKS: [AtomicPtr<Span>; MAX_SPAN_CHUNKS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_SPAN_CHUNKS];
static SPAN_CHUNK_USED: [AtomicUsize; MAX_SPAN_CHUNKS] =
    [const { AtomicUsize::new(0) }; MAX_SPAN_CHUNKS];
static SPAN_CHUNK_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Calls `f` on every span struct ever made (in use or pooled). Only the atomic fields of a
/// span may be read by `f`: owners may be writing the others.
pub fn for_each_span_struct(mut f: impl FnMut(&Span)) {
    let chunks = SPAN_CHUNK_COUNT.load(Ordering::Acquire);
    for i in 0..chunks {
        let base = SPAN_CHUNKS[i].load(Ordering::Relaxed);
        let used = SPAN_CHUNK_USED[i].load(Ordering::Acquire);
        for j in 0..used {
            // SAFETY: slots below `used` hold Span values written before the release that
            // published the count; span structs are never unmapped.
            f(unsafe { &*base.cast::<u8>().add(j * SPAN_SLOT).cast::<Span>() });
        }
    }
}

/// What the heap lock guards.
pub struct HeapInner {
    pub pages: PageAlloc,
    /// Free list of span structs (linked through `Span::pool_next`).
    span_pool: *mut Span,
    /// Unused tail of the last OS chunk carved into span structs.
    chunk_cur: usize,
    chunk_end: usize,
    /// Where to ask for the next arena: just past the last one, so that the heap grows
    /// upwards (Go starts at 0xc000000000 on 64-bit Linux; so do we).
    arena_hint: usize,
}

// SAFETY: the raw pointers point into OS memory that belongs to the heap as a whole; the
// mutex serialises all access to them.
unsafe impl Send for HeapInner {}

pub(crate) static HEAP: Mutex<HeapInner> = Mutex::new(HeapInner {
    pages: PageAlloc::new(),
    span_pool: ptr::null_mut(),
    chunk_cur: 0,
    chunk_end: 0,
    arena_hint: 0x00c0_0000_0000,
});

/// Set once the background scavenger thread has been started (see [`crate::scavenger`]).
static GREW: AtomicBool = AtomicBool::new(false);

/// Takes the heap lock.
pub fn lock() -> HeapGuard {
    HeapGuard(ManuallyDrop::new(HEAP.lock()))
}

/// The heap lock, held. Releasing it is where the sleeping background scavenger learns that
/// freed pages put it over its goal ([`scavenge_policy::wake_due`], its essay): every
/// change that can give it work (pages freed, page caches flushed, `inuse` lowered before the
/// lock was taken) ends with this release, whoever made it (the explicit-free allocator or
/// the garbage collector). While the scavenger is awake the check is one relaxed load.
pub struct HeapGuard(ManuallyDrop<MutexGuard<'static, HeapInner>>);

impl Deref for HeapGuard {
    type Target = HeapInner;
    #[inline]
    fn deref(&self) -> &HeapInner {
        &self.0
    }
}

impl DerefMut for HeapGuard {
    #[inline]
    fn deref_mut(&mut self) -> &mut HeapInner {
        &mut self.0
    }
}

impl Drop for HeapGuard {
    #[inline]
    fn drop(&mut self) {
        // Decided under the lock, so that the page counts are the ones the scavenger's own
        // re-check (under the lock) would see; the system call comes after the release.
        let wake = scavenge_policy::wake_due(&self.0.pages, &COUNTERS.inuse);
        // SAFETY: dropped exactly once, here, and not used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.0) };
        if wake {
            scavenge_policy::wake_claimed();
        }
    }
}

/// The span holding `addr`, or null if `addr` is not in an in-use span of ours (null for
/// `addr` 0 too: arena 0 never has metadata).
#[inline(always)]
pub fn span_of(addr: usize) -> *mut Span {
    if let Some(e) = flat_entry(addr) {
        return e.load(Ordering::Acquire);
    }
    let ai = addr >> ARENA_SHIFT;
    if ai >= ARENA_MAP_LEN {
        return ptr::null_mut();
    }
    let biased = ARENA_MAP[ai].load(Ordering::Acquire);
    if biased.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: the entry of `addr`'s page in a published arena's metadata (see `page_entry`),
    // which is never freed.
    unsafe { (*biased.wrapping_add(addr >> PAGE_SHIFT)).load(Ordering::Acquire) }
}

/// Enters `s` (or null) for pages `[base, base+npages)`, or only the first when `first_only`.
fn map_span(base: usize, npages: usize, s: *mut Span, first_only: bool) {
    let n = if first_only { 1 } else { npages };
    for i in 0..n {
        let a = base + i * PAGE_SIZE;
        let e = page_entry(a);
        debug_assert!(!e.is_null());
        // SAFETY: every page we hand out lies in an arena whose metadata was published when
        // the arena (or huge mapping) was added, and metadata is never freed.
        unsafe { (*e).store(s, Ordering::Release) };
        if let Some(f) = flat_entry(a) {
            f.store(s, Ordering::Release);
        }
    }
}

/// Makes sure the arena containing `addr` has metadata. Heap lock held.
fn ensure_meta(addr: usize) -> bool {
    let ai = addr >> ARENA_SHIFT;
    // Arena 0 (the first 64 MiB of the address space, below every mmap base) never gets
    // metadata, so `span_of(0)` is null and the free path needs no separate null test.
    if ai == 0 || ai >= ARENA_MAP_LEN {
        return false;
    }
    if !ARENA_MAP[ai].load(Ordering::Acquire).is_null() {
        return true;
    }
    // One spare OS page: should the biased pointer of the mapping come out null (the mapping
    // at exactly `arena_first_page(ai)` entries of 8 bytes), the metadata starts a page later.
    let size = core::mem::size_of::<ArenaMeta>();
    let m = os::reserve(size + os::OS_PAGE_SIZE, os::OS_PAGE_SIZE);
    if m.is_null() {
        return false;
    }
    let first = arena_first_page(ai);
    let mut spans = m.cast::<AtomicPtr<Span>>();
    if spans.wrapping_sub(first).is_null() {
        spans = spans.wrapping_byte_add(os::OS_PAGE_SIZE);
    }
    // Zeroed memory is a valid ArenaMeta (all null pointers).
    ARENA_MAP[ai].store(spans.wrapping_sub(first), Ordering::Release);
    true
}

impl HeapInner {
    /// Reserves a new arena and gives it to the page allocator.
    fn grow(&mut self) -> bool {
        let base = os::reserve_at(self.arena_hint, ARENA_BYTES, ARENA_BYTES);
        if base.is_null() {
            return false;
        }
        self.arena_hint = base as usize + ARENA_BYTES;
        if !ensure_meta(base as usize) || !self.pages.grow(base as usize) {
            // SAFETY: we just reserved it and nobody has seen it.
            unsafe { os::release(base, ARENA_BYTES) };
            return false;
        }
        COUNTERS.sys.fetch_add(ARENA_BYTES, Ordering::Relaxed);
        GREW.store(true, Ordering::Release);
        true
    }

    /// A run of `npages` pages, growing the heap if needed: (address, known zero).
    pub fn alloc_pages(&mut self, npages: usize) -> Option<(usize, bool)> {
        debug_assert!((1..=ARENA_PAGES).contains(&npages));
        let (a, scav) = match self.pages.alloc(npages) {
            Some(r) => r,
            None => {
                if !self.grow() {
                    return None;
                }
                self.pages.alloc(npages)?
            }
        };
        Some((a, scav == npages))
    }

    /// Refills a thread's page cache (returning what is left of the old window first).
    pub fn refill_page_cache(&mut self, pc: &mut PageCache) -> bool {
        if !pc.is_empty() {
            self.pages.flush_cache(pc);
        }
        if let Some(c) = self.pages.alloc_cache() {
            *pc = c;
            return true;
        }
        if !self.grow() {
            return false;
        }
        match self.pages.alloc_cache() {
            Some(c) => {
                *pc = c;
                true
            }
            None => false,
        }
    }

    /// A span struct from the pool (contents unspecified; the caller initialises it).
    pub fn alloc_span_struct(&mut self) -> *mut Span {
        let s = self.span_pool;
        if !s.is_null() {
            // SAFETY: pool spans are unused and the lock makes us their owner.
            self.span_pool = unsafe { (*s).link_next() };
            return s;
        }
        if self.chunk_cur + SPAN_SLOT > self.chunk_end {
            let n = SPAN_CHUNK_COUNT.load(Ordering::Relaxed);
            if n == MAX_SPAN_CHUNKS {
                return ptr::null_mut();
            }
            let c = os::reserve(SPAN_CHUNK_BYTES, os::OS_PAGE_SIZE);
            if c.is_null() {
                return ptr::null_mut();
            }
            SPAN_CHUNKS[n].store(c.cast(), Ordering::Relaxed);
            SPAN_CHUNK_COUNT.store(n + 1, Ordering::Release);
            self.chunk_cur = c as usize;
            self.chunk_end = c as usize + SPAN_CHUNK_BYTES;
        }
        let s = self.chunk_cur as *mut Span;
        self.chunk_cur += SPAN_SLOT;
        // SAFETY: `s` is fresh, aligned (chunks are page aligned, `SPAN_SLOT` a multiple of
        // 64) and large enough for a Span; nobody else can see it yet.
        unsafe { s.write(Span::new()) };
        // Publish the slot to `for_each_span_struct` only once it holds a Span.
        let n = SPAN_CHUNK_COUNT.load(Ordering::Relaxed) - 1;
        SPAN_CHUNK_USED[n].fetch_add(1, Ordering::Release);
        s
    }

    /// In synchronous scavenging mode, how many bytes the caller should release after
    /// dropping the lock (see [`crate::scavenge_policy`]).
    fn sync_scavenge_due(&self) -> usize {
        scavenge_policy::sync_excess(
            COUNTERS.inuse.load(Ordering::Relaxed),
            self.pages.free_pages(),
            self.pages.scavenged_pages(),
        )
    }

    /// Returns a span struct to the pool.
    ///
    /// # Safety
    /// Nobody references `s` as a live span any more (it is unmapped and on no list).
    pub unsafe fn free_span_struct(&mut self, s: *mut Span) {
        // SAFETY: caller's contract; the lock makes us the pool's owner.
        unsafe { (*s).set_link_next(self.span_pool) };
        self.span_pool = s;
    }
}

/// Creates a span for size class `class`, owned by `owner`, taking its pages from `pc` when
/// it can serve them, else from the page heap. Null when out of memory.
pub fn new_small_span(
    class: usize,
    owner: usize,
    pc: &mut PageCache,
    stash: &mut SpanStash,
) -> *mut Span {
    let npages = CLASSES[class].npages as usize;
    let from_cache = |pc: &mut PageCache| pc.alloc(npages).map(|(a, scav)| (a, scav == npages));
    let mut pages = from_cache(pc);
    if pages.is_none() || stash.is_empty() {
        // Slow path: the page cache or the stash needs the heap lock anyway.
        let mut h = lock();
        if pages.is_none() && h.refill_page_cache(pc) {
            pages = from_cache(pc);
        }
        if pages.is_none() {
            pages = h.alloc_pages(npages);
        }
        stash.refill(&mut h);
    }
    let Some((base, zeroed)) = pages else {
        return ptr::null_mut();
    };
    let s = stash.pop();
    if s.is_null() {
        lock().pages.free(base, npages);
        return ptr::null_mut();
    }
    // SAFETY: `s` is a fresh span struct from the pool; remote bits of pooled spans are zero.
    unsafe { (*s).init_small(base, class, zeroed, owner) };
    let in_use = add_inuse(npages * PAGE_SIZE);
    map_span(base, npages, s, false);
    note_growth(in_use);
    s
}

/// Frees an empty small span: unmaps it, returns its pages and its struct.
///
/// # Safety
/// The caller owns `s`, every object in it is free, and no list holds it.
pub unsafe fn free_small_span(s: *mut Span, stash: Option<&mut SpanStash>) {
    // SAFETY: caller's contract: the span is ours and empty.
    let (base, npages) = unsafe {
        // Its local frees have not been counted anywhere yet: count them before the span
        // stops being a live span that statistics look at.
        crate::counters::count_freed((*s).class(), (*s).fold_frees() as u64);
        (*s).retire();
        ((*s).base(), (*s).npages())
    };
    map_span(base, npages, ptr::null_mut(), false);
    COUNTERS
        .inuse
        .fetch_sub(npages * PAGE_SIZE, Ordering::Relaxed);
    let mut h = lock();
    h.pages.free(base, npages);
    if !stash.is_some_and(|st| st.push(s)) {
        // SAFETY: unmapped and on no list (and not stashed).
        unsafe { h.free_span_struct(s) };
    }
    let release = h.sync_scavenge_due();
    drop(h);
    sync_release(release);
}

/// A fixed-capacity stack of span pointers, owned by one thread: what [`SpanStash`] and
/// [`SampleRuns`] keep their spans in.
struct SpanSlots<const CAP: usize> {
    /// The first `n` are held. Touched only by the owning thread.
    spans: [*mut Span; CAP],
    n: usize,
}

impl<const CAP: usize> SpanSlots<CAP> {
    const fn new() -> Self {
        SpanSlots {
            spans: [ptr::null_mut(); CAP],
            n: 0,
        }
    }

    fn len(&self) -> usize {
        self.n
    }

    fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Holds `s`; false (and `s` not held) when full.
    fn push(&mut self, s: *mut Span) -> bool {
        if self.n == CAP {
            return false;
        }
        self.spans[self.n] = s;
        self.n += 1;
        true
    }

    /// The span pushed last, or null when empty.
    fn pop(&mut self) -> *mut Span {
        if self.n == 0 {
            return ptr::null_mut();
        }
        self.n -= 1;
        self.spans[self.n]
    }
}

/// A thread's private handful of span structs, so that making a span from its page cache
/// needs no lock (Go's mspancache).
pub struct SpanStash {
    /// Unused span structs. Touched only by the owning thread.
    structs: SpanSlots<{ SpanStash::CAP }>,
}

impl Default for SpanStash {
    fn default() -> Self {
        Self::new()
    }
}

impl SpanStash {
    const CAP: usize = 16;
    pub const fn new() -> Self {
        SpanStash {
            structs: SpanSlots::new(),
        }
    }
    fn is_empty(&self) -> bool {
        self.structs.is_empty()
    }
    fn pop(&mut self) -> *mut Span {
        self.structs.pop()
    }
    /// Keeps `s`, an unused span struct; false (and nothing kept) if full.
    fn push(&mut self, s: *mut Span) -> bool {
        self.structs.push(s)
    }
    fn refill(&mut self, h: &mut HeapInner) {
        while self.structs.len() < Self::CAP / 2 {
            let s = h.alloc_span_struct();
            if s.is_null() {
                return;
            }
            self.structs.push(s);
        }
    }
    /// Gives every stashed struct back to the pool (thread exit).
    pub fn flush(&mut self) {
        if self.structs.is_empty() {
            return;
        }
        let mut h = lock();
        loop {
            let s = self.structs.pop();
            if s.is_null() {
                break;
            }
            // SAFETY: stashed structs are unused.
            unsafe { h.free_span_struct(s) };
        }
    }
}

/// A thread's few one-page runs kept, span struct and all, from freed heap-profile samples
/// (`crate::profile`). A sample of a small size class is promoted to a page of its own; at
/// the default rate a thread that allocates and frees small objects promotes and frees one
/// every few microseconds, and going to the page heap for each (the heap lock, the page
/// allocator's bitmaps and summaries) was most of the profiler's remaining cost. A freed
/// sample's run is kept by the freeing thread, unmapped (so a second free of it finds
/// nothing), and the thread's next promotion takes it back without the lock. Kept pages
/// stay allocated in the page allocator and out of `COUNTERS.inuse`, idle as a page cache's
/// pages are. Owned by one thread's cache, which flushes it when it retires.
pub struct SampleRuns {
    /// Unmapped one-page large spans, each still holding its page. Touched only by the
    /// owning thread.
    spans: SpanSlots<{ SampleRuns::CAP }>,
}

impl Default for SampleRuns {
    fn default() -> Self {
        Self::new()
    }
}

impl SampleRuns {
    /// Four pages a thread at most: enough for a thread's samples to be freed soon after
    /// they are made, which is the churn that costs.
    const CAP: usize = 4;
    pub const fn new() -> Self {
        SampleRuns {
            spans: SpanSlots::new(),
        }
    }

    /// Keeps `s`, a one-page large span whose object was just freed and which was
    /// unmapped and uncounted as [`free_large`] does; false (and nothing kept) if full.
    ///
    /// # Safety
    /// As described: `s` is on no list and nothing else refers to it or its page.
    pub unsafe fn keep(&mut self, s: *mut Span) -> bool {
        // SAFETY: caller's contract.
        debug_assert_eq!(unsafe { (*s).npages() }, 1);
        self.spans.push(s)
    }

    /// A one-page large object made from a kept run (zeroed if `zero`), counted and mapped
    /// as [`alloc_large`] does; null if none is kept.
    pub fn alloc(&mut self, zero: bool) -> *mut u8 {
        let s = self.spans.pop();
        if s.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a kept span is ours alone, unmapped, its page unused.
        let base = unsafe {
            let base = (*s).base();
            (*s).init_large(base, 1, false);
            base
        };
        crate::asan::unpoison(base, PAGE_SIZE);
        if zero {
            // SAFETY: the page is ours.
            unsafe { ptr::write_bytes(base as *mut u8, 0, PAGE_SIZE) };
        }
        note_large_alloc(PAGE_SIZE);
        map_span(base, 1, s, true);
        base as *mut u8
    }

    /// Gives every kept run back to the page heap (the owning cache retires).
    pub fn flush(&mut self) {
        if self.spans.is_empty() {
            return;
        }
        let mut h = lock();
        loop {
            let s = self.spans.pop();
            if s.is_null() {
                break;
            }
            // SAFETY: a kept span is ours alone, unmapped and on no list.
            unsafe {
                h.pages.free((*s).base(), 1);
                h.free_span_struct(s);
            }
        }
        let release = h.sync_scavenge_due();
        drop(h);
        sync_release(release);
    }
}

/// Allocates a large object (more than `MAX_SMALL_SIZE` bytes, or an alignment no size class
/// provides). Null when out of memory or when the request cannot be represented.
pub fn alloc_large(size: usize, align: usize, zero: bool) -> *mut u8 {
    let Some(npages) = size.checked_add(PAGE_SIZE - 1).map(|s| s >> PAGE_SHIFT) else {
        return ptr::null_mut();
    };
    let npages = npages.max(1);
    let align_pages = align.div_ceil(PAGE_SIZE).max(1);
    let Some(need) = npages.checked_add(align_pages - 1) else {
        return ptr::null_mut();
    };
    if need > ARENA_PAGES {
        return alloc_huge(npages, align, zero);
    }
    let mut h = lock();
    let Some((raw, zeroed)) = h.alloc_pages(need) else {
        return ptr::null_mut();
    };
    // Trim to the requested alignment; the page allocator is address ordered, so the head and
    // tail go straight back.
    let base = (raw + align_pages * PAGE_SIZE - 1) & !(align_pages * PAGE_SIZE - 1);
    let head = (base - raw) >> PAGE_SHIFT;
    let tail = need - head - npages;
    if head > 0 {
        h.pages.free(raw, head);
    }
    if tail > 0 {
        h.pages.free(base + npages * PAGE_SIZE, tail);
    }
    let s = h.alloc_span_struct();
    if s.is_null() {
        h.pages.free(base, npages);
        return ptr::null_mut();
    }
    drop(h);
    // SAFETY: fresh span struct, exclusively ours until mapped.
    unsafe { (*s).init_large(base, npages, zeroed) };
    let bytes = npages * PAGE_SIZE;
    // Its pages may have held objects freed (and poisoned) before.
    crate::asan::unpoison(base, bytes);
    if zero && !zeroed {
        // SAFETY: the run is ours and `bytes` long.
        unsafe { ptr::write_bytes(base as *mut u8, 0, bytes) };
    }
    note_large_alloc(bytes);
    map_span(base, npages, s, true);
    base as *mut u8
}

/// GC heaps count the process's memory in use toward their goals (gc/pacer.rs): one load
/// and compare. Nothing to do without the collector (feature `gc`).
#[inline(always)]
#[cfg_attr(not(feature = "gc"), allow(unused_variables))]
fn note_growth(in_use: usize) {
    #[cfg(feature = "gc")]
    crate::gc::pacer::note_growth(in_use);
}

fn note_large_alloc(bytes: usize) {
    let in_use = add_inuse(bytes);
    note_growth(in_use);
    COUNTERS.large_bytes.fetch_add(bytes, Ordering::Relaxed);
    COUNTERS
        .large_total_bytes
        .fetch_add(bytes, Ordering::Relaxed);
    COUNTERS.large_allocs.fetch_add(1, Ordering::Relaxed);
}

/// An object bigger than an arena: a mapping of its own.
fn alloc_huge(npages: usize, align: usize, _zero: bool) -> *mut u8 {
    let Some(bytes) = npages.checked_mul(PAGE_SIZE) else {
        return ptr::null_mut();
    };
    if bytes > (1usize << (ADDR_BITS - 1)) {
        return ptr::null_mut();
    }
    let base = os::reserve(bytes, align.max(PAGE_SIZE));
    if base.is_null() {
        return ptr::null_mut();
    }
    let mut h = lock();
    let s = h.alloc_span_struct();
    if s.is_null() || !ensure_meta(base as usize) {
        if !s.is_null() {
            // SAFETY: never published.
            unsafe { h.free_span_struct(s) };
        }
        drop(h);
        // SAFETY: just reserved, never published.
        unsafe { os::release(base, bytes) };
        return ptr::null_mut();
    }
    drop(h);
    // SAFETY: fresh span struct. Fresh mappings are zero, so `zero` needs no work.
    unsafe { (*s).init_large(base as usize, npages, true) };
    COUNTERS.sys.fetch_add(bytes, Ordering::Relaxed);
    note_large_alloc(bytes);
    map_span(base as usize, npages, s, true);
    base
}

/// Frees a large object's span.
///
/// # Safety
/// `s` is the large span of a live object that the caller is freeing, and was just looked up
/// from the object's address.
pub unsafe fn free_large(s: *mut Span) {
    // SAFETY: caller's contract.
    let (base, npages) = unsafe { ((*s).base(), (*s).npages()) };
    let sampled = crate::profile::tracking() && crate::profile::freed(base);
    // Unmap first so that a second free of the same pointer finds nothing.
    map_span(base, npages, ptr::null_mut(), true);
    let bytes = npages * PAGE_SIZE;
    COUNTERS.inuse.fetch_sub(bytes, Ordering::Relaxed);
    COUNTERS.large_bytes.fetch_sub(bytes, Ordering::Relaxed);
    COUNTERS.large_frees.fetch_add(1, Ordering::Relaxed);
    // SAFETY: unmapped and uncounted above, on no list; the object is dead.
    if sampled && npages == 1 && unsafe { crate::profile::keep_run(s) } {
        // A promoted sample's page: kept by this thread for its next sample (`SampleRuns`).
        return;
    }
    let mut h = lock();
    if npages > ARENA_PAGES {
        // SAFETY: unmapped above, on no list.
        unsafe { h.free_span_struct(s) };
        drop(h);
        COUNTERS.sys.fetch_sub(bytes, Ordering::Relaxed);
        // SAFETY: the huge mapping is ours alone and its object is dead.
        unsafe { os::release(base as *mut u8, bytes) };
    } else {
        h.pages.free(base, npages);
        // SAFETY: unmapped above, on no list.
        unsafe { h.free_span_struct(s) };
        let release = h.sync_scavenge_due();
        drop(h);
        sync_release(release);
    }
}

/// Tries to resize a large object in place: true if `new_size` fits its pages as they are.
/// (Growing into neighbouring free pages is left to `realloc`'s copy path.)
///
/// # Safety
/// `s` is the large span of a live object.
pub unsafe fn large_fits(s: *mut Span, new_size: usize) -> bool {
    // SAFETY: caller's contract.
    let npages = unsafe { (*s).npages() };
    let have = npages * PAGE_SIZE;
    // Keep the object in place when it still needs more than half of its pages; otherwise
    // moving it returns memory.
    new_size <= have && new_size > have / 2
}

/// True once the heap has reserved its first arena (the scavenger starts then).
pub fn has_grown() -> bool {
    GREW.load(Ordering::Acquire)
}

/// Returns up to `max_bytes` of free, not yet scavenged pages to the OS; returns the bytes
/// released. The heap lock is dropped around each `madvise`, as Go's scavenger does, so
/// allocation is never blocked behind a system call.
pub fn scavenge(max_bytes: usize, chunk_pages: usize) -> usize {
    scavenge_runs(max_bytes, chunk_pages, 1)
}

/// [`scavenge`] of runs of at least `min_pages` free pages only (fewer only where
/// `chunk_pages` or what is left of `max_bytes` asks for less): the synchronous scavenger's,
/// which leaves small fragments alone ([`crate::pagealloc::PageAlloc::take_unscavenged_at_least`]).
fn scavenge_runs(max_bytes: usize, chunk_pages: usize, min_pages: usize) -> usize {
    let mut released = 0;
    while released < max_bytes {
        let want = ((max_bytes - released) >> PAGE_SHIFT).clamp(1, chunk_pages);
        let Some((addr, n)) = lock().pages.take_unscavenged_at_least(want, min_pages) else {
            break;
        };
        // SAFETY: the run is taken (marked in use) so nobody else uses it; it held only free
        // pages, whose contents nobody needs.
        unsafe { os::decommit(addr as *mut u8, n * PAGE_SIZE) };
        crate::asan::release_shadow(addr, n * PAGE_SIZE);
        lock().pages.free_scavenged(addr, n);
        released += n * PAGE_SIZE;
    }
    COUNTERS
        .released_total
        .fetch_add(released, Ordering::Relaxed);
    released
}

/// Releases what [`HeapInner::sync_scavenge_due`] asked for (synchronous mode; no lock
/// held), in the policy's runs, none shorter than its minimum (`scavenge_policy`'s essay,
/// "Fragments").
fn sync_release(bytes: usize) {
    if bytes > 0 {
        scavenge_runs(
            bytes,
            scavenge_policy::RUN_PAGES,
            scavenge_policy::SYNC_MIN_RUN_PAGES,
        );
    }
}

/// Page-level numbers, read under the lock: (total pages, free pages, scavenged pages).
/// Read-only, so it skips the scavenger's check on release (the scavenger's own re-check
/// uses it while marked asleep).
pub fn page_counts() -> (usize, usize, usize) {
    let h = HEAP.lock();
    (
        h.pages.total_pages(),
        h.pages.free_pages(),
        h.pages.scavenged_pages(),
    )
}
