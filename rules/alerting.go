package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/template"

	"evalstore/query"
)

// AlertState is an alert's state.
type AlertState int

// The alert states, as Prometheus names them.
const (
	StateInactive AlertState = iota
	StatePending
	StateFiring
)

func (s AlertState) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateFiring:
		return "firing"
	}
	return "inactive"
}

// The series names and labels Prometheus writes for alerts.
const (
	AlertsMetric         = "ALERTS"
	AlertsForStateMetric = "ALERTS_FOR_STATE"
	alertNameLabel       = "alertname"
	alertStateLabel      = "alertstate"
)

// resolvedRetention is how long a resolved alert is kept (and re-sent as
// resolved), as in Prometheus.
const resolvedRetention = 15 * time.Minute

// Alert is one active (pending or firing) or recently resolved alert.
type Alert struct {
	State       AlertState
	Labels      labels.Labels
	Annotations labels.Labels
	Value       float64
	// ActiveAt is when the alert's expression first returned it; FiredAt
	// when it turned firing; ResolvedAt when it stopped.
	ActiveAt, FiredAt, ResolvedAt time.Time
	// LastSentAt is the last notification; ValidUntil its end time.
	LastSentAt, ValidUntil time.Time
	// KeepFiringSince is when the expression stopped returning a firing
	// alert that keep_firing_for keeps firing.
	KeepFiringSince time.Time
}

func (a *Alert) needsSending(ts time.Time, resendDelay time.Duration) bool {
	if a.State == StatePending {
		return false
	}
	if a.ResolvedAt.After(a.LastSentAt) {
		return true
	}
	return a.LastSentAt.Add(resendDelay).Before(ts)
}

// Health is a rule's last evaluation outcome.
type Health string

// The health values of /api/v1/rules.
const (
	HealthUnknown Health = "unknown"
	HealthOK      Health = "ok"
	HealthErr     Health = "err"
)

// ErrDuplicateAlertLabelSet is returned when two results of an alerting
// rule's expression have the same labels after templating.
var ErrDuplicateAlertLabelSet = errors.New("vector contains metrics with the same labelset after applying alert labels")

// ruleStatus is the health of a rule's last evaluation.
type ruleStatus struct {
	mu           sync.Mutex
	health       Health
	lastErr      error
	lastEval     time.Time
	evalDuration time.Duration
}

// RuleHealth is a rule's last evaluation: its health, error, time and
// duration.
type RuleHealth struct {
	Health         Health
	LastError      error
	LastEvaluation time.Time
	EvaluationTime time.Duration
}

func (s *ruleStatus) set(ts time.Time, took time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastEval, s.evalDuration, s.lastErr = ts, took, err
	s.health = HealthOK
	if err != nil {
		s.health = HealthErr
	}
}

func (s *ruleStatus) get() RuleHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.health
	if h == "" {
		h = HealthUnknown
	}
	return RuleHealth{Health: h, LastError: s.lastErr, LastEvaluation: s.lastEval, EvaluationTime: s.evalDuration}
}

// AlertingRule is an alert rule and its active alerts.
type AlertingRule struct {
	spec        RuleSpec
	labels      labels.Labels // rule labels, group labels merged in
	annotations labels.Labels
	logger      *slog.Logger
	status      ruleStatus

	mu       sync.Mutex
	active   map[uint64]*Alert
	restored bool
}

func newAlertingRule(spec RuleSpec, groupLabels map[string]string, logger *slog.Logger) *AlertingRule {
	ls := maps.Clone(groupLabels)
	if ls == nil {
		ls = map[string]string{}
	}
	maps.Copy(ls, spec.Labels)
	return &AlertingRule{spec: spec, labels: labels.FromMap(ls), annotations: labels.FromMap(spec.Annotations),
		logger: logger, active: map[uint64]*Alert{}}
}

// Name is the alert name.
func (r *AlertingRule) Name() string { return r.spec.Alert }

// Spec is the rule as written.
func (r *AlertingRule) Spec() RuleSpec { return r.spec }

// queryFunc evaluates an expression at a time as an instant vector.
type queryFunc func(ctx context.Context, expr string, ts time.Time) (query.Vector, error)

// engineQueryFunc evaluates with e over q; a scalar becomes a one-sample
// vector without labels, as Prometheus's rule query function does.
func engineQueryFunc(e *query.Engine, q query.Queryable) queryFunc {
	return func(ctx context.Context, expr string, ts time.Time) (query.Vector, error) {
		res, err := e.Instant(ctx, q, expr, ts)
		if err != nil {
			return nil, err
		}
		switch v := res.Value.(type) {
		case query.Vector:
			return v, nil
		case query.Scalar:
			return query.Vector{{Metric: labels.EmptyLabels(), T: v.T, F: v.V}}, nil
		}
		return nil, fmt.Errorf("rule result is a %s, not an instant vector or scalar", res.Value.Type())
	}
}

// templateQuery adapts a queryFunc to the template package's query
// function ({{ query "..." }} in annotations).
func templateQuery(q queryFunc) template.QueryFunc {
	return func(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
		v, err := q(ctx, expr, ts)
		if err != nil {
			return nil, err
		}
		out := make(promql.Vector, len(v))
		for i, s := range v {
			out[i] = promql.Sample{Metric: s.Metric, T: s.T, F: s.F, H: s.H}
		}
		return out, nil
	}
}

type evalEnv struct {
	query          queryFunc
	externalLabels map[string]string
	externalURL    *url.URL
	limit          int
	queryOffset    time.Duration
}

// eval runs the rule at ts: updates alert states and returns the ALERTS
// and ALERTS_FOR_STATE samples to write.
func (r *AlertingRule) eval(ctx context.Context, ts time.Time, env evalEnv) ([]Sample, error) {
	res, err := env.query(ctx, r.spec.Expr, ts.Add(-env.queryOffset))
	if err != nil {
		return nil, err
	}
	extURL := ""
	if env.externalURL != nil {
		extURL = env.externalURL.String()
	}
	seen := map[uint64]struct{}{}
	alerts := make(map[uint64]*Alert, len(res))
	lb := labels.NewBuilder(labels.EmptyLabels())
	for _, smp := range res {
		data := template.AlertTemplateData(smp.Metric.Map(), env.externalLabels, extURL, promql.Sample{F: smp.F, H: smp.H})
		expand := func(text string) string {
			te := template.NewTemplateExpander(ctx, templateDefs+text, "__alert_"+r.Name(), data,
				model.Time(ts.UnixMilli()), templateQuery(env.query), env.externalURL, nil)
			out, err := te.Expand()
			if err != nil {
				r.logger.Warn("expanding alert template failed", "alert", r.Name(), "err", err)
				return fmt.Sprintf("<error expanding template: %s>", err)
			}
			return out
		}
		lb.Reset(smp.Metric)
		lb.Del(model.MetricNameLabel)
		r.labels.Range(func(l labels.Label) { lb.Set(l.Name, expand(l.Value)) })
		lb.Set(alertNameLabel, r.Name())
		sb := labels.NewScratchBuilder(r.annotations.Len())
		r.annotations.Range(func(a labels.Label) { sb.Add(a.Name, expand(a.Value)) })
		sb.Sort()
		ls := lb.Labels()
		h := ls.Hash()
		if _, dup := alerts[h]; dup {
			return nil, ErrDuplicateAlertLabelSet
		}
		seen[h] = struct{}{}
		alerts[h] = &Alert{Labels: ls, Annotations: sb.Labels(), ActiveAt: ts, State: StatePending, Value: smp.F}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	for h, a := range alerts {
		if old, ok := r.active[h]; ok && old.State != StateInactive {
			old.Value, old.Annotations = a.Value, a.Annotations
			continue
		}
		r.active[h] = a
	}
	var out []Sample
	n := 0
	hold := r.spec.For
	for h, a := range r.active {
		if _, ok := seen[h]; !ok {
			keep := false
			if a.State == StateFiring && r.spec.KeepFiringFor > 0 {
				if a.KeepFiringSince.IsZero() {
					a.KeepFiringSince = ts
				}
				keep = ts.Sub(a.KeepFiringSince) < r.spec.KeepFiringFor
			}
			if a.State == StatePending || (!a.ResolvedAt.IsZero() && ts.Sub(a.ResolvedAt) > resolvedRetention) {
				delete(r.active, h)
			}
			if a.State != StateInactive && !keep {
				a.State = StateInactive
				a.ResolvedAt = ts
			}
			if !keep {
				continue
			}
		} else {
			a.KeepFiringSince = time.Time{}
		}
		n++
		if a.State == StatePending && ts.Sub(a.ActiveAt) >= hold {
			a.State = StateFiring
			a.FiredAt = ts
		}
		if a.State == StateFiring && ts.Sub(a.ActiveAt) < hold {
			// for grew on reload: back to pending.
			a.State, a.FiredAt, a.LastSentAt, a.KeepFiringSince = StatePending, time.Time{}, time.Time{}, time.Time{}
		}
		if r.restored {
			t := ts.Add(-env.queryOffset).UnixMilli()
			out = append(out, r.alertSample(a, t), r.forStateSample(a, t))
		}
	}
	if env.limit > 0 && n > env.limit {
		r.active = map[uint64]*Alert{}
		return nil, fmt.Errorf("exceeded limit of %d with %d alerts", env.limit, n)
	}
	return out, nil
}

func (r *AlertingRule) alertSample(a *Alert, t int64) Sample {
	lb := labels.NewBuilder(r.labels)
	a.Labels.Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
	lb.Set(model.MetricNameLabel, AlertsMetric)
	lb.Set(alertNameLabel, r.Name())
	lb.Set(alertStateLabel, a.State.String())
	return Sample{Labels: lb.Labels(), T: t, V: 1}
}

func (r *AlertingRule) forStateSample(a *Alert, t int64) Sample {
	lb := labels.NewBuilder(r.labels)
	a.Labels.Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
	lb.Set(model.MetricNameLabel, AlertsForStateMetric)
	lb.Set(alertNameLabel, r.Name())
	return Sample{Labels: lb.Labels(), T: t, V: float64(a.ActiveAt.Unix())}
}

// alertsToSend marks and returns copies of the alerts due for a
// notification at ts.
func (r *AlertingRule) alertsToSend(ts time.Time, resendDelay, interval time.Duration) []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Alert
	for _, a := range r.active {
		if a.needsSending(ts, resendDelay) {
			a.LastSentAt = ts
			a.ValidUntil = ts.Add(4 * max(interval, resendDelay))
			out = append(out, *a)
		}
	}
	return out
}

// Alerts returns copies of the rule's pending and firing alerts, sorted by
// labels.
func (r *AlertingRule) Alerts() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Alert
	for _, a := range r.active {
		if a.State != StateInactive {
			out = append(out, *a)
		}
	}
	slices.SortFunc(out, func(a, b Alert) int { return labels.Compare(a.Labels, b.Labels) })
	return out
}

// State is the rule's most severe alert state.
func (r *AlertingRule) State() AlertState {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := StateInactive
	for _, a := range r.active {
		s = max(s, a.State)
	}
	return s
}

// Health returns the last evaluation's health, error, time and duration.
func (r *AlertingRule) Health() RuleHealth { return r.status.get() }

// RecordingRule writes its expression's result as a float series.
type RecordingRule struct {
	spec   RuleSpec
	labels map[string]string
	status ruleStatus
}

// Name is the recorded metric name.
func (r *RecordingRule) Name() string { return r.spec.Record }

// Spec is the rule as written.
func (r *RecordingRule) Spec() RuleSpec { return r.spec }

// Health returns the last evaluation's health, error, time and duration.
func (r *RecordingRule) Health() RuleHealth { return r.status.get() }

func (r *RecordingRule) eval(ctx context.Context, ts time.Time, env evalEnv) ([]Sample, error) {
	res, err := env.query(ctx, r.spec.Expr, ts.Add(-env.queryOffset))
	if err != nil {
		return nil, err
	}
	out := make([]Sample, 0, len(res))
	lb := labels.NewBuilder(labels.EmptyLabels())
	seen := map[uint64]bool{}
	t := ts.Add(-env.queryOffset).UnixMilli()
	for _, s := range res {
		lb.Reset(s.Metric)
		lb.Set(model.MetricNameLabel, r.Name())
		for _, k := range sortedKeys(r.labels) {
			lb.Set(k, r.labels[k])
		}
		ls := lb.Labels()
		if h := ls.Hash(); seen[h] {
			return nil, errors.New("vector contains metrics with the same labelset after applying rule labels")
		} else {
			seen[h] = true
		}
		out = append(out, Sample{Labels: ls, T: t, V: s.F, H: s.H})
	}
	if env.limit > 0 && len(out) > env.limit {
		return nil, fmt.Errorf("exceeded limit of %d with %d series", env.limit, len(out))
	}
	return out, nil
}

func newRecordingRule(spec RuleSpec, groupLabels map[string]string) *RecordingRule {
	ls := maps.Clone(groupLabels)
	if ls == nil {
		ls = map[string]string{}
	}
	maps.Copy(ls, spec.Labels)
	return &RecordingRule{spec: spec, labels: ls}
}

// exprString is the rule's expression, trimmed.
func exprString(s RuleSpec) string { return strings.TrimSpace(s.Expr) }
