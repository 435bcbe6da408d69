//! Capturing the call stack of a sampled allocation.
//!
//! Rust and C code built with optimisation keeps no frame pointers, so the stack is walked
//! with the DWARF call-frame information that every object carries for exceptions, through
//! libgcc's `_Unwind_Backtrace` (the unwinder Rust's panics and backtraces already use; it
//! is linked into every Rust program and into the `LD_PRELOAD` library).
//!
//! What the capture may and may not do:
//!
//! - It allocates nothing itself: the frames go into a [`Stack`] on the caller's stack.
//!   With glibc 2.35 or later libgcc finds each frame's unwind tables with
//!   `_dl_find_object`, which neither allocates nor takes the loader's lock, so other
//!   threads may `dlopen` meanwhile (a test does). Should an older unwinder allocate after
//!   all, the thread's re-entrancy guard (`Cache::sample_busy`, the GC's `SAMPLING`) makes
//!   that allocation an unsampled one, served normally.
//! - It is never called with an allocator lock held: the sampled allocation is captured
//!   on a path where the thread's cache is consistent and no lock is taken (see
//!   `Cache::refill_sampled`), before the object's memory is taken from the page heap.
//!
//! Frames are return addresses; the symboliser looks them up at `pc - 1` (inside the
//! call). goheap's own frames are dropped when the profile is written, by name.

use core::ffi::{c_int, c_void};

use super::table::{Stack, MAX_DEPTH};

type TraceFn = unsafe extern "C" fn(ctx: *mut c_void, arg: *mut c_void) -> c_int;

extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
}

/// `_URC_NO_REASON` and `_URC_END_OF_STACK`: go on, stop.
const URC_NO_REASON: c_int = 0;
const URC_END_OF_STACK: c_int = 5;

/// goheap frames at the top of every capture that cannot be user code: this function and
/// the unwinder's own frame.
const SKIP: usize = 1;

struct Walk {
    stack: Stack,
    skip: usize,
}

unsafe extern "C" fn one_frame(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` that `capture` passed, alive for the whole backtrace.
    let w = unsafe { &mut *arg.cast::<Walk>() };
    // SAFETY: `ctx` is the unwinder's context for this frame.
    let ip = unsafe { _Unwind_GetIP(ctx) };
    if ip == 0 {
        return URC_END_OF_STACK;
    }
    if w.skip > 0 {
        w.skip -= 1;
        return URC_NO_REASON;
    }
    w.stack.pcs[w.stack.depth] = ip;
    w.stack.depth += 1;
    if w.stack.depth == MAX_DEPTH {
        URC_END_OF_STACK
    } else {
        URC_NO_REASON
    }
}

/// The calling thread's stack, innermost frame first, up to [`MAX_DEPTH`] frames.
#[inline(never)]
pub fn capture() -> Stack {
    let mut w = Walk {
        stack: Stack::EMPTY,
        skip: SKIP,
    };
    // SAFETY: `one_frame` matches the callback type and only touches `w`, which outlives
    // the call.
    unsafe { _Unwind_Backtrace(one_frame, (&mut w as *mut Walk).cast()) };
    w.stack
}
