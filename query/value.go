package query

import (
	"encoding/json"
	"math"
	"strconv"

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

// Series is a labelled series of points. Query results hold floats only;
// Sketches is used inside the engine by sketch-valued expressions.
type Series struct {
	Metric   labels.Labels
	Floats   []FPoint
	Sketches []SPoint
}

// Sample is one labelled value at a time.
type Sample struct {
	Metric labels.Labels
	T      int64
	F      float64
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
		n += len(s.Floats) + len(s.Sketches)
	}
	return n
}

// ---- JSON in the Prometheus HTTP API's shapes ----

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

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

// MarshalJSON writes [t, "v"] as the Prometheus API does.
func (s Scalar) MarshalJSON() ([]byte, error) { return appendPoint(nil, s.T, formatFloat(s.V)), nil }

// MarshalJSON writes [t, "v"] as the Prometheus API does.
func (s String) MarshalJSON() ([]byte, error) { return appendPoint(nil, s.T, s.V), nil }

// MarshalJSON writes {"metric":{...},"value":[t,"v"]}.
func (s Sample) MarshalJSON() ([]byte, error) {
	b := []byte(`{"metric":`)
	b, err := appendMetric(b, s.Metric)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"value":`...)
	b = appendPoint(b, s.T, formatFloat(s.F))
	return append(b, '}'), nil
}

// MarshalJSON writes {"metric":{...},"values":[[t,"v"],...]}.
func (s Series) MarshalJSON() ([]byte, error) {
	b := []byte(`{"metric":`)
	b, err := appendMetric(b, s.Metric)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"values":[`...)
	for i, p := range s.Floats {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendPoint(b, p.T, formatFloat(p.F))
	}
	return append(b, "]}"...), nil
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
