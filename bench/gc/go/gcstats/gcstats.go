// Package gcstats reports the longest GC pause of the whole run on stderr.
//
// Method (exact, every cycle):
//
//   - runtime.MemStats.PauseNs / debug.GCStats.Pause hold only the 256 most
//     recent cycles (debug.ReadGCStats copies memstats.pause_ns, a circular
//     buffer of 256 entries; it does NOT keep the whole history). At depth 21
//     and at small depths with a tiny live heap, NumGC can exceed 256, so
//     reading the buffer once at exit could miss the worst cycle.
//   - So an observer keeps a running maximum: a sentinel object with a
//     finalizer is re-armed on every GC cycle; the finalizer (on Go's
//     finalizer goroutine) calls debug.ReadGCStats and folds the pauses of the
//     cycles completed since its last call (NumGC delta, always far below 256)
//     into the maximum. Finish() does a last read before printing.
//   - debug.ReadGCStats does not stop the world (it only takes mheap_.lock),
//     so the observer adds no pause of its own. It allocates nothing per call
//     after the first (the GCStats buffers are reused) except the sentinel.
//   - One PauseNs entry is the TOTAL stop-the-world time of one cycle
//     (sweep-termination STW + mark-termination STW, runtime/mgc.go
//     work.pauseNS), i.e. what MemStats calls the pause of that GC.
//
// If the observer ever fell more than 256 cycles behind, the lost cycles are
// counted and printed as "pause-cycles-missed" (it has never happened in our
// runs; the line is then the honest caveat).
package gcstats

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

type sentinel struct {
	_ [4]uintptr // > 16 bytes and pointer-free: not a tiny-allocator object
}

var (
	mu       sync.Mutex
	stats    debug.GCStats
	seen     int64 // cycles already folded into maxPause
	missed   int64
	maxPause time.Duration
)

// observeLocked folds all cycles completed since the previous call.
func observeLocked() {
	debug.ReadGCStats(&stats)
	n := stats.NumGC - seen
	if n <= 0 {
		return
	}
	avail := int64(len(stats.Pause)) // most recent first, at most 256
	if n > avail {
		missed += n - avail
		n = avail
	}
	for _, p := range stats.Pause[:n] {
		if p > maxPause {
			maxPause = p
		}
	}
	seen = stats.NumGC
}

func arm() {
	s := &sentinel{}
	runtime.SetFinalizer(s, func(*sentinel) {
		mu.Lock()
		observeLocked()
		mu.Unlock()
		arm()
	})
}

// Start begins observing GC cycles. Call it first thing in main.
func Start() {
	mu.Lock()
	observeLocked()
	mu.Unlock()
	arm()
}

// Finish prints "max-pause-ms: <float>" and "gc-cycles: <n>" on stderr.
func Finish() {
	mu.Lock()
	defer mu.Unlock()
	observeLocked()
	fmt.Fprintf(os.Stderr, "max-pause-ms: %.3f\n", float64(maxPause)/1e6)
	fmt.Fprintf(os.Stderr, "gc-cycles: %d\n", stats.NumGC)
	fmt.Fprintf(os.Stderr, "total-pause-ms: %.3f\n", float64(stats.PauseTotal)/1e6)
	if missed > 0 {
		fmt.Fprintf(os.Stderr, "pause-cycles-missed: %d\n", missed)
	}
}
