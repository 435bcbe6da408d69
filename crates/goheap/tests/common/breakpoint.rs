//! Hardware data breakpoints for the race tests (`gc_review_*.rs`, included with `#[path]`):
//! a thread that touches a watched word traps right after the accessing instruction, and the
//! test's signal handler can then sleep, which is what an OS preemption at that instruction
//! does. Linux `perf_event_open` with `PERF_TYPE_BREAKPOINT`; not every container or VM
//! allows it, so the tests ask [`available`] first and skip with a message.

#![allow(dead_code)] // each test uses the part it needs

/// A hardware read/write breakpoint on the 8 bytes at `addr` for thread `tid` (0: the
/// calling thread), delivering SIGUSR1 to that thread, handled by `on_trap`, right after
/// each access. Returns the perf fd (close it to remove the breakpoint).
pub fn watch(addr: usize, tid: i32, on_trap: extern "C" fn(libc::c_int)) -> Option<libc::c_int> {
    // SAFETY: system calls with a correctly sized, zero-initialised perf_event_attr
    // (PERF_ATTR_SIZE_VER7 = 128 bytes) and the caller's async-signal-safe handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_trap as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());

        let mut attr = [0u64; 16];
        let p = attr.as_mut_ptr() as *mut u8;
        *(p as *mut u32) = 5; // type = PERF_TYPE_BREAKPOINT
        *(p.add(4) as *mut u32) = 128; // size
        *(p.add(16) as *mut u64) = 1; // sample_period
        *(p.add(40) as *mut u64) = (1 << 5) | (1 << 6); // exclude_kernel | exclude_hv
        *(p.add(48) as *mut u32) = 1; // wakeup_events
        *(p.add(52) as *mut u32) = 3; // bp_type = HW_BREAKPOINT_RW
        *(p.add(56) as *mut u64) = addr as u64; // bp_addr
        *(p.add(64) as *mut u64) = 8; // bp_len
        let fd = libc::syscall(libc::SYS_perf_event_open, p, tid, -1, -1, 0) as libc::c_int;
        if fd < 0 {
            return None;
        }
        #[repr(C)]
        struct FOwnerEx {
            type_: libc::c_int,
            pid: libc::pid_t,
        }
        const F_SETSIG: libc::c_int = 10;
        const F_SETOWN_EX: libc::c_int = 15;
        const F_OWNER_TID: libc::c_int = 0;
        let owner = FOwnerEx {
            type_: F_OWNER_TID,
            pid: if tid == 0 { gettid() } else { tid },
        };
        libc::fcntl(fd, F_SETOWN_EX, &owner as *const FOwnerEx);
        libc::fcntl(fd, F_SETSIG, libc::SIGUSR1);
        libc::fcntl(fd, libc::F_SETFL, libc::O_ASYNC);
        Some(fd)
    }
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    // SAFETY: plain system call.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Whether this machine gives hardware breakpoints to this process; prints why the test is
/// skipped when it does not.
pub fn available(on_trap: extern "C" fn(libc::c_int)) -> bool {
    static PROBE: u64 = 0;
    match watch(&PROBE as *const u64 as usize, 0, on_trap) {
        Some(fd) => {
            // SAFETY: closing our own fd.
            unsafe { libc::close(fd) };
            true
        }
        None => {
            eprintln!("skipped: perf_event_open hardware breakpoints are not available here");
            false
        }
    }
}

/// A one-shot stall: the first trap after [`stall::arm`] (past `skip` traps) sleeps for the
/// armed time in the signal handler, as an OS preemption right after the watched access
/// would. One per test binary (the statics are the handler's only state).
pub mod stall {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    static ARMED: AtomicBool = AtomicBool::new(false);
    static SKIP: AtomicU64 = AtomicU64::new(0);
    static STALLED: AtomicBool = AtomicBool::new(false);
    static NS: AtomicU64 = AtomicU64::new(0);

    /// The next trap after `skip` more traps sleeps for `d`.
    pub fn arm(d: Duration, skip: u64) {
        NS.store(d.as_nanos() as u64, Ordering::SeqCst);
        SKIP.store(skip, Ordering::SeqCst);
        ARMED.store(true, Ordering::SeqCst);
    }

    /// Whether the armed stall happened.
    pub fn happened() -> bool {
        STALLED.load(Ordering::SeqCst)
    }

    /// The signal handler (async-signal-safe: atomics and `nanosleep` only).
    pub extern "C" fn on_trap(_: libc::c_int) {
        if !ARMED.load(Ordering::SeqCst) {
            return;
        }
        if SKIP.load(Ordering::SeqCst) > 0 {
            SKIP.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        if ARMED.swap(false, Ordering::SeqCst) {
            STALLED.store(true, Ordering::SeqCst);
            let ns = NS.load(Ordering::SeqCst);
            let ts = libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            };
            // SAFETY: nanosleep is async-signal-safe; `ts` is a valid timespec.
            unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
        }
    }
}

/// A breakpoint on `addr` for the calling thread, handled by [`stall::on_trap`]; panics if
/// the machine refuses it (call [`available`] first).
pub fn watch_stall(addr: usize) -> Fd {
    Fd(watch(addr, 0, stall::on_trap).expect("perf_event_open breakpoint unavailable"))
}

/// A breakpoint's perf fd; dropping it removes the breakpoint.
pub struct Fd(pub libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: closing a perf fd this test opened and owns.
        unsafe { libc::close(self.0) };
    }
}
