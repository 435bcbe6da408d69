//! A deadlock guard for tests (`gc_finalizers.rs`, `gc_regressions.rs`, included with
//! `#[path]`).

use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on its own thread and fails if it does not finish within `secs` seconds (a
/// deadlock would otherwise hang the whole suite; the stuck thread is abandoned).
pub fn within(secs: u64, what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("deadlock: {what} (stuck for {secs} s)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the thread panicked"),
    }
}
