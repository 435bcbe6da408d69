//! Multi-threaded stress: random sizes from 1 B to 4 MiB, many frees made by a thread other
//! than the allocating one, every block filled with a pattern derived from its address and
//! checked just before it is freed. Two blocks that overlap, a block handed out twice, or a
//! free that corrupts a live block all fail the pattern check.

#![cfg(not(loom))]

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// Log-uniform size in 1..=4 MiB, biased to small sizes like real programs.
    fn size(&mut self) -> usize {
        let r = self.next();
        let bits = match r % 100 {
            0..=69 => 1 + (r >> 8) % 8,   // up to 256 B
            70..=94 => 1 + (r >> 8) % 15, // up to 16 KiB
            _ => 1 + (r >> 8) % 22,       // up to 4 MiB
        };
        let max = 1usize << bits;
        (1 + (r >> 32) as usize % max).min(4 << 20)
    }
}

struct Block {
    p: usize,
    size: usize,
    align: usize,
}

fn pattern(p: usize, i: usize) -> u8 {
    ((p >> 4) as u8).wrapping_add(i as u8).wrapping_mul(31) ^ 0x5A
}

fn fill(b: &Block) {
    // SAFETY: the block is live and `size` bytes long.
    let s = unsafe { std::slice::from_raw_parts_mut(b.p as *mut u8, b.size) };
    // Fill every byte of small blocks, and a stride of big ones (all of it would be slow).
    let step = if b.size > 4096 { 61 } else { 1 };
    for i in (0..b.size).step_by(step) {
        s[i] = pattern(b.p, i);
    }
    s[b.size - 1] = pattern(b.p, b.size - 1);
}

fn check_and_free(b: Block) {
    // SAFETY: the block is live and `size` bytes long.
    let s = unsafe { std::slice::from_raw_parts(b.p as *const u8, b.size) };
    let step = if b.size > 4096 { 61 } else { 1 };
    for i in (0..b.size).step_by(step) {
        assert_eq!(
            s[i],
            pattern(b.p, i),
            "block {:#x}+{} of {} bytes corrupted",
            b.p,
            i,
            b.size
        );
    }
    assert_eq!(s[b.size - 1], pattern(b.p, b.size - 1));
    // SAFETY: allocated with this layout, freed once.
    unsafe {
        GLOBAL.dealloc(
            b.p as *mut u8,
            Layout::from_size_align(b.size, b.align).unwrap(),
        )
    };
}

fn alloc_block(rng: &mut Rng) -> Block {
    let size = rng.size();
    let align = match rng.next() % 16 {
        0 => 64,
        1 => 16,
        2 => 4096,
        3 => 32768,
        _ => 8,
    };
    let layout = Layout::from_size_align(size, align).unwrap();
    // SAFETY: non-zero size.
    let p = unsafe { GLOBAL.alloc(layout) };
    assert!(!p.is_null());
    assert_eq!(
        p as usize % align,
        0,
        "misaligned {size} bytes at {p:p} (align {align})"
    );
    let b = Block {
        p: p as usize,
        size,
        align,
    };
    fill(&b);
    b
}

#[test]
fn random_sizes_cross_thread_frees_patterns_hold() {
    const THREADS: usize = 4;
    const OPS: usize = 60_000;
    let mut senders = vec![];
    let mut receivers = vec![];
    for _ in 0..THREADS {
        let (tx, rx) = mpsc::channel::<Vec<Block>>();
        senders.push(tx);
        receivers.push(rx);
    }
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(t, rx)| {
            let senders = senders.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(t as u64 * 7919 + 1);
                let mut live: Vec<Block> = Vec::with_capacity(4096);
                let mut outgoing: Vec<Block> = vec![];
                let mut live_bytes = 0usize;
                for op in 0..OPS {
                    // Free blocks other threads sent us.
                    while let Ok(batch) = rx.try_recv() {
                        for b in batch {
                            check_and_free(b);
                        }
                    }
                    let r = rng.next() % 10;
                    if r < 5 || live.is_empty() {
                        let b = alloc_block(&mut rng);
                        live_bytes += b.size;
                        live.push(b);
                    } else if r < 8 {
                        let i = rng.next() as usize % live.len();
                        let b = live.swap_remove(i);
                        live_bytes -= b.size;
                        check_and_free(b);
                    } else {
                        let i = rng.next() as usize % live.len();
                        let b = live.swap_remove(i);
                        live_bytes -= b.size;
                        outgoing.push(b);
                    }
                    // Bound memory: keep under ~64 MiB per thread.
                    while live_bytes > 64 << 20 {
                        let b = live.swap_remove(0);
                        live_bytes -= b.size;
                        check_and_free(b);
                    }
                    if outgoing.len() >= 64 || op == OPS - 1 {
                        let to = (t + 1 + rng.next() as usize % (THREADS - 1)) % THREADS;
                        let _ = senders[to].send(std::mem::take(&mut outgoing));
                    }
                }
                for b in live {
                    check_and_free(b);
                }
                rx
            })
        })
        .collect();
    drop(senders);
    let rxs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // Blocks sent after their receiver finished: free them here (yet another thread).
    for rx in rxs {
        while let Ok(batch) = rx.try_recv() {
            for b in batch {
                check_and_free(b);
            }
        }
    }
}

#[test]
fn realloc_keeps_contents_across_classes_and_large() {
    let mut rng = Rng(99);
    for _ in 0..2000 {
        let mut size = 1 + rng.next() as usize % 2000;
        let mut v: Vec<u8> = (0..size).map(|i| i as u8).collect();
        for _ in 0..6 {
            let new = 1 + rng.next() as usize % (if rng.next() % 4 == 0 { 300_000 } else { 4000 });
            v.resize(new, 0xEE);
            for (i, &x) in v.iter().enumerate().take(size.min(new)) {
                assert_eq!(x, i as u8);
            }
            for (i, x) in v.iter_mut().enumerate().skip(size.min(new)) {
                *x = i as u8;
            }
            size = new;
            v.shrink_to_fit();
        }
    }
}

#[test]
fn zeroed_allocations_are_zero_even_after_reuse() {
    for round in 0..20 {
        let mut blocks = vec![];
        for i in 0..2000usize {
            let size = 1 + (i * 37 + round) % 70_000;
            let l = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { GLOBAL.alloc_zeroed(l) };
            assert!(!p.is_null());
            // SAFETY: `size` bytes were just allocated.
            let s = unsafe { std::slice::from_raw_parts_mut(p, size) };
            assert!(
                s.iter().all(|&b| b == 0),
                "alloc_zeroed gave dirty memory ({size} bytes)"
            );
            s.fill(0xFF);
            blocks.push((p, l));
        }
        for (p, l) in blocks {
            // SAFETY: allocated above with `l`.
            unsafe { GLOBAL.dealloc(p, l) };
        }
    }
}

#[test]
fn every_alignment_and_zero_size() {
    for shift in 0..=22 {
        let align = 1usize << shift;
        for size in [0usize, 1, 7, 8, 24, 100, 4096, 33_000, 1 << 20] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: goheap serves zero-size layouts too (as one byte).
            let p = unsafe { GLOBAL.alloc(l) };
            assert!(!p.is_null(), "size {size} align {align}");
            assert_eq!(p as usize % align, 0, "size {size} align {align}");
            // SAFETY: allocated above.
            unsafe {
                p.write_bytes(0xAB, size);
                GLOBAL.dealloc(p, l);
            }
        }
    }
}

#[test]
fn impossible_requests_return_null() {
    let huge = Layout::from_size_align(isize::MAX as usize - 4095, 4096).unwrap();
    // SAFETY: a valid layout; goheap must refuse it with null, not abort.
    assert!(unsafe { GLOBAL.alloc(huge) }.is_null());
    let big = Layout::from_size_align(1 << 46, 8).unwrap(); // 64 TiB: more than the machine
                                                            // SAFETY: as above.
    let p = unsafe { GLOBAL.alloc(big) };
    if !p.is_null() {
        // The kernel may overcommit a NORESERVE mapping; then it must be a real, freeable block.
        // SAFETY: allocated above.
        unsafe { GLOBAL.dealloc(p, big) };
    }
    let l = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: shrinking realloc of a live block to an impossible size must fail cleanly.
    unsafe {
        let p = GLOBAL.alloc(l);
        let q = GLOBAL.realloc(p, l, isize::MAX as usize - 10);
        assert!(q.is_null());
        p.write_bytes(1, 100); // `p` is still ours
        GLOBAL.dealloc(p, l);
    }
}
