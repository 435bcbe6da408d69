//! The count of sweeps in flight (`sweep.rs`'s essay, "the token count"): taken and
//! dropped by sweepers without ever blocking, waited for by sweep termination on a futex.
//! The protocol is two free functions over the two words, [`release`] and [`wait_none`],
//! so that its loom model (`tests/loom.rs`, `sweep_tokens`) runs this very code.

use crate::sync::{futex_wait, futex_wake, loom_seqcst_fence, AtomicU32, Ordering};

/// Sweeps in flight, and threads waiting for there to be none.
pub struct SweepTokens {
    /// Tokens held. Every sweeper (SeqCst: sweep.rs's W2 and the waiter's R1).
    in_flight: AtomicU32,
    /// Threads in [`wait_none`]. Waiters (SeqCst: sweep.rs's W1 and the last drop's R2).
    waiters: AtomicU32,
}

/// A sweep in flight; dropping it ends the sweep.
pub struct SweepToken<'a> {
    tokens: &'a SweepTokens,
}

impl Default for SweepTokens {
    fn default() -> Self {
        Self::new()
    }
}

impl SweepTokens {
    /// No token held, nobody waiting.
    pub fn new() -> SweepTokens {
        SweepTokens {
            in_flight: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// Takes a token: one atomic add, never a wait.
    #[inline]
    pub fn take(&self) -> SweepToken<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        SweepToken { tokens: self }
    }

    /// Sleeps until no token is held ([`wait_none`]).
    pub fn wait_none(&self) {
        wait_none(&self.in_flight, &self.waiters);
    }
}

impl Drop for SweepToken<'_> {
    #[inline]
    fn drop(&mut self) {
        release(&self.tokens.in_flight, &self.tokens.waiters);
    }
}

/// Drops a token: the last one wakes the waiters, if any (otherwise one more load).
#[inline]
pub fn release(in_flight: &AtomicU32, waiters: &AtomicU32) {
    let last = in_flight.fetch_sub(1, Ordering::SeqCst) == 1;
    loom_seqcst_fence();
    if last && waiters.load(Ordering::SeqCst) > 0 {
        futex_wake(in_flight, u32::MAX >> 1);
    }
}

/// Sleeps until `in_flight` is zero. What a sweep did before dropping its token is visible
/// after (its SeqCst subtraction, read by the SeqCst load here).
pub fn wait_none(in_flight: &AtomicU32, waiters: &AtomicU32) {
    waiters.fetch_add(1, Ordering::SeqCst);
    loom_seqcst_fence();
    loop {
        let n = in_flight.load(Ordering::SeqCst);
        if n == 0 {
            break;
        }
        futex_wait(in_flight, n);
    }
    waiters.fetch_sub(1, Ordering::SeqCst);
}
