package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"evalstore/query"
	"evalstore/tsdb"
)

// DefaultListen is serve's default address. The port is in Prometheus's
// exporter range (9100–9999) but clear of what usually runs next to an ML
// service: Prometheus 9090–9094, Loki/Mimir gRPC 9095, node_exporter 9100,
// the OpenTelemetry Prometheus exporter 9464.
const DefaultListen = ":9470"

// duration is a time.Duration read as a Prometheus duration (1m, 400d, 2w)
// from flags and YAML.
type duration time.Duration

func (d *duration) String() string { return model.Duration(*d).String() }

func (d *duration) Set(s string) error {
	v, err := model.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

func (d *duration) UnmarshalYAML(n *yaml.Node) error { return d.Set(n.Value) }

func (d duration) MarshalYAML() (any, error) { return model.Duration(d).String(), nil }

// strings is a repeatable, comma-separated list flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// credentials is one role's authentication.
type credentials struct {
	BearerToken string `yaml:"bearer_token,omitempty"`
	Username    string `yaml:"username,omitempty"`
	Password    string `yaml:"password,omitempty"`
}

// config is serve's configuration: the YAML file's shape; every field also
// has a flag, and a flag given on the command line wins over the file.
type config struct {
	Listen      string     `yaml:"listen"`
	DataDir     string     `yaml:"data_dir"`
	Retention   duration   `yaml:"retention"`
	BucketSize  duration   `yaml:"bucket_size"`
	Definitions string     `yaml:"definitions"`
	RuleFiles   stringList `yaml:"rule_files"`
	// Alertmanagers are the base URLs alerts are sent to (/api/v2/alerts).
	Alertmanagers    stringList `yaml:"alertmanager_urls"`
	RuleEvalInterval duration   `yaml:"rule_evaluation_interval"`
	Auth             struct {
		Read  credentials `yaml:"read"`
		Write credentials `yaml:"write"`
	} `yaml:"auth"`
	TLS struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	Limits struct {
		MaxBodyBytes           int64 `yaml:"max_body_bytes"`
		MaxEvaluationBodyBytes int64 `yaml:"max_evaluation_body_bytes"`
		MaxRemoteWriteBytes    int64 `yaml:"max_remote_write_bytes"`
	} `yaml:"limits"`
	Query struct {
		Timeout       duration `yaml:"timeout"`
		MaxSamples    int      `yaml:"max_samples"`
		MaxSeries     int      `yaml:"max_series"`
		MaxBuckets    int      `yaml:"max_buckets"`
		LookbackDelta duration `yaml:"lookback_delta"`
	} `yaml:"query"`
	CORSOrigin string `yaml:"cors_origin"`
	Pprof      bool   `yaml:"pprof"`
	Log        struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	ShutdownTimeout duration `yaml:"shutdown_timeout"`
}

func defaultConfig() config {
	var c config
	c.Listen = DefaultListen
	c.DataDir = "./data"
	c.Retention = duration(tsdb.DefaultRetention)
	c.BucketSize = duration(tsdb.DefaultBucketSize)
	c.RuleEvalInterval = duration(time.Minute)
	c.Limits.MaxBodyBytes = 32 << 20
	c.Limits.MaxEvaluationBodyBytes = 256 << 20
	c.Limits.MaxRemoteWriteBytes = 32 << 20
	c.Query.Timeout = duration(2 * time.Minute)
	c.Query.MaxSamples = 50_000_000
	c.Query.MaxSeries = 500_000
	c.Query.MaxBuckets = 50_000_000
	c.Query.LookbackDelta = duration(5 * time.Minute)
	c.Log.Level = "info"
	c.Log.Format = "text"
	c.ShutdownTimeout = duration(30 * time.Second)
	return c
}

// flags binds every config field to fs.
func (c *config) flags(fs *flag.FlagSet, configFile *string) {
	fs.StringVar(configFile, "config", "", "optional YAML config file; flags given on the command line override it")
	fs.StringVar(&c.Listen, "listen", c.Listen, "address to listen on (host:port; port 0 picks a free port, printed on stdout)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory that holds all of evalstore's data")
	fs.Var(&c.Retention, "retention", "refuse writes older than this (e.g. 400d, 8w)")
	fs.Var(&c.BucketSize, "bucket-size", "width of a sketch time bucket; fixed for a data directory")
	fs.StringVar(&c.Definitions, "definitions", c.Definitions, "definitions YAML file (models, slices, metrics); SIGHUP reloads it")
	fs.Var(&c.RuleFiles, "rule-file", "Prometheus-format rule file or glob (repeatable or comma-separated); SIGHUP reloads them")
	fs.Var(&c.Alertmanagers, "alertmanager-url", "Alertmanager base URL that firing alerts are sent to (repeatable or comma-separated)")
	fs.Var(&c.RuleEvalInterval, "rule-evaluation-interval", "evaluation interval of rule groups that set none")
	fs.StringVar(&c.Auth.Read.BearerToken, "read-token", c.Auth.Read.BearerToken, "bearer token required by read endpoints (env EVALSTORE_READ_TOKEN)")
	fs.StringVar(&c.Auth.Read.Username, "read-user", c.Auth.Read.Username, "basic-auth user accepted by read endpoints")
	fs.StringVar(&c.Auth.Read.Password, "read-password", c.Auth.Read.Password, "basic-auth password of -read-user (env EVALSTORE_READ_PASSWORD)")
	fs.StringVar(&c.Auth.Write.BearerToken, "write-token", c.Auth.Write.BearerToken, "bearer token required by write endpoints (env EVALSTORE_WRITE_TOKEN)")
	fs.StringVar(&c.Auth.Write.Username, "write-user", c.Auth.Write.Username, "basic-auth user accepted by write endpoints")
	fs.StringVar(&c.Auth.Write.Password, "write-password", c.Auth.Write.Password, "basic-auth password of -write-user (env EVALSTORE_WRITE_PASSWORD)")
	fs.StringVar(&c.TLS.CertFile, "tls-cert", c.TLS.CertFile, "TLS certificate file (PEM); with -tls-key serves HTTPS")
	fs.StringVar(&c.TLS.KeyFile, "tls-key", c.TLS.KeyFile, "TLS private key file (PEM)")
	fs.Int64Var(&c.Limits.MaxBodyBytes, "max-body-bytes", c.Limits.MaxBodyBytes, "largest predictions/feedback request body (413 beyond)")
	fs.Int64Var(&c.Limits.MaxEvaluationBodyBytes, "max-evaluation-body-bytes", c.Limits.MaxEvaluationBodyBytes, "largest offline evaluation request body")
	fs.Int64Var(&c.Limits.MaxRemoteWriteBytes, "max-remote-write-bytes", c.Limits.MaxRemoteWriteBytes, "largest remote-write body, compressed and decoded")
	fs.Var(&c.Query.Timeout, "query-timeout", "longest a query may run")
	fs.IntVar(&c.Query.MaxSamples, "query-max-samples", c.Query.MaxSamples, "most float samples one query may load")
	fs.IntVar(&c.Query.MaxSeries, "query-max-series", c.Query.MaxSeries, "most series one query may select")
	fs.IntVar(&c.Query.MaxBuckets, "query-max-buckets", c.Query.MaxBuckets, "most sketch buckets one query may read")
	fs.Var(&c.Query.LookbackDelta, "query-lookback-delta", "how far back an instant selector looks")
	fs.StringVar(&c.CORSOrigin, "cors-origin", c.CORSOrigin, "regex of browser origins allowed by CORS, anchored (e.g. 'https?://grafana\\.example\\.com'); empty: no CORS headers")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve net/http/pprof under /debug/pprof/ (read permission)")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "debug, info, warn or error")
	fs.StringVar(&c.Log.Format, "log-format", c.Log.Format, "text or json")
	fs.Var(&c.ShutdownTimeout, "shutdown-timeout", "how long SIGTERM waits for in-flight requests")
}

// loadConfig parses args over the defaults, the YAML file (if -config) and
// the environment: flags win over the file, the file over the environment.
func loadConfig(fs *flag.FlagSet, args []string) (config, error) {
	c := defaultConfig()
	var file string
	c.flags(fs, &file)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return c, err
		}
		c = defaultConfig()
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("%s: %w", file, err)
		}
		// Parse again so command-line flags override the file. List
		// flags would append twice; reset the one we have.
		rules, ams := c.RuleFiles, c.Alertmanagers
		c.RuleFiles, c.Alertmanagers = nil, nil
		fs2 := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		fs2.SetOutput(fs.Output())
		c.flags(fs2, &file)
		if err := fs2.Parse(args); err != nil {
			return c, err
		}
		if len(c.RuleFiles) == 0 {
			c.RuleFiles = rules
		}
		if len(c.Alertmanagers) == 0 {
			c.Alertmanagers = ams
		}
	}
	env := func(dst *string, name string) {
		if *dst == "" {
			*dst = os.Getenv(name)
		}
	}
	env(&c.Auth.Read.BearerToken, "EVALSTORE_READ_TOKEN")
	env(&c.Auth.Read.Password, "EVALSTORE_READ_PASSWORD")
	env(&c.Auth.Write.BearerToken, "EVALSTORE_WRITE_TOKEN")
	env(&c.Auth.Write.Password, "EVALSTORE_WRITE_PASSWORD")
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir must not be empty"))
	}
	if c.BucketSize <= 0 {
		errs = append(errs, errors.New("bucket size must be positive"))
	}
	if c.Retention <= 0 {
		errs = append(errs, errors.New("retention must be positive"))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("TLS needs both -tls-cert and -tls-key"))
	}
	for role, cr := range map[string]credentials{"read": c.Auth.Read, "write": c.Auth.Write} {
		if (cr.Username == "") != (cr.Password == "") {
			errs = append(errs, fmt.Errorf("%s basic auth needs both a user and a password", role))
		}
	}
	if c.Limits.MaxBodyBytes <= 0 || c.Limits.MaxEvaluationBodyBytes <= 0 || c.Limits.MaxRemoteWriteBytes <= 0 {
		errs = append(errs, errors.New("body limits must be positive"))
	}
	if c.Query.Timeout <= 0 {
		errs = append(errs, errors.New("query timeout must be positive"))
	}
	if c.CORSOrigin != "" {
		if _, err := regexp.Compile(c.CORSOrigin); err != nil {
			errs = append(errs, fmt.Errorf("cors origin: %w", err))
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log format %q: want text or json", c.Log.Format))
	}
	return errors.Join(errs...)
}

// redacted returns the config as YAML with secrets replaced, for
// /api/v1/status/config.
func (c config) redacted() string {
	red := func(s *string) {
		if *s != "" {
			*s = "<secret>"
		}
	}
	red(&c.Auth.Read.BearerToken)
	red(&c.Auth.Read.Password)
	red(&c.Auth.Write.BearerToken)
	red(&c.Auth.Write.Password)
	b, err := yaml.Marshal(c)
	if err != nil {
		return ""
	}
	return string(b)
}

// queryOptions are the engine options of c.
func (c *config) queryOptions() query.Options {
	return query.Options{
		Timeout:       time.Duration(c.Query.Timeout),
		MaxSamples:    c.Query.MaxSamples,
		MaxSeries:     c.Query.MaxSeries,
		MaxBuckets:    c.Query.MaxBuckets,
		LookbackDelta: time.Duration(c.Query.LookbackDelta),
	}
}
