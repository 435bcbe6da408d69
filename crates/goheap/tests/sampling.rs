//! The heap profiler inside the process, where the sanitizers see it: threads allocate and
//! free through `GoAlloc` with sampling on (small objects, large ones, reallocs) while the
//! main thread writes profiles; each profile decodes (the independent decoder) and holds
//! the threads' sites, and what the threads freed is not in use.

#[path = "../../goheap-cli/src/pprof.rs"]
mod pprof;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

#[inline(never)]
fn churn_in_thread(stop: &AtomicBool) {
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) || round < 200 {
        let small: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 16 + i * 8]).collect();
        let mut grow = Vec::new();
        for i in 0..300u32 {
            grow.push(i);
        }
        let large = vec![1u8; 40_000 + round % 7 * 4096];
        black_box((&small, &grow, &large));
        round += 1;
    }
}

#[test]
fn threads_sample_while_profiles_are_written() {
    goheap::profile::set_rate(4096);
    let stop = AtomicBool::new(false);
    let profiles = std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| churn_in_thread(&stop));
        }
        let mut profiles = Vec::new();
        for _ in 0..5 {
            let mut out = Vec::new();
            goheap::profile::write_heap_profile(&mut out).expect("write the profile");
            profiles.push(out);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        profiles
    });
    let mut last = Vec::new();
    goheap::profile::write_heap_profile(&mut last).unwrap();
    for bytes in profiles.iter().chain(std::iter::once(&last)) {
        pprof::Profile::parse(bytes).expect("every profile decodes");
    }
    let p = pprof::Profile::parse(&last).unwrap();
    assert_eq!(p.period, 4096);
    let alloc = p.value_index("alloc_space").unwrap();
    let inuse = p.value_index("inuse_space").unwrap();
    let mine = |f: &str| f.ends_with("churn_in_thread");
    assert!(
        p.cum(alloc, mine) > 1 << 20,
        "the threads' allocations are sampled"
    );
    // Everything the threads allocated was freed before the last profile.
    assert_eq!(p.cum(inuse, mine), 0);
    goheap::profile::set_rate(0);
}
