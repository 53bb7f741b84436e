package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/definitions"
	"evalstore/query"
	"evalstore/tsdb"
	"evalstore/tsdb/series"
)

// testStore holds two float series of up and one of requests_total, with a
// sample every 5 s from t=0 to t=20 (ms timestamps).
func testStore(t testing.TB) *query.MemStorage {
	t.Helper()
	st := query.NewMemStorage()
	add := func(l labels.Labels, f func(i int) float64) {
		var pts []query.FPoint
		for i := 0; i <= 4; i++ {
			pts = append(pts, query.FPoint{T: int64(i) * 5000, F: f(i)})
		}
		if err := st.AddFloat(l, pts...); err != nil {
			t.Fatal(err)
		}
	}
	add(labels.FromStrings("__name__", "up", "job", "api", "instance", "a:1"), func(int) float64 { return 1 })
	add(labels.FromStrings("__name__", "up", "job", "db", "instance", "b:2"), func(int) float64 { return 0 })
	add(labels.FromStrings("__name__", "requests_total", "job", "api"), func(i int) float64 { return float64(i) * 10 })
	return st
}

// fakeIngester answers by the body: "bad" → a 400 with the bad records,
// "media" → 415, otherwise the byte count.
type fakeIngester struct{}

type batchErr struct {
	Errors []map[string]any `json:"errors"`
}

func (e *batchErr) Error() string   { return "batch refused" }
func (e *batchErr) StatusCode() int { return http.StatusBadRequest }

type mediaErr struct{}

func (mediaErr) Error() string   { return "unsupported content type" }
func (mediaErr) StatusCode() int { return http.StatusUnsupportedMediaType }

func (fakeIngester) do(body io.Reader) (any, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	switch string(b) {
	case "bad":
		return nil, &batchErr{Errors: []map[string]any{{"index": 2, "field": "score", "reason": "must be in [0, 1]"}}}
	case "media":
		return nil, mediaErr{}
	}
	return map[string]int{"bytes": len(b)}, nil
}

func (f fakeIngester) Predictions(_ context.Context, _, _ string, body io.Reader) (any, error) {
	return f.do(body)
}

func (f fakeIngester) Feedback(_ context.Context, _, _ string, body io.Reader) (any, error) {
	return f.do(body)
}

func (f fakeIngester) Evaluations(_ context.Context, _, _ string, body io.Reader) (any, error) {
	return f.do(body)
}

func newTestAPI(t testing.TB, opts Options, q query.Queryable) *API {
	t.Helper()
	if opts.Engine == nil {
		opts.Engine = query.New(query.Options{})
	}
	opts.Now = func() time.Time { return time.Unix(20, 0) }
	opts.BuildInfo = BuildInfo{Version: "1.2.3", Revision: "abc", Branch: "main", BuildUser: "u@h", BuildDate: "20260101", GoVersion: "go1.26"}
	a := New(opts)
	if q != nil {
		a.SetBackend(&Backend{Queryable: q, Ingest: fakeIngester{}})
	}
	return a
}

func do(t testing.TB, h http.Handler, method, target string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, body)
	if method == http.MethodPost && body != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestPrometheusJSON compares whole bodies with what Prometheus writes for
// the same request (literal bodies, field order included).
func TestPrometheusJSON(t *testing.T) {
	a := newTestAPI(t, Options{}, testStore(t))
	tests := []struct {
		name, target string
		code         int
		body         string
	}{
		{"scalar save and test", "/api/v1/query?query=1%2B1&time=4", 200,
			`{"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}`},
		{"scalar fractional time", "/api/v1/query?query=0.5&time=1.5", 200,
			`{"status":"success","data":{"resultType":"scalar","result":[1.5,"0.5"]}}`},
		{"string", "/api/v1/query?query=%22hello%22&time=4", 200,
			`{"status":"success","data":{"resultType":"string","result":[4,"hello"]}}`},
		{"vector", "/api/v1/query?query=up&time=10", 200,
			`{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"__name__":"up","instance":"a:1","job":"api"},"value":[10,"1"]},` +
				`{"metric":{"__name__":"up","instance":"b:2","job":"db"},"value":[10,"0"]}]}}`},
		{"vector RFC 3339 time", "/api/v1/query?query=sum(up)&time=1970-01-01T00:00:10Z", 200,
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[10,"1"]}]}}`},
		{"empty vector", "/api/v1/query?query=nope&time=10", 200,
			`{"status":"success","data":{"resultType":"vector","result":[]}}`},
		{"matrix", "/api/v1/query_range?query=requests_total&start=0&end=10&step=5", 200,
			`{"status":"success","data":{"resultType":"matrix","result":[` +
				`{"metric":{"__name__":"requests_total","job":"api"},"values":[[0,"0"],[5,"10"],[10,"20"]]}]}}`},
		{"matrix duration step", "/api/v1/query_range?query=rate(requests_total%5B10s%5D)&start=10&end=20&step=10s", 200,
			`{"status":"success","data":{"resultType":"matrix","result":[` +
				`{"metric":{"job":"api"},"values":[[10,"2"],[20,"2"]]}]}}`},
		{"instant range selector", "/api/v1/query?query=requests_total%5B10s%5D&time=10", 200,
			`{"status":"success","data":{"resultType":"matrix","result":[` +
				`{"metric":{"__name__":"requests_total","job":"api"},"values":[[5,"10"],[10,"20"]]}]}}`},
		{"limit truncates with a warning", "/api/v1/query?query=up&time=10&limit=1", 200,
			`{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"__name__":"up","instance":"a:1","job":"api"},"value":[10,"1"]}]},"warnings":["results truncated due to limit"]}`},
		{"NaN and Inf", "/api/v1/query?query=vector(0%2F0)%20or%20vector(1%2F0)&time=4", 200,
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[4,"NaN"]}]}}`},

		{"bad_data parse error", "/api/v1/query?query=sum(&time=4", 400, ""},
		{"bad_data time", "/api/v1/query?query=1&time=yesterday", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"time\": invalid time value for 'time': cannot parse \"yesterday\" to a valid timestamp"}`},
		{"bad_data start", "/api/v1/query_range?query=1&start=x&end=1&step=1", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": cannot parse \"x\" to a valid timestamp"}`},
		{"bad_data end before start", "/api/v1/query_range?query=1&start=10&end=1&step=1", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"end\": end timestamp must not be before start time"}`},
		{"bad_data step", "/api/v1/query_range?query=1&start=0&end=1&step=0", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"}`},
		{"bad_data step unparsable", "/api/v1/query_range?query=1&start=0&end=1&step=often", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": cannot parse \"often\" to a valid duration"}`},
		{"bad_data too many points", "/api/v1/query_range?query=1&start=0&end=100000&step=1", 400,
			`{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}`},
		{"bad_data timeout", "/api/v1/query?query=1&timeout=soon", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"timeout\": cannot parse \"soon\" to a valid duration"}`},
		{"bad_data zero timeout", "/api/v1/query?query=1&timeout=0", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"timeout\": timeout must be positive, got 0s"}`},
		{"bad_data limit", "/api/v1/query?query=1&limit=-1", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"limit\": limit must be non-negative"}`},
		{"execution error", "/api/v1/query?query=up%20%2B%20on()%20up&time=10", 422, ""},
		{"timeout", "/api/v1/query?query=up&time=10&timeout=0.000000001", 503,
			`{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`},
		{"not_found", "/api/v1/definitions", 404,
			`{"status":"error","errorType":"not_found","error":"no definitions store configured"}`},
		{"series needs match", "/api/v1/series", 400,
			`{"status":"error","errorType":"bad_data","error":"no match[] parameter provided"}`},
		{"series empty matcher", "/api/v1/series?match[]=%7Bjob%3D%22%22%7D", 400, ""},
		{"invalid label name", "/api/v1/label/%ff/values", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid label name: \"\\xff\""}`},

		{"labels", "/api/v1/labels", 200, `{"status":"success","data":["__name__","instance","job"]}`},
		{"labels match", "/api/v1/labels?match[]=requests_total", 200, `{"status":"success","data":["__name__","job"]}`},
		{"labels limit", "/api/v1/labels?limit=2", 200,
			`{"status":"success","data":["__name__","instance"],"warnings":["results truncated due to limit"]}`},
		{"label values", "/api/v1/label/job/values", 200, `{"status":"success","data":["api","db"]}`},
		{"metric names", "/api/v1/label/__name__/values?match[]=%7Bjob%3D%22api%22%7D", 200,
			`{"status":"success","data":["requests_total","up"]}`},
		{"label values unknown", "/api/v1/label/nope/values", 200, `{"status":"success","data":[]}`},
		{"series", "/api/v1/series?match[]=up&match[]=up%7Bjob%3D%22db%22%7D&start=0&end=20", 200,
			`{"status":"success","data":[{"__name__":"up","instance":"a:1","job":"api"},{"__name__":"up","instance":"b:2","job":"db"}]}`},
		{"series limit", "/api/v1/series?match[]=up&limit=1", 200,
			`{"status":"success","data":[{"__name__":"up","instance":"a:1","job":"api"}],"warnings":["results truncated due to limit"]}`},
		{"metadata", "/api/v1/metadata", 200, `{"status":"success","data":{}}`},
		{"rules", "/api/v1/rules", 200, `{"status":"success","data":{"groups":[]}}`},
		{"alerts", "/api/v1/alerts", 200, `{"status":"success","data":{"alerts":[]}}`},
		{"buildinfo", "/api/v1/status/buildinfo", 200,
			`{"status":"success","data":{"version":"1.2.3","revision":"abc","branch":"main","buildUser":"u@h","buildDate":"20260101","goVersion":"go1.26"}}`},
		{"exemplars seconds", "/api/v1/query_exemplars?query=up&start=0&end=20", 200, `{"status":"success","data":[]}`},
		{"exemplars milliseconds", "/api/v1/query_exemplars?query=up&start=1764000000000&end=1764000600000", 200, `{"status":"success","data":[]}`},
		{"exemplars bad query", "/api/v1/query_exemplars?query=up%7B", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, a.Handler(), http.MethodGet, tc.target, nil)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.code, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			got := w.Body.String()
			if tc.body != "" {
				if got != tc.body {
					t.Errorf("body\n got %s\nwant %s", got, tc.body)
				}
				return
			}
			// Error texts the parser owns: check the shape.
			var resp map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			want := map[int]string{400: "bad_data", 422: "execution"}[tc.code]
			if resp["status"] != "error" || resp["errorType"] != want || resp["error"] == "" || len(resp) != 3 {
				t.Errorf("body %s: want status error, errorType %s", got, want)
			}
		})
	}
}

func TestPostForm(t *testing.T) {
	a := newTestAPI(t, Options{}, testStore(t))
	for _, tc := range []struct{ path, form, want string }{
		{"/api/v1/query", "query=1%2B1&time=4", `{"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}`},
		{"/api/v1/query_range", "query=2&start=0&end=2&step=1", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[0,"2"],[1,"2"],[2,"2"]]}]}}`},
		{"/api/v1/labels", "match[]=requests_total", `{"status":"success","data":["__name__","job"]}`},
		{"/api/v1/series", "match[]=requests_total", `{"status":"success","data":[{"__name__":"requests_total","job":"api"}]}`},
	} {
		w := do(t, a.Handler(), http.MethodPost, tc.path, strings.NewReader(tc.form))
		if w.Code != 200 || w.Body.String() != tc.want {
			t.Errorf("POST %s: %d %s, want %s", tc.path, w.Code, w.Body, tc.want)
		}
	}
}

func TestCanceledQuery(t *testing.T) {
	a := newTestAPI(t, Options{}, testStore(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up&time=10", nil).WithContext(ctx)
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, r)
	if w.Code != statusClientClosedConnection {
		t.Fatalf("status %d, want 499; body %s", w.Code, w.Body)
	}
	var resp response
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.ErrorType != "canceled" || resp.Status != "error" {
		t.Fatalf("body %s (%v)", w.Body, err)
	}
}

// failingQueryable fails to open a querier: the storage's fault (internal).
type failingQueryable struct{}

func (failingQueryable) Querier(int64, int64) (series.Querier, error) {
	return nil, errors.New("disk on fire")
}

func TestInternalError(t *testing.T) {
	a := newTestAPI(t, Options{}, failingQueryable{})
	w := do(t, a.Handler(), http.MethodGet, "/api/v1/labels", nil)
	want := `{"status":"error","errorType":"internal","error":"disk on fire"}`
	if w.Code != 500 || w.Body.String() != want {
		t.Fatalf("%d %s, want 500 %s", w.Code, w.Body, want)
	}
}

func TestLimitIsExecutionError(t *testing.T) {
	a := newTestAPI(t, Options{Engine: query.New(query.Options{MaxSeries: 1})}, testStore(t))
	w := do(t, a.Handler(), http.MethodGet, "/api/v1/query?query=up&time=10", nil)
	var resp response
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if w.Code != 422 || resp.ErrorType != "execution" || !strings.Contains(resp.Error, "limit") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestNotReady(t *testing.T) {
	a := newTestAPI(t, Options{}, nil)
	for _, p := range []string{"/-/ready", "/api/v1/query?query=1", "/api/v1/labels"} {
		w := do(t, a.Handler(), http.MethodGet, p, nil)
		if w.Code != 503 || w.Body.String() != "Service Unavailable" {
			t.Errorf("%s: %d %q, want 503", p, w.Code, w.Body)
		}
	}
	if w := do(t, a.Handler(), http.MethodGet, "/-/healthy", nil); w.Code != 200 {
		t.Errorf("healthy: %d", w.Code)
	}
	a.SetBackend(&Backend{Queryable: testStore(t)})
	if w := do(t, a.Handler(), http.MethodGet, "/-/ready", nil); w.Code != 200 {
		t.Errorf("ready after SetBackend: %d", w.Code)
	}
}

func TestIngestEndpoints(t *testing.T) {
	a := newTestAPI(t, Options{MaxBodyBytes: 16, MaxEvaluationBodyBytes: 32}, testStore(t))
	h := a.Handler()
	for _, ep := range []string{"predictions", "feedback", "evaluations"} {
		p := "/api/v1/" + ep
		post := func(body string) *httptest.ResponseRecorder {
			r := httptest.NewRequest(http.MethodPost, p, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-ndjson")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w
		}
		if w := post("{}"); w.Code != 200 || w.Body.String() != `{"status":"success","data":{"bytes":2}}` {
			t.Errorf("%s ok: %d %s", ep, w.Code, w.Body)
		}
		want := `{"status":"error","data":{"errors":[{"field":"score","index":2,"reason":"must be in [0, 1]"}]},"errorType":"bad_data","error":"batch refused"}`
		if w := post("bad"); w.Code != 400 || w.Body.String() != want {
			t.Errorf("%s bad: %d %s", ep, w.Code, w.Body)
		}
		if w := post("media"); w.Code != 415 {
			t.Errorf("%s media: %d %s", ep, w.Code, w.Body)
		}
		if w := post(strings.Repeat("x", 40)); w.Code != 413 {
			t.Errorf("%s too large: %d %s", ep, w.Code, w.Body)
		}
		// Without Content-Length the limit trips while reading.
		r := httptest.NewRequest(http.MethodPost, p, io.MultiReader(strings.NewReader(strings.Repeat("y", 40))))
		r.ContentLength = -1
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 413 {
			t.Errorf("%s streamed too large: %d %s", ep, w.Code, w.Body)
		}
		if w := do(t, h, http.MethodGet, p, nil); w.Code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: %d", ep, w.Code)
		}
	}
	// Not wired: 501 with a JSON error.
	b := New(Options{Engine: query.New(query.Options{})})
	b.SetBackend(&Backend{Queryable: testStore(t)})
	if w := do(t, b.Handler(), http.MethodPost, "/api/v1/predictions", strings.NewReader("{}")); w.Code != 501 {
		t.Errorf("unwired: %d %s", w.Code, w.Body)
	}
	if w := do(t, b.Handler(), http.MethodPost, "/api/v1/write", strings.NewReader("")); w.Code != 501 {
		t.Errorf("unwired write: %d %s", w.Code, w.Body)
	}
}

// endpoints is every route with the role it needs.
var endpoints = []struct {
	method, path string
	role         Role
}{
	{"GET", "/api/v1/query?query=1", RoleRead},
	{"POST", "/api/v1/query", RoleRead},
	{"GET", "/api/v1/query_range?query=1&start=0&end=1&step=1", RoleRead},
	{"POST", "/api/v1/query_range", RoleRead},
	{"GET", "/api/v1/query_exemplars?query=up", RoleRead},
	{"POST", "/api/v1/query_exemplars", RoleRead},
	{"GET", "/api/v1/format_query?query=up", RoleRead},
	{"GET", "/api/v1/labels", RoleRead},
	{"POST", "/api/v1/labels", RoleRead},
	{"GET", "/api/v1/label/job/values", RoleRead},
	{"GET", "/api/v1/series?match[]=up", RoleRead},
	{"POST", "/api/v1/series", RoleRead},
	{"GET", "/api/v1/metadata", RoleRead},
	{"GET", "/api/v1/rules", RoleRead},
	{"GET", "/api/v1/alerts", RoleRead},
	{"GET", "/api/v1/status/buildinfo", RoleRead},
	{"GET", "/api/v1/status/config", RoleRead},
	{"GET", "/api/v1/status/flags", RoleRead},
	{"GET", "/api/v1/status/runtimeinfo", RoleRead},
	{"GET", "/api/v1/definitions", RoleRead},
	{"GET", "/api/v1/models", RoleRead},
	{"GET", "/api/v1/slices", RoleRead},
	{"GET", "/metrics", RoleRead},
	{"GET", "/debug/pprof/", RoleRead},
	{"POST", "/api/v1/definitions/reload", RoleWrite},
	{"POST", "/api/v1/write", RoleWrite},
	{"POST", "/api/v1/predictions", RoleWrite},
	{"POST", "/api/v1/feedback", RoleWrite},
	{"POST", "/api/v1/evaluations", RoleWrite},
}

// TestAuth: with auth on, every endpoint refuses no credentials, wrong
// credentials and the other role's credentials, and accepts its own.
func TestAuth(t *testing.T) {
	defs, err := definitions.NewStore(definitions.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAPI(t, Options{Pprof: true, Definitions: defs, Auth: Auth{
		Read:  Credentials{BearerToken: "read-secret", Username: "grafana", Password: "gpw"},
		Write: Credentials{BearerToken: "write-secret"},
	}}, testStore(t))
	h := a.Handler()
	readOK := [][]string{{"Authorization", "Bearer read-secret"}, {"Authorization", basic("grafana", "gpw")}}
	writeOK := [][]string{{"Authorization", "Bearer write-secret"}}
	bad := [][]string{nil, {"Authorization", "Bearer nope"}, {"Authorization", basic("grafana", "wrong")}, {"Authorization", "Bearer "}}
	for _, ep := range endpoints {
		ok, other := readOK, writeOK
		if ep.role == RoleWrite {
			ok, other = writeOK, readOK
		}
		for _, hdr := range append(append([][]string{}, bad...), other...) {
			w := do(t, h, ep.method, ep.path, strings.NewReader(""), hdr...)
			if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with %v: %d, want 401 with a challenge", ep.method, ep.path, hdr, w.Code)
			}
		}
		for _, hdr := range ok {
			w := do(t, h, ep.method, ep.path, strings.NewReader(""), hdr...)
			if w.Code == http.StatusUnauthorized || w.Code == http.StatusNotFound || w.Code == http.StatusMethodNotAllowed {
				t.Errorf("%s %s with %v: %d %s", ep.method, ep.path, hdr, w.Code, w.Body)
			}
		}
	}
	for _, p := range []string{"/-/healthy", "/-/ready"} {
		if w := do(t, h, http.MethodGet, p, nil); w.Code != 200 {
			t.Errorf("%s must not need auth: %d", p, w.Code)
		}
	}
}

func basic(u, p string) string {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(u, p)
	return r.Header.Get("Authorization")
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"4", time.Unix(4, 0)},
		{"1.5", time.Unix(1, 5e8)},
		{"1435781451.7811", time.Unix(1435781451, 781e6)},
		{"2015-07-01T20:10:51.781Z", time.Unix(1435781451, 781e6)},
		{"2015-07-01T22:10:51+02:00", time.Unix(1435781451, 0)},
		{minTimeFormatted, minTime},
		{maxTimeFormatted, maxTime},
	} {
		got, err := parseTime(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"15", 15 * time.Second}, {"0.5", 500 * time.Millisecond}, {"1m30s", 90 * time.Second}, {"1d", 24 * time.Hour}} {
		got, err := parseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v", tc.in, got, err)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/?start="+url.QueryEscape("1764000000123"), nil)
	got, err := parseTimeMillisOK(r, "start", minTime)
	if err != nil || got.UnixMilli() != 1764000000123 {
		t.Errorf("ms time: %v %v", got, err)
	}
}

func TestDefinitionsEndpoints(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/defs.yaml"
	good := "schema: 1\nmodels:\n  churn:\n    task: binary\n    classes: [0, 1]\n    positive_class: 1\nslices:\n  eu:\n    where: country in (\"de\", \"fr\")\n"
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	defs, err := definitions.NewStore(definitions.StoreConfig{Path: path, Dir: dir + "/hist"})
	if err != nil {
		t.Fatal(err)
	}
	st := testStore(t)
	if err := st.AddFloat(labels.FromStrings("__name__", "x", "model", "fraud", "version", "v3", "slice", "all"), query.FPoint{T: 0, F: 1}); err != nil {
		t.Fatal(err)
	}
	a := newTestAPI(t, Options{Definitions: defs}, st)
	h := a.Handler()

	w := do(t, h, http.MethodPost, "/api/v1/definitions/reload", nil)
	var resp struct {
		Status string
		Data   struct {
			Version definitions.Version
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 200 || resp.Data.Version.Hash == "" {
		t.Fatalf("reload: %d %s", w.Code, w.Body)
	}
	w = do(t, h, http.MethodGet, "/api/v1/definitions", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"churn"`) || !strings.Contains(w.Body.String(), resp.Data.Version.Hash) {
		t.Fatalf("definitions: %d %s", w.Code, w.Body)
	}
	w = do(t, h, http.MethodGet, "/api/v1/models", nil)
	want := `{"status":"success","data":[{"name":"churn","declared":true,"task":"binary","versions":[]},{"name":"fraud","declared":false,"versions":["v3"]}]}`
	if w.Body.String() != want {
		t.Errorf("models:\n got %s\nwant %s", w.Body, want)
	}
	w = do(t, h, http.MethodGet, "/api/v1/slices", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `{"name":"all","declared":`) || !strings.Contains(w.Body.String(), `"name":"eu","declared":true`) {
		t.Errorf("slices: %s", w.Body)
	}

	// An invalid file is refused with its problems; the old version stays.
	if err := os.WriteFile(path, []byte("schema: 1\nmodels:\n  churn:\n    task: nonsense\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w = do(t, h, http.MethodPost, "/api/v1/definitions/reload", nil)
	if w.Code != 400 || !strings.Contains(w.Body.String(), `"problems":[{`) || !strings.Contains(w.Body.String(), `"errorType":"bad_data"`) {
		t.Errorf("bad reload: %d %s", w.Code, w.Body)
	}
	if defs.Version().Hash != resp.Data.Version.Hash {
		t.Errorf("version changed after a failed reload")
	}
}

func TestMetrics(t *testing.T) {
	a := newTestAPI(t, Options{}, nil)
	a.SetBackend(&Backend{Queryable: testStore(t), Stats: func() tsdb.Stats { return tsdb.Stats{HeadSeries: 7, Flushes: 2, Compactions: 3, Downsamples: 1} }})
	h := a.Handler()
	do(t, h, http.MethodGet, "/api/v1/query?query=up&time=10", nil)
	do(t, h, http.MethodGet, "/api/v1/query_range?query=up&start=0&end=10&step=5", nil)
	body := do(t, h, http.MethodGet, "/metrics", nil).Body.String()
	for _, want := range []string{
		`evalstore_query_duration_seconds_count{type="instant"} 1`,
		`evalstore_query_duration_seconds_count{type="range"} 1`,
		`evalstore_http_requests_total{code="200",handler="query"} 1`,
		`evalstore_tsdb_head_series 7`,
		`evalstore_tsdb_flushes_total 2`,
		`evalstore_tsdb_compactions_total 3`,
		`evalstore_tsdb_downsamples_total 1`,
		`evalstore_ready 1`,
		`evalstore_remote_write_samples_total{kind="float"} 0`,
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestGzip(t *testing.T) {
	st := query.NewMemStorage()
	for i := range 200 {
		if err := st.AddFloat(labels.FromStrings("__name__", "big", "i", strings.Repeat("x", 20)+string(rune('a'+i%26))+strconv.Itoa(i)), query.FPoint{T: 0, F: 1}); err != nil {
			t.Fatal(err)
		}
	}
	a := newTestAPI(t, Options{}, st)
	plain := do(t, a.Handler(), http.MethodGet, "/api/v1/query?query=big&time=0", nil)
	zipped := do(t, a.Handler(), http.MethodGet, "/api/v1/query?query=big&time=0", nil, "Accept-Encoding", "gzip")
	if zipped.Header().Get("Content-Encoding") != "gzip" || plain.Header().Get("Content-Encoding") != "" {
		t.Fatalf("encodings %q %q", zipped.Header().Get("Content-Encoding"), plain.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, plain.Body.Bytes()) || zipped.Body.Len() >= plain.Body.Len() {
		t.Fatalf("gzipped body differs (%v)", err)
	}
}

func TestCORS(t *testing.T) {
	a := newTestAPI(t, Options{CORSOrigin: regexp.MustCompile(`^(?:https://grafana\.example)$`)}, testStore(t))
	w := do(t, a.Handler(), http.MethodOptions, "/api/v1/query", nil, "Origin", "https://grafana.example")
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "https://grafana.example" {
		t.Errorf("preflight: %d %v", w.Code, w.Header())
	}
	w = do(t, a.Handler(), http.MethodGet, "/api/v1/query?query=1", nil, "Origin", "https://evil.example")
	if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin: %d %v", w.Code, w.Header())
	}
	b := newTestAPI(t, Options{}, testStore(t))
	if w := do(t, b.Handler(), http.MethodGet, "/api/v1/query?query=1", nil, "Origin", "https://grafana.example"); w.Header().Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("CORS headers without -cors-origin: %v", w.Header())
	}
}
