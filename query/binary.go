package query

import (
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query/parser"
)

func (ev *evaluator) binary(n *parser.BinaryExpr) Matrix {
	lt, rt := typeOf(n.LHS), typeOf(n.RHS)
	lhs := ev.eval(n.LHS).(Matrix)
	rhs := ev.eval(n.RHS).(Matrix)
	switch {
	case lt == TypeScalar && rt == TypeScalar:
		return ev.stepwise([]Matrix{lhs, rhs}, func(ts int64, v []Vector, _ [][]int) Vector {
			return Vector{{Metric: labels.EmptyLabels(), F: scalarBinop(n.Op, v[0][0].F, v[1][0].F)}}
		})
	case lt == TypeVector && rt == TypeScalar:
		return ev.stepwise([]Matrix{lhs, rhs}, func(ts int64, v []Vector, _ [][]int) Vector {
			return vectorScalarBinop(n.Op, v[0], v[1][0].F, false, n.ReturnBool)
		})
	case lt == TypeScalar && rt == TypeVector:
		return ev.stepwise([]Matrix{lhs, rhs}, func(ts int64, v []Vector, _ [][]int) Vector {
			return vectorScalarBinop(n.Op, v[1], v[0][0].F, true, n.ReturnBool)
		})
	}
	vm := n.VectorMatching
	if vm == nil {
		vm = &parser.VectorMatching{Card: parser.CardOneToOne}
	}
	// Signatures are computed once per input series; equal signatures
	// share an ordinal.
	sigf := signatureFunc(vm.On, vm.MatchingLabels)
	ords := map[string]int{}
	sigs := [2][]int{}
	for k, m := range []Matrix{lhs, rhs} {
		sigs[k] = make([]int, len(m))
		for i, s := range m {
			sig := sigf(s.Metric)
			o, ok := ords[sig]
			if !ok {
				o = len(ords)
				ords[sig] = o
			}
			sigs[k][i] = o
		}
	}
	b := &binopState{ev: ev, n: n, vm: vm, numSigs: len(ords)}
	return ev.stepwise([]Matrix{lhs, rhs}, func(ts int64, v []Vector, ids [][]int) Vector {
		ls := b.sigsOf(sigs[0], ids[0], &b.lbuf)
		rs := b.sigsOf(sigs[1], ids[1], &b.rbuf)
		switch n.Op {
		case "and":
			return b.and(v[0], v[1], ls, rs)
		case "or":
			return b.or(v[0], v[1], ls, rs)
		case "unless":
			return b.unless(v[0], v[1], ls, rs)
		}
		return b.binop(v[0], v[1], ls, rs, ids[0], ids[1])
	})
}

// signatureFunc returns the matching key of a label set: the on(...)
// labels, or every label but the ignoring(...) ones and the metric name.
func signatureFunc(on bool, names []string) func(labels.Labels) string {
	names = slices.Clone(names)
	var buf []byte
	if on {
		slices.Sort(names)
		return func(l labels.Labels) string { buf = l.BytesWithLabels(buf, names...); return string(buf) }
	}
	names = append(names, metricName)
	slices.Sort(names)
	return func(l labels.Labels) string { buf = l.BytesWithoutLabels(buf, names...); return string(buf) }
}

type binopState struct {
	ev         *evaluator
	n          *parser.BinaryExpr
	vm         *parser.VectorMatching
	numSigs    int
	lbuf, rbuf []int
	present    []bool
	rightSigs  []Sample
	rightIDs   []int
	metrics    map[[2]int]labels.Labels
	matched    []bool
	matchedSet []map[uint64]struct{}
	lb         *labels.Builder
}

func (b *binopState) sigsOf(all []int, ids []int, buf *[]int) []int {
	out := (*buf)[:0]
	for _, id := range ids {
		out = append(out, all[id])
	}
	*buf = out
	return out
}

func (b *binopState) resetPresent() []bool {
	if b.present == nil {
		b.present = make([]bool, b.numSigs)
	} else {
		clear(b.present)
	}
	return b.present
}

func (b *binopState) and(lhs, rhs Vector, ls, rs []int) Vector {
	if len(lhs) == 0 || len(rhs) == 0 {
		return nil
	}
	p := b.resetPresent()
	for _, s := range rs {
		p[s] = true
	}
	var out Vector
	for i, s := range lhs {
		if p[ls[i]] {
			out = append(out, s)
		}
	}
	return out
}

func (b *binopState) or(lhs, rhs Vector, ls, rs []int) Vector {
	switch {
	case len(lhs) == 0:
		return slices.Clone(rhs)
	case len(rhs) == 0:
		return slices.Clone(lhs)
	}
	p := b.resetPresent()
	out := make(Vector, 0, len(lhs)+len(rhs))
	for i, s := range lhs {
		p[ls[i]] = true
		out = append(out, s)
	}
	for j, s := range rhs {
		if !p[rs[j]] {
			out = append(out, s)
		}
	}
	return out
}

func (b *binopState) unless(lhs, rhs Vector, ls, rs []int) Vector {
	if len(lhs) == 0 || len(rhs) == 0 {
		return slices.Clone(lhs)
	}
	p := b.resetPresent()
	for _, s := range rs {
		p[s] = true
	}
	var out Vector
	for i, s := range lhs {
		if !p[ls[i]] {
			out = append(out, s)
		}
	}
	return out
}

func matchLabels(l labels.Labels, on bool, names []string) labels.Labels {
	if on {
		return l.MatchLabels(true, names...)
	}
	return l.MatchLabels(false, append([]string{metricName}, names...)...)
}

func (b *binopState) binop(lhs, rhs Vector, ls, rs, lids, rids []int) Vector {
	if len(lhs) == 0 || len(rhs) == 0 {
		return nil
	}
	vm, op := b.vm, b.n.Op
	if vm.Card == parser.CardOneToMany {
		lhs, rhs = rhs, lhs
		ls, rs = rs, ls
		lids, rids = rids, lids
	}
	if b.rightSigs == nil {
		b.rightSigs = make([]Sample, b.numSigs)
		b.rightIDs = make([]int, b.numSigs)
		b.metrics = map[[2]int]labels.Labels{}
	}
	present := b.resetPresent()
	for i, s := range rhs {
		o := rs[i]
		if present[o] {
			side := "right"
			if vm.Card == parser.CardOneToMany {
				side = "left"
			}
			d1, d2 := s.Metric.String(), b.rightSigs[o].Metric.String()
			if d1 > d2 {
				d1, d2 = d2, d1
			}
			b.ev.errorf("found duplicate series for the match group %s on the %s hand-side of the operation: [%s, %s];many-to-many matching not allowed: matching labels must be unique on one side",
				matchLabels(s.Metric, vm.On, vm.MatchingLabels).String(), side, d1, d2)
		}
		b.rightSigs[o] = s
		b.rightIDs[o] = rids[i]
		present[o] = true
	}
	if vm.Card == parser.CardOneToOne {
		if b.matched == nil {
			b.matched = make([]bool, b.numSigs)
		} else {
			clear(b.matched)
		}
	} else {
		if b.matchedSet == nil {
			b.matchedSet = make([]map[uint64]struct{}, b.numSigs)
		}
		for _, m := range b.matchedSet {
			clear(m)
		}
	}
	if b.lb == nil {
		b.lb = labels.NewBuilder(labels.EmptyLabels())
	}
	out := make(Vector, 0, len(lhs))
	for i, l := range lhs {
		o := ls[i]
		if !present[o] {
			continue
		}
		r := b.rightSigs[o]
		fl, fr := l.F, r.F
		hl, hr := l.H, r.H
		if vm.Card == parser.CardOneToMany {
			fl, fr = fr, fl
			hl, hr = hr, hl
		}
		var (
			val  float64
			h    *histogram.FloatHistogram
			keep bool
		)
		if hl == nil && hr == nil {
			val, keep = vectorElemBinop(op, fl, fr)
		} else {
			var ok bool
			if h, keep, ok = histogramBinop(op, fl, fr, hl, hr); !ok {
				// Prometheus drops a pair it cannot combine before
				// matching it.
				continue
			}
		}
		if b.n.ReturnBool {
			h = nil
			if keep {
				val = 1
			} else {
				val = 0
			}
		}
		// Result labels depend only on the pair of input series: build
		// them once per pair, not once per step.
		key := [2]int{lids[i], b.rightIDs[o]}
		metric, ok := b.metrics[key]
		if !ok {
			metric = b.resultMetric(l.Metric, r.Metric)
			b.metrics[key] = metric
		}
		if vm.Card == parser.CardOneToOne {
			if b.matched[o] {
				b.ev.errorf("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)")
			}
			b.matched[o] = true
		} else {
			h := metric.Hash()
			if b.matchedSet[o] == nil {
				b.matchedSet[o] = map[uint64]struct{}{}
			}
			if _, dup := b.matchedSet[o][h]; dup {
				b.ev.errorf("multiple matches for labels: grouping labels must ensure unique matches")
			}
			b.matchedSet[o][h] = struct{}{}
		}
		if !keep && !b.n.ReturnBool {
			continue
		}
		out = append(out, Sample{Metric: metric, F: val, H: h})
	}
	return out
}

func (b *binopState) resultMetric(lhs, rhs labels.Labels) labels.Labels {
	vm := b.vm
	b.lb.Reset(lhs)
	if b.n.ReturnBool || changesMetricSchema(b.n.Op) {
		b.lb.Del(metricName)
	}
	if vm.Card == parser.CardOneToOne {
		if vm.On {
			b.lb.Keep(vm.MatchingLabels...)
		} else {
			b.lb.Del(vm.MatchingLabels...)
		}
	}
	for _, ln := range vm.Include {
		if v := rhs.Get(ln); v != "" {
			b.lb.Set(ln, v)
		} else {
			b.lb.Del(ln)
		}
	}
	return b.lb.Labels()
}

func changesMetricSchema(op string) bool {
	switch op {
	case "+", "-", "*", "/", "^", "%", "atan2":
		return true
	}
	return false
}

func vectorScalarBinop(op string, lhs Vector, s float64, swap, returnBool bool) Vector {
	var out Vector
	for _, smp := range lhs {
		if smp.H != nil {
			// A histogram and a scalar combine only by h*s, s*h and
			// h/s; comparisons drop it even with bool, as in Prometheus.
			var h *histogram.FloatHistogram
			switch {
			case op == "*":
				h = smp.H.Copy().Mul(s).Compact(0)
			case op == "/" && !swap:
				h = smp.H.Copy().Div(s).Compact(0)
			default:
				continue
			}
			smp.H = h
			smp.Metric = dropName(smp.Metric)
			out = append(out, smp)
			continue
		}
		lf, rf := smp.F, s
		if swap {
			lf, rf = rf, lf
		}
		val, keep := vectorElemBinop(op, lf, rf)
		if parser.IsComparisonOperator(op) && swap {
			val = rf
		}
		if returnBool {
			if keep {
				val = 1
			} else {
				val = 0
			}
			keep = true
		}
		if !keep {
			continue
		}
		smp.F = val
		if changesMetricSchema(op) || returnBool {
			smp.Metric = dropName(smp.Metric)
		}
		out = append(out, smp)
	}
	return out
}

// histogramBinop combines two samples of which at least one is a native
// histogram (the other's float in fl or fr): h+h, h-h, h*s, s*h, h/s, and
// h==h, h!=h (keep says whether the comparison holds; the value is then the
// left histogram). ok is false for any other operation, for histograms that
// do not combine, and for sums or differences of a counter reset with a
// non-reset, which Prometheus drops.
func histogramBinop(op string, fl, fr float64, hl, hr *histogram.FloatHistogram) (h *histogram.FloatHistogram, keep, ok bool) {
	switch {
	case hl == nil:
		if op == "*" {
			return hr.Copy().Mul(fl).Compact(0), true, true
		}
	case hr == nil:
		switch op {
		case "*":
			return hl.Copy().Mul(fr).Compact(0), true, true
		case "/":
			return hl.Copy().Div(fr).Compact(0), true, true
		}
	default:
		switch op {
		case "+", "-":
			res := hl.Copy()
			var collision bool
			var err error
			if op == "+" {
				_, collision, _, err = res.Add(hr)
			} else {
				_, collision, _, err = res.Sub(hr)
				res.CounterResetHint = histogram.GaugeType
			}
			if !histOK(err) || collision {
				return nil, false, false
			}
			return res.Compact(0), true, true
		case "==":
			return hl, hl.Equals(hr), true
		case "!=":
			return hl, !hl.Equals(hr), true
		}
	}
	return nil, false, false
}

func scalarBinop(op string, l, r float64) float64 {
	switch op {
	case "+":
		return l + r
	case "-":
		return l - r
	case "*":
		return l * r
	case "/":
		return l / r
	case "^":
		return math.Pow(l, r)
	case "%":
		return math.Mod(l, r)
	case "atan2":
		return math.Atan2(l, r)
	case "==":
		return btof(l == r)
	case "!=":
		return btof(l != r)
	case ">":
		return btof(l > r)
	case "<":
		return btof(l < r)
	case ">=":
		return btof(l >= r)
	case "<=":
		return btof(l <= r)
	}
	return math.NaN()
}

func btof(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// vectorElemBinop returns the value and, for comparisons, whether the
// sample is kept (the value is then the left-hand side).
func vectorElemBinop(op string, l, r float64) (float64, bool) {
	switch op {
	case "==":
		return l, l == r
	case "!=":
		return l, l != r
	case ">":
		return l, l > r
	case "<":
		return l, l < r
	case ">=":
		return l, l >= r
	case "<=":
		return l, l <= r
	}
	return scalarBinop(op, l, r), true
}
