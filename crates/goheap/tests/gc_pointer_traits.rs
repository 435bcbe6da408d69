//! `Gc` as an everyday pointer, seen from outside the crate: it compares, orders, hashes and
//! prints by value, as `Rc` does, while `Gc::ptr_eq` and `Gc::as_ptr` tell objects apart.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use goheap::gc::{Gc, Heap};

fn hash_of<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

#[test]
fn gc_u64_compares_hashes_orders_and_prints_by_value() {
    let heap = Heap::new();
    heap.mutator().enter(|cx| {
        let a = cx.alloc(7u64);
        let b = cx.alloc(7u64);
        let c = cx.alloc(9u64);

        // Equality: by value, not identity.
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(!Gc::ptr_eq(a, b));
        assert!(Gc::ptr_eq(a, a));
        assert_ne!(Gc::as_ptr(a), Gc::as_ptr(b));
        assert_eq!(Gc::as_ptr(a), &*a as *const u64);

        // Order: the values'.
        assert!(a < c && c > b && a <= b);
        assert_eq!(a.cmp(&c), std::cmp::Ordering::Less);
        assert_eq!(a.partial_cmp(&b), Some(std::cmp::Ordering::Equal));
        let mut v = [c, a, cx.alloc(1u64)];
        v.sort();
        assert_eq!(v.iter().map(|g| **g).collect::<Vec<_>>(), [1, 7, 9]);
        assert_eq!(v.iter().max().map(|g| **g), Some(9));

        // Hash: the value's, so equal values collide and lookups by `&u64` work.
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_eq!(hash_of(&a), hash_of(&7u64));
        let set: HashSet<Gc<'_, u64>> = [a, b, c].into_iter().collect();
        assert_eq!(set.len(), 2);
        assert!(set.contains(&7u64));
        let mut counts: HashMap<Gc<'_, u64>, u32> = HashMap::new();
        for g in [a, b, c] {
            *counts.entry(g).or_default() += 1;
        }
        assert_eq!(counts[&7u64], 2);
        let ordered: BTreeSet<Gc<'_, u64>> = [c, a, b].into_iter().collect();
        assert_eq!(ordered.iter().map(|g| **g).collect::<Vec<_>>(), [7, 9]);

        // Printing: the value's Debug and Display; `{:p}` the address.
        assert_eq!(format!("{a}"), "7");
        assert_eq!(format!("{a:?}"), "7");
        assert_eq!(format!("{:>4}", c), "   9");
        assert_eq!(format!("{a:p}"), format!("{:p}", Gc::as_ptr(a)));
    });
}

#[test]
fn unsized_pointees_compare_by_value() {
    let heap = Heap::new();
    heap.mutator().enter(|cx| {
        let s1 = cx.alloc_str("goheap");
        let s2 = cx.alloc_str("goheap");
        let s3 = cx.alloc_str("gc");
        assert_eq!(s1, s2);
        assert!(s3 < s1);
        assert_eq!(hash_of(&s1), hash_of("goheap"));
        assert_eq!(format!("{s1}/{s3:?}"), "goheap/\"gc\"");
        let xs = cx.alloc_slice(&[1u8, 2, 3]);
        let ys = cx.alloc_slice(&[1u8, 2, 4]);
        assert!(xs < ys);
        assert_eq!(Gc::as_ptr(xs).len(), 3);
    });
}
