package query

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"

	"evalstore/sketch"
)

// histClient simulates an instrumented process exposing a native histogram
// scraped once a minute: obs[i] are the observations made in minute i (in
// (i-1, i] minutes), restart the minute after whose scrape the process
// restarts (its histogram starts empty again).
type histClient struct {
	obs     [][]float64
	restart int
}

const sketchSchema = 3

func newHistClient(r *rand.Rand, minutes, restart int) *histClient {
	c := &histClient{obs: make([][]float64, minutes+1), restart: restart}
	for i := 1; i <= minutes; i++ {
		for range 5 + r.IntN(20) {
			v := math.Exp(r.NormFloat64())
			switch r.IntN(10) {
			case 0:
				v = -v
			case 1:
				v = 0
			}
			c.obs[i] = append(c.obs[i], v)
		}
	}
	return c
}

// logHist is the LogHistogram of the observations of minutes (from, to],
// as a native histogram round trip makes it (minimum and maximum become
// bucket bounds, as they do for any state read from a native histogram).
func (c *histClient) logHist(t *testing.T, from, to int) *sketch.LogHistogram {
	t.Helper()
	h, err := sketch.NewLogHistogram(sketchSchema)
	if err != nil {
		t.Fatal(err)
	}
	for i := from + 1; i <= to; i++ {
		for _, v := range c.obs[i] {
			if err := h.Add(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := &sketch.LogHistogram{}
	if err := out.MergeNativeFloat(h.NativeFloat()); err != nil {
		t.Fatal(err)
	}
	return out
}

func toFloatHistogram(n sketch.NativeFloatHistogram, hint histogram.CounterResetHint) *histogram.FloatHistogram {
	spans := func(ss []sketch.Span) []histogram.Span {
		out := make([]histogram.Span, len(ss))
		for i, s := range ss {
			out[i] = histogram.Span{Offset: s.Offset, Length: s.Length}
		}
		return out
	}
	return &histogram.FloatHistogram{
		CounterResetHint: hint, Schema: n.Schema, ZeroThreshold: n.ZeroThreshold, ZeroCount: n.ZeroCount,
		Count: n.Count, Sum: n.Sum,
		PositiveSpans: spans(n.PositiveSpans), PositiveBuckets: n.PositiveCounts,
		NegativeSpans: spans(n.NegativeSpans), NegativeBuckets: n.NegativeCounts,
	}
}

// counterSeries is what a scraper stores: the cumulative histogram at each
// minute, restarting after c.restart.
func (c *histClient) counterSeries(t *testing.T) []HPoint {
	var pts []HPoint
	for i := range c.obs {
		from := 0
		if c.restart > 0 && i > c.restart {
			from = c.restart
		}
		pts = append(pts, HPoint{T: int64(i) * minuteMs, H: toFloatHistogram(c.logHist(t, from, i).NativeFloat(), histogram.UnknownCounterReset)})
	}
	return pts
}

// gaugeSeries holds, at each minute, that minute's observations only.
func (c *histClient) gaugeSeries(t *testing.T) []HPoint {
	var pts []HPoint
	for i := range c.obs {
		pts = append(pts, HPoint{T: int64(i) * minuteMs, H: toFloatHistogram(c.logHist(t, i-1, i).NativeFloat(), histogram.GaugeType)})
	}
	return pts
}

// TestHistogramAsSketch checks the sketch functions on native histogram
// series against an oracle built from the raw observations: a counter
// histogram over a window is the observations between the window's first
// and last sample (across a process restart), a gauge histogram its last
// sample.
func TestHistogramAsSketch(t *testing.T) {
	const minutes = 60
	c := newHistClient(rand.New(rand.NewPCG(11, 3)), minutes, 30)
	st := NewMemStorage()
	for _, s := range []struct {
		l   labels.Labels
		pts []HPoint
	}{
		{labels.FromStrings(metricName, "lat_seconds", "job", "api"), c.counterSeries(t)},
		{labels.FromStrings(metricName, "inflight", "job", "api"), c.gaugeSeries(t)},
		{labels.FromStrings(metricName, "nhcb_seconds", "job", "api"), []HPoint{{T: 0, H: &histogram.FloatHistogram{
			Schema: histogram.CustomBucketsSchema, Count: 3, Sum: 2, CustomValues: []float64{1},
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []float64{1, 2},
		}}}},
	} {
		if err := st.AddHistogram(s.l, s.pts...); err != nil {
			t.Fatal(err)
		}
	}
	e := New(Options{})
	ctx := context.Background()
	value := func(t *testing.T, q string, at int) float64 {
		t.Helper()
		res, err := e.Instant(ctx, st, q, time.UnixMilli(int64(at)*minuteMs))
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		v, ok := res.Value.(Vector)
		if !ok || len(v) != 1 || v[0].Metric.String() != `{job="api"}` {
			t.Fatalf("%s: got %v, want one sample of {job=\"api\"}", q, res.Value)
		}
		return v[0].F
	}
	for _, c2 := range []struct {
		at, window int
	}{{10, 5}, {29, 10}, {33, 10}, {31, 2}, {45, 45}, {60, 60}} {
		t.Run(fmt.Sprintf("counter at %dm over %dm", c2.at, c2.window), func(t *testing.T) {
			// Samples at every minute: the first in (at-window, at] is
			// at-window+1.
			want := c.logHist(t, max(0, c2.at-c2.window+1), c2.at)
			sel := fmt.Sprintf("lat_seconds[%dm]", c2.window)
			if got := value(t, "count_sketch("+sel+")", c2.at); got != want.Count() {
				t.Errorf("count %v, want %v", got, want.Count())
			}
			if got := value(t, "mean_sketch("+sel+")", c2.at); !sameFloat(got, want.Mean(), 1e-9) {
				t.Errorf("mean %v, want %v", got, want.Mean())
			}
			for _, q := range []float64{0.01, 0.1, 0.5, 0.9, 0.99} {
				if got := value(t, fmt.Sprintf("quantile_sketch(%v, %s)", q, sel), c2.at); got != want.Quantile(q) {
					t.Errorf("quantile %v: %v, want %v", q, got, want.Quantile(q))
				}
			}
		})
	}
	t.Run("gauge is its last sample", func(t *testing.T) {
		want := c.logHist(t, 19, 20)
		if got := value(t, "quantile_sketch(0.5, inflight[5m])", 20); got != want.Quantile(0.5) {
			t.Errorf("median %v, want %v", got, want.Quantile(0.5))
		}
		if got := value(t, "count_sketch(inflight[5m])", 20); got != want.Count() {
			t.Errorf("count %v, want %v", got, want.Count())
		}
	})
	t.Run("range query steps", func(t *testing.T) {
		res, err := e.Range(ctx, st, "count_sketch(lat_seconds[3m])", time.UnixMilli(0), time.UnixMilli(minutes*minuteMs), 7*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		m := res.Value.(Matrix)
		if len(m) != 1 {
			t.Fatalf("got %v", m)
		}
		var want []FPoint
		for at := 0; at <= minutes; at += 7 {
			if at >= 1 { // two samples in the window
				want = append(want, FPoint{T: int64(at) * minuteMs, F: c.logHist(t, max(0, at-2), at).Count()})
			}
		}
		if fmt.Sprint(m[0].Floats) != fmt.Sprint(want) {
			t.Errorf("got %v, want %v", m[0].Floats, want)
		}
	})
	t.Run("custom buckets are refused", func(t *testing.T) {
		_, err := e.Instant(ctx, st, "quantile_sketch(0.5, nhcb_seconds[5m])", time.UnixMilli(minuteMs))
		if err == nil || !strings.Contains(err.Error(), `"nhcb_seconds"`) || !strings.Contains(err.Error(), `job="api"`) || !strings.Contains(err.Error(), "custom buckets") {
			t.Fatalf("err = %v, want one naming the custom-bucket series", err)
		}
	})
}
