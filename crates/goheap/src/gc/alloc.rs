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
//!
//! # Shared locks: per span, in batches (issue 9)
//!
//! Nothing per allocation or per window takes a lock. Taking a span (`acquire_span`) takes
//! its pool's lock once for everything it does with the lists (put the full span back, take
//! a swept one, take the spans its proportional sweep sweeps) and once more only to put
//! swept spans back. A new span comes from the mutator's `SpanSource`: pages from its page
//! cache and a struct from its stash, each refilled in a batch under the page heap's or the
//! span-struct pool's lock. Sweepers take and return spans in batches of `SWEEP_BATCH`,
//! and empty spans go back to the page heap in the same batches. Counts and the argument for
//! many cores: `docs/design.md` section 13.

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::collections::HashMap;
use std::sync::Arc;

use super::fractional::MarkShare;
use super::heap::HeapInner;
use super::pause::PauseCause;
use super::ptr::GcType;
use super::span::{self, retire_span, sweep_span, GcSpan, SweepCount, Swept};
use crate::heap as pageheap;
use crate::lock::Mutex;
use crate::pagealloc::{PageCache, ARENA_PAGES};
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
/// Most spans a mutator sweeps before it takes one, when the sweep is behind its schedule
/// (the proportional sweep of `acquire_span`): a few microseconds of work.
const SWEEP_AHEAD: usize = 4;

/// Go's maxTinySize.
pub(crate) const TINY_SIZE: usize = 16;

/// Span lists of one (type, size class).
pub(crate) struct PoolLists {
    /// Swept spans with free slots (slots below `freeindex` are taken).
    pub partial: Vec<*mut GcSpan>,
    /// Spans with no free slot (or let go by a mutator at a stop of the world).
    pub full: Vec<*mut GcSpan>,
    /// Spans not swept since the last mark.
    pub unswept: Vec<*mut GcSpan>,
}

// SAFETY: the span pointers are only used by whoever holds the pool lock or took them out.
unsafe impl Send for PoolLists {}

/// Whether `s` was last swept before generation `sweepgen` (read by the caller under the
/// list's lock: see [`PoolLists::put`]).
#[inline]
fn stale(s: *mut GcSpan, sweepgen: &core::sync::atomic::AtomicU32) -> bool {
    // SAFETY: span structs are never unmapped.
    unsafe { (*s).sweepgen.load(Ordering::Relaxed) != sweepgen.load(Ordering::Acquire) }
}

impl PoolLists {
    /// Puts a span the caller held on the list its state says: `unswept` if a mark ended
    /// since it was swept (decided here, under the lock: mark termination bumps the
    /// generation and then moves stale spans under this same lock, so a span put after
    /// that move is seen stale, and one put before it is moved), else `full` or `partial`.
    pub fn put(&mut self, s: *mut GcSpan, full: bool, sweepgen: &core::sync::atomic::AtomicU32) {
        if stale(s, sweepgen) {
            self.unswept.push(s);
        } else if full {
            self.full.push(s);
        } else {
            self.partial.push(s);
        }
    }
}

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
    /// The window's free slots were marked when loaded (black allocation): the untaken
    /// ones are unmarked when the window is dropped.
    premarked: bool,
    /// Free slots of the window held back by the heap profiler (`crate::profile::gc`);
    /// the first is a sample. Counted, premarked and unmarked with `bits`.
    deferred: u64,
}

const EMPTY_ENTRY: Entry = Entry {
    key: 0,
    bits: 0,
    word_base: 0,
    elemsize: 0,
    word: 0,
    span: ptr::null_mut(),
    pool: ptr::null(),
    premarked: false,
    deferred: 0,
};

/// Counters a mutator accumulates before adding them to the heap's.
#[derive(Default)]
pub(crate) struct Pending {
    /// Bytes of slots taken (can go negative when leftovers are returned).
    pub bytes: isize,
    /// Objects taken.
    pub objects: isize,
}

/// A mutator's allocation state (Go's mcache). Owned by the mutator inside its sessions,
/// by the collector while it holds the mutator's claim (`world.rs`).
pub(crate) struct Local {
    table: Vec<Entry>,
    mask: usize,
    used: usize,
    tiny: usize,
    tiny_off: usize,
    pub pending: Pending,
    /// The cycle whose mark this mutator's session joined black (0: none): while that
    /// cycle's phase is not `OFF`, windows are premarked (allocation is black).
    pub black_for: u64,
    /// The sweep generation this cache last let its spans go under, shared with the
    /// collector (`MutatorShared::flushed`): sweep termination waits until it is current.
    /// Written by the cache's owner, SeqCst (a Dekker pair with the collector's `watched`,
    /// world.rs: waking).
    pub flushed: Arc<AtomicU32>,
    /// Set by a collector waiting for this cache's mutator, cleared by the mutator when it
    /// wakes it (`MutatorShared::watched`, world.rs: waking). Shared with the collector.
    pub watched: Arc<AtomicBool>,
    /// What this cache makes new spans from. Owned with the rest of the cache.
    source: SpanSource,
    /// This mutator's fractional-marking clock (`fractional.rs`). Owned with the cache.
    mark_share: MarkShare,
}

/// A mutator's private supply for new spans, so that making one takes no shared lock in the
/// common case: pages from Go's per-P `pageCache` (a 64-page window of the page heap whose
/// free pages only this mutator carves from; the page heap's lock is taken once per window,
/// not once per span), and span structs from a stash refilled in batches
/// ([`span::SpanStash`]). Both go back when the cache is dropped (with its mutator). At
/// most 512 KiB of pages and a few dozen structs held per mutator.
pub(crate) struct SpanSource {
    pages: PageCache,
    structs: span::SpanStash,
}

impl Drop for SpanSource {
    fn drop(&mut self) {
        if !self.pages.is_empty() {
            pageheap::lock().pages.flush_cache(&mut self.pages);
        }
        self.structs.flush();
    }
}

impl Local {
    pub fn new(sweepgen: u32) -> Local {
        Local {
            table: vec![EMPTY_ENTRY; 16],
            mask: 15,
            used: 0,
            tiny: 0,
            tiny_off: 0,
            pending: Pending::default(),
            black_for: 0,
            flushed: Arc::new(AtomicU32::new(sweepgen)),
            watched: Arc::new(AtomicBool::new(false)),
            source: SpanSource {
                pages: PageCache::EMPTY,
                structs: span::SpanStash::EMPTY,
            },
            mark_share: MarkShare::new(),
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
        // On failure the old block's span may have gone back to a list (full): forget it
        // (found by review: a later `blacken` would mark a byte in a span a sweeper reads).
        self.tiny = b;
        self.tiny_off = size;
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
        let pool = pool(heap, ty, class);
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
        // A mark ended since the cache let its spans go: they await their sweep, and the
        // next sweep termination waits for them. Let them go now, not at the session's end,
        // which may be far off (two loads per window of 64 slots when nothing is stale).
        if self.flush_if_stale(heap) {
            heap.mutators.stale_flushed(&self.watched);
        }
        let mut e = self.table[i];
        if e.deferred != 0 {
            e.bits = core::mem::take(&mut e.deferred);
            return self.take_sampled(i, e, true);
        }
        // First slot not yet looked at in the entry's span.
        let mut from = (e.word + 1) * 64;
        // The entry's span, once found full, until `acquire_span` puts it back.
        let mut full = ptr::null_mut();
        loop {
            if !e.span.is_null() {
                // SAFETY: the entry's span is held by this mutator.
                let s = unsafe { &*e.span };
                // SAFETY: as above.
                if let Some((w, bits)) = unsafe { s.free_window(from) } {
                    self.load_window(heap, &mut e, s, w, bits);
                    if crate::profile::sampling() {
                        return self.take_sampled(i, e, false);
                    }
                    return self.take(i, e);
                }
                // Every slot from `from` on was handed out: the span is full. It goes back
                // to its pool's `full` list with the next span's taking (one acquisition).
                // SAFETY: held by us until it is on a list.
                unsafe { s.owned().freeindex = s.nelems };
                full = e.span;
                e.span = ptr::null_mut();
                e.bits = 0;
                e.premarked = false;
            }
            let s = acquire_span(
                heap,
                // SAFETY: pools live as long as the heap.
                unsafe { &*e.pool },
                &mut self.pending,
                &mut self.source,
                &mut self.mark_share,
                full,
            );
            full = ptr::null_mut();
            if s.is_null() {
                self.table[i] = e;
                return 0;
            }
            e.span = s;
            // SAFETY: we hold the span now.
            from = unsafe { (*s).owned().freeindex };
        }
    }

    /// Whether an object this mutator takes from span `s` now must be black (marked):
    /// exactly when the sweep that follows the running (or just ended) mark will sweep `s`
    /// and the object must survive it. That is: `s` is stale (a mark ended since it was
    /// last swept: everything allocated now is live as far as that mark goes), or the
    /// session joined the mark black (`black_for`) and the mark's generation has not been
    /// bumped yet (so `s`, current now, becomes stale at the bump). Reads the phase, then
    /// the cycle, then the generations; mark termination bumps the generation before it
    /// ends the phase (`cycle.rs`), so a mutator that sees the phase over sees the bump.
    #[inline]
    pub fn allocates_black(&self, heap: &HeapInner, s: &GcSpan) -> bool {
        let ph = heap.barrier.phase.load(Ordering::SeqCst);
        let cycle = heap.cycle_no.load(Ordering::Acquire);
        let sg = heap.sweep.sweepgen.load(Ordering::Acquire);
        super::barrier::allocation_is_black(
            ph,
            self.black_for,
            cycle,
            s.sweepgen.load(Ordering::Relaxed),
            sg,
            heap.sweep.mark_sweepgen.load(Ordering::Relaxed),
        )
    }

    #[inline(always)]
    fn load_window(&mut self, heap: &HeapInner, e: &mut Entry, s: &GcSpan, w: usize, bits: u64) {
        e.word = w;
        e.bits = bits;
        e.word_base = s.addr_of(w * 64);
        e.premarked = self.allocates_black(heap, s);
        // Free slots carry no mark (a mark left on a free slot would make the object the
        // slot receives look traced).
        debug_assert!(
            {
                let mut b = bits;
                let mut ok = true;
                while b != 0 {
                    let i = w * 64 + b.trailing_zeros() as usize;
                    b &= b - 1;
                    ok &= s.mark_byte(i).load(Ordering::Relaxed) == 0;
                }
                ok
            },
            "goheap: a free slot of span {:#x} is marked",
            s.base
        );
        if e.premarked {
            s.premark(w, bits);
        }
        let n = bits.count_ones() as isize;
        self.pending.objects += n;
        self.pending.bytes += n * s.elemsize as isize;
    }

    /// [`Local::take`] while the heap profiler samples: the window may be cut short, and
    /// the object taken may be a sample (`first_is_sample`: a deferred sample point).
    #[cold]
    fn take_sampled(&mut self, i: usize, mut e: Entry, first_is_sample: bool) -> usize {
        let sample =
            crate::profile::gc::window(&mut e.bits, &mut e.deferred, e.elemsize, first_is_sample);
        let p = self.take(i, e);
        if sample {
            // SAFETY: the entry's span is held by this mutator.
            crate::profile::gc::record(p, e.elemsize, unsafe { &*e.span });
        }
        p
    }

    #[inline(always)]
    fn take(&mut self, i: usize, mut e: Entry) -> usize {
        let b = e.bits.trailing_zeros() as usize;
        e.bits &= e.bits - 1;
        self.table[i] = e;
        e.word_base + b * e.elemsize
    }

    /// The session turned black during a mark: the free slots of every current window
    /// are marked before they are handed out, and so is the current tiny block.
    pub fn blacken(&mut self) {
        for e in self.table.iter_mut() {
            if e.span.is_null() || e.premarked {
                continue;
            }
            // SAFETY: the entry's span is held by this cache.
            unsafe { (*e.span).premark(e.word, e.bits | e.deferred) };
            e.premarked = true;
        }
        if self.tiny != 0 {
            let s = span::span_of(self.tiny);
            s.mark_byte(s.index_of(self.tiny))
                .store(1, Ordering::Relaxed);
        }
    }

    /// Lets the spans go if a mark ended since the cache last did (they await their sweep);
    /// true when it did. By the cache's owner: its mutator, or the collector holding the
    /// mutator's claim.
    pub fn flush_if_stale(&mut self, heap: &HeapInner) -> bool {
        let sg = heap.sweep.sweepgen.load(Ordering::Acquire);
        if self.flushed.load(Ordering::Relaxed) == sg {
            return false;
        }
        self.flush(heap);
        publish(heap, &mut self.pending);
        self.flushed.store(sg, Ordering::SeqCst);
        true
    }

    /// Lets every current span go (to its pool's partial list, with its `freeindex`, or
    /// to the unswept list if a mark ended while it was held), and forgets the tiny block.
    /// Called by the mutator at a session boundary or when it is dropped, or by the
    /// collector holding the mutator's claim.
    pub fn flush(&mut self, heap: &HeapInner) {
        for e in self.table.iter_mut() {
            if e.span.is_null() {
                continue;
            }
            // SAFETY: the entry's span is held by this cache.
            let s = unsafe { &*e.span };
            // SAFETY: as above.
            let o = unsafe { s.owned() };
            let untaken = e.bits | core::mem::take(&mut e.deferred);
            let left = untaken.count_ones() as isize;
            self.pending.objects -= left;
            self.pending.bytes -= left * s.elemsize as isize;
            if e.premarked {
                s.unmark(e.word, untaken);
            }
            o.freeindex = (e.word * 64 + untaken.trailing_zeros() as usize).min(s.nelems);
            // SAFETY: pools live as long as the heap.
            unsafe { (*e.pool).lists.lock() }.put(e.span, false, &heap.sweep.sweepgen);
            e.span = ptr::null_mut();
            e.bits = 0;
            e.premarked = false;
        }
        self.tiny = 0;
        self.tiny_off = 0;
    }
}

/// The pool of (`ty`, `class`), created on first use.
pub(crate) fn pool(h: &HeapInner, ty: &'static GcType, class: usize) -> *const TypePool {
    let mut p = h.pools.lock();
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
pub(crate) fn pool_list(h: &HeapInner) -> Vec<*const TypePool> {
    h.pools.lock().list.clone()
}

/// Publishes a mutator's pending counters and checks the trigger.
pub(crate) fn publish(h: &HeapInner, p: &mut Pending) {
    if p.bytes != 0 {
        let b = p.bytes;
        let live = if b >= 0 {
            h.counters.live.fetch_add(b as usize, Ordering::Relaxed) + b as usize
        } else {
            // Saturating: mark termination resets the count while mutators still hold
            // windows counted before it, whose untaken rest they give back after.
            let n = (-b) as usize;
            let old = h
                .counters
                .live
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| {
                    Some(x.saturating_sub(n))
                })
                .unwrap_or(0);
            old.saturating_sub(n)
        };
        if b > 0 {
            h.counters
                .total_alloc
                .fetch_add(b as usize, Ordering::Relaxed);
        } else {
            h.counters
                .total_alloc
                .fetch_sub((-b) as usize, Ordering::Relaxed);
        }
        if live + h.other_bytes() >= h.pacer.trigger() {
            h.request_gc();
        }
    }
    if p.objects > 0 {
        h.counters
            .mallocs
            .fetch_add(p.objects as usize, Ordering::Relaxed);
    } else if p.objects < 0 {
        h.counters
            .mallocs
            .fetch_sub((-p.objects) as usize, Ordering::Relaxed);
    }
    *p = Pending::default();
}

/// A span with free slots for `pool`, now held by the caller; null when out of memory.
///
/// Budget (once per span, about 500 small objects): the heap counters' three relaxed
/// `fetch_add`s, one acquisition of the pool's lock (two if it swept), a sweep token's two
/// locked operations if it swept; a new span's pages and struct come from `source` without
/// a shared lock except once per 64 pages and once per 16 structs.
/// `full`, if not null, is the span the cache just let go (full): it goes back to its list
/// in the same acquisition of the pool's lock that takes the next span.
fn acquire_span(
    h: &HeapInner,
    pool: &TypePool,
    pending: &mut Pending,
    source: &mut SpanSource,
    mark_share: &mut MarkShare,
    full: *mut GcSpan,
) -> *mut GcSpan {
    publish(h, pending);
    // In the goal's terms: the heap's objects plus the memory counted beside them
    // (pacer.rs essay); the mark and sweep schedules start from the same measure.
    let live = h.in_use_for_goal();
    let marking = h.barrier.marking();
    // The background mark's share first (fractional.rs), when the mutators carry it: what
    // it marks is credit the assist below then does not owe.
    if marking {
        mark_share.at_refill(h);
    }
    // The GC CPU limiter (pacer.rs) turns assists off while the collector takes more
    // than half of the CPU.
    if marking && !h.pacer.limiter.on() {
        let marked = h.barrier.marked.load(Ordering::Relaxed);
        let debt = h.pacer.assist_debt(live, marked);
        if debt > 0 {
            let _pause = h.mutators.pauses.timer(PauseCause::Assist);
            super::mark::assist(&h.barrier, debt);
        }
    }
    let sweep_ok = pool.ty.drop.is_none();
    // Proportional sweep (Go's `deductSweepCredit`): while the sweep is behind its schedule
    // (`Sweeper::behind`: done by the time the heap reaches the next trigger), a mutator
    // about to take a span first sweeps up to `SWEEP_AHEAD` spans of its pool, so that
    // sweeping keeps up with allocation where the background sweeper gets too little of
    // the CPU, and the next cycle's sweep termination does not sweep the whole heap while
    // the program allocates on.
    let mut ahead = if sweep_ok {
        h.sweep.behind(live, h.pacer.trigger()).min(SWEEP_AHEAD)
    } else {
        0
    };
    let mut full = full;
    loop {
        // Taken before any span leaves `unswept` (sweep.rs: sweep termination empties the
        // lists, then waits for the tokens).
        let token = sweep_ok.then(|| h.sweep.begin());
        let mut batch = [ptr::null_mut(); SWEEP_AHEAD];
        let mut n = 0;
        let mut got = ptr::null_mut();
        {
            // One acquisition: the span the cache let go, a swept span with room, and the
            // spans to sweep.
            let mut l = pool.lists.lock();
            if !full.is_null() {
                l.put(full, true, &h.sweep.sweepgen);
                full = ptr::null_mut();
            }
            while let Some(s) = l.partial.pop() {
                // Between a mark termination's generation bump and its moving the stale
                // spans to `unswept`, `partial` still holds spans that await their sweep:
                // such a span goes where it belongs instead of into a cache, where it would
                // outlive the next sweep termination (which flushes only caches filled
                // before the bump) and be swept during the next mark.
                if stale(s, &h.sweep.sweepgen) {
                    l.unswept.push(s);
                    continue;
                }
                got = s;
                break;
            }
            // Sweep lazily (Go's proportional sweep, simplified: until a span has room).
            // Spans of types with destructors are left to the background sweeper, so that
            // no destructor runs inside an allocation.
            let want = if sweep_ok && got.is_null() {
                ahead.max(1)
            } else {
                ahead
            };
            while n < want {
                let Some(s) = l.unswept.pop() else { break };
                batch[n] = s;
                n += 1;
            }
        }
        if n > 0 {
            // Sweeping for the collector is time the mutator is held up by it.
            let _pause = h.mutators.pauses.timer(PauseCause::Sweep);
            // SAFETY: taken off the unswept list, so we hold them; the mark that set their
            // bits is over (spans reach `unswept` only after their mark's termination), and
            // the token keeps the next mark from starting before we are done.
            got = unsafe { sweep_batch(h, pool, &batch[..n], got.is_null()) }.unwrap_or(got);
        }
        drop(token);
        if !got.is_null() {
            return got;
        }
        if n == 0 {
            // Nothing swept has room and nothing is left to sweep.
            return new_small_span(h, pool, source);
        }
        // Every span swept was full: sweep on.
        ahead = 0;
    }
}

/// Spans the background sweeper and sweep termination take off an unswept list in one
/// acquisition of its pool's lock (and give back in one, with the empty ones' pages in
/// one acquisition of the page heap's).
pub(crate) const SWEEP_BATCH: usize = 32;

/// Sweeps `batch` (taken off `pool`'s unswept list by the caller) for the current sweep
/// generation. Spans that keep live objects go back to the pool's lists in one acquisition
/// of its lock, empty ones to the page heap in one acquisition of its lock, except that
/// when `keep` is set the first span with room (a partial or an empty one) is the
/// caller's instead, returned.
///
/// # Safety
/// The caller took every span of `batch` off the unswept list of `pool` (so it holds them),
/// their mark is over, and it holds a [`super::sweep::SweepToken`] until this returns.
pub(crate) unsafe fn sweep_batch(
    h: &HeapInner,
    pool: &TypePool,
    batch: &[*mut GcSpan],
    keep: bool,
) -> Option<*mut GcSpan> {
    debug_assert!(batch.len() <= SWEEP_BATCH);
    // Read after the spans were taken: a sweep is for the generation current when its span
    // left the list (the token keeps the next mark, and so the next bump, away).
    let sg = h.sweep.sweepgen.load(Ordering::Acquire);
    let mut kept = None;
    let mut back = [(ptr::null_mut(), false); SWEEP_BATCH];
    let mut nback = 0;
    let mut empty = [ptr::null_mut(); SWEEP_BATCH];
    let mut nempty = 0;
    for &s in batch {
        let mut count = SweepCount::default();
        // SAFETY: the caller's contract.
        let r = unsafe { sweep_span(&*s, sg, &mut count) };
        // Counted before the token goes (sweep.rs).
        count_swept(h, &count);
        match r {
            Swept::Full => {
                back[nback] = (s, true);
                nback += 1;
            }
            _ if keep && kept.is_none() => kept = Some(s),
            Swept::Partial => {
                back[nback] = (s, false);
                nback += 1;
            }
            Swept::Empty => {
                empty[nempty] = s;
                nempty += 1;
            }
        }
    }
    if nback > 0 {
        let mut l = pool.lists.lock();
        for &(s, full) in &back[..nback] {
            l.put(s, full, &h.sweep.sweepgen);
        }
    }
    // SAFETY: swept empty (no live object), and we hold them.
    unsafe { free_small_spans(h, &empty[..nempty]) };
    kept
}

/// Spans of fewer pages than this come from the mutator's page cache (Go's rule: a
/// quarter of the 64-page window).
const PAGE_CACHE_MAX: usize = 16;

/// A fresh span for `pool` from the mutator's `source`: its pages from the page cache when
/// the span is small enough (refilling the cache, 64 pages at once, under the page heap's
/// lock when it has no room), else from the page heap; its struct from the stash.
fn new_small_span(h: &HeapInner, pool: &TypePool, source: &mut SpanSource) -> *mut GcSpan {
    let pc = &mut source.pages;
    let pages = if pool.npages < PAGE_CACHE_MAX {
        let mut pages = pc.alloc(pool.npages).map(|(base, _scav)| base);
        if pages.is_none() {
            let mut heap = pageheap::lock();
            if heap.refill_page_cache(pc) {
                pages = pc.alloc(pool.npages).map(|(base, _scav)| base);
            }
            if pages.is_none() {
                pages = heap.alloc_pages(pool.npages).map(|(base, _zeroed)| base);
            }
        }
        pages
    } else {
        pageheap::lock()
            .alloc_pages(pool.npages)
            .map(|(base, _zeroed)| base)
    };
    let Some(base) = pages else {
        return ptr::null_mut();
    };
    let s = span::new_span(
        Some(&mut source.structs),
        base,
        pool.npages,
        pool.elemsize,
        pool.nelems,
        pool.div_magic,
        pool.span_ty(),
        false,
        h.sweep.sweepgen.load(Ordering::Acquire),
        &h.barrier,
    );
    if s.is_null() {
        pageheap::lock().pages.free(base, pool.npages);
        return s;
    }
    h.counters
        .span_bytes
        .fetch_add(pool.npages * PAGE_SIZE, Ordering::Relaxed);
    pageheap::add_inuse(pool.npages * PAGE_SIZE);
    super::pacer::note_gc_pages(pool.npages * PAGE_SIZE, 0);
    s
}

/// A large object of `size` bytes of type `ty` for the mutator with cache `local`: its
/// address, or 0 when out of memory.
pub(crate) fn alloc_large(
    h: &HeapInner,
    ty: &'static GcType,
    size: usize,
    local: &mut Local,
) -> usize {
    debug_assert!(size > MAX_SMALL_SIZE);
    // As a refill does: a session that allocates only large objects lets its stale spans
    // go too (found by review).
    if local.flush_if_stale(h) {
        h.mutators.stale_flushed(&local.watched);
    }
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
        Some(&mut local.source.structs),
        base,
        npages,
        bytes,
        1,
        1,
        ty,
        true,
        h.sweep.sweepgen.load(Ordering::Acquire),
        &h.barrier,
    );
    if s.is_null() {
        free_large_pages(base, npages);
        return 0;
    }
    // SAFETY: fresh span, ours.
    if local.allocates_black(h, unsafe { &*s }) {
        // SAFETY: as above.
        unsafe { (*s).mark_byte(0).store(1, Ordering::Relaxed) };
    }
    // SAFETY: fresh span, ours: its one object is handed out now.
    unsafe { (*s).owned().freeindex = 1 };
    if crate::profile::sampling() && crate::profile::gc::take_sample(size) {
        // SAFETY: as above.
        crate::profile::gc::record(base, size, unsafe { &*s });
    }
    h.large.lock().put(s, &h.sweep.sweepgen);
    h.counters.span_bytes.fetch_add(bytes, Ordering::Relaxed);
    if npages <= ARENA_PAGES {
        pageheap::add_inuse(bytes);
        super::pacer::note_gc_pages(bytes, 0);
    } else {
        h.counters.huge_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    let mut p = Pending {
        bytes: bytes as isize,
        objects: 1,
    };
    publish(h, &mut p);
    base
}

/// Adds what a sweep freed to the heap's counters.
pub(crate) fn count_swept(h: &HeapInner, c: &SweepCount) {
    h.sweep.note_swept();
    if c.freed > 0 {
        h.counters.frees.fetch_add(c.freed, Ordering::Relaxed);
        h.counters
            .freed_bytes
            .fetch_add(c.freed_bytes, Ordering::Relaxed);
    }
}

/// Returns an empty span's pages to the page heap and recycles its struct.
///
/// # Safety
/// The caller holds `s`, which has no live object.
pub(crate) unsafe fn free_span(h: &HeapInner, s: *mut GcSpan) {
    // SAFETY: caller's contract.
    let (base, npages, large) = unsafe { ((*s).base, (*s).npages, (*s).large) };
    // SAFETY: caller's contract: empty, so nothing points into it.
    unsafe { retire_span(s) };
    h.counters
        .span_bytes
        .fetch_sub(npages * PAGE_SIZE, Ordering::Relaxed);
    if !large || npages <= ARENA_PAGES {
        pageheap::COUNTERS
            .inuse
            .fetch_sub(npages * PAGE_SIZE, Ordering::Relaxed);
        super::pacer::note_gc_pages(0, npages * PAGE_SIZE);
    } else {
        h.counters
            .huge_bytes
            .fetch_sub(npages * PAGE_SIZE, Ordering::Relaxed);
    }
    free_large_pages(base, npages);
}

/// [`free_span`] for several small spans at once (a batch a sweep left empty): one
/// acquisition of the span-struct pool's lock and one of the page heap's for all of them,
/// instead of two per span.
///
/// # Safety
/// As for [`free_span`], for every span of `spans`; none is large; at most `SWEEP_BATCH`.
pub(crate) unsafe fn free_small_spans(h: &HeapInner, spans: &[*mut GcSpan]) {
    if spans.is_empty() {
        return;
    }
    debug_assert!(spans.len() <= SWEEP_BATCH);
    let mut runs = [(0usize, 0usize); SWEEP_BATCH];
    let mut bytes = 0;
    for (run, &s) in runs.iter_mut().zip(spans) {
        // SAFETY: caller's contract: we hold `s`.
        let (base, npages, large) = unsafe { ((*s).base, (*s).npages, (*s).large) };
        debug_assert!(!large);
        *run = (base, npages);
        bytes += npages * PAGE_SIZE;
    }
    // SAFETY: caller's contract: empty, so nothing points into them.
    unsafe { span::retire_spans(spans) };
    h.counters.span_bytes.fetch_sub(bytes, Ordering::Relaxed);
    pageheap::COUNTERS.inuse.fetch_sub(bytes, Ordering::Relaxed);
    super::pacer::note_gc_pages(0, bytes);
    let mut heap = pageheap::lock();
    for &(base, npages) in &runs[..spans.len()] {
        heap.pages.free(base, npages);
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

/// Heap-wide byte and object counts. Atomic; written by mutators and sweepers.
#[derive(Default)]
pub(crate) struct Counters {
    /// Bytes of objects possibly live: marked at the last cycle plus taken since (Go's
    /// heapLive). Drives the trigger.
    pub live: AtomicUsize,
    pub total_alloc: AtomicUsize,
    pub mallocs: AtomicUsize,
    pub frees: AtomicUsize,
    pub freed_bytes: AtomicUsize,
    /// Bytes of pages in the heap's spans (huge objects included).
    pub span_bytes: AtomicUsize,
    /// Bytes of huge objects (over 64 MiB, mapped outside the page heap).
    pub huge_bytes: AtomicUsize,
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

impl LargeLists {
    /// As [`PoolLists::put`], for a large span: `unswept` if stale, else `live`.
    pub fn put(&mut self, s: *mut GcSpan, sweepgen: &core::sync::atomic::AtomicU32) {
        if stale(s, sweepgen) {
            self.unswept.push(s);
        } else {
            self.live.push(s);
        }
    }
}
