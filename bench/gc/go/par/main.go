// binary-trees, parallel Go, after the Benchmarks Game "Go #2" program
// (Gerardo Lima, Diogo Simoes): plain &Node{} per node, default GC, no
// tuning; one goroutine per depth, sync.WaitGroup, results buffered in a
// slice and printed in order.
//
// Difference from Go #2: Go #2 also runs the stretch tree and the long-lived
// tree in goroutines of their own, concurrently with the depth loops. Here the
// stretch tree is built, checked and dropped FIRST (as the algorithm
// describes), then the long-lived tree is built, then the per-depth goroutines
// run. This keeps the 2^(n+2)-node stretch tree out of the steady state and
// makes the peak-RSS numbers comparable with the sequential programs.
//
// After the result, stderr gets "max-pause-ms:" and "gc-cycles:" (see
// ../gcstats).
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"

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

	outSize := 3 + (maxDepth-minDepth)/2
	outBuff := make([]string, outSize)

	stretch := maxDepth + 1
	outBuff[0] = fmt.Sprintf("stretch tree of depth %d\t check: %d", stretch, bottomUp(stretch).check())

	longLived := bottomUp(maxDepth)

	var wg sync.WaitGroup
	index := 0
	for d := minDepth; d <= maxDepth; d += 2 {
		index++
		iterations := 1 << uint(maxDepth-d+minDepth)
		wg.Add(1)
		go func(depth, iterations, index int) {
			defer wg.Done()
			check := 0
			for i := 0; i < iterations; i++ {
				check += bottomUp(depth).check()
			}
			outBuff[index] = fmt.Sprintf("%d\t trees of depth %d\t check: %d", iterations, depth, check)
		}(d, iterations, index)
	}
	wg.Wait()

	outBuff[outSize-1] = fmt.Sprintf("long lived tree of depth %d\t check: %d", maxDepth, longLived.check())
	for _, m := range outBuff {
		fmt.Println(m)
	}
	gcstats.Finish()
}
