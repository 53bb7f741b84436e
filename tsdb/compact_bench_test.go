package tsdb

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
	"evalstore/tsdb/plan"
	"evalstore/tsdb/series"
	"evalstore/tsdb/wal"
)

// benchConfusion is a binary confusion delta of one minute: ~100–200
// observations.
func benchConfusion(r *rand.Rand) []byte {
	c := sketch.NewConfusion()
	c.AddN(0, 0, int64(50+r.IntN(50)))
	c.AddN(0, 1, int64(r.IntN(10)))
	c.AddN(1, 0, int64(r.IntN(10)))
	c.AddN(1, 1, int64(20+r.IntN(50)))
	return c.AppendBinary(nil)
}

// benchLogHist is a log-histogram delta of one minute: 50 log-normal
// latencies (default schema, 1% relative error).
func benchLogHist(r *rand.Rand) []byte {
	h := sketch.NewDefaultLogHistogram()
	for range 50 {
		_ = h.Add(100 * math.Exp(0.5*r.NormFloat64()))
	}
	return h.AppendBinary(nil)
}

// compactedDB writes n one-minute buckets ending at testStart for each of
// the label sets (deltas from gen), flushes, lets the flush blocks settle
// and compacts: raw days with 1h rollups for the newest 7–14 days, 1h
// weeks with 1d rollups before.
func compactedDB(b *testing.B, opts Options, clock *fakeClock, n int, lsets []labels.Labels, gen func(*rand.Rand) []byte) *DB {
	db := openTestDB(b, b.TempDir(), opts)
	r := rand.New(rand.NewPCG(3, 4))
	end := testStart.UnixMilli()
	app := db.Appender()
	for _, l := range lsets {
		for i := range n {
			if err := app.AddSketch(l, end-int64(i)*minute, gen(r)); err != nil {
				b.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		b.Fatal(err)
	}
	clock.Advance(4 * time.Hour)
	if err := db.Compact(); err != nil {
		b.Fatal(err)
	}
	if err := db.Compact(); err != nil {
		b.Fatal(err)
	}
	waitRemoved(b, db)
	return db
}

// BenchmarkDBWindowMerge merges a 30-day window of one series (43,200
// one-minute confusion buckets) through the DB Querier after compaction,
// as the query engine does: open a Querier, Select with the window as
// Hints.Resolution's limit, DecodeAndMerge every bucket into one state.
// res=1h reads the 1h level (1h bases of the weeks older than 7 days, 1h
// rollups of the raw days) plus raw minutes at the window's edges; res=0
// reads the finest stored version. cache=on shares a fastcache of
// decompressed chunks.
func BenchmarkDBWindowMerge(b *testing.B) {
	const n = 43200
	for _, cache := range []bool{false, true} {
		for _, res := range []int64{plan.Hour, 0} {
			b.Run(fmt.Sprintf("res=%s/cache=%v", time.Duration(res)*time.Millisecond, cache), func(b *testing.B) {
				clock := newClock()
				opts := benchOptions(wal.SyncNever)
				opts.Now = clock.Now
				if cache {
					opts.BlockCache = fastcache.New(64 << 20)
				}
				l := labels.FromStrings("__name__", "acc", "model", "m")
				db := compactedDB(b, opts, clock, n, []labels.Labels{l}, benchConfusion)
				defer db.Close()
				end := testStart.UnixMilli()
				lo := end - (n-1)*minute
				m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "acc")
				dst := sketch.NewConfusion()
				var it series.BucketIterator
				var want int64
				buckets := 0
				b.ReportAllocs()
				for b.Loop() {
					q, err := db.Querier(lo, end)
					if err != nil {
						b.Fatal(err)
					}
					dst.Reset()
					buckets = 0
					set := q.Select(context.Background(), series.Hints{Mint: lo, Maxt: end, Resolution: res}, m)
					for set.Next() {
						it = set.At().Buckets(it)
						for it.Next() {
							_, _, st := it.At()
							if err := dst.DecodeAndMerge(st); err != nil {
								b.Fatal(err)
							}
							buckets++
						}
						if err := it.Err(); err != nil {
							b.Fatal(err)
						}
					}
					if err := set.Err(); err != nil {
						b.Fatal(err)
					}
					_ = q.Close()
					if want == 0 {
						want = dst.Count()
					} else if dst.Count() != want {
						b.Fatalf("count %d, then %d", want, dst.Count())
					}
				}
				st := db.Stats()
				b.ReportMetric(float64(buckets), "buckets/op")
				b.ReportMetric(float64(st.Blocks), "blocks")
			})
		}
	}
}

// BenchmarkDBBytesPerBucket reports bytes on disk per one-minute bucket
// after compaction, for 100 series of 30 days of confusion or
// log-histogram buckets: raw=only (no downsampled levels: raw day blocks,
// the disk cost of a raw bucket) and the default levels (total bytes of
// every level and rollup divided by the raw buckets written).
func BenchmarkDBBytesPerBucket(b *testing.B) {
	const n, nSeries = 43200, 20
	for _, kind := range []string{"confusion", "loghist"} {
		for _, levels := range []string{"raw-only", "default"} {
			b.Run(fmt.Sprintf("kind=%s/levels=%s", kind, levels), func(b *testing.B) {
				clock := newClock()
				opts := benchOptions(wal.SyncNever)
				opts.Now = clock.Now
				if levels == "raw-only" {
					opts.Levels = []plan.Level{}
				}
				gen := benchConfusion
				if kind == "loghist" {
					gen = benchLogHist
				}
				var lsets []labels.Labels
				for i := range nSeries {
					lsets = append(lsets, labels.FromStrings("__name__", "eval_"+kind, "model", fmt.Sprintf("m%d", i%5), "slice", fmt.Sprintf("s%d", i)))
				}
				db := compactedDB(b, opts, clock, n, lsets, gen)
				defer db.Close()
				for b.Loop() {
				}
				st := db.Stats()
				b.ReportMetric(float64(st.BlockBytes)/float64(n*nSeries), "B/rawbucket")
				b.ReportMetric(float64(st.BlockBytes)/float64(st.BlockBuckets), "B/storedbucket")
				b.ReportMetric(float64(st.BlockBuckets), "storedbuckets")
				b.ReportMetric(float64(st.Blocks), "blocks")
			})
		}
	}
}
