package ingest

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/definitions"
	"evalstore/tsdb/wal"
)

// fileStorage is a durable Storage for the crash test: each Commit is one
// WAL record (whole or absent after a crash); Open replays it into a
// memStorage.
type fileStorage struct {
	*memStorage
	w *wal.WAL
}

func openFileStorage(t testing.TB, dir string) *fileStorage {
	w, err := wal.Open(dir, wal.Options{Sync: wal.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	fs := &fileStorage{memStorage: newMemStorage(), w: w}
	err = w.Replay(0, func(rec []byte) error {
		d := dec{b: rec}
		for len(d.b) > 0 && d.err == nil {
			var st staged
			st.float = d.byte() == 1
			n := int(d.uvarint())
			var b labels.ScratchBuilder
			for i := 0; i < n; i++ {
				b.Add(d.str(), d.str())
			}
			st.lset = b.Labels()
			st.t = d.varint()
			if st.float {
				st.v = d.f64()
			} else {
				st.delta = []byte(d.str())
			}
			fs.apply(st)
		}
		return d.err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

type fileApp struct {
	fs  *fileStorage
	buf []staged
}

func (fs *fileStorage) Appender() Appender { return &fileApp{fs: fs} }

func (a *fileApp) AddSketch(lset labels.Labels, t int64, delta []byte) error {
	a.buf = append(a.buf, staged{lset: lset.Copy(), t: t, delta: append([]byte(nil), delta...)})
	return nil
}

func (a *fileApp) AddFloat(lset labels.Labels, t int64, v float64) error {
	a.buf = append(a.buf, staged{lset: lset.Copy(), t: t, float: true, v: v})
	return nil
}

func (a *fileApp) Rollback() { a.buf = nil }

func (a *fileApp) Commit() error {
	e := enc{}
	for _, st := range a.buf {
		if st.float {
			e.byte(1)
		} else {
			e.byte(0)
		}
		e.uvarint(uint64(st.lset.Len()))
		st.lset.Range(func(l labels.Label) { e.str(l.Name); e.str(l.Value) })
		e.varint(st.t)
		if st.float {
			e.f64(st.v)
		} else {
			e.str(string(st.delta))
		}
	}
	if err := a.fs.w.Log(e.b); err != nil {
		return err
	}
	a.fs.mu.Lock()
	for _, st := range a.buf {
		a.fs.apply(st)
	}
	a.fs.mu.Unlock()
	return nil
}

var _ = binary.LittleEndian

// crashBatches is the deterministic workload: predictions and feedback
// (early, late, duplicate, corrected) in batches.
type crashBatch struct {
	feedback bool
	lines    []string
}

func crashWorkload() ([]crashBatch, *joinOracle) {
	rng := rand.New(rand.NewPCG(42, 42))
	o := &joinOracle{preds: map[string]oraclePred{}, labels: map[string]int{}}
	type ev struct {
		pred bool
		id   string
		lbl  int
	}
	var evs []ev
	for i := 0; i < 2000; i++ {
		id := fmt.Sprint("c", i)
		evs = append(evs, ev{pred: true, id: id})
		for k := rng.IntN(3); k > 0; k-- {
			evs = append(evs, ev{id: id, lbl: rng.IntN(2)})
		}
	}
	rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	countries := []string{"de", "fr", "us"}
	var out []crashBatch
	for len(evs) > 0 {
		kind := evs[0].pred
		n := 0
		var b crashBatch
		b.feedback = !kind
		for n < len(evs) && evs[n].pred == kind && n < 40 {
			x := evs[n]
			if x.pred {
				p := oraclePred{t: t0.Add(-time.Duration(rng.IntN(10*60)) * time.Second), country: countries[rng.IntN(3)], score: float64(rng.IntN(100)) / 100}
				o.preds[x.id] = p
				b.lines = append(b.lines, predLine(x.id, p.t, p.country, p.score))
			} else {
				o.labels[x.id] = x.lbl
				b.lines = append(b.lines, fbLine(x.id, x.lbl))
			}
			n++
		}
		evs = evs[n:]
		out = append(out, b)
	}
	return out, o
}

func crashIngester(t testing.TB, dir string, st Storage) *Ingester {
	defs := mustDefs(t, testDefs)
	in, err := Open(Config{Dir: filepath.Join(dir, "join"), Storage: st, Now: func() time.Time { return t0 }, Sync: wal.SyncNever,
		Definitions: func() *definitions.Definitions { return defs }, SnapshotBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestCrashChild is the process the crash test kills; it does nothing
// unless started by TestCrashRecovery.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("INGEST_CRASH_DIR")
	if dir == "" {
		t.Skip("helper process")
	}
	start, _ := strconv.Atoi(os.Getenv("INGEST_CRASH_START"))
	batches, _ := crashWorkload()
	fs := openFileStorage(t, filepath.Join(dir, "tsdb"))
	in := crashIngester(t, dir, fs)
	fmt.Println("ready")
	for k := start; k < len(batches); k++ {
		b := batches[k]
		var err error
		if b.feedback {
			_, err = in.Feedback(context.Background(), ndjson(b.lines...))
		} else {
			_, err = in.Predictions(context.Background(), ndjson(b.lines...))
		}
		if err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		fmt.Println("ack", k)
	}
	in.Close()
	fmt.Println("done")
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	batches, oracle := crashWorkload()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	next, kills := 0, 0
	var progress []int
	for iter := 0; ; iter++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "INGEST_CRASH_DIR="+dir, "INGEST_CRASH_START="+strconv.Itoa(next))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		kill := kills < 12
		var mu sync.Mutex
		lastAck, done := next-1, false
		var lines []string
		readDone := make(chan struct{})
		ready := make(chan struct{}, 1)
		go func() {
			defer close(readDone)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				mu.Lock()
				lines = append(lines, line)
				switch {
				case line == "ready":
					ready <- struct{}{}
				case strings.HasPrefix(line, "ack "):
					lastAck, _ = strconv.Atoi(strings.TrimPrefix(line, "ack "))
				case strings.HasPrefix(line, "--- PASS") || line == "done":
					done = done || line == "done"
				}
				mu.Unlock()
			}
		}()
		if kill {
			select {
			case <-ready:
			case <-time.After(30 * time.Second):
				t.Fatal("child not ready")
			}
			time.Sleep(time.Duration(rng.IntN(8_000)) * time.Microsecond)
			cmd.Process.Signal(syscall.SIGKILL)
		}
		<-readDone
		werr := cmd.Wait()
		mu.Lock()
		if !kill && (werr != nil || !done) {
			t.Fatalf("final child failed: %v\n%s", werr, strings.Join(lines, "\n"))
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "error") {
				t.Fatalf("child: %s", l)
			}
		}
		// The batch in flight at the kill may or may not have been
		// committed; it is retried, as a client would (no 2xx seen).
		if kill && !done {
			kills++
			progress = append(progress, lastAck+1-next)
		}
		next = lastAck + 1
		finished := done
		mu.Unlock()
		if finished {
			break
		}
		if iter > 200 {
			t.Fatal("no progress")
		}
	}
	if kills < 10 {
		t.Fatalf("only %d kills", kills)
	}
	fs := openFileStorage(t, filepath.Join(dir, "tsdb"))
	e := &env{t: t, st: fs.memStorage}
	var total int64
	for m := int64(-10); m <= 0; m++ {
		b := t0.UnixMilli() + m*60000
		for _, s := range []string{"all", "eu"} {
			got, want := confusionAt(e, s, b), oracle.confusion(b, s == "eu")
			total += got.Count()
			for a := 0; a < 2; a++ {
				for p := 0; p < 2; p++ {
					if got.Cell(a, p) != want.Cell(a, p) {
						t.Fatalf("bucket %d slice %s cell (%d,%d): got %d want %d", m, s, a, p, got.Cell(a, p), want.Cell(a, p))
					}
				}
			}
		}
	}
	preds, _ := fs.merged(t, FamilyPredictions, ls("slice", "all")).(interface{ Count() float64 })
	if preds.Count() != float64(len(oracle.preds)) {
		t.Fatalf("predictions counted %v, want %d", preds.Count(), len(oracle.preds))
	}
	// Joins still work after all the restarts.
	in := crashIngester(t, dir, fs)
	defer in.Close()
	if st := in.Stats(); st.Pending != len(oracle.preds) || st.HeldNow != 0 {
		t.Fatalf("join store after recovery: %+v", st)
	}
	t.Logf("batches acknowledged between kills: %v", progress)
	t.Logf("%d kills, %d batches, %d labelled (all+eu)", kills, len(batches), total)
}
