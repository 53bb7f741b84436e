package rules

import (
	"context"
	"math"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Rule is an *AlertingRule or a *RecordingRule.
type Rule interface {
	Name() string
	Spec() RuleSpec
	Health() RuleHealth
	eval(ctx context.Context, ts time.Time, env evalEnv) ([]Sample, error)
}

// Group is a loaded rule group: its rules, evaluated in order.
type Group struct {
	spec     GroupSpec
	interval time.Duration
	rules    []Rule
	m        *Manager

	// evalMu serialises evaluations of the group.
	evalMu sync.Mutex
	// lastSeries are the series each rule wrote at the last evaluation,
	// by rule index: those missing at the next get a staleness marker.
	lastSeries []map[uint64]labels.Labels
	lastEvalTS time.Time

	statusMu     sync.Mutex
	lastEval     time.Time
	evalDuration time.Duration

	shouldRestore bool

	// evaluations counts group evaluations, ruleFailures failed rule
	// evaluations (self metrics).
	evaluations, ruleFailures atomic.Uint64
}

// Name is the group's name; File the file it came from.
func (g *Group) Name() string { return g.spec.Name }

// File is the rule file the group came from.
func (g *Group) File() string { return g.spec.File }

// Interval is the evaluation interval.
func (g *Group) Interval() time.Duration { return g.interval }

// Rules are the group's rules in order.
func (g *Group) Rules() []Rule { return g.rules }

// key identifies a group across reloads.
func (g *Group) key() string { return g.spec.File + "\x00" + g.spec.Name }

// Eval evaluates every rule of the group at ts, writes the results (and
// staleness markers for series that disappeared) and sends due alerts.
func (g *Group) Eval(ctx context.Context, ts time.Time) {
	g.evalMu.Lock()
	defer g.evalMu.Unlock()
	m := g.m
	began := time.Now()
	env := evalEnv{
		query:          m.query,
		externalLabels: m.opts.ExternalLabels,
		externalURL:    m.opts.ExternalURL,
		limit:          g.spec.Limit,
		queryOffset:    g.spec.QueryOffset,
	}
	if g.lastSeries == nil {
		g.lastSeries = make([]map[uint64]labels.Labels, len(g.rules))
	}
	staleT := ts.Add(-g.spec.QueryOffset).UnixMilli()
	for i, r := range g.rules {
		if ctx.Err() != nil {
			return
		}
		rb := time.Now()
		samples, err := r.eval(ctx, ts, env)
		took := time.Since(rb)
		if err != nil {
			g.ruleFailures.Add(1)
			m.log.Warn("rule evaluation failed", "group", g.Name(), "rule", r.Name(), "err", err)
		}
		switch x := r.(type) {
		case *AlertingRule:
			x.status.set(ts, took, err)
			if m.opts.Notifier != nil {
				if as := x.alertsToSend(ts, m.opts.ResendDelay, g.interval); len(as) > 0 {
					m.opts.Notifier.Send(m.toNotify(x, as)...)
				}
			}
		case *RecordingRule:
			x.status.set(ts, took, err)
		}
		if err != nil {
			// Prometheus keeps the previous series when a rule fails: they go
			// stale by the lookback, and by markers once the rule recovers.
			continue
		}
		cur := make(map[uint64]labels.Labels, len(samples))
		for _, s := range samples {
			cur[s.Labels.Hash()] = s.Labels
		}
		for h, ls := range g.lastSeries[i] {
			if _, ok := cur[h]; !ok {
				samples = append(samples, Sample{Labels: ls, T: staleT, V: math.Float64frombits(value.StaleNaN)})
			}
		}
		g.lastSeries[i] = cur
		if len(samples) > 0 {
			if err := m.opts.Storage.Append(samples); err != nil {
				m.log.Warn("writing rule results failed", "group", g.Name(), "rule", r.Name(), "err", err)
			}
		}
	}
	g.lastEvalTS = ts
	g.evaluations.Add(1)
	g.statusMu.Lock()
	g.lastEval, g.evalDuration = ts, time.Since(began)
	g.statusMu.Unlock()
	if g.shouldRestore {
		g.restoreForState(ctx, ts)
		g.shouldRestore = false
	}
}

// LastEvaluation returns the last evaluation's time and duration.
func (g *Group) LastEvaluation() (time.Time, time.Duration) {
	g.statusMu.Lock()
	defer g.statusMu.Unlock()
	return g.lastEval, g.evalDuration
}

// restoreForState restores the ActiveAt of the alerts the first
// evaluation found from the ALERTS_FOR_STATE series written before a
// restart, as Prometheus does: an alert that had been pending for part of
// its `for` keeps that progress (shifted by the downtime), one that had
// fired fires again at once, and one close to firing gets ForGracePeriod.
func (g *Group) restoreForState(ctx context.Context, ts time.Time) {
	m := g.m
	mint := ts.Add(-m.opts.OutageTolerance).UnixMilli()
	maxt := ts.UnixMilli()
	q, err := m.opts.Storage.Querier(mint, maxt)
	if err != nil {
		m.log.Error("restoring alert state: opening storage", "err", err)
		return
	}
	defer func() {
		if err := q.Close(); err != nil {
			m.log.Warn("restoring alert state: closing storage", "err", err)
		}
	}()
	for _, r := range g.rules {
		ar, ok := r.(*AlertingRule)
		if !ok {
			continue
		}
		hold := ar.spec.For
		if hold < m.opts.ForGracePeriod {
			ar.setRestored()
			continue
		}
		ar.mu.Lock()
		for _, a := range ar.active {
			if a.State == StateInactive {
				continue
			}
			want := ar.forStateSample(a, 0).Labels
			set := q.Select(ctx, seriesHints(mint, maxt),
				labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, AlertsForStateMetric),
				labels.MustNewMatcher(labels.MatchEqual, alertNameLabel, ar.Name()))
			var t int64
			var v float64
			found := false
			for set.Next() {
				s := set.At()
				if !labels.Equal(s.Meta().Labels, want) {
					continue
				}
				it := s.Samples(nil)
				for it.Next() == chunkenc.ValFloat {
					st, sv := it.At()
					if st < mint || st > maxt {
						continue
					}
					t, v, found = st, sv, true
				}
			}
			if err := set.Err(); err != nil {
				m.log.Error("restoring alert state", "alert", ar.Name(), "err", err)
			}
			if !found || value.IsStaleNaN(v) {
				continue
			}
			downAt := time.UnixMilli(t)
			activeAt := time.Unix(int64(v), 0)
			remaining := hold - downAt.Sub(activeAt)
			switch {
			case remaining <= 0:
			case remaining < m.opts.ForGracePeriod:
				activeAt = ts.Add(m.opts.ForGracePeriod - hold)
			default:
				activeAt = activeAt.Add(ts.Sub(downAt))
			}
			a.ActiveAt = activeAt
			m.log.Info("restored alert state", "alert", ar.Name(), "labels", a.Labels.String(), "active_at", activeAt)
		}
		ar.restored = true
		ar.mu.Unlock()
	}
}

func (r *AlertingRule) setRestored() {
	r.mu.Lock()
	r.restored = true
	r.mu.Unlock()
}

// Notifier receives alerts to send; Send must not block.
type Notifier interface {
	Send(alerts ...NotifyAlert)
}

// NotifyAlert is an alert as Alertmanager's v2 API receives it.
type NotifyAlert struct {
	Labels       labels.Labels
	Annotations  labels.Labels
	StartsAt     time.Time
	EndsAt       time.Time
	GeneratorURL string
}

func (m *Manager) toNotify(r *AlertingRule, as []Alert) []NotifyAlert {
	out := make([]NotifyAlert, 0, len(as))
	gen := generatorURL(m.opts.ExternalURL, r.spec.Expr)
	for _, a := range as {
		lb := labels.NewBuilder(a.Labels)
		for k, v := range m.opts.ExternalLabels {
			if a.Labels.Get(k) == "" {
				lb.Set(k, v)
			}
		}
		na := NotifyAlert{Labels: lb.Labels(), Annotations: a.Annotations, StartsAt: a.FiredAt, GeneratorURL: gen}
		if !a.ResolvedAt.IsZero() {
			na.EndsAt = a.ResolvedAt
		} else {
			na.EndsAt = a.ValidUntil
		}
		out = append(out, na)
	}
	return out
}

func generatorURL(ext *url.URL, expr string) string {
	base := ""
	if ext != nil {
		base = ext.String()
	}
	return base + "/graph?g0.expr=" + url.QueryEscape(expr) + "&g0.tab=1"
}
