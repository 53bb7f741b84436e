package query

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// MemStorage is an in-memory Queryable of float, native histogram and
// sketch series, for
// tests, examples and benchmarks. Add data before querying; it is safe for
// concurrent queries once loaded.
type MemStorage struct {
	mu     sync.RWMutex
	series map[uint64]*memSeries
	sorted []*memSeries
}

// MemBucket is one bucket of a sketch series.
type MemBucket struct {
	T, Width int64
	State    []byte
}

type memSeries struct {
	meta    series.Meta
	chunk   *chunkenc.XORChunk
	app     chunkenc.Appender
	buckets []MemBucket
	hists   []HPoint
}

// NewMemStorage returns an empty store.
func NewMemStorage() *MemStorage { return &MemStorage{series: map[uint64]*memSeries{}} }

func (m *MemStorage) get(l labels.Labels, kind series.Kind, f sketch.Format) *memSeries {
	h := l.Hash()
	s, ok := m.series[h]
	if !ok {
		s = &memSeries{meta: series.Meta{Labels: l, Kind: kind, Format: f}}
		m.series[h] = s
		m.sorted = nil
	}
	return s
}

// getKind is get for a float or histogram series, refusing a series of
// another kind (a series keeps one kind, as in storage).
func (m *MemStorage) getKind(l labels.Labels, kind series.Kind) (*memSeries, error) {
	s := m.get(l, kind, 0)
	if s.meta.Kind != kind {
		return nil, fmt.Errorf("memstore: series %s holds %s samples, not %s", l, s.meta.Kind, kind)
	}
	return s, nil
}

// AddFloat appends float samples (in time order, at most 65,535 per
// series: one XOR chunk, as storage encodes them) to the series l.
func (m *MemStorage) AddFloat(l labels.Labels, pts ...FPoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.getKind(l, series.KindFloat)
	if err != nil {
		return err
	}
	if s.chunk == nil {
		s.chunk = chunkenc.NewXORChunk()
		app, err := s.chunk.Appender()
		if err != nil {
			return err
		}
		s.app = app
	}
	if s.chunk.NumSamples()+len(pts) > math.MaxUint16 {
		return fmt.Errorf("memstore: more than %d samples in series %s", math.MaxUint16, l)
	}
	for _, p := range pts {
		s.app.Append(0, p.T, p.F)
	}
	return nil
}

// AddHistogram appends native histogram samples (in time order; a
// staleness marker has Sum = value.StaleNaN) to the histogram series l. The
// histograms are copied; their counter reset hints are kept as given.
func (m *MemStorage) AddHistogram(l labels.Labels, pts ...HPoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.getKind(l, series.KindHistogram)
	if err != nil {
		return err
	}
	for _, p := range pts {
		if n := len(s.hists); n > 0 && p.T <= s.hists[n-1].T {
			return fmt.Errorf("memstore: histogram at %d not after %d in series %s", p.T, s.hists[n-1].T, l)
		}
		s.hists = append(s.hists, HPoint{T: p.T, H: p.H.Copy()})
	}
	return nil
}

// AddBuckets appends buckets (in time order) to the sketch series l.
func (m *MemStorage) AddBuckets(l labels.Labels, f sketch.Format, bs ...MemBucket) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.get(l, series.KindSketch, f)
	s.buckets = append(s.buckets, bs...)
}

// Querier implements Queryable.
func (m *MemStorage) Querier(mint, maxt int64) (series.Querier, error) {
	m.mu.Lock()
	if m.sorted == nil {
		m.sorted = make([]*memSeries, 0, len(m.series))
		for _, s := range m.series {
			m.sorted = append(m.sorted, s)
		}
		slices.SortFunc(m.sorted, func(a, b *memSeries) int { return labels.Compare(a.meta.Labels, b.meta.Labels) })
	}
	all := m.sorted
	m.mu.Unlock()
	return &memQuerier{all: all, mint: mint, maxt: maxt}, nil
}

type memQuerier struct {
	all        []*memSeries
	mint, maxt int64
}

func matches(l labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(l.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (q *memQuerier) Select(ctx context.Context, h series.Hints, ms ...*labels.Matcher) series.SeriesSet {
	var out []series.Series
	for _, s := range q.all {
		if matches(s.meta.Labels, ms) {
			out = append(out, &memSeriesView{s: s, mint: max(h.Mint, q.mint), maxt: min(h.Maxt, q.maxt)})
		}
	}
	return &memSet{ctx: ctx, s: out, i: -1}
}

func (q *memQuerier) LabelNames(_ context.Context, ms ...*labels.Matcher) ([]string, error) {
	set := map[string]struct{}{}
	for _, s := range q.all {
		if matches(s.meta.Labels, ms) {
			s.meta.Labels.Range(func(l labels.Label) { set[l.Name] = struct{}{} })
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

func (q *memQuerier) LabelValues(_ context.Context, name string, ms ...*labels.Matcher) ([]string, error) {
	set := map[string]struct{}{}
	for _, s := range q.all {
		if v := s.meta.Labels.Get(name); v != "" && matches(s.meta.Labels, ms) {
			set[v] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil
}

func (q *memQuerier) Close() error { return nil }

type memSet struct {
	ctx context.Context
	s   []series.Series
	i   int
	err error
}

func (m *memSet) Next() bool {
	if m.err = m.ctx.Err(); m.err != nil {
		return false
	}
	m.i++
	return m.i < len(m.s)
}
func (m *memSet) At() series.Series { return m.s[m.i] }
func (m *memSet) Err() error        { return m.err }

type memSeriesView struct {
	s          *memSeries
	mint, maxt int64
}

func (v *memSeriesView) Meta() series.Meta { return v.s.meta }

func (v *memSeriesView) Samples(reuse chunkenc.Iterator) chunkenc.Iterator {
	if v.s.meta.Kind == series.KindHistogram {
		// Clipped to the hints as tsdb clips, so that an engine reading
		// too narrow a range fails here too.
		pts := v.s.hists
		lo, _ := slices.BinarySearchFunc(pts, v.mint, func(p HPoint, t int64) int { return cmpInt(p.T, t) })
		hi, _ := slices.BinarySearchFunc(pts, v.maxt+1, func(p HPoint, t int64) int { return cmpInt(p.T, t) })
		return newHistIter(pts[lo:max(lo, hi)], reuse)
	}
	if v.s.chunk == nil {
		return chunkenc.NewNopIterator()
	}
	return v.s.chunk.Iterator(reuse)
}

func (v *memSeriesView) Buckets(reuse series.BucketIterator) series.BucketIterator {
	it, ok := reuse.(*bucketIter)
	if !ok {
		it = &bucketIter{}
	}
	// Buckets are appended in time order: the overlapping run is a slice.
	bs := v.s.buckets
	lo, _ := slices.BinarySearchFunc(bs, v.mint, func(b MemBucket, t int64) int { return cmpInt(b.T+b.Width-1, t) })
	hi, _ := slices.BinarySearchFunc(bs, v.maxt+1, func(b MemBucket, t int64) int { return cmpInt(b.T, t) })
	*it = bucketIter{bs: bs[lo:max(lo, hi)], i: -1}
	return it
}

type bucketIter struct {
	bs []MemBucket
	i  int
}

func (it *bucketIter) Next() bool { it.i++; return it.i < len(it.bs) }
func (it *bucketIter) At() (int64, int64, []byte) {
	b := it.bs[it.i]
	return b.T, b.Width, b.State
}
func (it *bucketIter) Err() error { return nil }

// histIter is a chunkenc.Iterator over histogram points held in memory.
type histIter struct {
	seekVia[int64]
	pts []HPoint
	i   int
}

// seekVia gives an iterator chunkenc.Iterator's Seek(int64) method. It is
// generic only so that go vet's stdmethods check (which takes any Seek of
// an int64 for a malformed io.Seeker) does not apply, as in tsdb.
type seekVia[T ~int64] struct {
	it interface {
		seek(int64) chunkenc.ValueType
	}
}

// Seek advances to the first sample at or after t (never backwards).
func (s seekVia[T]) Seek(t T) chunkenc.ValueType { return s.it.seek(int64(t)) }

func newHistIter(pts []HPoint, reuse chunkenc.Iterator) *histIter {
	it, ok := reuse.(*histIter)
	if !ok {
		it = &histIter{}
	}
	*it = histIter{pts: pts, i: -1}
	it.seekVia = seekVia[int64]{it}
	return it
}

func (it *histIter) Next() chunkenc.ValueType {
	if it.i < len(it.pts) {
		it.i++
	}
	if it.i >= len(it.pts) {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloatHistogram
}

func (it *histIter) seek(t int64) chunkenc.ValueType {
	it.i = max(it.i, 0)
	for it.i < len(it.pts) && it.pts[it.i].T < t {
		it.i++
	}
	if it.i >= len(it.pts) {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloatHistogram
}

// At has no float to return: the iterator yields histograms only.
func (it *histIter) At() (int64, float64) { return it.AtT(), math.NaN() }

// AtHistogram has no integer histogram to return: the points are float
// histograms (chunkenc.ValFloatHistogram).
func (it *histIter) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return it.AtT(), nil
}

// AtFloatHistogram copies the current histogram into fh (a new one when fh
// is nil), as chunk iterators do.
func (it *histIter) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	p := it.pts[it.i]
	if fh == nil {
		return p.T, p.H.Copy()
	}
	p.H.CopyTo(fh)
	return p.T, fh
}

func (it *histIter) AtT() int64 {
	if it.i < 0 || it.i >= len(it.pts) {
		return math.MinInt64
	}
	return it.pts[it.i].T
}

func (it *histIter) AtST() int64 { return 0 }
func (it *histIter) Err() error  { return nil }
