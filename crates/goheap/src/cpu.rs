//! The CPU features the allocator uses, looked up at run time.
//!
//! goheap is built for the baseline x86-64 target, which lacks `popcnt`: there
//! `u64::count_ones` is about 18 instructions of bit twiddling, and every window load of a
//! span counts the word it loads, so the count is on the refill path. [`detect_cpu`] asks the
//! CPU once, when a thread cache is made (off every fast path), and [`popcount`] then uses the
//! instruction behind one load of a flag. Built for a target that has the instruction (or
//! for another architecture, or under loom), the flag and the assembly compile away and
//! `popcount` is `count_ones`.
//!
//! This is a leaf: it imports nothing from the crate. (It was part of `span.rs`, whose
//! bitmaps are its one user, until the layers were drawn apart.)

/// `x.count_ones()`, with the `popcnt` instruction where the CPU has it (module essay).
/// Budget: one load and a branch more than the instruction.
#[inline(always)]
pub fn popcount(x: u64) -> u32 {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "popcnt"), not(loom)))]
    if HAS_POPCNT.load(core::sync::atomic::Ordering::Relaxed) {
        let n: u64;
        // SAFETY: the CPU has POPCNT (`detect_cpu`); the instruction reads a register and
        // writes a register and the flags.
        unsafe {
            core::arch::asm!(
                "popcnt {n}, {x}",
                x = in(reg) x,
                n = lateout(reg) n,
                options(pure, nomem, nostack),
            )
        };
        return n as u32;
    }
    x.count_ones()
}

/// Whether the CPU has POPCNT (see [`popcount`]). Written by [`detect_cpu`], read by
/// everyone.
#[cfg(all(target_arch = "x86_64", not(target_feature = "popcnt"), not(loom)))]
static HAS_POPCNT: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Looks up the CPU features the allocator uses (called when a thread cache is made, off
/// every fast path). Before it runs, [`popcount`] uses the portable count.
pub fn detect_cpu() {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "popcnt"), not(loom)))]
    HAS_POPCNT.store(
        std::arch::is_x86_feature_detected!("popcnt"),
        core::sync::atomic::Ordering::Relaxed,
    );
}
