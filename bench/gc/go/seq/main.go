// binary-trees, sequential Go: one &Node{} per node, default GC, no tuning
// (GOGC/GOMAXPROCS untouched). Algorithm and output text as in the Computer
// Language Benchmarks Game (node = two child pointers, check = node count).
// After the result, stderr gets "max-pause-ms:" and "gc-cycles:" (see
// ../gcstats for how the maximum pause over all cycles is obtained).
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"

	"gcbench/gcstats"
)

type Node struct {
	left, right *Node
}

func bottomUp(depth int) *Node {
	if depth <= 0 {
		return &Node{}
	}
	return &Node{bottomUp(depth - 1), bottomUp(depth - 1)}
}

func (n *Node) check() int {
	if n.left == nil {
		return 1
	}
	return 1 + n.left.check() + n.right.check()
}

func main() {
	gcstats.Start()
	n := 0
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	const minDepth = 4
	maxDepth := n
	if minDepth+2 > n {
		maxDepth = minDepth + 2
	}
	out := bufio.NewWriter(os.Stdout)

	{
		stretch := maxDepth + 1
		t := bottomUp(stretch)
		fmt.Fprintf(out, "stretch tree of depth %d\t check: %d\n", stretch, t.check())
	}

	longLived := bottomUp(maxDepth)

	for d := minDepth; d <= maxDepth; d += 2 {
		iterations := 1 << uint(maxDepth-d+minDepth)
		check := 0
		for i := 0; i < iterations; i++ {
			check += bottomUp(d).check()
		}
		fmt.Fprintf(out, "%d\t trees of depth %d\t check: %d\n", iterations, d, check)
	}

	fmt.Fprintf(out, "long lived tree of depth %d\t check: %d\n", maxDepth, longLived.check())
	out.Flush()
	gcstats.Finish()
}
