package block

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/sketch"
	"evalstore/tsdb/internal/histtest"
	"evalstore/tsdb/series"
)

const (
	minute = int64(60_000)
	hour   = 60 * minute
	day    = 24 * hour
)

type bucket struct {
	t, w  int64
	state []byte
}

type sample struct {
	t int64
	v float64
}

// memSeries is a test series held in memory; it implements series.Series.
type memSeries struct {
	meta    series.Meta
	buckets []bucket
	samples []sample
	hists   []histtest.Sample
}

func (s *memSeries) Meta() series.Meta { return s.meta }

func (s *memSeries) Buckets(reuse series.BucketIterator) series.BucketIterator {
	if it, ok := reuse.(*memBuckets); ok {
		*it = memBuckets{b: s.buckets, i: -1}
		return it
	}
	return &memBuckets{b: s.buckets, i: -1}
}

func (s *memSeries) Samples(chunkenc.Iterator) chunkenc.Iterator {
	switch s.meta.Kind {
	case series.KindFloat:
		return newMemSamples(s.samples)
	case series.KindHistogram:
		it := &memSamples{h: s.hists, i: -1}
		it.seekMethod.s = it
		return it
	}
	return chunkenc.NewNopIterator()
}

type memBuckets struct {
	b []bucket
	i int
}

func (it *memBuckets) Next() bool { it.i++; return it.i < len(it.b) }
func (it *memBuckets) At() (int64, int64, []byte) {
	b := it.b[it.i]
	return b.t, b.w, b.state
}
func (it *memBuckets) Err() error { return nil }

// memSamples iterates float samples s or, when h is set, histogram
// samples h. It reuses the package's seek shim (see seek.go).
type memSamples struct {
	seekMethod[int64]
	s []sample
	h []histtest.Sample
	i int
}

func (it *memSamples) n() int { return max(len(it.s), len(it.h)) }

func (it *memSamples) vt() chunkenc.ValueType {
	if it.h != nil {
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

func (it *memSamples) Next() chunkenc.ValueType {
	if it.i+1 >= it.n() {
		it.i = it.n()
		return chunkenc.ValNone
	}
	it.i++
	return it.vt()
}

func (it *memSamples) seek(t int64) chunkenc.ValueType {
	if it.i < 0 {
		it.i = 0
	}
	for it.i < it.n() && it.AtT() < t {
		it.i++
	}
	if it.i >= it.n() {
		return chunkenc.ValNone
	}
	return it.vt()
}

func (it *memSamples) At() (int64, float64) { return it.s[it.i].t, it.s[it.i].v }
func (it *memSamples) AtT() int64 {
	if it.h != nil {
		return it.h[it.i].T
	}
	return it.s[it.i].t
}
func (it *memSamples) AtST() int64 { return 0 }
func (it *memSamples) Err() error  { return nil }
func (it *memSamples) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return 0, nil
}

// AtFloatHistogram copies, as chunk iterators do: writers may modify it.
func (it *memSamples) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	s := it.h[it.i]
	if fh == nil {
		return s.T, s.H.Copy()
	}
	s.H.CopyTo(fh)
	return s.T, fh
}

func newMemSamples(s []sample) chunkenc.Iterator {
	it := &memSamples{s: s, i: -1}
	it.seekMethod.s = it
	return it
}

// memSet is a sorted list of memSeries; it implements series.SeriesSet.
type memSet struct {
	s []*memSeries
	i int
}

func newMemSet(s []*memSeries) *memSet {
	slices.SortFunc(s, func(a, b *memSeries) int { return labels.Compare(a.meta.Labels, b.meta.Labels) })
	return &memSet{s: s, i: -1}
}

func (m *memSet) Next() bool        { m.i++; return m.i < len(m.s) }
func (m *memSet) At() series.Series { return m.s[m.i] }
func (m *memSet) Err() error        { return nil }

// collect drains a SeriesSet into copies.
func collect(t testing.TB, set series.SeriesSet) []*memSeries {
	t.Helper()
	var out []*memSeries
	var bit series.BucketIterator
	var sit chunkenc.Iterator
	for set.Next() {
		s := set.At()
		m := &memSeries{meta: s.Meta()}
		m.meta.Labels = m.meta.Labels.Copy()
		bit = s.Buckets(bit)
		for bit.Next() {
			tt, w, st := bit.At()
			m.buckets = append(m.buckets, bucket{tt, w, bytes.Clone(st)})
		}
		if err := bit.Err(); err != nil {
			t.Fatalf("buckets of %s: %v", m.meta.Labels, err)
		}
		sit = s.Samples(sit)
		for vt := sit.Next(); vt != chunkenc.ValNone; vt = sit.Next() {
			if vt == chunkenc.ValFloatHistogram {
				tt, h := sit.AtFloatHistogram(&histogram.FloatHistogram{})
				m.hists = append(m.hists, histtest.Sample{T: tt, H: h})
				continue
			}
			tt, v := sit.At()
			m.samples = append(m.samples, sample{tt, v})
		}
		if err := sit.Err(); err != nil {
			t.Fatalf("samples of %s: %v", m.meta.Labels, err)
		}
		out = append(out, m)
	}
	if err := set.Err(); err != nil {
		t.Fatalf("series set: %v", err)
	}
	return out
}

// equalSeries compares two collected lists exactly (float values by bits,
// so StaleNaN markers count).
func equalSeries(t testing.TB, got, want []*memSeries) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d series, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !labels.Equal(g.meta.Labels, w.meta.Labels) || g.meta.Kind != w.meta.Kind || g.meta.Format != w.meta.Format {
			t.Fatalf("series %d: got %v %v %v, want %v %v %v", i, g.meta.Labels, g.meta.Kind, g.meta.Format, w.meta.Labels, w.meta.Kind, w.meta.Format)
		}
		if len(g.buckets) != len(w.buckets) {
			t.Fatalf("%s: got %d buckets, want %d", w.meta.Labels, len(g.buckets), len(w.buckets))
		}
		for j := range g.buckets {
			gb, wb := g.buckets[j], w.buckets[j]
			if gb.t != wb.t || gb.w != wb.w || !bytes.Equal(gb.state, wb.state) {
				t.Fatalf("%s: bucket %d: got t=%d w=%d %x, want t=%d w=%d %x", w.meta.Labels, j, gb.t, gb.w, gb.state, wb.t, wb.w, wb.state)
			}
		}
		if len(g.samples) != len(w.samples) {
			t.Fatalf("%s: got %d samples, want %d", w.meta.Labels, len(g.samples), len(w.samples))
		}
		for j := range g.samples {
			gs, ws := g.samples[j], w.samples[j]
			if gs.t != ws.t || math.Float64bits(gs.v) != math.Float64bits(ws.v) {
				t.Fatalf("%s: sample %d: got (%d, %v), want (%d, %v)", w.meta.Labels, j, gs.t, gs.v, ws.t, ws.v)
			}
		}
		if d := histtest.Diff(g.hists, w.hists); d != "" {
			t.Fatalf("%s: histograms: %s", w.meta.Labels, d)
		}
	}
}

// obs is one raw observation at time t; which fields matter depends on
// the sketch format.
type obs struct {
	t    int64
	a, p int
	x    float64
	key  string
}

func addObs(t testing.TB, s sketch.Sketch, o obs) {
	t.Helper()
	var err error
	switch s := s.(type) {
	case *sketch.Confusion:
		s.Add(o.a, o.p)
	case *sketch.LogHistogram:
		err = s.Add(o.x)
	case *sketch.ScoreHistogram:
		err = s.Add(o.x/64, o.a == 1)
	case *sketch.Moments:
		err = s.Add(o.x)
	case *sketch.TDigest:
		err = s.Add(o.x)
	case *sketch.Categorical:
		s.Add(o.key)
	default:
		t.Fatalf("no observation rule for %T", s)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// randObs draws an observation: classes in {0,1}, x a multiple of 1/8 in
// [0, 64) so that float sums stay exact in any order.
func randObs(r *rand.Rand, tt int64) obs {
	return obs{t: tt, a: r.IntN(2), p: r.IntN(2), x: float64(r.IntN(512)) / 8, key: fmt.Sprintf("k%d", r.IntN(20))}
}

// oracle builds, for one series, the expected buckets at resolution res
// by adding every raw observation into a fresh state per coarse bucket.
func oracle(t testing.TB, f sketch.Format, os []obs, res int64) []bucket {
	t.Helper()
	byKey := map[int64]sketch.Sketch{}
	for _, o := range os {
		k := bucketStart(o.t, res)
		s, ok := byKey[k]
		if !ok {
			var err error
			if s, err = sketch.New(f); err != nil {
				t.Fatal(err)
			}
			byKey[k] = s
		}
		addObs(t, s, o)
	}
	keys := make([]int64, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]bucket, len(keys))
	for i, k := range keys {
		out[i] = bucket{t: k, w: res, state: byKey[k].AppendBinary(nil)}
	}
	return out
}

func lbls(name string, kv ...string) labels.Labels {
	return labels.FromStrings(append([]string{"__name__", name}, kv...)...)
}

// randomSeries builds n sketch series (cycling through formats) with
// buckets made of raw observations at width w over [start, start+span),
// m float series with random samples including StaleNaN markers, and m
// histogram series (histtest.Series, cycling through its kinds).
func randomSeries(t testing.TB, r *rand.Rand, formats []sketch.Format, n, m int, start, span, w int64) []*memSeries {
	t.Helper()
	var out []*memSeries
	for i := range n {
		f := formats[i%len(formats)]
		var os []obs
		for tt := start; tt < start+span; tt += w {
			if r.IntN(3) == 0 {
				continue
			}
			for range 1 + r.IntN(5) {
				os = append(os, randObs(r, tt+r.Int64N(w)))
			}
		}
		if len(os) == 0 {
			os = append(os, randObs(r, start))
		}
		out = append(out, &memSeries{
			meta:    series.Meta{Labels: lbls("m_"+f.String(), "i", fmt.Sprint(i), "parity", fmt.Sprint(i%2)), Kind: series.KindSketch, Format: f},
			buckets: oracle(t, f, os, w),
		})
	}
	for i := range m {
		s := &memSeries{meta: series.Meta{Labels: lbls("float", "i", fmt.Sprint(i), "parity", fmt.Sprint(i%2)), Kind: series.KindFloat}}
		for tt := start; tt < start+span; tt += 1 + r.Int64N(30_000) {
			v := r.NormFloat64()
			switch r.IntN(20) {
			case 0:
				v = math.Float64frombits(value.StaleNaN)
			case 1:
				v = float64(r.IntN(4))
			}
			s.samples = append(s.samples, sample{tt, v})
		}
		out = append(out, s)
	}
	for i := range m {
		k := i % histtest.NumKinds
		step := 10_000 + r.Int64N(50_000)
		out = append(out, &memSeries{
			meta:  series.Meta{Labels: lbls("hist", "i", fmt.Sprint(i), "parity", fmt.Sprint(i%2)), Kind: series.KindHistogram},
			hists: histtest.Series(r, k, int(span/step), start, step),
		})
	}
	return out
}

// filterRange is the oracle for a time-range query over collected series.
func filterRange(in []*memSeries, mint, maxt int64) []*memSeries {
	var out []*memSeries
	for _, s := range in {
		c := &memSeries{meta: s.meta}
		for _, b := range s.buckets {
			if b.t >= mint && b.t <= maxt {
				c.buckets = append(c.buckets, b)
			}
		}
		for _, x := range s.samples {
			if x.t >= mint && x.t <= maxt {
				c.samples = append(c.samples, x)
			}
		}
		for _, x := range s.hists {
			if x.T >= mint && x.T <= maxt {
				c.hists = append(c.hists, x)
			}
		}
		if len(c.buckets)+len(c.samples)+len(c.hists) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// withWidth returns copies of the series with every bucket's width set.
func withWidth(in []*memSeries, w int64) []*memSeries {
	out := make([]*memSeries, len(in))
	for i, s := range in {
		c := *s
		c.buckets = slices.Clone(s.buckets)
		for j := range c.buckets {
			c.buckets[j].w = w
		}
		out[i] = &c
	}
	return out
}

func writeBlock(t testing.TB, dir string, res int64, ss []*memSeries) *Block {
	t.Helper()
	m, err := Write(dir, res, newMemSet(slices.Clone(ss)))
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	b, err := Open(dirOf(dir, m), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func dirOf(parent string, m Meta) string { return parent + "/" + m.ID }

func queryAll(t testing.TB, b *Block, mint, maxt int64, ms ...*labels.Matcher) []*memSeries {
	t.Helper()
	q, err := b.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	return dropEmpty(collect(t, q.Select(context.Background(), series.Hints{Mint: mint, Maxt: maxt}, ms...)))
}

// dropEmpty removes series without buckets or samples: a block Select may
// return series whose chunks straddle the range with nothing inside it.
func dropEmpty(in []*memSeries) []*memSeries {
	return slices.DeleteFunc(in, func(s *memSeries) bool { return len(s.buckets)+len(s.samples)+len(s.hists) == 0 })
}

func sortSeries(s []*memSeries) []*memSeries {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b *memSeries) int { return labels.Compare(a.meta.Labels, b.meta.Labels) })
	return s
}

func hintsAll(b *Block) series.Hints { return series.Hints{Mint: b.Meta().MinT, Maxt: b.Meta().MaxT} }
