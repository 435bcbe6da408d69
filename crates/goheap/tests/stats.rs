//! Statistics: exact object counts for a quiescent thread, and the page-level invariants.

#![cfg(not(loom))]

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

use goheap::raw::sizeclass::{size_to_class, PAGE_SIZE};

fn check_invariants(s: &goheap::MemStats) {
    assert_eq!(s.heap_inuse + s.heap_idle, s.heap_sys, "{s:?}");
    assert!(s.heap_released <= s.heap_idle, "{s:?}");
    assert!(s.heap_alloc <= s.heap_inuse, "{s:?}");
    assert_eq!(s.mallocs - s.frees, s.heap_objects, "{s:?}");
    assert_eq!(s.heap_sys % PAGE_SIZE, 0);
    let by: u64 = s.by_size.iter().map(|c| c.mallocs).sum();
    assert_eq!(by, s.mallocs);
}

/// One test function, so that no other test thread allocates while counts are compared.
#[test]
fn statistics() {
    counts_are_exact_and_invariants_hold();
    frees_from_other_threads_are_counted();
}

fn counts_are_exact_and_invariants_hold() {
    // Warm up so that the test harness's own allocations are done with.
    let _warm: Vec<u8> = Vec::with_capacity(10);
    let class = size_to_class(200);
    let s0 = goheap::stats();
    check_invariants(&s0);
    let v: Vec<Box<[u8; 200]>> = (0..5000).map(|_| Box::new([1u8; 200])).collect();
    let big: Vec<Vec<u8>> = (0..10).map(|_| vec![0u8; 1 << 20]).collect();
    let s1 = goheap::stats();
    check_invariants(&s1);
    assert_eq!(s1.by_size[class].mallocs - s0.by_size[class].mallocs, 5000);
    // 10 large vectors, plus `v`'s own buffer (5000 pointers = 40 000 bytes, a large object).
    assert_eq!(s1.by_size[0].mallocs - s0.by_size[0].mallocs, 11);
    assert!(s1.heap_alloc >= s0.heap_alloc + 5000 * 208 + 10 * (1 << 20));
    drop(v);
    drop(big);
    let s2 = goheap::stats();
    check_invariants(&s2);
    assert_eq!(s2.by_size[class].frees - s1.by_size[class].frees, 5000);
    assert_eq!(s2.by_size[0].frees - s1.by_size[0].frees, 11);
    assert!(s2.heap_alloc <= s1.heap_alloc - 5000 * 208 - 10 * (1 << 20));
    assert!(s2.total_alloc >= s1.total_alloc);
}

fn frees_from_other_threads_are_counted() {
    let class = size_to_class(3000);
    let v: Vec<Box<[u8; 3000]>> = (0..1000).map(|_| Box::new([2u8; 3000])).collect();
    let s1 = goheap::stats();
    std::thread::spawn(move || drop(v)).join().unwrap();
    let s2 = goheap::stats();
    assert!(s2.by_size[class].frees - s1.by_size[class].frees >= 1000);
    check_invariants(&s2);
}
