package tsdb

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// Appender collects writes and commits them atomically: one WAL record per
// Commit, durable under the WAL's sync policy before Commit returns, then
// applied to the head. Validation happens in Add, so a batch that Commit
// accepts is applied whole. An Appender is not safe for concurrent use;
// use one per goroutine (DB.Appender is cheap). After Commit or Rollback
// it is empty and may be reused.
type Appender struct {
	db *DB
	// The batch's state; nil between batches. A batch takes one from
	// appendStates at its first Add and returns it at Commit or Rollback,
	// so buffers and the series cache stay warm also for callers that
	// make a new Appender per batch.
	*appendState
}

// appendState is an Appender's batch and its float and histogram series
// cache.
type appendState struct {
	db      *DB             // the DB whose series cached holds
	buf     []byte          // the samples record: version byte, then entries (floats' at Commit)
	samples []pendingSample // sketch deltas
	floats  []floatSample
	hists   []histSample
	hbuf    []byte      // histogram encoding scratch
	hd      histDecoder // for applying hists
	series  []*memSeries
	seen    map[*memSeries]struct{} // sketch series noted in this batch
	scratch map[sketch.Format]sketch.Sketch
	// Float and histogram series written through this state, found by
	// labels hash without the index (like the series refs a Prometheus
	// scrape loop keeps), with their state in the current batch.
	cache  map[uint64]int32 // labels hash → index+1 in cached
	cached []cachedSeries
	prev   int32  // index+1 of the entry of the previous AddFloat or AddHistogram
	batch  uint64 // current batch number, > 0; bumped at the end of a batch
	// lo and hi are the time bounds, from the clock read in batch
	// boundsBatch (see checkTime).
	boundsBatch uint64
	lo, hi      int64
	seriesRec   []byte
}

var appendStates = sync.Pool{New: func() any {
	return &appendState{
		buf:     []byte{recordVersion},
		seen:    make(map[*memSeries]struct{}),
		scratch: make(map[sketch.Format]sketch.Sketch),
		cache:   make(map[uint64]int32),
		batch:   1,
	}
}}

// begin gives a an appendState for a new batch if it has none.
func (a *Appender) begin() {
	if a.appendState != nil {
		return
	}
	st := appendStates.Get().(*appendState)
	if st.db != a.db {
		st.db = a.db
		st.dropCache()
	}
	a.appendState = st
}

func (st *appendState) dropCache() {
	st.cache = make(map[uint64]int32)
	st.cached = nil
	st.prev = 0
}

// maxCachedSeries bounds the float and histogram series an appendState
// remembers between batches; past it the cache is dropped at the end of a
// batch.
const maxCachedSeries = 1 << 16

// cachedSeries is a float or histogram series in an appendState's cache.
// Its batch fields are valid while batch equals the state's.
type cachedSeries struct {
	ms   *memSeries
	next int32 // index+1 of the next entry with the same labels hash
	// succ is index+1 of the entry whose AddFloat (or AddHistogram)
	// followed this one's last time: writers that send their series in a
	// stable order find each next series with one labels comparison,
	// without hashing.
	succ  int32
	batch uint64 // batch in which the series was last noted
	// the series' newest pending sample in that batch (value bits, or
	// histogramHash), for order checks against writes not yet committed.
	pendT int64
	pendV uint64
}

// histSample is one validated histogram sample waiting for Commit (or
// being replayed): v is its histogramHash, enc its encoding in the batch's
// record.
type histSample struct {
	ms  *memSeries
	t   int64
	v   uint64
	enc []byte
}

// floatSample is one validated float sample waiting for Commit.
type floatSample struct {
	ms *memSeries
	t  int64
	v  uint64
}

// pendingSample is one validated write waiting for Commit.
type pendingSample struct {
	ms     *memSeries
	t      int64
	v      uint64
	delta  []byte
	sketch bool
}

// Appender returns a new, empty appender.
func (db *DB) Appender() *Appender {
	return &Appender{db: db}
}

// checkTime refuses t outside [now−Retention, now+MaxFuture]. The clock is
// read once per batch (at its first Add), as Prometheus's head appender
// fixes its lower bound when it is created, and read again before refusing
// a timestamp as too new: a refusal is always exact, and an accepted
// timestamp is at most the batch's age older than now−Retention.
func (a *Appender) checkTime(t int64) error {
	if a.boundsBatch != a.batch {
		a.readClock()
	}
	if t < a.lo {
		return fmt.Errorf("%w: timestamp %d is older than the retention limit %d", ErrOutOfBounds, t, a.lo)
	}
	if t > a.hi {
		a.readClock()
		if t > a.hi {
			return fmt.Errorf("%w: timestamp %d is beyond now+max future %d", ErrOutOfBounds, t, a.hi)
		}
	}
	return nil
}

func (a *Appender) readClock() {
	now := a.db.opts.Now()
	a.lo = now.Add(-a.db.opts.Retention).UnixMilli()
	a.hi = now.Add(a.db.opts.MaxFuture).UnixMilli()
	a.boundsBatch = a.batch
}

// bucketStart floors t to its bucket, also for negative t.
func bucketStart(t, size int64) int64 {
	b := t / size * size
	if b > t {
		b -= size
	}
	return b
}

// AddSketch queues a merge of the encoded sketch state delta into the
// bucket holding t. Any bucket inside retention is accepted. The delta is
// validated now (errors wrap sketch.ErrCorrupt or sketch.ErrFormat); the
// caller may reuse delta's memory when AddSketch returns.
func (a *Appender) AddSketch(lset labels.Labels, t int64, delta []byte) error {
	a.begin()
	if err := a.checkTime(t); err != nil {
		return err
	}
	f, err := sketch.FormatOf(delta)
	if err != nil {
		return fmt.Errorf("tsdb: delta: %w", err)
	}
	sc, ok := a.scratch[f]
	if !ok {
		if sc, err = sketch.New(f); err != nil {
			return fmt.Errorf("tsdb: delta: %w", err)
		}
		a.scratch[f] = sc
	}
	if err := sc.UnmarshalBinary(delta); err != nil {
		return fmt.Errorf("tsdb: delta: %w", err)
	}
	ms, err := a.db.seriesFor(lset, series.KindSketch, f)
	if err != nil {
		return err
	}
	t = bucketStart(t, a.db.bucketMs)
	a.note(ms)
	a.buf = appendSketchEntry(a.buf, uint64(ms.ref), t, delta)
	d := a.buf[len(a.buf)-len(delta):]
	a.samples = append(a.samples, pendingSample{ms: ms, t: t, delta: d, sketch: true})
	return nil
}

// AddFloat queues a float sample. Prometheus's rules apply per series:
// timestamps strictly increase; a repeat of the newest sample with the same
// value bits is a no-op; with other bits it is
// ErrDuplicateSampleForTimestamp; an older one is ErrOutOfOrderSample.
// Staleness markers (value.StaleNaN) are stored bit for bit.
func (a *Appender) AddFloat(lset labels.Labels, t int64, v float64) error {
	a.begin()
	if err := a.checkTime(t); err != nil {
		return err
	}
	c, err := a.sampleSeries(lset, series.KindFloat)
	if err != nil {
		return err
	}
	bits := math.Float64bits(v)
	if noop, err := a.checkOrder(c, t, bits); noop || err != nil {
		if errors.Is(err, ErrDuplicateSampleForTimestamp) {
			_, _, lastV := a.newest(c)
			err = fmt.Errorf("%w: series %s: timestamp %d already has value %v, got %v",
				ErrDuplicateSampleForTimestamp, c.ms.lset.String(), t, math.Float64frombits(lastV), v)
		}
		return err
	}
	a.floats = append(a.floats, floatSample{ms: c.ms, t: t, v: bits})
	return nil
}

// AddHistogram queues a native histogram sample; the rules are AddFloat's,
// with "the same value" meaning equal as histogram.FloatHistogram.Equals
// compares (the counter reset hint aside; see histogramHash). h must pass
// h.Validate() (else the error wraps ErrInvalidHistogram); integer
// histograms are converted by the caller (h.ToFloat(nil)). h is copied:
// the caller may reuse it when AddHistogram returns. A staleness marker
// (Sum with the bits of value.StaleNaN) is stored as such.
//
// The counter reset hint is kept as far as Prometheus's chunk format
// carries it: CounterReset starts a new chunk and reads back as
// CounterReset from a single source; GaugeType marks gauge chunks; other
// hints are recomputed from the counts when stored. See the series.Series
// contract and docs/format.md for what readers get.
func (a *Appender) AddHistogram(lset labels.Labels, t int64, h *histogram.FloatHistogram) error {
	a.begin()
	if err := a.checkTime(t); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("%w: series %s: timestamp %d: nil histogram", ErrInvalidHistogram, lset.String(), t)
	}
	if err := h.Validate(); err != nil {
		return histogramError(lset.String(), t, err)
	}
	c, err := a.sampleSeries(lset, series.KindHistogram)
	if err != nil {
		return err
	}
	hash := histogramHash(h)
	if noop, err := a.checkOrder(c, t, hash); noop || err != nil {
		if errors.Is(err, ErrDuplicateSampleForTimestamp) {
			err = fmt.Errorf("%w: series %s: timestamp %d already has a different histogram",
				ErrDuplicateSampleForTimestamp, c.ms.lset.String(), t)
		}
		return err
	}
	a.hbuf = appendHistogram(a.hbuf[:0], h)
	a.buf = appendHistogramEntry(a.buf, uint64(c.ms.ref), t, a.hbuf)
	a.hists = append(a.hists, histSample{ms: c.ms, t: t, v: hash, enc: a.buf[len(a.buf)-len(a.hbuf):]})
	return nil
}

// newest returns c's series' newest sample: pending in this batch, or
// committed.
func (a *Appender) newest(c *cachedSeries) (has bool, t int64, v uint64) {
	if c.batch == a.batch {
		return true, c.pendT, c.pendV
	}
	ms := c.ms
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.hasLast, ms.lastT, ms.lastV
}

// checkOrder applies the sample order rules to a sample (t, v) of c's
// series (v: float bits or histogramHash). It reports a repeat of the
// newest sample as a no-op, or returns ErrOutOfOrderSample or
// ErrDuplicateSampleForTimestamp (the caller words the latter); otherwise
// it notes the sample as the series' newest pending one.
func (a *Appender) checkOrder(c *cachedSeries, t int64, v uint64) (noop bool, err error) {
	has, lastT, lastV := a.newest(c)
	if has && t <= lastT {
		if t < lastT {
			if a.db.headHasPoint(c.ms, t, v) {
				return true, nil
			}
			return false, fmt.Errorf("%w: series %s: timestamp %d is before the newest %d", ErrOutOfOrderSample, c.ms.lset.String(), t, lastT)
		}
		if v == lastV {
			return true, nil
		}
		return false, ErrDuplicateSampleForTimestamp
	}
	if c.batch != a.batch {
		c.batch = a.batch
		a.series = append(a.series, c.ms)
	}
	c.pendT, c.pendV = t, v
	return false, nil
}

// sampleSeries returns the cache entry of lset's float or histogram series
// (kind), creating the series (and the entry) if needed. The pointer is
// valid until the next call.
func (a *Appender) sampleSeries(lset labels.Labels, kind series.Kind) (*cachedSeries, error) {
	var prev *cachedSeries
	if a.prev != 0 {
		prev = &a.cached[a.prev-1]
		if i := prev.succ; i != 0 {
			if c := &a.cached[i-1]; c.ms.kind == kind && labels.Equal(c.ms.lset, lset) {
				a.prev = i
				return c, nil
			}
		}
	}
	i, err := a.lookupSample(lset, kind)
	if err != nil {
		return nil, err
	}
	if a.prev != 0 {
		a.cached[a.prev-1].succ = i // not prev: lookupSample may have grown cached
	}
	a.prev = i
	return &a.cached[i-1], nil
}

// lookupSample returns index+1 of lset's entry in the cache, creating the
// series (of kind) and the entry if needed. A hit needs one hash of lset
// and one comparison with the series' stored labels; lset not in canonical
// form (unsorted, empty values) always go through the index.
func (a *Appender) lookupSample(lset labels.Labels, kind series.Kind) (int32, error) {
	h := lset.Hash()
	for i := a.cache[h]; i != 0; {
		c := &a.cached[i-1]
		if labels.Equal(c.ms.lset, lset) {
			if c.ms.kind != kind {
				break // seriesFor reports the mismatch
			}
			return i, nil
		}
		i = c.next
	}
	ms, err := a.db.seriesFor(lset, kind, 0)
	if err != nil {
		return 0, err
	}
	// Key the entry by the series' canonical labels, so each series has
	// one entry whatever form its labels came in.
	if !labels.Equal(ms.lset, lset) {
		h = ms.lset.Hash()
	}
	head := a.cache[h]
	for i := head; i != 0; {
		if a.cached[i-1].ms == ms {
			return i, nil
		}
		i = a.cached[i-1].next
	}
	a.cached = append(a.cached, cachedSeries{ms: ms, next: head})
	i := int32(len(a.cached))
	a.cache[h] = i
	return i, nil
}

func (a *Appender) note(ms *memSeries) {
	if _, ok := a.seen[ms]; !ok {
		a.seen[ms] = struct{}{}
		a.series = append(a.series, ms)
	}
}

// Commit writes the batch to the WAL as one record and, once the WAL says
// it is durable, applies it to the head. On error nothing was applied (a
// WAL failure is permanent: reopen the DB). The Appender is empty after.
func (a *Appender) Commit() error {
	if a.appendState == nil {
		return nil
	}
	defer a.Rollback()
	if len(a.samples) == 0 && len(a.floats) == 0 && len(a.hists) == 0 {
		return nil
	}
	db := a.db
	if db.closed.Load() {
		return ErrClosed
	}
	db.commitMu.RLock()
	defer db.commitMu.RUnlock()
	if db.closed.Load() {
		return ErrClosed
	}
	epoch := db.epoch
	a.seriesRec = append(a.seriesRec[:0], recordVersion)
	for _, ms := range a.series {
		if ms.loggedEpoch.Load() == epoch {
			continue
		}
		ms.mu.Lock()
		hasLast, lastT, lastV := ms.hasLast, ms.lastT, ms.lastV
		ms.mu.Unlock()
		a.seriesRec = appendSeriesEntry(a.seriesRec, uint64(ms.ref), ms.kind, ms.format, ms.lset, hasLast, lastT, lastV)
	}
	if len(a.floats) > 0 {
		a.buf = appendFloatRun(a.buf, a.floats)
	}
	var err error
	if len(a.seriesRec) > 1 {
		err = db.wal.Log(a.seriesRec, a.buf)
	} else {
		err = db.wal.Log(a.buf)
	}
	if err != nil {
		return fmt.Errorf("tsdb: commit: %w", err)
	}
	for _, ms := range a.series {
		ms.loggedEpoch.Store(epoch)
	}
	ap := applyState{samples: a.samples, floats: a.floats, hists: a.hists, hd: &a.hd}
	db.apply(db.active, &ap)
	db.stats.commits.Add(1)
	return nil
}

// Rollback discards the batch.
func (a *Appender) Rollback() {
	st := a.appendState
	if st == nil {
		return
	}
	st.buf = st.buf[:1]
	clear(st.samples)
	st.samples = st.samples[:0]
	st.floats = st.floats[:0] // memSeries are never freed: no need to clear
	clear(st.hists)           // enc aliases buf
	st.hists = st.hists[:0]
	clear(st.series)
	st.series = st.series[:0]
	clear(st.seen)
	st.batch++
	if len(st.cached) > maxCachedSeries {
		st.dropCache()
	}
	a.appendState = nil
	appendStates.Put(st)
}

// applyState is a batch being applied to a head.
type applyState struct {
	samples []pendingSample // sketch deltas
	floats  []floatSample
	hists   []histSample
	hd      *histDecoder
}

func (ap *applyState) reset() {
	ap.samples = ap.samples[:0]
	ap.floats = ap.floats[:0]
	ap.hists = ap.hists[:0]
}

func (ap *applyState) add(s pendingSample) {
	if s.sketch {
		ap.samples = append(ap.samples, s)
	} else {
		ap.floats = append(ap.floats, floatSample{ms: s.ms, t: s.t, v: s.v})
	}
}

// lockForAppend returns ms's series in h with ms.mu held, or nil (and the
// lock not held) when the float or histogram sample (t, v) is not newer
// than the series' newest; a conflicting one is counted in dropped.
func lockForAppend(h *head, ms *memSeries, t int64, v uint64, dropped *uint64) *headSeries {
	hs := h.getOrCreate(ms)
	ms.mu.Lock()
	if skip, conflict := ms.superseded(t, v); skip {
		if conflict {
			*dropped++
		}
		ms.mu.Unlock()
		return nil
	}
	return hs
}

// apply merges a logged batch into h. It never fails: entries that cannot
// be applied (a float or histogram sample that lost a race with a
// concurrent commit, a sketch state incompatible with its bucket) are
// dropped and counted, and replay drops the same ones.
func (db *DB) apply(h *head, ap *applyState) {
	var bytes, buckets, floats, merges int64
	mint, maxt := int64(math.MaxInt64), int64(math.MinInt64)
	for i := range ap.samples {
		s := &ap.samples[i]
		hs := h.getOrCreate(s.ms)
		s.ms.mu.Lock()
		grow, created, err := hs.mergeSketch(s.t, s.delta)
		s.ms.mu.Unlock()
		if err != nil {
			db.stats.applyErrors.Add(1)
			db.log.Warn("tsdb: dropping sketch delta that does not merge into its bucket",
				"series", s.ms.lset.String(), "t", s.t, "err", err)
			continue
		}
		bytes += grow
		merges++
		if created {
			buckets++
		}
		db.index.Touch(s.ms.ref, s.t)
		mint, maxt = min(mint, s.t), max(maxt, s.t)
	}
	var dropped uint64
	for i := range ap.floats {
		s := &ap.floats[i]
		ms := s.ms
		hs := lockForAppend(h, ms, s.t, s.v, &dropped)
		if hs == nil {
			continue
		}
		bytes += hs.appendFloat(s.t, s.v)
		ms.hasLast, ms.lastT, ms.lastV = true, s.t, s.v
		ms.mu.Unlock()
		floats++
		db.index.Touch(ms.ref, s.t)
		mint, maxt = min(mint, s.t), max(maxt, s.t)
	}
	var hists int64
	for i := range ap.hists {
		s := &ap.hists[i]
		ms := s.ms
		fh, err := ap.hd.decode(s.enc)
		if err != nil { // validated at Add and by the record decoder
			db.stats.applyErrors.Add(1)
			continue
		}
		hs := lockForAppend(h, ms, s.t, s.v, &dropped)
		if hs == nil {
			continue
		}
		grow, err := hs.appendHistogram(s.t, fh)
		if err != nil {
			ms.mu.Unlock()
			db.stats.applyErrors.Add(1)
			db.log.Warn("tsdb: dropping histogram sample the chunk appender refuses", "series", ms.lset.String(), "t", s.t, "err", err)
			continue
		}
		bytes += grow
		ms.hasLast, ms.lastT, ms.lastV = true, s.t, s.v
		ms.mu.Unlock()
		hists++
		db.index.Touch(ms.ref, s.t)
		mint, maxt = min(mint, s.t), max(maxt, s.t)
	}
	if dropped > 0 {
		db.stats.floatsDropped.Add(dropped)
	}
	if mint <= maxt {
		h.widen(mint)
		h.widen(maxt)
		if h.firstWrite.Load() == 0 {
			h.firstWrite.CompareAndSwap(0, db.opts.Now().UnixMilli())
		}
	}
	h.bytes.Add(bytes)
	h.buckets.Add(buckets)
	h.samples.Add(floats + hists)
	db.stats.sketchMerges.Add(uint64(merges))
	db.stats.floatSamples.Add(uint64(floats))
	db.stats.histogramSamples.Add(uint64(hists))
}
