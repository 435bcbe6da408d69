//! `goheap::metrics` (Go's runtime/metrics names, both scopes) and `GOHEAP_STATS` at the
//! exit of a Rust program (`GoAlloc`), which accepts 1, true and yes and reports the peaks
//! and the elapsed time.

#[path = "common/pprof_tool.rs"]
mod pprof_tool;

use goheap::metrics::{self, Sample, Value};
use pprof_tool::*;
use std::process::Command;
use std::time::Duration;

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

fn read_all(names: &[metrics::Description], read: impl Fn(&mut [Sample])) -> Vec<Sample> {
    let mut s: Vec<Sample> = names.iter().map(|d| Sample::new(d.name)).collect();
    read(&mut s);
    for (sample, d) in s.iter().zip(names) {
        let kind_ok = match (&sample.value, d.kind) {
            (Value::Uint64(_), metrics::Kind::Uint64) => true,
            (Value::Float64(v), metrics::Kind::Float64) => v.is_finite() && *v >= 0.0,
            (Value::Histogram(h), metrics::Kind::Histogram) => {
                h.buckets.len() == h.counts.len() + 1 && h.buckets.windows(2).all(|w| w[0] < w[1])
            }
            _ => false,
        };
        assert!(kind_ok, "{}: {:?}", d.name, sample.value);
    }
    s
}

fn u(s: &[Sample], name: &str) -> u64 {
    match s.iter().find(|x| x.name == name).map(|x| &x.value) {
        Some(Value::Uint64(v)) => *v,
        v => panic!("{name}: {v:?}"),
    }
}

#[test]
fn heap_metrics_follow_the_allocations() {
    let before = read_all(metrics::all(), metrics::read);
    let kept: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 1000]).collect();
    let after = read_all(metrics::all(), metrics::read);
    let grew = |n: &str| u(&after, n) - u(&before, n);
    assert!(grew("/gc/heap/allocs:objects") >= 1000);
    assert!(grew("/gc/heap/allocs:bytes") >= 1_000_000);
    assert!(u(&after, "/memory/classes/heap/objects:bytes") >= 1_000_000);
    assert!(u(&after, "/goheap/heap/peak-inuse:bytes") >= 1_000_000);
    assert!(
        u(&after, "/goheap/process/peak-rss:bytes") >= u(&after, "/goheap/process/rss:bytes") / 2
    );
    assert!(
        u(&after, "/memory/classes/heap/objects:bytes")
            + u(&after, "/memory/classes/heap/unused:bytes")
            + u(&after, "/memory/classes/heap/free:bytes")
            + u(&after, "/memory/classes/heap/released:bytes")
            <= u(&after, "/memory/classes/total:bytes")
    );
    let Value::Histogram(h) = &after
        .iter()
        .find(|s| s.name == "/gc/heap/allocs-by-size:bytes")
        .unwrap()
        .value
    else {
        unreachable!()
    };
    // 1000-byte vectors land in the 1024-byte class: (896, 1024].
    let i = h.buckets.iter().position(|&b| b == 1025.0).unwrap() - 1;
    assert!(h.counts[i] >= 1000, "{h:?}");
    let mut unknown = [Sample::new("/no/such:metric")];
    metrics::read(&mut unknown);
    assert_eq!(unknown[0].value, Value::Unsupported);
    drop(kept);
}

#[test]
fn gc_metrics_count_cycles_and_pauses() {
    let heap = goheap::gc::Heap::new();
    let mut m = heap.mutator();
    for _ in 0..20 {
        m.enter(|cx| {
            for i in 0..10_000u64 {
                std::hint::black_box(cx.alloc([i; 4]));
            }
        });
    }
    heap.collect();
    heap.collect();
    let s = read_all(metrics::all_gc(), |s| metrics::read_gc(&heap, s));
    assert!(u(&s, "/gc/cycles/total:gc-cycles") >= 2);
    assert!(u(&s, "/gc/cycles/forced:gc-cycles") >= 2);
    assert_eq!(
        u(&s, "/gc/cycles/total:gc-cycles"),
        u(&s, "/gc/cycles/forced:gc-cycles") + u(&s, "/gc/cycles/automatic:gc-cycles")
    );
    assert!(u(&s, "/gc/heap/allocs:objects") >= 200_000);
    assert!(u(&s, "/gc/heap/goal:bytes") > 0);
    assert_eq!(u(&s, "/gc/gogc:percent"), 100);
    let frac = s
        .iter()
        .find(|x| x.name == "/goheap/gc/cpu-fraction:ratio")
        .unwrap();
    assert!(matches!(frac.value, Value::Float64(f) if (0.0..=1.0).contains(&f)));
}

fn stats_run(value: Option<&str>) -> String {
    let mut cmd = Command::new(example("keep_churn_leak"));
    cmd.args(["goalloc", "", "16", "16", "1"]);
    cmd.env_remove("GOHEAP_PROFILE")
        .env_remove("GOHEAP_PROFILE_RATE");
    match value {
        Some(v) => cmd.env("GOHEAP_STATS", v),
        None => cmd.env_remove("GOHEAP_STATS"),
    };
    let out = run_with_deadline(&mut cmd, Duration::from_secs(120));
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The value of the report line `name`.
fn field(report: &str, name: &str) -> u64 {
    report
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| w.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in\n{report}"))
}

#[test]
fn goheap_stats_at_exit_for_rust_programs() {
    for yes in ["1", "true", "yes", "YES"] {
        let r = stats_run(Some(yes));
        assert!(r.contains("goheap: statistics at exit (pid "), "{yes}: {r}");
        assert!(field(&r, "peak_inuse") >= 16 << 20, "{r}");
        assert!(field(&r, "peak_rss") >= 16 << 20, "{r}");
        assert!(field(&r, "peak_inuse") >= field(&r, "heap_inuse"), "{r}");
        let _ = field(&r, "elapsed_ms");
        assert!(field(&r, "mallocs") >= field(&r, "frees"));
    }
    for no in [None, Some("0"), Some("no"), Some("")] {
        let r = stats_run(no);
        assert!(!r.contains("statistics at exit"), "{no:?}: {r}");
    }
}
