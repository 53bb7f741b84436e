package query

import (
	"context"
	"errors"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"evalstore/query/parser"
	"evalstore/tsdb/series"
)

// accounting is shared by an evaluator and its subquery evaluators, so the
// limits hold for the whole query.
type accounting struct {
	samples  int // points loaded from storage (histograms weighted, see histogramWeight)
	series   int // series selected
	buckets  int // sketch buckets read (see mergeWindow)
	warnings []string
}

// evaluator evaluates expressions at every step of one grid
// [start, end] by interval (ms). An instant query is a one-step grid.
type evaluator struct {
	ctx context.Context
	// input is the query text, for positioned errors.
	input                string
	querier              series.Querier
	opts                 *Options
	start, end, interval int64
	queryStart, queryEnd int64
	lookback             int64
	acct                 *accounting
	// rangeEval is set on range queries and subqueries: a sketch selector
	// without a range then merges one step, else one lookback.
	rangeEval bool
	// offline is set while offline(...) evaluates its argument.
	offline *offlineMode
	// classCache maps a model to its classes, read once per query.
	classCache map[string]*modelClasses
	// familyAlias renames raw families while a sketch function that needs
	// another state type evaluates its argument (stddev_sketch, ttest).
	familyAlias map[string]string
	// named lists the named metrics being expanded (cycle detection).
	named []string
}

func (ev *evaluator) abort(err *Error) { panic(evalAbort{err}) }

func (ev *evaluator) errorf(format string, args ...any) { ev.abort(execError(format, args...)) }

func (ev *evaluator) warn(msg string) {
	if !slices.Contains(ev.acct.warnings, msg) {
		ev.acct.warnings = append(ev.acct.warnings, msg)
	}
}

// checkCtx aborts with a timeout or canceled error once ctx is done.
func (ev *evaluator) checkCtx() {
	if err := ev.ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			ev.abort(&Error{Type: ErrTimeout, Err: errors.New("query timed out in expression evaluation")})
		}
		ev.abort(&Error{Type: ErrCanceled, Err: errors.New("query was canceled in expression evaluation")})
	}
}

func (ev *evaluator) numSteps() int { return int((ev.end-ev.start)/ev.interval) + 1 }

// atTime resolves an @ modifier: nil when there is none.
func (ev *evaluator) atTime(ts *int64, se parser.AtModifier) *int64 {
	switch {
	case ts != nil:
		return ts
	case se == parser.AtStart:
		return &ev.queryStart
	case se == parser.AtEnd:
		return &ev.queryEnd
	}
	return nil
}

// refTime is the time a selector reads at for evaluation time ts.
func refTime(ts int64, at *int64, offset int64) int64 {
	if at != nil {
		return *at - offset
	}
	return ts - offset
}

// ---- loading ----

// point is one float sample, or one native histogram sample when H is set.
type point struct {
	T int64
	F float64
	H *histogram.FloatHistogram
}

// pointSource yields a series' points in time order: from storage (read
// lazily, so a selector holds at most one window of points) or from an
// evaluated subquery.
type pointSource interface {
	next() (point, bool)
}

// seriesPoints is a pointSource over a series in memory, floats and
// histograms merged in time order.
type seriesPoints struct {
	fs   []FPoint
	hs   []HPoint
	i, j int
}

func (s *seriesPoints) next() (point, bool) {
	switch {
	case s.i < len(s.fs) && (s.j >= len(s.hs) || s.fs[s.i].T <= s.hs[s.j].T):
		s.i++
		return point{T: s.fs[s.i-1].T, F: s.fs[s.i-1].F}, true
	case s.j < len(s.hs):
		s.j++
		return point{T: s.hs[s.j-1].T, H: s.hs[s.j-1].H}, true
	}
	return point{}, false
}

// histogramWeight is what one histogram sample counts against MaxSamples:
// its size in units of a float sample (16 bytes), timestamp included, as
// Prometheus counts it.
func histogramWeight(h *histogram.FloatHistogram) int { return (h.Size() + 8) / 16 }

// storagePoints reads float and histogram points in [mint, maxt] from a
// storage iterator, counting them against MaxSamples and checking the
// context.
type storagePoints struct {
	ev        *evaluator
	it        chunkenc.Iterator
	maxt      int64
	started   bool
	mint      int64
	done      bool
	n         int
	skipStale bool
}

func (s *storagePoints) next() (point, bool) {
	for !s.done {
		var vt chunkenc.ValueType
		if !s.started {
			vt = s.it.Seek(s.mint)
			s.started = true
		} else {
			vt = s.it.Next()
		}
		if vt == chunkenc.ValNone {
			if err := s.it.Err(); err != nil {
				s.ev.abort(&Error{Type: ErrExecution, Err: err})
			}
			s.done = true
			break
		}
		if vt != chunkenc.ValFloat && vt != chunkenc.ValFloatHistogram && vt != chunkenc.ValHistogram {
			continue
		}
		t := s.it.AtT()
		if t > s.maxt {
			s.done = true
			break
		}
		if t < s.mint {
			continue
		}
		var p point
		weight := 1
		if vt == chunkenc.ValFloat {
			p.T, p.F = s.it.At()
		} else {
			// A copy per point: the window functions keep several.
			p.T, p.H = s.it.AtFloatHistogram(nil)
			weight = histogramWeight(p.H)
		}
		s.ev.acct.samples += weight
		s.n++
		if s.n&1023 == 0 {
			s.ev.checkCtx()
		}
		if s.ev.acct.samples > s.ev.opts.MaxSamples {
			s.ev.abort(limitError("max samples", s.ev.opts.MaxSamples))
		}
		if s.skipStale && p.stale() {
			continue
		}
		return p, true
	}
	return point{}, false
}

// stale reports whether p is a staleness marker.
func (p point) stale() bool {
	if p.H != nil {
		return value.IsStaleNaN(p.H.Sum)
	}
	return value.IsStaleNaN(p.F)
}

// eachSeries calls fn with every float and native histogram series
// matching vs and a source of its points in [mint, maxt]; staleness markers
// are dropped when skipStale. Sketch series are left to sketch-aware
// callers.
func (ev *evaluator) eachSeries(vs *parser.VectorSelector, mint, maxt int64, skipStale bool, fn func(metric labels.Labels, src pointSource)) {
	ev.checkCtx()
	set := ev.querier.Select(ev.ctx, series.Hints{Mint: mint, Maxt: maxt}, vs.LabelMatchers...)
	var it chunkenc.Iterator
	src := &storagePoints{ev: ev}
	skippedSketch := false
	for set.Next() {
		s := set.At()
		meta := s.Meta()
		ev.acct.series++
		if ev.acct.series > ev.opts.MaxSeries {
			ev.abort(limitError("max series", ev.opts.MaxSeries))
		}
		if !meta.Kind.Points() {
			skippedSketch = true
			continue
		}
		it = s.Samples(it)
		*src = storagePoints{ev: ev, it: it, mint: mint, maxt: maxt, skipStale: skipStale}
		fn(meta.Labels, src)
	}
	if err := set.Err(); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			ev.checkCtx()
		}
		ev.abort(&Error{Type: ErrExecution, Err: err})
	}
	if skippedSketch {
		ev.warn("sketch series matched by " + vs.String() + " were ignored: use a sketch metric function to read them")
	}
}

// ---- evaluation ----

// eval evaluates e over the grid. Scalars and instant vectors come back as
// a Matrix with a point per step where the value exists; strings as String;
// range vectors (only at the top of an instant query) as a Matrix of raw
// points.
func (ev *evaluator) eval(e parser.Expr) Value {
	ev.checkCtx()
	switch n := e.(type) {
	case *parser.NumberLiteral:
		return ev.constant(n.Val)
	case *parser.StringLiteral:
		return String{T: ev.start, V: n.Val}
	case *parser.ParenExpr:
		return ev.eval(n.Expr)
	case *parser.UnaryExpr:
		m := ev.eval(n.Expr).(Matrix)
		if n.Op == "-" {
			for i := range m {
				m[i].Metric = dropName(m[i].Metric)
				for j := range m[i].Floats {
					m[i].Floats[j].F = -m[i].Floats[j].F
				}
				for j := range m[i].Histograms {
					m[i].Histograms[j].H = m[i].Histograms[j].H.Copy().Mul(-1)
				}
			}
			m = ev.mergeSameLabelset(m)
		}
		return m
	case *parser.VectorSelector:
		if isSketchMetricName(selectorName(n)) {
			return ev.evalMetric(n, 0)
		}
		if m := namedMetric(ev.defs(), n); m != nil {
			return ev.evalNamed(m)
		}
		return ev.vectorSelector(n, false)
	case *parser.MatrixSelector:
		if isSketchMetricName(selectorName(n.VectorSelector)) {
			return ev.evalMetric(n.VectorSelector, n.Range.Milliseconds())
		}
		return ev.matrixSelector(n)
	case *parser.SubqueryExpr:
		m, _, _ := ev.subquery(n)
		return m
	case *parser.BinaryExpr:
		return ev.binary(n)
	case *parser.AggregateExpr:
		return ev.aggregate(n)
	case *parser.Call:
		return ev.call(n)
	}
	ev.errorf("unhandled expression %T", e)
	return nil
}

func (ev *evaluator) constant(v float64) Matrix {
	ev.checkPoints(ev.numSteps())
	pts := make([]FPoint, 0, ev.numSteps())
	for ts := ev.start; ts <= ev.end; ts += ev.interval {
		pts = append(pts, FPoint{T: ts, F: v})
	}
	return Matrix{{Metric: labels.EmptyLabels(), Floats: pts}}
}

// vectorSelector evaluates an instant selector: at each step the latest
// point in (ref-lookback, ref], float or histogram, unless it is a
// staleness marker. With origT the value is the sample's own timestamp in
// seconds (timestamp()).
func (ev *evaluator) vectorSelector(vs *parser.VectorSelector, origT bool) Matrix {
	at := ev.atTime(vs.Timestamp, vs.StartOrEnd)
	off := vs.Offset.Milliseconds()
	lo, hi := refTime(ev.start, at, off), refTime(ev.end, at, off)
	var out Matrix
	steps := ev.numSteps()
	total := 0
	ev.eachSeries(vs, lo-ev.lookback+1, hi, false, func(metric labels.Labels, src pointSource) {
		var pts []FPoint
		var hpts []HPoint
		var last, pend point
		hasLast := false
		hasPend := false
		pend, hasPend = src.next()
		for ts := ev.start; ts <= ev.end; ts += ev.interval {
			ref := refTime(ts, at, off)
			for hasPend && pend.T <= ref {
				last, hasLast = pend, true
				pend, hasPend = src.next()
			}
			if !hasLast || last.T <= ref-ev.lookback || last.stale() {
				continue
			}
			if last.H != nil && !origT {
				// Steps share the histogram: it is never modified in place.
				hpts = append(hpts, HPoint{T: ts, H: last.H})
				continue
			}
			if pts == nil {
				pts = make([]FPoint, 0, min(steps, 1024))
			}
			f := last.F
			if origT {
				f = float64(last.T) / 1000
			}
			pts = append(pts, FPoint{T: ts, F: f})
		}
		total += len(pts) + len(hpts)
		ev.checkPoints(total)
		if len(pts) > 0 || len(hpts) > 0 {
			out = append(out, Series{Metric: metric, Floats: pts, Histograms: hpts})
		}
	})
	return out
}

// checkPoints bounds the points of any one intermediate value by
// MaxResultPoints, so a query is refused before it can exhaust memory.
func (ev *evaluator) checkPoints(n int) {
	if n > ev.opts.MaxResultPoints {
		ev.abort(limitError("max result points", ev.opts.MaxResultPoints))
	}
}

// matrixSelector evaluates a range selector at the top of an instant
// query: the raw points in (ref-range, ref], staleness markers dropped.
func (ev *evaluator) matrixSelector(ms *parser.MatrixSelector) Matrix {
	vs := ms.VectorSelector
	at := ev.atTime(vs.Timestamp, vs.StartOrEnd)
	ref := refTime(ev.start, at, vs.Offset.Milliseconds())
	var out Matrix
	ev.eachSeries(vs, ref-ms.Range.Milliseconds()+1, ref, true, func(metric labels.Labels, src pointSource) {
		var s Series
		for p, ok := src.next(); ok; p, ok = src.next() {
			if p.H != nil {
				s.Histograms = append(s.Histograms, HPoint{T: p.T, H: p.H})
			} else {
				s.Floats = append(s.Floats, FPoint{T: p.T, F: p.F})
			}
		}
		if len(s.Floats) > 0 || len(s.Histograms) > 0 {
			s.Metric = metric
			out = append(out, s)
		}
	})
	return out
}

// subquery evaluates expr[range:step] on its own grid: every multiple of
// step in (first ref - range, last ref]. It returns the inner matrix and
// the @ time and offset the outer windows use.
func (ev *evaluator) subquery(sq *parser.SubqueryExpr) (Matrix, *int64, int64) {
	at := ev.atTime(sq.Timestamp, sq.StartOrEnd)
	off := sq.Offset.Milliseconds()
	step := sq.Step.Milliseconds()
	if step == 0 {
		step = ev.opts.SubqueryStep.Milliseconds()
	}
	rng := sq.Range.Milliseconds()
	lo, hi := refTime(ev.start, at, off), refTime(ev.end, at, off)
	x := lo - rng
	start := x - mod(x, step) + step
	inner := &evaluator{
		ctx: ev.ctx, input: ev.input, querier: ev.querier, opts: ev.opts,
		start: start, end: hi, interval: step,
		queryStart: ev.queryStart, queryEnd: ev.queryEnd,
		lookback: ev.lookback, acct: ev.acct,
		rangeEval: true, offline: ev.offline, classCache: ev.classCache, named: ev.named,
	}
	if start > hi {
		return Matrix{}, at, off
	}
	// A fine step over a long range is refused before anything is
	// allocated for it.
	ev.checkPoints(int((hi-start)/step) + 1)
	m := inner.eval(sq.Expr).(Matrix)
	return m, at, off
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// mergeSameLabelset merges series that share a label set after the metric
// name was dropped, as long as they never have a point at the same time.
func (ev *evaluator) mergeSameLabelset(m Matrix) Matrix {
	if len(m) < 2 {
		return m
	}
	idx := make(map[uint64]int, len(m))
	dup := false
	for i := range m {
		h := m[i].Metric.Hash()
		if _, ok := idx[h]; ok {
			dup = true
			break
		}
		idx[h] = i
	}
	if !dup {
		return m
	}
	clear(idx)
	out := m[:0:0]
	for _, s := range m {
		h := s.Metric.Hash()
		if i, ok := idx[h]; ok {
			out[i].Floats = append(out[i].Floats, s.Floats...)
			out[i].Histograms = append(out[i].Histograms, s.Histograms...)
			continue
		}
		idx[h] = len(out)
		out = append(out, s)
	}
	for i := range out {
		f, hs := out[i].Floats, out[i].Histograms
		slices.SortFunc(f, func(a, b FPoint) int { return cmpInt(a.T, b.T) })
		slices.SortFunc(hs, func(a, b HPoint) int { return cmpInt(a.T, b.T) })
		for j := 1; j < len(f); j++ {
			if f[j].T == f[j-1].T {
				ev.errorf("vector cannot contain metrics with the same labelset")
			}
		}
		for j := 1; j < len(hs); j++ {
			if hs[j].T == hs[j-1].T {
				ev.errorf("vector cannot contain metrics with the same labelset")
			}
		}
		if len(f) > 0 && len(hs) > 0 {
			ts := make(map[int64]struct{}, len(f))
			for _, p := range f {
				ts[p.T] = struct{}{}
			}
			for _, p := range hs {
				if _, dup := ts[p.T]; dup {
					ev.errorf("vector cannot contain metrics with the same labelset")
				}
			}
		}
	}
	return out
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// metricName is the label that holds the metric name.
const metricName = parser.MetricNameLabel

func isMetricName(n string) bool { return n == metricName }

// dropName removes the metric name, as arithmetic and most functions do.
func dropName(l labels.Labels) labels.Labels {
	if l.Get(metricName) == "" {
		return l
	}
	return l.DropReserved(isMetricName)
}

// ---- step-wise evaluation ----

// stepper gathers, at each step, the vector of every input matrix. Inputs
// hold their points in step order, so a cursor per series suffices.
type stepper struct {
	ev     *evaluator
	inputs []Matrix
	cursor [][]int
	// hcursor is cursor's counterpart for the series' histograms.
	hcursor [][]int
	vecs    []Vector
	// present[i] lists, for input i's vector at the current step, the
	// index of the series each sample came from (binary operators match
	// on precomputed per-series signatures through it).
	present [][]int
}

func newStepper(ev *evaluator, inputs ...Matrix) *stepper {
	st := &stepper{ev: ev, inputs: inputs, cursor: make([][]int, len(inputs)), hcursor: make([][]int, len(inputs)), vecs: make([]Vector, len(inputs)), present: make([][]int, len(inputs))}
	for i, m := range inputs {
		st.cursor[i] = make([]int, len(m))
		st.hcursor[i] = make([]int, len(m))
		st.vecs[i] = make(Vector, 0, len(m))
	}
	return st
}

// gather returns input i's vector at ts and, in order, the index of the
// series each sample came from.
func (st *stepper) gather(i int, ts int64) (Vector, []int) {
	v := st.vecs[i][:0]
	ids := st.present[i][:0]
	for j := range st.inputs[i] {
		s := &st.inputs[i][j]
		c := st.cursor[i][j]
		if c < len(s.Floats) && s.Floats[c].T == ts {
			v = append(v, Sample{Metric: s.Metric, T: ts, F: s.Floats[c].F})
			ids = append(ids, j)
			st.cursor[i][j] = c + 1
			continue
		}
		if hc := st.hcursor[i][j]; hc < len(s.Histograms) && s.Histograms[hc].T == ts {
			v = append(v, Sample{Metric: s.Metric, T: ts, H: s.Histograms[hc].H})
			ids = append(ids, j)
			st.hcursor[i][j] = hc + 1
		}
	}
	st.vecs[i], st.present[i] = v, ids
	return v, ids
}

// collector assembles per-step output vectors into a matrix, refusing two
// samples with one label set at one step.
type collector struct {
	ev    *evaluator
	index map[uint64]int
	out   Matrix
	last  []int64
	steps int
	n     int
}

func newCollector(ev *evaluator) *collector {
	return &collector{ev: ev, index: map[uint64]int{}, steps: ev.numSteps()}
}

func (c *collector) add(ts int64, vec Vector) {
	if c.ev.start == c.ev.end && vec.containsSameLabelset() {
		c.ev.errorf("vector cannot contain metrics with the same labelset")
	}
	for _, s := range vec {
		h := s.Metric.Hash()
		i, ok := c.index[h]
		if !ok {
			i = len(c.out)
			c.index[h] = i
			c.out = append(c.out, Series{Metric: s.Metric})
			c.last = append(c.last, math.MinInt64)
		} else if c.last[i] == ts {
			c.ev.errorf("vector cannot contain metrics with the same labelset")
		}
		c.last[i] = ts
		if s.H != nil {
			c.out[i].Histograms = append(c.out[i].Histograms, HPoint{T: ts, H: s.H})
			continue
		}
		if c.out[i].Floats == nil {
			c.out[i].Floats = make([]FPoint, 0, min(c.steps, 64))
		}
		c.out[i].Floats = append(c.out[i].Floats, FPoint{T: ts, F: s.F})
	}
	c.n += len(vec)
	c.ev.checkPoints(c.n)
}

// stepwise evaluates f at every step over the vectors of inputs.
func (ev *evaluator) stepwise(inputs []Matrix, f func(ts int64, vecs []Vector, ids [][]int) Vector) Matrix {
	st := newStepper(ev, inputs...)
	col := newCollector(ev)
	vecs := make([]Vector, len(inputs))
	ids := make([][]int, len(inputs))
	for ts := ev.start; ts <= ev.end; ts += ev.interval {
		ev.checkCtx()
		for i := range inputs {
			vecs[i], ids[i] = st.gather(i, ts)
		}
		col.add(ts, f(ts, vecs, ids))
	}
	return col.out
}
