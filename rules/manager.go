package rules

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"evalstore/query"
	"evalstore/tsdb"
	"evalstore/tsdb/series"
)

// Options configure a Manager. Zero values take the defaults noted.
type Options struct {
	// Engine evaluates rule expressions (default query.New(query.Options{})).
	Engine *query.Engine
	// Storage is read by the rules and receives their results. Required.
	Storage Storage
	// Notifier receives alerts to send (nil: alerts are not sent).
	Notifier Notifier
	// DefaultInterval is the interval of groups without one (default 1m).
	DefaultInterval time.Duration
	// ResendDelay is how often a firing alert is re-sent (default 1m).
	ResendDelay time.Duration
	// OutageTolerance is how far back alert state is restored from
	// ALERTS_FOR_STATE after a restart (default 1h); ForGracePeriod the
	// least time an alert whose `for` was nearly over waits after a
	// restart before firing (default 10m). Prometheus's defaults.
	OutageTolerance time.Duration
	ForGracePeriod  time.Duration
	// ExternalLabels are added to notifications and available to templates
	// as $externalLabels; ExternalURL is the base of generator URLs and
	// $externalURL.
	ExternalLabels map[string]string
	ExternalURL    *url.URL
	// Now is the clock of the evaluation loop (default time.Now).
	Now func() time.Time
	// NewTicker drives each group's loop (default time.NewTicker).
	NewTicker func(d time.Duration) tsdb.Ticker
	// Logger receives evaluation errors and reloads (default discard).
	Logger *slog.Logger

	// noRestore skips the state restore (rule unit tests start empty).
	noRestore bool
}

// Manager loads rule files and evaluates their groups.
type Manager struct {
	opts  Options
	log   *slog.Logger
	query queryFunc

	mu       sync.RWMutex // guards files, groups, the loop state
	files    []string
	groups   []*Group
	loaded   bool // a Load succeeded before (state restore only at the first)
	runCtx   context.Context
	loops    sync.WaitGroup
	stopLoop context.CancelFunc
}

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }

// NewManager returns a manager with no rules.
func NewManager(opts Options) *Manager {
	if opts.Engine == nil {
		opts.Engine = query.New(query.Options{})
	}
	if opts.DefaultInterval <= 0 {
		opts.DefaultInterval = time.Minute
	}
	if opts.ResendDelay <= 0 {
		opts.ResendDelay = time.Minute
	}
	if opts.OutageTolerance <= 0 {
		opts.OutageTolerance = time.Hour
	}
	if opts.ForGracePeriod <= 0 {
		opts.ForGracePeriod = 10 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NewTicker == nil {
		opts.NewTicker = func(d time.Duration) tsdb.Ticker { return realTicker{time.NewTicker(d)} }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{opts: opts, log: opts.Logger, query: engineQueryFunc(opts.Engine, opts.Storage)}
}

// Load parses and validates files and, only if all are valid, replaces the
// manager's rules with theirs: on any error the previous rules stay and
// the error (every problem, each an *Error) is returned. Alert state
// carries over to a rule with the same file, group, name, expression and
// labels. If the manager is running, the new groups start at once.
func (m *Manager) Load(files ...string) error {
	var parsed []*File
	var errs []error
	for _, f := range files {
		pf, err := ParseFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		parsed = append(parsed, pf)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	seen := map[string]string{}
	for _, f := range parsed {
		for _, g := range f.Groups {
			if prev, ok := seen[g.Name]; ok && prev != f.Path {
				m.log.Warn("rule group name used in two files", "group", g.Name, "files", []string{prev, f.Path})
			}
			seen[g.Name] = f.Path
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Stop the loops first: the old groups' state moves to the new ones.
	running := m.runCtx != nil
	if running {
		m.stopLoopsLocked()
	}
	old := map[string]*Group{}
	for _, g := range m.groups {
		old[g.key()] = g
	}
	var groups []*Group
	for _, f := range parsed {
		for _, gs := range f.Groups {
			g := m.newGroup(gs, !m.loaded && !m.opts.noRestore)
			if og, ok := old[g.key()]; ok {
				g.copyState(og)
			}
			groups = append(groups, g)
		}
	}
	// Series of removed groups and rules go stale now.
	m.staleRemovedLocked(groups)
	m.groups, m.files, m.loaded = groups, slices.Clone(files), true
	if running {
		m.startLoopsLocked()
	}
	m.log.Info("rules loaded", "files", len(files), "groups", len(groups))
	return nil
}

// Reload loads the files of the last successful Load again (SIGHUP).
func (m *Manager) Reload() error {
	m.mu.RLock()
	files := slices.Clone(m.files)
	m.mu.RUnlock()
	return m.Load(files...)
}

func (m *Manager) newGroup(gs GroupSpec, restore bool) *Group {
	g := &Group{spec: gs, interval: gs.Interval, m: m, shouldRestore: restore}
	if g.interval <= 0 {
		g.interval = m.opts.DefaultInterval
	}
	for _, rs := range gs.Rules {
		if rs.Alert != "" {
			ar := newAlertingRule(rs, gs.Labels, m.log)
			// Only the groups of the first load restore state; the rules
			// of later ones write ALERTS from their first evaluation.
			ar.restored = !restore
			g.rules = append(g.rules, ar)
		} else {
			g.rules = append(g.rules, newRecordingRule(rs, gs.Labels))
		}
	}
	return g
}

// ruleKey identifies a rule's state across reloads.
func ruleKey(r Rule) string {
	s := r.Spec()
	return s.Alert + "\x00" + s.Record + "\x00" + exprString(s) + "\x00" + labels.FromMap(s.Labels).String()
}

// copyState takes alert state and last-written series from og's rules
// that match g's.
func (g *Group) copyState(og *Group) {
	og.evalMu.Lock()
	defer og.evalMu.Unlock()
	byKey := map[string]int{}
	for i, r := range og.rules {
		byKey[ruleKey(r)] = i
	}
	g.lastSeries = make([]map[uint64]labels.Labels, len(g.rules))
	for i, r := range g.rules {
		j, ok := byKey[ruleKey(r)]
		if !ok {
			continue
		}
		delete(byKey, ruleKey(r))
		if og.lastSeries != nil {
			g.lastSeries[i] = og.lastSeries[j]
		}
		if na, ok := r.(*AlertingRule); ok {
			oa := og.rules[j].(*AlertingRule)
			oa.mu.Lock()
			na.active, na.restored = oa.active, oa.restored
			oa.active = map[uint64]*Alert{}
			oa.mu.Unlock()
		}
	}
	g.shouldRestore = og.shouldRestore
	g.lastEval, g.evalDuration = og.LastEvaluation()
}

// staleRemovedLocked writes staleness markers for the series of rules
// that are not in groups.
func (m *Manager) staleRemovedLocked(groups []*Group) {
	keep := map[string]map[uint64]bool{}
	for _, g := range groups {
		for _, ls := range g.lastSeries {
			for h := range ls {
				if keep[g.key()] == nil {
					keep[g.key()] = map[uint64]bool{}
				}
				keep[g.key()][h] = true
			}
		}
	}
	var samples []Sample
	for _, g := range m.groups {
		g.evalMu.Lock()
		t := g.lastEvalTS.Add(-g.spec.QueryOffset).UnixMilli()
		for _, ls := range g.lastSeries {
			for h, l := range ls {
				if !keep[g.key()][h] {
					samples = append(samples, Sample{Labels: l, T: t, V: math.Float64frombits(value.StaleNaN)})
				}
			}
		}
		g.evalMu.Unlock()
	}
	if len(samples) > 0 {
		if err := m.opts.Storage.Append(samples); err != nil {
			m.log.Warn("writing staleness markers of removed rules", "err", err)
		}
	}
}

// Groups returns the loaded groups, in file order.
func (m *Manager) Groups() []*Group {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.groups)
}

// Eval evaluates every group once at ts, in order, synchronously (tests
// and one-shot tools; Run evaluates on each group's interval).
func (m *Manager) Eval(ctx context.Context, ts time.Time) {
	for _, g := range m.Groups() {
		g.Eval(ctx, ts)
	}
}

// Run evaluates each group on its interval until ctx is done: the first
// evaluation at once, then at every tick of the group's ticker, with Now
// as the evaluation time. Load while running restarts the loops.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.runCtx != nil {
		m.mu.Unlock()
		return errors.New("rules: manager already running")
	}
	m.runCtx = ctx
	m.startLoopsLocked()
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	m.stopLoopsLocked()
	m.runCtx = nil
	m.mu.Unlock()
	return nil
}

func (m *Manager) startLoopsLocked() {
	ctx, cancel := context.WithCancel(m.runCtx)
	m.stopLoop = cancel
	for _, g := range m.groups {
		m.loops.Add(1)
		go func() {
			defer m.loops.Done()
			g.run(ctx)
		}()
	}
}

func (m *Manager) stopLoopsLocked() {
	if m.stopLoop != nil {
		m.stopLoop()
		m.loops.Wait()
		m.stopLoop = nil
	}
}

func (g *Group) run(ctx context.Context) {
	t := g.m.opts.NewTicker(g.interval)
	defer t.Stop()
	g.Eval(ctx, g.m.opts.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			g.Eval(ctx, g.m.opts.Now())
		}
	}
}

func seriesHints(mint, maxt int64) series.Hints { return series.Hints{Mint: mint, Maxt: maxt} }
