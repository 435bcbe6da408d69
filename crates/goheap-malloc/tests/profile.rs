//! Heap profiles under `LD_PRELOAD`: a C program whose named functions keep, churn and
//! leak known amounts (`tests/c/keep_churn_leak.c`) gets a profile at exit
//! (`GOHEAP_PROFILE=...%p...`), read back by an independent decoder
//! (`goheap-cli/src/pprof.rs`) and by `go tool pprof -top -cum`; and the profiler runs with
//! every allocation sampled while other threads `dlopen` and `dlclose` libraries, then
//! across a `fork` (`tests/c/profile_dlopen.c`).

mod common;
#[path = "../../goheap-cli/src/pprof.rs"]
mod pprof;
#[path = "../../goheap/tests/common/pprof_tool.rs"]
mod pprof_tool;

use common::*;
use pprof::Profile;
use pprof_tool::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MIB: i64 = 1 << 20;

/// The profile files `dir` holds.
fn profiles_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gz"))
        .collect();
    v.sort();
    v
}

/// Runs keep_churn_leak.c with `rate` and the amounts; returns its profile (written at
/// exit to a file named with its pid).
fn c_profile(name: &str, rate: usize, amounts: [i64; 3]) -> (PathBuf, Profile) {
    let dir = scratch(name);
    let exe = compile(&dir, "keep_churn_leak.c", "kcl", &[]);
    let mut cmd = Command::new(&exe);
    preload(&mut cmd)
        .args(amounts.map(|a| a.to_string()))
        .env("GOHEAP_PROFILE", dir.join("heap.%p.pb.gz"))
        .env("GOHEAP_PROFILE_RATE", rate.to_string());
    let child = run_with_deadline(&mut cmd, Duration::from_secs(300));
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let files = profiles_in(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap();
    let pid: u32 = name
        .strip_prefix("heap.")
        .and_then(|n| n.strip_suffix(".pb.gz"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("%p is not a pid in {name}"));
    assert!(pid > 1);
    let p = Profile::parse(&std::fs::read(&files[0]).unwrap()).expect("the profile decodes");
    (files[0].clone(), p)
}

/// C names keep GCC's clone suffixes (`keep.constprop.0`).
fn named(f: &'static str) -> impl Fn(&str) -> bool {
    move |n: &str| n == f || n.starts_with(&format!("{f}."))
}

fn check_attribution(path: &Path, p: &Profile) {
    let inuse = p.value_index("inuse_space").unwrap();
    let alloc = p.value_index("alloc_space").unwrap();
    for s in &p.samples {
        let top = p.stack(s);
        assert!(
            !top.first()
                .is_some_and(|f| named("malloc")(f) || f.starts_with("goheap")),
            "goheap's frames are left out: {top:?}"
        );
    }
    let keep = p.cum(inuse, named("keep")) as f64 / p.total(inuse) as f64;
    let churn = p.cum(alloc, named("churn")) as f64 / p.total(alloc) as f64;
    check_targets(path, keep, churn, named("keep"), named("churn"));
}

#[test]
fn c_program_profile_at_the_default_rate() {
    let (path, p) = c_profile("profile-default", 512 * 1024, [64, 512, 4]);
    assert_eq!(p.period, 512 * 1024);
    check_attribution(&path, &p);
    let alloc = p.value_index("alloc_space").unwrap();
    let churn = p.cum(alloc, named("churn"));
    check_scaled("churn's alloc_space", churn, 512 * MIB);
}

#[test]
fn c_program_profile_of_every_allocation() {
    let (path, p) = c_profile("profile-all", 1, [8, 32, 1]);
    check_attribution(&path, &p);
    let inuse = p.value_index("inuse_space").unwrap();
    let alloc = p.value_index("alloc_space").unwrap();
    let near = |got: i64, want: i64| got >= want && got <= want + want / 50 + MIB;
    let (keep, leak) = (p.cum(inuse, named("keep")), p.cum(inuse, named("leak")));
    let churn = p.cum(alloc, named("churn"));
    assert!(near(keep, 8 * MIB), "keep: {keep}");
    assert!(near(leak, MIB), "leak: {leak}");
    assert!(near(churn, 32 * MIB), "churn: {churn}");
    assert_eq!(p.cum(inuse, named("churn")), 0);
}

#[test]
fn profiling_every_allocation_while_threads_dlopen_and_fork() {
    let dir = scratch("profile-dlopen");
    let libs: Vec<PathBuf> = (0..4)
        .map(|i| {
            compile(
                &dir,
                "tls_mod.c",
                &format!("libmod{i}.so"),
                &["-shared", "-fPIC"],
            )
        })
        .collect();
    let exe = compile(&dir, "profile_dlopen.c", "profile_dlopen", &["-ldl"]);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let r = run(
        preload(&mut Command::new(&exe))
            .args(&libs)
            .env("GOHEAP_PROFILE", out.join("p.%p.pb.gz"))
            .env("GOHEAP_PROFILE_RATE", "1"),
        b"",
        Duration::from_secs(120),
    );
    r.assert_ok("profile_dlopen.c");
    let files = profiles_in(&out);
    assert_eq!(
        files.len(),
        2,
        "parent and child each write theirs: {files:?}"
    );
    let mut found = [false; 2];
    for f in &files {
        let p = Profile::parse(&std::fs::read(f).unwrap()).expect("the profile decodes");
        let alloc = p.value_index("alloc_objects").unwrap();
        found[0] |= p.cum(alloc, named("allocate_while_loading")) >= 2 * 300 * 20 * 8;
        found[1] |= p.cum(alloc, named("child_work")) >= 1000;
    }
    assert_eq!(found, [true, true], "{files:?}");
}

/// The leak report's groups: (kind, bytes, objects, frame names).
fn leak_groups(stderr: &str) -> Vec<(String, u64, u64, Vec<String>)> {
    let mut out: Vec<(String, u64, u64, Vec<String>)> = Vec::new();
    for line in stderr.lines() {
        if let Some((kind, rest)) = line.split_once(" of ") {
            if let Some(rest) = rest.strip_suffix(" object(s) allocated from:") {
                let (bytes, count) = rest.split_once(" byte(s) in ").unwrap();
                out.push((
                    kind.into(),
                    bytes.parse().unwrap(),
                    count.parse().unwrap(),
                    vec![],
                ));
            }
        } else if let Some(frame) = line.trim_start().strip_prefix('#') {
            let name = frame
                .split(" in ")
                .nth(1)
                .unwrap()
                .split(" (")
                .next()
                .unwrap();
            out.last_mut().unwrap().3.push(name.into());
        }
    }
    out
}

#[test]
fn leak_report_names_exactly_the_leaking_function() {
    let dir = scratch("leaks");
    let exe = compile(&dir, "keep_churn_leak.c", "kcl", &[]);
    let r = run(
        preload(&mut Command::new(&exe))
            .args(["8", "32", "1"])
            .env("GOHEAP_LEAKS", "1"),
        b"",
        Duration::from_secs(120),
    );
    r.assert_ok("keep_churn_leak.c");
    assert!(
        r.stderr.contains("ERROR: goheap: detected memory leaks"),
        "{}",
        r.stderr
    );
    let groups = leak_groups(&r.stderr);
    let leaks: Vec<_> = groups.iter().filter(|g| g.0.ends_with("leak")).collect();
    // Every leaked block was allocated by `leak` (the global table keeps `keep`'s blocks
    // reachable; `churn` freed everything), and `leak`'s 1 MiB is there, but for a block or
    // two that a stale word on the exiting thread's stack may still point to (the
    // conservative scan cannot tell it from a live pointer, nor can LeakSanitizer's).
    assert!(!leaks.is_empty(), "{}", r.stderr);
    for g in &leaks {
        assert!(named("leak")(&g.3[0]), "{g:?}\n{}", r.stderr);
        assert!(!g.3.iter().any(|f| named("keep")(f) || named("churn")(f)));
    }
    assert_eq!(leaks[0].0, "Direct leak");
    // Leaks first, direct before indirect, each kind biggest first; then the blocks libc,
    // the loader and std keep for the life of the process.
    let rank = |kind: &str| match kind {
        "Direct leak" => 0,
        "Indirect leak" => 1,
        "Process-lifetime block" => 2,
        other => panic!("unknown group kind {other:?}"),
    };
    for w in groups.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(
            (rank(&a.0), u64::MAX - a.1) <= (rank(&b.0), u64::MAX - b.1),
            "groups out of order: {:?} before {:?}\n{}",
            (&a.0, a.1),
            (&b.0, b.1),
            r.stderr
        );
    }
    let bytes: u64 = leaks.iter().map(|g| g.1).sum();
    assert!(
        (MIB as u64 * 9 / 10..MIB as u64 * 21 / 20).contains(&bytes),
        "{bytes}"
    );
    assert!(r
        .stderr
        .contains(&format!("SUMMARY: goheap: {bytes} byte(s) leaked")));
}
