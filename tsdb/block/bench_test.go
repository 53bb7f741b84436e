package block

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// confusionMinutes builds n one-minute confusion buckets with realistic
// counts (about 1,000 predictions a minute, 90% accurate).
func confusionMinutes(r *rand.Rand, n int, start int64) []bucket {
	out := make([]bucket, n)
	c := sketch.NewConfusion()
	for i := range out {
		c.Reset()
		c.AddN(1, 1, 400+r.Int64N(100))
		c.AddN(0, 0, 450+r.Int64N(100))
		c.AddN(0, 1, 40+r.Int64N(40))
		c.AddN(1, 0, 30+r.Int64N(40))
		out[i] = bucket{t: start + int64(i)*minute, w: minute, state: c.AppendBinary(nil)}
	}
	return out
}

// logHistMinutes builds n one-minute log-histogram buckets of 200-400
// log-normal latencies each.
func logHistMinutes(b testing.TB, r *rand.Rand, n int, start int64) []bucket {
	out := make([]bucket, n)
	h := sketch.NewDefaultLogHistogram()
	for i := range out {
		h.Reset()
		for range 200 + r.IntN(200) {
			if err := h.Add(math.Exp(r.NormFloat64()*0.8 + 4)); err != nil {
				b.Fatal(err)
			}
		}
		out[i] = bucket{t: start + int64(i)*minute, w: minute, state: h.AppendBinary(nil)}
	}
	return out
}

func dirSize(b testing.TB, m Meta) int64 { return m.Stats.Bytes }

// BenchmarkWrite writes 100 series of one day of minute buckets and
// reports on-disk bytes per bucket.
func BenchmarkWrite(b *testing.B) {
	r := rand.New(rand.NewPCG(41, 42))
	const nSeries, nBuckets = 100, 1440
	for _, kind := range []string{"confusion", "loghist"} {
		var ss []*memSeries
		var raw int64
		for i := range nSeries {
			var bs []bucket
			f := sketch.FormatConfusion
			if kind == "confusion" {
				bs = confusionMinutes(r, nBuckets, 0)
			} else {
				f = sketch.FormatLogHistogram
				bs = logHistMinutes(b, r, nBuckets, 0)
			}
			for _, x := range bs {
				raw += int64(len(x.state))
			}
			ss = append(ss, &memSeries{meta: series.Meta{Labels: lbls("m", "i", fmt.Sprint(i)), Kind: series.KindSketch, Format: f}, buckets: bs})
		}
		b.Run("sketch="+kind, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(raw)
			dir := b.TempDir()
			var m Meta
			for b.Loop() {
				var err error
				if m, err = Write(dir, minute, newMemSet(ss)); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_ = os.RemoveAll(dirOf(dir, m))
				b.StartTimer()
			}
			nb := float64(nSeries * nBuckets)
			b.ReportMetric(float64(dirSize(b, m))/nb, "B/bucket")
			b.ReportMetric(float64(raw)/nb, "raw_B/bucket")
			b.ReportMetric(nb*float64(b.N)/b.Elapsed().Seconds(), "buckets/s")
		})
	}
}

// BenchmarkReadMerge reads one series' 30 days of confusion buckets from a
// block and merges them into one state: 43,200 one-minute buckets, or the
// same data downsampled to 720 one-hour buckets.
func BenchmarkReadMerge(b *testing.B) {
	r := rand.New(rand.NewPCG(43, 44))
	const n = 30 * 24 * 60
	s := &memSeries{meta: series.Meta{Labels: lbls("acc"), Kind: series.KindSketch, Format: sketch.FormatConfusion}, buckets: confusionMinutes(r, n, 0)}
	dir := b.TempDir()
	m1, err := Write(dir, minute, newMemSet([]*memSeries{s}))
	if err != nil {
		b.Fatal(err)
	}
	b1, err := Open(dirOf(dir, m1), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer b1.Close()
	mh, err := Compact(dir, []*Block{b1}, hour, 0, n*minute)
	if err != nil {
		b.Fatal(err)
	}
	bh, err := Open(dirOf(dir, mh), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer bh.Close()
	for _, c := range []struct {
		name string
		blk  *Block
	}{{"res=1m/buckets=43200", b1}, {"res=1h/buckets=720", bh}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			acc := sketch.NewConfusion()
			var it series.BucketIterator
			q, err := c.blk.Querier(0, n*minute)
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			nb := 0
			for b.Loop() {
				acc.Reset()
				ss := q.Select(b.Context(), series.Hints{Mint: 0, Maxt: n * minute})
				for ss.Next() {
					it = ss.At().Buckets(it)
					for it.Next() {
						_, _, st := it.At()
						if err := acc.DecodeAndMerge(st); err != nil {
							b.Fatal(err)
						}
						nb++
					}
					if err := it.Err(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(nb)/float64(b.N), "buckets/op")
			b.ReportMetric(float64(c.blk.Size()), "block_B")
		})
	}
}

// BenchmarkCompact merges three overlapping one-day blocks of 100 series,
// at the same resolution and downsampled to 1h.
func BenchmarkCompact(b *testing.B) {
	r := rand.New(rand.NewPCG(45, 46))
	dir := b.TempDir()
	var blocks []*Block
	var nb int
	for k := range 3 {
		var ss []*memSeries
		for i := range 100 {
			bs := confusionMinutes(r, 1440, int64(k)*12*hour)
			nb += len(bs)
			ss = append(ss, &memSeries{meta: series.Meta{Labels: lbls("m", "i", fmt.Sprint(i)), Kind: series.KindSketch, Format: sketch.FormatConfusion}, buckets: bs})
		}
		m, err := Write(dir, minute, newMemSet(ss))
		if err != nil {
			b.Fatal(err)
		}
		blk, err := Open(dirOf(dir, m), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer blk.Close()
		blocks = append(blocks, blk)
	}
	for _, res := range []int64{minute, hour} {
		b.Run(fmt.Sprintf("res=%dm", res/minute), func(b *testing.B) {
			b.ReportAllocs()
			out := b.TempDir()
			for b.Loop() {
				m, err := Compact(out, blocks, res, 0, 3*day)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_ = os.RemoveAll(dirOf(out, m))
				b.StartTimer()
			}
			b.ReportMetric(float64(nb)*float64(b.N)/b.Elapsed().Seconds(), "input_buckets/s")
		})
	}
}

// BenchmarkMergeSeriesSets merges two in-memory sets of 100 confusion
// series: disjoint (pass-through) or sharing every series and bucket
// (every bucket decoded, merged and re-encoded).
func BenchmarkMergeSeriesSets(b *testing.B) {
	r := rand.New(rand.NewPCG(47, 48))
	mk := func(prefix string) []*memSeries {
		var ss []*memSeries
		for i := range 100 {
			ss = append(ss, &memSeries{meta: series.Meta{Labels: lbls(prefix, "i", fmt.Sprint(i)), Kind: series.KindSketch, Format: sketch.FormatConfusion}, buckets: confusionMinutes(r, 60, 0)})
		}
		return ss
	}
	for _, c := range []struct {
		name string
		a, b []*memSeries
	}{{"shared=none", mk("a"), mk("b")}, {"shared=all", mk("a"), mk("a")}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			sa, sb := newMemSet(c.a), newMemSet(c.b)
			var it series.BucketIterator
			n := 0
			for b.Loop() {
				sa.i, sb.i = -1, -1
				m := MergeSeriesSets(sa, sb)
				for m.Next() {
					it = m.At().Buckets(it)
					for it.Next() {
						n++
					}
				}
			}
			b.ReportMetric(float64(n)/float64(b.N), "buckets/op")
		})
	}
}
