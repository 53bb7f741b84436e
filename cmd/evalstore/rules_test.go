package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

const testRules = `groups:
  - name: demo
    interval: 1s
    rules:
      - record: evalstore_test:one
        expr: vector(1)
      - alert: AlwaysFiring
        expr: vector(1) > 0
        labels:
          severity: page
        annotations:
          summary: "value {{ $value }}"
`

// TestRulesServe loads a rule file into a real server: the recording rule's
// series becomes queryable and the alert shows in /api/v1/alerts and
// /api/v1/rules through Prometheus's Go client.
func TestRulesServe(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "demo.rules.yml")
	if err := os.WriteFile(file, []byte(testRules), 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, filepath.Join(dir, "data"), "-rule-file", file)
	api := client(t, s.url, "")
	deadline := time.Now().Add(15 * time.Second)
	for {
		alerts, err := api.Alerts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(alerts.Alerts) == 1 && alerts.Alerts[0].State == v1.AlertStateFiring {
			a := alerts.Alerts[0]
			if a.Labels["alertname"] != "AlwaysFiring" || a.Labels["severity"] != "page" || a.Annotations["summary"] != "value 1" {
				t.Fatalf("alert %+v", a)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert did not fire: %+v", alerts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rules, err := api.Rules(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules.Groups) != 1 || len(rules.Groups[0].Rules) != 2 || rules.Groups[0].Name != "demo" {
		t.Fatalf("rules %+v", rules)
	}
	v, _, _, err := api.Query(t.Context(), `evalstore_test:one`, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if vec, ok := v.(model.Vector); !ok || len(vec) != 1 || vec[0].Value != 1 {
		t.Fatalf("recorded series: %v", v)
	}
}

func TestRulesSubcommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(good, []byte(testRules), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(strings.Replace(testRules, "vector(1) > 0", "vector(1) >", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"rules", "check", good}, &out, &errb); code != 0 {
		t.Fatalf("check good: exit %d: %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"rules", "check", bad}, &out, &errb); code == 0 || !strings.Contains(out.String()+errb.String(), "bad.yml") {
		t.Fatalf("check bad: exit %d: %s %s", code, out.String(), errb.String())
	}
}
