//! The count of sweeps in flight (`sweep.rs`'s essay, "the token count"): taken and
//! dropped by sweepers without ever blocking, waited for by sweep termination on a futex.
//! The protocol is two free functions over the two words, [`release`] and [`wait_none`],
//! so that its loom model (`tests/loom.rs`, `sweep_tokens`) runs this very code.

use crate::sync::{futex_wait, futex_wake, loom_seqcst_fence, AtomicU32, Ordering};

/// Sweeps in flight, and threads waiting for there to be none.
pub struct SweepTokens {
    /// Tokens held. Every sweeper (SeqCst: sweep.rs's W2 and the waiter's R1).
    in_flight: AtomicU32,
    /// Whether a thread in [`wait_none`] looked at `in_flight` since the last wake-up (bit
    /// 0, set by waiters, SeqCst: sweep.rs's W1), and how many wake-ups there were (the
    /// other bits: the last token's drop answers a look by adding 1 to the odd word, which
    /// clears the bit and counts, R2). Also the waiters' futex word: an answer changes it
    /// for good (the word would come back only after 2^31 answers), so no sleep outlasts one.
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

/// Drops a token: the last one wakes the waiters that looked since the last wake-up, if any
/// (otherwise one more load). Answering the look (the CAS) makes this the only drop to wake
/// them: the drops that bring the count to zero again before a waiter has looked again make
/// no system call (sweep.rs: the token count).
#[inline]
pub fn release(in_flight: &AtomicU32, waiters: &AtomicU32) {
    let last = in_flight.fetch_sub(1, Ordering::SeqCst) == 1;
    loom_seqcst_fence();
    if !last {
        return;
    }
    let w = waiters.load(Ordering::SeqCst);
    // A failed CAS: another drop answered (and woke), or answered and a waiter looked again
    // after our subtraction (its look reads our zero or a later token's count).
    if w & 1 == 1
        && waiters
            .compare_exchange(w, w.wrapping_add(1), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        futex_wake(waiters, u32::MAX >> 1);
    }
}

/// Sleeps until `in_flight` is zero. What a sweep did before dropping its token is visible
/// after (its SeqCst subtraction, read by the SeqCst load here). Each look sets the bit
/// anew; the sleep lasts while the word is unchanged, so a drop that answered the look sends
/// the waiter back to look. A waiter that finds no token leaves its bit set: the next last
/// drop answers it with one needless wake-up (the bit may be another waiter's look too).
pub fn wait_none(in_flight: &AtomicU32, waiters: &AtomicU32) {
    loop {
        let looked = waiters.fetch_or(1, Ordering::SeqCst) | 1;
        loom_seqcst_fence();
        if in_flight.load(Ordering::SeqCst) == 0 {
            return;
        }
        futex_wait(waiters, looked);
    }
}
