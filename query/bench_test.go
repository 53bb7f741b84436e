package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// benchStore holds n counter series scraped every 60s for d.
func benchStore(b *testing.B, n int, d time.Duration) *MemStorage {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	st := NewMemStorage()
	pts := int(d / time.Minute)
	for i := range n {
		l := labels.FromStrings(metricName, "http_requests_total", "job", fmt.Sprint("job", i%4), "instance", fmt.Sprint(i))
		ps := make([]FPoint, pts)
		v := 0.0
		for j := range ps {
			v += float64(r.IntN(100))
			ps[j] = FPoint{T: int64(j) * 60_000, F: v}
		}
		if err := st.AddFloat(l, ps...); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// BenchmarkGrafana7d is a 7-day Grafana range query at a 5m step over 20
// series (2,016 steps, 201,600 samples read).
func BenchmarkGrafana7d(b *testing.B) {
	st := benchStore(b, 20, 7*24*time.Hour)
	e := New(Options{})
	end := time.UnixMilli((7*24*60 - 1) * 60_000)
	start := end.Add(-7 * 24 * time.Hour).Add(time.Minute)
	for _, q := range []string{
		`http_requests_total`,
		`rate(http_requests_total[5m])`,
		`sum by (job) (rate(http_requests_total[5m]))`,
		`histogram_quantile(0.9, sum by (le) (rate(http_requests_total[5m])))`,
		`avg_over_time(http_requests_total[1h]) / on(instance) group_left max by (instance) (http_requests_total)`,
	} {
		b.Run("q="+q, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Range(context.Background(), st, q, start, end, 5*time.Minute); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRate1000 evaluates rate over 1,000 series: instant, and a 1h
// range at a 1m step.
func BenchmarkRate1000(b *testing.B) {
	st := benchStore(b, 1000, 2*time.Hour)
	e := New(Options{})
	end := time.UnixMilli(119 * 60_000)
	b.Run("instant/sum_rate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Instant(context.Background(), st, `sum by (job) (rate(http_requests_total[5m]))`, end); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("instant/rate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Instant(context.Background(), st, `rate(http_requests_total[5m])`, end); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("range_1h_1m/rate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Range(context.Background(), st, `rate(http_requests_total[5m])`, end.Add(-time.Hour), end, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPrometheusGrafana7d runs the same 7-day queries through
// Prometheus's engine over the same data, for reference.
func BenchmarkPrometheusGrafana7d(b *testing.B) {
	st := benchStore(b, 20, 7*24*time.Hour)
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	end := time.UnixMilli((7*24*60 - 1) * 60_000)
	start := end.Add(-7 * 24 * time.Hour).Add(time.Minute)
	for _, q := range []string{`http_requests_total`, `rate(http_requests_total[5m])`, `sum by (job) (rate(http_requests_total[5m]))`} {
		b.Run("q="+q, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				qry, err := eng.NewRangeQuery(context.Background(), promQueryable{st}, nil, q, start, end, 5*time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				if r := qry.Exec(context.Background()); r.Err != nil {
					b.Fatal(r.Err)
				}
				qry.Close()
			}
		})
	}
}
