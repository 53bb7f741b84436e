package query

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// TestJSONMatchesPrometheus compares the JSON of result values with
// Prometheus's own encoding of the same values.
func TestJSONMatchesPrometheus(t *testing.T) {
	l := labels.FromStrings("__name__", "up", "job", "a\"b")
	vals := []float64{1, -2.5, 1e21, 1.0 / 3, math.Inf(1), math.Inf(-1), math.NaN(), 0}
	for _, v := range vals {
		check := func(ours, theirs any) {
			t.Helper()
			a, err := json.Marshal(ours)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(theirs)
			if err != nil {
				t.Fatal(err)
			}
			if string(a) != string(b) {
				t.Errorf("value %v:\n ours %s\nprom %s", v, a, b)
			}
		}
		check(Sample{Metric: l, T: 1435781451781, F: v}, promql.Sample{Metric: l, T: 1435781451781, F: v})
		check(Scalar{T: 1500, V: v}, promql.Scalar{T: 1500, V: v})
		check(Series{Metric: l, Floats: []FPoint{{1000, v}, {2000, 1}}}, promql.Series{Metric: l, Floats: []promql.FPoint{{T: 1000, F: v}, {T: 2000, F: 1}}})
	}
	a, _ := json.Marshal(String{T: 1000, V: "x\"y"})
	b, _ := json.Marshal(promql.String{T: 1000, V: "x\"y"})
	if string(a) != string(b) {
		t.Errorf("string: ours %s, prom %s", a, b)
	}
	if a, _ := json.Marshal(Vector(nil)); string(a) != "[]" {
		t.Errorf("empty vector %s", a)
	}
}
