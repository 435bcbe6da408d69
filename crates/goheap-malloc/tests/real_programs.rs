//! Real programs on goheap: python3 (with `PYTHONMALLOC=malloc`, so that every object comes
//! from `malloc`), the sqlite3 shell, git and gcc each run a workload twice, once as they are
//! and once with the library preloaded, and must print exactly the same. The preloaded run
//! has `GOHEAP_STATS=1`, and its report proves that goheap was loaded and did the work; no
//! run may print a goheap error. The workloads are in `tests/programs/`.
//!
//! The tools come from Debian packages: `apt-get install -y python3 sqlite3 git gcc`. A
//! missing one fails its test with the package to install.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(300);

fn workload(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(name)
}

/// `cmd` as it is (`preloaded == false`: no LD_PRELOAD, no GOHEAP_STATS), or on goheap with
/// statistics.
fn setup(cmd: &mut Command, preloaded: bool) -> &mut Command {
    if preloaded {
        preload(cmd).env("GOHEAP_STATS", "1")
    } else {
        cmd.env_remove("LD_PRELOAD").env_remove("GOHEAP_STATS")
    }
}

/// Checks the preloaded run against the plain one.
fn check(what: &str, plain: &Run, goheap: &Run, min_mallocs: u64) {
    plain.assert_ok(&format!("{what} without goheap"));
    goheap.assert_ok(&format!("{what} on goheap"));
    assert_no_goheap_error(&goheap.stderr, what);
    assert!(
        plain.stdout == goheap.stdout,
        "{what}: output differs on goheap\n--- plain ---\n{}\n--- goheap ---\n{}",
        tail(&plain.stdout),
        tail(&goheap.stdout)
    );
    assert!(!plain.stdout.is_empty(), "{what}: no output");
    assert_served(&goheap.stderr, min_mallocs, what);
    eprintln!(
        "{what}: {:?} without goheap, {:?} on goheap",
        plain.elapsed, goheap.elapsed
    );
}

#[test]
fn python3_with_pythonmalloc_malloc() {
    let py = python3();
    let go = |preloaded| {
        let mut cmd = Command::new(&py);
        cmd.arg(workload("workload.py"))
            .env("PYTHONMALLOC", "malloc")
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        run(setup(&mut cmd, preloaded), b"", TIMEOUT)
    };
    let (plain, goheap) = (go(false), go(true));
    check("python3", &plain, &goheap, 1_000_000);
    assert!(plain.stdout.ends_with("done\n"), "{}", plain.stdout);
}

#[test]
fn sqlite3_with_100000_rows() {
    let sqlite = require_tool("sqlite3", "sqlite3");
    let sql = std::fs::read(workload("workload.sql")).expect("workload.sql");
    let go = |preloaded| {
        let dir = scratch("sqlite");
        let mut cmd = Command::new(&sqlite);
        cmd.arg(dir.join("test.db"));
        run(setup(&mut cmd, preloaded), &sql, TIMEOUT)
    };
    let (plain, goheap) = (go(false), go(true));
    check("sqlite3", &plain, &goheap, 100_000);
    assert!(plain.stdout.starts_with("100000|"), "{}", plain.stdout);
    assert!(plain.stdout.ends_with("ok\n"), "{}", plain.stdout);
}

/// A small repository's life: init, five commits, log, gc, checks. Returns the last
/// command's run with the transcript of every command's output as its stdout, every
/// command's stderr as its stderr, and their total time.
fn git_session(preloaded: bool) -> Run {
    let git = require_tool("git", "git");
    let dir = scratch("git");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let repo = dir.join("repo");
    let mut transcript = String::new();
    let mut stderr = String::new();
    let mut elapsed = Duration::ZERO;
    let mut last = None;
    let mut step = |args: &[&str], cwd: &Path| {
        let mut cmd = Command::new(&git);
        cmd.current_dir(cwd)
            .env("HOME", &home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
            .env("LC_ALL", "C")
            .args([
                "-c",
                "user.name=Go Heap",
                "-c",
                "user.email=goheap@example.com",
            ])
            .args(["-c", "init.defaultBranch=main", "-c", "gc.auto=0"])
            .args(args);
        let r = run(setup(&mut cmd, preloaded), b"", TIMEOUT);
        r.assert_ok(&format!("git {args:?}"));
        transcript.push_str(&format!("$ git {}\n{}", args.join(" "), r.stdout));
        stderr.push_str(&r.stderr);
        elapsed += r.elapsed;
        last = Some(r);
    };
    step(&["init", "-q", "repo"], &dir);
    for c in 1..=5 {
        for f in 1..=40 {
            let text: String = (f..=f * c * 10).map(|i| format!("{i}\n")).collect();
            std::fs::write(repo.join(format!("file{f}.txt")), text).unwrap();
        }
        step(&["add", "."], &repo);
        step(&["commit", "-q", "-m", &format!("commit {c}")], &repo);
    }
    step(&["log", "--format=%H %an %s"], &repo);
    step(&["gc", "-q"], &repo);
    step(&["count-objects", "-v"], &repo);
    step(&["fsck", "--no-progress"], &repo);
    step(&["log", "--stat", "-2"], &repo);
    step(&["diff", "HEAD~3", "--stat"], &repo);
    step(&["show", "HEAD~1:file7.txt"], &repo);
    let mut r = last.expect("ran git");
    // count-objects prints pack sizes, which may depend on delta search order; drop them.
    r.stdout = transcript
        .lines()
        .filter(|l| !l.starts_with("size"))
        .map(|l| format!("{l}\n"))
        .collect();
    r.stderr = stderr;
    r.elapsed = elapsed;
    r
}

#[test]
fn git_init_commit_log_gc() {
    let plain = git_session(false);
    let goheap = git_session(true);
    check("git", &plain, &goheap, 1000);
    assert!(plain.stdout.contains("commit 5"), "{}", plain.stdout);
    // git gc runs other git processes (pack-objects, ...): each printed its own report.
    assert!(
        reports(&goheap.stderr).len() > 20,
        "{}",
        tail(&goheap.stderr)
    );
}

#[test]
fn gcc_compiles_and_runs_a_c_program() {
    let gcc = require_tool("gcc", "gcc");
    let src = workload("compile_me.c");
    let go = |preloaded: bool| {
        let dir = scratch("gcc");
        let exe = dir.join("compile_me");
        let asm = run(
            setup(
                Command::new(&gcc).args(["-O2", "-S", "-o", "-"]).arg(&src),
                preloaded,
            ),
            b"",
            TIMEOUT,
        );
        let build = run(
            setup(
                Command::new(&gcc).args(["-O2", "-o"]).arg(&exe).arg(&src),
                preloaded,
            ),
            b"",
            TIMEOUT,
        );
        build.assert_ok("gcc -o compile_me");
        let prog = run(setup(&mut Command::new(&exe), preloaded), b"", TIMEOUT);
        let bin = std::fs::read(&exe).expect("the compiled program");
        (asm, build.stderr, prog, bin)
    };
    let (asm0, _, prog0, bin0) = go(false);
    let (asm1, build_stderr, prog1, bin1) = go(true);
    check("gcc -S", &asm0, &asm1, 10_000);
    // gcc, cc1, as, collect2 and ld each printed a report.
    assert_no_goheap_error(&build_stderr, "gcc");
    assert_served(&build_stderr, 10_000, "gcc");
    assert!(reports(&build_stderr).len() >= 4, "{build_stderr}");
    check("compiled program", &prog0, &prog1, 20_000);
    assert!(prog0.stdout.starts_with("primes below 200000: 17984\n"));
    assert!(
        bin0 == bin1,
        "gcc produced a different executable on goheap"
    );
}
