//! With the `asan` feature (and an ASan build: `src/asan.rs`), a read of a freed object in
//! goheap's arenas is reported by AddressSanitizer as `use-after-poison`: a freed small and
//! large object of the explicit allocator (GoAlloc is this binary's global allocator), and a
//! GC object the sweep found dead. Each case reads in a child process, which ASan stops.
//! Without the feature there is nothing to check: the tests are compiled out.

#![cfg(all(feature = "asan", not(loom)))]

use goheap::gc::{Config, Heap, Trace};

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

/// Reads through `p` in a way the optimiser keeps.
fn read(p: *const u64) -> u64 {
    // SAFETY: deliberately not: the point of the test is that ASan stops this read.
    unsafe { core::ptr::read_volatile(p) }
}

fn small_after_free() {
    let b = Box::new([7u64; 4]);
    let p = &b[0] as *const u64;
    drop(b);
    println!("read {}", read(p));
}

fn large_after_free() {
    let v = vec![7u64; 100_000];
    let p = v.as_ptr();
    drop(v);
    println!("read {}", read(p));
}

#[derive(Trace)]
#[trace(static)]
struct Payload {
    words: [u64; 5],
}

fn gc_object_after_sweep() {
    let heap = Heap::with_config(Config::default().with_procs(2));
    let mut m = heap.mutator();
    // The dead object's neighbour in its span stays alive, so that the sweep keeps the
    // span: an empty span would go back to the page heap, whose pages GoAlloc (this
    // binary's global allocator) may hand to another thread at once, unpoisoned.
    let (keep, addr) = m.enter(|cx| {
        let g = cx.alloc(Payload { words: [9; 5] });
        assert_eq!(g.words[4], 9);
        let addr = goheap::gc::Gc::addr(g);
        let keep = cx.alloc(Payload { words: [1; 5] });
        (cx.root(keep), addr)
    });
    heap.collect();
    heap.wait_sweep();
    println!("read {}", read(addr as *const u64));
    drop(keep);
}

fn child_case() -> Option<String> {
    std::env::var("GOHEAP_ASAN_CASE").ok()
}

#[test]
fn child_process() {
    match child_case().as_deref() {
        Some("small") => small_after_free(),
        Some("large") => large_after_free(),
        Some("gc") => gc_object_after_sweep(),
        _ => {}
    }
}

/// Runs `case` in a child and checks ASan's report.
fn expect_use_after_poison(case: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GOHEAP_ASAN_CASE", case)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && stderr.contains("ERROR: AddressSanitizer: use-after-poison"),
        "case {case}: no use-after-poison report ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        !stdout.contains("read "),
        "case {case}: the read went through"
    );
    assert!(
        stderr.contains("READ of size 8"),
        "case {case}: not the 8-byte read:\n{stderr}"
    );
}

#[test]
fn freed_small_object_is_poisoned() {
    expect_use_after_poison("small");
}

#[test]
fn freed_large_object_is_poisoned() {
    expect_use_after_poison("large");
}

#[test]
fn dead_gc_object_is_poisoned() {
    expect_use_after_poison("gc");
}
