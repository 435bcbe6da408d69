//! AddressSanitizer support (cargo feature `asan`): free memory inside goheap's arenas is
//! *poisoned*, so that an ASan build reports a read or write of a freed object as
//! `use-after-poison`, as mimalloc's ASan support does. Without the feature these
//! functions are empty and compile to nothing.
//!
//! - **Explicit allocator** (`global.rs`): a small object is unpoisoned (its whole slot) when
//!   it is handed out and poisoned when it is freed, locally or remotely; a large object's
//!   pages likewise.
//! - **Collected heap** (`gc/`): an object is unpoisoned when a session allocates it (a tiny
//!   object: its granules of the 16-byte block) and poisoned when the sweep finds it dead,
//!   after its destructor ran (a tiny block: all 16 bytes, once no object of it is marked).
//!
//! Nothing in goheap reads free memory (bitmaps live outside the objects; zeroing happens
//! after the unpoisoning), so poisoning costs no false report. Memory fresh from the OS is
//! not poisoned: ASan sees it as ordinary mapped memory until a first free.
//!
//! The feature needs an ASan build: `RUSTFLAGS=-Zsanitizer=address` (with
//! `RUSTC_BOOTSTRAP=1` on a stable toolchain and an explicit `--target`); the ASan runtime
//! provides `__asan_poison_memory_region`, and a plain build fails to link without it.
//! `tests/asan_poison.rs` proves the reports with a child process; CI runs its ASan step
//! with the feature on.

#[cfg(feature = "asan")]
extern "C" {
    fn __asan_poison_memory_region(addr: *const u8, size: usize);
    fn __asan_unpoison_memory_region(addr: *const u8, size: usize);
    fn __asan_get_shadow_mapping(shadow_scale: *mut usize, shadow_offset: *mut usize);
}

/// Marks `size` bytes at `addr` unaddressable (freed memory).
#[inline(always)]
pub fn poison(addr: usize, size: usize) {
    #[cfg(feature = "asan")]
    // SAFETY: ASan's interface only updates its shadow memory for the range, which lies in a
    // goheap arena the caller owns.
    unsafe {
        __asan_poison_memory_region(addr as *const u8, size)
    };
    #[cfg(not(feature = "asan"))]
    let _ = (addr, size);
}

/// Marks `size` bytes at `addr` addressable again (an object handed out).
#[inline(always)]
pub fn unpoison(addr: usize, size: usize) {
    #[cfg(feature = "asan")]
    // SAFETY: as for `poison`.
    unsafe {
        __asan_unpoison_memory_region(addr as *const u8, size)
    };
    #[cfg(not(feature = "asan"))]
    let _ = (addr, size);
}

/// Free pages at `addr` (`size` bytes, page-aligned) were returned to the OS: their shadow
/// goes back too (else the shadow of poisoned memory, an eighth of it, stays resident after
/// the memory itself is released). The pages then read as unpoisoned zeros, as fresh memory
/// does; objects allocated there later are unpoisoned anyway.
#[inline]
pub fn release_shadow(addr: usize, size: usize) {
    #[cfg(feature = "asan")]
    {
        let (mut scale, mut offset) = (0usize, 0usize);
        // SAFETY: ASan's interface writes the two numbers.
        unsafe { __asan_get_shadow_mapping(&mut scale, &mut offset) };
        let page = crate::os::OS_PAGE_SIZE;
        // The whole shadow pages inside the range's shadow only: a page shared with the
        // shadow of memory outside the range keeps its state.
        let lo = ((addr >> scale) + offset).next_multiple_of(page);
        let hi = (((addr + size) >> scale) + offset) / page * page;
        if hi > lo {
            // SAFETY: the shadow of free pages nobody may touch; ASan's shadow is a private
            // anonymous mapping, which MADV_DONTNEED refills with zeros (unpoisoned) on use.
            unsafe { crate::os::decommit(lo as *mut u8, hi - lo) };
        }
    }
    #[cfg(not(feature = "asan"))]
    let _ = (addr, size);
}

/// Whether poisoning is compiled in.
pub const ENABLED: bool = cfg!(feature = "asan");
