//! The thread's cache slot: one machine word of thread-local storage, read on every
//! allocation and free.
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

/// Reads the calling thread's slot ([`INITIAL`] until [`set`] is called on this thread).
#[inline(always)]
pub fn get() -> *mut u8 {
    imp::get()
}

/// Writes the calling thread's slot.
#[inline(always)]
pub fn set(v: *mut u8) {
    imp::set(v)
}

/// Every thread's slot starts as this: the cache module's "no cache yet" state, a pointer
/// into static memory (see `cache.rs`), so that the allocation fast path can read through
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
pub const INITIAL: *mut u8 = (&raw const crate::cache::EMPTY_CURRENT)
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
        empty = sym crate::cache::EMPTY_CURRENT,
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
