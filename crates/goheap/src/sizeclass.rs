//! Size classes: the fixed menu of object sizes that every small allocation is rounded up to.
//!
//! # What a size class is
//!
//! A request of `n <= MAX_SMALL_SIZE` bytes is never served at exactly `n` bytes. It is rounded
//! up to the smallest *size class* that fits, and every object of one class lives in a *span*:
//! `npages` contiguous 8 KiB pages carved into `nelems = npages * PAGE_SIZE / size` equal slots.
//! Because every slot of a span has the same size, a span needs no per-object headers, free
//! slots are found with a bitmap of at most [`MAX_OBJS_PER_SPAN`] bits, and "which object does
//! this interior pointer point into" is one multiply (see below). The price is waste, and the
//! whole table is a trade between the number of classes (each one has its own partially-full
//! spans per P, so more classes strand more memory) and how much each rounding throws away.
//!
//! The table is Go's (Go 1.19, `runtime/mksizeclasses.go`), reproduced here by `generate`,
//! a `const fn` the compiler runs, so [`CLASSES`] and the lookup tables are compile-time data
//! and there is no build script and no copied list of numbers outside the tests. Go's
//! generator, and ours, builds the table in four steps:
//!
//! 1. **Candidate sizes** walk upwards from 8 with a step that is bumped at each power of two:
//!    8 up to 32; 16 from 32 (Go's heap bitmap of that era assumed 16-byte alignment for
//!    objects of 32 bytes or more); `p / 8` from each power of two `p` in 128..=1024; and a
//!    flat 256 from 2048 on. From 128 on, the step is at most 1/8 of the size it leaves from, which
//!    is the **rounding bound**: above 128 bytes a request is rounded up to the next candidate by
//!    less than 12.5% (steps 3 and 4 may then give it a bigger slot, but never a bigger cost).
//!    Below 128 the steps are fixed by alignment, so the relative waste is larger (a 1-byte
//!    request takes an 8-byte slot); nothing smaller than the word is worth a class.
//! 2. **Span length**: each candidate gets the fewest pages whose tail (the bytes left over
//!    after the last whole object) is at most 1/8 of the span. This is the **tail bound**.
//! 3. **Merging**: if a candidate gets the same page count and the same object count as the
//!    class just before it, the larger size simply replaces the smaller one. A span of the
//!    larger size holds exactly the same objects, so the bigger slots cost nothing, and one
//!    class fewer means one fewer set of partially full spans.
//! 4. **Widening**: each class is then grown to the largest multiple of 128 that still packs
//!    the same number of objects into the same span (Go's example: 8448 bytes gives 6 objects
//!    in 7 pages, and so does 9472). The tail shrinks, the object count is unchanged. Sizes
//!    are kept multiples of 128 so the coarse lookup table below stays exact.
//!
//! Go asserts that this yields 68 classes (class 0 standing for "large object"), and so do
//! the tests here; the table is printed at the bottom of this essay.
//!
//! goheap adds one step of its own:
//!
//! 5. **Span scaling**: a class whose Go span holds fewer than [`MIN_SPAN_OBJECTS`] (64)
//!    objects gets a span that is a multiple of Go's, as many times longer as it takes to hold
//!    64, but at most [`MAX_SCALED_SPAN_PAGES`] (8 pages, 64 KiB). Sizes, and so the rounding
//!    waste and every lookup, stay exactly Go's; the tail bound still holds, because `k` spans'
//!    worth of pages leave at most `k` times one span's tail. Why: Go frees objects only by
//!    sweeping whole spans, so its spans can be small. With explicit frees, a program that
//!    frees at random (larson, an interpreter's heap) leaves a few free objects scattered in
//!    each span, and the allocator pays a fixed cost per span it visits to collect them; a
//!    span of 1 KiB objects in one 8 KiB page yields at most 8 objects per visit, the same
//!    span in 64 KiB yields 64. Classes of 128 bytes or less already hold 64 objects in Go's
//!    span and are unchanged. The price is that a thread's partly used span of a mid-size class
//!    can hold up to 64 KiB instead of 8 KiB, as a mimalloc page does.
//!
//! # Why 8 KiB pages
//!
//! The page is the unit of the page heap: spans are whole pages, large objects are rounded to
//! whole pages, and the page-to-span map has one entry per page. 8 KiB is two 4 KiB OS pages,
//! which halves that map compared with OS pages, while still being small enough that a span of a
//! rarely used class strands little memory. It also fixes the largest span occupancy: the
//! smallest class (8 bytes, the word) packs `8192 / 8 = 1024` objects into one page, so
//! per-span allocation and mark bitmaps never exceed 1024 bits (128 bytes). And it is what makes
//! the tail bound cheap: with 32 KiB as the largest small object, one to ten pages always
//! suffice (`MAX_CLASS_PAGES` is 10, reached by the 27264-byte class).
//!
//! # The two waste bounds, and what they give together
//!
//! *Rounding waste* is the slot minus the request; step 1 keeps the candidate slot below 9/8
//! of the request (for requests above 128 bytes). *Tail waste* is the end of the span that holds no
//! slot; step 2 keeps it at most 1/8 of the span, so the slots cover at least 7/8 of it. What a
//! request really costs is its share of the span, `npages * PAGE_SIZE / nelems`, and the two
//! bounds multiply: at most `9/8 * 8/7 = 9/7`, about 1.29 times the request, i.e. at most
//! 2/9 (22.2%) of a span is waste. (Go's comment quotes 1.125 * 1.125 = 1.266; the tail bound
//! is really the factor 8/7 = 1.143, which gives 9/7.) Merging and widening do not loosen this:
//! they make slots bigger only where the span holds exactly as many objects as before, so the
//! share per object is unchanged. In the real table the two wastes rarely coincide: small
//! sizes waste mostly on rounding, large sizes mostly on the tail, and the worst request above
//! 128 bytes (4097, class 4864, 5 objects in 3 pages) costs 1.20 times its size, which is the
//! 16.65% in the "max waste" column below.
//!
//! # Why a magic multiply
//!
//! The garbage collector, `free` and the heap bitmap must turn a byte offset inside a span into
//! an object index, `offset / size`, for a size known only at run time. A 64-bit division costs
//! tens of cycles; a multiply costs about three. For each class we store
//! `div_magic = ceil(2^32 / size)` (computed as Go does, `u32::MAX / size + 1`) and compute
//! `(offset * div_magic) >> 32` instead. Writing `div_magic * size = 2^32 + e` with
//! `0 <= e < size`, and `offset = q * size + r` with `r < size`, the product shifted right by 32
//! is `q + (r + offset * e / 2^32) / size` rounded down, which is exactly `q` whenever
//! `offset * e < 2^32`. The largest offset is one span (at most 80 KiB) and `e < size <= 32 KiB`,
//! so the condition holds for every class; `check_table` proves it at compile time for each
//! class, and the tests also check every offset by brute force. (This is the condition of
//! Lemire, Kaser and Kurz, "Faster Remainder by Direct Computation", which Go's generator cites.)
//!
//! # The lookup tables
//!
//! [`size_to_class`] is on every small allocation, so it must not search. Class sizes up to 1024
//! are all multiples of 8 and those above are all multiples of 128, so a class boundary never
//! falls strictly inside an 8-byte granule below 1024 or a 128-byte granule above it, and a
//! table indexed by granule is exact:
//!
//! ```text
//!   size <= 1024:  SIZE_TO_CLASS8  [ceil(size / 8)]               129 entries (0..=1024)
//!   size >  1024:  SIZE_TO_CLASS128[ceil((size - 1024) / 128)]    249 entries (1024..=32768)
//! ```
//!
//! Entries are `u8` (there are fewer than 256 classes), 378 bytes in all; the hot small sizes
//! sit in the first two cache lines. Entry 0 of the fine table maps a 0-byte request to class 1.
//!
//! # The table
//!
//! The first columns are Go's: `pages`, `bytes/span` and `objects` describe Go's span, `tail`
//! is its unused end, `max waste` the fraction of it wasted when every slot holds the smallest
//! request that maps to the class, `align` the alignment every object of the class has, given
//! that spans start on a page boundary. The last two columns are goheap's span after step 5:
//! its pages and objects. The test
//! `doc_table_matches_computed_table` regenerates this text from [`CLASSES`] and fails if it
//! differs.
//!
//! ```text
//! class  bytes/obj  pages  bytes/span  objects  tail  max waste  align  goheap  objects
//!     1          8      1        8192     1024     0     87.50%      8       1     1024
//!     2         16      1        8192      512     0     43.75%     16       1      512
//!     3         24      1        8192      341     8     29.24%      8       1      341
//!     4         32      1        8192      256     0     21.88%     32       1      256
//!     5         48      1        8192      170    32     31.52%     16       1      170
//!     6         64      1        8192      128     0     23.44%     64       1      128
//!     7         80      1        8192      102    32     19.07%     16       1      102
//!     8         96      1        8192       85    32     15.95%     32       1       85
//!     9        112      1        8192       73    16     13.56%     16       1       73
//!    10        128      1        8192       64     0     11.72%    128       1       64
//!    11        144      1        8192       56   128     11.82%     16       2      113
//!    12        160      1        8192       51    32      9.73%     32       2      102
//!    13        176      1        8192       46    96      9.59%     16       2       93
//!    14        192      1        8192       42   128      9.25%     64       2       85
//!    15        208      1        8192       39    80      8.12%     16       2       78
//!    16        224      1        8192       36   128      8.15%     32       2       73
//!    17        240      1        8192       34    32      6.62%     16       2       68
//!    18        256      1        8192       32     0      5.86%    256       2       64
//!    19        288      1        8192       28   128     12.16%     32       3       85
//!    20        320      1        8192       25   192     11.80%     64       3       76
//!    21        352      1        8192       23    96      9.88%     32       3       69
//!    22        384      1        8192       21   128      9.51%    128       3       64
//!    23        416      1        8192       19   288     10.71%     32       4       78
//!    24        448      1        8192       18   128      8.37%     64       4       73
//!    25        480      1        8192       17    32      6.82%     32       4       68
//!    26        512      1        8192       16     0      6.05%    512       4       64
//!    27        576      1        8192       14   128     12.33%     64       5       71
//!    28        640      1        8192       12   512     15.48%    128       5       64
//!    29        704      1        8192       11   448     13.93%     64       6       69
//!    30        768      1        8192       10   512     13.94%    256       6       64
//!    31        896      1        8192        9   128     15.52%    128       7       64
//!    32       1024      1        8192        8     0     12.40%   1024       8       64
//!    33       1152      1        8192        7   128     12.41%    128       8       56
//!    34       1280      1        8192        6   512     15.55%    256       8       51
//!    35       1408      2       16384       11   896     14.00%    128       8       46
//!    36       1536      1        8192        5   512     14.00%    512       8       42
//!    37       1792      2       16384        9   256     15.57%    256       8       36
//!    38       2048      1        8192        4     0     12.45%   2048       8       32
//!    39       2304      2       16384        7   256     12.46%    256       8       28
//!    40       2688      1        8192        3   128     15.59%    128       8       24
//!    41       3072      3       24576        8     0     12.47%   1024       6       16
//!    42       3200      2       16384        5   384      6.22%    128       8       20
//!    43       3456      3       24576        7   384      8.83%    128       6       14
//!    44       4096      1        8192        2     0     15.60%   4096       8       16
//!    45       4864      3       24576        5   256     16.65%    256       6       10
//!    46       5376      2       16384        3   256     10.92%    256       8       12
//!    47       6144      3       24576        4     0     12.48%   2048       6        8
//!    48       6528      4       32768        5   128      6.23%    128       8       10
//!    49       6784      5       40960        6   256      4.36%    128       5        6
//!    50       6912      6       49152        7   768      3.37%    256       6        7
//!    51       8192      1        8192        1     0     15.61%   8192       8        8
//!    52       9472      7       57344        6   512     14.28%    256       7        6
//!    53       9728      6       49152        5   512      3.64%    512       6        5
//!    54      10240      5       40960        4     0      4.99%   2048       5        4
//!    55      10880      4       32768        3   128      6.24%    128       8        6
//!    56      12288      3       24576        2     0     11.45%   4096       6        4
//!    57      13568      5       40960        3   256      9.99%    256       5        3
//!    58      14336      7       57344        4     0      5.35%   2048       7        4
//!    59      16384      2       16384        1     0     12.49%   8192       8        4
//!    60      18432      9       73728        4     0     11.11%   2048       9        4
//!    61      19072      7       57344        3   128      3.57%    128       7        3
//!    62      20480      5       40960        2     0      6.87%   4096       5        2
//!    63      21760      8       65536        3   256      6.25%    256       8        3
//!    64      24576      3       24576        1     0     11.45%   8192       6        2
//!    65      27264     10       81920        3   128     10.00%    128      10        3
//!    66      28672      7       57344        2     0      4.91%   4096       7        2
//!    67      32768      4       32768        1     0     12.50%   8192       8        2
//! ```

/// log2 of the goheap page size.
pub const PAGE_SHIFT: usize = 13;

/// The goheap page: 8 KiB, two 4 KiB OS pages (see the essay above for why).
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

/// Largest request served from a size class; anything bigger gets its own run of pages. 32 KiB
/// is four pages: rounding a large request up to whole pages then wastes less than one page in
/// five, about as much as the size classes themselves waste.
pub const MAX_SMALL_SIZE: usize = 32 << 10;

/// The smallest class: one machine word. Every class size is a multiple of it.
const MIN_CLASS_SIZE: usize = 8;

/// Most objects any span holds: the 8-byte class packs a single page full.
/// `PAGE_SIZE / MIN_CLASS_SIZE = 8192 / 8 = 1024`.
pub const MAX_OBJS_PER_SPAN: usize = PAGE_SIZE / MIN_CLASS_SIZE;

/// Granule of the fine lookup table, and the largest size it covers. Every class size up to
/// `SMALL_SIZE_MAX` is a multiple of `SMALL_SIZE_DIV` (asserted by `check_table`).
const SMALL_SIZE_DIV: usize = 8;
const SMALL_SIZE_MAX: usize = 1024;

/// Granule of the coarse lookup table, used above `SMALL_SIZE_MAX`. Every class size above
/// `SMALL_SIZE_MAX` is a multiple of it (asserted by `check_table`); widening (step 4) rounds
/// down to it for that reason.
const LARGE_SIZE_DIV: usize = 128;

/// The tail of a span may be at most `1 / TAIL_WASTE_DIV` of it (12.5%).
const TAIL_WASTE_DIV: usize = 8;

/// Above 128 bytes the candidate step is `1 / ROUNDING_WASTE_DIV` of the last power of two
/// passed, so rounding up adds less than 12.5% to a request.
const ROUNDING_WASTE_DIV: usize = 8;

/// Size class metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassInfo {
    /// Bytes per object (0 for class 0, "large object").
    pub size: u32,
    /// Pages per span of this class in goheap: Go's `go_npages` times a small factor (step 5).
    pub npages: u32,
    /// Pages per span of this class in Go's table.
    pub go_npages: u32,
    /// Objects per span: `npages * PAGE_SIZE / size`.
    pub nelems: u32,
    /// `ceil(2^32 / size)`, for [`obj_index`].
    pub div_magic: u32,
}

impl ClassInfo {
    const ZERO: ClassInfo = ClassInfo {
        size: 0,
        npages: 0,
        go_npages: 0,
        nelems: 0,
        div_magic: 0,
    };
}

/// Room for the generator's output before it is cut to length. Lookup entries are `u8`, so more
/// than 256 classes could not be represented anyway; `generate` fails to compile past it.
const GEN_CAPACITY: usize = 256;

/// The generator's output: the first `len` entries of `classes` are the table.
struct Generated {
    classes: [ClassInfo; GEN_CAPACITY],
    len: usize,
}

/// The step between candidate sizes once `size` has been reached (`step` is the current one).
/// Changes only at powers of two.
const fn next_step(size: usize, step: usize) -> usize {
    if !size.is_power_of_two() {
        step
    } else if size >= 2048 {
        // 2048 / 8; from here the step stays flat, so the relative rounding keeps shrinking
        // and the tail bound is what shapes the classes.
        256
    } else if size >= 128 {
        size / ROUNDING_WASTE_DIV
    } else if size >= 32 {
        // Go 1.19's heap bitmap assumed 16-byte alignment for objects of 32 bytes or more.
        16
    } else {
        step
    }
}

/// Fewest pages whose span, carved into `size`-byte objects, leaves a tail of at most
/// `1 / TAIL_WASTE_DIV` of the span.
const fn pages_for(size: usize) -> usize {
    let mut span = PAGE_SIZE;
    while span % size > span / TAIL_WASTE_DIV {
        span += PAGE_SIZE;
    }
    span / PAGE_SIZE
}

/// Objects a span should hold at least, where [`MAX_SCALED_SPAN_PAGES`] allows: one full
/// 64-bit allocation window (step 5 of the essay).
pub const MIN_SPAN_OBJECTS: usize = 64;
/// Longest span step 5 may make: 8 pages = 64 KiB, the size of a mimalloc small page.
pub const MAX_SCALED_SPAN_PAGES: usize = 8;

/// Step 5: the smallest factor by which to multiply Go's span length (`go_pages` pages) for
/// objects of `size` bytes so that the span holds [`MIN_SPAN_OBJECTS`], without passing
/// [`MAX_SCALED_SPAN_PAGES`].
const fn span_scale(go_pages: usize, size: usize) -> usize {
    let mut k = 1;
    while k * go_pages * PAGE_SIZE / size < MIN_SPAN_OBJECTS
        && (k + 1) * go_pages <= MAX_SCALED_SPAN_PAGES
    {
        k += 1;
    }
    k
}

/// `ceil(2^32 / size)` as Go writes it: `^uint32(0)/size + 1`. Exact for powers of two too
/// (there `u32::MAX / size` is `2^32 / size - 1`).
const fn magic_for(size: usize) -> u32 {
    u32::MAX / size as u32 + 1
}

/// Runs steps 1 to 4 of the essay: candidates, span lengths, merging, widening.
const fn generate() -> Generated {
    let mut classes = [ClassInfo::ZERO; GEN_CAPACITY];
    let mut len = 1; // class 0 stays all zeros: "not a small object"

    let mut step = MIN_CLASS_SIZE;
    let mut size = MIN_CLASS_SIZE;
    while size <= MAX_SMALL_SIZE {
        step = next_step(size, step);
        let npages = pages_for(size);
        let nelems = npages * PAGE_SIZE / size;
        let last = &mut classes[len - 1];
        if len > 1 && last.npages as usize == npages && last.nelems as usize == nelems {
            // Same span, same object count: the larger slot is free, keep it instead.
            last.size = size as u32;
        } else {
            assert!(
                len < GEN_CAPACITY,
                "more size classes than a u8 lookup entry can name"
            );
            classes[len] = ClassInfo {
                size: size as u32,
                npages: npages as u32,
                go_npages: npages as u32,
                nelems: nelems as u32,
                div_magic: 0,
            };
            len += 1;
        }
        size += step;
    }

    let mut c = 1;
    while c < len {
        let class = &mut classes[c];
        let span = class.npages as usize * PAGE_SIZE;
        // The largest slot that still fits `nelems` objects, kept on the coarse-table grid.
        // It cannot fit one more object than before: the old size already left less than one
        // slot of tail, and this one is larger.
        let widest = span / class.nelems as usize / LARGE_SIZE_DIV * LARGE_SIZE_DIV;
        if widest > class.size as usize {
            class.size = widest as u32;
        }
        class.nelems = (span / class.size as usize) as u32;
        class.div_magic = magic_for(class.size as usize);
        // Step 5: goheap's span length, a multiple of Go's.
        class.go_npages = class.npages;
        class.npages *= span_scale(class.npages as usize, class.size as usize) as u32;
        class.nelems = (class.npages as usize * PAGE_SIZE / class.size as usize) as u32;
        c += 1;
    }

    Generated { classes, len }
}

const GENERATED: Generated = generate();

/// Number of size classes, including class 0 ("large object"). 68 for Go 1.19's policy.
pub const NUM_CLASSES: usize = GENERATED.len;

/// The first `N` entries of the generator's output.
const fn first<const N: usize>(all: &[ClassInfo; GEN_CAPACITY]) -> [ClassInfo; N] {
    let mut out = [ClassInfo::ZERO; N];
    let mut i = 0;
    while i < N {
        out[i] = all[i];
        i += 1;
    }
    out
}

/// The table as a constant, so that the other constants and tables can be computed from it.
const CLASS_TABLE: [ClassInfo; NUM_CLASSES] = first(&GENERATED.classes);

/// The size classes, indexed by class number. `CLASSES[0]` is all zeros and stands for "large
/// object"; classes `1..NUM_CLASSES` have strictly increasing sizes.
pub static CLASSES: [ClassInfo; NUM_CLASSES] = CLASS_TABLE;

const fn max_class_pages() -> usize {
    let mut max = 0;
    let mut c = 1;
    while c < NUM_CLASSES {
        if CLASS_TABLE[c].npages as usize > max {
            max = CLASS_TABLE[c].npages as usize;
        }
        c += 1;
    }
    max
}

/// Pages in the longest span of any class (10 for Go 1.19's table: 3 objects of 27264 bytes).
pub const MAX_CLASS_PAGES: usize = max_class_pages();

/// Compile-time proof of the properties the rest of the allocator relies on. A violation is a
/// build error, not a test failure.
// Rust 1.85 (the MSRV) counts a call from `const _` as no use; later compilers do not.
#[allow(dead_code)]
const fn check_table() {
    let z = CLASS_TABLE[0];
    assert!(z.size == 0 && z.npages == 0 && z.nelems == 0 && z.div_magic == 0);
    let mut c = 1;
    while c < NUM_CLASSES {
        let k = CLASS_TABLE[c];
        let size = k.size as usize;
        let span = k.npages as usize * PAGE_SIZE;
        assert!(
            size > CLASS_TABLE[c - 1].size as usize,
            "class sizes must increase"
        );
        assert!(size <= MAX_SMALL_SIZE);
        // The lookup tables are exact only if no class size falls inside a granule.
        if size <= SMALL_SIZE_MAX {
            assert!(
                size & (SMALL_SIZE_DIV - 1) == 0,
                "class size off the 8-byte grid"
            );
        } else {
            assert!(
                size & (LARGE_SIZE_DIV - 1) == 0,
                "class size off the 128-byte grid"
            );
        }
        assert!(k.nelems as usize == span / size);
        assert!(
            k.nelems as usize <= MAX_OBJS_PER_SPAN,
            "span bitmaps would overflow"
        );
        assert!(
            span % size <= span / TAIL_WASTE_DIV,
            "tail waste above 1/8 of the span"
        );
        // The magic multiply is exact for every offset <= span when span * e < 2^32, where
        // div_magic * size = 2^32 + e (see the essay).
        let product = k.div_magic as u64 * size as u64;
        assert!(
            product >= 1 << 32 && product - (1 << 32) < size as u64,
            "div_magic is not ceil(2^32 / size)"
        );
        let e = product - (1 << 32);
        assert!(
            (span as u64) * e < (1u64 << 32),
            "div_magic not exact over the whole span"
        );
        c += 1;
    }
    // The last class must cover every small request, or the lookup could run off the table.
    assert!(CLASS_TABLE[NUM_CLASSES - 1].size as usize == MAX_SMALL_SIZE);
}

const _: () = check_table();
const _: () = assert!(NUM_CLASSES <= 256, "lookup tables store classes as u8");

/// Builds a lookup table of `N` entries: entry `i` is the smallest class whose size is at
/// least `max(base + i * granule, 1)`.
const fn build_lookup<const N: usize>(base: usize, granule: usize) -> [u8; N] {
    let mut table = [0u8; N];
    let mut class = 1;
    let mut i = 0;
    while i < N {
        let mut want = base + i * granule;
        if want == 0 {
            want = 1;
        }
        // Terminates: the last class is MAX_SMALL_SIZE (checked above) and want never exceeds it.
        while (CLASS_TABLE[class].size as usize) < want {
            class += 1;
        }
        table[i] = class as u8;
        i += 1;
    }
    table
}

/// Class by 8-byte granule, for sizes `0..=SMALL_SIZE_MAX`.
const SIZE_TO_CLASS8: [u8; SMALL_SIZE_MAX / SMALL_SIZE_DIV + 1] = build_lookup(0, SMALL_SIZE_DIV);

/// Class by 128-byte granule above `SMALL_SIZE_MAX`, for sizes `SMALL_SIZE_MAX..=MAX_SMALL_SIZE`.
const SIZE_TO_CLASS128: [u8; (MAX_SMALL_SIZE - SMALL_SIZE_MAX) / LARGE_SIZE_DIV + 1] =
    build_lookup(SMALL_SIZE_MAX, LARGE_SIZE_DIV);

/// Smallest class whose size is at least `size`, for `1 <= size <= MAX_SMALL_SIZE`; `size` 0 is
/// treated as 1. Two table loads, no search. Panics (index out of bounds) above
/// `MAX_SMALL_SIZE`.
#[inline(always)]
pub fn size_to_class(size: usize) -> usize {
    debug_assert!(size <= MAX_SMALL_SIZE, "size_to_class of a large size");
    if size <= SMALL_SIZE_MAX {
        SIZE_TO_CLASS8[size.div_ceil(SMALL_SIZE_DIV)] as usize
    } else {
        SIZE_TO_CLASS128[(size - SMALL_SIZE_MAX).div_ceil(LARGE_SIZE_DIV)] as usize
    }
}

/// Smallest class with size at least `size` whose object size is a multiple of `align`, a power
/// of two no larger than [`PAGE_SIZE`]. Spans start on a page boundary, so every object of such a
/// class is `align`-aligned. Returns `None` when no small class qualifies (`size` above
/// [`MAX_SMALL_SIZE`] or `align` above [`PAGE_SIZE`]); the caller then makes a large,
/// page-aligned allocation. `size` 0 is treated as 1. An `align` that is not a power of two
/// fails a debug assertion and gives `None` in release builds.
///
/// Slow path: walks up from [`size_to_class`], at most `NUM_CLASSES` steps.
pub fn size_to_class_aligned(size: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two(), "alignment must be a power of two");
    if size > MAX_SMALL_SIZE || align > PAGE_SIZE || !align.is_power_of_two() {
        return None;
    }
    (size_to_class(size)..NUM_CLASSES).find(|&c| CLASSES[c].size as usize & (align - 1) == 0)
}

/// Index of the object containing byte `offset` of a span whose class has magic `div_magic`:
/// `offset / size`, computed as `(offset * div_magic) >> 32` (exact for every offset up to the
/// span's length; see the essay).
#[inline(always)]
pub fn obj_index(offset: usize, div_magic: u32) -> usize {
    debug_assert!(
        offset <= MAX_CLASS_PAGES * PAGE_SIZE,
        "offset beyond any span"
    );
    ((offset as u64 * div_magic as u64) >> 32) as usize
}

/// [`obj_index`], plus whether `offset` is the first byte of that object, from the same
/// multiply: writing `div_magic * size = 2^32 + e`, the low 32 bits of `offset * div_magic`
/// are `q * e` (less than `div_magic`) when `offset = q * size`, and at least `div_magic` when
/// it is not, for every offset inside a span (the table check at compile time bounds
/// `span * e` below `2^32`). The free path uses it to reject interior pointers without a
/// second multiply. With `div_magic = 1` (large objects) only offset 0 is exact.
#[inline(always)]
pub fn obj_index_exact(offset: usize, div_magic: u32) -> (usize, bool) {
    let product = offset as u64 * div_magic as u64;
    ((product >> 32) as usize, (product as u32) < div_magic)
}

/// The bound that turns [`obj_index_exact`]'s low half into the whole "is this the first
/// byte of one of the span's objects" test: for a class with magic `div_magic`, `nelems`
/// objects of `size` bytes, and every offset inside the span,
/// `(offset * div_magic) as u32 < limit` exactly when `offset = q * size` with `q < nelems`.
///
/// Why: writing `div_magic * size = 2^32 + e`, the low half is `q * e` at an object's first
/// byte and at least `div_magic` anywhere else (see [`obj_index_exact`]). With `e > 0` it
/// grows with `q`, so `min(div_magic, nelems * e)` also rejects the first bytes of the
/// would-be objects in the span's tail (`q >= nelems`). With `e = 0` (power-of-two sizes)
/// every first byte gives 0, but those classes have no tail (checked for every class
/// below), so `div_magic` is enough. One compare on the free path instead of two.
pub const fn first_byte_limit(size: usize, nelems: usize, div_magic: u32) -> u32 {
    let e = div_magic as u64 * size as u64 - (1 << 32);
    if e == 0 {
        return div_magic;
    }
    let tail = nelems as u64 * e;
    if tail < div_magic as u64 {
        tail as u32
    } else {
        div_magic
    }
}

// Rust 1.85 (the MSRV) counts a call from `const _` as no use; later compilers do not.
#[allow(dead_code)]
const fn check_first_byte_limits() {
    let mut c = 1;
    while c < NUM_CLASSES {
        let k = CLASS_TABLE[c];
        let (size, span) = (k.size as u64, k.npages as u64 * PAGE_SIZE as u64);
        if k.div_magic as u64 * size == 1 << 32 {
            assert!(span % size == 0, "a power-of-two class with a tail");
        }
        // nelems * e <= span * e < 2^32 (check_table), so the limit fits its u32.
        assert!(first_byte_limit(k.size as usize, k.nelems as usize, k.div_magic) > 0);
        c += 1;
    }
}
const _: () = check_first_byte_limits();

#[cfg(test)]
mod tests {
    use super::*;

    /// Go 1.19 `runtime/sizeclasses.go`: `class_to_size`.
    const GO_SIZES: [u32; 68] = [
        0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288,
        320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536,
        1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192,
        9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576,
        27264, 28672, 32768,
    ];

    /// Go 1.19 `runtime/sizeclasses.go`: `class_to_allocnpages`.
    const GO_NPAGES: [u32; 68] = [
        0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 2, 1, 2, 1, 2, 1, 3, 2, 3, 1, 3, 2, 3, 4, 5, 6, 1, 7, 6, 5, 4, 3, 5, 7, 2,
        9, 7, 5, 8, 3, 10, 7, 4,
    ];

    /// Go 1.19 `runtime/sizeclasses.go` header, "max waste" column, in hundredths of a percent,
    /// for classes 1..=67.
    const GO_MAX_WASTE_BP: [u32; 67] = [
        8750, 4375, 2924, 2188, 3152, 2344, 1907, 1595, 1356, 1172, 1182, 973, 959, 925, 812, 815,
        662, 586, 1216, 1180, 988, 951, 1071, 837, 682, 605, 1233, 1548, 1393, 1394, 1552, 1240,
        1241, 1555, 1400, 1400, 1557, 1245, 1246, 1559, 1247, 622, 883, 1560, 1665, 1092, 1248,
        623, 436, 337, 1561, 1428, 364, 499, 624, 1145, 999, 535, 1249, 1111, 357, 687, 625, 1145,
        1000, 491, 1250,
    ];

    /// Written without `%` only because clippy asks for `is_multiple_of`, which is newer than
    /// the workspace's rust-version (1.85); deliberately not the bit mask the code under test uses.
    fn is_multiple(n: usize, align: usize) -> bool {
        n / align * align == n
    }

    fn span_bytes(c: usize) -> usize {
        CLASSES[c].go_npages as usize * PAGE_SIZE
    }

    /// Fraction of the span wasted when every slot holds the smallest request of the class,
    /// in hundredths of a percent, rounded half up.
    fn max_waste_bp(c: usize) -> usize {
        let k = CLASSES[c];
        let (size, span) = (k.size as usize, span_bytes(c));
        let smallest_request = CLASSES[c - 1].size as usize + 1;
        let wasted = (size - smallest_request) * (span / size) + span % size;
        (wasted * 20_000 + span) / (2 * span)
    }

    #[test]
    fn table_is_go_1_19() {
        assert_eq!(NUM_CLASSES, 68);
        let sizes: Vec<u32> = CLASSES.iter().map(|k| k.size).collect();
        let npages: Vec<u32> = CLASSES.iter().map(|k| k.go_npages).collect();
        assert_eq!(sizes, GO_SIZES);
        assert_eq!(npages, GO_NPAGES);
        assert_eq!(MAX_CLASS_PAGES, 10);
        assert_eq!(MAX_OBJS_PER_SPAN, 1024);
        assert_eq!(
            CLASSES[0],
            ClassInfo {
                size: 0,
                npages: 0,
                go_npages: 0,
                nelems: 0,
                div_magic: 0
            }
        );
        for c in 1..NUM_CLASSES {
            assert_eq!(
                max_waste_bp(c),
                GO_MAX_WASTE_BP[c - 1] as usize,
                "class {c}"
            );
            // Go's formula, spelled out independently of `magic_for`.
            assert_eq!(
                CLASSES[c].div_magic,
                u32::MAX / CLASSES[c].size + 1,
                "class {c}"
            );
        }
    }

    #[test]
    fn scaled_spans_keep_the_bounds_and_hold_a_window() {
        for (c, k) in CLASSES.iter().enumerate().skip(1) {
            let (size, go, n) = (k.size as usize, k.go_npages as usize, k.npages as usize);
            let span = n * PAGE_SIZE;
            assert_eq!(n % go, 0, "class {c}: not a multiple of Go's span");
            assert!(span % size <= span / 8, "class {c}: tail waste above 1/8");
            assert_eq!(k.nelems as usize, span / size, "class {c}");
            assert!(k.nelems as usize <= MAX_OBJS_PER_SPAN, "class {c}");
            assert!(n <= MAX_CLASS_PAGES, "class {c}");
            let go_nelems = go * PAGE_SIZE / size;
            if go_nelems >= MIN_SPAN_OBJECTS || go * 2 > MAX_SCALED_SPAN_PAGES {
                assert_eq!(n, go, "class {c}: scaled without need or room");
            } else {
                assert!(n <= MAX_SCALED_SPAN_PAGES, "class {c}: span too long");
                // Long enough (or at the cap), and no longer than needed.
                assert!(
                    k.nelems as usize >= MIN_SPAN_OBJECTS || n + go > MAX_SCALED_SPAN_PAGES,
                    "class {c}: could have been longer"
                );
                assert!(
                    (n - go) * PAGE_SIZE / size < MIN_SPAN_OBJECTS,
                    "class {c}: longer than needed"
                );
            }
        }
        // Spot checks: 16 B unchanged (512 objects), 1 KiB from 1 to 8 pages, 32 KiB to 8.
        assert_eq!(CLASSES[size_to_class(16)].npages, 1);
        assert_eq!(CLASSES[size_to_class(1024)].npages, 8);
        assert_eq!(CLASSES[size_to_class(1024)].nelems, 64);
        assert_eq!(CLASSES[size_to_class(32768)].npages, 8);
    }

    #[test]
    fn span_shape_of_every_class() {
        for (c, k) in CLASSES.iter().enumerate().skip(1) {
            // Go's span (goheap's scaled one is checked above).
            let (size, span) = (k.size as usize, span_bytes(c));
            assert!(span % size <= span / 8, "class {c}: tail waste above 1/8");
            assert!(span / size <= MAX_OBJS_PER_SPAN, "class {c}");
            assert!(k.npages as usize <= MAX_CLASS_PAGES, "class {c}");
            // (npages is the fewest pages for the *candidate* a class started from, not always
            // for its final size: 1664 needs 2 pages, is widened to 1792, which alone would fit
            // in 1. The comparison with Go's npages above pins that down.)
        }
    }

    #[test]
    fn size_to_class_is_minimal_and_bounded() {
        assert_eq!(size_to_class(0), 1);
        for size in 1..=MAX_SMALL_SIZE {
            let c = size_to_class(size);
            assert!((1..NUM_CLASSES).contains(&c), "size {size}");
            let k = CLASSES[c];
            let class_size = k.size as usize;
            assert!(class_size >= size, "size {size} -> class {c} too small");
            assert!(
                (CLASSES[c - 1].size as usize) < size,
                "size {size} -> class {c} not minimal"
            );

            if size <= 128 {
                // Alignment steps rule here (8, then 16): the slot is less than a step larger.
                assert!(class_size - size < 16, "size {size} -> {class_size}");
                continue;
            }
            // Go's rounding bound is 12.5%. Merging and widening give some classes bigger slots
            // than that, but only where the span holds exactly as many objects: the smallest slot
            // that still packs `nelems` objects into the span is within 9/8 of the request.
            let span = span_bytes(c);
            let nelems = k.nelems as usize;
            let tightest = size.max(span / (nelems + 1) + 1);
            assert!(
                tightest * 8 <= size * 9,
                "size {size} -> class {c}: rounding above 12.5%"
            );
            // And the combined bound: the request's share of its span is at most 9/7 of it.
            assert!(
                span * 7 <= nelems * size * 9,
                "size {size}: share above 9/7 of request"
            );
        }
    }

    #[test]
    fn obj_index_is_exact_for_every_offset() {
        for (c, k) in CLASSES.iter().enumerate().skip(1) {
            let size = k.size as usize;
            for i in 0..k.nelems as usize {
                let base = i * size;
                // Every byte of every object.
                for offset in base..base + size {
                    assert_eq!(
                        obj_index(offset, k.div_magic),
                        i,
                        "class {c}, offset {offset}"
                    );
                }
            }
            // The tail and the end of the span (Go checks up to and including the span length).
            let span = k.npages as usize * PAGE_SIZE;
            for offset in k.nelems as usize * size..=span {
                assert_eq!(
                    obj_index(offset, k.div_magic),
                    offset / size,
                    "class {c} tail"
                );
            }
            // The exactness test agrees with division at every offset of the span, and the
            // first-byte limit accepts exactly the first bytes of the span's objects.
            let limit = first_byte_limit(size, k.nelems as usize, k.div_magic);
            for offset in 0..=span {
                assert_eq!(
                    obj_index_exact(offset, k.div_magic),
                    (offset / size, offset % size == 0),
                    "class {c}, offset {offset}"
                );
                // (Offsets inside the span only: `span` itself is the next span's page.)
                if offset < span {
                    assert_eq!(
                        ((offset as u64 * k.div_magic as u64) as u32) < limit,
                        offset % size == 0 && offset / size < k.nelems as usize,
                        "class {c}, offset {offset}: first-byte limit"
                    );
                }
            }
        }
    }

    #[test]
    fn size_to_class_aligned_is_minimal() {
        let mut align = 8;
        while align <= PAGE_SIZE {
            for size in 0..=MAX_SMALL_SIZE {
                let want = size.max(1);
                let reference = (1..NUM_CLASSES).find(|&c| {
                    let s = CLASSES[c].size as usize;
                    s >= want && is_multiple(s, align)
                });
                let got = size_to_class_aligned(size, align);
                assert_eq!(got, reference, "size {size}, align {align}");
                if let Some(c) = got {
                    let s = CLASSES[c].size as usize;
                    assert!(s >= want && is_multiple(s, align));
                }
            }
            align *= 2;
        }
        // Up to the word size every class qualifies.
        for size in 0..=MAX_SMALL_SIZE {
            assert_eq!(size_to_class_aligned(size, 1), Some(size_to_class(size)));
            assert_eq!(size_to_class_aligned(size, 8), Some(size_to_class(size)));
        }
        assert_eq!(size_to_class_aligned(MAX_SMALL_SIZE + 1, 8), None);
        assert_eq!(size_to_class_aligned(8, PAGE_SIZE * 2), None);
        assert_eq!(
            CLASSES[size_to_class_aligned(1, PAGE_SIZE).unwrap()].size,
            8192
        );
    }

    /// The table in the module documentation, rendered from [`CLASSES`].
    fn render_table() -> String {
        let mut out = String::new();
        let header = format!(
            "{:>5}  {:>9}  {:>5}  {:>10}  {:>7}  {:>4}  {:>9}  {:>5}  {:>6}  {:>7}",
            "class",
            "bytes/obj",
            "pages",
            "bytes/span",
            "objects",
            "tail",
            "max waste",
            "align",
            "goheap",
            "objects"
        );
        out.push_str(&format!("//! {header}\n"));
        for (c, k) in CLASSES.iter().enumerate().skip(1) {
            let span = span_bytes(c);
            let bp = max_waste_bp(c);
            let align = 1usize << k.size.trailing_zeros().min(PAGE_SHIFT as u32);
            let line = format!(
                "{:>5}  {:>9}  {:>5}  {:>10}  {:>7}  {:>4}  {:>5}.{:02}%  {:>5}  {:>6}  {:>7}",
                c,
                k.size,
                k.go_npages,
                span,
                span / k.size as usize,
                span % k.size as usize,
                bp / 100,
                bp % 100,
                align,
                k.npages,
                k.nelems
            );
            out.push_str(&format!("//! {line}\n"));
        }
        out
    }

    #[test]
    fn doc_table_matches_computed_table() {
        let table = render_table();
        println!("{table}");
        let source = include_str!("sizeclass.rs");
        assert!(
            source.contains(&table),
            "module doc table is stale; paste the printed one"
        );
    }
}
