//! The operating-system interface: the only file that talks to the kernel about memory.
//!
//! Everything goheap owns, objects and metadata alike, comes from the four calls below. Keeping
//! them in one small file (as mimalloc keeps its `prim/` layer) means a port to another OS touches
//! nothing else, and it makes the rule "an allocator never calls the allocator it implements" easy
//! to audit: nothing here allocates.
//!
//! The model of an address range is Go's (see `mem.go` in Go's runtime):
//!
//! ```text
//!   reserved  --(commit)-->  ready  --(decommit)-->  reserved-but-zero
//! ```
//!
//! On Linux we reserve with `mmap(PROT_READ|PROT_WRITE, MAP_NORESERVE)`: the kernel hands out
//! physical pages lazily on first touch, so "reserved" and "ready" are the same state and
//! `commit` is free. `decommit` is `madvise(MADV_DONTNEED)`, which drops the physical pages at
//! once (RSS falls) and guarantees that the next touch sees zeroes. Memory fresh from `reserve`
//! is also zero, which is what lets `alloc_zeroed` skip zeroing.

use core::ptr;

/// Size of the OS page (the unit `decommit` works in). goheap pages (8 KiB) are a multiple.
pub const OS_PAGE_SIZE: usize = 4096;

/// Reserves `size` bytes of zeroed, readable and writable address space, aligned to `align`
/// (a power of two, at least [`OS_PAGE_SIZE`]). Returns null if the OS refuses.
///
/// Physical memory is only used once a page is touched.
pub fn reserve(size: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two() && align >= OS_PAGE_SIZE);
    debug_assert!(size % OS_PAGE_SIZE == 0);
    // Over-reserve by `align` so that an aligned window of `size` bytes fits, then give back the
    // unaligned head and tail.
    let Some(span) = size.checked_add(align - OS_PAGE_SIZE) else {
        return ptr::null_mut();
    };
    let raw = map(span);
    if raw.is_null() {
        return raw;
    }
    let start = raw as usize;
    let aligned = (start + align - 1) & !(align - 1);
    let head = aligned - start;
    let tail = span - head - size;
    if head > 0 {
        unmap(raw, head);
    }
    if tail > 0 {
        unmap((aligned + size) as *mut u8, tail);
    }
    aligned as *mut u8
}

/// Like [`reserve`], but tries the address `hint` first (`hint` aligned to `align`). The page
/// heap asks for its arenas at increasing addresses, as Go does, so that the heap grows
/// upwards and address-ordered first fit reuses old memory before it touches new memory.
/// Falls back to any address if the hint is taken.
pub fn reserve_at(hint: usize, size: usize, align: usize) -> *mut u8 {
    debug_assert!(hint % align == 0);
    // SAFETY: without MAP_FIXED the hint is only a hint: the kernel never replaces an
    // existing mapping, so this cannot clobber memory anyone owns.
    let p = unsafe {
        libc::mmap(
            hint as *mut libc::c_void,
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p != libc::MAP_FAILED {
        if p as usize == hint {
            return p.cast();
        }
        unmap(p.cast(), size);
    }
    reserve(size, align)
}

fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with a null hint has no preconditions; the kernel
    // picks an address that overlaps nothing we own.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

/// Returns a range obtained from [`reserve`] (or a page-aligned part of one) to the OS.
///
/// # Safety
/// `[p, p+size)` must be page aligned, inside a reservation, and no longer referenced.
pub unsafe fn release(p: *mut u8, size: usize) {
    unmap(p, size)
}

fn unmap(p: *mut u8, size: usize) {
    // SAFETY: callers pass page-aligned ranges that came from `map` and that nothing references
    // any more; munmap on such a range cannot affect memory anyone else owns.
    let r = unsafe { libc::munmap(p.cast(), size) };
    debug_assert_eq!(r, 0, "munmap failed");
}

/// Gives the physical pages behind `[p, p+size)` back to the OS. The range stays reserved and
/// reads as zeroes on next touch. Returns false if the kernel refused (the memory is then
/// simply kept; nothing is lost).
///
/// # Safety
/// The range must be page aligned, inside a reservation, and hold nothing anyone still needs.
pub unsafe fn decommit(p: *mut u8, size: usize) -> bool {
    debug_assert!(p as usize % OS_PAGE_SIZE == 0 && size % OS_PAGE_SIZE == 0);
    // SAFETY: the caller guarantees the range is ours and dead; MADV_DONTNEED on a private
    // anonymous mapping only replaces its contents with zero pages.
    unsafe { libc::madvise(p.cast(), size, libc::MADV_DONTNEED) == 0 }
}

/// Resident set size of this process in bytes, read from `/proc/self/statm` without
/// allocating. Returns 0 where it cannot be read. Used by tests and the statistics.
pub fn rss_bytes() -> usize {
    let mut buf = [0u8; 128];
    // SAFETY: the path is a NUL-terminated literal; `buf` is a valid writable buffer of the
    // length we pass; the descriptor is closed on every path.
    let n = unsafe {
        let fd = libc::open(
            c"/proc/self/statm".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return 0;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        return 0;
    }
    // Fields: size resident shared ...; we want the second, in OS pages.
    let text = &buf[..n as usize];
    let mut fields = text.split(|&b| b == b' ');
    let _size = fields.next();
    let resident = fields.next().unwrap_or(b"0");
    let mut pages = 0usize;
    for &b in resident {
        if !b.is_ascii_digit() {
            break;
        }
        pages = pages * 10 + (b - b'0') as usize;
    }
    pages * OS_PAGE_SIZE
}

/// `CLOCK_MONOTONIC` in nanoseconds (a vDSO call, no system call, nothing allocated).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The calling thread's kernel id (as `perf` and `/proc` name threads).
pub fn thread_id() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_is_aligned_zeroed_and_decommit_zeroes() {
        let align = 1 << 26;
        let size = 1 << 20;
        let p = reserve(size, align);
        assert!(!p.is_null());
        assert_eq!(p as usize % align, 0);
        // SAFETY: `p..p+size` was just reserved readable and writable.
        unsafe {
            assert!((0..size).step_by(4096).all(|i| *p.add(i) == 0));
            p.write_bytes(0xAB, size);
            assert!(decommit(p, size));
            assert!((0..size).step_by(512).all(|i| *p.add(i) == 0));
            release(p, size);
        }
    }

    #[test]
    fn rss_is_read() {
        assert!(rss_bytes() > 0);
    }
}
