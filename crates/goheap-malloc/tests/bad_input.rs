//! Bad input is caught clearly: each mistake is made by `tests/c/bad.c` in a child process,
//! which must die by `SIGABRT` with goheap's message naming the pointer the program printed
//! just before; impossible sizes must fail with null and `ENOMEM` instead.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const SIGABRT: i32 = 6;

fn bad() -> &'static PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| compile(&scratch("bad"), "bad.c", "bad", &["-ldl"]))
}

/// Runs `bad <mode>` under goheap and checks that it aborted with `message` followed by the
/// pointer it printed.
fn aborts_with(mode: &str, message: &str) {
    let r = run(
        preload(&mut Command::new(bad())).arg(mode),
        b"",
        Duration::from_secs(60),
    );
    let ptr = r.stdout.lines().next().unwrap_or("").trim().to_string();
    assert!(ptr.starts_with("0x"), "{mode}: no pointer printed: {r:?}");
    assert_eq!(r.signal(), Some(SIGABRT), "{mode}: not aborted: {r:?}");
    let want = format!("goheap: {message} {ptr}\n");
    assert!(
        r.stderr.contains(&want),
        "{mode}: expected {want:?} on stderr, got {:?}",
        r.stderr
    );
    assert!(!r.stdout.contains("survived"), "{mode}: {r:?}");
}

#[test]
fn free_of_a_foreign_pointer_aborts_naming_it() {
    aborts_with("free-global", "free(): invalid pointer");
    aborts_with("free-stack", "free(): invalid pointer");
    aborts_with("free-mmap", "free(): invalid pointer");
}

#[test]
fn free_of_an_interior_pointer_aborts_naming_it() {
    aborts_with("free-interior", "free(): invalid pointer");
    aborts_with("free-interior-large", "free(): invalid pointer");
}

#[test]
fn realloc_of_a_foreign_pointer_aborts_naming_realloc() {
    aborts_with("realloc-foreign", "realloc(): invalid pointer");
}

#[test]
fn malloc_usable_size_of_a_foreign_pointer_aborts() {
    aborts_with(
        "usable-size-foreign",
        "malloc_usable_size(): invalid pointer",
    );
}

#[test]
fn double_free_is_detected() {
    aborts_with("double-free", "free(): double free detected for pointer");
    aborts_with(
        "double-free-remote",
        "free(): double free detected for pointer",
    );
    aborts_with("double-cfree", "free(): double free detected for pointer");
    // Split between the owner and another thread, in both orders: caught before reuse.
    aborts_with(
        "double-free-remote-then-owner",
        "free(): double free detected for pointer",
    );
    aborts_with(
        "double-free-owner-then-remote",
        "free(): double free detected for pointer",
    );
    // A freed large object is unmapped at once, so its second free finds no object.
    aborts_with("double-free-large", "free(): invalid pointer");
}

#[test]
fn impossible_sizes_return_null_with_enomem() {
    let r = run(
        preload(&mut Command::new(bad())).arg("huge"),
        b"",
        Duration::from_secs(60),
    );
    r.assert_ok("bad huge");
    assert_eq!(r.stdout, "huge ok\n");
}
