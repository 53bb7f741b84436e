package query

import (
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query/parser"
	"evalstore/sketch"
)

// Functions over sketch states: quantiles and moments of a distribution,
// drift distances against a reference, two-sample tests, and the
// importance-weighted average over features. docs/query-language.md ("Sketch metrics")
// documents each with an example.

// Statistics of the two-sample tests, as values of the stat label.
var testStats = []string{"p_value", "effect", "relative_effect", "ci_low", "ci_high", "statistic", "df"}

// defaultLevel is the confidence level of the tests' intervals.
const defaultLevel = 0.95

func init() {
	functions["offline"] = &funcDef{args: []ValueType{tv, tS}, variadic: 1, ret: tv}
	functions["importance_weighted"] = &funcDef{args: []ValueType{tv}, ret: tv}
	functions["quantile_sketch"] = &funcDef{args: []ValueType{ts, tv}, ret: tv, sketchArgs: []int{1}, sketch: quantileSketch}
	functions["mean_sketch"] = &funcDef{args: []ValueType{tv}, ret: tv, sketchArgs: []int{0}, sketch: unarySketch(nil, func(s sketch.Sketch) (float64, bool) {
		switch x := s.(type) {
		case *sketch.Moments:
			return x.Mean(), true
		case *sketch.LogHistogram:
			return x.Mean(), true
		case *sketch.TDigest:
			return x.Mean(), true
		}
		return 0, false
	})}
	functions["stddev_sketch"] = &funcDef{args: []ValueType{tv}, ret: tv, sketchArgs: []int{0}, sketch: unarySketch(momentsAlias, func(s sketch.Sketch) (float64, bool) {
		if x, ok := s.(*sketch.Moments); ok {
			return x.Stddev(), true
		}
		return 0, false
	})}
	functions["count_sketch"] = &funcDef{args: []ValueType{tv}, ret: tv, sketchArgs: []int{0}, sketch: unarySketch(nil, stateCount)}
	for d := sketch.PSI; d <= sketch.ChiSquared; d++ {
		functions[d.String()] = &funcDef{args: []ValueType{tv, tv}, variadic: 1, ret: tv, sketchArgs: []int{0, 1}, sketch: driftFunc(d)}
	}
	for _, test := range []string{"ttest", "ztest"} {
		functions[test] = &funcDef{args: []ValueType{tv, tv, ts}, variadic: 1, ret: tv, sketchArgs: []int{0, 1}, sketch: testFunc(test, "")}
		for _, st := range []string{"pvalue", "effect", "ci_low", "ci_high"} {
			stat := st
			if st == "pvalue" {
				stat = "p_value"
			}
			functions[test+"_"+st] = &funcDef{args: []ValueType{tv, tv, ts}, variadic: 1, ret: tv, sketchArgs: []int{0, 1}, sketch: testFunc(test, stat)}
		}
	}
}

// momentsAlias reads moments where a function needs them: a measure's
// variance is only in evalstore_measure_moments.
var momentsAlias = map[string]string{FamilyMeasure: FamilyMeasureMoments}

// withAlias evaluates a sketchable argument with family aliases in force.
func (ev *evaluator) withAlias(alias map[string]string, e parser.Expr, pool *sketchScratch) *sframe {
	prev := ev.familyAlias
	ev.familyAlias = alias
	defer func() { ev.familyAlias = prev }()
	return ev.evalSketch(e, pool)
}

// rawFrame evaluates a sketch argument that must be raw family states.
func (ev *evaluator) rawFrame(fn string, e parser.Expr, alias map[string]string, pool *sketchScratch) *sframe {
	f := ev.withAlias(alias, e, pool)
	if f.metric != nil {
		f.release(pool)
		ev.errorf("%s needs the states of a series family such as evalstore_measure{...}, not the metric %s", fn, f.metric.Name)
	}
	return f
}

// scalarSteps evaluates a scalar argument to its value at every step.
func (ev *evaluator) scalarSteps(e parser.Expr) []float64 {
	out := make([]float64, ev.numSteps())
	for i := range out {
		out[i] = math.NaN()
	}
	m := ev.eval(e).(Matrix)
	if len(m) > 0 {
		for _, p := range m[0].Floats {
			out[ev.stepIndex(p.T)] = p.F
		}
	}
	return out
}

// finishRaw turns the states of a raw frame into floats with fn.
func (ev *evaluator) finishRaw(f *sframe, pool *sketchScratch, fn func(s sketch.Sketch, step int) (float64, bool)) Matrix {
	defer f.release(pool)
	var out Matrix
	total := 0
	for k, key := range f.keys {
		var pts []FPoint
		for i, st := range f.states[k] {
			if st == nil || st[0] == nil {
				continue
			}
			if v, ok := fn(st[0], i); ok {
				pts = append(pts, FPoint{T: ev.start + int64(i)*ev.interval, F: v})
			}
		}
		if len(pts) > 0 {
			out = append(out, Series{Metric: key, Floats: pts})
			total += len(pts)
			ev.checkPoints(total)
		}
	}
	return out
}

func unarySketch(alias map[string]string, fn func(s sketch.Sketch) (float64, bool)) func(*evaluator, *parser.Call) Matrix {
	return func(ev *evaluator, n *parser.Call) Matrix {
		pool := &sketchScratch{}
		f := ev.rawFrame(n.Func, n.Args[0], alias, pool)
		return ev.finishRaw(f, pool, func(s sketch.Sketch, _ int) (float64, bool) {
			v, ok := fn(s)
			if !ok {
				ev.errorf("%s cannot read %v states", n.Func, s.Format())
			}
			return v, true
		})
	}
}

func quantileSketch(ev *evaluator, n *parser.Call) Matrix {
	q := ev.scalarSteps(n.Args[0])
	for _, v := range q {
		if !(v >= 0 && v <= 1) {
			ev.warn("PromQL warning: quantile value should be between 0 and 1")
			break
		}
	}
	pool := &sketchScratch{}
	f := ev.rawFrame(n.Func, n.Args[1], nil, pool)
	return ev.finishRaw(f, pool, func(s sketch.Sketch, i int) (float64, bool) {
		switch x := s.(type) {
		case *sketch.LogHistogram:
			return x.Quantile(q[i]), true
		case *sketch.TDigest:
			return x.Quantile(q[i]), true
		}
		ev.errorf("quantile_sketch needs a distribution (log histogram or t-digest), got %v states", s.Format())
		return 0, false
	})
}

// referenceFrame evaluates e on the models' drift references from the
// definitions (dataset, run, version; default: the latest run on train).
func (ev *evaluator) referenceFrame(e parser.Expr, pool *sketchScratch) *sframe {
	defer ev.setOffline(&offlineMode{reference: true})()
	return ev.rawFrame("drift", e, nil, pool)
}

func driftFunc(d sketch.Distance) func(*evaluator, *parser.Call) Matrix {
	return func(ev *evaluator, n *parser.Call) Matrix {
		pool := &sketchScratch{}
		cur := ev.rawFrame(n.Func, n.Args[0], nil, pool)
		var ref *sframe
		if len(n.Args) > 1 {
			ref = ev.rawFrame(n.Func, n.Args[1], nil, pool)
		} else {
			ref = ev.referenceFrame(n.Args[0], pool)
		}
		return ev.twoSample(cur, ref, pool, func(_ int, _ int, a, b []sketch.Sketch, emit func(stat string, v float64)) {
			v, ok := distance(d, a[0], b[0])
			if ok {
				emit("", v)
			}
		})
	}
}

// distance is d between two distribution states; false when either side
// is empty or they are of different kinds.
func distance(d sketch.Distance, cur, ref sketch.Sketch) (float64, bool) {
	switch c := cur.(type) {
	case *sketch.Categorical:
		r, ok := ref.(*sketch.Categorical)
		if !ok {
			return 0, false
		}
		v, err := sketch.CategoricalDistance(d, c, r, sketch.DistanceOptions{})
		return v, err == nil
	case sketch.NumericDistribution:
		r, ok := ref.(sketch.NumericDistribution)
		if !ok {
			return 0, false
		}
		v, err := sketch.NumericDistance(d, c, r, sketch.DistanceOptions{})
		return v, err == nil
	}
	return 0, false
}

// twoSample pairs every key of a with the keys of b whose labels all occur,
// with equal values, in a's key (b's matching keys are pooled), and calls
// fn at every step where both sides have states. Results keep a's labels,
// plus stat="<name>" when fn emits a named statistic.
func (ev *evaluator) twoSample(a, b *sframe, pool *sketchScratch, fn func(k, step int, x, y []sketch.Sketch, emit func(stat string, v float64))) Matrix {
	defer a.release(pool)
	defer b.release(pool)
	type outKey struct {
		k    int
		stat string
	}
	idx := map[outKey]int{}
	var out Matrix
	total := 0
	for k, key := range a.keys {
		var match []int
		for r, rk := range b.keys {
			ok := true
			rk.Range(func(l labels.Label) {
				if ok && key.Get(l.Name) != l.Value {
					ok = false
				}
			})
			if ok {
				match = append(match, r)
			}
		}
		if len(match) == 0 {
			continue
		}
		for i, x := range a.states[k] {
			if x == nil {
				continue
			}
			y := make([]sketch.Sketch, b.nfam)
			var owned []sketch.Sketch
			for _, r := range match {
				st := b.states[r][i]
				if st == nil {
					continue
				}
				for fam, s := range st {
					if s == nil {
						continue
					}
					if y[fam] == nil {
						y[fam] = s
						continue
					}
					if !slices.Contains(owned, y[fam]) {
						c, err := pool.get(y[fam].Format())
						if err != nil {
							ev.abort(&Error{Type: ErrExecution, Err: err})
						}
						if err := mergeState(c, y[fam]); err != nil {
							ev.abort(&Error{Type: ErrExecution, Err: err})
						}
						y[fam] = c
						owned = append(owned, c)
					}
					if err := mergeState(y[fam], s); err != nil {
						ev.abort(&Error{Type: ErrExecution, Err: fmt.Errorf("pooling %s: %w", b.keys[r], err)})
					}
				}
			}
			if y[0] == nil || x[0] == nil {
				continue
			}
			t := ev.start + int64(i)*ev.interval
			fn(k, i, x, y, func(stat string, v float64) {
				ok2 := outKey{k, stat}
				j, seen := idx[ok2]
				if !seen {
					l := key
					if stat != "" {
						l = labels.NewBuilder(key).Set(labelStat, stat).Labels()
					}
					j = len(out)
					idx[ok2] = j
					out = append(out, Series{Metric: l})
				}
				out[j].Floats = append(out[j].Floats, FPoint{T: t, F: v})
				total++
			})
			for _, c := range owned {
				pool.put(c)
			}
		}
		ev.checkPoints(total)
	}
	return out
}

// testFunc is ttest/ztest (every statistic, labelled stat) or one of its
// companions (one statistic, no stat label).
func testFunc(test, only string) func(*evaluator, *parser.Call) Matrix {
	return func(ev *evaluator, n *parser.Call) Matrix {
		level := make([]float64, ev.numSteps())
		for i := range level {
			level[i] = defaultLevel
		}
		if len(n.Args) > 2 {
			level = ev.scalarSteps(n.Args[2])
		}
		pool := &sketchScratch{}
		var a, b *sframe
		if test == "ttest" {
			a = ev.rawFrame(n.Func, n.Args[0], momentsAlias, pool)
			b = ev.rawFrame(n.Func, n.Args[1], momentsAlias, pool)
		} else {
			a, b = ev.evalSketch(n.Args[0], pool), ev.evalSketch(n.Args[1], pool)
			if a.metric == nil || b.metric == nil || a.metric.Name != b.metric.Name {
				a.release(pool)
				b.release(pool)
				ev.errorf("%s compares one proportion metric (accuracy, precision, recall, positive_rate) on both sides, such as %s(accuracy{model=\"a\"}[1h], accuracy{model=\"b\"}[1h])", n.Func, test)
			}
		}
		var prop sketch.ProportionMetric
		if test == "ztest" {
			switch a.metric.Name {
			case "accuracy":
				prop = sketch.ProportionAccuracy
			case "precision":
				prop = sketch.ProportionPrecision
			case "recall":
				prop = sketch.ProportionRecall
			case "positive_rate":
				prop = sketch.ProportionPositiveRate
			default:
				ev.errorf("%s: %s is not a proportion (accuracy, precision, recall, positive_rate)", n.Func, a.metric.Name)
			}
		}
		return ev.twoSample(a, b, pool, func(k, i int, x, y []sketch.Sketch, emit func(string, float64)) {
			var r sketch.TestResult
			var err error
			var meanB float64
			if test == "ttest" {
				ma, okA := x[0].(*sketch.Moments)
				mb, okB := y[0].(*sketch.Moments)
				if !okA || !okB {
					ev.errorf("ttest needs moments states (evalstore_measure_moments), got %v and %v", x[0].Format(), y[0].Format())
				}
				r, err = sketch.TTest(ma, mb, level[i])
				meanB = mb.Mean()
			} else {
				ca, okA := x[0].(*sketch.Confusion)
				cb, okB := y[0].(*sketch.Confusion)
				if !okA || !okB {
					ev.errorf("ztest needs confusion states, got %v and %v", x[0].Format(), y[0].Format())
				}
				cls := -1
				if prop != sketch.ProportionAccuracy {
					cs := ev.classesFor(a.models[k], a.classMs)
					if len(cs) != 1 {
						ev.errorf("%s of %s needs one class: add a class matcher such as class=\"spam\"", n.Func, a.metric.Name)
					}
					cls = cs[0].idx
				}
				r, err = sketch.ZTest(ca, cb, prop, max(cls, 0), level[i])
				xb, nb := cb.Proportion(prop, max(cls, 0))
				meanB = float64(xb) / float64(nb)
			}
			if err != nil {
				return // too few observations on a side: no point
			}
			vals := map[string]float64{
				"p_value": r.PValue, "effect": r.Effect, "relative_effect": r.Effect / meanB,
				"ci_low": r.Lower, "ci_high": r.Upper, "statistic": r.Statistic, "df": r.DF,
			}
			if only != "" {
				emit("", vals[only])
				return
			}
			for _, s := range testStats {
				emit(s, vals[s])
			}
		})
	}
}

// importanceWeighted is importance_weighted(v): per label set without
// feature, Σ wᶠ·vᶠ / Σ wᶠ over the features f of v, wᶠ being the feature's
// importance in the definitions (1 when not declared). NaN values are
// left out.
func (ev *evaluator) importanceWeighted(n *parser.Call) Matrix {
	in := ev.eval(n.Args[0]).(Matrix)
	defs := ev.defs()
	weights := make([]float64, len(in))
	groupOf := make([]int, len(in))
	var groupLabels []labels.Labels
	gidx := map[uint64]int{}
	for i, s := range in {
		weights[i] = defs.ModelOrDefault(s.Metric.Get(labelModel)).Importance(s.Metric.Get(labelFeature))
		g := dropLabels(s.Metric, labelFeature, metricName)
		h := g.Hash()
		j, ok := gidx[h]
		if !ok {
			j = len(groupLabels)
			gidx[h] = j
			groupLabels = append(groupLabels, g)
		}
		groupOf[i] = j
	}
	num := make([]float64, len(groupLabels))
	den := make([]float64, len(groupLabels))
	return ev.stepwise([]Matrix{in}, func(_ int64, v []Vector, ids [][]int) Vector {
		clear(num)
		clear(den)
		for j, s := range v[0] {
			i := ids[0][j]
			if math.IsNaN(s.F) {
				continue
			}
			num[groupOf[i]] += weights[i] * s.F
			den[groupOf[i]] += weights[i]
		}
		var out Vector
		for g := range groupLabels {
			if den[g] > 0 {
				out = append(out, Sample{Metric: groupLabels[g], F: num[g] / den[g]})
			}
		}
		return out
	})
}
