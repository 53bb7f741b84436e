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

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
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

	crashSeries     = 8
	crashPerBatch   = 40
	crashFlushEvery = 7
)

func crashOptions() Options {
	opts := testOptions(newClock())
	opts.WAL = wal.Options{Sync: wal.SyncAlways, SegmentSize: 64 << 10}
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

var crashFloat = labels.FromStrings("__name__", "crash_float")

func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	start, _ := strconv.Atoi(os.Getenv(crashStartEnv))
	db, err := Open(dir, crashOptions())
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	a := db.Appender()
	for id := start; ; id++ {
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
		}
	}
}

func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("inside the helper")
	}
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
	inflightPresent, killedInFlush := 0, 0
	deadline := time.Now().Add(budget)
	for it := 0; it < iters && time.Now().Before(deadline); it++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashStartEnv+"="+strconv.Itoa(next))
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
			if line == "flush" || line == "flushed" {
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
		// Land the kill anywhere in the next batch or flush.
		spin := r.IntN(3000)
		for i := 0; i < spin; i++ {
			_ = math.Sqrt(float64(i))
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
		if lastLine == "flush" {
			killedInFlush++
		}
		if last < 0 {
			t.Fatalf("iteration %d: helper acknowledged nothing", it)
		}
		inflight := last + 1
		next = inflight + 1 // the in-flight id is never reused

		db := openTestDB(t, dir, crashOptions())
		got := readSketches(t, db, 0, testStart.UnixMilli())
		floats := readFloats(t, db, 0, testStart.UnixMilli())[crashFloat.String()]
		for _, id := range acked[oracled:] {
			addBatch(oracle, id)
		}
		oracled = len(acked)
		wantAcked := encodeAll(oracle)
		withInflight := withBatch(oracle, wantAcked, inflight)
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
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d batches in the history, %d of them in flight at a kill and recovered; %d kills during a flush",
		len(acked), inflightPresent, killedInFlush)
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
