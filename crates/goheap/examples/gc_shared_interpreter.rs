//! An interpreter-shaped object graph shared by several threads on one goheap heap.
//!
//! The main thread builds a global environment (`Env`: a `GcMutex<BTreeMap<String, Value>>`)
//! holding integers, strings, lists (`Gc<GcMutex<Vec<Value>>>`) and closures that capture
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
//! Scopes and lists are `GcMutex`es, shared by the workers: a lock is an exclusive section,
//! which makes `counter += 1` atomic. Inside a session a lock is only *tried*
//! ([`lock`]); a thread that finds it held must not sleep there (it would hold up the
//! collector for as long as the holder keeps the lock), so the statement being evaluated
//! gives up with [`Blocked`], the session ends, the thread sleeps outside every session until
//! the holder unlocks ([`MutexWaiter::wait`]) and evaluates the statement again in a new
//! session ([`run`]). Each statement of the batch program has its shared side effect last,
//! under the last lock it takes, so a statement that gave up changed nothing shared and is
//! safe to evaluate again; the batch's own scope is kept between statements by a `Root`.
//! Nothing spins: the number of sleeps is printed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goheap::gc::{
    Gc, GcCell, GcMutex, GcMutexGuard, Heap, Mutator, MutexWaiter, Root, Session, Trace,
};

// ---------------------------------------------------------------------------------------
// The object graph

/// An interpreter value: one or two words, `Copy`.
#[derive(Trace, Clone, Copy)]
enum Value<'gc> {
    Nil,
    Int(i64),
    Str(Gc<'gc, str>),
    /// A mutable list.
    List(Gc<'gc, GcMutex<Vec<Value<'gc>>>>),
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
    vars: GcMutex<BTreeMap<String, Value<'gc>>>,
    parent: Option<Gc<'gc, Env<'gc>>>,
}

impl<'gc> Env<'gc> {
    fn new<const N: usize>(
        cx: &Session<'gc>,
        parent: Option<Gc<'gc, Env<'gc>>>,
        vars: [(&str, Value<'gc>); N],
    ) -> Gc<'gc, Env<'gc>> {
        cx.alloc(Env {
            vars: GcMutex::new(vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
            parent,
        })
    }

    /// The scope's variables, locked.
    fn vars(
        cx: &Session<'gc>,
        this: Gc<'gc, Env<'gc>>,
    ) -> Result<GcMutexGuard<'gc, BTreeMap<String, Value<'gc>>>, Blocked> {
        // SAFETY: `vars` is a plain field of the scope object.
        unsafe { lock(cx, this, &Gc::as_ref(this).vars) }
    }

    /// The scope, this one or an enclosing one, that binds `name`.
    fn scope_of(
        cx: &Session<'gc>,
        this: Gc<'gc, Env<'gc>>,
        name: &str,
    ) -> Result<Gc<'gc, Env<'gc>>, Blocked> {
        let mut e = this;
        loop {
            if Env::vars(cx, e)?.contains_key(name) {
                return Ok(e);
            }
            e = e
                .parent
                .unwrap_or_else(|| panic!("unbound variable {name:?}"));
        }
    }

    fn lookup(
        cx: &Session<'gc>,
        this: Gc<'gc, Env<'gc>>,
        name: &str,
    ) -> Result<Value<'gc>, Blocked> {
        let scope = Env::scope_of(cx, this, name)?;
        Ok(Env::vars(cx, scope)?[name])
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
// Locking shared scopes and lists

/// Sleeps outside sessions because another thread held a lock.
static WAITS: AtomicU64 = AtomicU64::new(0);

/// A statement gave up: the lock it needs is held. Waiting for it happens outside the
/// session, with this handle, which keeps the lock's object alive meanwhile.
struct Blocked(MutexWaiter);

/// Locks `m`, which lies in the object `owner` points to, or gives up (module essay).
///
/// # Safety
/// `m` is the object itself or a plain field of it (never inside a cell whose value can be
/// replaced): `GcMutex::waiter`'s contract.
unsafe fn lock<'gc, O: ?Sized + goheap::gc::GcPointee + 'gc, T: Trace>(
    cx: &Session<'gc>,
    owner: Gc<'gc, O>,
    m: &'gc GcMutex<T>,
) -> Result<GcMutexGuard<'gc, T>, Blocked> {
    // SAFETY: the caller's promise, passed on.
    m.try_lock()
        .ok_or_else(|| Blocked(unsafe { m.waiter(cx, owner) }))
}

/// A list's items, locked.
fn items<'gc>(
    cx: &Session<'gc>,
    l: Gc<'gc, GcMutex<Vec<Value<'gc>>>>,
) -> Result<GcMutexGuard<'gc, Vec<Value<'gc>>>, Blocked> {
    // SAFETY: the list's mutex is the object itself.
    unsafe { lock(cx, l, Gc::as_ref(l)) }
}

/// Runs `f` in a session of `m` until it does not give up; between tries the thread sleeps,
/// outside every session, until the lock that stopped it is released.
fn run<R>(m: &mut Mutator, mut f: impl for<'gc> FnMut(&Session<'gc>) -> Result<R, Blocked>) -> R {
    loop {
        match m.enter(&mut f) {
            Ok(r) => return r,
            Err(Blocked(w)) => {
                WAITS.fetch_add(1, Ordering::Relaxed);
                w.wait();
            }
        }
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
}

fn b(e: Expr) -> Box<Expr> {
    Box::new(e)
}

/// Evaluates `e`, or gives up at a lock another thread holds ([`Blocked`]; module essay).
fn eval<'gc>(cx: &Session<'gc>, e: &Expr, env: Gc<'gc, Env<'gc>>) -> Result<Value<'gc>, Blocked> {
    Ok(match e {
        Expr::Int(i) => Value::Int(*i),
        Expr::Var(name) => Env::lookup(cx, env, name)?,
        Expr::Add(x, y) => Value::Int(eval(cx, x, env)?.int() + eval(cx, y, env)?.int()),
        Expr::Sum(x) => {
            let ints = |vs: &[Value]| -> i64 {
                vs.iter()
                    .map(|v| if let Value::Int(i) = v { *i } else { 0 })
                    .sum()
            };
            match eval(cx, x, env)? {
                Value::List(l) => Value::Int(ints(&items(cx, l)?)),
                Value::Tuple(t) => Value::Int(ints(&t)),
                other => panic!("sum of {}", show(other)),
            }
        }
        Expr::AddAssign(name, x) => {
            let d = eval(cx, x, env)?.int();
            let scope = Env::scope_of(cx, env, name)?;
            let mut vars = Env::vars(cx, scope)?;
            let slot = vars.get_mut(*name).unwrap();
            *slot = Value::Int(slot.int() + d);
            *slot
        }
        Expr::AddAt(list, i, x) => {
            let Value::List(l) = eval(cx, list, env)? else {
                panic!("indexing a non-list")
            };
            let (i, d) = (eval(cx, i, env)?.int() as usize, eval(cx, x, env)?.int());
            let mut items = items(cx, l)?;
            items[i] = Value::Int(items[i].int() + d);
            items[i]
        }
        Expr::Let(name, x) => {
            let v = eval(cx, x, env)?;
            Env::vars(cx, env)?.insert((*name).to_owned(), v);
            Value::Nil
        }
        Expr::Call(f, arg) => {
            let f = eval(cx, f, env)?;
            let arg = eval(cx, arg, env)?;
            call(cx, f, arg)?
        }
    })
}

fn call<'gc>(cx: &Session<'gc>, f: Value<'gc>, arg: Value<'gc>) -> Result<Value<'gc>, Blocked> {
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
        Value::List(l) => match l.try_lock() {
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
    let per_thread = cx.alloc(GcMutex::new(vec![Value::Int(0); workers]));
    let log = cx.alloc(GcMutex::new(Vec::new()));
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
    // Nobody else sees `g` yet: the lock is free.
    Gc::as_ref(g).vars.try_lock().expect("a new scope").extend([
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
    // The batch program, one statement at a time (a statement that finds a lock held is
    // evaluated again, so its shared side effect comes last, under its last lock). Every name
    // but `xs`, `tup`, `b`, `t` (bound per batch) is a global.
    let program = [
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
    ];
    let snapshot_body = Arc::new(Expr::Add(
        b(Expr::Var("x")),
        b(Expr::Call(b(Expr::Var("sum")), b(Expr::Var("data")))),
    ));
    for batch in 0..batches {
        // The batch's scope, kept between its sessions by a root. Its data: a list of
        // integers, each followed by a string (which `sum` skips), and a tuple of the same
        // integers.
        let frame: Root<Env<'static>> = m.enter(|cx| {
            let g = cx.get(&interp).globals;
            let mut items = Vec::new();
            for (j, i) in batch_ints(t, batch).enumerate() {
                items.push(Value::Int(i));
                items.push(Value::Str(cx.alloc_str(&format!("w{t}/b{batch}/{j}"))));
            }
            let xs = cx.alloc(GcMutex::new(items));
            let tup = cx.alloc_slice_from_iter(batch_ints(t, batch).map(Value::Int));
            cx.root(Env::new(
                cx,
                Some(g),
                [
                    ("xs", Value::List(xs)),
                    ("tup", Value::Tuple(tup)),
                    ("b", Value::Int(batch as i64)),
                    ("t", Value::Int(t as i64)),
                ],
            ))
        });
        // One session per statement; a statement that finds a lock held ends its session,
        // sleeps outside it and runs again (`run`).
        for stmt in &program {
            run(&mut m, |cx| eval(cx, stmt, cx.get(&frame)).map(drop));
        }
        let s = run(&mut m, |cx| {
            let frame = cx.get(&frame);
            let s = Env::lookup(cx, frame, "s")?.int();
            assert_eq!(Env::lookup(cx, frame, "s2")?.int(), s);
            assert_eq!(Env::lookup(cx, frame, "y")?.int(), batch as i64 + 7);
            Ok(s)
        });

        if batch % PUBLISH == PUBLISH - 1 {
            // A closure over this batch's list and over itself (a cycle), published in this
            // worker's slot (the previous one is garbage from then on) and logged. The log
            // line is the only step that can find a lock held, and it comes before the
            // publication: a try that gives up leaves nothing behind but garbage.
            run(&mut m, |cx| {
                let it = cx.get(&interp);
                let g = it.globals;
                let frame = cx.get(&frame);
                let xs = Env::lookup(cx, frame, "xs")?;
                let env = Env::new(cx, Some(g), [("data", xs)]);
                let c = cx.alloc(Closure {
                    name: format!("w{t}.snapshot{batch}"),
                    param: "x",
                    body: snapshot_body.clone(),
                    env,
                });
                Env::vars(cx, env)?.insert("self".into(), Value::Closure(c));
                let Value::List(log) = Env::lookup(cx, g, "log")? else {
                    unreachable!()
                };
                let line = cx.alloc_str(&format!("worker {t} published {} (s={s})", c.name));
                items(cx, log)?.push(Value::Str(line));
                it.latest[t].set(Some(c));
                Ok(())
            });
        }
        drop(frame);
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
            let counter = run(&mut m, |cx| {
                Ok(Env::lookup(cx, cx.get(&interp).globals, "counter")?.int())
            });
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
    // The workers are done: no lock is held, `run` never waits here.
    run(&mut m, |cx| {
        let it = cx.get(&interp);
        let g = it.globals;
        let counter = Env::lookup(cx, g, "counter")?.int();
        println!("counter  = {counter} (expected {total_batches} = {workers} x {batches})");
        assert_eq!(counter as usize, total_batches);
        assert_eq!(total_batches, workers * batches);

        let Value::Closure(tally) = Env::lookup(cx, g, "tally")? else {
            unreachable!()
        };
        let total = Env::lookup(cx, tally.env, "total")?.int();
        println!("tally    = {total} (expected {total_sum}, the sum of all batch sums)");
        assert_eq!(total, total_sum);

        let Value::List(per) = Env::lookup(cx, g, "per_thread")? else {
            unreachable!()
        };
        let per: Vec<i64> = items(cx, per)?.iter().map(|v| v.int()).collect();
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

        let Value::List(log) = Env::lookup(cx, g, "log")? else {
            unreachable!()
        };
        let log = items(cx, log)?;
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
            let r = call(cx, Value::Closure(snap), Value::Int(1_000_000))?.int();
            assert_eq!(r, 1_000_000 + c.last_published, "worker {t}'s snapshot");
            let Value::Closure(me) = Env::lookup(cx, snap.env, "self")? else {
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
        println!("name     = {}", show(Env::lookup(cx, g, "name")?));
        Ok(())
    });

    let s = heap.stats();
    println!(
        "done in {:.2?}: {} batches, {} cycles ({} forced, {} automatic), {:.1} MiB allocated \
         in {} objects, total pause {:.2} ms (max {:.3} ms), GC CPU {:.2}%, {} sleeps on a held lock",
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
        WAITS.load(Ordering::Relaxed),
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
