//! The C API that `include/goheap.h` declares: goheap's version, its statistics and the
//! release of free memory to the OS, exported from `libgoheap_malloc.so` beside `malloc`.
//!
//! # Growing the statistics without breaking programs
//!
//! `goheap_stats_t` begins with its size, as Windows' `cbSize` structs and Linux's
//! `sched_attr` do: the caller sets it to the size of the struct its header declared, and
//! the library fills the fields both know (whole fields from the start, up to the smaller of
//! the two sizes) and answers with the bytes it filled. An older program on a newer library
//! gets its fields and nothing written past its struct; a newer program on an older library
//! sees from the answered size which trailing fields were not filled. New figures are
//! therefore only ever added at the end of [`Stats`], and `goheap.h` gets them in the same
//! order (the tests compile a C program against the header and check every field).
//!
//! # Versions
//!
//! The numbers come from Cargo's package version; the header carries its own copy, and the
//! tests check that the two agree, so a version bump that forgets the header fails them.
//!
//! None of these functions is on an allocation path: `goheap_release_memory` may allocate
//! (through this library's own `malloc`, which is safe here: it is a call from the
//! program, not from inside the allocator).

use core::ffi::{c_char, c_int, c_ulong};
use core::mem::{offset_of, size_of};
use core::ptr;

use libc::size_t;

/// `goheap_stats_t`: field for field the struct of `goheap.h` (see the module essay before
/// changing it). The caller owns it and sets `size`; `goheap_stats` writes the rest.
#[repr(C)]
pub struct Stats {
    /// In: the caller's `sizeof`. Out: the bytes filled.
    pub size: size_t,
    pub heap_sys: u64,
    pub heap_inuse: u64,
    pub heap_idle: u64,
    pub heap_released: u64,
    pub heap_alloc: u64,
    pub heap_objects: u64,
    pub total_alloc: u64,
    pub mallocs: u64,
    pub frees: u64,
    pub released_total: u64,
    pub peak_inuse: u64,
}

/// The smallest `size` `goheap_stats` accepts: the size field and one figure.
const MIN_STATS_SIZE: usize = offset_of!(Stats, heap_sys) + size_of::<u64>();

/// A decimal field of Cargo's version, at compile time.
const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut n = 0u32;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version fields are decimal");
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

const MAJOR: u32 = parse_u32(env!("CARGO_PKG_VERSION_MAJOR"));
const MINOR: u32 = parse_u32(env!("CARGO_PKG_VERSION_MINOR"));
const PATCH: u32 = parse_u32(env!("CARGO_PKG_VERSION_PATCH"));
const _: () = assert!(
    MINOR < 1000 && PATCH < 1000,
    "GOHEAP_VERSION_NUMBER's encoding"
);

/// The version as a C string; Cargo's version string is "MAJOR.MINOR.PATCH" (pre-release
/// tags would show too).
const VERSION_STRING: &[u8] = concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes();

/// `MAJOR * 1000000 + MINOR * 1000 + PATCH` (`GOHEAP_VERSION_NUMBER`).
#[no_mangle]
pub extern "C" fn goheap_version() -> c_ulong {
    c_ulong::from(MAJOR) * 1_000_000 + c_ulong::from(MINOR) * 1000 + c_ulong::from(PATCH)
}

/// The library's version as a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn goheap_version_string() -> *const c_char {
    VERSION_STRING.as_ptr().cast()
}

/// Fills `*out` with the statistics, as far as `out->size` allows (module essay). 0, or
/// `EINVAL` with nothing written for a null `out` or a size below [`MIN_STATS_SIZE`].
///
/// # Safety
/// `out` is null or points to `out->size` writable bytes whose first field is initialised.
#[no_mangle]
pub unsafe extern "C" fn goheap_stats(out: *mut Stats) -> c_int {
    if out.is_null() {
        return libc::EINVAL;
    }
    // SAFETY: caller's contract: the size field is readable.
    let asked = unsafe { ptr::addr_of!((*out).size).read() };
    if asked < MIN_STATS_SIZE {
        return libc::EINVAL;
    }
    let s = goheap::stats();
    let full = Stats {
        size: 0,
        heap_sys: s.heap_sys as u64,
        heap_inuse: s.heap_inuse as u64,
        heap_idle: s.heap_idle as u64,
        heap_released: s.heap_released as u64,
        heap_alloc: s.heap_alloc as u64,
        heap_objects: s.heap_objects,
        total_alloc: s.total_alloc,
        mallocs: s.mallocs,
        frees: s.frees,
        released_total: s.released_total as u64,
        peak_inuse: s.peak_inuse as u64,
    };
    // Whole figures from the start, up to the smaller struct.
    let fields = (asked.min(size_of::<Stats>()) - offset_of!(Stats, heap_sys)) / size_of::<u64>();
    let filled = offset_of!(Stats, heap_sys) + fields * size_of::<u64>();
    // SAFETY: `filled <= asked`, the bytes the caller said are writable; `full` is a local
    // of at least `filled` bytes, so the two do not overlap. Then the size field, which
    // `filled` covers.
    unsafe {
        ptr::copy_nonoverlapping(ptr::addr_of!(full).cast::<u8>(), out.cast::<u8>(), filled);
        ptr::addr_of_mut!((*out).size).write(filled);
    }
    0
}

/// Returns free memory to the OS ([`goheap::release_memory`]); the bytes released.
#[no_mangle]
pub extern "C" fn goheap_release_memory() -> size_t {
    crate::init::ensure();
    goheap::release_memory().bytes
}
