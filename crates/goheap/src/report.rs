//! What goheap writes on stderr: fatal error reports, when it finds a heap-corrupting
//! mistake (a double free, a pointer it never handed out), in the manner of glibc's
//! `free(): invalid pointer`, and the reports at exit ([`Stderr`]: statistics, leaks).
//!
//! Reporting must not allocate (the allocator may be the one that is broken, and at exit it
//! may be in any state a program can leave it in), so messages are formatted with
//! `core::fmt` into buffers on the stack and written with `write(2)`; a fatal error then
//! aborts the process.

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

/// Runs `f` and returns its result; a panic in it aborts the process after writing
/// `goheap: <what> panicked: <message>; aborting` to stderr.
///
/// For goheap's own threads (the collector, mark workers, the sweeper, the cleanup
/// thread) and for user code the collector runs (destructors, cleanups). A collector
/// thread cannot stop halfway: every mutator waiting for its cycle or its mark would wait
/// for ever, and a hang is never an answer. The message goes straight to fd 2, not through
/// `eprintln!`: a thread inherits the test harness's output capture from the thread that
/// started it, and a captured message is lost with the abort.
pub fn abort_on_panic<R>(what: &str, f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(a panic without a message)");
            for part in ["goheap: ", what, " panicked: ", msg, "; aborting\n"] {
                write_stderr(part.as_bytes());
            }
            std::process::abort()
        }
    }
}

/// Writes all of `bytes` to fd 2, retrying on EINTR (a closed or failing stderr loses them
/// quietly).
fn write_stderr(bytes: &[u8]) {
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: `bytes[done..]` is a live, initialised slice of the length passed.
        let n = unsafe { libc::write(2, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        if n <= 0 {
            // SAFETY: reading this thread's errno slot.
            if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return;
        }
        done += n as usize;
    }
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

/// A `core::fmt::Write` to stderr through a buffer on the stack, written out whenever it
/// fills and by [`Stderr::flush`] (call it at the end: nothing flushes on drop, so a
/// report is never cut into a `write` at an unexpected point).
pub struct Stderr {
    buf: [u8; 1024],
    len: usize,
}

impl Default for Stderr {
    fn default() -> Self {
        Stderr {
            buf: [0; 1024],
            len: 0,
        }
    }
}

impl Stderr {
    /// Writes the buffered bytes to stderr and empties the buffer.
    pub fn flush(&mut self) {
        write_stderr(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Write for Stderr {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}
