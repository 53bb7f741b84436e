package rules

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query"
	"evalstore/tsdb"
)

// TestRecordingRuleRecordsHistograms: a recording rule whose result is a
// native histogram records a histogram sample (as Prometheus does), into
// the engine's memory storage and into tsdb, and a rule reading the
// recording sees the summed buckets.
func TestRecordingRuleRecordsHistograms(t *testing.T) {
	// Two series, one observation per bucket and minute: job a in buckets
	// (1,2] and (2,4], job b in (2,4]. At minute m they hold m+1
	// observations per bucket.
	hist := func(m int, idx ...int32) *histogram.FloatHistogram {
		c := float64(m + 1)
		h := &histogram.FloatHistogram{Schema: 0, Count: c * float64(len(idx)), Sum: c * float64(len(idx))}
		h.PositiveSpans = []histogram.Span{{Offset: idx[0], Length: uint32(len(idx))}}
		for range idx {
			h.PositiveBuckets = append(h.PositiveBuckets, c)
		}
		return h
	}
	stores := []struct {
		name string
		open func(t *testing.T) Storage
	}{
		{"memory", func(*testing.T) Storage { return MemStorage(query.NewMemStorage()) }},
		{"tsdb", func(t *testing.T) Storage {
			db, err := tsdb.Open(t.TempDir(), tsdb.Options{Now: func() time.Time { return minute(10) }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := db.Close(); err != nil {
					t.Error(err)
				}
			})
			return TSDBStorage(db)
		}},
	}
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			st := s.open(t)
			var in []Sample
			for m := range 4 {
				in = append(in,
					Sample{Labels: labels.FromStrings("__name__", "lat", "job", "a"), T: minute(m).UnixMilli(), H: hist(m, 1, 2)},
					Sample{Labels: labels.FromStrings("__name__", "lat", "job", "b"), T: minute(m).UnixMilli(), H: hist(m, 2)})
			}
			if err := st.Append(in); err != nil {
				t.Fatal(err)
			}
			m := NewManager(Options{Storage: st})
			if err := m.Load(writeRules(t, `groups:
  - name: g
    rules:
      - record: lat:sum
        expr: sum(lat)
      - record: lat:count
        expr: histogram_count(lat:sum)
`)); err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				m.Eval(context.Background(), minute(i))
			}
			q := engineQueryFunc(query.New(query.Options{}), st)
			v, err := q(context.Background(), "lat:sum", minute(3))
			if err != nil {
				t.Fatal(err)
			}
			// Minute 3: 4 observations in each of a's two buckets and 4 in
			// b's (2,4]: (1,2] holds 4, (2,4] holds 8, count 12.
			want := &histogram.FloatHistogram{Schema: 0, Count: 12, Sum: 12,
				PositiveSpans: []histogram.Span{{Offset: 1, Length: 2}}, PositiveBuckets: []float64{4, 8}}
			if len(v) != 1 || v[0].H == nil || !v[0].H.Compact(0).Equals(want) {
				t.Fatalf("lat:sum = %v, want %v", v, want)
			}
			v, err = q(context.Background(), "lat:count", minute(3))
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != 1 || v[0].H != nil || v[0].F != 12 {
				t.Fatalf("lat:count = %v, want 12", v)
			}
		})
	}
}
