//! The driver: runs every (repetition, workload, allocator) in its own child
//! process and collects the results.
//!
//! Runs are interleaved rep-major, then workload, then allocator, so slow
//! drifts of the machine hit all allocators alike. The child prints its own
//! measured number; the driver takes peak RSS and CPU time from the child's
//! `rusage` as returned by `wait4`.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::workloads::Workload;

/// What to run.
pub struct Plan {
    pub workloads: Vec<Workload>,
    pub allocators: Vec<&'static str>,
    pub reps: usize,
    pub quick: bool,
    pub threads: usize,
    /// A child running longer than this is killed and counted as failed.
    pub timeout: Duration,
}

/// One child run.
pub struct Sample {
    pub rep: usize,
    pub workload: Workload,
    pub allocator: &'static str,
    pub outcome: Result<Measurement, String>,
}

/// What a successful child run measured.
#[derive(Clone, Copy, Debug)]
pub struct Measurement {
    /// The workload's own number, in `Workload::unit()`.
    pub value: f64,
    /// Wall-clock seconds of the whole child process, seen by the driver.
    pub wall: f64,
    pub user: f64,
    pub sys: f64,
    /// Peak resident set size of the child (`ru_maxrss`), KiB.
    pub maxrss_kib: u64,
}

impl Measurement {
    pub fn cpu(&self) -> f64 {
        self.user + self.sys
    }

    pub fn rss_mib(&self) -> f64 {
        self.maxrss_kib as f64 / 1024.0
    }
}

/// Runs the plan, printing progress to stderr.
pub fn run(plan: &Plan) -> Vec<Sample> {
    let exe = std::env::current_exe().expect("cannot find own executable");
    let total = plan.reps * plan.workloads.len() * plan.allocators.len();
    let mut samples = Vec::with_capacity(total);
    for rep in 0..plan.reps {
        for &workload in &plan.workloads {
            for &allocator in &plan.allocators {
                let outcome = run_child(&exe, plan, workload, allocator);
                let tag = format!(
                    "[{}/{total}] {} {allocator}",
                    samples.len() + 1,
                    workload.name()
                );
                match &outcome {
                    Ok(m) => eprintln!(
                        "{tag} {} {} {:.1} MiB (cpu {:.2} s, wall {:.2} s)",
                        fmt_value(m.value),
                        workload.unit(),
                        m.rss_mib(),
                        m.cpu(),
                        m.wall
                    ),
                    Err(e) => eprintln!("{tag} FAILED\n{}", indent(e)),
                }
                samples.push(Sample {
                    rep,
                    workload,
                    allocator,
                    outcome,
                });
            }
        }
    }
    samples
}

/// Formats a measured value with about four significant digits.
pub fn fmt_value(v: f64) -> String {
    match v.abs() {
        x if x >= 100.0 => format!("{v:.1}"),
        x if x >= 10.0 => format!("{v:.2}"),
        x if x >= 1.0 => format!("{v:.3}"),
        _ => format!("{v:.4}"),
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    !! {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_child(
    exe: &PathBuf,
    plan: &Plan,
    workload: Workload,
    allocator: &str,
) -> Result<Measurement, String> {
    let mut cmd = Command::new(exe);
    cmd.args([
        "child",
        &workload.name(),
        allocator,
        "--threads",
        &plan.threads.to_string(),
    ]);
    if plan.quick {
        cmd.arg("--quick");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start child: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let stdout = read_in_background(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());

    // Reap the child with wait4 (std's Child::wait does not return rusage).
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut status = 0;
        // SAFETY: `rusage` is a plain C struct of integers and `timeval`s, for which all-zero
        // bytes are a valid value; wait4 overwrites it anyway.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are live locals borrowed only here, valid out-pointers for
        // wait4 for the whole call; `pid` is our spawned child, which nothing else reaps.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        let _ = tx.send((r, status, usage));
    });
    let mut timed_out = false;
    let (r, status, usage) = match rx.recv_timeout(plan.timeout) {
        Ok(reaped) => reaped,
        Err(_) => {
            timed_out = true;
            // SAFETY: `kill` takes no pointers, so no memory-safety precondition. The waiter
            // has not reported a reap, so `pid` is still our unreaped child (unless wait4
            // returned just after the timeout; then the signal could hit a reused pid).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            rx.recv().expect("waiter thread vanished")
        }
    };
    let wall = start.elapsed().as_secs_f64();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();

    let describe = |what: String| {
        let mut msg = format!("{} with {allocator}: {what}", workload.name());
        if !stderr.trim().is_empty() {
            msg += &format!("\nchild stderr:\n{}", stderr.trim_end());
        }
        if !stdout.trim().is_empty() {
            msg += &format!("\nchild stdout:\n{}", stdout.trim_end());
        }
        msg
    };
    if r != pid {
        return Err(describe(format!(
            "wait4 failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    if timed_out {
        return Err(describe(format!(
            "killed after the {} s timeout",
            plan.timeout.as_secs()
        )));
    }
    if libc::WIFSIGNALED(status) {
        return Err(describe(format!(
            "killed by signal {}",
            libc::WTERMSIG(status)
        )));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(describe(format!(
            "exit status {}",
            libc::WEXITSTATUS(status)
        )));
    }
    let value = parse_result(&stdout)
        .ok_or_else(|| describe("no valid `result <value>` line on stdout".into()))?;
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Ok(Measurement {
        value,
        wall,
        user: secs(usage.ru_utime),
        sys: secs(usage.ru_stime),
        maxrss_kib: usage.ru_maxrss as u64,
    })
}

/// The child's stdout must be exactly one line `result <positive number>`.
fn parse_result(stdout: &str) -> Option<f64> {
    let mut lines = stdout.lines();
    let value: f64 = lines.next()?.strip_prefix("result ")?.trim().parse().ok()?;
    (lines.next().is_none() && value.is_finite() && value > 0.0).then_some(value)
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_is_strict() {
        assert_eq!(parse_result("result 1.5\n"), Some(1.5));
        assert_eq!(parse_result("result 0\n"), None);
        assert_eq!(parse_result("result NaN\n"), None);
        assert_eq!(parse_result("result 1.5\nnoise\n"), None);
        assert_eq!(parse_result(""), None);
    }
}
