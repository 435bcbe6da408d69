//! Heap profiles in pprof's format, for all three faces: [`crate::GoAlloc`], the
//! `LD_PRELOAD` library and GC heaps.
//!
//! # What is recorded
//!
//! As Go's `runtime.MemProfile`: a sample of allocations, chosen by bytes with a Poisson
//! process of mean [`rate()`] bytes (Go's `MemProfileRate`, 512 KiB by default; `1`
//! records every allocation), each with its call stack. Per distinct stack (and, in GC
//! heaps, per type) the profiler counts sampled allocations and frees, objects and bytes;
//! [`write_heap_profile`] scales them back to estimates of the true totals (Go's
//! `scaleHeapSample`) and writes Go's four sample types, `alloc_objects/count`,
//! `alloc_space/bytes`, `inuse_objects/count` and `inuse_space/bytes`, as gzipped
//! `profile.proto` with every frame already symbolised, so `go tool pprof` reads it without
//! the binary.
//!
//! # Turning it on
//!
//! Profiling is off by default and then costs nothing on the fast paths (their
//! instruction counts are unchanged; the window refills pay one load and a branch).
//! `GOHEAP_PROFILE=<file>` (`%p` becomes the pid) turns it on at start-up and writes a
//! profile at exit; `GOHEAP_PROFILE_RATE=<bytes>` sets the rate (and turns it on);
//! [`set_rate`] does both from code.
//!
//! # How samples are taken without touching the fast paths
//!
//! The explicit-free heap hands out small objects from 64-object windows (`cache.rs`). A
//! window's bytes are counted against the interval when it is loaded; when the sample
//! point falls inside, the window is cut short so that the sampled allocation itself takes
//! the refill path (`Cache::refill_sampled`). That allocation is *promoted*: it gets pages
//! of its own from the page heap, as jemalloc promotes its samples, so its `free` takes the
//! large-object path, where one test of `tracking` reports it here. A large allocation is
//! counted against the interval directly. GC heaps sample in their window refill too
//! (`gc/alloc.rs`), and the sweeper reports sampled objects it frees.
//!
//! # Rules the profiler keeps
//!
//! - It never calls the allocator it profiles: its tables, scratch space and output are
//!   `mapvec::MapVec`s in `mmap`ed memory; symbols are read from the object files with
//!   `open`/`mmap`.
//! - Capture allocates nothing and runs with no allocator lock held (`stack`).
//! - One lock, `PROFILER`, guards the tables. It is a leaf: nothing else is locked while
//!   it is held, and nothing that could allocate runs under it. The fork handlers take it
//!   (`crate::fork`).

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod cfi;
#[cfg(feature = "gc")]
pub(crate) mod gc;
mod gzip;
pub(crate) mod leaks;
pub(crate) mod mapvec;
mod pprof;
pub(crate) mod stack;
mod symbol;
pub(crate) mod table;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod unwind;

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::lock::Mutex;
use table::{Label, Stack, Tables};

/// Go's default `MemProfileRate`.
pub const DEFAULT_RATE: usize = 512 * 1024;

/// Mean bytes between samples; 0 while profiling is off. Written by [`set_rate`].
static RATE: AtomicUsize = AtomicUsize::new(0);
/// `RATE != 0`, as the one flag the allocation paths test.
static SAMPLING: AtomicBool = AtomicBool::new(false);
/// Set once the first sample is recorded and never cleared: frees must be looked up from
/// then on, even if sampling is turned off later.
static TRACKING: AtomicBool = AtomicBool::new(false);

/// The profiler's tables, under its lock (module essay).
pub(crate) static PROFILER: Mutex<Tables> = Mutex::new(Tables::new());

/// Turns heap profiling on with a mean of `bytes` between samples (1: every allocation),
/// or off with 0. Allocations made before the call are not in the profile.
///
/// ```
/// goheap::profile::set_rate(goheap::profile::DEFAULT_RATE);
/// assert_eq!(goheap::profile::rate(), 512 * 1024);
/// goheap::profile::set_rate(0);
/// assert_eq!(goheap::profile::rate(), 0);
/// ```
pub fn set_rate(bytes: usize) {
    RATE.store(bytes, Ordering::Relaxed);
    SAMPLING.store(bytes != 0, Ordering::Release);
}

/// The current sampling rate in bytes (0: off).
///
/// ```
/// goheap::profile::set_rate(4096);
/// assert_eq!(goheap::profile::rate(), 4096);
/// goheap::profile::set_rate(0); // off
/// assert_eq!(goheap::profile::rate(), 0);
/// ```
pub fn rate() -> usize {
    RATE.load(Ordering::Relaxed)
}

/// Whether allocations are being sampled (the allocation paths' one test).
#[inline(always)]
pub(crate) fn sampling() -> bool {
    SAMPLING.load(Ordering::Relaxed)
}

/// Whether frees must be reported ([`freed`]): some sample was ever recorded.
#[inline(always)]
pub(crate) fn tracking() -> bool {
    TRACKING.load(Ordering::Relaxed)
}

/// A seed for a thread's interval generator.
pub(crate) fn seed() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_007) ^ ts.tv_nsec as u64
}

/// The next sampling interval in bytes (at least 1): exponential with mean [`rate()`], as
/// Go's `nextSample`. `rng` is the calling thread's generator state.
pub(crate) fn next_interval(rng: &Cell<u64>) -> i64 {
    let rate = rate();
    if rate <= 1 {
        return 1;
    }
    // xorshift64*, seeded per thread; 53 random bits make a uniform in (0, 1].
    let mut x = rng.get() | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng.set(x);
    let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
    let u = (r as f64 + 1.0) / (1u64 << 53) as f64;
    let v = -u.ln() * rate as f64;
    (v as i64).clamp(1, i64::MAX / 2)
}

/// Records a sampled allocation of `size` bytes at `addr` with the caller's stack.
pub(crate) fn record(addr: usize, size: usize, stack: &Stack, label: Label) {
    let mut t = PROFILER.lock();
    t.record_alloc(addr, size, stack, label);
    TRACKING.store(true, Ordering::Relaxed);
}

/// The object at `addr` was freed: if it was a sample, count its free.
pub(crate) fn freed(addr: usize) -> bool {
    PROFILER.lock().record_free(addr)
}

/// Offers `s`, the one-page run of a sample just freed, to the calling thread's cache of
/// runs for its next sample ([`crate::heap::SampleRuns`]); false if it has no cache or
/// no room.
///
/// # Safety
/// As for [`crate::heap::SampleRuns::keep`].
pub(crate) unsafe fn keep_run(s: *mut crate::span::Span) -> bool {
    let c = crate::thread_slot::current();
    // SAFETY: `c` is null or this thread's live cache; the rest is the caller's contract.
    !c.is_null() && unsafe { (*c).keep_sample_run(s) }
}

/// A sampled allocation of `size` bytes aligned to `align`, promoted to pages of its own,
/// recorded with the caller's stack. Null if out of memory. The caller makes sure that
/// allocations made meanwhile are not sampled, and holds no allocator lock.
pub(crate) fn alloc_sampled(
    size: usize,
    align: usize,
    zero: bool,
    runs: &mut crate::heap::SampleRuns,
) -> *mut u8 {
    let mut stack = Stack::EMPTY;
    stack::capture(&mut stack);
    let page = crate::sizeclass::PAGE_SIZE;
    let mut p = ptr::null_mut();
    if size <= page && align <= page {
        p = runs.alloc(zero);
    }
    if p.is_null() {
        p = crate::heap::alloc_large(size, align, zero);
    }
    if !p.is_null() {
        record(p as usize, size, &stack, None);
    }
    p
}

/// A large allocation while sampling: counted against the calling thread's interval, and
/// recorded if it is a sample.
pub(crate) fn alloc_large(size: usize, align: usize, zero: bool) -> *mut u8 {
    let c = crate::thread_slot::current();
    // SAFETY: `c` is null or this thread's live cache.
    if !c.is_null() && unsafe { (*c).take_sample(size) } {
        // SAFETY: as above.
        return unsafe { (*c).alloc_sample(size, align, zero) };
    }
    crate::heap::alloc_large(size, align, zero)
}

/// Writes the heap profile (gzipped `profile.proto`, Go's heap profile) to `w`. Allocations
/// made while profiling was off are not in it. The profile is built in memory from `mmap`
/// and written out in one piece; `w` may allocate.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;
///
/// fn main() {
///     goheap::profile::set_rate(1); // every allocation
///     let kept: Vec<Vec<u8>> = (0..100).map(|_| vec![0u8; 4096]).collect();
///     let mut profile = Vec::new();
///     goheap::profile::write_heap_profile(&mut profile).unwrap();
///     goheap::profile::set_rate(0);
///     assert_eq!(profile[..2], [0x1f, 0x8b]); // gzip; `go tool pprof` reads it
///     drop(kept);
/// }
/// ```
pub fn write_heap_profile<W: std::io::Write>(mut w: W) -> std::io::Result<()> {
    let bytes = pprof::build().map_err(std::io::Error::other)?;
    w.write_all(&bytes)?;
    w.flush()
}

/// Writes the profile to the file `name` (`%p` becomes the pid), reporting a failure on
/// stderr. Used at exit; allocates nothing.
pub(crate) fn write_at_exit(name: &[u8]) {
    let mut path = [0u8; 4096];
    // SAFETY: `getpid` has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut n = 0;
    let mut i = 0;
    while i < name.len() && n < path.len() - 32 {
        if name[i] == b'%' && name.get(i + 1) == Some(&b'p') {
            let mut digits = [0u8; 20];
            let mut k = digits.len();
            let mut v = pid as u32;
            loop {
                k -= 1;
                digits[k] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            path[n..n + digits.len() - k].copy_from_slice(&digits[k..]);
            n += digits.len() - k;
            i += 2;
        } else {
            path[n] = name[i];
            n += 1;
            i += 1;
        }
    }
    let result = pprof::build().and_then(|bytes| write_file(&path[..=n], &bytes));
    if let Err(e) = result {
        let mut msg: mapvec::MapVec<u8> = mapvec::MapVec::new();
        use core::fmt::Write;
        let _ = writeln!(
            msg,
            "goheap: heap profile not written to {}: {e}",
            core::str::from_utf8(&path[..n]).unwrap_or("?")
        );
        // SAFETY: `msg` is initialised memory of ours.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    }
}

/// Creates (or truncates) the file at the NUL-terminated `path` and writes `bytes`.
fn write_file(path: &[u8], bytes: &[u8]) -> Result<(), &'static str> {
    // SAFETY: `path` is NUL-terminated (the caller's buffer ends in a zero byte).
    let fd = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        return Err("cannot create the file");
    }
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: `bytes[done..]` is readable; `fd` is ours.
        let r = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        if r < 0 {
            // SAFETY: reading this thread's errno.
            if unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            // SAFETY: our descriptor.
            unsafe { libc::close(fd) };
            return Err("write failed");
        }
        done += r as usize;
    }
    // SAFETY: our descriptor.
    if unsafe { libc::close(fd) } != 0 {
        return Err("close failed");
    }
    Ok(())
}

/// Takes the profiler's lock before `fork` (`crate::fork`).
pub(crate) fn before_fork() {
    PROFILER.raw_lock();
}

/// Releases it in the parent.
///
/// # Safety
/// After [`before_fork`], in the same thread.
pub(crate) unsafe fn after_fork_in_parent() {
    // SAFETY: caller's contract.
    unsafe { PROFILER.raw_unlock() };
}

/// Frees it in the child.
///
/// # Safety
/// In the child, after [`before_fork`] ran in the parent.
pub(crate) unsafe fn after_fork_in_child() {
    // SAFETY: caller's contract.
    unsafe { PROFILER.reset_in_child() };
}
