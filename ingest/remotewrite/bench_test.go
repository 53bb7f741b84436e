package remotewrite

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"evalstore/sketch"
)

// benchSeries returns n realistic series (8 labels, 50 metric names, 10
// jobs, many instances) with k samples each, 15 s apart.
func benchSeries(n, k int) ([]labels.Labels, [][]prompb.Sample) {
	rng := rand.New(rand.NewPCG(42, 42))
	ls := make([]labels.Labels, n)
	ss := make([][]prompb.Sample, n)
	for i := range n {
		ls[i] = labels.FromStrings(
			"__name__", fmt.Sprintf("app_metric_%d_total", i%50),
			"cluster", "prod-eu-1",
			"code", []string{"200", "404", "500"}[i%3],
			"instance", fmt.Sprintf("10.0.%d.%d:9090", i/250, i%250),
			"job", fmt.Sprintf("service-%d", i%10),
			"method", []string{"GET", "POST"}[i%2],
			"namespace", "default",
			"pod", fmt.Sprintf("service-%d-7d9f8c6b5-%05d", i%10, i),
		)
		v := float64(rng.IntN(1000))
		for j := range k {
			v += float64(rng.IntN(10))
			ss[i] = append(ss[i], prompb.Sample{Timestamp: 1_700_000_000_000 + int64(j)*15_000, Value: v})
		}
	}
	return ls, ss
}

func benchBodies(b *testing.B, n, k int) (v1, v2 []byte) {
	ls, ss := benchSeries(n, k)
	req1 := &prompb.WriteRequest{}
	var s2 []v2Series
	for i := range ls {
		req1.Timeseries = append(req1.Timeseries, prompb.TimeSeries{Labels: prompb.FromLabels(ls[i], nil), Samples: ss[i]})
		var samples []writev2.Sample
		for _, s := range ss[i] {
			samples = append(samples, writev2.Sample{Value: s.Value, Timestamp: s.Timestamp})
		}
		s2 = append(s2, v2Series{lset: ls[i], samples: samples, help: "Requests served."})
	}
	return v1Body(b, req1), v2Body(b, v2Request(s2...))
}

// benchHistBody returns a 2.0 request of n latency histogram series with
// k cumulative native histogram samples each: schema 3 (client_golang's
// bucket factor 1.1), log-normal latencies around 50 ms, which fill 62 to
// 98 buckets (500 more observations per sample).
func benchHistBody(b *testing.B, n, k int) []byte {
	rng := rand.New(rand.NewPCG(9, 9))
	ls, _ := benchSeries(n, 0)
	var s2 []v2Series
	for i := range ls {
		var hs []writev2.Histogram
		lh, _ := sketch.NewLogHistogram(3)
		for j := range k {
			for range 500 {
				_ = lh.Add(0.05 * math.Exp(rng.NormFloat64()*1.2))
			}
			hs = append(hs, writev2.FromIntHistogram(0, 1_700_000_000_000+int64(j)*15_000, promHistogram(lh.Native())))
		}
		s2 = append(s2, v2Series{lset: ls[i], hists: hs})
	}
	return v2Body(b, v2Request(s2...))
}

var nopReceiver = NewReceiver(func(context.Context) Appender { return nopAppender{} }, Options{})

// handler is the minimal HTTP shape of the api layer, so the comparison
// with Prometheus's handler pays the same HTTP costs.
func handler(r *Receiver) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		w, err := r.Write(req.Context(), req.Header.Get("Content-Type"), req.Header.Get("Content-Encoding"), req.Body)
		w.SetHeaders(rw.Header())
		if err != nil {
			http.Error(rw, err.Error(), StatusCode(err))
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	})
}

func serve(b *testing.B, h http.Handler, ct string, body []byte) {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Content-Encoding", "snappy")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

type benchCase struct {
	name    string
	ct      string
	body    []byte
	samples int
}

func benchCases(b *testing.B) []benchCase {
	const n, k = 2000, 10
	v1, v2 := benchBodies(b, n, k)
	return []benchCase{
		{"v=1/kind=float", ContentTypeV1, v1, n * k},
		{"v=2/kind=float", ContentTypeV2, v2, n * k},
		{"v=2/kind=histogram", ContentTypeV2, benchHistBody(b, 200, 10), 200 * 10},
	}
}

// BenchmarkRemoteWrite measures decode + validate + apply (no-op storage)
// of realistic requests; Prometheus's own receiver runs on the same
// bodies in BenchmarkRemoteWritePrometheus.
func BenchmarkRemoteWrite(b *testing.B) {
	for _, c := range benchCases(b) {
		b.Run(c.name+"/impl=evalstore", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				if _, err := nopReceiver.Write(context.Background(), c.ct, "snappy", bytes.NewReader(c.body)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.samples)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		})
		b.Run(c.name+"/impl=evalstore-http", func(b *testing.B) {
			h := handler(nopReceiver)
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				serve(b, h, c.ct, c.body)
			}
			b.ReportMetric(float64(c.samples)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
