package tsdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
)

type chanTicker struct{ c chan time.Time }

func (t *chanTicker) C() <-chan time.Time { return t.c }
func (t *chanTicker) Stop()               {}

// TestRunFlushesOnThresholds drives Run with a fake ticker and clock: no
// flush while the head is young and small, a flush once it is FlushAge old,
// one once it exceeds FlushBytes and one once its WAL exceeds FlushWALBytes.
func TestRunFlushesOnThresholds(t *testing.T) {
	clock := newClock()
	tick := &chanTicker{c: make(chan time.Time)}
	opts := testOptions(clock)
	opts.NewTicker = func(time.Duration) Ticker { return tick }
	opts.FlushAge = time.Hour
	opts.FlushBytes = 256 << 10
	opts.FlushWALBytes = 2 << 20 // testOptions: 1 MiB segments
	db := openTestDB(t, t.TempDir(), opts)
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- db.Run(ctx) }()
	step := func() {
		tick.c <- clock.Now() // Run takes the tick, checks and maybe flushes,
		tick.c <- clock.Now() // and is back for the next one: the first is done.
	}
	w := newWorkload(5, 4, 30, 200)
	commitWrites(t, db, w.writes, 50)
	step()
	if n := db.Stats().Flushes; n != 0 {
		t.Fatalf("flushed a young, small head: %d", n)
	}
	clock.Advance(time.Hour)
	step()
	if n := db.Stats().Flushes; n != 1 {
		t.Fatalf("flushes after FlushAge: %d", n)
	}
	// Size threshold: many distinct buckets.
	a := db.Appender()
	c := sketch.NewConfusion()
	c.Add(1, 1)
	d := c.AppendBinary(nil)
	for i := range 6000 {
		if err := a.AddSketch(labels.FromStrings("__name__", "big"), clock.Now().UnixMilli()-int64(i)*minute, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	if db.Stats().HeadBytes < opts.FlushBytes {
		t.Fatalf("head bytes %d below threshold", db.Stats().HeadBytes)
	}
	step()
	if n := db.Stats().Flushes; n != 2 {
		t.Fatalf("flushes after FlushBytes: %d", n)
	}
	// WAL threshold: many merges into one bucket keep the head tiny.
	for db.Stats().WAL.Segments <= 3 {
		for range 1000 {
			if err := a.AddSketch(labels.FromStrings("__name__", "hot"), clock.Now().UnixMilli(), d); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if hb := db.Stats().HeadBytes; hb >= opts.FlushBytes {
		t.Fatalf("head bytes %d: test wants a small head", hb)
	}
	step()
	if n := db.Stats().Flushes; n != 3 {
		t.Fatalf("flushes after FlushWALBytes: %d", n)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestOpenSkipsTmpBlocksAndStaging(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	db := openTestDB(t, dir, testOptions(clock))
	w := newWorkload(3, 3, 10, 100)
	commitWrites(t, db, w.writes, 100)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Garbage a crashed block writer or flush could leave behind.
	for _, p := range []string{filepath.Join(dir, blocksDir, "01XYZ.tmp"), filepath.Join(dir, stagingDir, "deadbeef")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	db = openTestDB(t, dir, testOptions(clock))
	defer db.Close()
	if st := db.Stats(); st.GarbageBlocks != 1 || st.Blocks != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, blocksDir, "01XYZ.tmp")); !os.IsNotExist(err) {
		t.Fatalf("unfinished block kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, stagingDir, "deadbeef")); !os.IsNotExist(err) {
		t.Fatalf("stale staging block kept: %v", err)
	}
	checkEqual(t, "reopen", readSketches(t, db, 0, testStart.UnixMilli()), w.expect())
}

func TestLabelNamesValues(t *testing.T) {
	clock := newClock()
	db := openTestDB(t, t.TempDir(), testOptions(clock))
	defer db.Close()
	c := sketch.NewConfusion()
	c.Add(0, 0)
	d := c.AppendBinary(nil)
	now := testStart.UnixMilli()
	a := db.Appender()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.AddSketch(labels.FromStrings("__name__", "acc", "model", "old"), now-10*24*3600*1000, d))
	must(a.Commit())
	must(db.Flush())
	must(a.AddSketch(labels.FromStrings("__name__", "acc", "model", "new", "slice", "eu"), now, d))
	must(a.AddFloat(labels.FromStrings("__name__", "up", "job", "j"), now, 1))
	must(a.Commit())
	ctx := context.Background()
	for _, tc := range []struct {
		mint, maxt int64
		names      []string
		models     []string
	}{
		{0, now, []string{"__name__", "job", "model", "slice"}, []string{"new", "old"}},
		{now - 3600*1000, now, []string{"__name__", "job", "model", "slice"}, []string{"new"}},
		{0, now - 24*3600*1000, []string{"__name__", "model"}, []string{"old"}},
	} {
		q, err := db.Querier(tc.mint, tc.maxt)
		must(err)
		names, err := q.LabelNames(ctx)
		must(err)
		models, err := q.LabelValues(ctx, "model", labels.MustNewMatcher(labels.MatchEqual, "__name__", "acc"))
		must(err)
		if !slices.Equal(names, tc.names) || !slices.Equal(models, tc.models) {
			t.Errorf("[%d,%d]: names %v models %v, want %v %v", tc.mint, tc.maxt, names, models, tc.names, tc.models)
		}
		must(q.Close())
	}
}

// TestRunCompacts drives Run with a fake ticker and clock: a tick flushes
// the old head, a tick after FlushSettle folds the flush blocks into
// partitions (with rollups), and DisableCompaction stops that.
func TestRunCompacts(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("disabled=%v", disabled), func(t *testing.T) {
			clock := newClock()
			tick := &chanTicker{c: make(chan time.Time)}
			opts := testOptions(clock)
			opts.NewTicker = func(time.Duration) Ticker { return tick }
			opts.DisableCompaction = disabled
			db := openTestDB(t, t.TempDir(), opts)
			defer db.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- db.Run(ctx) }()
			step := func() { tick.c <- clock.Now(); tick.c <- clock.Now() }
			w := newWorkload(5, 4, 3*1440, 300)
			commitWrites(t, db, w.writes, 100)
			clock.Advance(2 * time.Hour)
			step()
			if st := db.Stats(); st.Flushes != 1 || st.Compactions != 0 {
				t.Fatalf("after FlushAge: %+v", st)
			}
			clock.Advance(3 * time.Hour)
			step()
			st := db.Stats()
			if disabled != (st.Compactions == 0) {
				t.Fatalf("disabled=%v: %d compactions", disabled, st.Compactions)
			}
			if !disabled && st.Blocks != 6 { // 3 raw days + their 1h rollups
				t.Fatalf("%d live blocks, want 6", st.Blocks)
			}
			checkEqual(t, "after Run", readSketches(t, db, 0, testStart.UnixMilli()), w.expect())
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
		})
	}
}
