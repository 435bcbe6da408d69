//! `GOHEAP_LEAKS=1`: a leak report at exit, in the form of LeakSanitizer's.
//!
//! With it, the profiler records every allocation (rate 1), so at exit the live-sample table
//! holds every block not freed. A block is a *leak* if the program can no longer reach it,
//! found as LeakSanitizer finds it: every word of the roots, the writable segments (data,
//! bss) of every loaded object and the exiting thread's stack, is taken as a possible
//! pointer; a word that points into a block (anywhere inside it) makes the block reachable,
//! and the block's own words are scanned in turn. What is left unreached is leaked:
//! *directly* if no other leaked block points to it, *indirectly* otherwise (it would be
//! freed with the block that holds it). Blocks still referenced, as a global table a program
//! keeps until exit is, are not leaks.
//!
//! Leaks are grouped by allocation stack and printed biggest first, with bytes and counts.
//! Blocks whose allocation came from libc, the dynamic loader or Rust's `std` (stdio
//! buffers, thread-local storage of threads that are gone, the runtime's own records) are
//! memory those libraries keep for the life of the process: they are listed apart, after
//! the leaks, so that a real leak is the first thing shown. GC objects are never leaks
//! here (a GC heap's growth is what `goheap leaks OLD NEW` shows).
//!
//! Limits, as LeakSanitizer's and more: the scan is conservative, so a stale word that
//! happens to hold a block's address (a dead local left on the exiting thread's stack, say)
//! keeps that block off the report; without stopping the world, other threads' stacks and
//! registers are not roots (a block only they refer to is reported), and a block freed by
//! another thread during the scan may be read after its free (goheap's memory stays
//! mapped, so this reads stale data, never faults, except for objects over 64 MiB, which
//! are not scanned).
//!
//! Everything here runs at exit, allocates nothing (tables in [`MapVec`]s) and writes with
//! [`crate::report::Stderr`].

use core::fmt::Write;

use super::mapvec::MapVec;
use super::pprof::own_frame;
use super::symbol::Symbolizer;
use super::table::Bucket;
use super::PROFILER;

/// Blocks larger than this are not scanned (huge objects are unmapped when freed).
const MAX_SCAN: usize = 64 << 20;

#[derive(Clone, Copy)]
struct Block {
    addr: usize,
    size: usize,
    bucket: u32,
    /// 0: not reached, 1: reachable, 2: reached only from leaked blocks (indirect).
    state: u8,
}

/// One stack's leaked blocks.
#[derive(Clone, Copy)]
struct Group {
    bucket: u32,
    bytes: usize,
    count: usize,
    direct: bool,
    lifetime: bool,
}

/// The index of the block containing `p`, if any (`blocks` sorted by address).
fn find(blocks: &[Block], p: usize) -> Option<usize> {
    let i = blocks.partition_point(|b| b.addr <= p);
    (i > 0 && p < blocks[i - 1].addr + blocks[i - 1].size.max(1)).then(|| i - 1)
}

/// Marks every block reachable from the words of `[lo, hi)` with `state`, scanning the
/// blocks it reaches (and theirs) with `work` as the stack of blocks to scan.
fn mark_from(blocks: &mut [Block], lo: usize, hi: usize, state: u8, work: &mut MapVec<u32>) {
    scan_words(blocks, lo, hi, state, work);
    while let Some(&b) = work.last() {
        work.truncate(work.len() - 1);
        let blk = blocks[b as usize];
        if blk.size <= MAX_SCAN {
            scan_words(blocks, blk.addr, blk.addr + blk.size, state, work);
        }
    }
}

fn scan_words(blocks: &mut [Block], lo: usize, hi: usize, state: u8, work: &mut MapVec<u32>) {
    let mut p = lo.next_multiple_of(8);
    while p + 8 <= hi {
        // SAFETY: `[lo, hi)` is a root range (a mapped segment or the live stack) or a live
        // block of goheap's, all readable; volatile, since the compiler must not assume
        // anything about memory the program owns.
        let w = unsafe { core::ptr::read_volatile(p as *const usize) };
        p += 8;
        if let Some(i) = find(blocks, w) {
            if blocks[i].state == 0 {
                blocks[i].state = state;
                work.push(i as u32);
            }
        }
    }
}

/// The range of the calling thread's stack from its current top, from `/proc/self/maps`.
fn stack_range() -> Option<(usize, usize)> {
    let here = 0u8;
    let sp = &here as *const u8 as usize;
    let mut maps: MapVec<u8> = MapVec::new();
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
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
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        maps.extend_from_slice(&buf[..n as usize]);
    }
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
    for line in maps.split(|&c| c == b'\n') {
        let range = line.split(|&c| c == b' ').next()?;
        let mut ends = range.split(|&c| c == b'-');
        let (Some(a), Some(b)) = (ends.next(), ends.next()) else {
            continue;
        };
        let hex = |s: &[u8]| {
            core::str::from_utf8(s)
                .ok()
                .and_then(|s| usize::from_str_radix(s, 16).ok())
        };
        if let (Some(a), Some(b)) = (hex(a), hex(b)) {
            if a <= sp && sp < b {
                return Some((sp & !7, b));
            }
        }
    }
    None
}

/// Whether a stack's allocation came from libc, the loader or `std` (memory they keep for
/// the life of the process): its first frame that is neither goheap's nor a Rust
/// allocation wrapper is in one of those.
fn lifetime_block(sym: &mut Symbolizer, b: &Bucket, name: &mut MapVec<u8>) -> bool {
    for &pc in b.stack.frames() {
        let obj = sym.describe(pc, name);
        let path = obj.map_or(&b""[..], |o| sym.objects[o].path());
        if own_frame(name, path) {
            continue;
        }
        let n: &[u8] = name;
        if n.starts_with(b"alloc::")
            || n.starts_with(b"<alloc::")
            || n.starts_with(b"core::")
            || n.starts_with(b"<core::")
        {
            continue;
        }
        let base = path.rsplit(|&c| c == b'/').next().unwrap_or(path);
        return base.starts_with(b"libc.so")
            || base.starts_with(b"ld-linux")
            || base.starts_with(b"libstdc++")
            || base.starts_with(b"libgcc_s")
            || n.starts_with(b"std::")
            || n.starts_with(b"<std::");
    }
    false
}

/// Prints the leak report on stderr (module essay). Returns the bytes leaked (not counting
/// the process-lifetime blocks).
pub fn report() -> usize {
    let mut blocks: MapVec<Block> = MapVec::new();
    let mut buckets: MapVec<Bucket> = MapVec::new();
    {
        let t = PROFILER.lock();
        buckets.extend_from_slice(&t.buckets);
        t.for_each_live(|addr, size, bucket, b| {
            // GC objects are never leaks here.
            if b.label.is_none() {
                blocks.push(Block {
                    addr,
                    size,
                    bucket,
                    state: 0,
                });
            }
        });
    }
    blocks.sort_unstable_by_key(|b| b.addr);
    let mut sym = Symbolizer::new();
    let mut work = MapVec::new();
    for i in 0..sym.objects.len() {
        for (lo, hi) in sym.objects[i].writable {
            if lo < hi {
                mark_from(&mut blocks, lo, hi, 1, &mut work);
            }
        }
    }
    if let Some((lo, hi)) = stack_range() {
        mark_from(&mut blocks, lo, hi, 1, &mut work);
    }
    // What leaked blocks point to is leaked indirectly.
    for i in 0..blocks.len() {
        let b = blocks[i];
        if b.state == 0 && b.size <= MAX_SCAN {
            scan_words(&mut blocks, b.addr, b.addr + b.size, 2, &mut work);
            work.clear();
        }
    }
    // Group by the stack as shown: goheap's own frames at the top differ between the
    // allocation paths that sampled the blocks, the program's do not.
    let mut name = MapVec::new();
    let mut shown: MapVec<u8> = MapVec::new();
    for b in buckets.iter() {
        let skip = b
            .stack
            .frames()
            .iter()
            .take_while(|&&pc| {
                sym.describe(pc, &mut name)
                    .is_some_and(|obj| own_frame(&name, sym.objects[obj].path()))
            })
            .count();
        shown.push(skip as u8);
    }
    let user = |bucket: u32| {
        let b = &buckets[bucket as usize];
        &b.stack.frames()[shown[bucket as usize] as usize..]
    };
    let mut groups: MapVec<Group> = MapVec::new();
    for b in blocks.iter().filter(|b| b.state != 1) {
        let direct = b.state == 0;
        match groups
            .iter_mut()
            .find(|g| g.direct == direct && user(g.bucket) == user(b.bucket))
        {
            Some(g) => {
                g.bytes += b.size;
                g.count += 1;
            }
            None => {
                let lifetime = lifetime_block(&mut sym, &buckets[b.bucket as usize], &mut name);
                groups.push(Group {
                    bucket: b.bucket,
                    bytes: b.size,
                    count: 1,
                    direct,
                    lifetime,
                });
            }
        }
    }
    // Leaks first, direct before indirect, biggest first.
    groups.sort_unstable_by_key(|g| (g.lifetime, !g.direct, usize::MAX - g.bytes));
    let mut out = crate::report::Stderr::default();
    let leaked = print(&mut out, &groups, &buckets, &mut sym, &mut name).unwrap_or(0);
    out.flush();
    leaked
}

fn print(
    w: &mut crate::report::Stderr,
    groups: &[Group],
    buckets: &[Bucket],
    sym: &mut Symbolizer,
    name: &mut MapVec<u8>,
) -> Result<usize, core::fmt::Error> {
    // SAFETY: `getpid` has no preconditions.
    let pid = unsafe { libc::getpid() };
    let (mut leaked, mut nleaks, mut kept, mut nkept) = (0, 0, 0, 0);
    for g in groups {
        if g.lifetime {
            kept += g.bytes;
            nkept += g.count;
        } else {
            leaked += g.bytes;
            nleaks += g.count;
        }
    }
    writeln!(
        w,
        "\n================================================================="
    )?;
    if leaked > 0 {
        writeln!(w, "=={pid}==ERROR: goheap: detected memory leaks")?;
    } else {
        writeln!(w, "=={pid}==goheap: no leaks detected")?;
    }
    let mut lifetime_header = false;
    for g in groups {
        if g.lifetime && !lifetime_header {
            lifetime_header = true;
            writeln!(
                w,
                "\n-- Not leaks: {kept} byte(s) in {nkept} block(s) that libc, the loader and std keep for the life of the process --"
            )?;
        }
        writeln!(
            w,
            "\n{} of {} byte(s) in {} object(s) allocated from:",
            if g.lifetime {
                "Process-lifetime block"
            } else if g.direct {
                "Direct leak"
            } else {
                "Indirect leak"
            },
            g.bytes,
            g.count
        )?;
        let mut k = 0;
        for &pc in buckets[g.bucket as usize].stack.frames() {
            let obj = sym.describe(pc, name);
            let (text, path): (&[u8], &[u8]) =
                (name, obj.map_or(&b""[..], |o| sym.objects[o].path()));
            if k == 0 && own_frame(text, path) {
                continue;
            }
            writeln!(
                w,
                "    #{k} {pc:#x} in {} ({})",
                core::str::from_utf8(text).unwrap_or("?"),
                core::str::from_utf8(path).unwrap_or("?")
            )?;
            k += 1;
        }
    }
    if leaked > 0 {
        writeln!(
            w,
            "\nSUMMARY: goheap: {leaked} byte(s) leaked in {nleaks} allocation(s)."
        )?;
    }
    Ok(leaked)
}
