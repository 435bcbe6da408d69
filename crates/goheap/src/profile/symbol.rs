//! In-process symbolisation: return addresses to function names, for Rust and C code, so
//! that the profile needs no binary to be read.
//!
//! The loaded objects come from `dl_iterate_phdr` (the executable, the `LD_PRELOAD`
//! library, every shared library, with their load biases and segments). An object's
//! symbols are read the first time one of its addresses is looked up: the file is mapped
//! read-only (`/proc/self/exe` for the executable), its `.symtab` (or, stripped, its
//! `.dynsym`) is scanned for functions, which are sorted by address in a [`MapVec`]. A
//! look-up is a binary search. Rust's legacy mangling (`_ZN...17h<hash>E`) is decoded
//! into `path::to::function` with the hash left out; other names are kept as they are.
//!
//! Nothing here allocates from the heap: every table and name lives in `MapVec`s and the
//! mapped files, unmapped when the [`Symbolizer`] is dropped. Inlined functions are not
//! seen (that needs DWARF): an address names the function it was compiled into.

use core::ffi::{c_int, c_void, CStr};

use super::mapvec::MapVec;

/// One loaded object.
#[derive(Clone, Copy)]
pub struct Object {
    /// Load bias: run-time address minus link-time address.
    pub bias: usize,
    /// Run-time range of its loadable segments, and the file offset of the first.
    pub lo: usize,
    pub hi: usize,
    pub offset: usize,
    /// File name, NUL-terminated (empty for the executable before it is resolved).
    pub path: [u8; 256],
    /// Run-time ranges of its writable segments (data and bss: the leak checker's roots).
    pub writable: [(usize, usize); 4],
    /// Its symbols, sorted: indexes into `Symbolizer::syms` (`syms_lo..syms_hi`), once read.
    syms_lo: usize,
    syms_hi: usize,
    loaded: bool,
}

impl Object {
    pub fn path(&self) -> &[u8] {
        let n = self
            .path
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.path.len());
        &self.path[..n]
    }
}

/// A function symbol: link-time start and size, and its name in a mapped string table.
#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    size: usize,
    name: *const u8,
}

/// A mapped file.
#[derive(Clone, Copy)]
struct Mapped {
    ptr: *mut c_void,
    len: usize,
}

/// The loaded objects and what has been read of their symbols. Owned by one profile write.
pub struct Symbolizer {
    pub objects: MapVec<Object>,
    syms: MapVec<Sym>,
    files: MapVec<Mapped>,
}

unsafe extern "C" fn add_object(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: the loader passes a valid `info`; `data` is our `MapVec<Object>`.
    unsafe {
        let objs = &mut *data.cast::<MapVec<Object>>();
        let info = &*info;
        let mut o = Object {
            bias: info.dlpi_addr as usize,
            lo: usize::MAX,
            hi: 0,
            offset: 0,
            path: [0; 256],
            writable: [(0, 0); 4],
            syms_lo: 0,
            syms_hi: 0,
            loaded: false,
        };
        for i in 0..info.dlpi_phnum as usize {
            let ph = &*info.dlpi_phdr.add(i);
            if ph.p_type != libc::PT_LOAD {
                continue;
            }
            let start = o.bias + ph.p_vaddr as usize;
            if start < o.lo {
                o.lo = start;
                o.offset = ph.p_offset as usize;
            }
            o.hi = o.hi.max(start + ph.p_memsz as usize);
            if ph.p_flags & libc::PF_W != 0 {
                if let Some(slot) = o.writable.iter_mut().find(|r| r.0 == r.1) {
                    *slot = (start, start + ph.p_memsz as usize);
                }
            }
        }
        if o.lo >= o.hi {
            return 0;
        }
        let name = if info.dlpi_name.is_null() {
            &[][..]
        } else {
            CStr::from_ptr(info.dlpi_name).to_bytes()
        };
        if name.is_empty() && objs.is_empty() {
            // The executable: its real path, so profiles name it (readlink does not
            // terminate the name; the buffer is zero).
            let n = libc::readlink(c"/proc/self/exe".as_ptr(), o.path.as_mut_ptr().cast(), 255);
            if n <= 0 {
                o.path[..14].copy_from_slice(b"/proc/self/exe");
            }
        } else {
            let n = name.len().min(255);
            o.path[..n].copy_from_slice(&name[..n]);
        }
        objs.push(o);
    }
    0
}

impl Symbolizer {
    /// The objects loaded now.
    pub fn new() -> Symbolizer {
        let mut objects = MapVec::new();
        // SAFETY: `add_object` has the callback's signature and only touches `objects`.
        unsafe {
            libc::dl_iterate_phdr(
                Some(add_object),
                (&mut objects as *mut MapVec<Object>).cast(),
            )
        };
        Symbolizer {
            objects,
            syms: MapVec::new(),
            files: MapVec::new(),
        }
    }

    /// The index of the object holding `pc`.
    pub fn object_of(&self, pc: usize) -> Option<usize> {
        self.objects.iter().position(|o| pc >= o.lo && pc < o.hi)
    }

    /// The raw (mangled) name of the function holding `pc`, and its object.
    pub fn lookup(&mut self, pc: usize) -> Option<(&'static [u8], usize)> {
        let oi = self.object_of(pc)?;
        if !self.objects[oi].loaded {
            self.load(oi);
        }
        let o = self.objects[oi];
        let syms = &self.syms[o.syms_lo..o.syms_hi];
        let at = pc.wrapping_sub(o.bias);
        let i = syms.partition_point(|s| s.start <= at);
        if i == 0 {
            return None;
        }
        let s = syms[i - 1];
        if s.size != 0 && at >= s.start + s.size {
            return None;
        }
        // SAFETY: `name` points at a NUL-terminated string inside a file mapping that stays
        // mapped until `self` is dropped; callers copy the name before that.
        let name = unsafe { CStr::from_ptr(s.name.cast()) }.to_bytes();
        // SAFETY: as above: the mapping outlives every use the profile writer makes.
        Some((unsafe { &*(name as *const [u8]) }, oi))
    }

    /// Writes the name of the function holding return address `pc` into `out` (cleared
    /// first): demangled, or, with no symbol (a local function of a stripped library), the
    /// object's file name and the offset (`libc.so.6+0x2724a`, the same from run to run,
    /// unlike the address), or the bare address. Returns the object's index, if any.
    pub fn describe(&mut self, pc: usize, out: &mut MapVec<u8>) -> Option<usize> {
        use core::fmt::Write;
        out.clear();
        let at = pc.wrapping_sub(1);
        if let Some((raw, obj)) = self.lookup(at) {
            demangle(raw, out);
            return Some(obj);
        }
        match self.object_of(at) {
            Some(obj) => {
                let o = &self.objects[obj];
                let path = o.path();
                let base = path.rsplit(|&c| c == b'/').next().unwrap_or(path);
                let _ = write!(
                    out,
                    "{}+{:#x}",
                    core::str::from_utf8(base).unwrap_or("?"),
                    pc - o.bias
                );
                Some(obj)
            }
            None => {
                let _ = write!(out, "{pc:#x}");
                None
            }
        }
    }

    fn load(&mut self, oi: usize) {
        self.objects[oi].loaded = true;
        let lo = self.syms.len();
        let path = self.objects[oi].path;
        if let Some(m) = map_file(&path) {
            self.files.push(m);
            // SAFETY: the mapping is `m.len` readable bytes.
            let file = unsafe { core::slice::from_raw_parts(m.ptr as *const u8, m.len) };
            read_functions(file, &mut self.syms);
        }
        let hi = self.syms.len();
        self.syms[lo..hi].sort_unstable_by_key(|s| s.start);
        self.objects[oi].syms_lo = lo;
        self.objects[oi].syms_hi = hi;
    }
}

impl Drop for Symbolizer {
    fn drop(&mut self) {
        for m in self.files.iter() {
            // SAFETY: our mapping, no longer used (names were copied out).
            unsafe { libc::munmap(m.ptr, m.len) };
        }
    }
}

fn map_file(path: &[u8; 256]) -> Option<Mapped> {
    if path[0] == 0 {
        return None;
    }
    // SAFETY: `path` is NUL-terminated (256 bytes, at most 255 used); the descriptor is
    // closed on every path; the mapping is read-only and private.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let mut st: libc::stat = core::mem::zeroed();
        let ok = libc::fstat(fd, &mut st) == 0 && st.st_size > 64;
        let len = st.st_size as usize;
        let p = if ok {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd,
                0,
            )
        } else {
            libc::MAP_FAILED
        };
        libc::close(fd);
        (p != libc::MAP_FAILED).then_some(Mapped { ptr: p, len })
    }
}

fn rd<const N: usize>(f: &[u8], at: usize) -> Option<[u8; N]> {
    f.get(at..at.checked_add(N)?)?.try_into().ok()
}
fn u16_at(f: &[u8], at: usize) -> Option<usize> {
    rd::<2>(f, at).map(|b| u16::from_le_bytes(b) as usize)
}
fn u32_at(f: &[u8], at: usize) -> Option<usize> {
    rd::<4>(f, at).map(|b| u32::from_le_bytes(b) as usize)
}
fn u64_at(f: &[u8], at: usize) -> Option<usize> {
    rd::<8>(f, at).map(|b| u64::from_le_bytes(b) as usize)
}

/// Appends the function symbols of the ELF64 file `f` to `out`: those of `.symtab`, or of
/// `.dynsym` if it has none. A malformed file gives none (a bounds-checked read fails).
fn read_functions(f: &[u8], out: &mut MapVec<Sym>) -> Option<()> {
    if f.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let shoff = u64_at(f, 0x28)?;
    let shentsize = u16_at(f, 0x3a)?;
    let shnum = u16_at(f, 0x3c)?;
    let section = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let mut table = None;
    for want in [2usize /* SHT_SYMTAB */, 11 /* SHT_DYNSYM */] {
        for i in 0..shnum {
            let sh = section(i)?;
            if u32_at(f, sh + 4)? == want {
                table = Some(sh);
                break;
            }
        }
        if table.is_some() {
            break;
        }
    }
    let sh = table?;
    let (off, size, link) = (
        u64_at(f, sh + 24)?,
        u64_at(f, sh + 32)?,
        u32_at(f, sh + 40)?,
    );
    let strsh = section(link)?;
    let (stroff, strsize) = (u64_at(f, strsh + 24)?, u64_at(f, strsh + 32)?);
    let strtab = f.get(stroff..stroff.checked_add(strsize)?)?;
    let mut at = off;
    while at + 24 <= off.checked_add(size)?.min(f.len()) {
        let name = u32_at(f, at)?;
        let kind = *f.get(at + 4)? & 0xf;
        let value = u64_at(f, at + 8)?;
        let len = u64_at(f, at + 16)?;
        at += 24;
        // STT_FUNC and STT_GNU_IFUNC with an address and a name inside the string table.
        if (kind == 2 || kind == 10) && value != 0 && name < strtab.len() {
            out.push(Sym {
                start: value,
                size: len,
                name: strtab[name..].as_ptr(),
            });
        }
    }
    Some(())
}

/// Appends `name` to `out`, decoded if it is a Rust legacy-mangled name
/// (`_ZN6goheap5cache5Cache6refill17h0123456789abcdefE` becomes
/// `goheap::cache::Cache::refill`), else as it is.
pub fn demangle(name: &[u8], out: &mut MapVec<u8>) {
    let start = out.len();
    let done = if let Some(v0) = name.strip_prefix(b"_R") {
        V0 {
            s: v0,
            pos: 0,
            depth: 0,
            out,
        }
        .symbol()
        .is_some()
    } else {
        demangle_legacy(name, out)
    };
    if !done {
        out.truncate(start);
        out.extend_from_slice(name);
    }
}

/// A decoder of Rust's v0 mangling (RFC 2603), the mangling of the prebuilt standard
/// library: paths, impls, generic arguments and the common types. Anything else gives up
/// (None), and the raw name is kept.
struct V0<'a, 'o> {
    /// The name after `_R`.
    s: &'a [u8],
    pos: usize,
    /// Back-reference nesting, bounded so a malicious name cannot recurse forever.
    depth: u32,
    out: &'o mut MapVec<u8>,
}

impl V0<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> bool {
        let yes = self.peek() == Some(c);
        self.pos += yes as usize;
        yes
    }

    fn put(&mut self, b: &[u8]) -> Option<()> {
        self.out.extend_from_slice(b).then_some(())
    }

    fn symbol(&mut self) -> Option<()> {
        // An optional encoding version (decimal), then the path; the instantiating crate
        // and vendor suffixes that may follow are not printed.
        while self.peek()?.is_ascii_digit() {
            self.pos += 1;
        }
        self.path()
    }

    /// `{0-9a-zA-Z} _`: `_` is 0, otherwise the digits plus one.
    fn base62(&mut self) -> Option<u64> {
        if self.eat(b'_') {
            return Some(0);
        }
        let mut v: u64 = 0;
        loop {
            let c = self.next()?;
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'z' => c - b'a' + 10,
                b'A'..=b'Z' => c - b'A' + 36,
                b'_' => return v.checked_add(1),
                _ => return None,
            };
            v = v.checked_mul(62)?.checked_add(d as u64)?;
        }
    }

    fn disambiguator(&mut self) -> Option<u64> {
        if self.eat(b's') {
            self.base62().map(|n| n + 1)
        } else {
            Some(0)
        }
    }

    /// An identifier's bytes (punycode, `u` prefix, is kept as it is).
    fn ident(&mut self) -> Option<&[u8]> {
        self.eat(b'u');
        let mut n = 0usize;
        let mut any = false;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add((c - b'0') as usize)?;
            self.pos += 1;
            any = true;
        }
        if !any {
            return None;
        }
        self.eat(b'_');
        let start = self.pos;
        self.pos = self.pos.checked_add(n)?;
        self.s.get(start..self.pos)
    }

    fn backref(&mut self, f: fn(&mut Self) -> Option<()>) -> Option<()> {
        let at = self.base62()? as usize;
        if at >= self.pos || self.depth > 64 {
            return None;
        }
        let back = self.pos;
        self.pos = at;
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        self.pos = back;
        r
    }

    fn path(&mut self) -> Option<()> {
        match self.next()? {
            b'C' => {
                self.disambiguator()?;
                let id = self.ident()?;
                let id: *const [u8] = id;
                // SAFETY: `id` borrows `self.s`, which `put` does not touch.
                self.put(unsafe { &*id })
            }
            b'N' => {
                let ns = self.next()?;
                self.path()?;
                let dis = self.disambiguator()?;
                let id: *const [u8] = self.ident()?;
                // SAFETY: as above.
                let id = unsafe { &*id };
                if ns.is_ascii_uppercase() {
                    use core::fmt::Write;
                    let what = if ns == b'C' { "closure" } else { "shim" };
                    self.put(b"::{")?;
                    self.put(what.as_bytes())?;
                    if !id.is_empty() {
                        self.put(b":")?;
                        self.put(id)?;
                    }
                    write!(self.out, "#{dis}}}").ok()
                } else {
                    self.put(b"::")?;
                    self.put(id)
                }
            }
            b'M' => {
                self.disambiguator()?;
                self.skip(Self::path)?;
                self.put(b"<")?;
                self.ty()?;
                self.put(b">")
            }
            b'X' => {
                self.disambiguator()?;
                self.skip(Self::path)?;
                self.put(b"<")?;
                self.ty()?;
                self.put(b" as ")?;
                self.path()?;
                self.put(b">")
            }
            b'Y' => {
                self.put(b"<")?;
                self.ty()?;
                self.put(b" as ")?;
                self.path()?;
                self.put(b">")
            }
            b'I' => {
                self.path()?;
                self.put(b"<")?;
                let mut first = true;
                while !self.eat(b'E') {
                    if !first {
                        self.put(b", ")?;
                    }
                    first = false;
                    self.generic_arg()?;
                }
                self.put(b">")
            }
            b'B' => self.backref(Self::path),
            _ => None,
        }
    }

    /// Parses something without printing it (an impl's own path: the type says enough).
    fn skip(&mut self, f: fn(&mut Self) -> Option<()>) -> Option<()> {
        let len = self.out.len();
        let r = f(self);
        self.out.truncate(len);
        r
    }

    fn generic_arg(&mut self) -> Option<()> {
        if self.eat(b'L') {
            self.base62()?;
            return self.put(b"'_");
        }
        if self.eat(b'K') {
            return self.konst();
        }
        self.ty()
    }

    fn konst(&mut self) -> Option<()> {
        if self.eat(b'p') {
            return self.put(b"_");
        }
        if self.eat(b'B') {
            return self.backref(Self::konst);
        }
        self.skip(Self::ty)?;
        self.eat(b'n');
        let start = self.pos;
        while self.peek()?.is_ascii_hexdigit() {
            self.pos += 1;
        }
        let digits: *const [u8] = &self.s[start..self.pos];
        self.eat(b'_').then_some(())?;
        self.put(b"0x")?;
        // SAFETY: borrows `self.s`, untouched by `put`.
        self.put(unsafe { &*digits })
    }

    fn ty(&mut self) -> Option<()> {
        let basic: &[u8] = match self.peek()? {
            b'a' => b"i8",
            b'b' => b"bool",
            b'c' => b"char",
            b'd' => b"f64",
            b'e' => b"str",
            b'f' => b"f32",
            b'h' => b"u8",
            b'i' => b"isize",
            b'j' => b"usize",
            b'l' => b"i32",
            b'm' => b"u32",
            b'n' => b"i128",
            b'o' => b"u128",
            b's' => b"i16",
            b't' => b"u16",
            b'u' => b"()",
            b'v' => b"...",
            b'x' => b"i64",
            b'y' => b"u64",
            b'z' => b"!",
            b'p' => b"_",
            _ => b"",
        };
        if !basic.is_empty() {
            self.pos += 1;
            return self.put(basic);
        }
        match self.next()? {
            b'R' | b'Q' => {
                let m = self.s[self.pos - 1] == b'Q';
                if self.eat(b'L') {
                    self.base62()?;
                }
                self.put(if m { b"&mut " } else { b"&" })?;
                self.ty()
            }
            b'P' => {
                self.put(b"*const ")?;
                self.ty()
            }
            b'O' => {
                self.put(b"*mut ")?;
                self.ty()
            }
            b'S' => {
                self.put(b"[")?;
                self.ty()?;
                self.put(b"]")
            }
            b'A' => {
                self.put(b"[")?;
                self.ty()?;
                self.put(b"; ")?;
                self.konst()?;
                self.put(b"]")
            }
            b'T' => {
                self.put(b"(")?;
                let mut n = 0;
                while !self.eat(b'E') {
                    if n > 0 {
                        self.put(b", ")?;
                    }
                    self.ty()?;
                    n += 1;
                }
                self.put(if n == 1 { b",)" } else { b")" })
            }
            b'B' => self.backref(Self::ty),
            _ => {
                self.pos -= 1;
                self.path()
            }
        }
    }
}

fn demangle_legacy(name: &[u8], out: &mut MapVec<u8>) -> bool {
    let Some(mut rest) = name.strip_prefix(b"_ZN") else {
        return false;
    };
    let mut first = true;
    loop {
        if let Some(r) = rest.strip_prefix(b"E") {
            return r.is_empty() || r.starts_with(b".");
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        let Some(len) = core::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse::<usize>().ok())
        else {
            return false;
        };
        rest = &rest[digits..];
        if len > rest.len() {
            return false;
        }
        let ident = &rest[..len];
        rest = &rest[len..];
        // The trailing hash component: `h` and 16 hex digits, last before `E`.
        if rest.first() == Some(&b'E')
            && ident.len() == 17
            && ident[0] == b'h'
            && ident[1..].iter().all(|b| b.is_ascii_hexdigit())
        {
            continue;
        }
        if !first {
            out.extend_from_slice(b"::");
        }
        first = false;
        if !unescape(ident, out) {
            return false;
        }
    }
}

fn unescape(mut s: &[u8], out: &mut MapVec<u8>) -> bool {
    if s.starts_with(b"_$") {
        s = &s[1..];
    }
    while !s.is_empty() {
        if s.starts_with(b"..") {
            out.extend_from_slice(b"::");
            s = &s[2..];
            continue;
        }
        if s[0] == b'$' {
            let Some(end) = s[1..].iter().position(|&b| b == b'$') else {
                return false;
            };
            let code = &s[1..1 + end];
            let rep: &[u8] = match code {
                b"SP" => b"@",
                b"BP" => b"*",
                b"RF" => b"&",
                b"LT" => b"<",
                b"GT" => b">",
                b"LP" => b"(",
                b"RP" => b")",
                b"C" => b",",
                _ => {
                    let Some(hex) = code.strip_prefix(b"u") else {
                        return false;
                    };
                    let Some(c) = core::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32)
                    else {
                        return false;
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    s = &s[end + 2..];
                    continue;
                }
            };
            out.extend_from_slice(rep);
            s = &s[end + 2..];
            continue;
        }
        out.push(s[0]);
        s = &s[1..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> String {
        let mut v = MapVec::new();
        demangle(s.as_bytes(), &mut v);
        String::from_utf8(v.to_vec()).unwrap()
    }

    #[test]
    fn rust_legacy_names() {
        assert_eq!(d("_ZN1m7keep_me17hcc59921b47aab439E"), "m::keep_me");
        assert_eq!(
            d("_ZN76_$LT$goheap..global..GoAlloc$u20$as$u20$core..alloc..global..GlobalAlloc$GT$5alloc17h0123456789abcdefE"),
            "<goheap::global::GoAlloc as core::alloc::global::GlobalAlloc>::alloc"
        );
        assert_eq!(d("malloc"), "malloc");
        // v0, as the prebuilt standard library is mangled.
        assert_eq!(
            d("_RNvNtCsjrHSEGnQ3l9_3std2rt19lang_start_internal"),
            "std::rt::lang_start_internal"
        );
        assert_eq!(
            d("_RNvCsfLfy6EI15iL_7___rustc14___rust_realloc"),
            "__rustc::__rust_realloc"
        );
        assert_eq!(
            d("_RNvMs4_NtCslNYArtu3iFV_5alloc7raw_vecNtB5_11RawVecInner11finish_growCsduwmD7cSIQq_5gimli"),
            "<alloc::raw_vec::RawVecInner>::finish_grow"
        );
        assert_eq!(d("_ZN3foo"), "_ZN3foo");
    }
}
