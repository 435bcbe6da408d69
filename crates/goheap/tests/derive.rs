//! `#[derive(Trace)]`: what it accepts (every shape of type, generics, the attributes), the
//! `NEEDS_TRACE` it computes, the `Rebrand` it writes, and, behaviourally, that objects
//! reachable only through derived fields survive collections intact while unreachable ones
//! are reclaimed. What it must reject is pinned by `tests/compile_fail.rs`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use goheap::gc::{Config, Gc, GcCell, GcRefCell, Heap, Rebrand, Root, Session, Trace, Weak};

// ---- Every shape of type.

/// A `'static` object with a destructor, which `#[trace(static)]` allows: it counts its drops.
#[derive(Trace)]
#[trace(static)]
struct Leaf {
    id: u64,
    name: String,
    drops: Arc<AtomicUsize>,
}

impl Drop for Leaf {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Trace)]
struct Named<'gc> {
    a: u32,
    leaf: Gc<'gc, Leaf>,
    #[trace(skip)]
    note: String,
    opt: Option<Gc<'gc, Leaf>>,
}

#[derive(Trace)]
struct Tuple<'gc>(u8, Gc<'gc, Leaf>, Vec<Gc<'gc, Leaf>>);

#[derive(Trace)]
struct Unit;

#[derive(Trace)]
struct EmptyBraces {}

#[derive(Trace)]
enum Shape<'gc> {
    Empty,
    One(Gc<'gc, Leaf>),
    Two {
        a: Gc<'gc, Leaf>,
        #[trace(skip)]
        label: &'static str,
        rest: Box<Shape<'gc>>,
    },
}

#[derive(Trace)]
enum Never {}

/// Type parameters, a where clause, a const parameter with a default.
#[derive(Trace)]
struct Generic<'gc, T, const N: usize = 2>
where
    T: Copy,
{
    items: [Option<T>; N],
    extra: Option<Gc<'gc, Leaf>>,
}

/// No lifetime: what it holds comes from its parameter.
#[derive(Trace)]
struct Pair<T>(T, T);

/// An unsized parameter.
#[derive(Trace)]
struct Boxed<T: ?Sized>(Box<T>);

/// The std containers the collector knows, and goheap's cells.
#[derive(Trace)]
struct Containers<'gc> {
    by_name: HashMap<String, Gc<'gc, Leaf>>,
    by_id: BTreeMap<u64, Gc<'gc, Leaf>>,
    queue: VecDeque<(u32, Gc<'gc, Leaf>)>,
    result: Result<Gc<'gc, Leaf>, String>,
    cell: GcCell<Option<Gc<'gc, Leaf>>>,
    list: GcRefCell<Vec<Gc<'gc, Leaf>>>,
    text: Gc<'gc, str>,
    slice: Gc<'gc, [Gc<'gc, Leaf>]>,
}

/// Weak fields are traced (their slot) without keeping the target alive.
#[derive(Trace)]
struct Watch<'gc> {
    weak: Vec<Weak<'gc, Leaf>>,
}

/// Two lifetimes: `Trace` but no `Rebrand` (it cannot be rooted, only reached).
#[derive(Trace)]
struct TwoLifetimes<'a, 'b>(Gc<'a, Leaf>, Gc<'b, Leaf>);

/// A skipped field of a generic type needs the type to be `'static`.
#[derive(Trace)]
struct SkipGeneric<T: 'static> {
    #[trace(skip)]
    t: T,
}

/// Recursive through `Vec<Self>`: `NEEDS_TRACE` is conservatively true.
#[derive(Trace)]
struct Tree {
    children: Vec<Tree>,
    v: u32,
}

/// The same recursion in a `'static` type: `#[trace(static)]` makes it noscan.
#[derive(Trace)]
#[trace(static)]
enum List {
    Cons(u32, Box<List>),
    Nil,
}

#[derive(Trace)]
struct Plain {
    a: u32,
    s: String,
    v: Vec<u64>,
}

#[derive(Trace)]
struct OnlySkipped<T: 'static> {
    #[trace(skip)]
    s: String,
    p: PhantomData<T>,
}

#[test]
fn needs_trace() {
    // (type, NEEDS_TRACE, expected): no Gc possible is false; a Gc somewhere (or a field
    // naming the type itself, conservatively) is true.
    let table = [
        ("Plain", Plain::NEEDS_TRACE, false),
        ("Unit", Unit::NEEDS_TRACE, false),
        ("EmptyBraces", EmptyBraces::NEEDS_TRACE, false),
        ("Never", Never::NEEDS_TRACE, false),
        ("Leaf", Leaf::NEEDS_TRACE, false),
        ("List", List::NEEDS_TRACE, false),
        (
            "OnlySkipped::<Gc<'static, Leaf>>",
            OnlySkipped::<Gc<'static, Leaf>>::NEEDS_TRACE,
            false,
        ),
        ("Pair::<u32>", Pair::<u32>::NEEDS_TRACE, false),
        (
            "Pair::<(String, Vec<u8>)>",
            Pair::<(String, Vec<u8>)>::NEEDS_TRACE,
            false,
        ),
        ("Boxed::<[u8]>", Boxed::<[u8]>::NEEDS_TRACE, false),
        (
            "SkipGeneric::<String>",
            SkipGeneric::<String>::NEEDS_TRACE,
            false,
        ),
        ("Named", Named::NEEDS_TRACE, true),
        ("Tuple", Tuple::NEEDS_TRACE, true),
        ("Shape", Shape::NEEDS_TRACE, true),
        ("Containers", Containers::NEEDS_TRACE, true),
        ("Watch", Watch::NEEDS_TRACE, true),
        ("TwoLifetimes", TwoLifetimes::NEEDS_TRACE, true),
        (
            "Generic::<'static, u32>",
            Generic::<'static, u32>::NEEDS_TRACE,
            true,
        ),
        (
            "Pair::<Option<Gc<'static, Leaf>>>",
            Pair::<Option<Gc<'static, Leaf>>>::NEEDS_TRACE,
            true,
        ),
        (
            "Boxed::<[Gc<'static, Leaf>]>",
            Boxed::<[Gc<'static, Leaf>]>::NEEDS_TRACE,
            true,
        ),
        ("Tree", Tree::NEEDS_TRACE, true),
    ];
    for (ty, got, want) in table {
        assert_eq!(got, want, "{ty}::NEEDS_TRACE");
    }
}

/// `Rebrand::Branded` is the type with its lifetime (and its parameters') replaced.
#[test]
fn rebrand() {
    fn branded<'b, T: Rebrand<'b, Branded = U> + ?Sized, U: ?Sized>() {}
    fn check<'gc>(_: PhantomData<&'gc ()>) {
        branded::<'static, Named<'gc>, Named<'static>>();
        branded::<'static, Shape<'gc>, Shape<'static>>();
        branded::<'static, Containers<'gc>, Containers<'static>>();
        branded::<'static, Generic<'gc, Gc<'gc, Leaf>, 3>, Generic<'static, Gc<'static, Leaf>, 3>>(
        );
        branded::<'static, Pair<Gc<'gc, Leaf>>, Pair<Gc<'static, Leaf>>>();
        branded::<'static, Boxed<[Gc<'gc, Leaf>]>, Boxed<[Gc<'static, Leaf>]>>();
        branded::<'gc, Plain, Plain>();
        branded::<'gc, Leaf, Leaf>();
        branded::<'gc, Unit, Unit>();
    }
    check(PhantomData);
}

// ---- Behaviour.

fn quiet() -> Config {
    Config::default().with_procs(2)
}

/// Makes leaves with ids and names derived from the id, counting their drops.
struct Leaves {
    next: u64,
    drops: Arc<AtomicUsize>,
}

impl Leaves {
    fn new() -> Leaves {
        Leaves {
            next: 0,
            drops: Arc::new(AtomicUsize::new(0)),
        }
    }
    fn make<'gc>(&mut self, cx: &Session<'gc>) -> Gc<'gc, Leaf> {
        self.next += 1;
        cx.alloc(Leaf {
            id: self.next,
            name: format!("leaf number {}", self.next),
            drops: self.drops.clone(),
        })
    }
}

fn intact(l: &Leaf) -> u64 {
    assert_eq!(l.name, format!("leaf number {}", l.id), "leaf corrupted");
    l.id
}

/// Everything a test keeps across sessions: one root per shape, and weak pointers to every
/// leaf (reached through a rooted `Watch`).
struct Kept {
    named: Root<Named<'static>>,
    tuple: Root<Tuple<'static>>,
    shape: Root<Shape<'static>>,
    generic: Root<Generic<'static, Gc<'static, Leaf>>>,
    pair: Root<Pair<Option<Gc<'static, Leaf>>>>,
    boxed: Root<Boxed<[Gc<'static, Leaf>]>>,
    containers: Root<Containers<'static>>,
    unit: Root<Unit>,
}

/// Builds one object of every shape, each holding leaves that nothing else references, and
/// as many unreachable leaves held by unrooted objects of the same shapes. Returns the roots,
/// a watch of the reachable leaves and a watch of the garbage ones.
fn build(
    m: &mut goheap::gc::Mutator,
    leaves: &mut Leaves,
) -> (Kept, Root<Watch<'static>>, Root<Watch<'static>>) {
    m.enter(|cx| {
        let mut made = Vec::new();
        let mut l = || {
            let g = leaves.make(cx);
            made.push(g);
            g
        };
        let named = cx.alloc(Named {
            a: 7,
            leaf: l(),
            note: "skipped".to_string(),
            opt: Some(l()),
        });
        let tuple = cx.alloc(Tuple(9, l(), vec![l(), l()]));
        let shape = cx.alloc(Shape::Two {
            a: l(),
            label: "two",
            rest: Box::new(Shape::Two {
                a: l(),
                label: "inner",
                rest: Box::new(Shape::One(l())),
            }),
        });
        let generic = cx.alloc(Generic {
            items: [Some(l()), None],
            extra: Some(l()),
        });
        let pair = cx.alloc(Pair(Some(l()), None));
        let boxed = cx.alloc(Boxed(vec![l(), l()].into_boxed_slice()));
        let slice_items = [l(), l()];
        let by_name: HashMap<_, _> = (0..3).map(|i| (format!("k{i}"), l())).collect();
        let by_id: BTreeMap<_, _> = (0..3u64).map(|i| (i, l())).collect();
        let queue = [(1, l()), (2, l())].into_iter().collect();
        let result = Ok(l());
        let containers = cx.alloc(Containers {
            by_name,
            by_id,
            queue,
            result,
            cell: GcCell::new(None),
            list: GcRefCell::new(Vec::new()),
            text: cx.alloc_str("some text"),
            slice: cx.alloc_slice(&slice_items),
        });
        // Stores through the cells after allocation.
        containers.cell.set(Some(l()));
        let more = [l(), l()];
        containers.list.borrow_mut().extend(more);
        let kept = Kept {
            named: cx.root(named),
            tuple: cx.root(tuple),
            shape: cx.root(shape),
            generic: cx.root(generic),
            pair: cx.root(pair),
            boxed: cx.root(boxed),
            containers: cx.root(containers),
            unit: cx.root(cx.alloc(Unit)),
        };
        let reachable = std::mem::take(&mut made);

        // Garbage: leaves that only unrooted objects of the same shapes reference.
        let mut l = || {
            let g = leaves.make(cx);
            made.push(g);
            g
        };
        cx.alloc(Named {
            a: 1,
            leaf: l(),
            note: String::new(),
            opt: Some(l()),
        });
        cx.alloc(Tuple(0, l(), vec![l()]));
        cx.alloc(Shape::Two {
            a: l(),
            label: "garbage",
            rest: Box::new(Shape::One(l())),
        });
        cx.alloc(Generic {
            items: [Some(l()), Some(l())],
            extra: None,
        });
        cx.alloc(Pair(Some(l()), Some(l())));
        let c = cx.alloc(Containers {
            by_name: HashMap::new(),
            by_id: [(0, l())].into_iter().collect(),
            queue: VecDeque::new(),
            result: Err("none".into()),
            cell: GcCell::new(Some(l())),
            list: GcRefCell::new(vec![l()]),
            text: cx.alloc_str(""),
            slice: cx.alloc_slice(&[]),
        });
        c.list.borrow_mut().push(l());

        (kept, watch(cx, &reachable), watch(cx, &made))
    })
}

fn watch<'gc>(cx: &Session<'gc>, v: &[Gc<'gc, Leaf>]) -> Root<Watch<'static>> {
    let weak = v.iter().map(|&g| cx.downgrade(g)).collect();
    cx.root(cx.alloc(Watch { weak }))
}

/// Reads every leaf through the roots (not through the watch): their ids, sorted.
fn read_all(m: &mut goheap::gc::Mutator, k: &Kept) -> Vec<u64> {
    m.enter(|cx| {
        let mut ids = Vec::new();
        let mut see = |l: Gc<'_, Leaf>| ids.push(intact(&l));

        let n = cx.get(&k.named);
        assert_eq!((n.a, n.note.as_str()), (7, "skipped"));
        see(n.leaf);
        see(n.opt.unwrap());

        let t = cx.get(&k.tuple);
        assert_eq!(t.0, 9);
        see(t.1);
        t.2.iter().for_each(|&l| see(l));

        let mut s: &Shape = &cx.get(&k.shape);
        loop {
            match s {
                Shape::Empty => unreachable!(),
                Shape::One(l) => {
                    see(*l);
                    break;
                }
                Shape::Two { a, rest, .. } => {
                    see(*a);
                    s = rest;
                }
            }
        }

        let g = cx.get(&k.generic);
        see(g.items[0].unwrap());
        assert!(g.items[1].is_none());
        see(g.extra.unwrap());

        let p = cx.get(&k.pair);
        see(p.0.unwrap());
        assert!(p.1.is_none());

        cx.get(&k.boxed).0.iter().for_each(|&l| see(l));

        let c = cx.get(&k.containers);
        let mut keys: Vec<_> = c.by_name.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["k0", "k1", "k2"]);
        c.by_name.values().for_each(|&l| see(l));
        c.by_id.values().for_each(|&l| see(l));
        c.queue.iter().for_each(|&(_, l)| see(l));
        see(*c.result.as_ref().unwrap());
        assert_eq!(&*c.text, "some text");
        c.slice.iter().for_each(|&l| see(l));
        see(c.cell.get().unwrap());
        c.list.borrow().iter().for_each(|&l| see(l));

        let _unit: Gc<'_, Unit> = cx.get(&k.unit);
        ids.sort();
        ids
    })
}

/// How many leaves of a watch are still alive (their weak pointers upgrade).
fn alive(m: &mut goheap::gc::Mutator, w: &Root<Watch<'static>>) -> usize {
    m.enter(|cx| {
        let mut n = 0;
        for w in &cx.get(w).weak {
            if let Some(l) = w.upgrade(cx) {
                intact(&l);
                n += 1;
            }
        }
        n
    })
}

fn churn(m: &mut goheap::gc::Mutator) {
    m.enter(|cx| {
        for i in 0..20_000u64 {
            cx.alloc(Pair(i, i + 1));
            cx.alloc_str("garbage that reuses freed memory");
        }
    });
}

#[test]
fn objects_reachable_only_through_derived_fields_survive() {
    let heap = Heap::with_config(quiet());
    let mut m = heap.mutator();
    let mut leaves = Leaves::new();
    let (kept, reachable, garbage) = build(&mut m, &mut leaves);
    let n_reach = m.enter(|cx| cx.get(&reachable).weak.len());
    let n_garbage = m.enter(|cx| cx.get(&garbage).weak.len());
    assert_eq!(n_reach + n_garbage, leaves.next as usize);
    assert_eq!(
        read_all(&mut m, &kept),
        (1..=n_reach as u64).collect::<Vec<_>>()
    );

    for _ in 0..3 {
        heap.collect();
        heap.wait_sweep();
        churn(&mut m);
        assert_eq!(alive(&mut m, &reachable), n_reach);
        assert_eq!(alive(&mut m, &garbage), 0);
        assert_eq!(leaves.drops.load(Ordering::SeqCst), n_garbage);
        assert_eq!(
            read_all(&mut m, &kept),
            (1..=n_reach as u64).collect::<Vec<_>>()
        );
    }

    // Dropping the roots frees everything they held.
    drop(kept);
    heap.collect();
    heap.wait_sweep();
    assert_eq!(alive(&mut m, &reachable), 0);
    assert_eq!(leaves.drops.load(Ordering::SeqCst), n_reach + n_garbage);
    drop((reachable, garbage));
    heap.collect();
    heap.wait_sweep();
    assert_eq!(heap.stats().heap_objects, 0, "{:?}", heap.stats());
}

/// An object reachable only through a type with two lifetimes (no `Rebrand`, so it is never
/// rooted itself) and a skipped generic field.
#[test]
fn two_lifetimes_and_skipped_generics() {
    #[derive(Trace)]
    struct Holder<'gc> {
        two: Gc<'gc, TwoLifetimes<'gc, 'gc>>,
        skip: Gc<'gc, SkipGeneric<Vec<String>>>,
    }
    let heap = Heap::with_config(quiet());
    let mut m = heap.mutator();
    let mut leaves = Leaves::new();
    let (root, watch) = m.enter(|cx| {
        let a = leaves.make(cx);
        let b = leaves.make(cx);
        let two = cx.alloc(TwoLifetimes(a, b));
        let skip = cx.alloc(SkipGeneric {
            t: vec!["kept".to_string()],
        });
        let weak = vec![cx.downgrade(a), cx.downgrade(b)];
        (
            cx.root(cx.alloc(Holder { two, skip })),
            cx.root(cx.alloc(Watch { weak })),
        )
    });
    heap.collect();
    churn(&mut m);
    assert_eq!(alive(&mut m, &watch), 2);
    m.enter(|cx| {
        let h = cx.get(&root);
        assert_eq!((intact(&h.two.0), intact(&h.two.1)), (1, 2));
        assert_eq!(h.skip.t, ["kept"]);
    });
    drop(root);
    heap.collect();
    heap.wait_sweep();
    assert_eq!(alive(&mut m, &watch), 0);
    assert_eq!(leaves.drops.load(Ordering::SeqCst), 2);
}

/// A `Gc` to a `Sync` object may be used by scoped threads of its session, and a root of a
/// `Sync` object by another thread's own mutator.
#[test]
fn sync_objects_cross_threads() {
    let heap = Heap::with_config(quiet());
    let mut m = heap.mutator();
    let mut leaves = Leaves::new();
    let root = m.enter(|cx| {
        let t = cx.alloc(Tuple(3, leaves.make(cx), vec![leaves.make(cx)]));
        let sum = std::thread::scope(|s| {
            let h = s.spawn(move || intact(&t.1) + intact(&t.2[0]));
            h.join().unwrap()
        });
        assert_eq!(sum, 3);
        cx.root(t)
    });
    heap.collect();
    let h2 = heap.clone();
    let ids = std::thread::spawn(move || {
        let mut m2 = h2.mutator();
        let ids = m2.enter(|cx| {
            let t = cx.get(&root);
            (intact(&t.1), intact(&t.2[0]))
        });
        drop(root);
        ids
    })
    .join()
    .unwrap();
    assert_eq!(ids, (1, 2));
    heap.collect();
    heap.wait_sweep();
    assert_eq!(leaves.drops.load(Ordering::SeqCst), 2);
}
