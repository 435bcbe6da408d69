//! A program whose named functions keep, churn and leak known amounts of memory, on
//! `GoAlloc` (the explicit-free heap) or on a GC heap: the heap profiler's attribution
//! tests run it (`tests/profile.rs`), and the README's leak hunt starts from it.
//!
//! ```text
//! GOHEAP_PROFILE_RATE=524288 cargo run --release -p goheap --example keep_churn_leak -- goalloc heap.pb.gz
//! go tool pprof -top -cum heap.pb.gz
//! ```
//!
//! `keep` holds 32 MiB until the profile is written; `churn` allocates and drops 256 MiB
//! in pieces of 64 B to 40 KB, 1 MiB at a time; `leak` loses 4 MiB (forgotten `Vec`s, or
//! forgotten `Root`s on a GC heap: memory that stays reachable by mistake).
//!
//! Arguments: `goalloc|gc [OUT [KEEP CHURN LEAK]]`: which heap, where to write a profile
//! while the kept memory is still held (none if empty; `GOHEAP_PROFILE` writes one at
//! exit, when it is not), and the three amounts in MiB.

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

const MIB: usize = 1 << 20;

/// Sizes that cover small classes and one large one.
const SIZES: [usize; 5] = [64, 200, 1024, 4096, 40_000];

/// Calls `f(size)` with the sizes in turn until `bytes` have been asked for.
fn sizes_up_to(bytes: usize, mut f: impl FnMut(usize)) {
    let mut total = 0;
    for &n in SIZES.iter().cycle() {
        if total >= bytes {
            break;
        }
        f(n);
        total += n;
    }
}

/// The explicit-free heap: `Vec<u8>`s.
mod explicit {
    use super::*;
    use std::hint::black_box;

    #[inline(never)]
    pub fn keep(bytes: usize) -> Vec<Vec<u8>> {
        let mut kept = Vec::new();
        sizes_up_to(bytes, |n| kept.push(black_box(vec![1u8; n])));
        kept
    }

    #[inline(never)]
    pub fn churn(bytes: usize) {
        for _ in 0..bytes / MIB {
            let mut batch = Vec::new();
            sizes_up_to(MIB, |n| batch.push(black_box(vec![2u8; n])));
            drop(black_box(batch));
        }
    }

    #[inline(never)]
    pub fn leak(bytes: usize) {
        sizes_up_to(bytes, |n| std::mem::forget(black_box(vec![3u8; n])));
    }
}

/// A GC heap: `Gc<[u64]>` slices.
mod gc {
    use super::*;
    use goheap::gc::{Mutator, Root};

    /// Words of a slice of about `bytes` bytes (a length word, then `u64`s).
    fn words(bytes: usize) -> usize {
        (bytes / 8).saturating_sub(1).max(1)
    }

    #[inline(never)]
    pub fn keep(m: &mut Mutator, bytes: usize) -> Vec<Root<[u64]>> {
        let mut kept = Vec::new();
        sizes_up_to(bytes, |n| {
            kept.push(
                m.enter(|cx| cx.root(cx.alloc_slice_from_iter((0..words(n)).map(|x| x as u64)))),
            )
        });
        kept
    }

    #[inline(never)]
    pub fn churn(m: &mut Mutator, bytes: usize) {
        for _ in 0..bytes / MIB {
            m.enter(|cx| {
                sizes_up_to(MIB, |n| {
                    std::hint::black_box(cx.alloc_slice_from_iter((0..words(n)).map(|x| x as u64)));
                })
            });
        }
    }

    #[inline(never)]
    pub fn leak(m: &mut Mutator, bytes: usize) {
        sizes_up_to(bytes, |n| {
            std::mem::forget(
                m.enter(|cx| cx.root(cx.alloc_slice_from_iter((0..words(n)).map(|x| x as u64)))),
            )
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: keep_churn_leak goalloc|gc [OUT [KEEP CHURN LEAK]]";
    let amounts: Vec<usize> = args
        .iter()
        .skip(2)
        .map(|a| a.parse().expect("amounts are MiB counts"))
        .collect();
    let [k, c, l] = match amounts[..] {
        [k, c, l] => [k, c, l],
        [] => [32, 256, 4],
        _ => panic!("{usage}"),
    };
    let write = || {
        if let Some(path) = args.get(1).filter(|p| !p.is_empty()) {
            let f = std::fs::File::create(path).expect("create the profile file");
            goheap::profile::write_heap_profile(f).expect("write the profile");
        }
    };
    match args.first().map(String::as_str) {
        Some("goalloc") => {
            let kept = explicit::keep(k * MIB);
            explicit::churn(c * MIB);
            explicit::leak(l * MIB);
            write();
            std::hint::black_box(kept);
        }
        Some("gc") => {
            let heap = goheap::gc::Heap::new();
            let mut m = heap.mutator();
            let kept = gc::keep(&mut m, k * MIB);
            gc::churn(&mut m, c * MIB);
            gc::leak(&mut m, l * MIB);
            // The profile's in-use figures are those of the last sweep, as Go's are of
            // the last completed cycle.
            heap.collect();
            heap.wait_sweep();
            write();
            drop(kept);
        }
        _ => panic!("{usage}"),
    }
    eprintln!("kept {k} MiB, churned {c} MiB, leaked {l} MiB");
}
