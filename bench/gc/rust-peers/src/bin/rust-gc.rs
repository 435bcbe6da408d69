//! binary-trees on rust-gc (crate `gc` 0.5, feature `derive`): one
//! `gc::Gc<Node>` per node, default `GcConfig` (collection is automatic).
//!
//! rust-gc collects inside `Gc::new` when the thread's allocated bytes exceed
//! a threshold: a full, non-incremental mark-and-sweep of every box on the
//! thread, i.e. a stop-the-world pause of the (only) thread. The crate has no
//! hook around that collection, and timing every `Gc::new` would distort the
//! run, so the pause is reported as `max-pause-ms: n/a`. `gc-cycles` is the
//! crate's own `gc::stats().collections_performed` (feature `unstable-stats`,
//! which only exposes the counters and changes no behaviour).

#![allow(non_local_definitions)] // emitted by gc_derive 0.5 (old synstructure)

use gc::{Finalize, Gc, Trace};
use gc_rust_peers::{max_depth_from_args, schedule, Out};

#[derive(Trace, Finalize)]
struct Node {
    left: Option<Gc<Node>>,
    right: Option<Gc<Node>>,
}

fn bottom_up(depth: u32) -> Gc<Node> {
    if depth == 0 {
        Gc::new(Node {
            left: None,
            right: None,
        })
    } else {
        Gc::new(Node {
            left: Some(bottom_up(depth - 1)),
            right: Some(bottom_up(depth - 1)),
        })
    }
}

fn check(n: &Node) -> u64 {
    match (&n.left, &n.right) {
        (Some(l), Some(r)) => 1 + check(l) + check(r),
        _ => 1,
    }
}

fn main() {
    let max_depth = max_depth_from_args();
    let mut out = Out::default();

    let stretch = max_depth + 1;
    out.stretch(stretch, check(&bottom_up(stretch)));

    let long_lived = bottom_up(max_depth);

    for (d, iterations) in schedule(max_depth) {
        let mut sum = 0;
        for _ in 0..iterations {
            sum += check(&bottom_up(d));
        }
        out.trees(iterations, d, sum);
    }

    out.long_lived(max_depth, check(&long_lived));
    out.flush();
    eprintln!("max-pause-ms: n/a");
    eprintln!("gc-cycles: {}", gc::stats().collections_performed);
}
