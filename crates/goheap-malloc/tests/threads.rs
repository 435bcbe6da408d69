//! Threads and processes: fork while other threads allocate, threads that exist before the
//! first allocation, a thousand short-lived threads whose caches must go back to the heap,
//! and dlopen of many modules with thread-local storage (see `tests/c/tls_main.c`).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn fork_while_threads_allocate() {
    let dir = scratch("fork");
    let exe = compile(&dir, "fork.c", "fork", &[]);
    // Without goheap's fork handlers, some children hang on a lock and their alarm kills
    // them (a few in every 300 forks when this was checked).
    let r = run(
        preload(&mut Command::new(&exe)).arg("300"),
        b"",
        Duration::from_secs(300),
    );
    r.assert_ok("fork.c");
    assert_eq!(r.stdout, "forks ok\n");
    assert_no_goheap_error(&r.stderr, "fork.c");
    eprintln!("300 forks under goheap: {:?}", r.elapsed);
}

#[test]
fn threads_before_and_after_the_first_allocation() {
    let dir = scratch("threads");
    let exe = compile(&dir, "threads.c", "threads", &[]);
    let r = run(
        preload(&mut Command::new(&exe)).env("GOHEAP_STATS", "1"),
        b"",
        Duration::from_secs(300),
    );
    r.assert_ok("threads.c");
    assert_eq!(r.stdout, "threads ok\n");
    // Nine threads made 450,000 trades between them.
    assert_served(&r.stderr, 450_000, "threads.c");
}

#[test]
fn thousand_short_lived_threads_return_their_caches() {
    let dir = scratch("short-threads");
    let exe = compile(&dir, "short_threads.c", "short_threads", &[]);
    let r = run(
        preload(&mut Command::new(&exe)).env("GOHEAP_STATS", "1"),
        b"",
        Duration::from_secs(300),
    );
    r.assert_ok("short_threads.c");
    assert_eq!(r.stdout, "short threads ok\n");
    let reports = reports(&r.stderr);
    assert_eq!(reports.len(), 1, "{}", r.stderr);
    let rep = &reports[0];
    // Every thread made 302 allocations (its blocks, the large one, its `kept` record).
    assert!(rep.get("mallocs") >= 302_000, "{}", r.stderr);
    // All freed (libc's few blocks aside) ...
    assert!(rep.get("heap_objects") < 100, "{}", r.stderr);
    // ... and the spans of the dead threads' caches went back to the heap: each cache
    // holds a span (8 to 64 KiB) of each of some 45 classes while its thread lives, so
    // 1000 caches kept by dead threads would leave hundreds of MiB in use. About 2 MiB
    // remain.
    let inuse = rep.get("heap_inuse");
    assert!(
        inuse < 16 << 20,
        "heap in use at exit: {inuse} bytes\n{}",
        r.stderr
    );
}

#[test]
fn dlopen_of_many_tls_modules_from_many_threads() {
    let dir = scratch("tls");
    // More than the 14 spare DTV slots, so that every thread's DTV is reallocated.
    let n = 24;
    for i in 0..n {
        compile(
            &dir,
            "tls_mod.c",
            &format!("libtls{i}.so"),
            &["-shared", "-fPIC"],
        );
    }
    let exe = compile(&dir, "tls_main.c", "tls_main", &["-ldl"]);
    let r = run(
        preload(&mut Command::new(&exe))
            .arg(&dir)
            .arg(n.to_string()),
        b"",
        Duration::from_secs(120),
    );
    r.assert_ok("tls_main.c");
    assert_eq!(r.stdout, "tls ok\n");
}
