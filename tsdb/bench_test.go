package tsdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"

	"evalstore/sketch"
	"evalstore/tsdb/series"
	"evalstore/tsdb/wal"
)

func benchOptions(sync wal.SyncPolicy) Options {
	opts := testOptions(newClock())
	opts.WAL = wal.Options{Sync: sync}
	return opts
}

// BenchmarkSketchMerge commits batches of 1000 confusion deltas into
// existing head buckets (1000 series, 10 buckets each) with the WAL on.
func BenchmarkSketchMerge(b *testing.B) {
	const nSeries, nBuckets, batch = 1000, 10, 1000
	cases := []struct {
		sync    wal.SyncPolicy
		writers int
	}{{wal.SyncAlways, 1}, {wal.SyncAlways, 4}, {wal.SyncNever, 1}}
	for _, tc := range cases {
		b.Run(fmt.Sprintf("sync=%v/writers=%d", tc.sync, tc.writers), func(b *testing.B) {
			db := openTestDB(b, b.TempDir(), benchOptions(tc.sync))
			defer db.Close()
			lsets := make([]labels.Labels, nSeries)
			for i := range lsets {
				lsets[i] = seriesLabels(i)
			}
			r := rand.New(rand.NewPCG(1, 2))
			deltas := make([][]byte, 64)
			for i := range deltas {
				c := sketch.NewConfusion()
				for range 1 + r.IntN(20) {
					c.Add(r.IntN(2), r.IntN(2))
				}
				deltas[i] = c.AppendBinary(nil)
			}
			end := testStart.UnixMilli()
			// Create every bucket first, so the loop merges into existing ones.
			app := db.Appender()
			for s := range nSeries {
				for k := range nBuckets {
					if err := app.AddSketch(lsets[s], end-int64(k)*minute, deltas[0]); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := app.Commit(); err != nil {
				b.Fatal(err)
			}
			commitBatch := func(app *Appender, i *int) error {
				for range batch {
					*i++
					if err := app.AddSketch(lsets[*i%nSeries], end-int64(*i%nBuckets)*minute, deltas[*i%len(deltas)]); err != nil {
						return err
					}
				}
				return app.Commit()
			}
			b.ReportAllocs()
			b.SetBytes(int64(batch * len(deltas[0])))
			start := time.Now()
			if tc.writers == 1 {
				i := 0
				for b.Loop() {
					if err := commitBatch(app, &i); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(max(1, tc.writers/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					app := db.Appender()
					i := rand.IntN(nSeries)
					for pb.Next() {
						if err := commitBatch(app, &i); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "merges/s")
		})
	}
}

// BenchmarkFloatAppend appends one sample to each of 1000 series per
// commit (1000 samples per commit, 15 s apart per series), through
// evalstore and through Prometheus's own TSDB in the same binary. Both WALs
// are on and write every commit to the OS without fsync (Prometheus never
// fsyncs per commit, so compare it with sync=never; sync=always is shown
// for reference). Prometheus runs with DefaultOptions and its head
// compaction disabled, since evalstore's DB here never flushes either.
//
//   - evalstore appender=reuse: one Appender for the whole run (its
//     documented use: one per goroutine), so its series cache is warm.
//   - evalstore appender=new: a new Appender per commit (cold cache).
//   - prometheus refs=none: a new Appender per commit, Append(0, lset, ...),
//     so every sample is a labels-hash lookup in Prometheus's head.
//   - prometheus refs=cached: as Prometheus's scrape loop does, the ref
//     each Append returns is passed back next time (lookup by ref).
func BenchmarkFloatAppend(b *testing.B) {
	const nSeries = 1000
	lsets := make([]labels.Labels, nSeries)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "up", "instance", fmt.Sprintf("host-%d", i), "job", "node")
	}
	evalstore := func(b *testing.B, sync wal.SyncPolicy, reuse bool) {
		db := openTestDB(b, b.TempDir(), benchOptions(sync))
		defer db.Close()
		app := db.Appender()
		ts := testStart.UnixMilli() - 100*24*3600*1000
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			ts += 15000
			if !reuse {
				app = db.Appender()
			}
			for i, l := range lsets {
				if err := app.AddFloat(l, ts, float64(i)); err != nil {
					b.Fatal(err)
				}
			}
			if err := app.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*nSeries)/time.Since(start).Seconds(), "samples/s")
	}
	for _, sync := range []wal.SyncPolicy{wal.SyncAlways, wal.SyncNever} {
		b.Run("db=evalstore/sync="+sync.String()+"/appender=reuse", func(b *testing.B) { evalstore(b, sync, true) })
	}
	b.Run("db=evalstore/sync=never/appender=new", func(b *testing.B) { evalstore(b, wal.SyncNever, false) })
	for _, cached := range []bool{false, true} {
		name := "db=prometheus/refs=none"
		if cached {
			name = "db=prometheus/refs=cached"
		}
		b.Run(name, func(b *testing.B) {
			db, err := promtsdb.Open(b.TempDir(), nil, nil, promtsdb.DefaultOptions(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.DisableCompactions()
			ctx := context.Background()
			refs := make([]storage.SeriesRef, nSeries)
			ts := time.Now().UnixMilli()
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				ts += 15000
				app := db.Appender(ctx)
				for i, l := range lsets {
					ref, err := app.Append(refs[i], l, ts, float64(i))
					if err != nil {
						b.Fatal(err)
					}
					if cached {
						refs[i] = ref
					}
				}
				if err := app.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*nSeries)/time.Since(start).Seconds(), "samples/s")
		})
	}
}

// BenchmarkHeadMemory measures head memory per active series: 10,000
// confusion series with one bucket (binary, realistic counts) each, or
// float series with 120 samples each. Reported as Go heap growth per
// series (everything: registry, index, head, WAL buffers) and as the
// head's own estimate (Stats.HeadBytes).
func BenchmarkHeadMemory(b *testing.B) {
	const nSeries = 10000
	for _, kind := range []string{"sketch", "float"} {
		b.Run("kind="+kind, func(b *testing.B) {
			c := sketch.NewConfusion()
			c.AddN(0, 0, 900)
			c.AddN(0, 1, 40)
			c.AddN(1, 0, 25)
			c.AddN(1, 1, 300)
			delta := c.AppendBinary(nil)
			var heap, est float64
			for b.Loop() {
				db := openTestDB(b, b.TempDir(), benchOptions(wal.SyncNever))
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				app := db.Appender()
				end := testStart.UnixMilli()
				for i := range nSeries {
					l := seriesLabels(i)
					if kind == "sketch" {
						if err := app.AddSketch(l, end, delta); err != nil {
							b.Fatal(err)
						}
					} else {
						for k := range 120 {
							if err := app.AddFloat(l, end-int64(120-k)*15000, float64(k%7)); err != nil {
								b.Fatal(err)
							}
						}
					}
					if i%100 == 99 {
						if err := app.Commit(); err != nil {
							b.Fatal(err)
						}
					}
				}
				app = nil // its buffers are not head memory
				// Two GCs: the appender's state sits in a sync.Pool,
				// whose victim cache survives the first.
				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&m1)
				heap = float64(m1.HeapAlloc-m0.HeapAlloc) / nSeries
				est = float64(db.Stats().HeadBytes) / nSeries
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(heap, "heap-B/series")
			b.ReportMetric(est, "est-B/series")
		})
	}
}

// BenchmarkWindowMerge30d reads 43,200 one-minute confusion buckets of one
// series (30 days) through the Querier and merges them into one state, as
// the query engine does for a window, with the data in the head or, after
// a Flush, in a block (the real tsdb/block).
func BenchmarkWindowMerge30d(b *testing.B) {
	const n = 43200
	for _, source := range []string{"head", "block"} {
		b.Run("source="+source, func(b *testing.B) {
			db := openTestDB(b, b.TempDir(), benchOptions(wal.SyncNever))
			defer db.Close()
			l := labels.FromStrings("__name__", "acc", "model", "m")
			end := testStart.UnixMilli()
			r := rand.New(rand.NewPCG(3, 4))
			app := db.Appender()
			for i := range n {
				c := sketch.NewConfusion()
				c.AddN(0, 0, int64(50+r.IntN(50)))
				c.AddN(0, 1, int64(r.IntN(10)))
				c.AddN(1, 0, int64(r.IntN(10)))
				c.AddN(1, 1, int64(20+r.IntN(50)))
				if err := app.AddSketch(l, end-int64(i)*minute, c.AppendBinary(nil)); err != nil {
					b.Fatal(err)
				}
			}
			if err := app.Commit(); err != nil {
				b.Fatal(err)
			}
			if source == "block" {
				if err := db.Flush(); err != nil {
					b.Fatal(err)
				}
				if st := db.Stats(); st.Blocks == 0 || st.HeadBuckets != 0 {
					b.Fatalf("after flush: %+v", st)
				}
			}
			m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "acc")
			dst := sketch.NewConfusion()
			var it series.BucketIterator
			b.ReportAllocs()
			for b.Loop() {
				q, err := db.Querier(end-n*minute, end)
				if err != nil {
					b.Fatal(err)
				}
				dst.Reset()
				set := q.Select(context.Background(), series.Hints{}, m)
				buckets := 0
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
				if buckets != n {
					b.Fatalf("%d buckets", buckets)
				}
				_ = q.Close()
			}
			b.ReportMetric(float64(n), "buckets/op")
		})
	}
}

// BenchmarkAddHistogram commits batches of 1,000 native histogram samples,
// one per series over 1,000 series, each histogram with 20 buckets (a
// counter growing by random increments, fixed seed), and reports samples/s.
// It also reports the bytes on disk per histogram sample (block files over
// samples) after flushing 240 samples per series of the same workload.
func BenchmarkAddHistogram(b *testing.B) {
	for _, sync := range []wal.SyncPolicy{wal.SyncAlways, wal.SyncNever} {
		b.Run("sync="+sync.String(), func(b *testing.B) {
			db := openTestDB(b, b.TempDir(), benchOptions(sync))
			defer db.Close()
			w := newHistBench()
			app := db.Appender()
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				w.batch(b, app)
			}
			b.ReportMetric(float64(b.N*len(w.lsets))/time.Since(start).Seconds(), "samples/s")
			b.ReportMetric(histBytesPerSample(b), "disk-bytes/sample")
		})
	}
}

type histBench struct {
	r     *rand.Rand
	lsets []labels.Labels
	hs    []*histogram.FloatHistogram
	ts    int64
}

func newHistBench() *histBench {
	w := &histBench{r: rand.New(rand.NewPCG(1, 2)), ts: testStart.UnixMilli() - 100*24*3600*1000}
	for i := range 1000 {
		w.lsets = append(w.lsets, labels.FromStrings("__name__", "http_request_duration_seconds", "instance", fmt.Sprintf("host-%d", i), "job", "api"))
		w.hs = append(w.hs, &histogram.FloatHistogram{Schema: 3, ZeroThreshold: 1e-128,
			PositiveSpans:   []histogram.Span{{Offset: -5, Length: 12}, {Offset: 3, Length: 8}},
			PositiveBuckets: make([]float64, 20)})
	}
	return w
}

// batch advances every series by one scrape and commits it.
func (w *histBench) batch(b *testing.B, app *Appender) {
	w.ts += 15000
	for i, l := range w.lsets {
		h := w.hs[i]
		for j := range h.PositiveBuckets {
			d := float64(w.r.IntN(4))
			h.PositiveBuckets[j] += d
			h.Count += d
			h.Sum += d * 0.01 * float64(j)
		}
		if err := app.AddHistogram(l, w.ts, h); err != nil {
			b.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		b.Fatal(err)
	}
}

func histBytesPerSample(b *testing.B) float64 {
	db := openTestDB(b, b.TempDir(), benchOptions(wal.SyncNever))
	defer db.Close()
	w := newHistBench()
	app := db.Appender()
	const perSeries = 240
	for range perSeries {
		w.batch(b, app)
	}
	if err := db.Flush(); err != nil {
		b.Fatal(err)
	}
	return float64(db.Stats().BlockBytes) / float64(perSeries*len(w.lsets))
}
