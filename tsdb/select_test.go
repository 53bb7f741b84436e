package tsdb

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/tsdb/series"
)

// TestSelectNoMatch guards against an empty match being read as "all
// series": a misspelled metric in Grafana must return nothing.
func TestSelectNoMatch(t *testing.T) {
	clock := newClock()
	db := openTestDB(t, t.TempDir(), testOptions(clock))
	defer func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}()
	now := testStart.UnixMilli()
	a := db.Appender()
	for _, name := range []string{"up", "down"} {
		if err := a.AddFloat(labels.FromStrings("__name__", name), now-1000, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	q, err := db.Querier(now-60_000, now)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := q.Close(); err != nil {
			t.Error(err)
		}
	}()
	tests := []struct {
		name  string
		ms    []*labels.Matcher
		count int
	}{
		{"no such metric", []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "no_such")}, 0},
		{"no such label value", []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "x")}, 0},
		{"one metric", []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")}, 1},
		{"any metric", []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := q.Select(context.Background(), series.Hints{}, tc.ms...)
			n := 0
			for set.Next() {
				n++
			}
			if err := set.Err(); err != nil {
				t.Fatal(err)
			}
			if n != tc.count {
				t.Errorf("got %d series, want %d", n, tc.count)
			}
		})
	}
}
