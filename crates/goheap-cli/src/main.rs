//! `goheap`: the workspace's command-line tool.
//!
//! ```text
//! goheap binary-trees <depth> [--threads N] [--quiet]
//! goheap leaks OLD.pb.gz NEW.pb.gz [--top N]
//! goheap report TRACE.json -o REPORT.html
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

mod binary_trees;
mod leaks;
mod pprof;
mod report;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: goheap binary-trees <depth> [--threads N] [--quiet]\n       goheap leaks OLD.pb.gz NEW.pb.gz [--top N]\n       goheap report TRACE.json -o REPORT.html"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("binary-trees") => {
            let mut depth = None;
            let mut threads = 1;
            let mut quiet = false;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--threads" => match it.next().and_then(|v| v.parse().ok()) {
                        Some(n) if n >= 1 => threads = n,
                        _ => return usage(),
                    },
                    "--quiet" => quiet = true,
                    v => match v.parse() {
                        Ok(d) if depth.is_none() => depth = Some(d),
                        _ => return usage(),
                    },
                }
            }
            binary_trees::run(depth.unwrap_or(10), threads, quiet);
            ExitCode::SUCCESS
        }
        Some("leaks") => {
            let mut files = Vec::new();
            let mut top = 10;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--top" => match it.next().and_then(|v| v.parse().ok()) {
                        Some(n) => top = n,
                        None => return usage(),
                    },
                    f => files.push(f),
                }
            }
            let [old, new] = files[..] else {
                return usage();
            };
            match leaks::run(old, new, top) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("goheap leaks: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("report") => {
            let (trace, out) = match &args[1..] {
                [t, o, f] if o == "-o" => (t, f),
                [o, f, t] if o == "-o" => (t, f),
                _ => return usage(),
            };
            match report::run(trace, out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("goheap report: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}
