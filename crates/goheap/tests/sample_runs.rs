//! A heap-profile sample of a small size is promoted to a page of its own, and the thread
//! that frees it keeps the page for its next sample (`SampleRuns` in heap.rs) instead of
//! giving it to the page heap. This pins what that reuse must still get right: each sample
//! is a page of its own, a kept page serves the next sample of the same thread, and a page
//! served to a zeroing allocation is zero whatever the freed sample left in it. Its own
//! process, as the rate is process-wide.

use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

/// goheap's page size.
const PAGE: usize = 8192;

/// Allocates and frees `rounds` samples of `layout` (every allocation is a sample at rate
/// 1), each filled with garbage before its free; the next allocation, zeroing if `zeroed`,
/// must be zero when asked. Returns how often the next allocation got the freed one's page.
fn churn(layout: Layout, zeroed: bool, rounds: usize) -> usize {
    let mut reused = 0;
    for _ in 0..rounds {
        // SAFETY: `layout` has a non-zero size; every pointer is freed once, with its layout.
        unsafe {
            let a = alloc(layout);
            assert!(!a.is_null());
            assert_eq!(a as usize % PAGE, 0, "a sample has a page of its own");
            std::ptr::write_bytes(a, 0xa5, layout.size());
            dealloc(a, layout);
            let b = if zeroed {
                alloc_zeroed(layout)
            } else {
                alloc(layout)
            };
            assert!(!b.is_null());
            if zeroed {
                let bytes = std::slice::from_raw_parts(b, layout.size());
                assert!(
                    bytes.iter().all(|&x| x == 0),
                    "alloc_zeroed gave dirty memory"
                );
            }
            if b == a {
                reused += 1;
            }
            dealloc(b, layout);
        }
    }
    reused
}

#[test]
fn freed_sample_pages_serve_the_next_samples() {
    goheap::profile::set_rate(1);
    std::thread::spawn(|| {
        // A small size class: promoted from the sampled window refill.
        let reused = churn(Layout::from_size_align(200, 8).unwrap(), false, 200);
        assert!(
            reused >= 190,
            "{reused} of 200 reused the freed sample's page"
        );
        // The same, zeroing: a kept page must be cleared, whatever the freed sample left.
        let reused = churn(Layout::from_size_align(200, 8).unwrap(), true, 200);
        assert!(
            reused >= 190,
            "{reused} of 200 reused the freed sample's page"
        );
    })
    .join()
    .unwrap();
    goheap::profile::set_rate(0);
}
