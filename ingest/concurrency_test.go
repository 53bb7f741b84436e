package ingest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"evalstore/sketch"
)

// TestConcurrentIngest runs predictions and feedback from several
// goroutines at once (pipelined commits, shared fsyncs, pre-routing without
// the lock) with restarts in between, and checks the oracle. Run with -race.
func TestConcurrentIngest(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *Config) { c.SnapshotBytes = 32 << 10 })
	o := &joinOracle{preds: map[string]oraclePred{}, labels: map[string]int{}}
	var omu sync.Mutex
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				for b := 0; b < 10; b++ {
					var preds, fbs []string
					for i := 0; i < 50; i++ {
						id := fmt.Sprintf("r%d-g%d-b%d-%d", round, g, b, i)
						p := oraclePred{t: t0.Add(-time.Duration(rng.IntN(300)) * time.Second), country: []string{"de", "us"}[rng.IntN(2)], score: float64(rng.IntN(100)) / 100}
						l := rng.IntN(2)
						omu.Lock()
						o.preds[id], o.labels[id] = p, l
						omu.Unlock()
						preds = append(preds, predLine(id, p.t, p.country, p.score))
						fbs = append(fbs, fbLine(id, 1-l), fbLine(id, l)) // wrong, then corrected
					}
					if rng.IntN(2) == 0 { // labels first, then predictions
						must(t)(e.in.Feedback(ctx, ndjson(fbs...)))
						must(t)(e.in.Predictions(ctx, ndjson(preds...)))
					} else {
						must(t)(e.in.Predictions(ctx, ndjson(preds...)))
						must(t)(e.in.Feedback(ctx, ndjson(fbs...)))
					}
				}
			}(g)
		}
		wg.Wait()
		e.reopen()
	}
	for m := int64(-5); m <= 0; m++ {
		b := t0.UnixMilli() + m*60000
		for _, s := range []string{"all", "eu"} {
			got, want := confusionAt(e, s, b), o.confusion(b, s == "eu")
			for a := 0; a < 2; a++ {
				for p := 0; p < 2; p++ {
					if got.Cell(a, p) != want.Cell(a, p) {
						t.Fatalf("bucket %d slice %s cell (%d,%d): got %d want %d", m, s, a, p, got.Cell(a, p), want.Cell(a, p))
					}
				}
			}
		}
	}
	if st := e.in.Stats(); st.Pending != len(o.preds) || st.HeldNow != 0 {
		t.Fatalf("%+v", st)
	}
}

// noReader hides memStorage's CommitReader.
type noReader struct{ s *memStorage }

func (n noReader) Appender() Appender { return n.s.Appender() }

// Without a CommitReader an in-doubt batch is rolled back (never
// acknowledged without being written).
func TestRecoveryWithoutCommitReader(t *testing.T) {
	ctx := context.Background()
	var st *memStorage
	e := newEnv(t, func(c *Config) { c.Storage = noReader{st} })
	st = e.st
	e.in.Close()
	e.open()
	must(t)(e.in.Predictions(ctx, ndjson(predLine("a", t0, "de", 0.9))))
	e.st.failCommit = errors.New("boom")
	if _, err := e.in.Feedback(ctx, ndjson(fbLine("a", 1))); err == nil {
		t.Fatal("want error")
	}
	e.in.Close()
	e.open()
	r := must(t)(e.in.Feedback(ctx, ndjson(fbLine("a", 1))))
	if r.Labels != 1 {
		t.Fatalf("retry after rollback: %+v", r)
	}
	c, _ := e.st.merged(t, FamilyConfusion, ls("slice", "all")).(*sketch.Confusion)
	if c.Count() != 1 {
		t.Fatalf("confusion count %d", c.Count())
	}
}
