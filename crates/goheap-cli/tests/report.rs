//! `GOHEAP_TRACE` and `goheap report`: binary-trees writes a timeline whose events are
//! Chrome trace-event JSON (one mark phase per GC the summary counts, pauses, heap and CPU
//! counters); the report draws it as a self-contained page of four SVG plots. Bad input is
//! a clear error.

use std::path::Path;

mod common;
use common::goheap;

const NO_ENV: &[(&str, &str)] = &[];

#[test]
fn trace_of_binary_trees_and_its_report() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-report");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("trace.json");
    let out = goheap(
        &["binary-trees", "14", "--quiet"],
        &[("GOHEAP_TRACE", &trace)],
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let gcs: usize = stderr
        .split(" GCs")
        .next()
        .and_then(|s| s.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    // The JSON Array Format: the closing bracket is optional; add it to parse strictly.
    let text = std::fs::read_to_string(&trace).unwrap();
    let events: Vec<serde_json::Value> =
        serde_json::from_str(&format!("{}]", text.trim_end().trim_end_matches(','))).unwrap();
    let count = |name: &str| events.iter().filter(|e| e["name"] == name).count();
    assert!(gcs > 0);
    // A cycle may finish after the summary counted them (the collector runs on while the
    // program prints and exits): the trace has every counted cycle, and at most one more.
    let cycles = count("mark");
    assert!(
        cycles == gcs || cycles == gcs + 1,
        "{cycles} cycles traced, {gcs} counted"
    );
    assert_eq!(count("sweep termination"), cycles);
    assert_eq!(count("mark termination"), cycles);
    assert_eq!(count("heap"), 2 * cycles);
    assert_eq!(count("gc cpu"), cycles);
    for e in events.iter().filter(|e| e["ph"] == "X") {
        assert!(e["ts"].as_f64().unwrap() >= 0.0 && e["dur"].as_f64().unwrap() >= 0.0);
    }
    for e in events.iter().filter(|e| e["name"] == "heap") {
        assert!(e["args"]["goal"].as_u64().unwrap() > 0);
    }

    let html = dir.join("report.html");
    let out = goheap(
        &[
            "report",
            trace.to_str().unwrap(),
            "-o",
            html.to_str().unwrap(),
        ],
        NO_ENV,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg").count(), 4);
    for caption in ["Heap:", "Pauses:", "GC CPU:", "Minimum mutator utilisation"] {
        assert!(page.contains(caption), "{caption}");
    }
    assert!(page.contains(&format!("<td>{cycles}</td>")));
    // The summary line on stdout: the same cycle count, and MMU between 0 and 1.
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains(&format!(", {cycles} cycles, ")), "{line}");
    let mmu100: f64 = line
        .rsplit("100 ms ")
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!((0.0..=1.0).contains(&mmu100), "{line}");

    let bad = dir.join("bad.json");
    std::fs::write(&bad, "not json").unwrap();
    let out = goheap(
        &[
            "report",
            bad.to_str().unwrap(),
            "-o",
            html.to_str().unwrap(),
        ],
        NO_ENV,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a trace-event JSON array"));
}
