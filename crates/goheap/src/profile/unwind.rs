//! The cached unwinder: a sampled allocation's stack in a few loads per frame.
//!
//! libgcc's `_Unwind_Backtrace` walks a stack by finding each frame's FDE, running its CFA
//! program and applying the row, every time: 4.6 us for a 26-frame stack, which at Go's
//! default rate was most of the profiler's cost. But the row for a given return address
//! never changes while its object stays loaded, and a program's sampled stacks go through
//! a few hundred return addresses at most. So this walker computes a frame's row once
//! (`cfi.rs`, reading `.eh_frame_hdr` and `.eh_frame` inside `dl_iterate_phdr`) and keeps it
//! in [`CACHE`], a fixed table keyed by address; a walk whose addresses are all cached costs,
//! per frame, a hash, a slot read and one or two loads from the stack.
//!
//! **What it tracks.** The stack pointer (the CFA of the callee is the caller's `rsp`),
//! `rbp` (the frame pointer of code that keeps one, and the base of its CFA) and the
//! return address. The x86-64 code compilers emit needs no more, with or without frame
//! pointers. Whatever the cached rule cannot express (`cfi.rs` lists it) makes [`walk`]
//! return false and the caller run libgcc's unwinder on the whole stack instead; such an
//! address is cached as unsupported, so the decision costs one look-up the next time.
//!
//! **Loaded objects change.** A cached rule is right only while the object it was read from
//! stays loaded at that address. glibc counts the objects ever loaded and unloaded
//! (`dlpi_adds`, `dlpi_subs`), and each walk reads them first ([`loader_generation`], one
//! `dl_iterate_phdr` that stops at the first object); a slot counts only if it was filled
//! under the same counts. A miss looks the address up inside `dl_iterate_phdr`, whose lock
//! keeps every object mapped while its tables are read, so a concurrent `dlclose` cannot
//! pull them away. The objects the walk reads rules for are those whose code is on this
//! thread's stack, which no `dlclose` can unload while their frames are live.
//!
//! **Bounds.** Stack words are read only inside the mapping that holds the thread's stack
//! pointer ([`stack_bounds`]: found once per thread from `/proc/self/maps`, with raw system
//! calls into a buffer on the stack, and kept in a thread-local); the CFA must rise with
//! every frame. A rule that points elsewhere ends the walk with a fall-back to libgcc, so a
//! wrong rule costs time, never a stray read. `.eh_frame` reads are bounded in `cfi.rs`.
//!
//! **Concurrency.** Any thread may fill any slot. A slot is a small seqlock: a writer takes
//! it by making its sequence odd (with a compare-and-swap; a writer that finds it taken
//! simply does not cache), writes the fields, and makes the sequence even again; a reader
//! that sees the sequence odd or changed treats the slot as a miss. Nobody waits. (A child
//! forked while another thread was writing a slot finds it odd for good: that one slot
//! never caches again there, which costs time only.)
//!
//! **The thread's memo.** A thread's samples mostly come from a few call sites, so
//! successive walks mostly take the same steps: at depth `i`, the same address with the
//! same `rsp` (and `rbp`, where the CFA is computed from it). Each thread keeps the step it
//! took at each depth ([`Walker::steps`]): the rule applied, already checked against the
//! stack's bounds, giving the caller's CFA and where its return address and `rbp` are. A
//! step whose address and registers match is taken again with three compares and the one
//! or two loads of the caller's registers; the return address is always read from the
//! stack, so a different caller is seen at once. The memo is forgotten when the loader
//! generation or the thread's stack mapping changes, and a walk that interrupts another on
//! the same thread (in a signal handler) leaves it alone.
//!
//! **Allocation.** None: the cache is static memory (zero pages until profiling first
//! misses), the stack bounds and the memo a thread-local (`const`-initialised, 2 KiB), the
//! rest on the stack.
//!
//! Budget: with every step in the memo, about 35 instructions a frame, plus the walk's one
//! fixed cost, the `dl_iterate_phdr` call (about 175 instructions with glibc's lock): about
//! 880 instructions for a 15-frame stack by callgrind (1,490 with the shared cache alone),
//! 0.14 us for 27 frames by `stack.rs`'s `per_capture_cost`. A step not in the memo probes
//! [`CACHE`]; a miss there costs a `dl_iterate_phdr` walk of the objects and the work in
//! `cfi.rs`, once per address.

use core::cell::Cell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{fence, AtomicU64, Ordering};

use super::cfi::{self, Rule};
use super::table::{Stack, MAX_DEPTH};

/// The registers a walk starts from: those of the capturing function at the instruction
/// `pc`. Made by [`Regs::here`] inside that function, read by [`walk`] while the function
/// is still running.
#[derive(Clone, Copy)]
pub struct Regs {
    pub pc: usize,
    pub sp: usize,
    pub bp: usize,
}

impl Regs {
    /// The calling function's `rip`, `rsp` and `rbp` at one instruction (inlined into it).
    #[inline(always)]
    pub fn here() -> Regs {
        let (pc, sp, bp): (usize, usize, usize);
        // SAFETY: reads three registers; `lea` of `rip` gives the address of the next
        // instruction, at which `rsp` and `rbp` still hold the values read.
        unsafe {
            core::arch::asm!(
                "lea {pc}, [rip]",
                "mov {sp}, rsp",
                "mov {bp}, rbp",
                pc = out(reg) pc,
                sp = out(reg) sp,
                bp = out(reg) bp,
                options(nomem, nostack, preserves_flags),
            )
        };
        Regs { pc, sp, bp }
    }
}

/// Walks the stack from `start` (registers of the capturing function, whose own frame is
/// not recorded) into `stack`: return addresses, innermost first, as `_Unwind_Backtrace`
/// reports them from the same function. False if some frame needs libgcc's unwinder
/// (`stack` then holds a partial walk, to be discarded).
///
/// `start` must come from [`Regs::here`] in a function that is still running (its caller
/// calls this), so that the frames it describes are live.
pub fn walk(start: Regs, stack: &mut Stack) -> bool {
    WALKER.with(|w| {
        // A walk is under way on this thread already, and this one runs in a signal handler
        // that interrupted it (perhaps in the middle of an update): touch none of the
        // thread's state, and use the shared cache.
        if w.busy.get() {
            let (Some(bounds), Some(generation)) = (mapping_of(start.sp), loader_generation())
            else {
                return false;
            };
            return walk_from(start, stack, bounds, generation, None);
        }
        w.busy.set(true);
        let handled = w.walk(start, stack);
        w.busy.set(false);
        handled
    })
}

/// [`walk`]'s loop, with the thread's memo if `memo` is given (its generation then equals
/// `generation`).
#[inline(always)]
fn walk_from(
    start: Regs,
    stack: &mut Stack,
    bounds: StackBounds,
    generation: u64,
    memo: Option<&Walker>,
) -> bool {
    let (mut pc, mut sp, mut bp) = (start.pc, start.sp, start.bp);
    // Frames stepped over so far (the index into the memo): the capturing frame is the first.
    let mut n = 0;
    loop {
        if n > 0 {
            // As `stack::one_frame` does with libgcc's frames.
            if pc == 0 {
                return true;
            }
            stack.pcs[stack.depth] = pc;
            stack.depth += 1;
            if stack.depth == MAX_DEPTH {
                return true;
            }
        }
        // A return address is looked up inside its call instruction.
        let at = if n == 0 { pc } else { pc - 1 };
        let step = match memo {
            Some(m) => {
                let step = m.steps[n].get();
                if step.matches(at, sp, bp) {
                    step
                } else {
                    let step = Step::new(at, sp, bp, bounds, generation);
                    m.steps[n].set(step);
                    step
                }
            }
            None => Step::new(at, sp, bp, bounds, generation),
        };
        n += 1;
        match step.next {
            Next::Caller => {}
            Next::Outermost => return true,
            Next::Unsupported => return false,
        }
        // SAFETY: `ra_slot` is an aligned-or-not word inside this thread's stack mapping
        // (`Step::new` checked it against `bounds`), which stays mapped while the thread
        // runs; the frames it belongs to are live (the contract above).
        pc = unsafe { core::ptr::read_unaligned(step.ra_slot as *const usize) };
        if step.rbp_slot != 0 {
            // SAFETY: as above, the slot is inside the stack mapping.
            bp = unsafe { core::ptr::read_unaligned(step.rbp_slot as *const usize) };
        }
        sp = step.cfa;
    }
}

/// What a frame's step leads to.
#[derive(Clone, Copy, PartialEq)]
enum Next {
    /// Its caller, whose registers [`Step`] says where to find.
    Caller,
    /// Nothing: the frame is the outermost one.
    Outermost,
    /// Something the cached rule cannot follow: libgcc's unwinder takes over.
    Unsupported,
}

/// One frame's step, from the registers its code is at to its caller's: the rule for its
/// address applied to them, and checked. A function of `at`, `sp`, `rbp` if the rule's CFA
/// is `rbp`-based, the loader generation and the stack's bounds, so it can be kept
/// ([`Walker::steps`]) and reused when those are the same.
#[derive(Clone, Copy)]
struct Step {
    /// The address looked up (0: no step).
    at: usize,
    sp: usize,
    /// `rbp` if the rule's CFA depends on it, else 0.
    bp: usize,
    /// Whether `bp` is part of the key.
    uses_bp: bool,
    next: Next,
    /// The CFA: the caller's `sp`.
    cfa: usize,
    /// Where the return address is.
    ra_slot: usize,
    /// Where the caller's `rbp` is (0: `rbp` is unchanged).
    rbp_slot: usize,
}

impl Step {
    const NONE: Step = Step {
        at: 0,
        sp: 0,
        bp: 0,
        uses_bp: false,
        next: Next::Unsupported,
        cfa: 0,
        ra_slot: 0,
        rbp_slot: 0,
    };

    /// Whether this step is the one for a frame at `at` with these registers.
    #[inline(always)]
    fn matches(&self, at: usize, sp: usize, bp: usize) -> bool {
        self.at == at && self.sp == sp && (!self.uses_bp || self.bp == bp)
    }

    /// Looks up the rule for `at` (the shared cache, else the CFI) and applies it.
    fn new(at: usize, sp: usize, bp: usize, bounds: StackBounds, generation: u64) -> Step {
        let rule = match CACHE.get(at, generation) {
            Some(rule) => rule,
            None => resolve(at),
        };
        let mut step = Step {
            at,
            sp,
            bp: if rule.uses_rbp() { bp } else { 0 },
            uses_bp: rule.uses_rbp(),
            ..Step::NONE
        };
        if rule.unsupported() {
            return step;
        }
        if rule.outermost() {
            step.next = Next::Outermost;
            return step;
        }
        let cfa = rule.cfa(sp, bp);
        let ra_slot = rule.ra_slot(cfa);
        let rbp_slot = rule.rbp_slot(cfa);
        if cfa <= sp || !bounds.holds(ra_slot) || rbp_slot.is_some_and(|s| !bounds.holds(s)) {
            return step;
        }
        step.next = Next::Caller;
        step.cfa = cfa;
        step.ra_slot = ra_slot;
        step.rbp_slot = rbp_slot.unwrap_or(0);
        step
    }
}

/// The mapping that holds a thread's stack: `[lo, hi)`.
#[derive(Clone, Copy)]
struct StackBounds {
    lo: usize,
    hi: usize,
}

impl StackBounds {
    /// Whether a word at `addr` lies inside.
    fn holds(self, addr: usize) -> bool {
        addr >= self.lo && addr < self.hi && self.hi - addr >= 8
    }
}

/// Steps a walk takes at most: one per frame, the capturing frame's included.
const MEMO_LEN: usize = MAX_DEPTH;

/// A thread's own state for its walks. Touched only by [`walk`] on its own thread.
struct Walker {
    /// The thread's stack mapping, once found (`lo == hi == 0` before). The memo is
    /// forgotten when it changes.
    bounds: Cell<StackBounds>,
    /// A walk is under way on this thread (its memo is in use): a walk that finds it set
    /// runs in a signal handler and touches none of this.
    busy: Cell<bool>,
    /// The loader generation the memo's rules were read under.
    generation: Cell<u64>,
    /// The memo: the step the thread's last walks took at each depth ([`Step::NONE`]: none).
    /// Successive samples of a thread mostly share the outer part of their stacks, so the
    /// step at depth `i` is mostly the one taken the last time: three compares instead of a
    /// probe of [`CACHE`]'s seqlocked slots, the rule's arithmetic and the bounds checks.
    steps: [Cell<Step>; MEMO_LEN],
}

thread_local! {
    static WALKER: Walker = const {
        Walker {
            bounds: Cell::new(StackBounds { lo: 0, hi: 0 }),
            busy: Cell::new(false),
            generation: Cell::new(0),
            steps: [const { Cell::new(Step::NONE) }; MEMO_LEN],
        }
    };
}

impl Walker {
    /// [`walk`] with the thread's memo, which it brings up to date first: every step in it
    /// was taken under the current generation and checked against the current bounds.
    fn walk(&self, start: Regs, stack: &mut Stack) -> bool {
        let known = self.bounds.get();
        let bounds = if known.holds(start.sp) {
            known
        } else {
            let Some(found) = mapping_of(start.sp) else {
                return false;
            };
            self.bounds.set(found);
            self.forget_steps();
            found
        };
        let Some(generation) = loader_generation() else {
            return false;
        };
        if self.generation.get() != generation {
            self.forget_steps();
            self.generation.set(generation);
        }
        walk_from(start, stack, bounds, generation, Some(self))
    }

    fn forget_steps(&self) {
        for step in &self.steps {
            step.set(Step::NONE);
        }
    }
}

/// Finds the mapping that holds `addr` in `/proc/self/maps`, with `open`/`read` into a
/// buffer on the stack (no allocation). Each line starts `lo-hi ` in hex.
fn mapping_of(addr: usize) -> Option<StackBounds> {
    // SAFETY: a NUL-terminated path; the descriptor is ours and closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 4096];
    // Parser state: which field of the line, and the two numbers so far.
    #[derive(Clone, Copy, PartialEq)]
    enum Field {
        Lo,
        Hi,
        Rest,
    }
    let mut field = Field::Lo;
    let (mut lo, mut hi) = (0usize, 0usize);
    let mut found = None;
    'read: loop {
        // SAFETY: `buf` is ours and `read` writes at most its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            // SAFETY: reading this thread's errno.
            if unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            break;
        }
        if n == 0 {
            break;
        }
        for &c in &buf[..n as usize] {
            let digit = (c as char).to_digit(16).map(|d| d as usize);
            match (field, c, digit) {
                (Field::Lo, b'-', _) => field = Field::Hi,
                (Field::Lo, _, Some(d)) => lo = lo.wrapping_mul(16) | d,
                (Field::Hi, b' ', _) => {
                    if addr >= lo && addr < hi {
                        found = Some(StackBounds { lo, hi });
                        break 'read;
                    }
                    field = Field::Rest;
                }
                (Field::Hi, _, Some(d)) => hi = hi.wrapping_mul(16) | d,
                (_, b'\n', _) => {
                    field = Field::Lo;
                    lo = 0;
                    hi = 0;
                }
                _ => {}
            }
        }
    }
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
    found
}

/// glibc's count of objects loaded plus objects unloaded: changes whenever the set of
/// loaded objects does. One `dl_iterate_phdr` call that stops at the first object. `None`
/// if the C library does not report the counts (then nothing can be cached).
fn loader_generation() -> Option<u64> {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: the loader passes a valid `info` of `size` bytes; `data` is our `u64`.
        unsafe {
            if size >= core::mem::offset_of!(libc::dl_phdr_info, dlpi_tls_modid) {
                *data.cast::<Option<u64>>() =
                    Some((*info).dlpi_adds.wrapping_add((*info).dlpi_subs));
            }
        }
        1
    }
    let mut generation: Option<u64> = None;
    // SAFETY: `first` matches the callback type and writes only `generation`, which
    // outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first), (&mut generation as *mut Option<u64>).cast()) };
    generation
}

/// A cache miss: the rule for `at`, read from its object's CFI inside `dl_iterate_phdr`
/// and cached under the generation seen there.
#[cold]
fn resolve(at: usize) -> Rule {
    /// The look-up's question and answer, shared with the callback.
    struct Lookup {
        at: usize,
        rule: Option<Rule>,
        generation: u64,
    }
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: the loader passes a valid `info` of `size` bytes, whose program headers it
        // keeps mapped during the callback; `data` is our `Lookup`.
        unsafe {
            let q = &mut *data.cast::<Lookup>();
            let info = &*info;
            if size >= core::mem::offset_of!(libc::dl_phdr_info, dlpi_tls_modid) {
                q.generation = info.dlpi_adds.wrapping_add(info.dlpi_subs);
            }
            if info.dlpi_phdr.is_null() {
                return 0;
            }
            let phdrs = core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
            match cfi::rule_at(q.at, info.dlpi_addr as usize, phdrs) {
                Some(rule) => {
                    q.rule = Some(rule);
                    1
                }
                None => 0,
            }
        }
    }
    let mut q = Lookup {
        at,
        rule: None,
        generation: 0,
    };
    // SAFETY: `each` matches the callback type and writes only `q`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut q as *mut Lookup).cast()) };
    // An address in no object (code without unwind tables, as a JIT's): libgcc's business.
    let rule = q.rule.unwrap_or(Rule::UNSUPPORTED);
    CACHE.put(at, q.generation, rule);
    rule
}

/// Slots in [`CACHE`] (a power of two): 4096 slots of 32 bytes, 128 KiB of static memory.
const SLOTS: usize = 4096;

/// One cached rule. A seqlock (module essay): `seq` odd while a writer fills the slot.
struct Slot {
    seq: AtomicU64,
    /// The address (`0`: empty).
    at: AtomicU64,
    /// [`Rule::word`].
    rule: AtomicU64,
    /// `loader_generation` when the rule was read.
    generation: AtomicU64,
}

/// Rules by address, direct-mapped (a colliding address replaces the slot's). Any thread
/// reads and fills it, by the seqlock protocol of [`Slot`].
struct RuleCache {
    slots: [Slot; SLOTS],
}

static CACHE: RuleCache = RuleCache {
    slots: [const {
        Slot {
            seq: AtomicU64::new(0),
            at: AtomicU64::new(0),
            rule: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }; SLOTS],
};

impl RuleCache {
    fn slot(&self, at: usize) -> &Slot {
        let h = (at as u64 ^ (at as u64 >> 17)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        &self.slots[(h >> (64 - SLOTS.trailing_zeros())) as usize]
    }

    /// The rule cached for `at` under `generation`, if any.
    #[inline]
    fn get(&self, at: usize, generation: u64) -> Option<Rule> {
        let s = self.slot(at);
        let seq = s.seq.load(Ordering::Acquire);
        let key = s.at.load(Ordering::Relaxed);
        let word = s.rule.load(Ordering::Relaxed);
        let g = s.generation.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if seq & 1 != 0 || s.seq.load(Ordering::Relaxed) != seq {
            return None;
        }
        if key != at as u64 || g != generation {
            return None;
        }
        Rule::from_word(word)
    }

    /// Caches `rule` for `at`, unless another thread is writing the slot.
    fn put(&self, at: usize, generation: u64, rule: Rule) {
        let s = self.slot(at);
        let seq = s.seq.load(Ordering::Relaxed);
        if seq & 1 != 0
            || s.seq
                .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        s.at.store(at as u64, Ordering::Relaxed);
        s.rule.store(rule.word(), Ordering::Relaxed);
        s.generation.store(generation, Ordering::Relaxed);
        s.seq.store(seq + 2, Ordering::Release);
    }
}
