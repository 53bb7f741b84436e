package query

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
)

// ValueType is the type of an expression's value, in PromQL's words.
type ValueType string

// The value types. TypeSketch is the engine-internal type of a sketch
// selector evaluated over a window before a metric function finishes it; it
// never leaves the engine.
const (
	TypeNone   ValueType = "none"
	TypeScalar ValueType = "scalar"
	TypeVector ValueType = "vector"
	TypeMatrix ValueType = "matrix"
	TypeString ValueType = "string"
	TypeSketch ValueType = "sketch"
)

// documented returns the name Prometheus's error messages use.
func (t ValueType) documented() string {
	switch t {
	case TypeVector:
		return "instant vector"
	case TypeMatrix:
		return "range vector"
	case TypeSketch:
		return "sketch vector"
	}
	return string(t)
}

// Value is a query result: Scalar, String, Vector or Matrix.
type Value interface {
	Type() ValueType
}

// FPoint is one float value at a time (Unix ms).
type FPoint struct {
	T int64
	F float64
}

// HPoint is one native histogram at a time (Unix ms). H is never nil and is
// never modified once it is in a point: operations copy it first.
type HPoint struct {
	T int64
	H *histogram.FloatHistogram
}

// SketchValue is a merged sketch state and its format. It is the fourth kind
// of sample: produced by merging a sketch series' buckets over a window and
// finished into a float by a sketch-metric function.
type SketchValue struct {
	Format sketch.Format
	State  sketch.Sketch
}

// SPoint is one sketch state at a time (Unix ms).
type SPoint struct {
	T int64
	S *SketchValue
}

// Series is a labelled series of points. Query results hold floats and
// native histograms (each slice in time order, at most one point per time
// across both); Sketches is used inside the engine by sketch-valued
// expressions.
type Series struct {
	Metric     labels.Labels
	Floats     []FPoint
	Histograms []HPoint
	Sketches   []SPoint
}

// Sample is one labelled value at a time: a float, or a native histogram
// when H is set.
type Sample struct {
	Metric labels.Labels
	T      int64
	F      float64
	H      *histogram.FloatHistogram
	S      *SketchValue
}

// Scalar is a single number at a time.
type Scalar struct {
	T int64
	V float64
}

// String is a string at a time.
type String struct {
	T int64
	V string
}

// Vector is an instant vector: one sample per series.
type Vector []Sample

// Matrix is a set of series; range query results are sorted by labels.
type Matrix []Series

// Type implements Value.
func (Scalar) Type() ValueType { return TypeScalar }

// Type implements Value.
func (String) Type() ValueType { return TypeString }

// Type implements Value.
func (Vector) Type() ValueType { return TypeVector }

// Type implements Value.
func (Matrix) Type() ValueType { return TypeMatrix }

// containsSameLabelset reports whether two samples share a label set.
func (v Vector) containsSameLabelset() bool {
	if len(v) < 2 {
		return false
	}
	seen := make(map[uint64]struct{}, len(v))
	for _, s := range v {
		h := s.Metric.Hash()
		if _, ok := seen[h]; ok {
			return true
		}
		seen[h] = struct{}{}
	}
	return false
}

func (m Matrix) totalPoints() int {
	n := 0
	for _, s := range m {
		n += len(s.Floats) + len(s.Histograms) + len(s.Sketches)
	}
	return n
}

// ---- JSON in the Prometheus HTTP API's shapes ----

// formatFloat writes a float as the HTTP API does (util/jsonutil): plain
// decimal, exponent notation below 1e-6 and from 1e21 in magnitude.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// appendHistogram writes [t, {"count":"c","sum":"s","buckets":[...]}]: each
// non-empty bucket as [boundary rule, "lower", "upper", "count"], the rule
// being 0 (lower exclusive, upper inclusive), 1 (lower inclusive, upper
// exclusive), 2 (both exclusive) or 3 (both inclusive), as Prometheus's
// HTTP API writes native histograms.
func appendHistogram(b []byte, t int64, h *histogram.FloatHistogram) []byte {
	b = append(b, '[')
	b = appendTimestamp(b, t)
	b = append(b, `,{"count":`...)
	b = strconv.AppendQuote(b, formatFloat(h.Count))
	b = append(b, `,"sum":`...)
	b = strconv.AppendQuote(b, formatFloat(h.Sum))
	first := true
	it := h.AllBucketIterator()
	for it.Next() {
		bk := it.At()
		if bk.Count == 0 {
			continue
		}
		if first {
			b = append(b, `,"buckets":[`...)
			first = false
		} else {
			b = append(b, ',')
		}
		rule := 2
		switch {
		case bk.LowerInclusive && bk.UpperInclusive:
			rule = 3
		case bk.LowerInclusive:
			rule = 1
		case bk.UpperInclusive:
			rule = 0
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(rule), 10)
		for _, v := range [...]float64{bk.Lower, bk.Upper, bk.Count} {
			b = append(b, ',')
			b = strconv.AppendQuote(b, formatFloat(v))
		}
		b = append(b, ']')
	}
	if !first {
		b = append(b, ']')
	}
	return append(b, "}]"...)
}

// appendTimestamp writes Unix ms as seconds with the millisecond digits
// kept (1.500), as the HTTP API writes sample times.
func appendTimestamp(b []byte, t int64) []byte {
	if t < 0 {
		b = append(b, '-')
		t = -t
	}
	b = strconv.AppendInt(b, t/1000, 10)
	if ms := t % 1000; ms != 0 {
		b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	}
	return b
}

// appendSamplePoint writes [t, "v"] for a vector or matrix sample.
func appendSamplePoint(b []byte, t int64, v float64) []byte {
	b = append(b, '[')
	b = appendTimestamp(b, t)
	b = append(b, ',')
	b = strconv.AppendQuote(b, formatFloat(v))
	return append(b, ']')
}

// appendPoint writes [t, "v"] with the time as a float, as the API writes
// scalars and strings (promql.Scalar's and promql.String's marshallers).
func appendPoint(b []byte, t int64, v string) []byte {
	b = append(b, '[')
	b = strconv.AppendFloat(b, float64(t)/1000, 'f', -1, 64)
	b = append(b, ',')
	b = strconv.AppendQuote(b, v)
	return append(b, ']')
}

func appendMetric(b []byte, m labels.Labels) ([]byte, error) {
	mp := m.Map()
	if mp == nil {
		mp = map[string]string{}
	}
	js, err := json.Marshal(mp)
	if err != nil {
		return nil, err
	}
	return append(b, js...), nil
}

// MarshalJSON writes [t, "v"] as the Prometheus API does (plain decimal
// always: the API encodes scalars with promql.Scalar's own marshaller).
func (s Scalar) MarshalJSON() ([]byte, error) {
	return appendPoint(nil, s.T, strconv.FormatFloat(s.V, 'f', -1, 64)), nil
}

// MarshalJSON writes [t, "v"] as the Prometheus API does.
func (s String) MarshalJSON() ([]byte, error) { return appendPoint(nil, s.T, s.V), nil }

// MarshalJSON writes {"metric":{...},"value":[t,"v"]}, or
// {"metric":{...},"histogram":[t,{...}]} for a native histogram.
func (s Sample) MarshalJSON() ([]byte, error) {
	b := []byte(`{"metric":`)
	b, err := appendMetric(b, s.Metric)
	if err != nil {
		return nil, err
	}
	if s.H != nil {
		b = append(b, `,"histogram":`...)
		b = appendHistogram(b, s.T, s.H)
		return append(b, '}'), nil
	}
	b = append(b, `,"value":`...)
	b = appendSamplePoint(b, s.T, s.F)
	return append(b, '}'), nil
}

// MarshalJSON writes {"metric":{...},"values":[[t,"v"],...]} with
// "histograms":[[t,{...}],...] after the floats when there are native
// histograms; like Prometheus it leaves "values" out of a series of
// histograms only.
func (s Series) MarshalJSON() ([]byte, error) {
	b := []byte(`{"metric":`)
	b, err := appendMetric(b, s.Metric)
	if err != nil {
		return nil, err
	}
	if len(s.Floats) > 0 || len(s.Histograms) == 0 {
		b = appendList(b, `,"values":[`, s.Floats, func(b []byte, p FPoint) []byte { return appendSamplePoint(b, p.T, p.F) })
	}
	if len(s.Histograms) > 0 {
		b = appendList(b, `,"histograms":[`, s.Histograms, func(b []byte, p HPoint) []byte { return appendHistogram(b, p.T, p.H) })
	}
	return append(b, '}'), nil
}

// appendList writes open, the points separated by commas, and "]".
func appendList[P any](b []byte, open string, pts []P, appendOne func([]byte, P) []byte) []byte {
	b = append(b, open...)
	for i, p := range pts {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendOne(b, p)
	}
	return append(b, ']')
}

// MarshalJSON writes [] rather than null for an empty vector.
func (v Vector) MarshalJSON() ([]byte, error) {
	if v == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]Sample(v))
}

// MarshalJSON writes [] rather than null for an empty matrix.
func (m Matrix) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]Series(m))
}
