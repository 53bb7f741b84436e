package query

import (
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/facette/natsort"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"evalstore/query/parser"
)

// rangeArgs is what a function over a range vector sees at one step.
type rangeArgs struct {
	ts                   int64 // the step's evaluation time
	rangeStart, rangeEnd int64 // the window (rangeStart, rangeEnd]
	rangeSec             float64
	scalars              []float64 // the other (scalar) arguments, in order
	metric               labels.Labels
}

// funcDef is one entry of the function registry.
type funcDef struct {
	args     []ValueType
	variadic int // 0: fixed; n > 0: up to n optional trailing args; -1: any number
	ret      ValueType
	// rng computes a function over a range vector, one window at a time.
	rng func(w []FPoint, a *rangeArgs) (float64, bool)
	// hrng computes it over a window that holds native histograms (fw its
	// floats, hw its histograms, fw possibly empty) and returns a float,
	// or a histogram when h is set. Functions without it read the window's
	// floats only, dropping its histograms as Prometheus does.
	hrng func(fw []FPoint, hw []HPoint, a *rangeArgs) (f float64, h *histogram.FloatHistogram, ok bool)
	// keepName keeps the metric name on a range function's result.
	keepName bool
	// step computes a function of instant vectors and scalars, one step at
	// a time.
	step func(ts int64, v []Vector, n *parser.Call) Vector
	// sketch evaluates a function over sketch states; the arguments whose
	// index is in sketchArgs must be sketchable expressions (selectors,
	// offline(...), sum(...) over them) rather than values of args' types.
	sketch     func(ev *evaluator, n *parser.Call) Matrix
	sketchArgs []int
}

var functions map[string]*funcDef

func lookupFunc(name string) *funcDef { return functions[name] }

var (
	tv = TypeVector
	ts = TypeScalar
	tm = TypeMatrix
	tS = TypeString
)

func simple(f func(float64) float64) *funcDef {
	return &funcDef{args: []ValueType{tv}, ret: tv, step: func(_ int64, v []Vector, _ *parser.Call) Vector {
		out := make(Vector, 0, len(v[0]))
		for _, s := range floatsOnly(v[0]) {
			out = append(out, Sample{Metric: dropName(s.Metric), F: f(s.F)})
		}
		return out
	}}
}

func overTime(f func(w []FPoint, a *rangeArgs) (float64, bool)) *funcDef {
	return &funcDef{args: []ValueType{tm}, ret: tv, rng: f}
}

func date(f func(time.Time) float64) *funcDef {
	return &funcDef{args: []ValueType{tv}, variadic: 1, ret: tv, step: func(ts int64, v []Vector, _ *parser.Call) Vector {
		if len(v) == 0 {
			return Vector{{Metric: labels.EmptyLabels(), F: f(time.Unix(ts/1000, 0).UTC())}}
		}
		out := make(Vector, 0, len(v[0]))
		for _, s := range floatsOnly(v[0]) {
			out = append(out, Sample{Metric: dropName(s.Metric), F: f(time.Unix(int64(s.F), 0).UTC())})
		}
		return out
	}}
}

// floatsOnly returns v without its native histograms, for the functions
// of floats, which drop histogram samples as Prometheus does. v itself is
// returned when it holds floats only.
func floatsOnly(v Vector) Vector {
	for i, s := range v {
		if s.H == nil {
			continue
		}
		out := slices.Clone(v[:i])
		for _, s := range v[i+1:] {
			if s.H == nil {
				out = append(out, s)
			}
		}
		return out
	}
	return v
}

func clampVec(v Vector, lo, hi float64) Vector {
	if hi < lo {
		return nil
	}
	out := make(Vector, 0, len(v))
	for _, s := range floatsOnly(v) {
		out = append(out, Sample{Metric: dropName(s.Metric), F: math.Max(lo, math.Min(hi, s.F))})
	}
	return out
}

func init() {
	functions = map[string]*funcDef{
		"abs": simple(math.Abs), "ceil": simple(math.Ceil), "floor": simple(math.Floor),
		"exp": simple(math.Exp), "sqrt": simple(math.Sqrt), "ln": simple(math.Log),
		"log2": simple(math.Log2), "log10": simple(math.Log10),
		"sin": simple(math.Sin), "cos": simple(math.Cos), "tan": simple(math.Tan),
		"asin": simple(math.Asin), "acos": simple(math.Acos), "atan": simple(math.Atan),
		"sinh": simple(math.Sinh), "cosh": simple(math.Cosh), "tanh": simple(math.Tanh),
		"asinh": simple(math.Asinh), "acosh": simple(math.Acosh), "atanh": simple(math.Atanh),
		"rad": simple(func(f float64) float64 { return f * math.Pi / 180 }),
		"deg": simple(func(f float64) float64 { return f * 180 / math.Pi }),
		"sgn": simple(func(f float64) float64 {
			switch {
			case f < 0:
				return -1
			case f > 0:
				return 1
			}
			return f
		}),
		"pi": {ret: ts, step: func(int64, []Vector, *parser.Call) Vector {
			return Vector{{Metric: labels.EmptyLabels(), F: math.Pi}}
		}},
		"time": {ret: ts, step: func(t int64, _ []Vector, _ *parser.Call) Vector {
			return Vector{{Metric: labels.EmptyLabels(), F: float64(t) / 1000}}
		}},
		"vector": {args: []ValueType{ts}, ret: tv, step: func(_ int64, v []Vector, _ *parser.Call) Vector {
			return Vector{{Metric: labels.EmptyLabels(), F: v[0][0].F}}
		}},
		"scalar": {args: []ValueType{tv}, ret: ts, step: func(_ int64, v []Vector, _ *parser.Call) Vector {
			f := math.NaN()
			if fs := floatsOnly(v[0]); len(fs) == 1 {
				f = fs[0].F
			}
			return Vector{{Metric: labels.EmptyLabels(), F: f}}
		}},
		"round": {args: []ValueType{tv, ts}, variadic: 1, ret: tv, step: func(_ int64, v []Vector, _ *parser.Call) Vector {
			to := 1.0
			if len(v) > 1 {
				to = v[1][0].F
			}
			inv := 1.0 / to
			out := make(Vector, 0, len(v[0]))
			for _, s := range floatsOnly(v[0]) {
				out = append(out, Sample{Metric: dropName(s.Metric), F: math.Floor(s.F*inv+0.5) / inv})
			}
			return out
		}},
		"clamp": {args: []ValueType{tv, ts, ts}, ret: tv, step: func(_ int64, v []Vector, _ *parser.Call) Vector {
			return clampVec(v[0], v[1][0].F, v[2][0].F)
		}},
		"clamp_min": {args: []ValueType{tv, ts}, ret: tv, step: func(_ int64, v []Vector, _ *parser.Call) Vector {
			return clampVec(v[0], v[1][0].F, math.Inf(1))
		}},
		"clamp_max": {args: []ValueType{tv, ts}, ret: tv, step: func(_ int64, v []Vector, _ *parser.Call) Vector {
			return clampVec(v[0], math.Inf(-1), v[1][0].F)
		}},
		"timestamp": {args: []ValueType{tv}, ret: tv, step: func(t int64, v []Vector, _ *parser.Call) Vector {
			out := make(Vector, 0, len(v[0]))
			for _, s := range v[0] {
				out = append(out, Sample{Metric: dropName(s.Metric), F: float64(t) / 1000})
			}
			return out
		}},
		"sort":               {args: []ValueType{tv}, ret: tv, step: sortStep(false)},
		"sort_desc":          {args: []ValueType{tv}, ret: tv, step: sortStep(true)},
		"sort_by_label":      {args: []ValueType{tv, tS}, variadic: -1, ret: tv, step: sortByLabel(false)},
		"sort_by_label_desc": {args: []ValueType{tv, tS}, variadic: -1, ret: tv, step: sortByLabel(true)},
		"absent": {args: []ValueType{tv}, ret: tv, step: func(_ int64, v []Vector, n *parser.Call) Vector {
			if len(v[0]) > 0 {
				return nil
			}
			return Vector{{Metric: absentLabels(n.Args[0]), F: 1}}
		}},
		"histogram_quantile": {args: []ValueType{ts, tv}, ret: tv, step: histogramQuantile},
		"label_replace":      {args: []ValueType{tv, tS, tS, tS, tS}, ret: tv},
		"label_join":         {args: []ValueType{tv, tS, tS, tS}, variadic: -1, ret: tv},

		"days_in_month": date(func(t time.Time) float64 {
			return float64(32 - time.Date(t.Year(), t.Month(), 32, 0, 0, 0, 0, time.UTC).Day())
		}),
		"day_of_month": date(func(t time.Time) float64 { return float64(t.Day()) }),
		"day_of_week":  date(func(t time.Time) float64 { return float64(t.Weekday()) }),
		"day_of_year":  date(func(t time.Time) float64 { return float64(t.YearDay()) }),
		"hour":         date(func(t time.Time) float64 { return float64(t.Hour()) }),
		"minute":       date(func(t time.Time) float64 { return float64(t.Minute()) }),
		"month":        date(func(t time.Time) float64 { return float64(t.Month()) }),
		"year":         date(func(t time.Time) float64 { return float64(t.Year()) }),

		"rate":     overTime(func(w []FPoint, a *rangeArgs) (float64, bool) { return extrapolatedRate(w, a, true, true) }),
		"increase": overTime(func(w []FPoint, a *rangeArgs) (float64, bool) { return extrapolatedRate(w, a, true, false) }),
		"delta":    overTime(func(w []FPoint, a *rangeArgs) (float64, bool) { return extrapolatedRate(w, a, false, false) }),
		"irate":    overTime(func(w []FPoint, _ *rangeArgs) (float64, bool) { return instantValue(w, true) }),
		"idelta":   overTime(func(w []FPoint, _ *rangeArgs) (float64, bool) { return instantValue(w, false) }),
		"deriv": overTime(func(w []FPoint, _ *rangeArgs) (float64, bool) {
			if len(w) < 2 {
				return 0, false
			}
			slope, _ := linearRegression(w, w[0].T)
			return slope, true
		}),
		"predict_linear": {args: []ValueType{tm, ts}, ret: tv, rng: func(w []FPoint, a *rangeArgs) (float64, bool) {
			if len(w) < 2 {
				return 0, false
			}
			slope, icpt := linearRegression(w, a.ts)
			return slope*a.scalars[0] + icpt, true
		}},
		"resets": overTime(func(w []FPoint, _ *rangeArgs) (float64, bool) {
			n := 0
			for i := 1; i < len(w); i++ {
				if w[i].F < w[i-1].F {
					n++
				}
			}
			return float64(n), true
		}),
		"changes": overTime(func(w []FPoint, _ *rangeArgs) (float64, bool) {
			n := 0
			for i := 1; i < len(w); i++ {
				if w[i].F != w[i-1].F && !(math.IsNaN(w[i].F) && math.IsNaN(w[i-1].F)) {
					n++
				}
			}
			return float64(n), true
		}),
		"avg_over_time":   overTime(avgOverTime),
		"sum_over_time":   overTime(sumOverTime),
		"count_over_time": overTime(func(w []FPoint, _ *rangeArgs) (float64, bool) { return float64(len(w)), true }),
		"min_over_time": overTime(func(w []FPoint, _ *rangeArgs) (float64, bool) {
			return compareOverTime(w, func(cur, m float64) bool { return cur < m || math.IsNaN(m) }), true
		}),
		"max_over_time": overTime(func(w []FPoint, _ *rangeArgs) (float64, bool) {
			return compareOverTime(w, func(cur, m float64) bool { return cur > m || math.IsNaN(m) }), true
		}),
		"stddev_over_time":  overTime(func(w []FPoint, _ *rangeArgs) (float64, bool) { return math.Sqrt(varianceOverTime(w)), true }),
		"stdvar_over_time":  overTime(func(w []FPoint, _ *rangeArgs) (float64, bool) { return varianceOverTime(w), true }),
		"present_over_time": overTime(func([]FPoint, *rangeArgs) (float64, bool) { return 1, true }),
		"absent_over_time":  overTime(func([]FPoint, *rangeArgs) (float64, bool) { return 1, true }),
		"last_over_time": {args: []ValueType{tm}, ret: tv, keepName: true, rng: func(w []FPoint, _ *rangeArgs) (float64, bool) {
			return w[len(w)-1].F, true
		}},
		"quantile_over_time": {args: []ValueType{ts, tm}, ret: tv, rng: func(w []FPoint, a *rangeArgs) (float64, bool) {
			vals := make(byValueHeap, len(w))
			for i, p := range w {
				vals[i].F = p.F
			}
			return quantile(a.scalars[0], vals), true
		}},
		"mad_over_time": overTime(func(w []FPoint, _ *rangeArgs) (float64, bool) {
			vals := make(byValueHeap, len(w))
			for i, p := range w {
				if math.IsNaN(p.F) {
					return math.NaN(), true
				}
				vals[i].F = p.F
			}
			med := quantile(0.5, vals)
			for i := range vals {
				vals[i].F = math.Abs(vals[i].F - med)
			}
			return quantile(0.5, vals), true
		}),
	}
	addHistogramFuncs(functions)
}

// ---- evaluation of calls ----

func (ev *evaluator) call(n *parser.Call) Matrix {
	f := lookupFunc(n.Func)
	switch n.Func {
	case "label_replace":
		return ev.labelReplace(n)
	case "label_join":
		return ev.labelJoin(n)
	case "offline":
		return ev.evalOffline(n)
	case "importance_weighted":
		return ev.importanceWeighted(n)
	}
	if f.sketch != nil {
		return f.sketch(ev, n)
	}
	switch n.Func {
	case "timestamp":
		if vs, ok := unwrapParens(n.Args[0]).(*parser.VectorSelector); ok {
			m := ev.vectorSelector(vs, true)
			for i := range m {
				m[i].Metric = dropName(m[i].Metric)
			}
			return ev.mergeSameLabelset(m)
		}
	}
	if f.rng != nil {
		return ev.rangeCall(n, f)
	}
	if strings.HasPrefix(n.Func, "sort") && ev.start != ev.end {
		ev.warn("PromQL info: sort is ineffective for range queries since results are always ordered by labels")
	}
	var inputs []Matrix
	for _, a := range n.Args {
		if typeOf(a) == TypeString {
			continue
		}
		inputs = append(inputs, ev.eval(a).(Matrix))
	}
	return ev.stepwise(inputs, func(t int64, v []Vector, _ [][]int) Vector { return f.step(t, v, n) })
}

func unwrapParens(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// rangeCall evaluates a function whose argument is a range vector: for
// each series and step, the points in the window (ref-range, ref].
func (ev *evaluator) rangeCall(n *parser.Call, f *funcDef) Matrix {
	var (
		idx     int
		scalars []Matrix
	)
	for i, a := range n.Args {
		if typeOf(a) == TypeMatrix {
			idx = i
			continue
		}
		scalars = append(scalars, ev.eval(a).(Matrix))
	}
	arg := unwrapParens(n.Args[idx])
	ra := &rangeArgs{scalars: make([]float64, len(scalars))}
	var out Matrix
	steps := ev.numSteps()
	total := 0
	var win window[FPoint]
	var hwin window[HPoint]
	var at *int64
	var off, rng int64
	// perSeries slides the window (ref-range, ref] over one series' points.
	perSeries := func(metric labels.Labels, src pointSource) {
		ev.checkCtx()
		var pts []FPoint
		var hpts []HPoint
		win.reset()
		hwin.reset()
		pend, hasPend := src.next()
		ra.metric = metric
		// Most series hold floats only: the histogram window is left
		// alone until a histogram arrives.
		hasH := false
		step := -1
		for t := ev.start; t <= ev.end; t += ev.interval {
			step++
			if step&1023 == 1023 {
				ev.checkCtx()
			}
			ref := refTime(t, at, off)
			for hasPend && pend.T <= ref {
				if pend.H != nil {
					hwin.push(HPoint{T: pend.T, H: pend.H})
					hasH = true
				} else {
					win.push(FPoint{T: pend.T, F: pend.F})
				}
				pend, hasPend = src.next()
			}
			win.dropUpTo(ref - rng)
			w := win.points()
			var hw []HPoint
			if hasH {
				hwin.dropUpTo(ref - rng)
				hw = hwin.points()
			}
			if len(hw) == 0 && len(w) == 0 || len(hw) > 0 && f.hrng == nil && len(w) == 0 {
				continue
			}
			for i, sm := range scalars {
				ra.scalars[i] = sm[0].Floats[step].F
			}
			ra.ts, ra.rangeStart, ra.rangeEnd = t, ref-rng, ref
			var (
				v  float64
				h  *histogram.FloatHistogram
				ok bool
			)
			if len(hw) > 0 && f.hrng != nil {
				v, h, ok = f.hrng(w, hw, ra)
			} else {
				v, ok = f.rng(w, ra)
			}
			if !ok {
				continue
			}
			if h != nil {
				hpts = append(hpts, HPoint{T: t, H: h})
				continue
			}
			if pts == nil {
				pts = make([]FPoint, 0, min(steps, 1024))
			}
			pts = append(pts, FPoint{T: t, F: v})
		}
		if len(pts) == 0 && len(hpts) == 0 {
			return
		}
		total += len(pts) + len(hpts)
		ev.checkPoints(total)
		if !f.keepName {
			metric = dropName(metric)
		}
		out = append(out, Series{Metric: metric, Floats: pts, Histograms: hpts})
	}
	switch a := arg.(type) {
	case *parser.MatrixSelector:
		vs := a.VectorSelector
		at = ev.atTime(vs.Timestamp, vs.StartOrEnd)
		off = vs.Offset.Milliseconds()
		rng = a.Range.Milliseconds()
		ra.rangeSec = float64(rng) / 1000
		lo, hi := refTime(ev.start, at, off), refTime(ev.end, at, off)
		ev.eachSeries(vs, lo-rng+1, hi, true, perSeries)
	case *parser.SubqueryExpr:
		var m Matrix
		m, at, off = ev.subquery(a)
		rng = a.Range.Milliseconds()
		ra.rangeSec = float64(rng) / 1000
		for _, s := range m {
			perSeries(s.Metric, &seriesPoints{fs: s.Floats, hs: unknownResetHints(s.Histograms)})
		}
	default:
		ev.errorf("unexpected range argument %T", arg)
	}
	if n.Func == "absent_over_time" {
		return ev.absentOverTime(out, n)
	}
	return ev.mergeSameLabelset(out)
}

func (ev *evaluator) absentOverTime(m Matrix, n *parser.Call) Matrix {
	found := map[int64]bool{}
	for _, s := range m {
		for _, p := range s.Floats {
			found[p.T] = true
		}
		for _, p := range s.Histograms {
			found[p.T] = true
		}
	}
	var pts []FPoint
	for t := ev.start; t <= ev.end; t += ev.interval {
		if !found[t] {
			pts = append(pts, FPoint{T: t, F: 1})
		}
	}
	if len(pts) == 0 {
		return Matrix{}
	}
	return Matrix{{Metric: absentLabels(n.Args[0]), Floats: pts}}
}

// absentLabels are the labels absent() reports: those matched exactly by
// one equality matcher.
func absentLabels(e parser.Expr) labels.Labels {
	var ms []*labels.Matcher
	switch n := unwrapParens(e).(type) {
	case *parser.VectorSelector:
		ms = n.LabelMatchers
	case *parser.MatrixSelector:
		ms = n.VectorSelector.LabelMatchers
	default:
		return labels.EmptyLabels()
	}
	b := labels.NewBuilder(labels.EmptyLabels())
	has := map[string]bool{}
	for _, m := range ms {
		if m.Name == metricName {
			continue
		}
		if m.Type == labels.MatchEqual && !has[m.Name] {
			b.Set(m.Name, m.Value)
			has[m.Name] = true
		} else {
			b.Del(m.Name)
		}
	}
	return b.Labels()
}

func stringArg(e parser.Expr) string { return unwrapParens(e).(*parser.StringLiteral).Val }

func (ev *evaluator) labelReplace(n *parser.Call) Matrix {
	dst, repl, src, re := stringArg(n.Args[1]), stringArg(n.Args[2]), stringArg(n.Args[3]), stringArg(n.Args[4])
	regex, err := regexp.Compile("^(?s:" + re + ")$")
	if err != nil {
		ev.errorf("invalid regular expression in label_replace(): %s", re)
	}
	if !model.UTF8Validation.IsValidLabelName(dst) {
		ev.errorf("invalid destination label name in label_replace(): %s", dst)
	}
	m := ev.eval(n.Args[0]).(Matrix)
	lb := labels.NewBuilder(labels.EmptyLabels())
	for i, s := range m {
		sv := s.Metric.Get(src)
		if idx := regex.FindStringSubmatchIndex(sv); idx != nil {
			res := regex.ExpandString(nil, repl, sv, idx)
			lb.Reset(s.Metric)
			lb.Set(dst, string(res))
			m[i].Metric = lb.Labels()
		}
	}
	return ev.mergeSameLabelset(m)
}

func (ev *evaluator) labelJoin(n *parser.Call) Matrix {
	dst, sep := stringArg(n.Args[1]), stringArg(n.Args[2])
	var srcs []string
	for _, a := range n.Args[3:] {
		s := stringArg(a)
		if !model.UTF8Validation.IsValidLabelName(s) {
			ev.errorf("invalid source label name in label_join(): %s", s)
		}
		srcs = append(srcs, s)
	}
	if !model.UTF8Validation.IsValidLabelName(dst) {
		ev.errorf("invalid destination label name in label_join(): %s", dst)
	}
	m := ev.eval(n.Args[0]).(Matrix)
	lb := labels.NewBuilder(labels.EmptyLabels())
	vals := make([]string, len(srcs))
	for i, s := range m {
		for j, src := range srcs {
			vals[j] = s.Metric.Get(src)
		}
		lb.Reset(s.Metric)
		lb.Set(dst, strings.Join(vals, sep))
		m[i].Metric = lb.Labels()
	}
	return ev.mergeSameLabelset(m)
}

func sortStep(desc bool) func(int64, []Vector, *parser.Call) Vector {
	return func(_ int64, v []Vector, _ *parser.Call) Vector {
		out := slices.Clone(floatsOnly(v[0]))
		if desc {
			slices.SortStableFunc(out, func(a, b Sample) int { return descCmp(a.F, b.F) })
		} else {
			slices.SortStableFunc(out, func(a, b Sample) int { return ascCmp(a.F, b.F) })
		}
		return out
	}
}

// ascCmp orders ascending with NaN last, descCmp descending with NaN last,
// as Prometheus's sort and sort_desc do.
func ascCmp(a, b float64) int {
	switch {
	case math.IsNaN(a) && math.IsNaN(b):
		return 0
	case math.IsNaN(a):
		return 1
	case math.IsNaN(b):
		return -1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func descCmp(a, b float64) int {
	switch {
	case math.IsNaN(a) && math.IsNaN(b):
		return 0
	case math.IsNaN(a):
		return 1
	case math.IsNaN(b):
		return -1
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

func sortByLabel(desc bool) func(int64, []Vector, *parser.Call) Vector {
	return func(_ int64, v []Vector, n *parser.Call) Vector {
		var names []string
		for _, a := range n.Args[1:] {
			names = append(names, stringArg(a))
		}
		out := slices.Clone(v[0])
		slices.SortFunc(out, func(a, b Sample) int {
			for _, l := range names {
				x, y := a.Metric.Get(l), b.Metric.Get(l)
				if x == y {
					continue
				}
				r := 1
				if natsort.Compare(x, y) {
					r = -1
				}
				if desc {
					r = -r
				}
				return r
			}
			c := labels.Compare(a.Metric, b.Metric)
			if desc {
				c = -c
			}
			return c
		})
		return out
	}
}

// ---- range functions ----

// extrapolatedRate is rate, increase and delta: the difference between the
// first and last point (with counter resets corrected), extrapolated to the
// window's edges unless the series seems to start or end inside it.
func extrapolatedRate(w []FPoint, a *rangeArgs, isCounter, isRate bool) (float64, bool) {
	if len(w) < 2 {
		return 0, false
	}
	result := w[len(w)-1].F - w[0].F
	if isCounter {
		for i := 1; i < len(w); i++ {
			if w[i].F < w[i-1].F {
				result += w[i-1].F
			}
		}
	}
	zeroRatio := math.NaN()
	if result > 0 && w[0].F >= 0 {
		zeroRatio = w[0].F / result
	}
	return result * extrapolationFactor(w[0].T, w[len(w)-1].T, len(w), a, isCounter, isRate, zeroRatio), true
}

// extrapolationFactor scales the change seen between a window's first and
// last sample (n samples) to the window's edges, or only half an average
// sample interval beyond the samples when the series seems to start or end
// inside the window. A counter is not extrapolated below its zero point:
// zeroRatio is its first value over its increase (NaN when unknown).
func extrapolationFactor(first, last int64, n int, a *rangeArgs, isCounter, isRate bool, zeroRatio float64) float64 {
	toStart := float64(first-a.rangeStart) / 1000
	toEnd := float64(a.rangeEnd-last) / 1000
	sampled := float64(last-first) / 1000
	avg := sampled / float64(n-1)
	threshold := avg * 1.1
	if toStart >= threshold {
		toStart = avg / 2
	}
	if isCounter && !math.IsNaN(zeroRatio) {
		if toZero := sampled * zeroRatio; toZero < toStart {
			toStart = toZero
		}
	}
	if toEnd >= threshold {
		toEnd = avg / 2
	}
	factor := 1.0
	if sampled != 0 {
		factor = (sampled + toStart + toEnd) / sampled
	}
	if isRate {
		factor /= a.rangeSec
	}
	return factor
}

// instantValue is irate and idelta: the last two points.
func instantValue(w []FPoint, isRate bool) (float64, bool) {
	if len(w) < 2 {
		return 0, false
	}
	prev, last := w[len(w)-2], w[len(w)-1]
	interval := last.T - prev.T
	if interval == 0 {
		return 0, false
	}
	res := last.F
	if !isRate || !(last.F < prev.F) {
		res = last.F - prev.F
	}
	if isRate {
		res /= float64(interval) / 1000
	}
	return res, true
}

func linearRegression(w []FPoint, interceptTime int64) (slope, intercept float64) {
	var n, sumX, cX, sumY, cY, sumXY, cXY, sumX2, cX2 float64
	initY := w[0].F
	constY := true
	for i, p := range w {
		if constY && i > 0 && p.F != initY {
			constY = false
		}
		n++
		x := float64(p.T-interceptTime) / 1e3
		sumX, cX = kahanInc(x, sumX, cX)
		sumY, cY = kahanInc(p.F, sumY, cY)
		sumXY, cXY = kahanInc(x*p.F, sumXY, cXY)
		sumX2, cX2 = kahanInc(x*x, sumX2, cX2)
	}
	if constY {
		if math.IsInf(initY, 0) {
			return math.NaN(), math.NaN()
		}
		return 0, initY
	}
	sumX += cX
	sumY += cY
	sumXY += cXY
	sumX2 += cX2
	covXY := sumXY - sumX*sumY/n
	varX := sumX2 - sumX*sumX/n
	slope = covXY / varX
	intercept = sumY/n - slope*sumX/n
	return slope, intercept
}

func avgOverTime(w []FPoint, _ *rangeArgs) (float64, bool) {
	sum, count := w[0].F, 1.0
	var mean, c float64
	incremental := false
	for i, p := range w[1:] {
		count = float64(i + 2)
		if !incremental {
			ns, nc := kahanInc(p.F, sum, c)
			if !math.IsInf(ns, 0) {
				sum, c = ns, nc
				continue
			}
			incremental = true
			mean = sum / (count - 1)
			c /= count - 1
		}
		q := (count - 1) / count
		mean, c = kahanInc(p.F/count, q*mean, q*c)
	}
	if incremental {
		return mean + c, true
	}
	return sum/count + c/count, true
}

func sumOverTime(w []FPoint, _ *rangeArgs) (float64, bool) {
	var sum, c float64
	for _, p := range w {
		sum, c = kahanInc(p.F, sum, c)
	}
	if math.IsInf(sum, 0) {
		return sum, true
	}
	return sum + c, true
}

func compareOverTime(w []FPoint, better func(cur, best float64) bool) float64 {
	best := w[0].F
	for _, p := range w {
		if better(p.F, best) {
			best = p.F
		}
	}
	return best
}

func varianceOverTime(w []FPoint) float64 {
	var count, mean, cMean, aux, cAux float64
	for _, p := range w {
		count++
		delta := p.F - (mean + cMean)
		mean, cMean = kahanInc(delta/count, mean, cMean)
		aux, cAux = kahanInc(delta*(p.F-(mean+cMean)), aux, cAux)
	}
	return (aux + cAux) / count
}

// ---- histogram_quantile over classic buckets ----

type bucket struct{ upper, count float64 }

// sortBuckets orders buckets by upper bound.
func sortBuckets(buckets []bucket) []bucket {
	slices.SortFunc(buckets, func(a, b bucket) int {
		switch {
		case a.upper < b.upper:
			return -1
		case a.upper > b.upper:
			return 1
		}
		return 0
	})
	return buckets
}

// coalesce merges sorted buckets that share an upper bound.
func coalesce(buckets []bucket) []bucket {
	j := 0
	for i := 1; i < len(buckets); i++ {
		if buckets[i].upper == buckets[j].upper {
			buckets[j].count += buckets[i].count
		} else {
			j++
			buckets[j] = buckets[i]
		}
	}
	return buckets[:j+1]
}

func bucketQuantile(q float64, buckets []bucket) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	}
	buckets = sortBuckets(buckets)
	if !math.IsInf(buckets[len(buckets)-1].upper, 1) {
		return math.NaN()
	}
	buckets = coalesce(buckets)
	// Force monotonic counts, ignoring tiny float differences.
	prev := buckets[0].count
	for i := 1; i < len(buckets); i++ {
		cur := buckets[i].count
		if cur == prev {
			continue
		}
		if almostEqual(prev, cur, 1e-12) || cur < prev {
			buckets[i].count = prev
			continue
		}
		prev = cur
	}
	if len(buckets) < 2 {
		return math.NaN()
	}
	obs := buckets[len(buckets)-1].count
	if obs == 0 {
		return math.NaN()
	}
	rank := q * obs
	// A binary search, as Prometheus does: with NaN counts the answer
	// depends on the probing order.
	b := sort.Search(len(buckets)-1, func(i int) bool { return buckets[i].count >= rank })
	switch {
	case b == len(buckets)-1:
		return buckets[len(buckets)-2].upper
	case b == 0 && buckets[0].upper <= 0:
		return buckets[0].upper
	}
	var start float64
	end := buckets[b].upper
	count := buckets[b].count
	if b > 0 {
		start = buckets[b-1].upper
		count -= buckets[b-1].count
		rank -= buckets[b-1].count
	}
	return start + (end-start)*(rank/count)
}

var minNormal = math.Float64frombits(0x0010000000000000)

func almostEqual(a, b, eps float64) bool {
	if value.IsStaleNaN(a) || value.IsStaleNaN(b) {
		return value.IsStaleNaN(a) && value.IsStaleNaN(b)
	}
	if math.IsNaN(a) && math.IsNaN(b) {
		return true
	}
	if a == b {
		return true
	}
	absSum := math.Abs(a) + math.Abs(b)
	diff := math.Abs(a - b)
	if a == 0 || b == 0 || absSum < minNormal {
		return diff < eps*minNormal
	}
	return diff/math.Min(absSum, math.MaxFloat64) < eps
}

// timed is a point with a time: FPoint or HPoint.
type timed interface{ time() int64 }

func (p FPoint) time() int64 { return p.T }
func (p HPoint) time() int64 { return p.T }

// window holds the points of a sliding range window in time order.
type window[P timed] struct {
	buf   []P
	start int
}

func (w *window[P]) reset()      { w.buf, w.start = w.buf[:0], 0 }
func (w *window[P]) points() []P { return w.buf[w.start:] }

func (w *window[P]) push(p P) {
	if w.start > 0 && w.start >= len(w.buf)/2 && len(w.buf) == cap(w.buf) {
		n := copy(w.buf, w.buf[w.start:])
		w.buf, w.start = w.buf[:n], 0
	}
	w.buf = append(w.buf, p)
}

// dropUpTo removes the points at or before t (the window is left-open).
func (w *window[P]) dropUpTo(t int64) {
	for w.start < len(w.buf) && w.buf[w.start].time() <= t {
		w.start++
	}
}
