package rules

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the manager's and (if not nil) the notifier's self
// metrics for /metrics: evaluations, failures, durations and alert counts
// per group, and sent, failed, dropped and queued alerts per Alertmanager.
func Collector(m *Manager, n *AlertmanagerNotifier) prometheus.Collector {
	return &collector{m: m, n: n}
}

type collector struct {
	m *Manager
	n *AlertmanagerNotifier
}

var (
	descEvals    = prometheus.NewDesc("evalstore_rule_group_evaluations_total", "Evaluations of a rule group.", []string{"file", "group"}, nil)
	descFailures = prometheus.NewDesc("evalstore_rule_evaluation_failures_total", "Rule evaluations that failed.", []string{"file", "group"}, nil)
	descDuration = prometheus.NewDesc("evalstore_rule_group_last_duration_seconds", "Duration of the group's last evaluation.", []string{"file", "group"}, nil)
	descLastEval = prometheus.NewDesc("evalstore_rule_group_last_evaluation_timestamp_seconds", "Time of the group's last evaluation.", []string{"file", "group"}, nil)
	descRules    = prometheus.NewDesc("evalstore_rule_group_rules", "Rules in the group.", []string{"file", "group"}, nil)
	descAlerts   = prometheus.NewDesc("evalstore_rule_alerts", "Pending and firing alerts.", []string{"file", "group", "state"}, nil)
	descSent     = prometheus.NewDesc("evalstore_notifications_sent_total", "Alerts sent to an Alertmanager.", []string{"alertmanager"}, nil)
	descFailed   = prometheus.NewDesc("evalstore_notifications_errors_total", "Alerts in batches that failed every attempt.", []string{"alertmanager"}, nil)
	descDropped  = prometheus.NewDesc("evalstore_notifications_dropped_total", "Alerts dropped from a full queue.", []string{"alertmanager"}, nil)
	descQueue    = prometheus.NewDesc("evalstore_notifications_queue_length", "Alerts waiting to be sent.", []string{"alertmanager"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvals, descFailures, descDuration, descLastEval, descRules, descAlerts, descSent, descFailed, descDropped, descQueue} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, g := range c.m.Groups() {
		ls := []string{g.File(), g.Name()}
		ch <- prometheus.MustNewConstMetric(descEvals, prometheus.CounterValue, float64(g.evaluations.Load()), ls...)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(g.ruleFailures.Load()), ls...)
		last, took := g.LastEvaluation()
		ch <- prometheus.MustNewConstMetric(descDuration, prometheus.GaugeValue, took.Seconds(), ls...)
		lastTS := 0.0
		if !last.IsZero() {
			lastTS = float64(last.UnixMilli()) / 1000
		}
		ch <- prometheus.MustNewConstMetric(descLastEval, prometheus.GaugeValue, lastTS, ls...)
		ch <- prometheus.MustNewConstMetric(descRules, prometheus.GaugeValue, float64(len(g.rules)), ls...)
		var pending, firing int
		for _, r := range g.rules {
			if ar, ok := r.(*AlertingRule); ok {
				for _, a := range ar.Alerts() {
					if a.State == StateFiring {
						firing++
					} else {
						pending++
					}
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(descAlerts, prometheus.GaugeValue, float64(pending), g.File(), g.Name(), "pending")
		ch <- prometheus.MustNewConstMetric(descAlerts, prometheus.GaugeValue, float64(firing), g.File(), g.Name(), "firing")
	}
	if c.n == nil {
		return
	}
	for _, s := range c.n.Stats() {
		ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(s.Sent), s.URL)
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(s.Failed), s.URL)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.Dropped), s.URL)
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(s.Queued), s.URL)
	}
}
