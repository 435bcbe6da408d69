//! binary-trees with `Box<Node>` per node and mimalloc (crate `mimalloc`) as
//! the global allocator. No collector: each tree is freed explicitly by
//! dropping it (recursive `Box` drop), so there is no GC pause:
//! `max-pause-ms: 0`.

use gc_rust_peers::{max_depth_from_args, schedule, Out};
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

struct Node {
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
}

fn bottom_up(depth: u32) -> Box<Node> {
    if depth == 0 {
        Box::new(Node {
            left: None,
            right: None,
        })
    } else {
        Box::new(Node {
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
    eprintln!("max-pause-ms: 0");
    eprintln!("gc-cycles: 0");
}
