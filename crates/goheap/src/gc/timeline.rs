//! `GOHEAP_TRACE=<file>`: a timeline of the collector as Chrome trace-event JSON, which
//! Perfetto (ui.perfetto.dev) and `chrome://tracing` load, and `goheap report` draws.
//!
//! Events (the JSON Array Format: one object per line after `[`; the closing `]` is
//! optional in that format, so a file cut short by a crash still loads):
//!
//! ```text
//!   "X" sweep termination / mark / mark termination   per cycle, on the collector's track
//!       (tid 1), args: cycle, heap id, forced
//!   "X" pause: <cause>     each time a mutator was held up (tid 2): session entry, assist
//!       (a mark assist), sweep (a lazy sweep), weak upgrade
//!   "C" heap               at each cycle's start and end: live bytes (Go's heapLive),
//!       marked bytes and the goal
//!   "C" gc cpu             per cycle: the collector's share of the CPU during the cycle
//!       (GC CPU over cycle time x GOMAXPROCS) and since the heap began (GCCPUFraction)
//! ```
//!
//! Times are microseconds since the trace began (the first heap's start). Events are
//! written by the thread that makes them, under one lock, through a buffered file writer;
//! the file is flushed after every cycle and at exit. With tracing off, the hooks are a
//! relaxed load each: per cycle, and per pause (never per allocation).

use core::sync::atomic::{AtomicBool, Ordering};
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use super::heap::HeapInner;
use super::pause::PauseCause;
use super::stats::CycleRecord;

/// Whether `GOHEAP_TRACE` is set (read once, at the first heap).
static ON: AtomicBool = AtomicBool::new(false);

struct Writer {
    out: std::io::BufWriter<std::fs::File>,
    epoch: Instant,
    pid: u32,
}

static WRITER: Mutex<Option<Writer>> = Mutex::new(None);

/// Opens the trace file named by `GOHEAP_TRACE` (`%p`: the pid), once per process. A file
/// that cannot be created is reported on stderr, and the program runs untraced.
pub(crate) fn start() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Some(name) = std::env::var_os("GOHEAP_TRACE").filter(|n| !n.is_empty()) else {
            return;
        };
        let pid = std::process::id();
        let path = name
            .to_string_lossy()
            .replace("%p", &pid.to_string());
        match std::fs::File::create(&path) {
            Ok(f) => {
                let mut out = std::io::BufWriter::new(f);
                let _ = writeln!(out, "[");
                let _ = writeln!(
                    out,
                    r#"{{"name":"process_name","ph":"M","pid":{pid},"args":{{"name":"goheap GC"}}}},"#
                );
                for (tid, name) in [(1, "collector"), (2, "mutator pauses")] {
                    let _ = writeln!(
                        out,
                        r#"{{"name":"thread_name","ph":"M","pid":{pid},"tid":{tid},"args":{{"name":"{name}"}}}},"#
                    );
                }
                *WRITER.lock().unwrap_or_else(|e| e.into_inner()) = Some(Writer {
                    out,
                    epoch: Instant::now(),
                    pid,
                });
                ON.store(true, Ordering::Relaxed);
            }
            Err(e) => eprintln!("goheap: GOHEAP_TRACE: cannot create {path}: {e}"),
        }
    });
}

fn with(f: impl FnOnce(&mut Writer)) {
    if let Some(w) = WRITER.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        f(w);
    }
}

fn us(epoch: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(epoch).as_nanos() as f64 / 1000.0
}

/// A pause of `ns` nanoseconds that began at `start`.
pub(crate) fn pause(cause: PauseCause, start: Instant, ns: u64) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let name = cause.name();
    with(|w| {
        let _ = writeln!(
            w.out,
            r#"{{"name":"pause: {name}","cat":"pause","ph":"X","ts":{:.3},"dur":{:.3},"pid":{},"tid":2}},"#,
            us(w.epoch, start),
            ns as f64 / 1000.0,
            w.pid
        );
    });
}

/// A finished cycle of heap `h` (`rec`), with the collector's CPU time so far.
pub(crate) fn cycle(h: &HeapInner, rec: &CycleRecord, cycle_no: u32, gc_cpu_ns: u64) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let heap_id = h as *const HeapInner as usize;
    with(|w| {
        let t0 = us(w.epoch, h.start) + rec.start_ns as f64 / 1000.0;
        let mut t = t0;
        let pid = w.pid;
        for (name, ns) in [
            ("sweep termination", rec.stw1_ns),
            ("mark", rec.mark_ns),
            ("mark termination", rec.stw2_ns),
        ] {
            let _ = writeln!(
                w.out,
                r#"{{"name":"{name}","cat":"gc","ph":"X","ts":{t:.3},"dur":{:.3},"pid":{pid},"tid":1,"args":{{"cycle":{cycle_no},"heap":"{heap_id:#x}","forced":{},"workers":{},"fractional":{:.3}}}}},"#,
                ns as f64 / 1000.0,
                rec.forced,
                rec.workers,
                rec.fractional_ppm as f64 / 1e6
            );
            t += ns as f64 / 1000.0;
        }
        let _ = writeln!(
            w.out,
            r#"{{"name":"heap","ph":"C","ts":{t0:.3},"pid":{pid},"args":{{"live":{},"goal":{}}}}},"#,
            rec.heap0, rec.goal
        );
        let _ = writeln!(
            w.out,
            r#"{{"name":"heap","ph":"C","ts":{t:.3},"pid":{pid},"args":{{"live":{},"marked":{},"goal":{}}}}},"#,
            rec.heap1, rec.marked, rec.goal
        );
        let cycle_ns = (rec.stw1_ns + rec.mark_ns + rec.stw2_ns).max(1);
        let busy = rec.stw1_ns + rec.worker_ns + rec.stw2_ns;
        let during = busy as f64 / (cycle_ns as f64 * rec.procs.max(1) as f64);
        let since = gc_cpu_ns as f64
            / (h.start.elapsed().as_nanos().max(1) as f64 * rec.procs.max(1) as f64);
        let _ = writeln!(
            w.out,
            r#"{{"name":"gc cpu","ph":"C","ts":{t:.3},"pid":{pid},"args":{{"cycle":{during:.4},"total":{since:.4}}}}},"#
        );
        let _ = w.out.flush();
    });
}

/// Flushes the trace (at exit).
pub(crate) fn flush() {
    with(|w| {
        let _ = w.out.flush();
    });
}
