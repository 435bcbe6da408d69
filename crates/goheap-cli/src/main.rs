//! `goheap`: the workspace's command-line tool.
//!
//! ```text
//! goheap binary-trees <depth> [--threads N] [--quiet]
//! ```
//!
//! `binary-trees` is the Benchmarks Game program with every node its own `Gc` allocation
//! (no arenas, no explicit frees): the output on stdout is exactly the Benchmarks Game text;
//! the collector's gctrace lines (unless `--quiet`) and a summary go to stderr. With
//! `--threads N` the depths run in parallel on N mutator threads, like Go's
//! goroutine-per-depth program.

mod binary_trees;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: goheap binary-trees <depth> [--threads N] [--quiet]");
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
        _ => usage(),
    }
}
