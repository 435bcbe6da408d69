//! The page allocator: which 8 KiB pages of the heap's arenas are free, and where the first run
//! of N free pages is.
//!
//! This is Go's `pageAlloc` (`mpagealloc.go`, `mpallocbits.go`, `mpagecache.go` in Go's
//! runtime), reshaped for a heap that is a handful of 64 MiB arenas rather than a sparse view of
//! the whole address space.
//!
//! # Bitmaps
//!
//! The heap reserves arenas (64 MiB, 64 MiB aligned, 8192 pages) from the OS and hands each one
//! to [`PageAlloc::grow`]. Per arena we keep two bitmaps of one bit per page:
//!
//! * `alloc`: 1 = the page is in use (by a span, by a [`PageCache`], or by the scavenger while it
//!   is returning the page to the OS); 0 = free. Freeing is clearing bits, so coalescing free
//!   neighbours costs nothing: it is implicit in the bitmap.
//! * `scavenged`: 1 = the page is free *and* its memory has been given back to the OS, so it
//!   reads as zero. Invariant: `scavenged & alloc == 0`; allocating a page clears its bit.
//!
//! Memory fresh from the OS is all free and all scavenged. [`PageAlloc::alloc`] reports how many
//! pages of the run were scavenged so the heap knows what it must zero (and how much RSS it is
//! about to grow by); [`PageAlloc::free`] makes pages free and dirty.
//!
//! # Summaries
//!
//! Searching 1024 bytes of bitmap per arena for every allocation would be slow, so, like Go, we
//! put a radix tree of *summaries* on top. A summary of a range of pages packs three numbers:
//!
//! ```text
//!   start: free pages at the beginning   max: longest free run   end: free pages at the end
//! ```
//!
//! From the summaries of adjacent ranges one gets the summary of their union without looking at
//! the bits (`merge`): the longest run is the longest of each part's `max` and of each boundary's
//! `end + start`. We have three levels:
//!
//! * a chunk summary per 512 pages (4 MiB, Go's `pallocChunkPages`, 8 words of bitmap);
//! * a group summary per 4 chunks, so that an update merges 4 + 4 summaries rather than 16;
//! * an arena summary, the merge of its 4 groups, mirrored in the *directory*: one 16-byte entry
//!   per arena, sorted by address, so a first-fit search walks a dense array and touches an
//!   arena's bitmaps only if its `max` says the request fits.
//!
//! Go needs five levels because its tree spans the whole 48-bit address space and runs may
//! cross any boundary. Ours cannot cross an arena (requests larger than one arena are served
//! elsewhere by the heap), so above the arena a flat list is enough: a heap of a few arenas scans
//! a few entries, and even the cap of 65536 arenas (4 TiB) is a linear scan of 1 MiB that only
//! requests which fit nowhere early pay.
//!
//! # Keeping summaries current cheaply
//!
//! Go recomputes a chunk's summary from its bitmap after every operation, then merges upwards.
//! Measured here, that was most of the cost of `alloc(1)` + `free(1)`, so updates are
//! incremental where they can be proved exact:
//!
//! * A chunk summary also keeps `mid`, the longest free run touching neither end of the chunk.
//!   An alloc or free of a contiguous run changes only the free run around it (`free_around`,
//!   usually one word each way), so the new start/mid/end follow from the old ones, except when
//!   the run that shrank (or was swallowed by a start or end run) was a longest middle run:
//!   only then, as we cannot know whether it was the only one, is the bitmap summarized again
//!   (`chunk_after`). Filling a chunk from its frontier never needs that.
//! * Above the chunks, when a child's `start` and `end` are unchanged the parent can be patched
//!   without looking at the siblings (`parent_after`); otherwise the 4 siblings are merged.
//!
//! Measured by the `bench` test (release build, 2-core VM): filling arenas, `alloc(1)` ~29 ns,
//! `alloc(8)` ~33 ns, `free` ~24 ns; a `PageCache` serves a page in ~4 ns. In a heap chopped
//! into random 1..16-page runs a free plus an alloc costs ~160 ns, mostly the word-by-word
//! search and resummarizing fragmented chunks, as in Go.
//!
//! # First fit
//!
//! `alloc(n)` returns the lowest-addressed run of `n` free pages. Like Go's `find`, the search at
//! each level walks summaries left to right carrying the free run that touches the right edge of
//! what it has seen (`size`): a run that starts in an earlier entry and reaches `n` thanks to the
//! next entry's `start` is taken first, then an entry whose own `max >= n` is descended into,
//! then the entry's `end` starts a new carried run. Inside a chunk the bitmap is searched a word
//! at a time (`find_in_chunk`), with Go's shift-and trick (`first_run_of_ones`) for runs inside
//! one word.
//!
//! Like Go's `searchAddr`, a *hint* (`hint_pos`, `hint_page`: a directory position and a page in
//! that arena) says where the first free page may be: every page of every arena below it is in
//! use. Searches start there, so a heap whose bottom is full does not rescan it; allocations
//! advance the hint, frees and grows below it lower it.
//!
//! # Scavenger support and page caches
//!
//! The directory entry also counts the arena's free-but-dirty pages, so
//! [`PageAlloc::take_unscavenged`] (highest address first, as Go's scavenger) skips clean arenas
//! and scans only the bitmap of the highest arena that has dirty pages. The synchronous scavenger's
//! [`PageAlloc::take_unscavenged_at_least`] looks past runs shorter than it wants, arena by
//! arena downwards, and remembers a search that found nothing until more pages are freed
//! dirty (no run can grow before that), so that asking again on every freed span costs a
//! compare. A [`PageCache`] is Go's
//! `pageCache`: a 64-page aligned window (one bitmap word) whose free pages are all marked in use
//! at once, then served to one thread without the heap lock.
//!
//! # Metadata memory
//!
//! An allocator never calls the allocator it implements, so every byte of metadata comes from
//! [`os::reserve`] in one reservation made at the first `grow` (`MAP_NORESERVE`: only touched
//! pages cost memory):
//!
//! ```text
//!   index  16 MiB   u32 per possible arena (48-bit space / 64 MiB = 4 Mi): slot + 1, 0 = none
//!   dir     1 MiB   DirEntry per arena (65536 × 16 B), sorted by address
//!   metas 140 MiB   ArenaMeta per arena (65536 × 2240 B), in grow order ("slot")
//! ```
//!
//! A heap of a few arenas touches one page of the index, one of the directory and about 2.2 KiB
//! per arena. Records never move (a `grow` shifts only the 16-byte directory entries), so `free`
//! goes from an address to its bitmaps in two loads: `index[addr >> 26]`, then `metas[slot]`.
//!
//! # Invariants (all verified by [`PageAlloc::check`])
//!
//! 1. `scavenged & alloc == 0` in every word.
//! 2. Every chunk summary equals `summarize` of its bitmap, every group summary the merge of its
//!    chunks', every arena summary (in the record and in the directory) the merge of its groups'
//!    and of its chunks'; every `dirty` equals free minus scavenged pages.
//! 3. Per-arena and global free/scavenged counters equal the bitmaps' popcounts.
//! 4. The directory is sorted by base; `metas[dir[p].slot].pos == p`; `index` maps each base to
//!    its slot.
//! 5. Every page of arenas at positions `< hint_pos`, and of pages `< hint_page` in arena
//!    `hint_pos`, is in use.
//!
//! `PageAlloc` is not thread safe by itself: the heap holds it under its lock, as Go holds
//! `pageAlloc` under `mheap_.lock`.

use core::fmt;
use core::mem::{align_of, size_of};
use core::ptr;
use core::slice;

use crate::os;

/// log2 of the page size: goheap pages are 8 KiB, as Go's (`_PageShift = 13`).
pub const PAGE_SHIFT: usize = 13;
/// 8 KiB: two OS pages on Linux/x86-64, so a page is always a whole number of OS pages.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// log2 of the arena size: 64 MiB, as Go's `heapArenaBytes` on 64-bit Linux.
pub const ARENA_SHIFT: usize = 26;
/// 64 MiB: the unit in which the heap takes address space from the OS.
pub const ARENA_BYTES: usize = 1 << ARENA_SHIFT;
/// 64 MiB / 8 KiB = 8192 pages per arena, the largest run `alloc` serves.
pub const ARENA_PAGES: usize = ARENA_BYTES / PAGE_SIZE;
/// Most arenas one `PageAlloc` manages: 65536 × 64 MiB = 4 TiB of heap. `grow` fails beyond.
/// It sizes the directory and record arrays (see "Metadata memory").
pub const MAX_ARENAS: usize = 1 << 16;

/// log2 of the pages per chunk: 512 pages (4 MiB), Go's `logPallocChunkPages`. A chunk's bitmap
/// is 8 words, one cache line, cheap to summarize from scratch when an update needs it.
const CHUNK_SHIFT: usize = 9;
/// 512 pages per chunk.
const CHUNK_PAGES: usize = 1 << CHUNK_SHIFT;
/// 8192 / 512 = 16 chunks per arena.
const CHUNKS: usize = ARENA_PAGES / CHUNK_PAGES;
/// 8192 / 64 = 128 bitmap words per arena (1 KiB per bitmap).
const WORDS: usize = ARENA_PAGES / 64;
/// 512 / 64 = 8 bitmap words per chunk.
const CHUNK_WORDS: usize = CHUNK_PAGES / 64;
/// Chunks per group: the middle level of the tree. An update merges one group's 4 chunk
/// summaries and then the arena's 4 group summaries: 8 merge steps instead of 16.
const GROUP_CHUNKS: usize = 4;
/// 4 × 512 = 2048 pages (16 MiB) per group.
const GROUP_PAGES: usize = GROUP_CHUNKS * CHUNK_PAGES;
/// 16 / 4 = 4 groups per arena.
const GROUPS: usize = CHUNKS / GROUP_CHUNKS;

/// Address bits the index covers. User space on x86-64 (4-level paging) and arm64 (48-bit VA)
/// is below 2^48; an arena above that makes `grow` fail rather than index out of bounds.
const ADDR_BITS: usize = 48;
/// One index entry per possible arena: 2^(48 - 26) = 4 Mi entries.
const INDEX_LEN: usize = 1 << (ADDR_BITS - ARENA_SHIFT);
/// 4 Mi × 4 B = 16 MiB of address space. One 4 KiB page of it covers 1024 arenas (64 GiB), so a
/// heap touches one or two of its pages.
const INDEX_BYTES: usize = INDEX_LEN * size_of::<u32>();
/// The directory follows the index (16 MiB is page aligned).
const DIR_OFFSET: usize = INDEX_BYTES;
/// 65536 × 16 B = 1 MiB.
const DIR_BYTES: usize = MAX_ARENAS * size_of::<DirEntry>();
/// The arena records follow the directory, page aligned (which satisfies their 64-byte
/// alignment).
const META_OFFSET: usize = align_up(DIR_OFFSET + DIR_BYTES, os::OS_PAGE_SIZE);
/// 65536 × 2240 B = 140 MiB.
const META_BYTES: usize = MAX_ARENAS * size_of::<ArenaMeta>();
/// The whole reservation, about 157 MiB of address space.
const REGION_BYTES: usize = align_up(META_OFFSET + META_BYTES, os::OS_PAGE_SIZE);

const _: () = {
    // Summary fields are u16: the largest value, a whole free arena, must fit.
    assert!(ARENA_PAGES <= u16::MAX as usize);
    // Slots and positions are u32.
    assert!(MAX_ARENAS < u32::MAX as usize);
    // Runs inside a chunk are searched word by word, and chunks tile an arena.
    assert!(CHUNK_PAGES % 64 == 0 && ARENA_PAGES % CHUNK_PAGES == 0);
    assert!(DIR_OFFSET % align_of::<DirEntry>() == 0);
    assert!(META_OFFSET % align_of::<ArenaMeta>() == 0);
    // The layout comments above quote these sizes.
    assert!(size_of::<DirEntry>() == 16);
    assert!(size_of::<ArenaMeta>() == 2240);
};

const fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

/// A packed summary of a range of pages: `start | max << 16 | end << 32 | mid << 48` (see the
/// essay). Zero means "no free page", which is also what a fully allocated range summarizes to.
/// `mid`, the longest run touching neither end, is kept for chunks only (0 above them).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Sum(u64);

impl Sum {
    const FULL: Sum = Sum(0);
    const FREE_CHUNK: Sum = Sum::chunk(CHUNK_PAGES, 0, CHUNK_PAGES);
    const FREE_ARENA: Sum = Sum::new(ARENA_PAGES, ARENA_PAGES, ARENA_PAGES);

    #[inline]
    const fn new(start: usize, max: usize, end: usize) -> Sum {
        Sum(start as u64 | (max as u64) << 16 | (end as u64) << 32)
    }
    /// A chunk summary, whose longest run is the longest of its start, middle and end runs.
    #[inline]
    const fn chunk(start: usize, mid: usize, end: usize) -> Sum {
        let max = if start > end { start } else { end };
        let max = if mid > max { mid } else { max };
        Sum(Sum::new(start, max, end).0 | (mid as u64) << 48)
    }
    #[inline]
    fn mid(self) -> usize {
        (self.0 >> 48) as usize
    }
    #[inline]
    fn start(self) -> usize {
        (self.0 & 0xffff) as usize
    }
    #[inline]
    fn max(self) -> usize {
        (self.0 >> 16 & 0xffff) as usize
    }
    #[inline]
    fn end(self) -> usize {
        (self.0 >> 32 & 0xffff) as usize
    }
}

impl fmt::Debug for Sum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, m, e, mid) = (self.start(), self.max(), self.end(), self.mid());
        write!(f, "(start {s}, max {m}, end {e}, mid {mid})")
    }
}

/// Summarizes a chunk's bitmap (1 = in use; `words.len() * 64` pages) from scratch.
#[inline]
fn summarize(words: &[u64]) -> Sum {
    // `cur` is the free run ending at the current position; a used page ends it, the first
    // time as the start run, later as a middle run.
    let mut start = usize::MAX;
    let mut mid = 0;
    let mut cur = 0;
    for &w in words {
        if w == 0 {
            cur += 64;
            continue;
        }
        let (tz, lz) = (w.trailing_zeros() as usize, w.leading_zeros() as usize);
        cur += tz;
        if start == usize::MAX {
            start = cur;
        } else {
            mid = mid.max(cur);
        }
        cur = lz;
        // Runs strictly inside the word, between its lowest and highest used page. There are at
        // most `64 - tz - lz - 2` such free pages, so many words are skipped without looking
        // (full words: `x` is all ones from bit 0 up, `x & (x + 1) == 0` with wrapping).
        // (Testing first whether a run beats `mid`, as Go does, measured slower here.)
        let x = w >> tz;
        if x & x.wrapping_add(1) != 0 && 64 - tz - lz > mid + 2 {
            mid = mid.max(longest_run_of_ones(!w & bits(tz, 64 - lz)) as usize);
        }
    }
    if start == usize::MAX {
        let n = words.len() * 64;
        return Sum::chunk(n, 0, n);
    }
    Sum::chunk(start, mid, cur)
}

/// Merges the summaries of adjacent ranges of `width` pages each (Go's `mergeSummaries`).
fn merge(sums: &[Sum], width: usize) -> Sum {
    let (mut start, mut max, mut end) = (sums[0].start(), sums[0].max(), sums[0].end());
    for (i, s) in sums.iter().enumerate().skip(1) {
        // The merged start grows only while everything so far is free.
        if start == i * width {
            start += s.start();
        }
        max = max.max(end + s.start()).max(s.max());
        end = if s.end() == width {
            end + width
        } else {
            s.end()
        };
    }
    Sum::new(start, max, end)
}

/// The merge `parent` of some summaries after one of them changed from `old` to `new`, when it
/// can be told without the others: if only the child's `max` changed, the parent's `start` and
/// `end` and every run crossing the child's edges are unchanged, so a longer `max` can only
/// raise the parent's, and a shorter one leaves it alone unless the child held the parent's
/// longest run. None when the siblings must be merged again.
#[inline]
fn parent_after(parent: Sum, old: Sum, new: Sum) -> Option<Sum> {
    if old.start() != new.start() || old.end() != new.end() {
        return None;
    }
    if new.max() >= old.max() {
        Some(Sum::new(
            parent.start(),
            parent.max().max(new.max()),
            parent.end(),
        ))
    } else if old.max() < parent.max() {
        Some(parent)
    } else {
        None
    }
}

/// Length of the longest run of 1 bits in `y`.
///
/// `r_k` has bit i set iff bits `i..i+k` of `y` are all ones; `r_2k = r_k & (r_k >> k)`. Having
/// `r_1..r_32`, a binary descent builds the longest length from its binary digits: `cur` holds
/// the starts of runs of `len` ones and `cur & (r_k >> len)` those of runs of `len + k`. Six
/// steps, no loop over bits.
#[inline]
fn longest_run_of_ones(y: u64) -> u32 {
    if y == !0 {
        return 64;
    }
    let r1 = y;
    let r2 = r1 & (r1 >> 1);
    let r4 = r2 & (r2 >> 2);
    let r8 = r4 & (r4 >> 4);
    let r16 = r8 & (r8 >> 8);
    let r32 = r16 & (r16 >> 16);
    let mut cur = !0u64;
    let mut len = 0;
    for (k, r) in [(32, r32), (16, r16), (8, r8), (4, r4), (2, r2), (1, r1)] {
        // len <= 62 here (a run of 63 needs every step), so the shift is in range.
        let cand = cur & (r >> len);
        if cand != 0 {
            cur = cand;
            len += k;
        }
    }
    len
}

/// Index of the lowest run of `n` (1..=64) consecutive 1 bits in `c`, or 64 if there is none
/// (Go's `findBitRange64`). Keeps in `c` the starts of runs of `have` ones and doubles `have`
/// with `c &= c >> s` (valid while `s <= have`), so it takes log2(n) steps.
#[inline]
fn first_run_of_ones(mut c: u64, n: u32) -> u32 {
    let mut have = 1;
    while have < n && c != 0 {
        let s = have.min(n - have);
        c &= c >> s;
        have += s;
    }
    c.trailing_zeros()
}

/// Mask of bits `lo..hi` (0 <= lo < hi <= 64).
#[inline]
fn bits(lo: usize, hi: usize) -> u64 {
    let top = if hi == 64 { !0 } else { (1u64 << hi) - 1 };
    top & (!0u64 << lo)
}

/// The (word index, mask) pairs covering pages `page..page + n` (n >= 1) of a bitmap.
#[inline]
fn word_masks(page: usize, n: usize) -> impl Iterator<Item = (usize, u64)> {
    let last = page + n - 1;
    (page / 64..=last / 64).map(move |w| {
        let lo = if w == page / 64 { page % 64 } else { 0 };
        let hi = if w == last / 64 { last % 64 + 1 } else { 64 };
        (w, bits(lo, hi))
    })
}

/// First fit of `n` pages in a chunk's bitmap, looking no lower than word `from_word`. Returns
/// (page index in the chunk, first free page seen), or None.
#[inline]
fn find_in_chunk(words: &[u64], n: usize, from_word: usize) -> Option<(usize, usize)> {
    if n == 1 {
        for (i, &w) in words.iter().enumerate().skip(from_word) {
            if w != !0 {
                let p = i * 64 + (!w).trailing_zeros() as usize;
                return Some((p, p));
            }
        }
        return None;
    }
    let mut first = usize::MAX;
    if n <= 64 {
        // A run of at most 64 pages lies in one word or straddles one word boundary. `carry` is
        // the free run at the top of the previous word.
        let mut carry = 0;
        for (i, &w) in words.iter().enumerate().skip(from_word) {
            if w == !0 {
                carry = 0;
                continue;
            }
            if first == usize::MAX {
                first = i * 64 + (!w).trailing_zeros() as usize;
            }
            if carry + w.trailing_zeros() as usize >= n {
                return Some((i * 64 - carry, first));
            }
            let j = first_run_of_ones(!w, n as u32);
            if j < 64 {
                return Some((i * 64 + j as usize, first));
            }
            carry = w.leading_zeros() as usize;
        }
        return None;
    }
    // A run of more than 64 pages is a top-of-word run, whole free words, and a bottom-of-word
    // run. `size` pages starting at `start` are free up to the current word.
    let (mut start, mut size) = (0, 0);
    for (i, &w) in words.iter().enumerate().skip(from_word) {
        if w == !0 {
            size = 0;
            continue;
        }
        if first == usize::MAX {
            first = i * 64 + (!w).trailing_zeros() as usize;
        }
        let tz = w.trailing_zeros() as usize;
        // With size == 0 this cannot hold (tz <= 64 < n), so `start` is never stale here.
        if size + tz >= n {
            return Some((start, first));
        }
        if tz == 64 {
            if size == 0 {
                start = i * 64;
            }
            size += 64;
        } else {
            size = w.leading_zeros() as usize;
            start = (i + 1) * 64 - size;
        }
    }
    None
}

/// How the bits of a range changed, for `ArenaMeta::update_chunks`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    /// The whole range went from free to in use.
    Alloc,
    /// The whole range went from in use to free.
    Free,
    /// Some bits of a range inside one chunk changed (page cache windows).
    Scattered,
}

/// One directory entry: what a search needs to know about an arena without touching its
/// record. 16 bytes, so a 64-byte line holds four arenas.
#[repr(C)]
#[derive(Clone, Copy)]
struct DirEntry {
    /// The arena summary (a copy of `ArenaMeta::sum`).
    sum: Sum,
    /// The arena's record in `metas`.
    slot: u32,
    /// Free pages that are not scavenged (what `take_unscavenged` can take).
    dirty: u32,
}

/// Everything about one arena. Lives at a fixed slot of the `metas` array for the life of the
/// `PageAlloc`. All fields are integers, so the zeroed memory `os::reserve` returns is a valid
/// (if meaningless) value.
#[repr(C, align(64))]
struct ArenaMeta {
    /// Summary of each chunk's `alloc` bits.
    sums: [Sum; CHUNKS],
    /// Merge of each group of 4 chunk summaries.
    groups: [Sum; GROUPS],
    /// Merge of the group summaries: the arena summary, mirrored in the directory.
    sum: Sum,
    /// Address of page 0.
    base: usize,
    /// Free pages (zero bits of `alloc`).
    free: u32,
    /// Scavenged pages (one bits of `scavenged`, all free).
    scav: u32,
    /// Position of this arena in the directory.
    pos: u32,
    /// 1 = page in use.
    alloc: [u64; WORDS],
    /// 1 = page free and returned to the OS.
    scavenged: [u64; WORDS],
}

impl ArenaMeta {
    /// A fresh arena: every page free and scavenged.
    fn fresh(base: usize, pos: usize) -> ArenaMeta {
        ArenaMeta {
            sums: [Sum::FREE_CHUNK; CHUNKS],
            groups: [Sum::new(GROUP_PAGES, GROUP_PAGES, GROUP_PAGES); GROUPS],
            sum: Sum::FREE_ARENA,
            base,
            free: ARENA_PAGES as u32,
            scav: ARENA_PAGES as u32,
            pos: pos as u32,
            alloc: [0; WORDS],
            scavenged: [!0; WORDS],
        }
    }

    #[inline]
    fn chunk(&self, c: usize) -> &[u64] {
        &self.alloc[c * CHUNK_WORDS..(c + 1) * CHUNK_WORDS]
    }

    /// First fit of `n` pages at or above page `from`, given that every page below `from` is in
    /// use. Returns (page, lb) where `lb <= page` and every page in `from..lb` is in use.
    fn find(&self, n: usize, from: usize) -> Option<(usize, usize)> {
        let c0 = from / CHUNK_PAGES;
        let mut lb = usize::MAX;
        let (mut base, mut size) = (0, 0);
        for c in c0..CHUNKS {
            let s = self.sums[c];
            if s == Sum::FULL {
                size = 0;
                continue;
            }
            let cbase = c * CHUNK_PAGES;
            let first_nonfull = lb == usize::MAX;
            if first_nonfull {
                lb = from.max(cbase);
            }
            // A run carried from earlier chunks (or starting at this one) is long enough. Pages
            // below `from` are in use, so in chunk c0 `start` cannot reach below `from`.
            if size + s.start() >= n {
                if size == 0 {
                    base = cbase;
                }
                return Some((base, lb));
            }
            if s.max() >= n {
                let from_word = if c == c0 { from % CHUNK_PAGES / 64 } else { 0 };
                let Some((i, first)) = find_in_chunk(self.chunk(c), n, from_word) else {
                    let b = self.base;
                    panic!(
                        "pagealloc: arena {b:#x} chunk {c} summarized {s:?} has no {n}-page run"
                    );
                };
                if first_nonfull {
                    lb = cbase + first;
                }
                return Some((cbase + i, lb));
            }
            if size == 0 || s.start() < CHUNK_PAGES {
                size = s.end();
                base = cbase + CHUNK_PAGES - size;
            } else {
                size += CHUNK_PAGES;
            }
        }
        None
    }

    /// Bounds `(lo, hi)` of the free pages around `a..b`: the free run ending at `a` starts at
    /// `lo`, the one starting at `b` ends at `hi`, both clipped to `cb..ce` (64-page aligned).
    /// Usually one word each way.
    #[inline]
    fn free_around(&self, cb: usize, a: usize, b: usize, ce: usize) -> (usize, usize) {
        let mut lo = a;
        while lo > cb {
            let w = (lo - 1) / 64;
            let used = self.alloc[w] & bits(0, (lo - 1) % 64 + 1);
            if used != 0 {
                lo = w * 64 + 64 - used.leading_zeros() as usize;
                break;
            }
            lo = w * 64;
        }
        let mut hi = b;
        while hi < ce {
            let w = hi / 64;
            let used = self.alloc[w] & (!0u64 << (hi % 64));
            if used != 0 {
                hi = w * 64 + used.trailing_zeros() as usize;
                break;
            }
            hi = w * 64 + 64;
        }
        (lo, hi)
    }

    /// Summary of chunk `c` after the contiguous pages `page..page + n`, all inside it, were
    /// allocated (`alloc`) or freed (bits already updated), from its previous summary and the
    /// free run `lo..hi` holding the range, instead of the whole bitmap.
    ///
    /// An alloc splits `lo..hi` into `left = lo..page` and `right = page + n..hi`. If `lo..hi`
    /// was the start run, `left` is the new start run and `right` a new middle run; the end run
    /// likewise (this is the frontier of a filling chunk, the most common case). If it was a
    /// middle run shorter than `mid`, nothing else changes; only if it was a longest middle
    /// run must the bitmap be looked at again, for the runs this does not know.
    ///
    /// A free joins the runs `left` and `right` around the range into `lo..hi`: a new start or
    /// end run (which swallowed a middle run, so only if that was a longest one must the bitmap
    /// be looked at), or a middle run that may be the new longest.
    #[inline]
    fn chunk_after(&self, c: usize, page: usize, n: usize, alloc: bool) -> Sum {
        let o = self.sums[c];
        let (cb, ce) = (c * CHUNK_PAGES, (c + 1) * CHUNK_PAGES);
        let (lo, hi) = self.free_around(cb, page, page + n, ce);
        let (left, right) = (page - lo, hi - page - n);
        let (mut start, mut mid, mut end) = (o.start(), o.mid(), o.end());
        match (alloc, lo == cb, hi == ce) {
            (true, true, true) => (start, mid, end) = (left, 0, right),
            (true, true, false) => (start, mid) = (left, mid.max(right)),
            (true, false, true) => (mid, end) = (mid.max(left), right),
            (true, false, false) if hi - lo < mid => {}
            (false, true, true) => return Sum::FREE_CHUNK,
            (false, true, false) if right == 0 || right < mid => start = hi - cb,
            (false, false, true) if left == 0 || left < mid => end = ce - lo,
            (false, false, false) => mid = mid.max(hi - lo),
            _ => return summarize(self.chunk(c)),
        }
        Sum::chunk(start, mid, end)
    }

    /// Resummarizes after the bits of pages `page..page + n` changed as `change` says: a chunk
    /// holding the whole range incrementally (`chunk_after`) or, for scattered changes, from
    /// its bitmap; a range over several chunks from the bitmaps of the two end chunks, the ones
    /// strictly inside it being wholly allocated or free. Then the groups above any changed
    /// chunk and the arena (`parent_after` where it can tell). Returns the new arena summary if
    /// it changed.
    #[inline]
    fn update_chunks(&mut self, page: usize, n: usize, change: Change) -> Option<Sum> {
        let (c0, c1) = (page / CHUNK_PAGES, (page + n - 1) / CHUNK_PAGES);
        let mut changed;
        let old_chunk = self.sums[c0];
        if c0 == c1 {
            let s = match change {
                Change::Alloc => self.chunk_after(c0, page, n, true),
                Change::Free => self.chunk_after(c0, page, n, false),
                Change::Scattered => summarize(self.chunk(c0)),
            };
            changed = s != self.sums[c0];
            self.sums[c0] = s;
        } else {
            let whole = match change {
                Change::Alloc => Sum::FULL,
                Change::Free => Sum::FREE_CHUNK,
                Change::Scattered => unreachable!("scattered changes stay in one chunk"),
            };
            let s = summarize(self.chunk(c0));
            changed = s != self.sums[c0];
            self.sums[c0] = s;
            for c in c0 + 1..c1 {
                changed |= self.sums[c] != whole;
                self.sums[c] = whole;
            }
            let s = summarize(self.chunk(c1));
            changed |= s != self.sums[c1];
            self.sums[c1] = s;
        }
        if !changed {
            return None;
        }
        let group =
            |m: &Self, g: usize| merge(&m.sums[g * GROUP_CHUNKS..][..GROUP_CHUNKS], CHUNK_PAGES);
        let sum = if c0 == c1 {
            let g = c0 / GROUP_CHUNKS;
            let old = self.groups[g];
            let new = parent_after(old, old_chunk, self.sums[c0]).unwrap_or_else(|| group(self, g));
            if old == new {
                return None;
            }
            self.groups[g] = new;
            parent_after(self.sum, old, new).unwrap_or_else(|| merge(&self.groups, GROUP_PAGES))
        } else {
            for g in c0 / GROUP_CHUNKS..=c1 / GROUP_CHUNKS {
                self.groups[g] = group(self, g);
            }
            merge(&self.groups, GROUP_PAGES)
        };
        if sum == self.sum {
            return None;
        }
        self.sum = sum;
        Some(sum)
    }

    /// Marks free pages `page..page + n` in use and not scavenged. Returns (pages that were
    /// scavenged, the new arena summary if it changed).
    #[inline]
    fn alloc_range(&mut self, page: usize, n: usize) -> (usize, Option<Sum>) {
        let mut scav = 0;
        for (w, m) in word_masks(page, n) {
            debug_assert_eq!(self.alloc[w] & m, 0, "pagealloc: allocating pages in use");
            scav += (self.scavenged[w] & m).count_ones() as usize;
            self.alloc[w] |= m;
            self.scavenged[w] &= !m;
        }
        self.free -= n as u32;
        self.scav -= scav as u32;
        (scav, self.update_chunks(page, n, Change::Alloc))
    }

    /// Marks in-use pages `page..page + n` free, and scavenged if `scavenged`. Returns the new
    /// arena summary if it changed.
    #[inline]
    fn free_range(&mut self, page: usize, n: usize, scavenged: bool) -> Option<Sum> {
        for (w, m) in word_masks(page, n) {
            debug_assert_eq!(
                self.alloc[w] & m,
                m,
                "pagealloc: freeing pages not in use: arena {:#x}, pages {page}..{}",
                self.base,
                page + n
            );
            self.alloc[w] &= !m;
            if scavenged {
                self.scavenged[w] |= m;
            }
        }
        self.free += n as u32;
        if scavenged {
            self.scav += n as u32;
        }
        self.update_chunks(page, n, Change::Free)
    }

    /// The highest-addressed run of free, dirty pages, at most `max` long: (first page, length).
    fn highest_dirty_run(&self, max: usize) -> Option<(usize, usize)> {
        self.highest_dirty_run_below(ARENA_PAGES, max, 1)
    }

    /// The highest-addressed run of free, dirty pages that ends at or below page `limit` and
    /// is at least `min` long (or reaches `max`), cut to at most `max` pages: (first page,
    /// length). Shorter runs above it are skipped. One pass down the bitmap from `limit`.
    fn highest_dirty_run_below(
        &self,
        mut limit: usize,
        max: usize,
        min: usize,
    ) -> Option<(usize, usize)> {
        let dirty = |w: usize| !self.alloc[w] & !self.scavenged[w];
        // The dirty bits of word `w` below page `limit`.
        let below = |w: usize, limit: usize| {
            let keep = limit.saturating_sub(w * 64);
            if keep >= 64 {
                dirty(w)
            } else {
                dirty(w) & ((1u64 << keep) - 1)
            }
        };
        loop {
            if limit == 0 {
                return None;
            }
            let top_word = (0..limit.div_ceil(64))
                .rev()
                .find(|&w| below(w, limit) != 0)?;
            let d = below(top_word, limit);
            let top = 63 - d.leading_zeros() as usize;
            let end = top_word * 64 + top + 1;
            // Count the run downwards: left-align the top page at bit 63 and count leading
            // ones; a run that reaches bit 0 continues in the word below.
            let mut len = 0;
            let (mut w, mut x, mut avail) = (top_word, d << (63 - top), top + 1);
            loop {
                let ones = x.leading_ones() as usize;
                len += ones;
                if len >= max {
                    len = max;
                    break;
                }
                if ones < avail || w == 0 {
                    break;
                }
                w -= 1;
                x = dirty(w);
                avail = 64;
            }
            if len >= min || len == max {
                return Some((end - len, len));
            }
            // Too short: go on below it (its first page is not dirty-free or is page 0).
            limit = end - len;
        }
    }
}

/// The page allocator of one heap. See the module documentation.
pub struct PageAlloc {
    /// The metadata reservation (REGION_BYTES), null before the first `grow`.
    region: *mut u8,
    /// INDEX_LEN entries: slot + 1 of the arena at `addr >> ARENA_SHIFT`, 0 if none.
    index: *mut u32,
    /// MAX_ARENAS entries, the first `narenas` valid, sorted by arena address.
    dir: *mut DirEntry,
    /// MAX_ARENAS records, the first `narenas` valid, by slot (grow order).
    metas: *mut ArenaMeta,
    narenas: usize,
    /// Search hint (invariant 5): no free page lies below page `hint_page` of the arena at
    /// directory position `hint_pos`. `hint_pos == narenas` means no free page at all.
    hint_pos: usize,
    hint_page: usize,
    /// Free pages in all arenas (not counting pages held by page caches).
    free: usize,
    /// Free pages that are scavenged.
    scav: usize,
    /// Pages that ever became free and dirty (wrapping): a dirty run can only grow when this
    /// moves.
    dirty_freed: usize,
    /// The last `take_unscavenged_at_least` that found nothing: `dirty_freed` then, and the
    /// run length it wanted. Until `dirty_freed` moves, no run that long can exist, and a
    /// search for one is skipped (the synchronous scavenger asks on every span it frees while
    /// memory is over its bound, and a heap of fragments would be rescanned each time).
    no_run_since: usize,
    no_run_min: usize,
}

// SAFETY: a PageAlloc exclusively owns its metadata reservation; the raw pointers into it are
// never shared with anything else, so moving the PageAlloc to another thread moves that
// ownership with it. (All mutation goes through &mut self; the heap serializes it with a lock.)
unsafe impl Send for PageAlloc {}

impl Default for PageAlloc {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PageAlloc {
    fn drop(&mut self) {
        if !self.region.is_null() {
            // SAFETY: `region` is the REGION_BYTES reservation made in `init`, owned by self and
            // referenced by nothing else once self goes away (page caches hold only addresses).
            unsafe { os::release(self.region, REGION_BYTES) };
        }
    }
}

impl PageAlloc {
    /// An allocator with no arenas. Maps nothing until the first `grow`, so it can sit in a
    /// `static`.
    pub const fn new() -> Self {
        PageAlloc {
            region: ptr::null_mut(),
            index: ptr::null_mut(),
            dir: ptr::null_mut(),
            metas: ptr::null_mut(),
            narenas: 0,
            hint_pos: 0,
            hint_page: 0,
            free: 0,
            scav: 0,
            dirty_freed: 0,
            no_run_since: 0,
            no_run_min: usize::MAX,
        }
    }

    /// Reserves the metadata region (see "Metadata memory").
    #[cold]
    fn init(&mut self) -> bool {
        let region = os::reserve(REGION_BYTES, os::OS_PAGE_SIZE);
        if region.is_null() {
            return false;
        }
        self.region = region;
        self.index = region.cast();
        self.dir = region.wrapping_add(DIR_OFFSET).cast();
        self.metas = region.wrapping_add(META_OFFSET).cast();
        true
    }

    #[inline]
    fn dir(&self) -> &[DirEntry] {
        if self.narenas == 0 {
            return &[];
        }
        // SAFETY: `dir` points at room for MAX_ARENAS entries inside our reservation, which
        // lives as long as self; the first `narenas` were written by `grow` (and zeroed memory
        // is a valid DirEntry anyway); &self excludes writers.
        unsafe { slice::from_raw_parts(self.dir, self.narenas) }
    }

    #[inline]
    fn dir_mut(&mut self) -> &mut [DirEntry] {
        if self.narenas == 0 {
            return &mut [];
        }
        // SAFETY: as in `dir`; &mut self makes this the only reference into the directory.
        unsafe { slice::from_raw_parts_mut(self.dir, self.narenas) }
    }

    #[inline]
    fn meta(&self, slot: u32) -> &ArenaMeta {
        let slot = slot as usize;
        assert!(slot < self.narenas, "pagealloc: bad arena slot {slot}");
        // SAFETY: slot < narenas <= MAX_ARENAS, so the record lies inside the META_BYTES of our
        // reservation (which outlives &self) and was written by `grow`; &self excludes writers.
        unsafe { &*self.metas.add(slot) }
    }

    #[inline]
    fn meta_mut(&mut self, slot: u32) -> &mut ArenaMeta {
        let slot = slot as usize;
        assert!(slot < self.narenas, "pagealloc: bad arena slot {slot}");
        // SAFETY: as in `meta`; &mut self makes this the only reference to the record.
        unsafe { &mut *self.metas.add(slot) }
    }

    /// Index entry for arena number `i` (< INDEX_LEN); 0 before the first grow.
    #[inline]
    fn index_get(&self, i: usize) -> u32 {
        assert!(i < INDEX_LEN);
        if self.index.is_null() {
            return 0;
        }
        // SAFETY: i < INDEX_LEN and the index occupies INDEX_BYTES = INDEX_LEN u32s at the start
        // of our reservation, zero-initialized by the OS.
        unsafe { *self.index.add(i) }
    }

    /// (directory position, slot, page in arena) of the arena holding `addr`; panics if `addr`
    /// is not in any arena.
    #[inline]
    fn locate(&self, addr: usize) -> (usize, u32, usize) {
        let i = addr >> ARENA_SHIFT;
        assert!(
            i < INDEX_LEN,
            "pagealloc: {addr:#x} is not in the page heap"
        );
        let slot = self.index_get(i);
        assert!(slot != 0, "pagealloc: {addr:#x} is not in the page heap");
        let slot = slot - 1;
        let pos = self.meta(slot).pos as usize;
        (pos, slot, (addr & (ARENA_BYTES - 1)) >> PAGE_SHIFT)
    }

    /// Copies the arena's dirty count, and its new summary if any, into its directory entry.
    #[inline]
    fn sync(&mut self, pos: usize, slot: u32, sum: Option<Sum>) {
        let m = self.meta(slot);
        let dirty = m.free - m.scav;
        let e = &mut self.dir_mut()[pos];
        if let Some(sum) = sum {
            e.sum = sum;
        }
        e.dirty = dirty;
    }

    /// Pages from `page` of the arena at `pos` became free: move the hint down to them.
    #[inline]
    fn lower_hint(&mut self, pos: usize, page: usize) {
        if (pos, page) < (self.hint_pos, self.hint_page) {
            self.hint_pos = pos;
            self.hint_page = page;
        }
    }

    /// Adds the arena `[base, base + ARENA_BYTES)`: `base` is ARENA_BYTES aligned and the memory
    /// fresh from the OS, so all its pages start free and scavenged (zero). Returns false if the
    /// metadata could not be mapped, the arena cap (MAX_ARENAS) is reached or `base` is outside
    /// the 48-bit address space. Growing the same arena twice is a bug (debug assertion).
    pub fn grow(&mut self, base: usize) -> bool {
        debug_assert!(
            base % ARENA_BYTES == 0,
            "pagealloc: arena {base:#x} is not aligned"
        );
        let i = base >> ARENA_SHIFT;
        if base % ARENA_BYTES != 0 || i >= INDEX_LEN || self.narenas == MAX_ARENAS {
            return false;
        }
        if self.region.is_null() && !self.init() {
            return false;
        }
        if self.index_get(i) != 0 {
            debug_assert!(false, "pagealloc: arena {base:#x} grown twice");
            return false;
        }
        let n = self.narenas;
        let slot = n;
        let pos = self
            .dir()
            .partition_point(|e| self.meta(e.slot).base < base);
        // SAFETY: n < MAX_ARENAS, so slot n, directory entries pos..=n and index entry i
        // (< INDEX_LEN) all lie inside our reservation; &mut self gives exclusive access, and
        // `ptr::copy` handles the overlapping shift of entries pos..n up by one.
        unsafe {
            self.metas.add(slot).write(ArenaMeta::fresh(base, pos));
            ptr::copy(self.dir.add(pos), self.dir.add(pos + 1), n - pos);
            self.dir.add(pos).write(DirEntry {
                sum: Sum::FREE_ARENA,
                slot: slot as u32,
                dirty: 0,
            });
            self.index.add(i).write(slot as u32 + 1);
        }
        self.narenas = n + 1;
        for p in pos + 1..=n {
            let s = self.dir()[p].slot;
            self.meta_mut(s).pos = p as u32;
        }
        self.free += ARENA_PAGES;
        self.scav += ARENA_PAGES;
        if pos <= self.hint_pos {
            // Everything below the new arena was below the old hint, hence in use.
            self.hint_pos = pos;
            self.hint_page = 0;
        }
        true
    }

    /// First fit of `n` pages: (directory position, slot, page, lb) where every page from the
    /// hint up to page `lb` of that arena is in use (if it is the hint's arena).
    #[inline]
    fn find_fit(&mut self, n: usize) -> Option<(usize, u32, usize, usize)> {
        // Full arenas at the hint will stay full until a free lowers the hint: step over them
        // for good.
        let dir = self.dir();
        let (mut pos, mut from) = (self.hint_pos, self.hint_page);
        while pos < dir.len() && dir[pos].sum == Sum::FULL {
            pos += 1;
            from = 0;
        }
        (self.hint_pos, self.hint_page) = (pos, from);
        let dir = self.dir();
        while pos < dir.len() {
            // Field by field: loading the whole entry right after `sync` stored its fields
            // separately defeats store forwarding (a measured stall of a few ns).
            if dir[pos].sum.max() >= n {
                let slot = dir[pos].slot;
                let m = self.meta(slot);
                let Some((page, lb)) = m.find(n, from) else {
                    panic!(
                        "pagealloc: arena {:#x} summarized as {:?} has no run of {n} pages",
                        m.base, m.sum
                    );
                };
                return Some((pos, slot, page, lb));
            }
            pos += 1;
            from = 0;
        }
        None
    }

    /// Allocates the lowest-addressed run of `npages` (1..=ARENA_PAGES) free pages, marking them
    /// in use and not scavenged. Returns (address, how many of the pages were scavenged, i.e.
    /// known to be zero), or None if no arena has such a run (or `npages` is out of range).
    #[inline]
    pub fn alloc(&mut self, npages: usize) -> Option<(usize, usize)> {
        debug_assert!(npages > 0, "pagealloc: alloc(0)");
        if npages == 0 || npages > ARENA_PAGES {
            return None;
        }
        let (pos, slot, page, lb) = self.find_fit(npages)?;
        let m = self.meta_mut(slot);
        let (scav, sum) = m.alloc_range(page, npages);
        let addr = m.base + (page << PAGE_SHIFT);
        self.sync(pos, slot, sum);
        self.free -= npages;
        self.scav -= scav;
        if pos == self.hint_pos {
            // Pages below lb were in use; if the run starts there, so is everything below its end.
            self.hint_page = if page == lb { page + npages } else { lb };
        }
        Some((addr, scav))
    }

    /// Frees a run previously returned by `alloc` (or served by a `PageCache`): the pages become
    /// free and dirty. Panics if `addr` is not in an arena or the run crosses its arena's end;
    /// debug-asserts that the pages were in use.
    #[inline]
    pub fn free(&mut self, addr: usize, npages: usize) {
        self.release(addr, npages, false)
    }

    /// Returns a run taken with `take_unscavenged` after the caller decommitted it: the pages
    /// become free and scavenged.
    pub fn free_scavenged(&mut self, addr: usize, npages: usize) {
        self.release(addr, npages, true)
    }

    #[inline]
    fn release(&mut self, addr: usize, npages: usize, scavenged: bool) {
        debug_assert!(
            addr % PAGE_SIZE == 0,
            "pagealloc: free of unaligned {addr:#x}"
        );
        let (pos, slot, page) = self.locate(addr);
        assert!(
            npages > 0 && page + npages <= ARENA_PAGES,
            "pagealloc: free of {npages} pages at {addr:#x} crosses its arena"
        );
        let sum = self.meta_mut(slot).free_range(page, npages, scavenged);
        self.sync(pos, slot, sum);
        self.free += npages;
        if scavenged {
            self.scav += npages;
        } else {
            self.dirty_freed = self.dirty_freed.wrapping_add(npages);
        }
        self.lower_hint(pos, page);
    }

    /// Scavenger support: takes the highest-addressed run of free, dirty pages, at most
    /// `max_pages` long, and marks it in use so nobody allocates it while the caller drops the
    /// lock to decommit it (then calls `free_scavenged`). Returns (address, pages), or None if
    /// every free page is already scavenged (or `max_pages` is 0).
    pub fn take_unscavenged(&mut self, max_pages: usize) -> Option<(usize, usize)> {
        if max_pages == 0 {
            return None;
        }
        let pos = self.dir().iter().rposition(|e| e.dirty != 0)?;
        let slot = self.dir()[pos].slot;
        let m = self.meta_mut(slot);
        let Some((page, n)) = m.highest_dirty_run(max_pages.min(ARENA_PAGES)) else {
            panic!(
                "pagealloc: arena {:#x} counts dirty pages but has none",
                m.base
            );
        };
        Some(self.take_dirty_run(pos, slot, page, n))
    }

    /// [`PageAlloc::take_unscavenged`] that skips runs shorter than `min_pages` (unless
    /// `max_pages` is shorter): the synchronous scavenger's, which leaves the small fragments
    /// between live spans alone, since a program that frees them usually reuses them soon and
    /// a `madvise` of one page costs more than the page is worth. Scans the bitmaps of the
    /// arenas with dirty pages from the highest down until it finds such a run. None if there
    /// is none.
    pub fn take_unscavenged_at_least(
        &mut self,
        max_pages: usize,
        min_pages: usize,
    ) -> Option<(usize, usize)> {
        if max_pages == 0 {
            return None;
        }
        let max = max_pages.min(ARENA_PAGES);
        let min = min_pages.min(max);
        if self.dirty_freed == self.no_run_since && min >= self.no_run_min {
            return None;
        }
        for pos in (0..self.narenas).rev() {
            let e = self.dir()[pos];
            if (e.dirty as usize) < min {
                continue;
            }
            let m = self.meta_mut(e.slot);
            if let Some((page, n)) = m.highest_dirty_run_below(ARENA_PAGES, max, min) {
                return Some(self.take_dirty_run(pos, e.slot, page, n));
            }
        }
        self.no_run_since = self.dirty_freed;
        self.no_run_min = min;
        None
    }

    /// Marks pages `[page, page + n)` of the arena at directory position `pos` (slot `slot`),
    /// free and dirty, in use; returns their address and `n`.
    fn take_dirty_run(&mut self, pos: usize, slot: u32, page: usize, n: usize) -> (usize, usize) {
        let m = self.meta_mut(slot);
        let (scav, sum) = m.alloc_range(page, n);
        debug_assert_eq!(scav, 0);
        let addr = m.base + (page << PAGE_SHIFT);
        self.sync(pos, slot, sum);
        self.free -= n;
        (addr, n)
    }

    /// Takes for a per-thread cache the 64-page aligned window that holds the lowest free page,
    /// marking all its free pages in use (Go's `allocToCache`). None if no page is free.
    pub fn alloc_cache(&mut self) -> Option<PageCache> {
        let (pos, slot, page, _) = self.find_fit(1)?;
        let m = self.meta_mut(slot);
        let w = page / 64;
        let free = !m.alloc[w];
        let scav = m.scavenged[w];
        debug_assert_eq!(scav & !free, 0);
        m.alloc[w] = !0;
        m.scavenged[w] = 0;
        m.free -= free.count_ones();
        m.scav -= scav.count_ones();
        let sum = m.update_chunks(w * 64, 64, Change::Scattered);
        let base = m.base + ((w * 64) << PAGE_SHIFT);
        self.sync(pos, slot, sum);
        self.free -= free.count_ones() as usize;
        self.scav -= scav.count_ones() as usize;
        // The lowest free page was in this window, and the whole window is now in use. (A
        // search for one page always lands in the hint's arena.)
        debug_assert_eq!(pos, self.hint_pos);
        self.hint_page = (w + 1) * 64;
        Some(PageCache { base, free, scav })
    }

    /// Gives a cache's remaining free pages back (free, keeping their scavenged bits) and
    /// empties the cache (Go's `pageCache.flush`).
    pub fn flush_cache(&mut self, cache: &mut PageCache) {
        let (base, free, scav) = (cache.base, cache.free, cache.scav & cache.free);
        *cache = PageCache::EMPTY;
        if free == 0 {
            return;
        }
        let (pos, slot, page) = self.locate(base);
        assert!(
            page % 64 == 0,
            "pagealloc: page cache base is not 64-page aligned"
        );
        let m = self.meta_mut(slot);
        let w = page / 64;
        debug_assert_eq!(
            m.alloc[w] & free,
            free,
            "pagealloc: flushing pages that are not in use"
        );
        m.alloc[w] &= !free;
        m.scavenged[w] |= scav;
        m.free += free.count_ones();
        m.scav += scav.count_ones();
        let sum = m.update_chunks(page, 64, Change::Scattered);
        self.sync(pos, slot, sum);
        self.free += free.count_ones() as usize;
        self.scav += scav.count_ones() as usize;
        self.dirty_freed = self
            .dirty_freed
            .wrapping_add((free & !scav).count_ones() as usize);
        self.lower_hint(pos, page + free.trailing_zeros() as usize);
    }

    /// Pages in all arenas.
    pub fn total_pages(&self) -> usize {
        self.narenas * ARENA_PAGES
    }

    /// Free pages (pages held by page caches count as in use).
    pub fn free_pages(&self) -> usize {
        self.free
    }

    /// Free pages that are scavenged.
    pub fn scavenged_pages(&self) -> usize {
        self.scav
    }

    /// Debug self-check: recomputes every summary and counter from the bitmaps and checks the
    /// invariants listed in the module documentation; panics with a description on mismatch.
    pub fn check(&self) {
        let dir = self.dir();
        assert!(
            self.hint_pos <= dir.len(),
            "pagealloc: hint {} past {} arenas",
            self.hint_pos,
            dir.len()
        );
        assert!(
            self.hint_page <= ARENA_PAGES,
            "pagealloc: hint page {}",
            self.hint_page
        );
        let (mut free, mut scav) = (0, 0);
        let mut prev_base = None;
        for (pos, e) in dir.iter().enumerate() {
            let m = self.meta(e.slot);
            let b = m.base;
            assert_eq!(
                m.pos as usize, pos,
                "pagealloc: arena {b:#x} at position {pos} records {}",
                m.pos
            );
            assert!(
                b % ARENA_BYTES == 0,
                "pagealloc: arena base {b:#x} unaligned"
            );
            if let Some(p) = prev_base {
                assert!(
                    p < b,
                    "pagealloc: directory out of order: {p:#x} before {b:#x}"
                );
            }
            prev_base = Some(b);
            assert_eq!(
                self.index_get(b >> ARENA_SHIFT),
                e.slot + 1,
                "pagealloc: index entry of arena {b:#x}"
            );
            for c in 0..CHUNKS {
                let s = summarize(m.chunk(c));
                assert_eq!(s, m.sums[c], "pagealloc: arena {b:#x} chunk {c} summary");
            }
            for g in 0..GROUPS {
                let s = merge(&m.sums[g * GROUP_CHUNKS..][..GROUP_CHUNKS], CHUNK_PAGES);
                assert_eq!(s, m.groups[g], "pagealloc: arena {b:#x} group {g} summary");
            }
            assert_eq!(
                merge(&m.groups, GROUP_PAGES),
                m.sum,
                "pagealloc: arena {b:#x} summary"
            );
            assert_eq!(m.sum, e.sum, "pagealloc: arena {b:#x} directory summary");
            assert_eq!(
                merge(&m.sums, CHUNK_PAGES),
                e.sum,
                "pagealloc: arena {b:#x} summary from chunks"
            );
            let (mut f, mut sc) = (0, 0);
            for w in 0..WORDS {
                assert_eq!(
                    m.alloc[w] & m.scavenged[w],
                    0,
                    "pagealloc: arena {b:#x} word {w}: pages both in use and scavenged"
                );
                f += m.alloc[w].count_zeros();
                sc += m.scavenged[w].count_ones();
            }
            assert_eq!(m.free, f, "pagealloc: arena {b:#x} free count");
            assert_eq!(m.scav, sc, "pagealloc: arena {b:#x} scavenged count");
            assert_eq!(e.dirty, f - sc, "pagealloc: arena {b:#x} dirty count");
            let below_hint = match pos.cmp(&self.hint_pos) {
                core::cmp::Ordering::Less => ARENA_PAGES,
                core::cmp::Ordering::Equal => self.hint_page,
                core::cmp::Ordering::Greater => 0,
            };
            for p in 0..below_hint {
                assert!(
                    m.alloc[p / 64] >> (p % 64) & 1 == 1,
                    "pagealloc: page {p} of arena {b:#x} is free but below the search hint"
                );
            }
            free += f as usize;
            scav += sc as usize;
        }
        assert_eq!(self.free, free, "pagealloc: free page counter");
        assert_eq!(self.scav, scav, "pagealloc: scavenged page counter");
    }
}

/// Go's `pageCache`: a 64-page aligned window of the heap whose free pages one thread owns and
/// allocates without the heap lock. Its pages count as in use in the `PageAlloc` until served
/// (then the run is the caller's, freed with `PageAlloc::free`) or flushed back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageCache {
    /// Address of the window's first page.
    pub base: usize,
    /// Bit i set: page `base + i * PAGE_SIZE` is free in this cache.
    pub free: u64,
    /// Bit i set: that free page is scavenged (zero).
    pub scav: u64,
}

impl PageCache {
    pub const EMPTY: PageCache = PageCache {
        base: 0,
        free: 0,
        scav: 0,
    };

    /// True if the cache has no free page.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.free == 0
    }

    /// Serves the lowest run of `npages` contiguous free pages. The heap uses caches for
    /// `npages < 16` (Go's rule: a quarter of the window); any 1..=64 works. Returns (address,
    /// scavenged pages in the run), or None if no run fits.
    #[inline]
    pub fn alloc(&mut self, npages: usize) -> Option<(usize, usize)> {
        if self.free == 0 || npages == 0 || npages > 64 {
            return None;
        }
        let i = if npages == 1 {
            self.free.trailing_zeros()
        } else {
            first_run_of_ones(self.free, npages as u32)
        } as usize;
        if i >= 64 {
            return None;
        }
        let m = bits(i, i + npages);
        let scav = (self.scav & m).count_ones() as usize;
        self.free &= !m;
        self.scav &= !m;
        Some((self.base + (i << PAGE_SHIFT), scav))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    /// Test arenas: 8 adjacent ones from one reservation (address space only: the allocator never
    /// touches its pages), shared by all tests since each PageAlloc is independent.
    const POOL: usize = 8;

    fn pool() -> usize {
        static BASE: OnceLock<usize> = OnceLock::new();
        *BASE.get_or_init(|| {
            let p = os::reserve(POOL * ARENA_BYTES, ARENA_BYTES);
            assert!(!p.is_null());
            p as usize
        })
    }

    fn arena(k: usize) -> usize {
        assert!(k < POOL);
        pool() + k * ARENA_BYTES
    }

    fn page(k: usize, p: usize) -> usize {
        arena(k) + p * PAGE_SIZE
    }

    /// An allocator grown with arenas `ks` (in that order).
    fn with(ks: &[usize]) -> PageAlloc {
        let mut pa = PageAlloc::new();
        for &k in ks {
            assert!(pa.grow(arena(k)));
        }
        pa.check();
        pa
    }

    /// A tiny xorshift so unit tests are deterministic without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// Random words with varied densities (sparse, dense and in between).
        fn word(&mut self) -> u64 {
            match self.next() % 6 {
                0 => 0,
                1 => !0,
                2 => self.next() & self.next(),
                3 => self.next() | self.next(),
                4 => {
                    let (a, b) = (self.next() % 64, self.next() % 64);
                    bits(a.min(b) as usize, a.max(b) as usize + 1)
                }
                _ => self.next(),
            }
        }
    }

    /// Summary by looking at every bit.
    fn naive_sum(words: &[u64]) -> Sum {
        let n = words.len() * 64;
        let used = |p: usize| words[p / 64] >> (p % 64) & 1 == 1;
        let start = (0..n).take_while(|&p| !used(p)).count();
        let end = (0..n).rev().take_while(|&p| !used(p)).count();
        let (mut max, mut cur) = (0, 0);
        for p in 0..n {
            cur = if used(p) { 0 } else { cur + 1 };
            max = max.max(cur);
        }
        Sum::new(start, max, end)
    }

    /// Chunk summary by looking at every bit: also the longest run touching neither end.
    fn naive_chunk_sum(words: &[u64]) -> Sum {
        let n = words.len() * 64;
        let s = naive_sum(words);
        if s.start() == n {
            return Sum::FREE_CHUNK;
        }
        let used = |p: usize| words[p / 64] >> (p % 64) & 1 == 1;
        let (mut mid, mut cur) = (0, 0);
        for p in s.start() + 1..n - s.end() {
            cur = if used(p) { 0 } else { cur + 1 };
            mid = mid.max(cur);
        }
        let c = Sum::chunk(s.start(), mid, s.end());
        assert_eq!(c.max(), s.max());
        c
    }

    #[test]
    fn bit_tricks_match_naive() {
        let mut r = Rng(0x9e3779b97f4a7c15);
        for _ in 0..6000 {
            let y = r.word();
            let naive_longest = {
                let (mut max, mut cur) = (0, 0);
                for i in 0..64 {
                    cur = if y >> i & 1 == 1 { cur + 1 } else { 0 };
                    max = max.max(cur);
                }
                max
            };
            assert_eq!(longest_run_of_ones(y), naive_longest, "{y:#x}");
            for n in 1..=64u32 {
                let naive = (0..=64 - n)
                    .find(|&i| (i..i + n).all(|b| y >> b & 1 == 1))
                    .unwrap_or(64);
                let got = first_run_of_ones(y, n);
                assert_eq!(got.min(64), naive, "y={y:#x} n={n}");
            }
        }
    }

    #[test]
    fn chunk_summaries_match_naive() {
        let mut r = Rng(12345);
        for _ in 0..20000 {
            let mut w = [0u64; CHUNK_WORDS];
            w.iter_mut().for_each(|x| *x = r.word());
            assert_eq!(summarize(&w), naive_chunk_sum(&w), "{w:x?}");
        }
        assert_eq!(summarize(&[0; CHUNK_WORDS]), Sum::FREE_CHUNK);
        assert_eq!(summarize(&[!0; CHUNK_WORDS]), Sum::FULL);
        // An interior run longer than every boundary run (the second pass must find it).
        let mut w = [!0u64; CHUNK_WORDS];
        w[3] = !bits(10, 50);
        assert_eq!(summarize(&w), Sum::chunk(0, 40, 0));
    }

    #[test]
    fn incremental_chunk_summaries_match_summarize() {
        // Random chunk contents; allocate part of a free run or free part of a used run, then
        // compare `chunk_after` with summarizing from scratch.
        let mut r = Rng(31337);
        let mut m = ArenaMeta::fresh(0, 0);
        for _ in 0..50000 {
            let c = r.next() as usize % CHUNKS;
            let cb = c * CHUNK_PAGES;
            for w in 0..CHUNK_WORDS {
                m.alloc[c * CHUNK_WORDS + w] = r.word();
            }
            m.sums[c] = summarize(m.chunk(c));
            let used = |m: &ArenaMeta, q: usize| m.alloc[q / 64] >> (q % 64) & 1 == 1;
            let p = cb + r.next() as usize % CHUNK_PAGES;
            let was_used = used(&m, p);
            let (mut a, mut b) = (p, p + 1);
            while a > cb && used(&m, a - 1) == was_used {
                a -= 1;
            }
            while b < cb + CHUNK_PAGES && used(&m, b) == was_used {
                b += 1;
            }
            // Often the whole run, or one of its ends, so that runs join and vanish.
            let x = if r.next() % 2 == 0 {
                a
            } else {
                a + r.next() as usize % (b - a)
            };
            let y = if r.next() % 2 == 0 {
                b
            } else {
                x + 1 + r.next() as usize % (b - x)
            };
            for (w, mask) in word_masks(x, y - x) {
                m.alloc[w] ^= mask;
            }
            let got = m.chunk_after(c, x, y - x, !was_used);
            let want = summarize(m.chunk(c));
            assert_eq!(
                got,
                want,
                "chunk {c}, pages {x}..{y} {}",
                if was_used { "freed" } else { "allocated" }
            );
        }
    }

    #[test]
    fn merged_summaries_match_naive() {
        let mut r = Rng(777);
        for _ in 0..3000 {
            let mut w = [0u64; WORDS];
            // Mostly-uniform chunks so that whole-free and whole-full chunks occur.
            for c in 0..CHUNKS {
                let kind = r.next() % 4;
                for x in &mut w[c * CHUNK_WORDS..(c + 1) * CHUNK_WORDS] {
                    *x = match kind {
                        0 => 0,
                        1 => !0,
                        _ => r.word(),
                    };
                }
            }
            let sums: Vec<Sum> = (0..CHUNKS)
                .map(|c| summarize(&w[c * CHUNK_WORDS..][..CHUNK_WORDS]))
                .collect();
            assert_eq!(merge(&sums, CHUNK_PAGES), naive_sum(&w));
        }
    }

    #[test]
    fn find_in_chunk_matches_naive() {
        let mut r = Rng(4242);
        for _ in 0..3000 {
            let mut w = [0u64; CHUNK_WORDS];
            w.iter_mut().for_each(|x| *x = r.word());
            let free = |p: usize| w[p / 64] >> (p % 64) & 1 == 0;
            for n in [1, 2, 3, 7, 16, 33, 63, 64, 65, 100, 128, 129, 300, 512] {
                let naive = (0..=CHUNK_PAGES - n).find(|&p| (p..p + n).all(free));
                let first = (0..CHUNK_PAGES).find(|&p| free(p));
                let got = find_in_chunk(&w, n, 0);
                assert_eq!(got.map(|g| g.0), naive, "n={n} {w:x?}");
                if let Some((_, f)) = got {
                    assert_eq!(Some(f), first);
                }
            }
        }
    }

    #[test]
    fn first_fit_and_multi_word_runs() {
        let mut pa = with(&[0]);
        // Fresh memory is scavenged.
        assert_eq!(pa.alloc(1), Some((page(0, 0), 1)));
        assert_eq!(pa.alloc(3), Some((page(0, 1), 3)));
        // Fill to page 200, then open a 70-page hole spanning words 1 and 2 (pages 60..130).
        assert_eq!(pa.alloc(196).unwrap().0, page(0, 4));
        pa.free(page(0, 60), 70);
        pa.check();
        assert_eq!(pa.free_pages(), ARENA_PAGES - 200 + 70);
        // 71 pages do not fit in the hole: they come after page 200.
        assert_eq!(pa.alloc(71), Some((page(0, 200), 71)));
        // 70 pages fill the hole exactly; the 70 pages are dirty (freed), so 0 scavenged.
        assert_eq!(pa.alloc(70), Some((page(0, 60), 0)));
        pa.check();
        // A 2-page request does not take a 1-page hole before it.
        pa.free(page(0, 5), 1);
        pa.free(page(0, 63), 2);
        assert_eq!(pa.alloc(2), Some((page(0, 63), 0)));
        assert_eq!(pa.alloc(1), Some((page(0, 5), 0)));
        pa.check();
    }

    #[test]
    fn runs_spanning_chunk_boundaries() {
        let mut pa = with(&[0]);
        assert_eq!(pa.alloc(ARENA_PAGES).unwrap().0, arena(0));
        // Holes: [500, 530) straddles chunks 0|1; [1000, 1700) covers all of chunk 2 and parts
        // of 1 and 3; a small hole at 10 comes first but is too small.
        pa.free(page(0, 10), 5);
        pa.free(page(0, 500), 30);
        pa.free(page(0, 1000), 700);
        pa.check();
        assert_eq!(pa.alloc(30).unwrap().0, page(0, 500));
        assert_eq!(pa.alloc(600).unwrap().0, page(0, 1000));
        // 100 pages remain at 1600..1700 (crossing into chunk 3).
        assert_eq!(pa.alloc(101), None);
        assert_eq!(pa.alloc(100).unwrap().0, page(0, 1600));
        assert_eq!(pa.alloc(5).unwrap().0, page(0, 10));
        assert_eq!(pa.free_pages(), 0);
        pa.check();
        // Whole free chunks with nothing carried into them (chunk 2 is full): the run starts at
        // the first one's base.
        pa.free(page(0, 1536), 1024);
        assert_eq!(pa.alloc(1024).unwrap().0, page(0, 1536));
        // A run over many chunks freed and allocated in one piece (inner chunks set wholesale).
        pa.free(page(0, 511), 4098);
        pa.check();
        assert_eq!(pa.alloc(4098).unwrap().0, page(0, 511));
        pa.check();
    }

    #[test]
    fn exactly_an_arena() {
        let mut pa = with(&[0]);
        assert_eq!(pa.alloc(ARENA_PAGES), Some((arena(0), ARENA_PAGES)));
        assert_eq!(pa.alloc(1), None);
        assert_eq!(pa.alloc_cache(), None);
        pa.check();
        pa.free(arena(0), ARENA_PAGES);
        assert_eq!((pa.free_pages(), pa.scavenged_pages()), (ARENA_PAGES, 0));
        assert_eq!(pa.alloc(ARENA_PAGES), Some((arena(0), 0)));
        assert_eq!(pa.alloc(ARENA_PAGES + 1), None);
        pa.check();
        // One page missing anywhere breaks it.
        pa.free(arena(0), ARENA_PAGES);
        let (a, _) = pa.alloc(1).unwrap();
        assert_eq!(pa.alloc(ARENA_PAGES), None);
        pa.free(a, 1);
        assert_eq!(pa.alloc(ARENA_PAGES).map(|r| r.0), Some(arena(0)));
    }

    #[test]
    fn full_arena_then_one_free_page() {
        let mut pa = with(&[0]);
        for p in 0..ARENA_PAGES {
            assert_eq!(pa.alloc(1), Some((page(0, p), 1)));
        }
        assert_eq!(pa.alloc(1), None);
        assert_eq!(pa.free_pages(), 0);
        pa.check();
        pa.free(page(0, 4321), 1);
        pa.check();
        assert_eq!(pa.alloc(2), None);
        assert_eq!(pa.alloc(1), Some((page(0, 4321), 0)));
        assert_eq!(pa.alloc(1), None);
        pa.check();
    }

    #[test]
    fn first_fit_across_arenas() {
        // Grown out of order; 2 and 3 are adjacent in memory.
        let mut pa = with(&[3, 1, 2]);
        assert_eq!(pa.total_pages(), 3 * ARENA_PAGES);
        assert_eq!(pa.alloc(1).unwrap().0, arena(1));
        assert_eq!(pa.alloc(ARENA_PAGES - 1).unwrap().0, page(1, 1));
        // Arena 1 is full: the next run goes to 2.
        assert_eq!(pa.alloc(8000).unwrap().0, arena(2));
        // 192 pages are left at the top of 2; a 300-page run must not straddle into 3.
        assert_eq!(pa.alloc(300).unwrap().0, arena(3));
        assert_eq!(pa.alloc(192).unwrap().0, page(2, 8000));
        pa.check();
        // A new, lower arena becomes the first fit at once.
        assert!(pa.grow(arena(0)));
        pa.check();
        assert_eq!(pa.alloc(1).unwrap().0, arena(0));
        assert_eq!(pa.alloc(ARENA_PAGES - 1).unwrap().0, page(0, 1));
        // Arenas 0..3 are full, 3 has pages 300.. free. Freeing in a lower arena brings the
        // search back down, for runs that fit there.
        pa.free(page(1, 77), 1);
        pa.check();
        assert_eq!(pa.alloc(2).unwrap().0, page(3, 300));
        assert_eq!(pa.alloc(1).unwrap().0, page(1, 77));
        assert_eq!(pa.alloc(1).unwrap().0, page(3, 302));
        pa.check();
    }

    #[test]
    fn grow_below_the_search_hint() {
        // The hint points into arena 1 (page 1); arena 0 arrives at the hint's own position.
        let mut pa = with(&[1]);
        assert_eq!(pa.alloc(1).unwrap().0, arena(1));
        assert!(pa.grow(arena(0)));
        pa.check();
        assert_eq!(pa.alloc(1).unwrap().0, arena(0));
        assert_eq!(pa.alloc_cache().unwrap().base, arena(0));
    }

    #[test]
    fn grow_rejects_what_it_cannot_index() {
        let mut pa = PageAlloc::new();
        assert_eq!(pa.alloc(1), None);
        assert!(!pa.grow(1 << ADDR_BITS));
        assert_eq!(pa.total_pages(), 0);
        pa.check();
    }

    #[test]
    fn scavenged_accounting() {
        let mut pa = with(&[0]);
        assert_eq!(
            (pa.free_pages(), pa.scavenged_pages()),
            (ARENA_PAGES, ARENA_PAGES)
        );
        let (a, s) = pa.alloc(8).unwrap();
        assert_eq!(s, 8);
        // Free the middle 4: they are dirty now.
        pa.free(a + 2 * PAGE_SIZE, 4);
        assert_eq!(
            (pa.free_pages(), pa.scavenged_pages()),
            (ARENA_PAGES - 4, ARENA_PAGES - 8)
        );
        pa.free(a + 6 * PAGE_SIZE, 2);
        // A run over 4 dirty + 2 dirty + 2 scavenged pages.
        assert_eq!(pa.alloc(8), Some((a + 2 * PAGE_SIZE, 2)));
        pa.check();

        // The scavenger takes the highest dirty pages first, at most max_pages at a time.
        pa.free(a + 2 * PAGE_SIZE, 8);
        assert_eq!(pa.take_unscavenged(3), Some((a + 7 * PAGE_SIZE, 3)));
        assert_eq!(pa.free_pages(), ARENA_PAGES - 2 - 3);
        assert_eq!(pa.take_unscavenged(100), Some((a + 2 * PAGE_SIZE, 5)));
        assert_eq!(pa.take_unscavenged(100), None);
        pa.check();
        // Taken pages are in use: allocation skips them.
        assert_eq!(pa.alloc(1).unwrap().0, a + 10 * PAGE_SIZE);
        pa.free_scavenged(a + 7 * PAGE_SIZE, 3);
        pa.free_scavenged(a + 2 * PAGE_SIZE, 5);
        assert_eq!(pa.scavenged_pages(), ARENA_PAGES - 3);
        assert_eq!(pa.alloc(8), Some((a + 2 * PAGE_SIZE, 8)));
        pa.check();
    }

    #[test]
    fn take_unscavenged_goes_high_first_and_across_words_and_arenas() {
        let mut pa = with(&[0, 1]);
        let (a0, _) = pa.alloc(ARENA_PAGES).unwrap();
        let (a1, _) = pa.alloc(ARENA_PAGES).unwrap();
        pa.free(a0 + 100 * PAGE_SIZE, 10);
        pa.free(a1 + 60 * PAGE_SIZE, 70); // words 0..2 of arena 1
        pa.check();
        assert_eq!(pa.take_unscavenged(64), Some((a1 + 66 * PAGE_SIZE, 64)));
        assert_eq!(pa.take_unscavenged(64), Some((a1 + 60 * PAGE_SIZE, 6)));
        assert_eq!(pa.take_unscavenged(64), Some((a0 + 100 * PAGE_SIZE, 10)));
        assert_eq!(pa.take_unscavenged(64), None);
        pa.check();
        // A dirty run bordered by scavenged free pages stops at them.
        pa.free_scavenged(a1 + 60 * PAGE_SIZE, 6);
        pa.free(a1 + 66 * PAGE_SIZE, 64);
        assert_eq!(
            pa.take_unscavenged(usize::MAX),
            Some((a1 + 66 * PAGE_SIZE, 64))
        );
        assert_eq!(pa.take_unscavenged(0), None);
        pa.check();
    }

    #[test]
    fn take_unscavenged_at_least_skips_short_runs() {
        let mut pa = with(&[0, 1]);
        let (a0, _) = pa.alloc(ARENA_PAGES).unwrap();
        let (a1, _) = pa.alloc(ARENA_PAGES).unwrap();
        // Arena 1: single pages at its top, a 3-page run, then a 70-page run across words.
        pa.free(a1 + (ARENA_PAGES - 1) * PAGE_SIZE, 1);
        pa.free(a1 + (ARENA_PAGES - 3) * PAGE_SIZE, 1);
        pa.free(a1 + 200 * PAGE_SIZE, 3);
        pa.free(a1 + 60 * PAGE_SIZE, 70);
        // Arena 0: a run of 8 below everything of arena 1's.
        pa.free(a0 + 10 * PAGE_SIZE, 8);
        pa.check();
        // The highest run of at least 8 is arena 1's long one, taken from its top.
        assert_eq!(
            pa.take_unscavenged_at_least(64, 8),
            Some((a1 + 66 * PAGE_SIZE, 64))
        );
        // What is left of it is 6 pages: skipped, as are the 3 and the single pages.
        assert_eq!(
            pa.take_unscavenged_at_least(64, 8),
            Some((a0 + 10 * PAGE_SIZE, 8))
        );
        assert_eq!(pa.take_unscavenged_at_least(64, 8), None);
        // Nothing was freed since: the answer is remembered, not searched for again. A free
        // next to the 3-page run makes it 8 long, and the next search finds it.
        assert_eq!(pa.take_unscavenged_at_least(64, 8), None);
        pa.free(a1 + 203 * PAGE_SIZE, 5);
        assert_eq!(
            pa.take_unscavenged_at_least(64, 8),
            Some((a1 + 200 * PAGE_SIZE, 8))
        );
        pa.free(a1 + 200 * PAGE_SIZE, 3);
        pa.check();
        // A caller that wants fewer pages than the minimum gets runs of what it asks for.
        assert_eq!(
            pa.take_unscavenged_at_least(2, 8),
            Some((a1 + 201 * PAGE_SIZE, 2))
        );
        assert_eq!(
            pa.take_unscavenged_at_least(6, 6),
            Some((a1 + 60 * PAGE_SIZE, 6))
        );
        pa.check();
        // With a minimum of one it is `take_unscavenged`: the single pages, highest first.
        for page in [ARENA_PAGES - 1, ARENA_PAGES - 3, 200] {
            assert_eq!(
                pa.take_unscavenged_at_least(64, 1),
                Some((a1 + page * PAGE_SIZE, 1))
            );
        }
        assert_eq!(pa.take_unscavenged_at_least(64, 1), None);
        assert_eq!(pa.take_unscavenged_at_least(0, 1), None);
        pa.check();
    }

    #[test]
    fn page_cache_alloc_and_flush() {
        let mut pa = with(&[0]);
        // Pages 0..70 in use, then free 65 and 67 (dirty): the first free page is 65, so the
        // cache gets window 64..128 with 65, 67 dirty and 70..128 scavenged.
        let (a, _) = pa.alloc(70).unwrap();
        pa.free(a + 65 * PAGE_SIZE, 1);
        pa.free(a + 67 * PAGE_SIZE, 1);
        let mut c = pa.alloc_cache().unwrap();
        assert_eq!(c.base, page(0, 64));
        assert_eq!(c.free, 1 << 1 | 1 << 3 | bits(6, 64));
        assert_eq!(c.scav, bits(6, 64));
        assert_eq!(pa.free_pages(), ARENA_PAGES - 128);
        assert_eq!(pa.scavenged_pages(), ARENA_PAGES - 128);
        pa.check();
        // The next cache is the next window.
        let mut c2 = pa.alloc_cache().unwrap();
        assert_eq!((c2.base, c2.free), (page(0, 128), !0));
        // Serving from the cache: lowest fitting runs.
        assert_eq!(c.alloc(1), Some((page(0, 65), 0)));
        assert_eq!(c.alloc(2), Some((page(0, 70), 2)));
        assert_eq!(c.alloc(1), Some((page(0, 67), 0)));
        assert_eq!(c.alloc(60), None);
        assert_eq!(c.alloc(56), Some((page(0, 72), 56)));
        assert!(c.is_empty());
        assert_eq!(c.alloc(1), None);
        // Served pages are freed through the allocator like any run.
        pa.free(page(0, 70), 2);
        pa.check();
        // Flushing gives back the rest, keeping scavenged bits.
        assert_eq!(c2.alloc(3), Some((page(0, 128), 3)));
        pa.flush_cache(&mut c2);
        assert!(c2.is_empty());
        assert_eq!(pa.free_pages(), ARENA_PAGES - 192 + 2 + 61);
        assert_eq!(pa.scavenged_pages(), ARENA_PAGES - 192 + 61);
        pa.check();
        // Flushing an empty cache does nothing.
        pa.flush_cache(&mut c);
        // The first fit is now the freed run at 70 (dirty), then 131.. (scavenged).
        assert_eq!(pa.alloc(2), Some((page(0, 70), 0)));
        assert_eq!(pa.alloc(1), Some((page(0, 131), 1)));
        pa.check();
        // A full heap has no cache to give.
        let mut pa = with(&[0]);
        pa.alloc(ARENA_PAGES).unwrap();
        assert_eq!(pa.alloc_cache(), None);
    }

    // ---- Model-based property test ----

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum P {
        Used,
        Dirty,
        Scav,
    }

    /// The reference: a page state per page, first fit by linear scan.
    #[derive(Default)]
    struct Model {
        /// (base, pages), sorted by base.
        arenas: Vec<(usize, Vec<P>)>,
        /// Free and scavenged pages, kept by `set` (and recounted by `recount`).
        free: usize,
        scav: usize,
    }

    impl Model {
        /// Sets a page's state, keeping the counters.
        fn set(page: &mut P, to: P, free: &mut usize, scav: &mut usize) {
            *free = *free + (to != P::Used) as usize - (*page != P::Used) as usize;
            *scav = *scav + (to == P::Scav) as usize - (*page == P::Scav) as usize;
            *page = to;
        }
        fn grow(&mut self, base: usize) {
            let i = self.arenas.partition_point(|a| a.0 < base);
            self.arenas.insert(i, (base, vec![P::Scav; ARENA_PAGES]));
            self.free += ARENA_PAGES;
            self.scav += ARENA_PAGES;
        }
        /// Sets pages `addr..addr + n` (in one arena) from `from` to `to`.
        fn fill(&mut self, addr: usize, n: usize, from: P, to: P) {
            let a = self
                .arenas
                .iter_mut()
                .find(|a| a.0 == addr & !(ARENA_BYTES - 1))
                .unwrap();
            let p = (addr - a.0) / PAGE_SIZE;
            for page in &mut a.1[p..p + n] {
                assert_eq!(*page, from);
                Self::set(page, to, &mut self.free, &mut self.scav);
            }
        }
        fn alloc(&mut self, n: usize) -> Option<(usize, usize)> {
            for (base, pages) in &mut self.arenas {
                let mut run = 0;
                for i in 0..ARENA_PAGES {
                    run = if pages[i] == P::Used { 0 } else { run + 1 };
                    if run == n {
                        let mut scav = 0;
                        for p in &mut pages[i + 1 - n..=i] {
                            scav += (*p == P::Scav) as usize;
                            Self::set(p, P::Used, &mut self.free, &mut self.scav);
                        }
                        return Some((*base + (i + 1 - n) * PAGE_SIZE, scav));
                    }
                }
            }
            None
        }
        fn take(&mut self, max: usize) -> Option<(usize, usize)> {
            for (base, pages) in self.arenas.iter().rev() {
                if let Some(top) = (0..ARENA_PAGES).rev().find(|&i| pages[i] == P::Dirty) {
                    let mut s = top;
                    while s > 0 && pages[s - 1] == P::Dirty && top + 1 - s < max {
                        s -= 1;
                    }
                    let r = (*base + s * PAGE_SIZE, top + 1 - s);
                    self.fill(r.0, r.1, P::Dirty, P::Used);
                    return Some(r);
                }
            }
            None
        }
        /// `take_unscavenged_at_least`: the highest dirty run of at least `min` pages (of
        /// `max`, if fewer), taken from its top, at most `max` long.
        fn take_at_least(&mut self, max: usize, min: usize) -> Option<(usize, usize)> {
            let min = min.min(max);
            for (base, pages) in self.arenas.iter().rev() {
                let mut end = ARENA_PAGES;
                while let Some(top) = (0..end).rev().find(|&i| pages[i] == P::Dirty) {
                    let mut s = top;
                    while s > 0 && pages[s - 1] == P::Dirty {
                        s -= 1;
                    }
                    if top + 1 - s >= min {
                        let n = (top + 1 - s).min(max);
                        let r = (*base + (top + 1 - n) * PAGE_SIZE, n);
                        self.fill(r.0, r.1, P::Dirty, P::Used);
                        return Some(r);
                    }
                    end = s;
                }
            }
            None
        }
        fn cache(&mut self) -> Option<PageCache> {
            for (base, pages) in &mut self.arenas {
                if let Some(i) = pages.iter().position(|&p| p != P::Used) {
                    let w = i / 64 * 64;
                    let mut c = PageCache {
                        base: *base + w * PAGE_SIZE,
                        free: 0,
                        scav: 0,
                    };
                    for (b, p) in pages[w..w + 64].iter_mut().enumerate() {
                        c.free |= ((*p != P::Used) as u64) << b;
                        c.scav |= ((*p == P::Scav) as u64) << b;
                        Self::set(p, P::Used, &mut self.free, &mut self.scav);
                    }
                    return Some(c);
                }
            }
            None
        }
        fn flush(&mut self, c: PageCache) {
            for b in (0..64).filter(|b| c.free >> b & 1 == 1) {
                let to = if c.scav >> b & 1 == 1 {
                    P::Scav
                } else {
                    P::Dirty
                };
                self.fill(c.base + b * PAGE_SIZE, 1, P::Used, to);
            }
        }
        /// Counts the free and scavenged pages from scratch and checks the counters.
        fn recount(&self) {
            let all = self.arenas.iter().flat_map(|a| a.1.iter());
            let free = all.clone().filter(|&&p| p != P::Used).count();
            let scav = all.filter(|&&p| p == P::Scav).count();
            assert_eq!((self.free, self.scav), (free, scav), "model counters");
        }
    }

    /// PageCache::alloc by brute force.
    fn model_cache_alloc(c: &mut PageCache, n: usize) -> Option<(usize, usize)> {
        let i = (0..=64 - n).find(|&i| (i..i + n).all(|b| c.free >> b & 1 == 1))?;
        let m = bits(i, i + n);
        let scav = (c.scav & m).count_ones() as usize;
        c.free &= !m;
        c.scav &= !m;
        Some((c.base + i * PAGE_SIZE, scav))
    }

    #[derive(Clone, Debug)]
    enum Op {
        Grow(usize),
        Alloc(usize),
        Free(usize),
        Take(usize),
        TakeAtLeast(usize, usize),
        FreeScavenged(usize),
        Cache,
        CacheAlloc(usize, usize),
        Flush(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let size = prop_oneof![
            8 => 1..=16usize,
            3 => 17..=700usize,
            1 => 700..=ARENA_PAGES,
        ];
        prop_oneof![
            1 => (0..5usize).prop_map(Op::Grow),
            12 => size.prop_map(Op::Alloc),
            8 => any::<usize>().prop_map(Op::Free),
            2 => prop_oneof![1..=8usize, 1..=700usize].prop_map(Op::Take),
            1 => (1..=700usize, 1..=16usize).prop_map(|(max, min)| Op::TakeAtLeast(max, min)),
            2 => any::<usize>().prop_map(Op::FreeScavenged),
            2 => Just(Op::Cache),
            4 => (any::<usize>(), 1..16usize).prop_map(|(i, n)| Op::CacheAlloc(i, n)),
            1 => any::<usize>().prop_map(Op::Flush),
        ]
    }

    fn run(ops: &[Op]) {
        let mut pa = PageAlloc::new();
        let mut model = Model::default();
        let mut live: Vec<(usize, usize)> = Vec::new();
        let mut taken: Vec<(usize, usize)> = Vec::new();
        let mut caches: Vec<(PageCache, PageCache)> = Vec::new();
        let pick = |len: usize, i: usize| i % len;
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Grow(k) if model.arenas.iter().all(|a| a.0 != arena(k)) => {
                    assert!(pa.grow(arena(k)));
                    model.grow(arena(k));
                }
                Op::Alloc(n) => {
                    let got = pa.alloc(n);
                    assert_eq!(got, model.alloc(n), "alloc({n})");
                    if let Some((a, _)) = got {
                        live.push((a, n));
                    }
                }
                Op::Free(i) if !live.is_empty() => {
                    let (a, n) = live.swap_remove(pick(live.len(), i));
                    pa.free(a, n);
                    model.fill(a, n, P::Used, P::Dirty);
                }
                Op::Take(max) => {
                    let got = pa.take_unscavenged(max);
                    assert_eq!(got, model.take(max), "take_unscavenged({max})");
                    taken.extend(got);
                }
                Op::TakeAtLeast(max, min) => {
                    let got = pa.take_unscavenged_at_least(max, min);
                    assert_eq!(
                        got,
                        model.take_at_least(max, min),
                        "take_unscavenged_at_least({max}, {min})"
                    );
                    taken.extend(got);
                }
                Op::FreeScavenged(i) if !taken.is_empty() => {
                    let (a, n) = taken.swap_remove(pick(taken.len(), i));
                    pa.free_scavenged(a, n);
                    model.fill(a, n, P::Used, P::Scav);
                }
                Op::Cache => {
                    let got = pa.alloc_cache();
                    assert_eq!(got, model.cache(), "alloc_cache");
                    if let Some(c) = got {
                        caches.push((c, c));
                    }
                }
                Op::CacheAlloc(i, n) if !caches.is_empty() => {
                    let j = pick(caches.len(), i);
                    let (c, mc) = &mut caches[j];
                    let got = c.alloc(n);
                    assert_eq!(
                        got,
                        model_cache_alloc(mc, n),
                        "cache alloc({n}) from {mc:?}"
                    );
                    assert_eq!(c, mc);
                    if let Some((a, _)) = got {
                        live.push((a, n));
                    }
                }
                Op::Flush(i) if !caches.is_empty() => {
                    let (mut c, mc) = caches.swap_remove(pick(caches.len(), i));
                    pa.flush_cache(&mut c);
                    assert!(c.is_empty());
                    if !mc.is_empty() {
                        model.flush(mc);
                    }
                }
                _ => {}
            }
            pa.check();
            assert_eq!(pa.total_pages(), model.arenas.len() * ARENA_PAGES);
            assert_eq!(pa.free_pages(), model.free, "free pages after {op:?}");
            assert_eq!(
                pa.scavenged_pages(),
                model.scav,
                "scavenged pages after {op:?}"
            );
            if step % 32 == 0 || step == ops.len() - 1 {
                model.recount();
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..250)) {
            run(&ops);
        }
    }

    /// A long deterministic run that reaches full and nearly full heaps, which short proptest
    /// cases visit less often.
    #[test]
    fn long_random_run_matches_model() {
        let mut r = Rng(0xdead_beef);
        let mut ops = vec![Op::Grow(2), Op::Grow(0)];
        for _ in 0..20000 {
            let x = r.next() as usize;
            ops.push(match r.next() % 20 {
                0 => Op::Grow(x % 5),
                1..=7 => Op::Alloc(if x % 4 == 0 {
                    1 + x / 4 % 1500
                } else {
                    1 + x / 4 % 16
                }),
                8..=13 => Op::Free(x),
                14 if x % 2 == 0 => Op::Take(1 + x / 2 % 300),
                14 => Op::TakeAtLeast(1 + x / 2 % 300, 1 + x / 600 % 16),
                15 => Op::FreeScavenged(x),
                16 => Op::Cache,
                17 | 18 => Op::CacheAlloc(x, 1 + x / 64 % 15),
                _ => Op::Flush(x),
            });
        }
        run(&ops);
    }

    /// Best of 5 timings of `f` (which runs `iters` operations), in ns per operation.
    fn ns_per_op(iters: usize, mut f: impl FnMut()) -> f64 {
        (0..5)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_nanos() as f64 / iters as f64
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// A 4-arena heap whose first 2000 pages were fragmented (every 7th page freed) and then
    /// refilled, so the search starts past full chunks.
    fn bench_heap() -> PageAlloc {
        let mut pa = with(&[0, 1, 2, 3]);
        let (a, _) = pa.alloc(2000).unwrap();
        for p in (0..2000).step_by(7) {
            pa.free(a + p * PAGE_SIZE, 1);
        }
        while pa.free_pages() > 4 * ARENA_PAGES - 2000 {
            pa.alloc(1).unwrap();
        }
        pa
    }

    /// `cargo test --release -- --ignored --nocapture bench` prints ns per operation.
    #[test]
    #[ignore]
    fn bench() {
        use std::hint::black_box;
        const N: usize = 1_000_000;
        for n in [1, 8] {
            let mut pa = bench_heap();
            let t = ns_per_op(N, || {
                for _ in 0..N {
                    let (a, _) = pa.alloc(black_box(n)).unwrap();
                    pa.free(a, n);
                }
            });
            println!("alloc({n})+free({n}) at the frontier: {t:.1} ns/pair");
        }
        for n in [1, 8] {
            // Fill the 4 arenas with n-page runs, then free them all, timing each half.
            let mut pa = bench_heap();
            let runs: Vec<usize> = (2000..4 * ARENA_PAGES - n + 1).step_by(n).collect();
            let (mut best_alloc, mut best_free) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..5 {
                let t = std::time::Instant::now();
                for _ in &runs {
                    black_box(pa.alloc(n).unwrap());
                }
                let t_alloc = t.elapsed().as_nanos() as f64 / runs.len() as f64;
                let t = std::time::Instant::now();
                for &p in &runs {
                    pa.free(pool() + p * PAGE_SIZE, n);
                }
                let t_free = t.elapsed().as_nanos() as f64 / runs.len() as f64;
                best_alloc = best_alloc.min(t_alloc);
                best_free = best_free.min(t_free);
            }
            println!("alloc({n}) filling 4 arenas: {best_alloc:.1} ns/op");
            println!("free({n}) emptying them: {best_free:.1} ns/op");
        }
        // Random frees and allocations of 1..=16 pages in a half-full heap.
        let mut pa = with(&[0, 1, 2, 3]);
        let mut r = Rng(99);
        let mut live = Vec::new();
        while pa.free_pages() > 2 * ARENA_PAGES {
            let n = 1 + r.next() as usize % 16;
            live.push((pa.alloc(n).unwrap().0, n));
        }
        let t = ns_per_op(N, || {
            for _ in 0..N {
                let i = r.next() as usize % live.len();
                let (a, n) = live[i];
                pa.free(a, n);
                let n = 1 + r.next() as usize % 16;
                live[i] = (pa.alloc(n).unwrap().0, n);
            }
        });
        println!("random free + alloc(1..=16), half-full 4 arenas: {t:.1} ns/pair");
        // Page cache: take a window and serve it page by page, then flush the empty cache.
        let mut pa = with(&[0]);
        let t = ns_per_op(ARENA_PAGES, || {
            for _ in 0..ARENA_PAGES / 64 {
                let mut c = pa.alloc_cache().unwrap();
                while let Some(x) = c.alloc(1) {
                    black_box(x);
                }
            }
            pa.free(arena(0), ARENA_PAGES);
        });
        println!("alloc_cache + cache.alloc(1): {t:.1} ns/page");
    }
}
