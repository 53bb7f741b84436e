package main

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"evalstore/sketch"
)

// histSeries is a cumulative native histogram series built from raw
// observations, the oracle of TestNativeHistogramsEndToEnd.
type histSeries struct {
	lset  labels.Labels
	times []time.Time
	hists []*histogram.Histogram // cumulative state at times[i]
	obs   [][]float64            // observations up to and including times[i]
}

// latencySeries observes perStep log-normal latencies between samples,
// into schema-3 buckets (client_golang's default factor 1.1).
func latencySeries(rng *rand.Rand, lset labels.Labels, start time.Time, step time.Duration, n, perStep int) histSeries {
	s := histSeries{lset: lset}
	lh, _ := sketch.NewLogHistogram(3)
	var all []float64
	for i := range n {
		for range perStep {
			x := 0.05 * math.Exp(rng.NormFloat64())
			all = append(all, x)
			if err := lh.Add(x); err != nil {
				panic(err)
			}
		}
		nh := lh.Native()
		h := &histogram.Histogram{Schema: nh.Schema, ZeroThreshold: nh.ZeroThreshold, ZeroCount: nh.ZeroCount,
			Count: nh.Count, Sum: nh.Sum, PositiveBuckets: nh.PositiveDeltas, NegativeBuckets: nh.NegativeDeltas}
		for _, sp := range nh.PositiveSpans {
			h.PositiveSpans = append(h.PositiveSpans, histogram.Span{Offset: sp.Offset, Length: sp.Length})
		}
		for _, sp := range nh.NegativeSpans {
			h.NegativeSpans = append(h.NegativeSpans, histogram.Span{Offset: sp.Offset, Length: sp.Length})
		}
		s.times = append(s.times, start.Add(time.Duration(i)*step))
		s.hists = append(s.hists, h)
		s.obs = append(s.obs, slices.Clone(all))
	}
	return s
}

// remoteWriteV2 posts series as one remote-write 2.0 request built with
// Prometheus's own writev2 types.
func remoteWriteV2(t *testing.T, url string, series ...histSeries) *http.Response {
	t.Helper()
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for _, s := range series {
		ts := writev2.TimeSeries{LabelsRefs: st.SymbolizeLabels(s.lset, nil),
			Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM}}
		for i, h := range s.hists {
			ts.Histograms = append(ts.Histograms, writev2.FromIntHistogram(0, s.times[i].UnixMilli(), h))
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return postWrite(t, url, "", "application/x-protobuf;proto=io.prometheus.write.v2.Request", raw)
}

// exactQuantile is the q-quantile of xs by rank ceil(q·n) (the smallest x
// with at least q·n observations at or below it).
func exactQuantile(q float64, xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[max(int(math.Ceil(q*float64(len(s))))-1, 0)]
}

// TestNativeHistogramsEndToEnd remote-writes native histograms (2.0, with
// Prometheus's types) to a real server, reads them back through
// Prometheus's Go client, checks PromQL's histogram functions against the
// raw observations, retries the request (a no-op), and kills the server
// with SIGKILL: the acknowledged histograms are there after restart.
func TestNativeHistogramsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	rng := rand.New(rand.NewPCG(11, 12))
	now := time.Now().Truncate(time.Second)
	step := 15 * time.Second
	const n, perStep = 20, 300
	start0 := now.Add(-time.Duration(n+4) * step)
	lat := latencySeries(rng, labels.FromStrings("__name__", "rpc_duration_seconds", "job", "api"), start0, step, n, perStep)
	last := len(lat.times) - 1
	at := lat.times[last]

	w := remoteWriteV2(t, s.url, lat)
	if w.StatusCode != http.StatusNoContent || w.Header.Get("X-Prometheus-Remote-Write-Histograms-Written") != "20" {
		t.Fatalf("write: %s %v", w.Status, w.Header)
	}
	api := client(t, s.url, "")
	instant := func(q string) model.Vector {
		t.Helper()
		v, _, _, err := api.Query(context.Background(), q, at)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		vec, ok := v.(model.Vector)
		if !ok || len(vec) != 1 {
			t.Fatalf("%s: got %v", q, v)
		}
		return vec
	}
	scalar := func(q string) float64 {
		t.Helper()
		vec := instant(q)
		if vec[0].Histogram != nil {
			t.Fatalf("%s: a histogram, want a float", q)
		}
		return float64(vec[0].Value)
	}
	checkAll := func(t *testing.T) {
		// The stored histogram, bucket by bucket, is what was sent.
		got := instant(`rpc_duration_seconds`)[0].Histogram
		want := lat.hists[last].ToFloat(nil)
		if got == nil || float64(got.Count) != want.Count || float64(got.Sum) != want.Sum {
			t.Fatalf("histogram %v, want count %v sum %v", got, want.Count, want.Sum)
		}
		var wantBuckets []histogram.Bucket[float64]
		for it := want.AllBucketIterator(); it.Next(); {
			if b := it.At(); b.Count > 0 {
				wantBuckets = append(wantBuckets, b)
			}
		}
		if len(got.Buckets) != len(wantBuckets) {
			t.Fatalf("%d buckets, want %d", len(got.Buckets), len(wantBuckets))
		}
		for i, b := range got.Buckets {
			wb := wantBuckets[i]
			if float64(b.Lower) != wb.Lower || float64(b.Upper) != wb.Upper || float64(b.Count) != wb.Count {
				t.Fatalf("bucket %d: %v, want (%v, %v] %v", i, b, wb.Lower, wb.Upper, wb.Count)
			}
		}
		if c := scalar(`histogram_count(rpc_duration_seconds)`); c != float64(n*perStep) {
			t.Errorf("histogram_count = %v, want %d", c, n*perStep)
		}
		// The 0.9-quantile lies in the bucket of the exact one: schema 3
		// buckets are 2^(1/8) wide, so within 9.1% of it.
		exact := exactQuantile(0.9, lat.obs[last])
		if q := scalar(`histogram_quantile(0.9, rpc_duration_seconds)`); math.Abs(q-exact)/exact > math.Exp2(1.0/8)-1 {
			t.Errorf("histogram_quantile(0.9) = %v, exact %v", q, exact)
		}
		// rate over 1m holds the samples at −45 s … 0 s; Prometheus's
		// extrapolation makes the count rate (N(t) − N(t−45s)) / 45 s.
		wantRate := float64(len(lat.obs[last])-len(lat.obs[last-3])) / 45
		if r := scalar(`histogram_count(rate(rpc_duration_seconds[1m]))`); math.Abs(r-wantRate) > 1e-9*wantRate {
			t.Errorf("histogram_count(rate[1m]) = %v, want %v", r, wantRate)
		}
		// As a sketch, a window of a native histogram series is its last
		// sample minus its first: the 5m window holds the samples at
		// −285 s … 0 s, so the observations after the first step.
		if c := scalar(`count_sketch(rpc_duration_seconds[5m])`); c != float64((n-1)*perStep) {
			t.Errorf("count_sketch([5m]) = %v, want %d", c, (n-1)*perStep)
		}
		exact = exactQuantile(0.9, lat.obs[last][perStep:])
		if q := scalar(`quantile_sketch(0.9, rpc_duration_seconds[5m])`); math.Abs(q-exact)/exact > math.Exp2(1.0/8)-1 {
			t.Errorf("quantile_sketch(0.9, [5m]) = %v, exact %v", q, exact)
		}
	}
	t.Run("served", checkAll)
	metrics := func() string {
		t.Helper()
		resp, err := http.Get(s.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if m := metrics(); !strings.Contains(m, "\nevalstore_tsdb_histogram_samples_total 20\n") {
		t.Errorf("/metrics does not count 20 histogram samples:\n%s", m)
	}

	// A retried request changes nothing.
	if w := remoteWriteV2(t, s.url, lat); w.StatusCode != http.StatusNoContent {
		t.Fatalf("retry: %s", w.Status)
	}
	t.Run("after retry", checkAll)

	// Acknowledged means durable: SIGKILL, restart on the same directory.
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.done
	s = start(t, dir)
	api = client(t, s.url, "")
	t.Run("after kill -9", checkAll)
}
