package query

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"evalstore/query/parser"
	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// This file holds what sketch-valued evaluation is built on: the
// window-merge primitive, the scratch-state pool, and the registries of
// sketch-metric functions and of offline(). No query syntax reaches them
// yet; see docs/parts/engine-design.md for how the follow-up wires them in.

// sketchScratch pools empty states per format, so merging a window at
// every step of every series reuses memory instead of allocating.
type sketchScratch struct {
	free map[sketch.Format][]sketch.Sketch
}

// get returns an empty state of format f.
func (p *sketchScratch) get(f sketch.Format) (sketch.Sketch, error) {
	if p.free == nil {
		p.free = map[sketch.Format][]sketch.Sketch{}
	}
	if l := p.free[f]; len(l) > 0 {
		s := l[len(l)-1]
		p.free[f] = l[:len(l)-1]
		return s, nil
	}
	return sketch.New(f)
}

// put resets s and keeps it for reuse.
func (p *sketchScratch) put(s sketch.Sketch) {
	if p.free == nil {
		p.free = map[sketch.Format][]sketch.Sketch{}
	}
	s.Reset()
	p.free[s.Format()] = append(p.free[s.Format()], s)
}

// windowHints are the Select hints for reading sketch series to merge over
// windows of width w (ms) ending in [firstEnd, lastEnd]: storage may answer
// from downsampled buckets as coarse as w where they lie wholly inside the
// read range.
func windowHints(firstEnd, lastEnd, w int64) series.Hints {
	return series.Hints{Mint: firstEnd - w, Maxt: lastEnd - 1, Resolution: w}
}

// mergeWindow merges into dst every bucket of the sketch series s that lies
// wholly inside [mint, maxt] (Unix ms, inclusive), straight from the
// encoded bytes (DecodeAndMerge). A bucket starting at T with width W holds
// data of [T, T+W); it counts as data at its end, so the window (t-w, t] of
// a query is [mint, maxt] = [t-w, t-1]. Buckets that straddle an edge are
// skipped: storage answers with buckets as coarse as the hints allow, and
// a partial bucket cannot be split. It returns the number of buckets
// merged; reuse is an iterator to recycle (may be nil).
func (ev *evaluator) mergeWindow(s series.Series, mint, maxt int64, dst sketch.Sketch, reuse series.BucketIterator) (int, series.BucketIterator, error) {
	meta := s.Meta()
	if meta.Kind != series.KindSketch {
		return 0, reuse, fmt.Errorf("series %s is not a sketch series", meta.Labels)
	}
	if meta.Format != dst.Format() {
		return 0, reuse, fmt.Errorf("%w: series %s holds %v, merging into %v", sketch.ErrIncompatible, meta.Labels, meta.Format, dst.Format())
	}
	it := s.Buckets(reuse)
	n := 0
	for it.Next() {
		t, w, state := it.At()
		if t < mint {
			continue
		}
		if t+w-1 > maxt {
			break
		}
		if err := dst.DecodeAndMerge(state); err != nil {
			return n, it, fmt.Errorf("series %s bucket at %d: %w", meta.Labels, t, err)
		}
		n++
		if ev != nil {
			ev.acct.buckets++
			if ev.acct.buckets > ev.opts.MaxBuckets {
				ev.abort(limitError("max buckets", ev.opts.MaxBuckets))
			}
			if n&255 == 0 {
				ev.checkCtx()
			}
		}
	}
	return n, it, it.Err()
}

// sketchSelector evaluates a sketch selector over a window of w ms: at
// every step, each matching sketch series' buckets in (ref-w, ref] (by the
// bucket-end rule of mergeWindow) merged into one state. Steps with no
// bucket have no point. The series' buckets are read once, in one pass,
// keeping only the current window's encoded states (overlapping windows
// re-merge them; disjoint windows read each bucket once). States come from
// pool and go back to it when finish consumes them.
func (ev *evaluator) sketchSelector(vs *parser.VectorSelector, w int64, pool *sketchScratch) Matrix {
	ev.checkCtx()
	at := ev.atTime(vs.Timestamp, vs.StartOrEnd)
	off := vs.Offset.Milliseconds()
	lo, hi := refTime(ev.start, at, off), refTime(ev.end, at, off)
	set := ev.querier.Select(ev.ctx, windowHints(lo, hi, w), vs.LabelMatchers...)
	var out Matrix
	var it series.BucketIterator
	var win bucketWindow
	for set.Next() {
		s := set.At()
		meta := s.Meta()
		ev.acct.series++
		if ev.acct.series > ev.opts.MaxSeries {
			ev.abort(limitError("max series", ev.opts.MaxSeries))
		}
		if meta.Kind != series.KindSketch {
			continue
		}
		it = s.Buckets(it)
		win.reset()
		pending := it.Next()
		var pts []SPoint
		for t := ev.start; t <= ev.end; t += ev.interval {
			ref := refTime(t, at, off)
			mint, maxt := ref-w, ref-1
			for pending {
				bt, bw, state := it.At()
				if bt+bw-1 > maxt {
					break
				}
				if bt >= mint {
					win.push(bt, state)
				}
				ev.acct.buckets++
				if ev.acct.buckets > ev.opts.MaxBuckets {
					ev.abort(limitError("max buckets", ev.opts.MaxBuckets))
				}
				pending = it.Next()
			}
			if err := it.Err(); err != nil {
				ev.abort(&Error{Type: ErrExecution, Err: err})
			}
			win.dropBefore(mint)
			if win.len() == 0 {
				continue
			}
			ev.checkCtx()
			dst, err := pool.get(meta.Format)
			if err != nil {
				ev.abort(&Error{Type: ErrExecution, Err: err})
			}
			for _, b := range win.live() {
				if err := dst.DecodeAndMerge(b.state); err != nil {
					ev.abort(&Error{Type: ErrExecution, Err: fmt.Errorf("series %s bucket at %d: %w", meta.Labels, b.t, err)})
				}
			}
			pts = append(pts, SPoint{T: t, S: &SketchValue{Format: meta.Format, State: dst}})
		}
		if len(pts) > 0 {
			out = append(out, Series{Metric: meta.Labels, Sketches: pts})
		}
	}
	if err := set.Err(); err != nil {
		ev.checkCtx()
		ev.abort(&Error{Type: ErrExecution, Err: err})
	}
	return out
}

// bucketWindow keeps copies of the encoded states of the buckets in the
// current window (the iterator's bytes are only valid until Next), reusing
// the copies' memory as buckets leave the window.
type bucketWindow struct {
	bs    []windowBucket
	start int
	free  [][]byte
}

type windowBucket struct {
	t     int64
	state []byte
}

func (w *bucketWindow) reset() {
	for _, b := range w.bs[w.start:] {
		w.free = append(w.free, b.state[:0])
	}
	w.bs, w.start = w.bs[:0], 0
}

func (w *bucketWindow) len() int             { return len(w.bs) - w.start }
func (w *bucketWindow) live() []windowBucket { return w.bs[w.start:] }

func (w *bucketWindow) push(t int64, state []byte) {
	var buf []byte
	if n := len(w.free); n > 0 {
		buf, w.free = w.free[n-1], w.free[:n-1]
	}
	if w.start > 0 && w.start >= len(w.bs)/2 && len(w.bs) == cap(w.bs) {
		n := copy(w.bs, w.bs[w.start:])
		w.bs, w.start = w.bs[:n], 0
	}
	w.bs = append(w.bs, windowBucket{t: t, state: append(buf, state...)})
}

// dropBefore removes the buckets starting before mint.
func (w *bucketWindow) dropBefore(mint int64) {
	for w.start < len(w.bs) && w.bs[w.start].t < mint {
		w.free = append(w.free, w.bs[w.start].state[:0])
		w.start++
	}
}

// finish turns a sketch-valued matrix into floats with metric m, returning
// the states to pool. The metric name is dropped, as for any function.
func (ev *evaluator) finish(in Matrix, m SketchMetric, params []float64, pool *sketchScratch) Matrix {
	out := make(Matrix, 0, len(in))
	for _, s := range in {
		fs := make([]FPoint, 0, len(s.Sketches))
		for _, p := range s.Sketches {
			if p.S.Format != m.Format {
				ev.errorf("%s needs %v sketches, series %s holds %v", m.Name, m.Format, s.Metric, p.S.Format)
			}
			v, err := m.Finish(p.S.State, params)
			if err != nil {
				ev.abort(&Error{Type: ErrExecution, Err: fmt.Errorf("%s of %s: %w", m.Name, s.Metric, err)})
			}
			fs = append(fs, FPoint{T: p.T, F: v})
			pool.put(p.S.State)
		}
		out = append(out, Series{Metric: dropName(s.Metric), Floats: fs})
	}
	return ev.mergeSameLabelset(out)
}

// ---- registries ----

// SketchMetric is a metric function over merged sketch states, such as
// accuracy over a confusion matrix or a quantile over a t-digest.
type SketchMetric struct {
	// Name is the function or metric name in queries (accuracy, p99...).
	Name string
	// Family is the series family (metric name) the function reads, such
	// as "predictions" for classification metrics.
	Family string
	// Format is the sketch format the series must hold.
	Format sketch.Format
	// Params are the types of extra arguments (quantile's q), if any.
	Params []ValueType
	// Finish turns a merged state (never mutated) into a value.
	Finish func(s sketch.Sketch, params []float64) (float64, error)
}

var (
	sketchMetricsMu sync.RWMutex
	sketchMetrics   = map[string]SketchMetric{}
)

// ErrDuplicate reports a second registration of one name.
var ErrDuplicate = errors.New("already registered")

// RegisterSketchMetric adds a sketch-metric function. Names may not shadow
// PromQL functions.
func RegisterSketchMetric(m SketchMetric) error {
	if m.Name == "" || m.Finish == nil {
		return errors.New("sketch metric needs a name and a finisher")
	}
	if lookupFunc(m.Name) != nil {
		return fmt.Errorf("sketch metric %q: a PromQL function has that name: %w", m.Name, ErrDuplicate)
	}
	sketchMetricsMu.Lock()
	defer sketchMetricsMu.Unlock()
	if _, ok := sketchMetrics[m.Name]; ok {
		return fmt.Errorf("sketch metric %q: %w", m.Name, ErrDuplicate)
	}
	sketchMetrics[m.Name] = m
	return nil
}

// LookupSketchMetric returns the registered sketch metric name.
func LookupSketchMetric(name string) (SketchMetric, bool) {
	sketchMetricsMu.RLock()
	defer sketchMetricsMu.RUnlock()
	m, ok := sketchMetrics[name]
	return m, ok
}

// SketchMetricNames returns the registered names, sorted.
func SketchMetricNames() []string {
	sketchMetricsMu.RLock()
	defer sketchMetricsMu.RUnlock()
	out := make([]string, 0, len(sketchMetrics))
	for n := range sketchMetrics {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// OfflineResolver picks, for offline(expr), the offline runs a selector
// reads: given a series' labels it reports whether the series is the
// latest run of its (model, version, dataset, slice) at time t. The
// follow-up supplies it from the run index; until then offline() is a
// registered function that reports it is unavailable.
type OfflineResolver interface {
	Latest(labels map[string]string, t int64) bool
}

func init() {
	// offline(expr) is typed now so queries using it fail with a clear
	// execution error rather than "unknown function".
	functions["offline"] = &funcDef{args: []ValueType{TypeVector}, ret: TypeVector, step: nil}
}

// builtinSketchMetrics registers the finishers the sketch package already
// provides; the follow-up adds the rest from the definitions.
func init() {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(RegisterSketchMetric(SketchMetric{Name: "accuracy", Family: "predictions", Format: sketch.FormatConfusion,
		Finish: func(s sketch.Sketch, _ []float64) (float64, error) { return s.(*sketch.Confusion).Accuracy(), nil }}))
	must(RegisterSketchMetric(SketchMetric{Name: "quantile_sketch", Family: "measures", Format: sketch.FormatTDigest, Params: []ValueType{TypeScalar},
		Finish: func(s sketch.Sketch, p []float64) (float64, error) { return s.(*sketch.TDigest).Quantile(p[0]), nil }}))
	must(RegisterSketchMetric(SketchMetric{Name: "mean_sketch", Family: "measures", Format: sketch.FormatMoments,
		Finish: func(s sketch.Sketch, _ []float64) (float64, error) { return s.(*sketch.Moments).Mean(), nil }}))
}
