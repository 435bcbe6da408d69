// latency: a GC latency benchmark with a pointer-rich (or pointer-free) live
// heap of millions of small objects, every operation timed. The goheap twin is
// ../../latency/src/main.rs; both do the same work on the same random stream,
// print the same checksum and the same "key: value" report (bench/gc/README.md
// has the definitions). Run by ../../latency.py.
//
// Heap: an index (a []*Record of `slots` entries; 2*slots entries of
// *RecordNP in the pointer-free variant) whose every entry holds a small
// object graph:
//
//	ptr:   A{id, next: B, data: leafA} -> B{id+1, next: nil, data: leafB}
//	       4 objects (2 records of 24 B, 2 noscan leaves of 16 B)
//	noptr: index[2i] = A{id, next: 2i+2, data[16]}, index[2i+1] = B{id+1, 0, data[16]}
//	       2 pointer-free records of 32 B (noscan); `next` is an index+1
//
// Operation (one random 64-bit x per op, splitmix64 from --seed):
//
//	x%16 == 0  read:   walk `walk` random entries (A then B), summing ids and leaf bytes
//	otherwise  update: allocate `garbage` short-lived records (ptr: a chain, each
//	           with a leaf; noptr: pointer-free records), sum them, then replace a
//	           random entry's graph with a fresh one
//
// Every operation is timed with the monotonic clock (runtime.nanotime, the
// clock time.Now's monotonic reading uses); the durations go to a timeline
// mmap'd outside the Go heap (so it does not change the GC's heap goal), from
// which the percentiles and the MMU are computed after the run.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"unsafe"

	"gcbench/gcstats"
)

//go:linkname nanotime runtime.nanotime
func nanotime() int64

// ---------------------------------------------------------------------------
// The objects

type Leaf struct {
	b [16]byte
}

type Record struct {
	id   uint64
	next *Record
	data *Leaf
}

type RecordNP struct {
	id   uint64
	next uint64 // index+1 of the next record in the index; 0: none
	data [16]byte
}

// Sinks: the short-lived objects are stored here so that escape analysis puts
// them on the heap (goheap has no stack allocation; both must allocate).
var (
	sinkRec   *Record
	sinkRecNP *RecordNP
)

// ---------------------------------------------------------------------------
// The random stream and the data

type splitmix64 struct{ s uint64 }

func (r *splitmix64) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func fill(b *[16]byte, x uint64) {
	for j := 0; j < 16; j++ {
		b[j] = byte(x>>(uint(j&7)*8)) ^ byte(j)
	}
}

func bytesSum(b *[16]byte) uint64 {
	var s uint64
	for j := 0; j < 16; j++ {
		s += uint64(b[j])
	}
	return s
}

func newLeaf(x uint64) *Leaf {
	l := &Leaf{}
	fill(&l.b, x)
	return l
}

func graph(x uint64) *Record {
	b := &Record{id: x + 1, next: nil, data: newLeaf(x + 1)}
	return &Record{id: x, next: b, data: newLeaf(x)}
}

func walk(r *Record) uint64 {
	var s uint64
	for ; r != nil; r = r.next {
		s += r.id + bytesSum(&r.data.b)
	}
	return s
}

func newNP(id, next uint64) *RecordNP {
	r := &RecordNP{id: id, next: next}
	fill(&r.data, id)
	return r
}

func walkNP(index []*RecordNP, j uint64) uint64 {
	var s uint64
	for k := j + 1; k != 0; {
		r := index[k-1]
		s += r.id + bytesSum(&r.data)
		k = r.next
	}
	return s
}

// ---------------------------------------------------------------------------

type params struct {
	variant   string
	slots     int
	ops       int
	garbage   int
	walk      int
	seed      uint64
	threshold int64 // ns
	timeline  string
	jsonOut   bool
}

const readFlag = 1 << 31

func main() {
	gcstats.Start()
	startWall := nanotime()
	p := params{}
	quick := flag.Bool("quick", false, "small sizes for a smoke test (slots 200000, ops 300000)")
	flag.StringVar(&p.variant, "variant", "ptr", "ptr (records point to records and leaves) or noptr (pointer-free records)")
	flag.IntVar(&p.slots, "slots", 1500000, "index entries (ptr: 4 live objects each; noptr: 2)")
	flag.IntVar(&p.ops, "ops", 3000000, "timed operations")
	flag.IntVar(&p.garbage, "garbage", 16, "short-lived records allocated per update")
	flag.IntVar(&p.walk, "walk", 16, "entries walked per read")
	seed := flag.Uint64("seed", 42, "random seed")
	thr := flag.Float64("mmu-threshold-us", 50, "an op whose time exceeds its kind's median by more than this counts as a stall")
	flag.IntVar(new(int), "batch", 100, "accepted for symmetry with the goheap version (ops per session); unused in Go")
	flag.StringVar(&p.timeline, "timeline", "", "write the per-op durations here (u32 LE ns, bit 31 = read op)")
	flag.BoolVar(&p.jsonOut, "json", false, "print the report as one JSON object instead of key: value lines")
	flag.Parse()
	if *quick {
		p.slots, p.ops = 200000, 300000
	}
	p.seed = *seed
	p.threshold = int64(*thr * 1000)
	if p.variant != "ptr" && p.variant != "noptr" {
		fmt.Fprintln(os.Stderr, "--variant must be ptr or noptr")
		os.Exit(2)
	}
	if p.slots < 1 || p.ops < 1 {
		fmt.Fprintln(os.Stderr, "--slots and --ops must be >= 1")
		os.Exit(2)
	}

	// The timeline: outside the Go heap, prefaulted.
	mem, err := syscall.Mmap(-1, 0, 4*p.ops, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mmap:", err)
		os.Exit(1)
	}
	tl := unsafe.Slice((*uint32)(unsafe.Pointer(&mem[0])), p.ops)
	for i := range tl {
		tl[i] = ^uint32(0)
	}

	rng := splitmix64{p.seed}
	var check uint64
	var buildNs, opsNs int64
	var gcBefore uint32
	var opsCPU float64
	var opsCsw int64
	if p.variant == "ptr" {
		buildNs, opsNs, check = runPtr(&p, &rng, tl, &gcBefore, &opsCPU, &opsCsw)
	} else {
		buildNs, opsNs, check = runNP(&p, &rng, tl, &gcBefore, &opsCPU, &opsCsw)
	}
	// Wall, CPU and peak RSS are taken here, before the analysis (which
	// allocates and sorts copies of the timeline).
	endWall := nanotime()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gcOps := ms.NumGC - gcBefore

	r := analyse(tl, p.threshold)
	user := float64(ru.Utime.Sec) + float64(ru.Utime.Usec)/1e6
	sys := float64(ru.Stime.Sec) + float64(ru.Stime.Usec)/1e6

	objs := 4 * p.slots
	if p.variant == "noptr" {
		objs = 2 * p.slots
	}
	kv := [][2]string{
		{"benchmark", "latency"},
		{"impl", "go"},
		{"runtime", runtime.Version()},
		{"variant", p.variant},
		{"slots", fmt.Sprint(p.slots)},
		{"live-objects", fmt.Sprint(objs)},
		{"ops", fmt.Sprint(p.ops)},
		{"garbage-per-update", fmt.Sprint(p.garbage)},
		{"walk-per-read", fmt.Sprint(p.walk)},
		{"batch", "n/a"},
		{"seed", fmt.Sprint(p.seed)},
		{"checksum", fmt.Sprintf("%016x", check)},
		{"build-s", fmt.Sprintf("%.3f", float64(buildNs)/1e9)},
		{"ops-wall-s", fmt.Sprintf("%.3f", float64(opsNs)/1e9)},
		{"ops-per-s", fmt.Sprintf("%.0f", float64(p.ops)/(float64(opsNs)/1e9))},
		{"ops-cpu-s", fmt.Sprintf("%.3f", opsCPU)},
		{"ops-invol-csw", fmt.Sprint(opsCsw)},
		{"wall-s", fmt.Sprintf("%.3f", float64(endWall-startWall)/1e9)},
		{"cpu-s", fmt.Sprintf("%.3f", user+sys)},
		{"user-s", fmt.Sprintf("%.3f", user)},
		{"sys-s", fmt.Sprintf("%.3f", sys)},
		{"peak-rss-mib", fmt.Sprintf("%.1f", float64(ru.Maxrss)/1024)},
	}
	kv = append(kv, r.kv()...)
	kv = append(kv, [2]string{"gc-cycles-ops", fmt.Sprint(gcOps)})
	kv = append(kv, [2]string{"gc-cycles", fmt.Sprint(ms.NumGC)})
	lo, hi, name, ok := gcstats.MaxSTWPhase()
	if ok {
		kv = append(kv, [2]string{"max-pause-ms", fmt.Sprintf("%.3f", hi*1e3)})
		kv = append(kv, [2]string{"max-pause-source", fmt.Sprintf("%s bucket %.4f-%.4f ms", name, lo*1e3, hi*1e3)})
	}
	kv = append(kv, [2]string{"gc-cpu-fraction", fmt.Sprintf("%.4f", ms.GCCPUFraction)})
	printReport(kv, p.jsonOut)
	if p.timeline != "" {
		writeTimeline(p.timeline, tl)
	}
	gcstats.Finish() // max-pause-ms etc. on stderr, as the binary-trees programs do
}

func runPtr(p *params, rng *splitmix64, tl []uint32, gcBefore *uint32, opsCPU *float64, opsCsw *int64) (int64, int64, uint64) {
	t0 := nanotime()
	index := make([]*Record, p.slots)
	for i := range index {
		index[i] = graph(rng.next())
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	*gcBefore = ms.NumGC
	n := uint64(p.slots)
	var check uint64
	cpu0, csw0 := cpuSeconds(), involuntarySwitches()
	start := nanotime()
	prev := start
	for k := 0; k < p.ops; k++ {
		x := rng.next()
		var flag uint32
		if x%16 == 0 {
			for w := 0; w < p.walk; w++ {
				check += walk(index[rng.next()%n])
			}
			flag = readFlag
		} else {
			var t *Record
			for g := 0; g < p.garbage; g++ {
				id := x + uint64(g)
				t = &Record{id: id, next: t, data: newLeaf(id)}
			}
			check += walk(t)
			sinkRec = t
			i := rng.next() % n
			check += index[i].id
			index[i] = graph(x)
		}
		now := nanotime()
		tl[k] = encode(now-prev) | flag
		prev = now
	}
	sinkRec = nil
	*opsCPU = cpuSeconds() - cpu0
	*opsCsw = involuntarySwitches() - csw0
	runtime.KeepAlive(index)
	return start - t0, prev - start, check
}

func runNP(p *params, rng *splitmix64, tl []uint32, gcBefore *uint32, opsCPU *float64, opsCsw *int64) (int64, int64, uint64) {
	t0 := nanotime()
	index := make([]*RecordNP, 2*p.slots)
	for i := 0; i < p.slots; i++ {
		x := rng.next()
		index[2*i] = newNP(x, uint64(2*i+2))
		index[2*i+1] = newNP(x+1, 0)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	*gcBefore = ms.NumGC
	n := uint64(p.slots)
	var check uint64
	cpu0, csw0 := cpuSeconds(), involuntarySwitches()
	start := nanotime()
	prev := start
	for k := 0; k < p.ops; k++ {
		x := rng.next()
		var flag uint32
		if x%16 == 0 {
			for w := 0; w < p.walk; w++ {
				check += walkNP(index, 2*(rng.next()%n))
			}
			flag = readFlag
		} else {
			for g := 0; g < p.garbage; g++ {
				id := x + uint64(g)
				t := newNP(id, uint64(g))
				check += t.id + bytesSum(&t.data)
				sinkRecNP = t
			}
			i := rng.next() % n
			check += index[2*i].id
			index[2*i] = newNP(x, 2*i+2)
			index[2*i+1] = newNP(x+1, 0)
		}
		now := nanotime()
		tl[k] = encode(now-prev) | flag
		prev = now
	}
	sinkRecNP = nil
	*opsCPU = cpuSeconds() - cpu0
	*opsCsw = involuntarySwitches() - csw0
	runtime.KeepAlive(index)
	return start - t0, prev - start, check
}

// cpuSeconds is the process's user+sys CPU time (all threads).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec) + float64(ru.Utime.Usec)/1e6 + float64(ru.Stime.Sec) + float64(ru.Stime.Usec)/1e6
}

// involuntarySwitches counts the times the OS preempted any thread of the
// process (ru_nivcsw): a noise indicator on a shared machine.
func involuntarySwitches() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return int64(ru.Nivcsw)
}

// encode caps a duration at 2^31-1 ns (2.1 s); bit 31 is the read flag.
func encode(d int64) uint32 {
	if d < 0 {
		d = 0
	}
	if d > readFlag-1 {
		d = readFlag - 1
	}
	return uint32(d)
}

// ---------------------------------------------------------------------------
// Analysis: the same definitions as analyse() in ../../latency/src/main.rs
// and in ../../latency.py (bench/gc/README.md, "Definitions").

type result struct {
	n                     int
	median, mean          float64 // ns
	p99, p999, p9999, max int64
	maxAt                 int64 // ns from the start of the timed phase to the worst op's start
	medUpdate, medRead    int64
	stalls                int
	stallNs               int64
	total                 int64
	mmu                   []float64
	windows               []int64
	threshold             int64
}

var mmuWindows = []int64{1e6, 10e6, 100e6, 1000e6}

// rank returns the nearest-rank percentile num/den of sorted xs: the value at
// 1-based rank ceil(n*num/den).
func rank(xs []int64, num, den int) int64 {
	n := len(xs)
	r := (n*num + den - 1) / den
	if r < 1 {
		r = 1
	}
	return xs[r-1]
}

func analyse(tl []uint32, threshold int64) result {
	n := len(tl)
	d := make([]int64, n)
	var reads, updates []int64
	var sum, maxD, maxAt, at int64
	for k, v := range tl {
		x := int64(v &^ readFlag)
		d[k] = x
		if v&readFlag != 0 {
			reads = append(reads, x)
		} else {
			updates = append(updates, x)
		}
		if x > maxD {
			maxD, maxAt = x, at
		}
		sum += x
		at += x
	}
	sorted := append([]int64(nil), d...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	sort.Slice(reads, func(i, j int) bool { return reads[i] < reads[j] })
	sort.Slice(updates, func(i, j int) bool { return updates[i] < updates[j] })
	lowerMedian := func(xs []int64) int64 {
		if len(xs) == 0 {
			return 0
		}
		return xs[(len(xs)-1)/2]
	}
	r := result{n: n, threshold: threshold}
	r.median = float64(lowerMedian(sorted))
	r.mean = float64(sum) / float64(n)
	r.p99 = rank(sorted, 99, 100)
	r.p999 = rank(sorted, 999, 1000)
	r.p9999 = rank(sorted, 9999, 10000)
	r.max = maxD
	r.maxAt = maxAt
	r.medUpdate = lowerMedian(updates)
	r.medRead = lowerMedian(reads)
	r.total = sum

	// Stalls: [op start + its kind's median, op end) for every op whose
	// duration exceeds its kind's median by more than the threshold.
	var ps, pe []int64
	at = 0
	for k, v := range tl {
		med := r.medUpdate
		if v&readFlag != 0 {
			med = r.medRead
		}
		if d[k]-med > threshold {
			ps = append(ps, at+med)
			pe = append(pe, at+d[k])
			r.stallNs += d[k] - med
		}
		at += d[k]
	}
	r.stalls = len(ps)
	r.windows = mmuWindows
	for _, w := range mmuWindows {
		r.mmu = append(r.mmu, mmu(ps, pe, sum, w))
	}
	return r
}

// mmu is the minimum, over every window [t, t+w) inside [0, total), of the
// fraction of the window not covered by the (sorted, disjoint) stalls
// [ps[i], pe[i]). The minimum is reached by a window that starts at a stall's
// start or ends at a stall's end, so only those 2n windows (clamped into the
// run) are evaluated, each with two binary searches over prefix sums. A
// window wider than the run is the whole run.
func mmu(ps, pe []int64, total, w int64) float64 {
	if len(ps) == 0 {
		return 1
	}
	if w >= total {
		var s int64
		for i := range ps {
			s += pe[i] - ps[i]
		}
		return 1 - float64(s)/float64(total)
	}
	cum := make([]int64, len(ps)+1)
	for i := range ps {
		cum[i+1] = cum[i] + pe[i] - ps[i]
	}
	// paused(x): stall time in [0, x).
	paused := func(x int64) int64 {
		k := sort.Search(len(ps), func(i int) bool { return ps[i] >= x }) // stalls starting before x
		p := cum[k]
		if k > 0 && pe[k-1] > x {
			p -= pe[k-1] - x
		}
		return p
	}
	worst := int64(0)
	try := func(t int64) {
		if t < 0 {
			t = 0
		}
		if t > total-w {
			t = total - w
		}
		if p := paused(t+w) - paused(t); p > worst {
			worst = p
		}
	}
	for i := range ps {
		try(ps[i])
		try(pe[i] - w)
	}
	return 1 - float64(worst)/float64(w)
}

func us(ns float64) string { return fmt.Sprintf("%.3f", ns/1e3) }

func (r result) kv() [][2]string {
	kv := [][2]string{
		{"lat-median-us", us(r.median)},
		{"lat-mean-us", us(r.mean)},
		{"lat-median-update-us", us(float64(r.medUpdate))},
		{"lat-median-read-us", us(float64(r.medRead))},
		{"lat-p99-us", us(float64(r.p99))},
		{"lat-p99.9-us", us(float64(r.p999))},
		{"lat-p99.99-us", us(float64(r.p9999))},
		{"lat-max-us", us(float64(r.max))},
		{"lat-max-at-s", fmt.Sprintf("%.3f", float64(r.maxAt)/1e9)},
		{"mmu-threshold-us", us(float64(r.threshold))},
		{"stall-ops", fmt.Sprint(r.stalls)},
		{"stall-ms", fmt.Sprintf("%.3f", float64(r.stallNs)/1e6)},
		{"mutator-utilization", fmt.Sprintf("%.4f", 1-float64(r.stallNs)/float64(r.total))},
	}
	for i, w := range r.windows {
		kv = append(kv, [2]string{fmt.Sprintf("mmu-%dms", w/1e6), fmt.Sprintf("%.4f", r.mmu[i])})
	}
	return kv
}

func printReport(kv [][2]string, asJSON bool) {
	if !asJSON {
		for _, e := range kv {
			fmt.Printf("%s: %s\n", e[0], e[1])
		}
		return
	}
	parts := make([]string, len(kv))
	for i, e := range kv {
		parts[i] = fmt.Sprintf("%q: %q", e[0], e[1])
	}
	fmt.Printf("{%s}\n", strings.Join(parts, ", "))
}

func writeTimeline(path string, tl []uint32) {
	buf := make([]byte, 4*len(tl))
	for i, v := range tl {
		binary.LittleEndian.PutUint32(buf[4*i:], v)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "timeline:", err)
		os.Exit(1)
	}
}
