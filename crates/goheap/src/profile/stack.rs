//! Capturing the call stack of a sampled allocation.
//!
//! Rust and C code built with optimisation keeps no frame pointers, so the stack is walked
//! with the DWARF call-frame information that every object carries for exceptions. On
//! x86-64 Linux the cached unwinder of `unwind.rs` does it: each return address's rule is
//! read from the CFI once and kept, so a walk costs a few loads per frame. Whatever that
//! unwinder does not handle (a signal frame, a PLT stub, code without unwind tables, other
//! targets) goes to libgcc's `_Unwind_Backtrace` (the unwinder Rust's panics and backtraces
//! already use; it is linked into every Rust program and into the `LD_PRELOAD` library),
//! for the whole stack. Both report the same frames; tests below compare them.
//!
//! What the capture may and may not do:
//!
//! - It allocates nothing itself: the frames go into a [`Stack`] on the caller's stack; the
//!   cached unwinder's rules live in static memory. With glibc 2.35 or later libgcc finds
//!   each frame's unwind tables with `_dl_find_object`, which neither allocates nor takes
//!   the loader's lock, and the cached unwinder reads them inside `dl_iterate_phdr`, so
//!   other threads may `dlopen` and `dlclose` meanwhile (a test does). Should an older
//!   unwinder allocate after all, the thread's re-entrancy guard (`Cache::sample_busy`, the
//!   GC's `SAMPLING`) makes that allocation an unsampled one, served normally.
//! - It is never called with an allocator lock held: the sampled allocation is captured
//!   on a path where the thread's cache is consistent and no lock is taken (see
//!   `Cache::refill_sampled`), before the object's memory is taken from the page heap.
//!
//! Frames are return addresses; the symboliser looks them up at `pc - 1` (inside the
//! call). goheap's own frames are dropped when the profile is written, by name.
//!
//! Budget: with the thread's steps remembered (`unwind.rs`), about 5 ns a frame all told
//! (0.14 us for 27 frames, where libgcc took 6.8 us on the same machine; `per_capture_cost`
//! below measures both).

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

struct Walk<'a> {
    stack: &'a mut Stack,
    skip: usize,
}

unsafe extern "C" fn one_frame(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` that `capture` passed, alive for the whole backtrace.
    let w = unsafe { &mut *arg.cast::<Walk<'_>>() };
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

/// The calling thread's stack, innermost frame first, up to [`MAX_DEPTH`] frames, into
/// `stack` (the caller's, so that the 33 words are neither zeroed nor copied again here).
#[inline(never)]
pub fn capture(stack: &mut Stack) {
    stack.depth = 0;
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let here = super::unwind::Regs::here();
        if super::unwind::walk(here, stack) {
            return;
        }
        stack.depth = 0;
    }
    backtrace_here(stack);
}

/// libgcc's walk from the function this is inlined into, whose own frame is skipped.
#[inline(always)]
fn backtrace_here(stack: &mut Stack) {
    stack.depth = 0;
    let mut w = Walk { stack, skip: SKIP };
    // SAFETY: `one_frame` matches the callback type and only touches `w`, which outlives
    // the call.
    unsafe { _Unwind_Backtrace(one_frame, (&mut w as *mut Walk<'_>).cast()) };
}

#[cfg(all(test, target_arch = "x86_64", target_os = "linux"))]
mod tests {
    //! The cached unwinder against libgcc's, from the same function on the same stack, on
    //! stacks of Rust frames of many shapes and on C frames (glibc's `qsort` calling back).

    use core::hint::black_box;

    use super::super::table::{Stack, MAX_DEPTH};
    use super::super::unwind;
    use super::backtrace_here;

    /// Both walks from one frame: (cached, whether it handled the stack; libgcc).
    #[inline(never)]
    fn both() -> (Stack, bool, Stack) {
        let mut cached = Stack::EMPTY;
        let here = unwind::Regs::here();
        let handled = unwind::walk(here, &mut cached);
        let mut gcc = Stack::EMPTY;
        backtrace_here(&mut gcc);
        black_box((cached, handled, gcc))
    }

    fn check(what: &str) {
        // Twice: the first walk fills the cache, the second reads it.
        for round in 0..2 {
            let (cached, handled, gcc) = both();
            assert!(
                gcc.depth > 3,
                "{what}: libgcc saw only {} frames",
                gcc.depth
            );
            assert!(
                handled,
                "{what}: the cached unwinder gave up (round {round})"
            );
            assert_eq!(
                cached.frames(),
                gcc.frames(),
                "{what}: frames differ (round {round})"
            );
        }
    }

    /// Recursion through frames of different sizes, some with over-aligned locals (which
    /// makes LLVM keep a frame pointer and define the CFA from `rbp`).
    #[inline(never)]
    fn plain<const N: usize>(depth: usize, at_bottom: &dyn Fn()) -> usize {
        let mut local = [depth; N];
        black_box(&mut local);
        if depth == 0 {
            at_bottom();
        } else if depth % 3 == 0 {
            aligned(depth - 1, at_bottom);
        } else if depth % 3 == 1 {
            plain::<3>(depth - 1, at_bottom);
        } else {
            plain::<700>(depth - 1, at_bottom);
        }
        black_box(local[N - 1])
    }

    #[repr(align(128))]
    struct Aligned([u8; 256]);

    #[inline(never)]
    fn aligned(depth: usize, at_bottom: &dyn Fn()) -> usize {
        let mut a = Aligned([depth as u8; 256]);
        black_box(&mut a);
        let r = plain::<40>(depth, at_bottom);
        black_box(a.0[3] as usize + r)
    }

    #[test]
    fn same_frames_as_libgcc_on_rust_stacks() {
        for depth in [0, 1, 2, 5, 9, 17, 30, 45] {
            plain::<8>(depth, &|| check(&format!("rust depth {depth}")));
        }
        let handle = std::thread::spawn(|| {
            aligned(4, &|| check("spawned thread"));
            // Shallow: reaches the thread's outermost frame (clone's), below MAX_DEPTH.
            let (cached, handled, gcc) = both();
            assert!(handled && gcc.depth < MAX_DEPTH);
            assert_eq!(cached.frames(), gcc.frames());
        });
        handle.join().unwrap();
    }

    #[test]
    fn same_frames_as_libgcc_through_c_frames() {
        // glibc's qsort (merge sort, recursive) calls the comparator from C frames.
        extern "C" fn compare(a: *const libc::c_void, b: *const libc::c_void) -> libc::c_int {
            // SAFETY: qsort passes pointers to two elements of the `u32` array below.
            let (x, y) = unsafe { (*a.cast::<u32>(), *b.cast::<u32>()) };
            if x == 7 {
                check("qsort comparator");
            }
            x.cmp(&y) as libc::c_int
        }
        let mut v: [u32; 64] = core::array::from_fn(|i| (i as u32 * 37) % 64);
        // SAFETY: `v` is an array of 64 `u32`s and `compare` reads two of them.
        unsafe { libc::qsort(v.as_mut_ptr().cast(), v.len(), 4, Some(compare)) };
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
    }

    /// Per-sample cost of both unwinders at a stack depth of about 20 frames: a
    /// microbenchmark, not a test (`cargo test --release -p goheap --lib per_capture_cost
    /// -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn per_capture_cost() {
        #[inline(never)]
        fn cached() -> Stack {
            let mut s = Stack::EMPTY;
            super::capture(&mut s);
            s
        }
        #[inline(never)]
        fn libgcc() -> Stack {
            let mut s = Stack::EMPTY;
            backtrace_here(&mut s);
            s
        }
        plain::<8>(12, &|| {
            const N: u32 = 20_000;
            for round in 0..3 {
                let t = std::time::Instant::now();
                let mut frames = 0;
                for _ in 0..N {
                    frames += black_box(libgcc()).depth;
                }
                let gcc_ns = t.elapsed().as_nanos() as f64 / f64::from(N);
                let gcc_depth = frames as f64 / f64::from(N);
                let t = std::time::Instant::now();
                let mut frames = 0;
                for _ in 0..N {
                    frames += black_box(cached()).depth;
                }
                let cached_ns = t.elapsed().as_nanos() as f64 / f64::from(N);
                let cached_depth = frames as f64 / f64::from(N);
                println!(
                    "round {round}: libgcc {gcc_ns:.0} ns/capture ({gcc_depth:.0} frames), \
                     cached {cached_ns:.0} ns/capture ({cached_depth:.0} frames), {:.1}x",
                    gcc_ns / cached_ns
                );
            }
        });
    }
}
