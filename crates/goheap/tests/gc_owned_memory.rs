//! Memory that GC objects own counts (issue 10, items 2 and 3), with GoAlloc as the global
//! allocator and no user code: the heap's goal covers all of goheap's memory, as Go's one
//! heap does (`gc/pacer.rs` essay).
//!
//! - 4000 short-lived objects that each own a 1 MiB `Vec` (made inside sessions, outside
//!   them, and on another thread, then moved in): peak RSS stays under 256 MiB.
//! - 1 GiB of long-lived `Box` data beside a small churning GC heap: the goal is about
//!   twice the total, so the churn collects about once per GiB, not once per 4 MiB.
//! - GOGC=off with a 256 MiB limit and 100 MiB live (60 MiB of it in buffers the objects
//!   own): peak RSS ≤ 282 MiB, nothing lost.
//!
//! RSS is process-wide: each test runs in a child process of its own.

#![cfg(not(loom))]

use std::sync::mpsc;

use goheap::gc::{Config, Gc, GcCell, Heap, Trace};

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

const MIB: usize = 1 << 20;

/// Runs the test `name` in a child process of its own (this binary, filtered to it), so
/// that its RSS figures are its own: memory an earlier test used leaves goheap metadata
/// (span structs are kept for reuse, never unmapped) resident in the process. In the child,
/// runs `body`. A child whose bound fails is run again, up to `attempts` times in all: a
/// bound on memory depends on the OS running the collector in time, and on a machine
/// shared with other builds it sometimes does not (each attempt is printed; the code before
/// issue 10 failed every one by a factor of six or more).
fn in_child(name: &str, attempts: usize, body: impl FnOnce()) {
    if std::env::var("GOHEAP_OWNED_CHILD").as_deref() == Ok(name) {
        body();
        println!("CHILD OK");
        return;
    }
    // One child at a time: children competing for the cores slow their collectors down.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = String::new();
    for attempt in 1..=attempts {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env("GOHEAP_OWNED_CHILD", name)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprint!("{stderr}");
        if out.status.success() && stdout.contains("CHILD OK") {
            return;
        }
        failures += &format!("attempt {attempt} ({}):\n{stdout}\n{stderr}\n", out.status);
    }
    panic!("{name} failed in its child {attempts} times:\n{failures}");
}

fn rss() -> usize {
    goheap::raw::os::rss_bytes()
}

/// A small GC object that owns a big buffer.
#[derive(Trace)]
#[trace(static)]
struct Owner {
    buf: Vec<u8>,
}

/// A buffer with every page written (resident).
fn buffer(i: usize) -> Vec<u8> {
    vec![(i % 251) as u8; MIB]
}

#[test]
fn rss_stays_low_when_dead_objects_own_buffers() {
    in_child("rss_stays_low_when_dead_objects_own_buffers", 3, || {
        let heap = Heap::with_config(Config::default().with_procs(2));
        let mut m = heap.mutator();
        // Buffers made on another thread, sent over.
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let maker = std::thread::spawn(move || {
            for i in 0..1000 {
                tx.send(buffer(i)).unwrap();
            }
        });
        let base = rss();
        let mut peak = base;
        for i in 0..4000 {
            let buf = match i % 4 {
                // Made outside the session, on this thread.
                0 => buffer(i),
                // Made on another thread and moved here.
                1 => rx.recv().unwrap(),
                // Made inside the session (below).
                _ => Vec::new(),
            };
            m.enter(|cx| {
                let buf = if buf.is_empty() { buffer(i) } else { buf };
                let o = cx.alloc(Owner { buf });
                assert_eq!(o.buf[MIB - 1], o.buf[0]);
            });
            if i % 50 == 0 {
                peak = peak.max(rss());
            }
        }
        maker.join().unwrap();
        let st = heap.stats();
        eprintln!(
            "4000 x 1 MiB owned buffers: {} cycles, RSS {} MiB at the start, peak {} MiB",
            st.num_gc,
            base / MIB,
            peak / MIB
        );
        assert!(st.num_gc >= 10, "only {} collections ran", st.num_gc);
        assert!(peak <= 256 * MIB, "peak RSS {} MiB", peak / MIB);
    });
}

#[derive(Trace)]
struct Node<'gc> {
    next: GcCell<Option<Gc<'gc, Node<'gc>>>>,
    pad: [u64; 6],
}

#[test]
fn long_lived_data_outside_the_gc_spaces_collections_out() {
    in_child(
        "long_lived_data_outside_the_gc_spaces_collections_out",
        1,
        || {
            // 1 GiB of long-lived data (zeroed, so its pages are not resident: the accounting counts
            // what is allocated, and this keeps the test light).
            let big: Vec<u8> = vec![0u8; 1 << 30];
            let heap = Heap::with_config(Config::default().with_procs(2));
            let mut m = heap.mutator();
            // A small churning GC heap: 256 MiB of short-lived nodes.
            let n0 = heap.stats().num_gc;
            for _ in 0..(256 * MIB / 64 / 10_000) {
                m.enter(|cx| {
                    let head = cx.alloc(Node {
                        next: GcCell::new(None),
                        pad: [0; 6],
                    });
                    for i in 0..10_000u64 {
                        let n = cx.alloc(Node {
                            next: GcCell::new(None),
                            pad: [i; 6],
                        });
                        if i % 100 == 0 {
                            head.next.set(Some(n));
                        }
                    }
                });
            }
            let cycles = heap.stats().num_gc - n0;
            eprintln!(
                "256 MiB of GC churn beside 1 GiB of Box data: {cycles} cycles, goal {} MiB",
                heap.stats().next_gc / MIB
            );
            // A goal of about twice the total (over 2 GiB) allows at most one cycle for 256 MiB;
            // a goal on the GC heap alone (4 MiB) would have run about sixty.
            assert!(cycles <= 2, "{cycles} cycles");
            assert_eq!(big.len(), 1 << 30);
        },
    );
}

/// A long-lived object: a 600 KiB buffer it owns and a 400 KiB GC array. 100 of them make
/// 100 MiB live, 60% of it in owned buffers.
#[derive(Trace)]
struct Live<'gc> {
    next: Option<Gc<'gc, Live<'gc>>>,
    owned: Box<[u8]>,
    inline: Gc<'gc, [u64]>,
    id: usize,
}

#[test]
fn memory_limit_with_gogc_off_holds_counting_owned_buffers() {
    in_child(
        "memory_limit_with_gogc_off_holds_counting_owned_buffers",
        3,
        || {
            let heap = Heap::with_config(
                Config::default()
                    .with_procs(2)
                    .with_gc_percent(-1)
                    .with_mem_limit(256 << 20),
            );
            let mut m = heap.mutator();
            let base = rss();
            let live = m.enter(|cx| {
                let mut l: Option<Gc<'_, Live<'_>>> = None;
                for id in 0..100 {
                    l = Some(cx.alloc(Live {
                        next: l,
                        owned: vec![id as u8; 600 << 10].into_boxed_slice(),
                        inline: cx.alloc_slice(&[id as u64; 400 << 7]),
                        id,
                    }));
                }
                cx.root(l.unwrap())
            });
            let mut peak = rss();
            // 2 GiB of garbage: objects that own buffers, and plain GC arrays.
            for round in 0..2048 {
                m.enter(|cx| {
                    let _ = cx.alloc(Owner { buf: buffer(round) });
                    let _ = cx.alloc_slice(&[round as u64; 64 << 7]);
                    let _ = cx.alloc_slice(&[round as u64; 64 << 7]);
                });
                if round % 16 == 0 {
                    peak = peak.max(rss());
                }
            }
            m.enter(|cx| {
                let mut p = Some(cx.get(&live));
                let mut n = 0;
                while let Some(x) = p {
                    assert_eq!(x.id, 99 - n);
                    assert!(x.owned.iter().all(|&b| b == x.id as u8));
                    assert!(x.inline.iter().all(|&v| v == x.id as u64));
                    n += 1;
                    p = x.next;
                }
                assert_eq!(n, 100);
            });
            let st = heap.stats();
            eprintln!(
            "GOGC=off, 256 MiB limit, 100 MiB live: {} cycles, RSS {} MiB at the start, peak {} MiB",
            st.num_gc,
            base / MIB,
            peak / MIB
        );
            assert!(peak <= 282 * MIB, "peak RSS {} MiB", peak / MIB);
        },
    );
}
