package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/url"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"evalstore/definitions"
	"evalstore/ingest/remotewrite"
	"evalstore/query"
	"evalstore/tsdb"
)

// RemoteWriter applies one remote-write request; *remotewrite.Receiver
// implements it.
type RemoteWriter interface {
	Write(ctx context.Context, contentType, contentEncoding string, body io.Reader) (remotewrite.Written, error)
}

// Ingester decodes and durably applies JSON/NDJSON batches of predictions,
// feedback and offline evaluation runs (the ingest package). Each call
// answers 2xx only once the whole batch is durable; its result is sent back
// as the response's data. Errors are classified by Backend.ClassifyIngest.
type Ingester interface {
	Predictions(ctx context.Context, contentType, contentEncoding string, body io.Reader) (any, error)
	Feedback(ctx context.Context, contentType, contentEncoding string, body io.Reader) (any, error)
	Evaluations(ctx context.Context, contentType, contentEncoding string, body io.Reader) (any, error)
}

// StatusCoder is implemented by ingest errors that know their HTTP status
// (400 invalid batch, 413 too large, 415 unsupported media type). With the
// default classifier a 400 error is also the response's data, so its JSON
// form (the list of bad records) reaches the client.
type StatusCoder interface {
	error
	StatusCode() int
}

// Backend is what the API serves once storage is open.
type Backend struct {
	// Queryable is the storage read by queries and metadata endpoints.
	Queryable query.Queryable
	// RemoteWrite receives /api/v1/write; nil answers 501.
	RemoteWrite RemoteWriter
	// Ingest receives predictions, feedback and evaluations; nil answers 501.
	Ingest Ingester
	// ClassifyIngest maps an Ingest error to an HTTP status and the data
	// sent with it (nil: no data). Nil uses StatusCoder, else 500.
	ClassifyIngest func(error) (status int, data any)
	// Stats feeds the storage metrics of /metrics (nil: none).
	Stats func() tsdb.Stats
	// Rules serves /api/v1/rules and /api/v1/alerts (nil: no rules).
	Rules RuleSource
}

// RuleSource is the rule manager as the API sees it. Both methods return
// values that marshal to the data of Prometheus's rules and alerts
// responses; RulesData's error is a bad filter (bad_data).
type RuleSource interface {
	RulesData(form url.Values) (any, error)
	AlertsData() any
}

// BuildInfo is the data of /api/v1/status/buildinfo, in Prometheus's shape.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
}

// Options configure an API. Engine is required.
type Options struct {
	Engine      *query.Engine
	Definitions *definitions.Store // nil: the definitions endpoints answer 404
	Auth        Auth
	// MaxBodyBytes bounds the body of predictions and feedback requests
	// (413 beyond it); MaxEvaluationBodyBytes the body of an offline run.
	// Remote-write has its own limit in its Receiver. Defaults 32 MiB and
	// 256 MiB.
	MaxBodyBytes           int64
	MaxEvaluationBodyBytes int64
	// MaxQueryBodyBytes bounds the form body of POSTed queries (default
	// 1 MiB).
	MaxQueryBodyBytes int64
	BuildInfo         BuildInfo
	// Flags and ConfigYAML are shown by /api/v1/status/flags and
	// /api/v1/status/config; secrets must already be redacted.
	Flags      map[string]string
	ConfigYAML string
	// StorageRetention is shown by /api/v1/status/runtimeinfo.
	StorageRetention string
	// CORSOrigin, when set, is the anchored pattern of browser origins
	// allowed to call the API (Prometheus's --web.cors.origin); nil sends
	// no CORS headers.
	CORSOrigin *regexp.Regexp
	// Pprof mounts net/http/pprof under /debug/pprof/ (read permission).
	Pprof bool
	// Registry receives the API's metrics and serves /metrics (nil: a new
	// registry with the Go and process collectors).
	Registry *prometheus.Registry
	Logger   *slog.Logger
	Now      func() time.Time
}

// API is the HTTP API. Create it with New; it is not ready until
// SetBackend.
type API struct {
	opts      Options
	log       *slog.Logger
	backend   atomic.Pointer[Backend]
	started   time.Time
	metrics   *metrics
	mux       *http.ServeMux
	reloadErr atomic.Bool
}

// New returns an API that answers 503 on /-/ready and every /api/v1
// endpoint until SetBackend is called.
func New(opts Options) *API {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 32 << 20
	}
	if opts.MaxEvaluationBodyBytes <= 0 {
		opts.MaxEvaluationBodyBytes = 256 << 20
	}
	if opts.MaxQueryBodyBytes <= 0 {
		opts.MaxQueryBodyBytes = 1 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if opts.Flags == nil {
		opts.Flags = map[string]string{}
	}
	a := &API{opts: opts, log: opts.Logger, started: opts.Now()}
	a.metrics = newMetrics(opts.Registry, a)
	a.routes()
	return a
}

// SetBackend makes the API ready with b.
func (a *API) SetBackend(b *Backend) { a.backend.Store(b) }

// Ready reports whether SetBackend was called.
func (a *API) Ready() bool { return a.backend.Load() != nil }

// Handler returns the root handler.
func (a *API) Handler() http.Handler { return a.mux }

// endpoint is one API function with the permission it needs.
type endpoint func(r *http.Request, b *Backend) result

func (a *API) routes() {
	mux := http.NewServeMux()
	a.mux = mux

	read := func(name string, f endpoint) http.Handler { return a.wrap(name, RoleRead, f) }
	write := func(name string, f endpoint) http.Handler { return a.wrap(name, RoleWrite, f) }
	both := func(path string, h http.Handler) {
		mux.Handle("GET "+path, h)
		mux.Handle("POST "+path, h)
	}

	both("/api/v1/query", read("query", a.query))
	both("/api/v1/query_range", read("query_range", a.queryRange))
	both("/api/v1/query_exemplars", read("query_exemplars", a.queryExemplars))
	both("/api/v1/format_query", read("format_query", a.formatQuery))
	both("/api/v1/labels", read("labels", a.labelNames))
	mux.Handle("GET /api/v1/label/{name}/values", read("label_values", a.labelValues))
	both("/api/v1/series", read("series", a.series))
	mux.Handle("GET /api/v1/metadata", read("metadata", a.metadata))
	mux.Handle("GET /api/v1/rules", read("rules", a.rules))
	mux.Handle("GET /api/v1/alerts", read("alerts", a.alerts))
	mux.Handle("GET /api/v1/status/buildinfo", read("buildinfo", a.buildInfo))
	mux.Handle("GET /api/v1/status/config", read("config", a.config))
	mux.Handle("GET /api/v1/status/flags", read("flags", a.flags))
	mux.Handle("GET /api/v1/status/runtimeinfo", read("runtimeinfo", a.runtimeInfo))
	mux.Handle("GET /api/v1/definitions", read("definitions", a.definitions))
	mux.Handle("GET /api/v1/models", read("models", a.models))
	mux.Handle("GET /api/v1/slices", read("slices", a.slices))

	mux.Handle("POST /api/v1/definitions/reload", write("definitions_reload", a.reloadDefinitions))
	mux.Handle("POST /api/v1/write", a.instrument("write", a.auth(RoleWrite, a.whenReady(http.HandlerFunc(a.remoteWrite)))))
	mux.Handle("POST /api/v1/predictions", a.instrument("predictions", a.auth(RoleWrite, a.whenReady(a.ingestHandler("predictions", a.opts.MaxBodyBytes, Ingester.Predictions)))))
	mux.Handle("POST /api/v1/feedback", a.instrument("feedback", a.auth(RoleWrite, a.whenReady(a.ingestHandler("feedback", a.opts.MaxBodyBytes, Ingester.Feedback)))))
	mux.Handle("POST /api/v1/evaluations", a.instrument("evaluations", a.auth(RoleWrite, a.whenReady(a.ingestHandler("evaluations", a.opts.MaxEvaluationBodyBytes, Ingester.Evaluations)))))

	mux.HandleFunc("OPTIONS /api/v1/", func(w http.ResponseWriter, r *http.Request) {
		a.setCORS(w, r)
		w.WriteHeader(http.StatusNoContent)
	})

	mux.Handle("GET /metrics", a.instrument("metrics", a.auth(RoleRead, promhttp.HandlerFor(a.opts.Registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelError)}))))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "evalstore is Healthy.\n")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !a.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "Service Unavailable")
			return
		}
		io.WriteString(w, "evalstore is Ready.\n")
	})
	if a.opts.Pprof {
		pp := http.NewServeMux()
		pp.HandleFunc("/debug/pprof/", pprof.Index)
		pp.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		pp.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pp.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pp.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.Handle("/debug/pprof/", a.auth(RoleRead, pp))
	}
}

// wrap turns an endpoint into a handler: metrics, auth, readiness, the
// Prometheus envelope.
func (a *API) wrap(name string, role Role, f endpoint) http.Handler {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.setCORS(w, r)
		if r.Method == http.MethodPost && r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, a.opts.MaxQueryBodyBytes)
		}
		if err := r.ParseForm(); err != nil {
			respond(w, a.log, badData(errorParsingForm(err)))
			return
		}
		respond(w, a.log, f(r, a.backend.Load()))
	})
	// Large answers (a dashboard's matrices) are gzipped when the client
	// accepts it, as Prometheus does; small ones are sent as they are.
	return a.instrument(name, a.auth(role, a.whenReady(gzhttp.GzipHandler(h))))
}

// whenReady answers 503 as Prometheus does while storage is opening.
func (a *API) whenReady(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "Service Unavailable")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// setCORS sets the headers Prometheus's API sets for an allowed origin.
func (a *API) setCORS(w http.ResponseWriter, r *http.Request) {
	if a.opts.CORSOrigin == nil {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type, Origin")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Expose-Headers", "Date")
	if o := r.Header.Get("Origin"); o != "" && a.opts.CORSOrigin.MatchString(o) {
		h.Set("Access-Control-Allow-Origin", o)
	}
	h.Add("Vary", "Origin")
}
