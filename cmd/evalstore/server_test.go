package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	promapi "github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"evalstore/sketch"
	"evalstore/tsdb"
)

// binary is the evalstore binary TestMain builds, with this version.
var binary string

const testVersion = "9.8.7-test"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "evalstore-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "evalstore")
	build := exec.Command("go", "build", "-o", binary, "-ldflags", "-X main.version="+testVersion+" -X main.revision=deadbeef", ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building evalstore:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// httpClient trusts the tests' self-signed certificates.
var httpClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// server is a running evalstore process.
type server struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs `evalstore serve` on a free port with dataDir, waits until
// /-/ready answers 200 and stops the process at the end of the test.
func start(t testing.TB, dataDir string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "-listen", "127.0.0.1:0", "-data-dir", dataDir}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), ListeningPrefix); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.stderr)
		}
	})
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("server exited before listening:\n%s", s.stderr)
		}
		s.url = a
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not print its address:\n%s", s.stderr)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := httpClient.Get(s.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready: %v\n%s", err, s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit error.
func (s *server) stop(t *testing.T) error {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop within 20s of SIGTERM")
	}
	return nil
}

// authTransport adds an Authorization header.
type authTransport struct{ header string }

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if a.header != "" {
		r.Header.Set("Authorization", a.header)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func client(t *testing.T, url, auth string) v1.API {
	t.Helper()
	c, err := promapi.NewClient(promapi.Config{Address: url, RoundTripper: authTransport{auth}})
	if err != nil {
		t.Fatal(err)
	}
	return v1.NewAPI(c)
}

type sample struct {
	lset labels.Labels
	t    time.Time
	v    float64
}

// remoteWrite posts samples as one remote-write 1.0 request.
func remoteWrite(t *testing.T, url, auth string, samples ...sample) *http.Response {
	t.Helper()
	var req prompb.WriteRequest
	for _, s := range samples {
		ts := prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: s.t.UnixMilli(), Value: s.v}}}
		s.lset.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
		req.Timeseries = append(req.Timeseries, ts)
	}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return postWrite(t, url, auth, "application/x-protobuf", raw)
}

// postWrite posts one snappy-compressed remote-write message body and
// returns the response, its body read and closed (logged unless 2xx).
func postWrite(t *testing.T, url, auth, contentType string, raw []byte) *http.Response {
	t.Helper()
	hr, err := http.NewRequest(http.MethodPost, url+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", contentType)
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if auth != "" {
		hr.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode/100 != 2 {
		t.Logf("remote-write answered %s: %s", resp.Status, body)
	}
	return resp
}

// sketchDelta is one encoded sketch state merged into a bucket.
type sketchDelta struct {
	lset  labels.Labels
	t     time.Time
	state []byte
}

// confusion encodes a binary confusion matrix with correct and wrong
// predictions.
func confusion(correct, wrong int) []byte {
	c := sketch.NewConfusion()
	c.AddN(1, 1, int64(correct))
	c.AddN(1, 0, int64(wrong))
	return c.AppendBinary(nil)
}

// seedDB writes float samples and sketch deltas straight into the data
// directory before the server starts.
func seedDB(t *testing.T, dir string, samples []sample, deltas ...sketchDelta) {
	t.Helper()
	db, err := tsdb.Open(dir, tsdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	app := db.Appender()
	for _, d := range deltas {
		if err := app.AddSketch(d.lset, d.t.UnixMilli(), d.state); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range samples {
		if err := app.AddFloat(s.lset, s.t.UnixMilli(), s.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPrometheusClient drives a real server with Prometheus's own Go client.
func TestPrometheusClient(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	// Two buckets of model b's predictions in slice eu: 9 of 10 right,
	// then 0 of 2. Pooled accuracy is 9/12 = 0.75 (an average of the two
	// accuracies would be 0.45).
	preds := labels.FromStrings("__name__", "evalstore_confusion", "model", "b", "slice", "eu", "source", "online", "version", "v1")
	seedDB(t, dir, []sample{
		{labels.FromStrings("__name__", "seeded", "job", "seed"), now.Add(-2 * time.Minute), 3},
		{labels.FromStrings("__name__", "seeded", "job", "seed"), now.Add(-time.Minute), 4},
	},
		sketchDelta{preds, now.Add(-30 * time.Minute), confusion(9, 1)},
		sketchDelta{preds, now.Add(-10 * time.Minute), confusion(0, 2)},
	)
	s := start(t, dir)
	var rw []sample
	for i := range 5 {
		ts := now.Add(time.Duration(i-4) * 15 * time.Second)
		rw = append(rw,
			sample{labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "a"), ts, float64(10 * i)},
			sample{labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "b"), ts, float64(20 * i)})
	}
	if resp := remoteWrite(t, s.url, "", rw...); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("remote-write: %s", resp.Status)
	}

	api := client(t, s.url, "")
	ctx := context.Background()

	t.Run("save and test", func(t *testing.T) {
		v, warn, _, err := api.Query(ctx, "1+1", time.Unix(4, 0))
		if err != nil || len(warn) > 0 {
			t.Fatal(err, warn)
		}
		sc, ok := v.(*model.Scalar)
		if !ok || sc.Value != 2 || sc.Timestamp != model.TimeFromUnix(4) {
			t.Fatalf("1+1 at 4 = %#v", v)
		}
	})
	t.Run("query", func(t *testing.T) {
		v, _, _, err := api.Query(ctx, `sum by (job) (http_requests_total)`, now)
		if err != nil {
			t.Fatal(err)
		}
		vec := v.(model.Vector)
		if len(vec) != 1 || vec[0].Value != 120 || vec[0].Metric["job"] != "api" || vec[0].Timestamp != model.TimeFromUnixNano(now.UnixNano()) {
			t.Fatalf("got %v", vec)
		}
		v, _, _, err = api.Query(ctx, `seeded`, now)
		if err != nil {
			t.Fatal(err)
		}
		if vec := v.(model.Vector); len(vec) != 1 || vec[0].Value != 4 {
			t.Fatalf("seeded: %v", vec)
		}
		// The Go client does not decode string results (the raw JSON
		// tests in package api cover them).
	})
	t.Run("sketch metric", func(t *testing.T) {
		// The brief's own query shape over the ingest schema's confusion
		// series (docs/ingest.md): buckets are merged, then finished.
		v, _, _, err := api.Query(ctx, `accuracy<model="b",slice="eu">[1h]`, now)
		if err != nil {
			t.Fatal(err)
		}
		vec, ok := v.(model.Vector)
		if !ok || len(vec) != 1 || vec[0].Value != 0.75 || vec[0].Metric["model"] != "b" {
			t.Fatalf("pooled accuracy: %v (%T)", v, v)
		}
	})
	t.Run("no match selects nothing", func(t *testing.T) {
		// A selector that matches nothing must return nothing (an empty
		// postings list once read as "every series").
		v, _, _, err := api.Query(ctx, `no_such_metric`, now)
		if err != nil {
			t.Fatal(err)
		}
		if vec := v.(model.Vector); len(vec) != 0 {
			t.Errorf("no_such_metric: %v", vec)
		}
		ss, _, _, err := api.Series(ctx, []string{`{job="no_such_job"}`}, now.Add(-time.Hour), now)
		if err != nil || len(ss) != 0 {
			t.Errorf("series: %v %v", ss, err)
		}
	})
	t.Run("query_range", func(t *testing.T) {
		v, _, _, err := api.QueryRange(ctx, `http_requests_total{instance="b"}`, v1.Range{Start: now.Add(-time.Minute), End: now, Step: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		m := v.(model.Matrix)
		if len(m) != 1 || len(m[0].Values) != 3 {
			t.Fatalf("got %v", m)
		}
		for i, want := range []float64{0, 40, 80} {
			if p := m[0].Values[i]; float64(p.Value) != want || !p.Timestamp.Time().Equal(now.Add(time.Duration(i-2)*30*time.Second)) {
				t.Errorf("point %d = %v, want %v", i, p, want)
			}
		}
	})
	t.Run("labels", func(t *testing.T) {
		names, _, _, err := api.LabelNames(ctx, nil, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint([]model.LabelName(names)) != "[__name__ instance job model slice source version]" {
			t.Fatalf("label names %v", names)
		}
		names, _, _, err = api.LabelNames(ctx, []string{"seeded"}, now.Add(-time.Hour), now)
		if err != nil || fmt.Sprint([]model.LabelName(names)) != "[__name__ job]" {
			t.Fatalf("label names for seeded: %v %v", names, err)
		}
	})
	t.Run("label values", func(t *testing.T) {
		vals, _, _, err := api.LabelValues(ctx, "job", nil, time.Time{}, time.Time{})
		if err != nil || fmt.Sprint(vals) != "[api seed]" {
			t.Fatalf("job values %v %v", vals, err)
		}
		vals, _, _, err = api.LabelValues(ctx, "__name__", []string{`{job="api"}`}, now.Add(-time.Hour), now)
		if err != nil || fmt.Sprint(vals) != "[http_requests_total]" {
			t.Fatalf("metric names %v %v", vals, err)
		}
	})
	t.Run("series", func(t *testing.T) {
		ss, _, _, err := api.Series(ctx, []string{"http_requests_total", "seeded", `evalstore_confusion<model="b">`}, now.Add(-time.Hour), now)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range ss {
			got = append(got, s.String())
		}
		want := []string{`{__name__="evalstore_confusion", model="b", slice="eu", source="online", version="v1"}`,
			`{__name__="http_requests_total", instance="a", job="api"}`, `{__name__="http_requests_total", instance="b", job="api"}`,
			`{__name__="seeded", job="seed"}`}
		if !slices.Equal(got, want) {
			t.Fatalf("series\n got %v\nwant %v", got, want)
		}
		ss, warn, _, err := api.Series(ctx, []string{"http_requests_total"}, time.Time{}, time.Time{}, v1.WithLimit(1))
		if err != nil || len(ss) != 1 || len(warn) != 1 {
			t.Fatalf("limit: %v %v %v", ss, warn, err)
		}
	})
	t.Run("buildinfo", func(t *testing.T) {
		bi, err := api.Buildinfo(ctx)
		if err != nil || bi.Version != testVersion || bi.Revision != "deadbeef" || !strings.HasPrefix(bi.GoVersion, "go") {
			t.Fatalf("%+v %v", bi, err)
		}
	})
	t.Run("rules and alerts", func(t *testing.T) {
		rules, err := api.Rules(ctx, nil)
		if err != nil || rules.Groups == nil || len(rules.Groups) != 0 {
			t.Fatalf("rules %+v %v", rules, err)
		}
		alerts, err := api.Alerts(ctx)
		if err != nil || alerts.Alerts == nil || len(alerts.Alerts) != 0 {
			t.Fatalf("alerts %+v %v", alerts, err)
		}
	})
	t.Run("metadata, exemplars, status", func(t *testing.T) {
		md, err := api.Metadata(ctx, "", "")
		if err != nil || len(md) != 0 {
			t.Fatalf("metadata %v %v", md, err)
		}
		ex, err := api.QueryExemplars(ctx, "http_requests_total", now.Add(-time.Hour), now)
		if err != nil || len(ex) != 0 {
			t.Fatalf("exemplars %v %v", ex, err)
		}
		if _, err := api.Config(ctx); err != nil {
			t.Fatal(err)
		}
		flags, err := api.Flags(ctx)
		if err != nil || flags["listen"] != "127.0.0.1:0" {
			t.Fatalf("flags %v %v", flags, err)
		}
		ri, err := api.Runtimeinfo(ctx)
		if err != nil || ri.GoroutineCount == 0 || ri.StorageRetention == "" {
			t.Fatalf("runtimeinfo %+v %v", ri, err)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			call func() error
			want v1.ErrorType
		}{
			{"parse", func() error { _, _, _, err := api.Query(ctx, "sum(", now); return err }, v1.ErrBadData},
			{"range end before start", func() error {
				_, _, _, err := api.QueryRange(ctx, "1", v1.Range{Start: now, End: now.Add(-time.Hour), Step: time.Minute})
				return err
			}, v1.ErrBadData},
			{"many-to-many", func() error {
				_, _, _, err := api.Query(ctx, "http_requests_total + on(job) http_requests_total", now)
				return err
			}, v1.ErrExec},
			// The client reports 5xx as server_error with the body as
			// Detail, for Prometheus too.
			{"timeout", func() error {
				_, _, _, err := api.Query(ctx, "http_requests_total", now, v1.WithTimeout(time.Nanosecond))
				var ae *v1.Error
				if errors.As(err, &ae) && ae.Type == v1.ErrServer && ae.Msg == "server error: 503" &&
					ae.Detail == `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}` {
					return &v1.Error{Type: v1.ErrTimeout, Msg: ae.Detail}
				}
				return err
			}, v1.ErrTimeout},
			{"series without match", func() error { _, _, _, err := api.Series(ctx, nil, now, now); return err }, v1.ErrBadData},
			{"bad label name", func() error {
				_, _, _, err := api.LabelValues(ctx, "\xff", nil, time.Time{}, time.Time{})
				return err
			}, v1.ErrBadData},
		} {
			err := tc.call()
			var ae *v1.Error
			if !errors.As(err, &ae) || ae.Type != tc.want || ae.Msg == "" {
				t.Errorf("%s: got %#v, want a %s *v1.Error", tc.name, err, tc.want)
			}
		}
	})
}

// TestRemoteWriteStatusCodes checks the receiver's codes through the server.
func TestRemoteWriteStatusCodes(t *testing.T) {
	s := start(t, t.TempDir())
	post := func(ct, ce string, body []byte) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, s.url+"/api/v1/write", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Content-Encoding", ce)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post("application/json", "snappy", nil); r.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("json body: %s", r.Status)
	}
	if r := post("application/x-protobuf", "snappy", []byte("not snappy")); r.StatusCode != http.StatusBadRequest {
		t.Errorf("garbage: %s", r.Status)
	}
	if r := post("application/x-protobuf", "snappy", make([]byte, 33<<20)); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("too large: %s", r.Status)
	}
	old := sample{labels.FromStrings("__name__", "x"), time.Now().Add(-500 * 24 * time.Hour), 1}
	if r := remoteWrite(t, s.url, "", old); r.StatusCode != http.StatusBadRequest {
		t.Errorf("out of retention: %s", r.Status)
	}
	v2 := post("application/x-protobuf;proto=io.prometheus.write.v2.Request", "snappy", snappy.Encode(nil, nil))
	if v2.StatusCode != http.StatusNoContent || v2.Header.Get("X-Prometheus-Remote-Write-Samples-Written") != "0" {
		t.Errorf("empty 2.0 request: %s %v", v2.Status, v2.Header)
	}
}

// TestAuthRealServer: with tokens set, reads and writes need their own
// token, over the real process and Prometheus's client.
func TestAuthRealServer(t *testing.T) {
	s := start(t, t.TempDir(), "-read-token", "rtok", "-write-user", "model-server", "-write-password", "wpw")
	ctx := context.Background()
	smp := sample{labels.FromStrings("__name__", "m"), time.Now(), 1}

	if _, _, _, err := client(t, s.url, "").Query(ctx, "1", time.Now()); err == nil {
		t.Error("query without a token succeeded")
	}
	if _, _, _, err := client(t, s.url, "Bearer rtok").Query(ctx, "1", time.Now()); err != nil {
		t.Errorf("query with the read token: %v", err)
	}
	writeAuth := "Basic " + b64("model-server:wpw")
	for _, auth := range []string{"", "Bearer rtok", "Basic " + b64("model-server:nope")} {
		if r := remoteWrite(t, s.url, auth, smp); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("write with %q: %s", auth, r.Status)
		}
	}
	if r := remoteWrite(t, s.url, writeAuth, smp); r.StatusCode != http.StatusNoContent {
		t.Errorf("write with the write credentials: %s", r.Status)
	}
	if _, _, _, err := client(t, s.url, writeAuth).Query(ctx, "1", time.Now()); err == nil {
		t.Error("the write credentials must not read")
	}
	flags, err := client(t, s.url, "Bearer rtok").Flags(ctx)
	if err != nil || flags["read-token"] != "<secret>" || flags["write-password"] != "<secret>" {
		t.Errorf("flags must redact secrets: %v %v", flags, err)
	}
	for _, p := range []string{"/-/healthy", "/-/ready"} {
		resp, err := http.Get(s.url + p)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s without auth: %v %v", p, resp, err)
		}
		resp.Body.Close()
	}
}

// TestGracefulShutdown: SIGTERM exits 0 after closing storage, and every
// acknowledged write is there after a restart.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	now := time.Now().Truncate(time.Millisecond)
	var smp []sample
	for i := range 100 {
		smp = append(smp, sample{labels.FromStrings("__name__", "durable", "i", fmt.Sprint(i)), now, float64(i)})
	}
	if r := remoteWrite(t, s.url, "", smp...); r.StatusCode != http.StatusNoContent {
		t.Fatalf("write: %s", r.Status)
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.stderr)
	}
	for _, want := range []string{"shutting down", "storage closed; WAL flushed", "stopped cleanly"} {
		if !strings.Contains(s.stderr.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}

	s2 := start(t, dir)
	v, _, _, err := client(t, s2.url, "").Query(context.Background(), "count(durable) + sum(durable)", now)
	if err != nil {
		t.Fatal(err)
	}
	if vec := v.(model.Vector); len(vec) != 1 || vec[0].Value != 100+4950 {
		t.Fatalf("after restart: %v", vec)
	}
}

// TestMetricsAndHealth: /metrics has the key series, health endpoints
// answer.
func TestMetricsAndHealth(t *testing.T) {
	s := start(t, t.TempDir())
	if r := remoteWrite(t, s.url, "", sample{labels.FromStrings("__name__", "m"), time.Now(), 1}); r.StatusCode != http.StatusNoContent {
		t.Fatal(r.Status)
	}
	if _, _, _, err := client(t, s.url, "").Query(context.Background(), "m", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`evalstore_remote_write_samples_total{kind="float"} 1`,
		`evalstore_remote_write_requests_total{code="204",version="1.0"} 1`,
		`evalstore_query_duration_seconds_bucket{type="instant",le=`,
		"evalstore_tsdb_head_series 1",
		"evalstore_tsdb_commits_total 1",
		"evalstore_tsdb_wal_bytes_total",
		"evalstore_tsdb_block_bytes 0",
		"evalstore_tsdb_flushes_total 0",
		"evalstore_ready 1",
		"process_resident_memory_bytes",
		"go_goroutines",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for p, want := range map[string]string{"/-/healthy": "evalstore is Healthy.\n", "/-/ready": "evalstore is Ready.\n"} {
		resp, err := http.Get(s.url + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want {
			t.Errorf("%s: %d %q", p, resp.StatusCode, b)
		}
	}
}

// TestSIGHUPReloadsDefinitions: the definitions file is re-read on SIGHUP.
func TestSIGHUPReloadsDefinitions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "defs.yaml")
	write := func(model string) {
		if err := os.WriteFile(path, []byte("schema: 1\nmodels:\n  "+model+":\n    task: binary\n    classes: [0, 1]\n    positive_class: 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("first")
	s := start(t, filepath.Join(dir, "data"), "-definitions", path)
	get := func() string {
		resp, err := http.Get(s.url + "/api/v1/definitions")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if !strings.Contains(get(), `"first"`) {
		t.Fatalf("initial definitions: %s", get())
	}
	write("second")
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(get(), `"second"`) {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload: %s", get())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func b64(s string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	u, p, _ := strings.Cut(s, ":")
	r.SetBasicAuth(u, p)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// TestTLS serves HTTPS from -tls-cert/-tls-key, with auth on top.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}

	s := start(t, filepath.Join(dir, "data"), "-tls-cert", certFile, "-tls-key", keyFile, "-read-token", "r")
	if !strings.HasPrefix(s.url, "https://") {
		t.Fatalf("address %q is not https", s.url)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/api/v1/query?query=1%2B1&time=4", nil)
	req.Header.Set("Authorization", "Bearer r")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}` {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// TestQueryCommand runs `evalstore query` against a real server.
func TestQueryCommand(t *testing.T) {
	s := start(t, t.TempDir(), "-read-token", "rt")
	now := time.Now().Truncate(time.Second)
	if r := remoteWrite(t, s.url, "", // write is open: only reads need a token here
		sample{labels.FromStrings("__name__", "latency_seconds", "model", "a", "slice", "eu"), now.Add(-30 * time.Second), 0.25},
		sample{labels.FromStrings("__name__", "latency_seconds", "model", "b"), now.Add(-30 * time.Second), 0.5},
	); r.StatusCode != http.StatusNoContent {
		t.Fatal(r.Status)
	}
	runQuery := func(args ...string) (string, string, error) {
		cmd := exec.Command(binary, append([]string{"query", "-server", s.url}, args...)...)
		cmd.Env = append(os.Environ(), "EVALSTORE_READ_TOKEN=rt")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	ts := fmt.Sprint(now.Unix())
	out, errOut, err := runQuery("-time", ts, "latency_seconds")
	want := "METRIC           MODEL  SLICE  VALUE\n" +
		"latency_seconds  a      eu     0.25\n" +
		"latency_seconds  b      -      0.5\n"
	if err != nil || out != want {
		t.Errorf("instant:\n%s\nwant\n%s\n(%v, %s)", out, want, err, errOut)
	}
	out, _, err = runQuery("-time", ts, "1+1")
	if err != nil || out != "VALUE\n2\n" {
		t.Errorf("scalar: %q %v", out, err)
	}
	out, _, err = runQuery("-start", "1m", "-end", ts, "-step", "30s", `sum(latency_seconds)`)
	at := func(d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339) }
	want = "TIME                  VALUE\n" + at(-30*time.Second) + "  0.75\n" + at(0) + "  0.75\n"
	if err != nil || out != want {
		t.Errorf("range:\n%s\nwant\n%s(%v)", out, want, err)
	}
	out, _, err = runQuery("-o", "json", "-time", ts, "1+1")
	if err != nil || !strings.Contains(out, `"resultType": "scalar"`) {
		t.Errorf("json: %s %v", out, err)
	}
	_, errOut, err = runQuery("sum(")
	if err == nil || !strings.Contains(errOut, "bad_data") && !strings.Contains(errOut, "parse") {
		t.Errorf("bad query: %v %s", err, errOut)
	}
}
