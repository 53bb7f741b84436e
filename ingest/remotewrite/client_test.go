package remotewrite

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// TestPrometheusClient drives the receiver with Prometheus's own
// remote-write client (client_golang/exp/api/remote: marshalling, snappy,
// content negotiation, 2.0 header checks, retry on 5xx). The first
// response of each request is lost after the commit (the server answers
// 500 although the data is durable); the client's retry must then succeed
// without writing anything twice.
func TestPrometheusClient(t *testing.T) {
	s := newFakeStore()
	r := NewReceiver(s.appender, Options{InvalidAppend: isDataErr})
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		n := calls.Add(1)
		w, err := r.Write(req.Context(), req.Header.Get("Content-Type"), req.Header.Get("Content-Encoding"), req.Body)
		if n%2 == 1 && err == nil {
			http.Error(rw, "response lost", http.StatusInternalServerError)
			return
		}
		w.SetHeaders(rw.Header())
		if err != nil {
			http.Error(rw, err.Error(), StatusCode(err))
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	api, err := remoteapi.NewAPI(srv.URL, remoteapi.WithAPIPath("/api/v1/write"), remoteapi.WithAPIHTTPClient(srv.Client()),
		remoteapi.WithAPIBackoff(remoteapi.BackoffConfig{Min: time.Millisecond, Max: time.Millisecond, MaxRetries: 3}))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(21, 22))
	f := labels.FromStrings("__name__", "requests_total", "job", "a")
	h := labels.FromStrings("__name__", "latency_seconds", "job", "a")
	h1, h2 := randomNative(rng, 4, 300), randomNative(rng, 4, 400)

	req2 := v2Request(
		v2Series{lset: f, samples: []writev2.Sample{{Value: 1, Timestamp: 1000}, {Value: 4, Timestamp: 2000}}},
		v2Series{lset: h, hists: []writev2.Histogram{writev2.FromIntHistogram(0, 1000, h1), writev2.FromIntHistogram(0, 2000, h2)}},
	)
	stats, err := api.Write(context.Background(), remoteapi.WriteV2MessageType, req2)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Samples != 2 || stats.Histograms != 2 || stats.Exemplars != 0 {
		t.Fatalf("client saw %+v", stats)
	}
	f1 := labels.FromStrings("__name__", "up", "job", "a")
	req1 := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{v1Series(f1, prompb.Sample{Timestamp: 1000, Value: 1}, prompb.Sample{Timestamp: 2000, Value: 1})}}
	if _, err := api.Write(context.Background(), remoteapi.WriteV1MessageType, req1); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 4 {
		t.Fatalf("%d calls, want 2 requests each retried once", calls.Load())
	}
	if got := s.floats[f.String()]; !reflect.DeepEqual(got, []fakeFloat{{1000, 1}, {2000, 4}}) {
		t.Fatalf("floats %v", got)
	}
	if got := s.floats[f1.String()]; len(got) != 2 {
		t.Fatalf("v1 floats %v", got)
	}
	if got := s.hists[h.String()]; len(got) != 2 {
		t.Fatalf("histograms %v", got)
	}
	if s.commits != 4 {
		t.Fatalf("commits %d", s.commits)
	}

	// A 400 is final: the client does not retry it.
	calls.Store(1)
	bad := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "z", Value: "1"}, {Name: "a", Value: "2"}}, Samples: []prompb.Sample{{Timestamp: 1}}}}}
	if _, err := api.Write(context.Background(), remoteapi.WriteV1MessageType, bad); err == nil || calls.Load() != 2 {
		t.Fatalf("bad request: err %v after %d calls", err, calls.Load()-1)
	}
}
