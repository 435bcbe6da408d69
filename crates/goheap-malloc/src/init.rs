//! Start-up: the library's constructor, the first-use check, and the fork handlers.
//!
//! # Two ways in
//!
//! A preloaded library's constructor (its `.init_array` entry) runs when the dynamic linker
//! initialises it, but that is not necessarily before the first `malloc`: glibc's loader
//! switches to the interposed `malloc` as soon as libc is relocated, and it initialises
//! libraries in dependency order, so another library's constructor (libstdc++'s emergency
//! exception pool, say) may allocate first. goheap itself needs no initialisation (it starts
//! lazily on the first allocation), but one setting must be in place before the first
//! allocation: goheap starts a background scavenger thread on the first heap growth unless
//! told to scavenge synchronously, and a C program must not find a thread it never started
//! (it would show in `/proc/self/task`, and the thread would run Rust's thread start-up,
//! which allocates, inside the program's `malloc`). So:
//!
//! - every allocating entry point calls [`ensure`], one load of [`READY`] and a branch that
//!   is never taken after the first call, which switches goheap to synchronous scavenging;
//!   `malloc` calls it on its slow path only, which every thread's first `malloc` takes
//!   (a thread without a cache finds every window empty), so the first allocation of the
//!   process, which precedes any heap growth, always sets the mode;
//! - the constructor does the same and then registers what cannot be done from inside a
//!   `malloc` call: the `pthread_atfork` handlers (registering them may itself allocate:
//!   glibc keeps fork handlers in a growable array). goheap's own constructor, in this
//!   library too, registers the reports at exit (`GOHEAP_STATS`, `GOHEAP_PROFILE`).
//!
//! # fork
//!
//! `fork()` in a multi-threaded program copies the heap as it is at that instant, with only
//! the forking thread alive. goheap's `goheap::raw::fork` handlers take every allocator lock
//! before the fork (so no other thread is half-way through the heap), release them in the
//! parent and reset them in the child. glibc runs `prepare` handlers in reverse order of
//! registration and the others in order; ours is registered first, by the constructor, so
//! its `prepare` runs last, after any handler of the program that might still allocate, and
//! its child handler runs first, before any that might allocate in the child.

use core::sync::atomic::{AtomicBool, Ordering};

use libc::c_int;

/// Set once goheap has been switched to synchronous scavenging.
static READY: AtomicBool = AtomicBool::new(false);

/// Makes sure the scavenger mode is set before goheap can grow its heap. Called by every
/// allocating entry point.
#[inline(always)]
pub fn ensure() {
    // Acquire: a thread that sees READY also sees the scavenger mode stored before it.
    if !READY.load(Ordering::Acquire) {
        first_use();
    }
}

#[cold]
#[inline(never)]
fn first_use() {
    goheap::raw::scavenger::set_background(false);
    READY.store(true, Ordering::Release);
}

extern "C" {
    // Not declared by the `libc` crate for Linux; glibc provides it (in libc_nonshared.a,
    // which registers the handlers under this library's `__dso_handle`).
    fn pthread_atfork(
        prepare: Option<unsafe extern "C" fn()>,
        parent: Option<unsafe extern "C" fn()>,
        child: Option<unsafe extern "C" fn()>,
    ) -> c_int;
}

/// The constructor the dynamic linker calls when it initialises this library.
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = constructor;

extern "C" fn constructor() {
    ensure();
    // SAFETY: the three handlers have the signature `pthread_atfork` expects and stay valid
    // for the life of the process (this library is never unloaded: it provides `malloc`).
    unsafe {
        pthread_atfork(
            Some(before_fork),
            Some(after_fork_in_parent),
            Some(after_fork_in_child),
        );
    }
}

unsafe extern "C" fn before_fork() {
    goheap::raw::fork::before_fork();
}

unsafe extern "C" fn after_fork_in_parent() {
    // SAFETY: glibc calls this once after `before_fork`, in the thread that forked.
    unsafe { goheap::raw::fork::after_fork_in_parent() };
}

unsafe extern "C" fn after_fork_in_child() {
    // SAFETY: glibc calls this once in the new child, after `before_fork` ran in the parent.
    unsafe { goheap::raw::fork::after_fork_in_child() };
}
