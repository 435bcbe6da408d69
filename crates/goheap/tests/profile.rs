//! Heap profiles (`goheap::profile`), end to end: the `keep_churn_leak` example runs with
//! profiling on, writes a profile while its kept memory is held, and the profile is read
//! back twice, by an independent decoder (`goheap-cli/src/pprof.rs`: its own protobuf
//! reader, miniz_oxide's inflater) and by Go's `go tool pprof -top -cum`. For both faces
//! of goheap a Rust program uses, `GoAlloc` and GC heaps:
//!
//! - at the default rate (512 KiB), `keep` has at least 80% of `inuse_space` and `churn`
//!   at least 60% of `alloc_space` (the targets), and the scaled `alloc_space` of
//!   `churn` is within 10% of the bytes it allocated (about a thousand samples: 3 standard
//!   deviations);
//! - at rate 1 (every allocation), the figures are exact;
//! - no stack starts with goheap's own frames, GC samples carry their type, and every value
//!   has Go's sample types.

#[path = "../../goheap-cli/src/pprof.rs"]
mod pprof;
#[path = "common/pprof_tool.rs"]
mod pprof_tool;

use pprof::Profile;
use pprof_tool::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MIB: i64 = 1 << 20;

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("profile-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the example on heap `face` with `rate` and amounts `[keep, churn, leak]` in MiB;
/// returns the profile's path.
fn profile_of(face: &str, rate: usize, amounts: [i64; 3]) -> PathBuf {
    let dir = scratch(&format!("{face}-{rate}"));
    let out = dir.join("heap.pb.gz");
    let run = run_with_deadline(
        Command::new(example("keep_churn_leak"))
            .arg(face)
            .arg(&out)
            .args(amounts.map(|a| a.to_string()))
            .env("GOHEAP_PROFILE_RATE", rate.to_string())
            .env_remove("GOHEAP_PROFILE"),
        Duration::from_secs(300),
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

fn decode(path: &Path) -> Profile {
    Profile::parse(&std::fs::read(path).unwrap()).expect("the profile decodes")
}

fn named(f: &'static str) -> impl Fn(&str) -> bool {
    move |n: &str| n.ends_with(&format!("::{f}"))
}

/// Checks shared by every profile.
fn check_shape(p: &Profile, rate: i64) {
    let types: Vec<(&str, &str)> = p
        .sample_types
        .iter()
        .map(|(t, u)| (t.as_str(), u.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes")
        ]
    );
    assert_eq!(p.period, rate);
    assert!(!p.samples.is_empty());
    for s in &p.samples {
        let stack = p.stack(s);
        let own = |f: &&str| {
            f.starts_with("goheap::") || f.starts_with("<goheap::") || f.starts_with("__rust_alloc")
        };
        assert!(
            !stack.first().is_some_and(own),
            "goheap's own frames are left out of the top of the stack: {stack:?}"
        );
        assert!(s.values.iter().all(|&v| v >= 0));
        assert!(s.values[2] <= s.values[0] && s.values[3] <= s.values[1]);
    }
}

/// The attribution targets, read by the decoder and by `go tool pprof`.
fn check_attribution(path: &Path, p: &Profile) {
    let inuse = p.value_index("inuse_space").unwrap();
    let alloc = p.value_index("alloc_space").unwrap();
    let keep = p.cum(inuse, named("keep")) as f64 / p.total(inuse) as f64;
    let churn = p.cum(alloc, named("churn")) as f64 / p.total(alloc) as f64;
    check_targets(path, keep, churn, named("keep"), named("churn"));
}

fn default_rate(face: &str) -> Profile {
    let path = profile_of(face, 512 * 1024, [64, 512, 4]);
    let p = decode(&path);
    check_shape(&p, 512 * 1024);
    check_attribution(&path, &p);
    let alloc = p.value_index("alloc_space").unwrap();
    let churn = p.cum(alloc, named("churn"));
    check_scaled("churn's alloc_space", churn, 512 * MIB);
    p
}

/// At rate 1 every allocation is recorded: the figures are the program's.
fn every_allocation(face: &str) -> Profile {
    let path = profile_of(face, 1, [8, 32, 1]);
    let p = decode(&path);
    check_shape(&p, 1);
    check_attribution(&path, &p);
    let inuse = p.value_index("inuse_space").unwrap();
    let alloc = p.value_index("alloc_space").unwrap();
    // Within the object sizes' rounding to size classes and the vectors holding them.
    let near = |got: i64, want: i64| got >= want && got <= want + want / 50 + MIB;
    let keep = p.cum(inuse, named("keep"));
    let leak = p.cum(inuse, named("leak"));
    let churn_inuse = p.cum(inuse, named("churn"));
    let churn = p.cum(alloc, named("churn"));
    assert!(near(keep, 8 * MIB), "keep: {keep}");
    assert!(near(leak, MIB), "leak: {leak}");
    assert!(near(churn, 32 * MIB), "churn: {churn}");
    // Everything churn allocates is freed, but what goheap's own structures grew by
    // meanwhile (a GC heap's span lists are `Vec`s on the global allocator).
    assert!(churn_inuse <= 64 * 1024, "churn keeps {churn_inuse} bytes");
    p
}

#[test]
fn goalloc_profile_at_the_default_rate() {
    default_rate("goalloc");
}

#[test]
fn goalloc_profile_of_every_allocation() {
    every_allocation("goalloc");
}

#[test]
fn gc_profile_at_the_default_rate() {
    let p = default_rate("gc");
    // GC samples carry their type. (The example's global allocator is GoAlloc, so the
    // collector's own bookkeeping that grows during `churn`, a `Vec` of spans, is sampled
    // too, without a type: a few samples at most.)
    let alloc = p.value_index("alloc_space").unwrap();
    let (mut typed, mut all) = (0, 0);
    for s in p
        .samples
        .iter()
        .filter(|s| p.stack(s).iter().any(|f| named("churn")(f)))
    {
        let ty = s.labels.iter().find(|(k, _)| k == "type").map(|(_, v)| v);
        if let Some(ty) = ty {
            assert_eq!(ty, &pprof::LabelValue::Str("[u64]".into()));
            typed += s.values[alloc];
        }
        all += s.values[alloc];
    }
    assert!(
        typed as f64 >= 0.95 * all as f64,
        "{typed} of {all} bytes typed"
    );
}

#[test]
fn gc_profile_of_every_allocation() {
    every_allocation("gc");
}

/// `GOHEAP_LEAKS` in a Rust program: every leaked group comes from `explicit::leak` (`keep`'s
/// and `churn`'s memory was freed before exit), and std's own blocks are not among them.
#[test]
fn goalloc_leak_report_names_the_leaking_function() {
    let run = run_with_deadline(
        Command::new(example("keep_churn_leak"))
            .args(["goalloc", "", "4", "8", "1"])
            .env("GOHEAP_LEAKS", "yes")
            .env_remove("GOHEAP_PROFILE_RATE")
            .env_remove("GOHEAP_PROFILE"),
        Duration::from_secs(300),
    );
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        err.contains("ERROR: goheap: detected memory leaks"),
        "{err}"
    );
    let leaks = err.split("\n\n").filter(|g| g.contains(" leak of "));
    let mut n = 0;
    for g in leaks {
        assert!(g.contains("keep_churn_leak::explicit::leak "), "{g}");
        assert!(!g.contains("::keep ") && !g.contains("::churn "), "{g}");
        n += 1;
    }
    assert!(n >= 1, "{err}");
}

/// `GOHEAP_PROFILE` in a Rust program (`GoAlloc`): the profile is written at exit to the
/// file named, `%p` replaced by the pid, and holds what was live then: `leak`'s memory, none
/// of `keep`'s (dropped before exit), and all that `churn` allocated.
#[test]
fn goalloc_profile_written_at_exit() {
    let dir = scratch("goalloc-at-exit");
    let run = run_with_deadline(
        Command::new(example("keep_churn_leak"))
            .args(["goalloc", "", "4", "16", "1"])
            .env("GOHEAP_PROFILE", dir.join("heap.%p.pb.gz"))
            .env("GOHEAP_PROFILE_RATE", "1"),
        Duration::from_secs(300),
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap();
    let pid = name
        .strip_prefix("heap.")
        .and_then(|n| n.strip_suffix(".pb.gz"))
        .unwrap_or_else(|| panic!("{name}"));
    assert!(
        !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()),
        "%p is not a pid in {name}"
    );
    let p = decode(&files[0]);
    check_shape(&p, 1);
    let inuse = p.value_index("inuse_space").unwrap();
    let alloc = p.value_index("alloc_space").unwrap();
    let near = |got: i64, want: i64| got >= want && got <= want + want / 50 + MIB;
    let (keep, leak) = (p.cum(inuse, named("keep")), p.cum(inuse, named("leak")));
    let churn = p.cum(alloc, named("churn"));
    assert_eq!(keep, 0, "keep's memory was freed before exit");
    assert!(near(leak, MIB), "leak: {leak}");
    assert!(near(churn, 16 * MIB), "churn: {churn}");
}
