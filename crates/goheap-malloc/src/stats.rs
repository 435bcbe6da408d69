//! `GOHEAP_STATS=1`: goheap's statistics on stderr when the program exits, as
//! `MIMALLOC_SHOW_STATS=1` does for mimalloc.
//!
//! The report is goheap's `MemStats` ([`goheap::stats()`], Go's `runtime.ReadMemStats`): the
//! page-level figures, object counts, then one row per size class that was ever used.
//!
//! ```text
//! goheap: statistics at exit (pid 4242)
//!   heap_sys       67108864  bytes reserved from the OS
//!   heap_inuse       221184  bytes in spans in use
//!   ...
//!   class     size      mallocs        frees         live
//!       1        8         1520         1490           30
//!   large        -            3            3            0
//! ```
//!
//! The report is printed by an `atexit` handler, after the program's own handlers (those
//! were registered later) and before the libraries' destructors. It must not allocate: the
//! allocator being described is the one a `format!` would call, and at exit it may be in any
//! state a program can leave it in. Lines are formatted with `core::fmt` into a buffer on
//! the stack and written with `write(2)`; nothing else is called.

use core::fmt::Write;

use goheap::sizeclass::{CLASSES, NUM_CLASSES};

/// True when `GOHEAP_STATS` is set to `1`. Read with `getenv`, which does not allocate.
pub fn enabled() -> bool {
    // SAFETY: the name is a NUL-terminated literal; `getenv` returns null or a NUL-terminated
    // string that stays valid while the environment is not changed (we read it at once).
    unsafe {
        let v = libc::getenv(c"GOHEAP_STATS".as_ptr());
        !v.is_null() && *v == b'1' as libc::c_char && *v.add(1) == 0
    }
}

/// Formats into a stack buffer and writes it to stderr whenever it fills up.
struct Stderr {
    buf: [u8; 1024],
    len: usize,
}

impl Stderr {
    fn flush(&mut self) {
        let mut done = 0;
        while done < self.len {
            // SAFETY: `buf[done..len]` is initialised memory of ours.
            let n = unsafe { libc::write(2, self.buf.as_ptr().add(done).cast(), self.len - done) };
            if n <= 0 {
                // EINTR: try again; any other error (stderr closed): give up quietly.
                // SAFETY: reading this thread's errno slot.
                if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                    continue;
                }
                break;
            }
            done += n as usize;
        }
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

/// The `atexit` handler.
pub extern "C" fn print_at_exit() {
    let mut out = Stderr {
        buf: [0; 1024],
        len: 0,
    };
    let _ = write_report(&mut out);
    out.flush();
}

fn write_report(w: &mut impl Write) -> core::fmt::Result {
    let s = goheap::stats();
    // SAFETY: `getpid` has no preconditions.
    let pid = unsafe { libc::getpid() };
    writeln!(w, "goheap: statistics at exit (pid {pid})")?;
    let rows: [(&str, u64, &str); 10] = [
        ("heap_sys", s.heap_sys as u64, "bytes reserved from the OS"),
        ("heap_inuse", s.heap_inuse as u64, "bytes in spans in use"),
        ("heap_idle", s.heap_idle as u64, "bytes in free pages"),
        (
            "heap_released",
            s.heap_released as u64,
            "bytes of free pages returned to the OS",
        ),
        (
            "heap_alloc",
            s.heap_alloc as u64,
            "bytes in live objects (class-rounded)",
        ),
        ("heap_objects", s.heap_objects, "live objects"),
        ("total_alloc", s.total_alloc, "bytes allocated in total"),
        ("mallocs", s.mallocs, "objects allocated"),
        ("frees", s.frees, "objects freed"),
        (
            "released_total",
            s.released_total as u64,
            "bytes returned to the OS in total",
        ),
    ];
    for (name, value, what) in rows {
        writeln!(w, "  {name:<15}{value:>14}  {what}")?;
    }
    writeln!(
        w,
        "  {:>5} {:>8} {:>12} {:>12} {:>12}",
        "class", "size", "mallocs", "frees", "live"
    )?;
    for class in (1..NUM_CLASSES).chain(core::iter::once(0)) {
        let row = &s.by_size[class];
        if row.mallocs == 0 {
            continue;
        }
        let live = row.mallocs.saturating_sub(row.frees);
        if class == 0 {
            write!(w, "  {:>5} {:>8}", "large", "-")?;
        } else {
            write!(w, "  {class:>5} {:>8}", CLASSES[class].size)?;
        }
        writeln!(w, " {:>12} {:>12} {:>12}", row.mallocs, row.frees, live)?;
    }
    Ok(())
}
