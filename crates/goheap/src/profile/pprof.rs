//! The heap profile as pprof's `profile.proto`, gzipped: the encoder.
//!
//! A profile is written in four steps, none of which calls the heap allocator:
//!
//! 1. the buckets are copied out under the profiler's lock (nothing else is done under it);
//! 2. every frame is symbolised ([`Symbolizer`]) and goheap's own frames at the top of each
//!    stack are dropped (by name: `goheap::...`, the `__rust_alloc` shims, and anything in
//!    the `LD_PRELOAD` library);
//! 3. the `Profile` message is encoded (a hand-written protobuf writer: varints, and
//!    length-delimited fields encoded into a scratch buffer first) with Go's heap-profile
//!    layout: sample types `alloc_objects/count`, `alloc_space/bytes`,
//!    `inuse_objects/count`, `inuse_space/bytes`; period type `space/bytes` with the rate
//!    as period; a numeric label `bytes` (the object size: buckets are per size) and, for GC samples, a
//!    string label `type`; one `Mapping` per object with `has_functions` set, one
//!    `Location` per distinct address, one `Function` per distinct name;
//! 4. it is compressed ([`super::gzip`]).
//!
//! Values are scaled as Go's `scaleHeapSample` does: a bucket of `n` sampled objects
//! totalling `b` bytes stands for `n / (1 - exp(-avg / rate))` objects, where `avg = b/n`.

use super::mapvec::MapVec;
use super::symbol::Symbolizer;
use super::table::Bucket;
use super::{gzip, rate, PROFILER};

/// Interned strings: the string table of the profile.
struct Strings {
    bytes: MapVec<u8>,
    /// (offset, length) of each string, in table order.
    spans: MapVec<(u32, u32)>,
    /// String index + 1 by hash (0: empty).
    index: MapVec<u32>,
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in b {
        h = (h ^ c as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Strings {
    fn new() -> Result<Strings, &'static str> {
        let mut s = Strings {
            bytes: MapVec::new(),
            spans: MapVec::new(),
            // SAFETY: zero is a valid u32.
            index: unsafe { MapVec::zeroed(1 << 16) }.ok_or(OOM)?,
        };
        s.intern(b"")?;
        Ok(s)
    }

    fn get(&self, i: usize) -> &[u8] {
        let (off, len) = self.spans[i];
        &self.bytes[off as usize..off as usize + len as usize]
    }

    fn intern(&mut self, s: &[u8]) -> Result<u64, &'static str> {
        if (self.spans.len() + 1) * 2 > self.index.len() {
            // SAFETY: zero is a valid u32.
            let mut index = unsafe { MapVec::<u32>::zeroed(self.index.len() * 2) }.ok_or(OOM)?;
            let mask = index.len() - 1;
            for i in 0..self.spans.len() {
                let mut j = fnv(self.get(i)) as usize & mask;
                while index[j] != 0 {
                    j = (j + 1) & mask;
                }
                index[j] = i as u32 + 1;
            }
            self.index = index;
        }
        let mask = self.index.len() - 1;
        let mut j = fnv(s) as usize & mask;
        while self.index[j] != 0 {
            let i = self.index[j] as usize - 1;
            if self.get(i) == s {
                return Ok(i as u64);
            }
            j = (j + 1) & mask;
        }
        let i = self.spans.len();
        let off = self.bytes.len() as u32;
        if !self.bytes.extend_from_slice(s) || !self.spans.push((off, s.len() as u32)) {
            return Err(OOM);
        }
        self.index[j] = i as u32 + 1;
        Ok(i as u64)
    }
}

const OOM: &str = "goheap: out of memory writing the heap profile";

/// A protobuf writer over a `MapVec<u8>`.
struct Pb<'a>(&'a mut MapVec<u8>);

impl Pb<'_> {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u32) {
        self.varint((field as u64) << 3 | wire as u64);
    }
    /// A varint field (omitted when zero, as proto3 does).
    fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, 0);
            self.varint(v);
        }
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    /// A packed repeated varint field.
    fn packed(&mut self, field: u32, vs: &[u64], scratch: &mut MapVec<u8>) {
        scratch.clear();
        let mut s = Pb(scratch);
        for &v in vs {
            s.varint(v);
        }
        self.bytes(field, scratch);
    }
}

/// Appends a nested message built by `f` as field `field`.
fn message(out: &mut MapVec<u8>, field: u32, f: impl FnOnce(&mut Pb)) {
    let mut body = MapVec::new();
    f(&mut Pb(&mut body));
    Pb(out).bytes(field, &body);
}

/// Whether a frame is goheap's own (dropped from the top of each stack).
pub(super) fn own_frame(name: &[u8], object_path: &[u8]) -> bool {
    const PREFIXES: [&[u8]; 10] = [
        b"goheap::",
        b"<goheap::",
        b"goheap_malloc::",
        b"<goheap_malloc::",
        b"__rust_alloc",
        b"__rust_realloc",
        b"__rustc::__rust_",
        b"__rustc::__rdl_",
        b"__rg_",
        b"__rdl_",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || object_path.ends_with(b"libgoheap_malloc.so")
}

/// Go's `scaleHeapSample`.
fn scale(count: u64, bytes: u64, rate: usize) -> (i64, i64) {
    if count == 0 || bytes == 0 {
        return (0, 0);
    }
    if rate <= 1 {
        return (count as i64, bytes as i64);
    }
    let avg = bytes as f64 / count as f64;
    let s = 1.0 / (1.0 - (-avg / rate as f64).exp());
    ((count as f64 * s) as i64, (bytes as f64 * s) as i64)
}

/// A location: an address and what it resolved to.
#[derive(Clone, Copy)]
struct Loc {
    pc: usize,
    /// Function id (index + 1 into `Builder::funcs`).
    function: u64,
    /// Mapping id (object index + 1), 0 if the address is in no known object.
    mapping: u64,
}

/// Objects a profile can name mappings for.
const MAX_OBJECTS: usize = 1024;

/// The tables of one profile being written.
struct Builder {
    sym: Symbolizer,
    strings: Strings,
    locs: MapVec<Loc>,
    /// Location index + 1 by address hash (0: empty).
    loc_index: MapVec<u32>,
    /// Name string of each function (function id = index + 1).
    funcs: MapVec<u64>,
    /// Function index + 1 by name string (a direct table, grown as strings are added).
    func_of_string: MapVec<u32>,
    /// Scratch for demangled names.
    name: MapVec<u8>,
    used_objects: [bool; MAX_OBJECTS],
}

impl Builder {
    /// The location id of return address `pc`, made if new.
    fn location(&mut self, pc: usize) -> Result<u64, &'static str> {
        if (self.locs.len() + 1) * 2 > self.loc_index.len() {
            // SAFETY: zero is a valid u32.
            let mut index =
                unsafe { MapVec::<u32>::zeroed(self.loc_index.len() * 2) }.ok_or(OOM)?;
            let mask = index.len() - 1;
            for (i, l) in self.locs.iter().enumerate() {
                let mut j = fnv(&l.pc.to_le_bytes()) as usize & mask;
                while index[j] != 0 {
                    j = (j + 1) & mask;
                }
                index[j] = i as u32 + 1;
            }
            self.loc_index = index;
        }
        let mask = self.loc_index.len() - 1;
        let mut j = fnv(&pc.to_le_bytes()) as usize & mask;
        while self.loc_index[j] != 0 {
            let i = self.loc_index[j] as usize - 1;
            if self.locs[i].pc == pc {
                return Ok(i as u64 + 1);
            }
            j = (j + 1) & mask;
        }
        let mut mapping = self
            .sym
            .describe(pc, &mut self.name)
            .map_or(0, |o| o as u64 + 1);
        if mapping != 0 && (mapping as usize) <= MAX_OBJECTS {
            self.used_objects[mapping as usize - 1] = true;
        } else {
            mapping = 0;
        }
        let name = core::mem::take(&mut self.name);
        let s = self.strings.intern(&name);
        self.name = name;
        let s = s?;
        while self.func_of_string.len() <= s as usize {
            if !self.func_of_string.push(0) {
                return Err(OOM);
            }
        }
        let function = match self.func_of_string[s as usize] {
            0 => {
                if !self.funcs.push(s) {
                    return Err(OOM);
                }
                self.func_of_string[s as usize] = self.funcs.len() as u32;
                self.funcs.len() as u64
            }
            f => f as u64,
        };
        if !self.locs.push(Loc {
            pc,
            function,
            mapping,
        }) {
            return Err(OOM);
        }
        self.loc_index[j] = self.locs.len() as u32;
        Ok(self.locs.len() as u64)
    }

    /// Whether location `id` is one of goheap's own frames.
    fn own(&self, id: u64) -> bool {
        let l = self.locs[id as usize - 1];
        let f = self
            .strings
            .get(self.funcs[l.function as usize - 1] as usize);
        let path = if l.mapping != 0 {
            self.sym.objects[l.mapping as usize - 1].path()
        } else {
            b""
        };
        own_frame(f, path)
    }
}

/// Builds the gzipped profile.
pub fn build() -> Result<MapVec<u8>, &'static str> {
    let mut buckets: MapVec<Bucket> = MapVec::new();
    let dropped;
    {
        let t = PROFILER.lock();
        if !buckets.extend_from_slice(&t.buckets) {
            return Err(OOM);
        }
        dropped = t.dropped;
    }
    let rate = rate().max(1);
    let mut b = Builder {
        sym: Symbolizer::new(),
        strings: Strings::new()?,
        locs: MapVec::new(),
        // SAFETY: zero is a valid u32.
        loc_index: unsafe { MapVec::zeroed(1 << 12) }.ok_or(OOM)?,
        funcs: MapVec::new(),
        func_of_string: MapVec::new(),
        name: MapVec::new(),
        used_objects: [false; MAX_OBJECTS],
    };
    let mut scratch = MapVec::new();
    let mut pb = MapVec::new();

    let t_count = b.strings.intern(b"count")?;
    let t_bytes = b.strings.intern(b"bytes")?;
    let t_type = b.strings.intern(b"type")?;
    let t_space = b.strings.intern(b"space")?;
    let mut inuse_space = 0;
    for (ty, unit) in [
        (&b"alloc_objects"[..], t_count),
        (b"alloc_space", t_bytes),
        (b"inuse_objects", t_count),
        (b"inuse_space", t_bytes),
    ] {
        let ty = b.strings.intern(ty)?;
        inuse_space = ty;
        message(&mut pb, 1, |m| {
            m.uint(1, ty);
            m.uint(2, unit);
        });
    }

    let mut ids: MapVec<u64> = MapVec::new();
    for bucket in buckets.iter().filter(|k| k.allocs > 0) {
        ids.clear();
        for &pc in bucket.stack.frames() {
            let id = b.location(pc)?;
            // goheap's frames sit at the top of the stack: drop them until the first
            // frame that is not.
            if ids.is_empty() && b.own(id) {
                continue;
            }
            if !ids.push(id) {
                return Err(OOM);
            }
        }
        let (ao, ab) = scale(bucket.allocs, bucket.alloc_bytes, rate);
        let (io, ib) = scale(
            bucket.allocs - bucket.frees.min(bucket.allocs),
            bucket.alloc_bytes - bucket.free_bytes.min(bucket.alloc_bytes),
            rate,
        );
        let label = match bucket.label {
            Some(f) => Some(b.strings.intern(f().as_bytes())?),
            None => None,
        };
        let values = [ao as u64, ab as u64, io as u64, ib as u64];
        let mut body = MapVec::new();
        {
            let mut m = Pb(&mut body);
            m.packed(1, &ids, &mut scratch);
            m.packed(2, &values, &mut scratch);
        }
        message(&mut body, 3, |l| {
            l.uint(1, t_bytes);
            l.uint(3, bucket.size as u64);
        });
        if let Some(s) = label {
            message(&mut body, 3, |l| {
                l.uint(1, t_type);
                l.uint(2, s);
            });
        }
        Pb(&mut pb).bytes(2, &body);
    }

    for i in 0..b.sym.objects.len().min(MAX_OBJECTS) {
        if !b.used_objects[i] {
            continue;
        }
        let o = b.sym.objects[i];
        let file = b.strings.intern(o.path())?;
        message(&mut pb, 3, |m| {
            m.uint(1, i as u64 + 1);
            m.uint(2, o.lo as u64);
            m.uint(3, o.hi as u64);
            m.uint(4, o.offset as u64);
            m.uint(5, file);
            m.uint(7, 1); // has_functions: names are in the profile
        });
    }
    for (i, l) in b.locs.iter().enumerate() {
        let mut line = MapVec::new();
        Pb(&mut line).uint(1, l.function);
        message(&mut pb, 4, |m| {
            m.uint(1, i as u64 + 1);
            m.uint(2, l.mapping);
            m.uint(3, l.pc as u64);
            m.bytes(4, &line);
        });
    }
    for (i, &name) in b.funcs.iter().enumerate() {
        message(&mut pb, 5, |m| {
            m.uint(1, i as u64 + 1);
            m.uint(2, name);
            m.uint(3, name);
        });
    }
    if dropped > 0 {
        // Said in a comment (pprof prints them with -comments).
        use core::fmt::Write;
        let mut c = MapVec::new();
        let _ = write!(
            c,
            "goheap: {dropped} samples not recorded (profiler out of memory)"
        );
        let s = b.strings.intern(&c)?;
        Pb(&mut pb).uint(13, s);
    }
    for i in 0..b.strings.spans.len() {
        let (off, len) = b.strings.spans[i];
        let s = &b.strings.bytes[off as usize..(off + len) as usize];
        Pb(&mut pb).bytes(6, s);
    }
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    {
        let mut m = Pb(&mut pb);
        m.uint(9, now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64);
    }
    message(&mut pb, 11, |m| {
        m.uint(1, t_space);
        m.uint(2, t_bytes);
    });
    Pb(&mut pb).uint(12, rate as u64);
    Pb(&mut pb).uint(14, inuse_space);
    gzip::compress(&pb).ok_or(OOM)
}
