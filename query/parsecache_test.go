package query

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

func parseCacheStore(t testing.TB) *MemStorage {
	st := NewMemStorage()
	for i := range 10 {
		var pts []FPoint
		for j := range 60 {
			pts = append(pts, FPoint{T: int64(j) * 15_000, F: float64(i*j + j)})
		}
		l := labels.FromStrings(metricName, "http_requests_total", "job", fmt.Sprint("job", i%3), "instance", fmt.Sprint(i))
		if err := st.AddFloat(l, pts...); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestParseCache: an engine with the parse cache answers exactly as one
// without it, also for invalid queries (not cached), from many goroutines
// at once (run with -race: cached trees are shared, so evaluation must
// only read them), and the cache stays within its bound.
func TestParseCache(t *testing.T) {
	st := parseCacheStore(t)
	queries := []string{
		`sum by (job) (rate(http_requests_total[5m]))`,
		`http_requests_total{job="job1"} @ end() offset 1m`,
		`topk(2, http_requests_total) > bool 100`,
		`count_over_time(http_requests_total[10m:1m])`,
		`sum(rate(http_requests_total[5m]` + "", // unclosed: an error every time
		`label_replace(http_requests_total, "x", "$1", "instance", "(.*)")`,
	}
	plain := New(Options{ParseCacheSize: -1})
	cached := New(Options{ParseCacheSize: 4})
	at := time.UnixMilli(14 * 60_000)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 30 {
				q := queries[(g+i)%len(queries)]
				want, werr := plain.Range(context.Background(), st, q, at.Add(-5*time.Minute), at, time.Minute)
				got, gerr := cached.Range(context.Background(), st, q, at.Add(-5*time.Minute), at, time.Minute)
				if fmt.Sprint(werr) != fmt.Sprint(gerr) || !reflect.DeepEqual(want, got) {
					mu.Lock()
					t.Errorf("%s: cached %v (%v), uncached %v (%v)", q, got, gerr, want, werr)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	cached.parsed.mu.Lock()
	n := len(cached.parsed.m)
	_, hasBad := cached.parsed.m[queries[4]]
	cached.parsed.mu.Unlock()
	if n == 0 || n > 4 || hasBad {
		t.Errorf("cache holds %d entries (bound 4), the invalid query: %v", n, hasBad)
	}
	if plain.parsed.m != nil {
		t.Error("a negative size still caches")
	}
}

// BenchmarkParseCache is a small dashboard query with and without the
// parse cache.
func BenchmarkParseCache(b *testing.B) {
	st := parseCacheStore(b)
	at := time.UnixMilli(14 * 60_000)
	for _, c := range []struct {
		name string
		size int
	}{{"cache=off", -1}, {"cache=on", 0}} {
		b.Run(c.name, func(b *testing.B) {
			e := New(Options{ParseCacheSize: c.size})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Instant(context.Background(), st, `sum by (job) (rate(http_requests_total{job=~"job.*"}[5m]))`, at); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
