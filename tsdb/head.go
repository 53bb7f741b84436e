package tsdb

import (
	"cmp"
	"math"
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

// samplesPerChunk is where a float or histogram series' head chunk is cut,
// as Prometheus cuts XOR chunks (histogram chunks are also cut wherever
// the histogram appender starts a new one).
const samplesPerChunk = 120

// Memory overhead estimates (bytes) added to sketch MemSize for accounting.
const (
	seriesOverhead = 400 // headSeries, table slot; the registry's share (memSeries, index postings) is in it
	bucketOverhead = 32  // slice element: time + interface
)

// memSeries is a series in the DB-wide registry: identity, kind and format
// (fixed at creation), and the newest float or histogram sample (lastV:
// the float's bits, or the histogram's histogramHash), which orders writes
// across flushes. mu also guards the series' data in the active head.
type memSeries struct {
	ref    index.SeriesRef
	lset   labels.Labels
	kind   series.Kind
	format sketch.Format

	mu      sync.Mutex
	hasLast bool
	lastT   int64
	lastV   uint64
	// loggedEpoch is the WAL epoch in which this series' record was last
	// written; a commit in a later epoch writes it again (see DB.epoch).
	loggedEpoch atomic.Uint64
}

// superseded reports whether a float or histogram sample (t, value bits or
// histogramHash v) is not newer than the series' newest, so applying it is
// skipped, and whether it conflicts with it (older, or another value at
// the same time). The caller holds ms.mu.
func (ms *memSeries) superseded(t int64, v uint64) (skip, conflict bool) {
	if !ms.hasLast || t > ms.lastT {
		return false, false
	}
	return true, t < ms.lastT || v != ms.lastV
}

// registry maps refs to series, sharded to keep lookups contention-free.
type registry struct {
	shards [256]struct {
		mu sync.RWMutex
		m  map[index.SeriesRef]*memSeries
	}
}

func newRegistry() *registry {
	r := &registry{}
	for i := range r.shards {
		r.shards[i].m = make(map[index.SeriesRef]*memSeries)
	}
	return r
}

func (r *registry) get(ref index.SeriesRef) *memSeries {
	s := &r.shards[ref&255]
	s.mu.RLock()
	ms := s.m[ref]
	s.mu.RUnlock()
	return ms
}

// getOrInsert returns the series for ref, inserting ms if there is none.
func (r *registry) getOrInsert(ms *memSeries) *memSeries {
	s := &r.shards[ms.ref&255]
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[ms.ref]; ok {
		return old
	}
	s.m[ms.ref] = ms
	return ms
}

func (r *registry) all() []*memSeries {
	var out []*memSeries
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		for _, ms := range s.m {
			out = append(out, ms)
		}
		s.mu.RUnlock()
	}
	return out
}

// bucket is one sketch bucket of a head series.
type bucket struct {
	t int64
	s sketch.Sketch
}

// floatChunk is a completed (immutable) XOR or float histogram chunk.
type floatChunk struct {
	mint, maxt int64
	c          chunkenc.Chunk
}

// headSeries is one series' data in one head generation. In the active
// head it is guarded by ms.mu; a frozen head is never written again.
type headSeries struct {
	ms      *memSeries
	buckets []bucket // sorted by t

	chunks     []floatChunk
	cur        chunkenc.Chunk // XOR or float histogram
	app        chunkenc.Appender
	curMint    int64
	curMaxt    int64
	curSamples int
}

// head is one generation of the memtable: the data written since the last
// flush swap. Its series are in a lock-free open-addressing table keyed by
// ref, so the per-sample lookup on the write path (and readers' lookups)
// take no lock; creating a series takes mu.
type head struct {
	mu         sync.Mutex // serialises inserts into tab
	tab        atomic.Pointer[seriesTable]
	mint, maxt atomic.Int64
	bytes      atomic.Int64
	buckets    atomic.Int64
	samples    atomic.Int64
	numSeries  atomic.Int64
	// firstWrite is the wall-clock ms of the first write (0: none yet),
	// for FlushAge.
	firstWrite atomic.Int64
}

// seriesTable is a power-of-two open-addressing table (linear probing) of
// a head's series. Slots are only ever filled, never cleared or moved: a
// full-enough table is replaced by a larger copy, and readers still
// holding the old one see every series inserted before the replacement.
type seriesTable struct {
	mask  uint64
	n     int // series in the table; guarded by head.mu
	slots []seriesSlot
}

type seriesSlot struct {
	ref atomic.Uint64 // stored before hs, so a reader seeing hs sees ref
	hs  atomic.Pointer[headSeries]
}

const minSeriesTable = 256

func newSeriesTable(size int) *seriesTable {
	return &seriesTable{mask: uint64(size - 1), slots: make([]seriesSlot, size)}
}

// slot returns the first slot for ref (Fibonacci hashing: refs are dense).
func (t *seriesTable) slot(ref index.SeriesRef) uint64 {
	return (uint64(ref) * 0x9E3779B97F4A7C15) >> 32 & t.mask
}

func (t *seriesTable) get(ref index.SeriesRef) *headSeries {
	for i := t.slot(ref); ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		hs := s.hs.Load()
		if hs == nil {
			return nil
		}
		if s.ref.Load() == uint64(ref) {
			return hs
		}
	}
}

// put inserts hs, known to be absent. The caller holds head.mu.
func (t *seriesTable) put(hs *headSeries) {
	ref := hs.ms.ref
	i := t.slot(ref)
	for t.slots[i].hs.Load() != nil {
		i = (i + 1) & t.mask
	}
	t.slots[i].ref.Store(uint64(ref))
	t.slots[i].hs.Store(hs)
	t.n++
}

func newHead() *head {
	h := &head{}
	h.tab.Store(newSeriesTable(minSeriesTable))
	h.mint.Store(math.MaxInt64)
	h.maxt.Store(math.MinInt64)
	return h
}

func (h *head) get(ref index.SeriesRef) *headSeries {
	return h.tab.Load().get(ref)
}

func (h *head) getOrCreate(ms *memSeries) *headSeries {
	if hs := h.get(ms.ref); hs != nil {
		return hs
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.tab.Load()
	if hs := t.get(ms.ref); hs != nil {
		return hs
	}
	if (t.n+1)*4 > len(t.slots)*3 { // keep the load factor at most 3/4
		g := newSeriesTable(2 * len(t.slots))
		for i := range t.slots {
			if hs := t.slots[i].hs.Load(); hs != nil {
				g.put(hs)
			}
		}
		h.tab.Store(g)
		t = g
	}
	hs := &headSeries{ms: ms}
	t.put(hs)
	h.numSeries.Add(1)
	h.bytes.Add(seriesOverhead)
	return hs
}

func (h *head) empty() bool { return h.numSeries.Load() == 0 }

func (h *head) widen(t int64) {
	for {
		cur := h.mint.Load()
		if t >= cur || h.mint.CompareAndSwap(cur, t) {
			break
		}
	}
	for {
		cur := h.maxt.Load()
		if t <= cur || h.maxt.CompareAndSwap(cur, t) {
			break
		}
	}
}

// allSeries returns the head's series sorted by labels.
func (h *head) allSeries() []*headSeries {
	t := h.tab.Load()
	out := make([]*headSeries, 0, h.numSeries.Load())
	for i := range t.slots {
		if hs := t.slots[i].hs.Load(); hs != nil {
			out = append(out, hs)
		}
	}
	slices.SortFunc(out, func(a, b *headSeries) int { return labels.Compare(a.ms.lset, b.ms.lset) })
	return out
}

// mergeSketch merges delta into the bucket starting at t, creating it if
// needed. The caller holds hs.ms.mu (or owns the head exclusively) and has
// validated delta. It returns the change in memory use and whether a bucket
// was created.
func (hs *headSeries) mergeSketch(t int64, delta []byte) (int64, bool, error) {
	n := len(hs.buckets)
	i := n
	if n > 0 && hs.buckets[n-1].t >= t {
		i, _ = slices.BinarySearchFunc(hs.buckets, t, func(b bucket, t int64) int { return cmp.Compare(b.t, t) })
	}
	if i < n && hs.buckets[i].t == t {
		b := hs.buckets[i].s
		before := b.MemSize()
		if err := b.DecodeAndMerge(delta); err != nil {
			return 0, false, err
		}
		return int64(b.MemSize() - before), false, nil
	}
	s, err := sketch.New(hs.ms.format)
	if err != nil {
		return 0, false, err
	}
	if err := s.UnmarshalBinary(delta); err != nil {
		return 0, false, err
	}
	hs.buckets = slices.Insert(hs.buckets, i, bucket{t: t, s: s})
	return int64(s.MemSize() + bucketOverhead), true, nil
}

// appendFloat appends a sample known to be newer than every sample of the
// series. It returns the change in memory use.
func (hs *headSeries) appendFloat(t int64, v uint64) int64 {
	var grow int64
	if hs.cur == nil || hs.curSamples >= samplesPerChunk {
		grow += hs.cut(chunkenc.NewXORChunk(), nil, t)
	}
	before := cap(hs.cur.Bytes())
	hs.app.Append(0, t, math.Float64frombits(v))
	grow += int64(cap(hs.cur.Bytes()) - before)
	hs.curMaxt = t
	hs.curSamples++
	return grow
}

// cut completes the open chunk, if any, and opens c at t with app, or
// with a new appender if app is nil (then c must be empty). It returns the
// change in memory use.
func (hs *headSeries) cut(c chunkenc.Chunk, app chunkenc.Appender, t int64) int64 {
	if hs.cur != nil {
		hs.cur.Compact()
		hs.chunks = append(hs.chunks, floatChunk{mint: hs.curMint, maxt: hs.curMaxt, c: hs.cur})
	}
	if app == nil {
		app, _ = c.Appender() // an empty chunk's Appender cannot fail
	}
	hs.cur, hs.app = c, app
	hs.curMint, hs.curSamples = t, 0
	return 96 // chunk, appender, floatChunk entry
}

// appendHistogram appends a histogram sample known to be newer than every
// sample of the series, with Prometheus's float histogram appender: it may
// recode the open chunk (new buckets) or start a new one (counter reset,
// schema or layout change, staleness marker after samples or the other way
// round). h is scratch the appender may modify. It returns the change in
// memory use.
func (hs *headSeries) appendHistogram(t int64, h *histogram.FloatHistogram) (int64, error) {
	var grow int64
	var prev chunkenc.Appender
	// A fresh chunk always records an explicit reset in its header (after
	// a gauge chunk Prometheus's appender cuts without it).
	if hs.cur == nil || hs.curSamples >= samplesPerChunk || (h.CounterResetHint == histogram.CounterReset && hs.curSamples > 0) {
		prev = hs.app // lets the appender tell whether the new chunk starts with a reset
		grow += hs.cut(chunkenc.NewFloatHistogramChunk(), nil, t)
	}
	before := cap(hs.cur.Bytes())
	c, recoded, app, err := hs.app.AppendFloatHistogram(prev, 0, t, h, false)
	if err != nil {
		return grow, err
	}
	switch {
	case c != nil && recoded:
		hs.cur, before = c, 0
	case c != nil:
		// The open chunk ends before t; c holds just this sample.
		grow += hs.cut(c, app, t)
		before = 0
	}
	hs.app = app
	grow += int64(cap(hs.cur.Bytes()) - before)
	hs.curMaxt = t
	hs.curSamples++
	return grow, nil
}

// floatChunksIn returns the float or histogram chunks overlapping [mint,
// maxt]; the open chunk is copied, since appends would race with readers.
// Called under hs.ms.mu for the active head.
func (hs *headSeries) floatChunksIn(dst []chunkenc.Chunk, mint, maxt int64) []chunkenc.Chunk {
	for _, c := range hs.chunks {
		if c.maxt >= mint && c.mint <= maxt {
			dst = append(dst, c.c)
		}
	}
	if hs.cur != nil && hs.curSamples > 0 && hs.curMaxt >= mint && hs.curMint <= maxt {
		c, _ := chunkenc.FromData(hs.cur.Encoding(), slices.Clone(hs.cur.Bytes())) // known encodings never fail
		dst = append(dst, c)
	}
	return dst
}

// headHasPoint reports whether ms, a float or histogram series, already
// holds the sample (t, v) (v: float bits or histogramHash) in the active
// head or the head being flushed. A retried remote-write request resends
// samples older than the series' newest; finding them there makes the
// retry a no-op instead of an out-of-order refusal, so a retry is
// idempotent for any number of samples per series. Blocks are not
// searched: a retry follows its request by seconds, and a sample already
// flushed is refused as out of order as before (still never counted twice).
func (db *DB) headHasPoint(ms *memSeries, t int64, v uint64) bool {
	db.stateMu.RLock()
	heads := [2]*head{db.active, db.frozen}
	db.stateMu.RUnlock()
	var chunks []chunkenc.Chunk
	for _, h := range heads {
		if h == nil {
			continue
		}
		if hs := h.get(ms.ref); hs != nil {
			ms.mu.Lock()
			chunks = hs.floatChunksIn(chunks, t, t)
			ms.mu.Unlock()
		}
	}
	var it chunkenc.Iterator
	var fh *histogram.FloatHistogram
	for _, c := range chunks {
		it = c.Iterator(it)
		switch it.Seek(t) {
		case chunkenc.ValFloat:
			if at, f := it.At(); at == t && math.Float64bits(f) == v {
				return true
			}
		case chunkenc.ValFloatHistogram:
			var at int64
			if at, fh = it.AtFloatHistogram(fh); at == t && histogramHash(fh) == v {
				return true
			}
		}
	}
	return false
}
