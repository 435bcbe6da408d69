//! The Markdown summary and the raw CSV.
//!
//! For each workload and allocator the table shows medians over the
//! repetitions, and time and peak-RSS ratios against mimalloc (the way the
//! mimalloc readme and mimalloc-bench present results). Geometric-mean rows
//! summarise the ratios per allocator.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use crate::driver::{fmt_value, Measurement, Plan, Sample};
use crate::workloads::Workload;

/// Ratios are taken against this allocator.
const BASELINE: &str = "mimalloc";

/// Medians of one (workload, allocator) cell.
#[derive(Clone, Copy)]
struct Cell {
    value: f64,
    rss_mib: f64,
    cpu: f64,
    runs: usize,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn cell(samples: &[Sample], workload: Workload, allocator: &str) -> Option<Cell> {
    let ok: Vec<&Measurement> = samples
        .iter()
        .filter(|s| s.workload == workload && s.allocator == allocator)
        .filter_map(|s| s.outcome.as_ref().ok())
        .collect();
    if ok.is_empty() {
        return None;
    }
    Some(Cell {
        value: median(ok.iter().map(|m| m.value).collect()),
        rss_mib: median(ok.iter().map(|m| m.rss_mib()).collect()),
        cpu: median(ok.iter().map(|m| m.cpu()).collect()),
        runs: ok.len(),
    })
}

fn geomean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| (xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64).exp())
}

/// A geometric-mean row group over the workloads selected by `include`.
/// RSS ratios of xmalloc-test are left out (its RSS grows with its speed).
fn geomean_rows(
    out: &mut String,
    plan: &Plan,
    samples: &[Sample],
    label: &str,
    include: impl Fn(Workload) -> bool,
) {
    let workloads: Vec<Workload> = plan
        .workloads
        .iter()
        .copied()
        .filter(|&w| include(w))
        .collect();
    if workloads.is_empty() {
        return;
    }
    for &allocator in &plan.allocators {
        let (mut time, mut rss) = (Vec::new(), Vec::new());
        for &w in &workloads {
            if let (Some(c), Some(base)) = (cell(samples, w, allocator), cell(samples, w, BASELINE))
            {
                time.push(c.value / base.value);
                if w != Workload::Xmalloc {
                    rss.push(c.rss_mib / base.rss_mib);
                }
            }
        }
        let ratio = |x: Option<f64>| x.map_or("–".to_string(), |r| format!("{r:.2}"));
        writeln!(
            out,
            "| **{label}** ({} of {}) | {allocator} | | | **{}** | | **{}** | |",
            time.len(),
            workloads.len(),
            ratio(geomean(&time)),
            ratio(geomean(&rss)),
        )
        .unwrap();
    }
}

/// The Markdown report.
pub fn markdown(plan: &Plan, samples: &[Sample]) -> String {
    let mut out = String::new();
    let reps = if plan.reps == 1 {
        "1 repetition".to_string()
    } else {
        format!("median of {} repetitions", plan.reps)
    };
    writeln!(out, "## goheap-bench results\n").unwrap();
    writeln!(
        out,
        "{} mode, {} threads, {reps}; ratios are against {BASELINE} (lower is better).\n",
        if plan.quick { "quick" } else { "full" },
        plan.threads
    )
    .unwrap();
    writeln!(out, "| workload | allocator | time | unit | × {BASELINE} | peak RSS MiB | × {BASELINE} | CPU s |").unwrap();
    writeln!(out, "|---|---|--:|---|--:|--:|--:|--:|").unwrap();
    for &w in &plan.workloads {
        let base = cell(samples, w, BASELINE);
        for &allocator in &plan.allocators {
            let Some(c) = cell(samples, w, allocator) else {
                writeln!(out, "| {} | {allocator} | FAILED | | | | | |", w.name()).unwrap();
                continue;
            };
            let ratio =
                |x: f64, b: Option<f64>| b.map_or("–".to_string(), |b| format!("{:.2}", x / b));
            let partial = if c.runs < plan.reps {
                format!(" ({}/{} ok)", c.runs, plan.reps)
            } else {
                String::new()
            };
            writeln!(
                out,
                "| {} | {allocator} | {}{partial} | {} | {} | {:.1} | {} | {:.2} |",
                w.name(),
                fmt_value(c.value),
                w.unit(),
                ratio(c.value, base.map(|b| b.value)),
                c.rss_mib,
                ratio(c.rss_mib, base.map(|b| b.rss_mib)),
                c.cpu,
            )
            .unwrap();
        }
    }
    geomean_rows(
        &mut out,
        plan,
        samples,
        "geomean multi-threaded",
        Workload::multi_threaded,
    );
    geomean_rows(&mut out, plan, samples, "geomean single-threaded", |w| {
        matches!(
            w,
            Workload::BinaryTrees | Workload::CacheScratch1 | Workload::AllocTest1
        )
    });
    writeln!(
        out,
        "\nUnits: `ns/pair` = nanoseconds per alloc+free pair; `s` = seconds measured inside the child; \
         `rtime` = throughput-derived relative time as in mimalloc-bench \
         (larson: 1e9 / allocations per second; xmalloc-test: 100 / million frees per second). \
         Peak RSS is the child's `ru_maxrss`. Geometric means: multi-threaded = larson, xmalloc-test, \
         cache-scratchN, mstress, alloc-testN; single-threaded = binary-trees, cache-scratch1, alloc-test1; \
         their RSS ratio leaves out xmalloc-test."
    )
    .unwrap();
    out
}

/// Writes one CSV line per child run.
pub fn write_csv(path: &Path, plan: &Plan, samples: &[Sample]) -> io::Result<()> {
    let mut f = io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "rep,workload,allocator,status,value,unit,wall_s,user_s,sys_s,maxrss_kib,threads,quick,error")?;
    for s in samples {
        let prefix = format!("{},{},{}", s.rep, s.workload.name(), s.allocator);
        let suffix = format!("{},{}", plan.threads, plan.quick);
        match &s.outcome {
            Ok(m) => writeln!(
                f,
                "{prefix},ok,{},{},{:.6},{:.6},{:.6},{},{suffix},",
                m.value,
                s.workload.unit(),
                m.wall,
                m.user,
                m.sys,
                m.maxrss_kib
            )?,
            Err(e) => {
                let e = e.replace('"', "\"\"");
                writeln!(
                    f,
                    "{prefix},failed,,{},,,,,{suffix},\"{e}\"",
                    s.workload.unit()
                )?
            }
        }
    }
    f.flush()
}
