//! Objects larger than an arena (64 MiB) get a mapping of their own, aligned as asked, and
//! give it back to the OS when freed. In its own test binary, so that no other test grows
//! the heap while `heap_sys` is compared.
#![cfg(not(loom))]

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

use std::alloc::{GlobalAlloc, Layout};

#[test]
fn huge_objects_get_their_own_mapping_and_give_it_back() {
    // Larger than an arena (64 MiB): mapped on its own, and unmapped on free.
    let before = goheap::stats().heap_sys;
    for &(size, align) in &[
        (100usize << 20, 8usize),
        (65 << 20, 1 << 26),
        (200 << 20, 4096),
    ] {
        let l = Layout::from_size_align(size, align).unwrap();
        // SAFETY: a valid non-zero layout.
        let p = unsafe { GLOBAL.alloc(l) };
        assert!(!p.is_null());
        assert_eq!(p as usize % align, 0);
        // SAFETY: `size` bytes are ours; touch the first and last page, then read back.
        unsafe {
            p.write_bytes(0x3C, 4096);
            p.add(size - 4096).write_bytes(0xC3, 4096);
            assert_eq!(*p, 0x3C);
            assert_eq!(*p.add(size - 1), 0xC3);
            assert!(goheap::raw::global::usable_size(p) >= size);
        }
        assert!(goheap::stats().heap_sys >= before + size);
        // SAFETY: allocated above with `l`.
        unsafe { GLOBAL.dealloc(p, l) };
        assert!(
            goheap::stats().heap_sys < before + size,
            "a huge object's mapping was not given back"
        );
    }
}
