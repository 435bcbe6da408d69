//! Programs that must not compile: each file in `tests/compile-fail/` breaks one rule the
//! collector's soundness rests on, and its `.stderr` pins the error that stops it. Refresh
//! the expected output after a compiler or API change with
//! `TRYBUILD=overwrite cargo test -p goheap --test compile_fail`, then read every changed
//! `.stderr` to check that each case still fails for its own reason.
//!
//! The expected output was recorded with the `rust-src` component installed: rustc then
//! quotes the std source a note points into (the `$RUST/...` lines). Without it those notes
//! have no snippet, so on such a machine the cases whose `.stderr` quotes std are skipped
//! (with a message) rather than failed.

use std::path::{Path, PathBuf};

#[test]
fn compile_fail() {
    // trybuild builds the cases without the test's RUSTFLAGS, so a sanitizer run (CI's ASan
    // and TSan steps) would only repeat them, after a rebuild in the sanitizer's target dir.
    if std::env::var("RUSTFLAGS").is_ok_and(|f| f.contains("sanitizer")) {
        eprintln!("compile_fail: skipped under a sanitizer (the cases do not depend on it)");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compile-fail");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/compile-fail")
        .map(|e| e.expect("tests/compile-fail entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        // Relative to the package, as trybuild expects (and writes in the `.stderr`).
        .map(|p| Path::new("tests/compile-fail").join(p.file_name().expect("file name")))
        .collect();
    cases.sort();
    let have_src = rust_src_installed();
    let t = trybuild::TestCases::new();
    for case in cases {
        let expected = dir.join(case.with_extension("stderr").file_name().expect("name"));
        let stderr = std::fs::read_to_string(expected).unwrap_or_default();
        if !have_src && stderr.contains("$RUST/") {
            eprintln!(
                "compile_fail: {} skipped: its expected output quotes std, and the rust-src \
                 component is not installed (`rustup component add rust-src`)",
                case.display()
            );
            continue;
        }
        t.compile_fail(case);
    }
}

/// Whether the toolchain has the `rust-src` component, from which rustc quotes std.
fn rust_src_installed() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
    else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib/src/rust/library/core/src/lib.rs")
        .exists()
}
