//! Out of memory: when the OS refuses more address space, allocation returns null (never
//! aborts, never corrupts), and memory freed afterwards can be allocated again.
//!
//! The test re-runs this test binary as a child process with an address-space limit
//! (`RLIMIT_AS`), so that the exhaustion cannot disturb other tests.

#![cfg(not(loom))]

#[global_allocator]
static GLOBAL: goheap::GoAlloc = goheap::GoAlloc;

use std::alloc::{GlobalAlloc, Layout};

const CHILD_ENV: &str = "GOHEAP_OOM_CHILD";

/// Allocates blocks of `layout` until the allocator says no. The blocks are chained through
/// their first word (a Vec could not grow once memory is gone). Returns (head, count).
fn exhaust(layout: Layout) -> (*mut u8, usize) {
    let mut head: *mut u8 = std::ptr::null_mut();
    let mut n = 0;
    loop {
        // SAFETY: non-zero size.
        let p = unsafe { GLOBAL.alloc(layout) };
        if p.is_null() {
            return (head, n);
        }
        // SAFETY: `p` is a fresh block of at least 8 bytes, 8-aligned.
        unsafe {
            p.write_bytes(0x77, layout.size().min(4096));
            (p as *mut *mut u8).write(head);
        }
        head = p;
        n += 1;
        assert!(n < 1 << 28, "never ran out of memory under the limit");
    }
}

/// Frees a chain made by `exhaust`, checking each block's fill on the way.
fn release(mut head: *mut u8, layout: Layout) -> usize {
    let mut n = 0;
    while !head.is_null() {
        // SAFETY: every block in the chain is live, allocated with `layout`.
        unsafe {
            let next = (head as *mut *mut u8).read();
            assert_eq!(*head.add(8), 0x77, "block content lost");
            GLOBAL.dealloc(head, layout);
            head = next;
        }
        n += 1;
    }
    n
}

/// Virtual memory size of this process in bytes (VmSize).
fn vm_size() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn child() {
    // Room for ~768 MiB more address space than the process has now.
    let limit = vm_size() + (768 << 20);
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: a valid rlimit struct for RLIMIT_AS.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);

    let big = Layout::from_size_align(8 << 20, 8).unwrap();
    let (bigs, nbig) = exhaust(big);
    assert!(nbig >= 10, "only {nbig} big blocks before OOM");
    // A single request far beyond the limit: null, not abort.
    let huge = Layout::from_size_align(1 << 40, 4096).unwrap();
    // SAFETY: valid layout.
    assert!(unsafe { GLOBAL.alloc(huge) }.is_null());
    // Free the big blocks, then fill the same memory with small objects until that runs
    // out too (the page heap cannot grow any more than the limit allows).
    assert_eq!(release(bigs, big), nbig);
    let small = Layout::from_size_align(48, 8).unwrap();
    let (smalls, nsmall) = exhaust(small);
    assert!(nsmall > 1 << 20, "only {nsmall} small objects");
    assert_eq!(release(smalls, small), nsmall);
    // Everything freed: the big blocks fit again, except for what the small spans' thread
    // cache keeps (at most 512 KiB of empty spans) and the address space the scavenger's
    // thread or the span structs took meanwhile.
    let (again, nagain) = exhaust(big);
    assert!(
        nagain + 4 >= nbig,
        "after freeing, only {nagain} of {nbig} big blocks could be allocated again"
    );
    release(again, big);
    println!("oom-child-ok big={nbig} small={nsmall} again={nagain}");
}

#[test]
fn out_of_memory_returns_null_and_loses_nothing() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "out_of_memory_returns_null_and_loses_nothing",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("oom-child-ok"),
        "child failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    eprintln!(
        "{}",
        stdout.lines().find(|l| l.contains("oom-child-ok")).unwrap()
    );
}
