//! Shared by the observability tests of goheap (`tests/profile.rs`, `tests/metrics.rs`)
//! and of the `LD_PRELOAD` library (`goheap-malloc/tests/profile.rs`, included with
//! `#[path]`): finding an example program, running a program with a deadline, and reading
//! a profile with Go's `go tool pprof -top -cum`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Runs `cmd` to the end, or kills it after `limit` and fails (a hang is a failure).
pub fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = tx.send(());
        out
    });
    if rx.recv_timeout(limit).is_err() {
        // SAFETY: signalling our own child, which has not been reaped (the waiter has not
        // returned).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = waiter.join();
        panic!("{cmd:?} did not finish within {limit:?}");
    }
    waiter.join().unwrap().expect("waiting for the child")
}

/// Go's `go` command: `$GOHEAP_GO`, else `go` on `PATH` (CI installs Debian's golang-go).
pub fn go() -> PathBuf {
    if let Some(g) = std::env::var_os("GOHEAP_GO") {
        return g.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("go"))
        .find(|g| g.is_file())
        .expect("these tests read profiles with `go tool pprof`: install golang-go (apt-get install golang-go) or set GOHEAP_GO")
}

/// `go tool pprof -top -cum -sample_index=INDEX FILE`: (function name, cum %) per line.
pub fn pprof_top_cum(file: &std::path::Path, index: &str) -> Vec<(String, f64)> {
    let out = run_with_deadline(
        Command::new(go())
            .args(["tool", "pprof", "-top", "-cum", "-nodecount=200"])
            .arg(format!("-sample_index={index}"))
            .arg(file)
            .env("GOTOOLCHAIN", "local")
            .env("HOME", std::env::temp_dir()),
        Duration::from_secs(120),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "go tool pprof failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Rows: flat flat% sum% cum cum% name...
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || !f[4].ends_with('%') {
                return None;
            }
            let pct = f[4].trim_end_matches('%').parse().ok()?;
            Some((f[5..].join(" "), pct))
        })
        .collect()
}

/// The attribution targets: `keep` has at least 80% of `inuse_space` and `churn` at
/// least 60% of `alloc_space`, both as the independent decoder found them (`keep_share`,
/// `churn_share`) and as `go tool pprof -top -cum` shows them for the profile at `path`.
pub fn check_targets(
    path: &std::path::Path,
    keep_share: f64,
    churn_share: f64,
    keep: impl Fn(&str) -> bool,
    churn: impl Fn(&str) -> bool,
) {
    assert!(keep_share >= 0.8, "keep has {keep_share:.3} of inuse_space");
    assert!(
        churn_share >= 0.6,
        "churn has {churn_share:.3} of alloc_space"
    );
    let top = pprof_top_cum(path, "inuse_space");
    let k = cum_percent(&top, keep);
    assert!(
        k >= 80.0,
        "go tool pprof: keep has {k}% of inuse_space\n{top:?}"
    );
    let top = pprof_top_cum(path, "alloc_space");
    let c = cum_percent(&top, churn);
    assert!(
        c >= 60.0,
        "go tool pprof: churn has {c}% of alloc_space\n{top:?}"
    );
}

/// The accuracy target at the default rate: a scaled total within 10% of the
/// `truth` (with about a thousand samples, three standard deviations).
pub fn check_scaled(what: &str, scaled: i64, truth: i64) {
    let err = (scaled - truth) as f64 / truth as f64;
    assert!(
        err.abs() <= 0.10,
        "{what}'s scaled total {scaled} is off by {:.1}% from {truth}",
        err * 100.0
    );
}

/// The largest cum % of a function whose name satisfies `pred` in `rows`.
pub fn cum_percent(rows: &[(String, f64)], pred: impl Fn(&str) -> bool) -> f64 {
    rows.iter()
        .filter(|(n, _)| pred(n))
        .map(|(_, p)| *p)
        .fold(0.0, f64::max)
}

/// goheap's example `name`, built now in the test's profile (a no-op when it is fresh:
/// `cargo test --test X` does not build examples, and a stale one would test old code).
pub fn example(name: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "goheap", "--example", name]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let out = run_with_deadline(&mut cmd, Duration::from_secs(900));
    assert!(
        out.status.success(),
        "building the example {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    profile_dir.join("examples").join(name)
}
