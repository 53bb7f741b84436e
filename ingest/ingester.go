package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/definitions"
	"evalstore/sketch"
	"evalstore/tsdb/wal"
)

// Appender is what ingest writes to (tsdb.Appender satisfies it). Add*
// validate and stage; Commit makes the whole batch durable (in the WAL)
// atomically and returns only then; Rollback discards.
type Appender interface {
	AddSketch(lset labels.Labels, t int64, delta []byte) error
	AddFloat(lset labels.Labels, t int64, v float64) error
	Commit() error
	Rollback()
}

// Storage hands out appenders.
type Storage interface{ Appender() Appender }

// CommitReader is optionally implemented by a Storage that can read back
// the newest value of a float series from what it has made durable. Ingest
// reads FamilyIngestCommit with it after a crash to learn whether the last
// join-store batch reached the tsdb. Without it, an in-doubt batch is
// treated as not committed (see docs/ingest.md).
type CommitReader interface {
	LastFloat(lset labels.Labels) (v float64, ok bool, err error)
}

// Defaults of Config.
const (
	DefaultBucketSize      = time.Minute
	DefaultJoinWindow      = 30 * 24 * time.Hour
	DefaultMaxFuture       = 10 * time.Minute
	DefaultRetention       = 400 * 24 * time.Hour
	DefaultMaxPending      = 5_000_000
	DefaultMaxScoreClasses = 64
	DefaultMaxModelClasses = 10_000
	DefaultSnapshotBytes   = 256 << 20
	DefaultSweepInterval   = time.Minute
)

// DefaultLimits are the per-request limits of predictions and feedback.
var DefaultLimits = Limits{MaxBodyBytes: 32 << 20, MaxDecodedBytes: 256 << 20, MaxRecords: 100_000}

// DefaultEvaluationLimits are the per-request limits of an offline run.
var DefaultEvaluationLimits = Limits{MaxBodyBytes: 256 << 20, MaxDecodedBytes: 2 << 30, MaxRecords: 5_000_000}

// Config configures an Ingester. Zero fields take the defaults above.
type Config struct {
	// Dir holds the join store (its WAL and snapshot). Required.
	Dir     string
	Storage Storage
	// Definitions returns the definitions in force (e.g. Store.Current).
	// Nil: definitions.Empty.
	Definitions func() *definitions.Definitions
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// BucketSize is the tsdb bucket: deltas are stamped with the start of
	// the prediction's bucket.
	BucketSize time.Duration
	// JoinWindow is how long a prediction waits for its label (and early
	// feedback for its prediction).
	JoinWindow time.Duration
	// MaxFuture refuses timestamps later than now + MaxFuture.
	MaxFuture time.Duration
	// Retention refuses timestamps older than now − Retention (set it to
	// the tsdb's retention).
	Retention        time.Duration
	Limits           Limits
	EvaluationLimits Limits
	// MaxPending caps the pending predictions plus held feedback kept for
	// the join; beyond it new predictions are counted but not kept
	// (Result.Untracked), and early feedback is not held.
	MaxPending int
	// MaxScoreClasses caps the classes of a multiclass record whose
	// per-class score series are written (the rest are left out).
	MaxScoreClasses int
	// MaxModelClasses caps the distinct classes of one model.
	MaxModelClasses int
	// Sync is the join WAL's fsync policy (default wal.SyncAlways).
	Sync wal.SyncPolicy
	// SnapshotBytes: a snapshot of the join store is written, and the WAL
	// truncated, once this many WAL bytes were written since the last one.
	SnapshotBytes int64
	// SweepInterval is how often expired join state is dropped.
	SweepInterval time.Duration
	Logger        *slog.Logger
}

func (c *Config) defaults() {
	if c.Definitions == nil {
		c.Definitions = definitions.Empty
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.BucketSize, DefaultBucketSize)
	def(&c.JoinWindow, DefaultJoinWindow)
	def(&c.MaxFuture, DefaultMaxFuture)
	def(&c.Retention, DefaultRetention)
	def(&c.SweepInterval, DefaultSweepInterval)
	lim := func(l *Limits, d Limits) {
		if l.MaxBodyBytes <= 0 {
			l.MaxBodyBytes = d.MaxBodyBytes
		}
		if l.MaxDecodedBytes <= 0 {
			l.MaxDecodedBytes = d.MaxDecodedBytes
		}
		if l.MaxRecords <= 0 {
			l.MaxRecords = d.MaxRecords
		}
	}
	lim(&c.Limits, DefaultLimits)
	lim(&c.EvaluationLimits, DefaultEvaluationLimits)
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxScoreClasses <= 0 {
		c.MaxScoreClasses = DefaultMaxScoreClasses
	}
	if c.MaxModelClasses <= 0 {
		c.MaxModelClasses = DefaultMaxModelClasses
	}
	if c.SnapshotBytes <= 0 {
		c.SnapshotBytes = DefaultSnapshotBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Result reports what one accepted batch did.
type Result struct {
	// Records is the number of records in the batch.
	Records int `json:"records"`
	// Predictions counted (new predictions; offline: every record).
	Predictions int `json:"predictions"`
	// DuplicatePredictions are predictions whose (model, id) was already
	// pending: a retried batch. They are not counted again.
	DuplicatePredictions int `json:"duplicate_predictions"`
	// Labels applied for the first time (inline, joined feedback, or held
	// feedback joined by an arriving prediction).
	Labels int `json:"labels"`
	// Corrected labels: the old contribution retracted, the new one added.
	Corrected int `json:"corrected"`
	// DuplicateFeedback is feedback identical to what was applied: no-op.
	DuplicateFeedback int `json:"duplicate_feedback"`
	// Held is feedback whose prediction has not arrived (yet): kept for
	// the join window, then counted as unknown (Stats.UnknownFeedback).
	Held int `json:"held"`
	// Expired is feedback for a prediction whose join window has passed.
	Expired int `json:"expired"`
	// Untracked predictions were counted but not kept for the join
	// (Config.MaxPending reached); NotHeld likewise for early feedback.
	Untracked int `json:"untracked"`
	NotHeld   int `json:"not_held"`
	// MeasuresIgnored are feedback measures already observed for their
	// prediction (the first value of a measure per prediction counts).
	MeasuresIgnored int `json:"measures_ignored"`
	// FeatureTypeConflicts are feature values of an undeclared feature
	// that do not fit the type first seen for it (skipped).
	FeatureTypeConflicts int `json:"feature_type_conflicts"`
}

// Stats are the ingester's counters for /metrics.
type Stats struct {
	Records, Rejected, Batches, RejectedBatches                        uint64
	Predictions, Labels, Corrections, DuplicateFeedback, Held, Expired uint64
	// UnknownFeedback is held feedback whose prediction never came.
	UnknownFeedback uint64
	Untracked       uint64
	// Pending predictions and held feedback now in the join store.
	Pending, HeldNow int
	Snapshots        uint64
}

type counters struct {
	records, rejected, batches, rejectedBatches                          atomic.Uint64
	predictions, labels, corrections, duplicates, held, expired, unknown atomic.Uint64
	untracked, snapshots                                                 atomic.Uint64
}

// Ingester turns decoded records into sketch deltas and keeps the join
// store. Its methods are safe for concurrent use: decoding runs in the
// caller's goroutine, the join decisions and the commit of one batch are
// serialized.
type Ingester struct {
	cfg    Config
	bucket int64        // ms
	mu     sync.RWMutex // read-locked only by precheck
	store  *joinStore
	c      counters
	lastT  int64 // last marker timestamp (ms)
	closed bool
	// inflight counts batches past stage 1 not yet finished (under mu).
	inflight int
	wg       sync.WaitGroup
	// turnMu orders stage 3; committed is the last committed seq; failed
	// poisons the ingester.
	turnMu    sync.Mutex
	turn      *sync.Cond
	committed atomic.Uint64
	failed    error
	decPool   *freeList[*decoder]
}

// Open opens (or creates) the join store in cfg.Dir, recovers it after a
// crash and returns a ready Ingester.
func Open(cfg Config) (*Ingester, error) {
	cfg.defaults()
	if cfg.Dir == "" || cfg.Storage == nil {
		return nil, errors.New("ingest: Config.Dir and Config.Storage are required")
	}
	in := &Ingester{cfg: cfg, bucket: cfg.BucketSize.Milliseconds(),
		decPool: newFreeList(4, func() *decoder { return &decoder{intern: make(map[string]string), slabIdx: -1} })}
	if in.bucket <= 0 {
		return nil, fmt.Errorf("ingest: bucket size %s below 1ms", cfg.BucketSize)
	}
	// resolve reads the last committed batch from the tsdb's marker.
	resolve := func() (uint64, bool, error) {
		cr, ok := cfg.Storage.(CommitReader)
		if !ok {
			cfg.Logger.Warn("ingest: in-doubt join batches treated as not committed (storage cannot read the commit marker)")
			return 0, false, nil
		}
		v, ok, err := cr.LastFloat(commitMarker)
		if err != nil || !ok {
			return 0, false, err
		}
		return uint64(v), true, nil
	}
	st, err := openJoinStore(cfg.Dir, wal.Options{Sync: cfg.Sync, Logger: cfg.Logger}, resolve, cfg.Logger)
	if err != nil {
		return nil, err
	}
	in.store = st
	in.turn = sync.NewCond(&in.turnMu)
	in.committed.Store(st.seq)
	st.sweep(in.nowMS(), cfg.JoinWindow.Milliseconds(), &in.c)
	return in, nil
}

// Close writes a snapshot of the join store and closes its WAL.
func (in *Ingester) Close() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil
	}
	in.closed = true
	in.mu.Unlock()
	in.wg.Wait()
	in.mu.Lock()
	if in.failedErr() != nil {
		return in.store.w.Close()
	}
	err := in.store.snapshot()
	return errors.Join(err, in.store.w.Close())
}

// Stats returns a snapshot of the counters.
func (in *Ingester) Stats() Stats {
	in.mu.Lock()
	pending, heldNow := in.store.pending.len(), len(in.store.held)
	in.mu.Unlock()
	c := &in.c
	return Stats{
		Records: c.records.Load(), Rejected: c.rejected.Load(), Batches: c.batches.Load(), RejectedBatches: c.rejectedBatches.Load(),
		Predictions: c.predictions.Load(), Labels: c.labels.Load(), Corrections: c.corrections.Load(),
		DuplicateFeedback: c.duplicates.Load(), Held: c.held.Load(), Expired: c.expired.Load(),
		UnknownFeedback: c.unknown.Load(), Untracked: c.untracked.Load(),
		Pending: pending, HeldNow: heldNow, Snapshots: c.snapshots.Load(),
	}
}

func (in *Ingester) nowMS() int64 { return in.cfg.Now().UnixMilli() }

func (in *Ingester) newDecoder(lim Limits) *decoder {
	d := in.decPool.get()
	now := in.cfg.Now()
	d.defs = in.cfg.Definitions()
	d.now = now.UnixMilli()
	d.maxT = now.Add(in.cfg.MaxFuture).UnixMilli()
	d.minT = now.Add(-in.cfg.Retention).UnixMilli()
	d.maxFuture = in.cfg.MaxFuture
	d.maxRecords = lim.MaxRecords
	d.errs = nil
	d.idxBase = 0
	if len(d.intern) > maxIntern/2 {
		clear(d.intern)
	}
	return d
}

func (in *Ingester) putDecoder(d *decoder) {
	d.defs = nil
	d.resetSlabs()
	in.decPool.put(d)
}

func (in *Ingester) reject(err error, records int) {
	var be *BatchError
	if errors.As(err, &be) {
		in.c.rejectedBatches.Add(1)
		in.c.rejected.Add(uint64(records))
	}
}

// Predictions ingests a predictions body (JSON array or NDJSON).
func (in *Ingester) Predictions(ctx context.Context, body Body) (Result, error) {
	buf, f, err := readBody(body, in.cfg.Limits)
	if err != nil {
		in.reject(err, 0)
		return Result{}, err
	}
	defer putBuf(buf)
	d := in.newDecoder(in.cfg.Limits)
	defer in.putDecoder(d) // after the records are routed: they live in its slabs
	recs, d2, err := in.decodePredictions(d, buf.Bytes(), f, in.cfg.Limits)
	if d2 != nil {
		defer in.putDecoder(d2)
	}
	if err != nil {
		in.reject(err, len(recs))
		return Result{}, err
	}
	return in.IngestPredictions(ctx, d.defs, recs)
}

// parallelDecodeBytes is the smallest NDJSON body decoded by two goroutines.
const parallelDecodeBytes = 64 << 10

// decodeChunks is how many pieces a large NDJSON body is cut into for
// decoding: two goroutines take the next piece whenever they are free, so
// the decode is shared well also when the second goroutine starts late
// (the other core busy) or one piece is slower.
const decodeChunks = 8

// decodePredictions decodes a predictions body with d; a large NDJSON body
// is cut at line boundaries into pieces decoded by d and a second decoder
// (returned: its slabs hold records) in two goroutines. Records, indices
// and errors are exactly those of one sequential decode.
func (in *Ingester) decodePredictions(d *decoder, data []byte, f bodyFormat, lim Limits) ([]Prediction, *decoder, error) {
	if f != formatNDJSON || len(data) < parallelDecodeBytes || runtime.GOMAXPROCS(0) < 2 {
		recs, err := d.decodePredictions(data, f)
		return recs, nil, err
	}
	pieces := cutLines(data, decodeChunks)
	if len(pieces) < 2 {
		recs, err := d.decodePredictions(data, f)
		return recs, nil, err
	}
	// base[k] is the index of piece k's first record.
	base := make([]int, len(pieces)+1)
	for k, pc := range pieces {
		base[k+1] = base[k] + countRecords(pc)
	}
	total := base[len(pieces)]
	if total > d.maxRecords {
		return nil, nil, &TooLargeError{What: "records", Limit: int64(d.maxRecords)}
	}
	d2 := in.newDecoder(lim)
	d2.defs, d2.now, d2.minT, d2.maxT, d2.maxFuture = d.defs, d.now, d.minT, d.maxT, d.maxFuture
	out := d.predBuf(total)[:total] // each piece appends (zeroes) its records
	type pieceResult struct {
		n    int
		errs []RecordError
		err  error
	}
	results := make([]pieceResult, len(pieces))
	var next atomic.Int32
	work := func(dd *decoder) {
		for {
			k := int(next.Add(1) - 1)
			if k >= len(pieces) {
				return
			}
			dd.idxBase = base[k]
			nerr := len(dd.errs)
			dst, err := dd.appendPredictions(pieces[k], f, out[base[k]:base[k]:base[k+1]])
			results[k] = pieceResult{n: len(dst), errs: dd.errs[nerr:len(dd.errs):len(dd.errs)], err: err}
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		work(d2)
	}()
	work(d)
	<-done
	var errs []RecordError
	for k, r := range results {
		if r.err != nil {
			return nil, d2, r.err
		}
		errs = append(errs, r.errs...)
		if len(errs) == 0 && r.n != base[k+1]-base[k] {
			return nil, d2, fmt.Errorf("ingest: parallel decode: piece %d has %d records, counted %d", k, r.n, base[k+1]-base[k])
		}
	}
	if len(errs) > 0 {
		return nil, d2, &BatchError{Errors: errs}
	}
	return out, d2, nil
}

// cutLines cuts data into at most n pieces of about equal size, each
// ending at a line boundary (the last at the end of data).
func cutLines(data []byte, n int) [][]byte {
	pieces := make([][]byte, 0, n)
	from := 0
	for k := 1; k < n; k++ {
		at := max(len(data)*k/n, from)
		i := bytes.IndexByte(data[at:], '\n')
		if i < 0 {
			break
		}
		if cut := at + i + 1; cut < len(data) {
			pieces = append(pieces, data[from:cut])
			from = cut
		}
	}
	return append(pieces, data[from:])
}

// Feedback ingests a feedback body (JSON array or NDJSON).
func (in *Ingester) Feedback(ctx context.Context, body Body) (Result, error) {
	buf, f, err := readBody(body, in.cfg.Limits)
	if err != nil {
		in.reject(err, 0)
		return Result{}, err
	}
	defer putBuf(buf)
	d := in.newDecoder(in.cfg.Limits)
	recs, err := d.decodeFeedback(buf.Bytes(), f)
	defs := d.defs
	in.putDecoder(d)
	if err != nil {
		in.reject(err, len(recs))
		return Result{}, err
	}
	return in.IngestFeedback(ctx, defs, recs)
}

// Evaluation ingests one offline run (a JSON object).
func (in *Ingester) Evaluation(ctx context.Context, body Body) (Result, error) {
	buf, f, err := readBody(body, in.cfg.EvaluationLimits)
	if err != nil {
		in.reject(err, 0)
		return Result{}, err
	}
	defer putBuf(buf)
	d := in.newDecoder(in.cfg.EvaluationLimits)
	defer in.putDecoder(d)
	ev, err := d.decodeEvaluation(buf.Bytes(), f)
	if err != nil {
		in.reject(err, 0)
		return Result{}, err
	}
	return in.IngestEvaluation(ctx, d.defs, ev)
}

// source labels of a batch.
type source struct{ name, dataset, run string }

var online = source{name: SourceOnline}

func (in *Ingester) bucketOf(t int64) int64 {
	b := t - t%in.bucket
	if t < 0 && t%in.bucket != 0 {
		b -= in.bucket
	}
	return b
}

// IngestPredictions ingests decoded, validated online predictions (as
// Predictions decodes them). defs must be the definitions they were
// validated against.
func (in *Ingester) IngestPredictions(ctx context.Context, defs *definitions.Definitions, recs []Prediction) (Result, error) {
	res := Result{Records: len(recs)}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	chk := in.precheck(recs)
	pre := in.preRoute(defs, online, recs)
	defer pre.wait() // the plans read recs
	chk.wait()
	keys := chk.keys
	err := in.run(&res, online, defs, func(r *router, now int64) (errs []RecordError) {
		tx := r.tx
		// The pre-routed deltas are usable unless the batch holds
		// predictions already pending (a retry) or a feature-type race.
		usePre := !chk.dup && !chk.pendingNow(tx)
		usePre = usePre && pre.adopt(r)
		anyHeld := tx.anyHeld()
		var slices []string
		for i := range recs {
			p := &recs[i]
			key := keys[i]
			m, _ := defs.Model(p.Model)
			var e *entry
			var pcName string
			if usePre {
				e, pcName = pre.entries[i], pre.predNames[i]
			} else {
				if tx.hasEntry(key) {
					res.DuplicatePredictions++
					continue
				}
				slices = defs.SlicesFor(p.Model, p, slices[:0])
				e, pcName = r.observe(p, m, slices)
			}
			if rerr := r.classify(i, p.Model, m, e, pcName); rerr != nil {
				errs = append(errs, *rerr)
				continue
			}
			res.Predictions++
			var h *held
			if anyHeld {
				h = tx.heldFor(key)
			}
			if p.HasLabel && (h == nil || !h.hasLabel) {
				if rerr := r.label(i, "label", p.Model, e, p.Label, p.Time); rerr != nil {
					errs = append(errs, *rerr)
					continue
				}
			}
			if h != nil {
				if rerr := r.applyFeedback(i, p.Model, e, h.label, h.hasLabel, h.labelAt, h.measures); rerr != nil {
					errs = append(errs, *rerr)
					continue
				}
				tx.delHeld(key)
			}
			if tx.size() >= in.cfg.MaxPending {
				res.Untracked++
				continue
			}
			if usePre {
				tx.putNewEntry(key, e) // known not pending
			} else {
				tx.putEntry(key, e)
			}
		}
		return errs
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// precheck finds a prediction batch's join keys, whether two of its
// records share one, and whether any is already pending, before the batch
// takes the ingester lock: for a large batch in a goroutine while the
// batch is planned (the pending map is read under in.mu's read lock).
// The membership answer is valid while the pending map's gen is
// unchanged; pendingNow checks it again under the lock otherwise.
type precheck struct {
	keys    []string
	dup     bool   // a key twice in the batch
	pending bool   // a key pending in the store at gen
	gen     uint64 // the pending map's gen when pending was found
	done    chan struct{}
}

func (in *Ingester) precheck(recs []Prediction) *precheck {
	c := &precheck{keys: make([]string, len(recs))}
	if !parallelApply(len(recs)) {
		c.run(in, recs)
		return c
	}
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		c.run(in, recs)
	}()
	return c
}

func (c *precheck) run(in *Ingester, recs []Prediction) {
	seen := make(map[string]struct{}, len(recs))
	for i := range recs {
		key := recs[i].joinKey()
		c.keys[i] = key
		if _, dup := seen[key]; dup {
			c.dup = true
		}
		seen[key] = struct{}{}
	}
	if c.dup {
		return // the pre-routed deltas are not used: no need to know
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	c.gen = in.store.pending.gen
	for _, key := range c.keys {
		if in.store.pending.has(key) {
			c.pending = true
			break
		}
	}
}

// wait waits until the keys are known. Only the batch's goroutine calls it.
func (c *precheck) wait() {
	if c.done != nil {
		<-c.done
	}
}

// pendingNow reports whether any key of the batch is pending in tx (fresh:
// it has no entries of its own yet), from the precheck if the pending map
// has not changed since. Called under in.mu, without duplicate keys.
func (c *precheck) pendingNow(tx *txn) bool {
	if tx.s.pending.gen == c.gen {
		return c.pending
	}
	for _, key := range c.keys {
		if tx.hasEntry(key) {
			return true
		}
	}
	return false
}

// IngestFeedback ingests decoded, validated feedback.
func (in *Ingester) IngestFeedback(ctx context.Context, defs *definitions.Definitions, recs []Feedback) (Result, error) {
	res := Result{Records: len(recs)}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	err := in.run(&res, online, defs, func(r *router, now int64) (errs []RecordError) {
		tx := r.tx
		for i := range recs {
			fb := &recs[i]
			key := joinKey(fb.Model, fb.ID)
			at := now
			if fb.HasTime {
				at = fb.Time
			}
			if ne := tx.entry(key); ne != nil {
				measured := len(ne.measures)
				before := *r.res
				if rerr := r.applyFeedback(i, fb.Model, ne, fb.Label, fb.HasLabel, at, fb.Measures); rerr != nil {
					errs = append(errs, *rerr)
					continue
				}
				if r.res.Labels != before.Labels || r.res.Corrected != before.Corrected || len(ne.measures) != measured {
					tx.putEntry(key, ne) // else a duplicate: nothing to log
				}
				continue
			}
			if in.store.expired(key) {
				res.Expired++
				continue
			}
			h := tx.heldFor(key)
			var nh held
			if h != nil {
				nh = *h
				nh.measures = append([]Measure(nil), h.measures...)
			} else {
				if tx.size() >= in.cfg.MaxPending {
					res.NotHeld++
					continue
				}
				nh.arrived = now
			}
			if fb.HasLabel {
				nh.label, nh.hasLabel, nh.labelAt, nh.hasTime = fb.Label, true, at, fb.HasTime
			}
			nh.measures = append(nh.measures, fb.Measures...)
			tx.putHeld(key, &nh)
			res.Held++
		}
		return errs
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// IngestEvaluation ingests one decoded offline run through the same routing
// as online predictions, with source="offline", dataset and run labels and
// the run's timestamp. Offline records are not kept for joins.
func (in *Ingester) IngestEvaluation(ctx context.Context, defs *definitions.Definitions, ev *Evaluation) (Result, error) {
	res := Result{Records: len(ev.Records)}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	src := source{SourceOffline, ev.Dataset, ev.Run}
	pre := in.preRoute(defs, src, ev.Records)
	defer pre.wait()
	err := in.run(&res, src, defs, func(r *router, now int64) (errs []RecordError) {
		var slices []string
		m, _ := defs.Model(ev.Model)
		usePre := pre.adopt(r)
		for i := range ev.Records {
			p := &ev.Records[i]
			var e *entry
			var pcName string
			if usePre {
				e, pcName = pre.entries[i], pre.predNames[i]
			} else {
				slices = defs.SlicesFor(p.Model, p, slices[:0])
				e, pcName = r.observe(p, m, slices)
			}
			if rerr := r.classify(i, p.Model, m, e, pcName); rerr != nil {
				rerr.Field = fmt.Sprintf("records[%d].prediction", i)
				errs = append(errs, *rerr)
				continue
			}
			res.Predictions++
			if p.HasLabel {
				if rerr := r.label(i, fmt.Sprintf("records[%d].label", i), p.Model, e, p.Label, math.MinInt64); rerr != nil {
					errs = append(errs, *rerr)
				}
			}
		}
		return errs
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

func (in *Ingester) count(res *Result) {
	c := &in.c
	c.batches.Add(1)
	c.records.Add(uint64(res.Records))
	c.predictions.Add(uint64(res.Predictions))
	c.labels.Add(uint64(res.Labels))
	c.corrections.Add(uint64(res.Corrected))
	c.duplicates.Add(uint64(res.DuplicateFeedback))
	c.held.Add(uint64(res.Held))
	c.expired.Add(uint64(res.Expired))
	c.untracked.Add(uint64(res.Untracked))
}

func (in *Ingester) maybeSweep(now int64) {
	if now-in.store.lastSweep >= in.cfg.SweepInterval.Milliseconds() || now < in.store.lastSweep {
		in.store.sweep(now, in.cfg.JoinWindow.Milliseconds(), &in.c)
	}
}

// run processes one batch in three stages:
//
//  1. under in.mu: fn makes the join decisions (staged in a txn) and builds
//     the deltas; on record errors nothing happens. Otherwise the txn gets
//     the next sequence number, its record is encoded and it is applied to
//     the in-memory store at once (later batches build on it).
//  2. without a lock: the txn record is logged to the join WAL (fsynced;
//     concurrent batches share fsyncs).
//  3. in sequence order (one batch at a time): the deltas and the commit
//     marker (FamilyIngestCommit = seq) are appended and committed to the
//     tsdb in one Commit.
//
// A failure in stage 2 or 3 poisons the ingester: the in-memory store may
// hold decisions that never reached the tsdb, so every later batch fails
// until a restart recovers both from what is durable (see
// docs/ingest.md).
func (in *Ingester) run(res *Result, src source, defs *definitions.Definitions, fn func(r *router, now int64) []RecordError) error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return errors.New("ingest: closed")
	}
	if err := in.failedErr(); err != nil {
		in.mu.Unlock()
		return err
	}
	now := in.nowMS()
	in.maybeSweep(now)
	tx := in.store.begin(in.cfg.MaxModelClasses)
	dl := newDeltas()
	r := &router{in: in, dl: dl, tx: tx, defs: defs, src: src, res: res}
	errs := fn(r, now)
	dl = r.dl
	if len(errs) > 0 {
		in.mu.Unlock()
		err := &BatchError{Errors: errs}
		in.reject(err, res.Records)
		return err
	}
	var rec []byte
	var recBuf *[]byte // pooled buffer of rec
	var seq uint64
	if !tx.empty() {
		in.store.seq++
		seq = in.store.seq
		recBuf = recPool.get()
		rec = tx.encode((*recBuf)[:0], seq, in.committed.Load())
		in.inflight++
		in.wg.Add(1)
		t := now
		if t <= in.lastT {
			t = in.lastT + 1
		}
		in.lastT = t
		dl.floats = append(dl.floats, floatSample{commitMarker, t, float64(seq)})
		for _, ca := range tx.newClasses {
			dl.floats = append(dl.floats, floatSample{labels.FromStrings(metricName, FamilyClassIndex, LabelModel, ca.model, LabelClass, ca.class), t, float64(ca.idx)})
		}
	}
	if rec == nil {
		in.mu.Unlock()
	} else {
		// The txn is applied to memory, still under the lock (later
		// batches decide on top of it), while this goroutine goes on with
		// the batch's own deltas, which the store does not hold. The
		// batch takes the lock again before it returns, so it returns
		// only once the txn is applied.
		go func() {
			tx.apply()
			in.mu.Unlock()
		}()
	}

	defer dl.release()
	if rec == nil {
		// No join decisions (an offline run with known classes, duplicate
		// feedback): nothing to order.
		r.settle()
		if err := in.appendCommit(dl); err != nil {
			return err
		}
		in.count(res)
		return nil
	}
	// The intent is logged and fsynced while the batch's other work goes
	// on: applying the txn to memory (above; a failed Log stops the
	// ingester anyway), and labelling and encoding the batch's series and
	// staging them in the Storage's Appender. Nothing reaches the Storage
	// before the intent is durable: the Commit waits for it.
	logged := make(chan error, 1)
	go func() { logged <- in.store.w.Log(rec) }() // copies rec
	r.settle()
	var prep recorder
	app, perr := in.stage(&prep, dl.record(&prep))
	err := <-logged
	if cap(rec) <= maxPooledRec {
		*recBuf = rec
		recPool.put(recBuf)
	}
	in.turnMu.Lock()
	for err == nil && in.failed == nil && in.committed.Load() != seq-1 {
		in.turn.Wait()
	}
	if err == nil && in.failed != nil {
		err = in.failed
	}
	if err == nil {
		err = commitStaged(app, perr)
	} else if app != nil {
		app.Rollback()
	}
	if err != nil {
		if in.failed == nil {
			in.failed = fmt.Errorf("ingest: stopped after a failed commit, restart to recover: %w", err)
			in.cfg.Logger.Error("ingest: batch failed after its join decisions were made; ingester stopped until restart", "seq", seq, "err", err)
		}
	} else {
		in.committed.Store(seq)
	}
	in.turn.Broadcast()
	in.turnMu.Unlock()

	in.mu.Lock()
	in.inflight--
	in.wg.Done()
	if err == nil && in.inflight == 0 && in.store.w.Stats().Bytes-in.store.snapBytes >= uint64(in.cfg.SnapshotBytes) {
		if serr := in.store.snapshot(); serr != nil {
			in.cfg.Logger.Error("ingest: join store snapshot failed", "err", serr)
		} else {
			in.c.snapshots.Add(1)
		}
	}
	in.mu.Unlock()
	if err != nil {
		return err
	}
	in.count(res)
	return nil
}

// recPool holds buffers for the join WAL records of batches (the WAL copies
// a record); buffers above maxPooledRec are dropped.
var recPool = newFreeList(4, func() *[]byte { return new([]byte) })

const maxPooledRec = 8 << 20

func (in *Ingester) failedErr() error {
	in.turnMu.Lock()
	defer in.turnMu.Unlock()
	return in.failed
}

func (in *Ingester) appendCommit(dl *deltas) error {
	app := in.cfg.Storage.Appender()
	if err := dl.appendTo(app); err != nil {
		app.Rollback()
		return fmt.Errorf("ingest: storage: %w", err)
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("ingest: storage: %w", err)
	}
	return nil
}

// recorder is an Appender that keeps what is appended, for replay into a
// Storage's Appender (commitRecorded).
type recorder struct{ calls []recCall }

type recCall struct {
	lset  labels.Labels
	t     int64
	delta []byte
	v     float64
	float bool // a float sample v, else a sketch delta
}

func (r *recorder) AddSketch(lset labels.Labels, t int64, delta []byte) error {
	r.calls = append(r.calls, recCall{lset: lset, t: t, delta: delta})
	return nil
}

func (r *recorder) AddFloat(lset labels.Labels, t int64, v float64) error {
	r.calls = append(r.calls, recCall{lset: lset, t: t, v: v, float: true})
	return nil
}

func (r *recorder) Commit() error { return nil }
func (r *recorder) Rollback()     {}

// stage appends what rec recorded (rerr: the error recording returned) to
// a new Storage Appender without committing it: the Appender's validation
// and encoding run while the batch's intent is being made durable. On
// error the Appender is rolled back and nil.
//
// Staging before the batch's turn is safe because an Appender's writes
// are invisible until its Commit, and a batch's commit marker and class
// index samples have timestamps above those of every earlier batch (run
// assigns them under the lock), so they pass the Storage's order checks
// whichever of the batches in flight stages first.
func (in *Ingester) stage(rec *recorder, rerr error) (Appender, error) {
	if rerr != nil {
		return nil, fmt.Errorf("ingest: storage: %w", rerr)
	}
	app := in.cfg.Storage.Appender()
	for _, c := range rec.calls {
		var err error
		if c.float {
			err = app.AddFloat(c.lset, c.t, c.v)
		} else {
			err = app.AddSketch(c.lset, c.t, c.delta)
		}
		if err != nil {
			app.Rollback()
			return nil, fmt.Errorf("ingest: storage: %w", err)
		}
	}
	return app, nil
}

// commitStaged commits what stage staged (serr: the error it returned).
func commitStaged(app Appender, serr error) error {
	if serr != nil {
		return serr
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("ingest: storage: %w", err)
	}
	return nil
}

func joinKey(model, id string) string { return model + "\x00" + id }

// taskCode is a Task in one byte (join store encoding).
type taskCode uint8

const (
	taskNone taskCode = iota
	taskBinary
	taskMulticlass
	taskRegression
)

func codeOf(t definitions.Task) taskCode {
	switch t {
	case definitions.TaskBinary:
		return taskBinary
	case definitions.TaskMulticlass:
		return taskMulticlass
	case definitions.TaskRegression:
		return taskRegression
	}
	return taskNone
}

// entry is a prediction as the join needs it later: a pending prediction
// in the join store, or the transient target of an inline label.
type entry struct {
	t         int64 // prediction time, ms
	version   string
	slices    []string
	task      taskCode
	predClass int32 // class index of the predicted class, -1 none
	hasScore  bool
	score     float64
	pred      float64 // numeric prediction (regression)
	scores    []ClassScore
	hasLabel  bool
	label     definitions.Value // the label applied
	labelAt   int64
	measures  []string // feedback measures already observed
}

func (e *entry) clone() *entry {
	c := *e
	c.measures = append([]string(nil), e.measures...)
	return &c
}

// held is feedback waiting for its prediction.
type held struct {
	label    definitions.Value
	hasLabel bool
	hasTime  bool
	labelAt  int64
	arrived  int64
	measures []Measure
}

// router builds a batch's deltas.
type router struct {
	in   *Ingester
	dl   *deltas
	tx   *txn
	defs *definitions.Definitions
	src  source
	res  *Result
	// scratch
	featBuf []featOp
	measBuf []measOp
	// distinct slice lists of the batch (shared by entries)
	sliceLists [][]string
	pre        *preRouted // set while pre-routing
	// ents is a slab of entries for plan: one allocation per batch
	// instead of one per record (the join store copies the entries it
	// keeps into its pendingMap).
	ents []entry
	// groups of recent (model, version, bucket, slice list), so that a
	// record resolves its slices' groups once, not once per sketch family
	// and slice; valid for gcacheDL only.
	gcache   []groupsEnt
	gcacheDL *deltas
	gnext    int
	// later holds the group updates of join decisions made while the
	// adopted pre-routed plans are still being applied to the same groups
	// (see touch); waitPre waits for those plans.
	later   []groupUpdate
	waitPre func()
}

// groupUpdate is what a join decision adds to a prediction's groups (the
// groups of e's slices): a label delay, a regression pair, a classification
// label, or a feedback measure. The fields read from e are copied at the
// decision.
type groupUpdate struct {
	kind      uint8
	e         *entry
	model     string
	n         int64   // +1 adds, −1 retracts (labels)
	x, y      float64 // delay; prediction and label; score; measure value
	actual    int     // class index of the label
	predClass int32
	pos       bool   // the label is the positive class
	binScore  bool   // a binary prediction with a score
	text      string // label text; measure name
	scores    []ClassScore
}

// Kinds of groupUpdate.
const (
	updDelay uint8 = iota
	updRegression
	updClass
	updMeasure
)

// touch makes u now, or after the adopted pre-routed plans have been
// applied (settle) while they are being applied: every sketch then sees the
// plans' updates first, in the same order as if the plans had been applied
// before the join decisions.
func (r *router) touch(u groupUpdate) {
	if r.waitPre != nil {
		r.later = append(r.later, u)
		return
	}
	r.update(&u)
}

func (r *router) update(u *groupUpdate) {
	gs := r.groups(u.e, u.model)
	switch u.kind {
	case updDelay:
		for _, g := range gs {
			if g.labelDelay == nil {
				g.labelDelay = newLogHist()
			}
			_ = g.labelDelay.Add(u.x)
		}
	case updRegression:
		for _, g := range gs {
			if u.n > 0 {
				if g.regression == nil {
					g.regression = sketch.NewRegression()
				}
				_ = g.regression.Add(u.y, u.x)
			} else {
				if g.regressionRetracted == nil {
					g.regressionRetracted = sketch.NewRegression()
				}
				_ = g.regressionRetracted.Add(u.y, u.x)
			}
		}
	case updClass:
		for _, g := range gs {
			if u.predClass >= 0 {
				if g.confusion == nil {
					g.confusion = sketch.NewConfusion()
				}
				g.confusion.AddN(u.actual, int(u.predClass), u.n)
			}
			if u.binScore {
				if g.scoreHist == nil {
					g.scoreHist = newScoreHist()
				}
				_ = g.scoreHist.AddN(u.x, u.pos, u.n)
			}
			for _, cs := range u.scores {
				_ = g.clsScoreHist(cs.Class).AddN(cs.Score, cs.Class == u.text, u.n)
			}
		}
	case updMeasure:
		col := r.dl.columns(u.model).measCol(u.text)
		for _, g := range gs {
			g.observeMeasure(col, u.x)
		}
	}
}

// settle waits for the adopted pre-routed plans and makes the group
// updates touch deferred, in order. Called without the ingester lock: the
// groups are the batch's own.
func (r *router) settle() {
	if r.waitPre == nil {
		return
	}
	r.waitPre()
	r.waitPre = nil
	for i := range r.later {
		r.update(&r.later[i])
	}
	r.later = nil
}

// groupsEnt caches the groups of e.slices for one (model, version, bucket).
type groupsEnt struct {
	model, version string
	bucket         int64
	slices         []string // compared by identity (sliceList shares them)
	groups         []*group
}

const groupCacheSize = 16

// groups returns the groups of e's slices (model, e.version, e's bucket) in
// r.dl, in the order of e.slices.
func (r *router) groups(e *entry, model string) []*group {
	if r.gcacheDL != r.dl {
		r.gcache, r.gcacheDL, r.gnext = r.gcache[:0], r.dl, 0
	}
	b := r.in.bucketOf(e.t)
	for i := range r.gcache {
		c := &r.gcache[i]
		if c.bucket == b && len(c.slices) == len(e.slices) && (len(e.slices) == 0 || &c.slices[0] == &e.slices[0]) &&
			c.model == model && c.version == e.version {
			return c.groups
		}
	}
	gs := make([]*group, len(e.slices))
	for i, s := range e.slices {
		gs[i] = r.dl.group(r.key(e, model, s))
	}
	ent := groupsEnt{model: model, version: e.version, bucket: b, slices: e.slices, groups: gs}
	if len(r.gcache) < groupCacheSize {
		r.gcache = append(r.gcache, ent)
	} else {
		r.gcache[r.gnext] = ent
		r.gnext = (r.gnext + 1) % groupCacheSize
	}
	return gs
}

func (r *router) key(e *entry, model, slice string) groupKey {
	return groupKey{model: model, version: e.version, slice: slice, source: r.src.name, dataset: r.src.dataset, run: r.src.run, bucket: r.in.bucketOf(e.t)}
}

// undeclaredPositive is the positive-label rule of binary models that are
// not declared (no positive class): 1, true, yes, positive.
func undeclaredPositive(label string) bool {
	switch strings.ToLower(label) {
	case "1", "true", "yes", "positive":
		return true
	}
	return false
}

func isPositive(m *definitions.Model, label string) bool {
	if m != nil && m.PositiveClass != "" {
		return m.IsPositive(label)
	}
	return undeclaredPositive(label)
}

// predictedClass is the predicted class of a classification record: the
// prediction when given, else the class the score(s) pick.
func predictedClass(m *definitions.Model, task definitions.Task, p *Prediction) (string, bool) {
	if !p.Prediction.IsNull() {
		return p.Prediction.String(), true
	}
	switch task {
	case definitions.TaskBinary:
		if !p.HasScore {
			return "", false
		}
		pos := p.Score >= 0.5
		if m != nil && len(m.Classes) == 2 && m.PositiveClass != "" {
			if pos {
				return m.PositiveClass, true
			}
			if m.Classes[0] == m.PositiveClass {
				return m.Classes[1], true
			}
			return m.Classes[0], true
		}
		if pos {
			return "1", true
		}
		return "0", true
	case definitions.TaskMulticlass:
		best := -1
		for i, cs := range p.Scores {
			if best < 0 || cs.Score > p.Scores[best].Score || cs.Score == p.Scores[best].Score && cs.Class < p.Scores[best].Class {
				best = i
			}
		}
		if best >= 0 {
			return p.Scores[best].Class, true
		}
	}
	return "", false
}

// observe routes the label-independent part of a prediction (count,
// predicted class, scores, prediction, features, measures) to every slice
// and returns what a label needs later.
func (r *router) observe(p *Prediction, m *definitions.Model, slices []string) (*entry, string) {
	r.featBuf, r.measBuf = r.featBuf[:0], r.measBuf[:0]
	pl := r.plan(p, m, slices, &r.featBuf, &r.measBuf)
	for _, g := range pl.groups {
		pl.applyTo(g)
	}
	return pl.e, pl.pcName
}

// Feature operations of a recPlan.
const (
	featSkip uint8 = iota // null, type conflict or NaN
	featNum
	featCat
)

// featOp is what one feature of a record does to every slice's group: its
// column, kind, and (numeric) its value placed in the histogram buckets.
type featOp struct {
	o   sketch.LogObservation
	fi  *featInfo
	col int32
	val int32 // categorical: the value's id in fi (-1: add directly)
	op  uint8
}

// measOp is featOp for a measure (ok: the value is not NaN).
type measOp struct {
	o   sketch.LogObservation
	col int32
	ok  bool
}

// recPlan is the label-independent part of one prediction, resolved once
// (entry, predicted class, columns, buckets, the slices' groups) and then
// applied to each group: the per-slice work is only sketch updates.
type recPlan struct {
	p          *Prediction
	e          *entry
	pcName     string
	groups     []*group
	feats      []featOp // by position in p.Features
	meas       []measOp // by position in p.Measures
	scoreObs   sketch.LogObservation
	scoreOK    bool
	regression bool
}

// plan resolves p (see recPlan), appending its feature and measure
// operations to *feats and *meas.
func (r *router) plan(p *Prediction, m *definitions.Model, slices []string, feats *[]featOp, meas *[]measOp) recPlan {
	task := taskOf(m, p)
	var e *entry
	if len(r.ents) > 0 {
		e, r.ents = &r.ents[0], r.ents[1:]
	} else {
		e = new(entry)
	}
	*e = entry{t: p.Time, version: p.Version, task: codeOf(task), predClass: -1, hasScore: p.HasScore, score: p.Score}
	e.slices = r.sliceList(slices)
	pl := recPlan{p: p, e: e, regression: task == definitions.TaskRegression}
	if task == definitions.TaskBinary || task == definitions.TaskMulticlass {
		pl.pcName, _ = predictedClass(m, task, p)
		if task == definitions.TaskMulticlass && len(p.Scores) > 0 {
			e.scores = p.Scores
			if len(e.scores) > r.in.cfg.MaxScoreClasses {
				e.scores = e.scores[:r.in.cfg.MaxScoreClasses]
			}
		}
	} else if task == definitions.TaskRegression {
		e.pred = p.Prediction.Num()
	}
	// Feature types and columns, once per record; numeric values are
	// placed in the histograms' buckets once, not once per slice (every
	// ingest LogHistogram has the default schema).
	cols := r.dl.columns(p.Model)
	f0 := len(*feats)
	for i := range p.Features {
		f := &p.Features[i]
		if f.Value.IsNull() {
			*feats = append(*feats, featOp{col: -1})
			continue
		}
		fi := cols.info(i, f.Name, func() definitions.FeatureType {
			if m != nil {
				if decl, ok := m.Feature(f.Name); ok {
					return decl.Type
				}
			}
			return r.featureType(p.Model, f.Name, f.Value)
		})
		op := featOp{col: int32(fi.col), fi: fi}
		switch fi.typ {
		case definitions.Numeric:
			if f.Value.Kind() != definitions.KindNumber {
				r.res.FeatureTypeConflicts++
				break
			}
			var err error
			if op.o, err = lhTemplate.Observation(f.Value.Num()); err == nil {
				op.op = featNum
			} // else NaN (only through IngestPredictions): Add refused it
		case definitions.Categorical:
			op.op = featCat
			op.val = fi.valID(f.Value.String())
		}
		*feats = append(*feats, op)
	}
	pl.feats = (*feats)[f0:len(*feats):len(*feats)]
	m0 := len(*meas)
	for _, ms := range p.Measures {
		o, err := lhTemplate.Observation(ms.Value)
		*meas = append(*meas, measOp{o: o, col: int32(cols.measCol(ms.Name)), ok: err == nil})
	}
	pl.meas = (*meas)[m0:len(*meas):len(*meas)]
	if p.HasScore {
		var err error
		pl.scoreObs, err = lhTemplate.Observation(p.Score)
		pl.scoreOK = err == nil
	}
	pl.groups = r.groups(e, p.Model)
	return pl
}

// applyTo makes pl's sketch updates in g (one of pl.groups). Updates of
// different groups are independent: applyTo may run concurrently for
// distinct groups.
func (pl *recPlan) applyTo(g *group) {
	p, e := pl.p, pl.e
	if g.predictions == nil {
		g.predictions = sketch.NewMoments()
	}
	_ = g.predictions.Add(1)
	if pl.pcName != "" {
		if g.predictedClass == nil {
			g.predictedClass = newCategorical()
		}
		g.predictedClass.Add(pl.pcName)
	}
	if p.HasScore {
		if g.score == nil {
			g.score = newLogHist()
		}
		if pl.scoreOK {
			g.score.AddObservation(pl.scoreObs)
		}
	}
	for _, cs := range e.scores {
		_ = g.clsScore(cs.Class).Add(cs.Score)
	}
	if pl.regression {
		if g.prediction == nil {
			g.prediction = newLogHist()
		}
		_ = g.prediction.Add(e.pred)
	}
	for i := range pl.feats {
		f := &pl.feats[i]
		switch f.op {
		case featNum:
			g.numFeat(int(f.col)).AddObservation(f.o)
		case featCat:
			g.addCat(int(f.col), f.fi, f.val, p.Features[i].Value.String())
		}
	}
	for i := range pl.meas {
		ms := &pl.meas[i]
		if ms.ok {
			g.observeMeasureObs(int(ms.col), p.Measures[i].Value, ms.o)
		} else {
			g.observeMeasure(int(ms.col), p.Measures[i].Value) // NaN: refused, as before
		}
	}
}

// parallelRouteRecords is the smallest batch whose groups are updated by
// two goroutines.
const parallelRouteRecords = 256

// parallelApply reports whether n plans are applied by two goroutines.
func parallelApply(n int) bool {
	return n >= parallelRouteRecords && runtime.GOMAXPROCS(0) >= 2
}

// planChunk is how many plans a planApplier hands its goroutines at a time.
const planChunk = 128

// planApplier applies a batch's plans to their groups in two goroutines
// while the batch's goroutine is still making the plans. The groups are
// split between the two by their load (estimated on the first plans;
// groups first seen later go to the less loaded goroutine); each goroutine
// walks the plans in order and updates only its own groups, so every
// sketch sees exactly the sequential sequence of updates (the result is
// bit-identical).
type planApplier struct {
	plans    []recPlan // its backing array is never reallocated (cap ≥ the batch)
	warm     int       // plans made before the goroutines start
	started  bool
	sent     int // plans handed to the goroutines
	work     [2]chan int
	distinct []*group
	sum      [2]int
	left     atomic.Int32
	done     chan struct{}
}

// add appends pl (made by the caller) and hands finished chunks of plans
// to the goroutines.
func (pa *planApplier) add(pl recPlan) {
	pa.plans = append(pa.plans, pl)
	w := len(pl.feats) + len(pl.meas) + 4
	for _, g := range pl.groups {
		if g.load == 0 {
			pa.distinct = append(pa.distinct, g)
			if pa.started {
				g.worker = pa.lighter()
			}
		}
		g.load += w
		if pa.started {
			pa.sum[g.worker] += w
		}
	}
	n := len(pa.plans)
	if !pa.started && n >= pa.warm {
		pa.start()
	}
	if pa.started && n-pa.sent >= planChunk {
		pa.send(n)
	}
}

func (pa *planApplier) lighter() uint8 {
	if pa.sum[1] < pa.sum[0] {
		return 1
	}
	return 0
}

// start assigns the groups seen so far, heaviest first, and starts the
// goroutines.
func (pa *planApplier) start() {
	sort.SliceStable(pa.distinct, func(i, j int) bool { return pa.distinct[i].load > pa.distinct[j].load })
	for _, g := range pa.distinct {
		g.worker = pa.lighter()
		pa.sum[g.worker] += g.load
	}
	pa.started = true
	pa.done = make(chan struct{})
	pa.left.Store(2)
	plans := pa.plans[:cap(pa.plans)] // elements are written before they are sent
	for w := range pa.work {
		pa.work[w] = make(chan int, cap(pa.plans)/planChunk+2)
		go pa.run(uint8(w), plans)
	}
}

// send hands plans [pa.sent, n) to both goroutines.
func (pa *planApplier) send(n int) {
	for _, ch := range pa.work {
		ch <- n
	}
	pa.sent = n
}

func (pa *planApplier) run(w uint8, plans []recPlan) {
	from := 0
	for to := range pa.work[w] {
		for i := from; i < to; i++ {
			pl := &plans[i]
			for _, g := range pl.groups {
				if g.worker == w {
					pl.applyTo(g)
				}
			}
		}
		from = to
	}
	if pa.left.Add(-1) == 0 {
		close(pa.done)
	}
}

// finish hands the last plans over; the returned channel is closed once
// every plan has been applied.
func (pa *planApplier) finish() <-chan struct{} {
	if !pa.started {
		pa.start()
	}
	if pa.sent < len(pa.plans) {
		pa.send(len(pa.plans))
	}
	for _, ch := range pa.work {
		close(ch)
	}
	return pa.done
}

// label applies a first label to e (inline or joined): the labelled
// sketches get +1 and, online, the label delay is observed (at is the
// label's time; math.MinInt64 for none).
func (r *router) label(idx int, field, model string, e *entry, label definitions.Value, at int64) *RecordError {
	if rerr := r.labelled(idx, field, model, e, label, 1); rerr != nil {
		return rerr
	}
	e.hasLabel, e.label, e.labelAt = true, label, at
	r.res.Labels++
	if at != math.MinInt64 {
		r.touch(groupUpdate{kind: updDelay, e: e, model: model, x: math.Max(0, float64(at-e.t)/1000)})
	}
	return nil
}

// labelled adds n (+1 or −1) observations of (prediction, label) to the
// ground-truth sketches of e's slices.
func (r *router) labelled(idx int, field, model string, e *entry, label definitions.Value, n int64) *RecordError {
	m, _ := r.defs.Model(model)
	switch e.task {
	case taskRegression:
		if label.Kind() != definitions.KindNumber {
			return &RecordError{Index: idx, Field: field, Reason: fmt.Sprintf("a regression label must be a number, got %s", label.Kind())}
		}
		r.touch(groupUpdate{kind: updRegression, e: e, model: model, n: n, x: e.pred, y: label.Num()})
		return nil
	case taskBinary, taskMulticlass:
		text := label.String()
		if m != nil && !m.HasClass(text) {
			return &RecordError{Index: idx, Field: field, Reason: fmt.Sprintf("%q is not a class of model %q (classes %s)", text, model, strings.Join(m.Classes, ", "))}
		}
		actual, err := r.tx.classIndex(model, m, text)
		if err != nil {
			return &RecordError{Index: idx, Field: field, Reason: err.Error()}
		}
		r.touch(groupUpdate{kind: updClass, e: e, model: model, n: n, actual: actual, predClass: e.predClass,
			pos: isPositive(m, text), text: text, binScore: e.task == taskBinary && e.hasScore, x: e.score, scores: e.scores})
		return nil
	}
	return &RecordError{Index: idx, Field: field, Reason: "the prediction has no task that takes a label"}
}

// applyFeedback joins feedback to the pending prediction e (mutating e,
// which must be the transaction's copy).
func (r *router) applyFeedback(idx int, model string, e *entry, label definitions.Value, hasLabel bool, at int64, measures []Measure) *RecordError {
	if hasLabel {
		switch {
		case !e.hasLabel:
			if rerr := r.label(idx, "label", model, e, label, at); rerr != nil {
				return rerr
			}
		case sameLabel(e.label, label):
			r.res.DuplicateFeedback++
		default:
			if rerr := r.labelled(idx, "label", model, e, e.label, -1); rerr != nil {
				return rerr
			}
			if rerr := r.labelled(idx, "label", model, e, label, 1); rerr != nil {
				return rerr
			}
			e.label = label
			r.res.Corrected++
		}
	}
	for _, ms := range measures {
		seen := false
		for _, n := range e.measures {
			if n == ms.Name {
				seen = true
				break
			}
		}
		if seen {
			r.res.MeasuresIgnored++
			continue
		}
		e.measures = append(e.measures, ms.Name)
		r.touch(groupUpdate{kind: updMeasure, e: e, model: model, text: ms.Name, x: ms.Value})
	}
	return nil
}

// featureType is the type of an undeclared feature: from the transaction
// under the lock, or (pre-routing, without the lock) from the registry with
// new types staged in the pre-routed batch.
func (r *router) featureType(model, name string, v definitions.Value) definitions.FeatureType {
	if r.tx != nil {
		return r.tx.featureType(model, name, v)
	}
	if ft, ok := r.in.store.registeredFeature(model, name); ok {
		return ft
	}
	ft := definitions.InferFeatureType(v)
	r.pre.feats = append(r.pre.feats, featAssign{model, name, ft})
	return ft
}

// classify resolves the predicted class index of e (under the lock).
func (r *router) classify(idx int, model string, m *definitions.Model, e *entry, pcName string) *RecordError {
	if pcName == "" {
		return nil
	}
	i, err := r.tx.classIndex(model, m, pcName)
	if err != nil {
		return &RecordError{Index: idx, Field: "prediction", Reason: err.Error()}
	}
	e.predClass = int32(i)
	return nil
}

// preRouted is a batch routed before taking the lock.
type preRouted struct {
	dl        *deltas
	entries   []*entry
	predNames []string
	feats     []featAssign
	res       Result
	// applied is closed when the plans have been applied to dl's groups
	// (nil: they were applied before preRoute returned).
	applied <-chan struct{}
	pb      *planBuf
}

// wait waits until the plans have been applied. Only the batch's goroutine
// calls it (several times).
func (pre *preRouted) wait() {
	if pre.applied != nil {
		<-pre.applied
		pre.applied = nil
		pre.pb.release()
		pre.pb = nil
	}
}

// preRoute routes the label-independent part of recs (the bulk of the
// work) in the caller's goroutine, so that concurrent requests use every
// core; the lock then only makes join decisions.
func (in *Ingester) preRoute(defs *definitions.Definitions, src source, recs []Prediction) *preRouted {
	pre := &preRouted{dl: newDeltas(), entries: make([]*entry, len(recs)), predNames: make([]string, len(recs))}
	r := &router{in: in, dl: pre.dl, defs: defs, src: src, res: &pre.res, pre: pre, ents: make([]entry, len(recs))}
	pb := planPool.Get().(*planBuf)
	nf, nm := 0, 0
	for i := range recs {
		nf, nm = nf+len(recs[i].Features), nm+len(recs[i].Measures)
	}
	if cap(pb.feats) < nf {
		pb.feats = make([]featOp, 0, nf)
	}
	if cap(pb.meas) < nm {
		pb.meas = make([]measOp, 0, nm)
	}
	var pa *planApplier
	if parallelApply(len(recs)) {
		if cap(pb.plans) < len(recs) {
			pb.plans = make([]recPlan, 0, len(recs))
		}
		pa = &planApplier{plans: pb.plans[:0], warm: max(64, len(recs)/8)}
	}
	var slices []string
	for i := range recs {
		p := &recs[i]
		m, _ := defs.Model(p.Model)
		slices = defs.SlicesFor(p.Model, p, slices[:0])
		pl := r.plan(p, m, slices, &pb.feats, &pb.meas)
		pre.entries[i], pre.predNames[i] = pl.e, pl.pcName
		if pa != nil {
			pa.add(pl) // applied by two goroutines while the next are planned
		} else {
			pb.plans = append(pb.plans, pl)
		}
	}
	if pa == nil {
		for i := range pb.plans {
			for _, g := range pb.plans[i].groups {
				pb.plans[i].applyTo(g)
			}
		}
		pb.release()
		return pre
	}
	// The plans are still being applied while the caller goes on to the
	// join decisions, which need only the entries, and logs the batch's
	// intent: the fsync overlaps the sketch updates.
	pb.plans = pa.plans
	pre.applied, pre.pb = pa.finish(), pb
	return pre
}

// planBuf holds the plans of a batch being pre-routed.
type planBuf struct {
	plans []recPlan
	feats []featOp
	meas  []measOp
}

var planPool = sync.Pool{New: func() any { return new(planBuf) }}

// maxPooledPlans bounds the plans kept in a pooled planBuf.
const maxPooledPlans = 1 << 14

func (pb *planBuf) release() {
	if cap(pb.plans) > maxPooledPlans {
		return
	}
	clear(pb.plans) // drop references to records, entries and groups
	clear(pb.feats)
	pb.plans, pb.feats, pb.meas = pb.plans[:0], pb.feats[:0], pb.meas[:0]
	planPool.Put(pb)
}

// adopt makes a pre-routed batch the transaction's, unless a concurrent
// batch registered one of its new features with another type first. The
// router then defers its group updates until the plans are applied (touch).
func (pre *preRouted) adopt(r *router) bool {
	for _, fa := range pre.feats {
		if !r.tx.adoptFeature(fa) {
			return false
		}
	}
	if pre.applied != nil {
		r.waitPre = pre.wait
	}
	r.dl = pre.dl
	r.res.FeatureTypeConflicts += pre.res.FeatureTypeConflicts
	return true
}

// sliceList returns a shared copy of names: a batch has few distinct lists.
func (r *router) sliceList(names []string) []string {
	for _, l := range r.sliceLists {
		if slices.Equal(l, names) {
			return l
		}
	}
	l := slices.Clone(names)
	if len(r.sliceLists) < 64 {
		r.sliceLists = append(r.sliceLists, l)
	}
	return l
}

func sameLabel(a, b definitions.Value) bool {
	if a.Kind() == definitions.KindNumber && b.Kind() == definitions.KindNumber {
		return a.Num() == b.Num()
	}
	return a.String() == b.String()
}
