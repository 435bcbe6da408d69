//! `goheap leaks OLD NEW`: two heap profiles of the GC example (`keep_churn_leak gc`, every
//! allocation recorded), the second leaking 4 MiB more; the report's first site is `leak`
//! with the 4 MiB, and `keep`, the same in both, is not listed. Files that are not profiles
//! give a clear error and exit status 1.

#[path = "../../goheap/tests/common/pprof_tool.rs"]
mod pprof_tool;

use pprof_tool::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn profile(dir: &Path, name: &str, leak_mib: u32) -> PathBuf {
    let out = dir.join(name);
    let r = run_with_deadline(
        Command::new(example("keep_churn_leak"))
            .arg("gc")
            .arg(&out)
            .args(["8", "8", &leak_mib.to_string()])
            .env("GOHEAP_PROFILE_RATE", "1")
            .env_remove("GOHEAP_PROFILE"),
        Duration::from_secs(300),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    out
}

fn leaks(args: &[&Path]) -> std::process::Output {
    run_with_deadline(
        Command::new(env!("CARGO_BIN_EXE_goheap"))
            .arg("leaks")
            .args(args),
        Duration::from_secs(60),
    )
}

#[test]
fn leaks_lists_the_site_that_grew() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-leaks");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let old = profile(&dir, "old.pb.gz", 0);
    let new = profile(&dir, "new.pb.gz", 4);
    let out = leaks(&[&old, &new]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let first = text.split("\n\n").nth(1).expect("a site");
    assert!(first.contains("keep_churn_leak::gc::leak\n"), "{text}");
    assert!(first.contains("type [u64]"), "{text}");
    let grew: f64 = first
        .trim_start()
        .strip_prefix('+')
        .and_then(|s| s.split(" MiB").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!((4.0..4.2).contains(&grew), "{text}");
    assert!(!text.contains("gc::keep\n"), "keep did not grow: {text}");

    // `go tool pprof -base OLD NEW` reads the same two files: `leak` grew by its 4 MiB of
    // inuse_space, and `keep` by nothing.
    let diff = run_with_deadline(
        Command::new(go())
            .args([
                "tool",
                "pprof",
                "-top",
                "-cum",
                "-nodecount=200",
                "-unit=MB",
            ])
            .args(["-sample_index=inuse_space", "-base"])
            .args([&old, &new])
            .env("GOTOOLCHAIN", "local")
            .env("HOME", std::env::temp_dir()),
        Duration::from_secs(120),
    );
    let top = String::from_utf8_lossy(&diff.stdout);
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    // Rows: flat flat% sum% cum cum% name.
    let cum_mb = |f: &str| {
        top.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|r| r.len() >= 6 && r[5] == f)
            .map(|r| r[3].trim_end_matches("MB").parse::<f64>().unwrap())
    };
    let grew = cum_mb("keep_churn_leak::gc::leak").unwrap_or_else(|| panic!("{top}"));
    assert!((3.9..4.5).contains(&grew), "leak grew by {grew} MB:\n{top}");
    assert!(
        cum_mb("keep_churn_leak::gc::keep").is_none_or(|k| k.abs() < 0.1),
        "{top}"
    );

    let bad = dir.join("not-a-profile");
    std::fs::write(&bad, b"\x07\x07\x07").unwrap();
    let out = leaks(&[&old, &bad]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not-a-profile: not a pprof profile"), "{err}");
    let out = leaks(&[&old, &dir.join("missing")]);
    assert_eq!(out.status.code(), Some(1));
}
