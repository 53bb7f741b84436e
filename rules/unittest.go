package rules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promparser "github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"evalstore/query"
)

// The rule unit-test file, promtool's format.
type unitTestFile struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval,omitempty"`
	GroupEvalOrder     []string       `yaml:"group_eval_order,omitempty"`
	Tests              []testGroup    `yaml:"tests"`
}

type testGroup struct {
	Name           string            `yaml:"name,omitempty"`
	Interval       model.Duration    `yaml:"interval,omitempty"`
	InputSeries    []inputSeries     `yaml:"input_series"`
	AlertRuleTests []alertTestCase   `yaml:"alert_rule_test,omitempty"`
	ExprTests      []exprTestCase    `yaml:"promql_expr_test,omitempty"`
	ExternalLabels map[string]string `yaml:"external_labels,omitempty"`
	ExternalURL    string            `yaml:"external_url,omitempty"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTestCase struct {
	EvalTime  model.Duration `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []expAlert     `yaml:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

type exprTestCase struct {
	Expr       string         `yaml:"expr"`
	EvalTime   model.Duration `yaml:"eval_time"`
	ExpSamples []expSample    `yaml:"exp_samples"`
}

type expSample struct {
	Labels string  `yaml:"labels"`
	Value  float64 `yaml:"value"`
}

// RunUnitTests runs the rule unit-test file path (promtool's test-file
// format: rule_files, evaluation_interval, tests with input_series in
// expanding notation, alert_rule_test, promql_expr_test) and returns
// every failure; nil means it passed.
func RunUnitTests(path string) []error {
	b, err := os.ReadFile(path)
	if err != nil {
		return []error{err}
	}
	var f unitTestFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return []error{fmt.Errorf("%s: %w", path, err)}
	}
	if f.EvaluationInterval == 0 {
		f.EvaluationInterval = model.Duration(time.Minute)
	}
	var files []string
	for _, rf := range f.RuleFiles {
		if !filepath.IsAbs(rf) {
			rf = filepath.Join(filepath.Dir(path), rf)
		}
		m, err := filepath.Glob(rf)
		if err != nil {
			return []error{err}
		}
		if len(m) == 0 {
			return []error{fmt.Errorf("%s: rule file %s not found", path, rf)}
		}
		files = append(files, m...)
	}
	var errs []error
	for i, tg := range f.Tests {
		name := tg.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
		}
		for _, e := range tg.run(time.Duration(f.EvaluationInterval), f.GroupEvalOrder, files) {
			errs = append(errs, fmt.Errorf("  test %q:\n%w", name, e))
		}
	}
	return errs
}

func (tg *testGroup) run(evalInterval time.Duration, order []string, files []string) []error {
	interval := time.Duration(tg.Interval)
	if interval == 0 {
		interval = evalInterval
	}
	store := query.NewMemStorage()
	p := promparser.NewParser(promparser.Options{})
	for _, s := range tg.InputSeries {
		ls, vals, err := p.ParseSeriesDesc(s.Series + " " + s.Values)
		if err != nil {
			return []error{fmt.Errorf("input series %s %q: %w", s.Series, s.Values, err)}
		}
		var pts []query.FPoint
		for k, v := range vals {
			if v.Omitted {
				continue
			}
			if v.Histogram != nil {
				return []error{fmt.Errorf("input series %s: native histograms are not supported in rule tests", s.Series)}
			}
			pts = append(pts, query.FPoint{T: int64(k) * interval.Milliseconds(), F: v.Value})
		}
		if err := store.AddFloat(ls, pts...); err != nil {
			return []error{err}
		}
	}
	var extURL *url.URL
	if tg.ExternalURL != "" {
		u, err := url.Parse(tg.ExternalURL)
		if err != nil {
			return []error{fmt.Errorf("external_url: %w", err)}
		}
		extURL = u
	}
	engine := query.New(query.Options{})
	m := NewManager(Options{Engine: engine, Storage: MemStorage(store), DefaultInterval: evalInterval,
		ExternalLabels: tg.ExternalLabels, ExternalURL: extURL, noRestore: true})
	if err := m.Load(files...); err != nil {
		return []error{err}
	}
	groups := m.Groups()
	if len(order) > 0 {
		pos := map[string]int{}
		for i, n := range order {
			pos[n] = i
		}
		slices.SortStableFunc(groups, func(a, b *Group) int { return pos[a.Name()] - pos[b.Name()] })
	}

	var maxEval time.Duration
	alertTimes := map[time.Duration][]alertTestCase{}
	for _, at := range tg.AlertRuleTests {
		t := time.Duration(at.EvalTime)
		alertTimes[t] = append(alertTimes[t], at)
		maxEval = max(maxEval, t)
	}
	for _, et := range tg.ExprTests {
		maxEval = max(maxEval, time.Duration(et.EvalTime))
	}
	times := make([]time.Duration, 0, len(alertTimes))
	for t := range alertTimes {
		times = append(times, t)
	}
	slices.Sort(times)

	var errs []error
	ctx := context.Background()
	next := 0
	for ts := time.Duration(0); ts <= maxEval; ts += evalInterval {
		for _, g := range groups {
			g.Eval(ctx, time.UnixMilli(ts.Milliseconds()))
			for _, r := range g.rules {
				if h := r.Health(); h.Health == HealthErr {
					errs = append(errs, fmt.Errorf("    eval at %v: group %q, rule %q: %v", ts, g.Name(), r.Name(), h.LastError))
				}
			}
		}
		// An alert check at t uses the evaluation at the last grid time <= t.
		for next < len(times) && times[next] < ts+evalInterval {
			for _, at := range alertTimes[times[next]] {
				if err := checkAlerts(groups, at); err != nil {
					errs = append(errs, err)
				}
			}
			next++
		}
	}
	for _, et := range tg.ExprTests {
		if err := checkExpr(ctx, engine, store, p, et); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

type gotAlert struct{ labels, annotations labels.Labels }

func (a gotAlert) String() string {
	return fmt.Sprintf("{labels: %s, annotations: %s}", a.labels, a.annotations)
}

func sortAlerts(as []gotAlert) {
	slices.SortFunc(as, func(a, b gotAlert) int {
		if c := labels.Compare(a.labels, b.labels); c != 0 {
			return c
		}
		return labels.Compare(a.annotations, b.annotations)
	})
}

func checkAlerts(groups []*Group, at alertTestCase) error {
	var got []gotAlert
	for _, g := range groups {
		for _, r := range g.rules {
			ar, ok := r.(*AlertingRule)
			if !ok || ar.Name() != at.Alertname {
				continue
			}
			for _, a := range ar.Alerts() {
				if a.State == StateFiring {
					got = append(got, gotAlert{a.Labels, a.Annotations})
				}
			}
		}
	}
	var exp []gotAlert
	for _, e := range at.ExpAlerts {
		lb := labels.NewBuilder(labels.FromMap(e.ExpLabels))
		lb.Set(alertNameLabel, at.Alertname)
		exp = append(exp, gotAlert{lb.Labels(), labels.FromMap(e.ExpAnnotations)})
	}
	sortAlerts(got)
	sortAlerts(exp)
	same := len(got) == len(exp)
	for i := 0; same && i < len(got); i++ {
		same = labels.Equal(got[i].labels, exp[i].labels) && labels.Equal(got[i].annotations, exp[i].annotations)
	}
	if same {
		return nil
	}
	return fmt.Errorf("    alertname: %s, time: %s,\n        exp:%v,\n        got:%v", at.Alertname, model.Duration(at.EvalTime), exp, got)
}

type gotSample struct {
	labels labels.Labels
	value  float64
}

func (s gotSample) String() string { return fmt.Sprintf("%s %v", s.labels, s.value) }

func checkExpr(ctx context.Context, e *query.Engine, q query.Queryable, p promparser.Parser, et exprTestCase) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("    expr: %q, time: %s,\n        %s", et.Expr, model.Duration(et.EvalTime), fmt.Sprintf(format, args...))
	}
	res, err := engineQueryFunc(e, q)(ctx, et.Expr, time.UnixMilli(time.Duration(et.EvalTime).Milliseconds()))
	if err != nil {
		return fail("err: %v", err)
	}
	var got, exp []gotSample
	for _, s := range res {
		got = append(got, gotSample{s.Metric, s.F})
	}
	for _, s := range et.ExpSamples {
		ls := labels.EmptyLabels()
		if strings.TrimSpace(s.Labels) != "" {
			ls, err = p.ParseMetric(s.Labels)
			if err != nil {
				return fail("labels %q: %v", s.Labels, err)
			}
		}
		exp = append(exp, gotSample{ls, s.Value})
	}
	cmp := func(a, b gotSample) int { return labels.Compare(a.labels, b.labels) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(exp, cmp)
	same := len(got) == len(exp)
	for i := 0; same && i < len(got); i++ {
		same = labels.Equal(got[i].labels, exp[i].labels) && almostEqual(got[i].value, exp[i].value)
	}
	if same {
		return nil
	}
	return fail("exp: %v\n        got: %v", exp, got)
}

func almostEqual(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-6*math.Max(math.Abs(a), math.Abs(b))
}
