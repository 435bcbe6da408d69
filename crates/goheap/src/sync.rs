//! Atomics used by the lock-free parts, swapped for loom's under `--cfg loom` so that the
//! protocols in [`crate::span`] can be model-checked (`RUSTFLAGS="--cfg loom" cargo test
//! --release -p goheap --test loom`), and the allocator's way of waiting: the raw futex calls
//! and [`Parker`], one thread's sleep in the kernel until another thread changes what it waits
//! for (emulated with loom's mutex and condition variable under loom).
//!
//! Only the modules that loom checks import the atomics from here; the rest use
//! `core::sync::atomic` directly because they need `const` constructors for statics.

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize};

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize};

pub use core::sync::atomic::Ordering;

/// A sequentially consistent fence (loom's under `--cfg loom`).
#[inline(always)]
pub fn seqcst_fence() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
    #[cfg(not(loom))]
    core::sync::atomic::fence(Ordering::SeqCst);
}

/// Spin-wait hint: loom must be told to run another thread, real hardware just pauses.
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// Loom-only stand-in for the sequential consistency of the park handshake (span essay).
///
/// Loom treats `SeqCst` loads and stores as `AcqRel` (its README, "Unsupported features"), so
/// it would report the store-buffering outcome of the Dekker handshake, which the C++20 memory
/// model rules out for `SeqCst` accesses. Loom does model `fence(SeqCst)`, so under loom one
/// goes between each side's `SeqCst` write and `SeqCst` read; real builds get nothing (the
/// accesses themselves are `SeqCst`).
#[inline(always)]
pub fn loom_seqcst_fence() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// `FUTEX_WAIT` on `word`: sleeps in the kernel while `*word == expected`, until a
/// [`futex_wake`] on the same word (or a signal: callers re-check and loop). The kernel
/// compares and enqueues atomically with respect to wakers, which is what makes "change the
/// word, then wake" lose no wake-up. Never allocates.
#[cfg(not(loom))]
pub fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT reads the word at a valid, aligned address and sleeps only while it
    // equals `expected`; a null timeout means no timeout. Spurious returns are the caller's
    // to handle (every caller loops).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            core::ptr::null::<libc::timespec>(),
        );
    }
}

// Under loom, the futex is one mutex and condition variable for every word: a waiter checks
// the word and sleeps under the mutex, a waker takes the mutex and wakes everyone, so "change
// the word, then wake" loses no wake-up exactly as with the kernel's, and a missing wake-up
// is a deadlock loom reports. Spurious returns are allowed, as with the kernel's. Limit: a
// wake wakes every sleeper on every word, so a model with two futex words, or one that
// relies on waking a single sleeper (`lock.rs`), could have a lost wake-up masked; today's
// models have one sleeper or wake all (a `Parker` has one waiter).
#[cfg(loom)]
loom::lazy_static! {
    static ref LOOM_FUTEX: (loom::sync::Mutex<()>, loom::sync::Condvar) =
        (loom::sync::Mutex::new(()), loom::sync::Condvar::new());
}

/// `FUTEX_WAIT` under loom (see `LOOM_FUTEX`).
#[cfg(loom)]
pub fn futex_wait(word: &AtomicU32, expected: u32) {
    let g = LOOM_FUTEX.0.lock().unwrap();
    if word.load(Ordering::SeqCst) == expected {
        drop(LOOM_FUTEX.1.wait(g).unwrap());
    }
}

/// `FUTEX_WAKE` under loom: wakes every sleeper on every word.
#[cfg(loom)]
pub fn futex_wake(_word: &AtomicU32, _n: u32) {
    let _g = LOOM_FUTEX.0.lock().unwrap();
    LOOM_FUTEX.1.notify_all();
}

/// `FUTEX_WAKE` of up to `n` sleepers on `word`. Never allocates.
#[cfg(not(loom))]
pub fn futex_wake(word: &AtomicU32, n: u32) {
    // SAFETY: FUTEX_WAKE on a valid address has no memory effects beyond waking sleepers.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            n,
        );
    }
}

const AWAKE: u32 = 0;
const ASLEEP: u32 = 1;

/// One thread's sleep in the kernel until another thread changes something it waits for: the
/// park/unpark that replaces every spin, yield and polling sleep in the allocator (issue 9).
/// Never allocates (a futex word), so allocator paths may wake it.
///
/// The waiter (one thread at a time) does
///
/// ```text
///   loop {
///       if condition() { break }
///       parker.prepare();                         // state = ASLEEP        (SeqCst)
///       if condition() { parker.cancel(); break } // re-check               (SeqCst read)
///       parker.park();                            // futex_wait(state, ASLEEP)
///   }
/// ```
///
/// and whoever makes the condition true does its write (`SeqCst`, or under a lock that the
/// waiter's re-check also takes), then [`Parker::wake`]: a load of `state` (`SeqCst`), and only
/// if it reads `ASLEEP`, a swap to `AWAKE` and a `futex_wake`. So a producer pays one plain
/// load while the waiter is awake, and of all the producers after one `prepare` only the one
/// whose swap returns `ASLEEP` makes the system call.
///
/// **No lost wake-up.** The interleaving to fear: the waiter re-checks (false), the producer
/// then makes the condition true, reads `state`, finds nobody asleep and does not wake, and
/// the waiter goes to sleep for ever. It cannot happen: the waiter's `state = ASLEEP` comes
/// before its re-check, the producer's condition write before its read of `state`, all four
/// `SeqCst` (or ordered by the lock), so by Dekker's argument either the re-check sees the
/// condition (no sleep) or the producer's read sees `ASLEEP` (it wakes). If the producer's
/// swap and wake come before the waiter's `futex_wait`, the kernel finds `state != ASLEEP`
/// and returns at once; if after, the waiter is already queued and is woken. A spurious
/// return (a signal, a late waker, see below) only costs another turn of the loop, which
/// re-checks before it sleeps again.
///
/// **Late wakers.** A producer may still be inside `wake` after the waiter saw its write and
/// went on (and, for a recycled structure, after a new waiter started waiting on the same
/// parker): it then wakes that waiter early or not at all. Early is a spurious wake-up;
/// "not at all" is fine because its write was already seen. The memory must stay mapped,
/// which it does for every parker here (statics, caches, which are never unmapped).
///
/// Under `--cfg loom` the futex is the emulated one of [`futex_wait`] (compare and sleep under
/// a loom mutex, wake under it), which is the kernel's own guarantee, and loom's deadlock
/// detection reports any lost wake-up (`tests/loom.rs`).
pub struct Parker {
    state: AtomicU32,
}

impl Default for Parker {
    fn default() -> Self {
        Self::new()
    }
}

impl Parker {
    /// A parker with no thread waiting.
    #[cfg(not(loom))]
    pub const fn new() -> Parker {
        Parker {
            state: AtomicU32::new(AWAKE),
        }
    }
    /// A parker with no thread waiting (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new() -> Parker {
        Parker {
            state: AtomicU32::new(AWAKE),
        }
    }

    /// Waiter: announces that it is about to sleep. Re-check the condition next, then call
    /// [`Parker::park`] or [`Parker::cancel`].
    ///
    /// A swap rather than a store: the same instruction on x86-64 (a `SeqCst` store is an
    /// `xchg`), and under loom it orders the mark after every earlier write of the state.
    /// Loom's modification order is partial: with a plain store, a late producer's claim
    /// (a swap that found the state already awake) stays unordered with the mark, and loom
    /// then lets the next producer read the claim's value instead of the mark, an outcome
    /// C++ rules out (the claim's swap read the value before the mark, so it precedes it).
    #[inline]
    pub fn prepare(&self) {
        self.state.swap(ASLEEP, Ordering::SeqCst);
        loom_seqcst_fence();
    }

    /// Waiter: the re-check found the condition true; do not sleep.
    #[inline]
    pub fn cancel(&self) {
        self.state.store(AWAKE, Ordering::Relaxed);
    }

    /// Waiter: sleeps in the kernel unless a producer woke it since [`Parker::prepare`].
    /// May return spuriously: the caller re-checks its condition. Out of line, so that
    /// profiles and `strace -k` name it.
    #[inline(never)]
    pub fn park(&self) {
        self.futex_wait();
        self.state.store(AWAKE, Ordering::Relaxed);
    }

    /// True while the waiter is asleep (or about to be). A hint for producers that must
    /// compute their condition before waking: read it under the same lock as the condition,
    /// then [`Parker::claim`].
    #[inline]
    pub fn is_asleep(&self) -> bool {
        self.state.load(Ordering::Relaxed) == ASLEEP
    }

    /// Producer, after making the waiter's condition true: wakes the waiter if it sleeps.
    /// One load when it does not.
    #[inline]
    pub fn wake(&self) {
        loom_seqcst_fence();
        if self.state.load(Ordering::SeqCst) == ASLEEP && self.claim() {
            self.wake_claimed();
        }
    }

    /// Producer: takes the duty of waking the waiter (true for exactly one producer per
    /// `prepare`). Then call [`Parker::wake_claimed`], possibly after releasing a lock.
    #[inline]
    pub fn claim(&self) -> bool {
        self.state.swap(AWAKE, Ordering::SeqCst) == ASLEEP
    }

    /// Producer: the system call half of [`Parker::wake`], after [`Parker::claim`] returned
    /// true.
    #[cold]
    pub fn wake_claimed(&self) {
        futex_wake(&self.state, 1);
    }

    /// Forgets a waiter that does not exist (in a forked child).
    pub fn reset(&self) {
        self.state.store(AWAKE, Ordering::Relaxed);
    }

    fn futex_wait(&self) {
        futex_wait(&self.state, ASLEEP);
    }
}

/// A flag that any thread raises when something happened that one consumer thread must
/// handle ("a free went into a centrally owned span"), waking the consumer's [`Parker`] on
/// the raise that finds the flag down: until the consumer lowers it again, every further
/// raise is one `SeqCst` load (a plain load on x86-64), no write, no system call.
///
/// **Why a producer that finds the flag up may go.** The producer made its own write `W`
/// (`SeqCst`) before its load `L` of the flag, and `L` read "up". In the single `SeqCst` order,
/// `W` < `L` < the consumer's next lowering swap `T` (`L` read "up", so it precedes the
/// first lowering after the raise it read) < the `SeqCst` fence that [`Signal::take`] ends
/// with. A read of `W`'s location made after that fence sees `W` or something later (C++20
/// [atomics.order]), so the consumer's handling after that `take` sees the producer's write. The consumer's re-check before
/// sleeping ([`Parker`]'s protocol, with [`Signal::is_raised`] as the condition) covers the
/// producer that finds it down.
pub struct Signal {
    raised: AtomicBool,
}

impl Default for Signal {
    fn default() -> Self {
        Self::new()
    }
}

impl Signal {
    /// A signal not raised, with no thread waiting.
    #[cfg(not(loom))]
    pub const fn new() -> Signal {
        Signal {
            raised: AtomicBool::new(false),
        }
    }
    /// A signal not raised (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new() -> Signal {
        Signal {
            raised: AtomicBool::new(false),
        }
    }

    /// Producer, after its own `SeqCst` write that the consumer must see: raises the flag
    /// and wakes `consumer` if this is the first raise since the consumer lowered it.
    #[inline]
    pub fn raise(&self, consumer: &Parker) {
        loom_seqcst_fence();
        if self.raised.load(Ordering::SeqCst) {
            return;
        }
        if !self.raised.swap(true, Ordering::SeqCst) {
            consumer.wake();
        }
    }

    /// Consumer: whether the flag is up (`SeqCst`: the re-check of the park protocol).
    #[inline]
    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    /// Consumer: lowers the flag, returning whether it was up; then every write a producer
    /// made before raising it, or before finding it up, is visible to the caller.
    pub fn take(&self) -> bool {
        let was = self.raised.swap(false, Ordering::SeqCst);
        #[cfg(loom)]
        loom::sync::atomic::fence(Ordering::SeqCst);
        #[cfg(not(loom))]
        core::sync::atomic::fence(Ordering::SeqCst);
        was
    }
}
