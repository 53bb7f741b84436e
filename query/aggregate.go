package query

import (
	"container/heap"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query/parser"
)

type group struct {
	seen        bool
	f, c        float64 // value and Kahan compensation
	mean        float64
	count       float64
	incremental bool
	heap        byValueHeap
	// hasF and hasH record whether sum or avg saw floats and native
	// histograms: a group that mixes them has no result.
	hasF, hasH bool
	hist       histAcc
}

func groupingKey(l labels.Labels, grouping []string, without bool, buf []byte) (uint64, []byte) {
	if without {
		return l.HashWithoutLabels(buf, grouping...)
	}
	if len(grouping) == 0 {
		return 0, buf
	}
	return l.HashForLabels(buf, grouping...)
}

func groupingLabels(lb *labels.Builder, l labels.Labels, grouping []string, without bool) labels.Labels {
	lb.Reset(l)
	switch {
	case without:
		lb.Del(grouping...)
		lb.Del(metricName)
		return lb.Labels()
	case len(grouping) > 0:
		lb.Keep(grouping...)
		return lb.Labels()
	}
	return labels.EmptyLabels()
}

func (ev *evaluator) aggregate(n *parser.AggregateExpr) Matrix {
	if n.Op == "sum" && isSketchMetricExpr(n.Expr) {
		return ev.pooledMetric(n)
	}
	grouping := slices.Clone(n.Grouping)
	if n.Without {
		grouping = append(grouping, metricName)
	}
	slices.Sort(grouping)
	lb := labels.NewBuilder(labels.EmptyLabels())

	if n.Op == "count_values" {
		valueLabel := n.Param.(*parser.StringLiteral).Val
		if !model.UTF8Validation.IsValidLabelName(valueLabel) {
			ev.errorf("invalid label name %s", strconv.Quote(valueLabel))
		}
		if !n.Without {
			grouping = append(grouping, valueLabel)
			slices.Sort(grouping)
		}
		in := ev.eval(n.Expr).(Matrix)
		return ev.stepwise([]Matrix{in}, func(ts int64, v []Vector, _ [][]int) Vector {
			type gc struct {
				l labels.Labels
				n int
			}
			res := map[uint64]*gc{}
			var order []uint64
			var buf []byte
			for _, s := range v[0] {
				lb.Reset(s.Metric)
				if s.H != nil {
					lb.Set(valueLabel, s.H.String())
				} else {
					lb.Set(valueLabel, strconv.FormatFloat(s.F, 'f', -1, 64))
				}
				m := lb.Labels()
				var k uint64
				k, buf = groupingKey(m, grouping, n.Without, buf)
				if g, ok := res[k]; ok {
					g.n++
					continue
				}
				res[k] = &gc{l: groupingLabels(labels.NewBuilder(labels.EmptyLabels()), m, grouping, n.Without), n: 1}
				order = append(order, k)
			}
			out := make(Vector, 0, len(order))
			for _, k := range order {
				out = append(out, Sample{Metric: res[k].l, F: float64(res[k].n)})
			}
			return out
		})
	}

	var params Matrix
	if n.Param != nil {
		params = ev.eval(n.Param).(Matrix)
	}
	in := ev.eval(n.Expr).(Matrix)

	// Group every input series once.
	var buf []byte
	groupIdx := map[uint64]int{}
	seriesGroup := make([]int, len(in))
	var groupLabels []labels.Labels
	for i, s := range in {
		var k uint64
		k, buf = groupingKey(s.Metric, grouping, n.Without, buf)
		g, ok := groupIdx[k]
		if !ok {
			g = len(groupLabels)
			groupIdx[k] = g
			groupLabels = append(groupLabels, groupingLabels(lb, s.Metric, grouping, n.Without))
		}
		seriesGroup[i] = g
	}
	groups := make([]group, len(groupLabels))

	paramAt := func(step int) float64 {
		if len(params) == 0 || step >= len(params[0].Floats) {
			return math.NaN()
		}
		return params[0].Floats[step].F
	}
	switch n.Op {
	case "topk", "bottomk", "limitk":
		hi, lo, nan := paramRange(params)
		if hi < 1 {
			return Matrix{}
		}
		if nan {
			ev.errorf("Parameter value is NaN")
		}
		if lo <= math.MinInt64 {
			ev.errorf("Scalar value %v underflows int64", lo)
		}
		if hi >= math.MaxInt64 {
			ev.errorf("Scalar value %v overflows int64", hi)
		}
	case "limit_ratio":
		hi, lo, nan := paramRange(params)
		if hi == 0 && lo == 0 {
			return Matrix{}
		}
		if nan {
			ev.errorf("Ratio value is NaN")
		}
		if hi > 1 || lo < -1 {
			ev.warn("PromQL warning: ratio value should be between -1 and 1")
		}
	case "quantile":
		hi, lo, nan := paramRange(params)
		if nan || hi > 1 || lo < 0 {
			ev.warn("PromQL warning: quantile value should be between 0 and 1")
		}
	}

	st := newStepper(ev, in)
	col := newCollector(ev)
	step := -1
	for ts := ev.start; ts <= ev.end; ts += ev.interval {
		step++
		ev.checkCtx()
		vec, ids := st.gather(0, ts)
		p := paramAt(step)
		var out Vector
		switch n.Op {
		case "topk", "bottomk", "limitk", "limit_ratio":
			out = aggregateK(n.Op, p, vec, ids, seriesGroup, groups, len(in))
		default:
			out = aggregateStep(n.Op, p, vec, ids, seriesGroup, groups, groupLabels)
		}
		col.add(ts, out)
	}
	return col.out
}

func paramRange(m Matrix) (hi, lo float64, nan bool) {
	// As Prometheus: math.Max/Min propagate NaN; no parameter at all is 0.
	if len(m) == 0 {
		return 0, 0, false
	}
	hi, lo = -math.MaxFloat64, math.MaxFloat64
	for _, p := range m[0].Floats {
		hi, lo = math.Max(hi, p.F), math.Min(lo, p.F)
		if math.IsNaN(p.F) {
			nan = true
		}
	}
	return hi, lo, nan
}

func aggregateStep(op string, q float64, vec Vector, ids []int, seriesGroup []int, groups []group, groupLabels []labels.Labels) Vector {
	for i := range groups {
		groups[i].seen = false
	}
	for k, s := range vec {
		g := &groups[seriesGroup[ids[k]]]
		f := s.F
		if s.H != nil {
			switch op {
			case "sum", "avg", "count", "group":
			default:
				// min, max, stddev, stdvar and quantile ignore
				// histograms, as in Prometheus.
				continue
			}
		}
		if !g.seen {
			*g = group{seen: true, f: f, mean: f, count: 1}
			if s.H != nil {
				g.hasH = true
				g.hist.add(s.H, op == "avg")
			} else {
				g.hasF = true
			}
			switch op {
			case "stddev", "stdvar":
				if math.IsNaN(f) || math.IsInf(f, 0) {
					g.f = math.NaN()
				} else {
					g.f = 0
				}
			case "quantile":
				g.heap = byValueHeap{{F: f}}
			case "group":
				g.f = 1
			}
			continue
		}
		if s.H != nil || (op == "sum" || op == "avg") && g.hasH {
			// Histograms join the histogram accumulator; a float in a
			// group that has them only marks the group mixed.
			if op == "avg" {
				g.count++
			}
			if s.H == nil {
				g.hasF = true
				continue
			}
			if op == "count" {
				g.count++
			}
			if op == "sum" || op == "avg" {
				g.hasH = true
				if !g.hasF {
					g.hist.add(s.H, op == "avg")
				}
			}
			continue
		}
		switch op {
		case "sum":
			g.hasF = true
			g.f, g.c = kahanInc(f, g.f, g.c)
		case "avg":
			g.hasF = true
			g.count++
			if !g.incremental {
				nv, nc := kahanInc(f, g.f, g.c)
				if !math.IsInf(nv, 0) {
					g.f, g.c = nv, nc
					break
				}
				g.incremental = true
				g.mean = g.f / (g.count - 1)
				g.c /= g.count - 1
			}
			r := (g.count - 1) / g.count
			g.mean, g.c = kahanInc(f/g.count, r*g.mean, r*g.c)
		case "max":
			if g.f < f || math.IsNaN(g.f) {
				g.f = f
			}
		case "min":
			if g.f > f || math.IsNaN(g.f) {
				g.f = f
			}
		case "count":
			g.count++
		case "stddev", "stdvar":
			g.count++
			delta := f - g.mean
			g.mean += delta / g.count
			g.f += delta * (f - g.mean)
		case "quantile":
			g.heap = append(g.heap, Sample{F: f})
		}
	}
	out := make(Vector, 0, len(groups))
	for i := range groups {
		g := &groups[i]
		if !g.seen {
			continue
		}
		v := g.f
		if (op == "sum" || op == "avg") && g.hasH {
			if g.hasF {
				continue
			}
			var h *histogram.FloatHistogram
			if op == "sum" {
				h = g.hist.total()
			} else {
				h = g.hist.average()
			}
			if h != nil {
				out = append(out, Sample{Metric: groupLabels[i], H: h.Compact(0)})
			}
			continue
		}
		switch op {
		case "avg":
			if g.incremental {
				v = g.mean + g.c
			} else {
				v = g.f/g.count + g.c/g.count
			}
		case "count":
			v = g.count
		case "stdvar":
			v = g.f / g.count
		case "stddev":
			v = math.Sqrt(g.f / g.count)
		case "quantile":
			v = quantile(q, g.heap)
		case "sum":
			v = g.f + g.c
		}
		out = append(out, Sample{Metric: groupLabels[i], F: v})
	}
	return out
}

func aggregateK(op string, p float64, vec Vector, ids []int, seriesGroup []int, groups []group, numSeries int) Vector {
	for i := range groups {
		groups[i].seen = false
	}
	var k int64
	var r float64
	switch op {
	case "limit_ratio":
		switch {
		case p == 0:
			return nil
		case p < -1:
			r = -1
		case p > 1:
			r = 1
		default:
			r = p
		}
	default:
		k = min(int64(p), int64(numSeries))
		if k < 1 {
			return nil
		}
	}
	for j, s := range vec {
		if s.H != nil && (op == "topk" || op == "bottomk") {
			continue // they rank floats only, as in Prometheus
		}
		g := &groups[seriesGroup[ids[j]]]
		if !g.seen {
			*g = group{seen: true, heap: make(byValueHeap, 0, 4)}
			switch op {
			case "limit_ratio":
				if addRatioSample(r, s.Metric) {
					heap.Push(&g.heap, &s)
				}
			case "limitk":
				g.heap = append(g.heap, s)
			case "topk":
				heap.Push(&g.heap, &s)
			case "bottomk":
				heap.Push((*byReverseValueHeap)(&g.heap), &s)
			}
			continue
		}
		switch op {
		case "topk":
			switch {
			case int64(len(g.heap)) < k:
				heap.Push(&g.heap, &s)
			case g.heap[0].F < s.F || (math.IsNaN(g.heap[0].F) && !math.IsNaN(s.F)):
				g.heap[0] = s
				if k > 1 {
					heap.Fix(&g.heap, 0)
				}
			}
		case "bottomk":
			switch {
			case int64(len(g.heap)) < k:
				heap.Push((*byReverseValueHeap)(&g.heap), &s)
			case g.heap[0].F > s.F || (math.IsNaN(g.heap[0].F) && !math.IsNaN(s.F)):
				g.heap[0] = s
				if k > 1 {
					heap.Fix((*byReverseValueHeap)(&g.heap), 0)
				}
			}
		case "limitk":
			if int64(len(g.heap)) < k {
				g.heap = append(g.heap, s)
			}
		case "limit_ratio":
			if addRatioSample(r, s.Metric) {
				heap.Push(&g.heap, &s)
			}
		}
	}
	var out Vector
	for i := range groups {
		g := &groups[i]
		if !g.seen {
			continue
		}
		switch op {
		case "topk":
			if len(g.heap) > 1 {
				sort.Sort(sort.Reverse(g.heap))
			}
		case "bottomk":
			if len(g.heap) > 1 {
				sort.Sort(sort.Reverse((*byReverseValueHeap)(&g.heap)))
			}
		}
		out = append(out, g.heap...)
	}
	return out
}

// addRatioSample keeps a series in limit_ratio by a stable hash of its
// labels, so the same series are kept at every step and across ratios.
func addRatioSample(ratio float64, l labels.Labels) bool {
	off := float64(l.Hash()) / float64(math.MaxUint64)
	return (ratio >= 0 && off < ratio) || (ratio < 0 && off >= 1+ratio)
}

// byValueHeap orders samples by value, NaN first (Prometheus's order for
// topk, quantile and sort).
type byValueHeap Vector

func (s byValueHeap) Len() int { return len(s) }
func (s byValueHeap) Less(i, j int) bool {
	if math.IsNaN(s[i].F) {
		return true
	}
	return s[i].F < s[j].F
}
func (s byValueHeap) Swap(i, j int) { s[i], s[j] = s[j], s[i] }
func (s *byValueHeap) Push(x any)   { *s = append(*s, *x.(*Sample)) }
func (s *byValueHeap) Pop() any {
	old := *s
	el := old[len(old)-1]
	*s = old[:len(old)-1]
	return el
}

type byReverseValueHeap Vector

func (s byReverseValueHeap) Len() int { return len(s) }
func (s byReverseValueHeap) Less(i, j int) bool {
	if math.IsNaN(s[i].F) {
		return true
	}
	return s[i].F > s[j].F
}
func (s byReverseValueHeap) Swap(i, j int) { s[i], s[j] = s[j], s[i] }
func (s *byReverseValueHeap) Push(x any)   { *s = append(*s, *x.(*Sample)) }
func (s *byReverseValueHeap) Pop() any {
	old := *s
	el := old[len(old)-1]
	*s = old[:len(old)-1]
	return el
}

// quantile is the φ-quantile of values by linear interpolation between
// closest ranks (values are reordered).
func quantile(q float64, values byValueHeap) float64 {
	if len(values) == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	if q < 0 {
		return math.Inf(-1)
	}
	if q > 1 {
		return math.Inf(1)
	}
	sort.Sort(values)
	n := float64(len(values))
	rank := q * (n - 1)
	lo := math.Max(0, math.Floor(rank))
	hi := math.Min(n-1, lo+1)
	w := rank - math.Floor(rank)
	if w == 0 {
		return values[int(lo)].F
	}
	return values[int(lo)].F*(1-w) + values[int(hi)].F*w
}

// kahanInc adds inc to sum with Kahan-Babuška compensation c.
func kahanInc(inc, sum, c float64) (float64, float64) {
	t := sum + inc
	switch {
	case math.IsInf(t, 0):
		c = 0
	case math.Abs(sum) >= math.Abs(inc):
		c += (sum - t) + inc
	default:
		c += (inc - t) + sum
	}
	return t, c
}
