package tsdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// TestConcurrentWritersReadersFlush runs writers committing while readers
// query and flushes and compactions (flush blocks settle at once, so every
// Compact folds them into the day's partition and its rollup) run. Each writer owns one series and publishes how many
// observations it has started and finished committing; a reader's count for
// that series must lie between the finished count before its snapshot and
// the started count after reading (nothing invisible, nothing counted
// twice). The final state equals the oracle.
func TestConcurrentWritersReadersFlush(t *testing.T) {
	const writers, batches, perBatch = 4, 60, 20
	clock := newClock()
	dir := t.TempDir()
	opts := testOptions(clock)
	opts.FlushSettle = -1
	db := openTestDB(t, dir, opts)
	var started, acked [writers]atomic.Int64
	oracles := make([]map[int64]*sketch.Confusion, writers)
	lset := func(w int) labels.Labels {
		return labels.FromStrings("__name__", "conc", "writer", fmt.Sprint(w))
	}
	var wg sync.WaitGroup
	for w := range writers {
		oracles[w] = map[int64]*sketch.Confusion{}
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			a := db.Appender()
			for range batches {
				var n int64
				for range perBatch {
					bt := testStart.UnixMilli() - r.Int64N(120)*minute
					d := sketch.NewConfusion()
					d.Add(r.IntN(2), r.IntN(2))
					o := oracles[w][bucketStart(bt, minute)]
					if o == nil {
						o = sketch.NewConfusion()
						oracles[w][bucketStart(bt, minute)] = o
					}
					o.Merge(d)
					if err := a.AddSketch(lset(w), bt, d.AppendBinary(nil)); err != nil {
						t.Error(err)
						return
					}
					n++
				}
				started[w].Add(n)
				if err := a.Commit(); err != nil {
					t.Error(err)
					return
				}
				acked[w].Add(n)
			}
		})
	}
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	for range 2 {
		rwg.Go(func() {
			var it series.BucketIterator
			for {
				select {
				case <-stop:
					return
				default:
				}
				var lo [writers]int64
				for w := range writers {
					lo[w] = acked[w].Load()
				}
				q, err := db.Querier(0, testStart.UnixMilli())
				if err != nil {
					t.Error(err)
					return
				}
				set := q.Select(context.Background(), series.Hints{Mint: 0, Maxt: testStart.UnixMilli()},
					labels.MustNewMatcher(labels.MatchEqual, "__name__", "conc"))
				var got [writers]int64
				for set.Next() {
					s := set.At()
					var w int
					fmt.Sscan(s.Meta().Labels.Get("writer"), &w)
					it = s.Buckets(it)
					for it.Next() {
						_, _, st := it.At()
						c := sketch.NewConfusion()
						if err := c.UnmarshalBinary(st); err != nil {
							t.Error(err)
							return
						}
						got[w] += c.Count()
					}
				}
				if err := set.Err(); err != nil {
					t.Error(err)
				}
				_ = q.Close()
				for w := range writers {
					if hi := started[w].Load(); got[w] < lo[w] || got[w] > hi {
						t.Errorf("writer %d: reader saw %d observations, acked before %d, started after %d", w, got[w], lo[w], hi)
					}
				}
			}
		})
	}
	rwg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.Flush(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	rwg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.Compact(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	// Let readers overlap at least one compaction job.
	for i := 0; i < 1000 && db.Stats().Compactions == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	rwg.Wait()
	if db.Stats().Compactions == 0 {
		t.Errorf("no compaction happened: %+v", db.Stats())
	}
	want := map[bucketKey]string{}
	for w := range writers {
		for bt, c := range oracles[w] {
			want[bucketKey{lset(w).String(), bt}] = encConfusion(c)
		}
	}
	checkEqual(t, "final", readSketches(t, db, 0, testStart.UnixMilli()), want)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir, opts)
	defer db.Close()
	liveOnDisk(t, dir)
	checkEqual(t, "after restart", readSketches(t, db, 0, testStart.UnixMilli()), want)
	if db.Stats().Blocks == 0 {
		t.Error("no flush happened")
	}
}
