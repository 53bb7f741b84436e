package rules

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query"
	"evalstore/tsdb"
)

func apiRig(t *testing.T) *Manager {
	st := query.NewMemStorage()
	gauge(t, st, labels.FromStrings("__name__", "x", "job", "a"), repeat(2, 10)...)
	gauge(t, st, labels.FromStrings("__name__", "w", "job", "a"), repeat(2, 10)...)
	m := NewManager(Options{Storage: MemStorage(st)})
	err := m.Load(writeRules(t, `groups:
  - name: g
    interval: 30s
    limit: 10
    rules:
      - alert: High
        expr: x  >  1
        for: 5m
        keep_firing_for: 1m
        labels: {severity: page}
        annotations: {summary: "x={{ $value }}"}
      - record: job:x
        expr: sum by (job) (x)
        labels: {a: b}
      - alert: Broken
        expr: '{__name__=~"x|w"}'
  - name: h
    rules:
      - record: z
        expr: x
`))
	if err != nil {
		t.Fatal(err)
	}
	m.Eval(context.Background(), minute(0))
	m.Eval(context.Background(), minute(6))
	return m
}

func TestRulesDataJSON(t *testing.T) {
	m := apiRig(t)
	b, err := json.Marshal(m.RulesData(RulesFilter{}))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Groups []struct {
			Name           string           `json:"name"`
			File           string           `json:"file"`
			Interval       float64          `json:"interval"`
			Limit          int              `json:"limit"`
			LastEvaluation time.Time        `json:"lastEvaluation"`
			EvaluationTime *float64         `json:"evaluationTime"`
			Rules          []map[string]any `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Groups) != 2 || got.Groups[0].Name != "g" || got.Groups[0].Interval != 30 || got.Groups[0].Limit != 10 ||
		!got.Groups[0].LastEvaluation.Equal(minute(6)) || got.Groups[0].EvaluationTime == nil || !strings.HasSuffix(got.Groups[0].File, "rules.yml") ||
		got.Groups[1].Interval != 60 {
		t.Fatalf("groups %s", b)
	}
	alert := got.Groups[0].Rules[0]
	for k, want := range map[string]any{"state": "firing", "name": "High", "query": "x > 1", "duration": 300.0, "keepFiringFor": 60.0,
		"health": "ok", "type": "alerting"} {
		if alert[k] != want {
			t.Errorf("alerting rule %s = %v, want %v (%s)", k, alert[k], want, b)
		}
	}
	for _, k := range []string{"labels", "annotations", "alerts", "evaluationTime", "lastEvaluation"} {
		if _, ok := alert[k]; !ok {
			t.Errorf("alerting rule lacks %q", k)
		}
	}
	as := alert["alerts"].([]any)
	a := as[0].(map[string]any)
	if len(as) != 1 || a["state"] != "firing" || a["value"] != "2e+00" || a["activeAt"] != "2023-11-14T22:00:00Z" ||
		a["labels"].(map[string]any)["alertname"] != "High" || a["annotations"].(map[string]any)["summary"] != "x=2" {
		t.Errorf("alert %v", a)
	}
	rec := got.Groups[0].Rules[1]
	if rec["type"] != "recording" || rec["name"] != "job:x" || rec["query"] != "sum by (job) (x)" || rec["health"] != "ok" ||
		rec["labels"].(map[string]any)["a"] != "b" {
		t.Errorf("recording rule %v", rec)
	}
	broken := got.Groups[0].Rules[2]
	if broken["health"] != "err" || broken["lastError"] != ErrDuplicateAlertLabelSet.Error() || broken["state"] != "inactive" {
		t.Errorf("broken rule %v", broken)
	}

	// Filters.
	d := m.RulesData(RulesFilter{Type: "record"})
	if len(d.RuleGroups) != 2 || len(d.RuleGroups[0].Rules) != 1 {
		t.Errorf("type=record: %+v", d.RuleGroups)
	}
	d = m.RulesData(RulesFilter{RuleNames: []string{"High"}, ExcludeAlerts: true})
	if len(d.RuleGroups) != 1 || len(d.RuleGroups[0].Rules[0].(*AlertingRuleJSON).Alerts) != 0 {
		t.Errorf("rule_name[]=High&exclude_alerts: %+v", d.RuleGroups)
	}
	if d := m.RulesData(RulesFilter{GroupNames: []string{"h"}}); len(d.RuleGroups) != 1 || d.RuleGroups[0].Name != "h" {
		t.Errorf("rule_group[]=h: %+v", d.RuleGroups)
	}
}

func TestAlertsDataJSON(t *testing.T) {
	m := apiRig(t)
	b, _ := json.Marshal(m.AlertsData())
	want := `{"alerts":[{"labels":{"alertname":"High","job":"a","severity":"page"},"annotations":{"summary":"x=2"},"state":"firing","activeAt":"2023-11-14T22:00:00Z","value":"2e+00"}]}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	empty, _ := json.Marshal(NewManager(Options{}).AlertsData())
	if string(empty) != `{"alerts":[]}` {
		t.Fatalf("empty: %s", empty)
	}
	r, _ := json.Marshal(NewManager(Options{}).RulesData(RulesFilter{}))
	if string(r) != `{"groups":[]}` {
		t.Fatalf("empty rules: %s", r)
	}
}

// fakeTicker is a ticker the test drives.
type fakeTicker struct{ c chan time.Time }

func (f fakeTicker) C() <-chan time.Time { return f.c }
func (f fakeTicker) Stop()               {}

func TestRunEvaluatesOnTicks(t *testing.T) {
	st := query.NewMemStorage()
	gauge(t, st, labels.FromStrings("__name__", "x", "job", "a"), repeat(2, 10)...)
	tick := fakeTicker{c: make(chan time.Time)}
	var now time.Time
	var intervals []time.Duration
	nowCh := make(chan time.Time, 10)
	m := NewManager(Options{Storage: MemStorage(st),
		Now:       func() time.Time { now = <-nowCh; return now },
		NewTicker: func(d time.Duration) tsdb.Ticker { intervals = append(intervals, d); return tick },
	})
	if err := m.Load(writeRules(t, "groups:\n  - name: g\n    interval: 2m\n    rules:\n      - alert: A\n        expr: x > 1\n        for: 2m\n")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	nowCh <- minute(0) // the first evaluation runs at once
	for _, mm := range []int{1, 2} {
		tick.c <- time.Time{}
		nowCh <- minute(mm)
	}
	// Wait until the evaluation at minute 2 is done.
	waitFor(t, "evaluation at minute 2", func() bool { last, _ := m.Groups()[0].LastEvaluation(); return last.Equal(minute(2)) })
	if as := m.Groups()[0].Rules()[0].(*AlertingRule).Alerts(); len(as) != 1 || as[0].State != StateFiring {
		t.Fatalf("alerts %+v", as)
	}
	if len(intervals) != 1 || intervals[0] != 2*time.Minute {
		t.Fatalf("ticker intervals %v", intervals)
	}
	// Load while running restarts the loops with the new groups.
	if err := m.Load(writeRules(t, "groups:\n  - name: g2\n    interval: 3m\n    rules:\n      - record: r\n        expr: x\n")); err != nil {
		t.Fatal(err)
	}
	nowCh <- minute(3)
	waitFor(t, "the new group's first evaluation", func() bool { last, _ := m.Groups()[0].LastEvaluation(); return last.Equal(minute(3)) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestParseRulesFilter(t *testing.T) {
	f, err := ParseRulesFilter(url.Values{"type": {"alert"}, "rule_name[]": {"A", "B"}, "rule_group[]": {"g"}, "file[]": {"f"}, "exclude_alerts": {"true"}})
	if err != nil || f.Type != "alert" || len(f.RuleNames) != 2 || f.GroupNames[0] != "g" || f.Files[0] != "f" || !f.ExcludeAlerts {
		t.Fatalf("%+v %v", f, err)
	}
	if _, err := ParseRulesFilter(url.Values{"type": {"x"}}); err == nil || err.Error() != "unsupported type x" {
		t.Fatalf("type=x: %v", err)
	}
	if _, err := ParseRulesFilter(url.Values{"exclude_alerts": {"maybe"}}); err == nil {
		t.Fatal("exclude_alerts=maybe accepted")
	}
}
