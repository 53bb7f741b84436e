package tsdb

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/tsdb/block"
	"evalstore/tsdb/index"
	"evalstore/tsdb/plan"
	"evalstore/tsdb/series"
)

// Querier returns a snapshot reader over the head and every block that
// overlaps [mint, maxt], with mint clipped at now − Retention (at the start
// of the bucket holding it). Data committed after the call may or may not
// be visible; data is never seen twice nor missed because of a concurrent
// flush or compaction. Select hints are intersected with the range; zero
// hints (Mint == Maxt == 0) mean the whole range. A sketch bucket is
// selected when its start lies in the range.
//
// Select reads each time range of a partition from exactly one version
// (plan.Read): the coarsest rollup whose resolution is ≤ Hints.Resolution
// and whose buckets lie wholly inside the range, finer versions at the
// edges; Hints.Resolution = 0 reads the finest stored version. The head and
// flush blocks are always read in full.
func (db *DB) Querier(mint, maxt int64) (series.Querier, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	cut := bucketStart(db.opts.Now().Add(-db.opts.Retention).UnixMilli(), db.bucketMs)
	mint = max(mint, cut)
	q := &dbQuerier{db: db, mint: mint, maxt: maxt}
	db.stateMu.RLock()
	defer db.stateMu.RUnlock()
	overlaps := func(b *liveBlock) bool { return b.m.maxt >= mint && b.m.mint <= maxt }
	bases := map[string]bool{}
	for _, b := range db.blocks {
		if b.rollupOf == "" && overlaps(b) {
			bases[b.m.id] = true
		}
	}
	for _, b := range db.blocks {
		// A rollup's first bucket starts before its base's first data, so
		// it may overlap a range its base does not: the base has no data
		// there, nor has the rollup (read alone, plan.Read would count
		// its whole first bucket).
		if !overlaps(b) || (b.rollupOf != "" && !bases[b.rollupOf]) {
			continue
		}
		bq, err := b.h.querier(mint, maxt)
		if err != nil {
			_ = q.Close()
			return nil, err
		}
		q.blocks = append(q.blocks, bq)
		q.metas = append(q.metas, b.plan())
	}
	if db.frozen != nil {
		q.heads = append(q.heads, db.frozen)
	}
	q.heads = append(q.heads, db.active)
	return q, nil
}

type dbQuerier struct {
	db         *DB
	mint, maxt int64
	heads      []*head // oldest first
	blocks     []series.Querier
	metas      []plan.Block // of blocks, same order
}

func (q *dbQuerier) hints(h series.Hints) series.Hints {
	if h.Mint == 0 && h.Maxt == 0 {
		h.Mint, h.Maxt = q.mint, q.maxt
	}
	h.Mint, h.Maxt = max(h.Mint, q.mint), min(h.Maxt, q.maxt)
	return h
}

func (q *dbQuerier) Select(ctx context.Context, hints series.Hints, ms ...*labels.Matcher) series.SeriesSet {
	hints = q.hints(hints)
	if hints.Mint > hints.Maxt {
		return emptySeriesSet{}
	}
	p, err := q.db.index.Select(ms...)
	if err != nil {
		return errSeriesSet{err}
	}
	refs, err := index.ExpandPostings(p)
	if err != nil {
		return errSeriesSet{err}
	}
	if refs == nil {
		// nil tells newHeadSeriesSet "every series"; no match means none.
		refs = []index.SeriesRef{}
	}
	res := hints.Resolution
	if res <= 0 {
		res = 1 // finest: no rollup is that fine, so every base reads itself
	}
	parts := plan.Read(q.metas, hints.Mint, hints.Maxt, res)
	// Newest source first: block.MergeSeriesSets keeps the first input's
	// float sample when timestamps collide (the exactly-once layout has
	// no such collisions between blocks; the head may repeat a sample a
	// block has after a replay).
	sets := make([]series.SeriesSet, 0, len(parts)+len(q.heads))
	for i := len(q.heads) - 1; i >= 0; i-- {
		sets = append(sets, newHeadSeriesSet([]*head{q.heads[i]}, refs, hints, q.db.bucketMs))
	}
	idx := make(map[string]int, len(q.metas))
	for i, m := range q.metas {
		idx[m.ID] = i
	}
	for i := len(parts) - 1; i >= 0; i-- {
		pt := parts[i]
		h := series.Hints{Mint: pt.MinT, Maxt: pt.MaxT, Resolution: hints.Resolution}
		sets = append(sets, q.blocks[idx[pt.BlockID]].Select(ctx, h, ms...))
	}
	if len(sets) == 1 {
		return sets[0]
	}
	return block.MergeSeriesSets(sets...)
}

func (q *dbQuerier) LabelNames(ctx context.Context, ms ...*labels.Matcher) ([]string, error) {
	names, err := q.db.index.LabelNames(q.mint, q.maxt, ms...)
	if err != nil {
		return nil, err
	}
	for _, bq := range q.blocks {
		more, err := bq.LabelNames(ctx, ms...)
		if err != nil {
			return nil, err
		}
		names = mergeStrings(names, more)
	}
	return names, nil
}

func (q *dbQuerier) LabelValues(ctx context.Context, name string, ms ...*labels.Matcher) ([]string, error) {
	vals, err := q.db.index.LabelValues(name, q.mint, q.maxt, ms...)
	if err != nil {
		return nil, err
	}
	for _, bq := range q.blocks {
		more, err := bq.LabelValues(ctx, name, ms...)
		if err != nil {
			return nil, err
		}
		vals = mergeStrings(vals, more)
	}
	return vals, nil
}

func (q *dbQuerier) Close() error {
	var errs []error
	for _, bq := range q.blocks {
		errs = append(errs, bq.Close())
	}
	q.blocks = nil
	return errors.Join(errs...)
}

// mergeStrings merges two sorted, deduplicated lists.
func mergeStrings(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	out := make([]string, 0, len(a)+len(b))
	out = append(append(out, a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

type emptySeriesSet struct{}

func (emptySeriesSet) Next() bool               { return false }
func (emptySeriesSet) At() series.Series        { return nil }
func (emptySeriesSet) Err() error               { return nil }
func (e errSeriesSet) Next() bool               { return false }
func (e errSeriesSet) At() series.Series        { return nil }
func (e errSeriesSet) Err() error               { return e.err }
func (emptyBuckets) Next() bool                 { return false }
func (emptyBuckets) At() (int64, int64, []byte) { return 0, 0, nil }
func (emptyBuckets) Err() error                 { return nil }

type errSeriesSet struct{ err error }
type emptyBuckets struct{}

// headSeriesSet iterates one or more heads' series (sorted by labels)
// restricted to hints.
type headSeriesSet struct {
	list  []*headSeries
	width int64
	hints series.Hints
	i     int
	cur   headSeriesView
}

// newHeadSeriesSet returns the series of heads with data in hints' range:
// those in refs, or all when refs is nil. With several heads a series'
// data from each is listed separately (used for one head at a time).
func newHeadSeriesSet(heads []*head, refs []index.SeriesRef, hints series.Hints, width int64) *headSeriesSet {
	s := &headSeriesSet{hints: hints, i: -1, width: width}
	for _, h := range heads {
		if h.numSeries.Load() == 0 || h.maxt.Load() < hints.Mint || h.mint.Load() > hints.Maxt {
			continue
		}
		if refs == nil {
			for _, hs := range h.allSeries() {
				if hs.hasDataIn(hints.Mint, hints.Maxt) {
					s.list = append(s.list, hs)
				}
			}
			continue
		}
		for _, ref := range refs {
			if hs := h.get(ref); hs != nil && hs.hasDataIn(hints.Mint, hints.Maxt) {
				s.list = append(s.list, hs)
			}
		}
	}
	slices.SortStableFunc(s.list, func(a, b *headSeries) int { return labels.Compare(a.ms.lset, b.ms.lset) })
	return s
}

func (hs *headSeries) hasDataIn(mint, maxt int64) bool {
	hs.ms.mu.Lock()
	defer hs.ms.mu.Unlock()
	if hs.ms.kind == series.KindSketch {
		i, _ := slices.BinarySearchFunc(hs.buckets, mint, func(b bucket, t int64) int { return cmp.Compare(b.t, t) })
		return i < len(hs.buckets) && hs.buckets[i].t <= maxt
	}
	for _, c := range hs.chunks {
		if c.maxt >= mint && c.mint <= maxt {
			return true
		}
	}
	return hs.curSamples > 0 && hs.curMaxt >= mint && hs.curMint <= maxt
}

func (s *headSeriesSet) Next() bool {
	s.i++
	if s.i >= len(s.list) {
		return false
	}
	s.cur = headSeriesView{hs: s.list[s.i], hints: s.hints, width: s.width}
	return true
}

func (s *headSeriesSet) At() series.Series { return &s.cur }
func (s *headSeriesSet) Err() error        { return nil }

// headSeriesView is one head series restricted to a time range.
type headSeriesView struct {
	hs    *headSeries
	hints series.Hints
	width int64
}

func (v *headSeriesView) Meta() series.Meta {
	return series.Meta{Labels: v.hs.ms.lset, Kind: v.hs.ms.kind, Format: v.hs.ms.format}
}

// Buckets encodes the series' buckets in range under the series lock (the
// head's states are mutable), once per call.
func (v *headSeriesView) Buckets(reuse series.BucketIterator) series.BucketIterator {
	if v.hs.ms.kind != series.KindSketch {
		return emptyBuckets{}
	}
	it, ok := reuse.(*headBucketIter)
	if !ok {
		it = &headBucketIter{}
	}
	it.buf, it.ents, it.i = it.buf[:0], it.ents[:0], -1
	hs := v.hs
	hs.ms.mu.Lock()
	i, _ := slices.BinarySearchFunc(hs.buckets, v.hints.Mint, func(b bucket, t int64) int { return cmp.Compare(b.t, t) })
	for ; i < len(hs.buckets) && hs.buckets[i].t <= v.hints.Maxt; i++ {
		off := len(it.buf)
		it.buf = hs.buckets[i].s.AppendBinary(it.buf)
		it.ents = append(it.ents, bucketEnt{t: hs.buckets[i].t, off: off, end: len(it.buf)})
	}
	hs.ms.mu.Unlock()
	it.width = v.width
	return it
}

type bucketEnt struct {
	t        int64
	off, end int
}

type headBucketIter struct {
	buf   []byte
	ents  []bucketEnt
	i     int
	width int64
}

func (it *headBucketIter) Next() bool {
	if it.i+1 >= len(it.ents) {
		it.i = len(it.ents)
		return false
	}
	it.i++
	return true
}

func (it *headBucketIter) At() (int64, int64, []byte) {
	e := it.ents[it.i]
	return e.t, it.width, it.buf[e.off:e.end]
}

func (it *headBucketIter) Err() error { return nil }

func (v *headSeriesView) Samples(reuse chunkenc.Iterator) chunkenc.Iterator {
	if !v.hs.ms.kind.Points() {
		return chunkenc.NewNopIterator()
	}
	it, ok := reuse.(*chunksIter)
	if !ok {
		it = &chunksIter{}
		it.seekVia.it = it
	}
	v.hs.ms.mu.Lock()
	it.chunks = v.hs.floatChunksIn(it.chunks[:0], v.hints.Mint, v.hints.Maxt)
	v.hs.ms.mu.Unlock()
	it.mint, it.maxt, it.i, it.cur, it.vt = v.hints.Mint, v.hints.Maxt, -1, nil, chunkenc.ValNone
	return it
}

// chunksIter iterates the samples of consecutive XOR or float histogram
// chunks within [mint, maxt]. Histogram counter reset hints are
// block.Querier's: Prometheus's chunk iterator's, except that a chunk's
// first sample reads CounterReset when the chunk header says so (a head's
// chunks of one series are consecutive, so the header holds).
type chunksIter struct {
	seekVia[int64]
	chunks     []chunkenc.Chunk
	i          int
	cur        chunkenc.Iterator
	spare      chunkenc.Iterator
	crh        chunkenc.CounterResetHeader // of the current histogram chunk
	nth        int                         // samples read from the current chunk
	mint, maxt int64
	t          int64
	v          float64
	vt         chunkenc.ValueType // of the current sample; ValNone if none
	err        error
}

func (it *chunksIter) Next() chunkenc.ValueType {
	for {
		if it.cur == nil {
			it.i++
			if it.i >= len(it.chunks) {
				it.vt = chunkenc.ValNone
				return chunkenc.ValNone
			}
			c := it.chunks[it.i]
			if hc, ok := c.(*chunkenc.FloatHistogramChunk); ok {
				it.crh = hc.GetCounterResetHeader()
			}
			it.cur, it.nth = c.Iterator(it.spare), 0
			it.spare = it.cur
		}
		vt := it.cur.Next()
		if vt == chunkenc.ValNone {
			if err := it.cur.Err(); err != nil {
				it.err = err
				it.i, it.vt = len(it.chunks), chunkenc.ValNone
				return chunkenc.ValNone
			}
			it.cur = nil
			continue
		}
		it.nth++
		t := it.cur.AtT()
		if t < it.mint {
			continue
		}
		if t > it.maxt {
			it.i, it.cur, it.vt = len(it.chunks), nil, chunkenc.ValNone
			return chunkenc.ValNone
		}
		it.t, it.vt, it.v = t, vt, 0
		if vt == chunkenc.ValFloat {
			_, it.v = it.cur.At()
		}
		return vt
	}
}

func (it *chunksIter) seek(t int64) chunkenc.ValueType {
	if it.vt != chunkenc.ValNone && it.t >= t {
		return it.vt
	}
	for {
		vt := it.Next()
		if vt == chunkenc.ValNone || it.t >= t {
			return vt
		}
	}
}

func (it *chunksIter) At() (int64, float64) { return it.t, it.v }
func (it *chunksIter) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return it.t, nil
}
func (it *chunksIter) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	if it.vt != chunkenc.ValFloatHistogram {
		return it.t, nil
	}
	t, fh := it.cur.AtFloatHistogram(fh)
	block.ChunkStartHint(fh, it.nth, it.crh)
	return t, fh
}
func (it *chunksIter) AtT() int64  { return it.t }
func (it *chunksIter) AtST() int64 { return 0 }
func (it *chunksIter) Err() error  { return it.err }

// seekVia gives an iterator chunkenc.Iterator's Seek(int64) method by
// forwarding to its seek. It is generic only so that go vet's stdmethods
// check, which expects io.Seeker's signature for any method named Seek
// taking an int64, does not apply: instantiated at int64 it is exactly
// what chunkenc.Iterator requires.
type seekVia[T ~int64] struct {
	it interface {
		seek(int64) chunkenc.ValueType
	}
}

func (s seekVia[T]) Seek(t T) chunkenc.ValueType { return s.it.seek(int64(t)) }
