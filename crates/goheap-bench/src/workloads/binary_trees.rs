//! `binary-trees`: the Computer Language Benchmarks Game program with per-node
//! allocation and explicit free (bench-workloads.md §1.1).
//!
//! A node is two raw child pointers (16 bytes), each node allocated on its
//! own; a leaf has both null. Build a stretch tree of depth n+1 and drop it,
//! keep a long-lived tree of depth n, then for d = 4, 6, …, n build, check and
//! free 2^(n-d+4) trees of depth d. `check` counts nodes; freeing walks the
//! tree. Single-threaded, n = 21 (quick: 16). The child renders the usual
//! output text and compares it with the expected text (§1.2), so a corrupted
//! tree is a failure. Reports elapsed seconds.

use std::alloc::{GlobalAlloc, Layout};
use std::fmt::Write;
use std::ptr::null_mut;
use std::time::Instant;

use super::{alloc, Params};

#[repr(C)]
struct Node {
    left: *mut Node,
    right: *mut Node,
}

const NODE: Layout = Layout::new::<Node>();
const MIN_DEPTH: u32 = 4;

pub fn run<A: GlobalAlloc>(a: &A, p: &Params) -> Result<f64, String> {
    let n = if p.quick { 16 } else { 21 };
    let start = Instant::now();
    // SAFETY: `binary_trees` has no caller precondition; every node it allocates through
    // `a` is freed, through `a`, before it returns.
    let output = unsafe { binary_trees(a, n) };
    let elapsed = start.elapsed().as_secs_f64();
    let expected = expected_output(n);
    if output != expected {
        return Err(format!("wrong output:\n{output}expected:\n{expected}"));
    }
    Ok(elapsed)
}

/// # Safety
/// No caller precondition: every node it allocates through `a` is freed through
/// `a` before it returns; it is `unsafe` only so its body can call the raw-pointer
/// tree helpers.
unsafe fn binary_trees<A: GlobalAlloc>(a: &A, n: u32) -> String {
    let max_depth = n.max(MIN_DEPTH + 2);
    let stretch_depth = max_depth + 1;
    let mut out = String::with_capacity(1024);

    let stretch = bottom_up_tree(a, stretch_depth);
    writeln!(
        out,
        "stretch tree of depth {stretch_depth}\t check: {}",
        check(stretch)
    )
    .unwrap();
    free_tree(a, stretch);

    let long_lived = bottom_up_tree(a, max_depth);
    for depth in (MIN_DEPTH..=max_depth).step_by(2) {
        let iterations = 1u64 << (max_depth - depth + MIN_DEPTH);
        let mut sum = 0u64;
        for _ in 0..iterations {
            let tree = bottom_up_tree(a, depth);
            sum += check(tree);
            free_tree(a, tree);
        }
        writeln!(out, "{iterations}\t trees of depth {depth}\t check: {sum}").unwrap();
    }
    writeln!(
        out,
        "long lived tree of depth {max_depth}\t check: {}",
        check(long_lived)
    )
    .unwrap();
    free_tree(a, long_lived);
    out
}

/// # Safety
/// No precondition on the arguments. The caller owns the returned tree and may
/// free it only once, with [`free_tree`] and the same `a`.
unsafe fn bottom_up_tree<A: GlobalAlloc>(a: &A, depth: u32) -> *mut Node {
    let node = alloc(a, NODE) as *mut Node;
    let (left, right) = if depth > 0 {
        (bottom_up_tree(a, depth - 1), bottom_up_tree(a, depth - 1))
    } else {
        (null_mut(), null_mut())
    };
    node.write(Node { left, right });
    node
}

/// # Safety
/// `node` must be the root of a live tree from [`bottom_up_tree`] (every node has
/// two valid children or two null ones) that has not been freed.
unsafe fn check(node: *const Node) -> u64 {
    let Node { left, right } = node.read();
    if left.is_null() {
        1
    } else {
        1 + check(left) + check(right)
    }
}

/// # Safety
/// `node` must be the root of a tree built by [`bottom_up_tree`] with the same
/// `a`, not freed before and not used after this call.
unsafe fn free_tree<A: GlobalAlloc>(a: &A, node: *mut Node) {
    let Node { left, right } = node.read();
    if !left.is_null() {
        free_tree(a, left);
        free_tree(a, right);
    }
    a.dealloc(node as *mut u8, NODE);
}

/// The benchmark's output for `n`, from the formula: a tree of depth d has
/// 2^(d+1) - 1 nodes.
fn expected_output(n: u32) -> String {
    let nodes = |d: u32| (1u64 << (d + 1)) - 1;
    let max_depth = n.max(MIN_DEPTH + 2);
    let mut out = String::new();
    writeln!(
        out,
        "stretch tree of depth {}\t check: {}",
        max_depth + 1,
        nodes(max_depth + 1)
    )
    .unwrap();
    for depth in (MIN_DEPTH..=max_depth).step_by(2) {
        let iterations = 1u64 << (max_depth - depth + MIN_DEPTH);
        writeln!(
            out,
            "{iterations}\t trees of depth {depth}\t check: {}",
            iterations * nodes(depth)
        )
        .unwrap();
    }
    writeln!(
        out,
        "long lived tree of depth {max_depth}\t check: {}",
        nodes(max_depth)
    )
    .unwrap();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bench-workloads.md §1.2, n = 10 (the site's binarytrees-output.txt).
    const OUTPUT_10: &str = "\
stretch tree of depth 11\t check: 4095
1024\t trees of depth 4\t check: 31744
256\t trees of depth 6\t check: 32512
64\t trees of depth 8\t check: 32704
16\t trees of depth 10\t check: 32752
long lived tree of depth 10\t check: 2047
";

    /// bench-workloads.md §1.2, n = 21.
    const OUTPUT_21: &str = "\
stretch tree of depth 22\t check: 8388607
2097152\t trees of depth 4\t check: 65011712
524288\t trees of depth 6\t check: 66584576
131072\t trees of depth 8\t check: 66977792
32768\t trees of depth 10\t check: 67076096
8192\t trees of depth 12\t check: 67100672
2048\t trees of depth 14\t check: 67106816
512\t trees of depth 16\t check: 67108352
128\t trees of depth 18\t check: 67108736
32\t trees of depth 20\t check: 67108832
long lived tree of depth 21\t check: 4194303
";

    #[test]
    fn formula_matches_published_output() {
        assert_eq!(expected_output(10), OUTPUT_10);
        assert_eq!(expected_output(21), OUTPUT_21);
    }

    #[test]
    fn small_run_matches() {
        // SAFETY: no caller precondition; the trees are built and freed with `System` inside
        // the call.
        let out = unsafe { binary_trees(&std::alloc::System, 10) };
        assert_eq!(out, OUTPUT_10);
    }
}
