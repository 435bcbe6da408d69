//! An interpreter-shaped object graph shared by several threads on one goheap heap.
//!
//! The main thread builds a global environment (`Env`: a `GcRefCell<BTreeMap<String, Value>>`)
//! holding integers, strings, lists (`Gc<GcRefCell<Vec<Value>>>`) and closures that capture
//! environments of their own, and hands a `Root` to it to `WORKERS` threads. Each worker has
//! its own `Mutator` and runs thousands of short sessions, one per "batch of instructions":
//! it allocates a list of numbers and strings, then interprets a small program that calls
//! global closures on it (`sum`, `add7`), adds the result to a counter captured by the
//! `tally` closure, to the global `counter` and to its own slot of the global `per_thread`
//! list, all shared with the other workers. Now and then it also makes a closure that
//! captures that batch's data and itself (a cycle), publishes it in its slot of
//! `Interp::latest` (a `GcCell`, replacing the previous one, which becomes garbage) and
//! appends a line to the global `log` list. Every other allocation of a batch (call frames,
//! the list, strings) is garbage when its session ends.
//!
//! Meanwhile the main thread forces a collection every 100 ms and prints one progress line
//! per cycle it forced; the workers' allocations trigger further, automatic cycles (at the end
//! of whichever session passes the trigger). At the end the main thread checks that the
//! shared state is exactly what the workload implies (every increment counted once, every
//! per-thread sum in place, every published closure intact), drops the root, and checks that
//! the heap is empty.
//!
//! ```sh
//! cargo run --release -p goheap --example gc_shared_interpreter
//! # Go-style line per cycle (forced and automatic) on stderr:
//! GOHEAP_DEBUG=gctrace=1 cargo run --release -p goheap --example gc_shared_interpreter
//! # Arguments: workers, batches per worker (default 4 50000; 4 10000 in a debug build).
//! cargo run -p goheap --example gc_shared_interpreter -- 8 2000
//! ```
//!
//! `GcRefCell` is an atomic `RefCell`, not a lock: `borrow_mut` panics if another thread
//! holds a borrow. Cells shared by threads are therefore borrowed through [`read`] and
//! [`write`] below, which retry until the borrow is free; a mutable borrow is then an
//! exclusive section, which makes `counter += 1` atomic. The number of retries is printed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goheap::gc::{Gc, GcCell, GcRef, GcRefCell, GcRefMut, Heap, Root, Session, Trace};

// ---------------------------------------------------------------------------------------
// The object graph

/// An interpreter value: one or two words, `Copy`.
#[derive(Trace, Clone, Copy)]
enum Value<'gc> {
    Nil,
    Int(i64),
    Str(Gc<'gc, str>),
    /// A mutable list.
    List(Gc<'gc, GcRefCell<Vec<Value<'gc>>>>),
    /// An immutable tuple: a slice object.
    Tuple(Gc<'gc, [Value<'gc>]>),
    Closure(Gc<'gc, Closure<'gc>>),
}

impl<'gc> Value<'gc> {
    fn int(self) -> i64 {
        match self {
            Value::Int(i) => i,
            other => panic!("expected an integer, got {}", show(other)),
        }
    }
}

/// A scope: variables and the enclosing scope (`None` for the global one).
#[derive(Trace)]
struct Env<'gc> {
    vars: GcRefCell<BTreeMap<String, Value<'gc>>>,
    parent: Option<Gc<'gc, Env<'gc>>>,
}

impl<'gc> Env<'gc> {
    fn new<const N: usize>(
        cx: &Session<'gc>,
        parent: Option<Gc<'gc, Env<'gc>>>,
        vars: [(&str, Value<'gc>); N],
    ) -> Gc<'gc, Env<'gc>> {
        cx.alloc(Env {
            vars: GcRefCell::new(vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
            parent,
        })
    }

    /// The scope, this one or an enclosing one, that binds `name`.
    fn scope_of(this: Gc<'gc, Env<'gc>>, name: &str) -> Gc<'gc, Env<'gc>> {
        let mut e = this;
        loop {
            if read(&e.vars).contains_key(name) {
                return e;
            }
            e = e
                .parent
                .unwrap_or_else(|| panic!("unbound variable {name:?}"));
        }
    }

    fn lookup(this: Gc<'gc, Env<'gc>>, name: &str) -> Value<'gc> {
        read(&Env::scope_of(this, name).vars)[name]
    }
}

/// A one-parameter function and the scope it closed over.
#[derive(Trace)]
struct Closure<'gc> {
    // `'static` fields (no `Gc` inside): the derive knows they need no tracing.
    name: String,
    param: &'static str,
    body: Arc<Expr>,
    env: Gc<'gc, Env<'gc>>,
}

/// The interpreter's root object: the global scope, and one published closure per worker.
#[derive(Trace)]
struct Interp<'gc> {
    globals: Gc<'gc, Env<'gc>>,
    latest: Vec<GcCell<Option<Gc<'gc, Closure<'gc>>>>>,
}

// ---------------------------------------------------------------------------------------
// Borrowing shared cells

/// Borrow retries because another thread held the cell.
static RETRIES: AtomicU64 = AtomicU64::new(0);

/// A shared borrow of a cell other threads may be writing: retries until it is free.
fn read<T: ?Sized>(c: &GcRefCell<T>) -> GcRef<'_, T> {
    let mut spins = 0u32;
    loop {
        if let Some(b) = c.try_borrow() {
            return b;
        }
        backoff(&mut spins);
    }
}

/// A mutable borrow of a cell other threads may be using: retries until it is free.
/// The borrow is exclusive, so read-modify-write under it is atomic.
fn write<T: ?Sized + goheap::gc::Trace>(c: &GcRefCell<T>) -> GcRefMut<'_, T> {
    let mut spins = 0u32;
    loop {
        if let Some(b) = c.try_borrow_mut() {
            return b;
        }
        backoff(&mut spins);
    }
}

/// Spins, and lets the holder run now and then (it may be descheduled, still in its session).
fn backoff(spins: &mut u32) {
    RETRIES.fetch_add(1, Ordering::Relaxed);
    *spins += 1;
    if *spins % 64 == 0 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------------------
// The interpreter

/// Programs: `'static` data, shared by all threads, untraced.
enum Expr {
    Int(i64),
    Var(&'static str),
    Add(Box<Expr>, Box<Expr>),
    /// The sum of the integers of a list (other items are skipped).
    Sum(Box<Expr>),
    /// `name += e` in the scope that binds `name`, atomically; the new value.
    AddAssign(&'static str, Box<Expr>),
    /// `list[i] += e`, atomically; the new value.
    AddAt(Box<Expr>, Box<Expr>, Box<Expr>),
    /// Binds `name` in the current scope; `Nil`.
    Let(&'static str, Box<Expr>),
    Call(Box<Expr>, Box<Expr>),
    Seq(Vec<Expr>),
}

fn b(e: Expr) -> Box<Expr> {
    Box::new(e)
}

fn eval<'gc>(cx: &Session<'gc>, e: &Expr, env: Gc<'gc, Env<'gc>>) -> Value<'gc> {
    match e {
        Expr::Int(i) => Value::Int(*i),
        Expr::Var(name) => Env::lookup(env, name),
        Expr::Add(x, y) => Value::Int(eval(cx, x, env).int() + eval(cx, y, env).int()),
        Expr::Sum(x) => {
            let ints = |vs: &[Value]| -> i64 {
                vs.iter()
                    .map(|v| if let Value::Int(i) = v { *i } else { 0 })
                    .sum()
            };
            match eval(cx, x, env) {
                Value::List(l) => Value::Int(ints(&read(&l))),
                Value::Tuple(t) => Value::Int(ints(&t)),
                other => panic!("sum of {}", show(other)),
            }
        }
        Expr::AddAssign(name, x) => {
            let d = eval(cx, x, env).int();
            let scope = Env::scope_of(env, name);
            let mut vars = write(&scope.vars);
            let slot = vars.get_mut(*name).unwrap();
            *slot = Value::Int(slot.int() + d);
            *slot
        }
        Expr::AddAt(list, i, x) => {
            let Value::List(l) = eval(cx, list, env) else {
                panic!("indexing a non-list")
            };
            let (i, d) = (eval(cx, i, env).int() as usize, eval(cx, x, env).int());
            let mut items = write(&l);
            items[i] = Value::Int(items[i].int() + d);
            items[i]
        }
        Expr::Let(name, x) => {
            let v = eval(cx, x, env);
            write(&env.vars).insert((*name).to_owned(), v);
            Value::Nil
        }
        Expr::Call(f, arg) => {
            let f = eval(cx, f, env);
            let arg = eval(cx, arg, env);
            call(cx, f, arg)
        }
        Expr::Seq(es) => es.iter().fold(Value::Nil, |_, e| eval(cx, e, env)),
    }
}

fn call<'gc>(cx: &Session<'gc>, f: Value<'gc>, arg: Value<'gc>) -> Value<'gc> {
    let Value::Closure(c) = f else {
        panic!("calling {}", show(f))
    };
    let frame = Env::new(cx, Some(c.env), [(c.param, arg)]);
    eval(cx, &c.body, frame)
}

fn show(v: Value<'_>) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Int(i) => i.to_string(),
        Value::Str(s) => format!("{:?}", &*s),
        Value::List(l) => match l.try_borrow() {
            Some(items) => format!("<list of {}>", items.len()),
            None => "<list, busy>".into(),
        },
        Value::Tuple(t) => format!("<tuple of {}>", t.len()),
        Value::Closure(c) => format!("<closure {}>", c.name),
    }
}

fn closure<'gc>(
    cx: &Session<'gc>,
    name: &str,
    param: &'static str,
    body: Expr,
    env: Gc<'gc, Env<'gc>>,
) -> Value<'gc> {
    Value::Closure(cx.alloc(Closure {
        name: name.to_owned(),
        param,
        body: Arc::new(body),
        env,
    }))
}

/// The global scope: the closures and shared data every worker uses.
fn setup<'gc>(cx: &Session<'gc>, workers: usize) -> Gc<'gc, Interp<'gc>> {
    let g = Env::new(cx, None, []);
    let per_thread = cx.alloc(GcRefCell::new(vec![Value::Int(0); workers]));
    let log = cx.alloc(GcRefCell::new(Vec::new()));
    let add7 = closure(
        cx,
        "add7",
        "x",
        Expr::Add(b(Expr::Var("x")), b(Expr::Var("n"))),
        Env::new(cx, Some(g), [("n", Value::Int(7))]),
    );
    let sum = closure(cx, "sum", "xs", Expr::Sum(b(Expr::Var("xs"))), g);
    // `tally` closes over a scope of its own: its counter is reachable only through it.
    let tally = closure(
        cx,
        "tally",
        "x",
        Expr::AddAssign("total", b(Expr::Var("x"))),
        Env::new(cx, Some(g), [("total", Value::Int(0))]),
    );
    let bump = closure(
        cx,
        "bump",
        "k",
        Expr::AddAssign("counter", b(Expr::Var("k"))),
        g,
    );
    write(&g.vars).extend([
        ("name".to_owned(), Value::Str(cx.alloc_str("goheap demo"))),
        ("counter".to_owned(), Value::Int(0)),
        ("per_thread".to_owned(), Value::List(per_thread)),
        ("log".to_owned(), Value::List(log)),
        ("add7".to_owned(), add7),
        ("sum".to_owned(), sum),
        ("tally".to_owned(), tally),
        ("bump".to_owned(), bump),
    ]);
    cx.alloc(Interp {
        globals: g,
        latest: (0..workers).map(|_| GcCell::new(None)).collect(),
    })
}

// ---------------------------------------------------------------------------------------
// The workload

/// A snapshot closure is published every `PUBLISH` batches.
const PUBLISH: usize = 32;

/// The integers of batch `b` of worker `t` (deterministic, so the result can be checked).
fn batch_ints(t: usize, b: usize) -> impl ExactSizeIterator<Item = i64> {
    let k = 8 + b % 41;
    (0..k).map(move |j| ((t * 7919 + b * 31 + j * 17) % 1000) as i64)
}

/// What a worker knows it contributed.
#[derive(Default)]
struct Contribution {
    sum: i64,
    batches: usize,
    /// The data sum of the last closure it published.
    last_published: i64,
    published: usize,
}

fn worker(
    t: usize,
    interp: Root<Interp<'static>>,
    done_batches: &AtomicUsize,
    batches: usize,
) -> Contribution {
    let mut m = interp.heap().mutator();
    let mut me = Contribution::default();
    // The batch program: every name but `xs`, `tup`, `b`, `t` (bound per batch) is a global.
    let program = Expr::Seq(vec![
        Expr::Let("s", b(Expr::Call(b(Expr::Var("sum")), b(Expr::Var("xs"))))),
        Expr::Let(
            "s2",
            b(Expr::Call(b(Expr::Var("sum")), b(Expr::Var("tup")))),
        ),
        Expr::Let("y", b(Expr::Call(b(Expr::Var("add7")), b(Expr::Var("b"))))),
        Expr::Call(b(Expr::Var("tally")), b(Expr::Var("s"))),
        Expr::Call(b(Expr::Var("bump")), b(Expr::Int(1))),
        Expr::AddAt(
            b(Expr::Var("per_thread")),
            b(Expr::Var("t")),
            b(Expr::Var("s")),
        ),
    ]);
    let snapshot_body = Arc::new(Expr::Add(
        b(Expr::Var("x")),
        b(Expr::Call(b(Expr::Var("sum")), b(Expr::Var("data")))),
    ));
    for batch in 0..batches {
        // One session per batch: no pointer survives it except through the root.
        let s = m.enter(|cx| {
            let it = cx.get(&interp);
            let g = it.globals;
            // The batch's data: a list of integers, each followed by a string (which `sum`
            // skips), and a tuple of the same integers.
            let mut items = Vec::new();
            for (j, i) in batch_ints(t, batch).enumerate() {
                items.push(Value::Int(i));
                items.push(Value::Str(cx.alloc_str(&format!("w{t}/b{batch}/{j}"))));
            }
            let xs = cx.alloc(GcRefCell::new(items));
            let tup = cx.alloc_slice_from_iter(batch_ints(t, batch).map(Value::Int));
            let frame = Env::new(
                cx,
                Some(g),
                [
                    ("xs", Value::List(xs)),
                    ("tup", Value::Tuple(tup)),
                    ("b", Value::Int(batch as i64)),
                    ("t", Value::Int(t as i64)),
                ],
            );
            eval(cx, &program, frame);
            let s = Env::lookup(frame, "s").int();
            assert_eq!(Env::lookup(frame, "s2").int(), s);
            assert_eq!(Env::lookup(frame, "y").int(), batch as i64 + 7);

            if batch % PUBLISH == PUBLISH - 1 {
                // A closure over this batch's list and over itself (a cycle), published in
                // this worker's slot; the previous one is garbage from now on.
                let env = Env::new(cx, Some(g), [("data", Value::List(xs))]);
                let c = cx.alloc(Closure {
                    name: format!("w{t}.snapshot{batch}"),
                    param: "x",
                    body: snapshot_body.clone(),
                    env,
                });
                write(&env.vars).insert("self".into(), Value::Closure(c));
                it.latest[t].set(Some(c));
                let Value::List(log) = Env::lookup(g, "log") else {
                    unreachable!()
                };
                let line = cx.alloc_str(&format!("worker {t} published {} (s={s})", c.name));
                write(&log).push(Value::Str(line));
            }
            s
        });
        me.sum += s;
        me.batches += 1;
        if batch % PUBLISH == PUBLISH - 1 {
            me.last_published = s;
            me.published += 1;
        }
        done_batches.fetch_add(1, Ordering::Relaxed);
    }
    me
}

fn mib(b: usize) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let workers = args.next().unwrap_or(4).max(1);
    let batches = args.next().unwrap_or(if cfg!(debug_assertions) {
        10_000
    } else {
        50_000
    });

    let t0 = Instant::now();
    let heap = Heap::new();
    let mut m = heap.mutator();
    let interp: Root<Interp<'static>> = m.enter(|cx| cx.root(setup(cx, workers)));
    println!("{workers} workers x {batches} batches, one session per batch");

    let done_batches = AtomicUsize::new(0);
    let contributions: Vec<Contribution> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|t| {
                let root = interp.clone();
                let done = &done_batches;
                s.spawn(move || worker(t, root, done, batches))
            })
            .collect();
        // The main thread: a forced collection every 100 ms until the workers are done.
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            let before = heap.stats();
            heap.collect();
            let after = heap.stats();
            // The global counter, read in a session of the main thread's mutator while the
            // workers keep updating it.
            let counter = m.enter(|cx| Env::lookup(cx.get(&interp).globals, "counter").int());
            println!(
                "[{:>6.3}s] forced gc #{:<3} {:>6.1} MiB -> {:>5.2} MiB marked, goal {:>4.1} MiB, \
                 pause {:>6.3} ms; {:>3} automatic cycles so far; {:>6} batches done, \
                 counter = {counter}",
                t0.elapsed().as_secs_f64(),
                after.num_gc,
                mib(before.heap_alloc),
                mib(after.last_marked),
                mib(after.next_gc),
                after.pause_ns.last().copied().unwrap_or(0) as f64 / 1e6,
                after.num_gc - after.num_forced_gc,
                done_batches.load(Ordering::Relaxed),
            );
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = t0.elapsed();

    // --- Verify the shared state against what the workers say they did. ---------------
    let total_batches: usize = contributions.iter().map(|c| c.batches).sum();
    let total_sum: i64 = contributions.iter().map(|c| c.sum).sum();
    m.enter(|cx| {
        let it = cx.get(&interp);
        let g = it.globals;
        let counter = Env::lookup(g, "counter").int();
        println!("counter  = {counter} (expected {total_batches} = {workers} x {batches})");
        assert_eq!(counter as usize, total_batches);
        assert_eq!(total_batches, workers * batches);

        let Value::Closure(tally) = Env::lookup(g, "tally") else {
            unreachable!()
        };
        let total = Env::lookup(tally.env, "total").int();
        println!("tally    = {total} (expected {total_sum}, the sum of all batch sums)");
        assert_eq!(total, total_sum);

        let Value::List(per) = Env::lookup(g, "per_thread") else {
            unreachable!()
        };
        let per: Vec<i64> = read(&per).iter().map(|v| v.int()).collect();
        println!(
            "per_thread = {per:?} (expected {:?})",
            contributions.iter().map(|c| c.sum).collect::<Vec<_>>()
        );
        for (t, c) in contributions.iter().enumerate() {
            assert_eq!(per[t], c.sum, "per_thread[{t}]");
            // Recompute the worker's sum natively.
            let native: i64 = (0..batches).map(|b| batch_ints(t, b).sum::<i64>()).sum();
            assert_eq!(c.sum, native, "worker {t}'s own sum");
        }

        let Value::List(log) = Env::lookup(g, "log") else {
            unreachable!()
        };
        let log = read(&log);
        let published: usize = contributions.iter().map(|c| c.published).sum();
        println!(
            "log      = {} lines (expected {published}), last: {}",
            log.len(),
            log.last().map_or("-".into(), |v| show(*v))
        );
        assert_eq!(log.len(), published);
        assert_eq!(published, workers * (batches / PUBLISH));

        for (t, c) in contributions.iter().enumerate() {
            let Some(snap) = it.latest[t].get() else {
                assert_eq!(c.published, 0);
                continue;
            };
            // Its captured data is intact, and it still refers to itself.
            let r = call(cx, Value::Closure(snap), Value::Int(1_000_000)).int();
            assert_eq!(r, 1_000_000 + c.last_published, "worker {t}'s snapshot");
            let Value::Closure(me) = Env::lookup(snap.env, "self") else {
                unreachable!()
            };
            assert!(Gc::ptr_eq(me, snap));
            if t == 0 {
                println!(
                    "latest[0] = {} (data sum {}, captures itself)",
                    snap.name, c.last_published
                );
            }
        }
        println!("name     = {}", show(Env::lookup(g, "name")));
    });

    let s = heap.stats();
    println!(
        "done in {:.2?}: {} batches, {} cycles ({} forced, {} automatic), {:.1} MiB allocated \
         in {} objects, total pause {:.2} ms (max {:.3} ms), GC CPU {:.2}%, {} borrow retries",
        elapsed,
        total_batches,
        s.num_gc,
        s.num_forced_gc,
        s.num_gc - s.num_forced_gc,
        mib(s.total_alloc),
        s.mallocs,
        s.pause_total_ns as f64 / 1e6,
        s.max_pause_ns as f64 / 1e6,
        s.gc_cpu_fraction * 100.0,
        RETRIES.load(Ordering::Relaxed),
    );
    assert!(s.num_gc > 0);

    // Without the root, everything is garbage: lists, closures, scopes, snapshot cycles.
    drop(interp);
    heap.collect();
    heap.wait_sweep();
    let s = heap.stats();
    println!(
        "root dropped: {} objects, {} bytes left",
        s.heap_objects, s.heap_alloc
    );
    assert_eq!(s.heap_objects, 0);
    assert_eq!(s.heap_alloc, 0);
}
