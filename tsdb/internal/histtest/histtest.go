// Package histtest generates native histogram samples for the storage
// tests of tsdb and its subpackages, and compares what they read back.
package histtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
)

// Sample is one histogram sample.
type Sample struct {
	T int64
	H *histogram.FloatHistogram
}

// Kinds of series Series generates.
const (
	Exponential = iota // counter histograms with exponential schemas
	Custom             // counter histograms with custom buckets (NHCB)
	Gauge              // gauge histograms with exponential schemas
	NumKinds
)

// walk is the state of a generated series.
type walk struct {
	r      *rand.Rand
	kind   int
	schema int32
	bounds []float64
	zt     float64
	zc     float64
	pos    map[int32]float64
	neg    map[int32]float64
}

// Series returns n samples of a series of the given kind at start,
// start+step, ...: a random walk through bucket layout growth and shrink,
// schema (or custom bound) changes, counter resets with and without an
// explicit hint, and staleness markers. Counts are small integers, so any
// order of float additions is exact.
func Series(r *rand.Rand, kind, n int, start, step int64) []Sample {
	w := &walk{r: r, kind: kind}
	w.relayout()
	out := make([]Sample, 0, n)
	for i := range n {
		t := start + int64(i)*step
		switch x := r.IntN(100); {
		case x < 4:
			out = append(out, Sample{T: t, H: &histogram.FloatHistogram{Sum: math.Float64frombits(value.StaleNaN)}})
			continue
		case x < 8:
			w.relayout() // for counters a reset (or, rarely, a bare schema change)
		case x < 14:
			w.reset()
			h := w.histogram()
			if r.IntN(2) == 0 {
				h.CounterResetHint = histogram.CounterReset
			}
			out = append(out, Sample{T: t, H: h})
			continue
		case x < 30:
			w.grow()
		case x < 38:
			w.shrink()
		}
		w.observe()
		out = append(out, Sample{T: t, H: w.histogram()})
	}
	return out
}

func (w *walk) relayout() {
	r := w.r
	w.pos, w.neg, w.zc, w.zt, w.bounds = map[int32]float64{}, map[int32]float64{}, 0, 0, nil
	if w.kind == Custom {
		w.schema = histogram.CustomBucketsSchema
		b := float64(r.IntN(3))
		for range 2 + r.IntN(8) {
			b += 0.25 * float64(1+r.IntN(8))
			w.bounds = append(w.bounds, b)
		}
	} else {
		w.schema = int32(r.IntN(13)) - 4
		if r.IntN(2) == 0 {
			w.zt = math.Ldexp(1, -r.IntN(10))
		}
	}
	for range 1 + r.IntN(20) {
		w.add()
	}
}

// add adds a bucket (which may exist) with a small count.
func (w *walk) add() {
	r := w.r
	c := float64(r.IntN(4))
	switch {
	case w.kind == Custom:
		w.pos[int32(r.IntN(len(w.bounds)+1))] += c
	case r.IntN(4) == 0:
		w.neg[int32(r.IntN(40))-20] += c
	default:
		w.pos[int32(r.IntN(40))-20] += c
	}
}

func (w *walk) grow() {
	for range 1 + w.r.IntN(4) {
		w.add()
	}
}

// shrink drops buckets: for counters only empty ones (dropping a counted
// bucket is a reset), for gauges any.
func (w *walk) shrink() {
	for _, m := range []map[int32]float64{w.pos, w.neg} {
		for k, c := range m {
			if (c == 0 || w.kind == Gauge) && w.r.IntN(2) == 0 {
				delete(m, k)
			}
		}
	}
}

// reset restarts every count lower (a counter reset the counts show) or,
// half the time, equal (one only an explicit hint can tell).
func (w *walk) reset() {
	low := w.r.IntN(2) == 0
	for _, m := range []map[int32]float64{w.pos, w.neg} {
		for k := range m {
			if low {
				m[k] = 0
			}
		}
	}
	if low {
		w.zc = 0
	}
}

// observe adds counts (gauges: sets them anew).
func (w *walk) observe() {
	for _, m := range []map[int32]float64{w.pos, w.neg} {
		for k, c := range m {
			d := float64(w.r.IntN(5))
			if w.kind == Gauge {
				c = 0
			}
			m[k] = c + d
		}
	}
	if w.kind != Custom {
		if w.kind == Gauge {
			w.zc = 0
		}
		w.zc += float64(w.r.IntN(3))
	}
}

func (w *walk) histogram() *histogram.FloatHistogram {
	h := &histogram.FloatHistogram{Schema: w.schema, ZeroThreshold: w.zt, ZeroCount: w.zc, Count: w.zc}
	if w.kind == Gauge {
		h.CounterResetHint = histogram.GaugeType
	}
	h.PositiveSpans, h.PositiveBuckets = spans(w.pos)
	h.NegativeSpans, h.NegativeBuckets = spans(w.neg)
	for _, c := range h.PositiveBuckets {
		h.Count += c
	}
	for _, c := range h.NegativeBuckets {
		h.Count += c
	}
	h.Sum = float64(w.r.IntN(1000)) / 8
	if w.kind == Custom {
		h.CustomValues = slices.Clone(w.bounds)
	}
	return h
}

func spans(m map[int32]float64) ([]histogram.Span, []float64) {
	if len(m) == 0 {
		return nil, nil
	}
	idx := make([]int32, 0, len(m))
	for k := range m {
		idx = append(idx, k)
	}
	slices.Sort(idx)
	var sp []histogram.Span
	var bs []float64
	for i, k := range idx {
		if i > 0 && k == idx[i-1]+1 {
			sp[len(sp)-1].Length++
		} else {
			off := k
			if i > 0 {
				off = k - idx[i-1] - 1
			}
			sp = append(sp, histogram.Span{Offset: off, Length: 1})
		}
		bs = append(bs, m[k])
	}
	return sp, bs
}

// Same reports whether got reads back as want: both staleness markers, or
// equal as histograms (FloatHistogram.Equals after dropping empty buckets,
// which the chunk encoding adds when a later sample's layout grows). The
// counter reset hint is not compared.
func Same(got, want *histogram.FloatHistogram) bool {
	if got == nil || want == nil {
		return got == want
	}
	if value.IsStaleNaN(want.Sum) || value.IsStaleNaN(got.Sum) {
		return value.IsStaleNaN(want.Sum) && value.IsStaleNaN(got.Sum)
	}
	return got.Copy().Compact(0).Equals(want.Copy().Compact(0))
}

// Diff returns "" if got and want hold the same samples (Same, equal
// times), or a description of the first difference.
func Diff(got, want []Sample) string {
	for i := range min(len(got), len(want)) {
		if got[i].T != want[i].T || !Same(got[i].H, want[i].H) {
			return fmt.Sprintf("sample %d: got t=%d %v, want t=%d %v", i, got[i].T, got[i].H, want[i].T, want[i].H)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("got %d samples, want %d", len(got), len(want))
	}
	return ""
}

// HintsHonest checks the counter reset hints of samples read back in time
// order from one series against what was written (by time) and returns a
// description of the first lie, or "". Against the previous sample read
// (none for the first, which may follow unread data; after a staleness
// marker only an explicit CounterReset may be read): a NotCounterReset
// sample must not have been written with an explicit CounterReset nor be a
// reset by histogram.FloatHistogram.DetectReset; a CounterReset sample
// must have been written with that hint, be a DetectReset reset or change
// custom bounds (which the chunk encoding treats as a reset). GaugeType
// must be read exactly for samples written as gauges.
func HintsHonest(got []Sample, written map[int64]*histogram.FloatHistogram) string {
	for i, s := range got {
		w := written[s.T]
		if w == nil {
			return fmt.Sprintf("sample at %d was never written", s.T)
		}
		if value.IsStaleNaN(s.H.Sum) {
			continue
		}
		hint := s.H.CounterResetHint
		if (hint == histogram.GaugeType) != (w.CounterResetHint == histogram.GaugeType) {
			return fmt.Sprintf("sample at %d: hint %v, written %v", s.T, hint, w.CounterResetHint)
		}
		if i == 0 || hint == histogram.UnknownCounterReset || hint == histogram.GaugeType {
			continue
		}
		prev := got[i-1].H
		if value.IsStaleNaN(prev.Sum) {
			if hint == histogram.NotCounterReset || w.CounterResetHint != histogram.CounterReset {
				return fmt.Sprintf("sample at %d reads %v after a staleness marker (written %v)", s.T, hint, w)
			}
			continue
		}
		c := s.H.Copy()
		c.CounterResetHint = histogram.UnknownCounterReset
		reset := c.DetectReset(prev) || (c.UsesCustomBuckets() && prev.UsesCustomBuckets() &&
			!histogram.CustomBucketBoundsMatch(c.CustomValues, prev.CustomValues))
		explicit := w.CounterResetHint == histogram.CounterReset
		if hint == histogram.NotCounterReset && (explicit || reset) {
			return fmt.Sprintf("sample at %d reads NotCounterReset after %v (written %v)", s.T, prev, w)
		}
		if hint == histogram.CounterReset && !explicit && !reset {
			return fmt.Sprintf("sample at %d reads CounterReset after %v (written %v)", s.T, prev, w)
		}
	}
	return ""
}
