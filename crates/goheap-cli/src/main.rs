//! `goheap`: the workspace's command-line tool.
//!
//! ```text
//! goheap binary-trees <DEPTH> [--threads N] [--quiet]
//! goheap leaks OLD.pb.gz NEW.pb.gz [--top N]
//! goheap report TRACE.json -o REPORT.html
//! goheap --help | --version
//! ```
//!
//! `binary-trees` is the Benchmarks Game program with every node its own `Gc` allocation
//! (no arenas, no explicit frees): the output on stdout is exactly the Benchmarks Game text;
//! the collector's gctrace lines (unless `--quiet`) and a summary go to stderr. With
//! `--threads N` the depths run in parallel on N mutator threads, like Go's
//! goroutine-per-depth program.
//!
//! `leaks` compares two heap profiles (`goheap::profile`) and lists the allocation sites
//! whose live bytes grew (`leaks.rs`). `report` draws a `GOHEAP_TRACE` timeline as a page of
//! SVG plots: heap and goal, pauses, GC CPU, the MMU curve (`report.rs`).
//!
//! # Arguments
//!
//! The command line is read with `lexopt` (a small parser without proc macros): options may
//! come before or after the positional arguments, `--opt=value` and `--opt value` both work,
//! and `--` ends the options. Every mistake gets one line naming the argument at fault,
//! then the usage lines, and exit status 2 (the convention of BSD's `sysexits` and of
//! clap); `--help` (on stdout) and `--version` exit 0. A command that was understood but
//! failed (an unreadable profile, say) exits 1.
//!
//! # The depth bound
//!
//! binary-trees builds a stretch tree one level deeper than the depth asked for, so depth
//! `d` builds a tree of 2^(d+2)-1 nodes whose check (the node count) the program prints as
//! the Benchmarks Game's 32-bit integer; the iteration counts are 32-bit shifts too. Depth
//! 30 is the deepest for which both fit, and it already needs about 64 GiB of nodes, so
//! [`MAX_DEPTH`] is 30: a larger depth is refused with a message instead of overflowing a
//! counter or the stack (the trees are built recursively, one frame per level).

mod binary_trees;
mod leaks;
mod pprof;
mod report;

use std::ffi::OsString;
use std::process::ExitCode;

use lexopt::prelude::*;

/// The deepest binary-trees run the tool accepts (see the module essay).
const MAX_DEPTH: u32 = 30;

/// The usage lines, printed after every usage error.
const USAGE: &str = "usage: goheap binary-trees <DEPTH> [--threads N] [--quiet]
       goheap leaks OLD.pb.gz NEW.pb.gz [--top N]
       goheap report TRACE.json -o REPORT.html
       goheap --help | --version";

/// `goheap --help`: the commands, their options and the environment goheap reads.
const HELP: &str = "goheap: Go's allocator and garbage collector, rebuilt in Rust

Usage:
  goheap binary-trees <DEPTH> [--threads N] [--quiet]
      The Benchmarks Game's binary-trees on the garbage collector, every node its own Gc
      allocation. DEPTH is 0 to 30 (the benchmark's is 21; below 6 it runs 6; depth 30
      needs about 64 GiB).
      The benchmark's text goes to stdout; gctrace lines and a summary to stderr.
      --threads N   run the depths on N mutator threads (default 1)
      --quiet       no gctrace lines (the summary is still printed)
  goheap leaks OLD.pb.gz NEW.pb.gz [--top N]
      Compare two heap profiles (GOHEAP_PROFILE) and list the allocation sites whose live
      bytes grew, largest first.
      --top N       show at most N sites (default 10)
  goheap report TRACE.json -o REPORT.html
      Draw a GOHEAP_TRACE timeline as an HTML page of plots.
  goheap --help     this text
  goheap --version  the version

Environment (read by every program that uses goheap, this one included):
  GOHEAP_GOGC=N|off        GC target: grow the heap by N% of the live heap between
                           collections (default 100); off: collect only under the limit
  GOHEAP_MEMLIMIT=SIZE     soft memory limit, bytes or with B/KiB/MiB/GiB/TiB (default off)
  GOHEAP_DEBUG=K=V,...     gctrace=1 (one line per collection; binary-trees defaults to it
                           unless --quiet), gccheckmark=1 (verify every mark),
                           sessionwait=0 (no report of a session holding a collection up),
                           longpause=US (print each pause of US microseconds or more,
                           with its thread id and CLOCK_MONOTONIC end time)
  GOHEAP_PROCS=N           threads that mark (default: the machine's cores)
  GOHEAP_SCAVENGER=off     no background thread returning free memory to the OS
  GOHEAP_STATS=1           allocator statistics on stderr at exit
  GOHEAP_PROFILE=FILE      heap profile (pprof) written at exit; %p is the pid
  GOHEAP_PROFILE_RATE=N    sample one allocation per N bytes (default 524288; 1: all)
  GOHEAP_LEAKS=1           track every allocation; report unreachable blocks at exit
  GOHEAP_TRACE=FILE        GC timeline as Chrome trace events (see `goheap report`)

Exit status: 0 on success, 1 when a command fails, 2 for a usage error.";

/// What the command line asks for.
enum Request {
    Help,
    Version,
    BinaryTrees {
        depth: u32,
        threads: usize,
        quiet: bool,
    },
    Leaks {
        old: String,
        new: String,
        top: usize,
    },
    Report {
        trace: String,
        out: String,
    },
}

/// A mistake on the command line: the message names the argument at fault.
struct UsageError(String);

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
    }
}

fn main() -> ExitCode {
    let request = match parse(lexopt::Parser::from_env()) {
        Ok(r) => r,
        Err(UsageError(message)) => {
            eprintln!("goheap: {message}\n{USAGE}\nRun 'goheap --help' for the details.");
            return ExitCode::from(2);
        }
    };
    match request {
        Request::Help => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        Request::Version => {
            println!("goheap {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Request::BinaryTrees {
            depth,
            threads,
            quiet,
        } => {
            binary_trees::run(depth, threads, quiet);
            ExitCode::SUCCESS
        }
        Request::Leaks { old, new, top } => match leaks::run(&old, &new, top) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("goheap leaks: {e}");
                ExitCode::FAILURE
            }
        },
        Request::Report { trace, out } => match report::run(&trace, &out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("goheap report: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Reads the whole command line.
fn parse(mut p: lexopt::Parser) -> Result<Request, UsageError> {
    let command = match p.next()? {
        Some(Long("help") | Short('h')) => return Ok(Request::Help),
        Some(Long("version") | Short('V')) => return Ok(Request::Version),
        Some(Value(command)) => command,
        Some(other) => return Err(other.unexpected().into()),
        None => return Err(UsageError("no command given".into())),
    };
    match command.to_str() {
        Some("binary-trees") => parse_binary_trees(p),
        Some("leaks") => parse_leaks(p),
        Some("report") => parse_report(p),
        Some("help") => Ok(Request::Help),
        _ => Err(UsageError(format!(
            "unknown command {}: expected binary-trees, leaks or report",
            quoted(&command)
        ))),
    }
}

fn parse_binary_trees(mut p: lexopt::Parser) -> Result<Request, UsageError> {
    let mut depth = None;
    let mut threads = 1;
    let mut quiet = false;
    while let Some(arg) = p.next()? {
        match arg {
            Long("help") | Short('h') => return Ok(Request::Help),
            Long("threads") => {
                let v = p.value()?;
                threads = match v.to_str().and_then(|s| s.parse::<usize>().ok()) {
                    Some(n) if n >= 1 => n,
                    _ => {
                        return Err(UsageError(format!(
                            "--threads {}: expected a number of threads, at least 1",
                            quoted(&v)
                        )))
                    }
                }
            }
            Long("quiet") => quiet = true,
            Short(c) if c.is_ascii_digit() => {
                return Err(UsageError(format!(
                    "invalid option '-{c}': a depth is a whole number from 0 to {MAX_DEPTH}"
                )))
            }
            Value(v) if depth.is_none() => depth = Some(parse_depth(&v)?),
            Value(v) => {
                return Err(UsageError(format!(
                    "unexpected argument {}: binary-trees takes one depth",
                    quoted(&v)
                )))
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let Some(depth) = depth else {
        return Err(UsageError(format!(
            "binary-trees: missing argument <DEPTH> (a tree depth from 0 to {MAX_DEPTH}; the \
             Benchmarks Game's is 21)"
        )));
    };
    Ok(Request::BinaryTrees {
        depth,
        threads,
        quiet,
    })
}

/// A binary-trees depth: a whole number up to [`MAX_DEPTH`].
fn parse_depth(v: &OsString) -> Result<u32, UsageError> {
    match v.to_str().map(|s| s.parse::<u64>()) {
        Some(Ok(d)) if d <= u64::from(MAX_DEPTH) => Ok(d as u32),
        Some(Ok(d)) => Err(UsageError(format!(
            "depth {d} is too deep: at most {MAX_DEPTH} (depth {MAX_DEPTH}'s stretch tree, one \
             level deeper, already has 2^32 - 1 nodes, the most the program's 32-bit check \
             can count)"
        ))),
        _ => Err(UsageError(format!(
            "depth {}: expected a whole number from 0 to {MAX_DEPTH}",
            quoted(v)
        ))),
    }
}

fn parse_leaks(mut p: lexopt::Parser) -> Result<Request, UsageError> {
    let mut files = Vec::new();
    let mut top = 10;
    while let Some(arg) = p.next()? {
        match arg {
            Long("help") | Short('h') => return Ok(Request::Help),
            Long("top") => {
                let v = p.value()?;
                top = v
                    .to_str()
                    .and_then(|s| s.parse::<usize>().ok())
                    .ok_or_else(|| {
                        UsageError(format!(
                            "--top {}: expected a number of allocation sites",
                            quoted(&v)
                        ))
                    })?;
            }
            Value(v) if files.len() < 2 => files.push(v.string()?),
            Value(v) => {
                return Err(UsageError(format!(
                    "unexpected argument {}: leaks compares two profiles",
                    quoted(&v)
                )))
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let mut files = files.into_iter();
    match (files.next(), files.next()) {
        (Some(old), Some(new)) => Ok(Request::Leaks { old, new, top }),
        (None, _) => Err(UsageError(
            "leaks: missing arguments OLD.pb.gz and NEW.pb.gz (two heap profiles)".into(),
        )),
        (Some(_), None) => Err(UsageError(
            "leaks: missing argument NEW.pb.gz (the second heap profile)".into(),
        )),
    }
}

fn parse_report(mut p: lexopt::Parser) -> Result<Request, UsageError> {
    let mut trace = None;
    let mut out = None;
    while let Some(arg) = p.next()? {
        match arg {
            Long("help") | Short('h') => return Ok(Request::Help),
            Short('o') | Long("output") => out = Some(p.value()?.string()?),
            Value(v) if trace.is_none() => trace = Some(v.string()?),
            Value(v) => {
                return Err(UsageError(format!(
                    "unexpected argument {}: report reads one trace",
                    quoted(&v)
                )))
            }
            other => return Err(other.unexpected().into()),
        }
    }
    match (trace, out) {
        (Some(trace), Some(out)) => Ok(Request::Report { trace, out }),
        (None, _) => Err(UsageError(
            "report: missing argument TRACE.json (a GOHEAP_TRACE file)".into(),
        )),
        (Some(_), None) => Err(UsageError(
            "report: missing option -o REPORT.html (the page to write)".into(),
        )),
    }
}

/// An argument as the messages show it: in double quotes, with any bytes that are not
/// UTF-8 replaced.
fn quoted(v: &OsString) -> String {
    format!("{:?}", v.to_string_lossy())
}
