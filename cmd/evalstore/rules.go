package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"evalstore/query"
	"evalstore/rules"
	"evalstore/tsdb"
)

// ruleSource adapts the rule manager to the API's /api/v1/rules and
// /api/v1/alerts.
type ruleSource struct{ m *rules.Manager }

func (s ruleSource) RulesData(form url.Values) (any, error) {
	f, err := rules.ParseRulesFilter(form)
	if err != nil {
		return nil, err
	}
	return s.m.RulesData(f), nil
}

func (s ruleSource) AlertsData() any { return s.m.AlertsData() }

// ruleSet is the running rule manager and notifier of serve.
type ruleSet struct {
	m     *rules.Manager
	n     *rules.AlertmanagerNotifier
	files []string
	done  chan struct{}
}

// expandRuleFiles resolves globs, as Prometheus's rule_files does; a pattern
// that matches nothing is an error so a typo does not silently load no rules.
func expandRuleFiles(patterns []string) ([]string, error) {
	var files []string
	for _, p := range patterns {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("rule file pattern %q: %w", p, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("rule file %q: no such file", p)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	return files, nil
}

// startRules loads the rule files and starts evaluation and notification;
// it returns nil when there are no rule files.
func startRules(ctx context.Context, cfg config, engine *query.Engine, db *tsdb.DB, reg prometheus.Registerer, log *slog.Logger) (*ruleSet, error) {
	if len(cfg.RuleFiles) == 0 {
		return nil, nil
	}
	files, err := expandRuleFiles(cfg.RuleFiles)
	if err != nil {
		return nil, err
	}
	n := rules.NewNotifier(rules.NotifierOptions{URLs: cfg.Alertmanagers, Logger: log.With("component", "notifier")})
	m := rules.NewManager(rules.Options{
		Engine: engine, Storage: rules.TSDBStorage(db), Notifier: n,
		DefaultInterval: time.Duration(cfg.RuleEvalInterval), Logger: log.With("component", "rules"),
	})
	if err := m.Load(files...); err != nil {
		return nil, err
	}
	if err := reg.Register(rules.Collector(m, n)); err != nil {
		return nil, fmt.Errorf("register rule metrics: %w", err)
	}
	rs := &ruleSet{m: m, n: n, files: files, done: make(chan struct{})}
	go func() {
		defer close(rs.done)
		nDone := make(chan struct{})
		go func() { defer close(nDone); n.Run(ctx) }()
		if err := m.Run(ctx); err != nil && ctx.Err() == nil {
			log.Warn("rule evaluation stopped", "err", err)
		}
		<-nDone
	}()
	log.Info("rules loaded", "files", len(files), "groups", len(m.Groups()), "alertmanagers", len(cfg.Alertmanagers))
	return rs, nil
}

// reload re-reads the rule files (SIGHUP); a bad file keeps the old rules.
func (rs *ruleSet) reload(log *slog.Logger) {
	if rs == nil {
		return
	}
	if err := rs.m.Reload(); err != nil {
		log.Error("rule reload refused; previous rules stay", "err", err)
		return
	}
	log.Info("rules reloaded", "groups", len(rs.m.Groups()))
}

// wait blocks until evaluation and notification have stopped.
func (rs *ruleSet) wait() {
	if rs != nil {
		<-rs.done
	}
}
