// Package gcstats reports the GC pauses of the whole run on stderr.
//
// Two numbers, because Go reports two kinds of pause:
//
//   - max-pause-ms: the longest single stop-the-world PHASE (sweep
//     termination or mark termination, each counted on its own) over the
//     whole run, as the runtime reports it in runtime/metrics:
//     /sched/pauses/total/gc:seconds (Go >= 1.22: "distribution of
//     individual GC-related stop-the-world pause latencies", from the
//     decision to stop until the world runs again) or, on older Go (1.19),
//     /gc/pauses:seconds (the same distribution under its old name). The
//     histogram covers every pause of the run (it is cumulative; nothing is
//     dropped). Its buckets are a quarter of a power of two wide (Go 1.27;
//     a sixteenth in Go 1.19), so the exact maximum is not known: we print
//     the UPPER bound of the highest non-empty bucket (never below the true
//     maximum, at most 25% above it with Go 1.27, 6.25% with 1.19) and the
//     bucket itself as max-pause-bucket-ms. This is the number
//     Go's gctrace shows as the first and third "clock" terms of a cycle
//     (a+b+c: a = sweep termination, c = mark termination).
//   - max-cycle-pause-ms: the longest per-CYCLE total (sweep-termination +
//     mark-termination STW of one cycle, MemStats.PauseNs[i]). PauseNs and
//     debug.GCStats.Pause keep only the 256 most recent cycles, so an
//     observer keeps a running maximum: a sentinel object with a finalizer
//     is re-armed on every GC cycle; the finalizer (on Go's finalizer
//     goroutine) calls debug.ReadGCStats (which takes a heap lock, not a
//     stop-the-world) and folds the cycles completed since its last call into
//     the maximum. Finish() does a last read. If it ever fell >256 cycles
//     behind it prints pause-cycles-missed.
//
// When the histogram metric is missing (it has been there since Go 1.16),
// max-pause-ms falls back to the per-cycle total and max-pause-source says so.
package gcstats

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
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

// pauseMetrics are the STW-phase histograms, newest name first.
var pauseMetrics = []string{"/sched/pauses/total/gc:seconds", "/gc/pauses:seconds"}

// MaxSTWPhase returns the bounds (seconds) of the highest non-empty bucket of
// the runtime's histogram of individual GC stop-the-world pauses, the metric
// read, and ok=false if no such metric exists or no pause was recorded.
func MaxSTWPhase() (lo, hi float64, name string, ok bool) {
	supported := map[string]bool{}
	for _, d := range metrics.All() {
		supported[d.Name] = true
	}
	for _, m := range pauseMetrics {
		if !supported[m] {
			continue
		}
		s := []metrics.Sample{{Name: m}}
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindFloat64Histogram {
			continue
		}
		h := s[0].Value.Float64Histogram()
		for i := len(h.Counts) - 1; i >= 0; i-- {
			if h.Counts[i] > 0 {
				lo, hi = h.Buckets[i], h.Buckets[i+1]
				if math.IsInf(lo, -1) {
					lo = 0
				}
				if math.IsInf(hi, 1) {
					hi = lo // open-ended last bucket: only the lower bound is known
				}
				return lo, hi, m, true
			}
		}
		return 0, 0, m, false
	}
	return 0, 0, "", false
}

// Finish prints on stderr: max-pause-ms (longest STW phase, see the package
// comment), max-pause-bucket-ms, max-pause-source, max-cycle-pause-ms,
// gc-cycles and total-pause-ms.
func Finish() { FinishTo(os.Stderr) }

// FinishTo is Finish writing to w.
func FinishTo(w io.Writer) {
	mu.Lock()
	defer mu.Unlock()
	observeLocked()
	lo, hi, name, ok := MaxSTWPhase()
	if ok {
		fmt.Fprintf(w, "max-pause-ms: %.3f\n", hi*1e3)
		fmt.Fprintf(w, "max-pause-bucket-ms: %.4f-%.4f\n", lo*1e3, hi*1e3)
		fmt.Fprintf(w, "max-pause-source: %s (longest single STW phase, bucket upper bound)\n", name)
	} else {
		fmt.Fprintf(w, "max-pause-ms: %.3f\n", float64(maxPause)/1e6)
		fmt.Fprintf(w, "max-pause-source: MemStats.PauseNs (longest per-cycle STW total; no pause histogram)\n")
	}
	fmt.Fprintf(w, "max-cycle-pause-ms: %.3f\n", float64(maxPause)/1e6)
	fmt.Fprintf(w, "gc-cycles: %d\n", stats.NumGC)
	fmt.Fprintf(w, "total-pause-ms: %.3f\n", float64(stats.PauseTotal)/1e6)
	if missed > 0 {
		fmt.Fprintf(w, "pause-cycles-missed: %d\n", missed)
	}
}
