package query

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query/parser"
)

func manySeries(t testing.TB, nSeries, nPoints int, stepMs int64) *MemStorage {
	t.Helper()
	st := NewMemStorage()
	for i := range nSeries {
		l := labels.FromStrings(metricName, "x", "i", fmt.Sprint(i), "job", fmt.Sprint(i%5))
		pts := make([]FPoint, nPoints)
		for j := range pts {
			pts[j] = FPoint{T: int64(j) * stepMs, F: float64(i*j) + 0.5}
		}
		if err := st.AddFloat(l, pts...); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func TestLimits(t *testing.T) {
	st := manySeries(t, 50, 100, 60_000)
	ctx := context.Background()
	at := time.UnixMilli(99 * 60_000)
	cases := []struct {
		name  string
		opts  Options
		query string
		rng   bool
		limit string
		msg   string
	}{
		{"series", Options{MaxSeries: 10}, `sum(x)`, false, "max series", "query exceeded max series limit (10)"},
		{"series across selectors", Options{MaxSeries: 60}, `x + x`, false, "max series", "query exceeded max series limit (60)"},
		{"samples", Options{MaxSamples: 1000}, `sum_over_time(x[1h])`, false, "max samples", "query exceeded max samples limit (1000)"},
		{"result points", Options{MaxResultPoints: 500}, `x`, true, "max result points", "query exceeded max result points limit (500)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := New(c.opts)
			var err error
			if c.rng {
				_, err = e.Range(ctx, st, c.query, time.UnixMilli(0), at, time.Minute)
			} else {
				_, err = e.Instant(ctx, st, c.query, at)
			}
			name, ok := IsLimit(err)
			if !ok || name != c.limit || err.Error() != c.msg {
				t.Fatalf("err = %v (limit %q), want %q", err, name, c.msg)
			}
			if TypeOf(err) != ErrExecution {
				t.Errorf("type %s", TypeOf(err))
			}
		})
	}
	// Grids too fine to hold are refused before evaluation.
	for _, c := range []struct {
		q    string
		step time.Duration
	}{{`1`, time.Millisecond}, {`max_over_time(x[1000d:1ms])`, time.Hour}} {
		_, err := New(Options{MaxResultPoints: 100_000}).Range(ctx, st, c.q, time.UnixMilli(0), time.UnixMilli(3_600_000), c.step)
		if name, ok := IsLimit(err); !ok || name != "max result points" {
			t.Errorf("%s: err = %v", c.q, err)
		}
	}
	// Within the limits the same queries succeed.
	if _, err := New(Options{MaxSeries: 50, MaxSamples: 5000}).Instant(ctx, st, `sum_over_time(x[1h])`, at); err != nil {
		t.Fatal(err)
	}
}

func TestMaxBuckets(t *testing.T) {
	st, _ := confusionStore(t, 100, 5)
	q, _ := st.Querier(0, 1e9)
	ev := testEvaluator(q, 100*60_000, 100*60_000, 1)
	ev.opts.MaxBuckets = 20
	vs, _ := parser.Parse(`predictions`)
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = r.(evalAbort).err
			}
		}()
		ev.sketchSelector(vs.(*parser.VectorSelector), 3_600_000, &sketchScratch{})
	}()
	if name, ok := IsLimit(err); !ok || name != "max buckets" || !strings.Contains(err.Error(), "max buckets limit (20)") {
		t.Fatalf("err = %v", err)
	}
}

func TestBadInputErrors(t *testing.T) {
	e := New(Options{})
	ctx := context.Background()
	st := NewMemStorage()
	for _, c := range []struct {
		q   string
		rng bool
		typ ErrorType
		msg string
	}{
		{`sum(`, false, ErrBadData, "1:5: unexpected end of input"},
		{`x[5m]`, true, ErrBadData, `invalid expression type "range vector" for range query, must be Scalar or instant Vector`},
		{`"a"`, true, ErrBadData, `invalid expression type "string" for range query`},
		{`sum(x[5m])`, false, ErrBadData, "1:5: expected type instant vector in aggregation expression, got range vector"},
	} {
		var err error
		if c.rng {
			_, err = e.Range(ctx, st, c.q, time.Unix(0, 0), time.Unix(60, 0), time.Second)
		} else {
			_, err = e.Instant(ctx, st, c.q, time.Unix(0, 0))
		}
		if err == nil || TypeOf(err) != c.typ || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err %v (%s), want %s containing %q", c.q, err, TypeOf(err), c.typ, c.msg)
		}
	}
	if _, err := e.Range(ctx, st, `1`, time.Unix(0, 0), time.Unix(60, 0), 0); TypeOf(err) != ErrBadData {
		t.Errorf("zero step: %v", err)
	}
}

func TestCancellation(t *testing.T) {
	st := manySeries(t, 100, 5000, 60_000)
	const q = `sum_over_time(x[2h])`
	start, end := time.UnixMilli(0), time.UnixMilli(5000*60_000)

	t.Run("canceled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := New(Options{}).Range(ctx, st, q, start, end, 10*time.Second)
		if TypeOf(err) != ErrCanceled {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("canceled during", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(30 * time.Millisecond); cancel() }()
		began := time.Now()
		_, err := New(Options{}).Range(ctx, st, q, start, end, 10*time.Second)
		if TypeOf(err) != ErrCanceled {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(began); d > 2*time.Second {
			t.Errorf("returned %v after cancel", d)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		_, err := New(Options{Timeout: 20 * time.Millisecond}).Range(context.Background(), st, q, start, end, 10*time.Second)
		if TypeOf(err) != ErrTimeout || err.Error() != "query timed out in expression evaluation" {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestConcurrentQueries runs queries from several goroutines on one engine
// and one store (run with -race).
func TestConcurrentQueries(t *testing.T) {
	st := loadText(t, compatData)
	e := New(Options{})
	want := map[string]Result{}
	var qs []string
	for _, q := range compatQueries[:80] {
		r, err := e.Range(context.Background(), st, q, ms(0), ms(time.Hour), time.Minute)
		if err != nil {
			continue // an expected evaluation error
		}
		want[q] = r
		qs = append(qs, q)
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range qs {
				q := qs[(i+g*7)%len(qs)]
				r, err := e.Range(context.Background(), st, q, ms(0), ms(time.Hour), time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if a, b := fmt.Sprint(r.Value), fmt.Sprint(want[q].Value); a != b {
					errs <- fmt.Errorf("%s: concurrent result differs", q)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestHistogramSampleLimit checks that a native histogram counts against
// MaxSamples as its size in float samples, (Size()+8)/16, as Prometheus
// counts it: a query reading n histograms needs exactly n times that.
func TestHistogramSampleLimit(t *testing.T) {
	h := &histogram.FloatHistogram{
		Schema: 3, Count: 40, Sum: 12,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 20}},
		PositiveBuckets: []float64{1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5},
	}
	weight := (h.Size() + 8) / 16
	if weight < 2 {
		t.Fatalf("histogram weighs %d samples: too small to tell weighting from counting", weight)
	}
	const n = 30
	st := NewMemStorage()
	pts := make([]HPoint, n)
	for i := range pts {
		pts[i] = HPoint{T: int64(i) * 60_000, H: h}
	}
	if err := st.AddHistogram(labels.FromStrings(metricName, "hh"), pts...); err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli((n - 1) * 60_000)
	for _, c := range []struct {
		limit int
		fail  bool
	}{{n * weight, false}, {n*weight - 1, true}} {
		t.Run(fmt.Sprint(c.limit), func(t *testing.T) {
			_, err := New(Options{MaxSamples: c.limit}).Instant(context.Background(), st, `sum_over_time(hh[1h])`, at)
			name, isLimit := IsLimit(err)
			switch {
			case c.fail && (!isLimit || name != "max samples"):
				t.Fatalf("err = %v, want the max samples limit", err)
			case !c.fail && err != nil:
				t.Fatalf("err = %v, want none", err)
			}
		})
	}
}
