//! `goheap report TRACE -o report.html`: a self-contained page (inline SVG, no script) drawn
//! from a `GOHEAP_TRACE` timeline (`goheap::gc` writes it as Chrome trace-event JSON):
//!
//! - the heap over time: live bytes at each cycle's start and end, and the goal;
//! - every mutator pause, by cause, as a bar at its time;
//! - the collector's CPU share per cycle, and since the start (GCCPUFraction);
//! - the MMU curve (minimum mutator utilisation): for each window length `w`, the least
//!   fraction of any `w`-long stretch of the run that was not spent in pauses. Pauses of
//!   different threads count as one program-wide pause where they overlap (the union).
//!
//! A trace cut short (no closing `]`, a last line half written) is read up to its last
//! whole event; anything that is not a trace is a clear error.

use std::fmt::Write;

use serde_json::Value;

/// The heap at a cycle's start or end (times in µs since the trace began).
struct HeapPoint {
    t: f64,
    live: f64,
    goal: f64,
}

/// A mutator pause.
struct Pause {
    start: f64,
    dur: f64,
    cause: String,
}

/// The collector's CPU share: during a cycle, and since the start.
struct CpuPoint {
    t: f64,
    cycle: f64,
    total: f64,
}

/// What the report draws, from the trace's events.
#[derive(Default)]
struct Trace {
    heap: Vec<HeapPoint>,
    pauses: Vec<Pause>,
    cpu: Vec<CpuPoint>,
    /// Cycles (mark phases seen).
    cycles: usize,
}

fn parse(text: &str) -> Result<Trace, String> {
    let body = text.trim_start();
    if !body.starts_with('[') {
        return Err("not a trace-event JSON array (it must start with '[')".into());
    }
    // The JSON Array Format allows a missing `]`; a crash may also leave half a line.
    let whole: Vec<&str> = body[1..]
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| l.starts_with('{') && l.ends_with('}'))
        .collect();
    let mut t = Trace::default();
    for line in whole {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let name = e["name"].as_str().unwrap_or("");
        let ts = e["ts"].as_f64().unwrap_or(0.0);
        let args = &e["args"];
        match (e["ph"].as_str().unwrap_or(""), name) {
            ("C", "heap") => t.heap.push(HeapPoint {
                t: ts,
                live: args["live"].as_f64().unwrap_or(0.0),
                goal: args["goal"].as_f64().unwrap_or(0.0),
            }),
            ("C", "gc cpu") => t.cpu.push(CpuPoint {
                t: ts,
                cycle: args["cycle"].as_f64().unwrap_or(0.0),
                total: args["total"].as_f64().unwrap_or(0.0),
            }),
            ("X", "mark") => t.cycles += 1,
            ("X", n) if n.starts_with("pause: ") => t.pauses.push(Pause {
                start: ts,
                dur: e["dur"].as_f64().unwrap_or(0.0),
                cause: n["pause: ".len()..].to_string(),
            }),
            _ => {}
        }
    }
    if t.cycles == 0 && t.pauses.is_empty() {
        return Err("the trace holds no GC events".into());
    }
    Ok(t)
}

/// Minimum mutator utilisation for window `w` (µs) over pauses merged into disjoint,
/// sorted intervals `iv`, in a run of `span` µs.
fn mmu(iv: &[(f64, f64)], prefix: &[f64], w: f64, span: f64) -> f64 {
    if w >= span {
        return 1.0 - prefix[iv.len()] / span.max(1e-9);
    }
    let mut worst: f64 = 0.0;
    for (i, &(s, _)) in iv.iter().enumerate() {
        // Windows starting at a pause's start.
        let e = s + w;
        let k = iv.partition_point(|x| x.0 < e);
        let over = (iv[k - 1].1 - e).max(0.0);
        worst = worst.max(prefix[k] - prefix[i] - over);
    }
    for (j, &(_, e)) in iv.iter().enumerate() {
        // Windows ending at a pause's end.
        let s = e - w;
        let i = iv.partition_point(|x| x.1 <= s);
        let under = (s - iv[i].0).max(0.0);
        worst = worst.max(prefix[j + 1] - prefix[i] - under);
    }
    (1.0 - worst / w).clamp(0.0, 1.0)
}

/// The pauses as disjoint (start, end) intervals, sorted.
fn union(pauses: &[Pause]) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = pauses.iter().map(|p| (p.start, p.start + p.dur)).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

const W: f64 = 760.0;
const H: f64 = 240.0;
const L: f64 = 64.0;
const B: f64 = 36.0;

/// An SVG chart frame with axes from `x0..x1` and `y0..y1`, `xlabel`/`ylabel`, and
/// `body(map)` drawing inside (map: data to pixel).
fn chart(
    title: &str,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    (xlabel, ylabel): (&str, &str),
    xlog: bool,
    body: impl FnOnce(&dyn Fn(f64, f64) -> (f64, f64), &mut String),
) -> String {
    let fx = |x: f64| if xlog { x.max(1e-12).log10() } else { x };
    let (a, b) = (fx(x0), fx(x1).max(fx(x0) + 1e-9));
    let y1 = y1.max(y0 + 1e-9);
    let map = |x: f64, y: f64| {
        (
            L + (fx(x) - a) / (b - a) * (W - L - 12.0),
            H - B - (y - y0) / (y1 - y0) * (H - B - 12.0),
        )
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>{title}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        s,
        r##"<rect x="{L}" y="12" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        W - L - 12.0,
        H - B - 12.0
    );
    for i in 0..=4 {
        let fy = y0 + (y1 - y0) * i as f64 / 4.0;
        let (_, py) = map(x0, fy);
        let _ = write!(
            s,
            r##"<line x1="{L}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - 12.0,
            L - 4.0,
            py + 4.0,
            short(fy)
        );
        let fxv = if xlog {
            10f64.powf(a + (b - a) * i as f64 / 4.0)
        } else {
            x0 + (x1 - x0) * i as f64 / 4.0
        };
        let (px, _) = map(fxv, y0);
        let _ = write!(
            s,
            r#"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
            H - B + 14.0,
            short(fxv)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{xlabel}</text><text x="12" y="{}" transform="rotate(-90 12 {})" text-anchor="middle">{ylabel}</text>"#,
        (L + W) / 2.0,
        H - 4.0,
        H / 2.0,
        H / 2.0
    );
    body(&map, &mut s);
    s.push_str("</svg></figure>\n");
    s
}

fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else if a >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.1e}")
    }
}

fn polyline(points: &[(f64, f64)], color: &str, map: &dyn Fn(f64, f64) -> (f64, f64)) -> String {
    let mut s = format!(r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points=""#);
    for &(x, y) in points {
        let (px, py) = map(x, y);
        let _ = write!(s, "{px:.1},{py:.1} ");
    }
    s.push_str(r#""/>"#);
    s
}

fn cause_color(c: &str) -> &'static str {
    match c {
        "assist" => "#d62728",
        "sweep" => "#1f77b4",
        "session entry" => "#ff7f0e",
        "fractional" => "#2ca02c",
        _ => "#9467bd",
    }
}

/// Draws the report page for the trace text.
/// The figures of a whole trace: the report's table, and `goheap report`'s line on stdout.
struct Summary {
    /// The run's length, µs.
    end: f64,
    cycles: usize,
    pauses: usize,
    max_pause: f64,
    total_pause: f64,
    gc_cpu: f64,
    /// The pauses merged into disjoint sorted intervals, and their prefix sums (for MMU).
    iv: Vec<(f64, f64)>,
    prefix: Vec<f64>,
}

/// MMU windows of the summary line, µs.
const SUMMARY_WINDOWS: [f64; 3] = [1_000.0, 10_000.0, 100_000.0];

impl Summary {
    fn of(t: &Trace) -> Summary {
        let end = t
            .heap
            .iter()
            .map(|h| h.t)
            .chain(t.pauses.iter().map(|p| p.start + p.dur))
            .chain(t.cpu.iter().map(|c| c.t))
            .fold(0.0, f64::max)
            .max(1.0);
        let iv = union(&t.pauses);
        let mut prefix = vec![0.0];
        for &(s, e) in &iv {
            prefix.push(prefix.last().unwrap() + (e - s));
        }
        Summary {
            end,
            cycles: t.cycles,
            pauses: t.pauses.len(),
            max_pause: t.pauses.iter().map(|p| p.dur).fold(0.0, f64::max),
            total_pause: t.pauses.iter().map(|p| p.dur).sum(),
            gc_cpu: t.cpu.last().map_or(0.0, |c| c.total),
            iv,
            prefix,
        }
    }

    /// MMU for a window of `w` µs.
    fn mmu(&self, w: f64) -> f64 {
        if self.iv.is_empty() {
            1.0
        } else {
            mmu(&self.iv, &self.prefix, w, self.end)
        }
    }
}

/// `goheap report`'s line on stdout: the run, its pauses and its MMU at 1, 10 and 100 ms.
pub fn summary_line(text: &str) -> Result<String, String> {
    let s = Summary::of(&parse(text)?);
    let m = SUMMARY_WINDOWS.map(|w| s.mmu(w));
    Ok(format!(
        "run {:.1} ms, {} cycles, {} pauses (longest {:.3} ms, total {:.1} ms), GC CPU {:.1}%, MMU 1 ms {:.3}, 10 ms {:.3}, 100 ms {:.3}",
        s.end / 1000.0,
        s.cycles,
        s.pauses,
        s.max_pause / 1000.0,
        s.total_pause / 1000.0,
        s.gc_cpu * 100.0,
        m[0],
        m[1],
        m[2]
    ))
}

pub fn render(text: &str, title: &str) -> Result<String, String> {
    let t = parse(text)?;
    let sum = Summary::of(&t);
    let end = sum.end;
    let ms = |us: f64| us / 1000.0;
    let mib = |b: f64| b / (1 << 20) as f64;
    let m = SUMMARY_WINDOWS.map(|w| sum.mmu(w));
    let mut html = String::new();
    let _ = writeln!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>goheap GC report: {title}</title>\
<style>body{{font-family:sans-serif;margin:2em;color:#222}}figure{{margin:1.5em 0}}figcaption{{font-weight:bold;margin-bottom:.3em}}td,th{{padding:2px 10px;text-align:right}}</style></head><body>\
<h1>goheap GC report</h1><p>{title}</p><table><tr><th>run</th><th>cycles</th><th>pauses</th><th>longest pause</th><th>total pause</th><th>GC CPU</th><th>MMU 1 ms</th><th>MMU 10 ms</th><th>MMU 100 ms</th></tr>\
<tr><td>{:.1} ms</td><td>{}</td><td>{}</td><td>{:.3} ms</td><td>{:.3} ms</td><td>{:.1}%</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr></table>",
        ms(end),
        sum.cycles,
        sum.pauses,
        ms(sum.max_pause),
        ms(sum.total_pause),
        sum.gc_cpu * 100.0,
        m[0],
        m[1],
        m[2]
    );

    let ymax = t
        .heap
        .iter()
        .map(|h| mib(h.live.max(h.goal)))
        .fold(0.0, f64::max);
    html += &chart(
        "Heap: live bytes (blue) and goal (grey) at each cycle's start and end",
        (0.0, ms(end)),
        (0.0, ymax * 1.05),
        ("time (ms)", "MiB"),
        false,
        |map, s| {
            let live: Vec<(f64, f64)> = t.heap.iter().map(|h| (ms(h.t), mib(h.live))).collect();
            let mut goal: Vec<(f64, f64)> = Vec::new();
            for h in &t.heap {
                if let Some(&(_, g)) = goal.last() {
                    goal.push((ms(h.t), g));
                }
                goal.push((ms(h.t), mib(h.goal)));
            }
            s.push_str(&polyline(&goal, "#888", map));
            s.push_str(&polyline(&live, "#1f77b4", map));
        },
    );

    html += &chart(
        "Pauses: each time a mutator was held up (red: assist, blue: sweep, orange: session entry, green: fractional mark, purple: weak upgrade)",
        (0.0, ms(end)),
        (0.0, ms(sum.max_pause).max(1e-3) * 1.05),
        ("time (ms)", "pause (ms)"),
        false,
        |map, s| {
            for p in &t.pauses {
                let (x, y) = map(ms(p.start), ms(p.dur));
                let (_, y0) = map(0.0, 0.0);
                let _ = write!(
                    s,
                    r#"<line x1="{x:.1}" x2="{x:.1}" y1="{y0:.1}" y2="{y:.1}" stroke="{}"/>"#,
                    cause_color(&p.cause)
                );
            }
        },
    );

    html += &chart(
        "GC CPU: the collector's share of the CPU during each cycle (bars) and since the start (line)",
        (0.0, ms(end)),
        (0.0, 100.0),
        ("time (ms)", "% of CPU x GOMAXPROCS"),
        false,
        |map, s| {
            for c in &t.cpu {
                let (x, y) = map(ms(c.t), c.cycle * 100.0);
                let (_, y0) = map(0.0, 0.0);
                let _ = write!(
                    s,
                    r##"<line x1="{x:.1}" x2="{x:.1}" y1="{y0:.1}" y2="{y:.1}" stroke="#2ca02c" stroke-width="2"/>"##
                );
            }
            let total: Vec<(f64, f64)> = t.cpu.iter().map(|c| (ms(c.t), c.total * 100.0)).collect();
            s.push_str(&polyline(&total, "#555", map));
        },
    );

    let (lo, hi) = (1.0f64, end);
    let curve: Vec<(f64, f64)> = (0..=48)
        .map(|i| {
            let w = lo * (hi / lo).powf(i as f64 / 48.0);
            (ms(w), sum.mmu(w))
        })
        .collect();
    html += &chart(
        "Minimum mutator utilisation: the least share of any window of this length left to the program",
        (ms(lo), ms(hi)),
        (0.0, 1.0),
        ("window (ms, log scale)", "MMU"),
        true,
        |map, s| s.push_str(&polyline(&curve, "#d62728", map)),
    );
    html.push_str("</body></html>\n");
    Ok(html)
}

/// `goheap report TRACE -o OUT`.
pub fn run(trace: &str, out: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(trace).map_err(|e| format!("{trace}: {e}"))?;
    let html = render(&text, trace).map_err(|e| format!("{trace}: {e}"))?;
    std::fs::write(out, html).map_err(|e| format!("{out}: {e}"))?;
    println!("{}", summary_line(&text)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmu_of_known_pauses() {
        // Two 1 ms pauses 10 ms apart in a 100 ms run.
        let iv = [(10_000.0, 11_000.0), (21_000.0, 22_000.0)];
        let prefix = [0.0, 1000.0, 2000.0];
        let at = |w| mmu(&iv, &prefix, w, 100_000.0);
        assert_eq!(at(1000.0), 0.0);
        assert!((at(2000.0) - 0.5).abs() < 1e-9);
        assert!((at(12_000.0) - (1.0 - 2.0 / 12.0)).abs() < 1e-9);
        assert!((at(100_000.0) - 0.98).abs() < 1e-9);
    }

    #[test]
    fn truncated_traces_are_read_and_junk_is_refused() {
        let t = "[\n{\"name\":\"mark\",\"ph\":\"X\",\"ts\":1,\"dur\":5,\"args\":{}},\n{\"name\":\"pause: assist\",\"ph\":\"X\",\"ts\":2,\"dur\":1},\n{\"name\":\"heap\",\"ph\":\"C\",\"ts\":3,\"args\":{\"li";
        let r = parse(t).unwrap();
        assert_eq!((r.cycles, r.pauses.len(), r.heap.len()), (1, 1, 0));
        assert!(parse("hello").is_err());
        assert!(parse("[]").is_err());
    }
}
