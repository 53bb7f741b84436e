package tsdb

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
	"evalstore/tsdb/internal/histtest"
	"evalstore/tsdb/plan"
	"evalstore/tsdb/wal"
)

// The crash test re-executes the test binary as a writer process
// (TestHelperProcess with TSDB_CRASH_DIR set), kills it with SIGKILL at
// random points and checks the reopened DB against the acknowledged
// batches. TSDB_CRASH_SOAK=<iterations> runs a longer soak.
const (
	crashDirEnv   = "TSDB_CRASH_DIR"
	crashStartEnv = "TSDB_CRASH_START"
	crashSoakEnv  = "TSDB_CRASH_SOAK"
	// crashCompactEnv makes the helper advance its clock one minute per
	// batch and compact after every flush, with small partitions and a
	// 10m level (crashCompactOptions).
	crashCompactEnv = "TSDB_CRASH_COMPACT"

	crashSeries     = 8
	crashPerBatch   = 40
	crashFlushEvery = 7
)

func crashOptions() Options {
	opts := testOptions(newClock())
	opts.WAL = wal.Options{Sync: wal.SyncAlways, SegmentSize: 64 << 10}
	return opts
}

// crashCompactRes is the coarsest resolution of crashCompactOptions; the
// test compares data merged to it.
const crashCompactRes = 10 * minute

// crashCompactOptions: 1h raw partitions (1m buckets), after 2h a 10m level
// in 2h partitions with a 10m rollup of every raw hour; flush blocks are
// folded at once. With the clock at testStart + batch id minutes and
// writes over the 10 hours before testStart, every run compacts, and late
// writes keep landing in downsampled partitions.
func crashCompactOptions(clock *fakeClock) Options {
	opts := crashOptions()
	opts.Now = clock.Now
	opts.PartitionRaw = time.Hour
	opts.Levels = []plan.Level{{Resolution: crashCompactRes, After: 2 * plan.Hour, Partition: 2 * plan.Hour, Rollup: true}}
	opts.FlushSettle = -1
	return opts
}

// crashBatch is batch id's content, a pure function of id: sketch deltas
// of single observations into random buckets of random series, and one
// float sample per batch at a time that grows with id.
func crashBatch(id int) (ws []write, floatT int64) {
	r := rand.New(rand.NewPCG(uint64(id), 99))
	for range crashPerBatch {
		d := sketch.NewConfusion()
		d.Add(r.IntN(2), r.IntN(2))
		ws = append(ws, write{series: r.IntN(crashSeries), t: testStart.UnixMilli() - r.Int64N(600)*minute, delta: d.AppendBinary(nil)})
	}
	return ws, testStart.UnixMilli() - 1_000_000 + int64(id)
}

var (
	crashFloat = labels.FromStrings("__name__", "crash_float")
	crashHist  = labels.FromStrings("__name__", "crash_hist")
)

// crashHistFor is batch id's histogram sample (at the float's time): a
// counter that grows with id, resetting every 10 batches.
func crashHistFor(id int) *histogram.FloatHistogram {
	n := float64(id%10 + 1)
	return &histogram.FloatHistogram{Schema: 0, Count: 2 * n, Sum: float64(id), ZeroCount: n,
		PositiveSpans: []histogram.Span{{Offset: int32(id % 3), Length: 1}}, PositiveBuckets: []float64{n}}
}

func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	start, _ := strconv.Atoi(os.Getenv(crashStartEnv))
	compact := os.Getenv(crashCompactEnv) != ""
	clock := newClock()
	opts := crashOptions()
	if compact {
		opts = crashCompactOptions(clock)
	}
	db, err := Open(dir, opts)
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	a := db.Appender()
	for id := start; ; id++ {
		if compact {
			clock.mu.Lock()
			clock.now = testStart.Add(time.Duration(id) * time.Minute)
			clock.mu.Unlock()
		}
		ws, ft := crashBatch(id)
		for _, w := range ws {
			if err := a.AddSketch(seriesLabels(w.series), w.t, w.delta); err != nil {
				fmt.Println("add error:", err)
				os.Exit(2)
			}
		}
		if err := a.AddFloat(crashFloat, ft, float64(id)); err != nil {
			fmt.Println("add error:", err)
			os.Exit(2)
		}
		if err := a.AddHistogram(crashHist, ft, crashHistFor(id)); err != nil {
			fmt.Println("add error:", err)
			os.Exit(2)
		}
		if err := a.Commit(); err != nil {
			fmt.Println("commit error:", err)
			os.Exit(2)
		}
		fmt.Fprintf(out, "ack %d\n", id)
		out.Flush()
		if id%crashFlushEvery == 0 {
			fmt.Fprintln(out, "flush")
			out.Flush()
			if err := db.Flush(); err != nil {
				fmt.Println("flush error:", err)
				os.Exit(2)
			}
			fmt.Fprintln(out, "flushed")
			out.Flush()
			if compact {
				fmt.Fprintln(out, "compact")
				out.Flush()
				if err := db.Compact(); err != nil {
					fmt.Println("compact error:", err)
					os.Exit(2)
				}
				fmt.Fprintln(out, "compacted")
				out.Flush()
			}
		}
	}
}

func TestCrashRecovery(t *testing.T) { runCrashTest(t, false) }

// TestCrashRecoveryCompaction is TestCrashRecovery with a writer that also
// compacts and downsamples (kills land inside jobs too); data is compared
// merged to the 10m level's buckets, where every layout is exact.
func TestCrashRecoveryCompaction(t *testing.T) { runCrashTest(t, true) }

func runCrashTest(t *testing.T, compact bool) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("inside the helper")
	}
	t.Parallel() // mostly waiting on the writer process and fsync
	iters, budget := 20, 60*time.Second
	if s := os.Getenv(crashSoakEnv); s != "" {
		iters, _ = strconv.Atoi(s)
		budget = time.Duration(iters) * 3 * time.Second
	}
	if testing.Short() {
		iters = 5
	}
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(2026, 11))
	var acked []int // every acknowledged batch id
	next := 0       // first batch id of the next run
	oracle := map[bucketKey]*sketch.Confusion{}
	oracled := 0 // acked[:oracled] are in oracle
	inflightPresent, killedInFlush, killedInCompact := 0, 0, 0
	compacted, rollups := 0, 0
	compared := func(m map[bucketKey]string) map[bucketKey]string {
		if !compact {
			return m
		}
		return rekey(t, m, math.MinInt64, math.MaxInt64, crashCompactRes)
	}
	deadline := time.Now().Add(budget)
	for it := 0; it < iters && time.Now().Before(deadline); it++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashStartEnv+"="+strconv.Itoa(next))
		if compact {
			cmd.Env = append(cmd.Env, crashCompactEnv+"=1")
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitAcks := 1 + r.IntN(25)
		sc := bufio.NewScanner(stdout)
		last := -1
		lastLine := ""
		for sc.Scan() {
			line := sc.Text()
			lastLine = line
			if line == "flush" || line == "flushed" || line == "compact" || line == "compacted" {
				continue
			}
			id, ok := strings.CutPrefix(line, "ack ")
			if !ok {
				t.Fatalf("helper: %s", line)
			}
			n, _ := strconv.Atoi(id)
			acked = append(acked, n)
			last = n
			if waitAcks--; waitAcks == 0 {
				break
			}
		}
		// Land the kill anywhere in the next batch or flush (or, with
		// compaction, anywhere in the next few ms, which jobs fill).
		spin := r.IntN(3000)
		for i := 0; i < spin; i++ {
			_ = math.Sqrt(float64(i))
		}
		if compact {
			// Half the time wait for a compaction to start, then kill
			// within its first few ms.
			if r.IntN(2) == 0 {
				for sc.Scan() {
					lastLine = sc.Text()
					if id, ok := strings.CutPrefix(lastLine, "ack "); ok {
						n, _ := strconv.Atoi(id)
						acked = append(acked, n)
						last = n
					}
					if lastLine == "compact" {
						break
					}
				}
			}
			time.Sleep(time.Duration(r.IntN(8000)) * time.Microsecond)
		}
		_ = cmd.Process.Kill()
		// Acks printed before the kill took effect count too.
		for sc.Scan() {
			lastLine = sc.Text()
			if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				n, _ := strconv.Atoi(id)
				acked = append(acked, n)
				last = n
			}
		}
		_ = cmd.Wait()
		switch lastLine {
		case "flush":
			killedInFlush++
		case "compact":
			killedInCompact++
		}
		if last < 0 {
			t.Fatalf("iteration %d: helper acknowledged nothing", it)
		}
		inflight := last + 1
		next = inflight + 1 // the in-flight id is never reused

		opts := crashOptions()
		var got map[bucketKey]string
		if compact {
			opts = crashCompactOptions(newClock())
		}
		db := openTestDB(t, dir, opts)
		if compact {
			got = readMerged(t, db, 0, testStart.UnixMilli(), 0, crashCompactRes)
			liveOnDisk(t, dir)
		} else {
			got = readSketches(t, db, 0, testStart.UnixMilli())
		}
		floats := readFloats(t, db, 0, testStart.UnixMilli())[crashFloat.String()]
		for _, id := range acked[oracled:] {
			addBatch(oracle, id)
		}
		oracled = len(acked)
		wantAcked := encodeAll(oracle)
		withInflight := compared(withBatch(oracle, wantAcked, inflight))
		wantAcked = compared(wantAcked)
		sameAsAcked := equalMaps(got, wantAcked)
		if !sameAsAcked && !equalMaps(got, withInflight) {
			checkEqual(t, fmt.Sprintf("iteration %d (acked ..%d)", it, last), got, wantAcked)
		}
		wantFloats := len(acked)
		if !sameAsAcked {
			acked = append(acked, inflight) // present: part of the history now
			inflightPresent++
			wantFloats++
		}
		if len(floats) != wantFloats {
			t.Fatalf("iteration %d: %d float samples, want %d", it, len(floats), wantFloats)
		}
		// Histogram samples: exactly the acknowledged batches' (and the
		// in-flight one's when its float made it), each intact.
		hists := readHists(t, db, 0, testStart.UnixMilli())[crashHist.String()]
		if len(hists) != wantFloats {
			t.Fatalf("iteration %d: %d histogram samples, want %d", it, len(hists), wantFloats)
		}
		for i, h := range hists {
			if h.T != floats[i].T || !histtest.Same(h.H, crashHistFor(int(h.T-(testStart.UnixMilli()-1_000_000)))) {
				t.Fatalf("iteration %d: histogram sample %d at %d: %v", it, i, h.T, h.H)
			}
		}
		if compact {
			db.stateMu.RLock()
			for _, b := range db.blocks {
				if b.m.level > 1 {
					compacted++
				}
				if b.rollupOf != "" {
					rollups++
				}
			}
			db.stateMu.RUnlock()
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if compact {
		t.Logf("after the kills: %d live compaction outputs, %d of them rollups (summed over restarts)", compacted, rollups)
		if compacted == 0 || rollups == 0 {
			t.Fatal("the writer never compacted")
		}
	}
	t.Logf("%d batches in the history, %d of them in flight at a kill and recovered; %d kills during a flush, %d during a compaction",
		len(acked), inflightPresent, killedInFlush, killedInCompact)
}

// addBatch adds batch id's raw cells to the oracle m.
func addBatch(m map[bucketKey]*sketch.Confusion, id int) {
	ws, _ := crashBatch(id)
	for _, w := range ws {
		k := bucketKey{seriesLabels(w.series).String(), bucketStart(w.t, minute)}
		d := sketch.NewConfusion()
		if err := d.UnmarshalBinary(w.delta); err != nil {
			panic(err)
		}
		if m[k] == nil {
			m[k] = sketch.NewConfusion()
		}
		for _, c := range d.AppendCells(nil) {
			m[k].AddN(c.Actual, c.Predicted, c.Count)
		}
	}
}

func encodeAll(m map[bucketKey]*sketch.Confusion) map[bucketKey]string {
	out := make(map[bucketKey]string, len(m))
	for k, c := range m {
		out[k] = encConfusion(c)
	}
	return out
}

// withBatch returns enc (the encoding of m) with batch id added, leaving
// m and enc unchanged.
func withBatch(m map[bucketKey]*sketch.Confusion, enc map[bucketKey]string, id int) map[bucketKey]string {
	extra := map[bucketKey]*sketch.Confusion{}
	addBatch(extra, id)
	out := make(map[bucketKey]string, len(enc)+len(extra))
	for k, v := range enc {
		out[k] = v
	}
	for k, c := range extra {
		if old := m[k]; old != nil {
			c.Merge(old)
		}
		out[k] = encConfusion(c)
	}
	return out
}

func equalMaps(a, b map[bucketKey]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
