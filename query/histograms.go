package query

import (
	"errors"
	"math"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query/parser"
	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// Native histograms in the engine: the semantics of Prometheus 3's engine
// (v0.316), implemented on FloatHistogram's arithmetic. Histograms are
// immutable once in a point or sample; every operation works on a copy.

// histOK turns the error of a FloatHistogram operation into the engine's
// rule: histograms of exponential and custom buckets do not mix (the sample
// is dropped, as Prometheus drops it with a warning); any other error is
// an invalid bucket layout and fails the query, as in Prometheus.
func histOK(err error) bool {
	if err == nil {
		return true
	}
	if errors.Is(err, histogram.ErrHistogramsIncompatibleSchema) {
		return false
	}
	panic(evalAbort{execError("native histogram: %v", err)})
}

func histAdd(h, o *histogram.FloatHistogram) bool {
	_, _, _, err := h.Add(o)
	return histOK(err)
}

func histSub(h, o *histogram.FloatHistogram) bool {
	_, _, _, err := h.Sub(o)
	return histOK(err)
}

// unknownResetHints returns hs with counter reset hints that claim a reset
// or its absence made unknown, as Prometheus does for a subquery's points:
// a subquery may skip or repeat the sample a hint was set for.
func unknownResetHints(hs []HPoint) []HPoint {
	var out []HPoint
	for i, p := range hs {
		if p.H.CounterResetHint != histogram.CounterReset && p.H.CounterResetHint != histogram.NotCounterReset {
			continue
		}
		if out == nil {
			out = slices.Clone(hs)
		}
		h := *p.H // shallow: only the hint changes
		h.CounterResetHint = histogram.UnknownCounterReset
		out[i].H = &h
	}
	if out == nil {
		return hs
	}
	return out
}

// addHistogramFuncs registers the histogram forms of the range functions
// and the functions of histograms.
func addHistogramFuncs(fs map[string]*funcDef) {
	fs["rate"].hrng = histRate(true, true)
	fs["increase"].hrng = histRate(true, false)
	fs["delta"].hrng = histRate(false, false)
	fs["irate"].hrng = histInstant(true)
	fs["idelta"].hrng = histInstant(false)
	fs["resets"].hrng = histResets
	fs["changes"].hrng = histChanges
	fs["sum_over_time"].hrng = histOverTime(false)
	fs["avg_over_time"].hrng = histOverTime(true)
	fs["count_over_time"].hrng = func(fw []FPoint, hw []HPoint, _ *rangeArgs) (float64, *histogram.FloatHistogram, bool) {
		return float64(len(fw) + len(hw)), nil, true
	}
	one := func([]FPoint, []HPoint, *rangeArgs) (float64, *histogram.FloatHistogram, bool) { return 1, nil, true }
	fs["present_over_time"].hrng = one
	fs["absent_over_time"].hrng = one
	fs["last_over_time"].hrng = func(fw []FPoint, hw []HPoint, _ *rangeArgs) (float64, *histogram.FloatHistogram, bool) {
		if len(fw) > 0 && fw[len(fw)-1].T > hw[len(hw)-1].T {
			return fw[len(fw)-1].F, nil, true
		}
		return 0, hw[len(hw)-1].H, true
	}
	fs["first_over_time"] = &funcDef{args: []ValueType{tm}, ret: tv, keepName: true,
		rng: func(w []FPoint, _ *rangeArgs) (float64, bool) { return w[0].F, true },
		hrng: func(fw []FPoint, hw []HPoint, _ *rangeArgs) (float64, *histogram.FloatHistogram, bool) {
			if len(fw) > 0 && fw[0].T < hw[0].T {
				return fw[0].F, nil, true
			}
			return 0, hw[0].H, true
		}}

	fs["histogram_count"] = histogramFunc(func(h *histogram.FloatHistogram) float64 { return h.Count })
	fs["histogram_sum"] = histogramFunc(func(h *histogram.FloatHistogram) float64 { return h.Sum })
	fs["histogram_avg"] = histogramFunc(func(h *histogram.FloatHistogram) float64 { return h.Sum / h.Count })
	fs["histogram_stdvar"] = histogramFunc(histogramVariance)
	fs["histogram_stddev"] = histogramFunc(func(h *histogram.FloatHistogram) float64 { return math.Sqrt(histogramVariance(h)) })
	fs["histogram_fraction"] = &funcDef{args: []ValueType{ts, ts, tv}, ret: tv, step: histogramFraction}
}

// histogramFunc is a function of each native histogram of a vector; float
// samples are dropped.
func histogramFunc(f func(*histogram.FloatHistogram) float64) *funcDef {
	return &funcDef{args: []ValueType{tv}, ret: tv, step: func(_ int64, v []Vector, _ *parser.Call) Vector {
		out := make(Vector, 0, len(v[0]))
		for _, s := range v[0] {
			if s.H != nil {
				out = append(out, Sample{Metric: dropName(s.Metric), F: f(s.H)})
			}
		}
		return out
	}}
}

// histogramVariance estimates the variance of the observations from the
// buckets: each bucket's observations sit at its midpoint, geometric for
// exponential buckets (0 for the zero bucket), arithmetic for custom ones.
func histogramVariance(h *histogram.FloatHistogram) float64 {
	mean := h.Sum / h.Count
	var v, c float64
	it := h.AllBucketIterator()
	for it.Next() {
		b := it.At()
		if b.Count == 0 {
			continue
		}
		var mid float64
		switch {
		case h.UsesCustomBuckets():
			mid = (b.Upper + b.Lower) / 2
		case b.Lower <= 0 && b.Upper >= 0:
			mid = 0
		default:
			mid = math.Sqrt(b.Upper * b.Lower)
			if b.Upper < 0 {
				mid = -mid
			}
		}
		d := mid - mean
		v, c = kahanInc(b.Count*d*d, v, c)
	}
	return (v + c) / h.Count
}

// ---- range functions over histograms ----

// histRate is rate, increase and delta of native histograms: the last
// histogram minus the first (counter resets corrected for counters),
// extrapolated like floats with the observation count standing in for the
// value. A window that mixes floats and histograms has no result.
func histRate(isCounter, isRate bool) func([]FPoint, []HPoint, *rangeArgs) (float64, *histogram.FloatHistogram, bool) {
	return func(fw []FPoint, hw []HPoint, a *rangeArgs) (float64, *histogram.FloatHistogram, bool) {
		if len(fw) > 0 || len(hw) < 2 {
			return 0, nil, false
		}
		h := histogramIncrease(hw, isCounter)
		if h == nil {
			return 0, nil, false
		}
		zeroRatio := math.NaN()
		if h.Count > 0 && hw[0].H.Count >= 0 {
			zeroRatio = hw[0].H.Count / h.Count
		}
		h.Mul(extrapolationFactor(hw[0].T, hw[len(hw)-1].T, len(hw), a, isCounter, isRate, zeroRatio))
		return 0, h, true
	}
}

// histogramIncrease is the last histogram minus the first of hw (at least
// two), in the coarsest schema among them, plus, for counters, the
// histogram before each reset. nil when the histograms do not combine.
func histogramIncrease(hw []HPoint, isCounter bool) *histogram.FloatHistogram {
	prev, last := hw[0].H, hw[len(hw)-1].H
	custom := prev.UsesCustomBuckets()
	// A reset right after the first sample makes the first one
	// irrelevant, whatever its layout: start from an empty histogram.
	if isCounter && hw[1].H.DetectReset(prev) {
		second := hw[1].H
		prev = &histogram.FloatHistogram{Schema: second.Schema, CustomValues: second.CustomValues}
		custom = second.UsesCustomBuckets()
	}
	if last.UsesCustomBuckets() != custom {
		return nil
	}
	schema := min(last.Schema, prev.Schema)
	if isCounter {
		for _, p := range hw[1 : len(hw)-1] {
			schema = min(schema, p.H.Schema)
			if p.H.UsesCustomBuckets() != custom {
				return nil
			}
		}
	}
	h, err := last.CopyToSchema(schema)
	if !histOK(err) || !histSub(h, prev) {
		return nil
	}
	if isCounter {
		for _, p := range hw[1:] {
			if p.H.DetectReset(prev) && !histAdd(h, prev) {
				return nil
			}
			prev = p.H
		}
	}
	h.CounterResetHint = histogram.GaugeType
	return h.Compact(0)
}

// histInstant is irate and idelta over a window with histograms: the last
// two samples, which must both be histograms or both floats.
func histInstant(isRate bool) func([]FPoint, []HPoint, *rangeArgs) (float64, *histogram.FloatHistogram, bool) {
	return func(fw []FPoint, hw []HPoint, _ *rangeArgs) (float64, *histogram.FloatHistogram, bool) {
		last := lastPoints(fw, hw, 2)
		if len(last) < 2 {
			return 0, nil, false
		}
		prev, cur := last[0], last[1]
		switch {
		case prev.H == nil && cur.H == nil:
			v, ok := instantValue([]FPoint{{T: prev.T, F: prev.F}, {T: cur.T, F: cur.F}}, isRate)
			return v, nil, ok
		case prev.H == nil || cur.H == nil:
			return 0, nil, false
		}
		interval := cur.T - prev.T
		if interval == 0 {
			return 0, nil, false
		}
		h := cur.H.Copy()
		if (!isRate || !cur.H.DetectReset(prev.H)) && !histSub(h, prev.H) {
			return 0, nil, false
		}
		h.CounterResetHint = histogram.GaugeType
		h.Compact(0)
		if isRate {
			h.Div(float64(interval) / 1000)
		}
		return 0, h, true
	}
}

// lastPoints returns the last n points of a window, floats and histograms
// merged, in time order.
func lastPoints(fw []FPoint, hw []HPoint, n int) []point {
	out := make([]point, 0, 2*n)
	for _, p := range fw[max(0, len(fw)-n):] {
		out = append(out, point{T: p.T, F: p.F})
	}
	for _, p := range hw[max(0, len(hw)-n):] {
		out = append(out, point{T: p.T, H: p.H})
	}
	slices.SortFunc(out, func(a, b point) int { return cmpInt(a.T, b.T) })
	return out[max(0, len(out)-n):]
}

// eachPair calls fn with every two consecutive points of a window, floats
// and histograms merged in time order.
func eachPair(fw []FPoint, hw []HPoint, fn func(prev, cur point)) {
	src := seriesPoints{fs: fw, hs: hw}
	prev, ok := src.next()
	if !ok {
		return
	}
	for cur, ok := src.next(); ok; cur, ok = src.next() {
		fn(prev, cur)
		prev = cur
	}
}

// histResets counts counter resets: a float decrease, a histogram reset
// (DetectReset), or a change between float and histogram.
func histResets(fw []FPoint, hw []HPoint, _ *rangeArgs) (float64, *histogram.FloatHistogram, bool) {
	n := 0
	eachPair(fw, hw, func(prev, cur point) {
		switch {
		case prev.H == nil && cur.H == nil:
			if cur.F < prev.F {
				n++
			}
		case prev.H == nil || cur.H == nil:
			n++
		case cur.H.DetectReset(prev.H):
			n++
		}
	})
	return float64(n), nil, true
}

// histChanges counts value changes: a different float, a different
// histogram, or a change between float and histogram.
func histChanges(fw []FPoint, hw []HPoint, _ *rangeArgs) (float64, *histogram.FloatHistogram, bool) {
	n := 0
	eachPair(fw, hw, func(prev, cur point) {
		switch {
		case prev.H == nil && cur.H == nil:
			if cur.F != prev.F && !(math.IsNaN(cur.F) && math.IsNaN(prev.F)) {
				n++
			}
		case prev.H == nil || cur.H == nil:
			n++
		case !cur.H.Equals(prev.H):
			n++
		}
	})
	return float64(n), nil, true
}

// histAcc sums histograms with Kahan compensation. When averaging, it
// switches to an incremental mean once the sum would overflow, as
// Prometheus's avg and avg_over_time do. Histograms that do not combine
// make it fail: it then has no result.
type histAcc struct {
	sum, comp, mean *histogram.FloatHistogram
	n               float64
	fail            bool
}

func (a *histAcc) add(h *histogram.FloatHistogram, averaging bool) {
	if a.fail {
		return
	}
	a.n++
	if a.n == 1 {
		a.sum = h.Copy()
		return
	}
	var err error
	if a.mean == nil {
		if !averaging {
			a.comp, _, _, err = a.sum.KahanAdd(h, a.comp)
			a.fail = !histOK(err)
			return
		}
		s := a.sum.Copy()
		var c *histogram.FloatHistogram
		if a.comp != nil {
			c = a.comp.Copy()
		}
		c, _, _, err = s.KahanAdd(h, c)
		if !histOK(err) {
			a.fail = true
			return
		}
		if !s.HasOverflow() {
			a.sum, a.comp = s, c
			return
		}
		a.mean = a.sum.Copy().Div(a.n - 1)
		if a.comp != nil {
			a.comp.Div(a.n - 1)
		}
	}
	q := (a.n - 1) / a.n
	if a.comp != nil {
		a.comp.Mul(q)
	}
	a.comp, _, _, err = a.mean.Mul(q).KahanAdd(h.Copy().Div(a.n), a.comp)
	a.fail = !histOK(err)
}

// total is the compensated sum; nil after a failure.
func (a *histAcc) total() *histogram.FloatHistogram {
	if a.fail || a.comp != nil && !histAdd(a.sum, a.comp) {
		return nil
	}
	return a.sum
}

// average is the compensated mean; nil after a failure.
func (a *histAcc) average() *histogram.FloatHistogram {
	if a.fail {
		return nil
	}
	res := a.mean
	if res == nil {
		res = a.sum.Div(a.n)
		if a.comp != nil {
			a.comp.Div(a.n)
		}
	}
	if a.comp != nil && !histAdd(res, a.comp) {
		return nil
	}
	return res
}

// histOverTime is sum_over_time and avg_over_time of histograms; a window
// that mixes floats and histograms has no result.
func histOverTime(averaging bool) func([]FPoint, []HPoint, *rangeArgs) (float64, *histogram.FloatHistogram, bool) {
	return func(fw []FPoint, hw []HPoint, _ *rangeArgs) (float64, *histogram.FloatHistogram, bool) {
		if len(fw) > 0 {
			return 0, nil, false
		}
		var acc histAcc
		for _, p := range hw {
			acc.add(p.H, averaging)
		}
		h := acc.total
		if averaging {
			h = acc.average
		}
		res := h()
		return 0, res, res != nil
	}
}

// ---- histogram_quantile and histogram_fraction ----

// histogramQuantile is the q-quantile of each native histogram and of each
// group of classic buckets (series with an le label) of a vector.
func histogramQuantile(_ int64, v []Vector, _ *parser.Call) Vector {
	if len(v[0]) == 0 {
		return nil
	}
	q := v[0][0].F
	natives, classic := splitHistograms(v[1])
	out := make(Vector, 0, len(natives)+len(classic))
	for _, s := range natives {
		out = append(out, Sample{Metric: dropName(s.Metric), F: nativeQuantile(q, s.H)})
	}
	for _, g := range classic {
		out = append(out, Sample{Metric: g.metric, F: bucketQuantile(q, g.buckets)})
	}
	return out
}

// histogramFraction estimates the fraction of observations between lower
// and upper, for native histograms and classic bucket groups.
func histogramFraction(_ int64, v []Vector, _ *parser.Call) Vector {
	if len(v[0]) == 0 || len(v[1]) == 0 {
		return nil
	}
	lower, upper := v[0][0].F, v[1][0].F
	natives, classic := splitHistograms(v[2])
	out := make(Vector, 0, len(natives)+len(classic))
	for _, s := range natives {
		out = append(out, Sample{Metric: dropName(s.Metric), F: nativeFraction(lower, upper, s.H)})
	}
	for _, g := range classic {
		out = append(out, Sample{Metric: g.metric, F: bucketFraction(lower, upper, g.buckets)})
	}
	return out
}

// bucketGroup is one classic histogram: the buckets of the series that
// share their labels but le.
type bucketGroup struct {
	metric  labels.Labels
	buckets []bucket
}

// splitHistograms separates a vector's native histograms from its classic
// bucket groups (in order of first appearance). A native histogram whose
// labels are those of a classic group is ambiguous: both are dropped, as
// in Prometheus.
func splitHistograms(vec Vector) (natives Vector, classic []*bucketGroup) {
	groups := map[string]*bucketGroup{}
	var buf []byte
	for _, s := range vec {
		if s.H != nil {
			natives = append(natives, s)
			continue
		}
		upper, err := strconv.ParseFloat(s.Metric.Get(labels.BucketLabel), 64)
		if err != nil || math.IsNaN(upper) {
			continue
		}
		buf = s.Metric.BytesWithoutLabels(buf, labels.BucketLabel)
		g, ok := groups[string(buf)]
		if !ok {
			b := labels.NewBuilder(s.Metric)
			b.Del(labels.BucketLabel, metricName)
			g = &bucketGroup{metric: b.Labels()}
			groups[string(buf)] = g
			classic = append(classic, g)
		}
		g.buckets = append(g.buckets, bucket{upper, s.F})
	}
	if len(natives) == 0 || len(groups) == 0 {
		return natives, classic
	}
	kept := natives[:0]
	for _, s := range natives {
		buf = s.Metric.Bytes(buf)
		if g, ok := groups[string(buf)]; ok {
			g.buckets = nil
			continue
		}
		kept = append(kept, s)
	}
	classic = slices.DeleteFunc(classic, func(g *bucketGroup) bool { return g.buckets == nil })
	return kept, classic
}

// nativeQuantile is the q-quantile of a native histogram, as Prometheus 3
// estimates it: the rank is found from the low end (q < 0.5, or a NaN
// sum) or from the high end; within the bucket it falls in, the value is
// interpolated exponentially for exponential buckets (so an exact power of
// the bucket base lands on a boundary) and linearly for the zero bucket and
// custom buckets. A zero bucket with observations on one side only is
// narrowed to that side; the +Inf and -Inf custom buckets answer their
// finite bound.
func nativeQuantile(q float64, h *histogram.FloatHistogram) float64 {
	switch {
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	case h.Count == 0 || math.IsNaN(q):
		return math.NaN()
	}
	fromLow := math.IsNaN(h.Sum) || q < 0.5
	var it histogram.BucketIterator[float64]
	var rank float64
	if fromLow {
		it, rank = h.AllBucketIterator(), q*h.Count
	} else {
		it, rank = h.AllReverseBucketIterator(), (1-q)*h.Count
	}
	var b histogram.Bucket[float64]
	var count float64
	for it.Next() {
		b = it.At()
		if b.Count == 0 {
			continue
		}
		count += b.Count
		if count >= rank {
			break
		}
	}
	custom := h.UsesCustomBuckets()
	switch {
	case !custom && b.Lower < 0 && b.Upper > 0:
		if len(h.NegativeBuckets) == 0 && len(h.PositiveBuckets) > 0 {
			b.Lower = 0
		} else if len(h.PositiveBuckets) == 0 && len(h.NegativeBuckets) > 0 {
			b.Upper = 0
		}
	case custom && math.IsInf(b.Lower, -1):
		if b.Upper <= 0 {
			return b.Upper
		}
		b.Lower = 0
	case custom && math.IsInf(b.Upper, 1):
		return b.Lower
	}
	count = min(count, h.Count)
	if count < rank {
		if math.IsNaN(h.Sum) {
			return math.NaN()
		}
		return b.Upper
	}
	if fromLow {
		rank -= count - b.Count
	} else {
		rank = count - rank
	}
	frac := rank / b.Count
	if custom || b.Lower <= 0 && b.Upper >= 0 {
		return b.Lower + (b.Upper-b.Lower)*frac
	}
	lo, hi := math.Log2(math.Abs(b.Lower)), math.Log2(math.Abs(b.Upper))
	if b.Lower > 0 {
		return math.Exp2(lo + (hi-lo)*frac)
	}
	return -math.Exp2(hi + (lo-hi)*(1-frac))
}

// nativeFraction is the estimated fraction of a native histogram's
// observations in [lower, upper], interpolating inside the buckets the
// bounds fall in (as nativeQuantile does).
func nativeFraction(lower, upper float64, h *histogram.FloatHistogram) float64 {
	if h.Count == 0 || math.IsNaN(lower) || math.IsNaN(upper) {
		return math.NaN()
	}
	if lower >= upper {
		return 0
	}
	custom := h.UsesCustomBuckets()
	var count, rank, lowerRank, upperRank float64
	var lowerSet, upperSet bool
	it := h.AllBucketIterator()
	for it.Next() {
		b := it.At()
		count += b.Count
		linear := custom
		if custom {
			if math.IsInf(b.Lower, -1) && b.Upper > 0 {
				b.Lower = 0
			}
		} else if b.Lower <= 0 && b.Upper >= 0 {
			linear = true
			if len(h.NegativeBuckets) == 0 && len(h.PositiveBuckets) > 0 {
				b.Lower = 0
			} else if len(h.PositiveBuckets) == 0 && len(h.NegativeBuckets) > 0 {
				b.Upper = 0
			}
		}
		below := func(v float64) float64 {
			if linear && math.IsInf(b.Lower, -1) {
				return b.Count
			}
			return rank + b.Count*b.FractionBelow(v, linear)
		}
		if !lowerSet && b.Lower >= lower {
			lowerRank, lowerSet = rank, true
		}
		if !upperSet && b.Lower >= upper {
			upperRank, upperSet = rank, true
		}
		if lowerSet && upperSet {
			break
		}
		if !lowerSet && b.Lower < lower && b.Upper > lower {
			lowerRank, lowerSet = below(lower), true
		}
		if !upperSet && b.Lower < upper && b.Upper > upper {
			upperRank, upperSet = below(upper), true
		}
		if lowerSet && upperSet {
			break
		}
		rank += b.Count
	}
	if math.IsNaN(h.Sum) {
		for it.Next() {
			count += it.At().Count
		}
	} else {
		count = h.Count
	}
	if !lowerSet || lowerRank > count {
		lowerRank = count
	}
	if !upperSet || upperRank > count {
		upperRank = count
	}
	return (upperRank - lowerRank) / h.Count
}

// bucketFraction is histogram_fraction over classic buckets (cumulative
// counts by upper bound), interpolating linearly inside a bucket.
func bucketFraction(lower, upper float64, buckets []bucket) float64 {
	buckets = sortBuckets(buckets)
	if len(buckets) == 0 || !math.IsInf(buckets[len(buckets)-1].upper, 1) {
		return math.NaN()
	}
	buckets = coalesce(buckets)
	count := buckets[len(buckets)-1].count
	if count == 0 || math.IsNaN(lower) || math.IsNaN(upper) {
		return math.NaN()
	}
	if lower >= upper {
		return 0
	}
	var rank, lowerRank, upperRank float64
	var lowerSet, upperSet bool
	lo := 0.0
	if buckets[0].upper <= 0 {
		lo = math.Inf(-1)
	}
	for i, b := range buckets {
		if i > 0 {
			lo = buckets[i-1].upper
		}
		at := func(v float64) float64 {
			if math.IsInf(lo, -1) {
				return b.count
			}
			return rank + (b.count-rank)*(v-lo)/(b.upper-lo)
		}
		if !lowerSet && lo >= lower {
			lowerRank, lowerSet = rank, true
		}
		if !upperSet && lo >= upper {
			upperRank, upperSet = rank, true
		}
		if lowerSet && upperSet {
			break
		}
		if !lowerSet && lo < lower && b.upper > lower {
			lowerRank, lowerSet = at(lower), true
		}
		if !upperSet && lo < upper && b.upper > upper {
			upperRank, upperSet = at(upper), true
		}
		if lowerSet && upperSet {
			break
		}
		rank = b.count
	}
	if !lowerSet || lowerRank > count {
		lowerRank = count
	}
	if !upperSet || upperRank > count {
		upperRank = count
	}
	return (upperRank - lowerRank) / count
}

// ---- native histograms as sketches ----

// histogramSketches reads a native histogram series where the sketch
// language takes a window: at every step, the observations of the window
// (ref-w, ref] as a sketch.LogHistogram. For a counter histogram they are
// its increase over the window, last sample minus first with counter
// resets corrected as increase corrects them, but not extrapolated (a
// sketch holds whole observations); a window needs two samples. For a
// gauge histogram (the last sample's hint says gauge) they are the last
// sample. Custom-bucket histograms have no log-histogram form: the query
// fails naming the series.
func (ev *evaluator) histogramSketches(s series.Series, at *int64, off, w int64, pool *sketchScratch) []SPoint {
	meta := s.Meta()
	lo, hi := refTime(ev.start, at, off), refTime(ev.end, at, off)
	src := &storagePoints{ev: ev, it: s.Samples(nil), mint: lo - w + 1, maxt: hi, skipStale: true}
	var win window[HPoint]
	var out []SPoint
	pend, hasPend := src.next()
	for t := ev.start; t <= ev.end; t += ev.interval {
		ref := refTime(t, at, off)
		for ; hasPend && pend.T <= ref; pend, hasPend = src.next() {
			if pend.H == nil {
				continue // a float sample has no observations to merge
			}
			if pend.H.UsesCustomBuckets() {
				ev.errorf("series %s holds native histograms with custom buckets, which cannot be read as a log histogram sketch", meta.Labels)
			}
			win.push(HPoint{T: pend.T, H: pend.H})
		}
		win.dropUpTo(ref - w)
		hw := win.points()
		if len(hw) == 0 {
			continue
		}
		var h *histogram.FloatHistogram
		switch last := hw[len(hw)-1].H; {
		case last.CounterResetHint == histogram.GaugeType:
			h = last
		case len(hw) < 2:
			continue
		default:
			if h = histogramIncrease(hw, true); h == nil {
				continue
			}
		}
		dst, err := pool.get(sketch.FormatLogHistogram)
		if err != nil {
			ev.abort(&Error{Type: ErrExecution, Err: err})
		}
		if err := dst.(*sketch.LogHistogram).MergeNativeFloat(nativeFloat(h)); err != nil {
			ev.errorf("series %s at %d: native histogram as a log histogram sketch: %v", meta.Labels, t, err)
		}
		out = append(out, SPoint{T: t, S: &SketchValue{Format: sketch.FormatLogHistogram, State: dst}})
	}
	return out
}

// nativeFloat converts a FloatHistogram to the sketch package's mirror of
// it.
func nativeFloat(h *histogram.FloatHistogram) sketch.NativeFloatHistogram {
	spans := func(ss []histogram.Span) []sketch.Span {
		out := make([]sketch.Span, len(ss))
		for i, s := range ss {
			out[i] = sketch.Span{Offset: s.Offset, Length: s.Length}
		}
		return out
	}
	return sketch.NativeFloatHistogram{
		Schema: h.Schema, ZeroThreshold: h.ZeroThreshold, ZeroCount: h.ZeroCount, Count: h.Count, Sum: h.Sum,
		PositiveSpans: spans(h.PositiveSpans), PositiveCounts: h.PositiveBuckets,
		NegativeSpans: spans(h.NegativeSpans), NegativeCounts: h.NegativeBuckets,
	}
}
