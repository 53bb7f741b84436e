package rules

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query"
	"evalstore/sketch"
)

// TestSketchMetricRule runs an alert over a sketch metric (accuracy of
// merged Confusion buckets). It skips while the engine does not type
// windowed sketch selectors yet (the query-language issue).
func TestSketchMetricRule(t *testing.T) {
	if _, err := ParseFile("testdata/sketch.rules.yml"); err != nil {
		t.Fatal(err)
	}
	st := query.NewMemStorage()
	ls := labels.FromStrings("__name__", "evalstore_confusion", "model", "b", "slice", "eu", "source", "online")
	for b := range 40 {
		c := sketch.NewConfusion()
		wrong := 1 // 90% accurate for 20 minutes, then 70%
		if b >= 20 {
			wrong = 3
		}
		for i := range 10 {
			pred := 1
			if i < wrong {
				pred = 0
			}
			c.Add(1, pred)
		}
		st.AddBuckets(ls, sketch.FormatConfusion, query.MemBucket{T: minute(b).UnixMilli(), Width: 60_000, State: c.AppendBinary(nil)})
	}
	m := NewManager(Options{Storage: MemStorage(st)})
	if err := m.Load("testdata/sketch.rules.yml"); err != nil {
		t.Fatal(err)
	}
	ar := m.Groups()[0].Rules()[0].(*AlertingRule)
	fired := -1
	for i := 0; i <= 40; i++ {
		m.Eval(context.Background(), minute(i))
		if h := ar.Health(); h.Health != HealthOK {
			t.Fatalf("minute %d: %v", i, h.LastError)
		}
		if as := ar.Alerts(); fired < 0 && len(as) == 1 && as[0].State == StateFiring {
			fired = i
		}
	}
	// Below 85% once more than a quarter of the 15m window is at 70%.
	if fired < 25 || fired > 35 {
		t.Fatalf("fired at minute %d", fired)
	}
}
