package query

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query/parser"
	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// This file holds what sketch-valued evaluation is built on: the
// window-merge primitive, the scratch-state pool and the per-series window
// states. sketchq.go wires query syntax onto them (sketch metrics, pooling,
// offline()), sketchfuncs.go the functions over sketches.

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
// windows (t−w, t] of width w (ms) with t in [firstEnd, lastEnd]: storage
// may answer from downsampled buckets as coarse as w where they lie wholly
// inside the read range. Maxt is lastEnd itself, not lastEnd−1 (the last ms
// a bucket must end by): a native histogram series read as a sketch needs
// its sample at exactly t.
func windowHints(firstEnd, lastEnd, w int64) series.Hints {
	return series.Hints{Mint: firstEnd - w, Maxt: lastEnd, Resolution: w}
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
	return ev.sketchSelect(vs.LabelMatchers, ev.atTime(vs.Timestamp, vs.StartOrEnd), vs.Offset.Milliseconds(), w, pool)
}

// sketchSelect is sketchSelector over explicit matchers, @ time and offset.
func (ev *evaluator) sketchSelect(ms []*labels.Matcher, at *int64, off, w int64, pool *sketchScratch) Matrix {
	ev.checkCtx()
	lo, hi := refTime(ev.start, at, off), refTime(ev.end, at, off)
	set := ev.querier.Select(ev.ctx, windowHints(lo, hi, w), ms...)
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
		if meta.Kind == series.KindHistogram {
			if pts := ev.histogramSketches(s, at, off, w, pool); len(pts) > 0 {
				out = append(out, Series{Metric: meta.Labels, Sketches: pts})
			}
			continue
		}
		if meta.Kind != series.KindSketch {
			continue
		}
		if ev.start == ev.end {
			// One window: merge straight from the iterator's bytes, no
			// copy of the window's states.
			ref := refTime(ev.start, at, off)
			dst, err := pool.get(meta.Format)
			if err != nil {
				ev.abort(&Error{Type: ErrExecution, Err: err})
			}
			n, nit, err := ev.mergeWindow(s, ref-w, ref-1, dst, it)
			it = nit
			if err != nil {
				ev.abort(&Error{Type: ErrExecution, Err: err})
			}
			if n == 0 {
				pool.put(dst)
				continue
			}
			out = append(out, Series{Metric: meta.Labels, Sketches: []SPoint{{T: ev.start, S: &SketchValue{Format: meta.Format, State: dst}}}})
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
func (ev *evaluator) finish(in Matrix, m SketchMetric, pool *sketchScratch) Matrix {
	out := make(Matrix, 0, len(in))
	states := make([]sketch.Sketch, 1)
	for _, s := range in {
		fs := make([]FPoint, 0, len(s.Sketches))
		for _, p := range s.Sketches {
			states[0] = p.S.State
			if v, ok := m.Finish(states, -1); ok {
				fs = append(fs, FPoint{T: p.T, F: v})
			}
			pool.put(p.S.State)
		}
		out = append(out, Series{Metric: dropName(s.Metric), Floats: fs})
	}
	return ev.mergeSameLabelset(out)
}
