package query

import (
	"encoding/json"
	"math"
	"testing"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/jsonutil"
)

// apiJSON encodes a sample or series the way Prometheus's HTTP API does
// (web/api/v1/json_codec.go, which this test cannot import): the metric,
// then "value"/"values" and "histogram"/"histograms" written by the API's
// own util/jsonutil encoders.
func apiJSON(t *testing.T, metric labels.Labels, single bool, fs []FPoint, hs []HPoint) string {
	t.Helper()
	st := jsoniter.ConfigCompatibleWithStandardLibrary.BorrowStream(nil)
	defer jsoniter.ConfigCompatibleWithStandardLibrary.ReturnStream(st)
	m, err := json.Marshal(metric.Map())
	if err != nil {
		t.Fatal(err)
	}
	st.WriteRaw(`{"metric":`)
	st.WriteRaw(string(m))
	point := func(p FPoint) {
		st.WriteArrayStart()
		jsonutil.MarshalTimestamp(p.T, st)
		st.WriteMore()
		jsonutil.MarshalFloat(p.F, st)
		st.WriteArrayEnd()
	}
	hpoint := func(p HPoint) {
		st.WriteArrayStart()
		jsonutil.MarshalTimestamp(p.T, st)
		st.WriteMore()
		jsonutil.MarshalHistogram(p.H, st)
		st.WriteArrayEnd()
	}
	switch {
	case single && len(hs) == 1:
		st.WriteRaw(`,"histogram":`)
		hpoint(hs[0])
	case single:
		st.WriteRaw(`,"value":`)
		point(fs[0])
	default:
		for i, p := range fs {
			if i == 0 {
				st.WriteRaw(`,"values":[`)
			} else {
				st.WriteMore()
			}
			point(p)
		}
		if len(fs) > 0 {
			st.WriteArrayEnd()
		}
		for i, p := range hs {
			if i == 0 {
				st.WriteRaw(`,"histograms":[`)
			} else {
				st.WriteMore()
			}
			hpoint(p)
		}
		if len(hs) > 0 {
			st.WriteArrayEnd()
		}
	}
	st.WriteObjectEnd()
	return string(st.Buffer())
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestJSONMatchesPrometheus compares the JSON of result values with
// Prometheus's HTTP API encoding of the same values.
func TestJSONMatchesPrometheus(t *testing.T) {
	l := labels.FromStrings("__name__", "up", "job", "a\"b")
	vals := []float64{1, -2.5, 1e21, 1.0 / 3, 1e-7, -3e-9, 123456.789, math.Inf(1), math.Inf(-1), math.NaN(), 0}
	for _, v := range vals {
		if got, want := mustJSON(t, Sample{Metric: l, T: 1435781451781, F: v}), apiJSON(t, l, true, []FPoint{{1435781451781, v}}, nil); got != want {
			t.Errorf("sample %v:\n ours %s\n api %s", v, got, want)
		}
		pts := []FPoint{{1000, v}, {2000, 1}}
		if got, want := mustJSON(t, Series{Metric: l, Floats: pts}), apiJSON(t, l, false, pts, nil); got != want {
			t.Errorf("series %v:\n ours %s\n api %s", v, got, want)
		}
		// Scalars go through promql.Scalar's own MarshalJSON in the API.
		if got, want := mustJSON(t, Scalar{T: 1500, V: v}), mustJSON(t, promql.Scalar{T: 1500, V: v}); got != want {
			t.Errorf("scalar %v: ours %s, prom %s", v, got, want)
		}
	}
	if got, want := mustJSON(t, String{T: 1000, V: "x\"y"}), mustJSON(t, promql.String{T: 1000, V: "x\"y"}); got != want {
		t.Errorf("string: ours %s, prom %s", got, want)
	}
	if a := mustJSON(t, Vector(nil)); a != "[]" {
		t.Errorf("empty vector %s", a)
	}
}

// jsonHistograms covers the bucket kinds the API writes differently:
// negative, zero and positive exponential buckets (with an empty one to
// skip), custom buckets with their infinite bounds, and odd sums.
func jsonHistograms() map[string]*histogram.FloatHistogram {
	return map[string]*histogram.FloatHistogram{
		"exponential": {
			Schema: 1, ZeroThreshold: 0.001, ZeroCount: 2, Count: 19, Sum: -3.25,
			PositiveSpans:   []histogram.Span{{Offset: -1, Length: 3}, {Offset: 2, Length: 1}},
			PositiveBuckets: []float64{1, 0, 4, 5},
			NegativeSpans:   []histogram.Span{{Offset: 0, Length: 2}},
			NegativeBuckets: []float64{3, 4},
		},
		"zero only": {ZeroThreshold: 1e-128, ZeroCount: 3, Count: 3, Sum: 0},
		"empty":     {Schema: 3, Count: 0, Sum: math.NaN()},
		"custom": {
			Schema: histogram.CustomBucketsSchema, Count: 10, Sum: math.Inf(1),
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 4}},
			PositiveBuckets: []float64{1, 2, 0, 7},
			CustomValues:    []float64{0.5, 1, 2.5e-7},
		},
		"tiny and huge": {
			Schema: 0, Count: 2e21, Sum: 1e-9,
			PositiveSpans:   []histogram.Span{{Offset: -30, Length: 1}, {Offset: 100, Length: 1}},
			PositiveBuckets: []float64{1e21, 1e21},
		},
	}
}

func TestHistogramJSONMatchesPrometheus(t *testing.T) {
	l := labels.FromStrings("__name__", "lat", "job", "x")
	for name, h := range jsonHistograms() {
		t.Run(name, func(t *testing.T) {
			if got, want := mustJSON(t, Sample{Metric: l, T: 1435781451781, H: h}), apiJSON(t, l, true, nil, []HPoint{{1435781451781, h}}); got != want {
				t.Errorf("sample:\n ours %s\n api %s", got, want)
			}
			hs := []HPoint{{-2050, h}, {1000, h}, {61500, h}}
			if got, want := mustJSON(t, Series{Metric: l, Histograms: hs}), apiJSON(t, l, false, nil, hs); got != want {
				t.Errorf("series:\n ours %s\n api %s", got, want)
			}
			fs := []FPoint{{500, 2}}
			if got, want := mustJSON(t, Series{Metric: l, Floats: fs, Histograms: hs}), apiJSON(t, l, false, fs, hs); got != want {
				t.Errorf("mixed series:\n ours %s\n api %s", got, want)
			}
		})
	}
}
