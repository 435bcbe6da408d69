//! Marking: the tracer (one per mark worker, assist, barrier call and checkmark pass), the
//! mark worker threads, and the `gccheckmark` verification.
//!
//! # Span-ordered marking (Go's Green Tea)
//!
//! The unit of mark work is a *span*, not an object. A marker that reaches a white object in
//! another span sets the object's mark byte to *grey* ([`GREY`]) and queues the span; the
//! span gathers its grey objects in its own mark bytes until someone takes it from a queue
//! and *scans* it. A queue entry names the span and the grey object that queued it, or says
//! that its queuer greyed several objects there ([`MANY`]): then one pass over the span's
//! mark bytes turns every grey into black ([`MARKED`]), the queuer's and anyone else's. The
//! greys are traced from the highest address down, and a child that lies in the span being
//! scanned is marked black at once and traced by the same scan (depth-first inside the
//! span, `Scanning::todo`), so one visit to a span marks the subtree or list run that lives
//! in it, with the span's metadata in registers. Spans are typed (one layout per span), so
//! each type has its own span-scanning loop with its `Trace` code inlined (the descriptor's
//! [`super::ptr::Scan::span`]): no indirect call per object.
//!
//! Why downwards: a `Gc` is immutable once made, so an object is allocated after the objects
//! it points to (only a cell's later store points the other way), and goheap allocates a
//! span's slots in increasing order. The children of an object are mostly just below it, and
//! the scan walks the span's memory backwards, one line after another.
//!
//! Pointers out of the span are collected during the scan and marked in batches
//! ([`FAR_BATCH`]) in three passes (span map entries, span structs, mark bytes), each
//! prefetching what the next one reads, so that the cache misses of a batch overlap instead
//! of coming one after another; the queue entries a few places ahead have their span
//! struct, grey object and mark byte prefetched the same way.
//!
//! Two markers may scan one span at once (it was queued twice): each traces the objects it
//! turned from grey to black, and an object they both reached may be traced twice, which
//! only finds its children marked.
//!
//! # Why no object is left grey
//!
//! Every store of [`GREY`] is followed, by the same thread, by an entry for the span that
//! covers it, in a queue that thread will process or publish: a new entry naming the object
//! in its own ring, or an entry of its own still in that ring turned into [`MANY`], or a
//! buffer it pushes to the shared queue under its mutex. So a grey object is scanned after
//! the grey was stored, by the storing thread or by one that took the entry from the shared
//! queue (acquiring the mutex the push released). A marker never skips its entry because
//! *another* thread has the span queued: that thread's scan might read the byte before this
//! store reaches it (Dekker: a store then a load on each side, no fence), which is why Go
//! sets its marks with a locked OR and an ownership flag per span. Here the check is local
//! only: the last entry of the ring, and for mark workers a direct-mapped table of the spans
//! in their own ring (`Tracer::queued`; a slot is cleared when its span leaves the ring, so
//! a slot always names an entry still there). Black children found during a scan need no
//! entry: the scanner traces them itself before it goes idle. `gccheckmark` reports an
//! object left grey apart from one left white.

//! # Large slices: oblets
//!
//! A large object is a span of its own, and a span is one work item: a marker that took the
//! latency benchmark's index (`Gc<[GcCell<..>]>`, 12 MB, 1.5 million pointers whose targets
//! miss the cache) traced it whole, 40-60 ms, and when that marker was a mark assist the
//! mutator waited that long. As Go does (`scanobject`'s oblets), a large *slice* object is
//! traced in pieces of [`OBLET_BYTES`] of elements, each its own queue entry, so that any
//! marker takes one piece per entry and an assist's time budget bounds its pause again.
//! The entry stays two words ([`SpanRef`]'s invariant): for a large slice span, `first` is
//! the object's address (the entry that greyed it) or the address of an oblet's first
//! element, which always lies past the length word. Whoever turns the object black queues
//! every oblet after the first (Go does the same) and traces the first; the pieces spill
//! and are stolen as any entries are. The object's bytes are counted once, when it is
//! greyed; an oblet's scan counts the children it marks. The object's only mark byte is
//! black before any oblet of it is queued, so a pointer from an oblet to the object itself
//! finds it marked, and a marker's grey (which merges into its ring's entry for the span,
//! `grey_index`) never meets an oblet entry: it greys only white objects. Barriers queue
//! only the object's entry (they grey, never scan). The checkmark pass traces objects
//! whole, as before: it verifies the pieces' result, not their order.
//!
//! Why tracing an object in pieces at different times is sound: it is what the marker
//! already did within one object. A marker reading a slice's elements one after another
//! while mutators store into them never saw the object at one instant; what makes that
//! right is the deletion half of the barrier (design.md §11, soundness rule 4): every
//! element is a cell (rule 3), a store into it shades the value it overwrites, so a value
//! that was in an element when the mark started, or that a grey object or session put
//! there later, is either still there when the marker reads that element or was shaded when
//! it left, and a value a black session stores was reachable by it, so it is marked or
//! reachable from a grey object already (the same argument as for any field). That argument
//! is per element, and holds whatever the time between two elements' reads; oblets only
//! widen it. The pieces are fixed: a slice's length word is written before the object is
//! published and never changes, and the object, marked, lives until the sweep, which runs
//! after the mark. Termination (rule 5) waits for every queued entry, oblets included, so
//! the mark cannot end with a piece untraced. Other large objects (a big struct or array)
//! are still traced whole; design.md's known limits say so.
//!
//! # Setting a mark
//!
//! Marks are bytes (see [`super::span`]): a load, and a store if it was clear. No locked
//! instruction; two markers (or a marker and a barrier) racing on one object may both grey
//! it, and tracing an object twice only finds its children marked. The marked-bytes count can
//! then over-count by such objects (the sweep's counts are exact).
//!
//! # Work distribution
//!
//! A marker's ring of entries is FIFO (Green Tea's finding: spans left in a queue a while
//! gather more grey objects before their scan). The shared part is [`super::workqueue`]: a
//! worker holding more than 8 entries while another worker is idle, or more than 256 at
//! all, moves the older half to the shared list in one buffer, where idle workers (asleep
//! in the kernel) and assists take it. A deep tree fans out into spans that every worker can
//! take; a long list stays inside few spans and is marked by one worker, span by span,
//! without recursion.
//!
//! # Three kinds of tracer
//!
//! - **mark**: a mark worker's, an assist's and the root scan's; scans spans as above.
//! - **shade**: a barrier's (`barrier.rs`): for each object it greys it first enters the
//!   gate of the object's heap for reading, and only marks while that heap's phase is
//!   `MARK`; the spans it queued go to that heap's queue when it switches heap or finishes.
//! - **check**: `gccheckmark`'s; marks nothing, verifies that everything reachable is marked
//!   black, object by object, depth-first.
//!
//! # Workers
//!
//! A heap has up to `procs` worker threads, started on first use, asleep between cycles.
//! A cycle asks for some of them ([`Markers::start`]): a quarter of the cores for a
//! background cycle (Go's dedicated workers at 25%), but no more than the busy mutators
//! leave free, which then mark the rest of the quarter themselves in slices
//! (`pacer::mark_workers`, `fractional.rs`); every core for `Heap::collect`, whose caller
//! waits anyway.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, Weak};

use super::barrier::{marker_begin, Barrier, MARK};
use super::ptr::GcType;
use super::span::{span_of, span_slot, GcSpan, GREY, MARKED, MAX_OBJECTS};
use crate::sizeclass::obj_index;

/// A queued span (mark essay): the span, and the grey objects its queuer put there while
/// the entry was in its ring: one (`first`, its address, which lets a marker prefetch it
/// entries ahead without reading the span) or several ([`MANY`]: scan the whole span).
/// Spans are not freed while a mark runs, and a run's queues are empty before the next
/// sweep.
///
/// Invariant (the encoding of oblets, see the module essay): for a large span of a slice
/// type, `first` is either the object's address (`span.base`, or [`MANY`], which means the
/// same there), an entry for the grey object, or the address of the first element of an
/// oblet, which lies inside the object's elements and is never `span.base` (the elements
/// start after the length word); an oblet entry is queued only by the marker that turned
/// the object black. For every other span `first` is a grey object's address or [`MANY`].
/// Either way `first` is an address inside the span's memory, safe to prefetch.
#[derive(Clone, Copy)]
pub(crate) struct SpanRef {
    span: *const GcSpan,
    /// Address of the grey object that queued the span, or [`MANY`], or an oblet's first
    /// element.
    first: usize,
}

// SAFETY: a queued span is shared by design (its mark bytes are atomics, its other fields
// fixed while it is queued); the pointer is only dereferenced during the mark.
unsafe impl Send for SpanRef {}

/// `SpanRef::first`: the queuer greyed several objects of the span.
const MANY: usize = usize::MAX;

/// Ring entries ahead of the one being scanned whose span struct and object are prefetched.
const PREFETCH_AHEAD: usize = 8;

/// Bytes of a large slice's elements one work item traces (an *oblet*; module essay). Go
/// uses 128 KB; here an element of the latency benchmark's index costs 25-40 ns to trace
/// (its pointee's metadata misses the cache), so 128 KB (16,384 pointers) is 0.4-0.6 ms of
/// tracing, longer than an assist's budget ([`ASSIST_TIME`], 100 us) and than the pause
/// target; 16 KB (2,048 pointers) is 50-80 us, within the budget, and a 12 MB index is then
/// 750 entries, a few KB of queue against 1.5 million elements traced.
pub(crate) const OBLET_BYTES: usize = 16 << 10;

/// The most elements one oblet work item traced in this process (a test hook:
/// `goheap::gc::__largest_oblet`). Read by tests only; one load per oblet, a store only
/// when it grows.
static LARGEST_OBLET: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// See [`LARGEST_OBLET`].
pub(crate) fn largest_oblet() -> usize {
    LARGEST_OBLET.load(Ordering::Relaxed)
}

/// A slot of a mark worker's table of the spans in its ring.
#[derive(Clone, Copy)]
struct Queued {
    span: *const GcSpan,
    /// The entry's number in the ring (`Tracer::ring_head` counts the entries that left).
    seq: u64,
}

const NOT_QUEUED: Queued = Queued {
    span: core::ptr::null(),
    seq: 0,
};

/// The queue of spans shared between workers, and the termination count.
pub(crate) type MarkQueue = super::workqueue::WorkQueue<SpanRef>;

/// An object the checkmark pass has yet to visit.
#[derive(Clone, Copy)]
struct Grey {
    addr: usize,
    ty: &'static GcType,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Mark,
    Shade,
    Check,
}

/// Pointers out of a span marked together (`Tracer::flush_far`).
const FAR_BATCH: usize = 64;

/// Entries of a mark worker's table of the spans in its ring (a power of two).
const QUEUED_SLOTS: usize = 512;

/// The span a tracer is scanning. Written only by its tracer.
struct Scanning {
    /// The span's mark bytes.
    marks: *const AtomicU8,
    /// First byte; `len` bytes of objects from there (0: no span is being scanned).
    base: usize,
    len: usize,
    div_magic: u32,
    elemsize: usize,
    /// Objects of the span marked black and not yet traced, by index; capacity
    /// [`MAX_OBJECTS`] (each object enters once per scan), none for shading tracers.
    todo: Vec<u16>,
}

impl Scanning {
    const NONE: Scanning = Scanning {
        marks: core::ptr::null(),
        base: 0,
        len: 0,
        div_magic: 0,
        elemsize: 0,
        todo: Vec::new(),
    };
}

/// The marker's handle, passed to [`Trace::trace`](super::Trace::trace).
///
/// ```
/// use goheap::gc::{Gc, Heap, Trace, Tracer};
///
/// // A container `#[derive(Trace)]` cannot see into: report each `Gc` to the tracer.
/// struct Pair<'gc> {
///     halves: [Option<Gc<'gc, u64>>; 2],
/// }
///
/// // SAFETY: every `Gc` the pair holds is reported.
/// unsafe impl Trace for Pair<'_> {
///     const NEEDS_TRACE: bool = true;
///     fn trace(&self, t: &mut Tracer) {
///         for h in self.halves.iter().flatten() {
///             h.trace(t);
///         }
///     }
/// }
///
/// Heap::new().mutator().enter(|cx| {
///     let p = cx.alloc(Pair { halves: [Some(cx.alloc(1)), None] });
///     assert_eq!(p.halves[0].as_deref(), Some(&1));
/// });
/// ```
pub struct Tracer {
    mode: Mode,
    /// Mark and shade modes: spans holding grey objects this tracer queued, oldest first.
    ring: VecDeque<SpanRef>,
    /// Entries that have left `ring` (the number of its front entry).
    ring_head: u64,
    /// Mark workers: the spans in `ring`, direct-mapped by struct address (null: free);
    /// empty for other tracers (module essay: why no object is left grey).
    queued: Vec<Queued>,
    /// Mark mode: the span being scanned.
    cur: Scanning,
    /// Mark mode, during a scan: pointers out of the span, marked in batches of
    /// [`FAR_BATCH`] whose metadata loads overlap (`flush_far`); capacity 0 otherwise.
    far: Vec<usize>,
    /// The span of the last object greyed outside `cur`: consecutive marks mostly hit the
    /// same span.
    last: *const GcSpan,
    last_base: usize,
    last_len: usize,
    pub(crate) marked_bytes: usize,
    /// Check mode: objects left to visit.
    check: Vec<Grey>,
    /// Check mode: objects visited.
    seen: HashSet<usize>,
    /// Check mode: the object being traced (0: a root), for the report.
    parent: usize,
    /// Shade mode: the heap whose gate is held for reading (null: none).
    gate: *const Barrier,
    /// Shade mode: that heap is marking.
    gate_on: bool,
    /// Shade mode: a gate was entered, and every gate entered was marking.
    all_on: Option<bool>,
    /// Mark mode: where a worker adds its marked bytes when it goes idle (null: nowhere).
    sink: *const core::sync::atomic::AtomicUsize,
}

impl Tracer {
    fn with_mode(mode: Mode) -> Tracer {
        Tracer {
            mode,
            ring: VecDeque::new(),
            ring_head: 0,
            queued: Vec::new(),
            cur: Scanning::NONE,
            far: Vec::new(),
            last: core::ptr::null(),
            last_base: 0,
            last_len: 0,
            marked_bytes: 0,
            check: Vec::new(),
            seen: HashSet::new(),
            parent: 0,
            gate: core::ptr::null(),
            gate_on: false,
            all_on: None,
            sink: core::ptr::null(),
        }
    }

    /// A mark worker's tracer (also the root scan's).
    pub(crate) fn new() -> Tracer {
        let mut t = Tracer::with_mode(Mode::Mark);
        t.ring = VecDeque::with_capacity(super::workqueue::LOCAL_MAX + 1);
        t.queued = vec![NOT_QUEUED; QUEUED_SLOTS];
        t.cur.todo = Vec::with_capacity(MAX_OBJECTS);
        t.far = Vec::with_capacity(FAR_BATCH);
        t
    }

    /// A barrier's tracer (module essay); end it with [`Self::finish_shading`].
    pub(crate) fn shading() -> Tracer {
        Tracer::with_mode(Mode::Shade)
    }

    /// A barrier's tracer that starts inside `b`'s gate, which the caller entered and saw
    /// marking; the tracer leaves it when it finishes.
    pub(crate) fn shading_holding(b: &Barrier) -> Tracer {
        let mut t = Tracer::with_mode(Mode::Shade);
        t.gate = b;
        t.gate_on = true;
        t.all_on = Some(true);
        t
    }

    /// A tracer for the `gccheckmark` pass: it marks nothing, but visits everything
    /// reachable and verifies that the real mark found it.
    pub(crate) fn checker() -> Tracer {
        let mut t = Tracer::with_mode(Mode::Check);
        t.check = Vec::with_capacity(1024);
        t
    }

    /// The span of `addr`, through the one-entry cache.
    #[inline(always)]
    fn span(&mut self, addr: usize) -> &'static GcSpan {
        if addr.wrapping_sub(self.last_base) < self.last_len {
            // SAFETY: `last` is the live span covering [last_base, last_base + last_len).
            unsafe { &*self.last }
        } else {
            let s = span_of(addr);
            self.last = s;
            self.last_base = s.base;
            self.last_len = if s.large { 1 } else { s.nelems * s.elemsize };
            s
        }
    }

    /// Marks the object at (or holding, for tiny blocks) `addr`; greys it if it was white.
    /// Budget: a child in the span being scanned costs about 10 instructions (compare,
    /// multiply, byte load, and if white a byte store and two bit operations).
    #[inline(always)]
    pub(crate) fn mark(&mut self, addr: usize) {
        let off = addr.wrapping_sub(self.cur.base);
        if off < self.cur.len {
            let i = obj_index(off, self.cur.div_magic);
            // SAFETY: `cur.marks` are the mark bytes of the live span being scanned, and `i`
            // is one of its objects (`off < cur.len`).
            let m = unsafe { &*self.cur.marks.add(i) };
            if m.load(Ordering::Relaxed) == 0 {
                m.store(MARKED, Ordering::Relaxed);
                self.cur.todo.push(i as u16);
            }
            return;
        }
        if self.cur.len != 0 {
            // Scanning: batch the pointers out of the span.
            prefetch(span_slot(addr) as usize);
            self.far.push(addr);
            if self.far.len() == FAR_BATCH {
                self.flush_far();
            }
            return;
        }
        self.mark_far(addr);
    }

    /// Marks the batch of pointers out of the span being scanned in three passes, each
    /// starting the loads the next one needs, so that the cache misses of a batch (its
    /// span structs, then its mark bytes) overlap instead of following one another.
    #[inline(never)]
    fn flush_far(&mut self) {
        let n = self.far.len();
        let mut spans = [core::ptr::null::<GcSpan>(); FAR_BATCH];
        let mut index = [0u32; FAR_BATCH];
        for (slot, &addr) in spans.iter_mut().zip(&self.far) {
            let s = span_of(addr);
            *slot = s;
            prefetch(s as *const GcSpan as usize);
        }
        for ((i, &s), &addr) in index.iter_mut().zip(&spans[..n]).zip(&self.far) {
            // SAFETY: `spans` holds live spans (each holds an object a `Gc` pointed to).
            let s = unsafe { &*s };
            *i = s.index_of(addr) as u32;
            prefetch(s.marks()[*i as usize].as_ptr() as usize);
        }
        for (&s, &i) in spans[..n].iter().zip(&index) {
            // SAFETY: as above.
            let s: &'static GcSpan = unsafe { &*s };
            self.grey_index(s, i as usize);
        }
        self.far.clear();
    }

    /// [`Self::mark`] for an object outside the span being scanned (and for the shade and
    /// check modes, which scan no span).
    fn mark_far(&mut self, addr: usize) {
        let s = self.span(addr);
        match self.mode {
            Mode::Mark => self.grey(s, addr),
            Mode::Shade => self.shade_far(s, addr),
            Mode::Check => self.check_mark(s, addr),
        }
    }

    /// Marks the object of `s` holding `addr`: black if its type has no pointers, else grey
    /// with `s` queued (module essay).
    #[inline(always)]
    fn grey(&mut self, s: &'static GcSpan, addr: usize) {
        self.grey_index(s, s.index_of(addr));
    }

    /// [`Self::grey`] for object `i` of `s`.
    #[inline(always)]
    fn grey_index(&mut self, s: &'static GcSpan, i: usize) {
        let m = s.mark_byte(i);
        if m.load(Ordering::Relaxed) != 0 {
            return;
        }
        self.marked_bytes += s.elemsize;
        // SAFETY: descriptors are 'static.
        if s.ty.is_null() || unsafe { (*s.ty).trace.is_none() } {
            m.store(MARKED, Ordering::Relaxed);
            return;
        }
        // Release, paired with the scan's acquire load of the byte: a scan of the span that
        // finds this grey (possibly before this thread's entry reaches it) sees everything
        // written before it, such as a new object a barrier just shaded (TSan found the scan
        // reading an object's initialisation otherwise; free on x86).
        m.store(GREY, Ordering::Release);
        let p: *const GcSpan = s;
        if let Some(b) = self.ring.back_mut() {
            if b.span == p {
                b.first = MANY;
                return;
            }
        }
        if !self.queued.is_empty() {
            let h = queued_slot(p);
            let q = self.queued[h];
            if q.span == p {
                let at = (q.seq - self.ring_head) as usize;
                self.ring[at].first = MANY;
                return;
            }
            self.queued[h] = Queued {
                span: p,
                seq: self.ring_head + self.ring.len() as u64,
            };
        }
        self.ring.push_back(SpanRef {
            span: p,
            first: s.addr_of(i),
        });
    }

    /// Forgets `p`'s entry in the table of spans in the ring (it left the ring).
    #[inline(always)]
    fn forget(&mut self, p: *const GcSpan) {
        if !self.queued.is_empty() {
            let h = queued_slot(p);
            if self.queued[h].span == p {
                self.queued[h] = NOT_QUEUED;
            }
        }
    }

    #[cold]
    fn shade_far(&mut self, s: &'static GcSpan, addr: usize) {
        if !core::ptr::eq(s.barrier, self.gate) {
            // SAFETY: the span's barrier belongs to its heap, alive while its objects are.
            self.switch_gate(unsafe { &*s.barrier });
        }
        if self.gate_on {
            self.grey(s, addr);
        }
    }

    /// Scans span `s`: turns its grey objects black and traces them in address order with
    /// `trace`, and the objects of `s` they reach, until no object of `s` it marked is left
    /// untraced (module essay). Returns the objects traced. Each type instantiates it once
    /// ([`super::ptr::Scan::span`]), so `trace` is inlined.
    ///
    /// # Safety
    /// `s` is a scan span of the marking heap, queued during this mark; `trace` traces an
    /// object of its type.
    #[inline(always)]
    pub(crate) unsafe fn scan_span(
        &mut self,
        s: &GcSpan,
        first: usize,
        trace: impl Fn(usize, &mut Tracer),
    ) -> usize {
        debug_assert!(self.cur.len == 0, "goheap: nested span scans");
        self.cur.marks = s.marks().as_ptr();
        self.cur.base = s.base;
        self.cur.len = if s.large { 1 } else { s.nelems * s.elemsize };
        self.cur.div_magic = s.div_magic;
        self.cur.elemsize = s.elemsize;
        if first == MANY {
            // Greys in increasing order, so that they are traced in decreasing order.
            for (i, m) in s.marks().iter().enumerate() {
                if m.load(Ordering::Acquire) == GREY {
                    m.store(MARKED, Ordering::Relaxed);
                    self.cur.todo.push(i as u16);
                }
            }
        } else {
            // The queuer greyed one object here; others' greys are in their own entries.
            let i = s.index_of(first);
            let m = s.mark_byte(i);
            if m.load(Ordering::Acquire) == GREY {
                m.store(MARKED, Ordering::Relaxed);
                self.cur.todo.push(i as u16);
            }
        }
        let greys = self.cur.todo.len();
        self.prefetch_ahead();
        let (mut ahead, ahead_end) = match self.ring.front() {
            // SAFETY: queued spans live until the mark ends.
            Some(next) if next.first == MANY => unsafe {
                let ns = &*next.span;
                (ns.base, ns.base + ns.nelems * ns.elemsize)
            },
            _ => (0, 0),
        };
        let mut n = 0;
        while let Some(i) = self.cur.todo.pop() {
            if ahead < ahead_end {
                prefetch(ahead);
                ahead += 64;
            }
            trace(s.addr_of(i as usize), self);
            n += 1;
        }
        // Every object traced was grey or marked here: those are the bytes this scan marked.
        self.marked_bytes += (n - greys) * self.cur.elemsize;
        if !self.far.is_empty() {
            self.flush_far();
        }
        self.cur.base = 0;
        self.cur.len = 0;
        n
    }

    /// Loads for the entries to come start now: the span struct and grey object (or oblet)
    /// of the one PREFETCH_AHEAD on (no read of its span needed), and the grey's mark byte
    /// of the one after next (its span struct was prefetched earlier; an oblet's entry
    /// names its large object's only mark byte, a harmless load).
    #[inline(always)]
    fn prefetch_ahead(&self) {
        if let Some(e) = self.ring.get(PREFETCH_AHEAD - 1) {
            prefetch(e.span as usize);
            if e.first != MANY {
                prefetch(e.first);
            }
        }
        if let Some(e) = self.ring.get(1) {
            if e.first != MANY {
                // SAFETY: queued spans live until the mark ends.
                let es = unsafe { &*e.span };
                prefetch(es.marks()[es.index_of(e.first)].as_ptr() as usize);
            }
        }
    }

    /// Scans one work item of a large slice object (module essay: oblets): `s` is its span,
    /// `first` the entry's (the object, or an oblet's first element: [`SpanRef`]'s
    /// invariant), the elements are `size` bytes each from `s.base + data_off`. The entry for
    /// the object turns it black if it is grey, queues the oblets after the first, and
    /// traces the first; an oblet's entry traces its elements. `trace(from, n, t)` traces
    /// the `n` elements from address `from`. Returns the elements traced.
    ///
    /// # Safety
    /// `s` is a large scan span of the marking heap holding a slice object whose elements
    /// are `size` (> 0) bytes from `s.base + data_off`, queued during this mark; `first`
    /// is as [`SpanRef`]'s invariant says; `trace` traces elements of its type.
    #[inline(always)]
    pub(crate) unsafe fn scan_oblet(
        &mut self,
        s: &GcSpan,
        first: usize,
        size: usize,
        data_off: usize,
        trace: impl Fn(usize, usize, &mut Tracer),
    ) -> usize {
        debug_assert!(self.cur.len == 0, "goheap: nested span scans");
        debug_assert!(s.large && size > 0);
        // SAFETY: caller's contract: the object's first word is its length, fixed for its
        // life (a `Gc<[T]>` cannot change length), and the object lives until the sweep.
        let len = unsafe { *(s.base as *const usize) };
        let data = s.base + data_off;
        let per = (OBLET_BYTES / size).max(1);
        let start = if first == s.base || first == MANY {
            let m = s.mark_byte(0);
            if m.load(Ordering::Acquire) != GREY {
                // Another entry for the object (two markers greyed it at once) won.
                return 0;
            }
            m.store(MARKED, Ordering::Relaxed);
            // The oblets after the first, oldest first; they are this ring's (or, once
            // spilled or published, the shared queue's) until traced, so the mark cannot
            // terminate before each is (termination, design.md §11 rule 5).
            let mut at = per;
            while at < len {
                self.ring.push_back(SpanRef {
                    span: s,
                    first: data + at * size,
                });
                at += per;
            }
            0
        } else {
            debug_assert!(
                first > data && first < data + len * size && (first - data) % (per * size) == 0,
                "goheap: {first:#x} is no oblet of the slice at {:#x}",
                s.base
            );
            (first - data) / size
        };
        let n = per.min(len - start);
        if n > LARGEST_OBLET.load(Ordering::Relaxed) {
            LARGEST_OBLET.fetch_max(n, Ordering::Relaxed);
        }
        self.prefetch_ahead();
        // As a span scan: the object's own address is "in the span" (a pointer to the
        // object finds it black), every other pointer goes to the far batches.
        self.cur.marks = s.marks().as_ptr();
        self.cur.base = s.base;
        self.cur.len = 1;
        self.cur.div_magic = s.div_magic;
        self.cur.elemsize = s.elemsize;
        trace(data + start * size, n, self);
        if !self.far.is_empty() {
            self.flush_far();
        }
        // The object was black before any oblet of it was queued (and the entry that
        // carries an oblet to another marker orders that store before its reads), so a
        // pointer to itself found it marked.
        debug_assert!(self.cur.todo.is_empty());
        self.cur.todo.clear();
        self.cur.base = 0;
        self.cur.len = 0;
        n
    }

    /// Scans one queued span with its type's loop.
    #[inline(always)]
    fn scan(&mut self, e: SpanRef) -> usize {
        // SAFETY: queued spans live until the mark ends, and only scan spans are queued
        // (`grey`), whose descriptors are 'static and have a `Scan`.
        unsafe {
            let s = &*e.span;
            ((*s.ty).trace.unwrap_unchecked().span)(s, e.first, self)
        }
    }

    /// Shade mode: hands what was greyed to the held heap's queue, leaves its gate, enters
    /// `b`'s.
    fn switch_gate(&mut self, b: &Barrier) {
        self.release_gate();
        b.gate.read();
        self.gate = b;
        self.gate_on = b.phase.load(Ordering::SeqCst) == MARK;
        self.all_on = Some(self.all_on.unwrap_or(true) && self.gate_on);
    }

    fn release_gate(&mut self) {
        if self.gate.is_null() {
            return;
        }
        // SAFETY: set from a live heap's barrier, whose gate we hold (so the heap is marking
        // or at least alive).
        let b = unsafe { &*self.gate };
        self.publish(&b.queue);
        if self.marked_bytes > 0 {
            b.marked.fetch_add(self.marked_bytes, Ordering::Relaxed);
            self.marked_bytes = 0;
        }
        b.gate.read_done();
        self.gate = core::ptr::null();
        self.gate_on = false;
    }

    /// Shade mode: whether the last heap entered is marking.
    pub(crate) fn shading_active(&self) -> bool {
        self.gate_on
    }

    /// Shade mode: publishes what was greyed and leaves the gate; true when something was
    /// shaded and every heap it belonged to was marking.
    pub(crate) fn finish_shading(mut self) -> bool {
        self.release_gate();
        self.all_on == Some(true)
    }

    /// Hands the queued spans to `q` unless its lock is held (an assist's end: see
    /// `help`); false when they are still here.
    fn try_publish(&mut self, q: &MarkQueue) -> bool {
        if self.ring.is_empty() {
            return true;
        }
        let n = self.ring.len() as u64;
        match q.try_push(Vec::from(core::mem::take(&mut self.ring))) {
            Ok(()) => {
                self.queued.fill(NOT_QUEUED);
                self.ring_head += n;
                true
            }
            Err(v) => {
                self.ring = v.into();
                false
            }
        }
    }

    /// Hands the queued spans to `q` (the root scan's tracer, an assist, a shade).
    pub(crate) fn publish(&mut self, q: &MarkQueue) {
        if !self.ring.is_empty() {
            self.queued.fill(NOT_QUEUED);
            self.ring_head += self.ring.len() as u64;
            q.push(Vec::from(core::mem::take(&mut self.ring)));
        }
    }

    #[cold]
    fn check_mark(&mut self, s: &GcSpan, addr: usize) {
        let i = s.index_of(addr);
        let obj = s.addr_of(i);
        if !self.seen.insert(obj) {
            return;
        }
        let mark = s.mark_byte(i).load(Ordering::Relaxed);
        if mark != MARKED {
            let name = if s.ty.is_null() {
                "goheap tiny block"
            } else {
                // SAFETY: descriptors are 'static.
                unsafe { ((*s.ty).name)() }
            };
            let from = if self.parent == 0 {
                "a root".to_string()
            } else {
                let p = span_of(self.parent);
                // SAFETY: descriptors are 'static; a parent is a scan object.
                let pname = unsafe { ((*p.ty).name)() };
                format!(
                    "object {:#x} of type {pname} (span {:#x}, object {} of {})",
                    self.parent,
                    p.base,
                    p.index_of(self.parent),
                    p.nelems
                )
            };
            let what = if mark == GREY {
                "was greyed but never scanned"
            } else {
                "was not marked"
            };
            panic!(
                "goheap gccheckmark: object {obj:#x} of type {name} (span {:#x}, object {i} of {}, {} bytes) is reachable but {what}; reached from {from}",
                s.base, s.nelems, s.elemsize
            );
        }
        if !s.ty.is_null() {
            // SAFETY: descriptors are 'static.
            let ty: &'static GcType = unsafe { &*s.ty };
            if ty.trace.is_some() {
                self.check.push(Grey { addr: obj, ty });
            }
        }
    }

    /// Runs a single-threaded pass to the end (checkmark).
    pub(crate) fn run_alone(&mut self) {
        while let Some(g) = self.check.pop() {
            self.parent = g.addr;
            // SAFETY: `g.addr` is a marked, reachable object of type `g.ty` (a scan type),
            // and every mutator is held outside its sessions.
            unsafe { (g.ty.trace.unwrap_unchecked().object)(g.addr, self) };
        }
    }
}

/// Starts loading the object at `addr` (it is traced soon).
#[inline(always)]
fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; nothing is dereferenced.
    unsafe {
        core::arch::x86_64::_mm_prefetch(addr as *const i8, core::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// The slot of span struct `p` in a worker's table of queued spans.
#[inline(always)]
fn queued_slot(p: *const GcSpan) -> usize {
    // Span structs are at least 448 bytes apart.
    (p as usize >> 7) & (QUEUED_SLOTS - 1)
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // A shade interrupted by a panicking `Trace` impl must not keep the gate closed.
        if self.mode == Mode::Shade {
            self.release_gate();
        }
    }
}

use super::workqueue::Worker as _;

/// Marked bytes a worker counts before it adds them to the heap's count (one relaxed
/// `fetch_add` per 64 KiB marked: a few thousand objects).
const PUBLISH_MARKED: usize = 64 << 10;

impl Tracer {
    /// Adds the bytes marked so far to the heap's count (workers; assists add theirs at the
    /// end of the assist).
    fn flush_marked(&mut self) {
        if !self.sink.is_null() && self.marked_bytes > 0 {
            // SAFETY: the sink is the heap's counter, alive while its worker runs.
            unsafe { (*self.sink).fetch_add(self.marked_bytes, Ordering::Relaxed) };
            self.marked_bytes = 0;
        }
    }
}

impl super::workqueue::Worker<SpanRef> for Tracer {
    #[inline(always)]
    fn next(&mut self) -> Option<SpanRef> {
        let e = self.ring.pop_front()?;
        self.ring_head += 1;
        self.forget(e.span);
        Some(e)
    }

    #[inline(always)]
    fn local(&self) -> usize {
        self.ring.len()
    }

    fn spill(&mut self) -> Vec<SpanRef> {
        let out: Vec<SpanRef> = self.ring.drain(..self.ring.len() / 2).collect();
        self.ring_head += out.len() as u64;
        for e in &out {
            self.forget(e.span);
        }
        out
    }

    fn take(&mut self, buf: Vec<SpanRef>) {
        self.ring.extend(buf);
    }

    fn on_work(&mut self) {
        // The buffer was pushed after its mark started; this fence orders what the worker
        // reads after that start (barrier.rs), also for a worker that joined a run late.
        marker_begin();
        // A worker late to leave one mark's run stays for the next (workqueue.rs); spans
        // freed between the two may have had their structs reused: forget the cached one.
        self.last_len = 0;
    }

    fn on_idle(&mut self) {
        self.flush_marked();
    }

    #[inline(always)]
    fn process(&mut self, s: SpanRef) {
        // Only scan spans are queued; their grey objects were marked in this cycle
        // (reachable or allocated, not swept before the cycle ends) and initialised before
        // they were published. Concurrent changes go through cells, read atomically.
        self.scan(s);
        // A worker's progress is the assists' credit (`pacer::assist_debt` reads the heap's
        // marked bytes): published every 64 KiB, not only when the worker goes idle, or the
        // mutators would see a lone busy worker as no progress and pay for all of it.
        if self.marked_bytes >= PUBLISH_MARKED {
            self.flush_marked();
        }
    }
}

/// Objects a mark assist traces at most before the mutator goes on (about 100 us; it
/// stops after the span that passes it, at most 1024 objects more, or the oblet, whose
/// elements count as objects): bounds the pause an assist makes.
const ASSIST_OBJECTS: usize = 4096;

/// ... and time: on a large pointer graph every object scanned misses the cache, and 4096
/// objects took 2 ms and more (the latency benchmark's 6 million objects; `perf sched` saw
/// those pauses on the CPU: 11 of 25 pauses of 2 ms or more in one run, 0 to 1 after).
/// Checked after each span (one clock read, about 20 ns, per span of up to 1024 objects)
/// and after each oblet of a large slice (module essay: an assist that took the latency
/// benchmark's 12 MB index whole traced 1.5 million pointers in one go, 40-60 ms). A large
/// object that is not a slice is still traced whole.
const ASSIST_TIME: std::time::Duration = std::time::Duration::from_micros(100);

/// Spans an assist traces past its budget while the work queue's lock is held by another
/// thread, before it waits for the lock to hand over what is left.
const PUBLISH_TRIES: usize = 8;

/// A mark assist (Go's `gcAssistAlloc`): a mutator that takes a span while its heap marks
/// past the trigger traces grey objects worth `debt` bytes first (the pacer's share of the
/// mark for that much allocation, `pacer::assist_debt`), so that allocation cannot outrun
/// marking. It holds the heap's gate for reading meanwhile, so that mark termination never
/// ends the mark while it holds grey objects; it never waits for the mark to end (a session
/// holding up termination makes the heap overshoot, and the overshoot shows in gctrace's
/// heap figures). Returns the bytes it marked.
///
/// An assist is a pause, so it never sleeps: not on the gate while mark termination holds
/// it (the assist is skipped), and not on the work queue's lock while a worker holds it
/// (the assist ends, `WorkQueue::steal`, or traces more before it hands its rest over);
/// the allocation goes on, and the next span it takes assists again.
pub(crate) fn assist(b: &Barrier, debt: usize) -> usize {
    help(
        b,
        HelpBudget {
            bytes: debt,
            objects: ASSIST_OBJECTS,
            time: ASSIST_TIME,
        },
    )
}

/// A slice of fractional marking on a mutator's thread (`fractional.rs`): as an assist, for
/// `time` and no byte or object bound. Returns the bytes it marked.
pub(crate) fn fractional(b: &Barrier, time: std::time::Duration) -> usize {
    help(
        b,
        HelpBudget {
            bytes: usize::MAX,
            objects: usize::MAX,
            time,
        },
    )
}

/// How much a mutator marks before it goes on (an assist, a fractional slice); it stops at
/// the first bound reached, after the span that passes it.
struct HelpBudget {
    bytes: usize,
    objects: usize,
    time: std::time::Duration,
}

/// The collector's share once every grey session has passed, when no mark worker is in the
/// run (refused by a closing heap, or not yet run by the OS): takes the waiting buffers
/// (waiting for the queue's lock, unlike an assist) and traces them as a worker does,
/// sharing with idle workers when its own queue is deep (`WorkQueue::help_drain`), until
/// no buffer is left. Holds the gate meanwhile, as an assist does.
///
/// It once traced a bounded share, as an assist, and pushed the rest back: that push woke
/// the idle worker, and the collector stole the buffer again before the worker got the
/// lock. `perf sched` counted 18,000 such wake-ups in one run of binary-trees 21 with two
/// mutators, each a worker that found nothing and preempted a mutator to find it.
pub(crate) fn take_waiting(b: &Barrier) {
    b.gate.read();
    if b.phase.load(Ordering::SeqCst) == MARK {
        let mut t = Tracer::with_mode(Mode::Mark);
        t.cur.todo = Vec::with_capacity(MAX_OBJECTS);
        t.far = Vec::with_capacity(FAR_BATCH);
        t.sink = &b.marked;
        b.queue.help_drain(&mut t);
        t.flush_marked();
    }
    b.gate.read_done();
}

fn help(b: &Barrier, budget: HelpBudget) -> usize {
    if !b.gate.try_read() {
        // Mark termination is checking whether the mark is over (`Gate::try_read`).
        return 0;
    }
    let mut marked = 0;
    let marking = b.phase.load(Ordering::SeqCst) == MARK;
    if marking && !b.queue.has_buffers() {
        // Nothing to take (most assists near a mark's end): no tracer to set up, and no
        // report of quiet (with no worker the queue is quiet whenever it is empty, and
        // each such assist woke the collector: 21,000 wake-up calls in one run of
        // binary-trees 20 with two mutators).
        b.queue.want();
    } else if marking {
        let mut t = Tracer::with_mode(Mode::Mark);
        t.cur.todo = Vec::with_capacity(MAX_OBJECTS);
        t.far = Vec::with_capacity(FAR_BATCH);
        let mut n = 0;
        let start = std::time::Instant::now();
        while n < budget.objects && t.marked_bytes < budget.bytes && start.elapsed() < budget.time {
            if t.ring.is_empty() {
                let Some(buf) = b.queue.steal(false) else {
                    if !b.queue.has_buffers() {
                        b.queue.want();
                    }
                    break;
                };
                // The buffer was pushed after the mark started (barrier.rs: a marker's
                // fence).
                marker_begin();
                t.take(buf);
            }
            let e = t.next().expect("non-empty");
            n += t.scan(e);
        }
        // What is left goes to the workers. While a worker holds the queue's lock, trace
        // a span more instead of sleeping on it (a holder the OS took off the CPU held
        // assists up for 10 ms); after PUBLISH_TRIES spans, wait for the lock after all.
        let mut tries = 0;
        while !t.try_publish(&b.queue) {
            tries += 1;
            if tries >= PUBLISH_TRIES {
                t.publish(&b.queue);
                break;
            }
            let Some(e) = t.next() else { break };
            t.scan(e);
        }
        marked = t.marked_bytes;
        b.marked.fetch_add(marked, Ordering::Relaxed);
        // Every helper that looked at the queue's list reports, even one that found it
        // empty: its steal may have held the lock while the helper that took the last
        // buffer tried to report (`WorkQueue::helper_done`: the holder comes after). A
        // helper that never looked (the early return above, found the list empty
        // without the lock) held nothing and need not report.
        b.queue.helper_done();
    }
    b.gate.read_done();
    marked
}

/// The mark worker threads of a heap, and the fractional share of the running mark.
pub(crate) struct Markers {
    job: Mutex<MarkJob>,
    /// Workers wait here for a cycle.
    start_cv: Condvar,
    /// Share of its time each busy mutator marks in the running mark, in millionths
    /// (`pacer::mark_workers`; 0: dedicated workers cover the quarter). The collector
    /// writes it at mark start and zeroes it when it asks for workers instead; mutators
    /// read it (relaxed: a stale share only makes one refill mark a slice more or less).
    fractional_ppm: AtomicU32,
    /// How long the collector lets the mutators carry a mark once no grey session is left
    /// (`fractional::PATIENCE`; tests shorten or lengthen it), nanoseconds. Read by the
    /// collector.
    patience_ns: AtomicU64,
}

/// What the workers are asked to do. Under `Markers::job`.
struct MarkJob {
    /// Incremented for each run (and for exit).
    epoch: u64,
    /// Workers wanted in this run (those with a lower index join).
    wanted: usize,
    /// Threads started so far.
    started: usize,
    exit: bool,
}

impl Markers {
    pub fn new() -> Markers {
        Markers {
            job: Mutex::new(MarkJob {
                epoch: 0,
                wanted: 0,
                started: 0,
                exit: false,
            }),
            start_cv: Condvar::new(),
            fractional_ppm: AtomicU32::new(0),
            patience_ns: AtomicU64::new(super::fractional::PATIENCE.as_nanos() as u64),
        }
    }

    /// How long the collector lets the mutators carry a mark alone (see the field).
    pub fn patience(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.patience_ns.load(Ordering::Relaxed))
    }

    /// Test hook: sets [`Self::patience`].
    pub fn set_patience(&self, d: std::time::Duration) {
        self.patience_ns
            .store(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// The fractional share of the running mark, in millionths (see the field).
    #[inline]
    pub fn fractional_ppm(&self) -> u32 {
        self.fractional_ppm.load(Ordering::Relaxed)
    }

    /// Sets the fractional share for the mark that starts (or 0 when workers take over).
    pub fn set_fractional_ppm(&self, ppm: u32) {
        self.fractional_ppm.store(ppm, Ordering::Relaxed);
    }

    /// Starts `n` workers on the heap's queue (already reset for `n` workers).
    pub fn start(&self, n: usize, heap: &Arc<super::heap::HeapInner>) {
        let mut j = self.job.lock().unwrap();
        while j.started < n {
            let i = j.started;
            let w: Weak<super::heap::HeapInner> = Arc::downgrade(heap);
            let holders = heap.holders.clone();
            std::thread::Builder::new()
                .name(format!("goheap-mark-{i}"))
                .spawn(move || {
                    crate::report::abort_on_panic("a mark worker", || worker(w, i, holders))
                })
                .expect("goheap: cannot start a mark worker thread");
            j.started += 1;
        }
        j.epoch += 1;
        j.wanted = n;
        self.start_cv.notify_all();
    }

    /// Lets the threads exit.
    pub fn shutdown(&self) {
        let mut j = self.job.lock().unwrap();
        j.exit = true;
        j.epoch += 1;
        self.start_cv.notify_all();
    }
}

fn worker(heap: Weak<super::heap::HeapInner>, index: usize, holders: Arc<super::heap::Holders>) {
    let mut seen = 0u64;
    loop {
        let markers = {
            let Some(h) = holders.join(&heap) else { return };
            h.markers.clone()
        };
        {
            let mut j = markers.job.lock().unwrap();
            loop {
                if j.exit {
                    return;
                }
                if j.epoch != seen {
                    seen = j.epoch;
                    if index < j.wanted {
                        break;
                    }
                }
                j = markers.start_cv.wait(j).unwrap();
            }
        }
        if let Some(h) = holders.join(&heap) {
            marker_begin();
            let mut t = Tracer::new();
            t.sink = &h.barrier.marked;
            h.barrier.queue.run(&mut t);
            t.on_idle();
        }
    }
}
