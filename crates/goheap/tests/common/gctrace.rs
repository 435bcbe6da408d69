//! Go's gctrace line format, shared by the goheap tests (`gc_limits.rs`) and the CLI's
//! (`crates/goheap-cli/tests/cli.rs`, included with `#[path]`).
//!
//! The regex: `^gc \d+ @\d+\.\d{3}s \d+%: [\d.]+\+[\d.]+\+[\d.]+ ms clock,
//! [\d.]+\+[\d.]+/[\d.]+/[\d.]+\+[\d.]+ ms cpu, \d+->\d+->\d+ MB, \d+ MB goal, 0 MB stacks,
//! 0 MB globals, \d+ P( \(forced\))?$` (no regex crate: matched by hand).

/// Go's gctrace line (`GODEBUG=gctrace=1`, Go 1.19+), as a small pattern: `D` is `\d+`, `N`
/// is `[\d.]+`, `T` is `\d+\.\d{3}`; everything else is literal.
pub const GCTRACE: &str = "gc D @Ts D%: N+N+N ms clock, N+N/N/N+N ms cpu, D->D->D MB, D MB goal, 0 MB stacks, 0 MB globals, D P";

/// Whether `line` matches `^GCTRACE( \(forced\))?$`.
pub fn is_gctrace(line: &str) -> bool {
    let line = line.strip_suffix(" (forced)").unwrap_or(line);
    let mut s = line.as_bytes();
    let digits = |s: &mut &[u8], dot: bool| {
        let n = s
            .iter()
            .take_while(|c| c.is_ascii_digit() || (dot && **c == b'.'))
            .count();
        *s = &s[n..];
        n > 0
    };
    for &p in GCTRACE.as_bytes() {
        let ok = match p {
            b'D' => digits(&mut s, false),
            b'N' => digits(&mut s, true),
            b'T' => {
                let int = digits(&mut s, false);
                let dot = s.first() == Some(&b'.');
                if dot {
                    s = &s[1..];
                }
                let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
                s = &s[n..];
                int && dot && n == 3
            }
            c => {
                let ok = s.first() == Some(&c);
                if ok {
                    s = &s[1..];
                }
                ok
            }
        };
        if !ok {
            return false;
        }
    }
    s.is_empty()
}
