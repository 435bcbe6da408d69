//! `goheap leaks OLD NEW`: which allocation sites' live bytes grew between two heap profiles
//! of a program (GC heaps' leaks are memory that stays reachable: this is how they show).
//!
//! A *site* is an allocation stack as pprof shows it (function names, innermost first) with
//! its `type` label if any, so profiles of two runs of the same binary compare as well as
//! two profiles of one run. For each site the `inuse_space` and `inuse_objects` of both
//! profiles are summed; sites whose live bytes grew are listed, most growth first, with the
//! top of their stack. `go tool pprof -base OLD NEW` shows the same difference as a whole.

use std::collections::HashMap;
use std::fmt::Write;

use crate::pprof::{LabelValue, Profile};

/// An allocation site: its stack (innermost first) and its `type` label ("" if none).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Site {
    stack: Vec<String>,
    ty: String,
}

/// A site's live memory in one profile.
#[derive(Clone, Copy, Debug, Default)]
struct Live {
    bytes: i64,
    objects: i64,
}

/// How a site changed from the old profile to the new one.
struct Growth<'a> {
    site: &'a Site,
    bytes: i64,
    objects: i64,
    before: i64,
}

/// Live bytes and objects per site.
fn live_by_site(p: &Profile) -> Result<HashMap<Site, Live>, String> {
    let space = p
        .value_index("inuse_space")
        .ok_or("not a heap profile: no inuse_space")?;
    let objects = p
        .value_index("inuse_objects")
        .ok_or("not a heap profile: no inuse_objects")?;
    let mut sites: HashMap<Site, Live> = HashMap::new();
    for s in &p.samples {
        let stack: Vec<String> = p.stack(s).into_iter().map(String::from).collect();
        let ty = s
            .labels
            .iter()
            .find_map(|(k, v)| match (k.as_str(), v) {
                ("type", LabelValue::Str(t)) => Some(t.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let e = sites.entry(Site { stack, ty }).or_default();
        e.bytes += s.values[space];
        e.objects += s.values[objects];
    }
    Ok(sites)
}

fn bytes(n: i64) -> String {
    let a = n.unsigned_abs() as f64;
    let sign = if n < 0 { "-" } else { "" };
    if a >= (1 << 20) as f64 {
        format!("{sign}{:.2} MiB", a / (1 << 20) as f64)
    } else if a >= 1024.0 {
        format!("{sign}{:.1} KiB", a / 1024.0)
    } else {
        format!("{sign}{a} B")
    }
}

fn read(path: &str) -> Result<Profile, String> {
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    Profile::parse(&data).map_err(|e| format!("{path}: not a pprof profile: {e}"))
}

/// The report comparing the profiles at `old` and `new`, showing at most `top` sites.
pub fn run(old: &str, new: &str, top: usize) -> Result<String, String> {
    let before = live_by_site(&read(old)?)?;
    let after = live_by_site(&read(new)?)?;
    let mut grown: Vec<Growth> = after
        .iter()
        .map(|(site, now)| {
            let was = before.get(site).copied().unwrap_or_default();
            Growth {
                site,
                bytes: now.bytes - was.bytes,
                objects: now.objects - was.objects,
                before: was.bytes,
            }
        })
        .filter(|g| g.bytes > 0)
        .collect();
    grown.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.site.cmp(b.site)));
    let total: i64 = grown.iter().map(|g| g.bytes).sum();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "goheap leaks: {} site(s) whose live bytes grew from {old} to {new}, {} in all",
        grown.len(),
        bytes(total)
    );
    for g in grown.into_iter().take(top) {
        let _ = writeln!(
            out,
            "\n  +{}  +{} object(s)  ({} -> {}){}",
            bytes(g.bytes),
            g.objects,
            bytes(g.before),
            bytes(g.before + g.bytes),
            if g.site.ty.is_empty() {
                String::new()
            } else {
                format!("  type {}", g.site.ty)
            }
        );
        let stack = &g.site.stack;
        for f in stack.iter().take(12) {
            let _ = writeln!(out, "        {f}");
        }
        if stack.len() > 12 {
            let _ = writeln!(out, "        ... {} more", stack.len() - 12);
        }
    }
    Ok(out)
}
