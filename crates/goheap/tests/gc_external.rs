//! Memory outside goheap counted by a heap (issue 10, item 2), for programs whose global
//! allocator is not `GoAlloc` (this test binary uses the system allocator): the explicit
//! API (`Heap::mark_external_allocation`, as gc-arena's) and `ExternalVec`, a vector that
//! counts its own buffer.

#![cfg(not(loom))]

use goheap::gc::{Config, ExternalVec, Heap, Trace};

const MIB: usize = 1 << 20;

fn config() -> Config {
    Config::default().with_procs(2)
}

/// Declared memory moves the goal and starts a cycle when it passes the trigger.
#[test]
fn declared_memory_counts_toward_the_goal() {
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    m.enter(|cx| {
        let _ = cx.alloc([1u64; 4]);
    });
    heap.collect();
    let n0 = heap.stats().num_gc;
    assert!(heap.stats().next_gc < 8 * MIB);
    // 100 MiB held elsewhere by the heap's objects: past the 4 MiB trigger at once.
    heap.mark_external_allocation(100 * MIB);
    heap.wait_sweep();
    let t = std::time::Instant::now();
    while heap.stats().num_gc == n0 && t.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(
        heap.stats().num_gc > n0,
        "declaring 100 MiB started no cycle"
    );
    heap.collect();
    heap.wait_sweep();
    let goal = heap.stats().next_gc;
    assert!(goal >= 200 * MIB, "goal {} MiB", goal / MIB);
    heap.mark_external_deallocation(100 * MIB);
    heap.collect();
    heap.wait_sweep();
    assert!(heap.stats().next_gc < 8 * MIB);
}

/// A small GC object that owns a 1 MiB buffer made with the system allocator.
#[derive(Trace)]
#[trace(static)]
struct Owner {
    buf: ExternalVec<u8>,
}

/// 400 short-lived objects each owning an `ExternalVec` of 1 MiB: the heap collects as their
/// buffers pile up, so far less than the 400 MiB they make is ever held.
#[test]
fn rss_stays_low_when_dead_objects_own_external_vecs() {
    let heap = Heap::with_config(config());
    let mut m = heap.mutator();
    let mut most = 0;
    let mut peak = goheap::raw::os::rss_bytes();
    for i in 0..400 {
        let mut buf = ExternalVec::new(&heap);
        buf.extend(std::iter::repeat_n(i as u8, MIB));
        m.enter(|cx| {
            let o = cx.alloc(Owner { buf });
            assert_eq!(o.buf.len(), MIB);
        });
        if i % 20 == 0 {
            // The heap's goal counts the buffers alive now: at most what it allows.
            most = most.max(heap.stats().next_gc);
            peak = peak.max(goheap::raw::os::rss_bytes());
        }
    }
    let st = heap.stats();
    eprintln!(
        "400 x 1 MiB ExternalVecs: {} cycles, largest goal {} MiB, peak RSS {} MiB",
        st.num_gc,
        most / MIB,
        peak / MIB
    );
    assert!(st.num_gc >= 10, "only {} cycles", st.num_gc);
    assert!(peak <= 256 * MIB, "peak RSS {} MiB", peak / MIB);
    drop(m);
    heap.collect();
    heap.wait_sweep();
    // Every buffer is dropped and uncounted: the goal is back to the minimum.
    heap.collect();
    assert!(heap.stats().next_gc < 8 * MIB, "{:?}", heap.stats());
}

#[test]
fn external_vec_counts_its_capacity() {
    let heap = Heap::with_config(config());
    let mut v = ExternalVec::<u64>::new(&heap);
    assert_eq!(v.counted_bytes(), 0);
    v.reserve(1000);
    assert_eq!(v.counted_bytes(), v.capacity() * 8);
    for i in 0..5000 {
        v.push(i);
    }
    assert_eq!(v.counted_bytes(), v.capacity() * 8);
    assert!(v.counted_bytes() >= 5000 * 8);
    v.shrink_to_fit();
    assert_eq!(v.counted_bytes(), 5000 * 8);
    let inner = v.into_vec();
    assert_eq!(inner.len(), 5000);
}
