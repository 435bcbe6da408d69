//! Spans: runs of pages cut into objects of one size class, and the bitmaps that say which
//! objects are free.
//!
//! # Layout and ownership
//!
//! A span covers `npages` pages starting at `base` and holds `nelems` objects of `elemsize`
//! bytes (a large-object span holds one). Its metadata lives in this struct, outside the
//! span's own memory, so that a span of free objects is never touched by the allocator (and a
//! scavenged span costs no RSS).
//!
//! At any moment a small span has exactly one *owner*: either one thread cache (`owner` holds
//! the cache's address) or the central list of its class (`owner == CENTRAL_OWNER`, and the owner is then
//! whoever holds that class's central lock). Only the owner reads or writes the owner fields
//! (everything in a `Cell`, and `alloc_cache`); that is the invariant that makes the
//! `unsafe impl Sync` below sound, and every `unsafe fn` here that touches those fields says
//! "the caller owns the span". Ownership changes hands only under the central lock (central
//! to cache, cache to central), which orders everything.
//!
//! # Free bits, the alloc cache, and why allocation writes no bitmap
//!
//! `free_bits` has one bit per object, 1 = free. Allocation follows Go's `nextFreeFast`: the
//! owner keeps one 64-bit word of free bits in `alloc_cache` (the *window*), takes the lowest
//! set bit with count-trailing-zeros and clears it. When a word is loaded into the window its
//! `free_bits` word is zeroed, so at every moment
//!
//! ```text
//!   object i is free  <=>  free_bits[i/64] has bit i%64          (outside the window)
//!                           or alloc_cache has it (i/64 == window_word)
//!                           or remote[i/64] has it (freed by another thread, not yet collected)
//! ```
//!
//! and the three sets are disjoint; `nfree` counts the first (the window counts itself: its
//! bits), so allocating writes nothing but `alloc_cache`. A free by the owner sets the bit in
//! `free_bits` (never in the window: the window is a snapshot, the next pass over that
//! word finds it). A bit that is already set in either place is a double free.
//!
//! # Frees from other threads
//!
//! A thread that does not own the span sets the object's bit in `remote` with one atomic
//! `fetch_or`, which also tells it whether the bit was already set (a double free). The owner
//! *collects* remote bits (swaps each word with zero and ORs it into `free_bits`) when it runs
//! out of local free objects. That is the only atomic read-modify-write on the free path, and
//! it happens only for cross-thread frees.
//!
//! # Parking full spans
//!
//! A span with no free objects leaves its owner's allocation path: it is *parked* with
//! `flags = PARKED` and `home` = the stack its owner watches (a thread cache's or a central
//! class's reclaim stack). The first remote free into a parked span wins a CAS `PARKED -> 0`
//! and pushes the span onto `home`, so the owner learns that the span has free objects again
//! without ever scanning its full spans. The owner, when it parks, re-checks `remote` after
//! setting the flag; the free does its `fetch_or` before reading the flag. With all four
//! operations sequentially consistent, at least one side sees the other (Dekker), so a free
//! can never be stranded in a parked span: either the freer pushes the span home, or the owner
//! sees the bit and cancels the park (the CAS decides who, exactly one wins).
//!
//! # Waiting for a span in flight
//!
//! Between a freer's winning CAS and its push the span belongs to nobody's list: it is *in
//! flight* to its home. A thread cache that is being retired (its thread exits) must not be
//! recycled while a span is in flight to its reclaim stack, so [`SpanStack::wait_nonempty`]
//! lets the stack's owner sleep until a push arrives. It used to yield in a loop; a freer
//! preempted between its CAS and its push kept the exiting thread spinning through the
//! scheduler for as long as that took. Now the owner sleeps in the kernel ([`Parker`]) and
//! every push ends with [`Parker::wake`], which is one load unless the owner sleeps.
//!
//! The lost wake-up to rule out: the owner reads `head` (null), the freer pushes and reads
//! the parker's state (awake, so no wake), then the owner sleeps with the span already on its
//! stack. The owner writes its state (`prepare`, `SeqCst`) *before* it re-reads `head`
//! (`SeqCst`); the freer writes `head` (CAS, `SeqCst`) *before* it reads the state
//! (`SeqCst`). In the single order of those four operations one of the writes comes first, so
//! either the owner's re-read sees the span (it does not sleep), or the freer's read sees
//! "asleep" (it swaps the state back and wakes the owner; if that happens before the owner's
//! `futex_wait`, the kernel sees the changed state and does not put it to sleep).
//! Model (f) in `tests/loom.rs` checks it, and fails without the fences (below) that stand
//! in for `SeqCst` under loom.
//!
//! The wait is taken only when the owner knows a push will come (its `unpark` lost the CAS to
//! a freer), never to poll, and in practice it almost never sleeps: the window is a few
//! instructions long unless the freer is preempted inside it.

use core::cell::Cell;
use core::ptr;

use crate::cpu::popcount;
use crate::sizeclass::{first_byte_limit, CLASSES, MAX_OBJS_PER_SPAN};
use crate::sync::{
    loom_seqcst_fence, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering, Parker,
};

/// Words in a span's bitmaps: one bit per object, at most 1024 objects (8-byte class, 1 page).
pub const MAX_WORDS: usize = MAX_OBJS_PER_SPAN / 64;

/// `owner` of a span that no thread cache owns (central lists, large spans). Not the address
/// of any cache, and not a thread-local state value either, so comparing a thread's raw
/// cache slot with `owner` is enough to decide "mine".
pub const CENTRAL_OWNER: usize = usize::MAX;

/// `flags` value of a parked full span (see the module essay).
const PARKED: u32 = 1;

/// Which of its owner's lists a span is on. Owner field.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum ListTag {
    /// On no list: being set up, current in a cache, in transit, or a large span.
    None,
    /// On the owner's list of spans with free objects.
    Partial,
    /// On the owner's list of full spans that are not parked yet.
    Full,
    /// On the owner's list of parked full spans.
    Parked,
}

/// Why a free was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FreeError {
    /// The object is already free.
    DoubleFree,
}

/// The remote-free bitmap sits on its own cache line so that other threads' frees do not
/// contend with the owner's allocation fast path.
#[repr(align(64))]
struct RemoteBits([AtomicU64; MAX_WORDS]);

/// A run of pages holding objects of one size class. See the module essay for the ownership
/// rules; fields marked "owner" may only be touched by the span's owner.
#[repr(C)]
pub struct Span {
    // ---- The first cache line: everything the allocation and free fast paths read,
    // ---- including the first word of the free bitmap (a span of up to 64 objects, which
    // ---- every class above 128 bytes is, never touches a second line on a free).
    /// Owner. Free bits of the window word `window_word`; relaxed atomic so that statistics
    /// may read it from another thread (a plain `mov` on x86-64).
    pub alloc_cache: AtomicU64,
    /// Owner. Address of object `window_word * 64`.
    window_addr: Cell<usize>,
    /// Set at init. First byte of the span.
    base: Cell<usize>,
    /// Address of the owning cache, or `CENTRAL_OWNER`. Written only by the owner (when it
    /// hands the span over) or by the taker under the central lock.
    owner: AtomicUsize,
    /// Set at init, then immutable while the span is in use. Object size in bytes of a small
    /// span (at most 32 KiB); 0 for a large span, whose size comes from `npages`.
    elemsize: Cell<u32>,
    /// Set at init. `obj_index` multiplier for `elemsize`.
    div_magic: Cell<u32>,
    /// Owner writes, anyone reads. `attention - nfree` (wrapping), where `nfree` is the
    /// number of free objects in `free_bits` (not counting the window, so that allocating
    /// from the window writes nothing but `alloc_cache`; a span that is not current has an
    /// empty window, so for it `nfree` is the number of free objects it holds). Kept as a
    /// countdown so that the free fast path's "count it, and does the span need list work?"
    /// is one decrement and one sign test: list work is due when it reaches 0
    /// ([`Span::attention`]). [`Span::nfree`] gives `nfree` back.
    credit: AtomicU32,
    /// Owner. Word index the window holds (`u32::MAX` when none). 32 bits so that the free
    /// path compares it with the object's word straight from memory.
    window_word: Cell<u32>,
    /// Owner. A local free that brings `nfree` to this value must do list work (see
    /// [`Span::attention`]); set from `list` whenever the span joins or leaves a list.
    attention: Cell<u16>,
    /// Set at init. Size class; 0 for a large-object span.
    class: Cell<u8>,
    /// Set at init. An offset from `base` is the first byte of one of the span's objects
    /// exactly when the low half of `offset * div_magic` is below this
    /// ([`crate::sizeclass::first_byte_limit`]; 1 for a large span: offset 0 only).
    first_limit: Cell<u32>,
    /// Owner. One bit per object, 1 = free (outside the window). Word 0 ends the first
    /// cache line (checked below).
    free_bits: [Cell<u64>; MAX_WORDS],

    // ---- Colder owner fields. ----
    /// Owner writes, anyone reads. `attention - synced` (wrapping), where `nfree - synced`
    /// is the number of local frees not yet counted anywhere else: every other change of
    /// `nfree` moves `synced` with it, and every change of `attention` moves `credit` and
    /// `mark` alike, so the free fast path decrements `credit` and nothing more, and
    /// `mark - credit` is the count. Statistics add it up over all spans
    /// ([`Span::unfolded_frees`]); [`Span::fold_frees`] moves it into a counter when the span
    /// is freed.
    mark: AtomicU32,
    /// The size class while this is an in-use small span, 0 otherwise: lets statistics walk
    /// every span struct and find the live ones without touching owner fields.
    state: AtomicU8,
    /// Owner. True once an object of this span may hold old data: the pages came dirty from
    /// the page heap, or the allocation cursor has wrapped around (so every object it hands
    /// out from now on may have been used before), so `alloc_zeroed` must clear it. Frees
    /// need not touch it: an object freed during the first pass lies behind the cursor and
    /// is handed out again only after the wrap.
    needzero: Cell<bool>,
    /// Owner. Which owner list the span is on.
    list: Cell<ListTag>,
    /// Owner. Counted in its cache's budget of kept empty spans.
    pub counted_empty: Cell<bool>,
    /// Owner. Next word to look at when the window is empty.
    scan: Cell<u32>,
    /// Set at init. Number of objects (at most 1024). Not on the fast paths' line: only the
    /// refill and list work read it.
    nelems: Cell<u16>,
    /// Set at init. Length in pages.
    npages: Cell<usize>,
    /// Owner. Links of the owner's doubly linked lists (and of the page heap's span pool).
    next: Cell<*mut Span>,
    prev: Cell<*mut Span>,

    // ---- Shared with other threads. ----
    /// `PARKED` while the span sits full in its owner's full list, else 0.
    flags: AtomicU32,
    /// Where the first remote free pushes a parked span. Written by the owner before parking.
    home: AtomicPtr<SpanStack>,
    /// Link in a [`SpanStack`].
    stack_next: AtomicPtr<Span>,
    /// Objects freed by threads that do not own the span, not yet collected. 1 = freed.
    remote: RemoteBits,
}

// The free fast path's fields and the first bitmap word share one cache line (in real
// builds: loom's atomics are larger), and the struct is six cache lines (docs/design.md).
#[cfg(not(loom))]
const _: () = assert!(core::mem::offset_of!(Span, free_bits) + 8 <= 64);
#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<Span>() == 384);

// SAFETY: the `Cell` fields are only accessed by the span's owner (module essay); ownership is
// transferred with release/acquire synchronisation (the central lock, or the span stacks), so
// no two threads access a `Cell` concurrently. Shared fields are atomics.
unsafe impl Sync for Span {}
// SAFETY: as for `Sync`: a span is plain data plus atomics, owned by one thread at a time.
unsafe impl Send for Span {}

impl Default for Span {
    fn default() -> Self {
        Self::new()
    }
}

impl Span {
    /// An unused span (no pages, no objects).
    pub fn new() -> Span {
        Span {
            alloc_cache: AtomicU64::new(0),
            window_addr: Cell::new(0),
            elemsize: Cell::new(0),
            // attention u16::MAX, nfree 0, synced 0.
            credit: AtomicU32::new(u16::MAX as u32),
            mark: AtomicU32::new(u16::MAX as u32),
            state: AtomicU8::new(0),
            window_word: Cell::new(u32::MAX),
            scan: Cell::new(0),
            nelems: Cell::new(0),
            base: Cell::new(0),
            npages: Cell::new(0),
            div_magic: Cell::new(0),
            class: Cell::new(0),
            first_limit: Cell::new(0),
            needzero: Cell::new(false),
            attention: Cell::new(u16::MAX),
            counted_empty: Cell::new(false),
            list: Cell::new(ListTag::None),
            next: Cell::new(ptr::null_mut()),
            prev: Cell::new(ptr::null_mut()),
            free_bits: [const { Cell::new(0) }; MAX_WORDS],
            owner: AtomicUsize::new(CENTRAL_OWNER),
            flags: AtomicU32::new(0),
            home: AtomicPtr::new(ptr::null_mut()),
            stack_next: AtomicPtr::new(ptr::null_mut()),
            remote: RemoteBits(core::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    /// Prepares the span to serve objects of size class `class` from `[base, base +
    /// npages*PAGE_SIZE)`, all free, owned by `owner` (a cache address, or 0 for central).
    ///
    /// # Safety
    /// The caller has exclusive access to the span (it is fresh from the span pool) and
    /// `remote` is all zero (the pool invariant: spans return to the pool only when empty).
    pub unsafe fn init_small(&self, base: usize, class: usize, zeroed: bool, owner: usize) {
        let info = CLASSES[class];
        let nelems = info.nelems as usize;
        self.base.set(base);
        self.npages.set(info.npages as usize);
        self.elemsize.set(info.size);
        self.nelems.set(nelems as u16);
        self.div_magic.set(info.div_magic);
        self.first_limit
            .set(first_byte_limit(info.size as usize, nelems, info.div_magic));
        self.class.set(class as u8);
        self.needzero.set(!zeroed);
        self.counted_empty.set(false);
        self.set_list(ListTag::None);
        self.set_counts(nelems as u32, nelems as u32);
        self.state.store(class as u8, Ordering::Relaxed);
        self.scan.set(0);
        self.window_word.set(u32::MAX);
        self.alloc_cache.store(0, Ordering::Relaxed);
        for (w, word) in self.free_bits.iter().enumerate() {
            let lo = w * 64;
            let bits = if lo >= nelems {
                0
            } else if nelems - lo >= 64 {
                u64::MAX
            } else {
                (1u64 << (nelems - lo)) - 1
            };
            word.set(bits);
        }
        debug_assert!(self.remote.0.iter().all(|r| r.load(Ordering::Relaxed) == 0));
        self.flags.store(0, Ordering::Relaxed);
        self.owner.store(owner, Ordering::Relaxed);
    }

    /// Prepares the span as a large-object span: one object covering all its pages.
    ///
    /// # Safety
    /// The caller has exclusive access to the span.
    pub unsafe fn init_large(&self, base: usize, npages: usize, zeroed: bool) {
        self.base.set(base);
        self.npages.set(npages);
        self.elemsize.set(0);
        self.nelems.set(1);
        // With a multiplier of 1 and a limit of 1, `object_index` accepts exactly offset 0.
        self.div_magic.set(1);
        self.first_limit.set(1);
        self.class.set(0);
        self.needzero.set(!zeroed);
        self.state.store(0, Ordering::Relaxed);
        self.set_list(ListTag::None);
        self.set_counts(0, 0);
        self.alloc_cache.store(0, Ordering::Relaxed);
        self.window_word.set(u32::MAX);
        self.owner.store(CENTRAL_OWNER, Ordering::Relaxed);
        self.flags.store(0, Ordering::Relaxed);
    }

    /// Address of the span's first page.
    #[inline(always)]
    pub fn base(&self) -> usize {
        self.base.get()
    }
    /// Pages in the span.
    #[inline(always)]
    pub fn npages(&self) -> usize {
        self.npages.get()
    }
    /// Bytes of one object (the whole span for a large object).
    #[inline(always)]
    pub fn elemsize(&self) -> usize {
        match self.elemsize.get() {
            0 => self.npages.get() << crate::sizeclass::PAGE_SHIFT,
            size => size as usize,
        }
    }
    /// Objects the span holds.
    #[inline(always)]
    pub fn nelems(&self) -> usize {
        self.nelems.get() as usize
    }
    /// The span's size class (0 for a large object).
    #[inline(always)]
    pub fn class(&self) -> usize {
        self.class.get() as usize
    }
    /// The owning cache's address, or [`CENTRAL_OWNER`].
    #[inline(always)]
    pub fn owner(&self) -> usize {
        self.owner.load(Ordering::Relaxed)
    }
    /// Whether the central lists own the span (or it is a large span), read with `SeqCst`:
    /// after a remote free's `fetch_or`, this tells the freer whether the scavenger must
    /// hear of the free (see [`crate::sync::Signal`]; `set_owner` is `SeqCst` for it).
    #[inline]
    pub fn owned_by_central(&self) -> bool {
        self.owner.load(Ordering::SeqCst) == CENTRAL_OWNER
    }
    /// Hands the span to a new owner. `SeqCst` (hand-overs are rare): a remote freer that
    /// reads the old owner after its `fetch_or` then comes before this store in the single
    /// order, which the scavenger's central sweep relies on (`owned_by_central`).
    ///
    /// # Safety
    /// The caller owns the span, and the hand-over is ordered by a lock or a span stack.
    pub unsafe fn set_owner(&self, owner: usize) {
        self.owner.store(owner, Ordering::SeqCst);
    }

    /// Index of the object containing `addr`, and whether `addr` is that object's first byte.
    #[inline(always)]
    ///
    /// `addr` must lie in a page the span map sends to this span (so `addr - base` is less
    /// than the span's length, which is what makes the one-multiply test exact).
    pub fn object_index(&self, addr: usize) -> (usize, bool) {
        let off = addr.wrapping_sub(self.base.get());
        // One multiply and one compare: `first_limit` folds "first byte of an object" and
        // "index below nelems" into one bound on the low half (`first_byte_limit`).
        let product = off as u64 * self.div_magic.get() as u64;
        (
            (product >> 32) as usize,
            (product as u32) < self.first_limit.get(),
        )
    }

    /// Free objects in `free_bits` plus the window (remote frees not yet collected excluded).
    ///
    /// # Safety
    /// The caller owns the span.
    #[inline(always)]
    pub unsafe fn nfree(&self) -> usize {
        (self.attention.get() as u32).wrapping_sub(self.credit.load(Ordering::Relaxed)) as usize
    }

    /// Sets `nfree` and `synced` (see `credit` and `mark`) for the current `attention`.
    fn set_counts(&self, nfree: u32, synced: u32) {
        let a = self.attention.get() as u32;
        self.credit.store(a.wrapping_sub(nfree), Ordering::Relaxed);
        self.mark.store(a.wrapping_sub(synced), Ordering::Relaxed);
    }
    /// True if an object handed out may hold old data and must be cleared for `alloc_zeroed`.
    ///
    /// # Safety
    /// The caller owns the span.
    #[inline(always)]
    pub unsafe fn needzero(&self) -> bool {
        self.needzero.get()
    }
    /// Which of its owner's lists the span is on.
    ///
    /// # Safety
    /// The caller owns the span.
    #[inline(always)]
    pub unsafe fn list(&self) -> ListTag {
        self.list.get()
    }
    /// The free count at which a local free must look at the span's list: never for a span
    /// on no list (the current span), `nelems` (empty) for a partial span, and more than a
    /// quarter free for a full or parked one. One compare on the free fast path instead of
    /// a decision tree.
    ///
    /// # Safety
    /// The caller owns the span.
    #[inline(always)]
    pub unsafe fn attention(&self) -> usize {
        self.attention.get() as usize
    }
    fn set_list(&self, tag: ListTag) {
        self.list.set(tag);
        let n = self.nelems.get();
        let old = self.attention.get();
        let new = match tag {
            ListTag::None => u16::MAX,
            ListTag::Partial => n,
            ListTag::Full | ListTag::Parked => n / 4 + 1,
        };
        self.attention.set(new);
        // `credit` and `mark` are both relative to `attention`: move them along, which keeps
        // `nfree` and the unfolded count as they were.
        let d = (new as u32).wrapping_sub(old as u32);
        let c = self.credit.load(Ordering::Relaxed).wrapping_add(d);
        self.credit.store(c, Ordering::Relaxed);
        let m = self.mark.load(Ordering::Relaxed).wrapping_add(d);
        self.mark.store(m, Ordering::Relaxed);
    }

    /// Changes `nfree` by `delta` (wrapping) for a reason other than a local free, moving
    /// `synced` along so that the count of unfolded local frees is unchanged.
    #[inline]
    fn add_nfree_synced(&self, delta: u32) {
        let c = self.credit.load(Ordering::Relaxed).wrapping_sub(delta);
        self.credit.store(c, Ordering::Relaxed);
        let m = self.mark.load(Ordering::Relaxed).wrapping_sub(delta);
        self.mark.store(m, Ordering::Relaxed);
    }

    /// Local frees not yet counted elsewhere. Any thread may ask (statistics); the answer is
    /// exact when the owner is quiescent.
    pub fn unfolded_frees(&self) -> u32 {
        self.mark
            .load(Ordering::Relaxed)
            .wrapping_sub(self.credit.load(Ordering::Relaxed))
    }

    /// Returns the local frees not yet counted and marks them counted.
    ///
    /// # Safety
    /// The caller owns the span.
    pub unsafe fn fold_frees(&self) -> u32 {
        let c = self.credit.load(Ordering::Relaxed);
        let d = self.mark.load(Ordering::Relaxed).wrapping_sub(c);
        self.mark.store(c, Ordering::Relaxed);
        d
    }

    /// The class of an in-use small span, 0 for anything else (see `state`).
    pub fn live_class(&self) -> usize {
        self.state.load(Ordering::Acquire) as usize
    }

    /// Marks the span as no longer an in-use small span (it goes back to the pool).
    ///
    /// # Safety
    /// The caller owns the span and has folded its frees.
    pub unsafe fn retire(&self) {
        self.state.store(0, Ordering::Release);
    }

    /// Allocation fast path: the next free object of the window, if any.
    ///
    /// # Safety
    /// The caller owns the span.
    #[inline(always)]
    pub unsafe fn alloc_from_window(&self) -> *mut u8 {
        let c = self.alloc_cache.load(Ordering::Relaxed);
        if c == 0 {
            return ptr::null_mut();
        }
        self.alloc_cache.store(c & (c - 1), Ordering::Relaxed);
        let p = self.window_addr.get() + c.trailing_zeros() as usize * self.elemsize.get() as usize;
        // SAFETY: `p` is an address inside an arena or a mapping of ours, never 0. Telling
        // the compiler lets callers that test the result for null drop the test on this path.
        unsafe { core::hint::assert_unchecked(p != 0) };
        p as *mut u8
    }

    /// Loads the next non-empty word of `free_bits` into the window. Returns the number of
    /// objects now in the window (0 when the span has no local free object), or the index of
    /// an object that was freed twice (once by the owner, once by another thread).
    ///
    /// # Safety
    /// The caller owns the span and the window is empty.
    pub unsafe fn refill_window(&self) -> Result<u32, usize> {
        // SAFETY: caller's contract.
        unsafe { self.load_window::<false>() }.map(|(n, _)| n)
    }

    /// [`Span::refill_window`], then the first object of the new window (the allocation
    /// refill: no store and reload of the window in between). Returns the number of objects
    /// the window held and that object, or `(0, null)` when the span has no local free
    /// object.
    ///
    /// # Safety
    /// As for [`Span::refill_window`].
    #[inline(always)]
    pub unsafe fn refill_window_alloc(&self) -> Result<(u32, *mut u8), usize> {
        // SAFETY: caller's contract.
        unsafe { self.load_window::<true>() }
    }

    #[inline(always)]
    unsafe fn load_window<const TAKE: bool>(&self) -> Result<(u32, *mut u8), usize> {
        debug_assert_eq!(self.alloc_cache.load(Ordering::Relaxed), 0);
        // SAFETY: the caller owns the span.
        if unsafe { self.nfree() } == 0 {
            return Ok((0, ptr::null_mut()));
        }
        let nwords = self.nelems().div_ceil(64) as u32;
        let mut w = self.scan.get();
        loop {
            if w >= nwords {
                w = 0;
                self.needzero.set(true);
            }
            // SAFETY: w < nwords = ceil(nelems / 64) <= MAX_WORDS.
            let word = unsafe { self.free_bits.get_unchecked(w as usize) };
            let bits = word.get();
            if bits != 0 {
                // An object freed both by the owner and by another thread (in either order)
                // sits in `free_bits` and in `remote` at once. Catch it here, before the
                // window hands it out: after that, collecting the remote bit would free an
                // object that is in use again.
                // SAFETY: as above.
                let remote = unsafe { self.remote.0.get_unchecked(w as usize) };
                let dup = bits & remote.load(Ordering::Relaxed);
                if dup != 0 {
                    return Err(w as usize * 64 + dup.trailing_zeros() as usize);
                }
                word.set(0);
                let n = popcount(bits);
                self.add_nfree_synced(n.wrapping_neg());
                self.window_word.set(w);
                let addr = self.base.get() + w as usize * 64 * self.elemsize.get() as usize;
                self.window_addr.set(addr);
                self.scan.set(w + 1);
                if TAKE {
                    self.alloc_cache.store(bits & (bits - 1), Ordering::Relaxed);
                    let p = addr + bits.trailing_zeros() as usize * self.elemsize.get() as usize;
                    return Ok((n, p as *mut u8));
                }
                self.alloc_cache.store(bits, Ordering::Relaxed);
                return Ok((n, ptr::null_mut()));
            }
            w += 1;
        }
    }

    /// Empties the window back into `free_bits`; returns how many objects it held.
    ///
    /// # Safety
    /// The caller owns the span.
    pub unsafe fn return_window(&self) -> u32 {
        let c = self.alloc_cache.swap(0, Ordering::Relaxed);
        if c != 0 {
            let w = self.window_word.get() as usize;
            self.free_bits[w].set(self.free_bits[w].get() | c);
            self.add_nfree_synced(popcount(c));
        }
        popcount(c)
    }

    /// Keeps the lowest `keep` objects of the window and gives the rest back to
    /// `free_bits` (the heap profiler cuts a window short before a sample point). Returns
    /// how many went back. The next pass over the word finds them.
    ///
    /// # Safety
    /// The caller owns the span.
    pub unsafe fn return_window_above(&self, keep: u32) -> u32 {
        let c = self.alloc_cache.load(Ordering::Relaxed);
        let mut rest = c;
        for _ in 0..keep {
            rest &= rest.wrapping_sub(1);
        }
        if rest == 0 {
            return 0;
        }
        self.alloc_cache.store(c & !rest, Ordering::Relaxed);
        let w = self.window_word.get() as usize;
        self.free_bits[w].set(self.free_bits[w].get() | rest);
        self.add_nfree_synced(popcount(rest));
        popcount(rest)
    }

    /// Frees object `idx` on behalf of the owner. Returns whether the span now needs list
    /// work: whether its free count has reached [`Span::attention`].
    ///
    /// # Safety
    /// The caller owns the span and `idx < nelems`.
    #[inline(always)]
    pub unsafe fn free_local(&self, idx: usize) -> Result<bool, FreeError> {
        let w = idx / 64;
        let bit = 1u64 << (idx % 64);
        debug_assert!(idx < self.nelems());
        // The object is free already if its bit is set in `free_bits`, or in the window when
        // the window holds its word. Whether it does is data (in a program that frees at
        // random, a quarter of the frees fall into the current span's window word), so it
        // is a mask, not a branch: `window_word == w` as all ones or zero, one test for
        // both places.
        let in_window = ((w as u32 == self.window_word.get()) as u64).wrapping_neg();
        let window = self.alloc_cache.load(Ordering::Relaxed) & in_window;
        // SAFETY: idx < nelems <= MAX_OBJS_PER_SPAN (caller), so w < MAX_WORDS.
        let slot = unsafe { self.free_bits.get_unchecked(w) };
        let word = slot.get();
        if (word | window) & bit != 0 {
            return Err(FreeError::DoubleFree);
        }
        slot.set(word | bit);
        let c = self.credit.load(Ordering::Relaxed).wrapping_sub(1);
        self.credit.store(c, Ordering::Relaxed);
        // `credit` counts down to `attention`; it never exceeds u16::MAX, so the sign test
        // also covers a span whose count went past its mark while the list work was deferred
        // (a parked span that a remote freer is pushing home).
        Ok(c as i32 <= 0)
    }

    /// Frees object `idx` from a thread that does not own the span. Any thread may call it.
    /// If the span was parked full, pushes it onto its home stack.
    pub fn free_remote(&self, idx: usize) -> Result<(), FreeError> {
        let bit = 1u64 << (idx % 64);
        // SeqCst: one side of the park handshake (module essay); also releases the object's
        // last writes to whoever collects the bit.
        let old = self.remote.0[idx / 64].fetch_or(bit, Ordering::SeqCst);
        loom_seqcst_fence();
        if old & bit != 0 {
            return Err(FreeError::DoubleFree);
        }
        if self.flags.load(Ordering::SeqCst) == PARKED
            && self
                .flags
                .compare_exchange(PARKED, 0, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            // We won the span: exactly one thread pushes it home. `home` was written before
            // the owner's SeqCst store of PARKED, which our successful CAS read.
            let home = self.home.load(Ordering::Acquire);
            // SAFETY: a parked span's home is a stack that outlives every span parked on it
            // (caches wait for in-flight pushes before they are recycled; central is static).
            unsafe { (*home).push(self as *const Span as *mut Span) };
        }
        Ok(())
    }

    /// Moves remote frees into `free_bits`. Returns how many were collected, or the index of
    /// an object freed twice.
    ///
    /// # Safety
    /// The caller owns the span.
    #[inline]
    pub unsafe fn collect_remote(&self) -> Result<u32, usize> {
        let nwords = self.nelems().div_ceil(64);
        if self.remote_or(nwords, Ordering::Relaxed) == 0 {
            return Ok(0);
        }
        // SAFETY: the caller owns the span.
        unsafe { self.collect_remote_words(nwords) }
    }

    /// [`Span::collect_remote`] once some word may be non-zero.
    ///
    /// # Safety
    /// The caller owns the span; `nwords` is its number of bitmap words.
    #[inline(never)]
    unsafe fn collect_remote_words(&self, nwords: usize) -> Result<u32, usize> {
        let mut n = 0;
        for w in 0..nwords {
            if self.remote.0[w].load(Ordering::Relaxed) == 0 {
                continue;
            }
            // Acquire: pairs with the freers' fetch_or, so their last writes to the objects
            // happen before we hand the objects out again.
            let bits = self.remote.0[w].swap(0, Ordering::Acquire);
            let mut local = self.free_bits[w].get();
            if w == self.window_word.get() as usize {
                local |= self.alloc_cache.load(Ordering::Relaxed);
            }
            if bits & local != 0 {
                // Put the word back as it was minus the conflict so that nothing is lost.
                let dup = bits & local;
                self.free_bits[w].set(self.free_bits[w].get() | (bits & !local));
                n += popcount(bits & !local);
                self.add_nfree_synced(n);
                return Err(w * 64 + dup.trailing_zeros() as usize);
            }
            self.free_bits[w].set(self.free_bits[w].get() | bits);
            n += popcount(bits);
        }
        if n > 0 {
            self.add_nfree_synced(n);
        }
        Ok(n)
    }

    /// True if some remote free awaits collection. Any thread may ask.
    pub fn has_remote(&self) -> bool {
        self.remote_or(self.nelems().div_ceil(64), Ordering::SeqCst) != 0
    }

    /// The OR of the first `nwords` words of `remote`, each read with `order`. No early exit:
    /// loads and ORs without a branch per word, for the usual answer (all zero) on spans of up
    /// to 16 words.
    #[inline(always)]
    fn remote_or(&self, nwords: usize, order: Ordering) -> u64 {
        let mut acc = 0;
        for r in &self.remote.0[..nwords.min(MAX_WORDS)] {
            acc |= r.load(order);
        }
        acc
    }

    /// Parks a full span: from now on the first remote free pushes it onto `home`. Returns
    /// false if remote frees were already waiting, in which case the span is not parked and
    /// the caller keeps it (and should collect).
    ///
    /// # Safety
    /// The caller owns the span; `home` outlives the parking (see `free_remote`).
    pub unsafe fn park(&self, home: *const SpanStack) -> bool {
        self.home.store(home as *mut SpanStack, Ordering::Relaxed);
        self.flags.store(PARKED, Ordering::SeqCst);
        loom_seqcst_fence();
        if self.has_remote() {
            // SAFETY: the caller owns the span (this function's contract).
            return !unsafe { self.unpark() };
        }
        true
    }

    /// Takes a parked span back. True if it worked; false if a remote freer already took it
    /// and has pushed it, or is about to push it, onto its home stack.
    ///
    /// # Safety
    /// The caller owns the span.
    pub unsafe fn unpark(&self) -> bool {
        self.flags
            .compare_exchange(PARKED, 0, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }

    /// Next span on the owner's list (or in the page heap's pool of unused span structs).
    ///
    /// # Safety
    /// The caller owns the pool (holds the heap lock).
    pub unsafe fn link_next(&self) -> *mut Span {
        self.next.get()
    }
    /// # Safety
    /// As for [`Span::link_next`].
    pub unsafe fn set_link_next(&self, n: *mut Span) {
        self.next.set(n)
    }

    /// True while the span is parked (its first remote free has not come).
    pub fn is_parked(&self) -> bool {
        self.flags.load(Ordering::SeqCst) == PARKED
    }
}

/// A lock-free stack of spans (Treiber), used as the "home" of parked spans. Anyone may
/// push; only the stack's owner takes, and it takes everything at once, so there is no ABA.
/// The owner may also sleep until something is pushed ([`SpanStack::wait_nonempty`]; see the
/// module essay, "Waiting for a span in flight").
pub struct SpanStack {
    head: AtomicPtr<Span>,
    /// The owner's sleep in `wait_nonempty`; every push wakes it.
    waiter: Parker,
}

impl Default for SpanStack {
    fn default() -> Self {
        Self::new()
    }
}

impl SpanStack {
    /// An empty stack.
    #[cfg(not(loom))]
    pub const fn new() -> SpanStack {
        SpanStack {
            head: AtomicPtr::new(ptr::null_mut()),
            waiter: Parker::new(),
        }
    }
    /// An empty stack (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new() -> SpanStack {
        SpanStack {
            head: AtomicPtr::new(ptr::null_mut()),
            waiter: Parker::new(),
        }
    }

    /// Pushes `s`, and wakes the owner if it sleeps in [`SpanStack::wait_nonempty`].
    ///
    /// A failed CAS is not a wait: it means another push or a `take_all` changed the head
    /// in between (that thread made progress), and it hands back the new head to retry with
    /// at once. So there is no pause and no back-off here; the loop is lock-free.
    ///
    /// # Safety
    /// `s` is a live span that is on no other stack.
    pub unsafe fn push(&self, s: *mut Span) {
        let mut h = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `s` is live (caller), and its `stack_next` belongs to whoever pushes it.
            unsafe { (*s).stack_next.store(h, Ordering::Relaxed) };
            // SeqCst on success: one side of the wait handshake (module essay), against the
            // owner's `prepare` then re-read of `head`; also releases `s` to the taker.
            match self
                .head
                .compare_exchange_weak(h, s, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(cur) => h = cur,
            }
        }
        // `self` may belong to a recycled cache by now (the owner saw `s` and went on): then
        // this is at worst a spurious wake-up of the next owner (see `Parker`). Caches are
        // never unmapped, so the memory is valid.
        self.waiter.wake();
    }

    /// True if nothing was pushed since the last `take_all`.
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Takes every span pushed so far, as an iterator-like chain: follow with [`next_in_stack`].
    pub fn take_all(&self) -> *mut Span {
        if self.is_empty() {
            return ptr::null_mut();
        }
        self.head.swap(ptr::null_mut(), Ordering::Acquire)
    }

    /// Sleeps in the kernel until the stack is not empty. Only the stack's owner may call it
    /// (one waiter at a time), and only when a push is sure to come (a remote freer won a
    /// parked span's `PARKED -> 0` CAS and has yet to push it): nothing else would wake it.
    /// Returns whether it slept at all (for the loom models).
    pub fn wait_nonempty(&self) -> bool {
        let mut slept = false;
        while self.head.load(Ordering::SeqCst).is_null() {
            self.waiter.prepare();
            if !self.head.load(Ordering::SeqCst).is_null() {
                self.waiter.cancel();
                break;
            }
            self.waiter.park();
            slept = true;
        }
        slept
    }
}

/// The span after `s` in a chain returned by [`SpanStack::take_all`].
///
/// # Safety
/// `s` came from such a chain.
pub unsafe fn next_in_stack(s: *mut Span) -> *mut Span {
    // SAFETY: caller's contract; the link was written before the push that published `s`.
    unsafe { (*s).stack_next.load(Ordering::Relaxed) }
}

/// An intrusive doubly linked list of spans owned by one owner (a cache's partial or full
/// list for one class, a central partial list, the page heap's span pool).
pub struct SpanList {
    head: Cell<*mut Span>,
    len: Cell<usize>,
}

impl Default for SpanList {
    fn default() -> Self {
        Self::new()
    }
}

impl SpanList {
    /// An empty list.
    pub const fn new() -> SpanList {
        SpanList {
            head: Cell::new(ptr::null_mut()),
            len: Cell::new(0),
        }
    }
    /// Whether the list holds no span.
    pub fn is_empty(&self) -> bool {
        self.head.get().is_null()
    }
    /// Spans on the list.
    pub fn len(&self) -> usize {
        self.len.get()
    }
    /// The first span, null if none.
    pub fn first(&self) -> *mut Span {
        self.head.get()
    }

    /// Pushes `s` at the front and tags it.
    ///
    /// # Safety
    /// The caller owns the list and `s`, and `s` is on no list.
    pub unsafe fn push(&self, s: *mut Span, tag: ListTag) {
        // SAFETY: caller owns `s` and the list's spans; links are owner fields.
        unsafe {
            debug_assert_eq!((*s).list.get(), ListTag::None);
            let h = self.head.get();
            (*s).next.set(h);
            (*s).prev.set(ptr::null_mut());
            if !h.is_null() {
                (*h).prev.set(s);
            }
            (*s).set_list(tag);
        }
        self.head.set(s);
        self.len.set(self.len.get() + 1);
    }

    /// Unlinks `s`, which is on this list.
    ///
    /// # Safety
    /// The caller owns the list and `s`, and `s` is on this list.
    pub unsafe fn remove(&self, s: *mut Span) {
        // SAFETY: caller owns the list and its spans.
        unsafe {
            let (n, p) = ((*s).next.get(), (*s).prev.get());
            if p.is_null() {
                debug_assert_eq!(self.head.get(), s);
                self.head.set(n);
            } else {
                (*p).next.set(n);
            }
            if !n.is_null() {
                (*n).prev.set(p);
            }
            (*s).next.set(ptr::null_mut());
            (*s).prev.set(ptr::null_mut());
            (*s).set_list(ListTag::None);
        }
        self.len.set(self.len.get() - 1);
    }

    /// Removes and returns the first span, or null.
    ///
    /// # Safety
    /// The caller owns the list.
    pub unsafe fn pop(&self) -> *mut Span {
        let h = self.head.get();
        if !h.is_null() {
            // SAFETY: `h` is on this list, which the caller owns.
            unsafe { self.remove(h) };
        }
        h
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sizeclass::{size_to_class, PAGE_SIZE};

    fn small_span(class: usize) -> (Box<Span>, Vec<u8>) {
        let info = CLASSES[class];
        let mem = vec![0u8; info.npages as usize * PAGE_SIZE];
        let s = Box::new(Span::new());
        // SAFETY: fresh span, exclusively ours.
        unsafe { s.init_small(mem.as_ptr() as usize, class, true, 8) };
        (s, mem)
    }

    fn drain(s: &Span) -> Vec<usize> {
        let mut out = vec![];
        // SAFETY: the test owns the span.
        unsafe {
            loop {
                let p = s.alloc_from_window();
                if !p.is_null() {
                    out.push(p as usize);
                    continue;
                }
                if s.refill_window().unwrap() == 0 {
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn every_object_once_then_full() {
        for class in 1..CLASSES.len() {
            let (s, _mem) = small_span(class);
            let got = drain(&s);
            assert_eq!(got.len(), s.nelems(), "class {class}");
            let mut sorted = got.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), got.len());
            for (i, &a) in sorted.iter().enumerate() {
                assert_eq!(a, s.base() + i * s.elemsize());
            }
            // SAFETY: the test owns the span.
            unsafe { assert_eq!(s.nfree(), 0) };
        }
    }

    #[test]
    fn only_first_bytes_of_objects_are_objects() {
        for class in 1..CLASSES.len() {
            let (s, _mem) = small_span(class);
            let (size, n) = (s.elemsize(), s.nelems());
            let span = s.npages() * PAGE_SIZE;
            for i in [0, 1, n / 2, n - 1] {
                assert_eq!(s.object_index(s.base() + i * size), (i, true));
                assert!(
                    !s.object_index(s.base() + i * size + size / 2).1,
                    "class {class}"
                );
            }
            // The would-be objects in the tail waste are not objects.
            let mut off = n * size;
            while off < span {
                assert!(
                    !s.object_index(s.base() + off).1,
                    "class {class} tail {off}"
                );
                off += size;
            }
        }
        let l = Span::new();
        // SAFETY: fresh span, exclusively ours.
        unsafe { l.init_large(1 << 30, 3, true) };
        assert_eq!(l.object_index(1 << 30), (0, true));
        assert!(!l.object_index((1 << 30) + 16).1);
    }

    #[test]
    fn local_free_reuses_and_catches_double_free() {
        let (s, _mem) = small_span(size_to_class(16));
        let all = drain(&s);
        // SAFETY: the test owns the span; indices are in range.
        unsafe {
            assert_eq!(s.free_local(3), Ok(false));
            assert_eq!(s.nfree(), 1);
            assert_eq!(s.free_local(3), Err(FreeError::DoubleFree));
            assert_eq!(s.free_local(500), Ok(false));
            assert_eq!(s.nfree(), 2);
        }
        let again = drain(&s);
        assert_eq!(again, vec![all[3], all[500]]);
    }

    #[test]
    fn freeing_an_object_still_in_the_window_is_a_double_free() {
        let (s, _mem) = small_span(size_to_class(16));
        // SAFETY: the test owns the span.
        unsafe {
            assert_eq!(s.refill_window(), Ok(64));
            let p = s.alloc_from_window();
            assert_eq!(p as usize, s.base());
            // Object 1 is free, sitting in the window.
            assert_eq!(s.free_local(1), Err(FreeError::DoubleFree));
            // `nfree` counts free objects outside the window: 512 - 64 loaded + 1 freed.
            assert_eq!(s.free_local(0), Ok(false));
            assert_eq!(s.nfree(), s.nelems() - 63);
            assert_eq!(s.return_window(), 63);
            assert_eq!(s.nfree(), s.nelems());
        }
    }

    #[test]
    fn remote_frees_are_collected_and_double_frees_caught() {
        let (s, _mem) = small_span(size_to_class(64));
        let all = drain(&s);
        assert!(s.free_remote(7).is_ok());
        assert_eq!(s.free_remote(7), Err(FreeError::DoubleFree));
        assert!(s.free_remote(100).is_ok());
        // SAFETY: the test owns the span.
        unsafe {
            assert_eq!(s.collect_remote(), Ok(2));
            assert_eq!(s.nfree(), 2);
        }
        assert_eq!(drain(&s), vec![all[7], all[100]]);
        // A remote free of an object that is free locally is reported at collection.
        // SAFETY: the test owns the span.
        unsafe {
            assert_eq!(s.free_local(9), Ok(false));
            assert!(s.free_remote(9).is_ok());
            assert_eq!(s.collect_remote(), Err(9));
        }
    }

    #[test]
    fn owner_and_remote_free_of_one_object_is_caught_before_reuse() {
        for remote_first in [true, false] {
            let (s, _mem) = small_span(size_to_class(48));
            drain(&s);
            // SAFETY: the test owns the span; index 5 is in range.
            unsafe {
                if remote_first {
                    s.free_remote(5).unwrap();
                    assert_eq!(s.free_local(5), Ok(false));
                } else {
                    assert_eq!(s.free_local(5), Ok(false));
                    s.free_remote(5).unwrap();
                }
                // The next window would hand object 5 out while its remote bit is pending.
                assert_eq!(s.refill_window(), Err(5), "remote_first={remote_first}");
            }
        }
    }

    #[test]
    fn park_pushes_home_on_first_remote_free_only() {
        let (s, _mem) = small_span(size_to_class(32));
        drain(&s);
        let home = SpanStack::new();
        // SAFETY: the test owns the span; `home` outlives it.
        unsafe { assert!(s.park(&home)) };
        assert!(home.is_empty());
        s.free_remote(1).unwrap();
        s.free_remote(2).unwrap();
        let got = home.take_all();
        assert_eq!(got, &*s as *const Span as *mut Span);
        // SAFETY: `got` came from take_all.
        assert!(unsafe { next_in_stack(got) }.is_null());
        assert!(!s.is_parked());
    }

    #[test]
    fn park_is_cancelled_when_remote_frees_are_waiting() {
        let (s, _mem) = small_span(size_to_class(32));
        drain(&s);
        s.free_remote(5).unwrap();
        let home = SpanStack::new();
        // SAFETY: the test owns the span.
        unsafe {
            assert!(!s.park(&home));
            assert!(!s.is_parked());
            assert_eq!(s.collect_remote(), Ok(1));
        }
        assert!(home.is_empty());
    }

    #[test]
    fn list_push_remove_pop() {
        let spans: Vec<Box<Span>> = (0..4).map(|_| Box::new(Span::new())).collect();
        let p: Vec<*mut Span> = spans
            .iter()
            .map(|s| &**s as *const Span as *mut Span)
            .collect();
        let l = SpanList::new();
        // SAFETY: the test owns the list and the spans.
        unsafe {
            for &s in &p {
                l.push(s, ListTag::Partial);
            }
            assert_eq!(l.len(), 4);
            l.remove(p[2]);
            l.remove(p[3]);
            assert_eq!((*p[3]).list(), ListTag::None);
            assert_eq!(l.pop(), p[1]);
            assert_eq!(l.pop(), p[0]);
            assert!(l.pop().is_null());
            assert!(l.is_empty());
        }
    }
}
