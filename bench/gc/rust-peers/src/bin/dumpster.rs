//! binary-trees on dumpster 1.x: one `dumpster::unsync::Gc<Node>` per node,
//! default collect condition.
//!
//! `unsync` (thread-local) rather than `sync`: the crate docs recommend it for
//! single-threaded use, and it is the faster of the two here (measured at
//! depth 16 on the 2-core VM, see bench/gc/README.md).
//!
//! dumpster is reference counting plus a cycle detector. A tree node has
//! exactly one reference, so the last `Gc` drop frees a whole tree at once
//! (recursively, inside `drop`), and the cycle detector
//! (`Dumpster::collect_all`, run from inside `drop` when
//! "drops since last collect > live Gcs") finds nothing to scan. Neither is
//! exposed as a separately timeable call, so `max-pause-ms: n/a`.

use dumpster::unsync::Gc;
use dumpster::Trace;
use gc_rust_peers::{max_depth_from_args, schedule, Out};

#[derive(Trace)]
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
}
