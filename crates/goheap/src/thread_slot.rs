//! The thread's cache slot: one machine word of thread-local storage, read on every
//! allocation and free, and its state machine (which cache the thread uses, and when it gets
//! and gives one back).
//!
//! This module sits above the thread caches (`cache.rs`): it takes a cache from their pool
//! when a thread first allocates ([`init_thread`]) and returns it when the thread exits, and
//! the caches never look at the slot. The word holds the thread's cache, or one of three
//! state values (section "The slot's states" below).
//!
//! # The word
//!
//! Rust's `thread_local!` compiles to the fastest access (`mov %fs:OFFSET`) only when goheap
//! is linked into an executable. Linked into a shared library (the malloc face
//! `libgoheap_malloc.so`, or a Rust `cdylib` that uses `GoAlloc`), it uses the
//! general-dynamic TLS model: a call to `__tls_get_addr` per access, which profiles showed at
//! 10% of a malloc-heavy C program. Stable Rust cannot choose the TLS model, so with the
//! `initial-exec-tls` feature (which goheap-malloc turns on), on x86-64 Linux, the slot is
//! defined and read in assembly with the *initial-exec* model, as mimalloc and jemalloc do
//! in C: the slot's offset from the thread pointer is fixed when the library is
//! loaded and read from the GOT, so an access is two `mov`s and no call (and in an executable
//! the linker relaxes it further to one). The cost of initial-exec is a few bytes of static
//! TLS, which a library loaded at startup (or preloaded) always gets, and which glibc keeps in
//! reserve for libraries loaded later with `dlopen`.
//!
//! Without the feature (goheap linked into an executable, where `thread_local!` is already a
//! single `mov %fs:OFFSET`), or on other targets, a `thread_local!` holds the slot.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use crate::cache::{Cache, CURRENT_OFFSET, SENTINEL};
use crate::sizeclass::NUM_CLASSES;
use crate::span::Span;

/// Reads the calling thread's slot ([`INITIAL`] until [`set`] is called on this thread).
#[inline(always)]
fn get() -> *mut u8 {
    imp::get()
}

/// Writes the calling thread's slot.
#[inline(always)]
fn set(v: *mut u8) {
    imp::set(v)
}

/// Every thread's slot starts as this: the "no cache yet" state (`FRESH`, below), a pointer
/// into static memory, so that the allocation fast path can read through
/// the slot before the thread has a cache. (The initial-exec slot computes the same value in
/// its assembly, so it does not name this constant.)
#[cfg_attr(
    all(
        target_arch = "x86_64",
        target_os = "linux",
        feature = "initial-exec-tls"
    ),
    allow(dead_code)
)]
pub const INITIAL: *mut u8 = (&raw const EMPTY_CURRENT)
    .cast::<u8>()
    .wrapping_sub(crate::cache::CURRENT_OFFSET)
    .cast_mut();

#[cfg(all(
    target_arch = "x86_64",
    target_os = "linux",
    feature = "initial-exec-tls"
))]
mod imp {
    // One 8-byte TLS object (.tdata), initialised to `INITIAL` (the dynamic linker relocates
    // the TLS initialisation image before it copies it for any thread), hidden so that it
    // binds inside the module that defines it.
    core::arch::global_asm!(
        ".section .tdata,\"awT\",@progbits",
        ".p2align 3",
        ".hidden goheap_thread_slot",
        ".globl goheap_thread_slot",
        ".type goheap_thread_slot,@object",
        ".size goheap_thread_slot,8",
        "goheap_thread_slot:",
        ".quad {empty} - {offset}",
        ".text",
        empty = sym super::EMPTY_CURRENT,
        offset = const crate::cache::CURRENT_OFFSET,
    );

    #[inline(always)]
    pub fn get() -> *mut u8 {
        let v: *mut u8;
        // SAFETY: initial-exec TLS access to the 8-byte slot defined above: load the slot's
        // offset from the thread pointer from the GOT, then read the calling thread's copy
        // through %fs. It touches no other memory and no flags.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + goheap_thread_slot@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{off}]",
                off = out(reg) _,
                v = lateout(reg) v,
                options(nostack, readonly, preserves_flags),
            );
        }
        v
    }

    #[inline(always)]
    pub fn set(v: *mut u8) {
        // SAFETY: as in `get`, writing the calling thread's own copy of the slot.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + goheap_thread_slot@GOTTPOFF]",
                "mov qword ptr fs:[{off}], {v}",
                off = out(reg) _,
                v = in(reg) v,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(all(
    target_arch = "x86_64",
    target_os = "linux",
    feature = "initial-exec-tls"
)))]
mod imp {
    use core::cell::Cell;

    thread_local! {
        static SLOT: Cell<*mut u8> = const { Cell::new(super::INITIAL) };
    }

    #[inline(always)]
    pub fn get() -> *mut u8 {
        SLOT.get()
    }

    #[inline(always)]
    pub fn set(v: *mut u8) {
        SLOT.set(v)
    }
}

// ---- The slot's states ------------------------------------------------------------------
//
// The slot holds the thread's cache, or one of three *state* values: the thread has no
// cache yet (`FRESH`, the slot's initial value), its cache is being made (`INITIALIZING`),
// or it was retired (`DEAD`). A state value is not null but points `CURRENT_OFFSET` bytes
// before an entry of `EMPTY_CURRENT`, so reading "its" `current[class]` gives the sentinel,
// whose window is empty: the allocation fast path reads the slot and the window without
// first asking whether the thread has a cache, and only the refill (`alloc_refill`) tells a
// state from a cache. No state value is a cache address, so none equals a span's owner.

/// The `current` array that the state values point into: the sentinel for every class,
/// from each of the three states.
pub(crate) static EMPTY_CURRENT: [AtomicPtr<Span>; NUM_CLASSES + 2] =
    [const { AtomicPtr::new(&SENTINEL as *const Span as *mut Span) }; NUM_CLASSES + 2];

/// The thread has no cache yet: the slot's initial value.
const FRESH: usize = 0;
/// The thread's cache is being created: allocations meanwhile use the fallback.
const INITIALIZING: usize = 1;
/// The thread's cache has been retired (thread exit): the fallback serves it from now on.
const DEAD: usize = 2;

/// The slot value of state `k`. Only ever used as an address to read `current` through
/// (wrapping arithmetic: it lies outside any object until `CURRENT_OFFSET` is added back).
#[inline(always)]
fn state(k: usize) -> *mut Cache {
    EMPTY_CURRENT
        .as_ptr()
        .wrapping_add(k)
        .cast::<u8>()
        .wrapping_sub(CURRENT_OFFSET)
        .cast::<Cache>()
        .cast_mut()
}

/// True if the slot value `c` is a state, not a cache.
#[inline(always)]
pub fn is_state(c: *mut Cache) -> bool {
    (c as usize).wrapping_sub(state(FRESH) as usize) <= (DEAD - FRESH) * 8
}

/// True if the calling thread never had a cache.
pub fn is_fresh() -> bool {
    slot() == state(FRESH)
}

/// The allocation fast path straight from a slot value: an object from the current window
/// of `class` in the cache `c`, or null when that window is empty or `c` is a state (whose
/// windows are all the sentinel's). Then `alloc_refill` takes over.
///
/// # Safety
/// `c` is the calling thread's slot value ([`raw`]) and `class < NUM_CLASSES`.
#[inline(always)]
pub unsafe fn alloc_from_slot(c: *mut Cache, class: usize) -> *mut u8 {
    // A place computed without a reference to `*c`, which may be a state: for a cache it is
    // `(*c).current[class]`, for a state an entry of `EMPTY_CURRENT` (both in bounds).
    let cur = c
        .cast::<u8>()
        .wrapping_add(CURRENT_OFFSET)
        .cast::<AtomicPtr<Span>>()
        .wrapping_add(class);
    // SAFETY: see above; the span is the cache's current span (owned by this thread) or the
    // sentinel.
    unsafe { (*(*cur).load(Ordering::Relaxed)).alloc_from_window() }
}

/// The thread's cache slot: a cache address or a state value. Its initial value (`FRESH`)
/// is [`INITIAL`].
#[inline(always)]
fn slot() -> *mut Cache {
    get().cast()
}

#[inline(always)]
fn set_slot(c: *mut Cache) {
    set(c.cast())
}

/// The calling thread's raw cache slot: a cache address, or a state value (see
/// [`is_state`]). No state value equals a span owner, so `raw() == owner` is the whole "do I
/// own this span" test.
#[inline(always)]
pub fn raw() -> *mut Cache {
    slot()
}

/// The calling thread's cache if it has a live one (fast path), else null.
#[inline(always)]
pub fn current() -> *mut Cache {
    let c = slot();
    if is_state(c) {
        ptr::null_mut()
    } else {
        c
    }
}

/// The pthread key whose destructor retires the cache at thread exit. None if the process
/// ran out of pthread keys: threads then keep their caches at exit (memory stays owned by
/// an unused cache, which is a leak, not an error).
static EXIT_KEY: OnceLock<Option<libc::pthread_key_t>> = OnceLock::new();

unsafe extern "C" fn on_thread_exit(p: *mut libc::c_void) {
    let c = p as *mut Cache;
    if c.is_null() {
        return;
    }
    set_slot(state(DEAD));
    // SAFETY: the key's value is this thread's cache, which nothing else uses, and the slot
    // no longer holds it.
    unsafe { Cache::retire_to_pool(c) };
}

/// Gives the thread a cache, or says to use the fallback (returns null).
#[cold]
#[inline(never)]
pub fn init_thread() -> *mut Cache {
    let c = slot();
    if c == state(INITIALIZING) || c == state(DEAD) {
        return ptr::null_mut();
    }
    if !is_state(c) {
        return c;
    }
    set_slot(state(INITIALIZING));
    let key = *EXIT_KEY.get_or_init(|| {
        let mut k: libc::pthread_key_t = 0;
        // SAFETY: `k` is a valid out-pointer; the destructor has the required signature.
        let r = unsafe { libc::pthread_key_create(&mut k, Some(on_thread_exit)) };
        (r == 0).then_some(k)
    });
    let c = Cache::acquire();
    if c.is_null() {
        set_slot(state(FRESH));
        return c;
    }
    if let Some(key) = key {
        // SAFETY: the key exists; the value is only read back by our destructor.
        unsafe { libc::pthread_setspecific(key, c as *const libc::c_void) };
    }
    set_slot(c);
    c
}

/// Retires the calling thread's cache now, as its exit would (tests use it to check that a
/// retire hands everything back). The thread gets a fresh cache on its next allocation.
pub fn retire_current_thread() {
    let c = current();
    if c.is_null() {
        return;
    }
    set_slot(state(INITIALIZING));
    // SAFETY: `c` is this thread's cache and nothing else uses it; the exit key still names
    // it, so we clear the key before recycling.
    unsafe {
        if let Some(&Some(k)) = EXIT_KEY.get() {
            libc::pthread_setspecific(k, ptr::null());
        }
        on_thread_exit(c.cast());
    }
    set_slot(state(FRESH));
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_thread_has_its_own_slot() {
        let before = super::get();
        super::set(0x1000 as *mut u8);
        assert_eq!(super::get() as usize, 0x1000);
        std::thread::spawn(|| {
            assert_eq!(
                super::get(),
                super::INITIAL,
                "a new thread starts with the initial value"
            );
            super::set(0x2000 as *mut u8);
            assert_eq!(super::get() as usize, 0x2000);
        })
        .join()
        .unwrap();
        assert_eq!(super::get() as usize, 0x1000);
        super::set(before);
    }
}
