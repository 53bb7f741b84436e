package tsdb

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/sketch"
	"evalstore/tsdb/index"
	"evalstore/tsdb/series"
)

// samplesPerChunk is where a float series' head chunk is cut, as in
// Prometheus.
const samplesPerChunk = 120

// Memory overhead estimates (bytes) added to sketch MemSize for accounting.
const (
	seriesOverhead = 400 // headSeries, map entries; the registry's share (memSeries, index postings) is in it
	bucketOverhead = 32  // slice element: time + interface
)

// memSeries is a series in the DB-wide registry: identity, kind and format
// (fixed at creation), and the newest float sample, which orders float
// writes across flushes. mu also guards the series' data in the active head.
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

// floatChunk is a completed (immutable) XOR chunk.
type floatChunk struct {
	mint, maxt int64
	c          *chunkenc.XORChunk
}

// headSeries is one series' data in one head generation. In the active
// head it is guarded by ms.mu; a frozen head is never written again.
type headSeries struct {
	ms      *memSeries
	buckets []bucket // sorted by t

	chunks     []floatChunk
	cur        *chunkenc.XORChunk
	app        chunkenc.Appender
	curMint    int64
	curMaxt    int64
	curSamples int
}

// head is one generation of the memtable: the data written since the last
// flush swap.
type head struct {
	shards [256]struct {
		mu sync.RWMutex
		m  map[index.SeriesRef]*headSeries
	}
	mint, maxt atomic.Int64
	bytes      atomic.Int64
	buckets    atomic.Int64
	samples    atomic.Int64
	numSeries  atomic.Int64
	// firstWrite is the wall-clock ms of the first write (0: none yet),
	// for FlushAge.
	firstWrite atomic.Int64
}

func newHead() *head {
	h := &head{}
	for i := range h.shards {
		h.shards[i].m = make(map[index.SeriesRef]*headSeries)
	}
	h.mint.Store(math.MaxInt64)
	h.maxt.Store(math.MinInt64)
	return h
}

func (h *head) get(ref index.SeriesRef) *headSeries {
	s := &h.shards[ref&255]
	s.mu.RLock()
	hs := s.m[ref]
	s.mu.RUnlock()
	return hs
}

func (h *head) getOrCreate(ms *memSeries) *headSeries {
	if hs := h.get(ms.ref); hs != nil {
		return hs
	}
	s := &h.shards[ms.ref&255]
	s.mu.Lock()
	defer s.mu.Unlock()
	if hs, ok := s.m[ms.ref]; ok {
		return hs
	}
	hs := &headSeries{ms: ms}
	s.m[ms.ref] = hs
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
	var out []*headSeries
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for _, hs := range s.m {
			out = append(out, hs)
		}
		s.mu.RUnlock()
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
		if hs.cur != nil {
			hs.cur.Compact()
			hs.chunks = append(hs.chunks, floatChunk{mint: hs.curMint, maxt: hs.curMaxt, c: hs.cur})
		}
		hs.cur = chunkenc.NewXORChunk()
		hs.app, _ = hs.cur.Appender() // an empty XOR chunk's Appender cannot fail
		hs.curMint, hs.curSamples = t, 0
		grow += 96 // chunk, appender, floatChunk entry
	}
	before := cap(hs.cur.Bytes())
	hs.app.Append(0, t, math.Float64frombits(v))
	grow += int64(cap(hs.cur.Bytes()) - before)
	hs.curMaxt = t
	hs.curSamples++
	return grow
}

// floatChunksIn returns the float chunks overlapping [mint, maxt]; the open
// chunk is copied, since appends would race with readers. Called under
// hs.ms.mu for the active head.
func (hs *headSeries) floatChunksIn(dst []chunkenc.Chunk, mint, maxt int64) []chunkenc.Chunk {
	for _, c := range hs.chunks {
		if c.maxt >= mint && c.mint <= maxt {
			dst = append(dst, c.c)
		}
	}
	if hs.cur != nil && hs.curSamples > 0 && hs.curMaxt >= mint && hs.curMint <= maxt {
		c, _ := chunkenc.FromData(chunkenc.EncXOR, slices.Clone(hs.cur.Bytes())) // XOR never fails
		dst = append(dst, c)
	}
	return dst
}
