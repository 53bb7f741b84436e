package rules

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query"
)

// stateRig is a manager over an in-memory store with one alerting rule.
type stateRig struct {
	t     *testing.T
	st    *query.MemStorage
	m     *Manager
	notif *fakeNotifier
}

func newRig(t *testing.T, rule string, x ...float64) *stateRig {
	t.Helper()
	st := query.NewMemStorage()
	gauge(t, st, labels.FromStrings("__name__", "x", "job", "a"), x...)
	n := &fakeNotifier{}
	m := NewManager(Options{Storage: MemStorage(st), Notifier: n, ResendDelay: 2 * time.Minute})
	if err := m.Load(writeRules(t, "groups:\n  - name: g\n    interval: 1m\n    rules:\n"+rule)); err != nil {
		t.Fatal(err)
	}
	return &stateRig{t: t, st: st, m: m, notif: n}
}

func (r *stateRig) rule() *AlertingRule { return r.m.Groups()[0].Rules()[0].(*AlertingRule) }

// at evaluates at minute m and returns the rule's alert for job="a", if any
// (pending or firing).
func (r *stateRig) at(m int) *Alert {
	r.t.Helper()
	r.m.Eval(context.Background(), minute(m))
	if h := r.rule().Health(); h.Health != HealthOK {
		r.t.Fatalf("minute %d: health %s: %v", m, h.Health, h.LastError)
	}
	as := r.rule().Alerts()
	if len(as) > 1 {
		r.t.Fatalf("minute %d: %d alerts", m, len(as))
	}
	if len(as) == 0 {
		return nil
	}
	return &as[0]
}

func (r *stateRig) query(expr string, m int) query.Vector {
	r.t.Helper()
	v, err := engineQueryFunc(query.New(query.Options{}), r.st)(context.Background(), expr, minute(m))
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

func wantState(t *testing.T, m int, a *Alert, want AlertState) {
	t.Helper()
	got := StateInactive
	if a != nil {
		got = a.State
	}
	if got != want {
		t.Fatalf("minute %d: state %s, want %s", m, got, want)
	}
}

const forRule = `      - alert: High
        expr: x > 1
        for: 3m
        labels: {severity: page}
        annotations: {summary: "x is {{ $value }} on {{ $labels.job }}"}
`

func TestForPendingFiringResolved(t *testing.T) {
	// x is 2 (alerting) from minute 2 to 9, then 0.
	r := newRig(t, forRule, concat(repeat(0, 2), repeat(2, 8), repeat(0, 30))...)
	want := map[int]AlertState{0: StateInactive, 1: StateInactive, 2: StatePending, 3: StatePending, 4: StatePending,
		5: StateFiring, 9: StateFiring, 10: StateInactive}
	for m := 0; m <= 12; m++ {
		a := r.at(m)
		if s, ok := want[m]; ok {
			wantState(t, m, a, s)
		}
		switch m {
		case 2:
			if !a.ActiveAt.Equal(minute(2)) || a.Value != 2 || a.Annotations.Get("summary") != "x is 2 on a" {
				t.Fatalf("pending alert %+v", a)
			}
			if !labels.Equal(a.Labels, labels.FromStrings("alertname", "High", "job", "a", "severity", "page")) {
				t.Fatalf("labels %s", a.Labels)
			}
		case 5:
			if !a.FiredAt.Equal(minute(5)) {
				t.Fatalf("fired at %v", a.FiredAt)
			}
		}
	}
	// ALERTS and ALERTS_FOR_STATE as Prometheus writes them; the pending
	// series goes stale when the alert fires, the firing one when it resolves.
	for _, c := range []struct {
		m     int
		expr  string
		label string // alertstate, "" for none
		v     float64
	}{
		{3, `ALERTS`, "pending", 1},
		{6, `ALERTS`, "firing", 1},
		{11, `ALERTS`, "", 0},
		{3, `ALERTS_FOR_STATE`, "-", float64(minute(2).Unix())},
		{8, `ALERTS_FOR_STATE`, "-", float64(minute(2).Unix())},
		{11, `ALERTS_FOR_STATE`, "", 0},
	} {
		v := r.query(c.expr, c.m)
		if c.label == "" {
			if len(v) != 0 {
				t.Errorf("minute %d %s: %v, want none", c.m, c.expr, v)
			}
			continue
		}
		if len(v) != 1 || v[0].F != c.v || (c.label != "-" && v[0].Metric.Get("alertstate") != c.label) {
			t.Fatalf("minute %d %s: %v, want one %s sample %v", c.m, c.expr, v, c.label, c.v)
		}
		if c.label != "-" && !labels.Equal(v[0].Metric, labels.FromStrings("__name__", "ALERTS", "alertname", "High", "alertstate", c.label, "job", "a", "severity", "page")) {
			t.Fatalf("ALERTS labels %s", v[0].Metric)
		}
	}
	// A resolved alert is kept (and re-sent as resolved) for 15 minutes.
	r.at(25)
	if n := len(r.rule().active); n != 1 {
		t.Fatalf("resolved alert dropped early: %d kept", n)
	}
	r.at(26)
	if n := len(r.rule().active); n != 0 {
		t.Fatalf("resolved alert kept after 15m: %d", n)
	}
}

func TestNotificationsResendAndResolve(t *testing.T) {
	r := newRig(t, forRule, concat(repeat(0, 2), repeat(2, 8), repeat(0, 30))...)
	sentAt := map[int][]NotifyAlert{}
	for m := 0; m <= 12; m++ {
		r.at(m)
		if as := r.notif.take(); len(as) > 0 {
			sentAt[m] = as
		}
	}
	// Firing at 5, re-sent every 2m (resend delay) while firing, resolved at 10.
	for _, m := range []int{5, 8, 10} {
		if len(sentAt[m]) != 1 {
			t.Fatalf("minute %d: sent %v; all %v", m, sentAt[m], sentAt)
		}
	}
	if len(sentAt) != 3 {
		t.Fatalf("sent at %v, want minutes 5, 8, 10", sentAt)
	}
	f := sentAt[5][0]
	if !f.StartsAt.Equal(minute(5)) || !f.EndsAt.Equal(minute(5).Add(8*time.Minute)) {
		t.Errorf("firing: startsAt %v endsAt %v (want 4 x max(interval, resend) ahead)", f.StartsAt, f.EndsAt)
	}
	if f.Labels.Get("alertname") != "High" || f.Annotations.Get("summary") != "x is 2 on a" {
		t.Errorf("firing alert %+v", f)
	}
	if f.GeneratorURL != "/graph?g0.expr=x+%3E+1&g0.tab=1" {
		t.Errorf("generator URL %q", f.GeneratorURL)
	}
	res := sentAt[10][0]
	if !res.EndsAt.Equal(minute(10)) || !res.StartsAt.Equal(minute(5)) {
		t.Errorf("resolved: startsAt %v endsAt %v", res.StartsAt, res.EndsAt)
	}
	// Resolved alerts are re-sent every resend delay while retained.
	r.at(13)
	if as := r.notif.take(); len(as) != 1 || !as[0].EndsAt.Equal(minute(10)) {
		t.Errorf("minute 13: %v, want the resolved alert again", as)
	}
}

func TestPendingNeverNotified(t *testing.T) {
	r := newRig(t, forRule, concat(repeat(0, 2), repeat(2, 2), repeat(0, 20))...)
	for m := 0; m <= 10; m++ {
		r.at(m)
	}
	if as := r.notif.take(); len(as) != 0 {
		t.Fatalf("pending alert was notified: %v", as)
	}
}

func TestKeepFiringFor(t *testing.T) {
	rule := `      - alert: High
        expr: x > 1
        for: 2m
        keep_firing_for: 3m
`
	// true at 0..5, false 6..; back true at 12 only.
	r := newRig(t, rule, concat(repeat(2, 6), repeat(0, 6), repeat(2, 1), repeat(0, 20))...)
	want := []AlertState{
		StatePending, StatePending, StateFiring, StateFiring, StateFiring, StateFiring, // 0-5
		StateFiring, StateFiring, StateFiring, // 6-8: kept firing, since 6
		StateInactive, StateInactive, StateInactive, // 9: 3m over
		StatePending, StateInactive, // 12: pending again (for restarts), 13: gone
	}
	for m, s := range want {
		a := r.at(m)
		wantState(t, m, a, s)
		if m == 7 && !a.KeepFiringSince.Equal(minute(6)) {
			t.Fatalf("keepFiringSince %v", a.KeepFiringSince)
		}
		if m == 5 && !a.KeepFiringSince.IsZero() {
			t.Fatal("keepFiringSince set while the expression returns the alert")
		}
	}
	// keep_firing_for does not keep a pending alert.
	r2 := newRig(t, rule, concat(repeat(2, 1), repeat(0, 10))...)
	wantState(t, 0, r2.at(0), StatePending)
	wantState(t, 1, r2.at(1), StateInactive)
}

func TestKeepFiringForResetWhenBack(t *testing.T) {
	rule := `      - alert: High
        expr: x > 1
        keep_firing_for: 3m
`
	// Fires at once (no for); false at 2, true again at 3: keepFiringSince resets.
	r := newRig(t, rule, 2, 2, 0, 2, 0, 0, 0, 0, 0, 0)
	want := []AlertState{StateFiring, StateFiring, StateFiring, StateFiring, StateFiring, StateFiring, StateFiring, StateInactive}
	for m, s := range want {
		a := r.at(m)
		wantState(t, m, a, s)
		if m == 3 && !a.KeepFiringSince.IsZero() {
			t.Fatal("keepFiringSince not reset when the expression returned the alert again")
		}
		if m == 3 && !a.ActiveAt.Equal(minute(0)) {
			t.Fatal("a kept-firing alert that comes back is the same alert")
		}
	}
}

func TestFlappingNeverFires(t *testing.T) {
	// Alternates every minute: with for 2m it is pending, gone, pending...
	var x []float64
	for i := range 30 {
		x = append(x, float64(2*(1-i%2)))
	}
	r := newRig(t, forRule, x...)
	for m := range 30 {
		a := r.at(m)
		if m%2 == 0 {
			wantState(t, m, a, StatePending)
			if !a.ActiveAt.Equal(minute(m)) {
				t.Fatalf("minute %d: activeAt %v: pending must restart", m, a.ActiveAt)
			}
		} else {
			wantState(t, m, a, StateInactive)
		}
	}
	if as := r.notif.take(); len(as) != 0 {
		t.Fatalf("flapping alert notified: %v", as)
	}
}

func TestFlappingFiringAlert(t *testing.T) {
	// Once firing (no for), a flap resolves and re-fires: each transition
	// is notified (resolved, then firing with a new startsAt).
	rule := `      - alert: High
        expr: x > 1
`
	r := newRig(t, rule, 2, 0, 2, 0, 2, 2, 2, 2)
	var sent []NotifyAlert
	for m := range 5 {
		r.at(m)
		sent = append(sent, r.notif.take()...)
	}
	if len(sent) != 5 {
		t.Fatalf("sent %d notifications, want 5 (fire, resolve, fire, resolve, fire): %+v", len(sent), sent)
	}
	for i, a := range sent {
		resolved := !a.EndsAt.After(minute(i))
		if resolved != (i%2 == 1) {
			t.Errorf("notification %d: %+v", i, a)
		}
	}
}

func TestDuplicateLabelsetAfterTemplating(t *testing.T) {
	st := query.NewMemStorage()
	gauge(t, st, labels.FromStrings("__name__", "x", "job", "a"), 2)
	gauge(t, st, labels.FromStrings("__name__", "y", "job", "a"), 2)
	m := NewManager(Options{Storage: MemStorage(st)})
	if err := m.Load(writeRules(t, "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: '{job=\"a\"}'\n")); err != nil {
		t.Fatal(err)
	}
	m.Eval(context.Background(), minute(0))
	if h := m.Groups()[0].Rules()[0].Health(); h.Health != HealthErr || h.LastError != ErrDuplicateAlertLabelSet {
		t.Fatalf("health %+v", h)
	}
}

func TestRecordingRuleFeedsRules(t *testing.T) {
	st := query.NewMemStorage()
	gauge(t, st, labels.FromStrings("__name__", "x", "job", "a"), 1, 2, 3, 4)
	m := NewManager(Options{Storage: MemStorage(st)})
	err := m.Load(writeRules(t, `groups:
  - name: g
    labels: {team: ml}
    rules:
      - record: job:x:doubled
        expr: 2 * x
        labels: {origin: rule}
      - alert: DoubledHigh
        expr: job:x:doubled > 5
      - record: const
        expr: "42"
`))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		m.Eval(context.Background(), minute(i))
	}
	v, err := engineQueryFunc(query.New(query.Options{}), st)(context.Background(), "job:x:doubled", minute(3))
	if err != nil {
		t.Fatal(err)
	}
	want := labels.FromStrings("__name__", "job:x:doubled", "job", "a", "origin", "rule", "team", "ml")
	if len(v) != 1 || v[0].F != 8 || !labels.Equal(v[0].Metric, want) {
		t.Fatalf("recorded %v", v)
	}
	// The alert rule in the same group read the recording at the same time.
	as := m.Groups()[0].Rules()[1].(*AlertingRule).Alerts()
	if len(as) != 1 || as[0].Value != 8 || as[0].Labels.Get("team") != "ml" {
		t.Fatalf("alerts %+v", as)
	}
	v, _ = engineQueryFunc(query.New(query.Options{}), st)(context.Background(), "const", minute(3))
	if len(v) != 1 || v[0].F != 42 || v[0].Metric.Get("team") != "ml" {
		t.Fatalf("scalar recording %v", v)
	}
	if math.IsNaN(v[0].F) {
		t.Fatal("NaN")
	}
}
