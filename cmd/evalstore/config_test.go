package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigFileAndFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "evalstore.yaml")
	yml := `listen: 127.0.0.1:1234
data_dir: /from/file
retention: 30d
bucket_size: 5m
rule_files: [a.yml, b.yml]
auth:
  write: {bearer_token: file-secret}
query: {timeout: 10s, max_series: 7}
log: {level: debug, format: json}
`
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c, err := loadConfig(fs, []string{"-config", path, "-data-dir", "/from/flag", "-read-token", "flag-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/from/flag" || c.Listen != "127.0.0.1:1234" {
		t.Errorf("flag must win over file, file over defaults: %+v", c)
	}
	if time.Duration(c.Retention) != 30*24*time.Hour || time.Duration(c.BucketSize) != 5*time.Minute ||
		time.Duration(c.Query.Timeout) != 10*time.Second || c.Query.MaxSeries != 7 || c.Query.MaxSamples != 50_000_000 {
		t.Errorf("values from file: %+v", c)
	}
	if strings.Join(c.RuleFiles, ",") != "a.yml,b.yml" || c.Log.Format != "json" {
		t.Errorf("rule files %v, log %+v", c.RuleFiles, c.Log)
	}
	if c.Auth.Write.BearerToken != "file-secret" || c.Auth.Read.BearerToken != "flag-secret" {
		t.Errorf("auth %+v", c.Auth)
	}
	red := c.redacted()
	if strings.Contains(red, "secret") && !strings.Contains(red, "<secret>") || strings.Contains(red, "file-secret") || strings.Contains(red, "flag-secret") {
		t.Errorf("redacted config leaks a secret:\n%s", red)
	}

	// Unknown keys are errors, not silently ignored.
	if err := os.WriteFile(path, []byte("listne: :1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := loadConfig(fs, []string{"-config", path}); err == nil || !strings.Contains(err.Error(), "listne") {
		t.Errorf("unknown key: %v", err)
	}

	// Environment supplies secrets not given elsewhere.
	t.Setenv("EVALSTORE_WRITE_TOKEN", "env-secret")
	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	c, err = loadConfig(fs, nil)
	if err != nil || c.Auth.Write.BearerToken != "env-secret" || c.Listen != DefaultListen || c.DataDir != "./data" {
		t.Errorf("env/defaults: %+v %v", c, err)
	}
}
