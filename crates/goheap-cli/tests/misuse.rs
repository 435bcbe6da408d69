//! Every way to misuse the `goheap` tool gets a message naming what is wrong and a non-zero
//! exit status, never a crash: usage errors exit 2 with the message, then the usage lines, on
//! stderr and nothing on stdout. `--help` and `--version` exit 0 and print on stdout; the
//! help lists every environment variable goheap reads. Knobs with bad values warn on stderr
//! and the run goes on; `GOHEAP_GOGC=off` shows as "goal off" in the summary.

use std::process::Output;

mod common;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `goheap args` must fail as a usage error (status 2, no signal) whose first line is
/// `goheap: ` followed by a message containing `says`, then the usage.
fn assert_usage_error(args: &[&str], says: &str) {
    let out = common::goheap::<&str>(args, &[]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "goheap {args:?}: {:?}\n{err}",
        out.status
    );
    assert!(out.stdout.is_empty(), "goheap {args:?} wrote to stdout");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("goheap: ") && first.contains(says),
        "goheap {args:?}: expected a first line naming {says:?}, got:\n{err}"
    );
    assert!(
        err.contains("usage: goheap"),
        "goheap {args:?}: no usage:\n{err}"
    );
}

#[test]
fn help_and_version_exit_zero() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["binary-trees", "--help"],
    ] {
        let out = common::goheap::<&str>(args, &[]);
        assert_eq!(out.status.code(), Some(0), "goheap {args:?}");
        let text = stdout(&out);
        assert!(text.contains("goheap binary-trees <DEPTH>"), "{text}");
        assert!(out.stderr.is_empty(), "goheap {args:?}: {}", stderr(&out));
    }
    let help = stdout(&common::goheap::<&str>(&["--help"], &[]));
    for knob in [
        "GOHEAP_GOGC",
        "GOHEAP_MEMLIMIT",
        "GOHEAP_DEBUG",
        "GOHEAP_PROCS",
        "GOHEAP_SCAVENGER",
        "GOHEAP_STATS",
        "GOHEAP_PROFILE",
        "GOHEAP_PROFILE_RATE",
        "GOHEAP_LEAKS",
        "GOHEAP_TRACE",
    ] {
        assert!(
            help.contains(&format!("{knob}=")),
            "--help does not list {knob}:\n{help}"
        );
    }
    for args in [&["--version"][..], &["-V"]] {
        let out = common::goheap::<&str>(args, &[]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            stdout(&out),
            format!("goheap {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn binary_trees_misuse() {
    assert_usage_error(&["binary-trees"], "missing argument <DEPTH>");
    assert_usage_error(&["binary-trees", "--quiet"], "missing argument <DEPTH>");
    // The depth that overflowed the stack: now a message with the bound.
    assert_usage_error(
        &["binary-trees", "4294967295"],
        "depth 4294967295 is too deep: at most 30",
    );
    assert_usage_error(&["binary-trees", "31"], "depth 31 is too deep");
    assert_usage_error(
        &["binary-trees", "99999999999999999999999"],
        "depth \"99999999999999999999999\"",
    );
    assert_usage_error(&["binary-trees", "ten"], "depth \"ten\"");
    assert_usage_error(&["binary-trees", "-1"], "'-1'");
    assert_usage_error(&["binary-trees", "10", "11"], "unexpected argument \"11\"");
    assert_usage_error(&["binary-trees", "10", "--threads"], "'--threads'");
    assert_usage_error(&["binary-trees", "10", "--threads", "0"], "--threads \"0\"");
    assert_usage_error(
        &["binary-trees", "10", "--threads=many"],
        "--threads \"many\"",
    );
    assert_usage_error(&["binary-trees", "10", "--bogus"], "'--bogus'");
    assert_usage_error(&["binary-trees", "10", "--quiet=yes"], "--quiet");
}

#[test]
fn leaks_and_report_misuse() {
    assert_usage_error(&["leaks"], "missing arguments OLD.pb.gz and NEW.pb.gz");
    assert_usage_error(&["leaks", "a.pb.gz"], "missing argument NEW.pb.gz");
    assert_usage_error(
        &["leaks", "a.pb.gz", "b.pb.gz", "c.pb.gz"],
        "unexpected argument \"c.pb.gz\"",
    );
    assert_usage_error(&["leaks", "a", "b", "--top", "x"], "--top \"x\"");
    assert_usage_error(&["leaks", "a", "b", "--top"], "'--top'");
    assert_usage_error(&["report"], "missing argument TRACE.json");
    assert_usage_error(&["report", "t.json"], "missing option -o");
    assert_usage_error(&["report", "t.json", "-o"], "'-o'");
    assert_usage_error(
        &["report", "t.json", "u.json", "-o", "r.html"],
        "unexpected argument \"u.json\"",
    );
}

#[test]
fn command_misuse() {
    assert_usage_error(&[], "no command given");
    assert_usage_error(&["no-such-command"], "unknown command \"no-such-command\"");
    assert_usage_error(&["--bogus"], "'--bogus'");
}

/// Bad knob values are reported on stderr and ignored; the run goes on.
#[test]
fn bad_debug_keys_warn() {
    let out = common::goheap(
        &["binary-trees", "6", "--quiet"],
        &[("GOHEAP_DEBUG", "junk,gctrace=yes")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("goheap: GOHEAP_DEBUG: unknown key \"junk\" ignored"),
        "{err}"
    );
    assert!(
        err.contains("goheap: GOHEAP_DEBUG: gctrace=\"yes\" ignored"),
        "{err}"
    );
    // Known keys with numbers say nothing.
    let out = common::goheap(
        &["binary-trees", "6", "--quiet"],
        &[("GOHEAP_DEBUG", "gctrace=0,sessionwait=1")],
    );
    assert!(!stderr(&out).contains("GOHEAP_DEBUG"), "{}", stderr(&out));
}

/// The allocator's own knobs (read at start-up for every face) warn about values they do
/// not understand, as the collector's do; good values say nothing.
#[test]
fn bad_allocator_knobs_warn() {
    let out = common::goheap(
        &["binary-trees", "6", "--quiet"],
        &[
            ("GOHEAP_STATS", "2"),
            ("GOHEAP_LEAKS", "maybe"),
            ("GOHEAP_SCAVENGER", "sometimes"),
            ("GOHEAP_PROFILE_RATE", "lots"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for needle in [
        "goheap: ignoring GOHEAP_STATS=\"2\"",
        "goheap: ignoring GOHEAP_LEAKS=\"maybe\"",
        "goheap: ignoring GOHEAP_SCAVENGER=\"sometimes\"",
        "goheap: ignoring GOHEAP_PROFILE_RATE=\"lots\"",
    ] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
    let out = common::goheap(
        &["binary-trees", "6", "--quiet"],
        &[("GOHEAP_STATS", "no"), ("GOHEAP_SCAVENGER", "off")],
    );
    assert!(!stderr(&out).contains("ignoring"), "{}", stderr(&out));
}

#[test]
fn gogc_off_prints_goal_off() {
    let out = common::goheap(&["binary-trees", "8", "--quiet"], &[("GOHEAP_GOGC", "off")]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains(", goal off\n"), "{err}");
    let out = common::goheap::<&str>(&["binary-trees", "8", "--quiet"], &[]);
    let err = stderr(&out);
    let goal = err
        .split(", goal ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("a goal in the summary");
    assert!(
        goal.ends_with(" MiB") && goal.trim_end_matches(" MiB").parse::<u64>().unwrap() < 1024,
        "GOGC=100 goal: {goal:?}"
    );
}
