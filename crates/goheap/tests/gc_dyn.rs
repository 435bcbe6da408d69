//! `GcDyn` (trait objects in the heap, `gc_dyn!`): a heterogeneous `Vec<GcDyn<dyn Shape>>`
//! surviving collections (gccheckmark on) with the objects each shape points to intact,
//! exact reclamation once shapes leave the vector, a `GcDyn` inside an object, comparisons,
//! hashing and `Debug`/`Display` forwarding. What must not compile is in
//! `tests/compile-fail/dyn_*.rs`.

#![cfg(not(loom))]

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use goheap::gc::{Config, DebugFlags, Gc, GcDyn, GcRefCell, Heap, Root, Trace};
use goheap::gc_dyn;

trait Shape: Sync + fmt::Debug {
    fn area(&self) -> f64;
    fn name(&self) -> String;
}

#[derive(Trace, Debug)]
struct Square {
    side: f64,
}
impl Shape for Square {
    fn area(&self) -> f64 {
        self.side * self.side
    }
    fn name(&self) -> String {
        format!("square {}", self.side)
    }
}

/// Holds pointers: they must be traced through the trait object's concrete type.
#[derive(Trace, Debug)]
struct Polygon<'gc> {
    label: Gc<'gc, str>,
    xs: Gc<'gc, [f64]>,
    ys: Gc<'gc, [f64]>,
}
impl Shape for Polygon<'_> {
    fn area(&self) -> f64 {
        // Shoelace.
        let n = self.xs.len();
        let mut a = 0.0;
        for i in 0..n {
            let j = (i + 1) % n;
            a += self.xs[i] * self.ys[j] - self.xs[j] * self.ys[i];
        }
        a.abs() / 2.0
    }
    fn name(&self) -> String {
        self.label.to_string()
    }
}

/// A shape made of another one (a `GcDyn` inside an object).
#[derive(Trace, Debug)]
struct Scaled<'gc> {
    by: f64,
    inner: GcDyn<'gc, dyn Shape>,
}
impl Shape for Scaled<'_> {
    fn area(&self) -> f64 {
        self.by * self.by * self.inner.area()
    }
    fn name(&self) -> String {
        format!("{} x{}", self.inner.name(), self.by)
    }
}

/// Reports its destruction: a destructor means no `Gc` fields (`#[trace(static)]`).
#[derive(Trace)]
#[trace(static)]
struct Counted {
    side: f64,
    drops: Arc<AtomicUsize>,
}
impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}
impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counted({})", self.side)
    }
}
impl Shape for Counted {
    fn area(&self) -> f64 {
        self.side
    }
    fn name(&self) -> String {
        "counted".into()
    }
}

#[derive(Trace)]
struct Scene<'gc> {
    shapes: GcRefCell<Vec<GcDyn<'gc, dyn Shape>>>,
}

fn expected_area(i: usize) -> f64 {
    match i % 4 {
        0 => (i as f64) * (i as f64),
        1 => 6.0 * (i as f64), // a 2i x 3 rectangle, as a polygon
        2 => 4.0 * (i as f64) * (i as f64),
        _ => i as f64,
    }
}

#[test]
fn heterogeneous_shapes_survive_collections_and_are_reclaimed() {
    const N: usize = 400;
    let heap = Heap::with_config(
        Config::default()
            .with_procs(2)
            .with_debug(DebugFlags::default().with_gccheckmark(true)),
    );
    let drops = Arc::new(AtomicUsize::new(0));
    let mut m = heap.mutator();
    let scene: Root<Scene<'static>> = m.enter(|cx| {
        let mut v: Vec<GcDyn<dyn Shape>> = Vec::new();
        for i in 0..N {
            let f = i as f64;
            let s = match i % 4 {
                0 => gc_dyn!(cx.alloc(Square { side: f }) => dyn Shape),
                1 => gc_dyn!(cx.alloc(Polygon {
                    label: cx.alloc_str(&format!("rect {i}")),
                    xs: cx.alloc_slice(&[0.0, 2.0 * f, 2.0 * f, 0.0]),
                    ys: cx.alloc_slice(&[0.0, 0.0, 3.0, 3.0]),
                }) => dyn Shape),
                2 => {
                    let inner = gc_dyn!(cx.alloc(Square { side: f }) => dyn Shape);
                    gc_dyn!(cx.alloc(Scaled { by: 2.0, inner }) => dyn Shape)
                }
                _ => gc_dyn!(cx.alloc(Counted { side: f, drops: drops.clone() }) => dyn Shape),
            };
            v.push(s);
        }
        cx.root(cx.alloc(Scene {
            shapes: GcRefCell::new(v),
        }))
    });
    let check = |m: &mut goheap::gc::Mutator, keep: &dyn Fn(usize) -> bool| {
        m.enter(|cx| {
            let sc = cx.get(&scene);
            let shapes = sc.shapes.borrow();
            let mut k = 0;
            for i in 0..N {
                if !keep(i) {
                    continue;
                }
                let s = shapes[k];
                k += 1;
                assert_eq!(s.area(), expected_area(i), "shape {i}: {s:?}");
                if i % 4 == 1 {
                    assert_eq!(s.name(), format!("rect {i}"));
                }
                if i % 4 == 2 {
                    assert_eq!(s.name(), format!("square {} x2", i as f64));
                }
            }
            assert_eq!(k, shapes.len());
        });
    };
    for _ in 0..3 {
        // Garbage in between, so that freed slots get reused by other objects.
        m.enter(|cx| {
            for i in 0..20_000u64 {
                let _ = cx.alloc_str(&i.to_string());
            }
        });
        heap.collect();
        check(&mut m, &|_| true);
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "a reachable shape was freed"
    );
    // Drop every other shape: the dropped `Counted` ones are reclaimed, exactly.
    let keep = |i: usize| i % 8 < 4;
    m.enter(|cx| {
        let sc = cx.get(&scene);
        let mut shapes = sc.shapes.borrow_mut();
        let mut i = 0;
        shapes.retain(|_| {
            i += 1;
            keep(i - 1)
        });
    });
    heap.collect();
    heap.wait_sweep();
    let dropped_counted = (0..N).filter(|&i| i % 4 == 3 && !keep(i)).count();
    assert_eq!(drops.load(Ordering::SeqCst), dropped_counted);
    check(&mut m, &keep);
    drop(scene);
    heap.collect();
    heap.wait_sweep();
    assert_eq!(drops.load(Ordering::SeqCst), N / 4);
    assert_eq!(heap.stats().heap_objects, 0);
}

impl PartialEq for dyn Shape + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.area() == other.area()
    }
}

#[derive(Trace, Debug)]
struct Unit;
impl Shape for Unit {
    fn area(&self) -> f64 {
        1.0
    }
    fn name(&self) -> String {
        "unit".into()
    }
}
impl fmt::Display for dyn Shape + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (area {})", self.name(), self.area())
    }
}

#[test]
fn comparisons_and_formatting_forward_to_the_value() {
    Heap::new().mutator().enter(|cx| {
        let a = gc_dyn!(cx.alloc(Square { side: 1.0 }) => dyn Shape);
        let b = gc_dyn!(cx.alloc(Unit) => dyn Shape);
        let c = gc_dyn!(cx.alloc(Square { side: 3.0 }) => dyn Shape);
        let a2 = a;
        assert_eq!(
            a, b,
            "equal areas: the hand-written PartialEq for dyn Shape"
        );
        assert_ne!(a, c);
        assert!(GcDyn::ptr_eq(a, a2));
        assert!(!GcDyn::ptr_eq(a, b));
        assert_eq!(format!("{a:?}"), "Square { side: 1.0 }");
        assert_eq!(format!("{b:?}"), "Unit");
        assert_eq!(format!("{c}"), "square 3 (area 9)");
        // Identity matches the Gc it came from.
        let g = cx.alloc(Square { side: 5.0 });
        let d = gc_dyn!(g => dyn Shape);
        assert_eq!(GcDyn::as_ptr(d) as *const u8, Gc::as_ptr(g) as *const u8);
        assert_eq!(format!("{d:p}"), format!("{g:p}"));
        // Hash by value, for a trait object type with Hash and Eq (strings here).
        let s1 = gc_dyn!(cx.alloc(String::from("x")) => dyn AsStr);
        let s2 = gc_dyn!(cx.alloc(String::from("x")) => dyn AsStr);
        let set: HashSet<GcDyn<dyn AsStr>> = [s1, s2].into_iter().collect();
        assert_eq!(set.len(), 1);
        // A GcDyn is Send and Sync: scoped threads read it.
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(c.area(), 9.0));
        });
    });
}

trait AsStr: Sync {
    fn as_str(&self) -> &str;
}
impl AsStr for String {
    fn as_str(&self) -> &str {
        self
    }
}
impl PartialEq for dyn AsStr + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for dyn AsStr + '_ {}
impl std::hash::Hash for dyn AsStr + '_ {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}
