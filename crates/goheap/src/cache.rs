//! Per-thread caches (Go's mcache).
//!
//! Every thread that allocates gets a [`Cache`]: for each size class one *current* span to
//! allocate from, plus the other spans the thread owns for that class:
//!
//! - `partial`: spans with free objects, waiting to become current;
//! - `full`: spans that ran out of free objects. Going there costs nothing: other threads'
//!   frees into them just accumulate in their remote bitmaps;
//! - `parked`: full spans parked (see [`crate::span`]): the first remote free pushes one onto
//!   `reclaim`. A cache parks its `full` spans only when it is about to take a span from
//!   central or the heap, after checking them for remote frees, so a thread that finds
//!   enough free objects among its own spans never pays for parking (a sequentially
//!   consistent store), and a thread that grows its heap first reuses what others freed.
//!
//! Full and parked spans go back to `partial` once more than 1/8 of their objects are free
//! again through this thread's frees, or when they are found (or pushed home) with remote
//! frees.
//!
//! Go's mcache holds only the current span, because in Go nothing frees an object except
//! the sweeper. Here programs free explicitly, and a span that filled up is usually freed into
//! by the thread that filled it (binary-trees frees every tree it builds), so the thread keeps
//! owning its full spans and those frees stay plain stores. Spans go to the central lists
//! when a thread exits, and empty spans beyond a small budget go back to the page heap.
//!
//! # Fast paths
//!
//! Allocation: thread-local load of the cache, load of `current[class]`, then the span's
//! window (`alloc_cache`, count-trailing-zeros). No lock, no atomic read-modify-write.
//! Free by the owner: look up the span, compute the index with a multiply, set a bit. A free
//! by any other thread: one `fetch_or` on the span's remote bitmap.
//!
//! # Lifecycle
//!
//! Caches come from OS memory, are never freed and are recycled through a pool, so a cache's
//! address (used as the span owner id and as the home of parked spans) stays valid memory
//! forever. A thread gets its cache on its first allocation and registers a pthread key
//! destructor that hands everything back when the thread exits ([`Cache::retire`]). A thread
//! without a cache (its cache is being created, or it has already been retired) uses the
//! shared fallback cache under a lock.
//!
//! A retiring cache may have parked spans that a remote freer has already claimed but not
//! yet pushed onto the cache's reclaim stack (the freer is between its CAS and its push).
//! The cache cannot go back to the pool before they arrive, or the push would land in the
//! next thread's cache; so `retire` counts them and sleeps in the kernel on the stack
//! ([`SpanStack::wait_nonempty`]) until each has come, woken by the push itself. Apart from
//! its futex locks, that is the only place the allocator core waits for another thread, and
//! it neither spins nor yields; the interleavings are argued in `span`'s essay ("Waiting for a span in flight") and
//! modelled in `tests/loom.rs`.

use core::cell::{Cell, UnsafeCell};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use crate::lock::{Mutex, MutexGuard};

use crate::central::CENTRAL;
use crate::counters::ClassCounters;
use crate::heap::{self, SampleRuns, SpanStash};
use crate::os;
use crate::pagealloc::PageCache;
use crate::report;
use crate::sizeclass::NUM_CLASSES;
use crate::span::{next_in_stack, ListTag, Span, SpanList, SpanStack};

/// Empty spans a cache keeps for reuse before it returns them to the page heap, in pages
/// (512 KiB). Enough that a program freeing and rebuilding a structure does not trade spans
/// with the page heap on every cycle, small enough that idle threads hold little.
const EMPTY_BUDGET_PAGES: usize = 64;

#[inline(always)]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// A thread's allocation cache. See the module essay.
pub struct Cache {
    /// Current span per class; `sentinel()` when none. Owner-written, relaxed atomics so that
    /// statistics can peek at the windows.
    current: [AtomicPtr<Span>; NUM_CLASSES],
    partial: [SpanList; NUM_CLASSES],
    full: [SpanList; NUM_CLASSES],
    parked: [SpanList; NUM_CLASSES],
    /// Parked spans of ours that another thread freed into.
    reclaim: SpanStack,
    /// Pages of empty spans kept on partial lists.
    empty_pages: Cell<usize>,
    page_cache: UnsafeCell<PageCache>,
    stash: UnsafeCell<SpanStash>,
    /// Runs kept from freed heap-profile samples for the next ones (owner only).
    sample_runs: UnsafeCell<SampleRuns>,
    /// This thread's allocation and free counts per class (read by `stats::read`).
    pub counters: ClassCounters,
    /// Next cache in the registry of all caches ever made (immutable once linked).
    all_next: AtomicPtr<Cache>,
    /// Next cache in the pool of free caches (guarded by the pool lock).
    pool_next: Cell<*mut Cache>,
    /// True while a thread (or the fallback) uses the cache.
    pub live: AtomicBool,
    /// Heap profiling (`crate::profile`), owner-written. Bytes to allocate before the next
    /// sample: positive once drawn (`SAMPLE_UNDRAWN`, zero, until the first draw, so that
    /// the refill's one subtract-and-compare sends the first window to the slow path).
    sample_left: Cell<i64>,
    /// State of the sampling intervals' random generator.
    sample_rng: Cell<u64>,
    /// Classes whose next refill is a sampled allocation (bit per class).
    sample_due: Cell<u128>,
    /// True while this thread captures or records a sample: an allocation made meanwhile
    /// (by the unwinder, say) is not sampled. Always true for the fallback cache (shared under
    /// a lock, never sampled: [`FallbackCache::get`] sets it).
    sample_busy: Cell<bool>,
}

/// `Cache::sample_left` before its first draw.
const SAMPLE_UNDRAWN: i64 = 0;

// SAFETY: everything but the atomics is touched only by the thread that owns the cache (or,
// for the fallback cache, by whoever holds its lock); ownership passes through the pool lock.
unsafe impl Sync for Cache {}

/// Registry of every cache (for statistics), and the pool of free ones.
static ALL_CACHES: AtomicPtr<Cache> = AtomicPtr::new(ptr::null_mut());
pub(crate) static POOL: Mutex<PoolHead> = Mutex::new(PoolHead(ptr::null_mut()));
pub(crate) struct PoolHead(*mut Cache);
// SAFETY: caches are plain OS memory, handed around under the pool lock.
unsafe impl Send for PoolHead {}

/// A span with no free objects, the `current` of every class that has none: the fast path
/// then needs no null check. All zero: no window, no free object (`nfree` is `attention -
/// credit` = 0), never owned, never mapped, never written.
pub(crate) static SENTINEL: Span = {
    // SAFETY: every field of `Span` (integers, `Cell`s and atomics of integers and raw
    // pointers, `bool`s, `ListTag::None` = 0, the remote bitmap) is valid all zero.
    unsafe { core::mem::zeroed() }
};

#[inline(always)]
fn sentinel() -> *mut Span {
    &SENTINEL as *const Span as *mut Span
}

fn pool_lock() -> MutexGuard<'static, PoolHead> {
    POOL.lock()
}

impl Cache {
    /// Takes a cache from the pool, or makes one from OS memory. Null if out of memory.
    pub(crate) fn acquire() -> *mut Cache {
        crate::cpu::detect_cpu();
        let mut pool = pool_lock();
        let c = pool.0;
        let c = if !c.is_null() {
            // SAFETY: pooled caches are valid and unused; the lock makes them ours.
            pool.0 = unsafe { (*c).pool_next.get() };
            c
        } else {
            let size = core::mem::size_of::<Cache>().next_multiple_of(os::OS_PAGE_SIZE);
            let c = os::reserve(size, os::OS_PAGE_SIZE) as *mut Cache;
            if c.is_null() {
                return ptr::null_mut();
            }
            // SAFETY: fresh OS memory of the right size and alignment.
            unsafe { c.write(Cache::new()) };
            // Link into the registry (push; never unlinked).
            let mut head = ALL_CACHES.load(Ordering::Relaxed);
            loop {
                // SAFETY: `c` is ours until published by the CAS below.
                unsafe { (*c).all_next.store(head, Ordering::Relaxed) };
                match ALL_CACHES.compare_exchange_weak(
                    head,
                    c,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(h) => head = h,
                }
            }
            c
        };
        drop(pool);
        // SAFETY: `c` is ours now.
        unsafe {
            for cur in &(*c).current {
                cur.store(sentinel(), Ordering::Relaxed);
            }
            (*c).sample_left.set(SAMPLE_UNDRAWN);
            (*c).sample_rng.set(c as u64 ^ crate::profile::seed());
            (*c).sample_due.set(0);
            (*c).live.store(true, Ordering::Release);
        }
        c
    }

    /// Retires the cache of an exiting thread ([`Cache::retire`]) and returns it to the pool.
    ///
    /// # Safety
    /// `c` is a live cache that nothing else uses, and no thread slot holds it any more.
    pub(crate) unsafe fn retire_to_pool(c: *mut Cache) {
        // SAFETY: caller's contract.
        unsafe {
            (*c).retire();
            (*c).live.store(false, Ordering::Release);
        }
        let mut pool = pool_lock();
        // SAFETY: the cache is retired; the pool lock makes the pool ours.
        unsafe { (*c).pool_next.set(pool.0) };
        pool.0 = c;
    }

    fn new() -> Cache {
        Cache {
            current: [const { AtomicPtr::new(ptr::null_mut()) }; NUM_CLASSES],
            partial: [const { SpanList::new() }; NUM_CLASSES],
            full: [const { SpanList::new() }; NUM_CLASSES],
            parked: [const { SpanList::new() }; NUM_CLASSES],
            reclaim: SpanStack::new(),
            empty_pages: Cell::new(0),
            page_cache: UnsafeCell::new(PageCache::EMPTY),
            stash: UnsafeCell::new(SpanStash::new()),
            sample_runs: UnsafeCell::new(SampleRuns::new()),
            counters: ClassCounters {
                nmalloc: [const { AtomicU64::new(0) }; NUM_CLASSES],
                nfree: [const { AtomicU64::new(0) }; NUM_CLASSES],
            },
            all_next: AtomicPtr::new(ptr::null_mut()),
            pool_next: Cell::new(ptr::null_mut()),
            live: AtomicBool::new(false),
            sample_left: Cell::new(SAMPLE_UNDRAWN),
            sample_rng: Cell::new(0),
            sample_due: Cell::new(0),
            sample_busy: Cell::new(false),
        }
    }

    #[inline(always)]
    fn id(&self) -> usize {
        self as *const Cache as usize
    }

    /// Allocation fast path for class `class`.
    ///
    /// # Safety
    /// The caller owns the cache (it is this thread's, or the fallback under its lock).
    #[inline(always)]
    pub unsafe fn alloc(&self, class: usize) -> *mut u8 {
        debug_assert!(class < NUM_CLASSES);
        // SAFETY: callers pass a class from the size-class table (`class < NUM_CLASSES`).
        // `current` always points at a span this cache owns, or at the sentinel, which nobody
        // owns and whose window is always empty.
        let p = unsafe {
            let s = self.current.get_unchecked(class).load(Ordering::Relaxed);
            (*s).alloc_from_window()
        };
        if !p.is_null() {
            return p;
        }
        // SAFETY: caller's contract.
        unsafe { self.refill(class) }
    }

    /// [`Cache::alloc`] without its slow path: an object from the current span's window of
    /// `class`, or null when the window is empty (then [`Cache::alloc`] refills it). For
    /// callers that keep their slow path out of line themselves (the malloc face).
    ///
    /// # Safety
    /// As for [`Cache::alloc`].
    #[inline(always)]
    pub unsafe fn alloc_from_window(&self, class: usize) -> *mut u8 {
        debug_assert!(class < NUM_CLASSES);
        // SAFETY: as in `alloc`.
        unsafe {
            let s = self.current.get_unchecked(class).load(Ordering::Relaxed);
            (*s).alloc_from_window()
        }
    }

    /// Slow path of [`Cache::alloc`]: the current span's window of `class` is empty. Loads
    /// the current span's next word of free objects into the window (the common case, kept
    /// short: no stack frame to speak of), else goes to [`Cache::refill_span`]. Null only
    /// when out of memory.
    ///
    /// # Safety
    /// As for [`Cache::alloc`], and the current window of `class` is empty.
    #[cold]
    #[inline(never)]
    pub unsafe extern "C" fn refill(&self, class: usize) -> *mut u8 {
        // Heap profiling samples at window granularity, so the fast paths never see it:
        // here it costs one load and a branch per window (budget: 2 instructions).
        if crate::profile::sampling() {
            // SAFETY: caller's contract.
            return unsafe { self.refill_sampled(class) };
        }
        // SAFETY: caller's contract.
        unsafe { self.refill_plain(class) }
    }

    /// [`Cache::refill`] without sampling.
    ///
    /// # Safety
    /// As for [`Cache::refill`].
    #[inline(always)]
    unsafe fn refill_plain(&self, class: usize) -> *mut u8 {
        // SAFETY: `class < NUM_CLASSES` (caller). The cache owns `cur`, or `cur` is the
        // sentinel, whose `nfree` is 0, so `refill_window` returns at once, writing nothing.
        unsafe {
            let cur = self.current.get_unchecked(class).load(Ordering::Relaxed);
            match (*cur).refill_window_alloc() {
                Ok((n, p)) if !p.is_null() => {
                    bump(self.counters.nmalloc.get_unchecked(class), n as u64);
                    p
                }
                // No local free object left, or a double free found (`refill_span` finds it
                // again, collecting `cur`'s remote frees, and reports it): a jump, so this
                // path keeps no stack frame.
                _ => self.refill_span(class, cur),
            }
        }
    }

    /// The current span `cur` of `class` has no local free object left: collect remote
    /// frees into it, or make another span current.
    #[inline(never)]
    unsafe extern "C" fn refill_span(&self, class: usize, cur: *mut Span) -> *mut u8 {
        // SAFETY: (whole body) the cache owns `cur` and the spans on its lists; spans taken
        // from central or the heap become ours before we touch their owner fields.
        unsafe {
            if cur != sentinel() {
                // Out of local frees: collect what other threads freed.
                self.collect(cur);
                if let Some(p) = self.alloc_after_refill(cur, class) {
                    return p;
                }
                self.current[class].store(sentinel(), Ordering::Relaxed);
                self.retire_full(cur, class);
            }
            let mut grew = false;
            loop {
                let mut s = self.partial[class].pop();
                if s.is_null() && !self.reclaim.is_empty() {
                    self.drain_reclaim();
                    s = self.partial[class].pop();
                }
                if s.is_null() && !self.full[class].is_empty() && self.park_full(class) {
                    continue;
                }
                if s.is_null() {
                    s = CENTRAL[class].take(self.id());
                }
                if s.is_null() {
                    grew = true;
                    s = heap::new_small_span(
                        class,
                        self.id(),
                        &mut *self.page_cache.get(),
                        &mut *self.stash.get(),
                    );
                    if s.is_null() {
                        return ptr::null_mut();
                    }
                }
                if (*s).counted_empty.get() {
                    (*s).counted_empty.set(false);
                    self.empty_pages.set(self.empty_pages.get() - (*s).npages());
                }
                self.collect(s);
                self.current[class].store(s, Ordering::Relaxed);
                if let Some(p) = self.alloc_after_refill(s, class) {
                    if grew {
                        // Safe to re-enter the allocator here: the cache is consistent again.
                        crate::scavenger::ensure_started();
                    }
                    return p;
                }
                // Nothing free after all (a collected double free was refused): park it.
                self.current[class].store(sentinel(), Ordering::Relaxed);
                self.retire_full(s, class);
            }
        }
    }

    /// [`Cache::refill`] while heap profiling samples (module essay of `crate::profile`).
    ///
    /// Sampling is Go's: Poisson by bytes, an exponential interval of mean
    /// `profile::rate()` bytes between samples. The fast path cannot count bytes, so the
    /// intervals are consumed a window at a time: when a window is loaded, its objects are
    /// counted against the interval, and if the sample point falls on its `k`-th object,
    /// the window keeps only the `k - 1` before it and gives the rest back to the span;
    /// the class is marked due, and the allocation that finds the window empty next, the
    /// `k`-th, comes here and is the sample. The bytes are thus counted in a different
    /// order than they are allocated, which a Poisson process does not mind (it has no
    /// memory), as long as each byte is counted once and each sample point taken once. A
    /// sampled object gets pages of its own (as jemalloc promotes its samples), so that its
    /// free reaches the large-object path and the profiler, while the small-object free path
    /// stays as it is.
    ///
    /// Budget: the common case, this class not due and no sample point in the new window,
    /// is the plain refill plus one load and test of this class's bit of `sample_due` and
    /// one multiply, subtract and compare against `sample_left` (the window's object count
    /// comes with the refill), with no stack frame beyond the plain refill's. (Another class
    /// being due changes nothing here: in a program that rarely allocates that class's size,
    /// its bit may stay set for long, and testing the whole word sent every refill of every
    /// class to the slow path meanwhile.) Everything else (this class due, the sample point
    /// inside the window, the first draw, the fallback cache, allocations made while a
    /// sample is taken) is [`Cache::refill_sampled_slow`].
    ///
    /// # Safety
    /// As for [`Cache::refill`].
    #[cold]
    #[inline(never)]
    unsafe fn refill_sampled(&self, class: usize) -> *mut u8 {
        if self.sample_due.get() & 1u128 << class != 0 {
            // SAFETY: caller's contract.
            return unsafe { self.refill_sampled_slow(class, false, ptr::null_mut()) };
        }
        // SAFETY: as in `refill_plain`.
        unsafe {
            let cur = self.current.get_unchecked(class).load(Ordering::Relaxed);
            match (*cur).refill_window_alloc() {
                Ok((n, p)) if !p.is_null() => {
                    bump(self.counters.nmalloc.get_unchecked(class), n as u64);
                    let size = crate::sizeclass::CLASSES.get_unchecked(class).size as i64;
                    // `n` counts `p` and the rest of the window; `sample_left` is at most
                    // an interval (far below 2^62) and `n * size` at most a span's bytes.
                    let left = self.sample_left.get() - n as i64 * size;
                    if left > 0 {
                        self.sample_left.set(left);
                        return p;
                    }
                    self.refill_sampled_slow(class, true, p)
                }
                _ => self.refill_sampled_slow(class, false, ptr::null_mut()),
            }
        }
    }

    /// The rest of [`Cache::refill_sampled`]. If `refilled`, the plain refill was done
    /// already, gave `p`, and counted nothing against the interval; else it is done here.
    ///
    /// # Safety
    /// As for [`Cache::refill`]; if `refilled`, `p` is the first object of the current
    /// window of `class`, just taken.
    #[cold]
    #[inline(never)]
    unsafe fn refill_sampled_slow(&self, class: usize, refilled: bool, p: *mut u8) -> *mut u8 {
        // The fallback cache (shared under a lock) and allocations made while a sample is
        // taken are not sampled.
        if self.sample_busy.get() {
            if refilled {
                return p;
            }
            // SAFETY: caller's contract.
            return unsafe { self.refill_plain(class) };
        }
        let size = crate::sizeclass::CLASSES[class].size as i64;
        let bit = 1u128 << class;
        if !refilled && self.sample_due.get() & bit != 0 {
            // The interval after this sample was drawn when it was placed.
            self.sample_due.set(self.sample_due.get() & !bit);
            let q = self.alloc_sample(size as usize, 8, false);
            if !q.is_null() {
                return q;
            }
            // Out of pages for the sample: serve it unsampled.
            // SAFETY: caller's contract.
            return unsafe { self.refill_plain(class) };
        }
        let p = if refilled {
            p
        } else {
            // SAFETY: caller's contract.
            unsafe { self.refill_plain(class) }
        };
        if p.is_null() {
            return p;
        }
        let mut left = self.sample_left.get();
        if left == SAMPLE_UNDRAWN {
            left = crate::profile::next_interval(&self.sample_rng);
        }
        left -= size;
        if left > 0 {
            self.sample_left.set(left);
            // SAFETY: we own the current span of `class`.
            unsafe { self.examine_window(class, size) };
            return p;
        }
        // This very allocation is the sample: give its slot back and promote it.
        self.sample_left
            .set(crate::profile::next_interval(&self.sample_rng));
        // SAFETY: `p` was just taken from our current span of `class`.
        unsafe { self.examine_window(class, size) };
        let q = self.alloc_sample(size as usize, 8, false);
        if q.is_null() {
            return p;
        }
        // SAFETY: `p` is an object of a span we own that nobody else has seen.
        unsafe {
            let s = heap::span_of(p as usize);
            let (idx, _) = (*s).object_index(p as usize);
            self.free_local(s, idx, p as usize);
        }
        q
    }

    /// Counts the objects left in the current window of `class` (of `size` bytes each)
    /// against the sampling interval; if the next sample falls among them, cuts the window
    /// short before it and marks the class due.
    ///
    /// # Safety
    /// The cache is this thread's.
    unsafe fn examine_window(&self, class: usize, size: i64) {
        // SAFETY: `current` is a span we own or the sentinel (empty window).
        unsafe {
            let s = self.current[class].load(Ordering::Relaxed);
            let m = (*s).alloc_cache.load(Ordering::Relaxed).count_ones() as i64;
            let left = self.sample_left.get();
            if left > m * size {
                self.sample_left.set(left - m * size);
                return;
            }
            // The sample point is the `k`-th object (1 <= k <= m).
            let k = (left + size - 1) / size;
            let back = (*s).return_window_above((k - 1) as u32);
            bump(
                self.counters.nmalloc.get_unchecked(class),
                (back as u64).wrapping_neg(),
            );
            // Everything allocated from now on, by any class or a large object, counts
            // towards the next sample, drawn now: had the rest of this interval been left
            // in `sample_left`, another allocation could take the same sample point first,
            // and sizes allocated beside a due class would be oversampled.
            self.sample_left
                .set(crate::profile::next_interval(&self.sample_rng));
            self.sample_due.set(self.sample_due.get() | 1u128 << class);
        }
    }

    /// Whether an allocation of `size` bytes outside the windows (a large object) is a
    /// sample; counts it against the interval either way.
    pub fn take_sample(&self, size: usize) -> bool {
        if self.sample_busy.get() {
            return false;
        }
        let mut left = self.sample_left.get();
        if left == SAMPLE_UNDRAWN {
            left = crate::profile::next_interval(&self.sample_rng);
        }
        left = left.saturating_sub(size.min(i64::MAX as usize) as i64);
        if left > 0 {
            self.sample_left.set(left);
            return false;
        }
        self.sample_left
            .set(crate::profile::next_interval(&self.sample_rng));
        true
    }

    /// Makes a sampled allocation of `size` bytes aligned to `align` (pages of its own,
    /// zeroed if `zero`) and records it, with allocations made meanwhile left unsampled.
    /// Null if out of memory.
    pub fn alloc_sample(&self, size: usize, align: usize, zero: bool) -> *mut u8 {
        self.sample_busy.set(true);
        // SAFETY: the runs are the owner's, and nothing in `alloc_sampled` frees (the one way
        // to reach them again, through `keep_sample_run`).
        let runs = unsafe { &mut *self.sample_runs.get() };
        let p = crate::profile::alloc_sampled(size, align, zero, runs);
        self.sample_busy.set(false);
        p
    }

    /// Keeps `s` for this thread's next sample ([`crate::profile::keep_run`]).
    ///
    /// # Safety
    /// Called by the owning thread, with `s` as for [`SampleRuns::keep`].
    pub unsafe fn keep_sample_run(&self, s: *mut Span) -> bool {
        // SAFETY: the runs are the owner's; no reference to them is held across a free.
        unsafe { (*self.sample_runs.get()).keep(s) }
    }

    /// Loads `s`'s next window and allocates from it, counting the window as allocated.
    #[inline(always)]
    unsafe fn alloc_after_refill(&self, s: *mut Span, class: usize) -> Option<*mut u8> {
        // SAFETY: the cache owns `s`.
        unsafe {
            let n = match (*s).refill_window() {
                Ok(0) => return None,
                Ok(n) => n,
                Err(idx) => report::double_free((*s).base() + idx * (*s).elemsize()),
            };
            bump(&self.counters.nmalloc[class], n as u64);
            Some((*s).alloc_from_window())
        }
    }

    /// Collects remote frees into `s`, reporting a double free if one is found.
    unsafe fn collect(&self, s: *mut Span) {
        // SAFETY: the cache owns `s`.
        unsafe {
            if let Err(idx) = (*s).collect_remote() {
                report::double_free((*s).base() + idx * (*s).elemsize());
            }
        }
    }

    /// `s` has no free object: put it on the full list.
    unsafe fn retire_full(&self, s: *mut Span, class: usize) {
        // SAFETY: the cache owns `s`, which is on no list.
        unsafe { self.full[class].push(s, ListTag::Full) };
    }

    /// Before taking memory from elsewhere: moves the full spans of `class` that other
    /// threads freed into to the partial list, and parks the rest. True if any span became
    /// partial.
    unsafe fn park_full(&self, class: usize) -> bool {
        let mut found = false;
        loop {
            // SAFETY: (loop body) the cache owns its lists' spans; `self.reclaim` outlives every
            // span parked on it (`retire` waits for in-flight pushes).
            unsafe {
                let s = self.full[class].pop();
                if s.is_null() {
                    return found;
                }
                self.collect(s);
                if (*s).nfree() == 0 && (*s).park(&self.reclaim) {
                    self.parked[class].push(s, ListTag::Parked);
                } else {
                    self.collect(s);
                    self.partial[class].push(s, ListTag::Partial);
                    found = true;
                }
            }
        }
    }

    /// Moves every span that other threads pushed home from the full lists to the partial
    /// lists. Returns how many moved.
    unsafe fn drain_reclaim(&self) -> usize {
        let mut n = 0;
        let mut s = self.reclaim.take_all();
        while !s.is_null() {
            // SAFETY: spans on our reclaim stack are ours, parked by us, so on a parked list.
            unsafe {
                let next = next_in_stack(s);
                let class = (*s).class();
                self.parked[class].remove(s);
                self.collect(s);
                self.partial[class].push(s, ListTag::Partial);
                s = next;
            }
            n += 1;
        }
        n
    }

    /// Free of object `idx` of `s` by the owning thread.
    ///
    /// # Safety
    /// The cache owns `s` (checked by the caller through `owner`) and `ptr` is object `idx`.
    #[inline(always)]
    pub unsafe fn free_local(&self, s: *mut Span, idx: usize, ptr: usize) {
        // SAFETY: caller's contract.
        unsafe {
            let attention = match (*s).free_local(idx) {
                Ok(a) => a,
                // A jump, not a call: the inlined free path keeps no stack frame.
                Err(_) => return report::free_failed(ptr, true),
            };
            // Not counted here: the span's `nfree` went up, which statistics see
            // (`Span::unfolded_frees`).
            // Only a full or parked span that has gathered enough free objects, or a listed
            // span that just became empty, needs list work (`Span::attention`); everything
            // else was a plain bit set. The full-span threshold (more than 1/4 of the span
            // free) is hysteresis: moving a span back to the partial list on its first free
            // would make it current for one object, then full again, over and over, in
            // programs that free at random.
            if attention {
                self.free_local_slow(s, (*s).class(), (*s).list(), (*s).nfree());
            }
        }
    }

    #[cold]
    unsafe extern "C" fn free_local_slow(
        &self,
        s: *mut Span,
        class: usize,
        list: ListTag,
        nfree: usize,
    ) {
        // SAFETY: the cache owns `s`.
        unsafe {
            let mut list = list;
            if list == ListTag::Parked {
                if !(*s).unpark() {
                    // A remote freer took it first and is pushing it onto our reclaim stack;
                    // drain_reclaim will move it.
                    return;
                }
                self.parked[class].remove(s);
                self.partial[class].push(s, ListTag::Partial);
                list = ListTag::Partial;
            } else if list == ListTag::Full {
                self.full[class].remove(s);
                self.partial[class].push(s, ListTag::Partial);
                list = ListTag::Partial;
            }
            if list == ListTag::Partial && nfree == (*s).nelems() && !(*s).counted_empty.get() {
                let pages = (*s).npages();
                if self.empty_pages.get() + pages <= EMPTY_BUDGET_PAGES {
                    (*s).counted_empty.set(true);
                    self.empty_pages.set(self.empty_pages.get() + pages);
                } else if !(*s).has_remote() {
                    self.partial[class].remove(s);
                    heap::free_small_span(s, Some(&mut *self.stash.get()));
                }
            }
        }
    }

    /// Returns every empty span this cache keeps to the page heap (`release_memory`).
    ///
    /// # Safety
    /// The caller owns the cache.
    pub unsafe fn free_empty_spans(&self) {
        for class in 1..NUM_CLASSES {
            let list = &self.partial[class];
            let mut s = list.first();
            while !s.is_null() {
                // SAFETY: the cache owns its lists' spans.
                unsafe {
                    let next = (*s).link_next();
                    self.collect(s);
                    if (*s).nfree() == (*s).nelems() {
                        if (*s).counted_empty.get() {
                            self.empty_pages.set(self.empty_pages.get() - (*s).npages());
                        }
                        list.remove(s);
                        heap::free_small_span(s, Some(&mut *self.stash.get()));
                    }
                    s = next;
                }
            }
        }
    }

    /// Hands every span, page and counter back (thread exit). Afterwards the cache owns
    /// nothing and no parked span names it as home, so it can be recycled.
    ///
    /// # Safety
    /// The caller owns the cache and will not use it again.
    unsafe fn retire(&self) {
        // SAFETY: (whole body) the cache owns every span on its lists and its current spans.
        unsafe {
            let mut pending = 0usize;
            for class in 1..NUM_CLASSES {
                let cur = self.current[class].swap(sentinel(), Ordering::Relaxed);
                if cur != sentinel() {
                    let unused = (*cur).return_window();
                    let m = &self.counters.nmalloc[class];
                    m.store(m.load(Ordering::Relaxed) - unused as u64, Ordering::Relaxed);
                    self.give_back(cur);
                }
                loop {
                    let s = self.partial[class].pop();
                    if s.is_null() {
                        break;
                    }
                    (*s).counted_empty.set(false);
                    self.give_back(s);
                }
                loop {
                    let s = self.full[class].pop();
                    if s.is_null() {
                        break;
                    }
                    self.give_back(s);
                }
                // Parked spans: take each back from parking. Those a remote freer already
                // took are on (or in flight to) our reclaim stack; they are collected below.
                let mut s = self.parked[class].first();
                while !s.is_null() {
                    let next = (*s).link_next();
                    if (*s).unpark() {
                        self.parked[class].remove(s);
                        self.give_back(s);
                    } else {
                        pending += 1;
                    }
                    s = next;
                }
            }
            // Every parked span whose `unpark` failed was taken by a remote freer, who pushes
            // it onto our reclaim stack exactly once (perhaps it did long ago, perhaps it is
            // between its CAS and its push right now); nothing else is ever on the stack. The
            // cache may be recycled only when all of them have arrived, so sleep until each
            // push (module essay of `span`, "Waiting for a span in flight"): no spinning, no
            // yielding, and usually no sleeping either, as they have all arrived already.
            while pending > 0 {
                self.reclaim.wait_nonempty();
                let mut s = self.reclaim.take_all();
                while !s.is_null() {
                    let next = next_in_stack(s);
                    self.parked[(*s).class()].remove(s);
                    self.give_back(s);
                    pending -= 1;
                    s = next;
                }
            }
            self.empty_pages.set(0);
            let pc = &mut *self.page_cache.get();
            if !pc.is_empty() {
                heap::lock().pages.flush_cache(pc);
            }
            (*self.stash.get()).flush();
            (*self.sample_runs.get()).flush();
            crate::counters::retire_counters(&self.counters);
        }
    }

    /// Gives a span we own (on no list, not parked) to the heap or central.
    unsafe fn give_back(&self, s: *mut Span) {
        // SAFETY: caller's contract.
        unsafe {
            self.collect(s);
            let class = (*s).class();
            if (*s).nfree() == (*s).nelems() {
                heap::free_small_span(s, Some(&mut *self.stash.get()));
            } else if (*s).nfree() > 0 {
                CENTRAL[class].put_partial(s);
            } else {
                CENTRAL[class].put_full(s);
            }
        }
    }

    /// Number of free objects sitting in this cache's current windows for `class` (used to
    /// make `nmalloc` exact).
    pub fn window_objects(&self, class: usize) -> u64 {
        let s = self.current[class].load(Ordering::Relaxed);
        if s.is_null() {
            return 0;
        }
        // SAFETY: span structs are never freed to the OS, so reading an atomic field of one is
        // always defined, even if it was recycled meanwhile (the figure is then approximate).
        unsafe { (*s).alloc_cache.load(Ordering::Relaxed).count_ones() as u64 }
    }
}

/// Calls `f` on every cache ever made.
pub fn for_each_cache(mut f: impl FnMut(&Cache)) {
    let mut c = ALL_CACHES.load(Ordering::Acquire);
    while !c.is_null() {
        // SAFETY: caches are never freed.
        unsafe {
            f(&*c);
            c = (*c).all_next.load(Ordering::Relaxed);
        }
    }
}

/// Where `current` sits in a `Cache` (the thread slot's state values point this far before
/// an entry of [`crate::thread_slot`]'s `EMPTY_CURRENT`).
pub(crate) const CURRENT_OFFSET: usize = core::mem::offset_of!(Cache, current);

/// The shared cache of threads that have none, and its lock.
pub(crate) static FALLBACK: Mutex<FallbackCache> = Mutex::new(FallbackCache(ptr::null_mut()));
/// The fallback cache (null until first used), under `FALLBACK`'s lock.
pub struct FallbackCache(*mut Cache);
// SAFETY: the fallback cache is used only under its mutex.
unsafe impl Send for FallbackCache {}

impl FallbackCache {
    /// The cache, created on first use; null if out of memory.
    pub fn get(&mut self) -> *mut Cache {
        if self.0.is_null() {
            self.0 = Cache::acquire();
            if !self.0.is_null() {
                // SAFETY: the fallback cache is ours under the lock. It is never sampled.
                unsafe { (*self.0).sample_busy.set(true) };
            }
        }
        self.0
    }
}

/// Locks the fallback cache.
pub fn fallback() -> MutexGuard<'static, FallbackCache> {
    FALLBACK.lock()
}
