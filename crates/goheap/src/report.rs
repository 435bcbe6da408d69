//! Fatal error reports: what goheap says when it finds a heap-corrupting mistake (a double
//! free, a pointer it never handed out), in the manner of glibc's `free(): invalid pointer`.
//!
//! Reporting must not allocate (the allocator may be the one that is broken), so messages
//! are formatted into a stack buffer and written with `write(2)`, then the process aborts.

use core::fmt::Write;

struct StackBuf {
    buf: [u8; 256],
    len: usize,
}

impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes `goheap: <what> <ptr>` to stderr and aborts.
#[cold]
#[inline(never)]
pub fn fatal(what: &str, ptr: usize) -> ! {
    let mut b = StackBuf {
        buf: [0; 256],
        len: 0,
    };
    let _ = writeln!(b, "goheap: {what} {ptr:#x}");
    // SAFETY: `b.buf[..b.len]` is initialised; fd 2 may be closed, in which case write fails
    // harmlessly.
    unsafe { libc::write(2, b.buf.as_ptr().cast(), b.len) };
    std::process::abort()
}

/// A free of an object that is already free.
#[cold]
pub fn double_free(ptr: usize) -> ! {
    fatal("free(): double free detected for pointer", ptr)
}

/// An address goheap never handed out (or not the start of an object), given to the C
/// function `func` (`free`, `realloc`, ...): `goheap: free(): invalid pointer 0x...`.
#[cold]
pub fn invalid_pointer(func: &str, ptr: usize) -> ! {
    let mut b = StackBuf {
        buf: [0; 256],
        len: 0,
    };
    let _ = write!(b, "{func}(): invalid pointer");
    // Only a name long enough to be cut inside a UTF-8 sequence falls back to the plain text.
    fatal(
        core::str::from_utf8(&b.buf[..b.len]).unwrap_or("invalid pointer"),
        ptr,
    )
}

/// The end of a `free` that went wrong, reached by a tail jump from the inlined fast path:
/// `ptr` is a double free if `double`, else it is null (a no-op: the free path finds no span
/// for address 0 and lands here instead of testing for null first) or a pointer goheap never
/// handed out. Not `-> !` on purpose: a function that may return is reached with `jmp`, so
/// the fast path needs no stack frame for it.
#[cold]
#[inline(never)]
pub extern "C" fn free_failed(ptr: usize, double: bool) {
    if double {
        double_free(ptr);
    }
    if ptr != 0 {
        invalid_pointer("free", ptr);
    }
}
