//! The C API, checked from C and C++ programs compiled at test time (sources in `tests/c/`).
//!
//! `api.c` is run twice: without the library, to show that its expectations are glibc's
//! (a check that glibc fails is a wrong check, not a goheap bug), and with it preloaded.
//! The C++ program shows that `new`, `delete`, exceptions and the containers reach goheap
//! through `malloc`, and the "early" pair shows that an allocation made before goheap's
//! constructor runs is served normally and does not start a scavenger thread.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn c_api_semantics_match_glibc() {
    let dir = scratch("api");
    let exe = compile(&dir, "api.c", "api", &["-ldl"]);
    run(Command::new(&exe).arg("glibc"), b"", TIMEOUT).assert_ok("api.c under glibc");
    let r = run(preload(&mut Command::new(&exe)).arg("goheap"), b"", TIMEOUT);
    r.assert_ok("api.c under goheap");
    assert_eq!(r.stdout, "api ok\n");
    eprintln!("api.c under goheap: {:?}", r.elapsed);
}

#[test]
fn cxx_new_and_delete_go_through_malloc() {
    let dir = scratch("cxx");
    let exe = compile(&dir, "cxx.cc", "cxx", &[]);
    run(&mut Command::new(&exe), b"", TIMEOUT).assert_ok("cxx.cc under glibc");
    let r = run(
        preload(&mut Command::new(&exe))
            .arg("goheap")
            .env("GOHEAP_STATS", "1"),
        b"",
        TIMEOUT,
    );
    r.assert_ok("cxx.cc under goheap");
    assert_eq!(r.stdout, "threads at start 1\ncxx ok\n");
    // The 10,000 `new Node` (48 bytes) are in goheap's 48-byte class.
    let reports = reports(&r.stderr);
    assert_eq!(reports.len(), 1, "{}", r.stderr);
    let (mallocs, frees, _) = reports[0].row(48).expect("a 48-byte row");
    assert!(mallocs >= 10_000 && frees >= 10_000, "{}", r.stderr);
}

#[test]
fn allocations_before_the_constructor_are_served_without_a_thread() {
    let dir = scratch("early");
    let lib = compile(&dir, "early.c", "libearly.so", &["-shared", "-fPIC"]);
    let exe = compile(&dir, "early_main.c", "early_main", &["-ldl"]);
    // goheap first in the lookup order (its malloc wins), libearly initialised first.
    let preload = format!("{}:{}", so_path().display(), lib.display());
    let r = run(
        Command::new(&exe)
            .env("LD_PRELOAD", preload)
            .env("GOHEAP_STATS", "1"),
        b"",
        TIMEOUT,
    );
    r.assert_ok("early_main");
    assert_eq!(r.stdout, "threads 1\nearly ok\n");
    // The report (registered by goheap's constructor) comes before libearly's atexit
    // handler's line only if libearly's constructor registered it first, i.e. ran first.
    let report = r.stderr.find("goheap: statistics at exit").expect("report");
    let early = r
        .stderr
        .find("early atexit handler")
        .expect("early handler");
    assert!(
        report < early,
        "libearly's constructor did not run before goheap's:\n{}",
        r.stderr
    );
    assert_served(&r.stderr, 3, "early_main");
}
