package query

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promparser "github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// loadText fills a MemStorage from promqltest-style load blocks:
//
//	load 1m
//	  metric{a="b"} 0+10x5 _ stale 3
//	  hist{a="b"} {{schema:0 sum:5 count:4 buckets:[1 2 1]}}+{{sum:1 count:1 buckets:[1]}}x10
func loadText(t testing.TB, text string) *MemStorage {
	t.Helper()
	st := NewMemStorage()
	p := promparser.NewParser(promparser.Options{})
	var step time.Duration
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "load "); ok {
			d, err := time.ParseDuration(strings.TrimSpace(rest))
			if err != nil {
				t.Fatalf("bad load step %q: %v", rest, err)
			}
			step = d
			continue
		}
		if err := addSeriesLine(st, p, line, step); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// addSeriesLine adds one promqltest series line (floats or native
// histograms, one sample per step from 0) to st.
func addSeriesLine(st *MemStorage, p promparser.Parser, line string, step time.Duration) error {
	lset, vals, err := p.ParseSeriesDesc(line)
	if err != nil {
		return fmt.Errorf("bad series %q: %w", line, err)
	}
	var pts []FPoint
	var hpts []HPoint
	for i, v := range vals {
		if v.Omitted {
			continue
		}
		ts := int64(i) * step.Milliseconds()
		switch {
		case v.Histogram != nil:
			hpts = append(hpts, HPoint{T: ts, H: v.Histogram})
		case value.IsStaleNaN(v.Value) && (len(hpts) > 0 || len(pts) == 0 && histogramLine(vals)):
			// A staleness marker in a histogram series.
			hpts = append(hpts, HPoint{T: ts, H: &histogram.FloatHistogram{Sum: math.Float64frombits(value.StaleNaN)}})
		default:
			pts = append(pts, FPoint{T: ts, F: v.Value})
		}
	}
	if len(hpts) > 0 {
		if len(pts) > 0 {
			return fmt.Errorf("series %q mixes floats and histograms", line)
		}
		return st.AddHistogram(lset, hpts...)
	}
	return st.AddFloat(lset, pts...)
}

func histogramLine(vals []promparser.SequenceValue) bool {
	for _, v := range vals {
		if v.Histogram != nil {
			return true
		}
	}
	return false
}

// promQueryable serves a MemStorage's float series to Prometheus's engine.
type promQueryable struct{ m *MemStorage }

func (q promQueryable) Querier(int64, int64) (storage.Querier, error) { return promQuerier(q), nil }

type promQuerier struct{ m *MemStorage }

func (q promQuerier) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mq, _ := q.m.Querier(math.MinInt64, math.MaxInt64)
	var out []storage.Series
	for _, s := range mq.(*memQuerier).all {
		if s.chunk == nil && s.hists == nil || !matches(s.meta.Labels, ms) {
			continue
		}
		c, hs := s.chunk, s.hists
		out = append(out, &storage.SeriesEntry{Lset: s.meta.Labels, SampleIteratorFn: func(it chunkenc.Iterator) chunkenc.Iterator {
			if hs != nil {
				return newHistIter(hs, it)
			}
			return c.Iterator(it)
		}})
	}
	return &promSet{s: out, i: -1}
}

func (promQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (promQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (promQuerier) Close() error { return nil }

type promSet struct {
	s []storage.Series
	i int
}

func (p *promSet) Next() bool                        { p.i++; return p.i < len(p.s) }
func (p *promSet) At() storage.Series                { return p.s[p.i] }
func (p *promSet) Err() error                        { return nil }
func (p *promSet) Warnings() annotations.Annotations { return nil }
func ms(d time.Duration) time.Time                   { return time.UnixMilli(d.Milliseconds()).UTC() }
func floatsEqual(a, b float64) bool                  { return sameFloat(a, b, 1e-9) }
func sameFloat(a, b, rel float64) bool {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return math.IsNaN(a) && math.IsNaN(b)
	case a == b:
		return true
	}
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b))
}
