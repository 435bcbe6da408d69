//! A collection held up by a thread blocked inside a session says so: after a second of
//! waiting, one line on stderr names the thread and since when its session has been open
//! (issue 10, item 5). `GOHEAP_DEBUG=sessionwait=0` turns the line off. The collection
//! still completes once the session ends: the report is a diagnosis, not a timeout.
//!
//! Each case runs in a child process (the collector's stderr is the process's stderr).

#![cfg(not(loom))]

use std::sync::mpsc;
use std::time::Duration;

use goheap::gc::{Config, Heap};

/// The child: a thread named "blocker" sits inside a session for `GOHEAP_TEST_HOLD_MS`
/// while the main thread collects.
fn child() {
    let hold = Duration::from_millis(
        std::env::var("GOHEAP_TEST_HOLD_MS")
            .unwrap()
            .parse()
            .unwrap(),
    );
    let heap = Heap::with_config(Config::from_env().with_procs(2));
    let (entered_tx, entered) = mpsc::channel();
    let h = heap.clone();
    let blocker = std::thread::Builder::new()
        .name("blocker".into())
        .spawn(move || {
            let mut m = h.mutator();
            m.enter(|cx| {
                let _ = cx.alloc([1u64; 4]);
                entered_tx.send(()).unwrap();
                // Blocked inside the session (a lock, a read, a long computation...).
                std::thread::sleep(hold);
            });
        })
        .unwrap();
    entered.recv().unwrap();
    heap.collect();
    blocker.join().unwrap();
    println!("CHILD OK");
}

fn run_child(hold_ms: u64, debug: Option<&str>) -> String {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "child_process",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("GOHEAP_TEST_CHILD", "1")
    .env("GOHEAP_TEST_HOLD_MS", hold_ms.to_string())
    .env_remove("GOHEAP_DEBUG");
    if let Some(d) = debug {
        c.env("GOHEAP_DEBUG", d);
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("CHILD OK"),
        "child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stderr
}

#[test]
fn child_process() {
    if std::env::var_os("GOHEAP_TEST_CHILD").is_some() {
        child();
    }
}

#[test]
fn a_collection_blocked_by_a_session_names_the_thread_once() {
    let err = run_child(2500, None);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("has waited")).collect();
    assert_eq!(lines.len(), 1, "expected one report, got:\n{err}");
    let l = lines[0];
    assert!(
        l.starts_with("goheap: the mark termination of a collection has waited 1.0 s for thread \"blocker\" (ThreadId("),
        "{l}"
    );
    assert!(l.contains("inside a session open since"), "{l}");
    assert!(l.contains("GOHEAP_DEBUG=sessionwait=0"), "{l}");
}

#[test]
fn sessionwait_0_turns_the_report_off() {
    let err = run_child(1500, Some("sessionwait=0"));
    assert!(!err.contains("has waited"), "{err}");
}

#[test]
fn a_short_session_is_not_reported() {
    let err = run_child(100, None);
    assert!(!err.contains("has waited"), "{err}");
}
