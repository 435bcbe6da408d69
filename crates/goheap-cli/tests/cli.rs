//! The `goheap` tool: `goheap binary-trees 10` prints exactly the Benchmarks Game's expected
//! output (`binarytrees-output.txt`), with one thread and with `--threads 2`, and with
//! `GOHEAP_DEBUG=gctrace=1` every collection prints one line on stderr in Go's
//! `GODEBUG=gctrace=1` format. Misuse of the command line is tested in `misuse.rs`.

use std::process::Output;

const EXPECTED_10: &str = "stretch tree of depth 11\t check: 4095
1024\t trees of depth 4\t check: 31744
256\t trees of depth 6\t check: 32512
64\t trees of depth 8\t check: 32704
16\t trees of depth 10\t check: 32752
long lived tree of depth 10\t check: 2047
";

mod common;

/// `goheap args`, which must succeed.
fn goheap(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = common::goheap(args, env);
    assert!(
        out.status.success(),
        "goheap {args:?} failed: {:?}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> &str {
    std::str::from_utf8(&o.stdout).expect("stdout is not UTF-8")
}

#[test]
fn binary_trees_10_prints_the_expected_output() {
    let one = goheap(&["binary-trees", "10", "--quiet"], &[]);
    assert_eq!(stdout(&one), EXPECTED_10);
    let two = goheap(&["binary-trees", "10", "--threads", "2", "--quiet"], &[]);
    assert_eq!(stdout(&two), EXPECTED_10, "--threads 2 changed the output");
    // The statistics go to stderr, never to stdout (even without --quiet).
    let loud = goheap(&["binary-trees", "10"], &[]);
    assert_eq!(stdout(&loud), EXPECTED_10);
}

#[path = "../../goheap/tests/common/gctrace.rs"]
mod gctrace;
use gctrace::is_gctrace;

fn gctrace_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("gc ")).collect()
}

#[test]
fn gctrace_prints_go_format_lines() {
    for threads in ["1", "2"] {
        let out = goheap(
            &["binary-trees", "14", "--threads", threads],
            &[("GOHEAP_DEBUG", "gctrace=1")],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines = gctrace_lines(&stderr);
        // The summary's own count of cycles.
        let cycles: usize = stderr
            .lines()
            .find_map(|l| l.strip_prefix("gc-cycles: "))
            .expect("no gc-cycles line")
            .trim()
            .parse()
            .unwrap();
        assert!(cycles >= 2, "binary-trees 14 ran only {cycles} collections");
        // One line per cycle counted by the summary, printed before it; and perhaps one more:
        // a cycle running when the summary read the statistics ends while the summary is
        // printed or during the heap's teardown.
        let before = stderr
            .split("gc-cycles: ")
            .next()
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("gc "))
            .count();
        assert!(
            before >= cycles && lines.len() <= cycles + 1,
            "one gctrace line per cycle:\n{stderr}"
        );
        for (i, l) in lines.iter().enumerate() {
            assert!(is_gctrace(l), "not Go's gctrace format: {l:?}");
            assert!(
                l.starts_with(&format!("gc {} @", i + 1)),
                "cycles numbered from 1 in order: {l:?}"
            );
            assert!(
                !l.ends_with("(forced)"),
                "binary-trees never forces a cycle: {l:?}"
            );
        }
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            1 + 6 + 1, // stretch, depths 4..=14 step 2, long lived
            "gctrace must not go to stdout"
        );
    }
    // gctrace=0 turns the lines off, even though the tool defaults to gctrace.
    let out = goheap(&["binary-trees", "12"], &[("GOHEAP_DEBUG", "gctrace=0")]);
    assert!(gctrace_lines(&String::from_utf8_lossy(&out.stderr)).is_empty());
    let out = goheap(&["binary-trees", "12", "--quiet"], &[]);
    assert!(gctrace_lines(&String::from_utf8_lossy(&out.stderr)).is_empty());
}

/// `GOHEAP_DEBUG=longpause=1`: every pause of 1 us or more is one line naming its kind, its
/// length, the thread's kernel id and its end on `CLOCK_MONOTONIC`; without the key there
/// are none.
#[test]
fn longpause_prints_each_long_pause_with_its_thread_and_time() {
    let out = goheap(
        &["binary-trees", "14", "--quiet"],
        &[("GOHEAP_DEBUG", "longpause=1")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("goheap: pause "))
        .collect();
    assert!(!lines.is_empty(), "no pause printed:\n{err}");
    for l in &lines {
        // goheap: pause <kind> <us> us, tid <tid>, ended <ns> ns CLOCK_MONOTONIC
        let rest = l.trim_start_matches("goheap: pause ");
        let (head, tail) = rest.split_once(" us, tid ").expect(l);
        let us: u64 = head.rsplit(' ').next().unwrap().parse().expect(l);
        assert!(us >= 1, "{l}");
        let (tid, ended) = tail.split_once(", ended ").expect(l);
        assert!(tid.parse::<i32>().expect(l) > 0, "{l}");
        assert!(ended.ends_with(" ns CLOCK_MONOTONIC"), "{l}");
        let ns: u64 = ended.split(' ').next().unwrap().parse().expect(l);
        assert!(ns > 0, "{l}");
    }
    let quiet = goheap(&["binary-trees", "14", "--quiet"], &[]);
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("goheap: pause "),
        "pauses printed without longpause"
    );
}
