//! binary-trees on gc-arena 0.5 (crate `gc-arena`): every node is its own
//! `Gc<'gc, Node>` allocation in one `Arena`, default `Pacing`.
//!
//! Driving the collector the way gc-arena's docs and its author's own VM
//! (piccolo, `Lua::enter`) do it: all mutation happens inside short
//! `Arena::mutate` / `mutate_root` calls (one tree per call), and after a call
//! the program runs `Arena::collect_debt()`, the incremental step that works
//! until the allocation debt is paid, whenever
//! `metrics().allocation_debt() > COLLECTOR_GRANULARITY` (1024.0, piccolo's
//! constant; the docs: "it may be faster to only call this method when the
//! allocation debt is above some threshold"). `Pacing` stays at its default.
//! gc-arena 0.5.3 has no `finish_cycle`; `collect_all` (a full cycle) is not
//! used because it is not the incremental mode the crate is built for.
//! The collector cannot run inside `mutate`, so each `collect_debt()` call is
//! a pause of the mutator: `max-pause-ms` is the longest such call (timed
//! with `Instant`). `gc-cycles` counts the calls that finished a cycle
//! (returned in `CollectionPhase::Sleeping`). Allocation goes through the
//! global allocator (the system malloc; gc-arena has no allocator of its own).
//!
//! Trees are built bottom-up, so nodes are never mutated after allocation
//! and need no `Lock`/write barrier. The long-lived tree is kept in the
//! arena root (set with `mutate_root`, which issues the root barrier).

use gc_arena::{Arena, Collect, CollectionPhase, Gc, Mutation, Rootable};
use gc_rust_peers::{max_depth_from_args, schedule, Out, Pauses};
use std::time::Instant;

#[derive(Collect)]
#[collect(no_drop)]
struct Node<'gc> {
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
}

#[derive(Collect)]
#[collect(no_drop)]
struct Root<'gc> {
    long_lived: Option<Gc<'gc, Node<'gc>>>,
}

type TreeArena = Arena<Rootable![Root<'_>]>;

fn bottom_up<'gc>(mc: &Mutation<'gc>, depth: u32) -> Gc<'gc, Node<'gc>> {
    let node = if depth == 0 {
        Node {
            left: None,
            right: None,
        }
    } else {
        Node {
            left: Some(bottom_up(mc, depth - 1)),
            right: Some(bottom_up(mc, depth - 1)),
        }
    };
    Gc::new(mc, node)
}

fn check(n: &Node<'_>) -> u64 {
    match (n.left, n.right) {
        (Some(l), Some(r)) => 1 + check(&l) + check(&r),
        _ => 1,
    }
}

/// Debt (bytes) below which `collect_debt` is not called: piccolo's value.
const COLLECTOR_GRANULARITY: f64 = 1024.0;

fn collect(arena: &mut TreeArena, p: &mut Pauses) {
    if arena.metrics().allocation_debt() > COLLECTOR_GRANULARITY {
        let t = Instant::now();
        arena.collect_debt();
        p.record(t.elapsed());
        if arena.collection_phase() == CollectionPhase::Sleeping {
            p.cycles += 1;
        }
    }
}

fn main() {
    let max_depth = max_depth_from_args();
    let mut out = Out::default();
    let mut pauses = Pauses::default();
    let mut arena = TreeArena::new(|_mc| Root { long_lived: None });

    let stretch = max_depth + 1;
    let c = arena.mutate(|mc, _root| check(&bottom_up(mc, stretch)));
    out.stretch(stretch, c);
    collect(&mut arena, &mut pauses);

    arena.mutate_root(|mc, root| root.long_lived = Some(bottom_up(mc, max_depth)));
    collect(&mut arena, &mut pauses);

    for (d, iterations) in schedule(max_depth) {
        let mut sum = 0;
        for _ in 0..iterations {
            sum += arena.mutate(|mc, _root| check(&bottom_up(mc, d)));
            collect(&mut arena, &mut pauses);
        }
        out.trees(iterations, d, sum);
    }

    let c = arena.mutate(|_mc, root| check(&root.long_lived.expect("long-lived tree")));
    out.long_lived(max_depth, c);
    out.flush();
    pauses.report();
}
