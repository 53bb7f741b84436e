package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/definitions"
	"evalstore/query/parser"
	"evalstore/tsdb/series"
)

// Queryable opens a consistent read snapshot of storage for [mint, maxt]
// (Unix ms, inclusive). The storage DB implements it; tests use MemStorage.
type Queryable interface {
	Querier(mint, maxt int64) (series.Querier, error)
}

// Options configure an Engine. Zero values take the defaults noted.
type Options struct {
	// Timeout bounds one query's evaluation (default 2m).
	Timeout time.Duration
	// MaxSamples bounds the points loaded from storage by one query
	// (default 50,000,000). A native histogram counts as its size in
	// 16-byte float samples, (Size()+8)/16, as in Prometheus.
	MaxSamples int
	// MaxSeries bounds the series one query selects (default 500,000).
	MaxSeries int
	// MaxBuckets bounds the sketch buckets one query reads (default 50,000,000).
	MaxBuckets int
	// MaxResultPoints bounds the points of a result, and of every
	// intermediate value (default 11,000,000).
	MaxResultPoints int
	// LookbackDelta is how far back an instant selector looks (default 5m).
	LookbackDelta time.Duration
	// SubqueryStep is the step of a subquery written without one, x[1h:]
	// (default 1m, Prometheus's default evaluation interval).
	SubqueryStep time.Duration
	// Now is the clock (default time.Now); used only for logging durations.
	Now func() time.Time
	// Logger receives slow or failed queries (default: discard).
	Logger *slog.Logger
	// Definitions returns the definitions in force (positive classes,
	// class order, feature importances, drift references); nil means
	// definitions.Empty(). It is called once or more per query.
	Definitions func() *definitions.Definitions
	// ParseCacheSize bounds the parsed and type-checked queries the engine
	// keeps by text (default 1,000; negative: none). Dashboards and rules
	// send the same texts again and again, and parsing costs more than
	// evaluating a small query.
	ParseCacheSize int
}

// Engine evaluates queries. It is safe for concurrent use.
type Engine struct {
	opts   Options
	parsed parseCache
}

// parseCache maps query texts to their checked syntax trees, which
// evaluation only reads, so concurrent queries share them. When full it
// starts over: simpler than an LRU, and a dashboard's working set refills it
// on its next refresh.
type parseCache struct {
	mu  sync.Mutex
	max int
	m   map[string]checked
}

type checked struct {
	ast parser.Expr
	typ ValueType
}

// check is Check through the cache; errors are not cached.
func (c *parseCache) check(expr string) (parser.Expr, ValueType, error) {
	if c.max <= 0 {
		return Check(expr)
	}
	c.mu.Lock()
	p, ok := c.m[expr]
	c.mu.Unlock()
	if ok {
		return p.ast, p.typ, nil
	}
	ast, typ, err := Check(expr)
	if err != nil {
		return nil, typ, err
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[expr] = checked{ast, typ}
	c.mu.Unlock()
	return ast, typ, nil
}

// New returns an engine with opts, defaults filled in.
func New(opts Options) *Engine {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = 50_000_000
	}
	if opts.MaxSeries <= 0 {
		opts.MaxSeries = 500_000
	}
	if opts.MaxBuckets <= 0 {
		opts.MaxBuckets = 50_000_000
	}
	if opts.MaxResultPoints <= 0 {
		opts.MaxResultPoints = 11_000_000
	}
	if opts.LookbackDelta <= 0 {
		opts.LookbackDelta = 5 * time.Minute
	}
	if opts.SubqueryStep <= 0 {
		opts.SubqueryStep = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ParseCacheSize == 0 {
		opts.ParseCacheSize = 1000
	}
	e := &Engine{opts: opts}
	if opts.ParseCacheSize > 0 {
		e.parsed = parseCache{max: opts.ParseCacheSize, m: make(map[string]checked)}
	}
	return e
}

// Result is a query's value and its warnings.
type Result struct {
	Value    Value
	Warnings []string
}

// Instant evaluates expr at ts. The value is a Vector, Scalar, String or
// (for a range-vector expression) a Matrix of raw samples.
func (e *Engine) Instant(ctx context.Context, q Queryable, expr string, ts time.Time) (Result, error) {
	t := ts.UnixMilli()
	return e.exec(ctx, q, expr, t, t, 0, false)
}

// Range evaluates expr at every step from start to end. The value is a
// Matrix sorted by labels.
func (e *Engine) Range(ctx context.Context, q Queryable, expr string, start, end time.Time, step time.Duration) (Result, error) {
	if step <= 0 {
		return Result{}, &Error{Type: ErrBadData, Err: errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer")}
	}
	if end.Before(start) {
		return Result{}, &Error{Type: ErrBadData, Err: errors.New("end timestamp must not be before start time")}
	}
	return e.exec(ctx, q, expr, start.UnixMilli(), end.UnixMilli(), step.Milliseconds(), true)
}

// Check parses and type checks expr without evaluating it.
func Check(expr string) (parser.Expr, ValueType, error) {
	ast, err := parser.Parse(expr)
	if err != nil {
		var pe *parser.ParseError
		if errors.As(err, &pe) {
			return nil, TypeNone, &Error{Type: ErrBadData, Pos: &pe.Pos, Err: err}
		}
		return nil, TypeNone, &Error{Type: ErrBadData, Err: err}
	}
	c := &checker{input: expr}
	t := c.check(ast)
	if c.err != nil {
		return nil, TypeNone, c.err
	}
	return ast, t, nil
}

func (e *Engine) exec(ctx context.Context, q Queryable, expr string, start, end, interval int64, isRange bool) (res Result, err error) {
	ast, typ, err := e.parsed.check(expr)
	if err != nil {
		return Result{}, err
	}
	if isRange && typ != TypeScalar && typ != TypeVector {
		return Result{}, &Error{Type: ErrBadData, Err: fmt.Errorf("invalid expression type %q for range query, must be Scalar or instant Vector", typ.documented())}
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	began := e.opts.Now()

	mint, maxt := e.timeRange(ast, start, end, interval)
	querier, err := q.Querier(mint, maxt)
	if err != nil {
		return Result{}, &Error{Type: ErrExecution, Err: fmt.Errorf("opening storage: %w", err)}
	}
	defer func() {
		if cerr := querier.Close(); cerr != nil && err == nil {
			res, err = Result{}, &Error{Type: ErrExecution, Err: fmt.Errorf("closing storage: %w", cerr)}
		}
	}()

	if interval == 0 {
		interval = 1
	}
	if steps := (end-start)/interval + 1; steps > int64(e.opts.MaxResultPoints) {
		return Result{}, limitError("max result points", e.opts.MaxResultPoints)
	}
	ev := &evaluator{
		ctx:        ctx,
		input:      expr,
		querier:    querier,
		opts:       &e.opts,
		start:      start,
		end:        end,
		interval:   interval,
		queryStart: start,
		queryEnd:   end,
		lookback:   e.opts.LookbackDelta.Milliseconds(),
		acct:       &accounting{},
		rangeEval:  isRange,
	}
	defer func() {
		if r := recover(); r != nil {
			var ab evalAbort
			switch x := r.(type) {
			case evalAbort:
				ab = x
			default:
				e.opts.Logger.Error("query panicked", "query", expr, "panic", r, "stack", string(debug.Stack()))
				ab = evalAbort{execError("unexpected error: %v", r)}
			}
			res, err = Result{Warnings: ev.acct.warnings}, ab.err
			e.opts.Logger.Debug("query failed", "query", expr, "err", err, "took", e.opts.Now().Sub(began))
		}
	}()

	val := ev.eval(ast)
	res.Warnings = ev.acct.warnings
	switch v := val.(type) {
	case String:
		res.Value = v
	case Matrix:
		if n := v.totalPoints(); n > e.opts.MaxResultPoints {
			return res, limitError("max result points", e.opts.MaxResultPoints)
		}
		if err := checkNoSketches(v); err != nil {
			return res, err
		}
		switch {
		case isRange:
			if typ == TypeScalar {
				for i := range v {
					v[i].Metric = labels.EmptyLabels()
				}
			}
			sortMatrix(v)
			res.Value = v
		case typ == TypeMatrix:
			sortMatrix(v)
			res.Value = v
		case typ == TypeScalar:
			s := Scalar{T: start, V: math.NaN()}
			if len(v) > 0 && len(v[0].Floats) > 0 {
				s.V = v[0].Floats[0].F
			}
			res.Value = s
		default:
			vec := make(Vector, 0, len(v))
			for _, s := range v {
				switch {
				case len(s.Floats) > 0:
					vec = append(vec, Sample{Metric: s.Metric, T: start, F: s.Floats[0].F})
				case len(s.Histograms) > 0:
					vec = append(vec, Sample{Metric: s.Metric, T: start, H: s.Histograms[0].H})
				}
			}
			res.Value = vec
		}
	}
	e.opts.Logger.Debug("query done", "query", expr, "took", e.opts.Now().Sub(began))
	return res, nil
}

func checkNoSketches(m Matrix) error {
	for _, s := range m {
		if len(s.Sketches) > 0 {
			return execError("a sketch-valued expression must be finished by a metric function such as accuracy(...)")
		}
	}
	return nil
}

func sortMatrix(m Matrix) {
	slices.SortFunc(m, func(a, b Series) int { return labels.Compare(a.Metric, b.Metric) })
}

// timeRange returns the storage time range a query reads, walking the AST
// with the evaluation interval each node sees (subqueries, offsets, @).
func (e *Engine) timeRange(ast parser.Expr, start, end, interval int64) (int64, int64) {
	lb := e.opts.LookbackDelta.Milliseconds()
	// A sketch selector without a range merges one step of a range query.
	lb = max(lb, interval)
	mint, maxt := int64(math.MaxInt64), int64(math.MinInt64)
	var walk func(n parser.Node, lo, hi int64)
	at := func(ts *int64, se parser.AtModifier, lo, hi int64) (int64, int64) {
		switch {
		case ts != nil:
			return *ts, *ts
		case se == parser.AtStart:
			return start, start
		case se == parser.AtEnd:
			return end, end
		}
		return lo, hi
	}
	defs := definitions.Empty()
	if e.opts.Definitions != nil {
		if d := e.opts.Definitions(); d != nil {
			defs = d
		}
	}
	named := map[string]bool{}
	sketches := usesSketches(ast)
	walk = func(n parser.Node, lo, hi int64) {
		switch x := n.(type) {
		case *parser.VectorSelector:
			// A named metric reads what its expression reads.
			if m := namedMetric(defs, x); m != nil && !named[m.Name] {
				if sub, err := parser.Parse(m.Expr); err == nil {
					named[m.Name] = true
					sketches = sketches || usesSketches(sub)
					walk(sub, lo, hi)
					return
				}
			}
			l, h := at(x.Timestamp, x.StartOrEnd, lo, hi)
			off := x.Offset.Milliseconds()
			mint, maxt = min(mint, l-off-lb), max(maxt, h-off)
			return
		case *parser.MatrixSelector:
			vs := x.VectorSelector
			l, h := at(vs.Timestamp, vs.StartOrEnd, lo, hi)
			off := vs.Offset.Milliseconds()
			mint, maxt = min(mint, l-off-x.Range.Milliseconds()), max(maxt, h-off)
			return
		case *parser.SubqueryExpr:
			l, h := at(x.Timestamp, x.StartOrEnd, lo, hi)
			off := x.Offset.Milliseconds()
			walk(x.Expr, l-off-x.Range.Milliseconds(), h-off)
			return
		}
		for _, c := range parser.Children(n) {
			walk(c, lo, hi)
		}
	}
	walk(ast, start, end)
	if mint > maxt {
		mint, maxt = start, end
	}
	// Offline runs and class indices are read over all time.
	if sketches {
		mint = minTime
	}
	return mint, maxt
}
