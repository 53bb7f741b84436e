package block

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/sketch"
	"evalstore/tsdb/index"
	"evalstore/tsdb/series"
)

// Querier returns a series.Querier over this block's data with times in
// [mint, maxt]. The block stays open until the querier is closed.
//
// A sketch bucket is selected when its start lies in the range (the
// intersection of [mint, maxt] and the Select hints); it is reported with
// the block's resolution as its width. Select decides which series to
// return from the chunk time ranges in the index, without reading chunks,
// so a series whose chunks straddle the range edges but hold nothing inside
// it is returned with empty iterators. LabelNames and LabelValues are
// exact: they look into such edge chunks. Hints.Resolution is ignored: a block
// holds one resolution, and choosing blocks by resolution is the caller's
// job. Histogram series yield chunkenc.ValFloatHistogram samples, with the
// counter reset hints sampleIter describes.
func (b *Block) Querier(mint, maxt int64) (series.Querier, error) {
	if err := b.acquire(); err != nil {
		return nil, err
	}
	return &querier{b: b, mint: mint, maxt: maxt}, nil
}

type querier struct {
	b          *Block
	mint, maxt int64
	once       sync.Once
	closed     atomic.Bool
}

func (q *querier) Close() error {
	q.once.Do(func() {
		q.closed.Store(true)
		q.b.done()
	})
	return nil
}

func (q *querier) errClosed() error { return fmt.Errorf("%w: querier of %s", ErrClosed, q.b.dir) }

func (q *querier) Select(ctx context.Context, hints series.Hints, ms ...*labels.Matcher) series.SeriesSet {
	if q.closed.Load() {
		return &blockSeriesSet{err: q.errClosed()}
	}
	mint, maxt := max(q.mint, hints.Mint), min(q.maxt, hints.Maxt)
	if mint > maxt || mint > q.b.meta.MaxT || maxt < q.b.meta.MinT {
		return &blockSeriesSet{}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	p, err := q.b.index.Select(ms...)
	if err != nil {
		return &blockSeriesSet{err: err}
	}
	return &blockSeriesSet{ctx: ctx, b: q.b, p: p, mint: mint, maxt: maxt}
}

// covered reports whether the block lies inside the querier's range, so
// metadata can come straight from the index.
func (q *querier) covered() bool { return q.mint <= q.b.meta.MinT && q.b.meta.MaxT <= q.maxt }

func (q *querier) LabelNames(ctx context.Context, ms ...*labels.Matcher) ([]string, error) {
	if q.closed.Load() {
		return nil, q.errClosed()
	}
	if q.covered() {
		return q.b.index.LabelNames(ms...)
	}
	names := map[string]struct{}{}
	err := q.eachLabels(ctx, ms, func(ls labels.Labels) {
		ls.Range(func(l labels.Label) { names[l.Name] = struct{}{} })
	})
	return sortedKeys(names), err
}

func (q *querier) LabelValues(ctx context.Context, name string, ms ...*labels.Matcher) ([]string, error) {
	if q.closed.Load() {
		return nil, q.errClosed()
	}
	if q.covered() {
		return q.b.index.LabelValues(name, ms...)
	}
	vals := map[string]struct{}{}
	err := q.eachLabels(ctx, ms, func(ls labels.Labels) {
		if v := ls.Get(name); v != "" {
			vals[v] = struct{}{}
		}
	})
	return sortedKeys(vals), err
}

// eachLabels calls fn with the labels of each matching series that has
// data in the querier's range. Series with a chunk wholly inside the range
// are decided from the index; the others by reading their edge chunks.
func (q *querier) eachLabels(ctx context.Context, ms []*labels.Matcher, fn func(labels.Labels)) error {
	ss := q.Select(ctx, series.Hints{Mint: q.mint, Maxt: q.maxt}, ms...)
	var (
		bit series.BucketIterator
		sit chunkenc.Iterator
	)
	for ss.Next() {
		s := ss.At().(*blockSeries)
		has := false
		for _, c := range s.chunks {
			if c.mint >= q.mint && c.maxt <= q.maxt {
				has = true
				break
			}
		}
		if !has && s.meta.Kind == series.KindSketch {
			bit = s.Buckets(bit)
			has = bit.Next()
			if err := bit.Err(); err != nil {
				return err
			}
		} else if !has {
			sit = s.Samples(sit)
			has = sit.Next() != chunkenc.ValNone
			if err := sit.Err(); err != nil {
				return err
			}
		}
		if has {
			fn(s.meta.Labels)
		}
	}
	return ss.Err()
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// blockSeriesSet walks the postings of a Select, keeping series with a
// chunk overlapping [mint, maxt].
type blockSeriesSet struct {
	ctx        context.Context
	b          *Block
	p          index.Postings
	mint, maxt int64
	words      []uint64
	chunks     []chunkMeta
	cur        blockSeries
	err        error
	n          int
}

func (s *blockSeriesSet) Next() bool {
	if s.err != nil || s.p == nil {
		return false
	}
	for s.p.Next() {
		if s.n++; s.n%128 == 1 {
			if err := s.ctx.Err(); err != nil {
				s.err = err
				return false
			}
		}
		lset, words, err := s.b.index.Series(s.p.At(), s.words)
		s.words = words
		if err != nil {
			s.err = &CorruptError{Dir: s.b.dir, File: indexFilename, Offset: -1, Err: err}
			return false
		}
		kind, f, chunks, err := s.b.seriesChunks(words, s.chunks)
		s.chunks = chunks
		if err != nil {
			s.err = err
			return false
		}
		lo := 0
		for lo < len(chunks) && chunks[lo].maxt < s.mint {
			lo++
		}
		hi := lo
		for hi < len(chunks) && chunks[hi].mint <= s.maxt {
			hi++
		}
		if lo == hi {
			continue
		}
		s.cur = blockSeries{b: s.b, meta: series.Meta{Labels: lset, Kind: kind, Format: f},
			chunks: chunks[lo:hi], mint: s.mint, maxt: s.maxt}
		return true
	}
	if err := s.p.Err(); err != nil {
		s.err = &CorruptError{Dir: s.b.dir, File: indexFilename, Offset: -1, Err: err}
	}
	return false
}

func (s *blockSeriesSet) At() series.Series { return &s.cur }
func (s *blockSeriesSet) Err() error        { return s.err }

type blockSeries struct {
	b          *Block
	meta       series.Meta
	chunks     []chunkMeta
	mint, maxt int64
}

func (s *blockSeries) Meta() series.Meta { return s.meta }

func (s *blockSeries) Buckets(reuse series.BucketIterator) series.BucketIterator {
	it, ok := reuse.(*bucketIter)
	if !ok {
		it = &bucketIter{}
	}
	it.reset(s)
	return it
}

func (s *blockSeries) Samples(reuse chunkenc.Iterator) chunkenc.Iterator {
	if !s.meta.Kind.Points() {
		return chunkenc.NewNopIterator()
	}
	it, ok := reuse.(*sampleIter)
	if !ok {
		it = &sampleIter{}
	}
	it.seekMethod.s = it
	it.reset(s)
	return it
}

// bucketIter iterates the buckets of a block sketch series.
type bucketIter struct {
	b          *Block
	format     sketch.Format
	chunks     []chunkMeta
	mint, maxt int64
	width      int64
	cur        sketchCursor
	t          int64
	state      []byte
	buf        []byte
	err        error
	done       bool
}

func (it *bucketIter) reset(s *blockSeries) {
	*it = bucketIter{b: s.b, format: s.meta.Format, chunks: s.chunks, mint: s.mint, maxt: s.maxt,
		width: s.b.meta.Resolution, buf: it.buf}
	if s.meta.Kind != series.KindSketch {
		it.done = true
	}
}

func (it *bucketIter) Next() bool {
	if it.done {
		return false
	}
	for {
		t, st, ok := it.cur.next()
		if !ok {
			if len(it.chunks) == 0 {
				it.done = true
				return false
			}
			c := it.chunks[0]
			it.chunks = it.chunks[1:]
			h, raw, err := it.b.loadChunk(c, series.KindSketch, it.format, it.buf)
			if err == nil {
				if h.flags&flagZstd != 0 {
					it.buf = raw[:0]
				}
				err = it.cur.init(&h, raw)
				if err != nil {
					err = &CorruptError{Dir: it.b.dir, File: segmentName(int(c.ref >> 32)), Offset: int64(c.ref & 0xffffffff), Err: err}
				}
			}
			if err != nil {
				it.err, it.done = err, true
				return false
			}
			continue
		}
		if t < it.mint {
			continue
		}
		if t > it.maxt {
			it.done = true
			return false
		}
		it.t, it.state = t, st
		return true
	}
}

func (it *bucketIter) At() (int64, int64, []byte) { return it.t, it.width, it.state }
func (it *bucketIter) Err() error                 { return it.err }

// sampleIter iterates the samples of a block float or histogram series.
//
// A histogram's counter reset hint is the one Prometheus's chunk iterator
// gives (GaugeType in gauge chunks, NotCounterReset after a chunk's first
// sample, UnknownCounterReset for a chunk's first sample) except that the
// first sample of a chunk whose header says CounterReset reads as
// CounterReset: the chunks of one series in one block are consecutive in
// time, so the header (a reset the writer was told of or detected against
// the previous sample) holds, and keeping it lets a rewrite by compaction
// keep a reset the caller hinted but the counts do not show.
type sampleIter struct {
	seekMethod[int64]
	b          *Block
	kind       series.Kind
	chunks     []chunkMeta
	mint, maxt int64
	inner      chunkenc.Iterator // the current chunk's iterator; nil before the first
	spare      chunkenc.Iterator // kept for reuse across series
	buf        []byte
	crh        chunkenc.CounterResetHeader // the current histogram chunk's
	nth        int                         // samples read from the current chunk
	t          int64
	v          float64
	vt         chunkenc.ValueType // of the current sample; ValNone if none
	err        error
	done       bool
}

func (it *sampleIter) reset(s *blockSeries) {
	spare := it.spare
	if it.inner != nil {
		spare = it.inner
	}
	*it = sampleIter{seekMethod: it.seekMethod, b: s.b, kind: s.meta.Kind, chunks: s.chunks, mint: s.mint, maxt: s.maxt, spare: spare, buf: it.buf}
}

func (it *sampleIter) Next() chunkenc.ValueType {
	if it.done {
		return chunkenc.ValNone
	}
	for {
		if it.inner != nil {
			if vt := it.inner.Next(); vt != chunkenc.ValNone {
				it.nth++
				t := it.inner.AtT()
				if t < it.mint {
					continue
				}
				if t > it.maxt {
					break
				}
				it.t, it.vt, it.v = t, vt, 0
				if vt == chunkenc.ValFloat {
					_, it.v = it.inner.At()
				}
				return vt
			}
			if err := it.inner.Err(); err != nil {
				it.err = err
				break
			}
		}
		if len(it.chunks) == 0 {
			break
		}
		c := it.chunks[0]
		it.chunks = it.chunks[1:]
		h, raw, err := it.b.loadChunk(c, it.kind, 0, it.buf)
		var chk chunkenc.Chunk
		if err == nil {
			if h.flags&flagZstd != 0 {
				it.buf = raw[:0]
			}
			chk, err = sampleChunk(&h, raw, false)
		}
		if err != nil {
			if _, ok := err.(*CorruptError); !ok {
				err = &CorruptError{Dir: it.b.dir, File: segmentName(int(c.ref >> 32)), Offset: int64(c.ref & 0xffffffff), Err: err}
			}
			it.err = err
			break
		}
		if hc, ok := chk.(*chunkenc.FloatHistogramChunk); ok {
			it.crh = hc.GetCounterResetHeader()
		}
		if it.inner == nil {
			it.inner, it.spare = it.spare, nil
		}
		it.inner, it.nth = chk.Iterator(it.inner), 0
	}
	it.done, it.vt = true, chunkenc.ValNone
	return chunkenc.ValNone
}

func (it *sampleIter) seek(t int64) chunkenc.ValueType {
	if it.vt != chunkenc.ValNone && it.t >= t {
		return it.vt
	}
	for {
		if vt := it.Next(); vt == chunkenc.ValNone || it.t >= t {
			return vt
		}
	}
}

func (it *sampleIter) At() (int64, float64) { return it.t, it.v }
func (it *sampleIter) AtT() int64           { return it.t }
func (it *sampleIter) AtST() int64          { return 0 }
func (it *sampleIter) Err() error           { return it.err }

func (it *sampleIter) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return it.t, nil
}

func (it *sampleIter) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	if it.vt != chunkenc.ValFloatHistogram {
		return it.t, nil
	}
	t, fh := it.inner.AtFloatHistogram(fh)
	ChunkStartHint(fh, it.nth, it.crh)
	return t, fh
}

// ChunkStartHint gives fh, the nth sample (from 1) read from a float
// histogram chunk whose counter reset header is crh, the hint the chunk
// readers of this package and of the tsdb head report: a chunk's first
// sample reads CounterReset when the header says so, where Prometheus's
// chunk iterator says UnknownCounterReset (see sampleIter).
func ChunkStartHint(fh *histogram.FloatHistogram, nth int, crh chunkenc.CounterResetHeader) {
	if nth == 1 && crh == chunkenc.CounterReset {
		fh.CounterResetHint = histogram.CounterReset
	}
}
