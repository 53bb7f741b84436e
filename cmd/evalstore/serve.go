package main

import (
	"context"
	"crypto/tls"
	"errors"
	"evalstore/rules"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"evalstore/api"
	"evalstore/definitions"
	"evalstore/ingest/remotewrite"
	"evalstore/query"
	"evalstore/tsdb"
)

// secretFlags are shown redacted by /api/v1/status/flags.
var secretFlags = map[string]bool{"read-token": true, "read-password": true, "write-token": true, "write-password": true}

// ListeningPrefix starts the stdout line that names the bound address, so
// scripts and tests that pass -listen 127.0.0.1:0 can find the port.
const ListeningPrefix = "evalstore listening on "

// ingesterFactory builds the predictions/feedback/evaluations ingester once
// storage is open. The ingest package provides it; nil leaves those three
// endpoints answering 501. It is a variable so the wiring is one line where
// the ingester lands (see docs/api.md).
var ingesterFactory func(ctx context.Context, cfg IngestConfig) (api.Ingester, func(error) (int, any), io.Closer, error)

// IngestConfig is what the ingester needs from serve.
type IngestConfig struct {
	Dir         string // <data-dir>/ingest, the join store
	DB          *tsdb.DB
	Definitions func() *definitions.Definitions
	BucketSize  time.Duration
	Retention   time.Duration
	Logger      *slog.Logger
	// Registerer takes the ingester's own metrics (join backlog, records).
	Registerer prometheus.Registerer
}

// serve runs the server until SIGINT/SIGTERM (or ctx is done) and returns
// the exit code.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := loadConfig(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "evalstore serve: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	if err := runServer(ctx, cfg, fs, log, stdout); err != nil {
		log.Error("evalstore stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		lvl = slog.LevelInfo
	}
	o := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func runServer(ctx context.Context, cfg config, fs *flag.FlagSet, log *slog.Logger, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads the definitions; catch it from the start so an early
	// one does not kill the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return err
	}
	defs, err := definitions.NewStore(definitions.StoreConfig{Path: cfg.Definitions, Dir: filepath.Join(cfg.DataDir, "definitions")})
	if err != nil {
		return err
	}
	flags := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		if secretFlags[f.Name] && v != "" {
			v = "<secret>"
		}
		flags[f.Name] = v
	})

	var cors *regexp.Regexp
	if cfg.CORSOrigin != "" {
		cors = regexp.MustCompile("^(?s:" + cfg.CORSOrigin + ")$") // validated by loadConfig
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	engine := query.New(withDefinitions(withLogger(cfg.queryOptions(), log), defs))
	a := api.New(api.Options{
		Engine:      engine,
		Definitions: defs,
		Auth: api.Auth{
			Read:  api.Credentials(cfg.Auth.Read),
			Write: api.Credentials(cfg.Auth.Write),
		},
		MaxBodyBytes:           cfg.Limits.MaxBodyBytes,
		MaxEvaluationBodyBytes: cfg.Limits.MaxEvaluationBodyBytes,
		BuildInfo:              buildInfo(),
		Flags:                  flags,
		ConfigYAML:             cfg.redacted(),
		StorageRetention:       cfg.Retention.String(),
		CORSOrigin:             cors,
		Pprof:                  cfg.Pprof,
		Registry:               reg,
		Logger:                 log,
	})
	if cfg.Definitions != "" {
		if _, err := a.ReloadDefinitions(); err != nil {
			return fmt.Errorf("definitions: %w", err)
		}
	}
	// Fail before listening when a rule file is missing or invalid.
	files, err := expandRuleFiles(cfg.RuleFiles)
	if err != nil {
		return err
	}
	for _, f := range files {
		if _, err := rules.ParseFile(f); err != nil {
			return fmt.Errorf("rules: %w", err)
		}
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	serveErr := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			serveErr <- srv.ServeTLS(ln, "", "") // also negotiates HTTP/2
			return
		}
		serveErr <- srv.Serve(ln)
	}()
	log.Info("listening", "address", ln.Addr().String(), "scheme", scheme, "data_dir", cfg.DataDir, "version", version)
	fmt.Fprintf(stdout, "%s%s://%s\n", ListeningPrefix, scheme, ln.Addr())

	// Open storage while already listening: /-/healthy answers and
	// /-/ready says 503 until the WAL is replayed.
	opened := make(chan openResult, 1)
	go func() { opened <- openStorage(ctx, cfg, defs, reg, log) }()

	var st openResult
	select {
	case st = <-opened:
	case err := <-serveErr:
		st = <-opened
		st.close(log)
		return err
	}
	if st.err != nil {
		shutdown(srv, cfg, log)
		return st.err
	}
	runCtx, cancelRun := context.WithCancel(context.Background())
	rs, err := startRules(runCtx, cfg, engine, st.db, reg, log)
	if err != nil {
		cancelRun()
		shutdown(srv, cfg, log)
		return errors.Join(fmt.Errorf("rules: %w", err), st.close(log))
	}
	if rs != nil {
		st.backend.Rules = ruleSource{rs.m}
	}
	a.SetBackend(st.backend)
	log.Info("ready", "replayed_records", st.db.Stats().ReplayedRecords)

	runDone := make(chan error, 1)
	go func() { runDone <- st.db.Run(runCtx) }()

	var result error
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down: stopping the listener and finishing in-flight requests")
			break loop
		case <-hup:
			rs.reload(log)
			if cfg.Definitions == "" {
				log.Warn("SIGHUP: no definitions file to reload")
				continue
			}
			_, _ = a.ReloadDefinitions() // logged and counted inside
		case err := <-serveErr:
			result = err
			break loop
		}
	}
	shutdown(srv, cfg, log)
	cancelRun()
	rs.wait()
	if err := <-runDone; err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("storage background loop", "err", err)
	}
	if err := st.close(log); err != nil && result == nil {
		result = err
	}
	if result == nil {
		log.Info("stopped cleanly")
	}
	return result
}

// buildInfo is the -ldflags build information, with the VCS revision and
// time Go stamped into the binary where -ldflags left them empty.
func buildInfo() api.BuildInfo {
	bi := api.BuildInfo{Version: version, Revision: revision, Branch: branch, BuildUser: buildUser, BuildDate: buildDate,
		GoVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && bi.Revision == "":
				bi.Revision = s.Value
			case s.Key == "vcs.time" && bi.BuildDate == "":
				bi.BuildDate = s.Value
			}
		}
	}
	return bi
}

func withLogger(o query.Options, log *slog.Logger) query.Options {
	o.Logger = log.With("component", "query")
	return o
}

// withDefinitions gives the engine the definitions in force (positive
// classes, importances, drift references, named metrics).
func withDefinitions(o query.Options, defs *definitions.Store) query.Options {
	o.Definitions = defs.Current
	return o
}

func shutdown(srv *http.Server, cfg config, log *slog.Logger) {
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("in-flight requests did not finish before the shutdown timeout; closing", "err", err)
		srv.Close()
	}
}

type openResult struct {
	db      *tsdb.DB
	ingest  io.Closer
	backend *api.Backend
	err     error
}

// close closes the ingester, then the DB (which flushes and closes the WAL).
func (o *openResult) close(log *slog.Logger) error {
	var errs []error
	if o.ingest != nil {
		if err := o.ingest.Close(); err != nil {
			errs = append(errs, fmt.Errorf("ingest: %w", err))
		}
	}
	if o.db != nil {
		if err := o.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("storage: %w", err))
		} else {
			log.Info("storage closed; WAL flushed")
		}
	}
	return errors.Join(errs...)
}

func openStorage(ctx context.Context, cfg config, defs *definitions.Store, reg prometheus.Registerer, log *slog.Logger) openResult {
	t0 := time.Now()
	db, err := tsdb.Open(cfg.DataDir, tsdb.Options{
		BucketSize: time.Duration(cfg.BucketSize),
		Retention:  time.Duration(cfg.Retention),
		Logger:     log.With("component", "tsdb"),
	})
	if err != nil {
		return openResult{err: fmt.Errorf("opening %s: %w", cfg.DataDir, err)}
	}
	log.Info("storage open", "duration", time.Since(t0).Round(time.Millisecond), "series", db.Stats().Series)
	rw := remotewrite.NewReceiver(func(context.Context) remotewrite.Appender { return db.Appender() }, remotewrite.Options{
		MaxBodyBytes:    cfg.Limits.MaxRemoteWriteBytes,
		MaxDecodedBytes: int(cfg.Limits.MaxRemoteWriteBytes),
		InvalidAppend:   invalidAppend,
	})
	res := openResult{db: db, backend: &api.Backend{Queryable: db, RemoteWrite: rw, Stats: db.Stats}}
	if ingesterFactory != nil {
		ing, classify, closer, err := ingesterFactory(ctx, IngestConfig{
			Dir: filepath.Join(cfg.DataDir, "ingest"), DB: db, Definitions: defs.Current,
			BucketSize: time.Duration(cfg.BucketSize), Retention: time.Duration(cfg.Retention),
			Logger: log.With("component", "ingest"), Registerer: reg,
		})
		if err != nil {
			res.err = fmt.Errorf("ingest: %w", err)
			res.close(log)
			return res
		}
		res.ingest = closer
		res.backend.Ingest, res.backend.ClassifyIngest = ing, classify
	} else {
		log.Warn("predictions, feedback and evaluations ingest is not wired in this build; those endpoints answer 501")
	}
	return res
}

// invalidAppend says which storage errors are the data's fault (400, the
// sender must not retry) rather than the storage's (500).
// The receiver stores native histograms only through a storage that
// implements HistogramAppender.
var _ remotewrite.HistogramAppender = (*tsdb.Appender)(nil)

func invalidAppend(err error) bool {
	for _, s := range []error{tsdb.ErrOutOfBounds, tsdb.ErrOutOfOrderSample, tsdb.ErrDuplicateSampleForTimestamp,
		tsdb.ErrFormatMismatch, tsdb.ErrInvalidLabels, tsdb.ErrInvalidHistogram} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
