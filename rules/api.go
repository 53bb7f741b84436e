package rules

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"evalstore/query"
)

// The types below are the data of /api/v1/rules and /api/v1/alerts in
// Prometheus's JSON shape (web/api/v1): the HTTP layer wraps them in
// {"status":"success","data":...}.

// RuleDiscovery is /api/v1/rules's data.
type RuleDiscovery struct {
	RuleGroups []*RuleGroupJSON `json:"groups"`
}

// RuleGroupJSON is one group of /api/v1/rules.
type RuleGroupJSON struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	Rules          []any     `json:"rules"` // *AlertingRuleJSON or *RecordingRuleJSON
	Interval       float64   `json:"interval"`
	Limit          int       `json:"limit"`
	EvaluationTime float64   `json:"evaluationTime"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

// AlertingRuleJSON is an alerting rule of /api/v1/rules.
type AlertingRuleJSON struct {
	State          string        `json:"state"`
	Name           string        `json:"name"`
	Query          string        `json:"query"`
	Duration       float64       `json:"duration"`
	KeepFiringFor  float64       `json:"keepFiringFor"`
	Labels         labels.Labels `json:"labels"`
	Annotations    labels.Labels `json:"annotations"`
	Alerts         []*AlertJSON  `json:"alerts"`
	Health         Health        `json:"health"`
	LastError      string        `json:"lastError,omitempty"`
	EvaluationTime float64       `json:"evaluationTime"`
	LastEvaluation time.Time     `json:"lastEvaluation"`
	Type           string        `json:"type"`
}

// RecordingRuleJSON is a recording rule of /api/v1/rules.
type RecordingRuleJSON struct {
	Name           string        `json:"name"`
	Query          string        `json:"query"`
	Labels         labels.Labels `json:"labels,omitempty"`
	Health         Health        `json:"health"`
	LastError      string        `json:"lastError,omitempty"`
	EvaluationTime float64       `json:"evaluationTime"`
	LastEvaluation time.Time     `json:"lastEvaluation"`
	Type           string        `json:"type"`
}

// AlertJSON is an alert of /api/v1/alerts and /api/v1/rules.
type AlertJSON struct {
	Labels          labels.Labels `json:"labels"`
	Annotations     labels.Labels `json:"annotations"`
	State           string        `json:"state"`
	ActiveAt        *time.Time    `json:"activeAt,omitempty"`
	KeepFiringSince *time.Time    `json:"keepFiringSince,omitempty"`
	Value           string        `json:"value"`
}

// AlertDiscovery is /api/v1/alerts's data.
type AlertDiscovery struct {
	Alerts []*AlertJSON `json:"alerts"`
}

// RulesFilter selects rules as /api/v1/rules's parameters do: Type is
// "alert", "record" or "" (both); the name lists (rule_name[],
// rule_group[], file[]) match any of their entries when non-empty;
// ExcludeAlerts drops the alerts of alerting rules.
type RulesFilter struct {
	Type          string
	RuleNames     []string
	GroupNames    []string
	Files         []string
	ExcludeAlerts bool
}

func (f RulesFilter) keep(list []string, v string) bool {
	return len(list) == 0 || slices.Contains(list, v)
}

// RulesData returns /api/v1/rules's data for the loaded groups. Groups
// left without rules by the filter are omitted, as Prometheus does.
func (m *Manager) RulesData(f RulesFilter) *RuleDiscovery {
	out := &RuleDiscovery{RuleGroups: []*RuleGroupJSON{}}
	for _, g := range m.Groups() {
		if !f.keep(f.GroupNames, g.Name()) || !f.keep(f.Files, g.File()) {
			continue
		}
		last, took := g.LastEvaluation()
		gj := &RuleGroupJSON{Name: g.Name(), File: g.File(), Rules: []any{}, Interval: g.interval.Seconds(), Limit: g.spec.Limit,
			EvaluationTime: took.Seconds(), LastEvaluation: last}
		for _, r := range g.rules {
			if !f.keep(f.RuleNames, r.Name()) {
				continue
			}
			rh := r.Health()
			health, lastEval, evalTook := rh.Health, rh.LastEvaluation, rh.EvaluationTime
			errText := ""
			if rh.LastError != nil {
				errText = rh.LastError.Error()
			}
			switch x := r.(type) {
			case *AlertingRule:
				if f.Type == "record" {
					continue
				}
				alerts := []*AlertJSON{}
				if !f.ExcludeAlerts {
					alerts = alertsJSON(x.Alerts())
				}
				gj.Rules = append(gj.Rules, &AlertingRuleJSON{
					State: x.State().String(), Name: x.Name(), Query: canonical(x.spec.Expr),
					Duration: x.spec.For.Seconds(), KeepFiringFor: x.spec.KeepFiringFor.Seconds(),
					Labels: x.labels, Annotations: x.annotations, Alerts: alerts,
					Health: health, LastError: errText, EvaluationTime: evalTook.Seconds(), LastEvaluation: lastEval, Type: "alerting",
				})
			case *RecordingRule:
				if f.Type == "alert" {
					continue
				}
				gj.Rules = append(gj.Rules, &RecordingRuleJSON{
					Name: x.Name(), Query: canonical(x.spec.Expr), Labels: labels.FromMap(x.labels),
					Health: health, LastError: errText, EvaluationTime: evalTook.Seconds(), LastEvaluation: lastEval, Type: "recording",
				})
			}
		}
		if len(gj.Rules) == 0 && (f.Type != "" || len(f.RuleNames) > 0) {
			continue
		}
		out.RuleGroups = append(out.RuleGroups, gj)
	}
	return out
}

// AlertsData returns /api/v1/alerts's data: every pending and firing
// alert of every alerting rule.
func (m *Manager) AlertsData() *AlertDiscovery {
	out := &AlertDiscovery{Alerts: []*AlertJSON{}}
	for _, g := range m.Groups() {
		for _, r := range g.rules {
			if ar, ok := r.(*AlertingRule); ok {
				out.Alerts = append(out.Alerts, alertsJSON(ar.Alerts())...)
			}
		}
	}
	return out
}

func alertsJSON(as []Alert) []*AlertJSON {
	out := make([]*AlertJSON, 0, len(as))
	for _, a := range as {
		j := &AlertJSON{Labels: a.Labels, Annotations: a.Annotations, State: a.State.String(),
			Value: strconv.FormatFloat(a.Value, 'e', -1, 64)}
		activeAt := a.ActiveAt.UTC()
		j.ActiveAt = &activeAt
		if !a.KeepFiringSince.IsZero() {
			k := a.KeepFiringSince.UTC()
			j.KeepFiringSince = &k
		}
		out = append(out, j)
	}
	return out
}

// canonical is the expression's canonical text (as Prometheus shows a
// rule's query), or the text as written if it does not parse.
func canonical(expr string) string {
	ast, _, err := query.Check(expr)
	if err != nil {
		return expr
	}
	return ast.String()
}

// ParseRulesFilter reads /api/v1/rules's query parameters (type,
// rule_name[], rule_group[], file[], exclude_alerts). The error is a
// bad_data error in Prometheus's words.
func ParseRulesFilter(form url.Values) (RulesFilter, error) {
	f := RulesFilter{Type: strings.ToLower(form.Get("type")), RuleNames: form["rule_name[]"],
		GroupNames: form["rule_group[]"], Files: form["file[]"]}
	if f.Type != "" && f.Type != "alert" && f.Type != "record" {
		return f, fmt.Errorf("unsupported type %s", f.Type)
	}
	if v := form.Get("exclude_alerts"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, fmt.Errorf("parsing exclude_alerts: %w", err)
		}
		f.ExcludeAlerts = b
	}
	return f, nil
}
