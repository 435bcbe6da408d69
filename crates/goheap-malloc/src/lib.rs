//! goheap as the C allocator: a shared library that any dynamically linked program can load
//! with `LD_PRELOAD=.../libgoheap_malloc.so` to have its `malloc` served by Go's allocator.
//!
//! ```text
//!   cargo build --release -p goheap-malloc
//!   LD_PRELOAD=target/release/libgoheap_malloc.so GOHEAP_STATS=1 python3 script.py
//! ```
//!
//! # How a preloaded malloc takes over
//!
//! glibc supports replacing its allocator by interposition ("Replacing malloc" in its
//! manual): the dynamic linker resolves every reference to `malloc`, `free`, ... to the first
//! definition in the global scope, and a preloaded library comes right after the executable.
//! glibc's own internal calls go through those symbols too, so `strdup`, `fopen`,
//! `pthread_create` and libstdc++'s `operator new` all land here. The replacement must define
//! the whole family, or memory from one allocator reaches the other's `free`: this file
//! exports `malloc`, `free`, `cfree`, `calloc`, `realloc`, `reallocarray`, `posix_memalign`,
//! `aligned_alloc`, `memalign`, `valloc`, `pvalloc` and `malloc_usable_size`, each with
//! glibc's behaviour at the edges (see each function).
//!
//! # Alignment: glibc's 16 bytes
//!
//! glibc's `malloc` returns 16-byte aligned memory on x86-64 (`MALLOC_ALIGNMENT`), and C
//! requires alignment for any object that fits the request: a 24-byte request may hold a
//! 16-byte `long double` that must be 16-aligned. Go's classes are multiples of 16 above
//! 16 bytes except one, the 24-byte class; requests of 17 to 24 bytes are therefore served
//! from the 32-byte class (`c_size`). Requests of at most 8 bytes get 8-byte alignment
//! (nothing that small needs more), as with jemalloc and mimalloc.
//!
//! # Nothing here may allocate
//!
//! Inside this library Rust's `System` allocator *is* this `malloc`: a `Vec`, `String`,
//! `format!` or `Box` on the malloc path would recurse into itself. goheap's core takes its
//! metadata from `mmap` and reports errors from stack buffers; this crate keeps that rule:
//! errno is set through `__errno_location`, the environment is read with `getenv`, and the
//! statistics are formatted into a stack buffer (`goheap::raw::report::Stderr`).
//!
//! # Start-up, threads and fork
//!
//! `init.rs` holds the constructor (`.init_array`): it switches goheap to synchronous
//! scavenging (a C program must not find a thread it did not start), registers goheap's
//! `pthread_atfork` handlers; goheap's own constructor registers, with `GOHEAP_STATS=1`,
//! the statistics report at exit (`goheap::raw::stats::print_at_exit`), and with
//! `GOHEAP_PROFILE=<file>` the heap profile. The dynamic
//! linker and the constructors of other libraries may call `malloc` before this constructor
//! runs, so every allocating entry point first makes sure the scavenger mode is set (one
//! load of a flag; `malloc` on its slow path, which a thread's first `malloc` always
//! takes). A thread's cache goes back to the heap when the thread exits (goheap's
//! pthread key destructor).
//!
//! # The C API, the SONAME and installing
//!
//! Beside the malloc family the library exports goheap's own C API, declared in
//! `include/goheap.h` (`capi.rs`): `goheap_version`, `goheap_version_string`,
//! `goheap_stats` (the main `MemStats` figures in a struct that can grow) and
//! `goheap_release_memory`. Its SONAME is `libgoheap_malloc.so.0` (`build.rs`), and
//! `install.sh` installs the library, the header and a pkg-config file (`goheap.pc.in`), so
//! that C programs can link it (`pkg-config --libs goheap`) as well as preload it.
//!
//! # Bad pointers
//!
//! `free` of a pointer goheap never handed out (or not the start of an object) aborts with
//! `goheap: free(): invalid pointer 0x...`, `realloc` with `goheap: realloc(): invalid
//! pointer 0x...`. A second free of a small object, made by the thread that owns its span or
//! by two other threads, aborts with `goheap: free(): double free detected for pointer
//! 0x...`; two frees split between the owner and another thread are caught when the owner's
//! next allocation window would hand the object out again (goheap's `Span::refill_window`).
//! A freed large object is unmapped from the span map, so its second free is an invalid
//! pointer. A request no address space can hold returns null with errno `ENOMEM`.

mod capi;
mod init;

use core::ffi::c_void;
use core::ptr;

use goheap::raw::global;
use goheap::raw::sizeclass::MAX_SMALL_SIZE;
use libc::{c_int, size_t};

/// Alignment goheap's fast path gives every class (all class sizes are multiples of 8).
const CLASS_ALIGN: usize = 8;
/// glibc's `MALLOC_ALIGNMENT` on 64-bit targets: `2 * sizeof(size_t)`.
const MALLOC_ALIGNMENT: usize = 16;
/// The page size `valloc` and `pvalloc` align to.
const PAGE: usize = goheap::raw::os::OS_PAGE_SIZE;

/// The size to ask goheap for a C request of `size` bytes: 17..=24 become 32, so that every
/// request above 8 bytes is 16-aligned (see the module essay). One compare and a
/// conditional move.
#[inline(always)]
const fn c_size(size: usize) -> usize {
    if size.wrapping_sub(17) < 8 {
        32
    } else {
        size
    }
}

// The class table must keep that promise: every class above 16 bytes is a multiple of 16,
// except the 24-byte class that `c_size` skips.
const _: () = {
    let classes = &goheap::raw::sizeclass::CLASSES;
    let mut i = 0;
    while i < classes.len() {
        let size = classes[i].size;
        assert!(size <= 16 || size % 16 == 0 || size == 24);
        i += 1;
    }
};

/// Size class of every C request up to `MAX_SMALL_SIZE`, by 8-byte granule (index
/// `(size + 7) / 8`): the class of `c_size(size)`, so the 17..=24 rule costs nothing on
/// `malloc`'s fast path. One table and one load, 4 KiB.
static C_CLASS: [u8; MAX_SMALL_SIZE / 8 + 1] = c_class_table();

const fn c_class_table() -> [u8; MAX_SMALL_SIZE / 8 + 1] {
    let classes = &goheap::raw::sizeclass::CLASSES;
    let mut table = [0u8; MAX_SMALL_SIZE / 8 + 1];
    let mut class = 1;
    let mut i = 0;
    while i < table.len() {
        // The largest request of granule i (0 is served as 1 byte).
        let want = c_size(if i == 0 { 1 } else { i * 8 });
        // Terminates: the last class is MAX_SMALL_SIZE, and c_size is monotone.
        while (classes[class].size as usize) < want {
            class += 1;
        }
        assert!(class < 256);
        table[i] = class as u8;
        i += 1;
    }
    table
}

/// Sets `errno` to `ENOMEM` (every allocation failure does, as in glibc).
#[cold]
fn enomem() {
    // SAFETY: `__errno_location` returns the calling thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = libc::ENOMEM };
}

#[cold]
fn set_errno(e: c_int) {
    // SAFETY: as in `enomem`.
    unsafe { *libc::__errno_location() = e };
}

/// Null with `ENOMEM` if `p` is null, else `p`.
#[inline(always)]
fn checked(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        enomem();
    }
    p.cast()
}

/// `size` bytes aligned to `align` (a power of two), for the memalign family.
fn alloc_aligned(align: usize, size: usize) -> *mut u8 {
    init::ensure();
    // `malloc`'s own alignment needs no search for a suitable class.
    if align <= CLASS_ALIGN || (align == MALLOC_ALIGNMENT && size > CLASS_ALIGN) {
        global::alloc(c_size(size), CLASS_ALIGN)
    } else {
        global::alloc(size, align)
    }
}

/// Allocates `size` bytes, 16-aligned when `size > 8`. `malloc(0)` returns a unique pointer
/// that can be freed. Null and `ENOMEM` when the request cannot be met.
///
/// # Safety
/// Callable from any thread, as C's `malloc`.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: size_t) -> *mut c_void {
    // The fast path: a small request served from the current window. No `init::ensure()`
    // here: a thread's first allocation always takes the slow path (its slot holds a state,
    // whose windows are empty, and `malloc_refill` sends it to `malloc_slow`), and so did
    // the very first allocation of the process, so the scavenger mode is set before any
    // heap growth. (A thread that gets its cache by freeing first frees a pointer some
    // earlier allocation made.)
    if size <= MAX_SMALL_SIZE {
        let c = goheap::raw::thread_slot::raw();
        // SAFETY: `size <= MAX_SMALL_SIZE` keeps the index in the table, which holds classes
        // of the size-class table; `c` is this thread's slot value.
        unsafe {
            let class = *C_CLASS.get_unchecked((size + 7) >> 3) as usize;
            let p = goheap::raw::thread_slot::alloc_from_slot(c, class);
            if !p.is_null() {
                return p.cast();
            }
            // A jump: the fast path keeps no stack frame.
            return malloc_refill(c, class, size);
        }
    }
    malloc_slow(size)
}

/// `malloc` when the current window of `class` is empty, or the thread has no cache yet.
///
/// # Safety
/// `c` is the calling thread's slot value, `class` the size class of `size`.
#[cold]
#[inline(never)]
unsafe extern "C" fn malloc_refill(
    c: *mut goheap::raw::cache::Cache,
    class: usize,
    size: size_t,
) -> *mut c_void {
    if goheap::raw::thread_slot::is_state(c) {
        return malloc_slow(size);
    }
    // SAFETY: caller's contract; `c` is a live cache whose window of `class` is empty.
    checked(unsafe { (*c).refill(class) })
}

/// `malloc` of a large request, or on a thread without a cache (its first allocation).
#[cold]
#[inline(never)]
extern "C" fn malloc_slow(size: size_t) -> *mut c_void {
    init::ensure();
    checked(global::alloc(c_size(size), CLASS_ALIGN))
}

/// Frees `p` (null is ignored). A pointer goheap did not hand out, or (see the module
/// essay) one already freed, aborts with a message naming it.
///
/// # Safety
/// `p` is null or came from this allocator and is not used again.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: caller's contract; goheap checks the pointer and aborts on a bad one.
    unsafe { global::free(p.cast()) }
}

/// `free` under its old SunOS name (glibc keeps it for old binaries only).
///
/// # Safety
/// As [`free`].
#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: caller's contract.
    unsafe { free(p) }
}

/// `n * size` zeroed bytes; null and `ENOMEM` if the product overflows.
///
/// # Safety
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn calloc(n: size_t, size: size_t) -> *mut c_void {
    init::ensure();
    let Some(total) = n.checked_mul(size) else {
        enomem();
        return ptr::null_mut();
    };
    checked(global::alloc_zeroed(c_size(total), CLASS_ALIGN))
}

/// glibc's `realloc`: `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and
/// returns null (glibc's `REALLOC_ZERO_BYTES_FREES`); otherwise the block is resized in place
/// when its size class allows, else moved. On failure `p` is untouched and null is returned
/// with `ENOMEM`.
///
/// # Safety
/// `p` is null or a live block from this allocator; after a non-null return (or a zero
/// size) it is not used again.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: size_t) -> *mut c_void {
    if p.is_null() {
        // SAFETY: `malloc` has no precondition.
        return unsafe { malloc(size) };
    }
    if size == 0 {
        // SAFETY: caller's contract: `p` is live and dead after this call.
        unsafe { free(p) };
        return ptr::null_mut();
    }
    init::ensure();
    // SAFETY: a live block, or a bad pointer that `usable_size_in` reports as realloc's;
    // then `global::realloc` copies at most the old usable size from it.
    unsafe {
        let old = global::usable_size_in(p.cast(), "realloc");
        checked(global::realloc(p.cast(), old, CLASS_ALIGN, c_size(size)))
    }
}

/// `realloc(p, n * size)`, except that an overflowing product returns null with `ENOMEM`
/// and leaves `p` alone.
///
/// # Safety
/// As [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: size_t, size: size_t) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: caller's contract.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            enomem();
            ptr::null_mut()
        }
    }
}

/// POSIX's aligned allocation: `EINVAL` unless `align` is a power of two multiple of
/// `sizeof(void *)`, `ENOMEM` when out of memory; `*memptr` is written only on success.
///
/// # Safety
/// `memptr` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(
    memptr: *mut *mut c_void,
    align: size_t,
    size: size_t,
) -> c_int {
    let word = core::mem::size_of::<*mut c_void>();
    if align % word != 0 || !(align / word).is_power_of_two() {
        return libc::EINVAL;
    }
    let p = alloc_aligned(align, size);
    if p.is_null() {
        enomem();
        return libc::ENOMEM;
    }
    // SAFETY: caller's contract.
    unsafe { *memptr = p.cast() };
    0
}

/// C11's `aligned_alloc`, with glibc 2.38's checking: an alignment that is not a power of
/// two gives null and `EINVAL` (older glibc treated it as `memalign` does).
///
/// # Safety
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: size_t, size: size_t) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    checked(alloc_aligned(align, size))
}

/// glibc's `memalign`: an alignment of at most 16 is `malloc`'s (`memalign(0, n)` works);
/// one that is not a power of two is rounded up to the next; one above `SIZE_MAX / 2 + 1`
/// gives null and `EINVAL`.
///
/// # Safety
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn memalign(align: size_t, size: size_t) -> *mut c_void {
    if align <= MALLOC_ALIGNMENT {
        // glibc: `malloc`, whose result is 16-aligned whatever the size.
        return checked(alloc_aligned(MALLOC_ALIGNMENT, size));
    }
    let Some(align) = align.checked_next_power_of_two() else {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    };
    checked(alloc_aligned(align, size))
}

/// `size` bytes aligned to the page size.
///
/// # Safety
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn valloc(size: size_t) -> *mut c_void {
    checked(alloc_aligned(PAGE, size))
}

/// Page-aligned, with the size rounded up to whole pages (`pvalloc(0)` gives one page);
/// null and `ENOMEM` if the rounding overflows.
///
/// # Safety
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: size_t) -> *mut c_void {
    let Some(rounded) = size.max(1).checked_next_multiple_of(PAGE) else {
        enomem();
        return ptr::null_mut();
    };
    checked(alloc_aligned(PAGE, rounded))
}

/// Bytes usable at `p` (its size class, or its pages when large); 0 for null. A pointer
/// goheap did not hand out aborts with a message.
///
/// # Safety
/// `p` is null or a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> size_t {
    if p.is_null() {
        return 0;
    }
    // SAFETY: caller's contract; a bad pointer is reported and aborts.
    unsafe { global::usable_size_in(p.cast(), "malloc_usable_size") }
}
