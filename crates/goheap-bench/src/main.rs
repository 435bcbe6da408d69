//! `goheap-bench`: goheap side by side with glibc malloc, mimalloc and jemalloc.
//!
//! ```text
//! goheap-bench run [--quick] [--reps N] [--threads N] [--only w,...] [--alloc a,...]
//!                  [--csv FILE] [--timeout SECS]
//! goheap-bench child <workload> <allocator> [--quick] [--threads N]
//! goheap-bench list
//! ```
//!
//! `run` is the driver: it starts one `child` process per (repetition,
//! workload, allocator), reads the child's own measurement from its stdout and
//! its peak RSS and CPU time from `wait4`, and prints a Markdown table. The
//! allocators are called directly as `GlobalAlloc` values, never installed as
//! the global allocator (src/allocators.rs); the workloads are in
//! src/workloads/. A failed child makes `run` exit with status 1.

mod allocators;
mod driver;
mod report;
mod rng;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use driver::Plan;
use workloads::{Params, Workload};

const USAGE: &str = "\
usage:
  goheap-bench run [options]        run the suite, print a Markdown table
      --quick                       small problem sizes (whole suite in ~1-2 min)
      --reps N                      repetitions (default 3; 1 with --quick)
      --threads N                   threads of the multi-threaded workloads (default 2)
      --only W1,W2,...              workloads; a prefix selects a group, e.g. fastpath,batch,larson
      --alloc A1,A2,...             allocators (default: all in this build)
      --csv FILE                    also write every child run to FILE
      --timeout SECS                kill a child after this long (default 900; 180 with --quick)
  goheap-bench child <workload> <allocator> [--quick] [--threads N]
                                    run one workload once, print `result <value>`
  goheap-bench list                 list workloads and allocators";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("child") => cmd_child(&args[1..]),
        Some("list") => {
            cmd_list();
            Ok(ExitCode::SUCCESS)
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(format!("missing or unknown command\n{USAGE}")),
    };
    result.unwrap_or_else(|e| {
        eprintln!("goheap-bench: {e}");
        ExitCode::from(2)
    })
}

/// Command-line options shared by `run` and `child`.
struct Options {
    positional: Vec<String>,
    quick: bool,
    reps: Option<usize>,
    threads: usize,
    only: Option<String>,
    alloc: Option<String>,
    csv: Option<PathBuf>,
    timeout: Option<u64>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        positional: Vec::new(),
        quick: false,
        reps: None,
        threads: 2,
        only: None,
        alloc: None,
        csv: None,
        timeout: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        let number = |name: &str, v: String| -> Result<usize, String> {
            v.parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or(format!("{name}: `{v}` is not a positive number"))
        };
        match arg.as_str() {
            "--quick" => o.quick = true,
            "--reps" => o.reps = Some(number("--reps", value("--reps")?)?),
            "--threads" => o.threads = number("--threads", value("--threads")?)?,
            "--only" => o.only = Some(value("--only")?),
            "--alloc" => o.alloc = Some(value("--alloc")?),
            "--csv" => o.csv = Some(value("--csv")?.into()),
            "--timeout" => o.timeout = Some(number("--timeout", value("--timeout")?)? as u64),
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag}\n{USAGE}"))
            }
            _ => o.positional.push(arg.clone()),
        }
    }
    Ok(o)
}

/// Workloads named in `--only`: exact names, or prefixes selecting a group.
fn select_workloads(only: Option<&str>) -> Result<Vec<Workload>, String> {
    let all = Workload::all();
    let Some(only) = only else { return Ok(all) };
    let mut picked = Vec::new();
    for want in only.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let exact: Vec<Workload> = all.iter().copied().filter(|w| w.name() == want).collect();
        let matches = if exact.is_empty() {
            all.iter()
                .copied()
                .filter(|w| w.name().starts_with(want))
                .collect()
        } else {
            exact
        };
        if matches.is_empty() {
            return Err(format!(
                "no workload matches `{want}` (see `goheap-bench list`)"
            ));
        }
        picked.extend(matches);
    }
    // Keep suite order and drop duplicates.
    Ok(all.into_iter().filter(|w| picked.contains(w)).collect())
}

fn cmd_run(args: &[String]) -> Result<ExitCode, String> {
    let o = parse_options(args)?;
    if !o.positional.is_empty() {
        return Err(format!("unexpected argument `{}`", o.positional[0]));
    }
    let allocators: Vec<&'static str> = match &o.alloc {
        None => allocators::ALLOCATORS.iter().map(|a| a.name).collect(),
        Some(list) => list
            .split(',')
            .map(|name| allocators::find(name.trim()).map(|a| a.name))
            .collect::<Result<_, _>>()?,
    };
    let plan = Plan {
        workloads: select_workloads(o.only.as_deref())?,
        allocators,
        reps: o.reps.unwrap_or(if o.quick { 1 } else { 3 }),
        quick: o.quick,
        threads: o.threads,
        timeout: Duration::from_secs(o.timeout.unwrap_or(if o.quick { 180 } else { 900 })),
    };

    let samples = driver::run(&plan);
    println!("{}", report::markdown(&plan, &samples));
    if let Some(path) = &o.csv {
        report::write_csv(path, &plan, &samples)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("raw results written to {}", path.display());
    }

    let failed: Vec<_> = samples
        .iter()
        .filter_map(|s| s.outcome.as_ref().err().map(|e| (s, e)))
        .collect();
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "\n!!!!!!!! {} of {} child runs FAILED !!!!!!!!",
        failed.len(),
        samples.len()
    );
    for (s, e) in failed {
        eprintln!("  rep {}: {}", s.rep + 1, e.lines().next().unwrap_or(""));
    }
    Ok(ExitCode::FAILURE)
}

fn cmd_child(args: &[String]) -> Result<ExitCode, String> {
    let o = parse_options(args)?;
    let [workload, allocator] = o.positional.as_slice() else {
        return Err(format!("child needs <workload> <allocator>\n{USAGE}"));
    };
    let workload = Workload::parse(workload).ok_or(format!("unknown workload `{workload}`"))?;
    let allocator = allocators::find(allocator)?;
    let params = Params {
        quick: o.quick,
        threads: o.threads,
    };

    // A panic on any thread (some workloads detach theirs) must fail the child.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));

    match (allocator.run)(workload, &params) {
        Ok(value) => {
            println!("result {value}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{} with {}: {e}", workload.name(), allocator.name);
            Ok(ExitCode::FAILURE)
        }
    }
}

fn cmd_list() {
    println!("workloads:");
    for w in Workload::all() {
        let threads = if w.multi_threaded() {
            "multi-threaded"
        } else {
            "single-threaded"
        };
        println!("  {:<16} {threads}, reports {}", w.name(), w.unit());
    }
    println!("allocators:");
    for a in allocators::ALLOCATORS {
        println!("  {}", a.name);
    }
    for (name, how) in allocators::DISABLED {
        println!("  {name} (not in this build: {how})");
    }
}
