//! What goheap reads from the environment at start-up, and what it does at exit, for every
//! face (a Rust program with [`crate::GoAlloc`] or a GC heap, or any program under the
//! `LD_PRELOAD` library).
//!
//! A constructor in `.init_array` runs when the program (or the preloaded library) is
//! initialised, before `main`. It reads, with `getenv` (which does not allocate):
//!
//! - `GOHEAP_PROFILE=<file>`: heap profiling on, and a profile written to `<file>` at exit,
//!   `%p` replaced by the pid (a forked child writes its own);
//! - `GOHEAP_PROFILE_RATE=<bytes>`: the sampling rate (Go's `MemProfileRate`; `1` records
//!   every allocation); on its own it turns profiling on without writing at exit, for
//!   programs that call [`crate::profile::write_heap_profile`];
//! - `GOHEAP_STATS=1` (or `true`, `yes`): the statistics on stderr at exit
//!   ([`crate::stats::print_at_exit`]);
//! - `GOHEAP_LEAKS=1` (or `true`, `yes`): every allocation recorded, and a leak report on
//!   stderr at exit (`crate::profile::leaks`);
//! - `GOHEAP_TRACE=<file>`: GC heaps write a timeline (`crate::gc::timeline`, opened by
//!   the first heap); it is flushed at exit.
//!
//! A value it does not understand is reported on stderr and ignored, as the GC's knobs are
//! (`GOHEAP_GOGC`, `GOHEAP_MEMLIMIT`, `GOHEAP_DEBUG`, `GOHEAP_PROCS`, read by
//! `gc::Config::from_env`): a flag that is neither yes (`1`, `true`, `yes`) nor no (`0`,
//! `false`, `no`, empty), a rate that is not a number, and a `GOHEAP_SCAVENGER` other than
//! `off`/`0` (the thread off) or `on`/`1` (read by the scavenger when it starts). The
//! warnings are formatted on the stack ([`crate::report::Stderr`]): nothing allocates.
//!
//! The exit work runs in an `atexit` handler registered by the constructor. Registering
//! it may allocate (glibc's handler list grows with `calloc`); the constructor is the one
//! place where that is safe for the `LD_PRELOAD` library too.

use core::ffi::CStr;
use core::sync::atomic::{AtomicU64, Ordering};

/// When the constructor ran (`CLOCK_MONOTONIC`, nanoseconds): the start of the process, as
/// far as the reports at exit are concerned.
static START_NS: AtomicU64 = AtomicU64::new(0);

/// The constructor (see the module essay).
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = start;

extern "C" fn start() {
    START_NS.store(crate::os::now_ns(), Ordering::Relaxed);
    let profile_file = env(c"GOHEAP_PROFILE").filter(|f| !f.is_empty());
    let rate_text = env(c"GOHEAP_PROFILE_RATE").filter(|r| !r.is_empty());
    let rate = rate_text.and_then(|r| {
        core::str::from_utf8(r)
            .ok()
            .and_then(|r| r.trim().parse::<usize>().ok())
    });
    if let (Some(r), None) = (rate_text, rate) {
        warn_ignored("GOHEAP_PROFILE_RATE", r, "a number of bytes");
    }
    check_flag(c"GOHEAP_STATS");
    check_flag(c"GOHEAP_LEAKS");
    if let Some(v) = env(c"GOHEAP_SCAVENGER") {
        if !["off", "0", "on", "1", ""]
            .iter()
            .any(|k| v == k.as_bytes())
        {
            warn_ignored(
                "GOHEAP_SCAVENGER",
                v,
                "off or 0 (no background thread), on or 1",
            );
        }
    }
    let leaks = env_flag(c"GOHEAP_LEAKS");
    if leaks {
        crate::profile::set_rate(1);
    } else if profile_file.is_some() || rate.is_some() {
        crate::profile::set_rate(rate.unwrap_or(crate::profile::DEFAULT_RATE));
    }
    let trace = env(c"GOHEAP_TRACE").is_some_and(|t| !t.is_empty());
    if profile_file.is_some() || leaks || trace || env_flag(c"GOHEAP_STATS") {
        // SAFETY: `at_exit` is an `extern "C" fn()` valid for the life of the process.
        unsafe { libc::atexit(at_exit) };
    }
}

/// The value of environment variable `name`, if set.
pub(crate) fn env(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: `name` is NUL-terminated; `getenv` returns null or a NUL-terminated string
    // that stays valid while the environment is not changed (read at once by callers).
    unsafe {
        let v = libc::getenv(name.as_ptr());
        (!v.is_null()).then(|| CStr::from_ptr(v).to_bytes())
    }
}

/// Whether the environment variable `name` says yes: `1`, `true` or `yes` (any case).
pub(crate) fn env_flag(name: &CStr) -> bool {
    env(name).is_some_and(|v| {
        v == b"1" || v.eq_ignore_ascii_case(b"true") || v.eq_ignore_ascii_case(b"yes")
    })
}

/// Warns about a flag whose value is neither yes nor no (module essay).
fn check_flag(name: &CStr) {
    let Some(v) = env(name) else { return };
    let known = ["1", "true", "yes", "0", "false", "no", ""];
    if !known.iter().any(|k| v.eq_ignore_ascii_case(k.as_bytes())) {
        let name = name.to_str().unwrap_or("?");
        warn_ignored(name, v, "1, true or yes (on), or 0, false or no (off)");
    }
}

/// `goheap: ignoring NAME="value": expected ...` on stderr, without allocating.
fn warn_ignored(name: &str, value: &[u8], expected: &str) {
    use core::fmt::Write;
    let mut e = crate::report::Stderr::default();
    let value = core::str::from_utf8(value).unwrap_or("(not UTF-8)");
    let _ = writeln!(e, "goheap: ignoring {name}={value:?}: expected {expected}");
    e.flush();
}

extern "C" fn at_exit() {
    if let Some(f) = env(c"GOHEAP_PROFILE").filter(|f| !f.is_empty()) {
        crate::profile::write_at_exit(f);
    }
    if env_flag(c"GOHEAP_LEAKS") {
        crate::profile::leaks::report();
    }
    #[cfg(feature = "gc")]
    if env(c"GOHEAP_TRACE").is_some_and(|t| !t.is_empty()) {
        crate::gc::timeline::flush();
    }
    if env_flag(c"GOHEAP_STATS") {
        let elapsed = crate::os::now_ns().saturating_sub(START_NS.load(Ordering::Relaxed));
        crate::stats::print_at_exit(elapsed / 1_000_000);
    }
}
