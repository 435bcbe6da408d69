//! `GOHEAP_STATS=1` prints goheap's statistics on stderr at exit; without it nothing is
//! printed. `tests/c/stats.c` makes allocations of a size class nothing else in a small C
//! program uses, so the report's row for it must match exactly, including frees made by an
//! atexit handler of the program (which runs before the report).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn goheap_stats_reports_exact_counts_at_exit() {
    let dir = scratch("stats");
    let exe = compile(&dir, "stats.c", "stats", &[]);
    let r = run(
        preload(&mut Command::new(&exe)).env("GOHEAP_STATS", "1"),
        b"",
        TIMEOUT,
    );
    r.assert_ok("stats.c");
    assert_eq!(r.stdout, "stats program done\natexit handler ran\n");
    let reports = reports(&r.stderr);
    assert_eq!(reports.len(), 1, "{}", r.stderr);
    let rep = &reports[0];
    // 1000 blocks of 20,000 bytes (class 20,480): 400 freed by main, 100 by the handler.
    assert_eq!(rep.row(20480), Some((1000, 500, 500)), "{}", r.stderr);
    // Five 1 MiB blocks, two freed (libc makes no large allocations of its own here).
    assert_eq!(rep.row(0), Some((5, 2, 3)), "{}", r.stderr);
    let (mallocs, frees) = (rep.get("mallocs"), rep.get("frees"));
    assert!(mallocs >= 1005 && frees >= 502, "{}", r.stderr);
    assert_eq!(rep.get("heap_objects"), mallocs - frees);
    assert_eq!(
        rep.get("heap_inuse") + rep.get("heap_idle"),
        rep.get("heap_sys")
    );
    assert!(rep.get("heap_released") <= rep.get("heap_idle"));
    assert!(rep.get("heap_alloc") >= 500 * 20480 + 3 * (1 << 20));
    assert!(rep.get("heap_alloc") <= rep.get("heap_inuse"));
}

#[test]
fn no_report_unless_goheap_stats_is_1() {
    let dir = scratch("nostats");
    let exe = compile(&dir, "stats.c", "stats", &[]);
    for value in [None, Some("0"), Some(""), Some("10")] {
        let mut cmd = Command::new(&exe);
        preload(&mut cmd).env_remove("GOHEAP_STATS");
        if let Some(v) = value {
            cmd.env("GOHEAP_STATS", v);
        }
        let r = run(&mut cmd, b"", TIMEOUT);
        r.assert_ok("stats.c");
        // No report; a value that is neither yes nor no gets one line saying it is ignored.
        let expected = if value == Some("10") {
            "goheap: ignoring GOHEAP_STATS=\"10\": expected 1, true or yes (on), or 0, false or no (off)\n"
        } else {
            ""
        };
        assert_eq!(r.stderr, expected, "GOHEAP_STATS={value:?}");
    }
}
