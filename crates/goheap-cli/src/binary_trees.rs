//! binary-trees, GC version: every node is its own `Gc` allocation, collected by goheap.
//!
//! Trees are built bottom-up inside sessions; a session covers a batch of trees holding at
//! least 2^16 nodes (or one tree), so that collections can run between batches while each
//! tree is fully built before any of its nodes can be collected (the benchmark's rule).
//! The long-lived tree is kept in a `Root`.

use std::io::Write;
use std::time::Instant;

use goheap::gc::{Config, Gc, Heap, Session, Trace};

#[derive(Trace)]
struct Node<'gc> {
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
}

fn bottom_up<'gc>(cx: &Session<'gc>, depth: u32) -> Gc<'gc, Node<'gc>> {
    if depth == 0 {
        cx.alloc(Node {
            left: None,
            right: None,
        })
    } else {
        let left = bottom_up(cx, depth - 1);
        let right = bottom_up(cx, depth - 1);
        cx.alloc(Node {
            left: Some(left),
            right: Some(right),
        })
    }
}

fn check(n: &Node) -> u32 {
    1 + match (n.left, n.right) {
        (Some(l), Some(r)) => check(&l) + check(&r),
        _ => 0,
    }
}

/// Builds and checks `iterations` trees of `depth`; returns the sum of the checks.
fn run_depth(heap: &Heap, depth: u32, iterations: u32) -> u32 {
    let mut m = heap.mutator();
    let per_session = ((1u32 << 16) >> (depth + 1)).max(1);
    let mut sum = 0u32;
    let mut done = 0;
    while done < iterations {
        let n = per_session.min(iterations - done);
        sum =
            sum.wrapping_add(m.enter(|cx| {
                (0..n).fold(0u32, |s, _| s.wrapping_add(check(&bottom_up(cx, depth))))
            }));
        done += n;
    }
    sum
}

pub fn run(n: u32, threads: usize, quiet: bool) {
    let t0 = Instant::now();
    let mut config = Config::from_env();
    if std::env::var_os("GOHEAP_DEBUG").is_none() && !quiet {
        config.debug.gctrace = true;
    }
    let heap = Heap::with_config(config);
    let min_depth = 4;
    let max_depth = n.max(min_depth + 2);
    let mut out = String::new();

    let stretch = max_depth + 1;
    let mut m = heap.mutator();
    let c = m.enter(|cx| check(&bottom_up(cx, stretch)));
    out.push_str(&format!("stretch tree of depth {stretch}\t check: {c}\n"));

    let long_lived = m.enter(|cx| cx.root(bottom_up(cx, max_depth)));

    let depths: Vec<u32> = (min_depth..=max_depth).step_by(2).collect();
    let iterations = |d: u32| 1u32 << (max_depth - d + min_depth);
    // More threads than depths would have nothing to do.
    let threads = threads.min(depths.len());
    let results: Vec<u32> = if threads <= 1 {
        depths
            .iter()
            .map(|&d| run_depth(&heap, d, iterations(d)))
            .collect()
    } else {
        // One task per depth, taken by `threads` mutator threads (Go's goroutine per depth
        // on GOMAXPROCS threads).
        let next = std::sync::atomic::AtomicUsize::new(0);
        let slots: Vec<std::sync::Mutex<u32>> = depths.iter().map(|_| Default::default()).collect();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&d) = depths.get(i) else { break };
                    *slots[i].lock().unwrap() = run_depth(&heap, d, iterations(d));
                });
            }
        });
        slots.into_iter().map(|m| m.into_inner().unwrap()).collect()
    };
    for (&d, sum) in depths.iter().zip(results) {
        out.push_str(&format!(
            "{}\t trees of depth {d}\t check: {sum}\n",
            iterations(d)
        ));
    }
    let c = m.enter(|cx| check(&cx.get(&long_lived)));
    out.push_str(&format!(
        "long lived tree of depth {max_depth}\t check: {c}\n"
    ));
    std::io::stdout().write_all(out.as_bytes()).unwrap();
    std::io::stdout().flush().unwrap();
    drop(long_lived);

    let wall = t0.elapsed();
    let s = heap.stats();
    // SAFETY: getrusage writes into the struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let cpu = ru.ru_utime.tv_sec as f64
        + ru.ru_utime.tv_usec as f64 / 1e6
        + ru.ru_stime.tv_sec as f64
        + ru.ru_stime.tv_usec as f64 / 1e6;
    eprintln!(
        "goheap binary-trees {n}: {threads} thread(s), wall {:.2} s, cpu {cpu:.2} s, peak RSS {} MiB",
        wall.as_secs_f64(),
        ru.ru_maxrss / 1024
    );
    eprintln!(
        "  {} GCs, pause total {:.2} ms, max {:.3} ms, GC CPU {:.1}%; {} objects allocated ({} MiB), heap in use {} MiB, goal {}",
        s.num_gc,
        s.pause_total_ns as f64 / 1e6,
        s.max_pause_ns as f64 / 1e6,
        s.gc_cpu_fraction * 100.0,
        s.mallocs,
        s.total_alloc >> 20,
        s.heap_inuse >> 20,
        goal_text(s.next_gc),
    );
    let p = &s.pauses;
    let kinds = [
        ("session entry", p.session_entry),
        ("assist", p.assist),
        ("sweep", p.sweep),
        ("weak upgrade", p.weak_upgrade),
        ("fractional", p.fractional),
    ];
    let shown: Vec<String> = kinds
        .iter()
        .map(|(name, f)| {
            format!(
                "{name} {} (max {:.3} ms, total {:.1} ms)",
                f.count,
                f.max_ns as f64 / 1e6,
                f.total_ns as f64 / 1e6
            )
        })
        .collect();
    eprintln!("  pauses: {}", shown.join(", "));
    let h = &s.pause_histogram;
    eprintln!(
        "  pause lengths: p99 < {} us, p99.9 < {} us, p99.99 < {} us; {} of {} at least 512 us",
        h.quantile_us(0.99),
        h.quantile_us(0.999),
        h.quantile_us(0.9999),
        h.at_least_us(512),
        h.total()
    );
    eprintln!("max-pause-ms: {:.3}", s.max_pause_ns as f64 / 1e6);
    eprintln!("gc-cycles: {}", s.num_gc);
    eprintln!("mallocs: {}", s.mallocs);
    #[cfg(feature = "lock-count")]
    {
        let l = goheap::lock_counts();
        eprintln!(
            "lock-acquisitions: {} (page heap {}, gc span structs {}, central {}, contended {})",
            l.acquired, l.page_heap, l.gc_span_structs, l.central, l.contended
        );
    }
}

/// The heap goal as the summary prints it: MiB, or "off" when there is none (the pacer's
/// goal is `usize::MAX` with `GOHEAP_GOGC=off` and no memory limit).
fn goal_text(next_gc: usize) -> String {
    if next_gc == usize::MAX {
        "off".to_string()
    } else {
        format!("{} MiB", next_gc >> 20)
    }
}
