//! Shared driver bits for the binary-trees peers: argument parsing, the
//! depth schedule and the exact Benchmarks Game output text.

use std::io::Write;
use std::time::Duration;

pub const MIN_DEPTH: u32 = 4;

/// `max(min_depth + 2, n)` where `n` is the first command-line argument.
pub fn max_depth_from_args() -> u32 {
    let n: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("depth must be a non-negative integer"))
        .unwrap_or(0);
    n.max(MIN_DEPTH + 2)
}

/// `(depth, iterations)` for every line of the depth loop.
pub fn schedule(max_depth: u32) -> impl Iterator<Item = (u32, u64)> {
    (MIN_DEPTH..=max_depth)
        .step_by(2)
        .map(move |d| (d, 1u64 << (max_depth - d + MIN_DEPTH)))
}

/// Output collected in memory and written once at the end.
#[derive(Default)]
pub struct Out(String);

impl Out {
    pub fn stretch(&mut self, depth: u32, check: u64) {
        self.0 += &format!("stretch tree of depth {depth}\t check: {check}\n");
    }
    pub fn trees(&mut self, iterations: u64, depth: u32, check: u64) {
        self.0 += &format!("{iterations}\t trees of depth {depth}\t check: {check}\n");
    }
    pub fn long_lived(&mut self, depth: u32, check: u64) {
        self.0 += &format!("long lived tree of depth {depth}\t check: {check}\n");
    }
    pub fn flush(&self) {
        let mut so = std::io::stdout().lock();
        so.write_all(self.0.as_bytes()).unwrap();
        so.flush().unwrap();
    }
}

/// Longest observed pause, printed as `max-pause-ms: <float>`.
#[derive(Default)]
pub struct Pauses {
    pub max: Duration,
    pub total: Duration,
    pub cycles: u64,
}

impl Pauses {
    pub fn record(&mut self, d: Duration) {
        self.total += d;
        if d > self.max {
            self.max = d;
        }
    }
    pub fn report(&self) {
        eprintln!("max-pause-ms: {:.3}", self.max.as_secs_f64() * 1e3);
        eprintln!("gc-cycles: {}", self.cycles);
        eprintln!("total-pause-ms: {:.3}", self.total.as_secs_f64() * 1e3);
    }
}
