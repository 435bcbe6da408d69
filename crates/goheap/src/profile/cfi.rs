//! Reading one frame's unwind rule from an object's DWARF call-frame information (CFI), for
//! the cached unwinder (`unwind.rs`).
//!
//! Every object built for Linux on x86-64 carries `.eh_frame` (the CFI that exceptions use)
//! and `.eh_frame_hdr`, a table of every function's start address sorted for binary search
//! (the `PT_GNU_EH_FRAME` segment). Given an address in a loaded object, [`rule_at`] finds
//! the function's FDE through that table, runs its CIE's and its own CFA program up to the
//! address, and returns what the unwinder needs of the resulting row, as a [`Rule`]:
//!
//! - the CFA (the caller's stack pointer) as `rsp + offset` or `rbp + offset`;
//! - where the return address was saved (`CFA + offset`), or that it is undefined, which
//!   marks the outermost frame (`_start`, a thread's `clone` child);
//! - where the caller's `rbp` was saved (`CFA + offset`), or that `rbp` is unchanged.
//!
//! That covers the code compilers emit for ordinary functions, with or without a frame
//! pointer. Anything else (a CFA given by a DWARF expression, as in PLT stubs and signal
//! trampolines; a register saved in another register; a signal frame; an object without
//! `.eh_frame_hdr` or with an unusual table encoding) is [`Rule::UNSUPPORTED`], and the
//! caller hands the whole stack to libgcc's unwinder, which handles all of DWARF. Only
//! `rbp`, the return address and the CFA are tracked: rules for the other registers do not
//! matter as long as no CFA is computed from them (one that is, is unsupported).
//!
//! Every read goes through a [`Bytes`] cursor bounded by the loadable segment that holds the
//! object's `.eh_frame_hdr` (where `.eh_frame` lives too; an FDE or CIE outside it is
//! unsupported), so malformed CFI can make a rule unsupported but never a read stray. The
//! caller runs this inside `dl_iterate_phdr`, whose lock keeps the object mapped meanwhile.
//!
//! Budget: this is the cache-miss path, run once per return address (per set of loaded
//! objects): a binary search of the object's table (about 17 steps for 100,000 functions)
//! and a CFA program of a few dozen bytes.

use core::ptr;

/// What the unwinder needs of one CFI row, packed into a word so that the rule cache
/// (`unwind.rs`) stores it with one atomic store. Built by [`rule_at`]; read by the walker.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rule(u64);

/// Bit layout of [`Rule`]: the CFA offset in bits 0..32, flags in 32..40, the return
/// address's offset from the CFA in 40..48 (bytes, signed), `rbp`'s in 48..64 (bytes, signed).
const CFA_IS_RBP: u64 = 1 << 32;
const RBP_SAVED: u64 = 1 << 33;
const OUTERMOST: u64 = 1 << 34;
const UNSUPPORTED_BIT: u64 = 1 << 35;
/// Set in every rule, so that no rule is the word 0.
const VALID: u64 = 1 << 36;

impl Rule {
    /// Not something the cached unwinder handles: use libgcc's.
    pub const UNSUPPORTED: Rule = Rule(VALID | UNSUPPORTED_BIT);

    /// Packs a row; `None` if an offset does not fit (then the frame is unsupported).
    fn pack(cfa_is_rbp: bool, cfa: i64, ra: Option<i64>, rbp: Option<i64>) -> Option<Rule> {
        let mut w = VALID | i32::try_from(cfa).ok()? as u32 as u64;
        if cfa_is_rbp {
            w |= CFA_IS_RBP;
        }
        match ra {
            None => w |= OUTERMOST,
            Some(off) => w |= (i8::try_from(off).ok()? as u8 as u64) << 40,
        }
        if let Some(off) = rbp {
            w |= RBP_SAVED | (i16::try_from(off).ok()? as u16 as u64) << 48;
        }
        Some(Rule(w))
    }

    /// The packed word (for the cache), and back. `from_word(0)` is `None`: an empty slot.
    pub fn word(self) -> u64 {
        self.0
    }

    pub fn from_word(w: u64) -> Option<Rule> {
        (w & VALID != 0).then_some(Rule(w))
    }

    pub fn unsupported(self) -> bool {
        self.0 & UNSUPPORTED_BIT != 0
    }

    /// The frame has no caller to unwind to (its return address is undefined).
    pub fn outermost(self) -> bool {
        self.0 & OUTERMOST != 0
    }

    /// Whether the CFA is computed from `rbp` (else from `rsp`).
    pub fn uses_rbp(self) -> bool {
        self.0 & CFA_IS_RBP != 0
    }

    /// The CFA from this frame's `rsp` and `rbp`.
    pub fn cfa(self, rsp: usize, rbp: usize) -> usize {
        let base = if self.0 & CFA_IS_RBP != 0 { rbp } else { rsp };
        base.wrapping_add(self.0 as u32 as i32 as isize as usize)
    }

    /// Where the return address is, given the CFA.
    pub fn ra_slot(self, cfa: usize) -> usize {
        cfa.wrapping_add((self.0 >> 40) as u8 as i8 as isize as usize)
    }

    /// Where the caller's `rbp` is, given the CFA; `None` if `rbp` is unchanged.
    pub fn rbp_slot(self, cfa: usize) -> Option<usize> {
        (self.0 & RBP_SAVED != 0)
            .then(|| cfa.wrapping_add((self.0 >> 48) as u16 as i16 as isize as usize))
    }
}

/// A read cursor over `[lo, hi)` of mapped memory; every read is checked against the bounds
/// and fails (`None`) rather than leave them. Owned by one [`rule_at`] call.
struct Bytes {
    lo: usize,
    hi: usize,
    at: usize,
}

impl Bytes {
    /// # Safety
    /// `[lo, hi)` must be mapped and readable for as long as this cursor, and any made from
    /// it with [`Bytes::within`], is used.
    unsafe fn new(lo: usize, hi: usize, at: usize) -> Bytes {
        Bytes { lo, hi, at }
    }

    /// A cursor at `at` over the part of `[lo, hi)` inside this cursor's bounds (so as safe
    /// to read as this one).
    fn within(&self, lo: usize, hi: usize, at: usize) -> Bytes {
        Bytes {
            lo: lo.max(self.lo),
            hi: hi.min(self.hi),
            at,
        }
    }

    fn read<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.at < self.lo || self.at > self.hi || self.hi - self.at < N {
            return None;
        }
        // SAFETY: `[at, at + N)` lies inside `[lo, hi)` (checked above), which lies inside the
        // range the caller of `Bytes::new` guaranteed mapped and readable for this cursor's
        // life (`within` only narrows it).
        let v = unsafe { ptr::read_unaligned(self.at as *const [u8; N]) };
        self.at += N;
        Some(v)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.read::<1>()?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.read()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.read()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.read()?))
    }

    fn uleb(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= u64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
    }

    fn sleb(&mut self) -> Option<i64> {
        let mut v = 0i64;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= i64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return Some(v);
            }
        }
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        let n = usize::try_from(n).ok()?;
        if self.at < self.lo || self.at > self.hi || self.hi - self.at < n {
            return None;
        }
        self.at += n;
        Some(())
    }

    /// A pointer in the `DW_EH_PE_*` encoding `enc`. `datarel` is the base for
    /// `DW_EH_PE_datarel` (the start of `.eh_frame_hdr`), if allowed here. Indirect,
    /// text-, function-relative and aligned encodings are not used by the tables read here.
    fn pointer(&mut self, enc: u8, datarel: Option<usize>) -> Option<usize> {
        let field = self.at;
        let raw = match enc & 0x0f {
            0x00 => self.u64()? as usize,
            0x01 => self.uleb()? as usize,
            0x02 => self.u16()? as usize,
            0x03 => self.u32()? as usize,
            0x04 => self.u64()? as usize,
            0x09 => self.sleb()? as usize,
            0x0a => self.u16()? as i16 as isize as usize,
            0x0b => self.u32()? as i32 as isize as usize,
            0x0c => self.u64()? as usize,
            _ => return None,
        };
        match enc & 0xf0 {
            0x00 => Some(raw),
            0x10 => Some(field.wrapping_add(raw)),
            0x30 => Some(datarel?.wrapping_add(raw)),
            _ => None,
        }
    }
}

/// `DW_EH_PE_omit`: no value.
const PE_OMIT: u8 = 0xff;
/// DWARF register numbers on x86-64.
const REG_RBP: u64 = 6;
const REG_RSP: u64 = 7;
const REG_RA: u64 = 16;

/// How a tracked register is recovered, in the CFA program's current row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Saved {
    /// Unchanged from the callee (DWARF's "same value"; the default for callee-saved `rbp`).
    Same,
    /// Undefined: for the return address, the outermost frame.
    Undefined,
    /// Saved at CFA + offset.
    At(i64),
    /// Some rule this unwinder does not evaluate.
    Other,
}

/// One row of the CFA program, restricted to what is tracked. `cfa_reg` is a DWARF register
/// number, or `u64::MAX` when the CFA is a DWARF expression.
#[derive(Clone, Copy)]
struct Row {
    cfa_reg: u64,
    cfa_off: i64,
    ra: Saved,
    rbp: Saved,
}

/// `DW_CFA_remember_state` depth kept; a deeper program is unsupported.
const STATE_STACK: usize = 8;

/// What a CIE contributes to the FDEs that use it. Owned by one [`rule_at`] call.
struct Cie {
    code_align: u64,
    data_align: i64,
    ra_reg: u64,
    /// Pointer encoding of the FDE's addresses (`R` augmentation).
    fde_enc: u8,
    /// Whether FDEs carry an augmentation length (`z`).
    has_aug: bool,
    /// The initial instructions.
    insns_lo: usize,
    insns_hi: usize,
}

/// The rule for the instruction at `at`, in the object whose program headers are
/// `phdrs` (loaded with bias `bias`). `None` if `at` is not in the object's loadable
/// segments; [`Rule::UNSUPPORTED`] if the object has no usable table or the row is not one
/// the cached unwinder evaluates.
///
/// # Safety
/// `phdrs` must be the object's program headers as `dl_iterate_phdr` reports them, read
/// while the loader keeps the object mapped (inside the `dl_iterate_phdr` callback).
pub unsafe fn rule_at(at: usize, bias: usize, phdrs: &[libc::Elf64_Phdr]) -> Option<Rule> {
    let in_object = phdrs.iter().any(|ph| {
        let lo = bias.wrapping_add(ph.p_vaddr as usize);
        ph.p_type == libc::PT_LOAD && at >= lo && at - lo < ph.p_memsz as usize
    });
    if !in_object {
        return None;
    }
    let Some(hdr) = phdrs.iter().find(|ph| ph.p_type == libc::PT_GNU_EH_FRAME) else {
        return Some(Rule::UNSUPPORTED);
    };
    let hdr = bias.wrapping_add(hdr.p_vaddr as usize);
    // The loadable segment holding the table bounds every read below.
    let Some(seg) = phdrs.iter().find(|ph| {
        let lo = bias.wrapping_add(ph.p_vaddr as usize);
        ph.p_type == libc::PT_LOAD
            && ph.p_flags & libc::PF_R != 0
            && hdr >= lo
            && hdr - lo < ph.p_memsz as usize
    }) else {
        return Some(Rule::UNSUPPORTED);
    };
    let seg_lo = bias.wrapping_add(seg.p_vaddr as usize);
    // SAFETY: a loadable segment of the object, readable (`PF_R`) and mapped for its
    // `p_memsz` bytes, which the loader keeps mapped during this call (the contract).
    let seg = unsafe { Bytes::new(seg_lo, seg_lo + seg.p_memsz as usize, seg_lo) };
    Some(from_table(at, hdr, &seg).unwrap_or(Rule::UNSUPPORTED))
}

/// [`rule_at`] once the table is found at `hdr`, inside the segment `seg`: `None` for
/// anything unsupported.
fn from_table(at: usize, hdr: usize, seg: &Bytes) -> Option<Rule> {
    let mut b = seg.within(seg.lo, seg.hi, hdr);
    let [version, frame_enc, count_enc, table_enc] = b.read::<4>()?;
    // The table must be datarel sdata4 pairs, as every linker writes it.
    if version != 1 || table_enc != 0x3b || count_enc == PE_OMIT || frame_enc == PE_OMIT {
        return None;
    }
    b.pointer(frame_enc, Some(hdr))?;
    let count = b.pointer(count_enc, Some(hdr))?;
    let table = b.at;
    if count == 0 || count > (seg.hi - table) / 8 {
        return None;
    }
    // The last entry whose start is at or below `at`.
    let start_of = |i: usize| -> Option<usize> {
        let mut e = seg.within(seg.lo, seg.hi, table + i * 8);
        Some(hdr.wrapping_add(e.u32()? as i32 as isize as usize))
    };
    let (mut lo, mut hi) = (0usize, count);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if start_of(mid)? <= at {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if start_of(lo)? > at {
        return None;
    }
    let mut e = seg.within(seg.lo, seg.hi, table + lo * 8 + 4);
    let fde = hdr.wrapping_add(e.u32()? as i32 as isize as usize);
    from_fde(at, fde, seg)
}

/// Reads the FDE at `fde` and its CIE, and runs their programs up to `at`.
fn from_fde(at: usize, fde: usize, seg: &Bytes) -> Option<Rule> {
    let mut b = seg.within(seg.lo, seg.hi, fde);
    let len = b.u32()?;
    if len == 0 || len == u32::MAX {
        return None;
    }
    let end = b.at.checked_add(len as usize)?;
    if end > seg.hi {
        return None;
    }
    let cie_field = b.at;
    let cie_off = b.u32()?;
    if cie_off == 0 {
        return None; // a CIE, not an FDE
    }
    let cie = parse_cie(cie_field.checked_sub(cie_off as usize)?, seg)?;
    let pc_begin = b.pointer(cie.fde_enc, None)?;
    let pc_range = b.pointer(cie.fde_enc & 0x0f, None)?;
    if at < pc_begin || at - pc_begin >= pc_range {
        return None;
    }
    if cie.has_aug {
        let n = b.uleb()?;
        b.skip(n)?;
    }
    let mut row = Row {
        cfa_reg: u64::MAX,
        cfa_off: 0,
        ra: Saved::Same,
        rbp: Saved::Same,
    };
    let initial = {
        let mut insns = seg.within(cie.insns_lo, cie.insns_hi, cie.insns_lo);
        run(&mut insns, &cie, &mut row, None, usize::MAX, pc_begin)?;
        row
    };
    let mut insns = seg.within(seg.lo, end, b.at);
    run(&mut insns, &cie, &mut row, Some(&initial), at, pc_begin)?;
    let cfa_is_rbp = match row.cfa_reg {
        REG_RSP => false,
        REG_RBP => true,
        _ => return None,
    };
    let ra = match row.ra {
        Saved::At(off) => Some(off),
        Saved::Undefined => None,
        Saved::Same | Saved::Other => return None,
    };
    let rbp = match row.rbp {
        Saved::Same => None,
        Saved::At(off) => Some(off),
        Saved::Undefined | Saved::Other => return None,
    };
    Rule::pack(cfa_is_rbp, row.cfa_off, ra, rbp)
}

/// Parses the CIE at `at`.
fn parse_cie(at: usize, seg: &Bytes) -> Option<Cie> {
    let mut b = seg.within(seg.lo, seg.hi, at);
    let len = b.u32()?;
    if len == 0 || len == u32::MAX {
        return None;
    }
    let end = b.at.checked_add(len as usize)?;
    if end > seg.hi || b.u32()? != 0 {
        return None;
    }
    let version = b.u8()?;
    if version != 1 && version != 3 {
        return None;
    }
    // The augmentation string: up to a few letters, NUL-terminated.
    let mut aug = [0u8; 8];
    let mut n = 0;
    loop {
        let c = b.u8()?;
        if c == 0 {
            break;
        }
        if n == aug.len() {
            return None;
        }
        aug[n] = c;
        n += 1;
    }
    let aug = &aug[..n];
    let code_align = b.uleb()?;
    let data_align = b.sleb()?;
    let ra_reg = if version == 1 {
        u64::from(b.u8()?)
    } else {
        b.uleb()?
    };
    if ra_reg != REG_RA {
        return None;
    }
    let mut cie = Cie {
        code_align,
        data_align,
        ra_reg,
        fde_enc: 0,
        has_aug: false,
        insns_lo: 0,
        insns_hi: end,
    };
    if let Some((&first, rest)) = aug.split_first() {
        if first != b'z' {
            return None;
        }
        cie.has_aug = true;
        let len = b.uleb()?;
        let data_end = b.at.checked_add(usize::try_from(len).ok()?)?;
        for &c in rest {
            match c {
                b'R' => cie.fde_enc = b.u8()?,
                b'L' => {
                    b.u8()?;
                }
                b'P' => {
                    let enc = b.u8()?;
                    b.pointer(enc & 0x7f, None)?;
                }
                // 'S' (a signal frame) and anything unknown.
                _ => return None,
            }
        }
        if b.at > data_end {
            return None;
        }
        b.at = data_end;
    }
    cie.insns_lo = b.at;
    if cie.insns_lo > end {
        return None;
    }
    Some(cie)
}

/// Runs a CFA program from `insns` on `row`, stopping before the first advance past
/// `target`. `initial` is the CIE's row (for `DW_CFA_restore`), `None` while running the
/// CIE's own instructions. `None` if the program uses something unsupported.
fn run(
    insns: &mut Bytes,
    cie: &Cie,
    row: &mut Row,
    initial: Option<&Row>,
    target: usize,
    pc_begin: usize,
) -> Option<()> {
    let mut loc = pc_begin;
    let mut saved = [*row; STATE_STACK];
    let mut depth = 0;
    let factored = |v: u64| (v as i64).wrapping_mul(cie.data_align);
    while insns.at < insns.hi {
        let op = insns.u8()?;
        let advance = match op >> 6 {
            1 => Some(u64::from(op & 0x3f)),
            2 => {
                let off = insns.uleb()?;
                set(row, cie, u64::from(op & 0x3f), Saved::At(factored(off)));
                None
            }
            3 => {
                restore(row, cie, initial?, u64::from(op & 0x3f));
                None
            }
            _ => match op {
                0x00 => None,
                0x02 => Some(u64::from(insns.u8()?)),
                0x03 => Some(u64::from(insns.u16()?)),
                0x04 => Some(u64::from(insns.u32()?)),
                0x05 => {
                    let reg = insns.uleb()?;
                    let off = insns.uleb()?;
                    set(row, cie, reg, Saved::At(factored(off)));
                    None
                }
                0x06 => {
                    let reg = insns.uleb()?;
                    restore(row, cie, initial?, reg);
                    None
                }
                0x07 => {
                    let reg = insns.uleb()?;
                    set(row, cie, reg, Saved::Undefined);
                    None
                }
                0x08 => {
                    let reg = insns.uleb()?;
                    set(row, cie, reg, Saved::Same);
                    None
                }
                0x09 | 0x14 | 0x15 => {
                    // DW_CFA_register, val_offset(_sf): not evaluated here.
                    let reg = insns.uleb()?;
                    if op == 0x15 {
                        insns.sleb()?;
                    } else {
                        insns.uleb()?;
                    }
                    set(row, cie, reg, Saved::Other);
                    None
                }
                0x0a => {
                    if depth == STATE_STACK {
                        return None;
                    }
                    saved[depth] = *row;
                    depth += 1;
                    None
                }
                0x0b => {
                    // The CFA is not part of the remembered state's registers in DWARF 3,
                    // but GCC and LLVM both remember and restore it together; libgcc does too.
                    depth = depth.checked_sub(1)?;
                    *row = saved[depth];
                    None
                }
                0x0c => {
                    row.cfa_reg = insns.uleb()?;
                    row.cfa_off = insns.uleb()? as i64;
                    None
                }
                0x0d => {
                    row.cfa_reg = insns.uleb()?;
                    None
                }
                0x0e => {
                    row.cfa_off = insns.uleb()? as i64;
                    None
                }
                0x0f => {
                    let n = insns.uleb()?;
                    insns.skip(n)?;
                    row.cfa_reg = u64::MAX;
                    None
                }
                0x10 | 0x16 => {
                    // DW_CFA_expression, val_expression.
                    let reg = insns.uleb()?;
                    let n = insns.uleb()?;
                    insns.skip(n)?;
                    set(row, cie, reg, Saved::Other);
                    None
                }
                0x11 => {
                    let reg = insns.uleb()?;
                    let off = insns.sleb()?;
                    set(row, cie, reg, Saved::At(off.wrapping_mul(cie.data_align)));
                    None
                }
                0x12 => {
                    row.cfa_reg = insns.uleb()?;
                    row.cfa_off = insns.sleb()?.wrapping_mul(cie.data_align);
                    None
                }
                0x13 => {
                    row.cfa_off = insns.sleb()?.wrapping_mul(cie.data_align);
                    None
                }
                0x2e => {
                    // DW_CFA_GNU_args_size: information for landing pads only.
                    insns.uleb()?;
                    None
                }
                0x2f => {
                    let reg = insns.uleb()?;
                    let off = insns.uleb()?;
                    set(row, cie, reg, Saved::At(factored(off).wrapping_neg()));
                    None
                }
                // DW_CFA_set_loc and anything unknown.
                _ => return None,
            },
        };
        if let Some(delta) = advance {
            loc = loc.wrapping_add(delta.wrapping_mul(cie.code_align) as usize);
            if loc > target {
                break;
            }
        }
    }
    Some(())
}

/// Sets the rule of register `reg`, if it is one that is tracked.
fn set(row: &mut Row, cie: &Cie, reg: u64, how: Saved) {
    if reg == cie.ra_reg {
        row.ra = how;
    } else if reg == REG_RBP {
        row.rbp = how;
    } else if reg == REG_RSP && how != Saved::Same {
        // The stack pointer is the CFA by convention; a program that says otherwise is not
        // one this unwinder follows.
        row.cfa_reg = u64::MAX;
    }
}

/// `DW_CFA_restore`: register `reg` goes back to its rule in the CIE's row.
fn restore(row: &mut Row, cie: &Cie, initial: &Row, reg: u64) {
    if reg == cie.ra_reg {
        row.ra = initial.ra;
    } else if reg == REG_RBP {
        row.rbp = initial.rbp;
    }
}
