//! Shared test machinery: find the library, build C programs, run programs with and without
//! it, and read its statistics.
//!
//! # Finding the library
//!
//! The crate is built as both a `cdylib` and an `rlib`. Cargo builds a package's library
//! before its integration tests only when the library can be linked into them, which a
//! `cdylib` alone cannot: with `crate-type = ["cdylib"]`, `cargo test` from a clean target
//! directory never produces the `.so`. With the `rlib` beside it, the one `rustc` run that
//! makes the rlib the tests depend on also writes `libgoheap_malloc.so` into `deps/`, next
//! to the test executables, so the library under test is always the one built from the
//! current sources in the current profile. (Cargo copies it to `target/<profile>/` only for
//! `cargo build`.) The tests never name the rlib, so its `malloc` symbols are not linked into
//! the test binaries. Should the `.so` be missing anyway (a future Cargo), the tests run
//! `cargo build` for it and use `target/<profile>/libgoheap_malloc.so`.
//!
//! # Programs
//!
//! C and C++ sources live in `tests/c/`; each test compiles the ones it needs into its own
//! scratch directory under Cargo's `CARGO_TARGET_TMPDIR`, with `-fno-builtin` so that the
//! compiler neither removes `malloc`/`free` pairs nor assumes anything about them. Every
//! program runs with a timeout, so a deadlock (in a forked child, say) fails the test instead
//! of hanging it. A tool that is missing fails the test with the Debian package to install.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The shared library under test.
pub fn so_path() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let deps = exe.parent().expect("test executable has a directory");
        let name = "libgoheap_malloc.so";
        if deps.join(name).is_file() {
            return deps.join(name);
        }
        // Fallback: build it (a no-op when fresh) and take Cargo's copy in target/<profile>/.
        let profile_dir = deps.parent().expect("deps/ has a parent");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "goheap-malloc"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build for the .so");
        assert!(status.success(), "cargo build -p goheap-malloc failed");
        let so = profile_dir.join(name);
        assert!(so.is_file(), "{} not found after cargo build", so.display());
        so
    })
}

/// A fresh, empty scratch directory for one test, under Cargo's `CARGO_TARGET_TMPDIR`. The
/// names depend only on the test binary and the order of calls, so each run replaces the
/// previous run's directories (kept until then, for a look after a failure) instead of
/// piling up new ones.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let exe = std::env::current_exe().expect("current_exe");
    let binary = exe.file_stem().expect("executable name").to_string_lossy();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("goheap-malloc-{binary}"))
        .join(format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating scratch directory");
    dir
}

/// Finds `tool` on `PATH`, or fails the test naming the Debian package that provides it.
pub fn require_tool(tool: &str, apt_package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{tool}` is not installed (needed by this test): install it with \
         `apt-get install -y {apt_package}`"
    );
}

/// Debian's python3 if present (the pyenv shims on some machines are shell scripts that
/// would run under the library too), else `python3` on `PATH`.
pub fn python3() -> PathBuf {
    let debian = Path::new("/usr/bin/python3");
    if debian.is_file() {
        return debian.to_path_buf();
    }
    require_tool("python3", "python3")
}

fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
}

/// Compiles `tests/c/<src>` into `dir/<out>` (C with `cc`, C++ with `c++`, chosen by the
/// extension), adding `extra` flags. Panics with the compiler's messages on failure.
pub fn compile(dir: &Path, src: &str, out: &str, extra: &[&str]) -> PathBuf {
    let cxx = src.ends_with(".cc");
    let compiler = if cxx {
        require_tool("c++", "g++")
    } else {
        require_tool("cc", "gcc")
    };
    let exe = dir.join(out);
    let output = Command::new(compiler)
        .args(["-O2", "-g", "-fno-builtin", "-pthread", "-Wall"])
        .arg(if cxx { "-std=c++17" } else { "-std=gnu11" })
        .arg("-I")
        .arg(source(""))
        .arg(source(src))
        .args(extra)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("running the compiler");
    assert!(
        output.status.success(),
        "compiling {src} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// What a finished program left behind.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// The signal that killed the program, if any.
    pub fn signal(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.status.signal()
    }

    /// Panics with everything the program said unless it exited with status 0.
    pub fn assert_ok(&self, what: &str) -> &Self {
        assert!(
            self.status.success(),
            "{what}: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            tail(&self.stdout),
            tail(&self.stderr)
        );
        self
    }
}

/// The last few KiB of a long output, for failure messages.
pub fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(6000);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Runs `cmd` with `stdin` as its input, killing it (by its own pid) after `timeout`.
pub fn run(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> Run {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = input.write_all(&stdin);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let reader_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for the program") {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?} (killed)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    let stdout = reader_out.join().expect("stdout reader");
    let stderr = reader_err.join().expect("stderr reader");
    Run {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Makes `cmd` run with the library preloaded.
pub fn preload(cmd: &mut Command) -> &mut Command {
    cmd.env("LD_PRELOAD", so_path())
}

/// One `GOHEAP_STATS=1` report: its `name value` lines and its size-class rows.
#[derive(Debug, Default)]
pub struct Report {
    pub fields: Vec<(String, u64)>,
    /// (class size, 0 for large objects; mallocs; frees; live)
    pub rows: Vec<(u64, u64, u64, u64)>,
}

impl Report {
    pub fn get(&self, name: &str) -> u64 {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no `{name}` in report {self:?}"))
            .1
    }

    /// The row of the class of `size` bytes (0: large objects).
    pub fn row(&self, size: u64) -> Option<(u64, u64, u64)> {
        self.rows
            .iter()
            .find(|r| r.0 == size)
            .map(|r| (r.1, r.2, r.3))
    }
}

/// Every statistics report in `stderr` (a program that forks or runs others may print
/// several), parsed.
pub fn reports(stderr: &str) -> Vec<Report> {
    let mut out: Vec<Report> = Vec::new();
    let mut in_report = false;
    for line in stderr.lines() {
        if line.starts_with("goheap: statistics at exit") {
            out.push(Report::default());
            in_report = true;
            continue;
        }
        if !in_report {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let r = out.last_mut().expect("inside a report");
        match words.as_slice() {
            ["class", "size", "mallocs", "frees", "live"] => {}
            [class, size, m, f, l] if class.parse::<u64>().is_ok() || *class == "large" => {
                let size = if *size == "-" {
                    0
                } else {
                    size.parse().unwrap()
                };
                r.rows.push((
                    size,
                    m.parse().unwrap(),
                    f.parse().unwrap(),
                    l.parse().unwrap(),
                ));
            }
            [name, value, ..] if line.starts_with("  ") && value.parse::<u64>().is_ok() => {
                r.fields.push((name.to_string(), value.parse().unwrap()));
            }
            _ => in_report = false,
        }
    }
    out
}

/// Panics unless `stderr` holds at least one statistics report with at least `min_mallocs`
/// allocations: the proof that the library was loaded and served the program.
pub fn assert_served(stderr: &str, min_mallocs: u64, what: &str) {
    let rs = reports(stderr);
    let best = rs.iter().map(|r| r.get("mallocs")).max().unwrap_or(0);
    assert!(
        best >= min_mallocs,
        "{what}: expected a goheap report with at least {min_mallocs} mallocs, found {} \
         report(s), most mallocs {best}; stderr:\n{}",
        rs.len(),
        tail(stderr)
    );
}

/// Panics if goheap reported a fatal error on `stderr`.
pub fn assert_no_goheap_error(stderr: &str, what: &str) {
    for line in stderr.lines() {
        assert!(
            !line.starts_with("goheap: ") || line.starts_with("goheap: statistics"),
            "{what}: goheap reported an error: {line}\nstderr:\n{}",
            tail(stderr)
        );
    }
}
