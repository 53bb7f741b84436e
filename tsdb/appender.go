package tsdb

import (
	"fmt"
	"math"

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
	db      *DB
	buf     []byte // the samples record: version byte, then entries
	samples []pendingSample
	series  []*memSeries
	seen    map[*memSeries]struct{}
	// floats' newest pending sample per series in this batch, for order
	// checks against writes not yet committed.
	pendingFloat map[*memSeries]floatPoint
	scratch      map[sketch.Format]sketch.Sketch
	seriesRec    []byte
}

type floatPoint struct {
	t int64
	v uint64
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
	return &Appender{
		db:           db,
		buf:          []byte{recordVersion},
		seen:         make(map[*memSeries]struct{}),
		pendingFloat: make(map[*memSeries]floatPoint),
		scratch:      make(map[sketch.Format]sketch.Sketch),
	}
}

func (a *Appender) checkTime(t int64) error {
	now := a.db.opts.Now()
	if lo := now.Add(-a.db.opts.Retention).UnixMilli(); t < lo {
		return fmt.Errorf("%w: timestamp %d is older than the retention limit %d", ErrOutOfBounds, t, lo)
	}
	if hi := now.Add(a.db.opts.MaxFuture).UnixMilli(); t > hi {
		return fmt.Errorf("%w: timestamp %d is beyond now+max future %d", ErrOutOfBounds, t, hi)
	}
	return nil
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
	if err := a.checkTime(t); err != nil {
		return err
	}
	ms, err := a.db.seriesFor(lset, series.KindFloat, 0)
	if err != nil {
		return err
	}
	bits := math.Float64bits(v)
	last, has := a.pendingFloat[ms]
	if !has {
		ms.mu.Lock()
		has, last = ms.hasLast, floatPoint{ms.lastT, ms.lastV}
		ms.mu.Unlock()
	}
	if has {
		switch {
		case t < last.t:
			return fmt.Errorf("%w: series %s: timestamp %d is before the newest %d", ErrOutOfOrderSample, ms.lset.String(), t, last.t)
		case t == last.t && bits == last.v:
			return nil
		case t == last.t:
			return fmt.Errorf("%w: series %s: timestamp %d already has value %v, got %v",
				ErrDuplicateSampleForTimestamp, ms.lset.String(), t, math.Float64frombits(last.v), v)
		}
	}
	a.pendingFloat[ms] = floatPoint{t, bits}
	a.note(ms)
	a.buf = appendFloatEntry(a.buf, uint64(ms.ref), t, bits)
	a.samples = append(a.samples, pendingSample{ms: ms, t: t, v: bits})
	return nil
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
	defer a.Rollback()
	if len(a.samples) == 0 {
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
	ap := applyState{samples: a.samples}
	db.apply(db.active, &ap)
	db.stats.commits.Add(1)
	return nil
}

// Rollback discards the batch.
func (a *Appender) Rollback() {
	a.buf = a.buf[:1]
	clear(a.samples)
	a.samples = a.samples[:0]
	clear(a.series)
	a.series = a.series[:0]
	clear(a.seen)
	clear(a.pendingFloat)
}

// applyState is a batch being applied to a head.
type applyState struct {
	samples []pendingSample
}

func (ap *applyState) reset()              { ap.samples = ap.samples[:0] }
func (ap *applyState) add(s pendingSample) { ap.samples = append(ap.samples, s) }

// apply merges a logged batch into h. It never fails: entries that cannot
// be applied (a float sample that lost a race with a concurrent commit, a
// sketch state incompatible with its bucket) are dropped and counted, and
// replay drops the same ones.
func (db *DB) apply(h *head, ap *applyState) {
	var bytes, buckets, floats, merges int64
	mint, maxt := int64(math.MaxInt64), int64(math.MinInt64)
	for i := range ap.samples {
		s := &ap.samples[i]
		hs := h.getOrCreate(s.ms)
		s.ms.mu.Lock()
		if s.sketch {
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
		} else {
			ms := s.ms
			if ms.hasLast && s.t <= ms.lastT {
				ms.mu.Unlock()
				if s.t < ms.lastT || s.v != ms.lastV {
					db.stats.floatsDropped.Add(1)
				}
				continue
			}
			bytes += hs.appendFloat(s.t, s.v)
			ms.hasLast, ms.lastT, ms.lastV = true, s.t, s.v
			ms.mu.Unlock()
			floats++
		}
		db.index.Touch(s.ms.ref, s.t)
		mint, maxt = min(mint, s.t), max(maxt, s.t)
	}
	if mint <= maxt {
		h.widen(mint)
		h.widen(maxt)
		h.firstWrite.CompareAndSwap(0, db.opts.Now().UnixMilli())
	}
	h.bytes.Add(bytes)
	h.buckets.Add(buckets)
	h.samples.Add(floats)
	db.stats.sketchMerges.Add(uint64(merges))
	db.stats.floatSamples.Add(uint64(floats))
}
