//! goheap as the global allocator of this whole test binary (the test harness included).

#![cfg(not(loom))]

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

use std::collections::{BTreeMap, HashMap};

#[test]
fn std_collections_work() {
    let mut m = HashMap::new();
    for i in 0..100_000u64 {
        m.insert(i, i.to_string());
    }
    let mut b = BTreeMap::new();
    for (k, v) in &m {
        b.insert(v.clone(), *k);
    }
    assert_eq!(b.len(), 100_000);
    assert_eq!(b["4242"], 4242);
    let v: Vec<Vec<u8>> = (0..5000).map(|i| vec![i as u8; i]).collect();
    for (i, x) in v.iter().enumerate() {
        assert_eq!(x.len(), i);
        assert!(x.iter().all(|&b| b == i as u8));
    }
}

#[test]
fn threads_allocate_and_free_each_others_memory() {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<Box<[u64; 4]>>>();
    let prod = std::thread::spawn(move || {
        for r in 0..200u64 {
            let batch: Vec<_> = (0..1000).map(|i| Box::new([r, i, r ^ i, 7])).collect();
            tx.send(batch).unwrap();
        }
    });
    let mut n = 0;
    for batch in rx {
        for b in batch {
            assert_eq!(b[2], b[0] ^ b[1]);
            n += 1;
        }
    }
    prod.join().unwrap();
    assert_eq!(n, 200_000);
}
