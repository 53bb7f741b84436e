package query

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query/parser"
	"evalstore/sketch"
	"evalstore/tsdb/series"
)

// confusionData builds a sketch series of one-minute Confusion buckets from
// random observations and keeps the raw observations as the oracle.
type obs struct {
	t                 int64
	actual, predicted int
}

func confusionStore(t testing.TB, n int, seed uint64) (*MemStorage, []obs) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	st := NewMemStorage()
	var all []obs
	l := labels.FromStrings(metricName, "predictions", "model", "m", "slice", "all")
	for b := range n {
		c := sketch.NewConfusion()
		k := 1 + r.IntN(5)
		for range k {
			o := obs{t: int64(b) * 60_000, actual: r.IntN(3), predicted: r.IntN(3)}
			c.Add(o.actual, o.predicted)
			all = append(all, o)
		}
		st.AddBuckets(l, sketch.FormatConfusion, MemBucket{T: int64(b) * 60_000, Width: 60_000, State: c.AppendBinary(nil)})
	}
	return st, all
}

func testEvaluator(q series.Querier, start, end, interval int64) *evaluator {
	e := New(Options{})
	return &evaluator{ctx: context.Background(), querier: q, opts: &e.opts, start: start, end: end, interval: interval,
		queryStart: start, queryEnd: end, lookback: 300_000, acct: &accounting{}}
}

func TestMergeWindowAgainstOracle(t *testing.T) {
	st, all := confusionStore(t, 600, 1)
	q, _ := st.Querier(0, 600*60_000)
	ev := testEvaluator(q, 0, 0, 1)
	for _, w := range []struct{ mint, maxt int64 }{
		{0, 600*60_000 - 1}, {60_000, 120_000 - 1}, {3_600_000, 7_200_000 - 1}, {30_000, 7_200_000 - 1}, {0, 59_999 + 30_000}, {10_000_000_000, 10_000_000_001},
	} {
		set := q.Select(context.Background(), windowHints(w.maxt+1, w.maxt+1, w.maxt+1-w.mint), labels.MustNewMatcher(labels.MatchEqual, metricName, "predictions"))
		if !set.Next() {
			t.Fatal("no series")
		}
		got := sketch.NewConfusion()
		n, _, err := ev.mergeWindow(set.At(), w.mint, w.maxt, got, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := sketch.NewConfusion()
		wantBuckets := map[int64]bool{}
		for _, o := range all {
			// A bucket is in the window when it lies wholly inside it.
			if o.t >= w.mint && o.t+60_000-1 <= w.maxt {
				want.Add(o.actual, o.predicted)
				wantBuckets[o.t] = true
			}
		}
		if n != len(wantBuckets) {
			t.Errorf("window %v: merged %d buckets, want %d", w, n, len(wantBuckets))
		}
		if !bytes.Equal(got.AppendBinary(nil), want.AppendBinary(nil)) {
			t.Errorf("window %v: merged state differs from the oracle", w)
		}
	}
}

func TestMergeWindowWrongFormat(t *testing.T) {
	st, _ := confusionStore(t, 3, 2)
	q, _ := st.Querier(0, 1e9)
	set := q.Select(context.Background(), series.Hints{Mint: 0, Maxt: 1e9})
	set.Next()
	ev := testEvaluator(q, 0, 0, 1)
	if _, _, err := ev.mergeWindow(set.At(), 0, 1e9, sketch.NewMoments(), nil); err == nil {
		t.Fatal("merging confusion buckets into moments succeeded")
	}
}

func TestSketchSelectorAndFinish(t *testing.T) {
	st, all := confusionStore(t, 120, 3)
	q, _ := st.Querier(0, 1e9)
	const minute = 60_000
	cases := []struct {
		sel                 string
		start, end, step, w int64
		at, offset          int64 // at < 0: none
	}{
		{`predictions{model="m"}`, 30 * minute, 120 * minute, 15 * minute, 30 * minute, -1, 0}, // overlapping windows
		{`predictions`, 0, 130 * minute, 30 * minute, 10 * minute, -1, 0},                      // disjoint, gaps, empty edges
		{`predictions`, 50 * minute, 50 * minute, 1, 7 * minute, -1, 0},                        // instant
		{`predictions offset 20m`, 30 * minute, 90 * minute, 7 * minute, 13 * minute, -1, 20 * minute},
		{`predictions @ 3600`, 0, 90 * minute, 30 * minute, 60 * minute, 60 * minute, 0},
		{`predictions`, 10 * minute, 20 * minute, 1 * minute, 1 * minute, -1, 0}, // one bucket per window
	}
	for _, c := range cases {
		ev := testEvaluator(q, c.start, c.end, c.step)
		vs, err := parser.Parse(c.sel)
		if err != nil {
			t.Fatal(err)
		}
		pool := &sketchScratch{}
		m := ev.sketchSelector(vs.(*parser.VectorSelector), c.w, pool)
		acc, _ := LookupSketchMetric("accuracy")
		res := ev.finish(m, acc, pool)
		// Oracle: accuracy of the raw observations whose bucket ends in (ref-w, ref].
		want := map[int64]float64{}
		for ts := c.start; ts <= c.end; ts += c.step {
			ref := ts - c.offset
			if c.at >= 0 {
				ref = c.at - c.offset
			}
			var right, n float64
			for _, o := range all {
				if end := o.t + minute; end > ref-c.w && end <= ref {
					n++
					if o.actual == o.predicted {
						right++
					}
				}
			}
			if n > 0 {
				want[ts] = right / n
			}
		}
		var got []FPoint
		if len(res) == 1 {
			got = res[0].Floats
			if res[0].Metric.Get(metricName) != "" || res[0].Metric.Get("model") != "m" {
				t.Errorf("%s: labels %v", c.sel, res[0].Metric)
			}
		} else if len(res) > 1 {
			t.Fatalf("%s: %d series", c.sel, len(res))
		}
		if len(got) != len(want) {
			t.Errorf("%s w=%d: %d points, oracle %d", c.sel, c.w, len(got), len(want))
		}
		for _, p := range got {
			if w, ok := want[p.T]; !ok || !sameFloat(p.F, w, 1e-12) {
				t.Errorf("%s w=%d: accuracy at %d = %v, oracle %v", c.sel, c.w, p.T, p.F, w)
			}
		}
		// Every state went back to the pool.
		if got := len(pool.free[sketch.FormatConfusion]); got != len(want) && len(want) > 0 {
			t.Errorf("%s: pool holds %d states, want %d", c.sel, got, len(want))
		}
	}
}

func TestSketchRegistry(t *testing.T) {
	fin := func([]sketch.Sketch, int) (float64, bool) { return 0, true }
	if err := RegisterSketchMetric(SketchMetric{Name: "accuracy", Families: []string{"x"}, Finish: fin}); err == nil {
		t.Error("duplicate registration accepted")
	}
	if err := RegisterSketchMetric(SketchMetric{Name: "rate", Families: []string{"x"}, Finish: fin}); err == nil {
		t.Error("registration shadowing rate accepted")
	}
	if err := RegisterSketchMetric(SketchMetric{Name: "psi", Families: []string{"x"}, Finish: fin}); err == nil {
		t.Error("registration shadowing psi accepted")
	}
	for _, n := range []string{"accuracy", "precision", "f1_macro", "auc", "mae", "count", "label_coverage"} {
		if _, ok := LookupSketchMetric(n); !ok {
			t.Errorf("%s not registered", n)
		}
	}
}

func BenchmarkMergeWindow(b *testing.B) {
	st, _ := confusionStore(b, 43_200, 4) // 30 days of one-minute buckets
	q, _ := st.Querier(0, 43_200*60_000)
	ev := testEvaluator(q, 0, 0, 1)
	dst := sketch.NewConfusion()
	var it series.BucketIterator
	b.ReportAllocs()
	for b.Loop() {
		set := q.Select(context.Background(), windowHints(43_200*60_000, 43_200*60_000, 43_200*60_000))
		set.Next()
		dst.Reset()
		n, nit, err := ev.mergeWindow(set.At(), 0, 43_200*60_000-1, dst, it)
		it = nit
		if err != nil || n != 43_200 {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(43_200, "buckets/op")
}

// BenchmarkSketchSelectorRange evaluates accuracy over sliding 1h windows
// at a 5m step for the last 7 days of 30 days of one-minute buckets
// (2,016 windows of 60 buckets, one pass over the buckets).
func BenchmarkSketchSelectorRange(b *testing.B) {
	st, _ := confusionStore(b, 43_200, 4)
	q, _ := st.Querier(0, 43_200*60_000)
	end := int64(43_200 * 60_000)
	vs, _ := parser.Parse(`predictions`)
	acc, _ := LookupSketchMetric("accuracy")
	pool := &sketchScratch{}
	b.ReportAllocs()
	for b.Loop() {
		ev := testEvaluator(q, end-7*24*3_600_000+300_000, end, 300_000)
		m := ev.sketchSelector(vs.(*parser.VectorSelector), 3_600_000, pool)
		res := ev.finish(m, acc, pool)
		if len(res) != 1 || len(res[0].Floats) != 2016 {
			b.Fatal(len(res))
		}
	}
}

// A float query over sketch series ignores them and says so.
func TestFloatSelectorSkipsSketchSeries(t *testing.T) {
	st, _ := confusionStore(t, 10, 6)
	if err := st.AddFloat(labels.FromStrings(metricName, "predictions", "model", "f"), FPoint{T: 0, F: 1}); err != nil {
		t.Fatal(err)
	}
	res, err := New(Options{}).Instant(context.Background(), st, `predictions`, time.UnixMilli(60_000))
	if err != nil {
		t.Fatal(err)
	}
	v := res.Value.(Vector)
	if len(v) != 1 || v[0].Metric.Get("model") != "f" {
		t.Errorf("got %v", v)
	}
	if len(res.Warnings) != 1 {
		t.Errorf("warnings %q", res.Warnings)
	}
}
