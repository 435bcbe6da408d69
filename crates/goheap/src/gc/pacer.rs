//! The pacer: when to collect (Go's heap goal, GOGC and the soft memory limit), and the
//! configuration knobs with their environment variables.
//!
//! # The goal
//!
//! After a cycle that found `marked` live bytes, the heap may grow to
//!
//! ```text
//!   goal = max(marked + marked * GOGC / 100,  4 MiB * GOGC / 100)
//! ```
//!
//! before the next cycle starts (Go's `heapGoal` with its `heapMinimum`). With a memory limit,
//! the goal is also at most what the limit leaves once the memory goheap holds outside the
//! collected heap is taken off (Go's `memoryLimitHeapGoal`), but never below a small margin
//! over the live heap: a program whose live data does not fit under its limit collects
//! often, rather than continuously (Go bounds that case with its GC CPU limiter).
//! A negative GOGC turns the proportional goal off; the limit still applies.
//!
//! Marking stops the world in this version, so the trigger *is* the goal: there is no
//! concurrent mark whose allocation the trigger would have to leave room for.

/// Go's `heapMinimum` at GOGC=100.
pub const MIN_HEAP: usize = 4 << 20;

/// "No limit" (Go's default `math.MaxInt64`).
pub const NO_LIMIT: i64 = i64::MAX;

/// The heap goal after a cycle that marked `marked` bytes.
///
/// `overhead` is the memory counted against the limit that is not in the collected heap's
/// live objects (other allocations, span metadata, fragmentation).
pub fn heap_goal(marked: usize, gc_percent: i32, mem_limit: i64, overhead: usize) -> usize {
    let mut goal = if gc_percent < 0 {
        usize::MAX
    } else {
        let p = gc_percent as usize;
        let g = marked.saturating_add(marked.saturating_mul(p) / 100);
        g.max(MIN_HEAP.saturating_mul(p) / 100)
    };
    if mem_limit != NO_LIMIT && mem_limit >= 0 {
        let room = (mem_limit as usize).saturating_sub(overhead);
        // Leave 1/16 of the room for fragmentation inside spans.
        let lim = room - room / 16;
        let floor = marked + (marked / 16).max(1 << 20);
        goal = goal.min(lim.max(floor));
    }
    goal
}

/// Parses a GOGC value: an integer percent, or "off" (= -1).
pub fn parse_gogc(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Some(-1);
    }
    s.parse().ok()
}

/// Parses a memory limit as Go's GOMEMLIMIT: a byte count with an optional unit suffix
/// B, KiB, MiB, GiB, TiB (powers of 1024), or "off".
pub fn parse_memlimit(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Some(NO_LIMIT);
    }
    let units: [(&str, i64); 5] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("B", 1),
    ];
    let (num, mul) = units
        .iter()
        .find_map(|(u, m)| s.strip_suffix(u).map(|n| (n, *m)))
        .unwrap_or((s, 1));
    let n: i64 = num.trim().parse().ok()?;
    if n < 0 {
        return None;
    }
    n.checked_mul(mul)
}

/// `GOHEAP_DEBUG` settings (Go's GODEBUG subset).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct DebugFlags {
    /// `gctrace=1`: one line per cycle on stderr.
    pub gctrace: bool,
    /// `gccheckmark=1`: verify each mark with a second, single-threaded one.
    pub gccheckmark: bool,
}

/// Parses `name=value,name=value`; unknown names are ignored, as Go does.
pub fn parse_debug(s: &str) -> DebugFlags {
    let mut d = DebugFlags::default();
    for kv in s.split(',') {
        let mut it = kv.splitn(2, '=');
        let k = it.next().unwrap_or("").trim();
        let v = it.next().unwrap_or("").trim();
        let on = v.parse::<i64>().map(|n| n > 0).unwrap_or(false);
        match k {
            "gctrace" => d.gctrace = on,
            "gccheckmark" => d.gccheckmark = on,
            _ => {}
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goal_follows_gogc() {
        assert_eq!(heap_goal(100 << 20, 100, NO_LIMIT, 0), 200 << 20);
        assert_eq!(heap_goal(100 << 20, 50, NO_LIMIT, 0), 150 << 20);
        assert_eq!(heap_goal(100 << 20, 200, NO_LIMIT, 0), 300 << 20);
        // The minimum heap, scaled by GOGC.
        assert_eq!(heap_goal(0, 100, NO_LIMIT, 0), 4 << 20);
        assert_eq!(heap_goal(1 << 20, 100, NO_LIMIT, 0), 4 << 20);
        assert_eq!(heap_goal(0, 200, NO_LIMIT, 0), 8 << 20);
        assert_eq!(heap_goal(1 << 20, -1, NO_LIMIT, 0), usize::MAX);
    }

    #[test]
    fn limit_lowers_goal() {
        // 100 MiB live, limit 150 MiB, 10 MiB overhead: goal below 140 MiB, not 200.
        let g = heap_goal(100 << 20, 100, 150 << 20, 10 << 20);
        assert!(g < 140 << 20 && g > 100 << 20, "{g}");
        // GOGC off with a limit: the limit alone sets the goal.
        let g = heap_goal(10 << 20, -1, 64 << 20, 0);
        assert_eq!(g, (64 << 20) - (4 << 20));
        // Live data above the limit: the goal stays a margin above it (no thrashing).
        let g = heap_goal(100 << 20, 100, 50 << 20, 0);
        assert!(g > 100 << 20 && g <= 107 << 20, "{g}");
    }

    /// Simulates a program with a steady live heap allocating garbage: the heap peaks at the
    /// goal, and the goal settles at live * (1 + GOGC/100).
    #[test]
    fn simulated_steady_state() {
        let live = 50usize << 20;
        let mut goal = heap_goal(0, 100, NO_LIMIT, 0);
        let mut heap = 0usize;
        let mut peak = 0;
        let mut cycles = 0;
        for _ in 0..100_000 {
            heap += 64 << 10;
            peak = peak.max(heap);
            if heap >= goal {
                cycles += 1;
                heap = live.min(heap);
                goal = heap_goal(heap, 100, NO_LIMIT, 0);
            }
        }
        assert_eq!(goal, 2 * live);
        assert!(peak <= 2 * live + (64 << 10));
        assert!(cycles > 50);
    }

    /// Same program under a limit: the heap never passes it.
    #[test]
    fn simulated_limit_holds() {
        let live = 50usize << 20;
        let limit: i64 = 80 << 20;
        let overhead = 2 << 20;
        let mut goal = heap_goal(0, 100, limit, overhead);
        let mut heap = 0usize;
        for _ in 0..100_000 {
            heap += 64 << 10;
            assert!(heap + overhead <= limit as usize + (64 << 10));
            if heap >= goal {
                heap = live.min(heap);
                goal = heap_goal(heap, 100, limit, overhead);
            }
        }
    }

    #[test]
    fn parse_env() {
        assert_eq!(parse_gogc("100"), Some(100));
        assert_eq!(parse_gogc("off"), Some(-1));
        assert_eq!(parse_gogc("-1"), Some(-1));
        assert_eq!(parse_gogc("x"), None);
        assert_eq!(parse_memlimit("512MiB"), Some(512 << 20));
        assert_eq!(parse_memlimit("1GiB"), Some(1 << 30));
        assert_eq!(parse_memlimit("4096"), Some(4096));
        assert_eq!(parse_memlimit("10KiB"), Some(10 << 10));
        assert_eq!(parse_memlimit("2TiB"), Some(2 << 40));
        assert_eq!(parse_memlimit("7B"), Some(7));
        assert_eq!(parse_memlimit("off"), Some(NO_LIMIT));
        assert_eq!(parse_memlimit("12MB"), None);
        assert_eq!(parse_memlimit("-5"), None);
        let d = parse_debug("gctrace=1,foo=2,gccheckmark=1");
        assert!(d.gctrace && d.gccheckmark);
        assert_eq!(parse_debug("gctrace=0"), DebugFlags::default());
    }
}
